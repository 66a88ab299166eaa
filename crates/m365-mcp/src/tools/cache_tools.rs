//! The cache's own tools: statistics, manual invalidation, the task queue,
//! warming progress, and queuing a refresh. All local (no Graph call).

use std::sync::Arc;

use m365_store::{NewTask, TaskStatus};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::args::check_range;
use super::{LOCAL_READ, LOCAL_WRITE, NoParams, ToolDef, ToolResult};
use crate::app::{App, CacheState};
use crate::error::ToolError;

/// Parameters of `cache_invalidate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidateParams {
    /// Cache key pattern `resource_type:account_id:hash`; `*` matches anything, every other character
    /// (including `_` and `%`) is literal. Example: `email_list:*`.
    pub pattern: String,
    /// Only this account's entries (id or username).
    #[serde(default)]
    pub account_id: Option<String>,
    /// Why (kept in the invalidation log).
    #[serde(default = "default_reason")]
    pub reason: String,
}

fn default_reason() -> String {
    "manual_invalidation".into()
}

/// Parameters of `cache_task_get_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdParams {
    /// The task id returned by cache_task_enqueue or listed by cache_task_list.
    pub task_id: String,
}

/// Parameters of `cache_task_list`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskListParams {
    /// Only this account's tasks (id or username).
    #[serde(default)]
    pub account_id: Option<String>,
    /// queued, running, completed, failed or cancelled.
    #[serde(default)]
    pub status: Option<String>,
    /// How many, newest first (1–500).
    #[serde(default = "default_task_limit")]
    pub limit: i64,
}

fn default_task_limit() -> i64 {
    50
}

/// Parameters of `cache_task_enqueue`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueParams {
    /// A cached read tool to refresh, e.g. `email_list` or `folder_get_tree`.
    pub operation: String,
    /// That tool's arguments (defaults filled in), without account_id.
    #[serde(default)]
    pub params: Option<serde_json::Map<String, Value>>,
    /// Account id or username; optional when one account is signed in.
    #[serde(default)]
    pub account_id: Option<String>,
    /// 1 (first) to 10 (last).
    #[serde(default = "default_priority")]
    pub priority: i64,
}

fn default_priority() -> i64 {
    crate::cache::PRIORITY_ENQUEUED
}

/// The cache tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::local(
            "cache_get_stats",
            "Cache statistics",
            "cache",
            LOCAL_READ,
            "Cache hits, misses, hit rate, stale serves, refreshes, evictions, entries, bytes and compression \
             ratio — in total, per account and per resource — and whether the cache is open.",
            stats,
        ),
        ToolDef::local(
            "cache_invalidate",
            "Invalidate cache entries",
            "cache",
            LOCAL_WRITE,
            "Remove cached entries whose key matches a pattern (`*` is the only wildcard), optionally for one \
             account. The next read of those fetches from Graph.",
            invalidate,
        ),
        ToolDef::local(
            "cache_task_get_status",
            "Background task status",
            "cache",
            LOCAL_READ,
            "The status, attempts, error and result of one background cache task.",
            task_status,
        ),
        ToolDef::local(
            "cache_task_list",
            "List background tasks",
            "cache",
            LOCAL_READ,
            "Background cache tasks (refreshes and warming), newest first, filtered by account and status.",
            task_list,
        ),
        ToolDef::local(
            "cache_warming_status",
            "Cache warming progress",
            "cache",
            LOCAL_READ,
            "Whether start-up cache warming is running and how far it is.",
            warming,
        ),
        ToolDef::local(
            "cache_task_enqueue",
            "Refresh a cached resource in the background",
            "cache",
            LOCAL_WRITE,
            "Queue a background refresh of one cached read (operation = the read tool's name, params = its \
             arguments). Identical pending refreshes are merged. Returns the task id.",
            enqueue,
        ),
    ]
}

fn store(app: &App) -> Result<&crate::backend::CacheBackend, ToolError> {
    app.cache.as_ref().ok_or_else(|| {
        ToolError::Unavailable(match &app.cache_state {
            CacheState::Disabled => "The cache is disabled (M365_MCP_CACHE_ENABLED=false).".into(),
            CacheState::Unavailable(why) => format!("The cache is unavailable: {why}"),
            CacheState::Open => "The cache is unavailable.".into(),
        })
    })
}

fn unavailable(e: crate::backend::CacheError) -> ToolError {
    ToolError::Unavailable(format!("cache error: {e}"))
}

