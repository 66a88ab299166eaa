//! Simple uploads (`put_bytes`), 202-with-Location actions (`post_accepted`) and monitor URLs
//! (`get_monitor`), against a real HTTP server on 127.0.0.1.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use common::{INITIAL_TOKEN, client, serve};
use m365_graph::{DEFAULT_DOWNLOAD_HOSTS, GraphError};
use serde_json::json;

#[derive(Default)]
struct Seen {
    /// (content-type, authorization, body) of each PUT.
    puts: Vec<(String, String, Vec<u8>)>,
    failures_left: usize,
    monitor_auth: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn server() -> (std::net::SocketAddr, Shared) {
    let shared: Shared = Arc::default();
    let router = Router::new()
        .route(
            "/v1.0/me/drive/root:/{name}/content",
            put(
                |State(shared): State<Shared>, headers: HeaderMap, body: Bytes| async move {
                    let mut seen = shared.lock().unwrap();
                    if seen.failures_left > 0 {
                        seen.failures_left -= 1;
                        return (StatusCode::SERVICE_UNAVAILABLE, "{}").into_response();
                    }
                    seen.puts.push((
                        header(&headers, "content-type"),
                        header(&headers, "authorization"),
                        body.to_vec(),
                    ));
                    (
                        StatusCode::CREATED,
                        axum::Json(json!({"id": "item-1", "size": body.len()})),
                    )
                        .into_response()
                },
            ),
        )
        .route(
            "/v1.0/me/drive/items/{id}/copy",
            post(|| async { (StatusCode::ACCEPTED, [("Location", "/monitor/op-1")], "") }),
        )
        .route(
            "/monitor/{op}",
            get(
                |State(shared): State<Shared>, headers: HeaderMap| async move {
                    shared
                        .lock()
                        .unwrap()
                        .monitor_auth
                        .push(header(&headers, "authorization"));
                    axum::Json(json!({"status": "completed", "resourceId": "copy-1"}))
                },
            ),
        )
        .with_state(shared.clone());
    (serve(router).await, shared)
}

#[tokio::test]
async fn put_bytes_sends_raw_bytes_with_the_content_type_and_retries_5xx() {
    let (addr, shared) = server().await;
    shared.lock().unwrap().failures_left = 1;
    let (graph, _) = client(addr);
    let data: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let item = graph
        .put_bytes(
            "acct",
            "/me/drive/root:/a%20b.bin:/content",
            data.clone(),
            "application/octet-stream",
        )
        .await
        .expect("upload succeeds after one 503");
    assert_eq!(item["id"], "item-1");
    assert_eq!(item["size"], 70_000);
    let seen = shared.lock().unwrap();
    assert_eq!(seen.puts.len(), 1);
    let (content_type, auth, body) = &seen.puts[0];
    assert_eq!(content_type, "application/octet-stream");
    assert_eq!(auth, &format!("Bearer {INITIAL_TOKEN}"));
    assert_eq!(body, &data, "bytes arrive unchanged");
}

#[tokio::test]
async fn put_bytes_refuses_a_bad_content_type_before_sending() {
    let (addr, shared) = server().await;
    let (graph, tokens) = client(addr);
    let error = graph
        .put_bytes(
            "acct",
            "/me/drive/root:/x:/content",
            vec![1u8],
            "text/plain\r\nX: y",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::InvalidArgument { .. }),
        "{error}"
    );
    assert!(shared.lock().unwrap().puts.is_empty());
    assert_eq!(tokens.access_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn copy_location_is_returned_and_the_monitor_gets_no_token() {
    let (addr, shared) = server().await;
    let (graph, _) = client(addr);
    let (body, location) = graph
        .post_accepted(
            "acct",
            "/me/drive/items/src/copy",
            &json!({"parentReference": {"id": "dst"}}),
        )
        .await
        .unwrap();
    assert!(body.is_null());
    let location = location.expect("a Location header");
    let absolute = format!("http://{addr}{location}");
    let status = graph
        .get_monitor(&absolute, DEFAULT_DOWNLOAD_HOSTS)
        .await
        .unwrap();
    assert_eq!(status["resourceId"], "copy-1");
    assert_eq!(shared.lock().unwrap().monitor_auth, vec![String::new()]);

    // A monitor URL on a host that is not allowed is refused without a request.
    let calls = AtomicUsize::new(shared.lock().unwrap().monitor_auth.len());
    let refused = graph
        .get_monitor(
            "https://evil.example.com/monitor/op-1",
            DEFAULT_DOWNLOAD_HOSTS,
        )
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("not allowed"), "{refused}");
    assert_eq!(
        shared.lock().unwrap().monitor_auth.len(),
        calls.load(Ordering::SeqCst)
    );
}
