//! End-to-end benchmarks: the release `m365-mcp` binary over stdio, driven
//! by rmcp's MCP client, against the Graph sandbox with realistic latency.
//! Latency is measured at the client; Graph calls are counted at the
//! sandbox; RSS is read from the server's `/proc/<pid>/status`.
//!
//! ```text
//! cargo build --release -p m365-mcp -p m365-bench
//! target/release/m365-bench [startup|cached|warming|day|trees|upload|http|floor|all] [--server target/release/m365-mcp]
//! ```
//!
//! Results go to stdout as Markdown, ready for docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use m365_mcp::demo::{Client, call, sandbox_env, sign_in_all};
use m365_sandbox::{Latency, Sandbox, SandboxConfig, SandboxHandle, TenantSize};
use m365_store::{CacheKey, Dependencies, EntryKey, Store, StoreConfig};
use rmcp::ServiceExt;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

struct Server {
    client: Client,
    pid: u32,
    init: Duration,
}

async fn spawn(exe: &Path, env: &[(String, String)]) -> anyhow::Result<Server> {
    let started = Instant::now();
    let command = tokio::process::Command::new(exe).configure(|cmd| {
        cmd.arg("serve");
        for (k, v) in env {
            cmd.env(k, v);
        }
    });
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = transport.id().unwrap_or(0);
    let client = ().serve(transport).await?;
    Ok(Server {
        client,
        pid,
        init: started.elapsed(),
    })
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<f64>().ok())
            })
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

struct Percentiles {
    p50: Duration,
    p95: Duration,
    p99: Duration,
    n: usize,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        n: samples.len(),
    }
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn row(name: &str, p: &Percentiles, graph: u64, extra: &str) {
    println!(
        "| {name} | {} | {} | {} | {} | {graph} | {extra} |",
        p.n,
        fmt(p.p50),
        fmt(p.p95),
        fmt(p.p99)
    );
}

fn header() {
    println!("| scenario | calls | p50 | p95 | p99 | Graph calls | notes |");
    println!("|---|---|---|---|---|---|---|");
}

struct World {
    sandbox: SandboxHandle,
    dir: PathBuf,
    key: CacheKey,
    env: Vec<(String, String)>,
}

impl World {
    async fn new(latency_ms: u64) -> anyhow::Result<World> {
        World::with_tenant(latency_ms, TenantSize::small()).await
    }

