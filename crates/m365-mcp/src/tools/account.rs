//! Account tools: list, and sign in through the device-code flow without
//! blocking — `account_authenticate` starts it and returns a handle,
//! `account_complete_auth` polls once and answers `pending` or the account.

use std::sync::Arc;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{Hints, LOCAL_READ, NoParams, ToolDef, ToolResult};
use crate::accounts::{AccountView, FlowState};
use crate::app::App;

/// Parameters of `account_complete_auth`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteAuthParams {
    /// The `_flow_cache` handle that account_authenticate returned.
    pub flow_cache: String,
}

const SIGN_IN: Hints = Hints {
    read_only: false,
    destructive: false,
    idempotent: false,
    open_world: true,
};

/// The account tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::local(
            "account_list",
            "List signed-in accounts",
            "account",
            LOCAL_READ,
            "List the Microsoft 365 accounts signed in to this server, with their account_id, username and \
             account type (personal or work_school). Any account-scoped tool takes account_id (id or username); \
             it may be omitted when exactly one account is signed in.",
            list,
        ),
        ToolDef::local(
            "account_authenticate",
            "Start signing in an account",
            "account",
            SIGN_IN,
            "Start signing in a Microsoft account with a device code. Show the user the verification URL and \
             code; once they have signed in, call account_complete_auth with the returned _flow_cache handle.",
            authenticate,
        ),
        ToolDef::local(
            "account_complete_auth",
            "Finish signing in an account",
            "account",
            SIGN_IN,
            "Check once whether the user finished the device-code sign-in started by account_authenticate. \
             Answers status 'pending' (call again in a few seconds) or 'success' with the account. Never waits.",
            complete,
        ),
    ]
}

async fn list(app: Arc<App>, _: NoParams) -> ToolResult {
    let accounts: Vec<AccountView> = app.accounts.list()?.iter().map(AccountView::from).collect();
    Ok(json!({ "value": accounts, "count": accounts.len() }))
}

async fn authenticate(app: Arc<App>, _: NoParams) -> ToolResult {
    let (handle, challenge) = app.accounts.start_flow().await?;
    let expires_in = challenge
        .expires_at
        .duration_since(SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(json!({
        "status": "authentication_required",
        "instructions": challenge.message,
        "verification_url": challenge.verification_uri,
        "user_code": challenge.user_code,
        // The Python server called the user code `device_code`; kept for drop-in use.
        "device_code": challenge.user_code,
        "expires_in": expires_in,
        "interval": challenge.interval.as_secs(),
        "_flow_cache": handle,
        "next_step": "After the user signs in, call account_complete_auth with flow_cache set to _flow_cache.",
    }))
}

async fn complete(app: Arc<App>, params: CompleteAuthParams) -> ToolResult {
    match app.accounts.poll_flow(params.flow_cache.trim()).await? {
        FlowState::Pending { retry_after } => Ok(json!({
            "status": "pending",
            "message": "The user has not finished signing in yet. Call account_complete_auth again shortly.",
            "retry_after_seconds": retry_after.as_secs().max(1),
        })),
        FlowState::SignedIn(record) => Ok(json!({
            "status": "success",
            "account_id": record.account_id,
            "username": record.username,
            "display_name": record.display_name,
            "account_type": record.account_type,
            "message": format!("Signed in as {}.", record.username),
        })),
    }
}
