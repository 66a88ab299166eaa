//! Opening files that do not open: wrong key, corruption, plain SQLite,
//! rotation, and a full or read-only disk. Nothing is ever deleted.

mod common;

use std::path::Path;

use common::*;
use m365_store::{
    CacheKey, Dependencies, KeyManager, KeySource, KeyringBackend, KeyringRead, OpenOutcome, Store,
    StoreConfig, StoreError, open_encrypted, opens_with_key, rotate_key,
};

const ACCOUNT: &str = "oid.tid";

fn unreadable_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unreadable-"))
        .collect();
    names.sort();
    names
}

#[test]
fn wrong_key_moves_the_file_and_its_wal_aside_and_starts_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let right = CacheKey::generate();
    let store = open(dir.path(), &right);
    fill(&store, ACCOUNT, 20, 500);
    // Keep the -wal and -shm on disk, as a crash would, by leaking the store.
    std::mem::forget(store);
    assert!(dir.path().join("cache.db-wal").exists());

    let wrong = CacheKey::generate();
    let (store, outcome) = Store::open(
        StoreConfig::new(dir.path().join("cache.db")),
        wrong.clone(),
        None,
    )
    .unwrap();
    let OpenOutcome::MovedAside { moved_to } = outcome else {
        panic!("expected the file to be moved aside, got {outcome:?}");
    };
    let name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("cache.db.unreadable-") && name.ends_with('Z'),
        "{name}"
    );
    let moved = unreadable_files(dir.path());
    assert_eq!(
        moved.len(),
        3,
        "db, -wal and -shm moved together: {moved:?}"
    );
    assert!(moved.iter().any(|n| n.ends_with("-wal")));

    // The new cache works with the new key.
    assert!(store.get(&message_key(ACCOUNT, "msg-1")).unwrap().is_none());
    fill(&store, ACCOUNT, 1, 10);
    assert!(store.get(&message_key(ACCOUNT, "msg-0")).unwrap().is_some());

    // The moved set is intact: it still opens with the right key, entries and all.
    let (old, outcome) = Store::open(StoreConfig::new(&moved_to), right, None).unwrap();
    assert_eq!(outcome, OpenOutcome::Opened { created: false });
    assert!(old.get(&message_key(ACCOUNT, "msg-19")).unwrap().is_some());
}

#[test]
fn a_corrupt_file_is_moved_aside_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    let (store, outcome) =
        Store::open(StoreConfig::new(&path), CacheKey::generate(), None).unwrap();
    let OpenOutcome::MovedAside { moved_to } = outcome else {
        panic!("got {outcome:?}");
    };
    assert_eq!(
        std::fs::read(&moved_to).unwrap(),
        garbage,
        "moved byte for byte"
    );
    fill(&store, ACCOUNT, 1, 10);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn a_plain_sqlite_cache_is_encrypted_in_place_with_rows_verified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let key = CacheKey::generate();
    // A plain store of ours (an older, unencrypted version) …
    {
        let store = Store::open_plain_for_benchmarks(StoreConfig::new(&path)).unwrap();
        fill(&store, ACCOUNT, 30, 300);
    }
    // … plus a table as the Python server left it.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE cache_entries (cache_key TEXT PRIMARY KEY, data_json TEXT);
             INSERT INTO cache_entries VALUES ('email_list:acct', 'plaintext-subject-line');",
        )
        .unwrap();
    }
    assert!(m365_store::is_plain_sqlite(&path));
    assert!(contains(
        &std::fs::read(&path).unwrap(),
        b"plaintext-subject-line"
    ));

    let (store, outcome) = Store::open(StoreConfig::new(&path), key.clone(), None).unwrap();
    // 30 entries (payload and bookkeeping rows), two tags each (the item
    // and the resource type), 1 stats row, 1 Python row.
    assert_eq!(
        outcome,
        OpenOutcome::MigratedFromPlain {
            rows: 30 * 2 + 30 * 2 + 1 + 1
        }
    );
    assert!(
        store
            .get(&message_key(ACCOUNT, "msg-29"))
            .unwrap()
            .is_some()
    );
    let counts = store.table_row_counts().unwrap();
    assert!(
        counts.contains(&("cache_entries".to_string(), 1)),
        "{counts:?}"
    );
    drop(store);
    assert!(!m365_store::is_plain_sqlite(&path));
    assert!(!contains(
        &std::fs::read(&path).unwrap(),
        b"plaintext-subject-line"
    ));
    assert!(!contains(&std::fs::read(&path).unwrap(), b"msg-29"));
    assert!(opens_with_key(&path, &key));
    assert!(!opens_with_key(&path, &CacheKey::generate()));
    assert!(!dir.path().join("cache.db.migrating").exists());
}

