//! Helpers shared by the integration tests: a counting token source, a small HTTP server on
//! 127.0.0.1 and a fast-retry configuration.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use m365_graph::{BoxFuture, GraphClient, GraphConfig, GraphError, TokenSource};

/// Access token handed out before any refresh.
pub const INITIAL_TOKEN: &str = "initial-access-token-5f1c";
/// Access token handed out after a refresh.
pub const REFRESHED_TOKEN: &str = "refreshed-access-token-9a2e";

/// Counts calls; returns fixed tokens.
#[derive(Default)]
pub struct CountingTokens {
    pub access_calls: AtomicUsize,
    pub refresh_calls: AtomicUsize,
}

impl TokenSource for CountingTokens {
    fn access_token<'a>(
        &'a self,
        _account_id: &'a str,
    ) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            self.access_calls.fetch_add(1, Ordering::SeqCst);
            if self.refresh_calls.load(Ordering::SeqCst) > 0 {
                Ok(REFRESHED_TOKEN.to_owned())
            } else {
                Ok(INITIAL_TOKEN.to_owned())
            }
        })
    }

    fn refresh<'a>(&'a self, _account_id: &'a str) -> BoxFuture<'a, Result<String, GraphError>> {
        Box::pin(async move {
            self.refresh_calls.fetch_add(1, Ordering::SeqCst);
            Ok(REFRESHED_TOKEN.to_owned())
        })
    }
}

/// Serves `router` on 127.0.0.1 with a random port.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind test listener");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("test server");
    });
    addr
}

/// A configuration pointing at `addr` with fast retries.
pub fn fast_config(addr: SocketAddr) -> GraphConfig {
    let mut config = GraphConfig::default()
        .with_base_url(&format!("http://{addr}/v1.0"))
        .expect("loopback base URL");
    config.backoff_base = Duration::from_millis(10);
    config.backoff_max = Duration::from_millis(40);
    config.max_retry_after = Duration::from_secs(5);
    config.timeout = Duration::from_secs(5);
    config
}

/// A client on `addr` with counting tokens.
pub fn client(addr: SocketAddr) -> (GraphClient, Arc<CountingTokens>) {
    client_with(fast_config(addr))
}

/// A client with the given configuration and counting tokens.
pub fn client_with(config: GraphConfig) -> (GraphClient, Arc<CountingTokens>) {
    let tokens = Arc::new(CountingTokens::default());
    let client = GraphClient::new(config, tokens.clone()).expect("client");
    (client, tokens)
}
