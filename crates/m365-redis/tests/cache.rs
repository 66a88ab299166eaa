//! Entries, lifetimes, compression, limits, invalidation between two
//! servers, statistics and housekeeping, against a real redis-server.

mod common;

use std::time::Duration;

use common::{all_keys, cache, cache_with, key, redis};
use m365_redis::{RedisCache, RedisCacheError};
use m365_store::{Dependencies, EntryKey, Freshness, Invalidation, NewTask, Scope, StatsRow};
use rand::RngCore;
use serde_json::json;

fn row<'a>(rows: &'a [(String, StatsRow)], name: &str) -> &'a StatsRow {
    &rows
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no stats row for {name}: {rows:?}"))
        .1
}

#[tokio::test]
async fn round_trip_then_fresh_stale_expired_gone() {
    let Some(server) = redis() else { return };
    // email_list: fresh 2 min, expires 10 min → × 0.001 = 120 ms / 600 ms.
    let c = cache_with(&server.url(), "m365mcp", &key(1), |cfg| {
        cfg.ttl_scale = 0.001;
        cfg.expired_retention = Duration::from_millis(1000);
    });
    let k = EntryKey::new("acct-1", "email_list", &json!({"folder": "inbox"}));
    assert!(c.get(&k).await.unwrap().is_none());
    c.set(&k, &Dependencies::container("inbox"), br#"{"value":[1]}"#)
        .await
        .unwrap();
    let hit = c.get(&k).await.unwrap().expect("stored");
    assert_eq!(hit.payload, br#"{"value":[1]}"#);
    assert_eq!(hit.freshness, Freshness::Fresh);
    assert_eq!(hit.fresh_until_ms - hit.created_at_ms, 120);
    assert_eq!(hit.expires_at_ms - hit.created_at_ms, 600);
    assert_eq!(c.freshness(&k).await.unwrap(), Some(Freshness::Fresh));

    tokio::time::sleep(Duration::from_millis(200)).await;
    let stale = c.get(&k).await.unwrap().expect("still there");
    assert_eq!(stale.freshness, Freshness::Stale);
    assert_eq!(stale.payload, br#"{"value":[1]}"#);

    tokio::time::sleep(Duration::from_millis(450)).await;
    let expired = c.get(&k).await.unwrap().expect("kept for stale-if-error");
    assert_eq!(expired.freshness, Freshness::Expired);
    assert_eq!(expired.payload, br#"{"value":[1]}"#);
    assert_eq!(c.freshness(&k).await.unwrap(), Some(Freshness::Expired));

    // expires + retention = 1.6 s after the set: Redis removes it.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(c.get(&k).await.unwrap().is_none());
    assert_eq!(c.freshness(&k).await.unwrap(), None);

    let stats = c.stats().await.unwrap();
    let t = &stats.total;
    assert_eq!(
        (t.hits, t.stale_hits, t.misses, t.writes),
        (1, 1, 3, 1),
        "{t:?}"
    );
    assert_eq!(t.hit_rate, Some(2.0 / 5.0));
    assert_eq!(t.entries, 0);
    assert_eq!(row(&stats.per_account, "acct-1").writes, 1);
    assert_eq!(row(&stats.per_resource, "email_list").misses, 3);
    // The index still names the entry Redis expired; maintain drops it.
    assert_eq!(c.maintain().await.unwrap(), 1);
    assert_eq!(c.maintain().await.unwrap(), 0);
    let mut raw = server.raw().await;
    let left = all_keys(&mut raw).await;
    assert!(
        left.iter()
            .all(|k| !k.contains(":ix:") && !k.contains(":tg:")),
        "{left:?}"
    );
}

#[tokio::test]
async fn overwrite_replaces_payload_and_dependencies() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(1));
    let k = EntryKey::new("a", "email_get", &json!({"id": "m1"}));
    c.set(
        &k,
        &Dependencies::item("m1").with_container("inbox"),
        b"one",
    )
    .await
    .unwrap();
    c.set(&k, &Dependencies::item("m1"), b"two").await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().unwrap().payload, b"two");
    // The old container tag no longer reaches it.
    let gone = c
        .invalidate(
            &[Invalidation::new(
                "a",
                "email_get",
                Scope::Container("inbox".into()),
            )],
            "test",
        )
        .await
        .unwrap();
    assert_eq!(gone, 0);
    assert!(c.get(&k).await.unwrap().is_some());
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.total.entries, 1);
    assert_eq!(stats.total.writes, 2);
    assert_eq!(stats.total.raw_bytes, 3);

    // An entry Redis dropped early (eviction): the statistics stop counting
    // it at once, and maintain removes it from its indexes.
    let mut raw = server.raw().await;
    let entry = all_keys(&mut raw)
        .await
        .into_iter()
        .find(|k| k.starts_with("m365mcp:e:"))
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&entry)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(c.stats().await.unwrap().total.entries, 0);
    assert_eq!(c.maintain().await.unwrap(), 1);
    assert!(c.get(&k).await.unwrap().is_none());
}

