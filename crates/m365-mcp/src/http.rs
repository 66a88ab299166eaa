//! MCP over Streamable HTTP, for teams that run one server for many
//! clients: rmcp's Streamable HTTP service (sessions, concurrent clients) on
//! axum, behind a bearer token, with DNS-rebinding protection (Host and
//! Origin checks), an unauthenticated `/health`, and the cache dashboard.
//!
//! Every route passes the Host/Origin check; the MCP endpoint and the
//! dashboard also need the bearer token (`Authorization: Bearer …`), or for
//! the dashboard in a browser, the session cookie its login form sets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::app::{App, CacheState};
use crate::dashboard::{self, Dashboard};
use crate::server::McpServer;

/// The shortest bearer token accepted.
pub const MIN_TOKEN_CHARS: usize = 32;

/// How the MCP endpoint and the dashboard are protected.
#[derive(Clone)]
pub enum AuthMode {
    /// `Authorization: Bearer <MCP_AUTH_TOKEN>`.
    Bearer(BearerToken),
    /// No authentication (`MCP_AUTH_METHOD=none`, only with
    /// `MCP_ALLOW_INSECURE=true`).
    None,
}

impl AuthMode {
    /// `bearer` or `none`.
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::Bearer(_) => "bearer",
            AuthMode::None => "none",
        }
    }
}

/// A bearer token, kept only as its SHA-256 digest: comparisons hash the
/// presented token and compare digests in constant time, so neither the
/// token's content nor its length leaks through timing, and the token itself
/// is not held in memory after start-up.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    /// Checks and keeps a token. Refuses tokens shorter than
    /// [`MIN_TOKEN_CHARS`] or with characters outside visible ASCII.
    pub fn new(token: &str) -> anyhow::Result<BearerToken> {
        let chars = token.chars().count();
        if chars < MIN_TOKEN_CHARS {
            anyhow::bail!(
                "MCP_AUTH_TOKEN is {chars} characters long; at least {MIN_TOKEN_CHARS} are required. \
                 Make one with: openssl rand -hex 32"
            );
        }
        if !token.chars().all(|c| c.is_ascii_graphic()) {
            anyhow::bail!(
                "MCP_AUTH_TOKEN contains spaces or characters outside visible ASCII. \
                 Make one with: openssl rand -hex 32"
            );
        }
        Ok(BearerToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(&self.digest).into()
    }
}

