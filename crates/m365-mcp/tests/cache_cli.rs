//! `m365-mcp cache …` driven as a user would: the real binary, the real
//! encrypted file, and every byte of its output searched for the key.

use std::path::Path;
use std::process::{Command, Output};

use m365_store::{CacheKey, Dependencies, EntryKey, Store, StoreConfig};

struct Run {
    output: Output,
}

impl Run {
    fn ok(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "command failed: {}\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }
}

/// Runs the binary with a clean environment rooted in `data_dir`.
fn m365(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m365-mcp"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("M365_MCP_DATA_DIR", data_dir)
        .env("MCP_LOG_LEVEL", "trace")
        // No Secret Service: the headless path, unless a test sets a key.
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/m365-mcp-test-bus",
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run {
        output: cmd.output().expect("run m365-mcp"),
    }
}

fn seed(db: &Path, key: &CacheKey, n: usize) {
    let (store, _) = Store::open(StoreConfig::new(db), key.clone(), None).unwrap();
    for i in 0..n {
        let id = format!("AAMkAG-{i}=");
        let entry = EntryKey::new(
            "oid.tid",
            "email_get",
            &serde_json::json!({ "email_id": id }),
        );
        store
            .set(
                &entry,
                &Dependencies::item(&id),
                b"{\"subject\":\"Board minutes\"}",
            )
            .unwrap();
    }
    let list = EntryKey::new(
        "oid.tid",
        "email_list",
        &serde_json::json!({ "folder": "inbox" }),
    );
    store
        .set(&list, &Dependencies::container("inbox"), b"{\"value\":[]}")
        .unwrap();
}

fn assert_no_key(text: &str, key: &CacheKey) {
    assert!(
        !text.contains(key.to_base64().as_str()),
        "base64 key leaked:\n{text}"
    );
    let hex_key = hex::encode(key.as_bytes());
    assert!(
        !text.to_ascii_lowercase().contains(&hex_key),
        "hex key leaked:\n{text}"
    );
}

#[test]
fn cache_commands_work_on_the_encrypted_file_and_never_print_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::generate();
    let b64 = key.to_base64().to_string();
    let env = [("M365_MCP_CACHE_KEY", b64.as_str())];
    seed(&dir.path().join("cache.db"), &key, 12);
    let mut transcript = String::new();

    let stats = m365(dir.path(), &env, &["cache", "stats", "--json"]);
    stats.ok();
    transcript += &stats.all();
    let parsed: serde_json::Value = serde_json::from_str(&stats.stdout()).expect("stats JSON");
    assert_eq!(parsed["total"]["entries"], 13);

    let table = m365(dir.path(), &env, &["cache", "stats"]);
    table.ok();
    transcript += &table.all();
    assert!(
        table.stdout().contains("SQLCipher 4."),
        "{}",
        table.stdout()
    );
    assert!(
        table
            .stdout()
            .contains("key:              M365_MCP_CACHE_KEY")
    );

    let inv = m365(dir.path(), &env, &["cache", "invalidate", "email_get:*"]);
    inv.ok();
    transcript += &inv.all();
    assert!(
        inv.stdout().contains("invalidated 12 entries"),
        "{}",
        inv.stdout()
    );

    let rotate = m365(dir.path(), &env, &["cache", "rotate-key"]);
    assert!(
        !rotate.output.status.success(),
        "a key from the environment cannot be rotated by us"
    );
    assert!(
        rotate.stderr().contains("M365_MCP_CACHE_KEY"),
        "{}",
        rotate.stderr()
    );
    transcript += &rotate.all();

    let clear = m365(dir.path(), &env, &["cache", "clear"]);
    clear.ok();
    transcript += &clear.all();
    assert!(
        clear.stdout().contains("removed 1 entries"),
        "{}",
        clear.stdout()
    );

    assert_no_key(&transcript, &key);
}

#[test]
fn a_malformed_environment_key_is_a_clear_error_that_does_not_echo_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "dGhpcyBpcyBub3QgMzIgYnl0ZXM=";
    let run = m365(
        dir.path(),
        &[("M365_MCP_CACHE_KEY", bad)],
        &["cache", "stats"],
    );
    assert!(!run.output.status.success());
    assert!(
        run.stderr().contains("M365_MCP_CACHE_KEY is not valid"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("Expected: base64 of 32 random bytes"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.all().contains(bad),
        "the value was echoed: {}",
        run.all()
    );
    assert!(
        !dir.path().join("cache.db").exists(),
        "nothing is created with a bad key"
    );
}

#[test]
fn headless_rotation_uses_the_key_file_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let first = m365(dir.path(), &[], &["cache", "stats"]);
    first.ok();
    let key_file = dir.path().join("cache.key");
    let old = CacheKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert!(first.stdout().contains("key file"), "{}", first.stdout());
    assert!(
        first.stderr().contains("no OS keyring is reachable"),
        "{}",
        first.stderr()
    );
    seed(&dir.path().join("cache.db"), &old, 3);

    let rotate = m365(dir.path(), &[], &["cache", "rotate-key"]);
    rotate.ok();
    let new = CacheKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_ne!(old, new);
    let db = dir.path().join("cache.db");
    assert!(!m365_store::opens_with_key(&db, &old));
    assert!(m365_store::opens_with_key(&db, &new));
    let stats = m365(dir.path(), &[], &["cache", "stats", "--json"]);
    stats.ok();
    let parsed: serde_json::Value = serde_json::from_str(&stats.stdout()).unwrap();
    assert_eq!(parsed["total"]["entries"], 4, "entries survive rotation");
    let transcript = first.all() + &rotate.all() + &stats.all();
    assert_no_key(&transcript, &old);
    assert_no_key(&transcript, &new);
}

