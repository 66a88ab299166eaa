//! Upload sessions and downloads, against real HTTP servers on 127.0.0.1.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{INITIAL_TOKEN, client, client_with, fast_config, serve};
use m365_graph::{GraphError, UPLOAD_FRAGMENT_UNIT};
use serde_json::json;
use tokio::io::{AsyncRead, ReadBuf};

const CHUNK: usize = 2 * UPLOAD_FRAGMENT_UNIT;

#[derive(Default)]
struct UploadSession {
    port: u16,
    total: usize,
    received: Vec<u8>,
    puts: usize,
    /// (start, length, had Authorization header) per PUT.
    fragments: Vec<(usize, usize, bool)>,
    status_queries: usize,
    deletes: usize,
    session_auth: Option<String>,
    reader_position_at_first_put: u64,
}

type Shared = Arc<Mutex<UploadSession>>;

/// An `AsyncRead` over a byte slice that records how far it has been read.
struct CountingReader {
    data: Vec<u8>,
    position: usize,
    read_so_far: Arc<AtomicU64>,
}

impl AsyncRead for CountingReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let remaining = &self.data[self.position..];
        let n = remaining.len().min(buf.remaining()).min(64 * 1024);
        buf.put_slice(&remaining[..n]);
        self.position += n;
        self.read_so_far.fetch_add(n as u64, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

fn parse_content_range(headers: &HeaderMap) -> Option<(usize, usize, usize)> {
    let value = headers.get("content-range")?.to_str().ok()?;
    let rest = value.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?, total.parse().ok()?))
}

async fn upload_server(read_so_far: Arc<AtomicU64>) -> (std::net::SocketAddr, Shared) {
    let shared: Shared = Arc::default();
    let create = post(
        |State((shared, _)): State<(Shared, Arc<AtomicU64>)>, headers: HeaderMap| async move {
            let mut session = shared.lock().unwrap();
            session.session_auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let url = format!(
                "http://127.0.0.1:{}/upload/s1?tempauth=pre-authenticated-secret",
                session.port
            );
            axum::Json(
                json!({"uploadUrl": url, "expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": ["0-"]}),
            )
        },
    );
    let put_fragment = |State((shared, reader)): State<(Shared, Arc<AtomicU64>)>,
                        headers: HeaderMap,
                        body: Bytes| async move {
        let mut session = shared.lock().unwrap();
        if session.puts == 0 {
            session.reader_position_at_first_put = reader.load(Ordering::SeqCst);
        }
        session.puts += 1;
        let Some((start, end, total)) = parse_content_range(&headers) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        session.total = total;
        session
            .fragments
            .push((start, body.len(), headers.contains_key("authorization")));
        if end + 1 - start != body.len() || start != session.received.len() {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                axum::Json(json!({"error": {"code": "invalidRange", "message": "bad range"}})),
            )
                .into_response();
        }
        // Injected failures: the second PUT lands half its bytes then fails; the first attempt
        // at the last fragment is throttled without landing.
        if session.puts == 2 {
            session
                .received
                .extend_from_slice(&body[..UPLOAD_FRAGMENT_UNIT]);
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"error": {"code": "generalException", "message": "x"}})),
            )
                .into_response();
        }
        if session.puts == 4 {
            return (StatusCode::SERVICE_UNAVAILABLE, [("Retry-After", "0.01")]).into_response();
        }
        session.received.extend_from_slice(&body);
        if session.received.len() == total {
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": "item-1", "size": total})),
            )
                .into_response()
        } else {
            let next = session.received.len();
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({"nextExpectedRanges": [format!("{next}-")]})),
            )
                .into_response()
        }
    };
    let status = |State((shared, _)): State<(Shared, Arc<AtomicU64>)>| async move {
        let mut session = shared.lock().unwrap();
        session.status_queries += 1;
        let next = session.received.len();
        axum::Json(
            json!({"expirationDateTime": "2030-01-01T00:00:00Z", "nextExpectedRanges": [format!("{next}-")]}),
        )
    };
    let cancel = |State((shared, _)): State<(Shared, Arc<AtomicU64>)>| async move {
        shared.lock().unwrap().deletes += 1;
        StatusCode::NO_CONTENT
    };
    let router = Router::new()
        .route("/v1.0/me/drive/root:/big.bin:/createUploadSession", create)
        .route("/upload/s1", get(status).put(put_fragment).delete(cancel))
        .with_state((shared.clone(), read_so_far));
    let addr = serve(router).await;
    shared.lock().unwrap().port = addr.port();
    (addr, shared)
}

