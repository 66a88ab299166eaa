//! A local stand-in for Microsoft Graph v1.0 and the Microsoft identity platform.
//!
//! Nothing here talks to Microsoft. The sandbox serves, on `127.0.0.1`, the parts of Graph the
//! m365-mcp server uses (mail folders, messages, attachments, message rules, `$batch`, calendar,
//! contacts, OneDrive, search) and the device-code and refresh-token grants of the identity
//! platform, over a tenant seeded deterministically from [`SandboxConfig::seed`]. Response shapes
//! follow the examples in Microsoft's Graph documentation: `@odata.context`, `@odata.etag`,
//! `@odata.nextLink` paging, Graph's error body, a `request-id` header on every answer, and
//! `429` with `Retry-After` when throttling is injected.
//!
//! Seeded dates are relative to the *anchor*: midnight UTC of the day the sandbox started. Mail
//! spreads over the 180 days before it, events over the month before and two months after, and a
//! weekly recurring meeting falls on the anchor's weekday.
//!
//! ```no_run
//! use m365_sandbox::{Sandbox, SandboxConfig};
//!
//! # async fn demo() -> Result<(), m365_sandbox::SandboxError> {
//! let sandbox = Sandbox::start(SandboxConfig::default()).await?;
//! // Point the Graph client at `sandbox.graph_url()` and sign-in at `sandbox.authority_url()`
//! // with `sandbox.client_id()`; the first device-code flow signs in the first seeded user.
//! let before = sandbox.request_count();
//! // ... run the code under test ...
//! assert!(sandbox.request_count() >= before);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Invariant: the sandbox never reaches the network beyond its own listening socket, and never
//! logs request bodies or tokens.

mod app;
mod config;
mod control;
mod graph;
mod identity;
mod odata;
mod reply;
mod seed;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use app::{CLIENT_ID, RequestCounts, RequestLogEntry, Surface};
pub use config::{FaultConfig, Latency, SandboxConfig, TenantSize};
pub use state::{CONSUMER_TENANT_ID, SandboxUser, WORK_TENANT_ID};

use app::{App, lock};
use state::{DeviceState, World};

/// Largest request body accepted (uploads included).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What can go wrong when starting or driving a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The listening socket could not be opened.
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// Port asked for.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("sandbox server failed: {0}")]
    Serve(std::io::Error),
    /// No device-code flow has that user code.
    #[error("no pending device-code flow has the user code '{0}'")]
    UnknownUserCode(String),
    /// No seeded user has that username.
    #[error("no seeded user is named '{0}'")]
    UnknownUser(String),
}

/// Starts sandboxes.
pub struct Sandbox;

impl Sandbox {
    /// Seeds the tenant and starts serving on `127.0.0.1:{config.port}` (0 picks a free port).
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| SandboxError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            port: config.port,
            source,
        })?;
        let app = Arc::new(build_app(&config, addr));
        let router = Router::new()
            .fallback(app::entry)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(app.clone());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        tracing::info!(%addr, "sandbox listening");
        Ok(SandboxHandle {
            app,
            addr,
            stop: Some(stop_tx),
            server: Some(server),
        })
    }
}

fn build_app(config: &SandboxConfig, addr: SocketAddr) -> App {
    let now = OffsetDateTime::now_utc();
    let anchor = now.replace_time(time::Time::MIDNIGHT);
    let mut world = World::new(config.seed, anchor);
    seed::seed_world(&mut world, &config.tenant);
    App::new(
        world,
        config.seed,
        config.latency,
        config.faults,
        format!("http://{addr}"),
        config.auto_approve_device_code,
    )
}

/// A running sandbox. Dropping it stops the server too; [`SandboxHandle::shutdown`] waits for it.
pub struct SandboxHandle {
    app: Arc<App>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl SandboxHandle {
    /// Address the sandbox listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graph base URL, e.g. `http://127.0.0.1:PORT/v1.0`.
    pub fn graph_url(&self) -> String {
        self.app.graph_base()
    }

    /// Identity platform authority, e.g. `http://127.0.0.1:PORT`; the token endpoint is
    /// `{authority}/{tenant}/oauth2/v2.0/token`, the device-code endpoint
    /// `{authority}/{tenant}/oauth2/v2.0/devicecode`.
    pub fn authority_url(&self) -> String {
        self.app.origin.clone()
    }

    /// The application (client) id the identity platform accepts.
    pub fn client_id(&self) -> String {
        self.app.client_id.clone()
    }

    /// The seeded users: a work account first, then a personal account, then a second work
    /// account.
    pub fn users(&self) -> Vec<SandboxUser> {
        lock(&self.app.world)
            .users
            .iter()
            .map(|u| u.user.clone())
            .collect()
    }

    /// HTTP requests to the Graph surface since start or the last reset (a `$batch` counts once).
    pub fn request_count(&self) -> u64 {
        self.app.counts().graph
    }

    /// All counters: Graph requests, requests inside `$batch` calls, identity requests.
    pub fn counts(&self) -> RequestCounts {
        self.app.counts()
    }

    /// The request log (method, path and query, status, user; never bodies).
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        lock(&self.app.log).clone()
    }

    /// Zeroes the counters and clears the log.
    pub fn reset_counters(&self) {
        self.app.reset_counters();
    }

