//! `@odata.nextLink` paging and `$batch`, against real HTTP servers on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use common::{client, serve};
use m365_graph::{BatchRequest, RequestOptions};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Seen {
    uris: Arc<Mutex<Vec<String>>>,
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
    port: Arc<Mutex<u16>>,
}

/// A server that ignores `$top`, returns pages of 3 items and an absolute nextLink whose
/// skiptoken contains encoded characters.
async fn paging_server(total_pages: usize) -> (std::net::SocketAddr, Seen) {
    let seen = Seen::default();
    let router = Router::new()
        .route(
            "/v1.0/me/messages",
            get(
                move |State(seen): State<Seen>, OriginalUri(uri): OriginalUri, headers: axum::http::HeaderMap| async move {
                    seen.uris.lock().unwrap().push(uri.to_string());
                    seen.headers.lock().unwrap().push(
                        headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect(),
                    );
                    let page: usize = uri
                        .query()
                        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page=")))
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    let items: Vec<Value> = (0..3).map(|i| json!({"id": format!("m{}", page * 3 + i)})).collect();
                    let port = *seen.port.lock().unwrap();
                    let mut body = json!({"value": items});
                    if page + 1 < total_pages {
                        body["@odata.nextLink"] = Value::String(format!(
                            "http://127.0.0.1:{port}/v1.0/me/messages?%24skiptoken=a%2Bb%3D%3D&page={}",
                            page + 1
                        ));
                    }
                    axum::Json(body)
                },
            ),
        )
        .with_state(seen.clone());
    let addr = serve(router).await;
    *seen.port.lock().unwrap() = addr.port();
    (addr, seen)
}

#[tokio::test]
async fn paging_follows_next_link_verbatim_and_stops_at_limit() {
    let (addr, seen) = paging_server(10).await;
    let (graph, _) = client(addr);
    let options = RequestOptions::text_body();
    let items = graph
        .get_paged_with(
            "a",
            "/me/messages",
            &[("$top", "50"), ("$select", "id,subject")],
            7,
            &options,
        )
        .await
        .expect("pages");
    let ids: Vec<&str> = items.iter().filter_map(|v| v["id"].as_str()).collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    let uris = seen.uris.lock().unwrap().clone();
    assert_eq!(
        uris.len(),
        3,
        "7 items at 3 per page need exactly 3 requests: {uris:?}"
    );
    assert_eq!(uris[0], "/v1.0/me/messages?$top=50&$select=id,subject");
    assert_eq!(uris[1], "/v1.0/me/messages?%24skiptoken=a%2Bb%3D%3D&page=1");
    assert_eq!(uris[2], "/v1.0/me/messages?%24skiptoken=a%2Bb%3D%3D&page=2");
    // Options apply to every page.
    for headers in seen.headers.lock().unwrap().iter() {
        assert_eq!(
            headers.get("prefer").map(String::as_str),
            Some("outlook.body-content-type=\"text\"")
        );
    }
}

