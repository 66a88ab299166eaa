//! Where the Redis is and how the cache behaves on it.

use std::fmt;
use std::time::Duration;

/// Connection and limits of a [`crate::RedisCache`]. [`RedisConfig::new`]
/// gives the product's values.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port/db` (or `redis+unix:///path`).
    /// Redacted in `Debug`.
    pub url: String,
    /// Prefix of every key (default `m365mcp`): 1 to 64 characters of
    /// `A-Z a-z 0-9 _ . -`. Servers that share a namespace share the cache.
    pub namespace: String,
    /// Multiplies every policy's fresh and expiry ages (default 1.0), like
    /// `StoreConfig::ttl_scale`. Must be finite and above 0.
    pub ttl_scale: f64,
    /// Largest entry as stored (after compression, as in `StoreConfig`);
    /// larger ones are refused with [`crate::RedisCacheError::TooLarge`]
    /// and not stored (default 10 MiB).
    pub max_entry_bytes: usize,
    /// Payloads of at least this size are zstd-compressed (default 50 KiB).
    pub compress_threshold: usize,
    /// zstd level (default 3).
    pub zstd_level: i32,
    /// How long an expired entry stays for stale-if-error before Redis
    /// removes it (`PEXPIREAT` expires-at + this; default 24 h).
    pub expired_retention: Duration,
    /// Every Redis round trip gives up after this with
    /// [`crate::RedisCacheError::Unavailable`] (default 500 ms); it is also
    /// the connect and response timeout of the connection.
    pub op_timeout: Duration,
    /// Lifetime of a single-flight lock (default 15 s): a holder that dies
    /// blocks others at most this long.
    pub lock_ttl: Duration,
}

impl RedisConfig {
    /// The product's defaults for the Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            namespace: "m365mcp".to_string(),
            ttl_scale: 1.0,
            max_entry_bytes: 10 * 1024 * 1024,
            compress_threshold: 50 * 1024,
            zstd_level: 3,
            expired_retention: Duration::from_secs(24 * 3600),
            op_timeout: Duration::from_millis(500),
            lock_ttl: Duration::from_secs(15),
        }
    }
}

/// The URL without its user-info (which may hold a password).
pub(crate) fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>@{}", &url[..scheme_end + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted_url(&self.url))
            .field("namespace", &self.namespace)
            .field("ttl_scale", &self.ttl_scale)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("compress_threshold", &self.compress_threshold)
            .field("zstd_level", &self.zstd_level)
            .field("expired_retention", &self.expired_retention)
            .field("op_timeout", &self.op_timeout)
            .field("lock_ttl", &self.lock_ttl)
            .finish()
    }
}

/// True for 1..=max characters of `A-Z a-z 0-9 _ . -`: safe inside key
/// names and `SCAN MATCH` patterns without escaping.
pub(crate) fn is_name_safe(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let c = RedisConfig::new("redis://user:s3cret@10.0.0.1:6379/2");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("10.0.0.1:6379/2"), "{shown}");
        assert_eq!(redacted_url("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn safe_names() {
        assert!(is_name_safe("email_list", 100));
        assert!(is_name_safe("m365mcp.prod-1", 64));
        assert!(!is_name_safe("", 64));
        assert!(!is_name_safe("a:b", 64));
        assert!(!is_name_safe("a*", 64));
        assert!(!is_name_safe("a b", 64));
    }
}
