//! The cache key and where it lives.
//!
//! The key is 32 random bytes, used as SQLCipher's raw key (no per-open key
//! derivation). It is looked for in this order:
//!
//! 1. `M365_MCP_CACHE_KEY` (base64 of 32 bytes; a malformed value is an error),
//! 2. the OS keyring (Secret Service, Keychain, Credential Manager),
//! 3. a key file in the data directory (mode 0600), used only when no
//!    keyring is reachable at all.
//!
//! A new key is generated only when none exists anywhere. A keyring that
//! answers but refuses access (locked, denied) is an error, never "no key":
//! treating it as absent would replace the real key and lose the cache.
//!
//! Invariant: key bytes never reach a log line, an error, a panic message or
//! `Debug` output. [`CacheKey`] redacts itself and zeroes its memory on drop.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::TryRngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyError;

/// Keyring service name, shared with the Python server so an existing key is reused.
pub const DEFAULT_KEYRING_SERVICE: &str = "m365-mcp-cache";
/// Keyring user name of the key.
pub const KEYRING_USER: &str = "encryption-key";
/// Keyring user name of a key being rotated in (see [`KeyManager::begin_rotation`]).
pub const KEYRING_PENDING_USER: &str = "encryption-key.pending";
/// Environment variable that overrides every other key source.
pub const ENV_KEY: &str = "M365_MCP_CACHE_KEY";
/// Environment variable that renames the keyring service (several installs on one login).
pub const ENV_KEYRING_SERVICE: &str = "M365_MCP_KEYRING_SERVICE";

/// A 256-bit cache key. Redacted in `Debug`, zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        // Without an OS random source no key can be made safely; there is
        // nothing sensible to fall back to.
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .expect("the operating system's random number generator is unavailable");
        CacheKey(bytes)
    }

    /// Builds a key from raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CacheKey(bytes)
    }

    /// Parses base64 (standard alphabet, padding optional) of exactly 32 bytes.
    /// The error says why, never what the value was.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let decoded = Zeroizing::new(
            BASE64
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
                .map_err(|_| "not valid base64".to_string())?,
        );
        if decoded.len() != 32 {
            return Err(format!("decodes to {} bytes, not 32", decoded.len()));
        }
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&decoded);
        Ok(CacheKey(bytes))
    }

    /// The key as base64 (the form stored in the keyring and key file).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0))
    }

    /// The SQLCipher raw-key literal, `x'<64 hex>'`, for `PRAGMA key`.
    pub(crate) fn sqlcipher_literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("\"x'{}'\"", hex::encode(self.0)))
    }

    /// Raw bytes, for client-side encryption of values held elsewhere.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for CacheKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKey(<redacted>)")
    }
}

/// What a keyring said when asked for a secret.
#[derive(Debug)]
pub enum KeyringRead {
    /// The entry exists and holds this text.
    Found(Zeroizing<String>),
    /// The keyring is reachable and has no such entry.
    Missing,
    /// The keyring answered but refused access (locked, denied, prompt needed).
    Refused(String),
    /// No keyring is reachable (no Secret Service, no D-Bus session, …).
    Unreachable(String),
}

/// The OS keyring, behind a trait so the policy above it can be tested
/// against every answer a keyring can give.
pub trait KeyringBackend: Send + Sync {
    /// Reads the secret stored under `user`.
    fn read(&self, user: &str) -> KeyringRead;
    /// Stores `secret` under `user`, replacing what was there.
    fn write(&self, user: &str, secret: &str) -> Result<(), String>;
    /// Deletes the entry under `user` (absent is fine).
    fn delete(&self, user: &str) -> Result<(), String>;
    /// Human-readable name of where secrets go, for messages.
    fn describe(&self) -> String;
}

/// The platform keyring through the `keyring` crate.
#[derive(Debug, Clone)]
pub struct OsKeyring {
    service: String,
}

impl OsKeyring {
    /// A keyring handle for `service`.
    pub fn new(service: impl Into<String>) -> Self {
        OsKeyring {
            service: service.into(),
        }
    }

