//! The cache layer around tool handlers: reads served from the encrypted
//! store (fresh → as is, stale → at once with one background refresh,
//! expired → fetched, or served stale if Graph fails), single-flight for
//! identical cold reads, precise invalidation after writes, and the
//! background worker that runs refreshes and warming from the persistent
//! task queue.
//!
//! Nothing here knows a tool by name: tools declare their behaviour in the
//! registry, and this module applies it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m365_store::{
    AccountRecord, CachedEntry, Dependencies, EntryKey, Freshness, Invalidation, NewTask,
    TaskStatus,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::backend::CacheBackend;
use crate::error::ToolError;
use crate::rendered::{Answer, CachedAnswer, RenderCache};
use crate::tools::{ErasedHandler, Target, ToolResult};

/// Priority of a stale-while-revalidate refresh (1 first … 10 last).
pub const PRIORITY_REFRESH: i64 = 3;
/// Priority of an on-demand refresh (`cache_task_enqueue`).
pub const PRIORITY_ENQUEUED: i64 = 4;
/// Priority of warming tasks.
pub const PRIORITY_WARMING: i64 = 6;

/// `use_cache` and `force_refresh` of one call.
#[derive(Debug, Clone, Copy)]
pub struct ReadFlags {
    /// Read and write the cache (false: neither).
    pub use_cache: bool,
    /// Skip the read, still write.
    pub force_refresh: bool,
}

impl Default for ReadFlags {
    fn default() -> Self {
        ReadFlags {
            use_cache: true,
            force_refresh: false,
        }
    }
}

/// What warming has done so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WarmingStatus {
    /// Warming is on (`M365_MCP_CACHE_WARMING`) and the cache is open.
    pub enabled: bool,
    /// Tasks are still queued or running.
    pub is_warming: bool,
    /// Operations planned.
    pub operations_total: u64,
    /// Completed.
    pub operations_completed: u64,
    /// Skipped because the entry was already fresh.
    pub operations_skipped: u64,
    /// Failed after their retries.
    pub operations_failed: u64,
    /// completed + skipped + failed over total, in percent.
    pub progress_percent: f64,
    /// When warming started (RFC 3339).
    pub started_at: Option<String>,
    /// When the last operation finished (RFC 3339).
    pub completed_at: Option<String>,
    /// Why warming is off, when it is.
    pub status: Option<String>,
    /// When warming started, in ms since the epoch (for its duration).
    #[serde(skip)]
    started_ms: i64,
}

/// In-process state of the cache layer.
#[derive(Default)]
pub struct CacheRuntime {
    /// One gate per key being fetched: identical cold reads wait for the
    /// first instead of calling Graph themselves.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the worker when a task is enqueued.
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Warming progress.
    pub(crate) warming: Mutex<WarmingStatus>,
    /// Task ids that belong to warming.
    pub(crate) warming_tasks: Mutex<std::collections::HashSet<String>>,
    /// Held (write) while warming queues its tasks, and (read) by the worker
    /// while it records a finished task, so a warming task that finishes
    /// before its id is known is still counted.
    pub(crate) warming_queueing: tokio::sync::RwLock<()>,
    /// Connected MCP sessions, which get warming's logging notifications.
    pub(crate) sessions: crate::progress::Sessions,
    /// Recently served entries, rendered, so a hit does not parse and
    /// serialise its payload again (`crate::rendered`).
    pub(crate) rendered: RenderCache,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CacheRuntime {
    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.gates)
            .entry(key.to_string())
            .or_default()
            .clone()
    }

    fn release(&self, key: &str, gate: &Arc<tokio::sync::Mutex<()>>) {
        let mut gates = lock(&self.gates);
        // Only the map and this caller hold it: nobody is waiting.
        if Arc::strong_count(gate) <= 2 {
            gates.remove(key);
        }
    }
}

/// RFC 3339 of a time in ms since the epoch, in UTC with exactly three
/// fraction digits (`2026-11-28T02:11:30.970Z`), so that the strings sort
/// as the instants do.
pub fn rfc3339_ms(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn annotate(value: &mut Value, meta: Value) {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("_cache".into(), meta);
    }
}

/// The `_cache` member of an answer served from `entry`.
fn entry_meta(entry: &CachedEntry, status: &str) -> Value {
    json!({
        "status": status,
        "cached_at": rfc3339_ms(entry.created_at_ms),
        "age_seconds": entry.age_seconds(m365_store::now_ms()),
    })
}