#[tokio::test]
async fn large_payloads_are_compressed_and_oversized_refused() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(1));
    let big_json = {
        let items: Vec<_> = (0..3000)
            .map(|i| json!({"id": format!("msg-{i}"), "subject": "quarterly report", "read": i % 2 == 0}))
            .collect();
        serde_json::to_vec(&json!({ "value": items })).unwrap()
    };
    assert!(big_json.len() >= 50 * 1024);
    let k = EntryKey::new("a", "email_list", &json!({"folder": "inbox", "top": 3000}));
    c.set(&k, &Dependencies::none(), &big_json).await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().unwrap().payload, big_json);

    let mut raw = server.raw().await;
    let entry = all_keys(&mut raw)
        .await
        .into_iter()
        .find(|k| k.starts_with("m365mcp:e:"))
        .unwrap();
    let (enc, sb, rb): (String, usize, usize) = redis::cmd("HMGET")
        .arg(&entry)
        .arg("e")
        .arg("sb")
        .arg("rb")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(enc, "1", "zstd encoding");
    assert_eq!(rb, big_json.len());
    assert!(sb * 4 < rb, "compressed {sb} of {rb}");
    let stats = c.stats().await.unwrap();
    assert!(stats.compression_ratio > 4.0, "{}", stats.compression_ratio);
    assert_eq!(stats.total.stored_bytes, sb as u64);
    assert!(stats.file_bytes > 0, "used_memory reported");

    // Just under the threshold: stored raw.
    let small = vec![b'x'; 50 * 1024 - 1];
    let ks = EntryKey::new("a", "email_get", &json!({"id": "small"}));
    c.set(&ks, &Dependencies::none(), &small).await.unwrap();
    assert_eq!(c.get(&ks).await.unwrap().unwrap().payload, small);

    // 11 MiB of random bytes does not compress below the 10 MiB cap.
    let mut huge = vec![0u8; 11 * 1024 * 1024];
    rand::rng().fill_bytes(&mut huge);
    let kh = EntryKey::new("a", "file_get", &json!({"id": "huge"}));
    let err = c.set(&kh, &Dependencies::none(), &huge).await.unwrap_err();
    assert!(
        matches!(err, RedisCacheError::TooLarge { limit, .. } if limit == 10 * 1024 * 1024),
        "{err}"
    );
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(c.get(&kh).await.unwrap().is_none());
    assert_eq!(c.stats().await.unwrap().total.entries, 2);

    // A 9 MiB random payload fits and goes through the blocking-thread path.
    huge.truncate(9 * 1024 * 1024);
    c.set(&kh, &Dependencies::none(), &huge).await.unwrap();
    assert_eq!(c.get(&kh).await.unwrap().unwrap().payload, huge);
}

fn targets(account: &str, resource: &str, scope: Scope) -> Vec<Invalidation> {
    vec![Invalidation::new(account, resource, scope)]
}

