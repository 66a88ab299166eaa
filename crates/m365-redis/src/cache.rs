//! The cache on Redis: entries, invalidation, statistics, single-flight
//! locks, housekeeping. The task queue is in `tasks.rs`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use m365_store::{
    CacheKey, CacheStats, CachedEntry, Dependencies, EntryKey, Freshness, Invalidation, Scope,
    StatsRow, TtlPolicy, now_ms, policy_for,
};
use rand::{RngCore, TryRngCore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Pipeline, ScriptInvocation};
use tokio::time::Instant;

use crate::config::{RedisConfig, is_name_safe, redacted_url};
use crate::crypto::{Crypto, ad};
use crate::error::RedisCacheError;
use crate::scripts;

const ENCODING_RAW: &str = "0";
const ENCODING_ZSTD: &str = "1";

/// Payloads at least this large are compressed and encrypted on a blocking
/// thread, so a 10 MiB entry does not stall the async runtime.
const OFFLOAD_BYTES: usize = 256 * 1024;
/// Keys per `SCAN` step and ids per script call in bulk operations.
const BATCH: usize = 500;
/// Sealed account ids kept in memory (see `Inner::sealed_accounts`).
const SEALED_ACCOUNTS_KEPT: usize = 10_000;
/// How often [`RedisCache::wait_unlocked`] looks.
const LOCK_POLL: Duration = Duration::from_millis(15);

type Result<T> = std::result::Result<T, RedisCacheError>;

/// Proof of holding a single-flight lock, returned by
/// [`RedisCache::try_lock`] and given back to [`RedisCache::unlock`].
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl fmt::Debug for LockToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// The Redis cache. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisCache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: RedisConfig,
    client: redis::Client,
    manager: OnceLock<ConnectionManager>,
    pub(crate) crypto: Crypto,
    /// Sealed account ids for the registry, by account name: sealed once
    /// per process, not on every read (a random-nonce AES-GCM key should
    /// see far fewer than 2³² encryptions).
    sealed_accounts: Mutex<HashMap<String, Vec<u8>>>,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &redacted_url(&self.inner.config.url))
            .field("namespace", &self.inner.config.namespace)
            .finish_non_exhaustive()
    }
}

/// One Redis round trip.
pub(crate) enum Op<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a Pipeline),
    Script(&'a ScriptInvocation<'a>),
}

/// Item and container tags in `Dependencies`' stored form.
fn scope_tag(scope: &Scope) -> Option<String> {
    match scope {
        Scope::All => None,
        Scope::Item(id) => Some(format!("item:{id}")),
        Scope::Container(id) => Some(format!("container:{id}")),
    }
}

fn classify_age(now: i64, fresh_until: i64, expires_at: i64) -> Freshness {
    if now < fresh_until {
        Freshness::Fresh
    } else if now < expires_at {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// Parses an integer Redis returned as text.
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
}

fn random_hex16() -> String {
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::rng().fill_bytes(&mut bytes);
    }
    hex::encode(bytes)
}

/// True when `text` matches `pattern`, where `*` matches any run of
/// characters and every other character is literal.
pub(crate) fn star_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn add_counters(row: &mut StatsRow, c: &HashMap<String, u64>) {
    let get = |name: &str| c.get(name).copied().unwrap_or(0);
    row.hits += get("hits");
    row.stale_hits += get("stale_hits");
    row.misses += get("misses");
    row.refreshes += get("refreshes");
    row.writes += get("writes");
    row.invalidations += get("invalidations");
    row.evictions += get("evictions");
}

fn add_sizes(row: &mut StatsRow, entries: u64, stored: u64, raw: u64) {
    row.entries += entries;
    row.stored_bytes += stored;
    row.raw_bytes += raw;
}

fn finish_row(row: &mut StatsRow) {
    let reads = row.hits + row.stale_hits + row.misses;
    row.hit_rate = (reads > 0).then(|| (row.hits + row.stale_hits) as f64 / reads as f64);
}

