//! The tool registry. A tool is a declaration — name, title, annotations,
//! input schema (from its parameter type) — next to a handler that says which
//! Graph call it makes and what it returns. Parsing arguments, turning errors
//! into tool results and listing tools are done once, here.

pub mod account;
pub mod args;
pub mod mail;
pub mod server_info;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ToolError;

/// What a handler returns: a JSON object for the client.
pub type ToolResult = Result<Value, ToolError>;
/// A handler's future.
pub type ToolFuture = Pin<Box<dyn Future<Output = ToolResult> + Send>>;
type Handler = Arc<dyn Fn(Arc<App>, Value) -> ToolFuture + Send + Sync>;

/// The behaviour hints MCP clients show users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hints {
    /// Changes nothing.
    pub read_only: bool,
    /// Deletes or empties something.
    pub destructive: bool,
    /// Calling twice has the effect of calling once.
    pub idempotent: bool,
    /// Reaches outside this machine (Graph); false for local tools.
    pub open_world: bool,
}

/// A read from Graph.
pub const READ: Hints = Hints {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: true,
};
/// A read of local state only.
pub const LOCAL_READ: Hints = Hints {
    open_world: false,
    ..READ
};
/// A change in Graph that is not destructive.
pub const WRITE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};

/// A parameter type for tools that take none.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// One tool: its declaration and its handler.
pub struct ToolDef {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    category: &'static str,
    hints: Hints,
    schema: Arc<JsonObject>,
    handler: Handler,
}

impl ToolDef {
    /// Declares a tool whose arguments deserialize into `P`.
    pub fn new<P, F, Fut>(
        name: &'static str,
        title: &'static str,
        category: &'static str,
        hints: Hints,
        description: &'static str,
        handler: F,
    ) -> Self
    where
        P: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(Arc<App>, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let schema = rmcp::handler::server::common::schema_for_input::<P>()
            .unwrap_or_else(|e| panic!("the input schema of tool {name} is invalid: {e}"));
        let handler = Arc::new(handler);
        ToolDef {
            name,
            title,
            description,
            category,
            hints,
            schema,
            handler: Arc::new(move |app, args| {
                let handler = handler.clone();
                Box::pin(async move {
                    let params: P =
                        serde_json::from_value(args).map_err(|e| ToolError::BadArguments {
                            tool: name.to_string(),
                            detail: e.to_string(),
                        })?;
                    handler(app, params).await
                })
            }),
        }
    }

    /// The tool's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The hints it declares.
    pub fn hints(&self) -> Hints {
        self.hints
    }

    /// The MCP description of the tool.
    pub fn to_tool(&self) -> Tool {
        let annotations = ToolAnnotations::from_raw(
            Some(self.title.to_string()),
            Some(self.hints.read_only),
            Some(self.hints.destructive),
            Some(self.hints.idempotent),
            Some(self.hints.open_world),
        );
        let mut meta = rmcp::model::MetaObject::new();
        meta.insert("category".into(), json!(self.category));
        Tool::new(self.name, self.description, self.schema.clone())
            .with_title(self.title)
            .with_annotations(annotations)
            .with_meta(meta)
    }

    /// Runs the tool, turning every outcome into a tool result.
    pub async fn call(&self, app: Arc<App>, args: Option<JsonObject>) -> CallToolResult {
        let args = Value::Object(args.unwrap_or_default());
        match (self.handler)(app, args).await {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => {
                tracing::info!(tool = self.name, kind = %error_kind(&e), "tool call failed");
                let mut result = CallToolResult::structured_error(e.to_json());
                // The text a person reads first is the message itself.
                result.content = vec![rmcp::model::ContentBlock::text(e.to_string())];
                result
            }
        }
    }
}

fn error_kind(e: &ToolError) -> &'static str {
    match e {
        ToolError::InvalidArgument { .. } | ToolError::BadArguments { .. } => "invalid_argument",
        ToolError::Account(_) => "account",
        ToolError::Graph(_) => "graph",
        ToolError::Unavailable(_) => "unavailable",
    }
}

/// Every tool, by name.
pub struct Registry {
    tools: Vec<ToolDef>,
    by_name: HashMap<&'static str, usize>,
}

impl Registry {
    /// The server's full tool set.
    pub fn build() -> Self {
        let mut tools = Vec::new();
        tools.extend(account::tools());
        tools.extend(server_info::tools());
        tools.extend(mail::tools());
        let by_name = tools.iter().enumerate().map(|(i, t)| (t.name, i)).collect();
        Registry { tools, by_name }
    }

    /// A tool by name.
    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// All tools in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &ToolDef> {
        self.tools.iter()
    }

    /// The MCP list.
    pub fn list(&self) -> Vec<Tool> {
        self.tools.iter().map(ToolDef::to_tool).collect()
    }
}
