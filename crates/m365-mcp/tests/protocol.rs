//! The server as a process: raw JSON-RPC on stdio (malformed input, unknown
//! methods), shutdown on stdin close and SIGTERM, the `auth` command line,
//! and logs that carry no secrets.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, exe};
use m365_mcp::demo::{call, sign_in_all, spawn_server_with};
use m365_sandbox::SandboxConfig;
use serde_json::{Value, json};

struct Raw {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Raw {
    fn start(world: &World) -> Raw {
        let mut child = Command::new(exe())
            .arg("serve")
            .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Raw {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next message with this id (skipping notifications).
    fn response(&self, id: i64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("a response before the deadline");
            let value: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carried non-JSON {line:?}: {e}"));
            if value["id"] == id {
                return value;
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn initialize(raw: &mut Raw) {
    raw.send(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw-test","version":"0"}}}"#);
    let init = raw.response(1);
    assert_eq!(init["result"]["serverInfo"]["name"], "m365-mcp", "{init}");
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_and_the_server_keeps_serving_until_stdin_closes() {
    let world = World::manual().await;
    let mut raw = Raw::start(&world);
    initialize(&mut raw);

    raw.send("this is not JSON at all {");
    raw.send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let list = raw.response(2);
    assert!(
        list["result"]["tools"].as_array().unwrap().len() >= 5,
        "{list}"
    );

    raw.send(r#"{"jsonrpc":"2.0","id":3,"method":"no/such/method"}"#);
    let unknown = raw.response(3);
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");

    raw.send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"email_list","arguments":{"limit":"many"}}}"#);
    let bad = raw.response(4);
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(
        bad["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Invalid arguments for email_list")
    );

    raw.send(
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#,
    );
    let missing = raw.response(5);
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown tool"),
        "{missing}"
    );

    raw.send(r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"server_get_version","arguments":{}}}"#);
    let version = raw.response(6);
    assert_eq!(
        version["result"]["structuredContent"]["package"],
        "m365-mcp"
    );

    drop(raw.stdin.take());
    let status = raw.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "closing stdin is a clean shutdown: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_shut_the_server_down_cleanly() {
    let world = World::manual().await;
    for signal in ["-TERM", "-INT"] {
        let mut raw = Raw::start(&world);
        initialize(&mut raw);
        let pid = raw.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = raw.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{signal}: {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_command_line_signs_in_adds_lists_and_explains_a_missing_client_id() {
    let mut world = World::start(SandboxConfig::default()).await; // approves after the first poll
    let first = world.run_cli(&["auth", "login"]);
    let err = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "{err}");
    assert!(
        err.contains("URL:") && err.contains("Code:"),
        "URL and code go to stderr: {err}"
    );
    assert!(err.contains("Signed in as"), "{err}");
    assert!(first.stdout.is_empty(), "stdout stays clean");

    let second = world.run_cli(&["auth", "login"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let list = world.run_cli(&["auth", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(
        text.lines().count(),
        2,
        "the second login adds an account: {text}"
    );
    for user in world.sandbox.users().iter().take(2) {
        assert!(text.contains(&user.account_id()), "{text}");
    }

    let missing = world.run_cli(&["auth", "remove", "nobody@example.com"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("Invalid account_id"));

    world.env.retain(|(k, _)| k != "M365_MCP_CLIENT_ID");
    let no_client = world.run_cli(&["auth", "login"]);
    let err = String::from_utf8_lossy(&no_client.stderr).to_string();
    assert!(!no_client.status.success());
    assert!(err.contains("M365_MCP_CLIENT_ID"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_info_carry_no_tokens_keys_or_mailbox_content() {
    let mut world = World::manual().await;
    let log_dir = world.data_dir().join("logs");
    world.with_env("MCP_LOG_LEVEL", "info");
    world.with_env("MCP_LOG_DIR", log_dir.to_str().unwrap());
    let (client, _, stderr) = spawn_server_with(&exe(), &world.env, true).await.unwrap();
    let mut stderr = stderr.unwrap();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .unwrap();
        text
    });
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let (list, _, _) = call(
        &client,
        "email_list",
        json!({"account_id": adele, "limit": 10, "include_body": true}),
    )
    .await
    .unwrap();
    let id = list["value"][0]["id"].as_str().unwrap().to_string();
    call(
        &client,
        "email_get",
        json!({"account_id": adele, "email_id": id}),
    )
    .await
    .unwrap();
    call(
        &client,
        "email_get",
        json!({"account_id": adele, "email_id": "AAMkMissing="}),
    )
    .await
    .unwrap();
    client.cancel().await.unwrap();
    let mut log = reader.await.unwrap();
    for entry in std::fs::read_dir(&log_dir).expect("log files are written to MCP_LOG_DIR") {
        log.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(
        log.contains("account signed in"),
        "the log is not empty: {log}"
    );

    let mut secrets: Vec<String> = vec![
        world.key.to_base64().to_string(),
        hex::encode(world.key.as_bytes()),
    ];
    for m in list["value"].as_array().unwrap() {
        for field in ["subject", "bodyPreview"] {
            if let Some(s) = m[field].as_str().filter(|s| s.len() > 8) {
                secrets.push(s.to_string());
            }
        }
    }
    // Refresh tokens, as stored in the encrypted accounts file.
    let (accounts, _) = m365_store::Store::open(
        m365_store::StoreConfig::new(world.data_dir().join("accounts.db")),
        world.key.clone(),
        None,
    )
    .unwrap();
    for user in world.sandbox.users() {
        let token = accounts
            .refresh_token(&user.account_id())
            .unwrap()
            .expect("stored refresh token");
        secrets.push(token.to_string());
    }
    for secret in secrets {
        assert!(
            !log.contains(&secret),
            "the log contains a secret or mailbox content: {secret:?}"
        );
    }
}
