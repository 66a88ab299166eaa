//! Where cached answers live: the encrypted SQLCipher file of this process
//! (the default) or a Redis shared by several servers. Both keep the same
//! contract — fresh/stale/expired entries, dependency-precise invalidation,
//! statistics and the task queue — so the cache layer (`crate::cache`) and
//! the cache tools never ask which one they have.

use std::time::Duration;

use m365_store::{
    CacheStats, CachedEntry, Dependencies, Enqueued, EntryKey, Freshness, Invalidation, NewTask,
    Store, Task, TaskStatus,
};

/// A failed cache operation. Its text names what failed, never a key, a
/// payload or an account.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(String);

impl From<m365_store::StoreError> for CacheError {
    fn from(e: m365_store::StoreError) -> Self {
        CacheError(e.to_string())
    }
}

/// Which backend a deployment uses (`M365_MCP_CACHE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The encrypted SQLite file in the data directory (default).
    Sqlcipher,
    /// A Redis shared by several servers (`M365_MCP_REDIS_URL`).
    Redis,
}

impl BackendKind {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sqlcipher => "sqlcipher",
            BackendKind::Redis => "redis",
        }
    }
}

/// A lock held while one server fetches a key (single-flight across
/// servers). Local stores need none: the in-process gate suffices.
pub enum FlightLock {
    /// No cross-process lock (SQLCipher, or Redis unreachable).
    Local,
}

/// The cache backend of a running server.
#[derive(Clone)]
pub enum CacheBackend {
    /// The encrypted SQLCipher file.
    Local(Store),
}

impl std::fmt::Debug for CacheBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheBackend::Local(_) => "CacheBackend::Local",
        })
    }
}

impl CacheBackend {
    /// Which kind this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            CacheBackend::Local(_) => BackendKind::Sqlcipher,
        }
    }

    /// The local store, when this is one (reports that show the file).
    pub fn local(&self) -> Option<&Store> {
        match self {
            CacheBackend::Local(s) => Some(s),
        }
    }

    /// Whether stored values are encrypted (always, for both backends).
    pub fn is_encrypted(&self) -> bool {
        match self {
            CacheBackend::Local(s) => s.is_encrypted(),
        }
    }

    /// Reads an entry, counting a hit, stale hit or miss.
    pub async fn get(&self, key: &EntryKey) -> Result<Option<CachedEntry>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.get(key)?),
        }
    }

    /// Where an entry stands, without counting a read.
    pub async fn freshness(&self, key: &EntryKey) -> Result<Option<Freshness>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.freshness(key)?),
        }
    }

    /// Stores a payload with the resource's lifetime and its dependencies.
    pub async fn set(
        &self,
        key: &EntryKey,
        deps: &Dependencies,
        payload: &[u8],
    ) -> Result<(), CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.set(key, deps, payload)?),
        }
    }

    /// Removes what the targets name; returns how many entries went.
    pub async fn invalidate(
        &self,
        targets: &[Invalidation],
        reason: &str,
    ) -> Result<u64, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.invalidate(targets, reason)?),
        }
    }

    /// Removes entries whose key matches a `*` pattern.
    pub async fn invalidate_pattern(
        &self,
        pattern: &str,
        account_id: Option<&str>,
        reason: &str,
    ) -> Result<u64, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.invalidate_pattern(pattern, account_id, reason)?),
        }
    }

    /// Removes every entry, task and statistic of an account.
    pub async fn purge_account(&self, account_id: &str) -> Result<u64, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.purge_account(account_id)?),
        }
    }

    /// Counts a background refresh.
    pub async fn record_refresh(&self, account_id: &str, resource_type: &str) {
        match self {
            CacheBackend::Local(s) => s.record_refresh(account_id, resource_type),
        }
    }

    /// Statistics per account and per resource.
    pub async fn stats(&self) -> Result<CacheStats, CacheError> {
        match self {
            CacheBackend::Local(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.stats())
                    .await
                    .map_err(|e| CacheError(format!("statistics task failed: {e}")))?
                    .map_err(CacheError::from)
            }
        }
    }

    /// Housekeeping: expiry sweep, size cap and vacuum (local), index
    /// clean-up (Redis); also re-queues tasks a stopped worker left running
    /// and prunes finished ones.
    pub async fn maintain(&self, stall_after: Duration, keep_finished: u64) {
        match self {
            CacheBackend::Local(s) => {
                let s = s.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if let Ok(n) = s.reap_stuck_tasks(stall_after)
                        && n > 0
                    {
                        tracing::warn!(tasks = n, "re-queued tasks a stopped worker left running");
                    }
                    let _ = s.prune_tasks(keep_finished);
                    if let Err(e) = s.maintain() {
                        tracing::warn!(error = %e, "cache maintenance failed");
                    }
                })
                .await;
            }
        }
    }

    /// Writes buffered statistics (local; Redis counts as it goes).
    pub fn flush(&self) {
        if let CacheBackend::Local(s) = self {
            let _ = s.flush();
        }
    }

    /// Takes the cross-server lock for a fetch of `key`. `Ok(None)`: another
    /// server is fetching it. Local stores always get [`FlightLock::Local`].
    pub async fn lock_flight(&self, _key: &EntryKey) -> Result<Option<FlightLock>, CacheError> {
        match self {
            CacheBackend::Local(_) => Ok(Some(FlightLock::Local)),
        }
    }

    /// Releases a lock from [`CacheBackend::lock_flight`].
    pub async fn unlock_flight(&self, key: &EntryKey, lock: FlightLock) {
        let _ = (key, lock);
    }

    /// Waits until another server's fetch of `key` is over (or `max` passed).
    pub async fn wait_flight(&self, _key: &EntryKey, _max: Duration) -> bool {
        match self {
            CacheBackend::Local(_) => true,
        }
    }

    /// Queues a task (identical pending tasks are merged).
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<Enqueued, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.enqueue_task(task)?),
        }
    }

    /// Claims the next due task, if any.
    pub async fn claim_task(&self) -> Result<Option<Task>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.claim_task()?),
        }
    }

    /// Marks a task done with its result.
    pub async fn complete_task(
        &self,
        task_id: &str,
        result: &serde_json::Value,
    ) -> Result<(), CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.complete_task(task_id, result)?),
        }
    }

    /// Records a failure; the task is retried after `backoff` or fails for good.
    pub async fn fail_task(
        &self,
        task_id: &str,
        error: &str,
        backoff: Duration,
    ) -> Result<TaskStatus, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.fail_task(task_id, error, backoff)?),
        }
    }

    /// One task by id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.get_task(task_id)?),
        }
    }

    /// Tasks, newest first, optionally filtered.
    pub async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Task>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.list_tasks(status, account_id, limit)?),
        }
    }
}
