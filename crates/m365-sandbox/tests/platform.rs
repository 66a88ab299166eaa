//! Identity platform, authentication, faults, counters and `$batch` through HTTP.

mod common;

use std::time::Duration;

use base64::Engine;
use m365_sandbox::{CONSUMER_TENANT_ID, FaultConfig, Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn form(http: &reqwest::Client, url: &str, pairs: &[(&str, &str)]) -> (u16, Value) {
    let body: String = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", common::seg(v)))
        .collect::<Vec<_>>()
        .join("&");
    let r = http
        .post(url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn device_code_pending_then_tokens_then_me_then_refresh_rotates() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let authority = sandbox.authority_url();
    let client_id = sandbox.client_id();
    let (status, flow) = form(
        &http,
        &format!("{authority}/common/oauth2/v2.0/devicecode"),
        &[
            ("client_id", &client_id),
            (
                "scope",
                "https://graph.microsoft.com/.default offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(status, 200);
    for key in [
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ] {
        assert!(flow.get(key).is_some(), "missing {key}");
    }
    let token_url = format!("{authority}/common/oauth2/v2.0/token");
    let device_code = flow["device_code"].as_str().unwrap();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client_id.as_str()),
        ("device_code", device_code),
    ];
    let (status, pending) = form(&http, &token_url, &poll).await;
    assert_eq!(status, 400);
    assert_eq!(pending["error"], "authorization_pending");
    let (status, tokens) = form(&http, &token_url, &poll).await;
    assert_eq!(status, 200, "{tokens}");
    for key in [
        "token_type",
        "scope",
        "expires_in",
        "access_token",
        "refresh_token",
        "id_token",
    ] {
        assert!(tokens.get(key).is_some(), "missing {key}");
    }
    // The id token is a JWT whose claims name the first seeded user.
    let parts: Vec<&str> = tokens["id_token"].as_str().unwrap().split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let first = &sandbox.users()[0];
    assert_eq!(claims["preferred_username"], first.username.as_str());
    assert_eq!(claims["oid"], first.oid.as_str());
    assert_eq!(claims["tid"], first.tid.as_str());
    assert!(claims["iss"].as_str().unwrap().starts_with(&authority));
    // A redeemed code cannot be used again.
    let (status, again) = form(&http, &token_url, &poll).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"], "invalid_grant");

    let access = tokens["access_token"].as_str().unwrap();
    let me: Value = http
        .get(format!("{}/me", sandbox.graph_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], first.username.as_str());
    assert_eq!(me["id"], first.oid.as_str());

    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = form(
        &http,
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    assert_ne!(rotated["access_token"], tokens["access_token"]);
    let r = http
        .get(format!("{}/me", sandbox.graph_url()))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    sandbox.revoke_refresh_tokens(&first.username);
    let (status, revoked) = form(
        &http,
        &token_url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(revoked["error"], "invalid_grant");

    // The second flow signs in the next seeded user: the personal account.
    let (_, flow2) = form(
        &http,
        &format!("{authority}/common/oauth2/v2.0/devicecode"),
        &[("client_id", &client_id), ("scope", "User.Read")],
    )
    .await;
    let poll2 = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client_id.as_str()),
        ("device_code", flow2["device_code"].as_str().unwrap()),
    ];
    form(&http, &token_url, &poll2).await;
    let (_, personal) = form(&http, &token_url, &poll2).await;
    let parts: Vec<&str> = personal["id_token"].as_str().unwrap().split('.').collect();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["tid"], CONSUMER_TENANT_ID);

    let (status, bad) = form(
        &http,
        &format!("{authority}/common/oauth2/v2.0/devicecode"),
        &[("client_id", "not-our-app")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"], "unauthorized_client");
}

#[tokio::test]
async fn manual_approval_for_a_chosen_user_and_decline() {
    let sandbox = Sandbox::start(SandboxConfig {
        auto_approve_device_code: false,
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let authority = sandbox.authority_url();
    let client_id = sandbox.client_id();
    let token_url = format!("{authority}/organizations/oauth2/v2.0/token");
    let (_, flow) = form(
        &http,
        &format!("{authority}/organizations/oauth2/v2.0/devicecode"),
        &[("client_id", &client_id)],
    )
    .await;
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client_id.as_str()),
        ("device_code", flow["device_code"].as_str().unwrap()),
    ];
    for _ in 0..3 {
        let (_, pending) = form(&http, &token_url, &poll).await;
        assert_eq!(pending["error"], "authorization_pending");
    }
    let chosen = sandbox.users()[2].username.clone();
    sandbox
        .approve_device_code(flow["user_code"].as_str().unwrap(), &chosen)
        .unwrap();
    let (status, tokens) = form(&http, &token_url, &poll).await;
    assert_eq!(status, 200);
    let me: Value = http
        .get(format!("{}/me", sandbox.graph_url()))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], chosen.as_str());

    let (_, flow) = form(
        &http,
        &format!("{authority}/organizations/oauth2/v2.0/devicecode"),
        &[("client_id", &client_id)],
    )
    .await;
    sandbox
        .decline_device_code(flow["user_code"].as_str().unwrap())
        .unwrap();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client_id.as_str()),
        ("device_code", flow["device_code"].as_str().unwrap()),
    ];
    let (_, declined) = form(&http, &token_url, &poll).await;
    assert_eq!(declined["error"], "authorization_declined");
}

