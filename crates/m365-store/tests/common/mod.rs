//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;

use m365_store::{CacheKey, Dependencies, EntryKey, OpenOutcome, Store, StoreConfig};

/// Opens a store at `dir/cache.db` with `key`, expecting a clean open.
pub fn open(dir: &Path, key: &CacheKey) -> Store {
    open_with(StoreConfig::new(dir.join("cache.db")), key)
}

/// Opens a store with a given config, expecting a clean open.
pub fn open_with(config: StoreConfig, key: &CacheKey) -> Store {
    let (store, outcome) = Store::open(config, key.clone(), None).expect("store opens");
    assert!(matches!(outcome, OpenOutcome::Opened { .. }), "{outcome:?}");
    store
}

/// A key for `email_get` of message `id` in `account`.
pub fn message_key(account: &str, id: &str) -> EntryKey {
    EntryKey::new(
        account,
        "email_get",
        &serde_json::json!({ "email_id": id, "include_body": true }),
    )
}

/// A payload that contains `marker`, about `len` bytes long.
pub fn payload(marker: &str, len: usize) -> Vec<u8> {
    let mut body = format!("{{\"subject\":\"{marker}\",\"body\":\"");
    while body.len() < len {
        body.push_str("lorem ipsum dolor sit amet ");
    }
    body.push_str("\"}");
    body.into_bytes()
}

/// Fills `n` email_get entries for `account`.
pub fn fill(store: &Store, account: &str, n: usize, len: usize) {
    for i in 0..n {
        let id = format!("msg-{i}");
        store
            .set(
                &message_key(account, &id),
                &Dependencies::item(&id),
                &payload(&id, len),
            )
            .expect("set");
    }
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
