//! The task queue on a real redis-server: order, de-duplication, retries,
//! the reaper, pruning, listing, and exclusive claims from two servers.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{cache, key, redis};
use m365_redis::{RedisCache, RedisCacheError};
use m365_store::{NewTask, TaskStatus};
use serde_json::json;

fn task(account: &str, op: &str, n: i64, priority: i64) -> NewTask {
    let mut t = NewTask::new(account, op, json!({ "n": n }));
    t.priority = priority;
    t
}

async fn claim_ops(c: &RedisCache) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(t) = c.claim_task().await.unwrap() {
        out.push(format!("{}{}", t.operation, t.params_json));
    }
    out
}

#[tokio::test]
async fn priorities_then_fifo_and_dedupe() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(1));
    for (name, prio) in [("a", 5), ("b", 5), ("c", 1), ("d", 10), ("e", 5)] {
        let e = c.enqueue_task(&task("acct", name, 0, prio)).await.unwrap();
        assert!(!e.deduplicated);
        assert_eq!(e.task_id.len(), 32);
    }
    for bad in [0, 11, -1] {
        let err = c
            .enqueue_task(&task("acct", "x", 0, bad))
            .await
            .unwrap_err();
        assert!(matches!(err, RedisCacheError::InvalidArgument(_)), "{err}");
    }
    assert_eq!(c.stats().await.unwrap().tasks_pending, 5);
    assert_eq!(
        claim_ops(&c).await,
        [
            "c{\"n\":0}",
            "a{\"n\":0}",
            "b{\"n\":0}",
            "e{\"n\":0}",
            "d{\"n\":0}"
        ]
    );

    // Identical account + operation + canonical params → the same task.
    let mut first = NewTask::new("acct", "email_list", json!({"folder": "inbox", "top": 5}));
    first.priority = 8;
    let one = c.enqueue_task(&first).await.unwrap();
    let mut same = NewTask::new("acct", "email_list", json!({"top": 5, "folder": "inbox"}));
    same.priority = 8;
    let two = c.enqueue_task(&same).await.unwrap();
    assert_eq!(two.task_id, one.task_id);
    assert!(two.deduplicated);
    // Another account or other params are other tasks.
    let other = c
        .enqueue_task(&NewTask::new(
            "acct2",
            "email_list",
            json!({"folder": "inbox", "top": 5}),
        ))
        .await
        .unwrap();
    assert!(!other.deduplicated);
    // A more urgent duplicate raises the pending task's priority.
    same.priority = 2;
    assert!(c.enqueue_task(&same).await.unwrap().deduplicated);
    let t = c.get_task(&one.task_id).await.unwrap().unwrap();
    assert_eq!(t.priority, 2);
    let claimed = c.claim_task().await.unwrap().unwrap();
    assert_eq!(
        claimed.task_id, one.task_id,
        "raised above the priority-5 task"
    );
    assert_eq!(claimed.status, TaskStatus::Running);
    assert_eq!(claimed.attempts, 1);
    assert!(claimed.started_at.is_some());
    // Still deduplicated while running.
    assert!(c.enqueue_task(&same).await.unwrap().deduplicated);
    c.complete_task(&one.task_id, &json!({"ok": true}))
        .await
        .unwrap();
    // Finished: an identical request is a new task.
    let again = c.enqueue_task(&same).await.unwrap();
    assert!(!again.deduplicated);
    assert_ne!(again.task_id, one.task_id);

    let done = c.get_task(&one.task_id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.result_json.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(done.account_id, "acct");
    assert_eq!(done.params_json, r#"{"folder":"inbox","top":5}"#);
    assert!(done.finished_at.is_some());
    assert!(done.last_error.is_none());
    assert!(c.get_task("no-such-task").await.unwrap().is_none());
    assert!(c.get_task(&"0".repeat(32)).await.unwrap().is_none());
    c.complete_task(&"0".repeat(32), &json!(null))
        .await
        .unwrap();
}

#[tokio::test]
async fn retries_back_off_then_fail_and_the_reaper_requeues() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(1));
    let mut t = task("acct", "email_list", 1, 5);
    t.max_attempts = 2;
    let id = c.enqueue_task(&t).await.unwrap().task_id;
    let claimed = c.claim_task().await.unwrap().unwrap();
    assert_eq!(claimed.task_id, id);
    let status = c
        .fail_task(&id, "graph said 503", Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(status, TaskStatus::Queued);
    let queued = c.get_task(&id).await.unwrap().unwrap();
    assert_eq!(queued.last_error.as_deref(), Some("graph said 503"));
    assert!(queued.run_after >= queued.created_at + 300);
    assert!(
        c.claim_task().await.unwrap().is_none(),
        "not before run_after"
    );
    assert_eq!(c.stats().await.unwrap().tasks_pending, 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let retry = c.claim_task().await.unwrap().expect("due now");
    assert_eq!(retry.task_id, id);
    assert_eq!(retry.attempts, 2);
    let status = c.fail_task(&id, "again", Duration::ZERO).await.unwrap();
    assert_eq!(status, TaskStatus::Failed);
    let failed = c.get_task(&id).await.unwrap().unwrap();
    assert_eq!(failed.status, TaskStatus::Failed);
    assert!(failed.finished_at.is_some());
    assert!(c.claim_task().await.unwrap().is_none());
    let err = c
        .fail_task(&"f".repeat(32), "x", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, RedisCacheError::InvalidArgument(_)), "{err}");

    // The reaper: a claimed task whose worker died goes back to the queue…
    let id = c
        .enqueue_task(&task("acct", "file_list", 2, 5))
        .await
        .unwrap()
        .task_id;
    assert_eq!(c.claim_task().await.unwrap().unwrap().task_id, id);
    assert_eq!(
        c.reap_stuck_tasks(Duration::from_secs(60)).await.unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        c.reap_stuck_tasks(Duration::from_millis(10)).await.unwrap(),
        1
    );
    let back = c.get_task(&id).await.unwrap().unwrap();
    assert_eq!(back.status, TaskStatus::Queued);
    assert_eq!(
        back.last_error.as_deref(),
        Some("interrupted: the worker stopped while running it")
    );
    // …and is claimable again; out of attempts, the reaper fails it.
    let mut t = task("acct", "contact_list", 3, 5);
    t.max_attempts = 1;
    let last = c.enqueue_task(&t).await.unwrap().task_id;
    assert_eq!(c.claim_task().await.unwrap().unwrap().task_id, id);
    assert_eq!(c.claim_task().await.unwrap().unwrap().task_id, last);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        c.reap_stuck_tasks(Duration::from_millis(10)).await.unwrap(),
        2
    );
    assert_eq!(
        c.get_task(&last).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );
    assert_eq!(
        c.get_task(&id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
}

#[tokio::test]
async fn prune_and_list() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(1));
    let mut ids = Vec::new();
    for i in 0..6 {
        let acct = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            c.enqueue_task(&task(acct, "op", i, 5))
                .await
                .unwrap()
                .task_id,
        );
    }
    // Complete the first four (oldest first), one millisecond apart.
    for _ in 0..4 {
        let t = c.claim_task().await.unwrap().unwrap();
        c.complete_task(&t.task_id, &json!(null)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all = c.list_tasks(None, None, 100).await.unwrap();
    let listed: Vec<&str> = all.iter().map(|t| t.task_id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    assert_eq!(c.list_tasks(None, None, 2).await.unwrap().len(), 2);
    assert!(c.list_tasks(None, None, 0).await.unwrap().is_empty());
    let queued = c
        .list_tasks(Some(TaskStatus::Queued), None, 100)
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
    let even_done = c
        .list_tasks(Some(TaskStatus::Completed), Some("even"), 100)
        .await
        .unwrap();
    assert_eq!(even_done.len(), 2);
    assert!(even_done.iter().all(|t| t.account_id == "even"));

    assert_eq!(c.prune_tasks(1).await.unwrap(), 3);
    assert!(c.get_task(&ids[0]).await.unwrap().is_none());
    assert!(c.get_task(&ids[2]).await.unwrap().is_none());
    assert!(
        c.get_task(&ids[3]).await.unwrap().is_some(),
        "newest finished kept"
    );
    assert!(
        c.get_task(&ids[4]).await.unwrap().is_some(),
        "queued never pruned"
    );
    assert_eq!(c.list_tasks(None, None, 100).await.unwrap().len(), 3);
    assert_eq!(c.prune_tasks(1).await.unwrap(), 0);
    assert_eq!(c.prune_tasks(0).await.unwrap(), 1);
    assert_eq!(
        c.list_tasks(None, Some("even"), 100).await.unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_never_claim_the_same_task() {
    let Some(server) = redis() else { return };
    let a = cache(&server.url(), &key(1));
    let b = cache(&server.url(), &key(1));
    let mut expected = Vec::new();
    for i in 0..200 {
        let (cache, acct) = if i % 2 == 0 { (&a, "x") } else { (&b, "y") };
        let e = cache
            .enqueue_task(&task(acct, "refresh", i, 1 + i % 10))
            .await
            .unwrap();
        expected.push(e.task_id);
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let c = if w % 2 == 0 { a.clone() } else { b.clone() };
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = c.claim_task().await.unwrap() {
                c.complete_task(&t.task_id, &json!({"by": w}))
                    .await
                    .unwrap();
                got.push(t.task_id);
            }
            got
        }));
    }
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut per_worker = Vec::new();
    for w in workers {
        let got = w.await.unwrap();
        per_worker.push(got.len());
        for id in got {
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), 200, "every task claimed");
    assert!(counts.values().all(|&n| n == 1), "a task was claimed twice");
    for id in &expected {
        assert_eq!(counts.get(id), Some(&1));
    }
    assert!(
        per_worker.iter().filter(|&&n| n > 0).count() >= 2,
        "{per_worker:?}"
    );
    assert_eq!(a.stats().await.unwrap().tasks_pending, 0);
    assert_eq!(
        b.list_tasks(Some(TaskStatus::Completed), None, 1000)
            .await
            .unwrap()
            .len(),
        200
    );
}
