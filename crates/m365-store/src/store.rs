//! The cache engine on the encrypted file: entries with fresh/stale/expired
//! state, compression, size limits and eviction, precise invalidation, and
//! statistics.
//!
//! Connections are long-lived: one writer and a few readers, each behind its
//! own mutex, so reads run in parallel with a write (WAL) and no operation
//! opens a connection. All methods block; async callers run them on a
//! blocking thread or accept the few microseconds they take.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

use crate::db::{self, Cipher, OpenOutcome};
use crate::entries::{self, NewEntry, Removed};
use crate::error::{StoreError, classify};
use crate::key::CacheKey;
use crate::policy::{TtlPolicy, policy_for};

const ENCODING_RAW: i64 = 0;
const ENCODING_ZSTD: i64 = 1;

/// Limits and tuning of a store. `Default` gives the product's values.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database file.
    pub path: PathBuf,
    /// Total payload bytes the cache may hold (default 2 GiB).
    pub max_total_bytes: u64,
    /// Largest stored entry (after compression); larger ones are refused (default 10 MiB).
    pub max_entry_bytes: usize,
    /// Payloads of at least this size are zstd-compressed (default 50 KiB).
    pub compress_threshold: usize,
    /// zstd level (default 3: fast, and JSON compresses well at any level).
    pub zstd_level: i32,
    /// Fraction of `max_total_bytes` that triggers cleanup (default 0.8).
    pub cleanup_threshold: f64,
    /// Fraction cleanup brings the total down to (default 0.6).
    pub cleanup_target: f64,
    /// How long an expired entry is kept for stale-if-error before the sweep
    /// removes it (default 24 h).
    pub expired_retention: Duration,
    /// Reader connections (default 4).
    pub readers: usize,
    /// Page cache per connection in KiB (default 12 MiB: enough for the
    /// index pages of a 100 000-entry cache, so lookups rarely decrypt them
    /// again; a connection's cache fills only as it is used).
    pub page_cache_kib: i64,
    /// Hard ceiling on the file size; writes past it fail with
    /// [`StoreError::Full`] as on a full disk (default none).
    pub max_file_bytes: Option<u64>,
    /// How old a noted access time may be before a read replaces it
    /// (default 60 s): LRU order to the minute. Reads are noted in memory
    /// and written back in batches, never one write per read.
    pub access_granularity: Duration,
    /// Multiplies every policy's fresh and expiry ages (default 1.0). Below 1
    /// shortens lifetimes, e.g. to watch entries go stale in seconds.
    pub ttl_scale: f64,
}

impl StoreConfig {
    /// The product's defaults for a store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_entry_bytes: 10 * 1024 * 1024,
            compress_threshold: 50 * 1024,
            zstd_level: 3,
            cleanup_threshold: 0.8,
            cleanup_target: 0.6,
            expired_retention: Duration::from_secs(24 * 3600),
            readers: 4,
            page_cache_kib: 12 * 1024,
            max_file_bytes: None,
            ttl_scale: 1.0,
            access_granularity: Duration::from_secs(60),
        }
    }
}

/// The identity of a cache entry: account, resource type and canonical
/// parameters. Two calls that mean the same thing produce the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    account_id: String,
    resource_type: String,
    params_json: String,
    cache_key: String,
    digest: [u8; 16],
}

impl EntryKey {
    /// Builds the key. `params` is canonicalised (object keys sorted at every
    /// level, compact form), so key order in the caller's map does not matter;
    /// callers fill defaults in before, so an omitted default and an explicit
    /// one are the same entry.
    pub fn new(account_id: &str, resource_type: &str, params: &serde_json::Value) -> Self {
        let mut params_json = String::new();
        write_canonical(params, &mut params_json);
        let digest = entries::key_digest(resource_type, account_id, &params_json);
        let cache_key = format!("{resource_type}:{account_id}:{}", hex::encode(digest));
        EntryKey {
            account_id: account_id.to_string(),
            resource_type: resource_type.to_string(),
            params_json,
            cache_key,
            digest,
        }
    }

    /// The entry's row id (the first 8 bytes of its digest).
    pub(crate) fn row_id(&self) -> i64 {
        entries::row_id(&self.digest)
    }

    /// The account the entry belongs to.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }
    /// The resource type (the cached tool's name).
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }
    /// The canonical parameters, as stored (a background refresh re-runs them).
    pub fn params_json(&self) -> &str {
        &self.params_json
    }
    /// `resource:account:hash`, the text `invalidate_pattern` matches.
    pub fn as_str(&self) -> &str {
        &self.cache_key
    }
}

/// Serialises JSON with object keys sorted at every level.
pub fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The ids an entry depends on — the item it shows, the items it lists, the
/// container it lists — kept in an indexed table so that a write removes
/// exactly the entries that depend on what it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    tags: Vec<String>,
}

fn item_tag(id: &str) -> String {
    format!("item:{id}")
}

fn container_tag(id: &str) -> String {
    format!("container:{id}")
}

impl Dependencies {
    /// No dependency beyond account and resource type.
    pub fn none() -> Self {
        Self::default()
    }
    /// The entry shows (or lists) one item.
    pub fn item(id: impl AsRef<str>) -> Self {
        Self::none().with_item(id)
    }
    /// The entry lists one container.
    pub fn container(id: impl AsRef<str>) -> Self {
        Self::none().with_container(id)
    }
    /// Adds an item the entry shows or lists.
    pub fn with_item(mut self, id: impl AsRef<str>) -> Self {
        let tag = item_tag(id.as_ref());
        if !id.as_ref().is_empty() && !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }
    /// Adds a container the entry lists.
    pub fn with_container(mut self, id: impl AsRef<str>) -> Self {
        let tag = container_tag(id.as_ref());
        if !id.as_ref().is_empty() && !self.tags.contains(&tag) {
            self.tags.push(tag);
        }
        self
    }
    /// Adds every item of a list.
    pub fn with_items<I, S>(self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ids.into_iter().fold(self, |deps, id| deps.with_item(id))
    }
    /// The stored form.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
}

