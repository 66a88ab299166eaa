//! The HTTP front: one entry point that routes to the Graph surface, the identity platform, the
//! pre-authenticated upload and download URLs and the control API, and applies latency, faults,
//! counters, the request log and `request-id` headers once for all of them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{FaultConfig, Latency};
use crate::odata::Query;
use crate::reply::{GraphError, Reply, ReplyBody};
use crate::state::{World, now_string};

/// Which part of the sandbox answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    /// `/v1.0/...`, Graph itself (counted by [`crate::SandboxHandle::request_count`]).
    Graph,
    /// Pre-authenticated upload URLs (counted as Graph requests too).
    Upload,
    /// Pre-authenticated download URLs (counted as Graph requests too).
    Download,
    /// The identity platform (`/{tenant}/oauth2/v2.0/...`).
    Identity,
    /// The control API (`/_sandbox/...`), never counted.
    Control,
}

/// One line of the request log: no bodies, no tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogEntry {
    /// HTTP method.
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Status answered.
    pub status: u16,
    /// Username the bearer token belonged to, when there was one.
    pub user: Option<String>,
    /// Which part of the sandbox answered.
    pub surface: Surface,
    /// The `request-id` header of the answer.
    pub request_id: String,
    /// For a `$batch`, how many requests it carried.
    pub batch_size: Option<usize>,
}

/// Counters since start or the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestCounts {
    /// HTTP requests to the Graph surface (a `$batch` counts once; uploads and downloads count).
    pub graph: u64,
    /// Requests carried inside `$batch` calls.
    pub batch_inner: u64,
    /// Requests to the identity platform.
    pub identity: u64,
}

/// Knobs that change at run time.
pub(crate) struct Knobs {
    pub latency: Latency,
    pub faults: FaultConfig,
    pub down: bool,
    pub rng: StdRng,
}

/// Shared state of a running sandbox.
pub(crate) struct App {
    pub world: Mutex<World>,
    pub knobs: Mutex<Knobs>,
    pub graph_requests: AtomicU64,
    pub batch_inner: AtomicU64,
    pub identity_requests: AtomicU64,
    pub log: Mutex<Vec<RequestLogEntry>>,
    pub origin: String,
    pub client_id: String,
    pub auto_approve: AtomicBool,
}

/// Locks a mutex, recovering the data if a previous holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl App {
    pub fn new(
        world: World,
        seed: u64,
        latency: Latency,
        faults: FaultConfig,
        origin: String,
        auto_approve: bool,
    ) -> Self {
        Self {
            world: Mutex::new(world),
            knobs: Mutex::new(Knobs {
                latency,
                faults,
                down: false,
                rng: StdRng::seed_from_u64(seed ^ 0xfa_017),
            }),
            graph_requests: AtomicU64::new(0),
            batch_inner: AtomicU64::new(0),
            identity_requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            origin,
            client_id: CLIENT_ID.to_string(),
            auto_approve: AtomicBool::new(auto_approve),
        }
    }

    /// The Graph base URL (`http://127.0.0.1:PORT/v1.0`).
    pub fn graph_base(&self) -> String {
        format!("{}/v1.0", self.origin)
    }

    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            graph: self.graph_requests.load(Ordering::SeqCst),
            batch_inner: self.batch_inner.load(Ordering::SeqCst),
            identity: self.identity_requests.load(Ordering::SeqCst),
        }
    }

    pub fn reset_counters(&self) {
        self.graph_requests.store(0, Ordering::SeqCst);
        self.batch_inner.store(0, Ordering::SeqCst);
        self.identity_requests.store(0, Ordering::SeqCst);
        lock(&self.log).clear();
    }

    /// How long to wait before answering one Graph call.
    pub fn draw_latency(&self) -> Duration {
        let mut knobs = lock(&self.knobs);
        let jitter = knobs.latency.jitter;
        let extra = if jitter.is_zero() {
            Duration::ZERO
        } else {
            let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(knobs.rng.random_range(0..=nanos))
        };
        knobs.latency.fixed + extra
    }

    /// Draws an injected fault for one Graph call (or one `$batch` item).
    pub fn draw_fault(&self) -> Option<GraphError> {
        let mut knobs = lock(&self.knobs);
        let faults = knobs.faults;
        let retry_after = faults.throttle_retry_after.as_secs_f64().ceil().max(0.0) as u64;
        if faults.throttle_ratio > 0.0 && knobs.rng.random::<f64>() < faults.throttle_ratio {
            return Some(
                GraphError::new(
                    429,
                    "TooManyRequests",
                    "Too many requests have been sent. Please retry after the time in the Retry-After header.",
                )
                .header("Retry-After", retry_after.to_string()),
            );
        }
        if faults.unavailable_ratio > 0.0 && knobs.rng.random::<f64>() < faults.unavailable_ratio {
            return Some(
                GraphError::new(
                    503,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Please retry later.",
                )
                .header("Retry-After", retry_after.to_string()),
            );
        }
        None
    }

    pub fn is_down(&self) -> bool {
        lock(&self.knobs).down
    }

    fn record(&self, entry: RequestLogEntry) {
        match entry.surface {
            Surface::Graph | Surface::Upload | Surface::Download => {
                self.graph_requests.fetch_add(1, Ordering::SeqCst);
            }
            Surface::Identity => {
                self.identity_requests.fetch_add(1, Ordering::SeqCst);
            }
            Surface::Control => return,
        }
        lock(&self.log).push(entry);
    }
}

