//! Device-code sign-in, refresh-token rotation, account identity and the token cache, against a
//! small identity-platform server on 127.0.0.1.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::serve;
use m365_graph::auth::{
    self, AccountType, AuthConfig, DeviceCodeFlow, MSA_TENANT_ID, PollOutcome, SecretString,
    parse_id_token,
};
use m365_graph::{GraphError, TokenCache, TokenSource};
use serde_json::{Value, json};

const WORK_TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

fn id_token(oid: &str, tid: &str, username: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(
        json!({"oid": oid, "tid": tid, "preferred_username": username, "name": "Ada Lovelace",
               "iss": format!("https://login.microsoftonline.com/{tid}/v2.0")})
        .to_string(),
    );
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[derive(Clone, Default)]
struct Identity {
    polls: Arc<Mutex<HashMap<String, usize>>>,
    refresh_grants: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn identity_server() -> (String, Identity) {
    let state = Identity::default();
    let router = Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(|Path(tenant): Path<String>, State(state): State<Identity>, axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                state.forms.lock().unwrap().push(form);
                axum::Json(json!({
                    "device_code": format!("device-code-secret-{tenant}"),
                    "user_code": "ABCD-EFGH",
                    "verification_uri": "https://microsoft.com/devicelogin",
                    "expires_in": 900,
                    "interval": 1,
                    "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code ABCD-EFGH to authenticate."
                }))
            }),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(|Path(tenant): Path<String>, State(state): State<Identity>, axum::Form(form): axum::Form<HashMap<String, String>>| async move {
                state.forms.lock().unwrap().push(form.clone());
                let error = |code: &str| {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"error": code, "error_description": format!("AADSTS00000: {code}.\r\nTrace ID: 1\r\nCorrelation ID: 2")})),
                    )
                        .into_response()
                };
                let success = |refresh: Option<&str>, tid: &str| {
                    let mut body = json!({
                        "token_type": "Bearer", "scope": "https://graph.microsoft.com/Mail.ReadWrite", "expires_in": 3599,
                        "access_token": format!("access-token-{tenant}"),
                        "id_token": id_token("00000000-0000-0000-1111-222222222222", tid, "ada@example.com"),
                    });
                    if let Some(refresh) = refresh {
                        body["refresh_token"] = Value::String(refresh.to_owned());
                    }
                    axum::Json(body).into_response()
                };
                match form.get("grant_type").map(String::as_str) {
                    Some("urn:ietf:params:oauth:grant-type:device_code") => {
                        if form.get("device_code") != Some(&format!("device-code-secret-{tenant}")) {
                            return error("bad_verification_code");
                        }
                        let n = {
                            let mut polls = state.polls.lock().unwrap();
                            let n = polls.entry(tenant.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        match tenant.as_str() {
                            "pending" if n <= 2 => error("authorization_pending"),
                            "slowdown" if n == 1 => error("slow_down"),
                            "declined" => error("authorization_declined"),
                            "expired" => error("expired_token"),
                            "consumers" => success(Some("rt-first"), MSA_TENANT_ID),
                            _ => success(Some("rt-first"), WORK_TID),
                        }
                    }
                    Some("refresh_token") => {
                        state.refresh_grants.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        match form.get("refresh_token").map(String::as_str) {
                            Some("rt-old") => success(Some("rt-new"), WORK_TID),
                            Some("rt-keep") => success(None, WORK_TID),
                            _ => error("invalid_grant"),
                        }
                    }
                    _ => error("unsupported_grant_type"),
                }
            }),
        )
        .with_state(state.clone());
    let addr = serve(router).await;
    (format!("http://{addr}"), state)
}

fn config(authority: &str, tenant: &str) -> AuthConfig {
    AuthConfig::new("11111111-2222-3333-4444-555555555555")
        .and_then(|c| c.with_authority_url(authority))
        .and_then(|c| c.with_tenant(tenant))
        .expect("config")
}

