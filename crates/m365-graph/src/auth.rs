//! Sign-in with the Microsoft identity platform (v2.0 endpoints): the OAuth 2.0 device
//! authorization grant (RFC 8628) and the refresh-token grant.
//!
//! Invariants: secrets (access, refresh and id tokens, device codes) live in [`SecretString`],
//! which zeroizes on drop and prints as `[redacted]`; the account identity is read from the id
//! token only — access tokens are opaque (personal-account ones are not even JWTs).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use crate::config::parse_service_url;
use crate::error::{GraphError, from_reqwest};

/// Identity platform host used when `M365_MCP_AUTHORITY_URL` is not set.
pub const DEFAULT_AUTHORITY_URL: &str = "https://login.microsoftonline.com";

/// Tenant id of personal Microsoft accounts (outlook.com, hotmail.com, live.com, …).
pub const MSA_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// The delegated Graph permissions the tool set needs, as full scope URIs.
pub const GRAPH_SCOPES: &[&str] = &[
    "https://graph.microsoft.com/User.Read",
    "https://graph.microsoft.com/Mail.ReadWrite",
    "https://graph.microsoft.com/Mail.Send",
    "https://graph.microsoft.com/MailboxSettings.ReadWrite",
    "https://graph.microsoft.com/Calendars.ReadWrite",
    "https://graph.microsoft.com/Contacts.ReadWrite",
    "https://graph.microsoft.com/Files.ReadWrite.All",
    "https://graph.microsoft.com/People.Read",
];

/// OpenID Connect scopes: a refresh token (`offline_access`) and an id token with the user's
/// object id, tenant and name (`openid`, `profile`).
pub const OIDC_SCOPES: &[&str] = &["offline_access", "openid", "profile"];

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Added to the polling interval on each `slow_down` answer (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// What to do when `M365_MCP_CLIENT_ID` is missing.
const REGISTER_APP_HINT: &str = "M365_MCP_CLIENT_ID is not set. Register an application in Microsoft Entra ID \
(Entra admin center → App registrations → New registration; for personal and work accounts choose \
'Accounts in any organizational directory and personal Microsoft accounts'), turn on 'Allow public client flows' \
under Authentication, add the delegated Microsoft Graph permissions User.Read, Mail.ReadWrite, Mail.Send, \
MailboxSettings.ReadWrite, Calendars.ReadWrite, Contacts.ReadWrite, Files.ReadWrite.All, People.Read and \
offline_access, then set M365_MCP_CLIENT_ID to its Application (client) ID";

/// A secret string: zeroized on drop, redacted in `Debug`, no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretString(Zeroizing::new(secret.into()))
    }

    /// The secret itself; use it only to send it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for SecretString {
    fn from(secret: String) -> Self {
        SecretString::new(secret)
    }
}

/// Where and as which application to sign in.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Application (client) id of a public-client app registration.
    pub client_id: String,
    /// `common`, `organizations`, `consumers`, a tenant id or a tenant domain.
    pub tenant: String,
    /// Identity platform root, e.g. `https://login.microsoftonline.com`.
    pub authority_url: Url,
    /// Scopes requested at sign-in and refresh.
    pub scopes: Vec<String>,
}

impl AuthConfig {
    /// A configuration for `client_id` on tenant `common` with the default scopes.
    pub fn new(client_id: impl Into<String>) -> Result<Self, GraphError> {
        let client_id = client_id.into().trim().to_owned();
        if client_id.is_empty() {
            return Err(GraphError::Config(REGISTER_APP_HINT.into()));
        }
        Ok(AuthConfig {
            client_id,
            tenant: "common".into(),
            authority_url: parse_service_url("M365_MCP_AUTHORITY_URL", DEFAULT_AUTHORITY_URL)?,
            scopes: default_scopes(),
        })
    }

    /// Reads `M365_MCP_CLIENT_ID` (required), `M365_MCP_TENANT_ID` (default `common`) and
    /// `M365_MCP_AUTHORITY_URL` (default `https://login.microsoftonline.com`).
    pub fn from_env() -> Result<Self, GraphError> {
        let client_id = std::env::var("M365_MCP_CLIENT_ID").unwrap_or_default();
        let mut config = AuthConfig::new(client_id)?;
        if let Ok(tenant) = std::env::var("M365_MCP_TENANT_ID")
            && !tenant.trim().is_empty()
        {
            config = config.with_tenant(tenant.trim())?;
        }
        if let Ok(authority) = std::env::var("M365_MCP_AUTHORITY_URL")
            && !authority.trim().is_empty()
        {
            config = config.with_authority_url(authority.trim())?;
        }
        Ok(config)
    }