#[tokio::test]
async fn upload_session_streams_fragments_without_token_and_resumes() {
    let read_so_far = Arc::new(AtomicU64::new(0));
    let (addr, shared) = upload_server(read_so_far.clone()).await;
    let mut config = fast_config(addr);
    config.upload_chunk_size = CHUNK;
    let (graph, _) = client_with(config);
    let total = 2 * CHUNK + 12_345;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let reader = CountingReader {
        data: data.clone(),
        position: 0,
        read_so_far,
    };
    let progress = Arc::new(Mutex::new(Vec::new()));
    let seen = progress.clone();
    let item = graph
        .upload_large(
            "a",
            "/me/drive/root:/big.bin:/createUploadSession",
            &json!({"item": {"@microsoft.graph.conflictBehavior": "rename"}}),
            reader,
            total as u64,
            move |sent, total| seen.lock().unwrap().push((sent, total)),
        )
        .await
        .expect("upload completes");
    assert_eq!(item["id"], "item-1");
    let session = shared.lock().unwrap();
    assert_eq!(
        session.received, data,
        "the server holds exactly the source bytes"
    );
    assert_eq!(
        session.session_auth.as_deref(),
        Some(format!("Bearer {INITIAL_TOKEN}").as_str())
    );
    assert!(
        session.fragments.iter().all(|(_, _, auth)| !auth),
        "no Authorization to the upload URL"
    );
    for (start, len, _) in &session.fragments {
        if start + len < total {
            assert_eq!(
                len % UPLOAD_FRAGMENT_UNIT,
                0,
                "fragment at {start} is {len} bytes"
            );
        } else {
            assert_eq!(
                start + len,
                total,
                "the final fragment ends at the last byte"
            );
        }
    }
    // PUTs: 0..CHUNK, CHUNK.. (half lands, 500), resume at CHUNK+320K, last (503), last again.
    let starts: Vec<usize> = session.fragments.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(
        starts,
        vec![0, CHUNK, CHUNK + UPLOAD_FRAGMENT_UNIT, 2 * CHUNK, 2 * CHUNK]
    );
    assert_eq!(
        session.status_queries, 2,
        "resumed from nextExpectedRanges after each failure"
    );
    assert_eq!(session.deletes, 0);
    assert!(
        session.reader_position_at_first_put <= CHUNK as u64,
        "read ahead {}",
        session.reader_position_at_first_put
    );
    let progress = progress.lock().unwrap();
    assert_eq!(progress.last(), Some(&(total as u64, total as u64)));
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test]
async fn upload_rejects_a_short_source_and_cancels_nothing_it_did_not_start() {
    let read_so_far = Arc::new(AtomicU64::new(0));
    let (addr, shared) = upload_server(read_so_far.clone()).await;
    let mut config = fast_config(addr);
    config.upload_chunk_size = CHUNK;
    let (graph, _) = client_with(config);
    let reader = CountingReader {
        data: vec![1u8; 1000],
        position: 0,
        read_so_far,
    };
    let error = graph
        .upload_large(
            "a",
            "/me/drive/root:/big.bin:/createUploadSession",
            &json!({}),
            reader,
            5000,
            |_, _| {},
        )
        .await
        .expect_err("source too short");
    assert!(matches!(error, GraphError::Io(_)), "{error:?}");
    assert!(error.to_string().contains("1000 of 5000"), "{error}");
    assert!(!error.to_string().contains("tempauth"));
    assert_eq!(shared.lock().unwrap().puts, 0);
}

#[derive(Clone, Default)]
struct DownloadLog {
    graph_auth: Arc<Mutex<Vec<Option<String>>>>,
    storage_auth: Arc<Mutex<Vec<Option<String>>>>,
    storage_port: Arc<Mutex<u16>>,
}

const FILE_SIZE: usize = 1024 * 1024;

