//! Typed errors of the store and the key manager.
//!
//! Invariant: no variant carries key material, tokens or cached payloads, so
//! any of them may be logged or shown to a user as they are.

use std::path::PathBuf;

/// Errors from opening or using the encrypted store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite/SQLCipher reported an error. The message is SQLite's, which
    /// never contains bound values.
    #[error("cache database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The file system refused an operation on the database or its directory.
    #[error("cache file error at {path}: {source}")]
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The disk (or the configured page limit) is full.
    #[error(
        "the cache database is full (disk full or size limit reached); the server keeps answering from Graph"
    )]
    Full,

    /// The entry is larger than the per-entry cap, so it was not stored.
    #[error("cache entry of {size} bytes exceeds the {limit}-byte entry limit; it was not cached")]
    EntryTooLarge {
        /// Stored size of the refused entry, after compression.
        size: usize,
        /// The configured cap.
        limit: usize,
    },

    /// The file could not be decrypted with the key we hold: wrong key or a
    /// corrupt file. Opening handles this by moving the file aside; the
    /// variant surfaces only where recovery is not allowed (migration input,
    /// rotation).
    #[error("{path} cannot be read with the configured key (wrong key, or a corrupt file)")]
    Unreadable {
        /// The unreadable database.
        path: PathBuf,
    },

    /// The operation needs the only connection to the file, and another
    /// process has it open.
    #[error(
        "{path} is open in another process (a running server?); stop it and try again. Nothing was changed"
    )]
    InUse {
        /// The database in use.
        path: PathBuf,
    },

    /// A migration of a plain database failed its verification; the plain
    /// file was left untouched.
    #[error(
        "migration of {path} failed verification: {reason}; the original file was left untouched"
    )]
    MigrationVerification {
        /// The plain database being migrated.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },

    /// The database schema is newer than this build understands.
    #[error(
        "cache schema version {found} is newer than this build supports ({supported}); upgrade m365-mcp or point M365_MCP_CACHE_DB_PATH elsewhere"
    )]
    SchemaTooNew {
        /// The version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// A payload could not be compressed or decompressed.
    #[error("cache payload codec error: {0}")]
    Codec(String),

    /// A caller passed an argument the store cannot use.
    #[error("{0}")]
    InvalidArgument(String),
}

impl StoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error means "the disk or page budget is exhausted".
    pub fn is_full(&self) -> bool {
        match self {
            StoreError::Full => true,
            StoreError::Sqlite(e) => sqlite_code(e) == Some(rusqlite::ErrorCode::DiskFull),
            StoreError::Io { source, .. } => source.raw_os_error() == Some(28), // ENOSPC
            _ => false,
        }
    }
}

/// The primary SQLite error code of an error, if it is one.
pub(crate) fn sqlite_code(e: &rusqlite::Error) -> Option<rusqlite::ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(err, _) => Some(err.code),
        _ => None,
    }
}

/// Maps "disk full" SQLite errors to [`StoreError::Full`], keeping others.
pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
    if sqlite_code(&e) == Some(rusqlite::ErrorCode::DiskFull) {
        StoreError::Full
    } else {
        StoreError::Sqlite(e)
    }
}

/// Errors from finding, creating or storing the cache key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `M365_MCP_CACHE_KEY` is set but is not base64 of exactly 32 bytes.
    #[error(
        "M365_MCP_CACHE_KEY is not valid: {reason}. Expected: base64 of 32 random bytes (for example the output of `openssl rand -base64 32`)"
    )]
    InvalidEnvKey {
        /// Why it was refused (never the value itself).
        reason: String,
    },

    /// The keyring holds an entry that is not a valid key. We refuse to
    /// overwrite it, since it may be a key another version wrote.
    #[error(
        "the keyring entry {service}/{user} does not hold a valid cache key ({reason}); remove it with `secret-tool clear service {service} username {user}` only if you are sure the cache it protects can be discarded"
    )]
    InvalidKeyringKey {
        /// Keyring service name.
        service: String,
        /// Keyring user name.
        user: String,
        /// Why it was refused.
        reason: String,
    },

    /// The key file exists but does not hold a valid key.
    #[error("the key file {path} does not hold a valid cache key ({reason})")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },

    /// The keyring answered but refused access (locked, prompt dismissed, or
    /// denied). This is never taken as "no key": doing so would replace the
    /// real key and lose the cache.
    #[error(
        "the OS keyring could not be read ({detail}); unlock it (for example log in to the desktop session) or set M365_MCP_CACHE_KEY. The cache is bypassed until then"
    )]
    KeyringLocked {
        /// The platform's explanation.
        detail: String,
    },

    /// No keyring is reachable, no key file exists, yet a cache database
    /// exists: its key is probably in the keyring this process cannot reach.
    #[error(
        "the cache at {db} exists but its key is not reachable (OS keyring unavailable: {detail}; no key file at {key_file}). Make the keyring available or set M365_MCP_CACHE_KEY; to start a new cache instead, move that file away (nothing is deleted for you)"
    )]
    KeyUnreachable {
        /// The existing database.
        db: PathBuf,
        /// Where a key file would be.
        key_file: PathBuf,
        /// Why the keyring was unreachable.
        detail: String,
    },

    /// Writing the key somewhere failed.
    #[error("could not store the cache key in {location}: {detail}")]
    Store {
        /// Where we tried to store it.
        location: String,
        /// Why it failed.
        detail: String,
    },

    /// The key came from `M365_MCP_CACHE_KEY`, so it cannot be replaced by us.
    #[error(
        "the cache key comes from M365_MCP_CACHE_KEY, which m365-mcp cannot change; to rotate, stop the servers, unset M365_MCP_CACHE_KEY so the key lives in the keyring, then rotate"
    )]
    KeyFromEnvironment,

    /// A file-system error around the key file.
    #[error("key file error at {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
