//! Opening the SQLCipher file: keying, settings, schema migrations, and what
//! happens when the file cannot be read.
//!
//! Invariants:
//! - every connection is keyed before any other statement runs;
//! - a file that does not open with the key is never deleted: a plain SQLite
//!   file is migrated into an encrypted one, anything else is moved aside
//!   with a timestamp;
//! - the key is passed to SQLCipher only as a raw-key literal and never
//!   formatted into anything that is logged or returned.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{StoreError, classify, sqlite_code};
use crate::key::CacheKey;

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

/// The first 16 bytes of every plain SQLite database.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether connections are encrypted. Plain exists only so benchmarks can
/// measure what encryption costs; nothing in the product opens a plain store.
#[derive(Clone)]
pub(crate) enum Cipher {
    /// SQLCipher with this raw key.
    Key(CacheKey),
    /// No encryption (benchmark baseline only).
    Plain,
}

/// What opening found, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The file opened with the key (or was created).
    Opened {
        /// True when the file did not exist before.
        created: bool,
    },
    /// The file did not open with the key and was not plain SQLite: it was
    /// moved aside and a new cache was created.
    MovedAside {
        /// Where the unreadable file now is.
        moved_to: PathBuf,
    },
    /// A plain SQLite file was found and encrypted in place.
    MigratedFromPlain {
        /// Rows copied, over all tables.
        rows: u64,
    },
    /// The file opened with a key left by an interrupted rotation; the caller
    /// must finish storing that key.
    OpenedWithPendingKey,
}

/// Connection settings shared by the writer and the readers.
pub(crate) fn configure(
    conn: &Connection,
    cipher: &Cipher,
    cache_kib: i64,
) -> rusqlite::Result<()> {
    silence_sqlcipher_log(conn);
    if let Cipher::Key(key) = cipher {
        // PRAGMA key cannot take a bound parameter; the literal is built in a
        // zeroizing buffer and never leaves this function.
        conn.execute_batch(&format!(
            "PRAGMA key = {};",
            key.sqlcipher_literal().as_str()
        ))?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Reading the schema is the first access that needs the key; a wrong key
    // or a corrupt header fails here rather than in the middle of a query.
    let objects = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    if objects == 0 {
        // Only a new, empty file can choose auto_vacuum, and only before
        // anything (even the switch to WAL) writes its header.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// SQLCipher writes its own diagnostics (e.g. "hmac check failed") to
/// stderr; we report those conditions ourselves, in words a user can act on.
fn silence_sqlcipher_log(conn: &Connection) {
    let _ = conn.execute_batch("PRAGMA cipher_log_level = NONE;");
}

/// Opens one connection with the given cipher.
pub(crate) fn open_connection(
    path: &Path,
    cipher: &Cipher,
    cache_kib: i64,
) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    configure(&conn, cipher, cache_kib).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match sqlite_code(&e) {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Unreadable {
                path: path.to_path_buf(),
            }
        }
        Some(rusqlite::ErrorCode::CannotOpen)
        | Some(rusqlite::ErrorCode::ReadOnly)
        | Some(rusqlite::ErrorCode::PermissionDenied) => StoreError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "cannot open or write the cache file (read-only or missing directory?)",
            ),
        ),
        _ => classify(e),
    }
}

/// True when the file starts with the plain SQLite header.
pub(crate) fn is_plain_sqlite(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map(|_| &header == PLAIN_HEADER)
        .unwrap_or(false)
}