    async fn with_tenant(latency_ms: u64, tenant: TenantSize) -> anyhow::Result<World> {
        let sandbox = Sandbox::start(SandboxConfig {
            tenant,
            latency: Latency {
                fixed: Duration::from_millis(latency_ms),
                jitter: Duration::ZERO,
            },
            auto_approve_device_code: false,
            ..SandboxConfig::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let dir =
            std::env::temp_dir().join(format!("m365-bench-{}-{}", std::process::id(), latency_ms));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let key = CacheKey::generate();
        let mut env = sandbox_env(&sandbox, &dir, &key);
        env.retain(|(k, _)| k != "M365_MCP_CACHE_WARMING");
        env.push(("M365_MCP_CACHE_WARMING".into(), "false".into()));
        Ok(World {
            sandbox,
            dir,
            key,
            env,
        })
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn timed(
    client: &Client,
    tool: &str,
    args: Value,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (value, err, elapsed) = call(client, tool, args.clone()).await?;
        anyhow::ensure!(!err, "{tool} failed: {value}");
        samples.push(elapsed);
    }
    Ok(samples)
}

async fn startup(exe: &Path) -> anyhow::Result<()> {
    println!("\n### Start-up, round trip, idle memory (sandbox latency 100 ms)\n");
    let world = World::new(100).await?;
    let mut inits = Vec::new();
    for _ in 0..20 {
        let server = spawn(exe, &world.env).await?;
        inits.push(server.init);
        server.client.cancel().await?;
    }
    let server = spawn(exe, &world.env).await?;
    sign_in_all(&server.client, &world.sandbox).await?;
    let list = timed(&server.client, "account_list", json!({}), 2000).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = rss_mib(server.pid);
    header();
    row(
        "process start → `initialize` answered",
        &percentiles(inits),
        0,
        "20 fresh processes",
    );
    row(
        "`account_list` round trip",
        &percentiles(list),
        0,
        "local tool, 3 accounts",
    );
    println!("\nIdle RSS after sign-in of 3 accounts: **{rss:.1} MiB**");
    server.client.cancel().await?;
    Ok(())
}

async fn cached(exe: &Path) -> anyhow::Result<()> {
    println!("\n### Cached reads on a cache holding 100 000 entries (sandbox latency 100 ms)\n");
    let world = World::new(100).await?;
    // Sign in first (this creates the files), then fill the cache with
    // 100 000 entries of ~2 KiB through the store, as a long-running
    // server would have.
    let server = spawn(exe, &world.env).await?;
    let accounts = sign_in_all(&server.client, &world.sandbox).await?;
    server.client.cancel().await?;
    let account_id = accounts[0]["account_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let username = accounts[0]["username"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let fill_started = Instant::now();
    {
        let (store, _) = Store::open(
            StoreConfig::new(world.dir.join("cache.db")),
            world.key.clone(),
            None,
        )?;
        let body = "x".repeat(2000);
        for i in 0..100_000u32 {
            let id = format!("AAMkAGfill{i:06}=");
            let key = EntryKey::new(
                &account_id,
                "email_get",
                &json!({ "email_id": id, "filler": true }),
            );
            store.set(
                &key,
                &Dependencies::item(&id),
                format!("{{\"id\":\"{id}\",\"body\":\"{body}\"}}").as_bytes(),
            )?;
        }
        store.maintain()?;
    }
    let fill = fill_started.elapsed();
    let server = spawn(exe, &world.env).await?;
    let args = json!({"account_id": username, "limit": 50});
    world.sandbox.reset_counters();
    let cold = timed(&server.client, "email_list", args.clone(), 1).await?;
    let (sample, _, _) = call(&server.client, "email_list", args.clone()).await?;
    let payload_kib = sample.to_string().len() as f64 / 1024.0;
    let warm = timed(&server.client, "email_list", args.clone(), 2000).await?;
    let graph = world.sandbox.counts().graph;
    let bypass_args = json!({"account_id": username, "limit": 50, "use_cache": false});
    let bypass = timed(&server.client, "email_list", bypass_args, 20).await?;
    let rss = rss_mib(server.pid);
    header();
    row(
        "`email_list` 50 messages, cold (miss)",
        &percentiles(cold),
        1,
        "one Graph call, 100 ms latency",
    );
    row(
        "`email_list` 50 messages, cached (fresh)",
        &percentiles(warm),
        graph.saturating_sub(1),
        "2000 calls",
    );
    row(
        "`email_list` 50 messages, use_cache=false",
        &percentiles(bypass),
        20,
        "every call to Graph",
    );
    let raw = raw_client_latency(exe, &world.env, &username, 2000).await?;
    header();
    row(
        "`email_list` 50 messages, cached, minimal stdio client",
        &percentiles(raw),
        0,
        "writes the request line, reads and parses the answer line",
    );
    println!(
        "\nOne `email_list` answer of 50 messages is {payload_kib:.1} KiB of JSON (sent twice: as text and as structuredContent)."
    );
    println!(
        "\nFilling 100 000 entries took {:.1} s; server RSS with that cache open: **{rss:.1} MiB**",
        fill.as_secs_f64()
    );
    server.client.cancel().await?;
    Ok(())
}

/// A minimal JSON-RPC client on a child's stdio: one line out, one line in,
/// parsed with serde_json. Shows the server's share of a round trip without
/// an SDK's message handling, and captures answers as the server wrote them.
struct LineClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    next_id: u64,
    /// The server's `initialize` answer.
    init: Value,
}

impl LineClient {
    async fn start(exe: &Path, args: &[&str], env: &[(String, String)]) -> anyhow::Result<Self> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(exe)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut client = LineClient {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 0,
            init: Value::Null,
        };
        client.init = client
            .request(
                "initialize",
                json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"m365-bench-raw","version":"0"}}),
            )
            .await?
            .1;
        client
            .send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await?;
        Ok(client)
    }

    async fn send(&mut self, message: &Value) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await?;
        Ok(())
    }

    /// Sends one request and returns its answer line, skipping anything
    /// else the server writes in between (notifications).
    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<(String, Value)> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await?;
        loop {
            let line = self
                .lines
                .next_line()
                .await?
                .ok_or_else(|| anyhow::anyhow!("server closed"))?;
            let value: Value = serde_json::from_str(&line)?;
            if value["id"] == id {
                return Ok((line, value));
            }
        }
    }

    /// One `tools/call` that must be a fresh cache hit; returns the answer
    /// line, parsed, and the round trip including parsing it once.
    async fn cached_call(
        &mut self,
        tool: &str,
        args: &Value,
    ) -> anyhow::Result<(String, Value, Duration)> {
        let started = Instant::now();
        let (line, value) = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            value["result"]["structuredContent"]["_cache"]["status"] == "fresh",
            "not a hit: {}",
            value["result"]["structuredContent"]["_cache"]
        );
        Ok((line, value, elapsed))
    }

    async fn close(mut self) {
        drop(self.stdin);
        let _ = self.child.wait().await;
    }
}