    fn entry(&self, user: &str) -> Result<keyring::Entry, keyring::Error> {
        keyring::Entry::new(&self.service, user)
    }
}

impl KeyringBackend for OsKeyring {
    fn read(&self, user: &str) -> KeyringRead {
        let result = self.entry(user).and_then(|e| e.get_password());
        match result {
            Ok(secret) => KeyringRead::Found(Zeroizing::new(secret)),
            Err(keyring::Error::NoEntry) => KeyringRead::Missing,
            Err(keyring::Error::NoStorageAccess(e)) => KeyringRead::Refused(e.to_string()),
            Err(keyring::Error::PlatformFailure(e)) => KeyringRead::Unreachable(e.to_string()),
            Err(keyring::Error::Ambiguous(_)) => {
                KeyringRead::Refused("several keyring entries match".to_string())
            }
            Err(other) => KeyringRead::Refused(other.to_string()),
        }
    }

    fn write(&self, user: &str, secret: &str) -> Result<(), String> {
        self.entry(user)
            .and_then(|e| e.set_password(secret))
            .map_err(|e| e.to_string())
    }

    fn delete(&self, user: &str) -> Result<(), String> {
        match self.entry(user).and_then(|e| e.delete_credential()) {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn describe(&self) -> String {
        format!("the OS keyring (service {:?})", self.service)
    }
}

/// Where the key in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `M365_MCP_CACHE_KEY`.
    Environment,
    /// The OS keyring.
    Keyring,
    /// A key file (no keyring was reachable).
    KeyFile(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Environment => f.write_str("M365_MCP_CACHE_KEY"),
            KeySource::Keyring => f.write_str("OS keyring"),
            KeySource::KeyFile(p) => write!(f, "key file {}", p.display()),
        }
    }
}

/// A key and where it came from.
#[derive(Debug)]
pub struct LoadedKey {
    /// The key.
    pub key: CacheKey,
    /// Where it lives.
    pub source: KeySource,
    /// True when it was generated by this call.
    pub created: bool,
}

/// Finds, creates, and replaces the cache key (see the module docs for the order).
pub struct KeyManager {
    env_key: Option<Zeroizing<String>>,
    keyring: Box<dyn KeyringBackend>,
    key_file: PathBuf,
    /// Every file the key encrypts (the accounts file and the cache).
    db_paths: Vec<PathBuf>,
}

