//! `m365-mcp demo`: a guided tour on the built-in sandbox tenant, and
//! `m365-mcp sandbox`: the sandbox alone.
//!
//! The tour starts the Graph sandbox in this process with realistic latency,
//! starts the real server as a child process, drives it through rmcp's MCP
//! client exactly as an assistant would, and prints what a user should see.
//! Nothing touches the user's own accounts, keyring or cache: the demo runs
//! in a temporary data directory with a key of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use m365_sandbox::{Latency, Sandbox, SandboxConfig, SandboxHandle, TenantSize};
use m365_store::CacheKey;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// `demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep serving MCP on stdio against the sandbox, for your own MCP client.
    #[arg(long)]
    pub serve: bool,
    /// Simulated Graph latency per call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub latency_ms: u64,
}

/// `sandbox` options.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Latency per Graph call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed the benchmark-sized tenant (500+ drive folders, 10 000+ messages).
    #[arg(long)]
    pub large: bool,
    /// Seed of the generated tenant.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn latency(ms: u64) -> Latency {
    // Around `ms` on average: 80 % fixed, up to 40 % jitter.
    Latency {
        fixed: Duration::from_millis(ms * 4 / 5),
        jitter: Duration::from_millis(ms * 2 / 5),
    }
}

/// Runs the sandbox alone until Ctrl-C.
pub async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let config = SandboxConfig {
        seed: args.seed,
        tenant: if args.large {
            TenantSize::large()
        } else {
            TenantSize::small()
        },
        latency: latency(args.latency_ms),
        ..SandboxConfig::default()
    };
    eprintln!(
        "Graph sandbox on http://127.0.0.1:{} (Ctrl-C to stop)",
        args.port
    );
    eprintln!("  M365_MCP_GRAPH_URL=http://127.0.0.1:{}/v1.0", args.port);
    eprintln!("  M365_MCP_AUTHORITY_URL=http://127.0.0.1:{}", args.port);
    eprintln!("  M365_MCP_CLIENT_ID={}", m365_sandbox::CLIENT_ID);
    m365_sandbox::run_standalone(config, args.port)
        .await
        .map_err(|e| anyhow::anyhow!("sandbox failed: {e}"))
}

/// The environment a server on the sandbox runs with.
pub fn sandbox_env(
    sandbox: &SandboxHandle,
    data_dir: &Path,
    key: &CacheKey,
) -> Vec<(String, String)> {
    vec![
        ("M365_MCP_GRAPH_URL".into(), sandbox.graph_url()),
        ("M365_MCP_AUTHORITY_URL".into(), sandbox.authority_url()),
        ("M365_MCP_CLIENT_ID".into(), sandbox.client_id()),
        ("M365_MCP_TENANT_ID".into(), "common".into()),
        ("M365_MCP_DATA_DIR".into(), data_dir.display().to_string()),
        ("M365_MCP_CACHE_KEY".into(), key.to_base64().to_string()),
        ("M365_MCP_KEYRING_SERVICE".into(), "m365-mcp-demo".into()),
        ("MCP_LOG_LEVEL".into(), "warn".into()),
        // Warming would add background Graph calls to the counts the tour shows.
        ("M365_MCP_CACHE_WARMING".into(), "false".into()),
    ]
}

/// A connected MCP client on a child server process.
pub type Client = RunningService<RoleClient, ()>;

/// Starts `exe serve` with `env` and connects rmcp's client to it over stdio.
/// Returns the client and the time from spawn to the `initialize` answer.
pub async fn spawn_server(
    exe: &Path,
    env: &[(String, String)],
) -> anyhow::Result<(Client, Duration)> {
    let (client, elapsed, _) = spawn_server_with(exe, env, false).await?;
    Ok((client, elapsed))
}

/// [`spawn_server`], optionally capturing the server's stderr (its log).
pub async fn spawn_server_with(
    exe: &Path,
    env: &[(String, String)],
    capture_stderr: bool,
) -> anyhow::Result<(Client, Duration, Option<tokio::process::ChildStderr>)> {
    let started = Instant::now();
    let command = tokio::process::Command::new(exe).configure(|cmd| {
        cmd.arg("serve");
        for (k, v) in env {
            cmd.env(k, v);
        }
    });
    let stderr = if capture_stderr {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::inherit()
    };
    let (transport, stderr) = TokioChildProcess::builder(command).stderr(stderr).spawn()?;
    let client = ().serve(transport).await?;
    Ok((client, started.elapsed(), stderr))
}

/// Calls a tool; returns the structured result, whether it was an error, and
/// the round-trip time measured at the client.
pub async fn call(
    client: &Client,
    tool: &str,
    args: Value,
) -> anyhow::Result<(Value, bool, Duration)> {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    let started = Instant::now();
    let result: CallToolResult = client.call_tool(params).await?;
    let elapsed = started.elapsed();
    let is_error = result.is_error.unwrap_or(false);
    let value = result.structured_content.unwrap_or(Value::Null);
    Ok((value, is_error, elapsed))
}

