//! Several servers on one Redis (`M365_MCP_CACHE_BACKEND=redis`): they
//! share hits, one server's write invalidates for all, identical cold reads
//! across servers reach Graph once, Redis holds only ciphertext, and a Redis
//! restart mid-run degrades to Graph and recovers — each proven with real
//! processes, a real redis-server and the sandbox's request log.

mod common;

#[path = "../../m365-redis/tests/common/mod.rs"]
mod redis_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{World, exe, ok};
use m365_mcp::demo::{self, Client, sign_in_all};
use serde_json::{Value, json};

/// A server process on the shared cache, with a data directory of its own
/// (as on another host) and the world's key.
async fn server(world: &World, redis_url: &str, dir: &std::path::Path) -> Arc<Client> {
    let mut env = demo::sandbox_env(&world.sandbox, dir, &world.key);
    for (k, v) in [
        ("M365_MCP_CACHE_BACKEND", "redis"),
        ("M365_MCP_REDIS_URL", redis_url),
        ("M365_MCP_CACHE_WARMING", "false"),
    ] {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    Arc::new(
        demo::spawn_server(&exe(), &env)
            .await
            .expect("server starts")
            .0,
    )
}

fn messages_calls(world: &World) -> usize {
    world
        .sandbox
        .request_log()
        .iter()
        .filter(|r| r.path.contains("/messages"))
        .count()
}

fn status(value: &Value) -> &str {
    value["_cache"]["status"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_hits_invalidations_and_single_flight() {
    let Some(redis) = redis_common::redis() else {
        return;
    };
    let world = World::manual().await;
    let dir_b = tempfile::tempdir().unwrap();
    let a = server(&world, &redis.url(), world.data_dir()).await;
    let b = server(&world, &redis.url(), dir_b.path()).await;
    sign_in_all(&a, &world.sandbox).await.unwrap();
    sign_in_all(&b, &world.sandbox).await.unwrap();
    let me = world.username(0);
    let args = json!({"account_id": me, "limit": 5});
    world.sandbox.reset_counters();

    // A fetches; B is answered from what A stored.
    let first = ok(&a, "email_list", args.clone()).await;
    assert_eq!(status(&first), "miss");
    let from_b = ok(&b, "email_list", args.clone()).await;
    assert_eq!(status(&from_b), "fresh", "{from_b}");
    assert_eq!(first["value"], from_b["value"]);
    assert_eq!(messages_calls(&world), 1);

    // B's write invalidates A's view of the same list.
    let id = first["value"][0]["id"].as_str().unwrap().to_string();
    let was_read = first["value"][0]["isRead"].as_bool().unwrap();
    ok(
        &b,
        "email_mark_read",
        json!({"account_id": me, "email_id": id, "is_read": !was_read}),
    )
    .await;
    let after = ok(&a, "email_list", args.clone()).await;
    assert_eq!(status(&after), "miss", "A served a list B's write changed");
    assert_eq!(after["value"][0]["isRead"], !was_read);

    // Statistics are shared: A sees B's hit.
    let stats = ok(&a, "cache_get_stats", json!({})).await;
    assert_eq!(stats["backend"], "redis");
    assert_eq!(stats["encrypted"], true);
    assert!(stats["total"]["hits"].as_u64().unwrap() >= 1, "{stats}");

    // Identical cold reads on both servers at once reach Graph once.
    world.sandbox.reset_counters();
    let cold = json!({"account_id": me, "limit": 7, "folder": "inbox"});
    let mut calls = Vec::new();
    for i in 0..16 {
        let client = if i % 2 == 0 { a.clone() } else { b.clone() };
        let cold = cold.clone();
        calls.push(tokio::spawn(async move {
            demo::call(&client, "email_list", cold).await.unwrap()
        }));
    }
    let mut misses = 0;
    for c in calls {
        let (value, err, _) = c.await.unwrap();
        assert!(!err, "{value}");
        misses += (status(&value) == "miss") as usize;
    }
    assert_eq!(misses, 1);
    assert_eq!(
        messages_calls(&world),
        1,
        "{:?}",
        world.sandbox.request_log()
    );

    // Redis holds ciphertext only: no username, message id, subject or
    // preview anywhere in key names or values.
    let mut conn = redis.raw().await;
    let keys = redis_common::all_keys(&mut conn).await;
    assert!(keys.len() > 5, "{keys:?}");
    let subject = first["value"][0]["subject"].as_str().unwrap().to_string();
    let secrets = [me.clone(), id.clone(), subject.clone()];
    for key in &keys {
        for s in &secrets {
            assert!(!key.to_lowercase().contains(&s.to_lowercase()), "{key}");
        }
        let raw = redis_common::raw_value(&mut conn, key).await;
        for s in &secrets {
            assert!(!redis_common::contains(&raw, s), "plaintext in {key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_degrades_to_graph_and_recovers() {
    let Some(mut redis) = redis_common::redis() else {
        return;
    };
    let world = World::manual().await;
    let a = server(&world, &redis.url(), world.data_dir()).await;
    sign_in_all(&a, &world.sandbox).await.unwrap();
    let args = json!({"account_id": world.username(0), "limit": 3});
    assert_eq!(status(&ok(&a, "email_list", args.clone()).await), "miss");
    assert_eq!(status(&ok(&a, "email_list", args.clone()).await), "fresh");

    redis.kill();
    world.sandbox.reset_counters();
    // Every call is still answered, from Graph, and quickly.
    for _ in 0..5 {
        let started = Instant::now();
        let value = ok(&a, "email_list", args.clone()).await;
        assert!(matches!(status(&value), "bypass" | "miss"), "{value}");
        assert_eq!(value["value"].as_array().unwrap().len(), 3);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(messages_calls(&world), 5);
    // Writes still work (their invalidation cannot reach Redis; it logs).
    let id = ok(&a, "email_list", args.clone()).await["value"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &a,
        "email_flag",
        json!({"account_id": world.username(0), "email_id": id, "flag_status": "flagged"}),
    )
    .await;

    // Redis comes back on the same port, empty: the server uses it again.
    let port = redis.port;
    let _redis = redis_common::RedisServer::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = ok(&a, "email_list", args.clone()).await;
        if status(&value) == "fresh" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never came back: {value}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_redis_url_is_a_clear_start_up_error() {
    let world = World::manual().await;
    let mut env = world.env.clone();
    env.push(("M365_MCP_CACHE_BACKEND".into(), "redis".into()));
    env.retain(|(k, _)| k != "M365_MCP_REDIS_URL");
    let output = std::process::Command::new(exe())
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env_remove("M365_MCP_REDIS_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("M365_MCP_REDIS_URL"), "{stderr}");
    let output = std::process::Command::new(exe())
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("M365_MCP_CACHE_BACKEND", "memcached")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Expected: sqlcipher (default) or redis")
    );
}
