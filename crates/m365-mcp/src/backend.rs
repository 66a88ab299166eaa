//! Where cached answers live: the encrypted SQLCipher file of this process
//! (the default) or a Redis shared by several servers. Both keep the same
//! contract — fresh/stale/expired entries, dependency-precise invalidation,
//! statistics and the task queue — so the cache layer (`crate::cache`) and
//! the cache tools never ask which one they have.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use m365_store::{
    CacheStats, CachedEntry, Dependencies, Enqueued, EntryKey, Freshness, Invalidation, NewTask,
    Store, Task, TaskStatus,
};

/// A failed cache operation. Its text names what failed, never a key, a
/// payload or an account.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    /// The operation failed.
    #[error("{0}")]
    Failed(String),
    /// The shared cache is unreachable and is not being asked for a moment.
    #[error("the shared cache is unreachable; answering from Graph until it is back")]
    Down,
}

impl From<m365_store::StoreError> for CacheError {
    fn from(e: m365_store::StoreError) -> Self {
        CacheError::Failed(e.to_string())
    }
}

impl From<m365_redis::RedisCacheError> for CacheError {
    fn from(e: m365_redis::RedisCacheError) -> Self {
        CacheError::Failed(e.to_string())
    }
}

/// How long the shared cache is left alone after it failed to answer.
const SHARED_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A Redis cache with a circuit breaker: when Redis does not answer, calls
/// skip it for a moment (answering from Graph) instead of each waiting for
/// the timeout, and the first call after the pause tries again.
#[derive(Clone)]
pub struct SharedCache {
    redis: m365_redis::RedisCache,
    down_until_ms: Arc<AtomicI64>,
}

impl SharedCache {
    /// Wraps a Redis cache.
    pub fn new(redis: m365_redis::RedisCache) -> Self {
        SharedCache {
            redis,
            down_until_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Whether calls are currently skipping Redis.
    pub fn is_down(&self) -> bool {
        m365_store::now_ms() < self.down_until_ms.load(Ordering::Relaxed)
    }

    async fn run<T, F>(&self, op: F) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, m365_redis::RedisCacheError>>,
    {
        if self.is_down() {
            return Err(CacheError::Down);
        }
        match op.await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_unavailable() {
                    let until = m365_store::now_ms() + SHARED_RETRY_AFTER.as_millis() as i64;
                    if self.down_until_ms.swap(until, Ordering::Relaxed) < m365_store::now_ms() {
                        tracing::warn!(error = %e, "the shared cache is unreachable; answering from Graph");
                    }
                }
                Err(e.into())
            }
        }
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
    /// A Redis lock to release after the fetch.
    Shared(m365_redis::LockToken),
}

/// The cache backend of a running server.
#[derive(Clone)]
pub enum CacheBackend {
    /// The encrypted SQLCipher file.
    Local(Store),
    /// A Redis shared with other servers; values encrypted client-side.
    Shared(SharedCache),
}

impl std::fmt::Debug for CacheBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheBackend::Local(_) => "CacheBackend::Local",
            CacheBackend::Shared(_) => "CacheBackend::Shared",
        })
    }
}