async fn stats(app: Arc<App>, _: NoParams) -> ToolResult {
    let store = store(&app)?;
    let stats = store.stats().await.map_err(unavailable)?;
    let usage = stats.total.stored_bytes as f64 * 100.0 / stats.max_total_bytes.max(1) as f64;
    let mut value =
        serde_json::to_value(&stats).map_err(|e| ToolError::Unavailable(e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("state".into(), json!("open"));
        obj.insert("encrypted".into(), json!(store.is_encrypted()));
        obj.insert("backend".into(), json!(store.kind().as_str()));
        obj.insert(
            "usage_percent".into(),
            json!((usage * 100.0).round() / 100.0),
        );
        obj.insert("hit_rate".into(), json!(stats.total.hit_rate));
    }
    Ok(value)
}

async fn invalidate(app: Arc<App>, p: InvalidateParams) -> ToolResult {
    let store = store(&app)?;
    if p.pattern.trim().is_empty() {
        return Err(ToolError::invalid(
            "pattern",
            &p.pattern,
            "must not be empty",
            "a pattern such as 'email_list:*'",
        ));
    }
    let account = match p.account_id.as_deref() {
        Some(a) => Some(app.accounts.resolve(Some(a))?.account_id),
        None => None,
    };
    let removed = crate::cache::invalidate_pattern(
        &app,
        store,
        p.pattern.trim(),
        account.as_deref(),
        &p.reason,
    )
    .await
    .map_err(unavailable)?;
    Ok(json!({
        "entries_deleted": removed,
        "pattern": p.pattern.trim(),
        "account_id": account,
        "reason": p.reason,
        "timestamp": crate::cache::rfc3339_ms(m365_store::now_ms()),
    }))
}

fn task_json(task: &m365_store::Task) -> Value {
    json!({
        "task_id": task.task_id,
        "account_id": task.account_id,
        "operation": task.operation,
        "parameters": serde_json::from_str::<Value>(&task.params_json).unwrap_or(Value::Null),
        "status": task.status,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "error": task.last_error,
        "result": task.result_json.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "created_at": crate::cache::rfc3339_ms(task.created_at),
        "started_at": task.started_at.map(crate::cache::rfc3339_ms),
        "completed_at": task.finished_at.map(crate::cache::rfc3339_ms),
    })
}

async fn task_status(app: Arc<App>, p: TaskIdParams) -> ToolResult {
    let store = store(&app)?;
    let task = store
        .get_task(p.task_id.trim())
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            ToolError::invalid(
                "task_id",
                &p.task_id,
                "no such task",
                "a task id from cache_task_list or cache_task_enqueue",
            )
        })?;
    Ok(task_json(&task))
}

async fn task_list(app: Arc<App>, p: TaskListParams) -> ToolResult {
    let store = store(&app)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    let status = match p.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(TaskStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
            ToolError::invalid(
                "status",
                s,
                "unknown status",
                "queued, running, completed, failed or cancelled",
            )
        })?),
        None => None,
    };
    let account = match p.account_id.as_deref() {
        Some(a) => Some(app.accounts.resolve(Some(a))?.account_id),
        None => None,
    };
    let tasks = store
        .list_tasks(status, account.as_deref(), limit as u32)
        .await
        .map_err(unavailable)?;
    let value: Vec<Value> = tasks.iter().map(task_json).collect();
    Ok(json!({ "value": value, "count": value.len() }))
}

async fn warming(app: Arc<App>, _: NoParams) -> ToolResult {
    serde_json::to_value(crate::cache::warming_status(&app))
        .map_err(|e| ToolError::Unavailable(e.to_string()))
}

async fn enqueue(app: Arc<App>, p: EnqueueParams) -> ToolResult {
    let store = store(&app)?;
    let priority = check_range("priority", p.priority, 1, 10)? as i64;
    let tool = app
        .tools
        .get(p.operation.trim())
        .filter(|t| t.is_cached_read())
        .ok_or_else(|| {
            let names: Vec<&str> = app
                .tools
                .iter()
                .filter(|t| t.is_cached_read())
                .map(|t| t.name())
                .collect();
            ToolError::invalid(
                "operation",
                &p.operation,
                "not a cached read tool",
                &format!("one of: {}", names.join(", ")),
            )
        })?;
    let account = app.accounts.resolve(p.account_id.as_deref())?;
    let canonical = tool.canonical_params(Value::Object(p.params.unwrap_or_default()))?;
    let enqueued = store
        .enqueue_task(&NewTask {
            priority,
            ..NewTask::new(&account.account_id, tool.name(), canonical)
        })
        .await
        .map_err(unavailable)?;
    app.cache_runtime.wake.notify_one();
    Ok(json!({
        "task_id": enqueued.task_id,
        "deduplicated": enqueued.deduplicated,
        "status": "queued",
        "operation": tool.name(),
        "account_id": account.account_id,
    }))
}
