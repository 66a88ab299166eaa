//! Percent-encoding of ids and paths put into Graph URLs, and validation of ids.
//!
//! Graph ids are opaque: Outlook ids are base64 and contain `=`, `+`, `/`, `-`, `_`; personal
//! OneDrive ids contain `!`. Each one must land in exactly one URL path segment, so everything
//! outside RFC 3986's unreserved set is percent-encoded.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::GraphError;

/// Characters left as they are in a path segment: RFC 3986 "unreserved" only.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters left as they are in a query key or value. `$`, `,`, `(`, `)`, `:`, `/` and `@` are
/// legal in a query and keep OData expressions readable in logs; `&`, `=`, `+`, `#`, `%`, quotes
/// and spaces are encoded.
const QUERY: &AsciiSet = &SEGMENT
    .remove(b'$')
    .remove(b',')
    .remove(b'(')
    .remove(b')')
    .remove(b':')
    .remove(b'/')
    .remove(b'@');

/// Longest id accepted by [`validate_id`].
const MAX_ID_LEN: usize = 2048;

/// Percent-encodes one URL path segment (an id, a name, a well-known folder name).
///
/// ```
/// assert_eq!(m365_graph::encode_segment("AAMk+a/b=="), "AAMk%2Ba%2Fb%3D%3D");
/// assert_eq!(m365_graph::encode_segment("4B9F!123"), "4B9F%21123");
/// ```
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Percent-encodes a OneDrive path segment by segment, keeping the `/` separators.
///
/// Empty segments (doubled or trailing slashes) are dropped; a leading `/` is kept when given.
///
/// ```
/// assert_eq!(m365_graph::encode_drive_path("/a/b c/#x%"), "/a/b%20c/%23x%25");
/// ```
pub fn encode_drive_path(path: &str) -> String {
    let encoded: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(encode_segment)
        .collect();
    let joined = encoded.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Percent-encodes a query key or value.
pub fn encode_query_component(value: &str) -> String {
    utf8_percent_encode(value, QUERY).to_string()
}

/// Builds `k=v&k2=v2` with every key and value encoded.
pub fn encode_query(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                encode_query_component(key),
                encode_query_component(value)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks that `value` can be used as a Graph id: non-empty, no `/`, no `..`, no control
/// characters, at most 2048 characters. Returns the value unchanged.
///
/// The error reads `Invalid {param} '{value}': {reason}. Expected: {expected}`.
///
/// ```
/// assert!(m365_graph::validate_id("message_id", "AAMkAG+x=").is_ok());
/// assert!(m365_graph::validate_id("message_id", "../me").is_err());
/// ```
pub fn validate_id<'a>(param: &str, value: &'a str) -> Result<&'a str, GraphError> {
    const EXPECTED: &str = "a Graph id as returned by a list or get tool";
    let reason = if value.trim().is_empty() {
        Some("must not be empty")
    } else if value.contains('/') || value.contains('\\') {
        Some("must not contain '/' or '\\'")
    } else if value.contains("..") {
        Some("must not contain '..'")
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else if value.len() > MAX_ID_LEN {
        Some("is too long")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(GraphError::invalid_argument(param, value, reason, EXPECTED)),
        None => Ok(value),
    }
}