#[tokio::test]
async fn device_code_pending_then_complete() {
    let (authority, state) = identity_server().await;
    let challenge = DeviceCodeFlow::start(&config(&authority, "pending"))
        .await
        .expect("start");
    assert_eq!(challenge.user_code, "ABCD-EFGH");
    assert_eq!(
        challenge.verification_uri,
        "https://microsoft.com/devicelogin"
    );
    assert_eq!(challenge.interval, Duration::from_secs(1));
    assert!(challenge.message.contains("ABCD-EFGH"));
    assert!(
        !format!("{challenge:?}").contains("device-code-secret"),
        "device code leaked into Debug"
    );

    let scope = state.forms.lock().unwrap()[0]
        .get("scope")
        .cloned()
        .unwrap_or_default();
    for wanted in [
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Files.ReadWrite.All",
        "offline_access",
        "openid",
        "profile",
    ] {
        assert!(
            scope.split(' ').any(|s| s == wanted),
            "scope {scope} lacks {wanted}"
        );
    }

    assert!(matches!(
        DeviceCodeFlow::poll_once(&challenge).await.expect("poll"),
        PollOutcome::Pending
    ));
    let mut fast = challenge.clone();
    fast.interval = Duration::from_millis(10);
    let tokens = DeviceCodeFlow::poll_until_complete(&fast)
        .await
        .expect("completes");
    assert_eq!(tokens.access_token.expose(), "access-token-pending");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-first")
    );
    let identity = tokens.identity.clone().expect("identity");
    assert_eq!(
        identity.account_id,
        format!("00000000-0000-0000-1111-222222222222.{WORK_TID}")
    );
    assert_eq!(identity.username, "ada@example.com");
    assert_eq!(identity.display_name, "Ada Lovelace");
    assert_eq!(identity.account_type, AccountType::WorkSchool);
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains("access-token-pending") && !shown.contains("rt-first"),
        "{shown}"
    );
    assert_eq!(state.polls.lock().unwrap()["pending"], 3);
}

#[tokio::test]
async fn device_code_personal_account_is_detected_from_tid() {
    let (authority, _) = identity_server().await;
    let challenge = DeviceCodeFlow::start(&config(&authority, "consumers"))
        .await
        .expect("start");
    let PollOutcome::Complete(tokens) = DeviceCodeFlow::poll_once(&challenge).await.expect("poll")
    else {
        panic!("expected completion");
    };
    let identity = tokens.identity.expect("identity");
    assert_eq!(identity.account_type, AccountType::Personal);
    assert_eq!(identity.tid, MSA_TENANT_ID);
}

#[tokio::test]
async fn device_code_declined_and_expired() {
    let (authority, _) = identity_server().await;
    let declined = DeviceCodeFlow::start(&config(&authority, "declined"))
        .await
        .expect("start");
    assert!(matches!(
        DeviceCodeFlow::poll_once(&declined).await.expect("poll"),
        PollOutcome::Declined
    ));
    let mut fast = declined.clone();
    fast.interval = Duration::from_millis(10);
    let error = DeviceCodeFlow::poll_until_complete(&fast)
        .await
        .expect_err("declined");
    assert!(
        matches!(&error, GraphError::Auth { code, .. } if code == "authorization_declined"),
        "{error:?}"
    );

    let expired = DeviceCodeFlow::start(&config(&authority, "expired"))
        .await
        .expect("start");
    assert!(matches!(
        DeviceCodeFlow::poll_once(&expired).await.expect("poll"),
        PollOutcome::Expired
    ));
    let mut fast = expired.clone();
    fast.interval = Duration::from_millis(10);
    let error = DeviceCodeFlow::poll_until_complete(&fast)
        .await
        .expect_err("expired");
    assert!(
        matches!(&error, GraphError::Auth { code, .. } if code == "expired_token"),
        "{error:?}"
    );
}

#[tokio::test]
async fn device_code_slow_down_then_complete() {
    let (authority, _) = identity_server().await;
    let challenge = DeviceCodeFlow::start(&config(&authority, "slowdown"))
        .await
        .expect("start");
    assert!(matches!(
        DeviceCodeFlow::poll_once(&challenge).await.expect("poll"),
        PollOutcome::SlowDown
    ));
    assert!(matches!(
        DeviceCodeFlow::poll_once(&challenge).await.expect("poll"),
        PollOutcome::Complete(_)
    ));
}

#[tokio::test]
async fn refresh_returns_the_rotated_token_or_keeps_the_old_one() {
    let (authority, state) = identity_server().await;
    let config = config(&authority, "common");
    let rotated = auth::refresh(&config, "rt-old").await.expect("refresh");
    assert_eq!(
        rotated.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-new")
    );
    assert_eq!(rotated.access_token.expose(), "access-token-common");
    let kept = auth::refresh(&config, "rt-keep").await.expect("refresh");
    assert_eq!(
        kept.refresh_token.as_ref().map(SecretString::expose),
        Some("rt-keep")
    );
    let form = state
        .forms
        .lock()
        .unwrap()
        .last()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        form.get("client_id").map(String::as_str),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert!(
        form.get("scope")
            .is_some_and(|s| s.contains("offline_access"))
    );

    let error = auth::refresh(&config, "rt-revoked-secret")
        .await
        .expect_err("refused");
    assert!(
        matches!(error, GraphError::AuthRequired { .. }),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("auth login"), "{shown}");
    assert!(
        !shown.contains("rt-revoked-secret") && !shown.contains("Trace ID"),
        "{shown}"
    );
}