/// The cached `email_list` call through [`LineClient`].
async fn raw_client_latency(
    exe: &Path,
    env: &[(String, String)],
    username: &str,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut client = LineClient::start(exe, &["serve"], env).await?;
    let args = json!({"account_id": username, "limit": 50});
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        samples.push(client.cached_call("email_list", &args).await?.2);
    }
    client.close().await;
    Ok(samples)
}

/// `m365-bench replay <file>`: a stand-in MCP server on stdio that does no
/// work. The file holds two lines, an `initialize` result and a `tools/call`
/// result, captured from the real server; every request is answered at once
/// with the matching one under the request's id (`{}` for anything else).
/// Driving it with rmcp's client measures what the client alone costs.
fn replay_answers(path: &Path) -> anyhow::Result<()> {
    use std::io::{BufRead, Write};
    let text = std::fs::read_to_string(path)?;
    let mut parts = text.lines();
    let init = parts
        .next()
        .ok_or_else(|| anyhow::anyhow!("no initialize result"))?;
    let result = parts
        .next()
        .ok_or_else(|| anyhow::anyhow!("no tools/call result"))?;
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let Some(id) = message.get("id") else {
            continue;
        };
        let answer = match message["method"].as_str() {
            Some("initialize") => init,
            Some("tools/call") => result,
            _ => "{}",
        };
        writeln!(
            out,
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{answer}}}"
        )?;
        out.flush()?;
    }
    Ok(())
}

/// The client's floor: the same cached answer served by the real server and
/// by [`replay_answers`], both read by rmcp's client. The difference is the server's
/// share; the replay figure is what no server can go below with that client.
async fn floor(exe: &Path) -> anyhow::Result<()> {
    println!("\n### What rmcp's client costs: the real server against a replay of its answer\n");
    let bench = std::env::current_exe()?;
    println!(
        "| call | answer line | m365-mcp, rmcp client p50 / p99 | replay, rmcp client p50 / p99 | m365-mcp, minimal client p50 | replay, minimal client p50 |"
    );
    println!("|---|---|---|---|---|---|");
    for (tenant, tool, extra) in [
        (TenantSize::small(), "email_list", json!({"limit": 50})),
        (TenantSize::large(), "folder_get_tree", json!({})),
    ] {
        let world = World::with_tenant(0, tenant).await?;
        let (server, users) = signed_in(&world, exe).await?;
        let mut args = extra.clone();
        args["account_id"] = json!(users[0]);
        let (value, err, _) = call(&server.client, tool, args.clone()).await?;
        anyhow::ensure!(!err, "{tool} failed: {value}");
        let real = percentiles(timed(&server.client, tool, args.clone(), 1000).await?);
        server.client.cancel().await?;

        let mut raw = LineClient::start(exe, &["serve"], &world.env).await?;
        let (line, answer, _) = raw.cached_call(tool, &args).await?;
        let mut minimal = Vec::with_capacity(1000);
        for _ in 0..1000 {
            minimal.push(raw.cached_call(tool, &args).await?.2);
        }
        let minimal = percentiles(minimal);
        let init = std::mem::take(&mut raw.init);
        raw.close().await;
        let capture = world.dir.join(format!("{tool}.jsonl"));
        std::fs::write(
            &capture,
            format!("{}\n{}\n", init["result"], answer["result"]),
        )?;

        let command = tokio::process::Command::new(&bench).configure(|cmd| {
            cmd.arg("replay").arg(&capture);
        });
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let replayed: Client = ().serve(transport).await?;
        let (value, err, _) = call(&replayed, tool, args.clone()).await?;
        anyhow::ensure!(
            !err && value["_cache"]["status"] == "fresh",
            "the replay did not answer as the server did"
        );
        let floor = percentiles(timed(&replayed, tool, args.clone(), 1000).await?);
        replayed.cancel().await?;
        let capture_arg = capture.to_string_lossy();
        let mut raw = LineClient::start(&bench, &["replay", &capture_arg], &[]).await?;
        let mut minimal_floor = Vec::with_capacity(1000);
        for _ in 0..1000 {
            minimal_floor.push(raw.cached_call(tool, &args).await?.2);
        }
        let minimal_floor = percentiles(minimal_floor);
        raw.close().await;
        println!(
            "| `{tool}` | {:.1} KiB | {} / {} | {} / {} | {} | {} |",
            line.len() as f64 / 1024.0,
            fmt(real.p50),
            fmt(real.p99),
            fmt(floor.p50),
            fmt(floor.p99),
            fmt(minimal.p50),
            fmt(minimal_floor.p50)
        );
    }
    println!(
        "\nThe replayed answer is the server's own answer line, written by a process that only parses the request and echoes it; 1000 calls each."
    );
    Ok(())
}

