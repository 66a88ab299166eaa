//! End-to-end benchmarks: the release `m365-mcp` binary over stdio, driven
//! by rmcp's MCP client, against the Graph sandbox with realistic latency.
//! Latency is measured at the client; Graph calls are counted at the
//! sandbox; RSS is read from the server's `/proc/<pid>/status`.
//!
//! ```text
//! cargo build --release -p m365-mcp -p m365-bench
//! target/release/m365-bench [startup|cached|warming|all] [--server target/release/m365-mcp]
//! ```
//!
//! Results go to stdout as Markdown, ready for docs/benchmarks.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use m365_mcp::demo::{Client, call, sandbox_env, sign_in_all};
use m365_sandbox::{Latency, Sandbox, SandboxConfig, SandboxHandle};
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
        let sandbox = Sandbox::start(SandboxConfig {
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
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
        "all" => {
            startup(&exe).await?;
            cached(&exe).await?;
            warming(&exe).await?;
        }
        other => anyhow::bail!("unknown scenario {other}: startup, cached, warming or all"),
    }
    Ok(())
}
