//! The one error type tool handlers return, and how it reaches the client.
//!
//! Every message is written for the person reading the assistant's answer:
//! what went wrong and what to do. None carries a token, a key, or content
//! from a mailbox.

use m365_graph::GraphError;
use serde_json::{Value, json};

/// Why a tool call failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// An argument is wrong: `Invalid {param} '{value}': {reason}. Expected: {expected}`.
    #[error("Invalid {param} '{value}': {reason}. Expected: {expected}")]
    InvalidArgument {
        /// Parameter name.
        param: String,
        /// The value given (truncated).
        value: String,
        /// What is wrong with it.
        reason: String,
        /// What is accepted.
        expected: String,
    },
    /// The arguments do not fit the tool's schema at all.
    #[error("Invalid arguments for {tool}: {detail}")]
    BadArguments {
        /// The tool.
        tool: String,
        /// What the parser said.
        detail: String,
    },
    /// No account (or no unambiguous account) to act for.
    #[error("{0}")]
    Account(String),
    /// Microsoft Graph (or the identity platform) failed.
    #[error("{0}")]
    Graph(#[from] GraphError),
    /// The server cannot do this in its current configuration.
    #[error("{0}")]
    Unavailable(String),
}

/// Keeps echoed values short: a person needs to recognise them, not read them.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

impl ToolError {
    /// An invalid-argument error.
    pub fn invalid(param: &str, value: &str, reason: &str, expected: &str) -> Self {
        ToolError::InvalidArgument {
            param: param.to_string(),
            value: shorten(value),
            reason: reason.to_string(),
            expected: expected.to_string(),
        }
    }

    /// The structured form clients see beside the text.
    pub fn to_json(&self) -> Value {
        match self {
            ToolError::Graph(GraphError::Graph {
                status,
                code,
                message,
                request_id,
                ..
            }) => json!({"error": {
                "kind": "graph",
                "status": status,
                "code": code,
                "message": message,
                "request_id": request_id,
                "text": self.to_string(),
            }}),
            ToolError::Graph(GraphError::InvalidArgument { .. })
            | ToolError::InvalidArgument { .. }
            | ToolError::BadArguments { .. } => {
                json!({"error": {"kind": "invalid_argument", "text": self.to_string()}})
            }
            ToolError::Graph(e) => {
                json!({"error": {"kind": "graph", "code": e.code(), "text": self.to_string()}})
            }
            ToolError::Account(_) => {
                json!({"error": {"kind": "account", "text": self.to_string()}})
            }
            ToolError::Unavailable(_) => {
                json!({"error": {"kind": "unavailable", "text": self.to_string()}})
            }
        }
    }
}