/// The companion files SQLite keeps beside a database in WAL mode.
pub(crate) fn companions(path: &Path) -> [PathBuf; 2] {
    let with = |suffix: &str| {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [with("-wal"), with("-shm")]
}

/// UTC timestamp for file names, e.g. `20261127T172200Z`.
pub(crate) fn file_timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.format(&format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Moves the database and its -wal/-shm aside as
/// `<name>.unreadable-<UTC timestamp>` (`-wal`/`-shm` appended), so the set
/// can still be opened together with the right key. Returns the new path.
pub(crate) fn move_aside(path: &Path) -> Result<PathBuf, StoreError> {
    let stamp = file_timestamp();
    let mut base = path.as_os_str().to_os_string();
    base.push(format!(".unreadable-{stamp}"));
    let mut target = PathBuf::from(&base);
    let mut n = 1;
    while target.exists() {
        let mut alt = base.clone();
        alt.push(format!(".{n}"));
        target = PathBuf::from(alt);
        n += 1;
    }
    std::fs::rename(path, &target).map_err(|e| StoreError::io(path, e))?;
    for (from, suffix) in companions(path).iter().zip(["-wal", "-shm"]) {
        if from.exists() {
            let mut to = target.as_os_str().to_os_string();
            to.push(suffix);
            std::fs::rename(from, PathBuf::from(to)).map_err(|e| StoreError::io(from, e))?;
        }
    }
    Ok(target)
}

/// Applies the schema migrations up to [`SCHEMA_VERSION`], each in its own
/// transaction, recording the version in `PRAGMA user_version`.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (target, step) in MIGRATIONS
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64 + 1, s))
    {
        if target <= version {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if now < target {
            match step {
                Migration::Sql(sql) => tx.execute_batch(sql)?,
                Migration::Code(f) => f(&tx)?,
            }
            tx.pragma_update(None, "user_version", target)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// One schema step: plain SQL, or code where rows must be recomputed.
enum Migration {
    Sql(&'static str),
    Code(fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>),
}

/// Version 2: entries move to the layout in `entries.rs` (row id from the
/// key digest, payload apart from bookkeeping, hashed tags, no secondary
/// index to maintain per write). Every entry is carried over with its
/// lifetimes, access time, hits and tags.
fn to_v2(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    use crate::entries;
    tx.execute_batch(
        "ALTER TABLE entry_tags RENAME TO entry_tags_v1;
         ALTER TABLE entries RENAME TO entries_v1;",
    )?;
    tx.execute_batch(entries::CREATE_TABLES)?;
    {
        let mut rows = tx.prepare(
            "SELECT id, account_id, resource_type, params_json, payload, encoding, raw_bytes,
                    created_at, fresh_until, expires_at, accessed_at, hit_count
             FROM entries_v1",
        )?;
        let mut tags_of = tx.prepare("SELECT tag FROM entry_tags_v1 WHERE entry_id = ?1")?;
        let mut cursor = rows.query([])?;
        while let Some(r) = cursor.next()? {
            let account_id: String = r.get(1)?;
            let resource_type: String = r.get(2)?;
            let params_json: String = r.get(3)?;
            let id: i64 = r.get(0)?;
            let stored: Vec<u8> = r.get(4)?;
            let tags: Vec<String> = tags_of
                .query_map([id], |t| t.get(0))?
                .collect::<Result<_, _>>()?;
            let key_hash = entries::key_digest(&resource_type, &account_id, &params_json);
            let tag_ids = entries::entry_tag_ids(&account_id, &resource_type, &tags);
            entries::put(
                tx,
                &entries::NewEntry {
                    key_hash: &key_hash,
                    account_id: &account_id,
                    resource_type: &resource_type,
                    tag_ids: &tag_ids,
                    encoding: r.get(5)?,
                    stored: &stored,
                    raw_bytes: r.get(6)?,
                    created_at: r.get(7)?,
                    fresh_until: r.get(8)?,
                    expires_at: r.get(9)?,
                },
            )?;
            // v1 kept one access time for reads and writes; keep it as a
            // read when the entry was read.
            let (accessed_at, hits): (i64, i64) = (r.get(10)?, r.get(11)?);
            if hits > 0 {
                entries::record_reads(
                    tx,
                    &[(entries::row_id(&key_hash), (accessed_at, hits as u64))],
                )?;
            }
        }
    }
    tx.execute_batch(
        "DROP TABLE entry_tags_v1;
         DROP TABLE entries_v1;",
    )
}

/// Schema migrations, in order; entry `i` moves the schema to version `i + 1`.
/// Table names differ from the Python server's, so a file that held its
/// tables keeps them untouched beside ours.
const MIGRATIONS: &[Migration] = &[Migration::Sql(V1), Migration::Code(to_v2)];

/// Version 1: the first layout.
const V1: &str = r#"
CREATE TABLE entries (
    id            INTEGER PRIMARY KEY,
    cache_key     TEXT    NOT NULL UNIQUE,
    account_id    TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    params_json   TEXT    NOT NULL,
    payload       BLOB    NOT NULL,
    encoding      INTEGER NOT NULL,
    stored_bytes  INTEGER NOT NULL,
    raw_bytes     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    fresh_until   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    accessed_at   INTEGER NOT NULL,
    hit_count     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX entries_account_resource ON entries(account_id, resource_type);
CREATE INDEX entries_expires ON entries(expires_at);
CREATE INDEX entries_accessed ON entries(accessed_at);
-- Lets the size total be summed from a small covering index, not the payload pages.
CREATE INDEX entries_size ON entries(stored_bytes);

-- The ids an entry depends on (the item it shows, the items it lists, the
-- container it lists), so a write removes exactly the entries it changed.
CREATE TABLE entry_tags (
    entry_id   INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    account_id TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    PRIMARY KEY (entry_id, tag)
) WITHOUT ROWID;
CREATE INDEX entry_tags_lookup ON entry_tags(account_id, tag);

CREATE TABLE stats (
    account_id     TEXT    NOT NULL,
    resource_type  TEXT    NOT NULL,
    hits           INTEGER NOT NULL DEFAULT 0,
    stale_hits     INTEGER NOT NULL DEFAULT 0,
    misses         INTEGER NOT NULL DEFAULT 0,
    refreshes      INTEGER NOT NULL DEFAULT 0,
    writes         INTEGER NOT NULL DEFAULT 0,
    invalidations  INTEGER NOT NULL DEFAULT 0,
    evictions      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, resource_type)
) WITHOUT ROWID;

CREATE TABLE tasks (
    task_id       TEXT    PRIMARY KEY,
    account_id    TEXT    NOT NULL,
    operation     TEXT    NOT NULL,
    params_json   TEXT    NOT NULL,
    dedupe_key    TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled')),
    priority      INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    last_error    TEXT,
    result_json   TEXT,
    created_at    INTEGER NOT NULL,
    run_after     INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE INDEX tasks_claim ON tasks(status, priority, run_after, created_at);
CREATE INDEX tasks_dedupe ON tasks(dedupe_key, status);
CREATE INDEX tasks_account ON tasks(account_id);

CREATE TABLE invalidations (
    id              INTEGER PRIMARY KEY,
    account_id      TEXT,
    target          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    entries_removed INTEGER NOT NULL,
    invalidated_at  INTEGER NOT NULL
);
CREATE INDEX invalidations_time ON invalidations(invalidated_at);

CREATE TABLE accounts (
    account_id    TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL,
    display_name  TEXT,
    tenant_id     TEXT    NOT NULL,
    account_type  TEXT    NOT NULL,
    refresh_token TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_username ON accounts(username COLLATE NOCASE);
"#;

/// Encrypts the plain SQLite database at `plain` into a new file `target`
/// keyed with `key`, then verifies the copy (row counts of every table and
/// `integrity_check`). The plain file is not touched. Returns rows copied.
pub(crate) fn export_plain(plain: &Path, target: &Path, key: &CacheKey) -> Result<u64, StoreError> {
    if target.exists() {
        std::fs::remove_file(target).map_err(|e| StoreError::io(target, e))?;
    }
    // CREATE is needed for the attached target, which inherits these flags.
    let conn = Connection::open_with_flags(
        plain,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(|e| open_error(plain, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let tables = table_names(&conn)?;
    let mut expected = Vec::with_capacity(tables.len());
    for table in &tables {
        expected.push((table.clone(), count_rows(&conn, "main", table)?));
    }
    let user_version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;

    let literal = key.sqlcipher_literal();
    let target_str = target
        .to_str()
        .ok_or_else(|| StoreError::InvalidArgument("the target path is not valid UTF-8".into()))?;
    // KEY takes the raw-key literal; the path is a bound parameter.
    let raw_key: &str = literal.trim_matches('"');
    conn.execute(
        "ATTACH DATABASE ?1 AS encrypted KEY ?2",
        rusqlite::params![target_str, raw_key],
    )?;
    let exported = (|| -> Result<(), StoreError> {
        conn.execute_batch("PRAGMA encrypted.auto_vacuum = INCREMENTAL;")?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
        conn.pragma_update(Some("encrypted"), "user_version", user_version)?;
        Ok(())
    })();
    let detached = conn.execute_batch("DETACH DATABASE encrypted;");
    exported?;
    detached?;
    drop(conn);

    // Verify through a fresh connection that only has the key.
    let check = open_connection(target, &Cipher::Key(key.clone()), 2048)?;
    let mut copied = 0u64;
    for (table, rows) in &expected {
        let found = count_rows(&check, "main", table)?;
        if found != *rows {
            let _ = std::fs::remove_file(target);
            return Err(StoreError::MigrationVerification {
                path: plain.to_path_buf(),
                reason: format!(
                    "table {table} has {found} rows in the copy, {rows} in the original"
                ),
            });
        }
        copied += *rows;
    }
    let integrity: String = check.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    // Leave the copy as a single file (no WAL) so it can be renamed safely.
    check.pragma_update(None, "journal_mode", "DELETE")?;
    drop(check);
    if integrity != "ok" {
        let _ = std::fs::remove_file(target);
        return Err(StoreError::MigrationVerification {
            path: plain.to_path_buf(),
            reason: format!("integrity check of the copy: {integrity}"),
        });
    }
    Ok(copied)
}

/// Encrypts a plain database in place: exports, verifies, then replaces the
/// plain file by the encrypted copy. The plain file disappears only after the
/// copy verified.
pub(crate) fn encrypt_in_place(path: &Path, key: &CacheKey) -> Result<u64, StoreError> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".migrating");
    let staging = PathBuf::from(name);
    let rows = export_plain(path, &staging, key)?;
    // The plain connection closed (checkpointing its WAL); any -wal/-shm
    // left are the plain file's and must not meet the encrypted one.
    for companion in companions(path) {
        if companion.exists() {
            std::fs::remove_file(&companion).map_err(|e| StoreError::io(&companion, e))?;
        }
    }
    std::fs::rename(&staging, path).map_err(|e| StoreError::io(path, e))?;
    Ok(rows)
}

/// Re-keys the database at `path` from `old` to `new` (`PRAGMA rekey`). The
/// file must not be open elsewhere.
pub(crate) fn rekey(path: &Path, old: &CacheKey, new: &CacheKey) -> Result<(), StoreError> {
    let conn = open_connection(path, &Cipher::Key(old.clone()), 2048)?;
    // Re-keying rewrites every page; do it in rollback-journal mode so the
    // whole file changes under one journal, then return to WAL. Leaving WAL
    // needs the only connection to the file: while another process has it
    // open SQLite keeps WAL (or reports it busy), and a re-key under that
    // process would leave it reading pages it can no longer decrypt.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(|e| match sqlite_code(&e) {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                in_use(path)
            }
            _ => StoreError::from(e),
        })?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(in_use(path));
    }
    conn.execute_batch(&format!(
        "PRAGMA rekey = {};",
        new.sqlcipher_literal().as_str()
    ))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    drop(conn);
    Ok(())
}

fn in_use(path: &Path) -> StoreError {
    StoreError::InUse {
        path: path.to_path_buf(),
    }
}

/// Tries to open `path` with `key`; true when the schema reads.
pub(crate) fn opens_with(path: &Path, key: &CacheKey) -> bool {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let Ok(conn) = Connection::open_with_flags(path, flags) else {
        return false;
    };
    silence_sqlcipher_log(&conn);
    conn.execute_batch(&format!(
        "PRAGMA key = {};",
        key.sqlcipher_literal().as_str()
    ))
    .and_then(|_| {
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
    })
    .is_ok()
}

fn table_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(names)
}

fn count_rows(conn: &Connection, schema: &str, table: &str) -> rusqlite::Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM \"{}\".\"{}\"",
        schema.replace('"', "\"\""),
        table.replace('"', "\"\"")
    );
    conn.query_row(&sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Row counts of every table (for reports and migration checks).
pub(crate) fn table_row_counts(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for table in table_names(conn)? {
        let n = count_rows(conn, "main", &table)?;
        out.push((table, n));
    }
    Ok(out)
}

/// `PRAGMA integrity_check`'s first line (`ok` when healthy).
pub(crate) fn integrity_check(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
}

/// The SQLCipher version string, or None on a plain build.
pub(crate) fn cipher_version(conn: &Connection) -> Option<String> {
    conn.query_row("PRAGMA cipher_version", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dependencies, EntryKey, Freshness, Invalidation, Scope, Store, StoreConfig};

    /// A file as version 1 wrote it: one list entry with three tags, one
    /// single-item entry, a stats row.
    fn write_v1(path: &Path, key: &CacheKey, now: i64) {
        let conn = open_connection(path, &Cipher::Key(key.clone()), 2048).unwrap();
        conn.execute_batch(V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        let list = EntryKey::new(
            "acct",
            "email_list",
            &serde_json::json!({"folder": "inbox"}),
        );
        let get = EntryKey::new("acct", "email_get", &serde_json::json!({"email_id": "m1"}));
        for (id, k, payload, accessed) in [
            (1, &list, "list-payload", now - 5_000),
            (2, &get, "get-payload", now - 1_000),
        ] {
            conn.execute(
                "INSERT INTO entries (id, cache_key, account_id, resource_type, params_json, payload,
                                      encoding, stored_bytes, raw_bytes, created_at, fresh_until,
                                      expires_at, accessed_at, hit_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7, ?8, ?9, ?10, ?11, 3)",
                rusqlite::params![
                    id,
                    k.as_str(),
                    k.account_id(),
                    k.resource_type(),
                    k.params_json(),
                    payload.as_bytes(),
                    payload.len() as i64,
                    now - 10_000,
                    now + 600_000,
                    now + 3_600_000,
                    accessed
                ],
            )
            .unwrap();
        }
        for (entry, tag) in [
            (1, "container:inbox"),
            (1, "item:m1"),
            (1, "item:m2"),
            (2, "item:m1"),
        ] {
            conn.execute(
                "INSERT INTO entry_tags (entry_id, account_id, tag) VALUES (?1, 'acct', ?2)",
                rusqlite::params![entry, tag],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO stats (account_id, resource_type, hits) VALUES ('acct', 'email_list', 7)",
            [],
        )
        .unwrap();
    }

    #[test]
    fn a_version_1_file_migrates_with_its_entries_tags_and_stats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.db");
        let key = CacheKey::generate();
        let now = crate::now_ms();
        write_v1(&path, &key, now);

        let (store, outcome) = Store::open(StoreConfig::new(&path), key, None).unwrap();
        assert_eq!(outcome, OpenOutcome::Opened { created: false });
        let tables: Vec<String> = store
            .table_row_counts()
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert!(!tables.iter().any(|t| t.ends_with("_v1")), "{tables:?}");

        let list = EntryKey::new(
            "acct",
            "email_list",
            &serde_json::json!({"folder": "inbox"}),
        );
        let get = EntryKey::new("acct", "email_get", &serde_json::json!({"email_id": "m1"}));
        let hit = store.get(&list).unwrap().unwrap();
        assert_eq!(hit.payload, b"list-payload");
        assert_eq!(hit.freshness, Freshness::Fresh);
        assert_eq!(hit.created_at_ms, now - 10_000);
        assert_eq!(store.get(&get).unwrap().unwrap().payload, b"get-payload");
        let stats = store.stats().unwrap();
        assert_eq!(stats.total.entries, 2);
        assert_eq!(stats.total.hits, 7 + 2);

        // The tags came along: m2 is only in the list.
        let item = |r: &str, id: &str| Invalidation::new("acct", r, Scope::Item(id.into()));
        assert_eq!(
            store.invalidate(&[item("email_get", "m2")], "t").unwrap(),
            0
        );
        assert_eq!(
            store.invalidate(&[item("email_list", "m2")], "t").unwrap(),
            1
        );
        assert!(store.get(&list).unwrap().is_none());
        assert!(store.get(&get).unwrap().is_some());
        // And the resource tag was added to migrated entries.
        let all = Invalidation::new("acct", "email_get", Scope::All);
        assert_eq!(store.invalidate(&[all], "t").unwrap(), 1);
        store
            .set(&get, &Dependencies::item("m1"), b"again")
            .unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
}
