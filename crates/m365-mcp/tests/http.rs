//! The Streamable HTTP transport, driven over real sockets: bearer
//! authentication (401s serve nothing), start-up refusals, Host/Origin
//! checks, `/health`, many concurrent MCP clients, the official Python SDK's
//! HTTP client, and the dashboard — through its API and in headless
//! Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{World, exe, ok};
use m365_mcp::demo::{Client, sign_in_all};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "3f1c9a7be2d84a6f9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6";

/// A running `m365-mcp serve --transport http`.
struct HttpServer {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`
    base: String,
    /// Everything the server wrote to stderr so far.
    stderr: Arc<Mutex<String>>,
}

impl HttpServer {
    fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

fn command(world: &World, extra: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(exe());
    cmd.args(["serve", "--transport", "http", "--port", "0"])
        .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("MCP_AUTH_TOKEN", TOKEN)
        .env("MCP_LOG_LEVEL", "info")
        .env_remove("MCP_HOST")
        .env_remove("MCP_PORT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

async fn spawn_http(world: &World, extra: &[(&str, &str)]) -> HttpServer {
    let mut child = command(world, extra).spawn().expect("spawn server");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sink = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tx = Some(tx);
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.strip_prefix("listening on ")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.trim_end_matches("/mcp").to_string());
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    let base = tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .expect("server announces its address")
        .expect("server is listening");
    HttpServer {
        _child: child,
        base,
        stderr: log,
    }
}

async fn connect(url: &str, token: Option<&str>) -> anyhow::Result<Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(token) = token {
        config = config.auth_header(token.to_string());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    Ok(().serve(transport).await?)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    })
}

async fn post_mcp(server: &HttpServer, auth: Option<&str>, body: &Value) -> reqwest::Response {
    let mut request = http()
        .post(server.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    request.send().await.unwrap()
}

async fn signed_in_world() -> World {
    let world = World::manual().await;
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    client.cancel().await.unwrap();
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_right_token_get_401_and_reach_nothing() {
    let world = signed_in_world().await;
    let server = spawn_http(&world, &[("M365_MCP_CACHE_WARMING", "false")]).await;
    world.sandbox.reset_counters();

    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "email_list", "arguments": {"account_id": world.username(0)}}});
    for (auth, detail, invalid) in [
        (None, "Missing Authorization header", false),
        (
            Some("Bearer wrong-token-wrong-token-wrong-token-1234"),
            "Invalid authentication token",
            true,
        ),
        (
            Some(&format!("Basic {TOKEN}")[..]),
            "Expected: Bearer <token>",
            true,
        ),
        (
            Some(&format!("Bearer {TOKEN}x")[..]),
            "Invalid authentication token",
            true,
        ),
    ] {
        for body in [initialize_body(), call.clone()] {
            let response = post_mcp(&server, auth, &body).await;
            assert_eq!(response.status(), 401, "{auth:?}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            assert_eq!(challenge.contains("invalid_token"), invalid, "{challenge}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "unauthorized");
            assert!(body["detail"].as_str().unwrap().contains(detail), "{body}");
        }
    }
    // The dashboard's data is behind the same token.
    let response = http()
        .get(format!("{}/dashboard/data", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        world.sandbox.request_log().len(),
        0,
        "a refused request reached Graph"
    );

    // The right token opens a session through a real MCP client.
    let client = connect(&server.mcp_url(), Some(TOKEN)).await.unwrap();
    let listed = ok(
        &client,
        "email_list",
        json!({"account_id": world.username(0), "limit": 3}),
    )
    .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 3);
    assert_eq!(listed["_cache"]["status"], "miss");
    // A client without the token cannot even initialize.
    assert!(connect(&server.mcp_url(), None).await.is_err());
    client.cancel().await.unwrap();

    // /health needs no token and carries nothing secret.
    let health: Value = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["transport"], "http");
    assert_eq!(health["auth"], "bearer");
    assert_eq!(health["cache"]["state"], "open");
    assert_eq!(health["cache"]["backend"], "sqlcipher");
    assert_eq!(health["accounts"], 3);
    assert_eq!(health["worker"], "running");
    let text = health.to_string();
    assert!(!text.contains(TOKEN));
    assert!(!text.contains(&world.username(0)), "{text}");
    assert!(
        !server.stderr().contains(TOKEN),
        "the token reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_settings_are_refused_at_start_up() {
    let world = World::manual().await;
    for (extra, expected) in [
        (
            vec![("MCP_AUTH_TOKEN", "short-token")],
            "openssl rand -hex 32",
        ),
        (vec![("MCP_AUTH_TOKEN", "")], "MCP_AUTH_TOKEN"),
        (
            vec![(
                "MCP_AUTH_TOKEN",
                "a token with spaces in it that is long enough",
            )],
            "visible ASCII",
        ),
        (vec![("MCP_AUTH_METHOD", "none")], "MCP_ALLOW_INSECURE=true"),
        (
            vec![("MCP_AUTH_METHOD", "oauth")],
            "Expected: bearer or none",
        ),
        (vec![("MCP_PATH", "/health")], "Invalid MCP_PATH"),
    ] {
        let output = command(&world, &extra)
            .stderr(Stdio::piped())
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{extra:?} started");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(
            !stderr.contains("short-token"),
            "the token was echoed: {stderr}"
        );
    }

    // `none` with the explicit opt-in serves, and says it has no auth.
    let server = spawn_http(
        &world,
        &[("MCP_AUTH_METHOD", "none"), ("MCP_ALLOW_INSECURE", "true")],
    )
    .await;
    let health: Value = http()
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["auth"], "none");
    let response = post_mcp(&server, None, &initialize_body()).await;
    assert_eq!(response.status(), 200);
    assert!(!server.stderr().contains("WARNING"), "{}", server.stderr());

    // Without authentication beyond loopback: it serves, and says so loudly.
    let open = spawn_http(
        &world,
        &[
            ("MCP_AUTH_METHOD", "none"),
            ("MCP_ALLOW_INSECURE", "true"),
            ("MCP_HOST", "0.0.0.0"),
        ],
    )
    .await;
    let log = open.stderr();
    assert!(log.contains("WARNING: no authentication"), "{log}");
    assert!(log.contains("WITHOUT AUTHENTICATION"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_origins_are_refused() {
    let world = World::manual().await;
    let server = spawn_http(
        &world,
        &[("MCP_ALLOWED_ORIGINS", "https://app.example.com")],
    )
    .await;
    let auth = format!("Bearer {TOKEN}");
    let send = |host: Option<&'static str>, origin: Option<String>| {
        let mut request = http()
            .post(server.mcp_url())
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("Authorization", &auth)
            .body(initialize_body().to_string());
        if let Some(host) = host {
            request = request.header("Host", host);
        }
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        request.send()
    };
    // DNS rebinding: a page on evil.example resolving to 127.0.0.1.
    let r = send(Some("evil.example:8000"), None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Host not allowed"));
    let r = send(None, Some("http://evil.example".into()))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Origin not allowed"));
    // Even /health is not answered to a foreign Host.
    let r = http()
        .get(format!("{}/health", server.base))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The server's own origin and an allowed one pass.
    assert_eq!(
        send(None, Some(server.base.clone()))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send(None, Some("https://app.example.com".into()))
            .await
            .unwrap()
            .status(),
        200
    );
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let r = http()
        .get(format!("http://localhost:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_clients_each_make_a_hundred_calls() {
    let world = signed_in_world().await;
    let server = spawn_http(&world, &[("M365_MCP_CACHE_WARMING", "false")]).await;
    world.sandbox.reset_counters();
    let url = server.mcp_url();
    let accounts = [world.username(0), world.username(1)];
    let mut clients = Vec::new();
    for i in 0..50 {
        let url = url.clone();
        let account = accounts[i % 2].clone();
        clients.push(tokio::spawn(async move {
            let client = connect(&url, Some(TOKEN)).await.expect("connect");
            let mut statuses = Vec::new();
            for call in 0..100 {
                let (tool, args) = if call % 4 == 3 {
                    ("account_list", json!({}))
                } else {
                    ("email_list", json!({"account_id": account, "limit": 10}))
                };
                let (value, err, _) = m365_mcp::demo::call(&client, tool, args)
                    .await
                    .expect("answered");
                assert!(!err, "{tool}: {value}");
                if tool == "email_list" {
                    assert_eq!(value["value"].as_array().unwrap().len(), 10);
                    statuses.push(value["_cache"]["status"].as_str().unwrap().to_string());
                }
            }
            client.cancel().await.unwrap();
            statuses
        }));
    }
    let mut answered = 0;
    let mut misses = 0;
    for c in clients {
        let statuses = c.await.expect("client task");
        answered += statuses.len();
        misses += statuses.iter().filter(|s| *s == "miss").count();
    }
    assert_eq!(answered, 50 * 75);
    // Single-flight: the first cold call per account reached Graph, every
    // other one waited for it and was answered from the cache.
    assert_eq!(misses, 2, "identical cold reads were not merged");
    let graph_calls = world
        .sandbox
        .request_log()
        .iter()
        .filter(|r| r.path.contains("/messages"))
        .count();
    assert_eq!(graph_calls, 2, "{:?}", world.sandbox.request_log());
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("M365_MCP_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

fn require_python(what: &str) -> Option<PathBuf> {
    let found = python();
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide {what}");
        eprintln!("skipping: run scripts/test.sh (it creates .venv with {what})");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_over_streamable_http() {
    let Some(python) = require_python("the mcp SDK") else {
        return;
    };
    let world = signed_in_world().await;
    let server = spawn_http(&world, &[("M365_MCP_CACHE_WARMING", "false")]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_http_client.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(server.mcp_url())
        .arg(TOKEN)
        .arg(world.username(0))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["server"], "m365-mcp");
    let tools = report["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t == "email_list"));
    assert!(tools.len() >= 85, "{}", tools.len());
    assert_eq!(report["first"]["is_error"], false);
    assert_eq!(report["first"]["structured"]["_cache"]["status"], "miss");
    assert_eq!(report["second"]["structured"]["_cache"]["status"], "fresh");
    assert_eq!(
        report["first"]["structured"]["value"],
        report["second"]["structured"]["value"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_login_is_a_cookie_for_the_dashboard_only() {
    let world = World::manual().await;
    let server = spawn_http(&world, &[("M365_MCP_CACHE_WARMING", "false")]).await;
    let client = http();
    // A browser without credentials is shown the login form (401).
    let r = client
        .get(format!("{}/dashboard", server.base))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("id=\"login\""));
    // A wrong token: no cookie.
    let r = client
        .post(format!("{}/dashboard/login", server.base))
        .form(&[("token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    // The right one: a random session cookie, not the token.
    let r = client
        .post(format!("{}/dashboard/login", server.base))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/dashboard"), "{cookie}");
    assert!(!cookie.contains(TOKEN));
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = client
        .get(format!("{}/dashboard/data", server.base))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let data: Value = r.json().await.unwrap();
    assert_eq!(data["backend"], "sqlcipher");
    // The cookie does not open the MCP endpoint.
    let r = http()
        .post(server.mcp_url())
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Cookie", &pair)
        .body(initialize_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Signing out ends the session.
    let r = client
        .post(format!("{}/dashboard/logout", server.base))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = client
        .get(format!("{}/dashboard/data", server.base))
        .header("Cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_in_a_real_browser_what_the_stats_tool_reports() {
    let Some(python) = require_python("playwright") else {
        return;
    };
    let chromium =
        std::env::var("M365_MCP_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium");
        eprintln!("skipping: no Chromium at {chromium}");
        return;
    }
    let world = signed_in_world().await;
    let server = spawn_http(&world, &[("M365_MCP_CACHE_WARMING", "false")]).await;
    let client = connect(&server.mcp_url(), Some(TOKEN)).await.unwrap();
    let me = world.username(0);
    // Some traffic: misses, hits, two resources.
    for _ in 0..3 {
        ok(&client, "email_list", json!({"account_id": me, "limit": 5})).await;
    }
    ok(&client, "contact_list", json!({"account_id": me})).await;
    ok(&client, "contact_list", json!({"account_id": me})).await;
    let stats = ok(&client, "cache_get_stats", json!({})).await;
    client.cancel().await.unwrap();

    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let screenshot = out_dir.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dashboard_browser.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(&server.base)
        .arg(TOKEN)
        .arg(&screenshot)
        .env("M365_MCP_TEST_CHROMIUM", &chromium)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "browser run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(page["login_status"], 401);
    assert!(
        page["wrong_token_message"]
            .as_str()
            .unwrap()
            .contains("Invalid")
    );
    assert!(
        page["url"].as_str().unwrap().ends_with("/dashboard"),
        "{page}"
    );
    let total = &stats["total"];
    for (dom, stat) in [
        ("hits", "hits"),
        ("misses", "misses"),
        ("stale_hits", "stale_hits"),
        ("entries", "entries"),
        ("stored_bytes", "stored_bytes"),
    ] {
        assert_eq!(
            page[dom], total[stat],
            "{dom}: page {page} vs stats {stats}"
        );
    }
    assert_eq!(total["hits"], 3, "{stats}");
    assert_eq!(total["misses"], 2, "{stats}");
    let per_resource = stats["per_resource"].as_array().expect("per_resource list");
    for row in per_resource {
        let (name, r) = (row[0].as_str().unwrap(), &row[1]);
        assert_eq!(
            page["per_resource"][name]["entries"], r["entries"],
            "{name}"
        );
        assert_eq!(page["per_resource"][name]["hits"], r["hits"], "{name}");
        assert_eq!(page["per_resource"][name]["misses"], r["misses"], "{name}");
    }
    assert_eq!(page["per_resource"]["email_list"]["hits"], 2);
    assert_eq!(page["backend"], "sqlcipher");
    assert_eq!(page["has_chart"], true);
    let text = page["page_text"].as_str().unwrap();
    assert!(!text.contains(TOKEN));
    let png = std::fs::read(&screenshot).expect("a screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", screenshot.display());
}