async fn warming(exe: &Path) -> anyhow::Result<()> {
    println!("\n### Warming two accounts (sandbox latency 100 ms)\n");
    let mut world = World::new(100).await?;
    let server = spawn(exe, &world.env).await?;
    let accounts = sign_in_all(&server.client, &world.sandbox).await?;
    server.client.cancel().await?;
    // Keep two accounts, as the target names.
    let keep: Vec<String> = accounts
        .iter()
        .take(2)
        .filter_map(|a| a["account_id"].as_str().map(String::from))
        .collect();
    {
        let (store, _) = Store::open(
            StoreConfig::new(world.dir.join("accounts.db")),
            world.key.clone(),
            None,
        )?;
        for a in store.list_accounts()? {
            if !keep.contains(&a.account_id) {
                store.remove_account(&a.account_id)?;
            }
        }
    }
    world.set("M365_MCP_CACHE_WARMING", "true");
    world.sandbox.reset_counters();
    let started = Instant::now();
    let server = spawn(exe, &world.env).await?;
    let status = loop {
        let (w, _, _) = call(&server.client, "cache_warming_status", json!({})).await?;
        if w["is_warming"] == false && w["operations_total"].as_u64().unwrap_or(0) > 0 {
            break w;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "warming did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    println!(
        "Warming {} operations for 2 accounts finished in **{:.2} s** (from process start; {} Graph calls; status {}).",
        status["operations_total"],
        elapsed.as_secs_f64(),
        world.sandbox.counts().graph,
        status
    );
    server.client.cancel().await?;
    Ok(())
}

async fn signed_in(world: &World, exe: &Path) -> anyhow::Result<(Server, Vec<String>)> {
    let server = spawn(exe, &world.env).await?;
    let accounts = sign_in_all(&server.client, &world.sandbox).await?;
    let users = accounts
        .iter()
        .filter_map(|a| a["username"].as_str().map(String::from))
        .collect();
    Ok((server, users))
}

async fn trees(exe: &Path) -> anyhow::Result<()> {
    println!(
        "\n### Folder trees and bulk mail operations, large tenant (sandbox latency 100 ms)\n"
    );
    let started = Instant::now();
    let world = World::with_tenant(100, TenantSize::large()).await?;
    println!(
        "Seeding the large tenant took {:.1} s.\n",
        started.elapsed().as_secs_f64()
    );
    let (server, users) = signed_in(&world, exe).await?;
    let user = &users[0];
    header();
    for (tool, args, note) in [
        (
            "emailfolders_get_tree",
            json!({"account_id": user}),
            "mail folder tree, cold",
        ),
        (
            "folder_get_tree",
            json!({"account_id": user}),
            "drive folder tree, cold",
        ),
    ] {
        world.sandbox.reset_counters();
        let (value, err, elapsed) = call(&server.client, tool, args.clone()).await?;
        anyhow::ensure!(!err, "{tool} failed: {value}");
        let graph = world.sandbox.counts().graph;
        let folders = count_tree(&value);
        row(
            &format!("`{tool}`"),
            &percentiles(vec![elapsed]),
            graph,
            &format!("{note}; {folders} folders"),
        );
        let warm = timed(&server.client, tool, args, 500).await?;
        row(
            &format!("`{tool}` cached"),
            &percentiles(warm),
            0,
            "fresh hits",
        );
    }
    // Mark 1 000 unread messages read: seed them unread in one folder first.
    let (folders, _, _) = call(
        &server.client,
        "emailfolders_list",
        json!({"account_id": user, "limit": 250}),
    )
    .await?;
    let busiest = folders["value"]
        .as_array()
        .and_then(|f| {
            f.iter()
                .max_by_key(|f| f["unreadItemCount"].as_u64().unwrap_or(0))
                .cloned()
        })
        .unwrap_or(Value::Null);
    let folder_id = busiest["id"].as_str().unwrap_or("inbox").to_string();
    let unread = busiest["unreadItemCount"].as_u64().unwrap_or(0);
    world.sandbox.reset_counters();
    let (value, err, elapsed) = call(
        &server.client,
        "emailfolders_mark_all_as_read",
        json!({"account_id": user, "folder_id": folder_id}),
    )
    .await?;
    anyhow::ensure!(!err, "mark all as read failed: {value}");
    let counts = world.sandbox.counts();
    row(
        "`emailfolders_mark_all_as_read`",
        &percentiles(vec![elapsed]),
        counts.graph,
        &format!(
            "{unread} unread → {} marked via {} `$batch` items; one PATCH each would be {unread} calls",
            value["succeeded"], counts.batch_inner
        ),
    );
    server.client.cancel().await?;
    Ok(())
}

fn count_tree(value: &Value) -> usize {
    fn walk(nodes: &Value) -> usize {
        nodes
            .as_array()
            .map(|a| a.iter().map(|n| 1 + walk(&n["children"])).sum())
            .unwrap_or(0)
    }
    walk(&value["folders"]).max(walk(&value["value"]))
}

async fn upload(exe: &Path) -> anyhow::Result<()> {
    println!("\n### 100 MiB upload (sandbox latency 0)\n");
    let mut world = World::new(0).await?;
    let files = world.dir.join("files");
    std::fs::create_dir_all(&files)?;
    world.set("MCP_FILE_ALLOWED_ROOTS", files.to_str().unwrap_or_default());
    let path = files.join("big.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&path)?;
        let chunk: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..100 {
            f.write_all(&chunk)?;
        }
    }
    let (server, users) = signed_in(&world, exe).await?;
    let before = rss_mib(server.pid);
    let (value, err, elapsed) = call(
        &server.client,
        "file_create",
        json!({"account_id": users[0], "onedrive_path": "/big.bin", "local_file_path": path}),
    )
    .await?;
    anyhow::ensure!(!err, "upload failed: {value}");
    let peak = hwm_mib(server.pid);
    println!(
        "100 MiB through an upload session in **{:.2} s** ({:.0} MiB/s); server RSS {before:.1} MiB before, peak {peak:.1} MiB (growth {:.1} MiB; a fragment is 3.1 MiB).",
        elapsed.as_secs_f64(),
        100.0 / elapsed.as_secs_f64(),
        peak - before
    );
    server.client.cancel().await?;
    Ok(())
}

fn hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<f64>().ok())
            })
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// One step of the working-day script.
struct Step {
    tool: &'static str,
    args: Value,
}

