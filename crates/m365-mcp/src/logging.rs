//! Logging: `tracing` to stderr (stdout carries only the MCP protocol), and
//! optionally to daily-rotated files with bounded retention.
//!
//! Above debug level nothing logged names a token, key, message subject or
//! body, search query or file content: call sites log ids and counts only.

use std::path::PathBuf;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Log files kept when logging to a directory.
const KEEP_LOG_FILES: usize = 7;

/// How to log, from the environment and flags.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `MCP_LOG_LEVEL` (error, warn, info, debug, trace, or an env-filter directive).
    pub level: String,
    /// `MCP_LOG_FORMAT=json` for JSON lines.
    pub json: bool,
    /// `MCP_LOG_DIR`: also write rotating files there (never relative to the
    /// working directory: a relative value is resolved under the data dir).
    pub dir: Option<PathBuf>,
}

impl LogConfig {
    /// Reads `MCP_LOG_LEVEL`, `MCP_LOG_FORMAT` and `MCP_LOG_DIR`.
    pub fn from_env(data_dir: &std::path::Path) -> Self {
        let level = std::env::var("MCP_LOG_LEVEL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "info".to_string());
        let json = std::env::var("MCP_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
        let dir = std::env::var_os("MCP_LOG_DIR")
            .filter(|v| !v.is_empty())
            .map(|v| {
                let p = PathBuf::from(v);
                if p.is_absolute() { p } else { data_dir.join(p) }
            });
        LogConfig { level, json, dir }
    }
}

/// Installs the global subscriber. Returns a guard that flushes file logs on drop.
pub fn init(
    config: &LogConfig,
) -> anyhow::Result<Option<tracing_appender::non_blocking::WorkerGuard>> {
    let filter = EnvFilter::try_new(config.level.to_ascii_lowercase())
        .or_else(|_| EnvFilter::try_new("info"))
        .map_err(|e| anyhow::anyhow!("invalid MCP_LOG_LEVEL: {e}"))?;
    let (file_writer, guard) = match &config.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!("cannot create log directory {}: {e}", dir.display())
            })?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("m365-mcp")
                .filename_suffix("log")
                .max_log_files(KEEP_LOG_FILES)
                .build(dir)
                .map_err(|e| anyhow::anyhow!("cannot open log files in {}: {e}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            (Some(writer), Some(guard))
        }
        None => (None, None),
    };
    let registry = tracing_subscriber::registry().with(filter);
    match (config.json, file_writer) {
        (true, Some(file)) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr.and(file)),
            )
            .try_init(),
        (true, None) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        (false, Some(file)) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr.and(file)),
            )
            .try_init(),
        (false, None) => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    }
    .map_err(|e| anyhow::anyhow!("logging already initialised: {e}"))?;
    Ok(guard)
}
