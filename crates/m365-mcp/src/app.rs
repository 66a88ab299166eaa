//! The running server's shared state: configuration, accounts, the Graph
//! client, and the cache (when it could be opened).

use std::sync::Arc;
use std::time::Instant;

use m365_graph::GraphClient;
use m365_store::{OpenOutcome, Opened, StoreConfig};

use crate::accounts::AccountManager;
use crate::backend::CacheBackend;
use crate::cache::CacheRuntime;
use crate::config::ServerConfig;
use crate::tools::Registry;

/// Whether responses are cached, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// The encrypted cache is open.
    Open,
    /// `M365_MCP_CACHE_ENABLED=false`.
    Disabled,
    /// The cache could not be opened; every call goes to Graph.
    Unavailable(String),
}

/// Shared state of one server process.
pub struct App {
    /// Configuration read at start.
    pub config: ServerConfig,
    /// Signed-in accounts and their tokens.
    pub accounts: Arc<AccountManager>,
    /// The Graph client (one per process; connections are reused).
    pub graph: GraphClient,
    /// The response cache, when open.
    pub cache: Option<CacheBackend>,
    /// Why there is no cache, if there is none.
    pub cache_state: CacheState,
    /// When the process started.
    pub started: Instant,
    /// Every tool, by name (the worker runs refreshes through it).
    pub tools: Arc<Registry>,
    /// Single-flight gates, the worker's wake-up, warming progress.
    pub cache_runtime: CacheRuntime,
    worker_stop: tokio::sync::watch::Sender<bool>,
    worker: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("cache_state", &self.cache_state)
            .finish_non_exhaustive()
    }
}

/// Opens one encrypted file, reporting recoveries as warnings.
pub fn open_store_file(path: &std::path::Path, config: &ServerConfig) -> Result<Opened, String> {
    let keys = config.paths.key_manager();
    let mut store_config = StoreConfig::new(path);
    store_config.ttl_scale = config.ttl_scale;
    let opened = m365_store::open_encrypted(store_config, &keys).map_err(|e| e.to_string())?;
    match &opened.outcome {
        OpenOutcome::MovedAside { moved_to } => tracing::warn!(
            moved_to = %moved_to.display(),
            "a file that did not open with the key was moved aside; a new one was created"
        ),
        OpenOutcome::MigratedFromPlain { rows } => {
            tracing::warn!(rows, path = %path.display(), "an unencrypted file was encrypted in place")
        }
        _ => {}
    }
    Ok(opened)
}

/// Connects the Redis backend with the cache key from the key manager
/// (servers sharing a Redis must share the key, e.g. `M365_MCP_CACHE_KEY`).
/// Redis being down is not an error here: calls go to Graph until it
/// answers.
async fn open_shared(config: &ServerConfig) -> Result<crate::backend::SharedCache, String> {
    let url = config
        .redis_url
        .clone()
        .ok_or_else(|| "M365_MCP_REDIS_URL is not set".to_string())?;
    let keys = config.paths.key_manager();
    let loaded = tokio::task::spawn_blocking(move || keys.load_or_create())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut redis_config = m365_redis::RedisConfig::new(url);
    redis_config.namespace = config.redis_namespace.clone();
    redis_config.ttl_scale = config.ttl_scale;
    let redis =
        m365_redis::RedisCache::new(redis_config, &loaded.key).map_err(|e| e.to_string())?;
    match redis.ping().await {
        Ok(()) => tracing::info!(namespace = %config.redis_namespace, "shared cache on Redis"),
        Err(e) => {
            tracing::warn!(error = %e, "Redis does not answer yet; calls go to Graph until it does")
        }
    }
    Ok(crate::backend::SharedCache::new(redis))
}

impl App {
    /// Opens the accounts file and the cache, and builds the Graph client.
    /// Neither file failing to open stops the server: accounts then live in
    /// memory, and calls bypass the cache.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Arc<App>> {
        let accounts_db = config.accounts_db();
        let accounts_store = match open_store_file(&accounts_db, &config) {
            Ok(opened) => Some(opened.store),
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the accounts file; sign-ins will last only for this process");
                None
            }
        };
        let (cache, cache_state) = if !config.cache_enabled {
            (None, CacheState::Disabled)
        } else if config.cache_backend == crate::backend::BackendKind::Redis {
            match open_shared(&config).await {
                Ok(shared) => (Some(CacheBackend::Shared(shared)), CacheState::Open),
                Err(e) => {
                    tracing::warn!(error = %e, "the shared cache is unavailable; every call is answered from Graph");
                    (None, CacheState::Unavailable(e))
                }
            }
        } else {
            match open_store_file(&config.paths.db_path, &config) {
                Ok(opened) => (Some(CacheBackend::Local(opened.store)), CacheState::Open),
                Err(e) => {
                    tracing::warn!(error = %e, "the cache is unavailable; every call is answered from Graph");
                    (None, CacheState::Unavailable(e))
                }
            }
        };
        let accounts = Arc::new(AccountManager::new(accounts_store, config.auth.clone()).await);
        let graph = GraphClient::new(config.graph.clone(), accounts.clone())
            .map_err(|e| anyhow::anyhow!("invalid Graph configuration: {e}"))?;
        let (worker_stop, _) = tokio::sync::watch::channel(false);
        Ok(Arc::new(App {
            config,
            accounts,
            graph,
            cache,
            cache_state,
            started: Instant::now(),
            tools: Arc::new(Registry::build()),
            cache_runtime: CacheRuntime::default(),
            worker_stop,
            worker: std::sync::Mutex::new(None),
        }))
    }

    /// Starts the background worker (refreshes, warming, maintenance) and
    /// queues warming. Returns at once; nothing here delays a request.
    pub fn start_background(self: &Arc<Self>) {
        if self.cache.is_some() {
            let handle = tokio::spawn(crate::cache::run_worker(
                self.clone(),
                self.worker_stop.subscribe(),
            ));
            *self.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        let app = self.clone();
        tokio::spawn(async move { crate::cache::start_warming(&app).await });
    }

    /// Whether the background worker is running.
    pub fn worker_running(&self) -> bool {
        self.worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Stops the worker, letting a running task finish (up to 10 s), and
    /// writes pending statistics.
    pub async fn shutdown(&self) {
        let _ = self.worker_stop.send(true);
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle
            && tokio::time::timeout(std::time::Duration::from_secs(10), handle)
                .await
                .is_err()
        {
            tracing::warn!("the background worker did not stop in time");
        }
        if let Some(cache) = &self.cache {
            cache.flush();
        }
    }

    /// Purges everything cached for an account (sign-out).
    pub async fn purge_account_cache(&self, account_id: &str) -> u64 {
        self.cache_runtime.rendered.forget_account(account_id);
        match &self.cache {
            Some(cache) => cache.purge_account(account_id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "could not purge the account's cache entries");
                0
            }),
            None => 0,
        }
    }
}