/// A keyring in memory for rotation tests that must not touch the real one.
#[derive(Default)]
struct MemoryKeyring(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl KeyringBackend for MemoryKeyring {
    fn read(&self, user: &str) -> KeyringRead {
        match self.0.lock().unwrap().get(user) {
            Some(v) => KeyringRead::Found(zeroize::Zeroizing::new(v.clone())),
            None => KeyringRead::Missing,
        }
    }
    fn write(&self, user: &str, secret: &str) -> Result<(), String> {
        self.0.lock().unwrap().insert(user.into(), secret.into());
        Ok(())
    }
    fn delete(&self, user: &str) -> Result<(), String> {
        self.0.lock().unwrap().remove(user);
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".into()
    }
}

#[test]
fn rotation_keeps_entries_and_retires_the_old_key_for_file_and_keyring_sources() {
    for use_keyring in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("cache.db");
        let keyring: Box<dyn KeyringBackend> = if use_keyring {
            Box::new(MemoryKeyring::default())
        } else {
            // Unreachable keyring: the key lives in the key file.
            Box::new(Unreachable)
        };
        let keys = KeyManager::new(
            None,
            keyring,
            dir.path().join("cache.key"),
            vec![db.clone()],
        );
        let opened = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
        fill(&opened.store, ACCOUNT, 25, 200);
        drop(opened);
        let old = keys.load_or_create().unwrap().key;

        let source = rotate_key(&keys).unwrap().source;
        assert_eq!(source == KeySource::Keyring, use_keyring);
        let new = keys.load_or_create().unwrap().key;
        assert_ne!(old, new);
        assert!(
            !opens_with_key(&db, &old),
            "the old key must no longer open the file"
        );
        assert!(opens_with_key(&db, &new));
        let opened = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
        assert_eq!(opened.outcome, OpenOutcome::Opened { created: false });
        assert!(
            opened
                .store
                .get(&message_key(ACCOUNT, "msg-24"))
                .unwrap()
                .is_some()
        );
        assert_eq!(opened.store.integrity_check().unwrap(), "ok");
    }
}

struct Unreachable;
impl KeyringBackend for Unreachable {
    fn read(&self, _: &str) -> KeyringRead {
        KeyringRead::Unreachable("no secret service".into())
    }
    fn write(&self, _: &str, _: &str) -> Result<(), String> {
        Err("no secret service".into())
    }
    fn delete(&self, _: &str) -> Result<(), String> {
        Err("no secret service".into())
    }
    fn describe(&self) -> String {
        "unreachable".into()
    }
}

#[test]
fn an_interrupted_rotation_is_finished_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let keys = KeyManager::new(
        None,
        Box::new(MemoryKeyring::default()),
        dir.path().join("cache.key"),
        vec![db.clone()],
    );
    let opened = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
    fill(&opened.store, ACCOUNT, 5, 100);
    drop(opened);
    let old = keys.load_or_create().unwrap();
    // Simulate a crash after the re-key but before the new key was stored:
    // the pending copy exists and the file is keyed with it.
    let new = CacheKey::generate();
    keys.begin_rotation(&old.source, &new).unwrap();
    rekey_by_hand(&db, &old.key, &new);
    let opened = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
    assert_eq!(opened.outcome, OpenOutcome::OpenedWithPendingKey);
    assert!(
        opened
            .store
            .get(&message_key(ACCOUNT, "msg-4"))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        keys.load_or_create().unwrap().key,
        new,
        "the pending key became the key"
    );
    assert_eq!(keys.pending_key(&old.source).unwrap(), None);
    assert!(
        unreadable_files(dir.path()).is_empty(),
        "nothing was moved aside"
    );
}

/// Two files under one key, as the server keeps them: accounts and cache.
fn two_files(dir: &Path) -> (KeyManager, [std::path::PathBuf; 2]) {
    let files = [dir.join("accounts.db"), dir.join("cache.db")];
    let keys = KeyManager::new(
        None,
        Box::new(MemoryKeyring::default()),
        dir.join("cache.key"),
        files.to_vec(),
    );
    for (i, file) in files.iter().enumerate() {
        let opened = open_encrypted(StoreConfig::new(file), &keys).unwrap();
        fill(&opened.store, ACCOUNT, 3 + i, 100);
    }
    (keys, files)
}

fn rekey_by_hand(file: &Path, old: &CacheKey, new: &CacheKey) {
    let conn = rusqlite::Connection::open(file).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{}'\";",
        hex::encode(old.as_bytes())
    ))
    .unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.execute_batch(&format!(
        "PRAGMA rekey = \"x'{}'\";",
        hex::encode(new.as_bytes())
    ))
    .unwrap();
}

/// Each of [`two_files`] opens with `key`, as it is, holding its entries.
fn assert_all_open_with(keys: &KeyManager, files: &[std::path::PathBuf], key: &CacheKey) {
    for (i, file) in files.iter().enumerate() {
        assert!(opens_with_key(file, key), "{}", file.display());
        let opened = open_encrypted(StoreConfig::new(file), keys).unwrap();
        assert_eq!(opened.outcome, OpenOutcome::Opened { created: false });
        let last = format!("msg-{}", 2 + i);
        assert!(
            opened
                .store
                .get(&message_key(ACCOUNT, &last))
                .unwrap()
                .is_some(),
            "{}",
            file.display()
        );
    }
}