#[tokio::test]
async fn unauthenticated_and_expired_tokens_get_graph_401() {
    let env = common::start().await;
    let r = env.http.get(env.url("/me")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("request-id").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    assert!(body["error"]["innerError"]["date"].is_string());
    let r = env
        .http
        .get(env.url("/me"))
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, _) = env.get("/me").await;
    assert_eq!(status, 200);
    env.sandbox.expire_access_tokens();
    let (status, body) = env.get("/me").await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // A personal account cannot read the work account's mailbox.
    let personal = env.sandbox.users()[1].username.clone();
    let token = env.sandbox.issue_tokens(&personal).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me: Value = env
        .http
        .get(env.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["userPrincipalName"], personal.as_str());
    let r = env
        .http
        .get(env.url(&format!("/users/{}/messages", env.username)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = env.http.post(env.url("/search/query")).bearer_auth(&token).json(&json!({"requests": [{"entityTypes": ["message"], "query": {"queryString": "budget"}}]})).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        400,
        "personal accounts cannot use /search/query"
    );
}

#[tokio::test]
async fn injected_throttling_and_outage_and_counters() {
    let env = common::start().await;
    env.sandbox.reset_counters();
    env.sandbox.set_faults(FaultConfig {
        throttle_ratio: 1.0,
        throttle_retry_after: Duration::from_secs(7),
        unavailable_ratio: 0.0,
    });
    let r = env
        .http
        .get(env.url("/me/messages"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers().get("retry-after").unwrap(), "7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    env.sandbox.set_faults(FaultConfig {
        throttle_ratio: 0.5,
        ..FaultConfig::none()
    });
    let mut throttled = 0;
    for _ in 0..40 {
        let (status, _) = env.get("/me").await;
        if status == 429 {
            throttled += 1;
        }
    }
    assert!(
        (5..=35).contains(&throttled),
        "ratio not honoured: {throttled}/40"
    );
    env.sandbox.set_faults(FaultConfig::none());
    env.sandbox.set_down(true);
    let (status, body) = env.get("/me").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "serviceNotAvailable");
    env.sandbox.set_down(false);
    let (status, _) = env.get("/me").await;
    assert_eq!(status, 200);
    assert_eq!(env.sandbox.request_count(), 1 + 40 + 2);
    let log = env.sandbox.request_log();
    assert_eq!(log.len(), 43);
    assert_eq!(log[0].path, "/v1.0/me/messages");
    assert_eq!(log[0].status, 429);
    assert_eq!(
        log.last().unwrap().user.as_deref(),
        Some(env.username.as_str())
    );

    // The control API reports the same numbers to another process.
    let counts: Value = env
        .http
        .get(format!("{}/_sandbox/counts", env.sandbox.authority_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counts["graph"], 43);
    env.http
        .post(format!("{}/_sandbox/faults", env.sandbox.authority_url()))
        .json(
            &json!({"throttle_ratio": 1.0, "throttle_retry_after": 2000, "unavailable_ratio": 0.0}),
        )
        .send()
        .await
        .unwrap();
    let r = env
        .http
        .get(env.url("/me"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers().get("retry-after").unwrap(), "2");
}

#[tokio::test]
async fn latency_is_added_per_call() {
    let env = common::start().await;
    env.sandbox.set_latency(m365_sandbox::Latency {
        fixed: Duration::from_millis(150),
        jitter: Duration::ZERO,
    });
    let started = std::time::Instant::now();
    let (status, _) = env.get("/me").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn batch_answers_each_request_and_counts_once() {
    let env = common::start().await;
    env.sandbox.reset_counters();
    let (_, list) = env
        .get("/me/mailFolders/inbox/messages?$top=2&$select=id")
        .await;
    let id = list["value"][0]["id"].as_str().unwrap();
    let (status, body) = env.post("/$batch", json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me/mailFolders/inbox"},
        {"id": "2", "method": "PATCH", "url": format!("/me/messages/{}", common::seg(id)), "headers": {"Content-Type": "application/json"}, "body": {"isRead": true}},
        {"id": "3", "method": "GET", "url": "/me/messages/does-not-exist"},
        {"id": "4", "method": "GET", "url": "/me/messages?$top=3&$select=subject", "dependsOn": ["1"]}
    ]})).await;
    assert_eq!(status, 200);
    let responses = body["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 4);
    let by_id = |i: &str| responses.iter().find(|r| r["id"] == i).unwrap().clone();
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["displayName"], "Inbox");
    assert_eq!(by_id("2")["status"], 200);
    assert_eq!(by_id("2")["body"]["isRead"], true);
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(by_id("3")["body"]["error"]["code"], "ErrorItemNotFound");
    let next = by_id("4")["body"]["@odata.nextLink"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.starts_with(&env.sandbox.graph_url()));
    let counts = env.sandbox.counts();
    assert_eq!(counts.graph, 2);
    assert_eq!(counts.batch_inner, 4);
    let (_, state_check) = env
        .get(&format!("/me/messages/{}?$select=isRead", common::seg(id)))
        .await;
    assert_eq!(state_check["isRead"], true);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    let (status, err) = env.post("/$batch", json!({"requests": too_many})).await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap().contains("20"));

    env.sandbox.set_faults(FaultConfig {
        throttle_ratio: 1.0,
        throttle_retry_after: Duration::from_secs(3),
        unavailable_ratio: 0.0,
    });
    let (status, throttled) = env
        .post(
            "/$batch",
            json!({"requests": [{"id": "a", "method": "GET", "url": "/me"}]}),
        )
        .await;
    assert_eq!(status, 200, "the batch itself succeeds");
    assert_eq!(throttled["responses"][0]["status"], 429);
    assert_eq!(throttled["responses"][0]["headers"]["Retry-After"], "3");
}