    /// Replaces the tenant (letters, digits, `.`, `-` only).
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self, GraphError> {
        let valid = !tenant.is_empty()
            && tenant.len() <= 256
            && tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !valid {
            return Err(GraphError::Config(format!(
                "M365_MCP_TENANT_ID '{}' is not a tenant; use common, organizations, consumers, a tenant id or a domain",
                crate::error::truncate_for_display(tenant)
            )));
        }
        self.tenant = tenant.to_owned();
        Ok(self)
    }

    /// Replaces the identity platform root (https, or http on loopback only).
    pub fn with_authority_url(mut self, authority_url: &str) -> Result<Self, GraphError> {
        self.authority_url = parse_service_url("M365_MCP_AUTHORITY_URL", authority_url)?;
        Ok(self)
    }

    fn endpoint(&self, name: &str) -> Result<Url, GraphError> {
        let text = format!(
            "{}/{}/oauth2/v2.0/{name}",
            self.authority_url.as_str().trim_end_matches('/'),
            self.tenant
        );
        Url::parse(&text).map_err(|err| GraphError::Config(format!("bad authority URL: {err}")))
    }

    fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

/// [`GRAPH_SCOPES`] followed by [`OIDC_SCOPES`].
pub fn default_scopes() -> Vec<String> {
    GRAPH_SCOPES
        .iter()
        .chain(OIDC_SCOPES)
        .map(|scope| (*scope).to_owned())
        .collect()
}

/// Personal Microsoft account or work/school (Entra ID) account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// Tenant [`MSA_TENANT_ID`].
    Personal,
    /// Any other tenant.
    WorkSchool,
}

impl AccountType {
    /// Decides from the tenant id alone — never from the e-mail domain.
    pub fn from_tenant_id(tid: &str) -> Self {
        if tid.eq_ignore_ascii_case(MSA_TENANT_ID) {
            AccountType::Personal
        } else {
            AccountType::WorkSchool
        }
    }

    /// `"personal"` or `"work_school"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Personal => "personal",
            AccountType::WorkSchool => "work_school",
        }
    }
}

/// Who signed in, from the id token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountIdentity {
    /// `<oid>.<tid>`, the same form as MSAL's home account id.
    pub account_id: String,
    /// Object id of the user.
    pub oid: String,
    /// Tenant id.
    pub tid: String,
    /// `preferred_username` (usually the e-mail address), empty when absent.
    pub username: String,
    /// `name`, empty when absent.
    pub display_name: String,
    /// From `tid`.
    pub account_type: AccountType,
}