/// Signs every sandbox user in through the account tools, approving each
/// device code at the sandbox as that user would in a browser.
pub async fn sign_in_all(client: &Client, sandbox: &SandboxHandle) -> anyhow::Result<Vec<Value>> {
    let mut accounts = Vec::new();
    for user in sandbox.users() {
        let (started, err, _) = call(client, "account_authenticate", json!({})).await?;
        anyhow::ensure!(!err, "account_authenticate failed: {started}");
        let code = started["user_code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let handle = started["_flow_cache"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        sandbox
            .approve_device_code(&code, &user.username)
            .map_err(|e| anyhow::anyhow!("sandbox approval failed: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (done, err, _) = call(
                client,
                "account_complete_auth",
                json!({ "flow_cache": handle }),
            )
            .await?;
            anyhow::ensure!(!err, "account_complete_auth failed: {done}");
            if done["status"] == "success" {
                accounts.push(done);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "sign-in did not complete");
            let wait = done["retry_after_seconds"]
                .as_u64()
                .unwrap_or(1)
                .clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }
    Ok(accounts)
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    }
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The guided tour.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(SandboxConfig {
        latency: latency(args.latency_ms),
        auto_approve_device_code: false,
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot start the sandbox: {e}"))?;
    let dir = TempDir(std::env::temp_dir().join(format!("m365-mcp-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let key = CacheKey::generate();
    let env = sandbox_env(&sandbox, &dir.0, &key);
    let exe = std::env::current_exe()?;

    if args.serve {
        return serve_on_sandbox(&exe, &env, sandbox).await;
    }

    println!(
        "m365-mcp demo — a sandbox Microsoft 365 tenant at {} (~{} ms per Graph call)\n",
        sandbox.graph_url(),
        args.latency_ms
    );
    let (client, init) = spawn_server(&exe, &env).await?;
    let tools = client.list_all_tools().await?;
    println!(
        "Started the real server over stdio: initialize answered in {}, {} tools.",
        ms(init),
        tools.len()
    );

    println!(
        "\nSigning in the sandbox's users with the device-code tools (account_authenticate → account_complete_auth):"
    );
    for account in sign_in_all(&client, &sandbox).await? {
        println!(
            "  ✓ {} ({}, {})",
            account["username"].as_str().unwrap_or("?"),
            account["account_type"].as_str().unwrap_or("?"),
            account["account_id"].as_str().unwrap_or("?")
        );
    }
    let first_user = sandbox
        .users()
        .first()
        .map(|u| u.username.clone())
        .unwrap_or_default();

    let inbox = call(
        &client,
        "email_list",
        json!({"account_id": first_user, "limit": 5}),
    )
    .await?;
    let first_id = inbox.0["value"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plan: Vec<(&str, Value)> = vec![
        ("account_list", json!({})),
        ("emailfolders_list", json!({"account_id": first_user})),
        (
            "email_list",
            json!({"account_id": first_user, "folder": "inbox", "limit": 25}),
        ),
        (
            "email_get",
            json!({"account_id": first_user, "email_id": first_id}),
        ),
        (
            "emailfolders_get",
            json!({"account_id": first_user, "folder_id": "inbox"}),
        ),
    ];
    println!(
        "\nEach tool called twice (latency measured at the MCP client; Graph calls counted at the sandbox):"
    );
    println!(
        "  {:<20} {:>12} {:>8} {:>12} {:>8}  cache",
        "tool", "first", "Graph", "again", "Graph"
    );
    let mut saved = 0u64;
    let mut made = 0u64;
    for (tool, args) in plan {
        let before = sandbox.counts().graph;
        let (_, err1, cold) = call(&client, tool, args.clone()).await?;
        let mid = sandbox.counts().graph;
        let (again_value, err2, warm) = call(&client, tool, args).await?;
        let after = sandbox.counts().graph;
        anyhow::ensure!(!err1 && !err2, "{tool} failed: {again_value}");
        let status = again_value["_cache"]["status"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        made += (mid - before) + (after - mid);
        saved += (mid - before).saturating_sub(after - mid);
        println!(
            "  {:<20} {:>12} {:>8} {:>12} {:>8}  {}",
            tool,
            ms(cold),
            mid - before,
            ms(warm),
            after - mid,
            status
        );
    }
    println!("\nGraph calls made: {made}; saved by the cache on the second calls: {saved}.");

    let (bad, is_error, _) = call(
        &client,
        "email_list",
        json!({"account_id": first_user, "limit": 0}),
    )
    .await?;
    println!(
        "\nBad input gets a clear error (isError={is_error}):\n  {}",
        bad["error"]["text"].as_str().unwrap_or("")
    );
    client.cancel().await?;

    println!("\nWhat rests on disk ({}):", dir.0.display());
    for name in ["accounts.db", "cache.db"] {
        let path = dir.0.join(name);
        if !path.exists() {
            continue;
        }
        let header: Vec<u8> = std::fs::read(&path)?.into_iter().take(16).collect();
        println!(
            "  {name}: {} bytes; first bytes {} (a plain SQLite file starts with \"SQLite format 3\")",
            std::fs::metadata(&path)?.len(),
            hex_preview(&header)
        );
        println!(
            "    opens with its key: {}; with any other key: {}",
            yes_no(m365_store::opens_with_key(&path, &key)),
            yes_no(m365_store::opens_with_key(&path, &CacheKey::generate()))
        );
    }
    sandbox.shutdown().await;
    println!(
        "\nDone. `m365-mcp demo --serve` keeps a server on this sandbox for your own MCP client."
    );
    Ok(())
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn hex_preview(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `demo --serve`: sign the sandbox users in, then let the person's MCP
/// client talk to a server on the sandbox through this process's stdio.
async fn serve_on_sandbox(
    exe: &Path,
    env: &[(String, String)],
    sandbox: SandboxHandle,
) -> anyhow::Result<()> {
    // Sign in through a first, private connection…
    let (client, _) = spawn_server(exe, env).await?;
    sign_in_all(&client, &sandbox).await?;
    client.cancel().await?;
    eprintln!(
        "m365-mcp demo --serve: sandbox tenant at {}; serving MCP on stdio (Ctrl-C to stop).",
        sandbox.graph_url()
    );
    // …then hand stdio to a server process on the same data directory.
    let mut child = tokio::process::Command::new(exe)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    tokio::select! {
        status = child.wait() => { status?; }
        _ = crate::server::shutdown_signal() => { let _ = child.kill().await; }
    }
    sandbox.shutdown().await;
    Ok(())
}
