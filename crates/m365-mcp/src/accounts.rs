//! Signed-in accounts: the device-code sign-in (from the command line or
//! through the account tools), which account a call acts for, and the tokens
//! Graph requests carry.
//!
//! Refresh tokens live in the encrypted accounts file; access tokens only in
//! memory, refreshed ahead of expiry. Device-code flows started by a tool stay
//! here, behind an opaque handle: the secret device code never reaches the
//! client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use m365_graph::auth::{
    AuthConfig, DeviceCodeChallenge, DeviceCodeFlow, PollOutcome, SecretString, TokenSet,
};
use m365_graph::{BoxFuture, GraphError, TokenCache, TokenSource};
use m365_store::{AccountRecord, Store};
use rand::TryRngCore;
use serde::Serialize;

use crate::error::ToolError;

/// Flows kept at once; older ones are dropped first.
const MAX_PENDING_FLOWS: usize = 16;

/// A device-code flow started by `account_authenticate`.
struct PendingFlow {
    challenge: DeviceCodeChallenge,
    interval: Duration,
    last_poll: Option<Instant>,
    started: Instant,
}

/// What one poll of a pending flow found.
#[derive(Debug)]
pub enum FlowState {
    /// The user has not finished; poll again after `retry_after`.
    Pending {
        /// When polling again is useful.
        retry_after: Duration,
    },
    /// Signed in.
    SignedIn(AccountRecord),
}

/// The accounts a server acts for, and their tokens.
pub struct AccountManager {
    store: Option<Store>,
    auth: Result<AuthConfig, String>,
    tokens: Option<Arc<TokenCache>>,
    flows: Mutex<HashMap<String, PendingFlow>>,
    /// Accounts when no store could be opened (kept for this process only).
    memory: Mutex<Vec<AccountRecord>>,
}

impl std::fmt::Debug for AccountManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountManager")
            .field("persistent", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serialisable view of an account, as tools return it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// `<oid>.<tid>`.
    pub account_id: String,
    /// Sign-in name.
    pub username: String,
    /// Display name, when known.
    pub display_name: Option<String>,
    /// `personal` or `work_school`.
    pub account_type: String,
}

