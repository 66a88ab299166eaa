//! Microsoft Graph v1.0 client and Microsoft identity platform sign-in for m365-mcp.
//!
//! This crate does the HTTP: bearer tokens from a [`TokenSource`], retries (429/503 with
//! `Retry-After` as seconds or HTTP-date, jittered backoff on 5xx, timeouts and broken
//! connections, one token refresh after a 401), a per-account concurrency limit, `@odata.nextLink`
//! paging, `$batch`, resumable streamed uploads, streamed size-capped downloads, percent-encoding
//! of ids and Graph errors mapped to [`GraphError`] with `error.code`, message and `request-id`.
//! The [`auth`] module signs accounts in with the device-code grant and refreshes their tokens;
//! [`TokenCache`] keeps access tokens in memory.
//!
//! Invariants: nothing here knows about MCP or the cache; no token, device code, pre-authenticated
//! URL or request body appears in an error, a log line or `Debug` output; the bearer token is sent
//! to the configured Graph origin only.
//!
//! ```no_run
//! use std::sync::Arc;
//! use m365_graph::{GraphClient, GraphConfig, TokenCache, auth::AuthConfig, encode_segment};
//!
//! # async fn demo() -> Result<(), m365_graph::GraphError> {
//! let auth = AuthConfig::from_env()?;
//! let challenge = m365_graph::auth::DeviceCodeFlow::start(&auth).await?;
//! eprintln!("{}", challenge.message);
//! let tokens = m365_graph::auth::DeviceCodeFlow::poll_until_complete(&challenge).await?;
//! let account = tokens.identity.clone().expect("device-code sign-in returns an identity").account_id;
//!
//! let cache = Arc::new(TokenCache::new(auth, |_account, _rotated| { /* persist it */ }));
//! cache.insert(&account, &tokens).await;
//! let graph = GraphClient::new(GraphConfig::from_env()?, cache)?;
//!
//! let inbox = graph
//!     .get_paged(&account, &format!("/me/mailFolders/{}/messages", encode_segment("inbox")),
//!                &[("$select", "subject,from"), ("$top", "25")], 50)
//!     .await?;
//! println!("{} messages", inbox.len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
mod batch;
mod client;
mod config;
mod encode;
mod error;
mod retry;
mod token_cache;
mod transfer;

pub use batch::{BatchRequest, BatchResponse, MAX_BATCH_SIZE};
pub use client::{BoxFuture, GraphClient, Query, RequestOptions, TokenSource};
pub use config::{DEFAULT_GRAPH_URL, GraphConfig, UPLOAD_FRAGMENT_UNIT};
pub use encode::{
    encode_drive_path, encode_query, encode_query_component, encode_segment, validate_id,
};
pub use error::GraphError;
pub use reqwest::Method;
pub use retry::{backoff_delay, parse_retry_after};
pub use token_cache::{REFRESH_AHEAD, RotationCallback, TokenCache};
pub use transfer::DEFAULT_DOWNLOAD_HOSTS;
