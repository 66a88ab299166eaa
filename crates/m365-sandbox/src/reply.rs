//! What a Graph handler returns: a reply or a Graph-style error.

use serde_json::{Value, json};

/// Body of a reply.
#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Empty,
    Json(Value),
    Bytes { content_type: String, data: Vec<u8> },
}

/// A successful (or redirecting) answer of the Graph surface.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
}

impl Reply {
    pub fn json(value: Value) -> Self {
        Self::with_status(200, value)
    }

    pub fn with_status(status: u16, value: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(value),
        }
    }

    pub fn created(value: Value) -> Self {
        Self::with_status(201, value)
    }

    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: ReplyBody::Empty,
        }
    }

    pub fn bytes(content_type: &str, data: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: ReplyBody::Bytes {
                content_type: content_type.to_string(),
                data,
            },
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A Graph error: rendered as `{"error":{"code","message","innerError":{...}}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub headers: Vec<(String, String)>,
}

impl GraphError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400 with Graph's generic code for malformed requests.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 400 as Exchange answers an invalid property value.
    pub fn invalid_property(message: impl Into<String>) -> Self {
        Self::new(400, "ErrorInvalidProperty", message)
    }

    /// 404 for an Outlook item (message, folder, event, contact, rule).
    pub fn item_not_found() -> Self {
        Self::new(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 404 for a OneDrive item.
    pub fn drive_item_not_found() -> Self {
        Self::new(404, "itemNotFound", "The resource could not be found.")
    }

    /// 400 for a segment Graph does not know.
    pub fn unknown_segment(segment: &str) -> Self {
        Self::new(
            400,
            "BadRequest",
            format!("Resource not found for the segment '{segment}'."),
        )
    }

    /// 405 for a known resource used with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
        )
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The JSON body, with the request's ids in `innerError`.
    pub fn body(&self, request_id: &str, client_request_id: &str, date: &str) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        })
    }
}

/// Result of a Graph handler.
pub(crate) type GraphResult = Result<Reply, GraphError>;
