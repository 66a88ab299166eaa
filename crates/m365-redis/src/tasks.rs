//! The task queue on Redis, with the semantics of `m365_store`'s: priorities
//! 1 (first) to 10, FIFO within a priority, de-duplication of identical
//! queued or running tasks, `run_after` for retry backoff, attempts, and a
//! reaper for tasks a stopped worker left running. Claiming is one Lua
//! script, so two servers never claim the same task.

use std::collections::HashMap;
use std::time::Duration;

use m365_store::{Enqueued, NewTask, Task, TaskStatus, now_ms, write_canonical};
use rand::{RngCore, TryRngCore};

use crate::cache::{RedisCache, parse_i64};
use crate::crypto::ad;
use crate::error::RedisCacheError;
use crate::scripts;

type Result<T> = std::result::Result<T, RedisCacheError>;

/// Tasks fetched per step when listing.
const LIST_BATCH: isize = 200;

/// The `last_error` of a task the reaper puts back.
const INTERRUPTED: &str = "interrupted: the worker stopped while running it";

fn new_task_id() -> String {
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::rng().fill_bytes(&mut bytes);
    }
    hex::encode(bytes)
}

/// Task ids are 32 lowercase hex digits; anything else names no task (and
/// never reaches a key name).
fn valid_task_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl RedisCache {
    fn k_task(&self, id: &str) -> String {
        format!("{}:t:{id}", self.ns())
    }

    fn seal_task_field(&self, id: &str, field: &str, plain: &[u8]) -> Vec<u8> {
        let tk = self.k_task(id);
        self.inner
            .crypto
            .seal(&ad(&[tk.as_bytes(), field.as_bytes()]), plain)
    }

    fn open_task_field(&self, id: &str, field: &str, blob: &[u8]) -> Result<String> {
        let tk = self.k_task(id);
        self.inner
            .crypto
            .open_text(&ad(&[tk.as_bytes(), field.as_bytes()]), blob)
    }

    /// Builds a task from its hash.
    fn task_from_fields(&self, id: &str, mut m: HashMap<String, Vec<u8>>) -> Result<Task> {
        let int = |m: &HashMap<String, Vec<u8>>, f: &str| m.get(f).and_then(|v| parse_i64(v));
        let need =
            |v: Option<i64>| v.ok_or_else(|| RedisCacheError::corrupt("task is missing fields"));
        let mut sealed = |f: &str| -> Result<Option<String>> {
            m.remove(f)
                .map(|blob| self.open_task_field(id, f, &blob))
                .transpose()
        };
        let account_id = sealed("ae")?;
        let params_json = sealed("pj")?;
        let last_error = sealed("er")?;
        let result_json = sealed("rs")?;
        let (Some(account_id), Some(params_json)) = (account_id, params_json) else {
            return Err(RedisCacheError::corrupt("task is missing fields"));
        };
        let status = m
            .get("st")
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(TaskStatus::parse)
            .unwrap_or(TaskStatus::Failed);
        Ok(Task {
            task_id: id.to_string(),
            account_id,
            operation: m
                .get("op")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
            params_json,
            status,
            priority: need(int(&m, "pr"))?,
            attempts: need(int(&m, "at"))?.max(0) as u32,
            max_attempts: need(int(&m, "ma"))?.max(0) as u32,
            last_error,
            result_json,
            created_at: need(int(&m, "c"))?,
            run_after: need(int(&m, "ra"))?,
            started_at: int(&m, "sa"),
            finished_at: int(&m, "fa"),
        })
    }

    /// Enqueues a task unless an identical one (same account, operation and
    /// canonical parameters) is already queued or running; then that one's
    /// id comes back with `deduplicated`, and its priority is raised to
    /// this one's if more urgent.
    pub async fn enqueue_task(&self, task: &NewTask) -> Result<Enqueued> {
        if !(1..=10).contains(&task.priority) {
            return Err(RedisCacheError::InvalidArgument(format!(
                "Invalid priority '{}': out of range. Expected: 1 (first) to 10 (last)",
                task.priority
            )));
        }
        if task.operation.is_empty() || task.operation.len() > 200 {
            return Err(RedisCacheError::InvalidArgument(
                "Invalid operation: expected 1 to 200 characters".into(),
            ));
        }
        let mut params_json = String::new();
        write_canonical(&task.params, &mut params_json);
        let acct = self.account_name(&task.account_id);
        let dedupe = self.inner.crypto.name(
            "task",
            &[
                task.account_id.as_bytes(),
                task.operation.as_bytes(),
                params_json.as_bytes(),
            ],
        );
        let id = new_task_id();
        let mut inv = scripts::ENQUEUE.prepare_invoke();
        inv.key(format!("{}:tq:dd:{dedupe}", self.ns()))
            .arg(self.ns())
            .arg(&id)
            .arg(now_ms())
            .arg(task.priority)
            .arg(&acct)
            .arg(self.seal_task_field(&id, "ae", task.account_id.as_bytes()))
            .arg(&task.operation)
            .arg(self.seal_task_field(&id, "pj", params_json.as_bytes()))
            .arg(task.max_attempts.max(1))
            .arg(&dedupe);
        let (task_id, deduplicated): (String, i64) = self.script(&inv).await?;
        Ok(Enqueued {
            task_id,
            deduplicated: deduplicated == 1,
        })
    }

    /// Claims the most urgent runnable task (lowest priority number, then
    /// oldest), marking it running and counting an attempt. Atomic across
    /// servers.
    pub async fn claim_task(&self) -> Result<Option<Task>> {
        let mut inv = scripts::CLAIM.prepare_invoke();
        inv.arg(self.ns()).arg(now_ms());
        let flat: Option<Vec<Vec<u8>>> = self.script(&inv).await?;
        let Some(flat) = flat else {
            return Ok(None);
        };
        let mut it = flat.into_iter();
        let id = it
            .next()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| RedisCacheError::corrupt("claimed task without id"))?;
        let mut fields = HashMap::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            fields.insert(String::from_utf8_lossy(&k).into_owned(), v);
        }
        self.task_from_fields(&id, fields)
            .inspect_err(|e| tracing::warn!(error = %e, "a claimed task could not be read; the reaper will put it back"))
            .map(Some)
    }

    /// Marks a task completed with its result (an unknown id is a no-op).
    pub async fn complete_task(&self, task_id: &str, result: &serde_json::Value) -> Result<()> {
        if !valid_task_id(task_id) {
            return Ok(());
        }
        let mut inv = scripts::COMPLETE.prepare_invoke();
        inv.arg(self.ns())
            .arg(task_id)
            .arg(now_ms())
            .arg(self.seal_task_field(task_id, "rs", result.to_string().as_bytes()));
        let _: i64 = self.script(&inv).await?;
        Ok(())
    }

    /// Records a failed attempt: the task is queued again after `backoff`
    /// while attempts remain, otherwise marked failed. Returns the new status.
    pub async fn fail_task(
        &self,
        task_id: &str,
        error: &str,
        backoff: Duration,
    ) -> Result<TaskStatus> {
        let no_such = || {
            RedisCacheError::InvalidArgument(if valid_task_id(task_id) {
                format!("Invalid task_id '{task_id}': no such task")
            } else {
                "Invalid task_id: no such task".to_string()
            })
        };
        if !valid_task_id(task_id) {
            return Err(no_such());
        }
        let now = now_ms();
        let mut inv = scripts::FAIL.prepare_invoke();
        inv.arg(self.ns())
            .arg(task_id)
            .arg(now)
            .arg(now + backoff.as_millis() as i64)
            .arg(self.seal_task_field(task_id, "er", error.as_bytes()));
        let status: Option<String> = self.script(&inv).await?;
        status
            .as_deref()
            .and_then(TaskStatus::parse)
            .ok_or_else(no_such)
    }

    /// Puts tasks left running for longer than `older_than` (a crashed or
    /// killed worker) back in the queue, or marks them failed when out of
    /// attempts. Returns how many.
    pub async fn reap_stuck_tasks(&self, older_than: Duration) -> Result<u64> {
        let now = now_ms();
        let cutoff = now - older_than.as_millis() as i64;
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(format!("{}:tq:running", self.ns()))
            .arg("-inf")
            .arg(cutoff)
            .arg("LIMIT")
            .arg(0)
            .arg(1000);
        let ids: Vec<String> = self.cmd(&cmd).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut inv = scripts::REAP.prepare_invoke();
        inv.arg(self.ns()).arg(now).arg(cutoff);
        for id in &ids {
            inv.arg(id)
                .arg(self.seal_task_field(id, "er", INTERRUPTED.as_bytes()));
        }
        self.script(&inv).await
    }

    /// Keeps only the newest `keep` finished tasks. Returns how many went.
    pub async fn prune_tasks(&self, keep: u64) -> Result<u64> {
        let mut inv = scripts::PRUNE.prepare_invoke();
        inv.arg(self.ns()).arg(keep.min(1 << 50));
        self.script(&inv).await
    }

    /// One task by id.
    pub async fn get_task(&self, task_id: &str) -> Result<Option<Task>> {
        if !valid_task_id(task_id) {
            return Ok(None);
        }
        let fields: HashMap<String, Vec<u8>> = self
            .cmd(redis::cmd("HGETALL").arg(self.k_task(task_id)))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        self.task_from_fields(task_id, fields).map(Some)
    }

    /// Tasks, newest first, optionally filtered by status and account.
    pub async fn list_tasks(
        &self,
        status: Option<TaskStatus>,
        account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Task>> {
        let set = match account_id {
            Some(a) => format!("{}:tq:acct:{}", self.ns(), self.account_name(a)),
            None => format!("{}:tq:all", self.ns()),
        };
        let mut out = Vec::new();
        let mut start: isize = 0;
        while out.len() < limit as usize {
            let mut cmd = redis::cmd("ZREVRANGE");
            cmd.arg(&set).arg(start).arg(start + LIST_BATCH - 1);
            let ids: Vec<String> = self.cmd(&cmd).await?;
            if ids.is_empty() {
                break;
            }
            start += ids.len() as isize;
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(self.k_task(id));
            }
            let rows: Vec<HashMap<String, Vec<u8>>> = self.pipe(&pipe).await?;
            for (id, fields) in ids.iter().zip(rows) {
                if fields.is_empty() {
                    continue; // pruned or purged meanwhile
                }
                if let Some(want) = status
                    && fields.get("st").map(Vec::as_slice) != Some(want.as_str().as_bytes())
                {
                    continue;
                }
                out.push(self.task_from_fields(id, fields)?);
                if out.len() >= limit as usize {
                    break;
                }
            }
        }
        Ok(out)
    }
}
