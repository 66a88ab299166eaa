//! `server_get_version`: what is running, and whether its cache is on.

use std::sync::Arc;

use serde_json::json;

use super::{LOCAL_READ, NoParams, ToolDef, ToolResult};
use crate::app::{App, CacheState};

/// The server tools.
pub fn tools() -> Vec<ToolDef> {
    vec![ToolDef::local(
        "server_get_version",
        "Server version",
        "server",
        LOCAL_READ,
        "The m365-mcp package name and version, the protocol transport, and whether the encrypted cache is on.",
        version,
    )]
}

async fn version(app: Arc<App>, _: NoParams) -> ToolResult {
    let cache = match &app.cache_state {
        CacheState::Open => json!({"state": "open", "encrypted": true}),
        CacheState::Disabled => json!({"state": "disabled"}),
        CacheState::Unavailable(reason) => json!({"state": "bypass", "reason": reason}),
    };
    Ok(json!({
        "package": "m365-mcp",
        "version": crate::VERSION,
        "implementation": "rust",
        "cache": cache,
        "uptime_seconds": app.started.elapsed().as_secs(),
    }))
}
