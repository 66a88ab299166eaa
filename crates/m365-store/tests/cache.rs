//! Cache engine behaviour on the real SQLCipher file.

mod common;

use std::time::Duration;

use common::*;
use m365_store::{
    CacheKey, Dependencies, EntryKey, Freshness, Invalidation, Scope, StoreConfig, StoreError,
    TtlPolicy,
};
use serde_json::json;

const ACCOUNT: &str = "00000000-0000-0000-0000-000000000001.tenant";
const OTHER: &str = "00000000-0000-0000-0000-000000000002.tenant";

#[test]
fn entries_go_fresh_then_stale_then_expired_and_count_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    let key = EntryKey::new(
        ACCOUNT,
        "email_list",
        &json!({"folder": "inbox", "limit": 50}),
    );
    assert!(store.get(&key).unwrap().is_none());
    let ttl = TtlPolicy {
        fresh: Duration::from_millis(300),
        expires: Duration::from_millis(700),
    };
    store
        .set_with_ttl(
            &key,
            &Dependencies::container("inbox"),
            b"{\"value\":[1]}",
            ttl,
        )
        .unwrap();

    let hit = store.get(&key).unwrap().unwrap();
    assert_eq!(hit.freshness, Freshness::Fresh);
    assert_eq!(hit.payload, b"{\"value\":[1]}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        store.get(&key).unwrap().unwrap().freshness,
        Freshness::Stale
    );
    std::thread::sleep(Duration::from_millis(400));
    let expired = store.get(&key).unwrap().unwrap();
    assert_eq!(
        expired.freshness,
        Freshness::Expired,
        "expired copies stay for stale-if-error"
    );
    assert_eq!(expired.payload, b"{\"value\":[1]}");

    let stats = store.stats().unwrap();
    assert_eq!(stats.total.hits, 1);
    assert_eq!(stats.total.stale_hits, 1);
    assert_eq!(
        stats.total.misses, 2,
        "the first absent read and the expired read"
    );
    assert_eq!(stats.total.writes, 1);
    assert_eq!(stats.total.hit_rate, Some(0.5));
    let (resource, row) = &stats.per_resource[0];
    assert_eq!(resource, "email_list");
    assert_eq!(row.entries, 1);

    // The cheap counters agree with the full statistics, without sizes.
    let counters = store.counter_totals().unwrap();
    assert_eq!(counters.hits, 1);
    assert_eq!(counters.stale_hits, 1);
    assert_eq!(counters.misses, 2);
    assert_eq!(counters.writes, 1);
    assert_eq!(counters.hit_rate, Some(0.5));
    assert_eq!(counters.entries, 0, "counters read no entries");
    store.get(&key).unwrap();
    assert_eq!(
        store.counter_totals().unwrap().misses,
        3,
        "unflushed counts are included"
    );
}