/// A deterministic working day of an assistant over two accounts: mostly
/// reads (inbox, messages, folders, calendar, contacts, files, searches),
/// some writes (read/flag/move messages, new events). Generated here so the
/// script is part of the harness.
fn workday(users: &[String], message_ids: &[Vec<String>], steps: usize) -> Vec<Step> {
    let mut seed = 0x5eed_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut out = Vec::with_capacity(steps);
    for i in 0..steps {
        let u = next(users.len());
        let user = &users[u];
        let ids = &message_ids[u];
        let id = ids[next(ids.len())].clone();
        let roll = next(1000);
        // Per 1 000: 940 reads, 60 writes — an assistant mostly looks things
        // up, and now and then marks, flags or schedules.
        let (tool, args) = match roll {
            0..=259 => ("email_list", json!({"account_id": user})),
            260..=459 => ("email_get", json!({"account_id": user, "email_id": id})),
            460..=529 => ("emailfolders_list", json!({"account_id": user})),
            530..=609 => ("calendar_list_events", json!({"account_id": user})),
            610..=679 => ("contact_list", json!({"account_id": user})),
            680..=749 => ("file_list", json!({"account_id": user})),
            750..=799 => ("folder_get_tree", json!({"account_id": user})),
            800..=859 => {
                let query = ["budget", "review", "launch"][next(3)];
                ("search_emails", json!({"account_id": user, "query": query}))
            }
            860..=899 => ("emailfolders_get_tree", json!({"account_id": user})),
            900..=939 => ("email_list", json!({"account_id": user, "folder": "sent"})),
            940..=969 => (
                "email_mark_read",
                json!({"account_id": user, "email_id": id, "is_read": next(2) == 0}),
            ),
            970..=989 => (
                "email_flag",
                json!({"account_id": user, "email_id": id, "flag_status": "flagged"}),
            ),
            _ => (
                "calendar_create_event",
                json!({"account_id": user, "subject": format!("Sync {i}"), "start": "2026-12-01T10:00:00", "end": "2026-12-01T10:30:00"}),
            ),
        };
        out.push(Step { tool, args });
    }
    out
}