impl fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyManager")
            .field("env_key", &self.env_key.as_ref().map(|_| "<redacted>"))
            .field("keyring", &self.keyring.describe())
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl KeyManager {
    /// A key manager reading `M365_MCP_CACHE_KEY` and `M365_MCP_KEYRING_SERVICE`
    /// from the environment, with the key file beside the data. `db_paths`
    /// are every file the key encrypts: a rotation re-keys all of them.
    pub fn from_env(key_file: PathBuf, db_paths: Vec<PathBuf>) -> Self {
        let service = std::env::var(ENV_KEYRING_SERVICE)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_KEYRING_SERVICE.to_string());
        let env_key = std::env::var(ENV_KEY)
            .ok()
            .filter(|s| !s.is_empty())
            .map(Zeroizing::new);
        KeyManager {
            env_key,
            keyring: Box::new(OsKeyring::new(service)),
            key_file,
            db_paths,
        }
    }

    /// A key manager with every source given explicitly (tests, embedding).
    pub fn new(
        env_key: Option<String>,
        keyring: Box<dyn KeyringBackend>,
        key_file: PathBuf,
        db_paths: Vec<PathBuf>,
    ) -> Self {
        KeyManager {
            env_key: env_key.map(Zeroizing::new),
            keyring,
            key_file,
            db_paths,
        }
    }

    /// Every file the key encrypts, as given.
    pub fn files(&self) -> &[PathBuf] {
        &self.db_paths
    }

    /// The key file path (used only when no keyring is reachable).
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// Finds the key, or creates one when none exists anywhere.
    pub fn load_or_create(&self) -> Result<LoadedKey, KeyError> {
        if let Some(text) = &self.env_key {
            let key =
                CacheKey::from_base64(text).map_err(|reason| KeyError::InvalidEnvKey { reason })?;
            return Ok(LoadedKey {
                key,
                source: KeySource::Environment,
                created: false,
            });
        }
        match self.keyring.read(KEYRING_USER) {
            KeyringRead::Found(text) => {
                let key =
                    CacheKey::from_base64(&text).map_err(|reason| self.bad_keyring(reason))?;
                Ok(LoadedKey {
                    key,
                    source: KeySource::Keyring,
                    created: false,
                })
            }
            KeyringRead::Refused(detail) => Err(KeyError::KeyringLocked { detail }),
            KeyringRead::Missing => {
                // A key file left by an earlier run without a keyring is still
                // the key of the existing cache: keep using it.
                if let Some(key) = self.read_key_file(&self.key_file)? {
                    return Ok(LoadedKey {
                        key,
                        source: KeySource::KeyFile(self.key_file.clone()),
                        created: false,
                    });
                }
                let key = CacheKey::generate();
                match self.store_in_keyring(KEYRING_USER, &key) {
                    Ok(()) => Ok(LoadedKey {
                        key,
                        source: KeySource::Keyring,
                        created: true,
                    }),
                    Err(detail) => self.create_key_file(key, &detail),
                }
            }
            KeyringRead::Unreachable(detail) => {
                if let Some(key) = self.read_key_file(&self.key_file)? {
                    return Ok(LoadedKey {
                        key,
                        source: KeySource::KeyFile(self.key_file.clone()),
                        created: false,
                    });
                }
                if let Some(existing) = self.db_paths.iter().find(|p| p.exists()) {
                    return Err(KeyError::KeyUnreachable {
                        db: existing.clone(),
                        key_file: self.key_file.clone(),
                        detail,
                    });
                }
                self.create_key_file(CacheKey::generate(), &detail)
            }
        }
    }

    /// A key left behind by an interrupted rotation, if any. Opening tries it
    /// when the main key does not decrypt the database.
    pub fn pending_key(&self, source: &KeySource) -> Result<Option<CacheKey>, KeyError> {
        match source {
            KeySource::Environment => Ok(None),
            KeySource::Keyring => match self.keyring.read(KEYRING_PENDING_USER) {
                KeyringRead::Found(text) => Ok(CacheKey::from_base64(&text).ok()),
                _ => Ok(None),
            },
            KeySource::KeyFile(path) => self.read_key_file(&pending_path(path)),
        }
    }

    /// Step 1 of rotation: remember `new` beside the current key, so that a
    /// crash between re-keying the database and storing the key loses nothing.
    pub fn begin_rotation(&self, source: &KeySource, new: &CacheKey) -> Result<(), KeyError> {
        match source {
            KeySource::Environment => Err(KeyError::KeyFromEnvironment),
            KeySource::Keyring => {
                self.store_in_keyring(KEYRING_PENDING_USER, new)
                    .map_err(|detail| KeyError::Store {
                        location: self.keyring.describe(),
                        detail,
                    })
            }
            KeySource::KeyFile(path) => write_key_file(&pending_path(path), new),
        }
    }

    /// Step 2 of rotation (after the database was re-keyed): `new` replaces the
    /// old key where the old one was, and the pending copy is removed.
    pub fn commit_rotation(&self, source: &KeySource, new: &CacheKey) -> Result<(), KeyError> {
        match source {
            KeySource::Environment => Err(KeyError::KeyFromEnvironment),
            KeySource::Keyring => {
                self.store_in_keyring(KEYRING_USER, new)
                    .map_err(|detail| KeyError::Store {
                        location: self.keyring.describe(),
                        detail,
                    })?;
                // The pending entry equals the stored key now; a failure to
                // delete it is harmless.
                let _ = self.keyring.delete(KEYRING_PENDING_USER);
                Ok(())
            }
            KeySource::KeyFile(path) => {
                write_key_file(path, new)?;
                let _ = std::fs::remove_file(pending_path(path));
                Ok(())
            }
        }
    }

    /// Removes a pending key that was never used (rotation failed before re-key).
    pub fn abort_rotation(&self, source: &KeySource) {
        match source {
            KeySource::Environment => {}
            KeySource::Keyring => {
                let _ = self.keyring.delete(KEYRING_PENDING_USER);
            }
            KeySource::KeyFile(path) => {
                let _ = std::fs::remove_file(pending_path(path));
            }
        }
    }

    fn bad_keyring(&self, reason: String) -> KeyError {
        KeyError::InvalidKeyringKey {
            service: self.keyring.describe(),
            user: KEYRING_USER.to_string(),
            reason,
        }
    }

    /// Stores and reads back, so a keyring that silently drops writes is
    /// caught before the key encrypts anything.
    fn store_in_keyring(&self, user: &str, key: &CacheKey) -> Result<(), String> {
        self.keyring.write(user, &key.to_base64())?;
        match self.keyring.read(user) {
            KeyringRead::Found(text) if CacheKey::from_base64(&text).ok().as_ref() == Some(key) => {
                Ok(())
            }
            KeyringRead::Found(_) => Err("the keyring returned a different value".to_string()),
            KeyringRead::Missing => Err("the keyring did not keep the entry".to_string()),
            KeyringRead::Refused(d) | KeyringRead::Unreachable(d) => Err(d),
        }
    }

    fn create_key_file(&self, key: CacheKey, why: &str) -> Result<LoadedKey, KeyError> {
        write_key_file(&self.key_file, &key)?;
        tracing::warn!(
            key_file = %self.key_file.display(),
            reason = why,
            "no OS keyring is reachable, so the cache key was stored in a file readable only by this user (mode 0600). \
             This protects the cache against a copy of the database file alone, not against anyone who can read this \
             user's files: they can read the key as well. For stronger protection run a Secret Service (or Keychain / \
             Credential Manager) or set M365_MCP_CACHE_KEY from a secrets manager"
        );
        Ok(LoadedKey {
            key,
            source: KeySource::KeyFile(self.key_file.clone()),
            created: true,
        })
    }

    fn read_key_file(&self, path: &Path) -> Result<Option<CacheKey>, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                CacheKey::from_base64(&text)
                    .map(Some)
                    .map_err(|reason| KeyError::InvalidKeyFile {
                        path: path.to_path_buf(),
                        reason,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

fn pending_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".pending");
    path.with_file_name(name)
}