/// Where an entry stands in its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Serve as is.
    Fresh,
    /// Serve now, refresh in the background.
    Stale,
    /// Fetch before answering; serve only if Graph fails.
    Expired,
}

/// A cached payload and its timing.
#[derive(Debug, Clone)]
pub struct CachedEntry {
    /// The payload as it was set (decompressed).
    pub payload: Vec<u8>,
    /// State at the time of the read.
    pub freshness: Freshness,
    /// When it was stored, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// When it stops being fresh.
    pub fresh_until_ms: i64,
    /// When it expires.
    pub expires_at_ms: i64,
}

impl CachedEntry {
    /// Age at `now_ms`, in whole seconds.
    pub fn age_seconds(&self, now_ms: i64) -> u64 {
        ((now_ms - self.created_at_ms).max(0) / 1000) as u64
    }
}

/// What an invalidation targets within one account and resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every entry of the resource type.
    All,
    /// Entries that show or list this item.
    Item(String),
    /// Entries listing this container.
    Container(String),
}

/// One precise invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The account whose entries go.
    pub account_id: String,
    /// The resource type.
    pub resource_type: String,
    /// Which of its entries.
    pub scope: Scope,
}

impl Invalidation {
    /// A target of `scope` within `account_id`/`resource_type`.
    pub fn new(account_id: &str, resource_type: &str, scope: Scope) -> Self {
        Invalidation {
            account_id: account_id.to_string(),
            resource_type: resource_type.to_string(),
            scope,
        }
    }
}

/// Counters of one account, one resource type, or the whole cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsRow {
    /// Fresh hits.
    pub hits: u64,
    /// Stale entries served.
    pub stale_hits: u64,
    /// Reads that found nothing usable (absent or expired).
    pub misses: u64,
    /// Background refreshes recorded by the caller.
    pub refreshes: u64,
    /// Entries written.
    pub writes: u64,
    /// Entries removed by invalidation.
    pub invalidations: u64,
    /// Entries removed to honour the size cap.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes held now (as stored, after compression).
    pub stored_bytes: u64,
    /// Bytes held now before compression.
    pub raw_bytes: u64,
    /// (hits + stale hits) / reads, when there were reads.
    pub hit_rate: Option<f64>,
}

impl StatsRow {
    fn add_counters(&mut self, c: &Counters) {
        self.hits += c.hits;
        self.stale_hits += c.stale_hits;
        self.misses += c.misses;
        self.refreshes += c.refreshes;
        self.writes += c.writes;
        self.invalidations += c.invalidations;
        self.evictions += c.evictions;
    }
    fn add_sizes(&mut self, entries: u64, stored: u64, raw: u64) {
        self.entries += entries;
        self.stored_bytes += stored;
        self.raw_bytes += raw;
    }
    fn finish(&mut self) {
        let reads = self.hits + self.stale_hits + self.misses;
        self.hit_rate = (reads > 0).then(|| (self.hits + self.stale_hits) as f64 / reads as f64);
    }
}

/// The whole picture `cache_get_stats` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// Everything together.
    pub total: StatsRow,
    /// Per account id.
    pub per_account: Vec<(String, StatsRow)>,
    /// Per resource type.
    pub per_resource: Vec<(String, StatsRow)>,
    /// raw / stored bytes (1.0 when nothing is compressed).
    pub compression_ratio: f64,
    /// The size cap.
    pub max_total_bytes: u64,
    /// Size of the database file and its WAL on disk.
    pub file_bytes: u64,
    /// Queued or running tasks.
    pub tasks_pending: u64,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// Entries removed because they expired longer ago than the retention.
    pub swept: u64,
    /// Entries evicted to get under the size cap.
    pub evicted: u64,
    /// Bytes removed by both.
    pub bytes_freed: u64,
    /// Free pages returned to the file system.
    pub pages_vacuumed: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counters {
    hits: u64,
    stale_hits: u64,
    misses: u64,
    refreshes: u64,
    writes: u64,
    invalidations: u64,
    evictions: u64,
}

impl Counters {
    fn is_zero(&self) -> bool {
        *self == Counters::default()
    }

    /// The seven counters from consecutive columns starting at `first`, in
    /// the stats table's order (hits … evictions).
    fn from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Counters> {
        let at = |i: usize| r.get::<_, i64>(first + i).map(|n| n as u64);
        Ok(Counters {
            hits: at(0)?,
            stale_hits: at(1)?,
            misses: at(2)?,
            refreshes: at(3)?,
            writes: at(4)?,
            invalidations: at(5)?,
            evictions: at(6)?,
        })
    }
}

#[derive(Clone, Copy)]
enum Counter {
    Hit,
    StaleHit,
    Miss,
    Refresh,
    Write,
}

/// The encrypted store. Cheap to clone; all clones share the connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    config: StoreConfig,
    cipher: Cipher,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Payload bytes held, as this process knows it ([`UNKNOWN_TOTAL`] until
    /// the first write needs it); recomputed before any cleanup acts, since
    /// other processes may write the same file.
    total_bytes: AtomicI64,
    /// Reads not yet written back: entry id → (last access ms, hits).
    access: Mutex<HashMap<i64, (i64, u64)>>,
    /// Counter deltas not yet written to the stats table.
    counters: Mutex<HashMap<(String, String), Counters>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.config.path)
            .finish_non_exhaustive()
    }
}

