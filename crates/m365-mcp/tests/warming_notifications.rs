//! Cache warming reports through MCP logging notifications
//! (`notifications/message`, logger `m365-mcp.warming`): a queued message,
//! one `debug` message per finished operation, a milestone at 50 % and a
//! final message at `info`, each session filtered by its own
//! `logging/setLevel`, sessions that join late included. The real binary,
//! driven by rmcp's client with a handler that records what arrives.
// rmcp marks MCP logging deprecated (SEP-2577); it is what is tested here.
#![allow(deprecated)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{World, exe};
use m365_mcp::cache::{WARMING_LOGGER, WARMING_PLAN};
use m365_mcp::demo::sign_in_all;
use m365_sandbox::Latency;
use rmcp::model::{
    CallToolRequestParams, LoggingLevel, LoggingMessageNotificationParam, SetLevelRequestParams,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long warming may take before a test gives up on the final message.
const WARMING_DEADLINE: Duration = Duration::from_secs(90);

/// A client handler that hands every logging notification to the test.
#[derive(Clone)]
struct Recorder(mpsc::UnboundedSender<LoggingMessageNotificationParam>);

impl ClientHandler for Recorder {
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.0.send(params);
    }
}

type Client = RunningService<RoleClient, Recorder>;
type Messages = mpsc::UnboundedReceiver<LoggingMessageNotificationParam>;

/// `m365-mcp serve` on stdio, connected through a [`Recorder`].
async fn spawn_stdio(world: &World) -> (Client, Messages) {
    let command = tokio::process::Command::new(exe()).configure(|cmd| {
        cmd.arg("serve")
            .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    });
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server starts");
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Recorder(tx).serve(transport).await.expect("initialize");
    (client, rx)
}

/// A world whose seeded users (several accounts) are signed in, with
/// warming on for the servers started from now on.
async fn signed_in() -> (World, Vec<Value>) {
    let mut world = World::manual().await;
    let signer = world.client().await;
    let accounts = sign_in_all(&signer, &world.sandbox).await.unwrap();
    signer.cancel().await.unwrap();
    assert!(accounts.len() >= 2, "several accounts: {accounts:?}");
    world.with_env("M365_MCP_CACHE_WARMING", "true");
    (world, accounts)
}

async fn call(peer: &Peer<RoleClient>, tool: &str, args: Value) -> Value {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let result = peer.call_tool(params).await.expect("tools/call");
    assert!(!result.is_error.unwrap_or(false), "{tool}: {result:?}");
    result.structured_content.expect("structured result")
}

/// Collects warming messages until `complete` says all that is expected
/// has arrived (or fails at the deadline, showing what did), then sorts
/// them into the order the server sent them: rmcp's client runs each
/// notification handler as a task of its own, so arrival order at the
/// handler is not wire order, but the counters in the messages are.
async fn collect(
    rx: &mut Messages,
    complete: impl Fn(&[LoggingMessageNotificationParam]) -> bool,
) -> Vec<LoggingMessageNotificationParam> {
    collect_more(rx, Vec::new(), complete).await
}

/// [`collect`], adding to what was collected before.
async fn collect_more(
    rx: &mut Messages,
    mut seen: Vec<LoggingMessageNotificationParam>,
    complete: impl Fn(&[LoggingMessageNotificationParam]) -> bool,
) -> Vec<LoggingMessageNotificationParam> {
    let deadline = Instant::now() + WARMING_DEADLINE;
    while !complete(&seen) {
        let message = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("warming messages missing; got {seen:#?}"))
            .expect("the client is still connected");
        seen.push(message);
    }
    seen.sort_by_key(|m| match m.data["event"].as_str() {
        Some("queued") => 0,
        Some("operation") => 2 * m.data["completed"].as_u64().unwrap_or(0),
        Some("milestone") => 2 * m.data["completed"].as_u64().unwrap_or(0) + 1,
        _ => u64::MAX,
    });
    seen
}

fn has(messages: &[LoggingMessageNotificationParam], event: &str) -> bool {
    messages.iter().any(|m| m.data["event"] == event)
}