/// Reads the identity from an id token's payload. The signature is not checked: the token came
/// straight from the token endpoint over TLS, and is used to name the account, not to authorize.
pub fn parse_id_token(id_token: &str) -> Result<AccountIdentity, GraphError> {
    let invalid = |what: &str| GraphError::Auth {
        code: "invalid_id_token".into(),
        description: format!("the id token {what}"),
    };
    let payload = id_token
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("is not a JWT"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| invalid("payload is not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("payload is not JSON"))?;
    let claim = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let oid = claim("oid");
    let tid = claim("tid");
    if oid.is_empty() || tid.is_empty() {
        return Err(invalid(
            "has no oid or tid claim (is the 'profile' scope requested?)",
        ));
    }
    Ok(AccountIdentity {
        account_id: format!("{oid}.{tid}"),
        account_type: AccountType::from_tenant_id(&tid),
        username: claim("preferred_username"),
        display_name: claim("name"),
        oid,
        tid,
    })
}

/// Tokens from a successful grant.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// Bearer token for Graph.
    pub access_token: SecretString,
    /// Refresh token; after a refresh grant this is the rotated one when Microsoft sent one.
    pub refresh_token: Option<SecretString>,
    /// When the access token stops working.
    pub expires_at: SystemTime,
    /// Scopes granted, space-separated.
    pub scope: String,
    /// The account, when an id token came with the answer.
    pub identity: Option<AccountIdentity>,
}

/// A started device-code sign-in. Show [`DeviceCodeChallenge::message`] (or the URI and code) to
/// the user, then poll. The device code itself stays private.
#[derive(Debug, Clone)]
pub struct DeviceCodeChallenge {
    /// Code the user types at the verification page.
    pub user_code: String,
    /// Page where the user types the code.
    pub verification_uri: String,
    /// Microsoft's ready-made instruction text.
    pub message: String,
    /// When the code stops working.
    pub expires_at: SystemTime,
    /// Minimum wait between polls.
    pub interval: Duration,
    device_code: SecretString,
    config: AuthConfig,
}

/// The answer to one poll of the token endpoint.
#[derive(Debug)]
pub enum PollOutcome {
    /// The user has not finished yet; poll again after the interval.
    Pending,
    /// Polling too fast; add [`SLOW_DOWN_STEP`] to the interval.
    SlowDown,
    /// Signed in.
    Complete(Box<TokenSet>),
    /// The user declined.
    Declined,
    /// The code expired before the user finished.
    Expired,
}

/// The device authorization grant.
#[derive(Debug)]
pub struct DeviceCodeFlow;

impl DeviceCodeFlow {
    /// Asks for a device code and user code (`POST /{tenant}/oauth2/v2.0/devicecode`).
    pub async fn start(config: &AuthConfig) -> Result<DeviceCodeChallenge, GraphError> {
        let url = config.endpoint("devicecode")?;
        let scope = config.scope_string();
        let form = [
            ("client_id", config.client_id.as_str()),
            ("scope", scope.as_str()),
        ];
        let (status, body) = post_form(url, &form).await?;
        if !status.is_success() {
            return Err(oauth_error(status, &body));
        }
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_owned);
        let missing = |name: &str| GraphError::Auth {
            code: "invalid_response".into(),
            description: format!("the device code answer has no {name}"),
        };
        let device_code = text("device_code").ok_or_else(|| missing("device_code"))?;
        let user_code = text("user_code").ok_or_else(|| missing("user_code"))?;
        let verification_uri = text("verification_uri")
            .or_else(|| text("verification_url"))
            .ok_or_else(|| missing("verification_uri"))?;
        let expires_in = number(&body, "expires_in").unwrap_or(900);
        let interval = number(&body, "interval").unwrap_or(5).max(1);
        let message = text("message").unwrap_or_else(|| {
            format!("To sign in, open {verification_uri} and enter the code {user_code}.")
        });
        Ok(DeviceCodeChallenge {
            user_code,
            verification_uri,
            message,
            expires_at: SystemTime::now() + Duration::from_secs(expires_in),
            interval: Duration::from_secs(interval),
            device_code: SecretString::new(device_code),
            config: config.clone(),
        })
    }

    /// Polls the token endpoint once; never waits.
    pub async fn poll_once(challenge: &DeviceCodeChallenge) -> Result<PollOutcome, GraphError> {
        let url = challenge.config.endpoint("token")?;
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", challenge.config.client_id.as_str()),
            ("device_code", challenge.device_code.expose()),
        ];
        let (status, body) = post_form(url, &form).await?;
        if status.is_success() {
            let tokens = token_set(&body, None)?;
            if tokens.identity.is_none() {
                return Err(GraphError::Auth {
                    code: "invalid_response".into(),
                    description: "the token answer has no id_token; the 'openid' and 'profile' scopes are required".into(),
                });
            }
            return Ok(PollOutcome::Complete(Box::new(tokens)));
        }
        let code = body.get("error").and_then(Value::as_str).unwrap_or("");
        match code {
            "authorization_pending" => Ok(PollOutcome::Pending),
            "slow_down" => Ok(PollOutcome::SlowDown),
            "authorization_declined" | "access_denied" => Ok(PollOutcome::Declined),
            "expired_token" | "code_expired" => Ok(PollOutcome::Expired),
            _ => Err(oauth_error(status, &body)),
        }
    }

    /// Polls until the user finishes, declines, or the code expires, waiting `interval` between
    /// polls and slowing down when asked. Transient network failures are retried until expiry.
    pub async fn poll_until_complete(
        challenge: &DeviceCodeChallenge,
    ) -> Result<TokenSet, GraphError> {
        let mut interval = challenge.interval;
        loop {
            if SystemTime::now() >= challenge.expires_at {
                return Err(expired());
            }
            tokio::time::sleep(interval).await;
            match DeviceCodeFlow::poll_once(challenge).await {
                Ok(PollOutcome::Complete(tokens)) => return Ok(*tokens),
                Ok(PollOutcome::Pending) => {}
                Ok(PollOutcome::SlowDown) => interval += SLOW_DOWN_STEP,
                Ok(PollOutcome::Declined) => {
                    return Err(GraphError::Auth {
                        code: "authorization_declined".into(),
                        description: "the sign-in was declined".into(),
                    });
                }
                Ok(PollOutcome::Expired) => return Err(expired()),
                Err(error @ (GraphError::Transport { .. } | GraphError::Timeout { .. })) => {
                    tracing::debug!(error = %error, "device code poll failed; trying again");
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn expired() -> GraphError {
    GraphError::Auth {
        code: "expired_token".into(),
        description: "the sign-in code expired before sign-in finished; start again".into(),
    }
}

/// Redeems a refresh token (`grant_type=refresh_token`). Microsoft may rotate the refresh token:
/// the returned set holds the new one, or the one given when none came back.
/// A refused refresh token (`invalid_grant`) becomes [`GraphError::AuthRequired`].
pub async fn refresh(config: &AuthConfig, refresh_token: &str) -> Result<TokenSet, GraphError> {
    let url = config.endpoint("token")?;
    let scope = config.scope_string();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", config.client_id.as_str()),
        ("refresh_token", refresh_token),
        ("scope", scope.as_str()),
    ];
    let (status, body) = post_form(url, &form).await?;
    if !status.is_success() {
        let code = body.get("error").and_then(Value::as_str).unwrap_or("");
        if code == "invalid_grant" || code == "interaction_required" {
            return Err(GraphError::AuthRequired {
                account: String::new(),
                reason: format!(
                    "Microsoft refused the stored sign-in ({}); sign in again with `m365-mcp auth login`",
                    first_line(
                        body.get("error_description")
                            .and_then(Value::as_str)
                            .unwrap_or(code)
                    )
                ),
            });
        }
        return Err(oauth_error(status, &body));
    }
    token_set(&body, Some(refresh_token))
}

fn identity_http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("m365-mcp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

const IDENTITY_TIMEOUT: Duration = Duration::from_secs(30);

async fn post_form(
    url: Url,
    form: &[(&str, &str)],
) -> Result<(reqwest::StatusCode, Value), GraphError> {
    let response = identity_http()
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|err| from_reqwest(err, IDENTITY_TIMEOUT))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| from_reqwest(err, IDENTITY_TIMEOUT))?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, body))
}