#[test]
fn rotation_re_keys_every_file_the_key_encrypts() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, files) = two_files(dir.path());
    let old = keys.load_or_create().unwrap().key;
    rotate_key(&keys).unwrap();
    let new = keys.load_or_create().unwrap().key;
    assert_ne!(old, new);
    for file in &files {
        assert!(!opens_with_key(file, &old), "{}", file.display());
    }
    assert_all_open_with(&keys, &files, &new);
    assert!(unreadable_files(dir.path()).is_empty());
}

#[test]
fn rotation_refuses_a_file_another_process_has_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (keys, files) = two_files(dir.path());
    let old = keys.load_or_create().unwrap();
    // A running server: the cache file open in WAL mode (the accounts file,
    // first in line, is free, so the rotation has to undo it).
    let running = open_encrypted(StoreConfig::new(&files[1]), &keys).unwrap();
    let err = rotate_key(&keys).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, m365_store::OpenError::Store(StoreError::InUse { .. })),
        "{text}"
    );
    assert!(
        text.contains("cache.db") && text.contains("another process"),
        "{text}"
    );
    assert_eq!(keys.load_or_create().unwrap().key, old.key, "the key stays");
    assert_eq!(
        keys.pending_key(&old.source).unwrap(),
        None,
        "no pending key left"
    );
    for file in &files {
        assert!(opens_with_key(file, &old.key), "{}", file.display());
    }
    // The running store still reads and writes.
    assert!(
        running
            .store
            .get(&message_key(ACCOUNT, "msg-3"))
            .unwrap()
            .is_some()
    );
    fill(&running.store, ACCOUNT, 5, 100);
    drop(running);
    rotate_key(&keys).unwrap();
    for file in &files {
        assert!(!opens_with_key(file, &old.key), "{}", file.display());
    }
}

#[test]
fn an_interrupted_rotation_of_two_files_is_rolled_forward_from_either_file() {
    for open_first in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let (keys, files) = two_files(dir.path());
        let old = keys.load_or_create().unwrap();
        // A crash after the first file was re-keyed: the pending key is
        // stored, the accounts file has it, the cache still has the old key.
        let new = CacheKey::generate();
        keys.begin_rotation(&old.source, &new).unwrap();
        rekey_by_hand(&files[0], &old.key, &new);

        let opened = open_encrypted(StoreConfig::new(&files[open_first]), &keys).unwrap();
        assert_eq!(opened.outcome, OpenOutcome::OpenedWithPendingKey);
        drop(opened);
        assert_eq!(keys.load_or_create().unwrap().key, new);
        assert_eq!(keys.pending_key(&old.source).unwrap(), None);
        assert_all_open_with(&keys, &files, &new);
        assert!(
            unreadable_files(dir.path()).is_empty(),
            "nothing moved aside"
        );
    }
}

#[test]
fn a_full_database_gives_a_clear_error_and_keeps_what_it_had() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("cache.db"));
    config.max_file_bytes = Some(256 * 1024);
    config.compress_threshold = usize::MAX;
    let store = open_with(config, &CacheKey::generate());
    let mut last_ok = None;
    let mut error = None;
    for i in 0..200 {
        let id = format!("m{i}");
        match store.set(
            &message_key(ACCOUNT, &id),
            &Dependencies::none(),
            &payload(&id, 8 * 1024),
        ) {
            Ok(()) => last_ok = Some(id),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("a 256 KiB ceiling must fill up");
    assert!(error.is_full(), "{error:?}");
    assert!(error.to_string().contains("full"), "{error}");
    let last_ok = last_ok.expect("some writes fit");
    assert!(
        store
            .get(&message_key(ACCOUNT, &last_ok))
            .unwrap()
            .is_some()
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn a_missing_or_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A path under a regular file cannot be created by anyone, root included.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let err = Store::open(
        StoreConfig::new(blocker.join("cache.db")),
        CacheKey::generate(),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

/// Real file-system limits need a mount, which needs root (CI runs as root).
#[cfg(target_os = "linux")]
mod mounted {
    use super::*;
    use std::process::Command;

    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }

    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to mount a tmpfs for this test"
            );
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        Some(Mount(dir.to_path_buf()))
    }

    #[test]
    fn a_full_disk_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let Some(_mount) = tmpfs(dir.path(), "size=512k") else {
            return;
        };
        let mut config = StoreConfig::new(dir.path().join("cache.db"));
        config.compress_threshold = usize::MAX;
        let store = open_with(config, &CacheKey::generate());
        let mut error = None;
        for i in 0..400 {
            let id = format!("m{i}");
            if let Err(e) = store.set(
                &message_key(ACCOUNT, &id),
                &Dependencies::none(),
                &payload(&id, 8 * 1024),
            ) {
                error = Some(e);
                break;
            }
        }
        let error = error.expect("a 512 KiB disk must fill up");
        assert!(error.is_full(), "{error:?}");
        assert!(store.get(&message_key(ACCOUNT, "m0")).unwrap().is_some());
    }

    #[test]
    fn a_read_only_file_system_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let Some(_mount) = tmpfs(dir.path(), "size=1m,ro") else {
            return;
        };
        let err = Store::open(
            StoreConfig::new(dir.path().join("cache.db")),
            CacheKey::generate(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("cache.db"), "{err}");
    }
}
