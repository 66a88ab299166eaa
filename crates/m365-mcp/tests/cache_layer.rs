//! The cache in the read path, through the real binary against the sandbox;
//! the sandbox's request counter proves what reached Graph.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{World, ok};
use m365_mcp::demo::{call, sign_in_all};
use m365_sandbox::{Latency, SandboxConfig};
use serde_json::{Value, json};

async fn signed_in(world: &World) -> m365_mcp::demo::Client {
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    client
}

fn status(v: &Value) -> &str {
    v["_cache"]["status"].as_str().unwrap_or("none")
}

async fn graph_delta<F: std::future::Future<Output = T>, T>(world: &World, f: F) -> (T, u64) {
    let before = world.sandbox.counts().graph;
    let out = f.await;
    (out, world.sandbox.counts().graph - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_hits_skip_graph_and_the_switches_do_what_they_say() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = signed_in(&world).await;
    let adele = world.username(0);
    let args = json!({"account_id": adele, "limit": 5});

    let ((first, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", args.clone()).await.unwrap()
    })
    .await;
    assert_eq!(status(&first), "miss");
    assert_eq!(calls, 1);
    assert_eq!(first["_cache"]["age_seconds"], 0);

    let ((hit, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", args.clone()).await.unwrap()
    })
    .await;
    assert_eq!(status(&hit), "fresh");
    assert_eq!(calls, 0, "a fresh hit makes no Graph call");
    assert_eq!(hit["value"], first["value"]);
    assert!(
        hit["_cache"]["cached_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );

    // Explicit defaults are the same entry as omitted ones.
    let explicit = json!({"account_id": adele, "limit": 5, "folder": "inbox", "include_body": false, "body_max_length": 10000});
    let ((same, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", explicit).await.unwrap()
    })
    .await;
    assert_eq!((status(&same), calls), ("fresh", 0));

    let stats_before = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    let bypass = json!({"account_id": adele, "limit": 5, "use_cache": false});
    let ((v, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", bypass).await.unwrap()
    })
    .await;
    assert_eq!((status(&v), calls), ("bypass", 1));
    let stats_after = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    assert_eq!(
        stats_before["total"]["writes"], stats_after["total"]["writes"],
        "use_cache=false writes nothing"
    );
    assert_eq!(
        stats_before["total"]["hits"], stats_after["total"]["hits"],
        "and reads nothing"
    );

    let forced = json!({"account_id": adele, "limit": 5, "force_refresh": true});
    let ((v, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", forced).await.unwrap()
    })
    .await;
    assert_eq!((status(&v), calls), ("miss", 1));
    let stats = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    assert_eq!(
        stats["total"]["writes"], 2,
        "force_refresh still stores: {stats}"
    );
    assert!(stats["total"]["hit_rate"].as_f64().unwrap() > 0.0);
    let per_resource = stats["per_resource"].as_array().unwrap();
    assert!(per_resource.iter().any(|r| r[0] == "email_list"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stale_entries_answer_at_once_refresh_once_and_the_next_call_sees_new_data() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    // email_list: fresh 2 min × 0.01 = 1.2 s, expires 10 min × 0.01 = 6 s.
    world.with_env("M365_MCP_CACHE_TTL_SCALE", "0.01");
    let client = Arc::new(signed_in(&world).await);
    let adele = world.username(0);
    let args = json!({"account_id": adele, "limit": 3});
    let (first, _, _) = call(&client, "email_list", args.clone()).await.unwrap();
    let newest = first["value"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["value"][0]["isRead"], false,
        "the seeded newest message is unread"
    );

    // Graph changes behind the cache's back.
    world
        .graph_as(&adele)
        .patch(
            &adele,
            &format!("/me/messages/{}", m365_graph::encode_segment(&newest)),
            &json!({"isRead": true}),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    world.sandbox.reset_counters();
    // A slow Graph keeps the refresh from finishing while the ten readers
    // are answered, however the machine schedules them.
    world.sandbox.set_latency(Latency {
        fixed: Duration::from_millis(800),
        jitter: Duration::ZERO,
    });
    let mut callers = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        let args = args.clone();
        callers.push(tokio::spawn(async move {
            call(&client, "email_list", args).await.unwrap()
        }));
    }
    for c in callers {
        let (v, err, elapsed) = c.await.unwrap();
        assert!(!err);
        assert_eq!(status(&v), "stale", "served at once from cache");
        assert_eq!(v["value"][0]["isRead"], false, "stale data is the old data");
        assert!(
            elapsed < Duration::from_millis(700),
            "answered without waiting for Graph"
        );
    }
    // The refresh runs in the background; wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let fresh = loop {
        let (v, _, _) = call(&client, "email_list", args.clone()).await.unwrap();
        if status(&v) == "fresh" {
            break v;
        }
        assert!(Instant::now() < deadline, "no background refresh happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        fresh["value"][0]["isRead"], true,
        "the next call sees the new data"
    );
    assert_eq!(
        world.sandbox.counts().graph,
        1,
        "exactly one refresh for ten stale readers"
    );
    let tasks = call(&client, "cache_task_list", json!({"status": "completed"}))
        .await
        .unwrap()
        .0;
    assert_eq!(tasks["count"], 1, "{tasks}");
    assert_eq!(tasks["value"][0]["operation"], "email_list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_fetched_and_served_stale_if_graph_fails() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    // email_get: fresh 15 min × 0.0005 = 0.45 s, expires 60 min × 0.0005 = 1.8 s.
    world.with_env("M365_MCP_CACHE_TTL_SCALE", "0.0005");
    let client = signed_in(&world).await;
    let adele = world.username(0);
    let (list, _, _) = call(
        &client,
        "email_list",
        json!({"account_id": adele, "limit": 1, "use_cache": false}),
    )
    .await
    .unwrap();
    let id = list["value"][0]["id"].as_str().unwrap();
    let args = json!({"account_id": adele, "email_id": id});
    let (first, _, _) = call(&client, "email_get", args.clone()).await.unwrap();
    assert_eq!(status(&first), "miss");
    tokio::time::sleep(Duration::from_millis(2000)).await;

    let ((again, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_get", args.clone()).await.unwrap()
    })
    .await;
    assert_eq!(status(&again), "miss", "expired: fetched before answering");
    assert_eq!(calls, 1);
    tokio::time::sleep(Duration::from_millis(2000)).await;

    world.sandbox.set_down(true);
    let (served, err, _) = call(&client, "email_get", args.clone()).await.unwrap();
    assert!(!err, "stale-if-error: {served}");
    assert_eq!(status(&served), "stale");
    assert!(
        served["_cache"]["error"].as_str().unwrap().contains("503"),
        "{served}"
    );
    assert_eq!(served["id"], first["id"]);
    assert!(served["_cache"]["age_seconds"].as_u64().unwrap() >= 2);

    // With nothing cached, an outage is an error.
    let (down, err, _) = call(
        &client,
        "emailfolders_get",
        json!({"account_id": adele, "folder_id": "drafts"}),
    )
    .await
    .unwrap();
    assert!(err, "{down}");
    world.sandbox.set_down(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_identical_cold_calls_make_one_graph_request() {
    let mut world = World::start(SandboxConfig {
        auto_approve_device_code: false,
        ..SandboxConfig::default()
    })
    .await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = Arc::new(signed_in(&world).await);
    let adele = world.username(0);
    world.sandbox.set_latency(Latency {
        fixed: Duration::from_millis(300),
        jitter: Duration::ZERO,
    });
    world.sandbox.reset_counters();
    let mut callers = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        let adele = adele.clone();
        callers.push(tokio::spawn(async move {
            call(&client, "emailfolders_list", json!({"account_id": adele}))
                .await
                .unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for c in callers {
        let (v, err, _) = c.await.unwrap();
        assert!(!err, "{v}");
        statuses.push(status(&v).to_string());
    }
    assert_eq!(
        world.sandbox.counts().graph,
        1,
        "single-flight: one Graph request"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "miss").count(),
        1,
        "{statuses:?}"
    );
    let stats = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    assert_eq!(
        stats["total"]["misses"], 1,
        "waiters count as hits: {stats}"
    );
    assert_eq!(stats["total"]["hits"], 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_never_share_entries_and_sign_out_purges() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = signed_in(&world).await;
    let (adele, megan) = (world.username(0), world.username(1));
    let (a, _, _) = call(
        &client,
        "email_list",
        json!({"account_id": adele, "limit": 5}),
    )
    .await
    .unwrap();
    let ((m, _, _), calls) = graph_delta(&world, async {
        call(
            &client,
            "email_list",
            json!({"account_id": megan, "limit": 5}),
        )
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        status(&m),
        "miss",
        "same parameters, other account: not a hit"
    );
    assert_eq!(calls, 1);
    assert_ne!(a["value"], m["value"]);
    let stats = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    assert_eq!(stats["per_account"].as_array().unwrap().len(), 2);
    client.cancel().await.unwrap();

    let out = world.run_cli(&["auth", "remove", &megan.to_uppercase()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 cache entries removed"), "{text}");

    let client = world.client().await;
    let (list, _, _) = call(&client, "account_list", json!({})).await.unwrap();
    assert_eq!(list["count"], world.sandbox.users().len() - 1);
    let stats = call(&client, "cache_get_stats", json!({})).await.unwrap().0;
    let accounts: Vec<&str> = stats["per_account"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r[0].as_str())
        .collect();
    assert!(
        !accounts.iter().any(|a| a.contains("9188040d")),
        "megan's entries are gone: {accounts:?}"
    );
    let (hit, _, _) = call(
        &client,
        "email_list",
        json!({"account_id": adele, "limit": 5}),
    )
    .await
    .unwrap();
    assert_eq!(status(&hit), "fresh", "adele's entries stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_or_unopenable_cache_still_serves_from_graph() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_ENABLED", "false");
    let client = signed_in(&world).await;
    let adele = world.username(0);
    for _ in 0..2 {
        let ((v, err, _), calls) = graph_delta(&world, async {
            call(&client, "email_list", json!({"account_id": adele}))
                .await
                .unwrap()
        })
        .await;
        assert!(!err);
        assert_eq!((status(&v), calls), ("bypass", 1));
    }
    assert!(
        !world.data_dir().join("cache.db").exists(),
        "disabled: no cache file at all"
    );
    let (version, _, _) = call(&client, "server_get_version", json!({}))
        .await
        .unwrap();
    assert_eq!(version["cache"]["state"], "disabled");
    client.cancel().await.unwrap();

    // A cache path that cannot be created: the server runs on without it.
    let blocker = world.data_dir().join("not-a-directory");
    std::fs::write(&blocker, b"x").unwrap();
    world.with_env("M365_MCP_CACHE_ENABLED", "true");
    world.with_env(
        "M365_MCP_CACHE_DB_PATH",
        blocker.join("cache.db").to_str().unwrap(),
    );
    let client = world.client().await;
    let ((v, err, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", json!({"account_id": adele}))
            .await
            .unwrap()
    })
    .await;
    assert!(!err, "{v}");
    assert_eq!((status(&v), calls), ("bypass", 1));
    let (version, _, _) = call(&client, "server_get_version", json!({}))
        .await
        .unwrap();
    assert_eq!(version["cache"]["state"], "bypass");
    assert!(
        version["cache"]["reason"]
            .as_str()
            .unwrap()
            .contains("not-a-directory"),
        "{version}"
    );
    let (stats, err, _) = call(&client, "cache_get_stats", json!({})).await.unwrap();
    assert!(err);
    assert!(
        stats["error"]["text"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_fills_what_a_users_first_default_call_asks_for() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = signed_in(&world).await;
    client.cancel().await.unwrap();

    world.with_env("M365_MCP_CACHE_WARMING", "true");
    let client = world.client().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status_now = loop {
        let (w, _, _) = call(&client, "cache_warming_status", json!({}))
            .await
            .unwrap();
        if w["enabled"] == true
            && w["is_warming"] == false
            && w["operations_total"].as_u64().unwrap_or(0) > 0
        {
            break w;
        }
        assert!(Instant::now() < deadline, "warming did not finish: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status_now["progress_percent"], 100.0, "{status_now}");
    assert!(
        status_now["operations_completed"].as_u64().unwrap() >= world.sandbox.users().len() as u64
    );
    for user in world.sandbox.users() {
        let ((v, err, _), calls) = graph_delta(&world, async {
            call(&client, "email_list", json!({"account_id": user.username}))
                .await
                .unwrap()
        })
        .await;
        assert!(!err);
        assert_eq!(
            (status(&v), calls),
            ("fresh", 0),
            "{}: first default email_list after warming",
            user.username
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_tools_invalidate_enqueue_and_report_tasks() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = signed_in(&world).await;
    let adele = world.username(0);
    call(&client, "email_list", json!({"account_id": adele}))
        .await
        .unwrap();
    call(&client, "emailfolders_list", json!({"account_id": adele}))
        .await
        .unwrap();

    let (inv, err, _) = call(
        &client,
        "cache_invalidate",
        json!({"pattern": "email_list:*", "account_id": adele}),
    )
    .await
    .unwrap();
    assert!(!err, "{inv}");
    assert_eq!(inv["entries_deleted"], 1);
    let (v, _, _) = call(&client, "emailfolders_list", json!({"account_id": adele}))
        .await
        .unwrap();
    assert_eq!(status(&v), "fresh", "other resources stay");
    let (none, _, _) = call(
        &client,
        "cache_invalidate",
        json!({"pattern": "email_lis_:*"}),
    )
    .await
    .unwrap();
    assert_eq!(none["entries_deleted"], 0, "_ is literal");

    let (queued, err, _) = call(
        &client,
        "cache_task_enqueue",
        json!({"operation": "email_list", "account_id": adele}),
    )
    .await
    .unwrap();
    assert!(!err, "{queued}");
    let task_id = queued["task_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (t, _, _) = call(
            &client,
            "cache_task_get_status",
            json!({"task_id": task_id}),
        )
        .await
        .unwrap();
        if t["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "task did not complete: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ((v, _, _), calls) = graph_delta(&world, async {
        call(&client, "email_list", json!({"account_id": adele}))
            .await
            .unwrap()
    })
    .await;
    assert_eq!(
        (status(&v), calls),
        ("fresh", 0),
        "the enqueued refresh filled the default entry"
    );

    let (bad, err, _) = call(
        &client,
        "cache_task_enqueue",
        json!({"operation": "account_list"}),
    )
    .await
    .unwrap();
    assert!(err);
    assert!(
        bad["error"]["text"]
            .as_str()
            .unwrap()
            .contains("not a cached read tool"),
        "{bad}"
    );
    let (bad, err, _) = call(&client, "cache_task_get_status", json!({"task_id": "nope"}))
        .await
        .unwrap();
    assert!(err, "{bad}");
    let (bad, err, _) = call(&client, "cache_task_list", json!({"status": "sleeping"}))
        .await
        .unwrap();
    assert!(err, "{bad}");
}

/// An `email_list` answer's structured content, after checking that its
/// text content is the same object.
async fn email_list_answer(client: &m365_mcp::demo::Client, args: &Value) -> Value {
    let mut params = rmcp::model::CallToolRequestParams::new("email_list");
    params = params.with_arguments(args.as_object().unwrap().clone());
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.content.len(), 1);
    let text = result.content[0].as_text().unwrap().text.clone();
    let structured = result.structured_content.unwrap();
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, structured, "the text is the structured content");
    structured
}

/// Hits are served from rendered copies in memory (`rendered.rs`); these
/// must only ever be the entry the store holds now, for that account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_hits_are_always_the_stores_current_entry_for_that_account() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let client = signed_in(&world).await;
    let (adele, megan) = (world.username(0), world.username(1));
    let a_args = json!({"account_id": adele, "limit": 4});
    let m_args = json!({"account_id": megan, "limit": 4});

    let a_miss = email_list_answer(&client, &a_args).await;
    let a_hit = email_list_answer(&client, &a_args).await;
    assert_eq!((status(&a_miss), status(&a_hit)), ("miss", "fresh"));
    assert_eq!(a_hit["value"], a_miss["value"]);
    // Same tool, same parameters, other account: never adele's rendering.
    let m_miss = email_list_answer(&client, &m_args).await;
    let m_hit = email_list_answer(&client, &m_args).await;
    assert_eq!((status(&m_miss), status(&m_hit)), ("miss", "fresh"));
    assert_eq!(m_hit["value"], m_miss["value"]);
    assert_ne!(m_hit["value"], a_hit["value"]);
    let a_again = email_list_answer(&client, &a_args).await;
    assert_eq!(a_again["value"], a_miss["value"]);

    // The age is the entry's age now, not when it was first rendered.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let older = email_list_answer(&client, &a_args).await;
    assert_eq!(status(&older), "fresh");
    assert_eq!(older["_cache"]["cached_at"], a_hit["_cache"]["cached_at"]);
    assert!(
        older["_cache"]["age_seconds"].as_u64().unwrap() >= 2,
        "{}",
        older["_cache"]
    );

    // A write invalidates: the next read is a miss with the new state, and
    // the hit after it shows the new state too.
    let newest = a_hit["value"][0]["id"].as_str().unwrap().to_string();
    let was_read = a_hit["value"][0]["isRead"].as_bool().unwrap();
    ok(
        &client,
        "email_mark_read",
        json!({"account_id": adele, "email_id": newest, "is_read": !was_read}),
    )
    .await;
    let after_write = email_list_answer(&client, &a_args).await;
    assert_eq!(status(&after_write), "miss");
    assert_eq!(after_write["value"][0]["isRead"], !was_read);
    let hit_after_write = email_list_answer(&client, &a_args).await;
    assert_eq!(status(&hit_after_write), "fresh");
    assert_eq!(hit_after_write["value"][0]["isRead"], !was_read);

    // Overwritten (Graph changed behind the cache's back, then a forced
    // refresh): hits show the new entry.
    world
        .graph_as(&adele)
        .patch(
            &adele,
            &format!("/me/messages/{}", m365_graph::encode_segment(&newest)),
            &json!({"isRead": was_read}),
        )
        .await
        .unwrap();
    let stale_view = email_list_answer(&client, &a_args).await;
    assert_eq!(stale_view["value"][0]["isRead"], !was_read, "still cached");
    let mut forced = a_args.clone();
    forced["force_refresh"] = json!(true);
    let refreshed = email_list_answer(&client, &forced).await;
    assert_eq!(status(&refreshed), "miss");
    let hit_after_refresh = email_list_answer(&client, &a_args).await;
    assert_eq!(status(&hit_after_refresh), "fresh");
    assert_eq!(hit_after_refresh["value"][0]["isRead"], was_read);
    // The entry the refresh stored, not the one before it. (The miss's own
    // `cached_at` is taken when it answers, a millisecond from the store's.)
    // Compared as instants: the test must not depend on how many fraction
    // digits the server writes.
    let cached_at = |v: &Value| {
        time::OffsetDateTime::parse(
            v["_cache"]["cached_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert!(
        cached_at(&hit_after_refresh) > cached_at(&stale_view),
        "{} should be newer than {}",
        cached_at(&hit_after_refresh),
        cached_at(&stale_view)
    );

    // Invalidated by another process (the command line) while this server
    // runs: the server's in-memory copy is not served.
    let out = world.run_cli(&["cache", "invalidate", "email_list:*"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (after_cli, calls) =
        graph_delta(&world, async { email_list_answer(&client, &a_args).await }).await;
    assert_eq!((status(&after_cli), calls), ("miss", 1));
    let (m_after_cli, calls) =
        graph_delta(&world, async { email_list_answer(&client, &m_args).await }).await;
    assert_eq!((status(&m_after_cli), calls), ("miss", 1));
    assert_eq!(m_after_cli["value"], m_miss["value"]);
}