impl CacheBackend {
    /// Which kind this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            CacheBackend::Local(_) => BackendKind::Sqlcipher,
            CacheBackend::Shared(_) => BackendKind::Redis,
        }
    }

    /// Whether the cache is skipped for now (a shared cache that stopped
    /// answering); calls then go to Graph.
    pub fn is_down(&self) -> bool {
        match self {
            CacheBackend::Local(_) => false,
            CacheBackend::Shared(r) => r.is_down(),
        }
    }

    /// Whether stored values are encrypted (always, for both backends).
    pub fn is_encrypted(&self) -> bool {
        match self {
            CacheBackend::Local(s) => s.is_encrypted(),
            CacheBackend::Shared(_) => true,
        }
    }

    /// Reads an entry, counting a hit, stale hit or miss.
    pub async fn get(&self, key: &EntryKey) -> Result<Option<CachedEntry>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.get(key)?),
            CacheBackend::Shared(r) => r.run(r.redis.get(key)).await,
        }
    }

    /// Where an entry stands, without counting a read.
    pub async fn freshness(&self, key: &EntryKey) -> Result<Option<Freshness>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.freshness(key)?),
            CacheBackend::Shared(r) => r.run(r.redis.freshness(key)).await,
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
            CacheBackend::Shared(r) => r.run(r.redis.set(key, deps, payload)).await,
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
            CacheBackend::Shared(r) => r.run(r.redis.invalidate(targets, reason)).await,
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
            CacheBackend::Shared(r) => {
                r.run(r.redis.invalidate_pattern(pattern, account_id, reason))
                    .await
            }
        }
    }

    /// Removes every entry, task and statistic of an account.
    pub async fn purge_account(&self, account_id: &str) -> Result<u64, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.purge_account(account_id)?),
            CacheBackend::Shared(r) => r.run(r.redis.purge_account(account_id)).await,
        }
    }

    /// Counts a background refresh.
    pub async fn record_refresh(&self, account_id: &str, resource_type: &str) {
        match self {
            CacheBackend::Local(s) => s.record_refresh(account_id, resource_type),
            CacheBackend::Shared(r) => {
                if !r.is_down() {
                    r.redis.record_refresh(account_id, resource_type).await
                }
            }
        }
    }

    /// Statistics per account and per resource.
    pub async fn stats(&self) -> Result<CacheStats, CacheError> {
        match self {
            CacheBackend::Local(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.stats())
                    .await
                    .map_err(|e| CacheError::Failed(format!("statistics task failed: {e}")))?
                    .map_err(CacheError::from)
            }
            CacheBackend::Shared(r) => r.run(r.redis.stats()).await,
        }
    }

    /// The cache-wide counters without entry counts or sizes: cheap, for
    /// sampling (the local store reads its statistics table, not entries).
    pub async fn counters(&self) -> Result<m365_store::StatsRow, CacheError> {
        match self {
            CacheBackend::Local(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.counter_totals())
                    .await
                    .map_err(|e| CacheError::Failed(format!("statistics task failed: {e}")))?
                    .map_err(CacheError::from)
            }
            CacheBackend::Shared(r) => r.run(r.redis.stats()).await.map(|s| s.total),
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
            CacheBackend::Shared(r) => {
                if let Ok(n) = r.run(r.redis.reap_stuck_tasks(stall_after)).await
                    && n > 0
                {
                    tracing::warn!(tasks = n, "re-queued tasks a stopped worker left running");
                }
                let _ = r.run(r.redis.prune_tasks(keep_finished)).await;
                if let Err(e) = r.run(r.redis.maintain()).await {
                    tracing::debug!(error = %e, "shared cache maintenance failed");
                }
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
    pub async fn lock_flight(&self, key: &EntryKey) -> Result<Option<FlightLock>, CacheError> {
        match self {
            CacheBackend::Local(_) => Ok(Some(FlightLock::Local)),
            CacheBackend::Shared(r) => {
                Ok(r.run(r.redis.try_lock(key)).await?.map(FlightLock::Shared))
            }
        }
    }

    /// Releases a lock from [`CacheBackend::lock_flight`].
    pub async fn unlock_flight(&self, key: &EntryKey, lock: FlightLock) {
        if let (CacheBackend::Shared(r), FlightLock::Shared(token)) = (self, lock)
            && let Err(e) = r.run(r.redis.unlock(key, token)).await
        {
            tracing::debug!(error = %e, "could not release a fetch lock; it expires on its own");
        }
    }

    /// Waits until another server's fetch of `key` is over (or `max` passed).
    pub async fn wait_flight(&self, key: &EntryKey, max: Duration) -> bool {
        match self {
            CacheBackend::Local(_) => true,
            CacheBackend::Shared(r) => r
                .run(r.redis.wait_unlocked(key, max))
                .await
                .unwrap_or(false),
        }
    }

    /// Queues a task (identical pending tasks are merged).
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<Enqueued, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.enqueue_task(task)?),
            CacheBackend::Shared(r) => r.run(r.redis.enqueue_task(task)).await,
        }
    }

    /// Claims the next due task, if any.
    pub async fn claim_task(&self) -> Result<Option<Task>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.claim_task()?),
            CacheBackend::Shared(r) => r.run(r.redis.claim_task()).await,
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
            CacheBackend::Shared(r) => r.run(r.redis.complete_task(task_id, result)).await,
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
            CacheBackend::Shared(r) => r.run(r.redis.fail_task(task_id, error, backoff)).await,
        }
    }

    /// One task by id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>, CacheError> {
        match self {
            CacheBackend::Local(s) => Ok(s.get_task(task_id)?),
            CacheBackend::Shared(r) => r.run(r.redis.get_task(task_id)).await,
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
            CacheBackend::Shared(r) => r.run(r.redis.list_tasks(status, account_id, limit)).await,
        }
    }
}