fn from_entry(entry: &CachedEntry, status: &str) -> Result<Value, ToolError> {
    let mut value: Value = serde_json::from_slice(&entry.payload).map_err(|e| {
        ToolError::Unavailable(format!(
            "a cached entry could not be read ({e}); retry with use_cache=false"
        ))
    })?;
    annotate(&mut value, entry_meta(entry, status));
    Ok(value)
}

/// A hit on `entry`, just read under `key`: rendered by the memo when the
/// payload is an object (the memo checks that it holds exactly this
/// entry), parsed otherwise.
fn hit(app: &App, key: &EntryKey, entry: &CachedEntry, status: &str) -> Result<Answer, ToolError> {
    match app.cache_runtime.rendered.get(key, entry) {
        Some(rendered) => Ok(Answer::Cached(CachedAnswer::new(
            rendered,
            entry_meta(entry, status),
        ))),
        None => from_entry(entry, status).map(Answer::Value),
    }
}

/// How long a read waits for another server's fetch of the same entry
/// before fetching itself.
const FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// A cached read (see the module docs).
pub async fn cached_read(
    app: &Arc<App>,
    tool: &'static str,
    account: &AccountRecord,
    canonical: Value,
    deps: fn(&Value, &Value) -> Dependencies,
    flags: ReadFlags,
    handler: ErasedHandler,
) -> Result<Answer, ToolError> {
    let Some(cache) = app.cache.as_ref().filter(|_| flags.use_cache) else {
        let mut value = handler(app.clone(), account.clone(), canonical).await?;
        annotate(&mut value, json!({"status": "bypass"}));
        return Ok(value.into());
    };
    if cache.is_down() {
        let mut value = handler(app.clone(), account.clone(), canonical).await?;
        annotate(
            &mut value,
            json!({"status": "bypass", "reason": "the shared cache is unreachable"}),
        );
        return Ok(value.into());
    }
    let key = EntryKey::new(&account.account_id, tool, &canonical);
    if !flags.force_refresh {
        // An uncounted peek first, so a call that waits for another's fetch
        // below counts once (as the hit it turns out to be), not twice.
        match cache.freshness(&key).await {
            Ok(Some(Freshness::Fresh | Freshness::Stale)) => {
                if let Some(answer) =
                    serve_cached(app, cache, tool, account, &canonical, &key).await
                {
                    return answer;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cache read failed; asking Graph"),
        }
    }
    let gate = app.cache_runtime.gate(key.as_str());
    let result = async {
        let _turn = gate.lock().await;
        let mut expired = None;
        if !flags.force_refresh {
            match cache.get(&key).await {
                Ok(Some(entry)) => match serve_entry(app, tool, account, &canonical, &key, entry) {
                    Ok(answer) => return answer,
                    Err(entry) => expired = Some(entry),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cache read failed; asking Graph"),
            }
        }
        // Across servers sharing a cache: one fetches, the others wait for
        // its answer instead of asking Graph the same question.
        let flight = match cache.lock_flight(&key).await {
            Ok(Some(lock)) => {
                // Another server may have stored the answer and released
                // the lock between our read and the lock: look once more.
                if !flags.force_refresh
                    && matches!(lock, crate::backend::FlightLock::Shared(_))
                    && matches!(cache.freshness(&key).await, Ok(Some(Freshness::Fresh)))
                    && let Ok(Some(entry)) = cache.get(&key).await
                    && entry.freshness == Freshness::Fresh
                {
                    cache.unlock_flight(&key, lock).await;
                    return hit(app, &key, &entry, "fresh");
                }
                Some(lock)
            }
            Ok(None) => {
                cache.wait_flight(&key, FLIGHT_WAIT).await;
                if !flags.force_refresh
                    && let Ok(Some(entry)) = cache.get(&key).await
                    && entry.freshness == Freshness::Fresh
                {
                    return hit(app, &key, &entry, "fresh");
                }
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "no fetch lock; fetching without one");
                None
            }
        };
        let outcome = handler(app.clone(), account.clone(), canonical.clone()).await;
        if let Ok(value) = &outcome {
            store_value(app, &key, deps(&canonical, value), value).await;
        }
        if let Some(lock) = flight {
            cache.unlock_flight(&key, lock).await;
        }
        match outcome {
            Ok(mut value) => {
                annotate(
                    &mut value,
                    json!({"status": "miss", "cached_at": rfc3339_ms(m365_store::now_ms()), "age_seconds": 0}),
                );
                Ok(value.into())
            }
            Err(error) => match expired {
                // Stale-if-error: an old answer beats no answer, and says so.
                Some(entry) if matches!(error, ToolError::Graph(_)) => {
                    let mut value = from_entry(&entry, "stale")?;
                    if let Some(meta) = value.get_mut("_cache").and_then(Value::as_object_mut) {
                        meta.insert("error".into(), json!(error.to_string()));
                    }
                    Ok(value.into())
                }
                _ => Err(error),
            },
        }
    }
    .await;
    app.cache_runtime.release(key.as_str(), &gate);
    result
}

/// Serves a fresh or stale entry (scheduling a refresh for a stale one);
/// hands an expired entry back for stale-if-error.
fn serve_entry(
    app: &App,
    tool: &str,
    account: &AccountRecord,
    canonical: &Value,
    key: &EntryKey,
    entry: CachedEntry,
) -> Result<Result<Answer, ToolError>, CachedEntry> {
    match entry.freshness {
        Freshness::Fresh => Ok(hit(app, key, &entry, "fresh")),
        Freshness::Stale => {
            schedule_refresh(app, tool, &account.account_id, canonical);
            Ok(hit(app, key, &entry, "stale"))
        }
        Freshness::Expired => Err(entry),
    }
}

async fn serve_cached(
    app: &App,
    cache: &CacheBackend,
    tool: &str,
    account: &AccountRecord,
    canonical: &Value,
    key: &EntryKey,
) -> Option<Result<Answer, ToolError>> {
    match cache.get(key).await {
        Ok(Some(entry)) => serve_entry(app, tool, account, canonical, key, entry).ok(),
        _ => None,
    }
}

async fn store_value(app: &App, key: &EntryKey, deps: Dependencies, value: &Value) {
    let Some(cache) = app.cache.as_ref() else {
        return;
    };
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            if let Err(e) = cache.set(key, &deps, &bytes).await {
                tracing::warn!(error = %e, resource = key.resource_type(), "result not cached");
            }
        }
        Err(e) => tracing::warn!(error = %e, "result not cached"),
    }
}

