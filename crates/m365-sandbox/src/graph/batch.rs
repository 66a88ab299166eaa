//! JSON batching (`POST /v1.0/$batch`): up to 20 requests, answered in one response with a
//! per-request `id`, `status`, `headers` and `body`. Faults are drawn per request inside.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use crate::app::{App, Caller, Request, lock, split_segments};
use crate::odata::Query;
use crate::reply::{GraphError, GraphResult, Reply, ReplyBody};
use crate::state::now_string;

/// Largest number of requests in one batch.
pub(crate) const MAX_BATCH: usize = 20;

/// Serves a `$batch`; returns the reply and how many requests it carried.
pub(crate) fn handle(
    app: &App,
    caller: &Caller,
    request: &Request,
) -> (GraphResult, Option<usize>) {
    if request.method != "POST" {
        return (Err(GraphError::method_not_allowed()), None);
    }
    let body = match request.json() {
        Ok(b) => b,
        Err(e) => return (Err(e), None),
    };
    let Some(Value::Array(items)) = body.get("requests") else {
        return (
            Err(GraphError::bad_request(
                "Invalid batch payload format: 'requests' is required.",
            )),
            None,
        );
    };
    let size = items.len();
    if size > MAX_BATCH {
        return (
            Err(GraphError::bad_request(format!(
                "The batch contains {size} requests; a batch may contain at most {MAX_BATCH}."
            ))),
            Some(size),
        );
    }
    if size == 0 {
        return (
            Err(GraphError::bad_request(
                "Invalid batch payload format: 'requests' is empty.",
            )),
            Some(0),
        );
    }
    let mut parsed = Vec::new();
    for item in items {
        let id = item.get("id").and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        });
        let method = item.get("method").and_then(Value::as_str);
        let url = item.get("url").and_then(Value::as_str);
        let (Some(id), Some(method), Some(url)) = (id, method, url) else {
            return (
                Err(GraphError::bad_request(
                    "Invalid batch payload format: every request needs 'id', 'method' and 'url'.",
                )),
                Some(size),
            );
        };
        if parsed.iter().any(
            |(pid, ..): &(
                String,
                String,
                String,
                Option<&Value>,
                Option<&Value>,
                Vec<String>,
            )| *pid == id,
        ) {
            return (
                Err(GraphError::bad_request(format!(
                    "Batch request id '{id}' is used more than once."
                ))),
                Some(size),
            );
        }
        let depends: Vec<String> = item
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        parsed.push((
            id,
            method.to_ascii_uppercase(),
            url.to_string(),
            item.get("headers"),
            item.get("body"),
            depends,
        ));
    }
    app.batch_inner.fetch_add(size as u64, Ordering::SeqCst);

    let mut responses: Vec<Value> = Vec::new();
    let mut statuses: Vec<(String, u16)> = Vec::new();
    for (id, method, url, headers, body, depends) in parsed {
        let failed_dependency = depends
            .iter()
            .any(|d| statuses.iter().any(|(sid, st)| sid == d && *st >= 400));
        let result = if failed_dependency {
            Err(GraphError::new(
                424,
                "FailedDependency",
                "The request depends on a request that failed.",
            ))
        } else {
            let inner = inner_request(&method, &url, headers, body);
            match inner {
                Err(e) => Err(e),
                Ok(inner) => match app.draw_fault() {
                    Some(fault) => Err(fault),
                    None => {
                        let mut world = lock(&app.world);
                        crate::graph::dispatch(&mut world, caller, &inner)
                    }
                },
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let (status, item) = render_item(&id, result, &request_id);
        statuses.push((id, status));
        responses.push(item);
    }
    (Ok(Reply::json(json!({"responses": responses}))), Some(size))
}

fn inner_request(
    method: &str,
    url: &str,
    headers: Option<&Value>,
    body: Option<&Value>,
) -> Result<Request, GraphError> {
    // URLs are relative to the version root ("/me/messages?$top=5"); absolute ones are refused.
    if url.contains("://") {
        return Err(GraphError::bad_request(
            "Batch request URLs must be relative to the service root.",
        ));
    }
    let url = url.trim_start_matches("/v1.0");
    let url = if url.starts_with('/') {
        url.to_string()
    } else {
        format!("/{url}")
    };
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url.clone(), None),
    };
    let raw_path = format!("/v1.0{path}");
    let mut header_list: Vec<(String, String)> = headers
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.to_ascii_lowercase(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let body_bytes = match body {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => {
            if !header_list.iter().any(|(k, _)| k == "content-type") {
                return Err(GraphError::bad_request(
                    "A batch request with a body must have a Content-Type header.",
                ));
            }
            serde_json::to_vec(v).unwrap_or_default()
        }
    };
    header_list.push(("x-batch-item".into(), "true".into()));
    Ok(Request {
        method: method.to_string(),
        segments: split_segments(&raw_path),
        raw_path,
        query: Query::parse(query.as_deref()),
        headers: header_list,
        body: body_bytes,
    })
}

fn render_item(id: &str, result: GraphResult, request_id: &str) -> (u16, Value) {
    match result {
        Ok(reply) => {
            let mut headers = Map::new();
            for (k, v) in &reply.headers {
                headers.insert(k.clone(), Value::String(v.clone()));
            }
            let body = match reply.body {
                ReplyBody::Empty => None,
                ReplyBody::Json(v) => {
                    headers.insert("Content-Type".into(), json!("application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"));
                    Some(v)
                }
                ReplyBody::Bytes { content_type, data } => {
                    headers.insert("Content-Type".into(), Value::String(content_type));
                    use base64::Engine;
                    Some(Value::String(
                        base64::engine::general_purpose::STANDARD.encode(data),
                    ))
                }
            };
            let mut item = json!({"id": id, "status": reply.status, "headers": headers});
            if let (Some(b), Some(map)) = (body, item.as_object_mut()) {
                map.insert("body".into(), b);
            }
            (reply.status, item)
        }
        Err(error) => {
            let mut headers = Map::new();
            for (k, v) in &error.headers {
                headers.insert(k.clone(), Value::String(v.clone()));
            }
            headers.insert("Content-Type".into(), json!("application/json"));
            let body = error.body(request_id, request_id, &now_string());
            (
                error.status,
                json!({"id": id, "status": error.status, "headers": headers, "body": body}),
            )
        }
    }
}
