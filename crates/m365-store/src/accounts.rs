//! Signed-in accounts and their refresh tokens, kept in the encrypted file
//! (never in a plain file). Access tokens are not stored: they live in
//! memory and are re-obtained from the refresh token.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::StoreError;
use crate::store::{Store, now_ms};

/// An account as stored, without its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRecord {
    /// `<oid>.<tid>`.
    pub account_id: String,
    /// The sign-in name (`preferred_username`).
    pub username: String,
    /// Display name, when known.
    pub display_name: Option<String>,
    /// Tenant id (`tid`).
    pub tenant_id: String,
    /// `personal` or `work_school`.
    pub account_type: String,
}

impl Store {
    /// Adds or updates an account and its refresh token.
    pub fn upsert_account(
        &self,
        account: &AccountRecord,
        refresh_token: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        self.write_tx(|tx| {
            tx.execute(
                "INSERT INTO accounts (account_id, username, display_name, tenant_id, account_type, refresh_token,
                                       created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT(account_id) DO UPDATE SET
                    username = excluded.username, display_name = excluded.display_name,
                    tenant_id = excluded.tenant_id, account_type = excluded.account_type,
                    refresh_token = coalesce(excluded.refresh_token, accounts.refresh_token),
                    updated_at = excluded.updated_at",
                params![
                    account.account_id,
                    account.username,
                    account.display_name,
                    account.tenant_id,
                    account.account_type,
                    refresh_token,
                    now
                ],
            )?;
            Ok(())
        })
    }

    /// Replaces an account's refresh token (tokens rotate on every refresh).
    pub fn set_refresh_token(
        &self,
        account_id: &str,
        refresh_token: &str,
    ) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            let n = tx.execute(
                "UPDATE accounts SET refresh_token = ?2, updated_at = ?3 WHERE account_id = ?1",
                params![account_id, refresh_token, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::InvalidArgument(format!(
                    "Invalid account_id '{account_id}': not signed in"
                )));
            }
            Ok(())
        })
    }

    /// The stored refresh token of an account.
    pub fn refresh_token(&self, account_id: &str) -> Result<Option<Zeroizing<String>>, StoreError> {
        self.read(|conn| {
            let token: Option<Option<String>> = conn
                .prepare_cached("SELECT refresh_token FROM accounts WHERE account_id = ?1")?
                .query_row([account_id], |r| r.get(0))
                .optional()?;
            Ok(token.flatten().map(Zeroizing::new))
        })
    }

    /// Every account, ordered by username.
    pub fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, username, display_name, tenant_id, account_type FROM accounts
                 ORDER BY username COLLATE NOCASE",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(AccountRecord {
                    account_id: r.get(0)?,
                    username: r.get(1)?,
                    display_name: r.get(2)?,
                    tenant_id: r.get(3)?,
                    account_type: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Removes an account, its token, and everything cached for it.
    /// Returns false when no such account existed.
    pub fn remove_account(&self, account_id: &str) -> Result<bool, StoreError> {
        let removed = self.write_tx(|tx| {
            Ok(tx.execute("DELETE FROM accounts WHERE account_id = ?1", [account_id])?)
        })?;
        self.purge_account(account_id)?;
        Ok(removed > 0)
    }
}