/// Runs a cached read's handler and stores the result (background refresh,
/// warming, `cache_task_enqueue`).
pub async fn refresh_entry(
    app: &Arc<App>,
    tool: &'static str,
    account: &AccountRecord,
    canonical: Value,
    deps: fn(&Value, &Value) -> Dependencies,
    handler: ErasedHandler,
) -> ToolResult {
    let key = EntryKey::new(&account.account_id, tool, &canonical);
    let gate = app.cache_runtime.gate(key.as_str());
    let result = async {
        let _turn = gate.lock().await;
        let value = handler(app.clone(), account.clone(), canonical.clone()).await?;
        store_value(app, &key, deps(&canonical, &value), &value).await;
        if let Some(cache) = &app.cache {
            cache.record_refresh(&account.account_id, tool).await;
        }
        Ok(json!({"refreshed": tool, "cache_key": key.as_str()}))
    }
    .await;
    app.cache_runtime.release(key.as_str(), &gate);
    result
}

/// Queues one background refresh of an entry; identical pending refreshes
/// are de-duplicated by the queue, so many stale readers cause one refresh.
/// Returns at once: the queueing itself runs in the background.
pub fn schedule_refresh(app: &App, tool: &str, account_id: &str, canonical: &Value) {
    let Some(cache) = app.cache.clone() else {
        return;
    };
    let task = NewTask {
        priority: PRIORITY_REFRESH,
        ..NewTask::new(account_id, tool, canonical.clone())
    };
    let wake = app.cache_runtime.wake.clone();
    tokio::spawn(async move {
        match cache.enqueue_task(&task).await {
            Ok(_) => wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "could not queue a background refresh"),
        }
    });
}

/// Removes the entries whose key matches a `*` pattern (the
/// `cache_invalidate` tool), optionally of one account. The memo of
/// rendered hits never serves an entry the store no longer holds; what it
/// held for them is dropped too, only to free the memory.
pub async fn invalidate_pattern(
    app: &App,
    cache: &CacheBackend,
    pattern: &str,
    account_id: Option<&str>,
    reason: &str,
) -> Result<u64, crate::backend::CacheError> {
    let removed = cache
        .invalidate_pattern(pattern, account_id, reason)
        .await?;
    match account_id {
        Some(account) => app.cache_runtime.rendered.forget_account(account),
        None => app.cache_runtime.rendered.clear(),
    }
    Ok(removed)
}

