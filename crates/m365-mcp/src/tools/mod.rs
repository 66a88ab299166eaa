//! The tool registry. A tool is a declaration — name, title, annotations,
//! input schema (from its parameter type), whether it acts for an account,
//! and its cache behaviour — next to a handler that says which Graph call it
//! makes and what it returns.
//!
//! Everything common is done here, once, for every tool: the `account_id`,
//! `use_cache` and `force_refresh` parameters (added to the schema and
//! resolved before the handler runs), argument parsing, the cache layer
//! (reads served from and stored into the encrypted cache, writes
//! invalidating what they changed) and turning errors into tool results.
//! Adding a tool adds a declaration, never cache code.

pub mod account;
pub mod args;
pub mod cache_tools;
pub mod calendar;
pub mod contacts;
pub mod files;
pub mod files_local;
pub mod folders;
pub mod item_args;
pub mod listing;
pub mod mail;
pub mod mail_folders;
pub mod mail_rules;
pub mod mail_write;
pub mod search;
pub mod server_info;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use m365_store::{AccountRecord, Dependencies, Scope};
use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::app::App;
use crate::error::ToolError;
use crate::rendered::Answer;

/// What a handler returns: a JSON object for the client.
pub type ToolResult = Result<Value, ToolError>;
/// A handler's future.
pub type ToolFuture = Pin<Box<dyn Future<Output = ToolResult> + Send>>;
type LocalHandler = Arc<dyn Fn(Arc<App>, Value) -> ToolFuture + Send + Sync>;
type AccountHandler = Arc<dyn Fn(Arc<App>, AccountRecord, Value) -> ToolFuture + Send + Sync>;
type Canonicalize = Arc<dyn Fn(Value) -> Result<Value, ToolError> + Send + Sync>;

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
/// A change of local state only.
pub const LOCAL_WRITE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: false,
};
/// A change in Graph that is not destructive and not idempotent.
pub const WRITE: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};
/// A change in Graph that gives the same result when repeated (updates).
pub const UPDATE: Hints = Hints {
    idempotent: true,
    ..WRITE
};
/// A deletion or emptying in Graph.
pub const DESTRUCTIVE: Hints = Hints {
    destructive: true,
    idempotent: true,
    ..WRITE
};

/// A parameter type for tools that take none.
#[derive(Debug, Default, serde::Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// A cache entry a write invalidates, within the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The cached tool (resource type).
    pub resource: &'static str,
    /// Which of its entries.
    pub scope: Scope,
}

impl Target {
    /// Every entry of `resource`.
    pub fn all(resource: &'static str) -> Self {
        Target {
            resource,
            scope: Scope::All,
        }
    }
    /// Entries of `resource` that show item `id`.
    pub fn item(resource: &'static str, id: impl Into<String>) -> Self {
        Target {
            resource,
            scope: Scope::Item(id.into()),
        }
    }
    /// Entries of `resource` that list container `id`.
    pub fn container(resource: &'static str, id: impl Into<String>) -> Self {
        Target {
            resource,
            scope: Scope::Container(id.into()),
        }
    }
}

/// How a tool relates to the cache.
#[derive(Clone, Copy)]
pub enum Cache {
    /// Not cached, invalidates nothing.
    None,
    /// A cached read; the resource type is the tool's name. `deps` names the
    /// ids the entry depends on, from the canonical parameters and the
    /// result (a listing depends on every item it lists).
    Read {
        /// Dependencies of an entry, from its canonical parameters and result.
        deps: fn(&Value, &Value) -> Dependencies,
    },
    /// A write; `invalidates` names what it changed, from its canonical
    /// parameters and its result. Runs after success, before answering.
    Write {
        /// Targets to invalidate.
        invalidates: fn(&Value, &Value) -> Vec<Target>,
    },
}

/// No dependencies beyond account and resource type.
pub fn no_deps(_: &Value, _: &Value) -> Dependencies {
    Dependencies::none()
}

