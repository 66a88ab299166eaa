//! The m365-mcp server: Microsoft 365 tools over MCP, built on the Graph
//! client (`m365-graph`) and the encrypted store (`m365-store`).
//!
//! - [`config`] reads the environment once;
//! - [`accounts`] signs accounts in and out and hands Graph its tokens;
//! - [`tools`] is the tool registry: each tool is a declaration (name,
//!   schema, annotations) next to a handler that says which Graph call it
//!   makes;
//! - [`server`] answers MCP requests from that registry;
//! - the `cli` modules are the command line's subcommands.
//!
//! Nothing here writes to stdout except the MCP transport (stdio mode) and
//! the command line's own reports.

pub mod accounts;
pub mod app;
pub mod backend;
pub mod cache;
pub mod cache_cmd;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod error;
pub mod http;
pub mod logging;
pub mod progress;
pub mod rendered;
pub mod server;
pub mod stdio;
pub mod tools;

pub use app::App;
pub use config::ServerConfig;
pub use error::ToolError;
pub use server::McpServer;

/// The package version, as `server_get_version` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
