//! The persistent task queue: background refreshes, warming and on-demand
//! refreshes live in the encrypted file, so they survive a restart.
//!
//! Claiming is one atomic `UPDATE … RETURNING`, so several workers (or
//! processes) never run the same task twice. Identical pending tasks are
//! de-duplicated. Tasks left `running` by a crash are put back by the reaper.

use std::time::Duration;

use rand::TryRngCore;
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::store::{Store, now_ms, write_canonical};

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting to run (possibly not before `run_after`).
    Queued,
    /// Claimed by a worker.
    Running,
    /// Done.
    Completed,
    /// Gave up after its attempts.
    Failed,
    /// Withdrawn before it ran.
    Cancelled,
}

impl TaskStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or user-given name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => TaskStatus::Queued,
            "running" => TaskStatus::Running,
            "completed" => TaskStatus::Completed,
            "failed" => TaskStatus::Failed,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }
}

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The account it acts for.
    pub account_id: String,
    /// What to run (a cached tool's name for refreshes).
    pub operation: String,
    /// Its parameters (canonicalised for de-duplication).
    pub params: serde_json::Value,
    /// 1 (first) … 10 (last).
    pub priority: i64,
    /// Attempts before it is marked failed.
    pub max_attempts: u32,
}

impl NewTask {
    /// A task with priority 5 and 3 attempts.
    pub fn new(account_id: &str, operation: &str, params: serde_json::Value) -> Self {
        NewTask {
            account_id: account_id.to_string(),
            operation: operation.to_string(),
            params,
            priority: 5,
            max_attempts: 3,
        }
    }
}

/// A task as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    /// Random id.
    pub task_id: String,
    /// The account it acts for.
    pub account_id: String,
    /// What it runs.
    pub operation: String,
    /// Canonical parameters.
    pub params_json: String,
    /// Where it stands.
    pub status: TaskStatus,
    /// 1 (first) … 10 (last).
    pub priority: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// What it produced, if it completed.
    pub result_json: Option<String>,
    /// Enqueued at (ms since epoch).
    pub created_at: i64,
    /// Not claimed before (ms since epoch).
    pub run_after: i64,
    /// Last claimed at.
    pub started_at: Option<i64>,
    /// Completed or failed at.
    pub finished_at: Option<i64>,
}

/// The result of enqueueing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The task's id (an existing one when de-duplicated).
    pub task_id: String,
    /// True when an identical queued or running task already existed.
    pub deduplicated: bool,
}

const COLUMNS: &str =
    "task_id, account_id, operation, params_json, status, priority, attempts, max_attempts,
                       last_error, result_json, created_at, run_after, started_at, finished_at";

fn task_from_row(r: &Row<'_>) -> rusqlite::Result<Task> {
    let status: String = r.get(4)?;
    Ok(Task {
        task_id: r.get(0)?,
        account_id: r.get(1)?,
        operation: r.get(2)?,
        params_json: r.get(3)?,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        priority: r.get(5)?,
        attempts: r.get::<_, i64>(6)? as u32,
        max_attempts: r.get::<_, i64>(7)? as u32,
        last_error: r.get(8)?,
        result_json: r.get(9)?,
        created_at: r.get(10)?,
        run_after: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
    })
}

