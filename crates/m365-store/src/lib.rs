//! The encrypted store of m365-mcp: response cache, task queue, accounts and
//! refresh tokens in one SQLCipher 4 file, and the key manager that finds or
//! creates its key.
//!
//! Nothing in this crate knows about Graph or MCP: it stores bytes under
//! keys with a lifetime, and answers what is fresh, stale or expired.
//!
//! ```no_run
//! use m365_store::{Dependencies, EntryKey, KeyManager, Paths, StoreConfig, open_encrypted};
//!
//! let paths = Paths::from_env()?;
//! let keys = paths.key_manager();
//! let opened = open_encrypted(StoreConfig::new(&paths.db_path), &keys)?;
//! let key = EntryKey::new("oid.tid", "email_list", &serde_json::json!({"folder": "inbox", "limit": 50}));
//! opened.store.set(&key, &Dependencies::container("inbox"), br#"{"value":[]}"#)?;
//! let hit = opened.store.get(&key)?.expect("just stored");
//! assert_eq!(hit.payload, br#"{"value":[]}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accounts;
mod db;
mod entries;
mod error;
mod key;
mod policy;
mod store;
mod tasks;

use std::path::{Path, PathBuf};

pub use accounts::AccountRecord;
pub use db::{OpenOutcome, SCHEMA_VERSION};
pub use error::{KeyError, StoreError};
pub use key::{
    CacheKey, DEFAULT_KEYRING_SERVICE, ENV_KEY, ENV_KEYRING_SERVICE, KEYRING_PENDING_USER,
    KEYRING_USER, KeyManager, KeySource, KeyringBackend, KeyringRead, LoadedKey, OsKeyring,
};
pub use policy::{DEFAULT_POLICY, POLICIES, TtlPolicy, policy_for};
pub use store::{
    CacheStats, CachedEntry, Dependencies, EntryKey, Freshness, Invalidation, MaintenanceReport,
    Scope, StatsRow, Store, StoreConfig, now_ms, write_canonical,
};
pub use tasks::{Enqueued, NewTask, Task, TaskStatus};

/// Where the server keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Data directory (`M365_MCP_DATA_DIR`, else the platform data dir + `m365-mcp`).
    pub data_dir: PathBuf,
    /// The cache database (`M365_MCP_CACHE_DB_PATH`, else `<data_dir>/cache.db`).
    pub db_path: PathBuf,
}

impl Paths {
    /// Resolves the paths from the environment.
    pub fn from_env() -> Result<Self, StoreError> {
        let data_dir = match std::env::var_os("M365_MCP_DATA_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => dirs::data_dir()
                .or_else(|| dirs::home_dir().map(|h| h.join(".local").join("share")))
                .ok_or_else(|| {
                    StoreError::InvalidArgument(
                        "no data directory could be determined; set M365_MCP_DATA_DIR".into(),
                    )
                })?
                .join("m365-mcp"),
        };
        let db_path = std::env::var_os("M365_MCP_CACHE_DB_PATH")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("cache.db"));
        Ok(Paths { data_dir, db_path })
    }

    /// Paths rooted at one directory (tests, embedding).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        let data_dir = dir.into();
        Paths {
            db_path: data_dir.join("cache.db"),
            data_dir,
        }
    }

    /// The key file used when no keyring is reachable.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("cache.key")
    }

    /// The encrypted file holding accounts and refresh tokens.
    pub fn accounts_db(&self) -> PathBuf {
        self.data_dir.join("accounts.db")
    }

    /// Every file encrypted with the cache key: the accounts file and the
    /// cache.
    pub fn encrypted_files(&self) -> Vec<PathBuf> {
        vec![self.accounts_db(), self.db_path.clone()]
    }

    /// The key manager for these files, configured from the environment.
    pub fn key_manager(&self) -> KeyManager {
        KeyManager::from_env(self.key_file(), self.encrypted_files())
    }
}

/// Why the encrypted store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The key could not be found or made.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The file could not be opened or created.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An opened store and how it came to be.
#[derive(Debug)]
pub struct Opened {
    /// The store.
    pub store: Store,
    /// What opening found (created, moved aside, migrated …).
    pub outcome: OpenOutcome,
    /// Where the key lives.
    pub key_source: KeySource,
    /// True when the key was generated now.
    pub key_created: bool,
}

