//! An in-memory [`TokenSource`]: access tokens kept in memory and refreshed ahead of expiry, one
//! refresh at a time per account; rotated refresh tokens handed to a persistence callback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::{self, AuthConfig, SecretString, TokenSet};
use crate::client::{BoxFuture, TokenSource};
use crate::error::GraphError;

/// Access tokens are refreshed this long before they expire.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// A forced refresh this soon after the previous one reuses its result, so a burst of 401s on
/// concurrent requests costs one refresh.
const FORCED_REFRESH_DEBOUNCE: Duration = Duration::from_secs(10);

/// Called with `(account_id, new_refresh_token)` when Microsoft rotates a refresh token.
pub type RotationCallback = Arc<dyn Fn(&str, &SecretString) + Send + Sync>;

#[derive(Default)]
struct Entry {
    refresh_token: Option<SecretString>,
    access_token: Option<SecretString>,
    expires_at: Option<SystemTime>,
    refreshed_at: Option<Instant>,
}

impl Entry {
    fn usable_access_token(&self, margin: Duration) -> Option<String> {
        let token = self.access_token.as_ref()?;
        let expires_at = self.expires_at?;
        (SystemTime::now() + margin < expires_at).then(|| token.expose().to_owned())
    }
}

/// Keeps tokens per account (keys compared case-insensitively) and refreshes them with
/// [`auth::refresh`].
pub struct TokenCache {
    auth: AuthConfig,
    on_rotate: RotationCallback,
    accounts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("accounts", &self.accounts().len())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// An empty cache refreshing against `auth`; `on_rotate` persists rotated refresh tokens.
    pub fn new(
        auth: AuthConfig,
        on_rotate: impl Fn(&str, &SecretString) + Send + Sync + 'static,
    ) -> Self {
        TokenCache {
            auth,
            on_rotate: Arc::new(on_rotate),
            accounts: Mutex::new(HashMap::new()),
        }
    }

    fn entry(&self, account_id: &str, create: bool) -> Option<Arc<tokio::sync::Mutex<Entry>>> {
        let key = account_id.to_ascii_lowercase();
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if create {
            Some(accounts.entry(key).or_default().clone())
        } else {
            accounts.get(&key).cloned()
        }
    }

    /// Stores the tokens of a fresh sign-in.
    pub async fn insert(&self, account_id: &str, tokens: &TokenSet) {
        if let Some(entry) = self.entry(account_id, true) {
            let mut entry = entry.lock().await;
            entry.access_token = Some(tokens.access_token.clone());
            entry.expires_at = Some(tokens.expires_at);
            if tokens.refresh_token.is_some() {
                entry.refresh_token = tokens.refresh_token.clone();
            }
            entry.refreshed_at = None;
        }
    }

    /// Registers an account by its stored refresh token (at start-up); the first request
    /// redeems it.
    pub async fn insert_refresh_token(&self, account_id: &str, refresh_token: SecretString) {
        if let Some(entry) = self.entry(account_id, true) {
            entry.lock().await.refresh_token = Some(refresh_token);
        }
    }

    /// Forgets an account; true when it was known.
    pub fn remove(&self, account_id: &str) -> bool {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&account_id.to_ascii_lowercase())
            .is_some()
    }

    /// The account ids known (lower-cased).
    pub fn accounts(&self) -> Vec<String> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn unknown(account_id: &str) -> GraphError {
        GraphError::AuthRequired {
            account: account_id.to_owned(),
            reason: "this account is not signed in; run `m365-mcp auth login`".into(),
        }
    }

    async fn redeem(&self, account_id: &str, entry: &mut Entry) -> Result<String, GraphError> {
        let refresh_token = entry
            .refresh_token
            .clone()
            .ok_or_else(|| TokenCache::unknown(account_id))?;
        let tokens = match auth::refresh(&self.auth, refresh_token.expose()).await {
            Ok(tokens) => tokens,
            Err(GraphError::AuthRequired { reason, .. }) => {
                return Err(GraphError::AuthRequired {
                    account: account_id.to_owned(),
                    reason,
                });
            }
            Err(error) => return Err(error),
        };
        entry.access_token = Some(tokens.access_token.clone());
        entry.expires_at = Some(tokens.expires_at);
        entry.refreshed_at = Some(Instant::now());
        if let Some(new_refresh) = tokens.refresh_token
            && new_refresh != refresh_token
        {
            (self.on_rotate)(account_id, &new_refresh);
            entry.refresh_token = Some(new_refresh);
        }
        Ok(tokens.access_token.expose().to_owned())
    }
}

impl TokenSource for TokenCache {
    fn access_token<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            let entry = self
                .entry(account_id, false)
                .ok_or_else(|| TokenCache::unknown(account_id))?;
            // Holding the account's lock across the refresh makes concurrent callers wait for
            // the one refresh instead of starting their own.
            let mut entry = entry.lock().await;
            if let Some(token) = entry.usable_access_token(REFRESH_AHEAD) {
                return Ok(token);
            }
            self.redeem(account_id, &mut entry).await
        })
    }

    fn refresh<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            let entry = self
                .entry(account_id, false)
                .ok_or_else(|| TokenCache::unknown(account_id))?;
            let mut entry = entry.lock().await;
            let recent = entry
                .refreshed_at
                .is_some_and(|at| at.elapsed() < FORCED_REFRESH_DEBOUNCE);
            if recent && let Some(token) = entry.usable_access_token(Duration::ZERO) {
                return Ok(token);
            }
            self.redeem(account_id, &mut entry).await
        })
    }
}