fn new_task_id() -> String {
    let mut bytes = [0u8; 16];
    // Ids need uniqueness, not secrecy; a failed OS RNG falls back to time.
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
        bytes[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(bytes)
}

impl Store {
    /// Enqueues a task unless an identical one (same account, operation and
    /// canonical parameters) is already queued or running.
    pub fn enqueue_task(&self, task: &NewTask) -> Result<Enqueued, StoreError> {
        if !(1..=10).contains(&task.priority) {
            return Err(StoreError::InvalidArgument(format!(
                "Invalid priority '{}': out of range. Expected: 1 (first) to 10 (last)",
                task.priority
            )));
        }
        let mut params_json = String::new();
        write_canonical(&task.params, &mut params_json);
        let mut hasher = Sha256::new();
        for part in [&task.account_id, &task.operation, &params_json] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let dedupe_key = hex::encode(&hasher.finalize()[..16]);
        self.write_tx(|tx| {
            let existing: Option<String> = tx
                .prepare_cached(
                    "SELECT task_id FROM tasks WHERE dedupe_key = ?1 AND status IN ('queued', 'running') LIMIT 1",
                )?
                .query_row([&dedupe_key], |r| r.get(0))
                .optional()?;
            if let Some(task_id) = existing {
                // A more urgent request raises the pending task's priority.
                tx.execute(
                    "UPDATE tasks SET priority = min(priority, ?2) WHERE task_id = ?1",
                    params![task_id, task.priority],
                )?;
                return Ok(Enqueued {
                    task_id,
                    deduplicated: true,
                });
            }
            let task_id = new_task_id();
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO tasks (task_id, account_id, operation, params_json, dedupe_key, status, priority,
                                    attempts, max_attempts, created_at, run_after)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, 0, ?7, ?8, ?8)",
            )?
            .execute(params![
                task_id,
                task.account_id,
                task.operation,
                params_json,
                dedupe_key,
                task.priority,
                task.max_attempts.max(1) as i64,
                now
            ])?;
            Ok(Enqueued {
                task_id,
                deduplicated: false,
            })
        })
    }

    /// Claims the most urgent runnable task (lowest priority number, then
    /// oldest), marking it running. Atomic across threads and processes.
    pub fn claim_task(&self) -> Result<Option<Task>, StoreError> {
        let now = now_ms();
        self.write_tx(|tx| {
            let sql = format!(
                "UPDATE tasks SET status = 'running', started_at = ?1, attempts = attempts + 1
                 WHERE task_id = (SELECT task_id FROM tasks WHERE status = 'queued' AND run_after <= ?1
                                  ORDER BY priority ASC, created_at ASC LIMIT 1)
                 RETURNING {COLUMNS}"
            );
            Ok(tx
                .prepare_cached(&sql)?
                .query_row([now], task_from_row)
                .optional()?)
        })
    }

    /// Marks a running task completed with its result.
    pub fn complete_task(
        &self,
        task_id: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            tx.execute(
                "UPDATE tasks SET status = 'completed', finished_at = ?2, result_json = ?3, last_error = NULL
                 WHERE task_id = ?1",
                params![task_id, now_ms(), result.to_string()],
            )?;
            Ok(())
        })
    }

    /// Records a failed attempt: the task is queued again after `backoff`
    /// while attempts remain, otherwise marked failed. Returns the new status.
    pub fn fail_task(
        &self,
        task_id: &str,
        error: &str,
        backoff: Duration,
    ) -> Result<TaskStatus, StoreError> {
        let now = now_ms();
        self.write_tx(|tx| {
            let status: Option<String> = tx
                .query_row(
                    "UPDATE tasks SET
                        status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
                        run_after = ?2, last_error = ?3,
                        finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ?4 END
                     WHERE task_id = ?1 RETURNING status",
                    params![task_id, now + backoff.as_millis() as i64, error, now],
                    |r| r.get(0),
                )
                .optional()?;
            status
                .as_deref()
                .and_then(TaskStatus::parse)
                .ok_or_else(|| {
                    StoreError::InvalidArgument(format!(
                        "Invalid task_id '{task_id}': no such task"
                    ))
                })
        })
    }

    /// Puts tasks left `running` for longer than `older_than` (a crashed or
    /// killed worker) back in the queue. Returns how many.
    pub fn reap_stuck_tasks(&self, older_than: Duration) -> Result<u64, StoreError> {
        let cutoff = now_ms() - older_than.as_millis() as i64;
        self.write_tx(|tx| {
            let n = tx.execute(
                "UPDATE tasks SET status = CASE WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
                        last_error = coalesce(last_error, 'interrupted: the worker stopped while running it'),
                        finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ?2 END
                 WHERE status = 'running' AND started_at <= ?1",
                params![cutoff, now_ms()],
            )?;
            Ok(n as u64)
        })
    }

    /// Keeps only the newest `keep` finished tasks. Returns how many went.
    pub fn prune_tasks(&self, keep: u64) -> Result<u64, StoreError> {
        self.write_tx(|tx| {
            let n = tx.execute(
                "DELETE FROM tasks WHERE status IN ('completed', 'failed', 'cancelled') AND task_id NOT IN (
                    SELECT task_id FROM tasks WHERE status IN ('completed', 'failed', 'cancelled')
                    ORDER BY coalesce(finished_at, created_at) DESC LIMIT ?1)",
                [keep as i64],
            )?;
            Ok(n as u64)
        })
    }

    /// One task by id.
    pub fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {COLUMNS} FROM tasks WHERE task_id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([task_id], task_from_row)
                .optional()?)
        })
    }

    /// Tasks, newest first, optionally filtered by status and account.
    pub fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Task>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tasks WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR account_id = ?2)
                 ORDER BY created_at DESC LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![status.map(TaskStatus::as_str), account_id, limit as i64],
                task_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