/// A value of `INFO memory`.
fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The names one entry lives under.
struct EntryNames {
    acct: String,
    id: String,
    key: String,
}

impl RedisCache {
    /// Validates the configuration and derives the Redis subkeys from the
    /// cache key. Does not connect: Redis may be down now and come up later;
    /// the connection is made on first use and remade after failures.
    pub fn new(config: RedisConfig, key: &CacheKey) -> Result<Self> {
        if !is_name_safe(&config.namespace, 64) {
            return Err(RedisCacheError::InvalidArgument(
                "Invalid namespace: expected 1 to 64 characters of A-Z a-z 0-9 _ . -".into(),
            ));
        }
        if !(config.ttl_scale.is_finite() && config.ttl_scale > 0.0) {
            return Err(RedisCacheError::InvalidArgument(
                "Invalid ttl_scale: expected a finite number above 0".into(),
            ));
        }
        if config.op_timeout.is_zero() || config.lock_ttl.as_millis() == 0 {
            return Err(RedisCacheError::InvalidArgument(
                "Invalid timeouts: op_timeout and lock_ttl must be at least 1 ms".into(),
            ));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|_| {
            RedisCacheError::InvalidArgument(
                "Invalid Redis URL: expected redis://[user:password@]host[:port][/db] or redis+unix:///path (TLS is not supported by this build)".into(),
            )
        })?;
        Ok(RedisCache {
            inner: Arc::new(Inner {
                crypto: Crypto::new(key.as_bytes()),
                config,
                client,
                manager: OnceLock::new(),
                sealed_accounts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    fn manager(&self) -> Result<ConnectionManager> {
        if let Some(m) = self.inner.manager.get() {
            return Ok(m.clone());
        }
        let timeout = self.inner.config.op_timeout;
        // Few, quick reconnection attempts: every operation is bounded by
        // op_timeout anyway, and a later operation starts a new attempt.
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let m = ConnectionManager::new_lazy_with_config(self.inner.client.clone(), cfg)?;
        Ok(self.inner.manager.get_or_init(|| m).clone())
    }

    /// Runs one round trip within `op_timeout`. A refused connection (the
    /// command was never sent) is tried once more, so the first operation
    /// after Redis comes back does not fail on the stale connection error.
    pub(crate) async fn exec<T: FromRedisValue>(&self, op: Op<'_>) -> Result<T> {
        let timeout = self.inner.config.op_timeout;
        let deadline = Instant::now() + timeout;
        let mut conn = self.manager()?;
        let mut retried = false;
        loop {
            let attempt = async {
                match &op {
                    Op::Cmd(cmd) => cmd.query_async::<T>(&mut conn).await,
                    Op::Pipe(pipe) => pipe.query_async::<T>(&mut conn).await,
                    Op::Script(inv) => inv.invoke_async::<T>(&mut conn).await,
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(RedisCacheError::timeout(timeout)),
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !retried && e.is_connection_refusal() => retried = true,
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    pub(crate) async fn cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.exec(Op::Cmd(cmd)).await
    }

    pub(crate) async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        self.exec(Op::Pipe(pipe)).await
    }

    pub(crate) async fn script<T: FromRedisValue>(&self, inv: &ScriptInvocation<'_>) -> Result<T> {
        self.exec(Op::Script(inv)).await
    }

    /// The key prefix (the namespace).
    pub(crate) fn ns(&self) -> &str {
        &self.inner.config.namespace
    }

    pub(crate) fn account_name(&self, account_id: &str) -> String {
        self.inner.crypto.name("account", &[account_id.as_bytes()])
    }

    /// The sealed account id for the registry hash.
    pub(crate) fn sealed_account(&self, acct: &str, account_id: &str) -> Vec<u8> {
        let mut memo = self
            .inner
            .sealed_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(sealed) = memo.get(acct) {
            return sealed.clone();
        }
        if memo.len() >= SEALED_ACCOUNTS_KEPT {
            memo.clear();
        }
        let sealed = self.inner.crypto.seal(
            &ad(&[self.k_accounts().as_bytes(), acct.as_bytes()]),
            account_id.as_bytes(),
        );
        memo.insert(acct.to_string(), sealed.clone());
        sealed
    }

    fn names(&self, key: &EntryKey) -> EntryNames {
        let id = self.inner.crypto.name("entry", &[key.as_str().as_bytes()]);
        EntryNames {
            acct: self.account_name(key.account_id()),
            key: format!("{}:e:{id}", self.ns()),
            id,
        }
    }

    fn tag_name(&self, account_id: &str, tag: &str) -> String {
        self.inner
            .crypto
            .name("tag", &[account_id.as_bytes(), tag.as_bytes()])
    }

    fn check_resource(resource_type: &str) -> Result<()> {
        if is_name_safe(resource_type, 100) {
            Ok(())
        } else {
            Err(RedisCacheError::InvalidArgument(
                "Invalid resource type: expected 1 to 100 characters of A-Z a-z 0-9 _ . -".into(),
            ))
        }
    }

    fn k_stats(&self, acct: &str, res: &str) -> String {
        format!("{}:st:{acct}:{res}", self.ns())
    }
    fn k_index(&self, acct: &str, res: &str) -> String {
        format!("{}:ix:{acct}:{res}", self.ns())
    }
    fn k_resources(&self, acct: &str) -> String {
        format!("{}:res:{acct}", self.ns())
    }
    pub(crate) fn k_accounts(&self) -> String {
        format!("{}:accounts", self.ns())
    }
    fn k_lock(&self, id: &str) -> String {
        format!("{}:lk:{id}", self.ns())
    }

    /// Answers when Redis does (`PING`).
    pub async fn ping(&self) -> Result<()> {
        let _: String = self.cmd(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// Reads an entry and counts the read (hit, stale hit, or miss).
    /// Expired entries are returned (for stale-if-error) and count as misses.
    pub async fn get(&self, key: &EntryKey) -> Result<Option<CachedEntry>> {
        Self::check_resource(key.resource_type())?;
        let n = self.names(key);
        let now = now_ms();
        let sealed_account = self.sealed_account(&n.acct, key.account_id());
        let mut inv = scripts::GET.prepare_invoke();
        inv.key(&n.key)
            .key(self.k_stats(&n.acct, key.resource_type()))
            .key(self.k_resources(&n.acct))
            .key(self.k_accounts())
            .arg(now)
            .arg(&n.acct)
            .arg(key.resource_type())
            .arg(sealed_account);
        let row: Option<Vec<Option<Vec<u8>>>> = self.script(&inv).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let [p, e, c, f, x, rb] = <[Option<Vec<u8>>; 6]>::try_from(row)
            .map_err(|_| RedisCacheError::corrupt("entry has an unexpected shape"))?;
        let (Some(p), Some(e), Some(c), Some(f), Some(x), Some(rb)) = (p, e, c, f, x, rb) else {
            return Err(RedisCacheError::corrupt("entry is missing fields"));
        };
        let num = |b: &[u8]| parse_i64(b).ok_or_else(|| RedisCacheError::corrupt("bad number"));
        let (created, fresh_until, expires_at, raw_len) = (num(&c)?, num(&f)?, num(&x)?, num(&rb)?);
        let aad = ad(&[n.key.as_bytes(), b"p", &e, &c, &f, &x, &rb]);
        let this = self.clone();
        let payload = offload(p.len(), move || {
            let plain = this.inner.crypto.open(&aad, &p)?;
            match e.as_slice() {
                b"0" => Ok(plain),
                b"1" => {
                    let out = zstd::bulk::decompress(&plain, raw_len.max(0) as usize)
                        .map_err(|_| RedisCacheError::corrupt("zstd decode failed"))?;
                    if out.len() as i64 != raw_len {
                        return Err(RedisCacheError::corrupt("decoded size differs"));
                    }
                    Ok(out)
                }
                _ => Err(RedisCacheError::corrupt("unknown payload encoding")),
            }
        })
        .await
        .inspect_err(|err| tracing::warn!(error = %err, "a Redis cache entry could not be read"))?;
        Ok(Some(CachedEntry {
            payload,
            freshness: classify_age(now_ms(), fresh_until, expires_at),
            created_at_ms: created,
            fresh_until_ms: fresh_until,
            expires_at_ms: expires_at,
        }))
    }

    /// The state of an entry without reading its payload or counting a read.
    pub async fn freshness(&self, key: &EntryKey) -> Result<Option<Freshness>> {
        let n = self.names(key);
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&n.key).arg("f").arg("x");
        let (f, x): (Option<i64>, Option<i64>) = self.cmd(&cmd).await?;
        Ok(match (f, x) {
            (Some(f), Some(x)) => Some(classify_age(now_ms(), f, x)),
            _ => None,
        })
    }

    fn ttl_for(&self, resource_type: &str) -> TtlPolicy {
        let policy = policy_for(resource_type);
        let scale = self.inner.config.ttl_scale;
        if (scale - 1.0).abs() < f64::EPSILON {
            policy
        } else {
            TtlPolicy {
                fresh: policy.fresh.mul_f64(scale),
                expires: policy.expires.mul_f64(scale),
            }
        }
    }

    /// Stores a payload with the resource type's TTL policy (scaled by
    /// `ttl_scale`) and its dependencies, replacing an entry under the same
    /// key, and counts a write.
    pub async fn set(&self, key: &EntryKey, deps: &Dependencies, payload: &[u8]) -> Result<()> {
        Self::check_resource(key.resource_type())?;
        let config = &self.inner.config;
        let ttl = self.ttl_for(key.resource_type());
        let now = now_ms();
        let fresh_until = now + ttl.fresh.as_millis() as i64;
        let expires_at = now + ttl.expires.as_millis() as i64;
        let deadline = expires_at + config.expired_retention.as_millis() as i64;
        let n = self.names(key);
        let compress = payload.len() >= config.compress_threshold;
        let encoding = if compress {
            ENCODING_ZSTD
        } else {
            ENCODING_RAW
        };
        let (c, f, x, rb) = (
            now.to_string(),
            fresh_until.to_string(),
            expires_at.to_string(),
            payload.len().to_string(),
        );
        let aad = ad(&[
            n.key.as_bytes(),
            b"p",
            encoding.as_bytes(),
            c.as_bytes(),
            f.as_bytes(),
            x.as_bytes(),
            rb.as_bytes(),
        ]);
        let (limit, level) = (config.max_entry_bytes, config.zstd_level);
        let this = self.clone();
        let owned = (payload.len() >= OFFLOAD_BYTES).then(|| payload.to_vec());
        let seal = move |payload: &[u8]| -> Result<(Vec<u8>, usize)> {
            let compressed;
            let stored: &[u8] = if compress {
                compressed = zstd::bulk::compress(payload, level)
                    .map_err(|_| RedisCacheError::Server("zstd encode failed".into()))?;
                &compressed
            } else {
                payload
            };
            if stored.len() > limit {
                return Err(RedisCacheError::TooLarge {
                    size: stored.len(),
                    limit,
                });
            }
            Ok((this.inner.crypto.seal(&aad, stored), stored.len()))
        };
        let (sealed, stored_len) = match owned {
            Some(buf) => tokio::task::spawn_blocking(move || seal(&buf))
                .await
                .map_err(|_| RedisCacheError::Server("encryption task failed".into()))??,
            None => seal(payload)?,
        };
        let sealed_key = self
            .inner
            .crypto
            .seal(&ad(&[n.key.as_bytes(), b"k"]), key.as_str().as_bytes());
        let tags: Vec<String> = deps
            .tags()
            .iter()
            .map(|t| self.tag_name(key.account_id(), t))
            .collect();
        let res = key.resource_type();
        let mut inv = scripts::SET.prepare_invoke();
        inv.key(&n.key)
            .key(self.k_index(&n.acct, res))
            .key(self.k_stats(&n.acct, res))
            .key(self.k_resources(&n.acct))
            .key(self.k_accounts())
            .arg(self.ns())
            .arg(&n.id)
            .arg(&n.acct)
            .arg(res)
            .arg(self.sealed_account(&n.acct, key.account_id()))
            .arg(sealed)
            .arg(encoding)
            .arg(c)
            .arg(f)
            .arg(x)
            .arg(rb)
            .arg(stored_len)
            .arg(sealed_key)
            .arg(deadline)
            .arg(tags.join(","));
        let _: i64 = self.script(&inv).await?;
        Ok(())
    }

    /// Removes the entries the targets name and counts them as
    /// invalidations: `Scope::All` every entry of the account and resource
    /// type, `Item`/`Container` those whose dependencies carry that tag.
    /// Returns the number of entries removed. (The reason is for the
    /// caller's logs; Redis keeps no audit log.)
    pub async fn invalidate(&self, targets: &[Invalidation], reason: &str) -> Result<u64> {
        let _ = reason;
        let mut removed = 0u64;
        for t in targets {
            Self::check_resource(&t.resource_type)?;
            let acct = self.account_name(&t.account_id);
            let res = t.resource_type.as_str();
            let set = match scope_tag(&t.scope) {
                None => self.k_index(&acct, res),
                Some(tag) => format!(
                    "{}:tg:{acct}:{res}:{}",
                    self.ns(),
                    self.tag_name(&t.account_id, &tag)
                ),
            };
            let mut inv = scripts::INVALIDATE.prepare_invoke();
            inv.key(set)
                .key(self.k_stats(&acct, res))
                .key(self.k_resources(&acct))
                .key(self.k_accounts())
                .arg(self.ns())
                .arg(&acct)
                .arg(res)
                .arg(self.sealed_account(&acct, &t.account_id));
            let n: u64 = self.script(&inv).await?;
            removed += n;
        }
        Ok(removed)
    }

    /// Keys of every `SCAN` match of `pattern` (a pattern built from safe
    /// names only).
    async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>> {
        let mut cursor: u64 = 0;
        let mut out = Vec::new();
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(BATCH);
            let (next, keys): (u64, Vec<String>) = self.cmd(&cmd).await?;
            out.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Removes entries whose key (`resource_type:account_id:hash`) matches
    /// `pattern`, where `*` matches any run of characters and every other
    /// character (including `_`, `%`, `?` and `[`) is literal; optionally
    /// only of one account. Returns the number removed.
    pub async fn invalidate_pattern(
        &self,
        pattern: &str,
        account_id: Option<&str>,
        reason: &str,
    ) -> Result<u64> {
        let _ = reason;
        if pattern.is_empty() {
            return Err(RedisCacheError::InvalidArgument(
                "Invalid pattern '': must not be empty. Expected: a cache key pattern such as 'email_list:*'".into(),
            ));
        }
        // Candidate entry ids: the account's indexes, or every entry.
        let ids: Vec<String> = match account_id {
            Some(account) => {
                let acct = self.account_name(account);
                let resources: Vec<String> = self
                    .cmd(redis::cmd("SMEMBERS").arg(self.k_resources(&acct)))
                    .await?;
                let mut pipe = redis::pipe();
                for res in &resources {
                    pipe.cmd("ZRANGE")
                        .arg(self.k_index(&acct, res))
                        .arg(0)
                        .arg(-1);
                }
                let lists: Vec<Vec<String>> = if resources.is_empty() {
                    Vec::new()
                } else {
                    self.pipe(&pipe).await?
                };
                lists.into_iter().flatten().collect()
            }
            None => {
                let prefix = format!("{}:e:", self.ns());
                self.scan_keys(&format!("{prefix}*"))
                    .await?
                    .into_iter()
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
                    .collect()
            }
        };
        let mut removed = 0u64;
        let mut unreadable = 0u64;
        for chunk in ids.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HGET")
                    .arg(format!("{}:e:{id}", self.ns()))
                    .arg("k");
            }
            let sealed: Vec<Option<Vec<u8>>> = self.pipe(&pipe).await?;
            let mut matched = Vec::new();
            for (id, blob) in chunk.iter().zip(sealed) {
                let Some(blob) = blob else { continue };
                let ek = format!("{}:e:{id}", self.ns());
                match self.inner.crypto.open(&ad(&[ek.as_bytes(), b"k"]), &blob) {
                    Ok(text) if star_match(pattern.as_bytes(), &text) => matched.push(id.as_str()),
                    Ok(_) => {}
                    Err(_) => unreadable += 1,
                }
            }
            if matched.is_empty() {
                continue;
            }
            let mut inv = scripts::DROP_IDS.prepare_invoke();
            inv.arg(self.ns()).arg("1");
            for id in matched {
                inv.arg(id);
            }
            let n: u64 = self.script(&inv).await?;
            removed += n;
        }
        if unreadable > 0 {
            tracing::warn!(
                entries = unreadable,
                "pattern invalidation skipped Redis cache entries that do not decrypt with this cache key"
            );
        }
        Ok(removed)
    }

    /// Removes every entry, task and statistic of one account (sign-out).
    /// Returns the number of entries removed.
    pub async fn purge_account(&self, account_id: &str) -> Result<u64> {
        let acct = self.account_name(account_id);
        let mut inv = scripts::PURGE_ACCOUNT.prepare_invoke();
        inv.key(self.k_resources(&acct))
            .key(self.k_accounts())
            .key(format!("{}:tq:acct:{acct}", self.ns()))
            .arg(self.ns())
            .arg(&acct);
        self.script(&inv).await
    }

    /// Removes every cache entry of this namespace (tasks and statistics
    /// stay). Returns the number of entries removed.
    pub async fn clear(&self) -> Result<u64> {
        let mut removed = 0u64;
        // Index by index, each with its entries in one script, so an entry
        // set meanwhile is never left outside an index.
        let indexes = self.scan_keys(&format!("{}:ix:*", self.ns())).await?;
        for chunk in indexes.chunks(50) {
            let mut inv = scripts::DROP_INDEXES.prepare_invoke();
            for ix in chunk {
                inv.key(ix);
            }
            inv.arg(self.ns());
            let n: u64 = self.script(&inv).await?;
            removed += n;
        }
        // Entries no index named (there should be none).
        let prefix = format!("{}:e:", self.ns());
        let stragglers: Vec<String> = self
            .scan_keys(&format!("{prefix}*"))
            .await?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
            .collect();
        for chunk in stragglers.chunks(BATCH) {
            let mut inv = scripts::DROP_IDS.prepare_invoke();
            inv.arg(self.ns()).arg("0");
            for id in chunk {
                inv.arg(id);
            }
            let n: u64 = self.script(&inv).await?;
            removed += n;
        }
        Ok(removed)
    }

    /// Counts a background refresh for stats (best effort: a failure is
    /// logged, not returned).
    pub async fn record_refresh(&self, account_id: &str, resource_type: &str) {
        if Self::check_resource(resource_type).is_err() {
            return;
        }
        let acct = self.account_name(account_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HINCRBY")
            .arg(self.k_stats(&acct, resource_type))
            .arg("refreshes")
            .arg(1)
            .ignore()
            .cmd("SADD")
            .arg(self.k_resources(&acct))
            .arg(resource_type)
            .ignore()
            .cmd("HSETNX")
            .arg(self.k_accounts())
            .arg(&acct)
            .arg(self.sealed_account(&acct, account_id))
            .ignore();
        if let Err(e) = self.pipe::<()>(&pipe).await {
            tracing::debug!(error = %e, "could not count a refresh in Redis");
        }
    }

    /// Statistics: counters and current sizes per account (real ids, from
    /// the encrypted registry), per resource type and in total, and the
    /// number of queued or running tasks. `file_bytes` is Redis's
    /// `used_memory`, `max_total_bytes` its `maxmemory` (0: unlimited).
    pub async fn stats(&self) -> Result<CacheStats> {
        let registry: HashMap<String, Vec<u8>> = self
            .cmd(redis::cmd("HGETALL").arg(self.k_accounts()))
            .await?;
        let mut accounts: Vec<(String, String)> = Vec::with_capacity(registry.len());
        for (acct, sealed) in registry {
            let name = self
                .inner
                .crypto
                .open_text(
                    &ad(&[self.k_accounts().as_bytes(), acct.as_bytes()]),
                    &sealed,
                )
                .unwrap_or_else(|_| format!("(unreadable account {})", &acct[..acct.len().min(8)]));
            accounts.push((acct, name));
        }
        // (account name, resource) pairs.
        let mut pairs: Vec<(usize, String)> = Vec::new();
        if !accounts.is_empty() {
            let mut pipe = redis::pipe();
            for (acct, _) in &accounts {
                pipe.cmd("SMEMBERS").arg(self.k_resources(acct));
            }
            let lists: Vec<Vec<String>> = self.pipe(&pipe).await?;
            for (i, list) in lists.into_iter().enumerate() {
                pairs.extend(list.into_iter().map(|r| (i, r)));
            }
        }
        let mut per_account: HashMap<String, StatsRow> = HashMap::new();
        let mut per_resource: HashMap<String, StatsRow> = HashMap::new();
        let mut total = StatsRow::default();
        for chunk in pairs.chunks(100) {
            let mut pipe = redis::pipe();
            for (i, res) in chunk {
                pipe.cmd("HGETALL").arg(self.k_stats(&accounts[*i].0, res));
            }
            let counters: Vec<HashMap<String, u64>> = self.pipe(&pipe).await?;
            let mut inv = scripts::SIZES.prepare_invoke();
            for (i, res) in chunk {
                inv.key(self.k_index(&accounts[*i].0, res));
            }
            inv.arg(self.ns());
            let sizes: Vec<u64> = self.script(&inv).await?;
            for (j, ((i, res), c)) in chunk.iter().zip(counters).enumerate() {
                let (n, sb, rb) = (
                    sizes.get(3 * j).copied().unwrap_or(0),
                    sizes.get(3 * j + 1).copied().unwrap_or(0),
                    sizes.get(3 * j + 2).copied().unwrap_or(0),
                );
                if c.is_empty() && n == 0 {
                    continue;
                }
                for row in [
                    per_account.entry(accounts[*i].1.clone()).or_default(),
                    per_resource.entry(res.clone()).or_default(),
                    &mut total,
                ] {
                    add_counters(row, &c);
                    add_sizes(row, n, sb, rb);
                }
            }
        }
        let q = format!("{}:tq:", self.ns());
        let mut pipe = redis::pipe();
        pipe.cmd("ZCARD")
            .arg(format!("{q}ready"))
            .cmd("ZCARD")
            .arg(format!("{q}delayed"))
            .cmd("ZCARD")
            .arg(format!("{q}running"))
            .cmd("INFO")
            .arg("memory");
        let (ready, delayed, running, info): (u64, u64, u64, String) = self.pipe(&pipe).await?;
        finish_row(&mut total);
        let finish = |map: HashMap<String, StatsRow>| {
            let mut v: Vec<(String, StatsRow)> = map
                .into_iter()
                .map(|(k, mut row)| {
                    finish_row(&mut row);
                    (k, row)
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        Ok(CacheStats {
            compression_ratio: if total.stored_bytes > 0 {
                total.raw_bytes as f64 / total.stored_bytes as f64
            } else {
                1.0
            },
            total,
            per_account: finish(per_account),
            per_resource: finish(per_resource),
            max_total_bytes: info_field(&info, "maxmemory"),
            file_bytes: info_field(&info, "used_memory"),
            tasks_pending: ready + delayed + running,
        })
    }

    /// Takes the single-flight lock of `key` across servers (`SET NX PX
    /// lock_ttl`). `None`: another holder has it.
    pub async fn try_lock(&self, key: &EntryKey) -> Result<Option<LockToken>> {
        let n = self.names(key);
        let token = random_hex16();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.k_lock(&n.id))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.inner.config.lock_ttl.as_millis() as u64);
        let ok: Option<String> = self.cmd(&cmd).await?;
        Ok(ok.map(|_| LockToken(token)))
    }

    /// Releases a lock taken by [`RedisCache::try_lock`], unless it expired
    /// and someone else holds it now (compare-and-delete).
    pub async fn unlock(&self, key: &EntryKey, token: LockToken) -> Result<()> {
        let n = self.names(key);
        let mut inv = scripts::UNLOCK.prepare_invoke();
        inv.key(self.k_lock(&n.id)).arg(token.0);
        let _: i64 = self.script(&inv).await?;
        Ok(())
    }

    /// Waits until nobody holds the lock of `key` or `max` has passed.
    /// Returns true when it was released (or never held).
    pub async fn wait_unlocked(&self, key: &EntryKey, max: Duration) -> Result<bool> {
        let n = self.names(key);
        let lock = self.k_lock(&n.id);
        let until = Instant::now() + max;
        loop {
            let held: bool = self.cmd(redis::cmd("EXISTS").arg(&lock)).await?;
            if !held {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(false);
            }
            tokio::time::sleep(LOCK_POLL.min(until - now)).await;
        }
    }

    /// Housekeeping: drops index members whose entries Redis has already
    /// expired (or evicted), so entry counts stay honest and indexes do not
    /// grow. Returns the number of entries dropped from the account and
    /// resource indexes.
    pub async fn maintain(&self) -> Result<u64> {
        let mut dropped = 0u64;
        for (pattern, check) in [("ix", "1"), ("tg", "0")] {
            let keys = self
                .scan_keys(&format!("{}:{pattern}:*", self.ns()))
                .await?;
            for chunk in keys.chunks(100) {
                let mut inv = scripts::MAINTAIN.prepare_invoke();
                for k in chunk {
                    inv.key(k);
                }
                inv.arg(self.ns()).arg(check);
                let n: u64 = self.script(&inv).await?;
                if check == "1" {
                    dropped += n;
                }
            }
        }
        Ok(dropped)
    }
}

/// Runs `f` on a blocking thread when `len` is large, inline otherwise.
async fn offload<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if len >= OFFLOAD_BYTES {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| RedisCacheError::Server("decryption task failed".into()))?
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_patterns() {
        let m = |p: &str, t: &str| star_match(p.as_bytes(), t.as_bytes());
        assert!(m("email_list:*", "email_list:acct:abc"));
        assert!(!m("email_list:*", "emailXlist:acct:abc"));
        assert!(m("*", ""));
        assert!(m("*:acct:*", "file_get:acct:123"));
        assert!(!m("*:acct:*", "file_get:acct2:123"));
        assert!(m("a%b_c", "a%b_c"));
        assert!(!m("a%b_c", "axbyc"));
        assert!(!m("a?c", "abc"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("**x", "abx"));
    }

    #[test]
    fn info_fields() {
        let info = "# Memory\r\nused_memory:1234\r\nused_memory_human:1.2K\r\nmaxmemory:0\r\n";
        assert_eq!(info_field(info, "used_memory"), 1234);
        assert_eq!(info_field(info, "maxmemory"), 0);
    }
}