/// Application (client) id the sandbox's identity platform accepts.
pub const CLIENT_ID: &str = "3c9e6a8b-1f2d-4c5e-8a7b-6d5c4b3a2f10";

/// A request as the Graph handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    /// Raw (still percent-encoded) path segments after `/v1.0`.
    pub segments: Vec<String>,
    /// Raw path including `/v1.0`, used for nextLinks.
    pub raw_path: String,
    pub query: Query,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body parsed as a JSON object; an empty body is an empty object.
    pub fn json(&self) -> Result<Map<String, Value>, GraphError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(GraphError::bad_request(
                "The request body must be a JSON object.",
            )),
            Err(e) => Err(GraphError::bad_request(format!(
                "Invalid JSON in request body: {e}"
            ))),
        }
    }

    /// Decoded segment `i`.
    pub fn segment(&self, i: usize) -> Option<String> {
        self.segments.get(i).map(|s| crate::odata::decode_path(s))
    }
}

/// Per-request identity: who is calling and the Graph base URL.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: usize,
    pub base: String,
    pub origin: String,
}

pub(crate) fn split_segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// Turns a reply into an HTTP response with Graph's standard headers.
pub(crate) fn render(
    reply: Result<Reply, GraphError>,
    request_id: &str,
    client_request_id: &str,
) -> Response<Body> {
    let (status, headers, body, content_type) = match reply {
        Ok(reply) => match reply.body {
            ReplyBody::Empty => (reply.status, reply.headers, Vec::new(), None),
            ReplyBody::Json(v) => (
                reply.status,
                reply.headers,
                serde_json::to_vec(&v).unwrap_or_default(),
                Some(JSON_CONTENT_TYPE.to_string()),
            ),
            ReplyBody::Bytes { content_type, data } => {
                (reply.status, reply.headers, data, Some(content_type))
            }
        },
        Err(error) => {
            let body = error.body(request_id, client_request_id, &now_string());
            (
                error.status,
                error.headers.clone(),
                serde_json::to_vec(&body).unwrap_or_default(),
                Some(JSON_CONTENT_TYPE.to_string()),
            )
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("content-type", ct);
    }
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain([
            ("request-id", request_id),
            ("client-request-id", client_request_id),
        ])
    {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            h.append(n, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(
        r#"{"ServerInfo":{"DataCenter":"Sandbox","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SBX000001","ADSiteName":"SBX"}}"#,
    ) {
        h.insert("x-ms-ags-diagnostic", v);
    }
    response
}

/// The single axum handler.
pub(crate) async fn entry(
    State(app): State<Arc<App>>,
    request: axum::extract::Request,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_ascii_uppercase();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let path_and_query = match &raw_query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
        })
        .collect();
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = headers
        .iter()
        .find(|(k, _)| k == "client-request-id")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let body = match axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await {
        Ok(b) => b.to_vec(),
        Err(_) => {
            return render(
                Err(GraphError::new(
                    413,
                    "RequestEntityTooLarge",
                    "The request body is too large.",
                )),
                &request_id,
                &client_request_id,
            );
        }
    };
    let request = Request {
        method: method.clone(),
        segments: split_segments(&path),
        raw_path: path.clone(),
        query: Query::parse(raw_query.as_deref()),
        headers,
        body,
    };

    let first = request
        .segments
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let (surface, outcome, user, batch_size) = match first {
        "v1.0" => {
            let out = crate::graph::handle(&app, request).await;
            (Surface::Graph, out.reply, out.user, out.batch_size)
        }
        "_upload" => (
            Surface::Upload,
            crate::graph::drive::upload_put(&app, &request),
            None,
            None,
        ),
        "_download" => (
            Surface::Download,
            crate::graph::drive::download(&app, &request),
            None,
            None,
        ),
        "_monitor" => (
            Surface::Download,
            crate::graph::drive::monitor(&app, &request),
            None,
            None,
        ),
        "_sandbox" => (
            Surface::Control,
            crate::control::handle(&app, &request),
            None,
            None,
        ),
        _ => {
            let (reply, user) = crate::identity::handle(&app, &request);
            (Surface::Identity, reply, user, None)
        }
    };
    let status = match &outcome {
        Ok(r) => r.status,
        Err(e) => e.status,
    };
    app.record(RequestLogEntry {
        method,
        path: path_and_query,
        status,
        user,
        surface,
        request_id: request_id.clone(),
        batch_size,
    });
    render(outcome, &request_id, &client_request_id)
}