/// `total_bytes` before anything summed it: opening stays O(1) in the number
/// of entries, and the first write pays for the sum.
const UNKNOWN_TOTAL: i64 = i64::MIN;

/// Writes back pending access times after this many distinct entries were
/// read (about 1 MiB of memory); maintenance writes them back sooner.
const ACCESS_FLUSH_AT: usize = 16_384;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves it usable (SQLite rolls back
    // an unfinished transaction when the next one begins), so poisoning is
    // not a reason to stop serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    /// Opens (or creates) the encrypted store with `key`.
    ///
    /// A file that does not open with `key` is handled without losing
    /// anything: a plain SQLite file is encrypted in place; otherwise, when
    /// `pending` (a key from an interrupted rotation) opens it, that key is
    /// used; otherwise the file and its -wal/-shm are moved aside as
    /// `<name>.unreadable-<UTC timestamp>` with a warning, and a new cache is
    /// created.
    pub fn open(
        config: StoreConfig,
        key: CacheKey,
        pending: Option<CacheKey>,
    ) -> Result<(Store, OpenOutcome), StoreError> {
        let path = config.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let existed = path.exists();
        let mut cipher = Cipher::Key(key.clone());
        let mut outcome = OpenOutcome::Opened { created: !existed };
        let writer = match db::open_connection(&path, &cipher, config.page_cache_kib) {
            Ok(conn) => conn,
            Err(StoreError::Unreadable { .. }) if existed => {
                if db::is_plain_sqlite(&path) {
                    let rows = db::encrypt_in_place(&path, &key)?;
                    tracing::warn!(
                        path = %path.display(),
                        rows,
                        "found an unencrypted cache; it was encrypted in place and the plain file removed after the copy verified"
                    );
                    outcome = OpenOutcome::MigratedFromPlain { rows };
                } else if let Some(pending) = pending.filter(|p| db::opens_with(&path, p)) {
                    cipher = Cipher::Key(pending);
                    outcome = OpenOutcome::OpenedWithPendingKey;
                } else {
                    let moved_to = db::move_aside(&path)?;
                    tracing::warn!(
                        moved_to = %moved_to.display(),
                        "the cache file does not open with the configured key (wrong key or corrupt file); \
                         it was moved aside, not deleted, and a new cache was created"
                    );
                    outcome = OpenOutcome::MovedAside { moved_to };
                }
                db::open_connection(&path, &cipher, config.page_cache_kib)?
            }
            Err(e) => return Err(e),
        };
        let store = Self::finish_open(config, cipher, writer)?;
        Ok((store, outcome))
    }

    /// Opens a store without encryption. This exists only so benchmarks can
    /// report what encryption costs; the product never calls it.
    #[doc(hidden)]
    pub fn open_plain_for_benchmarks(config: StoreConfig) -> Result<Store, StoreError> {
        let writer = db::open_connection(&config.path, &Cipher::Plain, config.page_cache_kib)?;
        Self::finish_open(config, Cipher::Plain, writer)
    }

    fn finish_open(
        config: StoreConfig,
        cipher: Cipher,
        mut writer: Connection,
    ) -> Result<Store, StoreError> {
        db::migrate(&mut writer).map_err(|e| match e {
            StoreError::Sqlite(e) => classify(e),
            other => other,
        })?;
        if let Some(max) = config.max_file_bytes {
            // SQLCipher 4 and SQLite both default to 4 KiB pages.
            let pages = (max / 4096).max(1);
            writer.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        }
        let mut readers = Vec::with_capacity(config.readers.max(1));
        for _ in 0..config.readers.max(1) {
            readers.push(Mutex::new(db::open_connection(
                &config.path,
                &cipher,
                config.page_cache_kib,
            )?));
        }
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                cipher,
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                total_bytes: AtomicI64::new(UNKNOWN_TOTAL),
                access: Mutex::new(HashMap::new()),
                counters: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.config.path
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// True when the store is encrypted (always, outside benchmarks).
    pub fn is_encrypted(&self) -> bool {
        matches!(self.inner.cipher, Cipher::Key(_))
    }

    /// SQLCipher's version string (e.g. `4.6.1 community`).
    pub fn cipher_version(&self) -> Option<String> {
        db::cipher_version(&lock(&self.inner.writer))
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        // The writer first, when it is free: in WAL mode a commit empties the
        // page cache of every other connection at its next read, so only the
        // writer's cache (decrypted pages) survives a mix of reads and
        // writes. Then the lowest free reader, so under light load one
        // reader's cache stays warm; under load the others take the overflow.
        if let Ok(writer) = self.inner.writer.try_lock() {
            return writer;
        }
        let readers = &self.inner.readers;
        for reader in readers.iter() {
            if let Ok(guard) = reader.try_lock() {
                return guard;
            }
        }
        let spill = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        lock(&readers[spill])
    }

    pub(crate) fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.writer)
    }

    /// Reads an entry and counts the read (hit, stale hit, or miss).
    /// Expired entries are returned (for stale-if-error) and count as misses.
    pub fn get(&self, key: &EntryKey) -> Result<Option<CachedEntry>, StoreError> {
        let found = self.read_entry(key)?;
        let counter = match &found {
            Some(e) if e.freshness == Freshness::Fresh => Counter::Hit,
            Some(e) if e.freshness == Freshness::Stale => Counter::StaleHit,
            _ => Counter::Miss,
        };
        self.count(key.account_id(), key.resource_type(), counter, 1);
        if let Some(entry) = &found
            && entry.freshness != Freshness::Expired
        {
            self.note_access(key.row_id());
        }
        Ok(found)
    }

    /// The state of an entry without reading its payload or counting a read
    /// (warming uses it to skip what is already fresh).
    pub fn freshness(&self, key: &EntryKey) -> Result<Option<Freshness>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT fresh_until, expires_at FROM entry_meta WHERE id = ?1 AND key_hash = ?2",
        )?;
        let row = stmt
            .query_row(params![key.row_id(), key.digest.as_slice()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        Ok(row.map(|(fresh_until, expires_at)| classify_age(now_ms(), fresh_until, expires_at)))
    }

    fn read_entry(&self, key: &EntryKey) -> Result<Option<CachedEntry>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT payload, encoding, created_at, fresh_until, expires_at FROM entries
             WHERE id = ?1 AND key_hash = ?2",
        )?;
        let row = stmt
            .query_row(params![key.row_id(), key.digest.as_slice()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        drop(stmt);
        drop(conn);
        let Some((stored, encoding, created_at_ms, fresh_until_ms, expires_at_ms)) = row else {
            return Ok(None);
        };
        let payload = match encoding {
            ENCODING_RAW => stored,
            ENCODING_ZSTD => zstd::stream::decode_all(stored.as_slice())
                .map_err(|e| StoreError::Codec(format!("zstd decode failed: {e}")))?,
            other => {
                return Err(StoreError::Codec(format!(
                    "unknown payload encoding {other}"
                )));
            }
        };
        let freshness = classify_age(now_ms(), fresh_until_ms, expires_at_ms);
        Ok(Some(CachedEntry {
            payload,
            freshness,
            created_at_ms,
            fresh_until_ms,
            expires_at_ms,
        }))
    }

    /// Stores a payload with the resource type's TTL policy.
    pub fn set(
        &self,
        key: &EntryKey,
        deps: &Dependencies,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let policy = policy_for(key.resource_type());
        let scale = self.inner.config.ttl_scale;
        let ttl = if (scale - 1.0).abs() < f64::EPSILON {
            policy
        } else {
            TtlPolicy {
                fresh: policy.fresh.mul_f64(scale),
                expires: policy.expires.mul_f64(scale),
            }
        };
        self.set_with_ttl(key, deps, payload, ttl)
    }

    /// Stores a payload with an explicit TTL policy.
    pub fn set_with_ttl(
        &self,
        key: &EntryKey,
        deps: &Dependencies,
        payload: &[u8],
        ttl: TtlPolicy,
    ) -> Result<(), StoreError> {
        let config = &self.inner.config;
        let (encoding, compressed);
        let stored: &[u8] = if payload.len() >= config.compress_threshold {
            compressed = zstd::bulk::compress(payload, config.zstd_level)
                .map_err(|e| StoreError::Codec(format!("zstd encode failed: {e}")))?;
            encoding = ENCODING_ZSTD;
            &compressed
        } else {
            encoding = ENCODING_RAW;
            payload
        };
        if stored.len() > config.max_entry_bytes {
            return Err(StoreError::EntryTooLarge {
                size: stored.len(),
                limit: config.max_entry_bytes,
            });
        }
        let tag_ids = entries::entry_tag_ids(key.account_id(), key.resource_type(), deps.tags());
        let now = now_ms();
        let entry = NewEntry {
            key_hash: &key.digest,
            account_id: key.account_id(),
            resource_type: key.resource_type(),
            tag_ids: &tag_ids,
            encoding,
            stored,
            raw_bytes: payload.len() as i64,
            created_at: now,
            fresh_until: now + ttl.fresh.as_millis() as i64,
            expires_at: now + ttl.expires.as_millis() as i64,
        };
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let replaced = entries::put(&tx, &entry).map_err(classify)?;
        tx.commit().map_err(classify)?;
        let delta = stored.len() as i64 - replaced.map_or(0, |r| r.stored_bytes);
        if self.inner.total_bytes.load(Ordering::Relaxed) == UNKNOWN_TOTAL {
            let sum = total_stored(&conn)?;
            self.inner.total_bytes.store(sum - delta, Ordering::Relaxed);
        }
        let total = self.inner.total_bytes.fetch_add(delta, Ordering::Relaxed) + delta;
        self.count(key.account_id(), key.resource_type(), Counter::Write, 1);
        if total as f64 > config.max_total_bytes as f64 * config.cleanup_threshold {
            self.enforce_size_cap(&mut conn, None)?;
        }
        Ok(())
    }

    /// Removes the entries the targets name, in one transaction, and records
    /// each in the audit log. Returns the number of entries removed.
    pub fn invalidate(&self, targets: &[Invalidation], reason: &str) -> Result<u64, StoreError> {
        if targets.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let mut removed_total = 0u64;
        let mut freed = 0i64;
        let mut per_target = Vec::with_capacity(targets.len());
        {
            let mut conn = self.writer();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            for t in targets {
                let (tag, target) = match &t.scope {
                    Scope::All => (
                        entries::resource_tag(&t.resource_type),
                        t.resource_type.clone(),
                    ),
                    Scope::Item(id) => (item_tag(id), format!("{} item={id}", t.resource_type)),
                    Scope::Container(id) => (
                        container_tag(id),
                        format!("{} container={id}", t.resource_type),
                    ),
                };
                let ids = entries::tagged(&tx, &t.account_id, &t.resource_type, &tag)?;
                let removed = entries::remove_all(&tx, &ids)?;
                freed += removed.iter().map(|r| r.stored_bytes).sum::<i64>();
                let removed = removed.len() as u64;
                removed_total += removed;
                tx.prepare_cached(
                    "INSERT INTO invalidations (account_id, target, reason, entries_removed, invalidated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![t.account_id, target, reason, removed as i64, now])
                .map_err(classify)?;
                per_target.push((t.account_id.clone(), t.resource_type.clone(), removed));
            }
            tx.commit().map_err(classify)?;
        }
        self.subtract_total(freed);
        let mut counters = lock(&self.inner.counters);
        for (account, resource, removed) in per_target {
            if removed > 0 {
                counters
                    .entry((account, resource))
                    .or_default()
                    .invalidations += removed;
            }
        }
        Ok(removed_total)
    }

    /// Removes entries whose key (`resource_type:account_id:hash`) matches
    /// `pattern`, where `*` matches any run of characters and every other
    /// character (including `_`, `%`, `?` and `[`) is literal. Optionally
    /// limited to one account. Audited. Returns the number removed.
    pub fn invalidate_pattern(
        &self,
        pattern: &str,
        account_id: Option<&str>,
        reason: &str,
    ) -> Result<u64, StoreError> {
        if pattern.is_empty() {
            return Err(StoreError::InvalidArgument(
                "Invalid pattern '': must not be empty. Expected: a cache key pattern such as 'email_list:*'".into(),
            ));
        }
        let glob = glob_from_star_pattern(pattern);
        let now = now_ms();
        let rows: Vec<Removed>;
        {
            let mut conn = self.writer();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let ids: Vec<i64> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT id FROM entry_meta
                     WHERE resource_type || ':' || account_id || ':' || lower(hex(key_hash)) GLOB ?1
                       AND (?2 IS NULL OR account_id = ?2)",
                )?;
                stmt.query_map(params![glob, account_id], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            rows = entries::remove_all(&tx, &ids)?;
            tx.execute(
                "INSERT INTO invalidations (account_id, target, reason, entries_removed, invalidated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![account_id, pattern, reason, rows.len() as i64, now],
            )
            .map_err(classify)?;
            tx.commit().map_err(classify)?;
        }
        self.account_removals(&rows, |c, n| c.invalidations += n);
        Ok(rows.len() as u64)
    }

    fn account_removals(&self, rows: &[Removed], mut bump: impl FnMut(&mut Counters, u64)) {
        let freed: i64 = rows.iter().map(|r| r.stored_bytes).sum();
        self.subtract_total(freed);
        let mut counters = lock(&self.inner.counters);
        for r in rows {
            bump(
                counters
                    .entry((r.account_id.clone(), r.resource_type.clone()))
                    .or_default(),
                1,
            );
        }
    }
    /// Removes every entry, task and statistic of one account (sign-out).
    pub fn purge_account(&self, account_id: &str) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let ids = entries::ids_where(
            &tx,
            "SELECT id FROM entry_meta WHERE account_id = ?1",
            account_id,
        )?;
        let gone = entries::remove_all(&tx, &ids)?;
        let freed: i64 = gone.iter().map(|r| r.stored_bytes).sum();
        let removed = gone.len();
        tx.execute("DELETE FROM tasks WHERE account_id = ?1", [account_id])?;
        tx.execute("DELETE FROM stats WHERE account_id = ?1", [account_id])?;
        tx.execute(
            "INSERT INTO invalidations (account_id, target, reason, entries_removed, invalidated_at)
             VALUES (?1, '*', 'account removed', ?2, ?3)",
            params![account_id, removed as i64, now_ms()],
        )?;
        tx.commit().map_err(classify)?;
        drop(conn);
        self.subtract_total(freed);
        lock(&self.inner.counters).retain(|(a, _), _| a != account_id);
        Ok(removed as u64)
    }

    /// Removes every cache entry (accounts, tokens and tasks stay).
    pub fn clear(&self) -> Result<u64, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let removed = tx.execute("DELETE FROM entry_meta", [])?;
        tx.execute("DELETE FROM entries", [])?;
        tx.execute("DELETE FROM entry_tags", [])?;
        tx.execute("DELETE FROM entry_access", [])?;
        tx.execute(
            "INSERT INTO invalidations (account_id, target, reason, entries_removed, invalidated_at)
             VALUES (NULL, '*', 'clear', ?1, ?2)",
            params![removed as i64, now_ms()],
        )?;
        tx.commit().map_err(classify)?;
        self.inner.total_bytes.store(0, Ordering::Relaxed);
        lock(&self.inner.access).clear();
        Self::vacuum(&conn)?;
        Ok(removed as u64)
    }

    /// Lowers the known total after removals (no-op while it is unknown).
    fn subtract_total(&self, freed: i64) {
        let _ = self
            .inner
            .total_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t != UNKNOWN_TOTAL).then(|| (t - freed).max(0))
            });
    }

    /// Counts a background refresh for stats.
    pub fn record_refresh(&self, account_id: &str, resource_type: &str) {
        self.count(account_id, resource_type, Counter::Refresh, 1);
    }

    fn count(&self, account_id: &str, resource_type: &str, counter: Counter, n: u64) {
        let mut counters = lock(&self.inner.counters);
        // Look up before allocating: the hot path finds an existing row.
        let row = match counters.get_mut(&(account_id.to_string(), resource_type.to_string())) {
            Some(row) => row,
            None => counters
                .entry((account_id.to_string(), resource_type.to_string()))
                .or_default(),
        };
        match counter {
            Counter::Hit => row.hits += n,
            Counter::StaleHit => row.stale_hits += n,
            Counter::Miss => row.misses += n,
            Counter::Refresh => row.refreshes += n,
            Counter::Write => row.writes += n,
        }
    }

    fn note_access(&self, id: i64) {
        let now = now_ms();
        let granularity = self.inner.config.access_granularity.as_millis() as i64;
        let full = {
            let mut access = lock(&self.inner.access);
            let slot = access.entry(id).or_insert((0, 0));
            // LRU order to the minute: a time already noted recently stands.
            if now - slot.0 >= granularity {
                slot.0 = now;
            }
            slot.1 += 1;
            access.len() >= ACCESS_FLUSH_AT
        };
        if full {
            // Best effort: losing access times only blurs LRU order.
            let _ = self.flush();
        }
    }

    /// Writes pending access times and counter deltas to the file.
    pub fn flush(&self) -> Result<(), StoreError> {
        let access: Vec<(i64, (i64, u64))> = lock(&self.inner.access).drain().collect();
        let counters: Vec<((String, String), Counters)> = lock(&self.inner.counters)
            .drain()
            .filter(|(_, c)| !c.is_zero())
            .collect();
        if access.is_empty() && counters.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        entries::record_reads(&tx, &access)?;
        write_back_counters(&tx, &counters)?;
        tx.commit().map_err(classify)?;
        Ok(())
    }

    /// Removes long-expired entries, enforces the size cap, and returns free
    /// pages to the file system. Call periodically.
    pub fn maintain(&self) -> Result<MaintenanceReport, StoreError> {
        self.flush()?;
        let mut report = MaintenanceReport::default();
        let cutoff = now_ms() - self.inner.config.expired_retention.as_millis() as i64;
        // One pass over the bookkeeping rows, on a reader so that writes go
        // on meanwhile: what to sweep, and the true total (other processes
        // write the same file).
        let (expired, total) = {
            let conn = self.reader();
            let mut stmt =
                conn.prepare_cached("SELECT id, expires_at, stored_bytes FROM entry_meta")?;
            let mut rows = stmt.query([])?;
            let (mut expired, mut total) = (Vec::new(), 0i64);
            while let Some(r) = rows.next()? {
                total += r.get::<_, i64>(2)?;
                if r.get::<_, i64>(1)? < cutoff {
                    expired.push(r.get::<_, i64>(0)?);
                }
            }
            (expired, total)
        };
        let mut conn = self.writer();
        let swept = if expired.is_empty() {
            Vec::new()
        } else {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(classify)?;
            let swept = entries::remove_all(&tx, &expired)?;
            tx.commit().map_err(classify)?;
            swept
        };
        report.swept = swept.len() as u64;
        report.bytes_freed = swept.iter().map(|r| r.stored_bytes as u64).sum();
        let capped = self.enforce_size_cap(&mut conn, Some(total - report.bytes_freed as i64))?;
        report.evicted = capped.evicted;
        report.bytes_freed += capped.bytes_freed;
        report.pages_vacuumed = capped.pages_vacuumed.max(Self::vacuum(&conn)?);
        Ok(report)
    }

    /// At 80 % of the cap: expired entries go first, then the least recently
    /// used, until the total is at 60 %. Then the file shrinks.
    /// `known_total` is the total when the caller just summed it.
    fn enforce_size_cap(
        &self,
        conn: &mut Connection,
        known_total: Option<i64>,
    ) -> Result<MaintenanceReport, StoreError> {
        let config = &self.inner.config;
        let threshold = (config.max_total_bytes as f64 * config.cleanup_threshold) as i64;
        let target = (config.max_total_bytes as f64 * config.cleanup_target) as i64;
        // Other processes write the same file: act on the true total.
        let mut total = match known_total {
            Some(total) => total,
            None => total_stored(conn)?,
        };
        self.inner.total_bytes.store(total, Ordering::Relaxed);
        let mut report = MaintenanceReport::default();
        if total <= threshold {
            return Ok(report);
        }
        // LRU order needs the access times held in memory.
        let access: Vec<(i64, (i64, u64))> = lock(&self.inner.access).drain().collect();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        entries::record_reads(&tx, &access)?;
        let expired = entries::ids_where(
            &tx,
            "SELECT id FROM entry_meta WHERE expires_at < ?1",
            now_ms(),
        )?;
        let mut removed = entries::remove_all(&tx, &expired)?;
        total -= removed.iter().map(|r| r.stored_bytes).sum::<i64>();
        while total > target {
            // Least recently used first. One scan picks about as many as the
            // gap needs (from the average size), so a large eviction does not
            // rescan the table per batch.
            let entries_now: i64 =
                tx.query_row("SELECT count(*) FROM entry_meta", [], |r| r.get(0))?;
            if entries_now == 0 {
                break;
            }
            let average = (total / entries_now).max(1);
            let wanted = ((total - target) / average) * 5 / 4 + 64;
            let candidates = entries::ids_where(
                &tx,
                "SELECT m.id FROM entry_meta m LEFT JOIN entry_access a ON a.id = m.id
                 ORDER BY max(m.written_at, coalesce(a.read_at, 0)) ASC, m.id ASC LIMIT ?1",
                wanted,
            )?;
            if candidates.is_empty() {
                break;
            }
            for id in candidates {
                if total <= target {
                    break;
                }
                if let Some(r) = entries::remove(&tx, id)? {
                    total -= r.stored_bytes;
                    removed.push(r);
                }
            }
        }
        tx.commit().map_err(classify)?;
        report.evicted = removed.len() as u64;
        report.bytes_freed = removed.iter().map(|r| r.stored_bytes as u64).sum();
        self.inner
            .total_bytes
            .store(total.max(0), Ordering::Relaxed);
        {
            let mut counters = lock(&self.inner.counters);
            for r in &removed {
                counters
                    .entry((r.account_id.clone(), r.resource_type.clone()))
                    .or_default()
                    .evictions += 1;
            }
        }
        report.pages_vacuumed = Self::vacuum(conn)?;
        tracing::info!(
            evicted = report.evicted,
            bytes_freed = report.bytes_freed,
            "cache size cap reached; evicted expired then least recently used entries"
        );
        Ok(report)
    }

    /// Returns free pages to the file system and truncates the WAL.
    fn vacuum(conn: &Connection) -> Result<u64, StoreError> {
        let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        if free > 0 {
            // incremental_vacuum frees one page per step: run it to the end.
            let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
        }
        // A busy checkpoint (readers in other processes) is fine; it retries next time.
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(free.max(0) as u64)
    }

    /// The cache-wide counters only (hits, stale hits, misses, refreshes,
    /// writes, invalidations, evictions), including unflushed counts. Reads
    /// the small statistics table, never the entries, so it is cheap enough
    /// to sample; entry counts and sizes are left at zero.
    pub fn counter_totals(&self) -> Result<StatsRow, StoreError> {
        self.flush()?;
        let conn = self.reader();
        let mut total = StatsRow::default();
        let c = conn.query_row(
            "SELECT coalesce(sum(hits), 0), coalesce(sum(stale_hits), 0), coalesce(sum(misses), 0),
                    coalesce(sum(refreshes), 0), coalesce(sum(writes), 0),
                    coalesce(sum(invalidations), 0), coalesce(sum(evictions), 0)
             FROM stats",
            [],
            |r| Counters::from_row(r, 0),
        )?;
        total.add_counters(&c);
        total.finish();
        Ok(total)
    }

    /// Statistics, per account and per resource, including unflushed counts.
    pub fn stats(&self) -> Result<CacheStats, StoreError> {
        self.flush()?;
        let conn = self.reader();
        let mut per_account: HashMap<String, StatsRow> = HashMap::new();
        let mut per_resource: HashMap<String, StatsRow> = HashMap::new();
        let mut total = StatsRow::default();
        {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, resource_type, hits, stale_hits, misses, refreshes, writes, invalidations, evictions FROM stats",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Counters::from_row(r, 2)?,
                ))
            })?;
            for row in rows {
                let (account, resource, c) = row?;
                per_account.entry(account).or_default().add_counters(&c);
                per_resource.entry(resource).or_default().add_counters(&c);
                total.add_counters(&c);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, resource_type, count(*), sum(stored_bytes), sum(raw_bytes)
                 FROM entry_meta GROUP BY account_id, resource_type",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                    r.get::<_, i64>(4)? as u64,
                ))
            })?;
            for row in rows {
                let (account, resource, n, stored, raw) = row?;
                per_account
                    .entry(account)
                    .or_default()
                    .add_sizes(n, stored, raw);
                per_resource
                    .entry(resource)
                    .or_default()
                    .add_sizes(n, stored, raw);
                total.add_sizes(n, stored, raw);
            }
        }
        let tasks_pending: i64 = conn.query_row(
            "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running')",
            [],
            |r| r.get(0),
        )?;
        drop(conn);
        total.finish();
        let finish = |map: HashMap<String, StatsRow>| {
            let mut v: Vec<(String, StatsRow)> = map
                .into_iter()
                .map(|(k, mut row)| {
                    row.finish();
                    (k, row)
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let file_bytes = std::iter::once(self.path().to_path_buf())
            .chain(db::companions(self.path()))
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        Ok(CacheStats {
            compression_ratio: if total.stored_bytes > 0 {
                total.raw_bytes as f64 / total.stored_bytes as f64
            } else {
                1.0
            },
            total,
            per_account: finish(per_account),
            per_resource: finish(per_resource),
            max_total_bytes: self.inner.config.max_total_bytes,
            file_bytes,
            tasks_pending: tasks_pending as u64,
        })
    }

    /// `PRAGMA integrity_check` (`ok` when the file is healthy).
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(db::integrity_check(&self.writer())?)
    }

    /// Row counts of every table (reports, migration checks).
    pub fn table_row_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(db::table_row_counts(&self.writer())?)
    }

    /// Runs `f` with the writer connection inside an IMMEDIATE transaction.
    pub(crate) fn write_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(classify)?;
        let out = f(&tx)?;
        tx.commit().map_err(classify)?;
        Ok(out)
    }

    /// Runs `f` with a reader connection.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&self.reader())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Write back what is only in memory; a failure here loses counters,
        // never entries.
        let access: Vec<(i64, (i64, u64))> = lock(&self.access).drain().collect();
        let counters: Vec<((String, String), Counters)> = lock(&self.counters).drain().collect();
        let conn = lock(&self.writer);
        let _ = (|| -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            entries::record_reads(&tx, &access)?;
            write_back_counters(&tx, &counters)?;
            tx.commit()
        })();
    }
}

