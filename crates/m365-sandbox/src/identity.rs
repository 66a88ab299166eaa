//! The Microsoft identity platform, as far as a public client needs it: the device authorization
//! grant (RFC 8628 as Microsoft implements it) and the refresh-token grant, with id tokens that
//! are well-formed (unsigned) JWTs and opaque access tokens.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::app::{App, Request, lock};
use crate::odata::Query;
use crate::reply::{GraphResult, Reply};
use crate::state::{AccessGrant, DeviceFlow, DeviceState, World, now_string};

/// Lifetime of an access token, in seconds.
pub(crate) const ACCESS_TOKEN_SECONDS: u64 = 3600;
/// Lifetime of a device code, in seconds.
const DEVICE_CODE_SECONDS: u64 = 900;
/// Polling interval the sandbox asks for (Microsoft says 5; one keeps tests quick).
const POLL_INTERVAL_SECONDS: u64 = 1;

/// Scopes granted when a client asks for `.default` (or nothing specific).
const DEFAULT_SCOPES: &str = "https://graph.microsoft.com/Calendars.ReadWrite https://graph.microsoft.com/Contacts.ReadWrite https://graph.microsoft.com/Files.ReadWrite https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/Mail.Send https://graph.microsoft.com/MailboxSettings.ReadWrite https://graph.microsoft.com/User.Read https://graph.microsoft.com/.default";

fn oauth_error(error: &str, code: u32, description: &str) -> GraphResult {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    Ok(Reply::with_status(
        if error == "invalid_client" { 401 } else { 400 },
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}", now_string()),
            "error_codes": [code],
            "timestamp": now_string(),
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    ))
}

/// Routes `/{tenant}/oauth2/v2.0/{devicecode|token}` and the discovery document.
pub(crate) fn handle(app: &App, request: &Request) -> (GraphResult, Option<String>) {
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        [tenant, "oauth2", "v2.0", "devicecode"] if request.method == "POST" => (device_code(app, request, tenant), None),
        [_tenant, "oauth2", "v2.0", "token"] if request.method == "POST" => token(app, request),
        [tenant, "v2.0", ".well-known", "openid-configuration"] => (Ok(Reply::json(discovery(app, tenant))), None),
        ["devicelogin"] => (
            Ok(Reply::bytes(
                "text/html; charset=utf-8",
                b"<html><body><h1>Sandbox device login</h1><p>Codes are approved through the sandbox control API.</p></body></html>".to_vec(),
            )),
            None,
        ),
        _ => (oauth_error("invalid_request", 900561, "The endpoint only accepts POST requests."), None),
    }
}

fn discovery(app: &App, tenant: &str) -> Value {
    let base = format!("{}/{tenant}", app.origin);
    json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "issuer": format!("{}/{{tenantid}}/v2.0", app.origin),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": null,
    })
}

fn form(request: &Request) -> Query {
    Query::parse(std::str::from_utf8(&request.body).ok())
}

fn check_client(app: &App, form: &Query) -> Option<GraphResult> {
    match form.get("client_id") {
        None | Some("") => Some(oauth_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )),
        Some(id) if id != app.client_id => Some(oauth_error(
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{id}' was not found in the directory 'Sandbox'."
            ),
        )),
        _ => None,
    }
}

fn device_code(app: &App, request: &Request, _tenant: &str) -> GraphResult {
    let form = form(request);
    if let Some(error) = check_client(app, &form) {
        return error;
    }
    let scope = form.get("scope").unwrap_or_default().to_string();
    let mut world = lock(&app.world);
    let device_code = world.token(96);
    let user_code: String = {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let raw = world.token(9).into_bytes();
        raw.iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect()
    };
    world.device_flows.push(DeviceFlow {
        device_code: device_code.clone(),
        user_code: user_code.clone(),
        scope,
        expires_at: Instant::now() + Duration::from_secs(DEVICE_CODE_SECONDS),
        state: DeviceState::Pending { polled: false },
    });
    let verification_uri = format!("{}/devicelogin", app.origin);
    Ok(Reply::json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_SECONDS,
        "interval": POLL_INTERVAL_SECONDS,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    })))
}

fn token(app: &App, request: &Request) -> (GraphResult, Option<String>) {
    let form = form(request);
    if let Some(error) = check_client(app, &form) {
        return (error, None);
    }
    match form.get("grant_type").unwrap_or_default() {
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            poll_device_code(app, &form)
        }
        "refresh_token" => refresh(app, &form),
        "" => (
            oauth_error(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            ),
            None,
        ),
        other => (
            oauth_error(
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            ),
            None,
        ),
    }
}