/// The final message has arrived, and every operation message from the
/// first one received up to the total.
fn finished_without_gaps(messages: &[LoggingMessageNotificationParam]) -> bool {
    let mut done: Vec<u64> = of(messages, "operation")
        .iter()
        .filter_map(|m| m.data["completed"].as_u64())
        .collect();
    done.sort_unstable();
    let total = of(messages, "finished")
        .first()
        .and_then(|m| m.data["total"].as_u64());
    match (done.first(), total) {
        (Some(&first), Some(total)) => done == (first..=total).collect::<Vec<_>>(),
        (None, Some(_)) => true,
        _ => false,
    }
}

fn events(messages: &[LoggingMessageNotificationParam]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m.data["event"].as_str().unwrap_or("?"))
        .collect()
}

fn of<'a>(
    messages: &'a [LoggingMessageNotificationParam],
    event: &str,
) -> Vec<&'a LoggingMessageNotificationParam> {
    messages
        .iter()
        .filter(|m| m.data["event"] == event)
        .collect()
}

/// Every message is a warming message of a known shape that names no
/// account, carries no token, key or content: only these fields, only
/// operation names and fixed words as strings.
fn assert_clean(world: &World, accounts: &[Value], messages: &[LoggingMessageNotificationParam]) {
    let allowed = [
        "event",
        "message",
        "operation",
        "outcome",
        "completed",
        "total",
        "progress_percent",
        "operations",
        "accounts",
        "queued",
        "skipped",
        "failed",
        "duration_ms",
    ];
    let mut secrets: Vec<String> = vec![world.key.to_base64().to_string()];
    for account in accounts {
        for field in ["account_id", "username", "display_name"] {
            secrets.push(account[field].as_str().expect(field).to_string());
        }
    }
    for message in messages {
        assert_eq!(
            message.logger.as_deref(),
            Some(WARMING_LOGGER),
            "{message:?}"
        );
        let data = message.data.as_object().expect("structured data");
        for (key, value) in data {
            assert!(
                allowed.contains(&key.as_str()),
                "unexpected {key}: {data:?}"
            );
            match key.as_str() {
                "event" => assert!(
                    ["queued", "operation", "milestone", "finished"]
                        .contains(&value.as_str().unwrap()),
                    "{data:?}"
                ),
                "operation" => assert!(WARMING_PLAN.iter().any(|(op, _)| value == op), "{data:?}"),
                "outcome" => assert!(["completed", "failed"].contains(&value.as_str().unwrap())),
                "message" => {}
                _ => assert!(value.is_number(), "{key} is a number: {data:?}"),
            }
        }
        let text = serde_json::to_string(&message).unwrap();
        let lower = text.to_lowercase();
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
        for word in ["token", "bearer", "eyj", "@", "1.a"] {
            assert!(!lower.contains(word), "{word:?} in {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_at_debug_follows_every_warming_operation() {
    let (world, accounts) = signed_in().await;
    // Graph answers slowly until the level is set, so no operation finishes
    // before the session asked for debug; then quickly.
    world.sandbox.set_latency(Latency {
        fixed: Duration::from_millis(1500),
        jitter: Duration::ZERO,
    });
    let (client, mut rx) = spawn_stdio(&world).await;
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    world.sandbox.set_latency(Latency {
        fixed: Duration::from_millis(10),
        jitter: Duration::from_millis(10),
    });
    let info = client.peer_info().expect("server info");
    assert!(info.capabilities.logging.is_some(), "{info:?}");

    let plan = (WARMING_PLAN.len() * accounts.len()) as u64;
    let messages = collect(&mut rx, |m| {
        has(m, "queued")
            && has(m, "milestone")
            && has(m, "finished")
            && of(m, "operation").len() as u64 == plan
    })
    .await;
    assert_clean(&world, &accounts, &messages);

    // Queued first, for every account, nothing fresh yet.
    let queued = &messages[0];
    assert_eq!(queued.data["event"], "queued", "{:?}", events(&messages));
    assert_eq!(queued.level, LoggingLevel::Info);
    let total = queued.data["operations"].as_u64().unwrap();
    let n = accounts.len();
    assert_eq!(total, plan, "{:?}", queued.data);
    assert_eq!(queued.data["accounts"], n);
    assert_eq!(queued.data["queued"], total);
    assert_eq!(
        queued.data["message"],
        format!("warming {total} operations for {n} accounts (0 already fresh)")
    );

    // One debug message per operation, counting up to the total.
    let operations = of(&messages, "operation");
    assert_eq!(operations.len() as u64, total, "{:?}", events(&messages));
    for (i, op) in operations.iter().enumerate() {
        assert_eq!(op.level, LoggingLevel::Debug, "{op:?}");
        assert_eq!(op.data["completed"], i as u64 + 1, "{op:?}");
        assert_eq!(op.data["total"], total, "{op:?}");
        let percent = ((i as f64 + 1.0) / total as f64 * 1000.0).round() / 10.0;
        assert_eq!(op.data["progress_percent"], percent, "{op:?}");
    }
    let mut warmed: Vec<&str> = operations
        .iter()
        .map(|m| m.data["operation"].as_str().unwrap())
        .collect();
    warmed.sort_unstable();
    let mut planned: Vec<&str> = WARMING_PLAN
        .iter()
        .flat_map(|(op, _)| std::iter::repeat_n(*op, n))
        .collect();
    planned.sort_unstable();
    assert_eq!(warmed, planned, "each planned operation once per account");

    // One milestone, right after the operation that reached 50 %.
    let milestones = of(&messages, "milestone");
    assert_eq!(milestones.len(), 1, "{:?}", events(&messages));
    let at = messages
        .iter()
        .position(|m| m.data["event"] == "milestone")
        .unwrap();
    let before = &messages[at - 1];
    assert_eq!(before.data["event"], "operation");
    assert!(before.data["progress_percent"].as_f64().unwrap() >= 50.0);
    assert!(messages[at - 2].data["progress_percent"].as_f64().unwrap() < 50.0);
    assert_eq!(milestones[0].level, LoggingLevel::Info);
    assert_eq!(milestones[0].data["completed"], before.data["completed"]);

    // The final message agrees with cache_warming_status.
    let finished = messages.last().unwrap();
    assert_eq!(finished.level, LoggingLevel::Info);
    let status = call(&client, "cache_warming_status", json!({})).await;
    assert_eq!(status["is_warming"], false, "{status}");
    assert_eq!(status["progress_percent"], 100.0, "{status}");
    for (field, key) in [
        ("total", "operations_total"),
        ("completed", "operations_completed"),
        ("skipped", "operations_skipped"),
        ("failed", "operations_failed"),
        ("progress_percent", "progress_percent"),
    ] {
        assert_eq!(finished.data[field], status[key], "{field}: {status}");
    }
    assert_eq!(finished.data["completed"], total, "all warmed: {status}");
    assert!(finished.data["duration_ms"].is_u64(), "{:?}", finished.data);

    // Nothing more: one queued, one milestone, one final message.
    assert_eq!(messages.len() as u64, total + 3, "{:?}", events(&messages));
    assert!(rx.try_recv().is_err());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_left_at_info_gets_no_per_operation_messages() {
    let (world, accounts) = signed_in().await;
    let (client, mut rx) = spawn_stdio(&world).await;
    let messages = collect(&mut rx, |m| {
        has(m, "queued") && has(m, "milestone") && has(m, "finished")
    })
    .await;
    let status = call(&client, "cache_warming_status", json!({})).await;
    let mut messages = messages;
    // Whatever else was sent went out before the final message.
    while let Ok(late) = rx.try_recv() {
        messages.push(late);
    }
    assert_clean(&world, &accounts, &messages);
    assert_eq!(
        events(&messages),
        ["queued", "milestone", "finished"],
        "{messages:#?}"
    );
    assert!(messages.iter().all(|m| m.level == LoggingLevel::Info));
    let finished = messages.last().unwrap();
    assert_eq!(finished.data["total"], status["operations_total"]);
    assert_eq!(finished.data["completed"], status["operations_completed"]);
    assert_eq!(
        finished.data["completed"], finished.data["total"],
        "{status}"
    );

    // A second run finds everything fresh: queued and finished at once.
    client.cancel().await.unwrap();
    let (client, mut rx) = spawn_stdio(&world).await;
    let messages = collect(&mut rx, |m| has(m, "queued") && has(m, "finished")).await;
    assert_clean(&world, &accounts, &messages);
    assert_eq!(events(&messages), ["queued", "finished"], "{messages:#?}");
    let total = messages[0].data["operations"].clone();
    assert_eq!(messages[0].data["skipped"], total);
    assert_eq!(messages[1].data["skipped"], total);
    assert_eq!(messages[1].data["completed"], 0);
    client.cancel().await.unwrap();
}

const TOKEN: &str = "9b2e4c6d8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c";

/// `m365-mcp serve --transport http`; returns the child and the MCP URL.
async fn spawn_http(world: &World) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(exe())
        .args(["serve", "--transport", "http", "--port", "0"])
        .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("MCP_AUTH_TOKEN", TOKEN)
        .env_remove("MCP_HOST")
        .env_remove("MCP_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_string();
            }
        }
        panic!("the server ended before listening");
    })
    .await
    .expect("server announces its address");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn connect_http(url: &str) -> (Client, Messages) {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(TOKEN);
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Recorder(tx)
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("initialize over HTTP");
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_join_after_warming_began_get_the_rest_at_their_own_level() {
    let (world, accounts) = signed_in().await;
    // Slow enough that warming, which starts when the server listens, is
    // still running when the late sessions connect.
    world.sandbox.set_latency(Latency {
        fixed: Duration::from_millis(150),
        jitter: Duration::ZERO,
    });
    let (_server, url) = spawn_http(&world).await;
    let (first, mut first_rx) = connect_http(&url).await;
    first
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    // Warming has been queued and is under way once an operation is done.
    let under_way = collect(&mut first_rx, |m| has(m, "operation")).await;

    // Two sessions join now: one at debug, one left at info.
    let (late_debug, mut debug_rx) = connect_http(&url).await;
    late_debug
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    let (late_info, mut info_rx) = connect_http(&url).await;

    let first_seen = collect_more(&mut first_rx, under_way, finished_without_gaps).await;
    let debug_seen = collect(&mut debug_rx, finished_without_gaps).await;
    let info_seen = collect(&mut info_rx, |m| has(m, "finished")).await;
    let status = call(&late_info, "cache_warming_status", json!({})).await;
    let mut info_seen = info_seen;
    while let Ok(late) = info_rx.try_recv() {
        info_seen.push(late);
    }
    for seen in [&first_seen, &debug_seen, &info_seen] {
        assert_clean(&world, &accounts, seen);
    }

    let total = (WARMING_PLAN.len() * accounts.len()) as u64;
    let first_ops = of(&first_seen, "operation");
    let late_ops = of(&debug_seen, "operation");
    // The late debug session missed the queued message and what finished
    // before it joined, and got every operation after that, up to the total.
    assert!(!has(&debug_seen, "queued"), "{:?}", events(&debug_seen));
    assert!(!late_ops.is_empty(), "{:?}", events(&debug_seen));
    assert!(
        late_ops[0].data["completed"].as_u64() > first_ops[0].data["completed"].as_u64(),
        "joined later: {:?} / {:?}",
        late_ops[0].data,
        first_ops[0].data
    );
    assert_eq!(late_ops.last().unwrap().data["completed"], total);
    // The late info session got neither the queued message nor operations.
    assert!(!has(&info_seen, "queued"), "{:?}", events(&info_seen));
    assert!(!has(&info_seen, "operation"), "{:?}", events(&info_seen));
    assert!(info_seen.iter().all(|m| m.level == LoggingLevel::Info));
    // All three got the same final message, which agrees with the status.
    let finished = &first_seen
        .iter()
        .find(|m| m.data["event"] == "finished")
        .unwrap()
        .data;
    assert_eq!(&debug_seen.last().unwrap().data, finished);
    assert_eq!(&info_seen.last().unwrap().data, finished);
    assert_eq!(finished["total"], total);
    assert_eq!(finished["total"], status["operations_total"]);
    assert_eq!(finished["completed"], status["operations_completed"]);
    assert_eq!(finished["skipped"], status["operations_skipped"]);
    assert_eq!(finished["failed"], status["operations_failed"]);
    for client in [first, late_debug, late_info] {
        client.cancel().await.unwrap();
    }
}
