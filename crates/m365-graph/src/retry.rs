//! Retry timing: `Retry-After` parsing and jittered exponential backoff.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Parses a `Retry-After` value given as seconds (`"5"`, `"2.128"`) or as an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), relative to `now`. A date in the past yields zero.
/// Returns `None` for anything else (negative, not a number, not a date).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let wait = m365_graph::parse_retry_after("2.128", SystemTime::now()).unwrap();
/// assert_eq!(wait, Duration::from_millis(2128));
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            // Round to whole milliseconds so "2.128" is exactly 2128 ms.
            let millis = (seconds * 1000.0).round();
            if millis > u64::MAX as f64 {
                return Some(Duration::MAX);
            }
            return Some(Duration::from_millis(millis as u64));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Wait before retry number `attempt` (0 for the first retry): `base × 2^attempt`, capped at
/// `max`, then "equal jitter" — uniformly in `[d/2, d]` — so that many clients throttled at the
/// same moment do not come back in lockstep.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.min(20));
    let full = base.saturating_mul(factor).min(max);
    let half = full / 2;
    let jitter_range = full.saturating_sub(half).as_millis() as u64;
    let jitter = if jitter_range == 0 {
        0
    } else {
        rand::rng().random_range(0..=jitter_range)
    };
    half + Duration::from_millis(jitter)
}

/// Reads `Retry-After` from a header map.
pub(crate) fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()))
}