fn poll_device_code(app: &App, form: &Query) -> (GraphResult, Option<String>) {
    let code = form.get("device_code").unwrap_or_default();
    let auto = app.auto_approve.load(Ordering::SeqCst);
    let mut world = lock(&app.world);
    let Some(index) = world
        .device_flows
        .iter()
        .position(|f| f.device_code == code)
    else {
        return (
            oauth_error(
                "invalid_grant",
                70000,
                "The provided value for the 'device_code' is not valid.",
            ),
            None,
        );
    };
    let flow = world.device_flows[index].clone();
    if Instant::now() > flow.expires_at {
        return (
            oauth_error(
                "expired_token",
                70020,
                "The provided authorization code or refresh token has expired due to it being past its expiration date.",
            ),
            None,
        );
    }
    match flow.state {
        DeviceState::Pending { polled } => {
            if auto && polled {
                let user = world.signed_in.iter().position(|s| !s).unwrap_or(0);
                if let Some(flag) = world.signed_in.get_mut(user) {
                    *flag = true;
                }
                world.device_flows[index].state = DeviceState::Redeemed;
                let username = world.users.get(user).map(|u| u.user.username.clone());
                return (
                    Ok(Reply::json(issue_tokens(
                        app,
                        &mut world,
                        user,
                        &flow.scope,
                    ))),
                    username,
                );
            }
            world.device_flows[index].state = DeviceState::Pending { polled: true };
            (
                oauth_error(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ),
                None,
            )
        }
        DeviceState::Approved(user) => {
            world.device_flows[index].state = DeviceState::Redeemed;
            if let Some(flag) = world.signed_in.get_mut(user) {
                *flag = true;
            }
            let username = world.users.get(user).map(|u| u.user.username.clone());
            (
                Ok(Reply::json(issue_tokens(
                    app,
                    &mut world,
                    user,
                    &flow.scope,
                ))),
                username,
            )
        }
        DeviceState::Declined => (
            oauth_error(
                "authorization_declined",
                70015,
                "The user declined the sign-in request.",
            ),
            None,
        ),
        DeviceState::Redeemed => (
            oauth_error(
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ),
            None,
        ),
    }
}

fn refresh(app: &App, form: &Query) -> (GraphResult, Option<String>) {
    let token = form.get("refresh_token").unwrap_or_default();
    let mut world = lock(&app.world);
    let Some(&user) = world.refresh_tokens.get(token) else {
        return (
            oauth_error(
                "invalid_grant",
                70008,
                "The provided authorization code or refresh token has expired due to inactivity.",
            ),
            None,
        );
    };
    let scope = form.get("scope").unwrap_or_default().to_string();
    let username = world.users.get(user).map(|u| u.user.username.clone());
    (
        Ok(Reply::json(issue_tokens(app, &mut world, user, &scope))),
        username,
    )
}

fn granted_scope(requested: &str) -> String {
    let specific: Vec<&str> = requested
        .split_whitespace()
        .filter(|s| !["openid", "profile", "offline_access", "email"].contains(s))
        .filter(|s| !s.ends_with("/.default"))
        .collect();
    let mut scope = if specific.is_empty() {
        DEFAULT_SCOPES.to_string()
    } else {
        specific
            .iter()
            .map(|s| {
                if s.contains("://") {
                    (*s).to_string()
                } else {
                    format!("https://graph.microsoft.com/{s}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    scope.push_str(" openid profile email");
    scope
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(value).unwrap_or_default())
}

/// Mints an access token, a new refresh token and an id token for `user`.
pub(crate) fn issue_tokens(
    app: &App,
    world: &mut World,
    user: usize,
    requested_scope: &str,
) -> Value {
    let access = world.token(96);
    let refresh = format!("1.A{}", world.token(120));
    world.access_tokens.insert(
        access.clone(),
        AccessGrant {
            user,
            expires_at: Instant::now() + Duration::from_secs(ACCESS_TOKEN_SECONDS),
        },
    );
    world.refresh_tokens.insert(refresh.clone(), user);
    let signature = world.token(64);
    let Some(data) = world.users.get(user) else {
        return json!({});
    };
    let u = &data.user;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "sandbox-signing-key"});
    let payload = json!({
        "aud": app.client_id,
        "iss": format!("{}/{}/v2.0", app.origin, u.tid),
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": u.display_name,
        "oid": u.oid,
        "preferred_username": u.username,
        "rh": "0.sandbox.",
        "sub": format!("sbx-{}", &u.oid[..8]),
        "tid": u.tid,
        "uti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": "2.0",
    });
    let id_token = format!("{}.{}.{signature}", b64(&header), b64(&payload));
    let client_info = b64(&json!({"uid": u.oid, "utid": u.tid}));
    json!({
        "token_type": "Bearer",
        "scope": granted_scope(requested_scope),
        "expires_in": ACCESS_TOKEN_SECONDS,
        "ext_expires_in": ACCESS_TOKEN_SECONDS,
        "access_token": access,
        "refresh_token": refresh,
        "id_token": id_token,
        "client_info": client_info,
    })
}
