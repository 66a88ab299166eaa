//! The stdio transport: newline-delimited JSON-RPC on standard input and
//! output, read and written through non-blocking pipes when they are pipes
//! (`rmcp::transport::stdio_pipes`: no thread hand-off per message), with
//! one more thing than rmcp's own: a cache hit's bytes go into the message
//! as they are.
//!
//! rmcp serialises a tool result it is given, so a hit handed to it as a
//! `CallToolResult` would be built into a `serde_json::Value` and written
//! out twice per call (as escaped text and as `structuredContent`). Instead
//! the server hands this session's [`Outbox`] the hit ([`CachedAnswer`],
//! already rendered) and rmcp a small placeholder result; when rmcp sends
//! the response, the transport writes the message with the hit's bytes
//! where the placeholder's `content` and `structuredContent` were. Every
//! other member (`isError`, `resultType` for the protocol version in use,
//! `_meta`) is rmcp's own serialisation. The bytes are those rmcp would have
//! written for the same result (a test holds the two side by side).
//!
//! Incoming messages are read by rmcp's own line transport, and its replies
//! to malformed input are written through the same serialised writer, so
//! messages never interleave. Each message is written whole and flushed.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rmcp::RoleServer;
use rmcp::model::{CallToolResult, ErrorData, JsonRpcMessage, ServerResult};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::rendered::CachedAnswer;

/// The only member of a placeholder result. The NUL keeps it apart from
/// anything a tool returns; the number names the pending hit.
const PLACEHOLDER: &str = "\u{0}m365-mcp/rendered";
/// A hit whose response rmcp never sent (the request was cancelled) is
/// dropped after this long.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// Pending hits at which abandoned ones are looked for.
const SWEEP_AT: usize = 64;

#[derive(Default)]
struct Pending {
    hits: HashMap<u64, (Instant, CachedAnswer)>,
    next: u64,
}

/// Cache hits on their way from the tool layer to the transport of one
/// stdio session, each behind a placeholder result.
#[derive(Clone, Default)]
pub struct Outbox(Arc<Mutex<Pending>>);

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `hit` for the transport and returns the result to hand rmcp
    /// in its place.
    pub fn placeholder(&self, hit: CachedAnswer) -> CallToolResult {
        let now = Instant::now();
        let slot = {
            let mut pending = self.lock();
            if pending.hits.len() >= SWEEP_AT {
                pending
                    .hits
                    .retain(|_, (at, _)| now.duration_since(*at) < ABANDONED_AFTER);
            }
            pending.next += 1;
            let slot = pending.next;
            pending.hits.insert(slot, (now, hit));
            slot
        };
        CallToolResult::structured(json!({ PLACEHOLDER: slot }))
    }

    /// The slot a placeholder result names, if `result` is one.
    fn slot_of(result: &CallToolResult) -> Option<u64> {
        let object = result.structured_content.as_ref()?.as_object()?;
        if object.len() != 1 {
            return None;
        }
        object.get(PLACEHOLDER)?.as_u64()
    }

    fn take(&self, slot: u64) -> Option<CachedAnswer> {
        self.lock().hits.remove(&slot).map(|(_, hit)| hit)
    }

    /// Hits waiting for their response to be written.
    pub fn pending(&self) -> usize {
        self.lock().hits.len()
    }
}

/// One complete message for the writer.
fn line<T: serde::Serialize>(message: &T) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    serde_json::to_writer(&mut out, message)?;
    out.push(b'\n');
    Ok(out)
}

/// Serialises `message`, with a pending hit's bytes in place of a
/// placeholder result.
fn encode(outbox: &Outbox, message: &TxJsonRpcMessage<RoleServer>) -> io::Result<Vec<u8>> {
    if let JsonRpcMessage::Response(response) = message
        && let ServerResult::CallToolResult(result) = &response.result
        && let Some(slot) = Outbox::slot_of(result)
    {
        return match outbox.take(slot) {
            Some(hit) => splice(message, &hit),
            None => line(&TxJsonRpcMessage::<RoleServer>::error(
                ErrorData::internal_error(
                    "the cached answer is no longer available; call the tool again",
                    None,
                ),
                Some(response.id.clone()),
            )),
        };
    }
    line(message)
}