#[test]
fn large_payloads_are_compressed_and_oversized_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("cache.db"));
    config.max_entry_bytes = 512 * 1024;
    let store = open_with(config, &CacheKey::generate());

    let small = payload("small", 1000);
    let big = payload("big", 200 * 1024);
    store
        .set(
            &message_key(ACCOUNT, "small"),
            &Dependencies::none(),
            &small,
        )
        .unwrap();
    store
        .set(&message_key(ACCOUNT, "big"), &Dependencies::none(), &big)
        .unwrap();
    assert_eq!(
        store
            .get(&message_key(ACCOUNT, "big"))
            .unwrap()
            .unwrap()
            .payload,
        big
    );
    let stats = store.stats().unwrap();
    assert_eq!(stats.total.raw_bytes, (small.len() + big.len()) as u64);
    assert!(
        stats.total.stored_bytes < stats.total.raw_bytes / 4,
        "the 200 KiB payload should be stored compressed: {stats:?}"
    );
    assert!(stats.compression_ratio > 4.0);

    // Random bytes do not compress: a 600 KiB one exceeds the 512 KiB cap.
    let mut noise = vec![0u8; 600 * 1024];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut noise);
    let err = store
        .set(
            &message_key(ACCOUNT, "noise"),
            &Dependencies::none(),
            &noise,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::EntryTooLarge { limit: 524288, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not cached"));
    assert!(store.get(&message_key(ACCOUNT, "noise")).unwrap().is_none());
}

#[test]
fn invalidation_is_precise_by_item_container_and_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    let list = |account: &str, folder: &str| {
        EntryKey::new(
            account,
            "email_list",
            &json!({"folder_id": folder, "limit": 50}),
        )
    };
    for account in [ACCOUNT, OTHER] {
        for folder in ["inbox", "sentitems", "archive"] {
            store
                .set(
                    &list(account, folder),
                    &Dependencies::container(folder),
                    b"[]",
                )
                .unwrap();
        }
        for id in ["m1", "m2"] {
            store
                .set(&message_key(account, id), &Dependencies::item(id), b"{}")
                .unwrap();
        }
    }

    // A move of m1 from inbox to archive: exactly those three entries go.
    let removed = store
        .invalidate(
            &[
                Invalidation::new(ACCOUNT, "email_get", Scope::Item("m1".into())),
                Invalidation::new(ACCOUNT, "email_list", Scope::Container("inbox".into())),
                Invalidation::new(ACCOUNT, "email_list", Scope::Container("archive".into())),
            ],
            "email_move",
        )
        .unwrap();
    assert_eq!(removed, 3);
    assert!(store.get(&message_key(ACCOUNT, "m1")).unwrap().is_none());
    assert!(store.get(&list(ACCOUNT, "inbox")).unwrap().is_none());
    assert!(store.get(&list(ACCOUNT, "archive")).unwrap().is_none());
    assert!(
        store.get(&message_key(ACCOUNT, "m2")).unwrap().is_some(),
        "other items stay"
    );
    assert!(
        store.get(&list(ACCOUNT, "sentitems")).unwrap().is_some(),
        "other folders stay"
    );
    assert!(
        store.get(&list(OTHER, "inbox")).unwrap().is_some(),
        "other accounts stay"
    );
    assert!(
        store.get(&message_key(OTHER, "m1")).unwrap().is_some(),
        "same id, other account stays"
    );

    let removed = store
        .invalidate(
            &[Invalidation::new(OTHER, "email_list", Scope::All)],
            "test",
        )
        .unwrap();
    assert_eq!(removed, 3);
    assert!(store.get(&message_key(OTHER, "m2")).unwrap().is_some());
    assert_eq!(store.stats().unwrap().total.invalidations, 6);
}

#[test]
fn a_list_depends_on_every_item_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    let inbox = EntryKey::new(ACCOUNT, "email_list", &json!({"folder": "inbox"}));
    let archive = EntryKey::new(ACCOUNT, "email_list", &json!({"folder": "archive"}));
    store
        .set(
            &inbox,
            &Dependencies::container("inbox").with_items(["m1", "m2", "m3"]),
            b"[]",
        )
        .unwrap();
    store
        .set(
            &archive,
            &Dependencies::container("archive").with_items(["m9"]),
            b"[]",
        )
        .unwrap();
    // Re-setting replaces the dependencies: m1 is no longer listed.
    store
        .set(
            &inbox,
            &Dependencies::container("inbox").with_items(["m2", "m3"]),
            b"[]",
        )
        .unwrap();
    let removed = store
        .invalidate(
            &[Invalidation::new(
                ACCOUNT,
                "email_list",
                Scope::Item("m1".into()),
            )],
            "test",
        )
        .unwrap();
    assert_eq!(
        removed, 0,
        "m1 left the inbox listing when it was re-cached"
    );
    let removed = store
        .invalidate(
            &[Invalidation::new(
                ACCOUNT,
                "email_list",
                Scope::Item("m3".into()),
            )],
            "test",
        )
        .unwrap();
    assert_eq!(removed, 1);
    assert!(store.get(&inbox).unwrap().is_none());
    assert!(
        store.get(&archive).unwrap().is_some(),
        "a list without m3 stays"
    );
    // Another account's m9 is another message.
    let removed = store
        .invalidate(
            &[Invalidation::new(
                OTHER,
                "email_list",
                Scope::Item("m9".into()),
            )],
            "test",
        )
        .unwrap();
    assert_eq!(removed, 0);
}

#[test]
fn patterns_treat_only_star_as_a_wildcard() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    // Accounts whose ids differ where `_` and `%` would match as LIKE wildcards.
    let accounts = ["a_b", "axb", "a%b", "aXYb"];
    for account in accounts {
        store
            .set(&message_key(account, "m"), &Dependencies::none(), b"{}")
            .unwrap();
    }
    assert_eq!(
        store
            .invalidate_pattern("email_get:a_b:*", None, "test")
            .unwrap(),
        1
    );
    assert!(store.get(&message_key("axb", "m")).unwrap().is_some());
    assert_eq!(
        store
            .invalidate_pattern("email_get:a%b:*", None, "test")
            .unwrap(),
        1
    );
    assert!(store.get(&message_key("aXYb", "m")).unwrap().is_some());
    assert_eq!(
        store
            .invalidate_pattern("email_get:?xb:*", None, "test")
            .unwrap(),
        0
    );
    // Account filter limits a broad pattern.
    assert_eq!(
        store
            .invalidate_pattern("email_get:*", Some("axb"), "test")
            .unwrap(),
        1
    );
    assert!(store.get(&message_key("aXYb", "m")).unwrap().is_some());
    assert!(store.invalidate_pattern("", None, "test").is_err());
}

