//! The Graph HTTP client: one connection pool per process, bearer tokens from a [`TokenSource`],
//! retries, per-account concurrency, paging, JSON helpers and error mapping.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::config::GraphConfig;
use crate::encode::encode_query;
use crate::error::{GraphError, from_reqwest};
use crate::retry::{backoff_delay, retry_after_header};

/// A boxed, sendable future, as returned by [`TokenSource`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Query parameters: pairs of unencoded key and value, e.g. `[("$top", "10")]`.
pub type Query<'a> = &'a [(&'a str, &'a str)];

/// Where the client gets bearer tokens. Held as `Arc<dyn TokenSource>`.
pub trait TokenSource: Send + Sync {
    /// A currently valid access token for the account (cached by the implementation).
    fn access_token<'a>(&'a self, account_id: &'a str)
    -> BoxFuture<'a, Result<String, GraphError>>;

    /// Obtains a new access token even if the cached one looks valid; called once after a 401.
    fn refresh<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<String, GraphError>>;
}

/// Per-call switches for headers Graph understands.
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Sends `Prefer: outlook.body-content-type="text"` (message and event bodies as plain text).
    pub prefer_text_body: bool,
    /// Sends `ConsistencyLevel: eventual` for advanced directory queries; adds `$count=true`
    /// when the query has a `$filter` and no `$count`, as Graph requires (not for `$search` alone).
    pub consistency_eventual: bool,
    /// Sends `Prefer: outlook.timezone="…"` (IANA or Windows time-zone name).
    pub prefer_timezone: Option<String>,
    /// Additional headers. `Authorization` and `Host` are refused.
    pub headers: Vec<(String, String)>,
    /// Retry this request on 5xx, timeouts and broken connections even though its method is not
    /// idempotent. Only set it when sending the request twice is harmless.
    pub retry_non_idempotent: bool,
}

impl RequestOptions {
    /// Options with the plain-text body preference set.
    pub fn text_body() -> Self {
        RequestOptions {
            prefer_text_body: true,
            ..RequestOptions::default()
        }
    }
}

/// A successful response whose body is kept as bytes.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Per-account throttling state.
#[derive(Debug)]
struct AccountState {
    permits: Arc<Semaphore>,
    /// Set from a 429's `Retry-After`: every request of the account waits until then.
    throttled_until: Mutex<Option<Instant>>,
}

/// Microsoft Graph client. Cheap to share behind an `Arc`; keeps one connection pool.
pub struct GraphClient {
    pub(crate) http: reqwest::Client,
    pub(crate) config: GraphConfig,
    tokens: Arc<dyn TokenSource>,
    accounts: Mutex<HashMap<String, Arc<AccountState>>>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base_url", &self.config.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    Fail(GraphError),
}