async fn replay(
    exe: &Path,
    cache: bool,
    steps: usize,
) -> anyhow::Result<(u64, Option<f64>, Duration)> {
    let mut world = World::new(0).await?;
    world.set(
        "M365_MCP_CACHE_ENABLED",
        if cache { "true" } else { "false" },
    );
    let (server, mut users) = signed_in(&world, exe).await?;
    users.truncate(2);
    let mut ids = Vec::new();
    for user in &users {
        let (list, _, _) = call(
            &server.client,
            "email_list",
            json!({"account_id": user, "limit": 40, "use_cache": false}),
        )
        .await?;
        ids.push(
            list["value"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|m| m["id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        );
    }
    let script = workday(&users, &ids, steps);
    world.sandbox.reset_counters();
    let started = Instant::now();
    for step in &script {
        let (value, err, _) = call(&server.client, step.tool, step.args.clone()).await?;
        anyhow::ensure!(!err, "{} failed: {value}", step.tool);
    }
    let elapsed = started.elapsed();
    let graph = world.sandbox.counts().graph;
    let hit_rate = if cache {
        let (stats, _, _) = call(&server.client, "cache_get_stats", json!({})).await?;
        for row in stats["per_resource"].as_array().into_iter().flatten() {
            eprintln!(
                "  {:<24} hits {:>5} stale {:>4} misses {:>5} invalidated {:>4}",
                row[0].as_str().unwrap_or(""),
                row[1]["hits"],
                row[1]["stale_hits"],
                row[1]["misses"],
                row[1]["invalidations"]
            );
        }
        stats["total"]["hit_rate"].as_f64()
    } else {
        None
    };
    server.client.cancel().await?;
    Ok((graph, hit_rate, elapsed))
}

async fn day(exe: &Path) -> anyhow::Result<()> {
    const STEPS: usize = 3000;
    println!(
        "\n### An assistant's working day: {STEPS} mixed calls over two accounts (sandbox latency 0)\n"
    );
    let (with, hit_rate, t_with) = replay(exe, true, STEPS).await?;
    let (without, _, t_without) = replay(exe, false, STEPS).await?;
    println!("| run | Graph calls | hit rate | wall time |");
    println!("|---|---|---|---|");
    println!(
        "| cache on | {with} | {:.1} % | {:.1} s |",
        hit_rate.unwrap_or(0.0) * 100.0,
        t_with.as_secs_f64()
    );
    println!(
        "| cache off | {without} | — | {:.1} s |",
        t_without.as_secs_f64()
    );
    println!(
        "\nGraph calls saved by the cache: **{:.1} %**.",
        (1.0 - with as f64 / without.max(1) as f64) * 100.0
    );
    Ok(())
}

const HTTP_TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef";

/// A server in HTTP mode: the child process and its MCP URL.
struct HttpServer {
    child: tokio::process::Child,
    url: String,
}

async fn spawn_http(exe: &Path, env: &[(String, String)]) -> anyhow::Result<HttpServer> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(exe)
        .args(["serve", "--transport", "http", "--port", "0"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("MCP_AUTH_TOKEN", HTTP_TOKEN)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix("listening on ") {
                return Ok(url.to_string());
            }
        }
        anyhow::bail!("the server exited before listening")
    })
    .await??;
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(HttpServer { child, url })
}

async fn connect_http(url: &str) -> anyhow::Result<Client> {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config =
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(HTTP_TOKEN);
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// A redis-server of our own on a free loopback port, stopped on drop.
struct RedisServer {
    child: std::process::Child,
    url: String,
}

impl RedisServer {
    fn start() -> anyhow::Result<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start redis-server: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal Streamable HTTP MCP client: one session (initialize,
/// initialized), then `tools/call` POSTs whose SSE answer is read whole and
/// parsed. It costs the load generator little, so the figure shows what the
/// server can do on a machine it shares with its clients.
struct LeanClient {
    http: reqwest::Client,
    url: String,
    session: String,
    next_id: u64,
}

impl LeanClient {
    async fn connect(url: &str) -> anyhow::Result<LeanClient> {
        let http = reqwest::Client::builder().build()?;
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "m365-bench-lean", "version": "1"}}});
        let response = http
            .post(url)
            .bearer_auth(HTTP_TOKEN)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .body(init.to_string())
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "initialize: {}",
            response.status()
        );
        let session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("no session id"))?
            .to_string();
        let _ = response.bytes().await?;
        let mut client = LeanClient {
            http,
            url: url.to_string(),
            session,
            next_id: 1,
        };
        client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(client)
    }

    async fn post(&mut self, body: Value) -> anyhow::Result<Option<Value>> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(HTTP_TOKEN)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .header("Mcp-Session-Id", &self.session)
            .header("MCP-Protocol-Version", "2025-06-18")
            .body(body.to_string())
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
        let text = response.text().await?;
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && !data.trim().is_empty()
            {
                return Ok(Some(serde_json::from_str(data.trim())?));
            }
        }
        Ok(text
            .trim()
            .starts_with('{')
            .then(|| serde_json::from_str(&text))
            .transpose()?)
    }

    async fn call(&mut self, tool: &str, args: &Value) -> anyhow::Result<Duration> {
        self.next_id += 1;
        let started = Instant::now();
        let answer = self
            .post(
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": args}}),
            )
            .await?
            .ok_or_else(|| anyhow::anyhow!("no answer"))?;
        let elapsed = started.elapsed();
        anyhow::ensure!(
            answer["result"]["isError"] == false,
            "{tool} failed: {answer}"
        );
        Ok(elapsed)
    }
}

