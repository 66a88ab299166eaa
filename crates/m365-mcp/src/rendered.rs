//! Cache hits kept ready to send.
//!
//! A hit used to parse the stored payload into a `serde_json::Value`, add
//! `_cache`, serialise the object for the text content, and have rmcp
//! serialise it twice more inside the JSON-RPC message (once escaped as the
//! text, once as `structuredContent`). For a 20 KiB listing that was most of
//! the server's time per call. [`RenderCache`] keeps, for recently served
//! entries, the payload's compact JSON and its escaped form; a hit then only
//! appends the current `_cache` object ([`CachedAnswer`]). The stdio
//! transport writes those bytes straight into the message
//! (`crate::stdio`); other transports get the same result as a
//! [`CallToolResult`] built from them.
//!
//! Correctness never depends on invalidating this memo. Every hit reads the
//! entry from the store first, and a memo entry is used only when it holds
//! exactly what the store just returned under that key: the key names the
//! account, and the entry's `created_at` and payload bytes must be equal.
//! An entry the store invalidated, purged or overwrote is therefore never
//! served from here, and neither is another account's. Invalidations and
//! purges still drop matching memo entries, so they stop holding memory.
//! Memory is bounded by a byte budget, least recently used out first.
//! Nothing here is written to disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use m365_store::{CachedEntry, EntryKey};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

/// Bytes the memo may hold (payloads and their renderings together).
pub const RENDER_BUDGET: usize = 8 * 1024 * 1024;

/// One stored payload, rendered: the object's compact JSON without
/// `_cache`, and the same text escaped for a JSON string.
#[derive(Debug)]
pub struct Rendered {
    /// `created_at` of the store entry this was rendered from.
    created_at_ms: i64,
    /// The object as compact JSON (what `Value::to_string` gives).
    json: Box<str>,
    /// The stored bytes when they differ from `json` (not the case for
    /// anything this server stores, but never assumed).
    payload: Option<Box<[u8]>>,
    /// `json` without its closing brace, escaped as inside a JSON string
    /// (no quotes around it).
    escaped_head: Box<str>,
    /// Whether the object has members (a comma goes before `_cache`).
    has_members: bool,
}

impl Rendered {
    /// Renders a payload; `None` unless it is a JSON object without a
    /// `_cache` member (anything else takes the general path).
    pub fn new(entry: &CachedEntry) -> Option<Rendered> {
        let value: Value = serde_json::from_slice(&entry.payload).ok()?;
        let object = value.as_object()?;
        if object.contains_key("_cache") {
            return None;
        }
        let json = serde_json::to_string(&value).ok()?;
        let head = &json[..json.len() - 1];
        let escaped = serde_json::to_string(head).ok()?;
        let escaped_head = escaped[1..escaped.len() - 1].into();
        let payload = (entry.payload.as_slice() != json.as_bytes())
            .then(|| entry.payload.clone().into_boxed_slice());
        Some(Rendered {
            created_at_ms: entry.created_at_ms,
            has_members: !object.is_empty(),
            json: json.into_boxed_str(),
            payload,
            escaped_head,
        })
    }

    /// Whether this is a rendering of exactly `entry` (its time and bytes).
    pub fn matches(&self, entry: &CachedEntry) -> bool {
        self.created_at_ms == entry.created_at_ms
            && entry.payload.as_slice() == self.payload.as_deref().unwrap_or(self.json.as_bytes())
    }

    /// The object's compact JSON up to, not including, its closing brace.
    fn head(&self) -> &str {
        &self.json[..self.json.len() - 1]
    }

    /// Heap bytes held.
    fn size(&self) -> usize {
        self.json.len() + self.payload.as_ref().map_or(0, |p| p.len()) + self.escaped_head.len()
    }
}

