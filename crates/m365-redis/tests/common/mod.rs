//! A real `redis-server` per test, on a free loopback port, killed on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use m365_redis::{RedisCache, RedisConfig};
use m365_store::CacheKey;

pub const REDIS_SERVER: &str = "redis-server";

/// A running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

fn installed() -> bool {
    Command::new(REDIS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts a server, or returns None (with a note) when redis-server is not
/// installed outside CI. In CI a missing server is a failure.
pub fn redis() -> Option<RedisServer> {
    if !installed() {
        if std::env::var_os("CI").is_some() {
            panic!("redis-server is not installed (Debian: apt-get install redis-server)");
        }
        eprintln!("note: redis-server is not installed; skipping (apt-get install redis-server)");
        return None;
    }
    Some(RedisServer::start_on(free_port()))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts redis-server on `port` and waits until it answers PING.
    pub fn start_on(port: u16) -> RedisServer {
        let child = Command::new(REDIS_SERVER)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                &std::env::temp_dir().display().to_string(),
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = RedisServer {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.answers_ping() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILLs the server and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (STOP, CONT) to the server.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// A raw connection for inspection.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
        }
        self.kill();
    }
}

pub fn key(seed: u8) -> CacheKey {
    CacheKey::from_bytes([seed; 32])
}

/// A cache on `server` with the test's namespace and a tweak of the config.
pub fn cache_with(
    url: &str,
    namespace: &str,
    key: &CacheKey,
    tweak: impl FnOnce(&mut RedisConfig),
) -> RedisCache {
    let mut config = RedisConfig::new(url);
    config.namespace = namespace.to_string();
    tweak(&mut config);
    RedisCache::new(config, key).expect("valid config")
}

pub fn cache(url: &str, key: &CacheKey) -> RedisCache {
    cache_with(url, "m365mcp", key, |_| {})
}

/// Every key name in the server.
pub async fn all_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut cursor: u64 = 0;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        out.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out.dedup();
    out
}

/// Every byte Redis holds under `key` (all fields, members, values, scores).
pub async fn raw_value(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<u8> {
    let kind: String = redis::cmd("TYPE").arg(key).query_async(conn).await.unwrap();
    let parts: Vec<Vec<u8>> = match kind.as_str() {
        "string" => vec![
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(conn)
                .await
                .unwrap()
                .unwrap_or_default(),
        ],
        "hash" => redis::cmd("HGETALL")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap(),
        "set" => redis::cmd("SMEMBERS")
            .arg(key)
            .query_async(conn)
            .await
            .unwrap(),
        "zset" => redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await
            .unwrap(),
        "list" => redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(conn)
            .await
            .unwrap(),
        "none" => Vec::new(),
        other => panic!("unexpected key type {other}"),
    };
    parts.join(&b"\n"[..])
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}