#[tokio::test]
async fn paging_stops_when_there_is_no_next_link() {
    let (addr, seen) = paging_server(2).await;
    let (graph, _) = client(addr);
    let items = graph
        .get_paged("a", "/me/messages", &[], 100)
        .await
        .expect("pages");
    assert_eq!(items.len(), 6);
    assert_eq!(seen.uris.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn paging_refuses_a_next_link_on_another_host() {
    let router = Router::new().route(
        "/v1.0/me/messages",
        get(|| async {
            axum::Json(json!({"value": [{"id": "1"}], "@odata.nextLink": "https://evil.example.com/v1.0/me/messages?page=2"}))
        }),
    );
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let error = graph
        .get_paged("a", "/me/messages", &[], 10)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("evil.example.com"), "{error}");
}

#[tokio::test]
async fn query_values_are_encoded_and_consistency_adds_count_for_filters() {
    let seen = Seen::default();
    let router = Router::new()
        .route(
            "/v1.0/users",
            get(
                |State(seen): State<Seen>,
                 OriginalUri(uri): OriginalUri,
                 headers: axum::http::HeaderMap| async move {
                    seen.uris.lock().unwrap().push(uri.to_string());
                    seen.headers.lock().unwrap().push(
                        headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect(),
                    );
                    axum::Json(json!({"value": []}))
                },
            ),
        )
        .with_state(seen.clone());
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let options = RequestOptions {
        consistency_eventual: true,
        ..RequestOptions::default()
    };
    graph
        .get_with(
            "a",
            "/users",
            &[("$filter", "endsWith(mail,'a+b@x.com') & 1=1 #")],
            &options,
        )
        .await
        .expect("ok");
    graph
        .get_with(
            "a",
            "/users",
            &[("$search", "\"displayName:O'Hara\"")],
            &options,
        )
        .await
        .expect("ok");
    let uris = seen.uris.lock().unwrap().clone();
    assert_eq!(
        uris[0],
        "/v1.0/users?$filter=endsWith(mail,%27a%2Bb@x.com%27)%20%26%201%3D1%20%23&$count=true"
    );
    assert_eq!(uris[1], "/v1.0/users?$search=%22displayName:O%27Hara%22");
    let headers = seen.headers.lock().unwrap().clone();
    assert!(
        headers
            .iter()
            .all(|h| h.get("consistencylevel").map(String::as_str) == Some("eventual"))
    );
    // Every request carries a v4 UUID client-request-id.
    for h in &headers {
        let id = h.get("client-request-id").expect("client-request-id");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }
}

#[tokio::test]
async fn batch_chunks_45_into_20_20_5_and_retries_throttled_items() {
    #[derive(Clone, Default)]
    struct BatchState {
        sizes: Arc<Mutex<Vec<usize>>>,
        throttled_once: Arc<Mutex<bool>>,
        content_types: Arc<Mutex<Vec<Option<String>>>>,
    }
    let state = BatchState::default();
    let router = Router::new()
        .route(
            "/v1.0/$batch",
            post(|State(state): State<BatchState>, headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                state
                    .content_types
                    .lock()
                    .unwrap()
                    .push(headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned));
                let requests = body["requests"].as_array().cloned().unwrap_or_default();
                state.sizes.lock().unwrap().push(requests.len());
                if requests.len() > 20 {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"code": "BadRequest", "message": "too many"}})))
                        .into_response();
                }
                let mut responses = Vec::new();
                // Answer in reverse order: clients must match by id.
                for request in requests.iter().rev() {
                    let id = request["id"].as_str().unwrap_or("").to_owned();
                    let url = request["url"].as_str().unwrap_or("");
                    let answer = if url == "/me/messages/m7" {
                        let mut throttled = state.throttled_once.lock().unwrap();
                        if *throttled {
                            json!({"id": id, "status": 200, "body": {"id": "m7"}})
                        } else {
                            *throttled = true;
                            json!({"id": id, "status": 429, "headers": {"Retry-After": "0.05"},
                                   "body": {"error": {"code": "TooManyRequests", "message": "wait"}}})
                        }
                    } else if url == "/me/messages/m9" {
                        json!({"id": id, "status": 404, "headers": {"request-id": "rid-9"},
                               "body": {"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store."}}})
                    } else if request["method"] == "PATCH" {
                        let has_type = request["headers"]["Content-Type"] == "application/json";
                        json!({"id": id, "status": if has_type { 200 } else { 400 }, "body": request["body"]})
                    } else {
                        json!({"id": id, "status": 200, "body": {"id": url.rsplit('/').next()}})
                    };
                    responses.push(answer);
                }
                axum::Json(json!({"responses": responses})).into_response()
            }),
        )
        .with_state(state.clone());
    let addr = serve(router).await;
    let (graph, _) = client(addr);
    let mut requests: Vec<BatchRequest> = (0..45)
        .map(|i| BatchRequest::get(format!("/me/messages/m{i}")))
        .collect();
    requests[44] = BatchRequest::patch("/me/messages/m44", json!({"isRead": true}));
    let answers = graph.batch("a", requests).await.expect("batch");
    assert_eq!(answers.len(), 45);
    assert_eq!(
        *state.sizes.lock().unwrap(),
        vec![20, 1, 20, 5],
        "m7 retried alone after its Retry-After"
    );
    for (i, answer) in answers.iter().enumerate() {
        if i == 9 {
            assert_eq!(answer.status, 404);
            let error = answer.error().expect("item error");
            assert_eq!(
                error.to_string(),
                "Graph error 404 ErrorItemNotFound: The specified object was not found in the store. (request-id rid-9)"
            );
        } else if i == 44 {
            assert_eq!(answer.status, 200, "JSON items carry Content-Type");
            assert_eq!(answer.body, json!({"isRead": true}));
        } else {
            assert_eq!(answer.status, 200, "item {i}");
            assert_eq!(answer.body["id"], format!("m{i}"));
        }
    }
    assert!(
        state
            .content_types
            .lock()
            .unwrap()
            .iter()
            .all(|t| t.as_deref() == Some("application/json"))
    );
}