/// Removes what a write changed, in the same call, before it answers.
pub async fn invalidate(app: &App, account_id: &str, tool: &str, targets: Vec<Target>) {
    let Some(cache) = &app.cache else { return };
    if targets.is_empty() {
        return;
    }
    // The memo never serves an entry the store no longer holds; dropping
    // these only frees their memory.
    for t in &targets {
        app.cache_runtime
            .rendered
            .forget_resource(account_id, t.resource);
    }
    let targets: Vec<Invalidation> = targets
        .into_iter()
        .map(|t| Invalidation::new(account_id, t.resource, t.scope))
        .collect();
    if let Err(e) = cache.invalidate(&targets, tool).await {
        // Failing to invalidate must not leave stale data served as fresh:
        // drop everything of the affected resource types instead.
        tracing::warn!(error = %e, "precise invalidation failed; invalidating the resource types");
        for t in &targets {
            let _ = cache
                .invalidate(
                    &[Invalidation::new(
                        account_id,
                        &t.resource_type,
                        m365_store::Scope::All,
                    )],
                    tool,
                )
                .await;
        }
    }
}

/// Backoff before retry `attempt` (1-based): 1, 2, 4 s, jittered ±25 %.
fn retry_backoff(attempt: u32) -> Duration {
    let base = 1000u64 << attempt.saturating_sub(1).min(4);
    let jitter = rand::random_range(0..=base / 2);
    Duration::from_millis(base * 3 / 4 + jitter)
}