/// The HTTP server's settings (`MCP_*` environment variables).
#[derive(Clone)]
pub struct HttpOptions {
    /// Address to bind (`MCP_HOST`, default 127.0.0.1).
    pub host: String,
    /// Port (`MCP_PORT`, default 8000; 0 picks a free one).
    pub port: u16,
    /// The MCP endpoint (`MCP_PATH`, default `/mcp`).
    pub path: String,
    /// Authentication.
    pub auth: AuthMode,
    /// Host names (or `host:port`) requests may address
    /// (`MCP_ALLOWED_HOSTS`; loopback names and the bound host by default).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed besides the server's own
    /// (`MCP_ALLOWED_ORIGINS`, e.g. `https://app.example.com`).
    pub allowed_origins: Vec<String>,
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn env_true(name: &str) -> bool {
    matches!(
        std::env::var(name)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
            .as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Whether `host` names only this machine.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl HttpOptions {
    /// Reads the `MCP_*` variables; `host` and `port` come from the command
    /// line (which falls back to `MCP_HOST`/`MCP_PORT`).
    pub fn from_env(host: String, port: u16) -> anyhow::Result<HttpOptions> {
        let path = std::env::var("MCP_PATH").unwrap_or_else(|_| "/mcp".into());
        if !path.starts_with('/')
            || path.len() < 2
            || path.contains(char::is_whitespace)
            || ["/health", "/dashboard"]
                .iter()
                .any(|reserved| path == *reserved || path.starts_with(&format!("{reserved}/")))
        {
            anyhow::bail!(
                "Invalid MCP_PATH '{path}': must start with '/', name a path of its own and not be /health or /dashboard. Expected: e.g. /mcp"
            );
        }
        let method = std::env::var("MCP_AUTH_METHOD")
            .unwrap_or_else(|_| "bearer".into())
            .trim()
            .to_ascii_lowercase();
        let auth = match method.as_str() {
            "bearer" => match std::env::var("MCP_AUTH_TOKEN") {
                Ok(token) if !token.is_empty() => AuthMode::Bearer(BearerToken::new(&token)?),
                _ => anyhow::bail!(
                    "HTTP mode needs MCP_AUTH_TOKEN (bearer authentication, at least {MIN_TOKEN_CHARS} characters; \
                     make one with: openssl rand -hex 32). To run without authentication on a trusted machine, \
                     set MCP_AUTH_METHOD=none and MCP_ALLOW_INSECURE=true."
                ),
            },
            "none" => {
                if !env_true("MCP_ALLOW_INSECURE") {
                    anyhow::bail!(
                        "MCP_AUTH_METHOD=none serves mail, calendar and files to anyone who can reach the port; \
                         it needs MCP_ALLOW_INSECURE=true. Prefer MCP_AUTH_METHOD=bearer with MCP_AUTH_TOKEN."
                    );
                }
                AuthMode::None
            }
            other => anyhow::bail!("Invalid MCP_AUTH_METHOD '{other}'. Expected: bearer or none"),
        };
        let mut allowed_hosts = env_list("MCP_ALLOWED_HOSTS");
        if allowed_hosts.is_empty() {
            allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
            let bound = host.trim_start_matches('[').trim_end_matches(']');
            let wildcard = bound
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            if !wildcard && !is_loopback(bound) {
                allowed_hosts.push(bound.to_ascii_lowercase());
            }
        }
        Ok(HttpOptions {
            host,
            port,
            path,
            auth,
            allowed_hosts,
            allowed_origins: env_list("MCP_ALLOWED_ORIGINS"),
        })
    }
}

/// Shared state of the HTTP routes.
#[derive(Clone)]
pub struct HttpState {
    /// The server's state.
    pub app: Arc<App>,
    /// Authentication.
    pub auth: AuthMode,
    /// Allowed Host names.
    pub allowed_hosts: Arc<Vec<String>>,
    /// Allowed cross-site Origins.
    pub allowed_origins: Arc<Vec<String>>,
    /// Dashboard history and browser sessions.
    pub dashboard: Arc<Dashboard>,
    sessions: Arc<Mutex<HashMap<[u8; 32], Instant>>>,
}

/// How long a dashboard login lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "m365_mcp_dashboard";

impl HttpState {
    fn new_session(&self) -> String {
        let id: [u8; 32] = rand::random();
        let value = hex::encode(id);
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, expires| *expires > now);
        sessions.insert(
            Sha256::digest(value.as_bytes()).into(),
            now + SESSION_LIFETIME,
        );
        value
    }

    fn session_valid(&self, value: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&digest)
            .is_some_and(|expires| *expires > Instant::now())
    }

    fn end_session(&self, value: &str) {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest);
    }
}

/// The routes, ready to serve, and the token that ends every MCP session.
pub fn router(app: Arc<App>, options: &HttpOptions) -> (Router, CancellationToken) {
    let cancel = CancellationToken::new();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel.clone())
        // Host and Origin are checked for every route by `guard` below.
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let factory_app = app.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(McpServer::new(factory_app.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );
    let dashboard = Arc::new(Dashboard::new());
    dashboard.start_sampler(app.clone(), Duration::from_secs(10));
    let state = HttpState {
        dashboard,
        app,
        auth: options.auth.clone(),
        allowed_hosts: Arc::new(options.allowed_hosts.clone()),
        allowed_origins: Arc::new(options.allowed_origins.clone()),
        sessions: Arc::default(),
    };
    let protected = Router::new()
        .route_service(&options.path, mcp)
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/data", get(dashboard::data))
        .route("/dashboard/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let router = Router::new()
        .route("/health", get(health))
        .route("/dashboard/login", post(login))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state);
    (router, cancel)
}

/// Serves until `shutdown` resolves: binds, prints the address on stderr
/// (`listening on http://…`), runs the background worker, and on shutdown
/// ends the MCP sessions and stops the worker.
pub async fn serve(
    app: Arc<App>,
    options: HttpOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", options.host, options.port))?;
    let addr: SocketAddr = listener.local_addr()?;
    if matches!(options.auth, AuthMode::None) && !is_loopback(&options.host) {
        tracing::warn!(
            host = %options.host,
            "SERVING WITHOUT AUTHENTICATION BEYOND THIS MACHINE: anyone who can reach this port can read \
             and send mail as the signed-in accounts. Set MCP_AUTH_METHOD=bearer and MCP_AUTH_TOKEN."
        );
        eprintln!(
            "WARNING: no authentication and bound to {} — anyone who can reach the port can act as the signed-in accounts.",
            options.host
        );
    }
    let (router, cancel) = router(app.clone(), &options);
    app.start_background();
    let url = format!("http://{addr}{}", options.path);
    tracing::info!(%url, auth = options.auth.name(), "serving MCP over Streamable HTTP");
    eprintln!("listening on {url}");
    let stop = cancel.clone();
    // Answers go out in several small writes (headers, event, end of
    // stream); without TCP_NODELAY, Nagle's algorithm meets the client's
    // delayed ACK and each answer waits ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await?;
    app.shutdown().await;
    Ok(())
}