/// The message as rmcp serialises it, with `result.content` and
/// `result.structuredContent` written from `hit`.
fn splice(message: &TxJsonRpcMessage<RoleServer>, hit: &CachedAnswer) -> io::Result<Vec<u8>> {
    let Value::Object(members) = serde_json::to_value(message)? else {
        return Err(io::Error::other("a response is not a JSON object"));
    };
    let mut out = Vec::with_capacity(hit.spliced_len() + 256);
    write_object(&mut out, &members, |out, key, value| match (key, value) {
        ("result", Value::Object(result)) => write_object(out, result, |out, key, value| {
            match key {
                "content" => {
                    out.extend_from_slice(br#"[{"type":"text","text":"#);
                    hit.write_json_string(out);
                    out.extend_from_slice(b"}]");
                }
                "structuredContent" => hit.write_json(out),
                _ => serde_json::to_writer(&mut *out, value)?,
            }
            Ok(())
        }),
        _ => Ok(serde_json::to_writer(&mut *out, value)?),
    })?;
    out.push(b'\n');
    Ok(out)
}

/// Writes `members` as a JSON object in their order, each value by `value`.
fn write_object(
    out: &mut Vec<u8>,
    members: &serde_json::Map<String, Value>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &Value) -> io::Result<()>,
) -> io::Result<()> {
    out.push(b'{');
    for (i, (key, member)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        value(out, key, member)?;
    }
    out.push(b'}');
    Ok(())
}

type SharedWriter<W> = Arc<tokio::sync::Mutex<Option<W>>>;

/// Writes one whole message and flushes it.
async fn write_message<W: AsyncWrite + Unpin>(
    out: SharedWriter<W>,
    bytes: Vec<u8>,
) -> io::Result<()> {
    let mut out = out.lock().await;
    let Some(writer) = out.as_mut() else {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "the transport is closed",
        ));
    };
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// The writer rmcp's line transport gets for its own replies (to malformed
/// input): it collects a message and, on flush, queues it on the shared
/// writer, so it never interleaves with the messages this transport writes.
struct Replies<W> {
    buffer: Vec<u8>,
    out: SharedWriter<W>,
}

impl<W: AsyncWrite + Unpin + Send + 'static> AsyncWrite for Replies<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().buffer.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buffer.is_empty() {
            let bytes = std::mem::take(&mut this.buffer);
            let out = this.out.clone();
            tokio::spawn(async move {
                if let Err(e) = write_message(out, bytes).await {
                    tracing::debug!(error = %e, "could not answer a malformed message");
                }
            });
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A server transport on a line-oriented reader and writer (see the module
/// docs); [`StdioTransport`] on standard input and output.
pub struct LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    incoming: AsyncRwTransport<RoleServer, R, Replies<W>>,
    out: SharedWriter<W>,
    outbox: Outbox,
}

/// The transport of `serve` on stdio.
pub type StdioTransport = LineTransport<rmcp::transport::StdioReader, rmcp::transport::StdioWriter>;

impl StdioTransport {
    /// On standard input and output (non-blocking when they are pipes),
    /// writing the hits `outbox` is handed.
    pub fn stdio(outbox: Outbox) -> Self {
        widen_stdout_pipe();
        let (read, write) = rmcp::transport::stdio_pipes();
        LineTransport::new(read, write, outbox)
    }
}

