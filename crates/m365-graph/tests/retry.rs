//! Retries, throttling, 401 refresh and the per-account concurrency limit, against real HTTP
//! servers on 127.0.0.1.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{INITIAL_TOKEN, REFRESHED_TOKEN, client, client_with, fast_config, serve};
use m365_graph::{GraphError, parse_retry_after};
use serde_json::json;
use tokio::io::AsyncWriteExt;

fn ok_body() -> Response {
    (StatusCode::OK, axum::Json(json!({"id": "me"}))).into_response()
}

fn throttled(status: StatusCode, retry_after: &str) -> Response {
    (
        status,
        [
            ("Retry-After", retry_after.to_owned()),
            ("request-id", "rid-throttle".to_owned()),
        ],
        axum::Json(json!({"error": {"code": "TooManyRequests", "message": "Slow down"}})),
    )
        .into_response()
}

/// A server whose handler answers the n-th call (0-based) with `answer(n)`; returns the count.
async fn scripted(answer: fn(usize) -> Response) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v1.0/me",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { answer(n) }
        }),
    );
    (serve(router).await, calls)
}

#[test]
fn retry_after_parses_fractional_seconds_dates_and_rejects_junk() {
    let now = SystemTime::now();
    assert_eq!(
        parse_retry_after("2.128", now),
        Some(Duration::from_millis(2128))
    );
    assert_eq!(parse_retry_after(" 5 ", now), Some(Duration::from_secs(5)));
    assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
    let parsed = parse_retry_after(&in_ten, now).expect("HTTP-date parses");
    assert!(
        parsed <= Duration::from_secs(10) && parsed >= Duration::from_secs(9),
        "{parsed:?}"
    );
    let past = httpdate::fmt_http_date(now - Duration::from_secs(100));
    assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("-1", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("", now), None);
    assert_eq!(parse_retry_after("NaN", now), None);
}

#[test]
fn backoff_grows_is_jittered_and_capped() {
    let base = Duration::from_millis(100);
    let max = Duration::from_millis(800);
    for attempt in 0..8 {
        let full = (base * 2u32.pow(attempt)).min(max);
        for _ in 0..20 {
            let delay = m365_graph::backoff_delay(attempt, base, max);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
    }
}

#[tokio::test]
async fn fractional_retry_after_on_429_is_honoured() {
    let (addr, calls) = scripted(|n| {
        if n == 0 {
            throttled(StatusCode::TOO_MANY_REQUESTS, "0.328")
        } else {
            ok_body()
        }
    })
    .await;
    let (graph, _) = client(addr);
    let started = Instant::now();
    let value = graph
        .get("a", "/me", &[])
        .await
        .expect("succeeds after the wait");
    assert_eq!(value["id"], "me");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(320),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn http_date_retry_after_on_503_is_honoured() {
    let (addr, calls) = scripted(|n| {
        if n == 0 {
            let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
            throttled(StatusCode::SERVICE_UNAVAILABLE, &when)
        } else {
            ok_body()
        }
    })
    .await;
    let (graph, _) = client(addr);
    let started = Instant::now();
    graph
        .get("a", "/me", &[])
        .await
        .expect("succeeds after the wait");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // HTTP-dates have one-second precision: "now + 2 s" is between 1 and 2 s away.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
}

#[tokio::test]
async fn retry_after_longer_than_the_cap_is_capped() {
    let (addr, calls) = scripted(|n| {
        if n == 0 {
            throttled(StatusCode::TOO_MANY_REQUESTS, "3600")
        } else {
            ok_body()
        }
    })
    .await;
    let mut config = fast_config(addr);
    config.max_retry_after = Duration::from_millis(200);
    let (graph, _) = client_with(config);
    let started = Instant::now();
    graph
        .get("a", "/me", &[])
        .await
        .expect("succeeds after the capped wait");
    let waited = started.elapsed();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn throttling_that_never_ends_fails_with_retry_after_in_the_error() {
    let (addr, calls) = scripted(|_| throttled(StatusCode::TOO_MANY_REQUESTS, "0.01")).await;
    let (graph, _) = client(addr);
    let error = graph.get("a", "/me", &[]).await.expect_err("gives up");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        9,
        "first attempt + 8 throttling retries (more than the 3 for other failures)"
    );
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.code(), Some("TooManyRequests"));
    assert_eq!(error.retry_after(), Some(Duration::from_millis(10)));
    assert_eq!(error.request_id(), Some("rid-throttle"));
}

#[tokio::test]
async fn server_error_503_then_success() {
    let (addr, calls) = scripted(|n| {
        if n == 0 {
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        } else {
            ok_body()
        }
    })
    .await;
    let (graph, _) = client(addr);
    graph
        .get("a", "/me", &[])
        .await
        .expect("second attempt succeeds");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn persistent_500_is_retried_with_backoff_then_fails() {
    let (addr, calls) = scripted(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("request-id", "rid-500")],
            axum::Json(
                json!({"error": {"code": "generalException", "message": "General failure"}}),
            ),
        )
            .into_response()
    })
    .await;
    let mut config = fast_config(addr);
    config.max_retries = 2;
    config.backoff_base = Duration::from_millis(50);
    config.backoff_max = Duration::from_secs(1);
    let (graph, _) = client_with(config);
    let started = Instant::now();
    let error = graph.get("a", "/me", &[]).await.expect_err("fails");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "first attempt + 2 retries");
    // Backoff waits at least 25 ms then 50 ms (half of 50 and 100 ms).
    assert!(
        started.elapsed() >= Duration::from_millis(75),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        "Graph error 500 generalException: General failure (request-id rid-500)"
    );
}

