//! The one error type of this crate.
//!
//! Invariant: no variant ever holds an access token, a refresh token, a device code, a
//! pre-authenticated URL or a request body, so `Display` and `Debug` are safe to log and to show.

use std::time::Duration;

/// Longest part of a user-supplied value echoed back in an error message.
const MAX_ECHO_CHARS: usize = 64;

/// Everything that can go wrong talking to Microsoft Graph or the identity platform.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Graph answered with an error status and (usually) an `{"error": {...}}` body.
    #[error("{}", graph_display(*status, code, message, request_id.as_deref(), *retry_after))]
    Graph {
        /// HTTP status code.
        status: u16,
        /// Graph's `error.code`, e.g. `ErrorItemNotFound`; the HTTP reason phrase when the body had none.
        code: String,
        /// Graph's `error.message`.
        message: String,
        /// The `request-id` response header, or `error.innerError.request-id`.
        request_id: Option<String>,
        /// The `client-request-id` this client sent, for correlating with our own logs.
        client_request_id: Option<String>,
        /// The `Retry-After` Graph asked for, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The connection failed or broke (DNS, TLS, reset, malformed HTTP).
    #[error("Could not reach Microsoft Graph: {message}")]
    Transport {
        /// What failed, without any URL or header.
        message: String,
    },
    /// No complete answer within the configured timeout, after retries.
    #[error("Microsoft Graph did not answer within {} ms", after.as_millis())]
    Timeout {
        /// The per-request timeout that elapsed.
        after: Duration,
    },
    /// An argument was refused before any request was made.
    #[error("Invalid {param} '{value}': {reason}. Expected: {expected}")]
    InvalidArgument {
        /// Parameter name as the caller knows it.
        param: String,
        /// The offending value, truncated for display.
        value: String,
        /// Why it was refused.
        reason: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The account needs to sign in (again): no token, or its refresh token was refused.
    #[error("Sign-in required for account '{account}': {reason}")]
    AuthRequired {
        /// The account id or name the caller asked for.
        account: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The identity platform refused a sign-in request.
    #[error("Sign-in failed ({code}): {description}")]
    Auth {
        /// OAuth `error` code, e.g. `invalid_client`.
        code: String,
        /// OAuth `error_description` (first line), or a summary.
        description: String,
    },
    /// The configuration (environment) is unusable.
    #[error("Configuration error: {0}")]
    Config(String),
    /// A download grew past its size cap.
    #[error("Download exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: u64,
    },
    /// Graph answered with something this client cannot use (not JSON, missing fields, foreign host).
    #[error("Unexpected response from Microsoft Graph: {0}")]
    UnexpectedResponse(String),
    /// Reading the upload source or writing the download destination failed.
    #[error("Local I/O error: {0}")]
    Io(String),
}

fn graph_display(
    status: u16,
    code: &str,
    message: &str,
    request_id: Option<&str>,
    retry_after: Option<Duration>,
) -> String {
    let mut text = format!("Graph error {status} {code}");
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    if let Some(id) = request_id {
        text.push_str(&format!(" (request-id {id})"));
    }
    if let Some(wait) = retry_after {
        text.push_str(&format!(" Retry after {:.1} s.", wait.as_secs_f64()));
    }
    text
}

impl GraphError {
    /// An [`GraphError::InvalidArgument`] with the value truncated for display.
    pub fn invalid_argument(
        param: impl Into<String>,
        value: &str,
        reason: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        GraphError::InvalidArgument {
            param: param.into(),
            value: truncate_for_display(value),
            reason: reason.into(),
            expected: expected.into(),
        }
    }

    /// The HTTP status of a Graph error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Graph { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Graph's `error.code`, if this is a Graph error.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Graph { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Graph's `request-id`, if known.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GraphError::Graph { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The `Retry-After` Graph sent with this error, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Graph { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for a Graph 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// True when trying the same request later may succeed (throttling, 5xx, transport, timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            GraphError::Graph { status, .. } => *status == 429 || *status >= 500,
            GraphError::Transport { .. } | GraphError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Shortens a value for an error message: long values become the first 32 and last 8 characters;
/// control characters are shown escaped so a message never carries raw newlines.
pub(crate) fn truncate_for_display(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let shown: String = if chars.len() > MAX_ECHO_CHARS {
        let head: String = chars[..32].iter().collect();
        let tail: String = chars[chars.len() - 8..].iter().collect();
        format!("{head}…{tail}")
    } else {
        value.to_owned()
    };
    shown
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Maps a reqwest error to ours, dropping the URL (pre-authenticated URLs carry credentials).
pub(crate) fn from_reqwest(err: reqwest::Error, timeout: Duration) -> GraphError {
    if err.is_timeout() {
        return GraphError::Timeout { after: timeout };
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    GraphError::Transport { message }
}