fn json_error(status: StatusCode, error: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error, "detail": detail}).to_string(),
    )
        .into_response()
}

fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// DNS-rebinding protection for every route: the Host must be one this
/// server answers to, and a browser Origin must be the server's own or an
/// allowed one.
async fn guard(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let authority = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        });
    let Some(authority) = authority else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing Host header",
        );
    };
    let name = host_name(&authority);
    let host_ok = state
        .allowed_hosts
        .iter()
        .any(|allowed| allowed == &authority || allowed == name);
    if !host_ok {
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Host not allowed (set MCP_ALLOWED_HOSTS to serve other names)",
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
        let same_origin =
            origin == format!("http://{authority}") || origin == format!("https://{authority}");
        if !same_origin && !state.allowed_origins.contains(&origin) {
            return json_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Origin not allowed (set MCP_ALLOWED_ORIGINS to allow a browser application)",
            );
        }
    }
    next.run(request).await
}

fn unauthorized(detail: &str, invalid: bool, html: bool) -> Response {
    let challenge = if invalid {
        "Bearer realm=\"m365-mcp\", error=\"invalid_token\""
    } else {
        "Bearer realm=\"m365-mcp\""
    };
    let mut response = if html {
        (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            dashboard::login_page(invalid.then_some(detail)),
        )
            .into_response()
    } else {
        json_error(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Bearer authentication for the MCP endpoint and the dashboard (which also
/// accepts its login cookie).
async fn authenticate(State(state): State<HttpState>, request: Request, next: Next) -> Response {
    let AuthMode::Bearer(token) = &state.auth else {
        return next.run(request).await;
    };
    let is_dashboard = request.uri().path().starts_with("/dashboard");
    let wants_html = is_dashboard
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    match request.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            let Some(presented) = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
            else {
                return unauthorized(
                    "Invalid Authorization header format. Expected: Bearer <token>",
                    true,
                    wants_html,
                );
            };
            if !token.matches(presented.trim()) {
                return unauthorized("Invalid authentication token", true, wants_html);
            }
        }
        None => {
            let session_ok = is_dashboard
                && cookie(request.headers(), SESSION_COOKIE)
                    .is_some_and(|v| state.session_valid(v));
            if !session_ok {
                return unauthorized("Missing Authorization header", false, wants_html);
            }
        }
    }
    next.run(request).await
}

/// Dashboard login: a form posts the bearer token; a correct one gets a
/// session cookie (random, HttpOnly, SameSite=Strict, for /dashboard only).
async fn login(
    State(state): State<HttpState>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let ok = match &state.auth {
        AuthMode::Bearer(token) => form.get("token").is_some_and(|t| token.matches(t.trim())),
        AuthMode::None => true,
    };
    if !ok {
        // Slows guessing; a 32-character token is out of reach anyway.
        tokio::time::sleep(Duration::from_millis(250)).await;
        return unauthorized("Invalid authentication token", true, true);
    }
    let session = state.new_session();
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie(&headers, SESSION_COOKIE) {
        state.end_session(value);
    }
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "m365_mcp_dashboard=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0",
        ),
    );
    response
}

/// `/health`: unauthenticated, and so without anything secret or personal.
async fn health(State(state): State<HttpState>) -> Response {
    let app = &state.app;
    let (cache_state, reason) = match &app.cache_state {
        CacheState::Open if app.cache.as_ref().is_some_and(|c| c.is_down()) => {
            ("bypass", Some("unreachable"))
        }
        CacheState::Open => ("open", None),
        CacheState::Disabled => ("bypass", Some("disabled")),
        CacheState::Unavailable(_) => ("bypass", Some("unavailable")),
    };
    let warming = crate::cache::warming_status(app);
    let accounts = app.accounts.list().map(|a| a.len()).unwrap_or(0);
    let body = json!({
        "status": "ok",
        "version": crate::VERSION,
        "transport": "http",
        "auth": state.auth.name(),
        "cache": {
            "state": cache_state,
            "reason": reason,
            "backend": app.cache.as_ref().map(|c| c.kind().as_str()),
            "encrypted": app.cache.as_ref().map(|c| c.is_encrypted()),
        },
        "accounts": accounts,
        "worker": if app.worker_running() { "running" } else { "stopped" },
        "warming": {
            "enabled": warming.enabled,
            "is_warming": warming.is_warming,
            "progress_percent": warming.progress_percent,
        },
        "uptime_seconds": app.started.elapsed().as_secs(),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "not_found", "Not Found")
}
