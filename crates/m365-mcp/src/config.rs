//! Configuration from the environment, read once at start.
//!
//! Variable names are the Python server's where it had them, so existing
//! client configurations keep working.

use m365_graph::GraphConfig;
use m365_graph::auth::AuthConfig;
use m365_store::Paths;

/// Everything the server reads from the environment.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory and cache path.
    pub paths: Paths,
    /// Graph base URL, retries, limits (`M365_MCP_GRAPH_URL`).
    pub graph: GraphConfig,
    /// Sign-in settings, or why they are missing (no `M365_MCP_CLIENT_ID`).
    pub auth: Result<AuthConfig, String>,
    /// `M365_MCP_CACHE_ENABLED` (default true): the global off switch.
    pub cache_enabled: bool,
    /// `M365_MCP_CACHE_WARMING` (default true).
    pub warming: bool,
    /// `M365_MCP_CACHE_TTL_SCALE` (default 1): multiplies every cache
    /// lifetime; below 1 makes entries go stale sooner.
    pub ttl_scale: f64,
    /// `M365_MCP_CACHE_BACKEND`: `sqlcipher` (default) or `redis`.
    pub cache_backend: crate::backend::BackendKind,
    /// `M365_MCP_REDIS_URL` (required for the Redis backend; may carry a
    /// password, so it is never logged).
    pub redis_url: Option<String>,
    /// `M365_MCP_REDIS_NAMESPACE` (default `m365mcp`): servers sharing a
    /// namespace share entries, invalidations and the task queue.
    pub redis_namespace: String,
}

/// Reads a boolean variable: `false`, `0`, `no`, `off` are false; anything
/// else set is true; unset is `default`.
pub fn env_flag(name: &str, default: bool) -> bool {
    match std::env::var(name) {
        Ok(v) => !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        ),
        Err(_) => default,
    }
}

impl ServerConfig {
    /// Reads the configuration. Only a malformed value is an error; a
    /// missing client id is reported when sign-in is attempted.
    pub fn from_env() -> anyhow::Result<Self> {
        let paths = Paths::from_env()?;
        let graph = GraphConfig::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
        let auth = AuthConfig::from_env().map_err(|e| e.to_string());
        let cache_backend = match std::env::var("M365_MCP_CACHE_BACKEND")
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "sqlcipher" => crate::backend::BackendKind::Sqlcipher,
            "redis" => crate::backend::BackendKind::Redis,
            other => anyhow::bail!(
                "Invalid M365_MCP_CACHE_BACKEND '{}'. Expected: sqlcipher (default) or redis",
                crate::error::shorten(other)
            ),
        };
        let redis_url = std::env::var("M365_MCP_REDIS_URL")
            .ok()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        if cache_backend == crate::backend::BackendKind::Redis && redis_url.is_none() {
            anyhow::bail!(
                "M365_MCP_CACHE_BACKEND=redis needs M365_MCP_REDIS_URL (e.g. redis://127.0.0.1:6379/0)"
            );
        }
        Ok(ServerConfig {
            cache_backend,
            redis_url,
            redis_namespace: std::env::var("M365_MCP_REDIS_NAMESPACE")
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "m365mcp".into()),
            paths,
            graph,
            auth,
            cache_enabled: env_flag("M365_MCP_CACHE_ENABLED", true),
            warming: env_flag("M365_MCP_CACHE_WARMING", true),
            ttl_scale: match std::env::var("M365_MCP_CACHE_TTL_SCALE") {
                Ok(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 100.0)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "Invalid M365_MCP_CACHE_TTL_SCALE '{}': not a number in (0, 100]. Expected: e.g. 1 (default) or 0.5",
                            crate::error::shorten(&v)
                        )
                    })?,
                Err(_) => 1.0,
            },
        })
    }

    /// The encrypted file holding accounts and refresh tokens.
    pub fn accounts_db(&self) -> std::path::PathBuf {
        self.paths.accounts_db()
    }
}
