//! Long runs send MCP progress notifications when the client gives a
//! progress token, and none when it does not. Raw JSON-RPC on stdio, so the
//! test sees exactly what goes over the wire.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, exe};
use m365_mcp::demo::sign_in_all;
use serde_json::{Value, json};

/// Sends one request and returns (notifications before the answer, answer).
fn exchange(
    stdin: &mut std::process::ChildStdin,
    lines: &std::sync::mpsc::Receiver<String>,
    request: Value,
) -> (Vec<Value>, Value) {
    let id = request["id"].clone();
    stdin.write_all(format!("{request}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut notes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("an answer before the deadline");
        let value: Value = serde_json::from_str(&line).unwrap();
        if value["id"] == id {
            return (notes, value);
        }
        notes.push(value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_trees_and_bulk_runs_report_progress_to_clients_that_ask() {
    let mut world = World::manual().await;
    world.with_env("M365_MCP_CACHE_WARMING", "false");
    let signer = world.client().await;
    sign_in_all(&signer, &world.sandbox).await.unwrap();
    signer.cancel().await.unwrap();
    let adele = world.username(0);

    let mut child = Command::new(exe())
        .arg("serve")
        .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    exchange(
        &mut stdin,
        &lines,
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"progress-test","version":"0"}}}),
    );
    stdin
        .write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")
        .unwrap();

    let call = |id: i64, name: &str, args: Value, token: Option<&str>| {
        let mut params = json!({"name": name, "arguments": args});
        if let Some(token) = token {
            params["_meta"] = json!({"progressToken": token});
        }
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})
    };

    let (notes, answer) = exchange(
        &mut stdin,
        &lines,
        call(
            2,
            "emailfolders_get_tree",
            json!({"account_id": adele, "use_cache": false}),
            None,
        ),
    );
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    assert!(notes.is_empty(), "no token, no notifications: {notes:?}");

    let (notes, answer) = exchange(
        &mut stdin,
        &lines,
        call(
            3,
            "emailfolders_get_tree",
            json!({"account_id": adele, "use_cache": false}),
            Some("tree"),
        ),
    );
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    let tree: Vec<&Value> = notes
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(!tree.is_empty(), "the tree reported progress: {notes:?}");
    for n in &tree {
        assert_eq!(n["params"]["progressToken"], "tree");
    }
    for pair in tree.windows(2) {
        assert!(pair[1]["params"]["progress"].as_f64() > pair[0]["params"]["progress"].as_f64());
    }

    let (notes, answer) = exchange(
        &mut stdin,
        &lines,
        call(
            4,
            "emailfolders_mark_all_as_read",
            json!({"account_id": adele, "folder_id": "inbox"}),
            Some(json!(42).to_string().as_str()),
        ),
    );
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    let bulk: Vec<&Value> = notes
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    let last = bulk.last().expect("mark-all-read reported progress");
    assert_eq!(
        last["params"]["progress"], last["params"]["total"],
        "ends at its total: {last}"
    );
    drop(stdin);
    let _ = child.wait();
}