impl From<&AccountRecord> for AccountView {
    fn from(r: &AccountRecord) -> Self {
        AccountView {
            account_id: r.account_id.clone(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            account_type: r.account_type.clone(),
        }
    }
}

impl AccountManager {
    /// A manager over the accounts in `store` (None: accounts live only in
    /// memory), signing in with `auth`.
    pub async fn new(store: Option<Store>, auth: Result<AuthConfig, String>) -> Self {
        let tokens = auth.as_ref().ok().map(|auth| {
            let persist = store.clone();
            Arc::new(TokenCache::new(
                auth.clone(),
                move |account_id, refresh_token| {
                    if let Some(store) = &persist
                        && let Err(e) = store.set_refresh_token(account_id, refresh_token.expose())
                    {
                        tracing::warn!(error = %e, "could not store a rotated refresh token");
                    }
                },
            ))
        });
        let manager = AccountManager {
            store,
            auth,
            tokens,
            flows: Mutex::new(HashMap::new()),
            memory: Mutex::new(Vec::new()),
        };
        if let (Some(store), Some(tokens)) = (&manager.store, &manager.tokens) {
            match store.list_accounts() {
                Ok(accounts) => {
                    for account in accounts {
                        match store.refresh_token(&account.account_id) {
                            Ok(Some(token)) => {
                                tokens
                                    .insert_refresh_token(
                                        &account.account_id,
                                        SecretString::new(token.as_str()),
                                    )
                                    .await
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "could not read a stored refresh token")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the signed-in accounts"),
            }
        }
        manager
    }

    /// Every signed-in account.
    pub fn list(&self) -> Result<Vec<AccountRecord>, ToolError> {
        match &self.store {
            Some(store) => store.list_accounts().map_err(|e| {
                ToolError::Unavailable(format!("cannot read the signed-in accounts: {e}"))
            }),
            None => Ok(lock(&self.memory).clone()),
        }
    }

    /// The account a call acts for: by id or username (case-insensitive), or
    /// the only one when `account_id` is omitted.
    pub fn resolve(&self, account_id: Option<&str>) -> Result<AccountRecord, ToolError> {
        let accounts = self.list()?;
        let names = || {
            accounts
                .iter()
                .map(|a| format!("{} ({})", a.username, a.account_id))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match account_id.map(str::trim).filter(|s| !s.is_empty()) {
            None => match accounts.len() {
                0 => Err(ToolError::Account(
                    "No account is signed in. Sign in with `m365-mcp auth login`, or call account_authenticate \
                     and then account_complete_auth."
                        .into(),
                )),
                1 => Ok(accounts[0].clone()),
                _ => Err(ToolError::Account(format!(
                    "Several accounts are signed in; pass account_id with one of: {}",
                    names()
                ))),
            },
            Some(wanted) => accounts
                .iter()
                .find(|a| a.account_id.eq_ignore_ascii_case(wanted) || a.username.eq_ignore_ascii_case(wanted))
                .cloned()
                .ok_or_else(|| {
                    ToolError::invalid(
                        "account_id",
                        wanted,
                        "no signed-in account has this id or username",
                        &if accounts.is_empty() {
                            "a signed-in account (none is signed in: run `m365-mcp auth login`)".to_string()
                        } else {
                            format!("one of: {}", names())
                        },
                    )
                }),
        }
    }

    fn auth(&self) -> Result<&AuthConfig, ToolError> {
        self.auth
            .as_ref()
            .map_err(|e| ToolError::Unavailable(e.clone()))
    }

    /// Starts a device-code sign-in kept in this process; returns its handle.
    pub async fn start_flow(&self) -> Result<(String, DeviceCodeChallenge), ToolError> {
        let challenge = DeviceCodeFlow::start(self.auth()?).await?;
        let handle = random_handle();
        let mut flows = lock(&self.flows);
        flows.retain(|_, f| f.challenge.expires_at > SystemTime::now());
        while flows.len() >= MAX_PENDING_FLOWS {
            let oldest = flows
                .iter()
                .min_by_key(|(_, f)| f.started)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => flows.remove(&k),
                None => break,
            };
        }
        flows.insert(
            handle.clone(),
            PendingFlow {
                interval: challenge.interval,
                challenge: challenge.clone(),
                last_poll: None,
                started: Instant::now(),
            },
        );
        Ok((handle, challenge))
    }

    /// Polls a pending flow once (never waits for the user). Polling sooner
    /// than the server's interval answers `Pending` without asking it.
    pub async fn poll_flow(&self, handle: &str) -> Result<FlowState, ToolError> {
        let (challenge, wait) = {
            let mut flows = lock(&self.flows);
            let flow = flows.get_mut(handle).ok_or_else(|| {
                ToolError::invalid(
                    "flow_cache",
                    handle,
                    "no sign-in in progress has this handle (it may have expired or completed)",
                    "the _flow_cache value returned by account_authenticate",
                )
            })?;
            let wait = flow
                .last_poll
                .map(|at| flow.interval.saturating_sub(at.elapsed()))
                .unwrap_or_default();
            if wait.is_zero() {
                flow.last_poll = Some(Instant::now());
            }
            (flow.challenge.clone(), wait)
        };
        if !wait.is_zero() {
            return Ok(FlowState::Pending { retry_after: wait });
        }
        match DeviceCodeFlow::poll_once(&challenge).await? {
            PollOutcome::Pending => Ok(FlowState::Pending {
                retry_after: challenge.interval,
            }),
            PollOutcome::SlowDown => {
                let mut flows = lock(&self.flows);
                let interval = flows.get_mut(handle).map(|f| {
                    f.interval += m365_graph::auth::SLOW_DOWN_STEP;
                    f.interval
                });
                Ok(FlowState::Pending {
                    retry_after: interval.unwrap_or(challenge.interval),
                })
            }
            PollOutcome::Complete(tokens) => {
                lock(&self.flows).remove(handle);
                Ok(FlowState::SignedIn(self.add_signed_in(&tokens).await?))
            }
            PollOutcome::Declined => {
                lock(&self.flows).remove(handle);
                Err(ToolError::Account(
                    "The sign-in was declined. Call account_authenticate to start again.".into(),
                ))
            }
            PollOutcome::Expired => {
                lock(&self.flows).remove(handle);
                Err(ToolError::Account(
                    "The sign-in code expired before it was used. Call account_authenticate to start again.".into(),
                ))
            }
        }
    }

    /// Signs in on the command line: starts the flow, shows the code through
    /// `show`, and polls until done.
    pub async fn login(
        &self,
        show: impl FnOnce(&DeviceCodeChallenge),
    ) -> Result<AccountRecord, ToolError> {
        let challenge = DeviceCodeFlow::start(self.auth()?).await?;
        show(&challenge);
        let tokens = DeviceCodeFlow::poll_until_complete(&challenge).await?;
        self.add_signed_in(&tokens).await
    }

    /// Records a completed sign-in beside the accounts already signed in.
    pub async fn add_signed_in(&self, tokens: &TokenSet) -> Result<AccountRecord, ToolError> {
        let identity = tokens.identity.as_ref().ok_or_else(|| {
            ToolError::Unavailable(
                "the identity platform returned no id token, so the account cannot be named; \
                 check that the app registration allows the openid and profile scopes"
                    .into(),
            )
        })?;
        let record = AccountRecord {
            account_id: identity.account_id.clone(),
            username: identity.username.clone(),
            display_name: (!identity.display_name.is_empty())
                .then(|| identity.display_name.clone()),
            tenant_id: identity.tid.clone(),
            account_type: identity.account_type.as_str().to_string(),
        };
        match &self.store {
            Some(store) => store
                .upsert_account(&record, tokens.refresh_token.as_ref().map(|t| t.expose()))
                .map_err(|e| ToolError::Unavailable(format!("cannot store the account: {e}")))?,
            None => {
                let mut memory = lock(&self.memory);
                memory.retain(|a| a.account_id != record.account_id);
                memory.push(record.clone());
            }
        }
        if let Some(cache) = &self.tokens {
            cache.insert(&record.account_id, tokens).await;
        }
        tracing::info!(account_id = %record.account_id, account_type = %record.account_type, "account signed in");
        Ok(record)
    }

    /// Signs an account out: its token and record go. Returns false when no
    /// such account was signed in.
    pub fn remove(&self, account_id: &str) -> Result<bool, ToolError> {
        if let Some(tokens) = &self.tokens {
            tokens.remove(account_id);
        }
        match &self.store {
            Some(store) => store
                .remove_account(account_id)
                .map_err(|e| ToolError::Unavailable(format!("cannot remove the account: {e}"))),
            None => {
                let mut memory = lock(&self.memory);
                let before = memory.len();
                memory.retain(|a| a.account_id != account_id);
                Ok(memory.len() != before)
            }
        }
    }
}

impl TokenSource for AccountManager {
    fn access_token<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            match &self.tokens {
                Some(tokens) => tokens.access_token(account_id).await,
                None => Err(GraphError::Config(
                    self.auth.clone().err().unwrap_or_default(),
                )),
            }
        })
    }

    fn refresh<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            match &self.tokens {
                Some(tokens) => tokens.refresh(account_id).await,
                None => Err(GraphError::Config(
                    self.auth.clone().err().unwrap_or_default(),
                )),
            }
        })
    }
}

fn random_handle() -> String {
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // Handles must not be guessable; without an OS RNG fall back to the
        // thread RNG (ChaCha, seeded from the OS at first use).
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    }
    hex::encode(bytes)
}
