//! Error mapping, secrets kept out of errors, configuration rules and URL encoding.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::OriginalUri;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{client, fast_config, serve};
use m365_graph::{
    BoxFuture, GraphClient, GraphConfig, GraphError, TokenSource, encode_drive_path,
    encode_segment, validate_id,
};
use serde_json::json;

const SECRET_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJub25jZSI6IlNFQ1JFVCJ9.secret-access-token";

struct SecretTokens;

impl TokenSource for SecretTokens {
    fn access_token<'a>(
        &'a self,
        _account_id: &'a str,
    ) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async { Ok(SECRET_TOKEN.to_owned()) })
    }
    fn refresh<'a>(&'a self, _account_id: &'a str) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async { Ok(SECRET_TOKEN.to_owned()) })
    }
}

#[test]
fn segments_are_percent_encoded() {
    assert_eq!(encode_segment("AAMkAGI2=="), "AAMkAGI2%3D%3D");
    assert_eq!(encode_segment("a+b/c"), "a%2Bb%2Fc");
    assert_eq!(encode_segment("4B9F8A!105"), "4B9F8A%21105");
    assert_eq!(encode_segment("#x%y z"), "%23x%25y%20z");
    assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
    assert_eq!(encode_segment("Résumé?"), "R%C3%A9sum%C3%A9%3F");
    assert_eq!(encode_drive_path("/a/b c/#x%"), "/a/b%20c/%23x%25");
    assert_eq!(encode_drive_path("/Docs//Q1 + Q2/"), "/Docs/Q1%20%2B%20Q2");
    assert_eq!(encode_drive_path("rel/x"), "rel/x");
}

#[test]
fn ids_with_path_tricks_are_refused_with_the_canonical_message() {
    assert_eq!(
        validate_id("message_id", "AAMk+AGI2=-_!x").expect("valid"),
        "AAMk+AGI2=-_!x"
    );
    for bad in ["", "  ", "a/b", "..", "x..y", "a\nb", "a\u{0}b"] {
        let error = validate_id("message_id", bad).expect_err(bad);
        let text = error.to_string();
        assert!(text.starts_with("Invalid message_id '"), "{text}");
        assert!(text.contains(". Expected: "), "{text}");
        assert!(
            !text.contains('\n'),
            "raw control characters echoed: {text:?}"
        );
    }
    let long = format!("{}/{}", "a".repeat(300), "b".repeat(300));
    let text = validate_id("item_id", &long)
        .expect_err("slash")
        .to_string();
    assert!(text.len() < 200, "echoed too much: {} chars", text.len());
    assert!(text.contains('…'));
}

#[tokio::test]
async fn paths_that_are_not_encoded_are_refused_before_any_request() {
    let (graph, tokens) = client("127.0.0.1:9".parse().expect("addr"));
    for path in [
        "me",
        "/me/messages?$top=1",
        "/me/drive/root:/a b",
        "/me/../users",
        "/me/#x",
    ] {
        let error = graph.get("a", path, &[]).await.expect_err(path);
        assert!(
            matches!(error, GraphError::InvalidArgument { .. }),
            "{path}: {error:?}"
        );
    }
    assert_eq!(
        tokens
            .access_calls
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn encoded_ids_reach_the_server_intact() {
    let router = Router::new().route(
        "/v1.0/me/messages/{id}",
        get(
            |OriginalUri(uri): OriginalUri,
             axum::extract::Path(id): axum::extract::Path<String>| async move {
                axum::Json(json!({"raw": uri.path(), "decoded": id}))
            },
        ),
    );
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let id = "AAMk+AG/I2==!# %x";
    let value = graph
        .get("a", &format!("/me/messages/{}", encode_segment(id)), &[])
        .await
        .expect("get");
    assert_eq!(value["decoded"], id);
    assert_eq!(
        value["raw"],
        "/v1.0/me/messages/AAMk%2BAG%2FI2%3D%3D%21%23%20%25x"
    );
}

#[tokio::test]
async fn graph_error_body_is_surfaced_with_code_message_and_request_id() {
    let router = Router::new()
        .route(
            "/v1.0/me/messages/{id}",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": {"code": "ErrorItemNotFound",
                        "message": "The specified object was not found in the store.",
                        "innerError": {"request-id": "1234abcd-0000-4000-8000-000000000000", "date": "2025-01-01T00:00:00"}}})),
                )
            })
            .patch(|| async { (StatusCode::BAD_GATEWAY, "<html>Bad gateway</html>") }),
        )
        .route("/v1.0/me/events/{id}/cancel", post(|headers: axum::http::HeaderMap| async move {
            // Action bodies like {} must go out as JSON.
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            if content_type == "application/json" { StatusCode::ACCEPTED } else { StatusCode::UNSUPPORTED_MEDIA_TYPE }
        }));
    let addr = serve(router).await;
    let tokens = Arc::new(SecretTokens);
    let graph = GraphClient::new(fast_config(addr), tokens).expect("client");
    let error = graph
        .get("a", "/me/messages/x", &[])
        .await
        .expect_err("404");
    assert_eq!(
        error.to_string(),
        "Graph error 404 ErrorItemNotFound: The specified object was not found in the store. (request-id 1234abcd-0000-4000-8000-000000000000)"
    );
    assert!(error.is_not_found());
    let GraphError::Graph {
        client_request_id, ..
    } = &error
    else {
        panic!("graph error")
    };
    assert_eq!(client_request_id.as_ref().map(String::len), Some(36));

    let error = graph
        .patch("a", "/me/messages/x", &json!({"subject": "s3cret subject"}))
        .await
        .expect_err("502");
    assert_eq!(error.status(), Some(502));
    assert_eq!(error.code(), Some("BadGateway"));
    assert!(
        !format!("{error} {error:?}").contains("s3cret subject"),
        "request body leaked"
    );

    let value = graph
        .post("a", "/me/events/e1/cancel", Some(&json!({})))
        .await
        .expect("202 with JSON content type");
    assert!(value.is_null());
}