    /// Changes the latency added to each Graph request.
    pub fn set_latency(&self, latency: Latency) {
        lock(&self.app.knobs).latency = latency;
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.app.knobs).faults = faults;
    }

    /// While down, every Graph request is answered `503 serviceNotAvailable` with `Retry-After`.
    pub fn set_down(&self, down: bool) {
        lock(&self.app.knobs).down = down;
    }

    /// Turns automatic device-code approval on or off.
    pub fn set_auto_approve(&self, on: bool) {
        self.app.auto_approve.store(on, Ordering::SeqCst);
    }

    /// Approves the device-code flow showing `user_code` for the seeded user `username`.
    pub fn approve_device_code(&self, user_code: &str, username: &str) -> Result<(), SandboxError> {
        approve(&self.app, user_code, username)
    }

    /// Declines the device-code flow showing `user_code` (its next poll gets
    /// `authorization_declined`).
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), SandboxError> {
        decline(&self.app, user_code)
    }

    /// Makes every issued access token expire now (the next Graph call with one gets 401).
    pub fn expire_access_tokens(&self) {
        expire_tokens(&self.app);
    }

    /// Revokes every refresh token of `username` (the next refresh gets `invalid_grant`).
    pub fn revoke_refresh_tokens(&self, username: &str) {
        revoke(&self.app, username);
    }

    /// Issues tokens for a seeded user without a device-code flow; returns the token response
    /// JSON (`access_token`, `refresh_token`, `id_token`, ...).
    pub fn issue_tokens(&self, username: &str) -> Result<serde_json::Value, SandboxError> {
        let mut world = lock(&self.app.world);
        let index = world
            .user_index(username)
            .ok_or_else(|| SandboxError::UnknownUser(username.to_string()))?;
        Ok(identity::issue_tokens(&self.app, &mut world, index, ""))
    }

    /// A snapshot of one user's mailbox, calendar, contacts and drive, as JSON
    /// (`{"messages": [...], "mailFolders": [...], "rules": [...], "events": [...], ...}`),
    /// so tests can observe the effect of writes.
    pub fn user_state(&self, username: &str) -> Option<serde_json::Value> {
        let world = lock(&self.app.world);
        let index = world.user_index(username)?;
        let data = &world.users[index];
        let clean =
            |list: &Vec<serde_json::Value>| list.iter().map(state::public).collect::<Vec<_>>();
        Some(serde_json::json!({
            "user": data.user,
            "mailFolders": data.folders.iter().map(|f| {
                let mut out = state::public(f);
                if let (Some(map), Some(wk)) = (out.as_object_mut(), f.get("_wellKnownName")) {
                    map.insert("wellKnownName".into(), wk.clone());
                }
                out
            }).collect::<Vec<_>>(),
            "messages": clean(&data.messages),
            "rules": clean(&data.rules),
            "calendars": clean(&data.calendars),
            "events": clean(&data.events),
            "contactFolders": clean(&data.contact_folders),
            "contacts": clean(&data.contacts),
            "driveItems": clean(&data.drive.items),
        }))
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) fn approve(app: &App, user_code: &str, username: &str) -> Result<(), SandboxError> {
    let mut world = lock(&app.world);
    let user = if username.is_empty() {
        world.signed_in.iter().position(|s| !s).unwrap_or(0)
    } else {
        world
            .user_index(username)
            .ok_or_else(|| SandboxError::UnknownUser(username.to_string()))?
    };
    let flow = world
        .device_flows
        .iter_mut()
        .find(|f| {
            f.user_code.eq_ignore_ascii_case(user_code)
                && matches!(f.state, DeviceState::Pending { .. })
        })
        .ok_or_else(|| SandboxError::UnknownUserCode(user_code.to_string()))?;
    flow.state = DeviceState::Approved(user);
    Ok(())
}

pub(crate) fn decline(app: &App, user_code: &str) -> Result<(), SandboxError> {
    let mut world = lock(&app.world);
    let flow = world
        .device_flows
        .iter_mut()
        .find(|f| {
            f.user_code.eq_ignore_ascii_case(user_code)
                && matches!(f.state, DeviceState::Pending { .. })
        })
        .ok_or_else(|| SandboxError::UnknownUserCode(user_code.to_string()))?;
    flow.state = DeviceState::Declined;
    Ok(())
}

pub(crate) fn expire_tokens(app: &App) {
    let now = Instant::now();
    for grant in lock(&app.world).access_tokens.values_mut() {
        grant.expires_at = now;
    }
}

pub(crate) fn revoke(app: &App, username: &str) {
    let mut world = lock(&app.world);
    if let Some(index) = world.user_index(username) {
        world.refresh_tokens.retain(|_, user| *user != index);
    }
}

/// Runs a sandbox until Ctrl-C, printing its URLs and users to stderr; for a CLI subcommand.
pub async fn run_standalone(mut config: SandboxConfig, port: u16) -> Result<(), SandboxError> {
    config.port = port;
    let handle = Sandbox::start(config).await?;
    eprintln!("Graph:     {}", handle.graph_url());
    eprintln!("Authority: {}", handle.authority_url());
    eprintln!("Client id: {}", handle.client_id());
    for user in handle.users() {
        eprintln!(
            "User:      {} ({}, {})",
            user.username,
            if user.personal {
                "personal"
            } else {
                "work/school"
            },
            user.account_id()
        );
    }
    eprintln!(
        "Control:   {}/_sandbox/counts  (Ctrl-C stops)",
        handle.authority_url()
    );
    tokio::signal::ctrl_c().await.map_err(SandboxError::Serve)?;
    handle.shutdown().await;
    Ok(())
}