fn auth_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn download_servers() -> (std::net::SocketAddr, DownloadLog) {
    let log = DownloadLog::default();
    let storage = Router::new()
        .route(
            "/dl/stream",
            get(
                |State(log): State<DownloadLog>, headers: HeaderMap| async move {
                    log.storage_auth.lock().unwrap().push(auth_of(&headers));
                    // No Content-Length: the cap must be enforced while streaming.
                    let chunks = (0..FILE_SIZE / 65_536)
                        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 65_536])));
                    Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
                },
            ),
        )
        .route(
            "/dl/sized",
            get(
                |State(log): State<DownloadLog>, headers: HeaderMap| async move {
                    log.storage_auth.lock().unwrap().push(auth_of(&headers));
                    vec![7u8; FILE_SIZE]
                },
            ),
        )
        .with_state(log.clone());
    let storage_addr = serve(storage).await;
    *log.storage_port.lock().unwrap() = storage_addr.port();
    let graph = Router::new()
        .route(
            "/v1.0/me/drive/items/{id}/content",
            get(
                |State(log): State<DownloadLog>,
                 axum::extract::Path(id): axum::extract::Path<String>,
                 headers: HeaderMap| async move {
                    log.graph_auth.lock().unwrap().push(auth_of(&headers));
                    let port = *log.storage_port.lock().unwrap();
                    let target = if id == "sized" { "sized" } else { "stream" };
                    (
                        StatusCode::FOUND,
                        [(
                            "location",
                            format!("http://127.0.0.1:{port}/dl/{target}?tempauth=secret"),
                        )],
                    )
                },
            ),
        )
        .with_state(log.clone());
    (serve(graph).await, log)
}

#[tokio::test]
async fn download_follows_redirect_without_sending_the_token_off_graph() {
    let (addr, log) = download_servers().await;
    let (graph, _) = client(addr);
    let mut dest = Vec::new();
    let written = graph
        .download_to(
            "a",
            "/me/drive/items/file-1/content",
            &mut dest,
            2 * FILE_SIZE as u64,
            &["127.0.0.1"],
        )
        .await
        .expect("download");
    assert_eq!(written as usize, FILE_SIZE);
    assert_eq!(dest.len(), FILE_SIZE);
    assert_eq!(
        *log.graph_auth.lock().unwrap(),
        vec![Some(format!("Bearer {INITIAL_TOKEN}"))]
    );
    assert_eq!(*log.storage_auth.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn download_cap_is_enforced_while_streaming() {
    let (addr, _) = download_servers().await;
    let (graph, _) = client(addr);
    let mut dest = Vec::new();
    let cap = 100 * 1024;
    let error = graph
        .download_to(
            "a",
            "/me/drive/items/file-1/content",
            &mut dest,
            cap,
            &["127.0.0.1"],
        )
        .await
        .expect_err("too large");
    assert!(
        matches!(error, GraphError::TooLarge { limit } if limit == cap),
        "{error:?}"
    );
    assert!(
        dest.len() as u64 <= cap,
        "wrote {} bytes past a {cap}-byte cap",
        dest.len()
    );
}

#[tokio::test]
async fn download_cap_is_enforced_from_content_length() {
    let (addr, _) = download_servers().await;
    let (graph, _) = client(addr);
    let mut dest = Vec::new();
    let error = graph
        .download_to(
            "a",
            "/me/drive/items/sized/content",
            &mut dest,
            1000,
            &["127.0.0.1"],
        )
        .await
        .expect_err("too large");
    assert!(matches!(error, GraphError::TooLarge { .. }), "{error:?}");
    assert!(dest.is_empty());
}

#[tokio::test]
async fn download_refuses_redirects_to_hosts_not_allowed() {
    let (addr, log) = download_servers().await;
    let (graph, _) = client(addr);
    let mut dest = Vec::new();
    let error = graph
        .download_to(
            "a",
            "/me/drive/items/file-1/content",
            &mut dest,
            u64::MAX,
            &[".sharepoint.com"],
        )
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("not allowed"), "{error}");
    assert!(!error.to_string().contains("tempauth"), "{error}");
    assert!(
        log.storage_auth.lock().unwrap().is_empty(),
        "no request reached the refused host"
    );
}

#[tokio::test]
async fn download_error_surfaces_graph_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v1.0/me/drive/items/{id}/content",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::NOT_FOUND,
                    [("request-id", "rid-dl")],
                    axum::Json(json!({"error": {"code": "itemNotFound", "message": "The resource could not be found."}})),
                )
            }
        }),
    );
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let error = graph
        .download_to("a", "/me/drive/items/x/content", Vec::new(), 10, &[])
        .await
        .expect_err("404");
    assert_eq!(
        error.to_string(),
        "Graph error 404 itemNotFound: The resource could not be found. (request-id rid-dl)"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "404 is not retried");
}
