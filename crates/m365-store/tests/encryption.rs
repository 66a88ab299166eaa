//! Proof that the file is really encrypted: no plaintext in the database,
//! its WAL or its shared-memory file, and an independent SQLCipher build
//! (Python's `sqlcipher3`) reads it with the key and fails without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use m365_store::{CacheKey, Dependencies, EntryKey, Store, StoreConfig};

const MARKER: &str = "Quarterly-results-embargoed-7f3a9c";

fn files_of(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

fn write_secrets(store: &Store) {
    for i in 0..50 {
        let id = format!("{MARKER}-{i}");
        let key = EntryKey::new(
            "alice@contoso.example",
            "email_get",
            &serde_json::json!({ "email_id": id }),
        );
        // Small payloads are stored raw (inside the encrypted page), large ones zstd'd.
        let len = if i % 10 == 0 { 80 * 1024 } else { 600 };
        store
            .set(&key, &Dependencies::item(&id), &payload(&id, len))
            .unwrap();
    }
}

#[test]
fn no_plaintext_reaches_the_database_wal_or_shm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let store = open(dir.path(), &CacheKey::generate());
    write_secrets(&store);
    // While open: the WAL holds recent pages.
    let open_files = files_of(&db);
    assert!(
        open_files.len() >= 2,
        "expected -wal beside the db: {open_files:?}"
    );
    for path in &open_files {
        let bytes = std::fs::read(path).unwrap();
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "plaintext in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, b"alice@contoso.example"),
            "account id in {}",
            path.display()
        );
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "plain header in {}",
            path.display()
        );
    }
    drop(store);
    for path in files_of(&db) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, MARKER.as_bytes()),
            "plaintext in {}",
            path.display()
        );
    }

    // The same workload on a plain store does leave the marker on disk, which
    // shows the check above can fail.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain =
        Store::open_plain_for_benchmarks(StoreConfig::new(plain_dir.path().join("cache.db")))
            .unwrap();
    write_secrets(&plain);
    let found = files_of(&plain_dir.path().join("cache.db"))
        .iter()
        .any(|p| contains(&std::fs::read(p).unwrap(), MARKER.as_bytes()));
    assert!(found, "the plain control store should contain the marker");
}

/// The Python with `sqlcipher3` installed: `M365_MCP_TEST_PYTHON`, else the
/// project's `.venv`. CI provides it; elsewhere the test says how to.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("M365_MCP_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

#[test]
fn an_independent_sqlcipher_reads_it_with_the_key_and_not_without() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide a Python with sqlcipher3 (M365_MCP_TEST_PYTHON)"
        );
        eprintln!("skipping: create .venv with `pip install sqlcipher3-wheels` to run this check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let key = CacheKey::generate();
    {
        let store = open(dir.path(), &key);
        write_secrets(&store);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/sqlcipher_check.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&db)
        .arg(hex::encode(key.as_bytes()))
        .arg(MARKER)
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python check failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
    assert_eq!(report["with_key"]["ok"], true, "{report}");
    assert_eq!(report["with_key"]["rows"], 50, "{report}");
    assert_eq!(report["with_key"]["marker_found"], true, "{report}");
    assert!(
        report["with_key"]["cipher_version"]
            .as_str()
            .unwrap_or("")
            .starts_with('4'),
        "{report}"
    );
    assert_eq!(report["without_key"]["ok"], false, "{report}");
    assert_eq!(report["wrong_key"]["ok"], false, "{report}");
}