#[tokio::test]
async fn token_cache_refreshes_once_and_persists_rotation() {
    let (authority, state) = identity_server().await;
    let rotations = Arc::new(Mutex::new(Vec::new()));
    let seen = rotations.clone();
    let cache = Arc::new(TokenCache::new(
        config(&authority, "common"),
        move |account, token| {
            seen.lock()
                .unwrap()
                .push((account.to_owned(), token.expose().to_owned()));
        },
    ));
    cache
        .insert_refresh_token("Acc-1", SecretString::new("rt-old"))
        .await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(
            async move { cache.access_token("acc-1").await },
        ));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("join").expect("token"),
            "access-token-common"
        );
    }
    assert_eq!(
        state.refresh_grants.load(Ordering::SeqCst),
        1,
        "one refresh for concurrent callers"
    );
    assert_eq!(
        *rotations.lock().unwrap(),
        vec![("acc-1".to_owned(), "rt-new".to_owned())]
    );
    cache.access_token("ACC-1").await.expect("cached");
    assert_eq!(
        state.refresh_grants.load(Ordering::SeqCst),
        1,
        "cached until 5 minutes before expiry"
    );

    let error = cache
        .access_token("nobody")
        .await
        .expect_err("unknown account");
    assert!(matches!(error, GraphError::AuthRequired { .. }));
    assert!(cache.remove("acc-1"));
    assert!(cache.access_token("acc-1").await.is_err());
}

#[tokio::test]
async fn token_cache_refuses_a_revoked_refresh_token_with_sign_in_hint() {
    let (authority, _) = identity_server().await;
    let cache = TokenCache::new(config(&authority, "common"), |_, _| {});
    cache
        .insert_refresh_token("acc", SecretString::new("revoked"))
        .await;
    let error = cache.access_token("acc").await.expect_err("revoked");
    assert!(
        matches!(&error, GraphError::AuthRequired { account, .. } if account == "acc"),
        "{error:?}"
    );
}

#[test]
fn id_token_parsing() {
    let identity =
        parse_id_token(&id_token("oid-1", MSA_TENANT_ID, "me@outlook.fr")).expect("parse");
    assert_eq!(identity.account_id, format!("oid-1.{MSA_TENANT_ID}"));
    assert_eq!(identity.account_type, AccountType::Personal);
    // A consumer-looking domain in a work tenant is still a work account.
    let identity = parse_id_token(&id_token("oid-2", WORK_TID, "me@hotmail.com")).expect("parse");
    assert_eq!(identity.account_type, AccountType::WorkSchool);
    assert!(parse_id_token("not-a-jwt").is_err());
    assert!(parse_id_token("a.!!!.c").is_err());
    let no_oid = format!("x.{}.y", URL_SAFE_NO_PAD.encode(br#"{"tid":"t"}"#));
    assert!(parse_id_token(&no_oid).is_err());
    assert_eq!(
        AccountType::from_tenant_id(&MSA_TENANT_ID.to_uppercase()),
        AccountType::Personal
    );
    assert_eq!(AccountType::WorkSchool.as_str(), "work_school");
}

#[test]
fn auth_config_errors_are_actionable() {
    let error = AuthConfig::new("  ").expect_err("missing client id");
    let text = error.to_string();
    assert!(
        text.contains("M365_MCP_CLIENT_ID")
            && text.contains("Allow public client flows")
            && text.contains("Mail.ReadWrite"),
        "{text}"
    );
    let base = AuthConfig::new("id").expect("config");
    assert_eq!(base.tenant, "common");
    assert_eq!(
        base.authority_url.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert!(
        base.clone()
            .with_authority_url("http://login.example.com")
            .is_err()
    );
    assert!(
        base.clone()
            .with_authority_url("http://localhost:8080")
            .is_ok()
    );
    assert!(base.clone().with_tenant("../evil").is_err());
    assert!(base.clone().with_tenant("contoso.onmicrosoft.com").is_ok());
}