#[test]
fn cleanup_at_80_percent_removes_expired_first_then_lru_down_to_60_and_file_shrinks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("cache.db"));
    config.max_total_bytes = 2 * 1024 * 1024; // threshold 1.6 MiB, target 1.2 MiB
    config.compress_threshold = usize::MAX; // sizes below are exact
    config.access_granularity = Duration::ZERO; // every read counts for LRU
    let store = open_with(config, &CacheKey::generate());
    let entry = 10 * 1024;
    let expired_ttl = TtlPolicy {
        fresh: Duration::ZERO,
        expires: Duration::from_millis(1),
    };
    // 20 entries that will be expired.
    for i in 0..20 {
        let key = message_key(ACCOUNT, &format!("old-{i}"));
        store
            .set_with_ttl(
                &key,
                &Dependencies::none(),
                &payload("x", entry),
                expired_ttl,
            )
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(5));
    // 140 live entries; the first ten are read again so they are recent.
    fill(&store, ACCOUNT, 140, entry);
    for i in 0..10 {
        assert!(
            store
                .get(&message_key(ACCOUNT, &format!("msg-{i}")))
                .unwrap()
                .is_some()
        );
    }
    std::thread::sleep(Duration::from_millis(5));
    // Below the threshold maintenance evicts nothing, but it checkpoints the
    // WAL so the file size is comparable.
    assert_eq!(store.maintain().unwrap().evicted, 0);
    let size_before = std::fs::metadata(store.path()).unwrap().len();
    // 160 × 10 KiB = 1.6 MiB: the next writes cross the threshold.
    fill_more(&store, 10, entry);
    let stats = store.stats().unwrap();
    assert!(
        stats.total.stored_bytes <= (1.2 * 1024.0 * 1024.0) as u64 + entry as u64 * 256,
        "cleanup should bring the total near 60 %: {}",
        stats.total.stored_bytes
    );
    assert!(stats.total.evictions >= 20, "{stats:?}");
    for i in 0..20 {
        assert!(
            store
                .get(&message_key(ACCOUNT, &format!("old-{i}")))
                .unwrap()
                .is_none()
        );
    }
    for i in 0..10 {
        assert!(
            store
                .get(&message_key(ACCOUNT, &format!("msg-{i}")))
                .unwrap()
                .is_some(),
            "recently read entry msg-{i} must survive LRU eviction"
        );
    }
    assert!(
        store
            .get(&message_key(ACCOUNT, "msg-10"))
            .unwrap()
            .is_none(),
        "least recently used goes"
    );
    let size_after = std::fs::metadata(store.path()).unwrap().len();
    assert!(
        size_after < size_before,
        "file should shrink: {size_before} → {size_after}"
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

fn fill_more(store: &m365_store::Store, n: usize, len: usize) {
    for i in 0..n {
        let id = format!("new-{i}");
        store
            .set(
                &message_key(ACCOUNT, &id),
                &Dependencies::item(&id),
                &payload(&id, len),
            )
            .unwrap();
    }
}

#[test]
fn maintenance_sweeps_long_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("cache.db"));
    config.expired_retention = Duration::from_millis(10);
    let store = open_with(config, &CacheKey::generate());
    let gone = TtlPolicy {
        fresh: Duration::ZERO,
        expires: Duration::from_millis(1),
    };
    store
        .set_with_ttl(
            &message_key(ACCOUNT, "a"),
            &Dependencies::none(),
            b"{}",
            gone,
        )
        .unwrap();
    store
        .set(&message_key(ACCOUNT, "b"), &Dependencies::none(), b"{}")
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let report = store.maintain().unwrap();
    assert_eq!(report.swept, 1);
    assert!(store.get(&message_key(ACCOUNT, "a")).unwrap().is_none());
    assert!(store.get(&message_key(ACCOUNT, "b")).unwrap().is_some());
}