/// One load-generating session: rmcp's client, or the minimal one.
enum LoadClient {
    Rmcp(Client),
    Lean(LeanClient),
}

impl LoadClient {
    async fn connect(url: &str, lean: bool) -> anyhow::Result<LoadClient> {
        Ok(if lean {
            LoadClient::Lean(LeanClient::connect(url).await?)
        } else {
            LoadClient::Rmcp(connect_http(url).await?)
        })
    }

    /// One successful call, timed at the client.
    async fn call(&mut self, tool: &str, args: &Value) -> anyhow::Result<Duration> {
        match self {
            LoadClient::Lean(client) => client.call(tool, args).await,
            LoadClient::Rmcp(client) => {
                let (value, err, elapsed) = call(client, tool, args.clone()).await?;
                anyhow::ensure!(!err, "{tool} failed: {value}");
                Ok(elapsed)
            }
        }
    }

    async fn close(self) {
        if let LoadClient::Rmcp(client) = self {
            let _ = client.cancel().await;
        }
    }
}

/// Cached tool calls per second over Streamable HTTP: `clients` MCP
/// sessions in a closed loop for `seconds`, each calling a cached
/// `email_list` (10 messages) for one of two accounts.
async fn http_load_run(
    exe: &Path,
    world: &World,
    users: &[String],
    lean: bool,
    label: &str,
) -> anyhow::Result<()> {
    const CLIENTS: usize = 16;
    const SECONDS: u64 = 10;
    let mut server = spawn_http(exe, &world.env).await?;
    let pid = server.child.id().unwrap_or(0);
    let mut sessions = Vec::new();
    for i in 0..CLIENTS {
        let mut client = LoadClient::connect(&server.url, lean).await?;
        let args = json!({"account_id": users[i % users.len()], "limit": 10});
        // Warm: the first call per account fills the cache.
        client.call("email_list", &args).await?;
        sessions.push((client, args));
    }
    world.sandbox.reset_counters();
    let deadline = Instant::now() + Duration::from_secs(SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, args) in sessions {
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                match client.call("email_list", &args).await {
                    Ok(elapsed) => samples.push(elapsed),
                    Err(_) => errors += 1,
                }
            }
            client.close().await;
            (samples, errors)
        }));
    }
    let mut samples = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (s, e) = t.await?;
        samples.extend(s);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = samples.len() as f64 / elapsed;
    let graph = world.sandbox.counts().graph;
    let rss = rss_mib(pid);
    let kind = if lean { "lean clients" } else { "clients" };
    row(
        &format!("{label}: `email_list` (10) cached, {CLIENTS} {kind}"),
        &percentiles(samples),
        graph,
        &format!("**{rate:.0} calls/s**, {errors} errors, server RSS {rss:.1} MiB"),
    );
    let _ = server.child.kill().await;
    Ok(())
}