#[tokio::test]
async fn post_is_not_repeated_after_an_ambiguous_500() {
    let posts = Arc::new(AtomicUsize::new(0));
    let counter = posts.clone();
    let router = Router::new().route(
        "/v1.0/me/sendMail",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::BAD_GATEWAY }
        }),
    );
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let error = graph
        .post("a", "/me/sendMail", Some(&json!({"message": {}})))
        .await
        .expect_err("502");
    assert_eq!(error.status(), Some(502));
    assert_eq!(
        posts.load(Ordering::SeqCst),
        1,
        "a send must not be repeated"
    );
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                // Read the request, then close without answering.
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                drop(socket);
                continue;
            }
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let body = r#"{"id":"me"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    let (graph, _) = client(addr);
    let value = graph
        .get("a", "/me", &[])
        .await
        .expect("retried on a fresh connection");
    assert_eq!(value["id"], "me");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn timeout_is_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v1.0/me",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                ok_body()
            }
        }),
    );
    let addr = serve(router).await;
    let mut config = fast_config(addr);
    config.timeout = Duration::from_millis(300);
    let (graph, _) = client_with(config);
    let started = Instant::now();
    graph
        .get("a", "/me", &[])
        .await
        .expect("second attempt in time");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn timeout_every_time_is_a_timeout_error() {
    let router = Router::new().route(
        "/v1.0/me",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            ok_body()
        }),
    );
    let addr = serve(router).await;
    let mut config = fast_config(addr);
    config.timeout = Duration::from_millis(100);
    config.max_retries = 1;
    let (graph, _) = client_with(config);
    let error = graph.get("a", "/me", &[]).await.expect_err("times out");
    assert!(matches!(error, GraphError::Timeout { .. }), "{error:?}");
    assert!(error.to_string().contains("100 ms"), "{error}");
}

#[tokio::test]
async fn unauthorized_triggers_exactly_one_refresh_and_one_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v1.0/me",
        get(move |headers: HeaderMap| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                if auth == format!("Bearer {REFRESHED_TOKEN}") {
                    ok_body()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}})),
                    )
                        .into_response()
                }
            }
        }),
    );
    let addr = serve(router).await;
    let (graph, tokens) = client(addr);
    graph
        .get("a", "/me", &[])
        .await
        .expect("succeeds with the refreshed token");
    assert_eq!(tokens.refresh_calls.load(Ordering::SeqCst), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn persistent_unauthorized_refreshes_once_then_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/v1.0/me",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(
                        json!({"error": {"code": "InvalidAuthenticationToken", "message": "Nope"}}),
                    ),
                )
            }
        }),
    );
    let addr = serve(router).await;
    let (graph, tokens) = client(addr);
    let error = graph.get("a", "/me", &[]).await.expect_err("401");
    assert_eq!(error.status(), Some(401));
    assert_eq!(tokens.refresh_calls.load(Ordering::SeqCst), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(INITIAL_TOKEN) && !shown.contains(REFRESHED_TOKEN));
}

#[tokio::test]
async fn per_account_concurrency_is_limited() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (now, top) = (in_flight.clone(), peak.clone());
    let router = Router::new().route(
        "/v1.0/me",
        get(move || {
            let (now, top) = (now.clone(), top.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                top.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(80)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                ok_body()
            }
        }),
    );
    let addr = serve(router).await;
    let mut config = fast_config(addr);
    config.per_account_concurrency = 2;
    let (graph, _) = client_with(config);
    let graph = Arc::new(graph);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let graph = graph.clone();
        tasks.push(tokio::spawn(async move {
            graph.get("same-account", "/me", &[]).await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("request");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2);

    // Another account has its own slots: two accounts × 2 = 4 in flight.
    peak.store(0, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let graph = graph.clone();
        let account = if i % 2 == 0 { "one" } else { "two" };
        tasks.push(tokio::spawn(
            async move { graph.get(account, "/me", &[]).await },
        ));
    }
    for task in tasks {
        task.await.expect("join").expect("request");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 4);
}