impl GraphClient {
    /// Builds the client; fails on an invalid configuration.
    pub fn new(config: GraphConfig, tokens: Arc<dyn TokenSource>) -> Result<Self, GraphError> {
        config.validate()?;
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.transfer_timeout)
            // Redirects are followed by hand (downloads only) so a token never follows one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| GraphError::Config(format!("cannot build the HTTP client: {err}")))?;
        Ok(GraphClient {
            http,
            config,
            tokens,
            accounts: Mutex::new(HashMap::new()),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &GraphConfig {
        &self.config
    }

    /// `GET {base}{path}?{query}`, returning the JSON body (`Null` for an empty body).
    pub async fn get(
        &self,
        account: &str,
        path: &str,
        query: Query<'_>,
    ) -> Result<Value, GraphError> {
        self.get_with(account, path, query, &RequestOptions::default())
            .await
    }

    /// [`GraphClient::get`] with extra headers.
    pub async fn get_with(
        &self,
        account: &str,
        path: &str,
        query: Query<'_>,
        options: &RequestOptions,
    ) -> Result<Value, GraphError> {
        self.request(account, Method::GET, path, query, None, options)
            .await
    }

    /// `POST` with a JSON body (`None` sends an empty body with `Content-Length: 0`).
    pub async fn post(
        &self,
        account: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, GraphError> {
        self.request(
            account,
            Method::POST,
            path,
            &[],
            body,
            &RequestOptions::default(),
        )
        .await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(
        &self,
        account: &str,
        path: &str,
        body: &Value,
    ) -> Result<Value, GraphError> {
        self.request(
            account,
            Method::PATCH,
            path,
            &[],
            Some(body),
            &RequestOptions::default(),
        )
        .await
    }

    /// `PUT` with a JSON body.
    pub async fn put(&self, account: &str, path: &str, body: &Value) -> Result<Value, GraphError> {
        self.request(
            account,
            Method::PUT,
            path,
            &[],
            Some(body),
            &RequestOptions::default(),
        )
        .await
    }

    /// `DELETE`; Graph answers 204, returned as `Null`.
    pub async fn delete(&self, account: &str, path: &str) -> Result<Value, GraphError> {
        self.request(
            account,
            Method::DELETE,
            path,
            &[],
            None,
            &RequestOptions::default(),
        )
        .await
    }

    /// `PUT` of raw bytes with the given `Content-Type` (a OneDrive simple upload below 4 MiB,
    /// `/me/drive/items/{id}/content` or `/me/drive/root:/{encoded path}:/content`), returning
    /// the JSON answer (the `driveItem`). Retried like any idempotent request.
    pub async fn put_bytes(
        &self,
        account: &str,
        path: &str,
        bytes: impl Into<Bytes>,
        content_type: &str,
    ) -> Result<Value, GraphError> {
        let options = RequestOptions::default();
        if HeaderValue::from_str(content_type).is_err() || content_type.trim().is_empty() {
            return Err(GraphError::invalid_argument(
                "content_type",
                content_type,
                "not a valid header value",
                "a MIME type such as application/octet-stream",
            ));
        }
        let url = self.url_for(path, &[], &options)?;
        let response = self
            .execute_typed(
                account,
                Method::PUT,
                url,
                Some(bytes.into()),
                content_type,
                &options,
            )
            .await?;
        parse_json_body(&response)
    }

    /// `POST` with a JSON body to an action that answers `202 Accepted` with a `Location`
    /// header (a long-running operation such as a driveItem copy). Returns the body (usually
    /// `Null`) and the `Location` (the operation's monitor URL), if any.
    pub async fn post_accepted(
        &self,
        account: &str,
        path: &str,
        body: &Value,
    ) -> Result<(Value, Option<String>), GraphError> {
        let options = RequestOptions::default();
        let url = self.url_for(path, &[], &options)?;
        let bytes = serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|err| GraphError::invalid_argument("body", "", err.to_string(), "JSON"))?;
        let response = self
            .execute(account, Method::POST, url, Some(bytes), &options)
            .await?;
        let location = header_str(&response.headers, "location").map(str::to_owned);
        Ok((parse_json_body(&response)?, location))
    }

    /// Any method, with query, JSON body and options.
    pub async fn request(
        &self,
        account: &str,
        method: Method,
        path: &str,
        query: Query<'_>,
        body: Option<&Value>,
        options: &RequestOptions,
    ) -> Result<Value, GraphError> {
        let url = self.url_for(path, query, options)?;
        let body = body
            .map(|value| serde_json::to_vec(value).map(Bytes::from))
            .transpose()
            .map_err(|err| GraphError::invalid_argument("body", "", err.to_string(), "JSON"))?;
        let response = self.execute(account, method, url, body, options).await?;
        parse_json_body(&response)
    }

    /// Follows `@odata.nextLink` from `path` and collects `value` items until there is no next
    /// link or `limit` items are collected. Pages may be shorter than any `$top` asked for.
    pub async fn get_paged(
        &self,
        account: &str,
        path: &str,
        query: Query<'_>,
        limit: usize,
    ) -> Result<Vec<Value>, GraphError> {
        self.get_paged_with(account, path, query, limit, &RequestOptions::default())
            .await
    }

    /// [`GraphClient::get_paged`] with extra headers (sent on every page).
    pub async fn get_paged_with(
        &self,
        account: &str,
        path: &str,
        query: Query<'_>,
        limit: usize,
        options: &RequestOptions,
    ) -> Result<Vec<Value>, GraphError> {
        let mut items = Vec::new();
        if limit == 0 {
            return Ok(items);
        }
        let mut url = self.url_for(path, query, options)?;
        loop {
            let response = self
                .execute(account, Method::GET, url, None, options)
                .await?;
            let mut page = parse_json_body(&response)?;
            let values = match page.get_mut("value").map(Value::take) {
                Some(Value::Array(values)) => values,
                _ => {
                    return Err(GraphError::UnexpectedResponse(
                        "a collection page without a 'value' array".into(),
                    ));
                }
            };
            let room = limit - items.len();
            items.extend(values.into_iter().take(room));
            if items.len() >= limit {
                break;
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                Some(next) => url = self.checked_next_link(next)?,
                None => break,
            }
        }
        Ok(items)
    }

    /// Builds `{base}{path}?{query}`. `path` must start with `/` and have its segments encoded.
    pub fn url_for(
        &self,
        path: &str,
        query: Query<'_>,
        options: &RequestOptions,
    ) -> Result<Url, GraphError> {
        check_path(path)?;
        let mut text = format!(
            "{}{}",
            self.config.base_url.as_str().trim_end_matches('/'),
            path
        );
        let mut pairs: Vec<(&str, &str)> = query.to_vec();
        let has = |name: &str| query.iter().any(|(key, _)| key.eq_ignore_ascii_case(name));
        if options.consistency_eventual && has("$filter") && !has("$count") {
            pairs.push(("$count", "true"));
        }
        if !pairs.is_empty() {
            text.push('?');
            text.push_str(&encode_query(&pairs));
        }
        Url::parse(&text).map_err(|err| {
            GraphError::invalid_argument("path", path, err.to_string(), "a Graph path")
        })
    }

    /// Accepts a `@odata.nextLink` only on the Graph origin, so a token never leaves it.
    fn checked_next_link(&self, next: &str) -> Result<Url, GraphError> {
        let url = Url::parse(next).map_err(|_| {
            GraphError::UnexpectedResponse("an @odata.nextLink that is not an absolute URL".into())
        })?;
        if !self.is_graph_origin(&url) {
            return Err(GraphError::UnexpectedResponse(format!(
                "an @odata.nextLink on another host ({}); not following it",
                url.host_str().unwrap_or("")
            )));
        }
        Ok(url)
    }

    /// True when `url` has the scheme, host and port of the configured Graph base URL.
    pub(crate) fn is_graph_origin(&self, url: &Url) -> bool {
        url.origin() == self.config.base_url.origin()
    }

    fn account_state(&self, account: &str) -> Arc<AccountState> {
        let key = account.to_ascii_lowercase();
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        accounts
            .entry(key)
            .or_insert_with(|| {
                Arc::new(AccountState {
                    permits: Arc::new(Semaphore::new(self.config.per_account_concurrency)),
                    throttled_until: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits out an account-wide throttle, then takes one of the account's request slots.
    pub(crate) async fn acquire(&self, account: &str) -> Result<OwnedSemaphorePermit, GraphError> {
        let state = self.account_state(account);
        loop {
            let until = *state
                .throttled_until
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep(until - Instant::now()).await;
                }
                _ => break,
            }
        }
        state
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| GraphError::Config("the client is shutting down".into()))
    }

    fn note_throttle(&self, account: &str, wait: Duration) {
        let state = self.account_state(account);
        let mut until = state
            .throttled_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let candidate = Instant::now() + wait;
        if until.is_none_or(|current| current < candidate) {
            *until = Some(candidate);
        }
    }

    /// Sends one logical request with retries, 401 refresh and per-account limits; returns the
    /// successful response or the mapped Graph error.
    pub(crate) async fn execute(
        &self,
        account: &str,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        options: &RequestOptions,
    ) -> Result<RawResponse, GraphError> {
        self.execute_typed(account, method, url, body, "application/json", options)
            .await
    }

    /// [`GraphClient::execute`] with a body of the given `Content-Type`.
    pub(crate) async fn execute_typed(
        &self,
        account: &str,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        content_type: &str,
        options: &RequestOptions,
    ) -> Result<RawResponse, GraphError> {
        let extra_headers = build_extra_headers(options)?;
        let idempotent = method != Method::POST || options.retry_non_idempotent;
        let client_request_id = new_client_request_id();
        let mut retries = 0u32;
        let mut refreshed = false;
        let mut fresh_token: Option<String> = None;
        loop {
            let token = match fresh_token.take() {
                Some(token) => token,
                None => self.tokens.access_token(account).await?,
            };
            let permit = self.acquire(account).await?;
            let started = Instant::now();
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .timeout(self.config.timeout)
                .bearer_auth(&token)
                .header("client-request-id", &client_request_id)
                .headers(extra_headers.clone());
            drop(token);
            request = match &body {
                Some(bytes) => request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes.clone()),
                None if method == Method::GET || method == Method::DELETE => request,
                // Graph answers 411 to a body-less POST without Content-Length.
                None => request
                    .header(reqwest::header::CONTENT_LENGTH, "0")
                    .body(Bytes::new()),
            };
            let outcome = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            };
            drop(permit);
            let next = match outcome {
                Ok((status, headers, bytes)) => {
                    tracing::debug!(
                        method = %method,
                        path = url.path(),
                        status = status.as_u16(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        request_id = header_str(&headers, "request-id").unwrap_or(""),
                        "graph request"
                    );
                    if status.is_success() {
                        return Ok(RawResponse {
                            headers,
                            body: bytes,
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED && !refreshed {
                        refreshed = true;
                        fresh_token = Some(self.tokens.refresh(account).await?);
                        continue;
                    }
                    let error = graph_error(status, &headers, &bytes, Some(&client_request_id));
                    self.after_status(account, status, &headers, error, idempotent, retries)
                }
                Err(err) => {
                    let retryable = err.is_connect()
                        || (idempotent && (err.is_timeout() || err.is_request() || err.is_body()));
                    let error = from_reqwest(err, self.config.timeout);
                    tracing::debug!(method = %method, path = url.path(), error = %error, "graph request failed");
                    if retryable && retries < self.config.max_retries {
                        Next::Retry(self.backoff(retries))
                    } else {
                        Next::Fail(error)
                    }
                }
            };
            match next {
                Next::Retry(wait) => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                Next::Fail(error) => return Err(error),
            }
        }
    }

    /// Decides whether an error status is retried, and after how long.
    fn after_status(
        &self,
        account: &str,
        status: StatusCode,
        headers: &HeaderMap,
        error: GraphError,
        idempotent: bool,
        retries: u32,
    ) -> Next {
        // A 429/503 that says when to come back is throttling; without
        // Retry-After a 503 is an outage and gets the ordinary budget.
        let limit = if matches!(status.as_u16(), 429 | 503) && retry_after_header(headers).is_some()
        {
            self.config.max_throttle_retries
        } else {
            self.config.max_retries
        };
        if retries >= limit {
            return Next::Fail(error);
        }
        match status.as_u16() {
            429 | 503 => {
                let wait = match retry_after_header(headers) {
                    Some(wait) => wait.min(self.config.max_retry_after),
                    None => self.backoff(retries),
                };
                if status.as_u16() == 429 {
                    self.note_throttle(account, wait);
                }
                tracing::info!(
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "graph throttled; waiting"
                );
                Next::Retry(wait)
            }
            500 | 502 | 504 if idempotent => Next::Retry(self.backoff(retries)),
            _ => Next::Fail(error),
        }
    }

    pub(crate) fn backoff(&self, retries: u32) -> Duration {
        backoff_delay(retries, self.config.backoff_base, self.config.backoff_max)
    }

    pub(crate) async fn access_token(&self, account: &str) -> Result<String, GraphError> {
        self.tokens.access_token(account).await
    }

    pub(crate) async fn refresh_token(&self, account: &str) -> Result<String, GraphError> {
        self.tokens.refresh(account).await
    }
}

/// Refuses paths that would escape their place in the URL.
fn check_path(path: &str) -> Result<(), GraphError> {
    let reason = if !path.starts_with('/') {
        Some("must start with '/'")
    } else if path.contains(['?', '#']) {
        Some("must not contain '?' or '#'; pass query parameters separately and encode segments")
    } else if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Some("must not contain spaces or control characters; encode segments")
    } else if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        Some("must not contain '.' or '..' segments")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(GraphError::invalid_argument(
            "path",
            path,
            reason,
            "a Graph path such as /me/messages/{encoded id}",
        )),
        None => Ok(()),
    }
}

fn build_extra_headers(options: &RequestOptions) -> Result<HeaderMap, GraphError> {
    let mut headers = HeaderMap::new();
    let mut prefer = Vec::new();
    if options.prefer_text_body {
        prefer.push("outlook.body-content-type=\"text\"".to_owned());
    }
    if let Some(zone) = &options.prefer_timezone {
        if zone.contains(['"', '\\']) || zone.chars().any(char::is_control) {
            return Err(GraphError::invalid_argument(
                "timezone",
                zone,
                "contains a quote, backslash or control character",
                "an IANA or Windows time-zone name",
            ));
        }
        prefer.push(format!("outlook.timezone=\"{zone}\""));
    }
    if !prefer.is_empty() {
        let value = HeaderValue::from_str(&prefer.join(", ")).map_err(|_| {
            GraphError::invalid_argument("timezone", "", "not a valid header value", "ASCII text")
        })?;
        headers.insert("prefer", value);
    }
    if options.consistency_eventual {
        headers.insert("consistencylevel", HeaderValue::from_static("eventual"));
    }
    for (name, value) in &options.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            GraphError::invalid_argument(
                "header",
                name,
                "not a valid header name",
                "an HTTP header name",
            )
        })?;
        if header_name == reqwest::header::AUTHORIZATION || header_name == reqwest::header::HOST {
            return Err(GraphError::invalid_argument(
                "header",
                name,
                "is set by the client",
                "a header other than Authorization or Host",
            ));
        }
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            GraphError::invalid_argument(
                "header",
                name,
                "has a value that is not valid in a header",
                "visible ASCII",
            )
        })?;
        headers.append(header_name, header_value);
    }
    Ok(headers)
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Parses a 2xx body as JSON; an empty body (202, 204) is `Null`.
pub(crate) fn parse_json_body(response: &RawResponse) -> Result<Value, GraphError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&response.body).map_err(|_| {
        GraphError::UnexpectedResponse(format!(
            "a body that is not JSON (content-type {})",
            header_str(&response.headers, "content-type").unwrap_or("unknown")
        ))
    })
}

/// Maps an error response to [`GraphError::Graph`], reading Graph's `{"error": {...}}` body.
pub(crate) fn graph_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    client_request_id: Option<&str>,
) -> GraphError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let code = error
        .and_then(|error| error.get("code"))
        .and_then(Value::as_str)
        .filter(|code| !code.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("HttpError")
                .replace(' ', "")
        });
    let message = error
        .and_then(|error| error.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let inner = error.and_then(|error| error.get("innerError").or_else(|| error.get("innererror")));
    let request_id = header_str(headers, "request-id")
        .map(str::to_owned)
        .or_else(|| {
            inner
                .and_then(|inner| inner.get("request-id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    GraphError::Graph {
        status: status.as_u16(),
        code,
        message,
        request_id,
        client_request_id: client_request_id.map(str::to_owned),
        retry_after: retry_after_header(headers),
    }
}

/// A random (version 4) UUID for the `client-request-id` header.
pub(crate) fn new_client_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