/// How long a task may stay `running` before the reaper assumes its worker
/// died (`M365_MCP_TASK_STALL_SECONDS`, default 120).
fn stall_after() -> Duration {
    std::env::var("M365_MCP_TASK_STALL_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(120))
}

/// Finished tasks kept for `cache_task_list`.
const KEEP_FINISHED_TASKS: u64 = 500;

/// The background worker: claims tasks from the persistent queue and runs
/// them until `stop` fires. Also reaps tasks a crashed worker left running,
/// prunes finished tasks and runs store maintenance.
pub async fn run_worker(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(cache) = app.cache.clone() else {
        return;
    };
    let mut last_housekeeping = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        if *stop.borrow() {
            break;
        }
        if last_housekeeping.elapsed() > Duration::from_secs(60) {
            last_housekeeping = std::time::Instant::now();
            cache.maintain(stall_after(), KEEP_FINISHED_TASKS).await;
        }
        let task = match cache.claim_task().await {
            Ok(Some(task)) => task,
            Ok(None) => {
                reconcile_warming(&app, &cache).await;
                tokio::select! {
                    _ = app.cache_runtime.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a task");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        let outcome = run_task(&app, &task.account_id, &task.operation, &task.params_json).await;
        let _queueing = app.cache_runtime.warming_queueing.read().await;
        let warming = lock(&app.cache_runtime.warming_tasks).contains(&task.task_id);
        match outcome {
            Ok(result) => {
                let _ = cache.complete_task(&task.task_id, &result).await;
                if warming {
                    warming_progress(&app, &task.task_id, &task.operation, true);
                }
            }
            Err(error) => {
                let status = cache
                    .fail_task(
                        &task.task_id,
                        &error.to_string(),
                        retry_backoff(task.attempts),
                    )
                    .await
                    .unwrap_or(TaskStatus::Failed);
                tracing::info!(operation = %task.operation, attempt = task.attempts, ?status, "background task failed");
                if warming && status == TaskStatus::Failed {
                    warming_progress(&app, &task.task_id, &task.operation, false);
                }
            }
        }
    }
}

/// With a shared queue, another server's worker may run some of this
/// server's warming tasks: when idle, look up the ones still pending here
/// and count those finished elsewhere, so warming still completes.
async fn reconcile_warming(app: &App, cache: &CacheBackend) {
    if !matches!(cache, CacheBackend::Shared(_)) {
        return;
    }
    let pending: Vec<String> = lock(&app.cache_runtime.warming_tasks)
        .iter()
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    let _queueing = app.cache_runtime.warming_queueing.read().await;
    for id in pending {
        if let Ok(Some(task)) = cache.get_task(&id).await {
            match task.status {
                TaskStatus::Completed => warming_progress(app, &id, &task.operation, true),
                TaskStatus::Failed | TaskStatus::Cancelled => {
                    warming_progress(app, &id, &task.operation, false)
                }
                TaskStatus::Queued | TaskStatus::Running => {}
            }
        }
    }
}

async fn run_task(
    app: &Arc<App>,
    account_id: &str,
    operation: &str,
    params_json: &str,
) -> ToolResult {
    let tool = app
        .tools
        .get(operation)
        .ok_or_else(|| ToolError::Unavailable(format!("unknown operation {operation}")))?;
    let account = app.accounts.resolve(Some(account_id))?;
    let canonical: Value = serde_json::from_str(params_json)
        .map_err(|e| ToolError::Unavailable(format!("stored parameters are not JSON: {e}")))?;
    tool.refresh(app.clone(), account, canonical).await
}

/// Logger of warming's MCP logging notifications (`notifications/message`).
/// Their data holds operation names, counts and times: never an account,
/// a token or anything fetched.
pub const WARMING_LOGGER: &str = "m365-mcp.warming";

#[allow(deprecated)] // logging: see `progress`
fn warming_log(app: &App, level: rmcp::model::LoggingLevel, data: Value) {
    app.cache_runtime.sessions.log(level, WARMING_LOGGER, data);
}

/// Records one finished warming task and tells the sessions: every
/// operation at `debug`, crossing 50 % and the end at `info`. Runs under the
/// warming lock, so notifications go out in the order of the counts.
#[allow(deprecated)] // logging: see `progress`
fn warming_progress(app: &App, task_id: &str, operation: &str, ok: bool) {
    use rmcp::model::LoggingLevel;
    let mut w = lock(&app.cache_runtime.warming);
    let remaining = {
        let mut tasks = lock(&app.cache_runtime.warming_tasks);
        tasks.remove(task_id);
        tasks.len()
    };
    let before = w.progress_percent;
    if ok {
        w.operations_completed += 1;
    } else {
        w.operations_failed += 1;
    }
    finish_progress(&mut w, remaining);
    let done = w.operations_completed + w.operations_skipped + w.operations_failed;
    warming_log(
        app,
        LoggingLevel::Debug,
        json!({
            "event": "operation",
            "operation": operation,
            "outcome": if ok { "completed" } else { "failed" },
            "completed": done,
            "total": w.operations_total,
            "progress_percent": w.progress_percent,
        }),
    );
    if before < 50.0 && w.progress_percent >= 50.0 {
        let message = format!(
            "cache warming is {}% done ({done} of {} operations)",
            w.progress_percent, w.operations_total
        );
        warming_log(
            app,
            LoggingLevel::Info,
            json!({
                "event": "milestone",
                "message": message,
                "completed": done,
                "total": w.operations_total,
                "progress_percent": w.progress_percent,
            }),
        );
    }
    if remaining == 0 {
        warming_finished(app, &w);
    }
}

#[allow(deprecated)] // logging: see `progress`
fn warming_finished(app: &App, w: &WarmingStatus) {
    let duration_ms = (m365_store::now_ms() - w.started_ms).max(0);
    let message = format!(
        "cache warming finished: {} completed, {} skipped, {} failed in {:.1} s",
        w.operations_completed,
        w.operations_skipped,
        w.operations_failed,
        duration_ms as f64 / 1000.0
    );
    warming_log(
        app,
        rmcp::model::LoggingLevel::Info,
        json!({
            "event": "finished",
            "message": message,
            "total": w.operations_total,
            "completed": w.operations_completed,
            "skipped": w.operations_skipped,
            "failed": w.operations_failed,
            "progress_percent": w.progress_percent,
            "duration_ms": duration_ms,
        }),
    );
}

fn finish_progress(w: &mut WarmingStatus, remaining: usize) {
    let done = w.operations_completed + w.operations_skipped + w.operations_failed;
    w.progress_percent = if w.operations_total == 0 {
        100.0
    } else {
        ((done as f64 / w.operations_total as f64) * 1000.0).round() / 10.0
    };
    w.is_warming = remaining > 0;
    if remaining == 0 {
        w.completed_at = Some(rfc3339_ms(m365_store::now_ms()));
    }
}

/// What warming fills, in priority order, with the parameters of a user's
/// default call so that the user's first call is a fresh hit.
pub const WARMING_PLAN: &[(&str, &str)] = &[
    ("emailfolders_get_tree", "{}"),
    ("email_list", "{}"),
    ("folder_get_tree", "{}"),
    ("contact_list", "{}"),
    ("calendar_list_events", "{}"),
];

/// Queues warming for every signed-in account (skipping what is fresh), and
/// returns at once: the worker does the rest in the background.
pub async fn start_warming(app: &Arc<App>) {
    let mut status = WarmingStatus {
        enabled: app.config.warming && app.cache.is_some(),
        ..WarmingStatus::default()
    };
    let Some(cache) = app.cache.as_ref().filter(|_| app.config.warming) else {
        status.status = Some(if app.cache.is_none() {
            "Cache warming is off: the cache is not open.".into()
        } else {
            "Cache warming is off (M365_MCP_CACHE_WARMING=false).".into()
        });
        *lock(&app.cache_runtime.warming) = status;
        return;
    };
    // The worker records finished tasks only once every id is known.
    let _queueing = app.cache_runtime.warming_queueing.write().await;
    status.started_ms = m365_store::now_ms();
    status.started_at = Some(rfc3339_ms(status.started_ms));
    let accounts = app.accounts.list().unwrap_or_default();
    let mut queued = Vec::new();
    for (position, (operation, params)) in WARMING_PLAN.iter().enumerate() {
        let Some(tool) = app.tools.get(operation) else {
            continue;
        };
        let Ok(canonical) = serde_json::from_str::<Value>(params)
            .map_err(|_| ())
            .and_then(|v| tool.canonical_params(v).map_err(|_| ()))
        else {
            continue;
        };
        for account in &accounts {
            status.operations_total += 1;
            let key = EntryKey::new(&account.account_id, operation, &canonical);
            if matches!(cache.freshness(&key).await, Ok(Some(Freshness::Fresh))) {
                status.operations_skipped += 1;
                continue;
            }
            let task = NewTask {
                // Earlier plan steps first; all after user-driven refreshes.
                priority: (PRIORITY_WARMING + position as i64).min(10),
                ..NewTask::new(&account.account_id, operation, canonical.clone())
            };
            match cache.enqueue_task(&task).await {
                Ok(enqueued) => queued.push(enqueued.task_id),
                Err(e) => {
                    tracing::warn!(error = %e, "could not queue warming");
                    status.operations_failed += 1;
                }
            }
        }
    }
    let remaining = queued.len();
    let mut w = lock(&app.cache_runtime.warming);
    lock(&app.cache_runtime.warming_tasks).extend(queued);
    finish_progress(&mut status, remaining);
    tracing::info!(
        operations = status.operations_total,
        skipped = status.operations_skipped,
        "cache warming queued"
    );
    let message = format!(
        "warming {} operations for {} accounts ({} already fresh)",
        status.operations_total,
        accounts.len(),
        status.operations_skipped
    );
    #[allow(deprecated)] // logging: see `progress`
    warming_log(
        app,
        rmcp::model::LoggingLevel::Info,
        json!({
            "event": "queued",
            "message": message,
            "operations": status.operations_total,
            "accounts": accounts.len(),
            "queued": remaining,
            "skipped": status.operations_skipped,
            "failed": status.operations_failed,
            "progress_percent": status.progress_percent,
        }),
    );
    if remaining == 0 {
        warming_finished(app, &status);
    }
    *w = status;
    drop(w);
    app.cache_runtime.wake.notify_one();
}

/// A snapshot of warming progress.
pub fn warming_status(app: &App) -> WarmingStatus {
    lock(&app.cache_runtime.warming).clone()
}

#[cfg(test)]
mod tests {
    use super::rfc3339_ms;
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    #[test]
    fn timestamps_have_three_fraction_digits_and_sort_as_instants() {
        let whole = 1_795_832_000_000; // a whole second
        assert_eq!(rfc3339_ms(whole), "2026-11-28T02:13:20.000Z");
        assert_eq!(rfc3339_ms(whole + 970), "2026-11-28T02:13:20.970Z");
        let times = [whole, whole + 5, whole + 970, whole + 975, whole + 1000];
        let texts: Vec<String> = times.iter().map(|&t| rfc3339_ms(t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(sorted, texts);
        for (text, ms) in texts.iter().zip(times) {
            let parsed = OffsetDateTime::parse(text, &Rfc3339).unwrap();
            assert_eq!(parsed.unix_timestamp_nanos(), ms as i128 * 1_000_000);
        }
    }
}