/// Room in the stdout pipe for a whole large answer (1 MiB, the default
/// limit for unprivileged processes), so writing a folder tree does not
/// stop every 64 KiB for the client to catch up. Pipe pages are allocated
/// only as they are filled. Does nothing when stdout is not a pipe.
fn widen_stdout_pipe() {
    #[cfg(target_os = "linux")]
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours;
    // on anything but a pipe it fails with EBADF or EINVAL, which is fine.
    unsafe {
        libc::fcntl(libc::STDOUT_FILENO, libc::F_SETPIPE_SZ, 1 << 20);
    }
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    /// On `read` and `write`, writing the hits `outbox` is handed.
    pub fn new(read: R, write: W, outbox: Outbox) -> Self {
        let out = Arc::new(tokio::sync::Mutex::new(Some(write)));
        let replies = Replies {
            buffer: Vec::new(),
            out: out.clone(),
        };
        LineTransport {
            incoming: AsyncRwTransport::new(read, replies),
            out,
            outbox,
        }
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let bytes = encode(&self.outbox, &item);
        let out = self.out.clone();
        async move { write_message(out, bytes?).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.incoming.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Transport::<RoleServer>::close(&mut self.incoming).await?;
        if let Some(mut writer) = self.out.lock().await.take() {
            writer.flush().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rendered::{Answer, Rendered};
    use m365_store::{CachedEntry, Freshness};
    use rmcp::model::{NumberOrString, RequestId};

    fn hit(payload: &str) -> CachedAnswer {
        let entry = CachedEntry {
            payload: payload.as_bytes().to_vec(),
            freshness: Freshness::Fresh,
            created_at_ms: 1,
            fresh_until_ms: 2,
            expires_at_ms: 3,
        };
        CachedAnswer::new(
            Arc::new(Rendered::new(&entry).unwrap()),
            json!({"status": "stale", "cached_at": "2026-01-01T00:00:00Z", "age_seconds": 75}),
        )
    }

    fn response(result: CallToolResult, id: RequestId) -> TxJsonRpcMessage<RoleServer> {
        TxJsonRpcMessage::<RoleServer>::response(ServerResult::CallToolResult(result), id)
    }

    const PAYLOAD: &str = r#"{"value":[{"id":"AAMk=","subject":"\"Q3\" \\ plan\n","size":12.5,"to":[]}],"folder_id":"inbox","ünï":"\u001f"}"#;

    #[test]
    fn a_spliced_hit_is_byte_for_byte_what_rmcp_writes() {
        for id in [
            NumberOrString::Number(7),
            NumberOrString::String("req-\"1\"".into()),
        ] {
            for legacy in [false, true] {
                let expected = {
                    let mut result = Answer::Cached(hit(PAYLOAD)).into_call_result();
                    if legacy {
                        result.result_type = None;
                    }
                    line(&response(result, id.clone())).unwrap()
                };
                let outbox = Outbox::default();
                let mut placeholder = outbox.placeholder(hit(PAYLOAD));
                if legacy {
                    placeholder.result_type = None;
                }
                let written = encode(&outbox, &response(placeholder, id.clone())).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
                assert_eq!(outbox.pending(), 0);
            }
        }
    }

    #[test]
    fn other_messages_are_rmcps_own() {
        let outbox = Outbox::default();
        let result = CallToolResult::structured(json!({"value": [1, 2]}));
        let message = response(result, NumberOrString::Number(1));
        assert_eq!(encode(&outbox, &message).unwrap(), line(&message).unwrap());
    }

    #[test]
    fn a_lost_hit_is_an_error_not_a_placeholder() {
        let outbox = Outbox::default();
        let placeholder = Outbox::default().placeholder(hit("{}"));
        let written = encode(&outbox, &response(placeholder, NumberOrString::Number(3))).unwrap();
        let message: Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(message["id"], 3);
        assert!(
            message["error"]["message"]
                .as_str()
                .unwrap()
                .contains("call the tool again")
        );
        assert!(!String::from_utf8_lossy(&written).contains("m365-mcp/rendered"));
    }

    #[test]
    fn abandoned_hits_do_not_pile_up() {
        let outbox = Outbox::default();
        for _ in 0..SWEEP_AT {
            outbox.placeholder(hit("{}"));
        }
        {
            let mut pending = outbox.lock();
            let old = Instant::now() - ABANDONED_AFTER - Duration::from_secs(1);
            for (at, _) in pending.hits.values_mut() {
                *at = old;
            }
        }
        outbox.placeholder(hit("{}"));
        assert_eq!(outbox.pending(), 1);
    }

    #[tokio::test]
    async fn requests_in_responses_out_one_line_each() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (client_out, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, client_in) = tokio::io::duplex(1 << 20);
        let outbox = Outbox::default();
        let mut transport = LineTransport::new(server_in, server_out, outbox.clone());
        let mut client_out = client_out;
        client_out
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\nnot json\n{\"jsonrpc\":\"2.0\",\"id\":2}\n")
            .await
            .unwrap();
        let first = transport.receive().await.unwrap();
        assert!(matches!(first, JsonRpcMessage::Request(_)));
        let placeholder = outbox.placeholder(hit(PAYLOAD));
        transport
            .send(response(placeholder, NumberOrString::Number(1)))
            .await
            .unwrap();
        let mut lines = BufReader::new(client_in).lines();
        let answer: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(answer["id"], 1);
        let text: Value =
            serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(text, answer["result"]["structuredContent"]);
        assert_eq!(text["_cache"]["status"], "stale");
        // Unparsable input is ignored; a well-formed non-message gets rmcp's
        // "invalid request" reply, written whole through the same writer.
        drop(client_out);
        assert!(transport.receive().await.is_none());
        let reply: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(reply["error"].is_object(), "{reply}");
        transport.close().await.unwrap();
        assert!(lines.next_line().await.unwrap().is_none());
    }
}