fn oauth_error(status: reqwest::StatusCode, body: &Value) -> GraphError {
    let code = body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("http_{}", status.as_u16()));
    let mut description = body
        .get("error_description")
        .and_then(Value::as_str)
        .map(first_line)
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no description")
                .to_owned()
        });
    if code == "invalid_client" || code == "unauthorized_client" {
        description.push_str(
            " — check M365_MCP_CLIENT_ID and that 'Allow public client flows' is on in the app registration",
        );
    }
    GraphError::Auth { code, description }
}

/// Microsoft's descriptions continue with trace and correlation ids on further lines.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_owned()
}

/// A number that may arrive as a JSON number or a string.
fn number(body: &Value, name: &str) -> Option<u64> {
    match body.get(name)? {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn token_set(body: &Value, previous_refresh: Option<&str>) -> Result<TokenSet, GraphError> {
    let access_token = body
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::Auth {
            code: "invalid_response".into(),
            description: "the token answer has no access_token".into(),
        })?;
    let refresh_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .or(previous_refresh)
        .map(SecretString::new);
    let expires_in = number(body, "expires_in").unwrap_or(3600);
    let identity = match body.get("id_token").and_then(Value::as_str) {
        Some(id_token) => Some(parse_id_token(id_token)?),
        None => None,
    };
    Ok(TokenSet {
        access_token: SecretString::new(access_token),
        refresh_token,
        expires_at: SystemTime::now() + Duration::from_secs(expires_in),
        scope: body
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        identity,
    })
}