/// Finds the key (see [`KeyManager`]) and opens the store with it, finishing
/// a rotation that a crash interrupted (see [`rotate_key`]).
pub fn open_encrypted(config: StoreConfig, keys: &KeyManager) -> Result<Opened, OpenError> {
    let mut loaded = keys.load_or_create()?;
    let mut finished_rotation = false;
    if let Some(pending) = keys.pending_key(&loaded.source)? {
        finish_rotation(keys, &loaded, &pending, &config.path)?;
        loaded.key = pending;
        finished_rotation = true;
    }
    let (store, mut outcome) = Store::open(config, loaded.key.clone(), None)?;
    if finished_rotation && outcome == (OpenOutcome::Opened { created: false }) {
        outcome = OpenOutcome::OpenedWithPendingKey;
    }
    Ok(Opened {
        store,
        outcome,
        key_source: loaded.source,
        key_created: loaded.created,
    })
}

/// Rolls an interrupted rotation forward: every file the key encrypts (and
/// `also`) that still opens with the current key is re-keyed to the pending
/// one, then the pending key becomes the key. A file that opens with
/// neither is left for [`Store::open`] to move aside. If a re-key fails the
/// pending key stays, so the next open tries again.
fn finish_rotation(
    keys: &KeyManager,
    loaded: &LoadedKey,
    pending: &CacheKey,
    also: &Path,
) -> Result<(), OpenError> {
    let mut files: Vec<&Path> = keys.files().iter().map(PathBuf::as_path).collect();
    if !files.contains(&also) {
        files.push(also);
    }
    for file in files.into_iter().filter(|f| f.exists()) {
        if !db::opens_with(file, pending) && db::opens_with(file, &loaded.key) {
            db::rekey(file, &loaded.key, pending)?;
        }
    }
    keys.commit_rotation(&loaded.source, pending)?;
    tracing::warn!("finished a key rotation that was interrupted before the new key was stored");
    Ok(())
}

/// Replaces the key of every file it encrypts ([`KeyManager::files`]; no
/// process may have them open) and stores the new key where the old one
/// was. Crash-safe: the new key is stored as pending before any file is
/// re-keyed, and [`open_encrypted`] rolls an interrupted rotation forward.
/// A re-key that fails (a file in use, a full disk) puts the files already
/// re-keyed back on the old key and drops the pending one.
pub fn rotate_key(keys: &KeyManager) -> Result<Rotation, OpenError> {
    let loaded = keys.load_or_create()?;
    if loaded.source == KeySource::Environment {
        return Err(KeyError::KeyFromEnvironment.into());
    }
    let files: Vec<PathBuf> = keys
        .files()
        .iter()
        .filter(|f| f.exists())
        .cloned()
        .collect();
    if files.is_empty() {
        return Err(
            StoreError::InvalidArgument("there is no encrypted file to rotate".into()).into(),
        );
    }
    if let Some(unreadable) = files.iter().find(|f| !db::opens_with(f, &loaded.key)) {
        return Err(StoreError::Unreadable {
            path: unreadable.to_path_buf(),
        }
        .into());
    }
    let new = CacheKey::generate();
    keys.begin_rotation(&loaded.source, &new)?;
    for (done, file) in files.iter().enumerate() {
        if let Err(e) = db::rekey(file, &loaded.key, &new) {
            for back in &files[..done] {
                if let Err(undo) = db::rekey(back, &new, &loaded.key) {
                    // Keep the pending key: the next open rolls forward.
                    tracing::error!(path = %back.display(), error = %undo, "a re-keyed file could not be put back on the old key; the next start finishes the rotation");
                    return Err(e.into());
                }
            }
            keys.abort_rotation(&loaded.source);
            return Err(e.into());
        }
    }
    keys.commit_rotation(&loaded.source, &new)?;
    Ok(Rotation {
        source: loaded.source,
        files,
    })
}

/// What [`rotate_key`] did.
#[derive(Debug)]
pub struct Rotation {
    /// Where the new key is stored (where the old one was).
    pub source: KeySource,
    /// The files re-encrypted with it.
    pub files: Vec<PathBuf>,
}

/// Encrypts the plain SQLite database at `plain` in place with the cache key
/// (verifying row counts before the plain file goes). Returns rows copied.
pub fn migrate_plain_file(plain: &Path, keys: &KeyManager) -> Result<u64, OpenError> {
    if !db::is_plain_sqlite(plain) {
        return Err(StoreError::InvalidArgument(format!(
            "{} is not a plain SQLite database (already encrypted, or not a database)",
            plain.display()
        ))
        .into());
    }
    let loaded = keys.load_or_create()?;
    Ok(db::encrypt_in_place(plain, &loaded.key)?)
}

/// True when `path` opens with `key` (used to prove a file is unreadable without it).
pub fn opens_with_key(path: &Path, key: &CacheKey) -> bool {
    db::opens_with(path, key)
}

/// True when `path` is a plain (unencrypted) SQLite file.
pub fn is_plain_sqlite(path: &Path) -> bool {
    db::is_plain_sqlite(path)
}