/// The ids of a result's `value` items (what a listing lists).
pub fn listed_ids(result: &Value) -> impl Iterator<Item = &str> {
    result["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
}

enum Kind {
    Local(LocalHandler),
    Account {
        canonicalize: Canonicalize,
        handler: AccountHandler,
        cache: Cache,
    },
}

/// One tool: its declaration and its handler.
pub struct ToolDef {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    category: &'static str,
    hints: Hints,
    schema: Arc<JsonObject>,
    kind: Kind,
}

fn schema_of<P: JsonSchema + 'static>(name: &str) -> JsonObject {
    rmcp::handler::server::common::schema_for_input::<P>()
        .unwrap_or_else(|e| panic!("the input schema of tool {name} is invalid: {e}"))
        .as_ref()
        .clone()
}

fn parse<P: DeserializeOwned>(tool: &str, args: Value) -> Result<P, ToolError> {
    serde_json::from_value(args).map_err(|e| ToolError::BadArguments {
        tool: tool.to_string(),
        detail: e.to_string(),
    })
}

fn add_property(schema: &mut JsonObject, name: &str, property: Value) {
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.insert(name.to_string(), property);
    } else {
        schema.insert("properties".into(), json!({ name: property }));
    }
}

impl ToolDef {
    /// A tool on local state (no account).
    pub fn local<P, F, Fut>(
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
        let handler = Arc::new(handler);
        ToolDef {
            name,
            title,
            description,
            category,
            hints,
            schema: Arc::new(schema_of::<P>(name)),
            kind: Kind::Local(Arc::new(move |app, args| {
                let handler = handler.clone();
                Box::pin(async move { handler(app, parse::<P>(name, args)?).await })
            })),
        }
    }