#[test]
fn stats_survive_a_restart_and_purge_removes_an_account() {
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::generate();
    {
        let store = open(dir.path(), &key);
        fill(&store, ACCOUNT, 3, 100);
        fill(&store, OTHER, 2, 100);
        store.get(&message_key(ACCOUNT, "msg-0")).unwrap();
        store.get(&message_key(ACCOUNT, "absent")).unwrap();
    }
    let store = open(dir.path(), &key);
    let stats = store.stats().unwrap();
    assert_eq!(stats.total.hits, 1);
    assert_eq!(stats.total.misses, 1);
    assert_eq!(stats.total.writes, 5);
    assert_eq!(stats.per_account.len(), 2);
    assert_eq!(store.purge_account(ACCOUNT).unwrap(), 3);
    let stats = store.stats().unwrap();
    assert_eq!(stats.total.entries, 2);
    assert_eq!(stats.per_account.len(), 1);
    assert_eq!(stats.per_account[0].0, OTHER);
}

#[test]
fn task_queue_orders_dedupes_retries_and_reaps() {
    use m365_store::{NewTask, TaskStatus};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    let low = NewTask {
        priority: 8,
        ..NewTask::new(ACCOUNT, "contact_list", json!({"limit": 50}))
    };
    let high = NewTask {
        priority: 1,
        ..NewTask::new(ACCOUNT, "emailfolders_get_tree", json!({"max_depth": 10}))
    };
    let a = store.enqueue_task(&low).unwrap();
    let b = store.enqueue_task(&high).unwrap();
    assert!(!a.deduplicated && !b.deduplicated);
    // Same parameters in another key order: the same task.
    let again = store
        .enqueue_task(&NewTask {
            priority: 8,
            ..NewTask::new(ACCOUNT, "contact_list", json!({"limit": 50}))
        })
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.task_id, a.task_id);

    let first = store.claim_task().unwrap().unwrap();
    assert_eq!(first.task_id, b.task_id, "priority 1 runs first");
    assert_eq!(first.status, TaskStatus::Running);
    store
        .complete_task(&first.task_id, &json!({"ok": true}))
        .unwrap();

    let second = store.claim_task().unwrap().unwrap();
    assert_eq!(second.task_id, a.task_id);
    assert_eq!(
        store
            .fail_task(&second.task_id, "Graph 503", Duration::from_millis(50))
            .unwrap(),
        TaskStatus::Queued
    );
    assert!(
        store.claim_task().unwrap().is_none(),
        "backoff holds it back"
    );
    std::thread::sleep(Duration::from_millis(60));
    let retry = store.claim_task().unwrap().unwrap();
    assert_eq!(retry.attempts, 2);
    // The worker "crashes": the reaper puts it back.
    assert_eq!(store.reap_stuck_tasks(Duration::ZERO).unwrap(), 1);
    let third = store.claim_task().unwrap().unwrap();
    assert_eq!(third.attempts, 3);
    assert_eq!(
        store
            .fail_task(&third.task_id, "Graph 503", Duration::ZERO)
            .unwrap(),
        TaskStatus::Failed
    );
    let stored = store.get_task(&third.task_id).unwrap().unwrap();
    assert_eq!(stored.last_error.as_deref(), Some("Graph 503"));
    assert_eq!(
        store
            .list_tasks(Some(TaskStatus::Failed), None, 10)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.prune_tasks(1).unwrap(), 1);
    assert_eq!(store.list_tasks(None, None, 10).unwrap().len(), 1);
}

#[test]
fn accounts_and_refresh_tokens_round_trip_and_removal_purges_the_cache() {
    use m365_store::AccountRecord;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &CacheKey::generate());
    let record = AccountRecord {
        account_id: ACCOUNT.into(),
        username: "Adele.Vance@contoso.example".into(),
        display_name: Some("Adele Vance".into()),
        tenant_id: "tenant".into(),
        account_type: "work_school".into(),
    };
    store.upsert_account(&record, Some("refresh-1")).unwrap();
    store.upsert_account(&record, None).unwrap();
    assert_eq!(
        store.refresh_token(ACCOUNT).unwrap().unwrap().as_str(),
        "refresh-1"
    );
    store.set_refresh_token(ACCOUNT, "refresh-2").unwrap();
    assert_eq!(
        store.refresh_token(ACCOUNT).unwrap().unwrap().as_str(),
        "refresh-2"
    );
    assert_eq!(store.list_accounts().unwrap(), vec![record]);
    fill(&store, ACCOUNT, 2, 50);
    assert!(store.remove_account(ACCOUNT).unwrap());
    assert!(store.list_accounts().unwrap().is_empty());
    assert_eq!(store.stats().unwrap().total.entries, 0);
    assert!(store.set_refresh_token(ACCOUNT, "x").is_err());
}
