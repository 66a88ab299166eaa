//! Client configuration and the URL rules shared by the Graph client and sign-in.

use std::net::IpAddr;
use std::time::Duration;

use url::Url;

use crate::GraphError;

/// Graph v1.0 endpoint used when `M365_MCP_GRAPH_URL` is not set.
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";

/// Graph asks for upload fragments that are multiples of 320 KiB.
pub const UPLOAD_FRAGMENT_UNIT: usize = 320 * 1024;

/// Settings of a [`crate::GraphClient`].
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Graph root, e.g. `https://graph.microsoft.com/v1.0` (no trailing slash).
    pub base_url: Url,
    /// Retries after the first attempt for 5xx, timeouts and broken connections.
    pub max_retries: u32,
    /// Retries after the first attempt for 429 and 503 that carry a `Retry-After`,
    /// which Graph expects clients to honour: waiting as told is the
    /// documented way through throttling, so these get more attempts.
    pub max_throttle_retries: u32,
    /// Upper bound on any single wait, including a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// First backoff step for retries without `Retry-After`; doubles per attempt, jittered.
    pub backoff_base: Duration,
    /// Largest backoff step.
    pub backoff_max: Duration,
    /// Requests in flight per account (Outlook allows 4 concurrent requests per mailbox).
    pub per_account_concurrency: usize,
    /// Timeout of one JSON request attempt.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one upload fragment or of a stall while downloading.
    pub transfer_timeout: Duration,
    /// Upload fragment size; a multiple of 320 KiB below 60 MiB.
    pub upload_chunk_size: usize,
    /// Redirects followed by [`crate::GraphClient::download_to`].
    pub max_redirects: u32,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: Url::parse(DEFAULT_GRAPH_URL).expect("the default Graph URL is valid"),
            max_retries: 3,
            max_throttle_retries: 8,
            max_retry_after: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            per_account_concurrency: 4,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            transfer_timeout: Duration::from_secs(120),
            upload_chunk_size: 10 * UPLOAD_FRAGMENT_UNIT,
            max_redirects: 3,
            user_agent: concat!("m365-mcp/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl GraphConfig {
    /// Defaults, with the base URL from `M365_MCP_GRAPH_URL` when set.
    pub fn from_env() -> Result<Self, GraphError> {
        let mut config = GraphConfig::default();
        if let Ok(value) = std::env::var("M365_MCP_GRAPH_URL")
            && !value.trim().is_empty()
        {
            config = config.with_base_url(value.trim())?;
        }
        Ok(config)
    }

    /// Replaces the base URL after checking it (https, or http on a loopback host only).
    pub fn with_base_url(mut self, base_url: &str) -> Result<Self, GraphError> {
        self.base_url = parse_service_url("M365_MCP_GRAPH_URL", base_url)?;
        Ok(self)
    }

    /// Checks the values that would make the client misbehave.
    pub fn validate(&self) -> Result<(), GraphError> {
        check_scheme("base_url", &self.base_url)?;
        if self.per_account_concurrency == 0 {
            return Err(GraphError::Config(
                "per_account_concurrency must be at least 1".into(),
            ));
        }
        if self.upload_chunk_size == 0
            || !self.upload_chunk_size.is_multiple_of(UPLOAD_FRAGMENT_UNIT)
            || self.upload_chunk_size >= 60 * 1024 * 1024
        {
            return Err(GraphError::Config(format!(
                "upload_chunk_size {} must be a non-zero multiple of 327680 bytes (320 KiB) below 60 MiB",
                self.upload_chunk_size
            )));
        }
        Ok(())
    }
}

/// Parses a service root URL: https anywhere, plain http only on loopback; trailing `/` dropped.
pub(crate) fn parse_service_url(name: &str, value: &str) -> Result<Url, GraphError> {
    let mut url = Url::parse(value)
        .map_err(|err| GraphError::Config(format!("{name} '{value}' is not a URL: {err}")))?;
    check_scheme(name, &url)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(GraphError::Config(format!(
            "{name} must not have a query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GraphError::Config(format!(
            "{name} must not contain credentials"
        )));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

fn check_scheme(name: &str, url: &Url) -> Result<(), GraphError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(GraphError::Config(format!(
            "{name} uses plain http on a non-loopback host ({}); use https, or http only on 127.0.0.1, ::1 or localhost",
            url.host_str().unwrap_or("")
        ))),
        other => Err(GraphError::Config(format!(
            "{name} has unsupported scheme '{other}'; use https"
        ))),
    }
}

/// True when the URL's host is 127.0.0.0/8, `::1` or `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// True when a URL may be fetched: https, or http on loopback.
pub(crate) fn is_acceptable_scheme(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url))
}