    /// A tool acting for one account. `account_id` is added to its schema
    /// and resolved before `handler` runs; a cached read also gets
    /// `use_cache` and `force_refresh`.
    pub fn account<P, F, Fut>(
        name: &'static str,
        title: &'static str,
        category: &'static str,
        hints: Hints,
        cache: Cache,
        description: &'static str,
        handler: F,
    ) -> Self
    where
        P: DeserializeOwned + Serialize + JsonSchema + Send + 'static,
        F: Fn(Arc<App>, AccountRecord, P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let mut schema = schema_of::<P>(name);
        add_property(
            &mut schema,
            "account_id",
            json!({"type": "string", "description": "Account id or username (from account_list); may be omitted when exactly one account is signed in."}),
        );
        if matches!(cache, Cache::Read { .. }) {
            add_property(
                &mut schema,
                "use_cache",
                json!({"type": "boolean", "default": true, "description": "Serve from the encrypted cache when possible; false always asks Graph and stores nothing."}),
            );
            add_property(
                &mut schema,
                "force_refresh",
                json!({"type": "boolean", "default": false, "description": "Ask Graph now and refresh the cached copy."}),
            );
        }
        let handler = Arc::new(handler);
        ToolDef {
            name,
            title,
            description,
            category,
            hints,
            schema: Arc::new(schema),
            kind: Kind::Account {
                // Parsing then serialising fills every default in, so an
                // omitted default and an explicit one make the same key.
                canonicalize: Arc::new(move |args| {
                    let params = parse::<P>(name, args)?;
                    serde_json::to_value(&params).map_err(|e| ToolError::BadArguments {
                        tool: name.to_string(),
                        detail: e.to_string(),
                    })
                }),
                handler: Arc::new(move |app, account, canonical| {
                    let handler = handler.clone();
                    Box::pin(
                        async move { handler(app, account, parse::<P>(name, canonical)?).await },
                    )
                }),
                cache,
            },
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

    /// True for a cached read.
    pub fn is_cached_read(&self) -> bool {
        matches!(
            self.kind,
            Kind::Account {
                cache: Cache::Read { .. },
                ..
            }
        )
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
        match self.answer(app, args).await {
            Ok(answer) => answer.into_call_result(),
            Err(result) => result,
        }
    }

    /// Runs the tool: its answer (a cache hit stays ready to send), or the
    /// error as a tool result.
    pub async fn answer(
        &self,
        app: Arc<App>,
        args: Option<JsonObject>,
    ) -> Result<Answer, CallToolResult> {
        self.run(app, args.unwrap_or_default()).await.map_err(|e| {
            tracing::info!(tool = self.name, kind = %error_kind(&e), "tool call failed");
            let mut result = CallToolResult::structured_error(e.to_json());
            // The text a person reads first is the message itself.
            result.content = vec![rmcp::model::ContentBlock::text(e.to_string())];
            result
        })
    }

    async fn run(&self, app: Arc<App>, mut args: JsonObject) -> Result<Answer, ToolError> {
        match &self.kind {
            Kind::Local(handler) => handler(app, Value::Object(args)).await.map(Answer::from),
            Kind::Account {
                canonicalize,
                handler,
                cache,
            } => {
                let account_id = take_string(&mut args, "account_id")?;
                let flags = if matches!(cache, Cache::Read { .. }) {
                    crate::cache::ReadFlags {
                        use_cache: take_bool(&mut args, "use_cache", true)?,
                        force_refresh: take_bool(&mut args, "force_refresh", false)?,
                    }
                } else {
                    crate::cache::ReadFlags::default()
                };
                // Arguments are checked before anything else, so bad input
                // never costs a Graph call or a cache lookup.
                let canonical = canonicalize(Value::Object(args))?;
                let account = app.accounts.resolve(account_id.as_deref())?;
                match cache {
                    Cache::None => handler(app, account, canonical).await.map(Answer::from),
                    Cache::Read { deps } => {
                        crate::cache::cached_read(
                            &app,
                            self.name,
                            &account,
                            canonical,
                            *deps,
                            flags,
                            handler.clone(),
                        )
                        .await
                    }
                    Cache::Write { invalidates } => {
                        let result =
                            handler(app.clone(), account.clone(), canonical.clone()).await?;
                        crate::cache::invalidate(
                            &app,
                            &account.account_id,
                            self.name,
                            invalidates(&canonical, &result),
                        )
                        .await;
                        Ok(result.into())
                    }
                }
            }
        }
    }

    /// Runs a cached read's Graph call for a background refresh or warming,
    /// storing the result. Errors for tools that are not cached reads.
    pub async fn refresh(
        &self,
        app: Arc<App>,
        account: AccountRecord,
        canonical: Value,
    ) -> ToolResult {
        match &self.kind {
            Kind::Account {
                handler,
                cache: Cache::Read { deps },
                ..
            } => {
                crate::cache::refresh_entry(
                    &app,
                    self.name,
                    &account,
                    canonical,
                    *deps,
                    handler.clone(),
                )
                .await
            }
            _ => Err(ToolError::Unavailable(format!(
                "{} is not a cached read",
                self.name
            ))),
        }
    }

    /// Canonical parameters for `args` (defaults filled), for cached reads
    /// started from outside a call (warming, `cache_task_enqueue`).
    pub fn canonical_params(&self, args: Value) -> Result<Value, ToolError> {
        match &self.kind {
            Kind::Account { canonicalize, .. } => canonicalize(args),
            Kind::Local(_) => Err(ToolError::Unavailable(format!(
                "{} does not act for an account",
                self.name
            ))),
        }
    }
}

/// A handler as the cache layer calls it.
pub type ErasedHandler = AccountHandler;

fn take_string(args: &mut JsonObject, key: &str) -> Result<Option<String>, ToolError> {
    match args.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ToolError::invalid(
            key,
            &other.to_string(),
            "must be a string",
            "an account id or username",
        )),
    }
}

fn take_bool(args: &mut JsonObject, key: &str, default: bool) -> Result<bool, ToolError> {
    match args.remove(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(b),
        Some(other) => Err(ToolError::invalid(
            key,
            &other.to_string(),
            "must be a boolean",
            "true or false",
        )),
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
        tools.extend(cache_tools::tools());
        tools.extend(mail::tools());
        tools.extend(mail_write::tools());
        tools.extend(mail_folders::tools());
        tools.extend(mail_rules::tools());
        tools.extend(calendar::tools());
        tools.extend(contacts::tools());
        tools.extend(files::tools());
        tools.extend(folders::tools());
        tools.extend(search::tools());
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
