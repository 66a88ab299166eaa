//! The key manager against the real OS keyring (gnome-keyring's Secret
//! Service in CI), and the headless case where no Secret Service exists.
//!
//! One test in this binary, because it changes `DBUS_SESSION_BUS_ADDRESS`.

use std::process::Command;

use m365_store::{KEYRING_USER, KeyManager, KeySource, OsKeyring, StoreConfig, open_encrypted};

fn secret_tool_lookup(service: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args(["lookup", "service", service, "username", KEYRING_USER])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn keyring_when_reachable_key_file_when_headless() {
    let service = format!("m365-mcp-test-{}", std::process::id());

    // 1. Headless: no D-Bus session at all → a 0600 key file, with the
    //    keyring left alone.
    let saved = std::env::var_os("DBUS_SESSION_BUS_ADDRESS");
    // SAFETY: this binary holds one test, so no other thread reads the environment.
    unsafe {
        std::env::set_var(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/m365-mcp-test-bus",
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let keys = KeyManager::new(
        None,
        Box::new(OsKeyring::new(&service)),
        dir.path().join("cache.key"),
        vec![db.clone()],
    );
    let opened = open_encrypted(StoreConfig::new(&db), &keys).expect("headless open");
    assert_eq!(
        opened.key_source,
        KeySource::KeyFile(dir.path().join("cache.key"))
    );
    assert!(opened.key_created);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cache.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(opened);
    // Still headless, a second start reuses the key file and the cache opens.
    let again = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
    assert!(!again.key_created);
    assert_eq!(
        again.outcome,
        m365_store::OpenOutcome::Opened { created: false }
    );
    drop(again);
    match saved {
        // SAFETY: as above.
        Some(v) => unsafe { std::env::set_var("DBUS_SESSION_BUS_ADDRESS", v) },
        None => unsafe { std::env::remove_var("DBUS_SESSION_BUS_ADDRESS") },
    }

    // 2. With a Secret Service: the key goes to the keyring, where
    //    `secret-tool` (libsecret, not our code) finds it.
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() || !probe_keyring() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run these tests inside a D-Bus session with an unlocked gnome-keyring"
        );
        eprintln!("skipping the Secret Service half: no Secret Service is reachable");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let keyring = OsKeyring::new(&service);
    let keys = KeyManager::new(
        None,
        Box::new(keyring.clone()),
        dir.path().join("cache.key"),
        vec![db.clone()],
    );
    let opened = open_encrypted(StoreConfig::new(&db), &keys).expect("open with keyring");
    assert_eq!(opened.key_source, KeySource::Keyring);
    assert!(opened.key_created);
    assert!(
        !dir.path().join("cache.key").exists(),
        "no key file when a keyring is reachable"
    );
    let stored = secret_tool_lookup(&service).expect("secret-tool sees the entry");
    let loaded = keys.load_or_create().unwrap();
    assert_eq!(stored, loaded.key.to_base64().as_str());
    drop(opened);
    let again = open_encrypted(StoreConfig::new(&db), &keys).unwrap();
    assert!(!again.key_created);
    assert_eq!(
        again.outcome,
        m365_store::OpenOutcome::Opened { created: false }
    );

    // Rotation stores the new key where the old one was: in the keyring.
    drop(again);
    m365_store::rotate_key(&keys).unwrap();
    let rotated = secret_tool_lookup(&service).expect("entry still there");
    assert_ne!(rotated, stored);
    assert!(m365_store::opens_with_key(
        &db,
        &keys.load_or_create().unwrap().key
    ));
    let _ = Command::new("secret-tool")
        .args(["clear", "service", &service, "username", KEYRING_USER])
        .status();
}

/// True when a Secret Service answers on the session bus.
fn probe_keyring() -> bool {
    use m365_store::{KeyringBackend, KeyringRead};
    let probe = OsKeyring::new("m365-mcp-test-probe");
    !matches!(probe.read("probe"), KeyringRead::Unreachable(_))
}
