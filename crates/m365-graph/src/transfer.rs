//! Streamed uploads (upload sessions) and downloads (with manual, host-checked redirects).
//!
//! Invariant: the bearer token goes only to the Graph origin. Pre-authenticated upload and
//! download URLs get no `Authorization` header, and their URLs never appear in errors or logs.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::client::{GraphClient, RequestOptions, graph_error, new_client_request_id};
use crate::config::is_acceptable_scheme;
use crate::error::{GraphError, from_reqwest};
use crate::retry::retry_after_header;

/// Hosts OneDrive and SharePoint send downloads from; a leading `.` matches any subdomain.
pub const DEFAULT_DOWNLOAD_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    ".sharepoint.com",
    ".sharepoint-df.com",
    ".sharepoint-us.com",
    ".1drv.com",
    ".onedrive.live.com",
    ".storage.live.com",
    ".microsoftpersonalcontent.com",
    ".onmicrosoft.com",
];

/// Largest error body read from a failed transfer.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Result of sending one fragment.
enum Fragment {
    Accepted,
    Complete(Value),
}

impl GraphClient {
    /// Uploads `total_len` bytes from `reader` through an upload session.
    ///
    /// `create_session_path` is e.g. `/me/drive/root:/{encoded path}:/createUploadSession` or
    /// `/me/messages/{id}/attachments/createUploadSession`; `session_body` is its JSON body
    /// (`{"item": {"@microsoft.graph.conflictBehavior": "rename"}}`, `{"AttachmentItem": {...}}`).
    /// Fragments are `upload_chunk_size` bytes (a multiple of 320 KiB), read one at a time, so
    /// memory use is one fragment. A failed fragment is retried after asking the session for its
    /// `nextExpectedRanges`. `progress(sent, total)` is called after each accepted fragment.
    /// Returns the created item (a `driveItem` for OneDrive; `Null` when Graph sends no body).
    pub async fn upload_large<R, F>(
        &self,
        account: &str,
        create_session_path: &str,
        session_body: &Value,
        mut reader: R,
        total_len: u64,
        mut progress: F,
    ) -> Result<Value, GraphError>
    where
        R: AsyncRead + Unpin + Send,
        F: FnMut(u64, u64) + Send,
    {
        if total_len == 0 {
            return Err(GraphError::invalid_argument(
                "total_len",
                "0",
                "upload sessions cannot create empty files",
                "a size above 0 (use a simple PUT for empty files)",
            ));
        }
        let session = self
            .request(
                account,
                Method::POST,
                create_session_path,
                &[],
                Some(session_body),
                &RequestOptions::default(),
            )
            .await?;
        let upload_url = session
            .get("uploadUrl")
            .and_then(Value::as_str)
            .and_then(|text| Url::parse(text).ok())
            .filter(|url| {
                is_acceptable_scheme(url) && url.username().is_empty() && url.password().is_none()
            })
            .ok_or_else(|| {
                GraphError::UnexpectedResponse(
                    "an upload session without a usable uploadUrl".into(),
                )
            })?;

        let chunk_size = self.config.upload_chunk_size as u64;
        let mut offset = 0u64;
        while offset < total_len {
            let buffer_start = offset;
            let want = chunk_size.min(total_len - offset) as usize;
            // One fragment in memory at a time, handed to the request
            // without a copy (a resumed send is a zero-copy slice of it).
            let mut buffer: Vec<u8> = Vec::with_capacity(want);
            read_exactly(&mut reader, &mut buffer, want, offset, total_len).await?;
            let buffer = Bytes::from(buffer);
            let buffer_end = buffer_start + want as u64; // exclusive
            let mut send_from = buffer_start;
            let mut failures = 0u32;
            loop {
                let slice = buffer.slice((send_from - buffer_start) as usize..);
                let result = self
                    .put_fragment(&upload_url, slice, send_from, total_len)
                    .await;
                match result {
                    Ok(Fragment::Complete(item)) => {
                        progress(total_len, total_len);
                        return Ok(item);
                    }
                    Ok(Fragment::Accepted) => {
                        offset = buffer_end;
                        break;
                    }
                    Err(error) if resumable(&error) && failures < self.config.max_retries => {
                        let wait = error
                            .retry_after()
                            .map(|wait| wait.min(self.config.max_retry_after))
                            .unwrap_or_else(|| self.backoff(failures));
                        failures += 1;
                        tracing::info!(error = %error, wait_ms = wait.as_millis() as u64, "upload fragment failed; resuming");
                        tokio::time::sleep(wait).await;
                        match self.upload_next_expected(&upload_url).await {
                            Ok(Some(next)) if next >= buffer_start && next < buffer_end => {
                                send_from = next
                            }
                            Ok(Some(next)) if next == buffer_end => {
                                offset = buffer_end;
                                break;
                            }
                            Ok(Some(next)) => {
                                self.cancel_upload(&upload_url).await;
                                return Err(GraphError::UnexpectedResponse(format!(
                                    "upload session expects byte {next}, outside the fragment {buffer_start}-{buffer_end} being sent"
                                )));
                            }
                            // Nothing more expected: the fragment landed but its answer was lost.
                            Ok(None) => {
                                offset = buffer_end;
                                break;
                            }
                            // The status query failed too: send the same fragment again.
                            Err(status_error) => {
                                tracing::debug!(error = %status_error, "upload status query failed");
                            }
                        }
                    }
                    Err(error) => {
                        self.cancel_upload(&upload_url).await;
                        return Err(error);
                    }
                }
            }
            progress(offset, total_len);
        }
        Err(GraphError::UnexpectedResponse(
            "the upload session took every byte but never reported the item as created".into(),
        ))
    }