/// A cache hit: a rendered entry and this call's `_cache` object.
#[derive(Debug, Clone)]
pub struct CachedAnswer {
    rendered: Arc<Rendered>,
    /// `_cache` as a value (for [`CachedAnswer::into_value`]).
    meta: Value,
    /// What follows the head: `,"_cache":{…}}`.
    tail: String,
}

impl CachedAnswer {
    /// The answer for `rendered` with `meta` as its `_cache` member.
    pub fn new(rendered: Arc<Rendered>, meta: Value) -> CachedAnswer {
        let mut tail = String::with_capacity(96);
        if rendered.has_members {
            tail.push(',');
        }
        tail.push_str("\"_cache\":");
        tail.push_str(&meta.to_string());
        tail.push('}');
        CachedAnswer {
            rendered,
            meta,
            tail,
        }
    }

    /// Bytes of the object with `_cache` written as JSON and as a JSON
    /// string (what a response holds; a capacity hint).
    pub fn spliced_len(&self) -> usize {
        self.rendered.json.len() + self.rendered.escaped_head.len() + 3 * self.tail.len() + 2
    }

    /// The object with `_cache`, as compact JSON (the text content).
    pub fn text(&self) -> String {
        let head = self.rendered.head();
        let mut text = String::with_capacity(head.len() + self.tail.len());
        text.push_str(head);
        text.push_str(&self.tail);
        text
    }

    /// The object with `_cache`, as a value (the structured content).
    pub fn into_value(self) -> Value {
        let mut value: Value =
            serde_json::from_str(&self.rendered.json).expect("rendered from a parsed object");
        if let Some(object) = value.as_object_mut() {
            object.insert("_cache".into(), self.meta);
        }
        value
    }

    /// Appends the object with `_cache` as raw JSON.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.rendered.head().as_bytes());
        out.extend_from_slice(self.tail.as_bytes());
    }

    /// Appends the object with `_cache` as a JSON string (quoted, escaped).
    pub fn write_json_string(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(self.rendered.escaped_head.as_bytes());
        let tail = serde_json::to_string(&self.tail).expect("a string serialises");
        out.extend_from_slice(&tail.as_bytes()[1..]);
    }

    /// The tool result clients get: the object as text content and as
    /// structured content.
    pub fn into_call_result(self) -> CallToolResult {
        let text = self.text();
        let mut result = CallToolResult::structured(Value::Null);
        result.content = vec![ContentBlock::text(text)];
        result.structured_content = Some(self.into_value());
        result
    }
}

/// What a tool call answers: a value, or a cache hit ready to send.
#[derive(Debug)]
pub enum Answer {
    /// A value built by a handler (misses, bypasses, writes, local tools).
    Value(Value),
    /// A fresh or stale hit.
    Cached(CachedAnswer),
}

impl From<Value> for Answer {
    fn from(value: Value) -> Self {
        Answer::Value(value)
    }
}

impl Answer {
    /// The tool result clients get: the object as text content and as
    /// structured content.
    pub fn into_call_result(self) -> CallToolResult {
        match self {
            Answer::Value(value) => structured(value),
            Answer::Cached(hit) => hit.into_call_result(),
        }
    }
}

