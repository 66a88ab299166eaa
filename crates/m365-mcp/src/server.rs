//! The MCP face of the server: initialize, list tools, call tools — all
//! answered from the tool registry — and logging levels, over stdio
//! (default).

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, RequestParamsMeta,
    ServerCapabilities, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, ServiceExt};

use crate::app::App;
use crate::progress::Session;
use crate::rendered::Answer;
use crate::stdio::{Outbox, StdioTransport};
use crate::tools::Registry;

/// What the server tells clients about itself at `initialize`.
const INSTRUCTIONS: &str = "Microsoft 365 through Microsoft Graph: mail, calendar, contacts, OneDrive and search, \
for one or more signed-in accounts. Call account_list first; pass account_id (id or username) to any account \
tool when several accounts are signed in. Reads are served from an encrypted cache when fresh; results carry \
_cache with status and age, and use_cache=false or force_refresh=true fetch from Graph. Tools that delete, \
send or share anonymously require confirm=true.";

/// An MCP server over one [`App`]. Cheap to clone (one per session).
#[derive(Clone)]
pub struct McpServer {
    app: Arc<App>,
    tools: Arc<Registry>,
    session: SessionSlot,
    /// On stdio, where cache hits go to be written as they are
    /// (`crate::stdio`); other transports get them as tool results.
    outbox: Option<Outbox>,
}

/// This session's place among the sessions that get background logging
/// notifications; filled on `initialize` (or a `logging/setLevel` that
/// comes without one). A clone serves another session, so it starts empty.
#[derive(Default)]
struct SessionSlot(OnceLock<Arc<Session>>);

impl Clone for SessionSlot {
    fn clone(&self) -> Self {
        SessionSlot::default()
    }
}

impl McpServer {
    /// A server for `app` with the full tool set.
    pub fn new(app: Arc<App>) -> Self {
        McpServer {
            tools: app.tools.clone(),
            app,
            session: SessionSlot::default(),
            outbox: None,
        }
    }

    /// This session among those that get background notifications,
    /// joining on first use.
    fn session(&self, peer: &Peer<RoleServer>) -> &Arc<Session> {
        self.session
            .0
            .get_or_init(|| self.app.cache_runtime.sessions.join(peer.clone()))
    }

    /// The shared state.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Serves MCP on stdin/stdout until the client closes stdin or the
    /// process gets SIGINT/SIGTERM.
    pub async fn serve_stdio(mut self) -> anyhow::Result<()> {
        let app = self.app.clone();
        let outbox = Outbox::default();
        self.outbox = Some(outbox.clone());
        let running = self
            .serve(StdioTransport::stdio(outbox))
            .await
            .map_err(|e| anyhow::anyhow!("MCP initialisation failed: {e}"))?;
        let cancel = running.cancellation_token();
        // Warming and refreshes start only now: initialize has been answered.
        app.start_background();
        tokio::select! {
            result = running.waiting() => {
                result.map_err(|e| anyhow::anyhow!("MCP session ended with an error: {e}"))?;
                tracing::info!("client closed the connection; shutting down");
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutting down");
                cancel.cancel();
            }
        }
        app.shutdown().await;
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM, naming which.
pub async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

impl ServerHandler for McpServer {
    #[allow(deprecated)] // logging: see `progress`
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(
            Implementation::new("m365-mcp", crate::VERSION).with_title("Microsoft 365 (m365-mcp)"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let result = self.negotiate_initialize(&request)?;
        // From here on the session gets warming's logging notifications
        // (which a server may send before `notifications/initialized`).
        self.session(&context.peer);
        Ok(result)
    }

    #[allow(deprecated)] // logging: see `progress`
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session(&context.peer).set_level(request.level);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.list()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.get(name).map(|t| t.to_tool())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = self.tools.get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {}", crate::error::shorten(&request.name)),
                None,
            ));
        };
        // rmcp moves the request's _meta into the context.
        let token = context
            .meta
            .get_progress_token()
            .or_else(|| request.progress_token());
        // Boxed: rmcp moves the handler's future into a task of its own, and
        // a small future is cheaper to move than the whole call.
        let answer = Box::pin(crate::progress::scope(
            context.peer.clone(),
            token,
            tool.answer(self.app.clone(), request.arguments),
        ))
        .await;
        let result = match (answer, &self.outbox) {
            (Ok(Answer::Cached(hit)), Some(outbox)) => outbox.placeholder(hit),
            (Ok(answer), _) => answer.into_call_result(),
            (Err(result), _) => result,
        };
        Ok(result.into())
    }
}
