//! Errors of the Redis cache. Their text names what failed, never a key, a
//! payload, an account id or the Redis password.

use std::time::Duration;

/// Why a cache operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisCacheError {
    /// Redis could not be reached, dropped the connection, or did not answer
    /// within `op_timeout`. The cache is usable again once Redis is.
    #[error("the Redis cache is unavailable: {0}")]
    Unavailable(String),
    /// The entry is larger than `max_entry_bytes` after compression; nothing
    /// was stored.
    #[error("cache entry of {size} bytes (as stored) exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size as it would be stored.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A bad argument or configuration (the text says which and why).
    #[error("{0}")]
    InvalidArgument(String),
    /// A stored value did not decrypt or decode: another cache key, a value
    /// altered or moved to another key, or a format this version does not know.
    #[error("a cached value could not be read: {0}")]
    Corrupt(String),
    /// Redis refused the operation (out of memory, read-only replica, no
    /// permission, a script error …).
    #[error("Redis refused the operation: {0}")]
    Server(String),
}

impl RedisCacheError {
    /// True when the failure is Redis being unreachable or slow.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, RedisCacheError::Unavailable(_))
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        RedisCacheError::Unavailable(format!("no answer within {} ms", after.as_millis()))
    }

    pub(crate) fn corrupt(what: &str) -> Self {
        RedisCacheError::Corrupt(what.to_string())
    }
}

/// Describes a redis-rs error without anything it may quote (arguments of
/// an unknown command, values in a parse error, the URL).
impl From<redis::RedisError> for RedisCacheError {
    fn from(e: redis::RedisError) -> Self {
        use redis::ErrorKind;
        if e.is_timeout() {
            return RedisCacheError::Unavailable("timed out".into());
        }
        if e.is_connection_refusal() {
            return RedisCacheError::Unavailable("connection refused".into());
        }
        if e.is_io_error() || e.is_connection_dropped() {
            return RedisCacheError::Unavailable("connection failed or lost".into());
        }
        match e.kind() {
            ErrorKind::AuthenticationFailed => {
                RedisCacheError::Unavailable("authentication failed".into())
            }
            ErrorKind::Server(redis::ServerErrorKind::BusyLoading) => {
                RedisCacheError::Unavailable("Redis is loading its data set".into())
            }
            ErrorKind::Server(redis::ServerErrorKind::MasterDown) => {
                RedisCacheError::Unavailable("the Redis primary is down".into())
            }
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
                RedisCacheError::Server("unexpected reply type".into())
            }
            _ => {
                let code = e.code().unwrap_or("error").to_string();
                let detail = e.detail().map(sanitize_detail).unwrap_or_default();
                if detail.is_empty() {
                    RedisCacheError::Server(code)
                } else {
                    RedisCacheError::Server(format!("{code} {detail}"))
                }
            }
        }
    }
}

/// Keeps a server message up to anything it might quote.
fn sanitize_detail(detail: &str) -> String {
    let cut = ["'", "\"", "with args"]
        .iter()
        .filter_map(|m| detail.find(m))
        .min()
        .unwrap_or(detail.len());
    let mut s: String = detail[..cut].chars().take(160).collect();
    s.truncate(s.trim_end().len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_stop_before_quotes() {
        assert_eq!(
            sanitize_detail("unknown command 'FOO', with args beginning with: 'secret'"),
            "unknown command"
        );
        assert_eq!(
            sanitize_detail("command not allowed when used memory > 'maxmemory'."),
            "command not allowed when used memory >"
        );
    }
}