/// `CallToolResult::structured`, with the text written by serde_json's
/// writer (the same text, without `Display`'s per-fragment overhead).
pub fn structured(value: Value) -> CallToolResult {
    let text = serde_json::to_string(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::structured(Value::Null);
    result.content = vec![ContentBlock::text(text)];
    result.structured_content = Some(value);
    result
}

struct Slot {
    rendered: Arc<Rendered>,
    account_id: String,
    resource_type: String,
    last_used: u64,
}

#[derive(Default)]
struct Memo {
    slots: HashMap<String, Slot>,
    bytes: usize,
    clock: u64,
}

/// Recently served cache entries, rendered (see the module docs).
pub struct RenderCache {
    memo: Mutex<Memo>,
    budget: usize,
}

impl Default for RenderCache {
    fn default() -> Self {
        RenderCache::with_budget(RENDER_BUDGET)
    }
}

fn cost(key: &str, rendered: &Rendered) -> usize {
    // The key is held twice (map and slot), plus the slot's names.
    rendered.size() + 3 * key.len() + 128
}

impl RenderCache {
    /// A memo holding at most `budget` bytes.
    pub fn with_budget(budget: usize) -> Self {
        RenderCache {
            memo: Mutex::new(Memo::default()),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memo> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rendering of `entry`, just read from the store under `key`:
    /// from the memo when it holds exactly this entry, rendered (and kept)
    /// otherwise. `None` when the payload is not a JSON object without
    /// `_cache`.
    pub fn get(&self, key: &EntryKey, entry: &CachedEntry) -> Option<Arc<Rendered>> {
        let held = {
            let mut memo = self.lock();
            memo.clock += 1;
            let now = memo.clock;
            memo.slots.get_mut(key.as_str()).map(|slot| {
                slot.last_used = now;
                slot.rendered.clone()
            })
        };
        // Compared and rendered outside the lock: both take a while for a
        // large tree.
        if let Some(rendered) = held
            && rendered.matches(entry)
        {
            return Some(rendered);
        }
        let rendered = Arc::new(Rendered::new(entry)?);
        self.insert(key, rendered.clone());
        Some(rendered)
    }

    fn insert(&self, key: &EntryKey, rendered: Arc<Rendered>) {
        let size = cost(key.as_str(), &rendered);
        let mut memo = self.lock();
        if let Some(old) = memo.slots.remove(key.as_str()) {
            memo.bytes -= cost(key.as_str(), &old.rendered);
        }
        if size > self.budget / 2 {
            return;
        }
        while memo.bytes + size > self.budget {
            let Some(oldest) = memo
                .slots
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(slot) = memo.slots.remove(&oldest) {
                memo.bytes -= cost(&oldest, &slot.rendered);
            }
        }
        memo.clock += 1;
        let last_used = memo.clock;
        memo.bytes += size;
        memo.slots.insert(
            key.as_str().to_string(),
            Slot {
                rendered,
                account_id: key.account_id().to_string(),
                resource_type: key.resource_type().to_string(),
                last_used,
            },
        );
    }

    fn retain(&self, keep: impl Fn(&Slot) -> bool) {
        let mut memo = self.lock();
        let Memo { slots, bytes, .. } = &mut *memo;
        slots.retain(|key, slot| {
            let keep = keep(slot);
            if !keep {
                *bytes -= cost(key, &slot.rendered);
            }
            keep
        });
    }

    /// Drops an account's entries of one resource type.
    pub fn forget_resource(&self, account_id: &str, resource_type: &str) {
        self.retain(|s| s.account_id != account_id || s.resource_type != resource_type);
    }

    /// Drops every entry of an account.
    pub fn forget_account(&self, account_id: &str) {
        self.retain(|s| s.account_id != account_id);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.retain(|_| false);
    }

    /// Entries held, and their bytes.
    pub fn usage(&self) -> (usize, usize) {
        let memo = self.lock();
        (memo.slots.len(), memo.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m365_store::Freshness;
    use serde_json::json;

    fn entry(payload: &str, created_at_ms: i64) -> CachedEntry {
        CachedEntry {
            payload: payload.as_bytes().to_vec(),
            freshness: Freshness::Fresh,
            created_at_ms,
            fresh_until_ms: created_at_ms + 60_000,
            expires_at_ms: created_at_ms + 600_000,
        }
    }

    fn key(account: &str) -> EntryKey {
        EntryKey::new(
            account,
            "email_list",
            &json!({"folder": "inbox", "limit": 5}),
        )
    }

    fn meta() -> Value {
        json!({"status": "fresh", "cached_at": "2026-01-01T00:00:00Z", "age_seconds": 7})
    }

    /// What a hit answered before the memo: parse, insert `_cache`,
    /// `CallToolResult::structured`.
    fn reference(payload: &str) -> CallToolResult {
        let mut value: Value = serde_json::from_str(payload).unwrap();
        value
            .as_object_mut()
            .unwrap()
            .insert("_cache".into(), meta());
        CallToolResult::structured(value)
    }

    #[test]
    fn a_hit_is_the_same_result_as_before() {
        for payload in [
            r#"{"value":[{"id":"a","subject":"Q\"3\" \\ plan","n":1.5,"ü":"\u0001"}],"folder_id":"x"}"#,
            r#"{}"#,
            r#"{ "spaced" : [1, 2] }"#,
        ] {
            let rendered = Arc::new(Rendered::new(&entry(payload, 1)).unwrap());
            let hit = CachedAnswer::new(rendered, meta());
            let expected = reference(payload);
            let mut raw = Vec::new();
            hit.write_json(&mut raw);
            let mut quoted = Vec::new();
            hit.write_json_string(&mut quoted);
            let text = expected.content[0].as_text().unwrap().text.clone();
            assert_eq!(String::from_utf8(raw).unwrap(), text);
            assert_eq!(
                String::from_utf8(quoted).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
            assert_eq!(hit.into_call_result(), expected);
        }
    }

    #[test]
    fn only_objects_without_cache_are_rendered() {
        for payload in [
            "[1,2]",
            "\"s\"",
            "3",
            "null",
            r#"{"_cache":1}"#,
            "{not json",
        ] {
            assert!(Rendered::new(&entry(payload, 1)).is_none(), "{payload}");
        }
    }

    #[test]
    fn the_memo_serves_only_the_exact_entry_the_store_returned() {
        let memo = RenderCache::default();
        let adele = key("adele");
        let first = entry(r#"{"value":[1]}"#, 10);
        let a = memo.get(&adele, &first).unwrap();
        assert!(Arc::ptr_eq(&a, &memo.get(&adele, &first).unwrap()));
        // Overwritten: another time, or other bytes at the same time.
        let later = entry(r#"{"value":[1]}"#, 11);
        let b = memo.get(&adele, &later).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let same_ms = entry(r#"{"value":[2]}"#, 11);
        let c = memo.get(&adele, &same_ms).unwrap();
        assert_eq!(&*c.json, r#"{"value":[2]}"#);
        // Another account's key never finds this account's rendering.
        let megan = key("megan");
        let theirs = entry(r#"{"value":["megan"]}"#, 11);
        let d = memo.get(&megan, &theirs).unwrap();
        assert_eq!(&*d.json, r#"{"value":["megan"]}"#);
        assert_eq!(
            &*memo.get(&adele, &same_ms).unwrap().json,
            r#"{"value":[2]}"#
        );
        assert_eq!(memo.usage().0, 2);
    }

    #[test]
    fn forgetting_and_the_budget() {
        let memo = RenderCache::with_budget(64 * 1024);
        let big = format!(r#"{{"value":"{}"}}"#, "x".repeat(10_000));
        for i in 0..10 {
            let k = EntryKey::new("adele", "email_get", &json!({ "email_id": i }));
            memo.get(&k, &entry(&big, i)).unwrap();
        }
        let (n, bytes) = memo.usage();
        assert!(
            bytes <= 64 * 1024 && n < 10 && n > 0,
            "{n} entries, {bytes} bytes"
        );
        // Too big for the memo: still rendered for this call, not kept.
        let huge = format!(r#"{{"value":"{}"}}"#, "x".repeat(40_000));
        let k = key("adele");
        assert!(memo.get(&k, &entry(&huge, 1)).is_some());
        assert_eq!(memo.usage().0, n);

        let megan = key("megan");
        memo.get(&megan, &entry("{}", 1)).unwrap();
        memo.forget_resource("adele", "email_get");
        assert_eq!(memo.usage().0, 1);
        memo.forget_account("megan");
        assert_eq!(memo.usage(), (0, 0));
    }
}
