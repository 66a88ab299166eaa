//! Single-flight locks across servers, and a Redis that goes away, hangs,
//! and comes back.

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, cache_with, free_port, key, redis};
use m365_redis::RedisCacheError;
use m365_store::{Dependencies, EntryKey, NewTask};
use serde_json::json;

#[tokio::test]
async fn single_flight_lock_across_servers() {
    let Some(server) = redis() else { return };
    let a = cache_with(&server.url(), "m365mcp", &key(1), |c| {
        c.lock_ttl = Duration::from_millis(300)
    });
    let b = cache_with(&server.url(), "m365mcp", &key(1), |c| {
        c.lock_ttl = Duration::from_millis(300)
    });
    let k = EntryKey::new("acct", "email_list", &json!({"folder": "inbox"}));
    let other = EntryKey::new("acct", "email_list", &json!({"folder": "sent"}));

    assert!(
        b.wait_unlocked(&k, Duration::from_millis(50))
            .await
            .unwrap(),
        "free"
    );
    let token = a.try_lock(&k).await.unwrap().expect("first taker");
    assert!(b.try_lock(&k).await.unwrap().is_none(), "held by a");
    assert!(a.try_lock(&k).await.unwrap().is_none(), "not re-entrant");
    let other_token = b
        .try_lock(&other)
        .await
        .unwrap()
        .expect("other key is free");
    let started = Instant::now();
    assert!(
        !b.wait_unlocked(&k, Duration::from_millis(60))
            .await
            .unwrap()
    );
    assert!(started.elapsed() >= Duration::from_millis(60));

    // Released while B waits: B sees it promptly.
    let a2 = a.clone();
    let k2 = k.clone();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(80)).await;
        a2.unlock(&k2, token).await.unwrap();
        Instant::now()
    });
    assert!(b.wait_unlocked(&k, Duration::from_secs(2)).await.unwrap());
    let released_at = release.await.unwrap();
    assert!(released_at.elapsed() < Duration::from_millis(250));
    let b_token = b.try_lock(&k).await.unwrap().expect("free again");
    b.unlock(&other, other_token).await.unwrap();

    // A holder that never unlocks: the lock expires after lock_ttl, and a
    // stale token cannot release the next holder's lock.
    let stale = a.try_lock(&other).await.unwrap().unwrap();
    assert!(b.try_lock(&other).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let fresh = b.try_lock(&other).await.unwrap().expect("expired");
    a.unlock(&other, stale).await.unwrap();
    assert!(
        a.try_lock(&other).await.unwrap().is_none(),
        "stale unlock did nothing"
    );
    b.unlock(&other, fresh).await.unwrap();
    assert!(a.try_lock(&other).await.unwrap().is_some());
    b.unlock(&k, b_token).await.unwrap();
}

/// Every operation fails, quickly, with Unavailable.
async fn all_fail_fast(c: &m365_redis::RedisCache, budget: Duration) {
    let k = EntryKey::new("acct", "email_get", &json!({"id": 1}));
    macro_rules! check {
        ($e:expr) => {{
            let started = Instant::now();
            let r = $e;
            let took = started.elapsed();
            assert!(took < budget, "{} took {took:?}", stringify!($e));
            match r {
                Err(e @ RedisCacheError::Unavailable(_)) => assert!(e.is_unavailable()),
                other => panic!("{}: {other:?}", stringify!($e)),
            }
        }};
    }
    check!(c.ping().await);
    check!(c.get(&k).await);
    check!(c.freshness(&k).await);
    check!(c.set(&k, &Dependencies::none(), b"x").await);
    check!(c.stats().await);
    check!(c.claim_task().await);
    check!(c.try_lock(&k).await);
    check!(c.enqueue_task(&NewTask::new("acct", "op", json!({}))).await);
    let started = Instant::now();
    c.record_refresh("acct", "email_get").await;
    assert!(started.elapsed() < budget);
}

#[tokio::test]
async fn redis_down_then_back_without_a_new_cache() {
    let Some(mut server) = redis() else { return };
    let port = server.port;
    let op_timeout = Duration::from_millis(300);
    let budget = op_timeout + Duration::from_millis(400);
    let c = cache_with(&server.url(), "m365mcp", &key(1), |cfg| {
        cfg.op_timeout = op_timeout
    });
    let k = EntryKey::new("acct", "email_get", &json!({"id": 1}));
    c.set(&k, &Dependencies::none(), b"before").await.unwrap();

    server.kill();
    all_fail_fast(&c, budget).await;
    // Again, now that the connection is known to be gone.
    all_fail_fast(&c, budget).await;

    // A new server on the same port: the same instance recovers by itself.
    let _server = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.ping().await {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "did not reconnect: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The old server's data is gone (no persistence); the cache works.
    assert!(c.get(&k).await.unwrap().is_none());
    c.set(&k, &Dependencies::none(), b"after").await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().unwrap().payload, b"after");
}

#[tokio::test]
async fn created_while_redis_is_down() {
    if redis().is_none() {
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let c = cache_with(&url, "m365mcp", &key(1), |cfg| {
        cfg.op_timeout = Duration::from_millis(300)
    });
    all_fail_fast(&c, Duration::from_millis(700)).await;
    let _server = RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let k = EntryKey::new("acct", "email_get", &json!({"id": 1}));
    c.set(&k, &Dependencies::none(), b"late").await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().unwrap().payload, b"late");
}

#[tokio::test]
async fn a_hung_redis_times_out_instead_of_hanging() {
    let Some(server) = redis() else { return };
    let op_timeout = Duration::from_millis(300);
    let c = cache_with(&server.url(), "m365mcp", &key(1), |cfg| {
        cfg.op_timeout = op_timeout
    });
    let k = EntryKey::new("acct", "email_get", &json!({"id": 1}));
    c.set(&k, &Dependencies::none(), b"x").await.unwrap();
    server.signal("STOP");
    for _ in 0..3 {
        let started = Instant::now();
        let err = c.get(&k).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(
            started.elapsed() < op_timeout + Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
    }
    server.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.get(&k).await {
            Ok(Some(e)) => {
                assert_eq!(e.payload, b"x");
                break;
            }
            other => assert!(Instant::now() < deadline, "did not recover: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Clones share the connection and work too.
    let clone = c.clone();
    assert!(clone.get(&k).await.unwrap().is_some());
}