/// The accounts file (sign-ins and refresh tokens) is encrypted with the
/// same key as the cache: rotating the key must re-encrypt both, or the
/// next start cannot open the accounts file and every sign-in is lost.
#[test]
fn rotation_keeps_the_accounts_file_readable() {
    let dir = tempfile::tempdir().unwrap();
    m365(dir.path(), &[], &["cache", "stats"]).ok();
    let key_file = dir.path().join("cache.key");
    let old = CacheKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let accounts = dir.path().join("accounts.db");
    {
        let (store, _) = Store::open(StoreConfig::new(&accounts), old.clone(), None).unwrap();
        store
            .upsert_account(
                &m365_store::AccountRecord {
                    account_id: "oid-1.tid-1".into(),
                    username: "adele@contoso.example".into(),
                    display_name: Some("Adele".into()),
                    tenant_id: "tid-1".into(),
                    account_type: "work_school".into(),
                },
                Some("refresh-token-1"),
            )
            .unwrap();
    }
    seed(&dir.path().join("cache.db"), &old, 2);

    // With the cache open elsewhere (a running server), nothing changes.
    let running = Store::open(
        StoreConfig::new(dir.path().join("cache.db")),
        old.clone(),
        None,
    )
    .unwrap();
    let refused = m365(dir.path(), &[], &["cache", "rotate-key"]);
    assert!(!refused.output.status.success(), "{}", refused.all());
    assert!(
        refused.stderr().contains("open in another process"),
        "{}",
        refused.stderr()
    );
    assert_eq!(
        CacheKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap(),
        old
    );
    assert!(m365_store::opens_with_key(&accounts, &old));
    drop(running);

    let rotate = m365(dir.path(), &[], &["cache", "rotate-key"]);
    rotate.ok();
    let new = CacheKey::from_base64(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_ne!(old, new);
    assert!(!m365_store::opens_with_key(&accounts, &old));
    assert!(m365_store::opens_with_key(&accounts, &new));
    let listed = m365(dir.path(), &[], &["auth", "list"]);
    listed.ok();
    assert!(
        listed.stdout().contains("adele@contoso.example"),
        "{}",
        listed.all()
    );
    let (store, _) = Store::open(StoreConfig::new(&accounts), new.clone(), None).unwrap();
    assert_eq!(
        store
            .refresh_token("oid-1.tid-1")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("refresh-token-1")
    );
    let moved_aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unreadable-"))
        .collect();
    assert!(moved_aside.is_empty(), "{moved_aside:?}");
    let transcript = refused.all() + &rotate.all() + &listed.all();
    assert_no_key(&transcript, &old);
    assert_no_key(&transcript, &new);
}

#[test]
fn migrate_encrypts_a_plain_file_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("old-plain.db");
    {
        let conn = rusqlite::Connection::open(&plain).unwrap();
        conn.execute_batch(
            "CREATE TABLE cache_entries (cache_key TEXT PRIMARY KEY, data_json TEXT);
             INSERT INTO cache_entries VALUES ('a', 'secret subject one'), ('b', 'secret subject two');",
        )
        .unwrap();
    }
    let key = CacheKey::generate();
    let b64 = key.to_base64().to_string();
    let run = m365(
        dir.path(),
        &[("M365_MCP_CACHE_KEY", b64.as_str())],
        &["cache", "migrate", plain.to_str().unwrap()],
    );
    run.ok();
    assert!(
        run.stdout().contains("2 rows copied and verified"),
        "{}",
        run.stdout()
    );
    assert!(!m365_store::is_plain_sqlite(&plain));
    assert!(m365_store::opens_with_key(&plain, &key));
    let bytes = std::fs::read(&plain).unwrap();
    assert!(!bytes.windows(14).any(|w| w == b"secret subject"));

    let again = m365(
        dir.path(),
        &[("M365_MCP_CACHE_KEY", b64.as_str())],
        &["cache", "migrate", plain.to_str().unwrap()],
    );
    assert!(!again.output.status.success());
    assert!(
        again.stderr().contains("not a plain SQLite database"),
        "{}",
        again.stderr()
    );
}