    /// PUTs one fragment to the pre-authenticated upload URL, without `Authorization`.
    async fn put_fragment(
        &self,
        upload_url: &Url,
        data: Bytes,
        start: u64,
        total: u64,
    ) -> Result<Fragment, GraphError> {
        let end = start + data.len() as u64 - 1;
        let response = self
            .http
            .put(upload_url.clone())
            .timeout(self.config.transfer_timeout)
            .header(CONTENT_LENGTH, data.len().to_string())
            .header(CONTENT_RANGE, format!("bytes {start}-{end}/{total}"))
            .body(data)
            .send()
            .await
            .map_err(|err| from_reqwest(err, self.config.transfer_timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|err| from_reqwest(err, self.config.transfer_timeout))?;
        match status.as_u16() {
            202 => Ok(Fragment::Accepted),
            200 | 201 => Ok(Fragment::Complete(
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )),
            _ => Err(graph_error(status, &headers, &body, None)),
        }
    }

    /// Asks the upload session which byte it expects next (`None` when it expects nothing).
    async fn upload_next_expected(&self, upload_url: &Url) -> Result<Option<u64>, GraphError> {
        let response = self
            .http
            .get(upload_url.clone())
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|err| from_reqwest(err, self.config.timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|err| from_reqwest(err, self.config.timeout))?;
        if !status.is_success() {
            return Err(graph_error(status, &headers, &body, None));
        }
        let value: Value = serde_json::from_slice(&body).map_err(|_| {
            GraphError::UnexpectedResponse("an upload status that is not JSON".into())
        })?;
        let ranges = value
            .get("nextExpectedRanges")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                GraphError::UnexpectedResponse("an upload status without nextExpectedRanges".into())
            })?;
        match ranges.first().and_then(Value::as_str) {
            None => Ok(None),
            Some(range) => parse_range_start(range).map(Some).ok_or_else(|| {
                GraphError::UnexpectedResponse(format!("an unreadable range '{range}'"))
            }),
        }
    }

    /// Best-effort cancellation so an abandoned session does not linger.
    async fn cancel_upload(&self, upload_url: &Url) {
        let result = self
            .http
            .delete(upload_url.clone())
            .timeout(self.config.timeout)
            .send()
            .await;
        if let Err(err) = result {
            tracing::debug!(error = %err.without_url(), "cancelling the upload session failed");
        }
    }

    /// Streams `GET {base}{path}` (e.g. `/me/drive/items/{id}/content`) into `dest`.
    ///
    /// Redirects are followed by hand, at most `max_redirects`, only to https URLs (http on
    /// loopback) whose host is in `allowed_hosts` (exact, or suffix for entries starting with
    /// `.`) or is the Graph host; the bearer token is sent to the Graph origin only. The size cap
    /// is checked against `Content-Length` and again while streaming. Returns the bytes written.
    pub async fn download_to<W>(
        &self,
        account: &str,
        path: &str,
        mut dest: W,
        max_bytes: u64,
        allowed_hosts: &[&str],
    ) -> Result<u64, GraphError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let mut url = self.url_for(path, &[], &RequestOptions::default())?;
        let mut redirects = 0u32;
        let mut response = loop {
            let response = self.download_attempts(account, &url).await?;
            let status = response.status();
            if status.is_redirection() {
                if redirects >= self.config.max_redirects {
                    return Err(GraphError::UnexpectedResponse(format!(
                        "more than {} redirects",
                        self.config.max_redirects
                    )));
                }
                redirects += 1;
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| url.join(text).ok())
                    .ok_or_else(|| {
                        GraphError::UnexpectedResponse(
                            "a redirect without a usable Location".into(),
                        )
                    })?;
                self.check_download_target(&location, allowed_hosts)?;
                url = location;
                continue;
            }
            if !status.is_success() {
                let headers = response.headers().clone();
                let body = read_capped(response, MAX_ERROR_BODY).await;
                return Err(graph_error(status, &headers, &body, None));
            }
            break response;
        };
        if let Some(length) = response.content_length()
            && length > max_bytes
        {
            return Err(GraphError::TooLarge { limit: max_bytes });
        }
        let mut written = 0u64;
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|err| from_reqwest(err, self.config.transfer_timeout))?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > max_bytes {
                return Err(GraphError::TooLarge { limit: max_bytes });
            }
            dest.write_all(&chunk)
                .await
                .map_err(|err| GraphError::Io(format!("writing the download failed: {err}")))?;
        }
        dest.flush()
            .await
            .map_err(|err| GraphError::Io(format!("writing the download failed: {err}")))?;
        Ok(written)
    }

    /// Reads the status of a long-running operation from its monitor URL (the `Location` of a
    /// `202 Accepted`, e.g. a driveItem copy). The URL is pre-authenticated: no token is sent,
    /// and only https URLs (http on loopback) on the Graph host or in `allowed_hosts` are asked.
    /// Returns the status JSON (`{"status": "inProgress"|"completed"|"failed",
    /// "percentageComplete", "resourceId", ...}`); a redirect (Graph's answer once the
    /// operation has finished) is reported as `{"status": "completed"}`.
    pub async fn get_monitor(
        &self,
        monitor_url: &str,
        allowed_hosts: &[&str],
    ) -> Result<Value, GraphError> {
        let url = Url::parse(monitor_url).map_err(|_| {
            GraphError::UnexpectedResponse("a monitor URL that is not an absolute URL".into())
        })?;
        self.check_download_target(&url, allowed_hosts)?;
        let response = self
            .http
            .get(url)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(|err| from_reqwest(err, self.config.timeout))?;
        let status = response.status();
        if status.is_redirection() {
            return Ok(serde_json::json!({"status": "completed"}));
        }
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_ERROR_BODY).await;
        if !status.is_success() {
            return Err(graph_error(status, &headers, &body, None));
        }
        serde_json::from_slice(&body)
            .map_err(|_| GraphError::UnexpectedResponse("a monitor status that is not JSON".into()))
    }

    fn check_download_target(&self, url: &Url, allowed_hosts: &[&str]) -> Result<(), GraphError> {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let allowed = self.is_graph_origin(url)
            || allowed_hosts.iter().any(|entry| {
                let entry = entry.to_ascii_lowercase();
                match entry.strip_prefix('.') {
                    Some(suffix) => host.ends_with(&entry) || host == suffix,
                    None => host == entry,
                }
            });
        if !is_acceptable_scheme(url)
            || !url.username().is_empty()
            || url.password().is_some()
            || !allowed
        {
            return Err(GraphError::UnexpectedResponse(format!(
                "a download redirect to a host that is not allowed ({host})"
            )));
        }
        Ok(())
    }

    /// Sends the download GET with retries before any byte is consumed; the token goes only to
    /// the Graph origin, with one refresh after a 401.
    async fn download_attempts(
        &self,
        account: &str,
        url: &Url,
    ) -> Result<reqwest::Response, GraphError> {
        let to_graph = self.is_graph_origin(url);
        let client_request_id = new_client_request_id();
        let mut retries = 0u32;
        let mut refreshed = false;
        let mut fresh_token: Option<String> = None;
        loop {
            let mut request = self.http.get(url.clone());
            let permit = if to_graph {
                let token = match fresh_token.take() {
                    Some(token) => token,
                    None => self.access_token(account).await?,
                };
                request = request
                    .bearer_auth(token)
                    .header("client-request-id", &client_request_id);
                Some(self.acquire(account).await?)
            } else {
                None
            };
            let result = request.send().await;
            drop(permit);
            let wait = match result {
                Ok(response) => {
                    let status = response.status();
                    if status == StatusCode::UNAUTHORIZED && to_graph && !refreshed {
                        refreshed = true;
                        fresh_token = Some(self.refresh_token(account).await?);
                        continue;
                    }
                    let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
                    if !retryable || retries >= self.config.max_retries {
                        return Ok(response);
                    }
                    retry_after_header(response.headers())
                        .map(|wait| wait.min(self.config.max_retry_after))
                        .unwrap_or_else(|| self.backoff(retries))
                }
                Err(err) => {
                    if retries >= self.config.max_retries {
                        return Err(from_reqwest(err, self.config.transfer_timeout));
                    }
                    self.backoff(retries)
                }
            };
            retries += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

/// Fragment failures worth resuming: throttling, 5xx, transport, timeout, and 416 (the
/// session's idea of the next range differs from ours).
fn resumable(error: &GraphError) -> bool {
    error.is_transient() || error.status() == Some(416)
}

/// Reads exactly `want` bytes into `buffer`; the source ending early is an error.
async fn read_exactly<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
    want: usize,
    offset: u64,
    total: u64,
) -> Result<(), GraphError> {
    // Filled in place: `read_to_end` would grow a full buffer to probe for
    // the end, doubling the fragment's memory.
    buffer.resize(want, 0);
    let mut filled = 0;
    while filled < want {
        let read = reader
            .read(&mut buffer[filled..])
            .await
            .map_err(|err| GraphError::Io(format!("reading the upload source failed: {err}")))?;
        if read == 0 {
            return Err(GraphError::Io(format!(
                "the upload source ended after {} of {total} bytes",
                offset + filled as u64
            )));
        }
        filled += read;
    }
    Ok(())
}

/// `"12345-"` or `"12345-55232"` → 12345.
fn parse_range_start(range: &str) -> Option<u64> {
    range.split('-').next()?.trim().parse().ok()
}

/// Reads at most `cap` bytes of a body (for error messages).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= cap {
            body.truncate(cap);
            break;
        }
    }
    body
}
