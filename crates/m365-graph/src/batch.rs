//! JSON batching (`POST /$batch`): up to 20 requests per call, per-item status, per-item retry
//! of throttled items.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::client::{GraphClient, RequestOptions, parse_json_body};
use crate::error::GraphError;
use crate::retry::parse_retry_after;

/// Graph's limit of requests in one `$batch` call.
pub const MAX_BATCH_SIZE: usize = 20;

/// One request inside a batch.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    /// HTTP method.
    pub method: Method,
    /// URL relative to the version root, e.g. `/me/messages/{encoded id}?$select=id`.
    pub url: String,
    /// Request headers; `Content-Type: application/json` is added for JSON bodies.
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<Value>,
}

impl BatchRequest {
    /// A `GET` item.
    pub fn get(url: impl Into<String>) -> Self {
        BatchRequest {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `POST` item with a JSON body.
    pub fn post(url: impl Into<String>, body: Value) -> Self {
        BatchRequest {
            method: Method::POST,
            url: url.into(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// A `PATCH` item with a JSON body.
    pub fn patch(url: impl Into<String>, body: Value) -> Self {
        BatchRequest {
            method: Method::PATCH,
            url: url.into(),
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// A `DELETE` item.
    pub fn delete(url: impl Into<String>) -> Self {
        BatchRequest {
            method: Method::DELETE,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header to the item.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn to_json(&self, id: usize) -> Result<Value, GraphError> {
        if !self.url.starts_with('/') || self.url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(GraphError::invalid_argument(
                "batch url",
                &self.url,
                "must start with '/' and have encoded segments",
                "a path relative to the Graph version root",
            ));
        }
        let mut headers = Map::new();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), Value::String(value.clone()));
        }
        let mut item = json!({
            "id": id.to_string(),
            "method": self.method.as_str(),
            "url": self.url,
        });
        if let Some(body) = &self.body {
            if !headers
                .keys()
                .any(|name| name.eq_ignore_ascii_case("content-type"))
            {
                headers.insert(
                    "Content-Type".into(),
                    Value::String("application/json".into()),
                );
            }
            item["body"] = body.clone();
        }
        if !headers.is_empty() {
            item["headers"] = Value::Object(headers);
        }
        Ok(item)
    }
}

/// The answer to one [`BatchRequest`].
#[derive(Debug, Clone)]
pub struct BatchResponse {
    /// HTTP status of this item.
    pub status: u16,
    /// Response headers of this item.
    pub headers: HashMap<String, String>,
    /// Response body (`Null` when absent).
    pub body: Value,
}

impl BatchResponse {
    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// This item's failure as a [`GraphError`], or `None` when it succeeded.
    pub fn error(&self) -> Option<GraphError> {
        if self.is_success() {
            return None;
        }
        let error = self.body.get("error");
        let text = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
        let inner = error.and_then(|e| e.get("innerError").or_else(|| e.get("innererror")));
        Some(GraphError::Graph {
            status: self.status,
            code: text("code").unwrap_or("BatchItemFailed").to_owned(),
            message: text("message").unwrap_or("").to_owned(),
            request_id: self.header("request-id").map(str::to_owned).or_else(|| {
                inner
                    .and_then(|inner| inner.get("request-id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            client_request_id: None,
            retry_after: self.retry_after(),
        })
    }

    fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|value| parse_retry_after(value, SystemTime::now()))
    }
}

impl GraphClient {
    /// Sends `requests` through `$batch` in chunks of at most 20 and returns one response per
    /// request, in the same order. Items answered 429 or 503 are sent again (in a smaller batch)
    /// after their `Retry-After`, up to `max_retries` times; other item failures are returned as
    /// they are. The call fails only when a whole `$batch` call fails.
    pub async fn batch(
        &self,
        account: &str,
        requests: Vec<BatchRequest>,
    ) -> Result<Vec<BatchResponse>, GraphError> {
        let url = self.url_for("/$batch", &[], &RequestOptions::default())?;
        let items = requests
            .iter()
            .enumerate()
            .map(|(index, request)| request.to_json(index))
            .collect::<Result<Vec<_>, _>>()?;
        let mut results: Vec<Option<BatchResponse>> = vec![None; requests.len()];
        let all_indices: Vec<usize> = (0..requests.len()).collect();
        for chunk in all_indices.chunks(MAX_BATCH_SIZE) {
            let mut pending: Vec<usize> = chunk.to_vec();
            let mut round = 0u32;
            while !pending.is_empty() {
                // A batch may be sent twice only if every item in it may.
                let options = RequestOptions {
                    retry_non_idempotent: pending
                        .iter()
                        .all(|&i| requests[i].method != Method::POST),
                    ..RequestOptions::default()
                };
                let body = json!({ "requests": pending.iter().map(|&i| items[i].clone()).collect::<Vec<_>>() });
                let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|err| {
                    GraphError::UnexpectedResponse(format!("cannot encode batch: {err}"))
                })?);
                let response = self
                    .execute(account, Method::POST, url.clone(), Some(bytes), &options)
                    .await?;
                let mut answers = parse_batch_answers(parse_json_body(&response)?, requests.len())?;
                let mut throttled = Vec::new();
                let mut wait = Duration::ZERO;
                let mut waits_known = true;
                for &index in &pending {
                    let answer = answers.remove(&index).ok_or_else(|| {
                        GraphError::UnexpectedResponse(format!("batch answer without item {index}"))
                    })?;
                    if matches!(answer.status, 429 | 503)
                        && round < self.config.max_throttle_retries
                    {
                        match answer.retry_after() {
                            Some(item_wait) => wait = wait.max(item_wait),
                            None => waits_known = false,
                        }
                        throttled.push(index);
                    }
                    results[index] = Some(answer);
                }
                if !throttled.is_empty() {
                    if !waits_known {
                        wait = wait.max(self.backoff(round));
                    }
                    let wait = wait.min(self.config.max_retry_after);
                    tracing::info!(
                        items = throttled.len(),
                        wait_ms = wait.as_millis() as u64,
                        "batch items throttled; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    round += 1;
                }
                pending = throttled;
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(index, answer)| {
                answer.ok_or_else(|| {
                    GraphError::UnexpectedResponse(format!("no batch answer for item {index}"))
                })
            })
            .collect()
    }
}

fn parse_batch_answers(
    body: Value,
    count: usize,
) -> Result<HashMap<usize, BatchResponse>, GraphError> {
    let Some(responses) = body.get("responses").and_then(Value::as_array) else {
        return Err(GraphError::UnexpectedResponse(
            "a $batch answer without 'responses'".into(),
        ));
    };
    let mut answers = HashMap::new();
    for response in responses {
        let index = response
            .get("id")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<usize>().ok())
            .filter(|index| *index < count)
            .ok_or_else(|| {
                GraphError::UnexpectedResponse("a $batch answer with an unknown id".into())
            })?;
        let status = response
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|status| u16::try_from(status).ok())
            .ok_or_else(|| {
                GraphError::UnexpectedResponse("a $batch answer without a status".into())
            })?;
        let headers = response
            .get("headers")
            .and_then(Value::as_object)
            .map(|headers| {
                headers
                    .iter()
                    .map(|(name, value)| {
                        let value = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (name.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        answers.insert(
            index,
            BatchResponse {
                status,
                headers,
                body: response.get("body").cloned().unwrap_or(Value::Null),
            },
        );
    }
    Ok(answers)
}
