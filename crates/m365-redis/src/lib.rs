//! A shared cache backend for m365-mcp on Redis, with the contract of the
//! SQLCipher [`m365_store::Store`]: fresh/stale/expired entries by the same
//! per-resource TTL policy, zstd above 50 KiB, a 10 MiB entry cap, precise
//! invalidation by dependency tags, statistics per account and resource, the
//! persistent task queue — plus a single-flight lock, so that several
//! servers sharing one Redis fetch a key once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), m365_redis::RedisCacheError> {
//! use m365_redis::{RedisCache, RedisConfig};
//! use m365_store::{CacheKey, Dependencies, EntryKey};
//!
//! let key = CacheKey::generate(); // in the product: the cache key from the KeyManager
//! let cache = RedisCache::new(RedisConfig::new("redis://127.0.0.1:6379/0"), &key)?;
//! let entry = EntryKey::new("oid.tid", "email_list", &serde_json::json!({"folder": "inbox"}));
//! cache.set(&entry, &Dependencies::container("inbox"), br#"{"value":[]}"#).await?;
//! assert!(cache.get(&entry).await?.is_some());
//! # Ok(()) }
//! ```
//!
//! # Encryption
//!
//! Redis keeps its data in clear (in memory, in RDB/AOF files, on replicas),
//! so everything that could carry personal data is encrypted here, before it
//! leaves the process. From the 32-byte cache key, HKDF-SHA256 (no salt,
//! info `"m365-mcp redis cache v1"`) derives 64 bytes: the first 32 are an
//! AES-256-GCM key for values, the last 32 an HMAC-SHA256 key for names.
//!
//! * **Values** — payloads (compressed first when large), the cache-key text
//!   of each entry, task parameters, results and errors, and account ids
//!   wherever they must be read back (statistics, task listings) — are
//!   sealed as `0x01 ‖ 96-bit random nonce ‖ ciphertext ‖ 128-bit tag`, a
//!   fresh nonce per value. The associated data is the Redis key holding
//!   the value, the field name, and for payloads also the entry's encoding,
//!   timestamps and raw size: a ciphertext moved to another key or field,
//!   or an entry whose lifetime was edited, fails to decrypt
//!   ([`RedisCacheError::Corrupt`]) instead of being served.
//! * **Names** — account ids, cache keys, dependency tags and task
//!   de-duplication keys appear in Redis key names and index members only as
//!   HMAC-SHA256 (domain-separated by a label, truncated to 128 bits, hex).
//!   Resource types (tool names such as `email_list`), operation names,
//!   timestamps, sizes, counters and task states are in clear.
//!
//! Servers sharing a namespace must share the cache key; with another key
//! an entry is simply not found (its name hashes differently). No key,
//! payload or account id appears in an error or a log line.
//!
//! # Key layout
//!
//! `{ns}` is [`RedisConfig::namespace`] (default `m365mcp`); `{acct}` is the
//! HMAC of the account id, `{entry}` the HMAC of the entry's cache-key text
//! (`resource:account:hash`), `{tag}` the HMAC of account and tag, `{dedupe}`
//! the HMAC of account, operation and canonical parameters, `{task}` a
//! random 128-bit hex id, `{res}` the resource type in clear.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{ns}:e:{entry}` | hash | one entry: `p` sealed payload, `e` encoding (0 raw, 1 zstd), `c`/`f`/`x` created, fresh-until, expires-at (ms), `rb`/`sb` raw and stored bytes, `k` sealed cache-key text, `a` `{acct}`, `r` `{res}`, `t` its `{tag}`s; `PEXPIREAT` expires-at + `expired_retention` |
//! | `{ns}:ix:{acct}:{res}` | zset | the entries of one account and resource type, scored by their `PEXPIREAT` time |
//! | `{ns}:tg:{acct}:{res}:{tag}` | zset | the entries of one account and resource type that depend on a tag, same scores |
//! | `{ns}:st:{acct}:{res}` | hash | counters `hits`, `stale_hits`, `misses`, `refreshes`, `writes`, `invalidations`, `evictions` |
//! | `{ns}:res:{acct}` | set | resource types with entries or counters for the account |
//! | `{ns}:accounts` | hash | `{acct}` → sealed account id (so statistics name real accounts) |
//! | `{ns}:lk:{entry}` | string | single-flight lock: a random token, `PX` `lock_ttl` |
//! | `{ns}:t:{task}` | hash | one task: `a` `{acct}`, `ae` sealed account id, `op` operation, `pj` sealed parameters, `st` status, `pr` priority, `at`/`ma` attempts and maximum, `er`/`rs` sealed last error and result, `c`/`ra`/`sa`/`fa` created, run-after, started, finished (ms), `dd` `{dedupe}`, `sq` sequence |
//! | `{ns}:tq:ready` | zset | queued tasks that may run now, scored priority × 10¹² + sequence (priority first, then FIFO) |
//! | `{ns}:tq:delayed` | zset | queued tasks waiting for their run-after time (the score) |
//! | `{ns}:tq:running` | zset | running tasks, scored by start time (for the reaper) |
//! | `{ns}:tq:done` | zset | completed and failed tasks, scored by finish time (for pruning) |
//! | `{ns}:tq:all`, `{ns}:tq:acct:{acct}` | zset | every task / the account's tasks, scored by sequence (listing) |
//! | `{ns}:tq:dd:{dedupe}` | string | the id of the queued or running task with that account, operation and parameters |
//! | `{ns}:tq:seq` | string | the enqueue sequence counter |
//!
//! Only entries and locks have a time to live. Every change that touches an
//! entry and its index members (set, invalidate, purge, clear) is one Lua
//! script, so an invalidation never leaves a servable entry outside an
//! index, and index keys, having no TTL, are never chosen by a `volatile-*`
//! eviction policy (use `volatile-lru`, `volatile-ttl` or `noeviction`;
//! `allkeys-*` may evict an index). [`RedisCache::maintain`] drops index
//! members whose entries Redis has expired. Scripts name keys they compute,
//! so this backend needs a single Redis (with replicas), not Redis Cluster.

#![warn(missing_docs)]

mod cache;
mod config;
mod crypto;
mod error;
mod scripts;
mod tasks;

pub use cache::{LockToken, RedisCache};
pub use config::RedisConfig;
pub use error::RedisCacheError;