#[tokio::test]
async fn two_servers_share_entries_and_invalidations() {
    let Some(server) = redis() else { return };
    let a = cache(&server.url(), &key(9));
    let b = cache(&server.url(), &key(9));
    let alice = "alice.oid.tid";
    let bob = "bob.oid.tid";
    let get_m1 = EntryKey::new(alice, "email_get", &json!({"id": "m1"}));
    let list_inbox = EntryKey::new(alice, "email_list", &json!({"folder": "inbox"}));
    let list_archive = EntryKey::new(alice, "email_list", &json!({"folder": "archive"}));
    let bob_contacts = EntryKey::new(bob, "contact_list", &json!({"top": 10}));
    let bob_inbox = EntryKey::new(bob, "email_list", &json!({"folder": "inbox"}));
    a.set(&get_m1, &Dependencies::item("m1"), b"m1")
        .await
        .unwrap();
    a.set(
        &list_inbox,
        &Dependencies::container("inbox").with_items(["m1", "m2"]),
        b"inbox",
    )
    .await
    .unwrap();
    a.set(
        &list_archive,
        &Dependencies::container("archive"),
        b"archive",
    )
    .await
    .unwrap();
    a.set(&bob_contacts, &Dependencies::none(), b"contacts")
        .await
        .unwrap();
    a.set(&bob_inbox, &Dependencies::container("inbox"), b"bob inbox")
        .await
        .unwrap();

    // B serves what A stored.
    assert_eq!(b.get(&get_m1).await.unwrap().unwrap().payload, b"m1");
    assert_eq!(b.get(&list_inbox).await.unwrap().unwrap().payload, b"inbox");

    // Item tag, within account and resource type only.
    let n = a
        .invalidate(
            &targets(alice, "email_get", Scope::Item("m1".into())),
            "write",
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(b.get(&get_m1).await.unwrap().is_none());
    assert!(
        b.get(&list_inbox).await.unwrap().is_some(),
        "other resource type untouched"
    );

    // Container tag: only that account's inbox listing.
    let n = b
        .invalidate(
            &targets(alice, "email_list", Scope::Container("inbox".into())),
            "write",
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(a.get(&list_inbox).await.unwrap().is_none());
    assert!(a.get(&list_archive).await.unwrap().is_some());
    assert!(
        a.get(&bob_inbox).await.unwrap().is_some(),
        "other account untouched"
    );

    // Invalidating again finds nothing; an unknown tag finds nothing.
    let n = b
        .invalidate(
            &[
                Invalidation::new(alice, "email_list", Scope::Container("inbox".into())),
                Invalidation::new(alice, "email_list", Scope::Item("nope".into())),
            ],
            "write",
        )
        .await
        .unwrap();
    assert_eq!(n, 0);

    // All of one account and resource type.
    let n = a
        .invalidate(&targets(bob, "contact_list", Scope::All), "write")
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(b.get(&bob_contacts).await.unwrap().is_none());
    assert!(b.get(&bob_inbox).await.unwrap().is_some());

    let stats = b.stats().await.unwrap();
    assert_eq!(stats.total.invalidations, 3);
    assert_eq!(row(&stats.per_account, alice).invalidations, 2);
    assert_eq!(row(&stats.per_account, bob).invalidations, 1);
    assert_eq!(row(&stats.per_resource, "email_get").invalidations, 1);
    assert_eq!(stats.total.writes, 5);
    assert_eq!(stats.total.entries, 2, "archive and bob's inbox remain");
    assert_eq!(stats.per_account.len(), 2);

    // clear removes every entry; the counters stay.
    assert_eq!(a.clear().await.unwrap(), 2);
    assert!(b.get(&list_archive).await.unwrap().is_none());
    let stats = b.stats().await.unwrap();
    assert_eq!(stats.total.entries, 0);
    assert_eq!(stats.total.writes, 5);
}

#[tokio::test]
async fn pattern_invalidation_treats_only_star_as_wild() {
    let Some(server) = redis() else { return };
    let a = cache(&server.url(), &key(3));
    let b = cache(&server.url(), &key(3));
    // With SQL LIKE, `_` and `%` would also match the second account.
    let literal = "us_r%1";
    let lookalike = "usXrYY1";
    let k1 = EntryKey::new(literal, "email_list", &json!({"folder": "inbox"}));
    let k2 = EntryKey::new(lookalike, "email_list", &json!({"folder": "inbox"}));
    let k3 = EntryKey::new(literal, "file_list", &json!({"path": "/"}));
    let k4 = EntryKey::new(lookalike, "file_list", &json!({"path": "/"}));
    for k in [&k1, &k2, &k3, &k4] {
        a.set(k, &Dependencies::none(), b"x").await.unwrap();
    }
    let err = b.invalidate_pattern("", None, "test").await.unwrap_err();
    assert!(matches!(err, RedisCacheError::InvalidArgument(_)), "{err}");

    assert_eq!(
        b.invalidate_pattern("email_list:us_r%1:*", None, "test")
            .await
            .unwrap(),
        1
    );
    assert!(a.get(&k1).await.unwrap().is_none());
    assert!(a.get(&k2).await.unwrap().is_some());

    // `?` and `[` are literal too.
    assert_eq!(
        b.invalidate_pattern("file_list:us?r*", None, "t")
            .await
            .unwrap(),
        0
    );
    // Exact key text.
    assert_eq!(
        b.invalidate_pattern(k3.as_str(), None, "t").await.unwrap(),
        1
    );
    // Limited to one account: the pattern matches both, only one goes.
    assert_eq!(
        b.invalidate_pattern("*", Some(lookalike), "t")
            .await
            .unwrap(),
        2
    );
    assert!(a.get(&k2).await.unwrap().is_none());
    assert!(a.get(&k4).await.unwrap().is_none());
    let stats = a.stats().await.unwrap();
    assert_eq!(stats.total.invalidations, 4);
    assert_eq!(row(&stats.per_account, lookalike).invalidations, 2);
    assert_eq!(row(&stats.per_account, literal).invalidations, 2);
}

#[tokio::test]
async fn purge_account_removes_entries_tasks_and_stats() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(4));
    for acct in ["gone", "stays"] {
        for i in 0..3 {
            let k = EntryKey::new(acct, "email_get", &json!({ "id": i }));
            c.set(&k, &Dependencies::item(format!("m{i}")), b"p")
                .await
                .unwrap();
            c.get(&k).await.unwrap();
        }
        c.enqueue_task(&NewTask::new(
            acct,
            "email_list",
            json!({"folder": "inbox"}),
        ))
        .await
        .unwrap();
        c.record_refresh(acct, "email_get").await;
    }
    assert_eq!(c.purge_account("gone").await.unwrap(), 3);
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.per_account.len(), 1);
    assert_eq!(stats.per_account[0].0, "stays");
    assert_eq!(stats.total.entries, 3);
    assert_eq!(stats.total.refreshes, 1);
    assert_eq!(stats.tasks_pending, 1);
    assert!(
        c.list_tasks(None, Some("gone"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(c.list_tasks(None, None, 10).await.unwrap().len(), 1);
    // (freshness, not get: a get would count a miss for the account again)
    let purged = EntryKey::new("gone", "email_get", &json!({ "id": 0 }));
    assert_eq!(c.freshness(&purged).await.unwrap(), None);

    // Once both accounts are gone, only shared counters remain.
    assert_eq!(c.purge_account("stays").await.unwrap(), 3);
    let mut raw = server.raw().await;
    let left = all_keys(&mut raw).await;
    assert_eq!(left, vec!["m365mcp:tq:seq".to_string()], "{left:?}");
}

#[tokio::test]
async fn namespaces_are_separate() {
    let Some(server) = redis() else { return };
    let one = cache_with(&server.url(), "one", &key(5), |_| {});
    let two = cache_with(&server.url(), "two", &key(5), |_| {});
    let k = EntryKey::new("a", "email_get", &json!({"id": 1}));
    one.set(&k, &Dependencies::none(), b"1").await.unwrap();
    assert!(two.get(&k).await.unwrap().is_none());
    assert_eq!(two.clear().await.unwrap(), 0);
    assert!(one.get(&k).await.unwrap().is_some());
    let mut raw = server.raw().await;
    assert!(
        all_keys(&mut raw)
            .await
            .iter()
            .all(|k| k.starts_with("one:") || k.starts_with("two:"))
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_without_secrets() {
    let k = key(1);
    let mut cfg = m365_redis::RedisConfig::new("http://user:hunter2@example.invalid/");
    let err = RedisCache::new(cfg.clone(), &k).unwrap_err();
    assert!(matches!(err, RedisCacheError::InvalidArgument(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    cfg.url = "redis://127.0.0.1:1/0".into();
    cfg.namespace = "bad:ns".into();
    assert!(RedisCache::new(cfg.clone(), &k).is_err());
    cfg.namespace = "ok".into();
    cfg.ttl_scale = 0.0;
    assert!(RedisCache::new(cfg.clone(), &k).is_err());
    cfg.ttl_scale = 1.0;
    let c = RedisCache::new(cfg, &k).unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("ok"), "{shown}");
    // A resource type that cannot be a key segment is refused, not stored.
    let weird = EntryKey::new("a", "email list*", &json!({}));
    let err = c
        .set(&weird, &Dependencies::none(), b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, RedisCacheError::InvalidArgument(_)), "{err}");
}

#[test]
fn new_needs_neither_redis_nor_a_runtime() {
    let c = cache("redis://127.0.0.1:1/0", &key(1));
    let clone = c.clone();
    drop(c);
    drop(clone);
}