async fn http(exe: &Path) -> anyhow::Result<()> {
    println!("\n### Streamable HTTP under load (16 concurrent MCP sessions, 10 s each)\n");
    let mut world = World::new(100).await?;
    let (server, users) = signed_in(&world, exe).await?;
    server.client.cancel().await?;
    let users: Vec<String> = users.into_iter().take(2).collect();
    header();
    for lean in [true, false] {
        http_load_run(exe, &world, &users, lean, "SQLCipher").await?;
    }
    match RedisServer::start() {
        Ok(redis) => {
            world.set("M365_MCP_CACHE_BACKEND", "redis");
            world.set("M365_MCP_REDIS_URL", &redis.url);
            for lean in [true, false] {
                http_load_run(exe, &world, &users, lean, "Redis").await?;
            }
        }
        Err(e) => println!("\n(Redis run skipped: {e})"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if std::env::args().nth(1).as_deref() == Some("replay") {
        let path = std::env::args()
            .nth(2)
            .ok_or_else(|| anyhow::anyhow!("replay needs a capture file"))?;
        return replay_answers(Path::new(&path));
    }
    let mut scenario = "all".to_string();
    let mut exe = std::env::current_exe()?.with_file_name("m365-mcp");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--server" => {
                exe = PathBuf::from(
                    args.next()
                        .ok_or_else(|| anyhow::anyhow!("--server needs a path"))?,
                )
            }
            other => scenario = other.to_string(),
        }
    }
    anyhow::ensure!(
        exe.exists(),
        "no server binary at {} (cargo build --release -p m365-mcp)",
        exe.display()
    );
    println!(
        "m365-bench: server {}, {} CPUs",
        exe.display(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    match scenario.as_str() {
        "startup" => startup(&exe).await?,
        "cached" => cached(&exe).await?,
        "warming" => warming(&exe).await?,
        "trees" => trees(&exe).await?,
        "upload" => upload(&exe).await?,
        "day" => day(&exe).await?,
        "http" => http(&exe).await?,
        "floor" => floor(&exe).await?,
        "all" => {
            startup(&exe).await?;
            cached(&exe).await?;
            warming(&exe).await?;
            day(&exe).await?;
            trees(&exe).await?;
            upload(&exe).await?;
            http(&exe).await?;
            floor(&exe).await?;
        }
        other => anyhow::bail!(
            "unknown scenario {other}: startup, cached, warming, day, trees, upload, http, floor or all"
        ),
    }
    Ok(())
}