/// Writes a key file with mode 0600 atomically (temp file, fsync, rename).
fn write_key_file(path: &Path, key: &CacheKey) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(key.to_base64().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A keyring that answers as configured, for the policy tests.
    #[derive(Default)]
    struct ScriptedKeyring {
        entries: Mutex<HashMap<String, String>>,
        mode: Mutex<Option<&'static str>>,
        writes: Mutex<u32>,
    }

    impl KeyringBackend for ScriptedKeyring {
        fn read(&self, user: &str) -> KeyringRead {
            match *self.mode.lock().unwrap() {
                Some("locked") => KeyringRead::Refused("collection is locked".into()),
                Some("absent") => KeyringRead::Unreachable("no secret service".into()),
                _ => match self.entries.lock().unwrap().get(user) {
                    Some(v) => KeyringRead::Found(Zeroizing::new(v.clone())),
                    None => KeyringRead::Missing,
                },
            }
        }
        fn write(&self, user: &str, secret: &str) -> Result<(), String> {
            *self.writes.lock().unwrap() += 1;
            if self.mode.lock().unwrap().is_some() {
                return Err("unavailable".into());
            }
            self.entries
                .lock()
                .unwrap()
                .insert(user.to_string(), secret.to_string());
            Ok(())
        }
        fn delete(&self, user: &str) -> Result<(), String> {
            self.entries.lock().unwrap().remove(user);
            Ok(())
        }
        fn describe(&self) -> String {
            "scripted keyring".into()
        }
    }

    fn manager(dir: &Path, keyring: ScriptedKeyring, env: Option<String>) -> KeyManager {
        KeyManager::new(
            env,
            Box::new(keyring),
            dir.join("cache.key"),
            vec![dir.join("cache.db")],
        )
    }

    #[test]
    fn env_key_wins_and_malformed_env_key_is_an_error_without_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let key = CacheKey::generate();
        let m = manager(
            dir.path(),
            ScriptedKeyring::default(),
            Some(key.to_base64().to_string()),
        );
        let loaded = m.load_or_create().unwrap();
        assert_eq!(loaded.source, KeySource::Environment);
        assert_eq!(loaded.key, key);

        let m = manager(
            dir.path(),
            ScriptedKeyring::default(),
            Some("c2hvcnQ=".into()),
        );
        let err = m.load_or_create().unwrap_err().to_string();
        assert!(err.contains("decodes to 5 bytes"), "{err}");
        assert!(!err.contains("c2hvcnQ"), "the value leaked: {err}");
    }

    #[test]
    fn generated_once_then_found_in_keyring() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = ScriptedKeyring::default();
        let m = manager(dir.path(), keyring, None);
        let first = m.load_or_create().unwrap();
        assert!(first.created);
        assert_eq!(first.source, KeySource::Keyring);
        let second = m.load_or_create().unwrap();
        assert!(!second.created);
        assert_eq!(first.key, second.key);
        assert!(!dir.path().join("cache.key").exists());
    }

    #[test]
    fn locked_keyring_is_an_error_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = ScriptedKeyring::default();
        *keyring.mode.lock().unwrap() = Some("locked");
        let m = manager(dir.path(), keyring, None);
        let err = m.load_or_create().unwrap_err();
        assert!(matches!(err, KeyError::KeyringLocked { .. }), "{err}");
        assert!(!dir.path().join("cache.key").exists());
    }

    #[test]
    fn unreachable_keyring_falls_back_to_a_0600_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = ScriptedKeyring::default();
        *keyring.mode.lock().unwrap() = Some("absent");
        let m = manager(dir.path(), keyring, None);
        let loaded = m.load_or_create().unwrap();
        assert!(loaded.created);
        let path = dir.path().join("cache.key");
        assert_eq!(loaded.source, KeySource::KeyFile(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let again = m.load_or_create().unwrap();
        assert_eq!(again.key, loaded.key);
        assert!(!again.created);
    }

    #[test]
    fn unreachable_keyring_with_an_existing_database_refuses_to_invent_a_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cache.db"), b"existing").unwrap();
        let keyring = ScriptedKeyring::default();
        *keyring.mode.lock().unwrap() = Some("absent");
        let m = manager(dir.path(), keyring, None);
        let err = m.load_or_create().unwrap_err();
        assert!(matches!(err, KeyError::KeyUnreachable { .. }), "{err}");
        assert!(!dir.path().join("cache.key").exists());
    }

    #[test]
    fn invalid_keyring_value_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let keyring = ScriptedKeyring::default();
        keyring
            .entries
            .lock()
            .unwrap()
            .insert(KEYRING_USER.into(), "not a key".into());
        let m = manager(dir.path(), keyring, None);
        assert!(matches!(
            m.load_or_create().unwrap_err(),
            KeyError::InvalidKeyringKey { .. }
        ));
    }

    #[test]
    fn rotation_keeps_a_pending_copy_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path(), ScriptedKeyring::default(), None);
        let loaded = m.load_or_create().unwrap();
        let new = CacheKey::generate();
        m.begin_rotation(&loaded.source, &new).unwrap();
        assert_eq!(m.pending_key(&loaded.source).unwrap(), Some(new.clone()));
        m.commit_rotation(&loaded.source, &new).unwrap();
        assert_eq!(m.pending_key(&loaded.source).unwrap(), None);
        assert_eq!(m.load_or_create().unwrap().key, new);
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = CacheKey::generate();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.as_bytes())));
        assert!(!shown.contains(key.to_base64().as_str()));
    }
}