#[tokio::test]
async fn no_token_appears_in_any_error() {
    let mut errors: Vec<GraphError> = Vec::new();
    // Transport: nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut config = fast_config(closed_addr);
    config.max_retries = 0;
    let graph = GraphClient::new(config, Arc::new(SecretTokens)).expect("client");
    errors.push(graph.get("a", "/me", &[]).await.expect_err("refused"));
    // 401 after refresh, 403, timeout.
    let router = Router::new()
        .route(
            "/v1.0/unauthorized",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(
                        json!({"error": {"code": "InvalidAuthenticationToken", "message": "bad"}}),
                    ),
                )
            }),
        )
        .route(
            "/v1.0/forbidden",
            get(|| async { (StatusCode::FORBIDDEN, "") }),
        )
        .route(
            "/v1.0/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                ""
            }),
        );
    let addr = serve(router).await;
    let mut config = fast_config(addr);
    config.timeout = Duration::from_millis(100);
    config.max_retries = 0;
    let graph = GraphClient::new(config, Arc::new(SecretTokens)).expect("client");
    for path in ["/unauthorized", "/forbidden", "/slow"] {
        errors.push(graph.get("a", path, &[]).await.expect_err(path));
    }
    assert!(format!("{:?}", graph).contains("GraphClient"));
    assert_eq!(errors.len(), 4);
    for error in &errors {
        let shown = format!("{error} | {error:?}");
        assert!(
            !shown.contains(SECRET_TOKEN) && !shown.contains("secret-access-token"),
            "{shown}"
        );
        assert!(!shown.to_ascii_lowercase().contains("bearer"), "{shown}");
    }
}

#[test]
fn configuration_rules() {
    let default = GraphConfig::default();
    assert_eq!(
        default.base_url.as_str(),
        "https://graph.microsoft.com/v1.0"
    );
    assert_eq!(default.max_retry_after, Duration::from_secs(60));
    for ok in [
        "http://127.0.0.1:8080/v1.0",
        "http://127.5.6.7/",
        "http://localhost:3000/v1.0",
        "http://[::1]:9/v1.0",
        "https://graph.example.com/v1.0/",
    ] {
        let config = GraphConfig::default()
            .with_base_url(ok)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(
            !config.base_url.as_str().ends_with('/') || config.base_url.path() == "/",
            "{ok}"
        );
    }
    for bad in [
        "http://graph.microsoft.com/v1.0",
        "http://10.0.0.1/v1.0",
        "ftp://127.0.0.1/",
        "not a url",
        "https://user:pw@graph.microsoft.com/v1.0",
    ] {
        let error = GraphConfig::default().with_base_url(bad).expect_err(bad);
        assert!(matches!(error, GraphError::Config(_)), "{bad}");
    }
    let error = GraphConfig::default()
        .with_base_url("http://graph.example.com")
        .expect_err("http");
    assert!(error.to_string().contains("loopback"), "{error}");
    let config = GraphConfig {
        upload_chunk_size: 1_000_000,
        ..GraphConfig::default()
    };
    assert!(GraphClient::new(config, Arc::new(SecretTokens)).is_err());
    let config = GraphConfig {
        per_account_concurrency: 0,
        ..GraphConfig::default()
    };
    assert!(GraphClient::new(config, Arc::new(SecretTokens)).is_err());
}