/// Adds counter deltas kept in memory to the stats table.
fn write_back_counters(
    tx: &rusqlite::Transaction<'_>,
    counters: &[((String, String), Counters)],
) -> rusqlite::Result<()> {
    let mut add = tx.prepare_cached(
        "INSERT INTO stats (account_id, resource_type, hits, stale_hits, misses, refreshes, writes, invalidations, evictions)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT(account_id, resource_type) DO UPDATE SET
            hits = hits + excluded.hits, stale_hits = stale_hits + excluded.stale_hits,
            misses = misses + excluded.misses, refreshes = refreshes + excluded.refreshes,
            writes = writes + excluded.writes, invalidations = invalidations + excluded.invalidations,
            evictions = evictions + excluded.evictions",
    )?;
    for ((account, resource), c) in counters {
        add.execute(params![
            account,
            resource,
            c.hits as i64,
            c.stale_hits as i64,
            c.misses as i64,
            c.refreshes as i64,
            c.writes as i64,
            c.invalidations as i64,
            c.evictions as i64
        ])?;
    }
    Ok(())
}

/// Payload bytes held (as stored), from the bookkeeping rows.
fn total_stored(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(stored_bytes), 0) FROM entry_meta",
        [],
        |r| r.get(0),
    )?)
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

/// Turns a pattern where only `*` is a wildcard into a SQLite GLOB pattern.
fn glob_from_star_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    for c in pattern.chars() {
        match c {
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_params_ignore_key_order() {
        let a = EntryKey::new(
            "acct",
            "email_list",
            &json!({"folder": "inbox", "limit": 50, "x": {"b": 1, "a": 2}}),
        );
        let b = EntryKey::new(
            "acct",
            "email_list",
            &json!({"x": {"a": 2, "b": 1}, "limit": 50, "folder": "inbox"}),
        );
        assert_eq!(a, b);
        let c = EntryKey::new(
            "acct",
            "email_list",
            &json!({"folder": "inbox", "limit": 51}),
        );
        assert_ne!(a.as_str(), c.as_str());
        let other_account = EntryKey::new(
            "acct2",
            "email_list",
            &json!({"folder": "inbox", "limit": 50, "x": {"b": 1, "a": 2}}),
        );
        assert_ne!(a.as_str(), other_account.as_str());
        assert!(a.as_str().starts_with("email_list:acct:"));
    }

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(
            StoreConfig::new(dir.path().join("cache.db")),
            CacheKey::generate(),
            None,
        )
        .unwrap();
        (dir, store)
    }

    fn row_count(store: &Store, table: &str) -> u64 {
        store
            .table_row_counts()
            .unwrap()
            .into_iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| n)
            .unwrap()
    }

    #[test]
    fn a_row_id_collision_is_a_miss_and_the_next_write_replaces_it_whole() {
        let (_dir, store) = temp_store();
        let key = EntryKey::new("acct", "email_get", &json!({"email_id": "m1"}));
        // Another key whose digest shares the first 8 bytes (the row id).
        let mut other = key.digest;
        other[15] ^= 0xff;
        let tags = entries::entry_tag_ids("acct", "email_get", &["item:other".to_string()]);
        store
            .write_tx(|tx| {
                entries::put(
                    tx,
                    &NewEntry {
                        key_hash: &other,
                        account_id: "acct",
                        resource_type: "email_get",
                        tag_ids: &tags,
                        encoding: ENCODING_RAW,
                        stored: b"someone else's payload",
                        raw_bytes: 22,
                        created_at: now_ms(),
                        fresh_until: now_ms() + 60_000,
                        expires_at: now_ms() + 120_000,
                    },
                )?;
                Ok(())
            })
            .unwrap();
        assert!(
            store.get(&key).unwrap().is_none(),
            "never the other key's payload"
        );
        assert!(store.freshness(&key).unwrap().is_none());

        store.set(&key, &Dependencies::item("m1"), b"mine").unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().payload, b"mine");
        // The replaced entry's tags went with it: only m1's and the resource tag remain.
        assert_eq!(row_count(&store, "entry_tags"), 2);
        let gone = store
            .invalidate(
                &[Invalidation::new(
                    "acct",
                    "email_get",
                    Scope::Item("other".into()),
                )],
                "test",
            )
            .unwrap();
        assert_eq!(gone, 0);
        assert_eq!(store.stats().unwrap().total.stored_bytes, 4);
    }

    #[test]
    fn rewriting_an_entry_with_other_dependencies_moves_its_tags() {
        let (_dir, store) = temp_store();
        let key = EntryKey::new("acct", "email_list", &json!({"folder": "inbox"}));
        store
            .set(
                &key,
                &Dependencies::container("inbox").with_items(["a", "b"]),
                b"1",
            )
            .unwrap();
        assert_eq!(row_count(&store, "entry_tags"), 4);
        store
            .set(
                &key,
                &Dependencies::container("inbox").with_items(["c"]),
                b"2",
            )
            .unwrap();
        assert_eq!(row_count(&store, "entry_tags"), 3);
        let item = |id: &str| Invalidation::new("acct", "email_list", Scope::Item(id.into()));
        assert_eq!(store.invalidate(&[item("a")], "test").unwrap(), 0);
        assert_eq!(store.invalidate(&[item("c")], "test").unwrap(), 1);
        assert_eq!(row_count(&store, "entry_tags"), 0);
        assert_eq!(row_count(&store, "entry_meta"), 0);
        assert_eq!(row_count(&store, "entries"), 0);
    }

    #[test]
    fn glob_escaping_keeps_only_star_wild() {
        assert_eq!(glob_from_star_pattern("email_list:*"), "email_list:*");
        assert_eq!(glob_from_star_pattern("a?b[c"), "a[?]b[[]c");
    }
}
