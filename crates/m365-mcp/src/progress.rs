//! MCP progress notifications for long runs (folder trees, bulk folder
//! operations, large uploads), sent only when the client asked for them
//! with a progress token; and MCP logging notifications for background work
//! that belongs to no request (cache warming), sent to every session.
//!
//! The reporter travels with the tool call as a task-local, so a handler
//! reports progress with one call and no extra parameter; outside a call
//! that asked for progress, reporting does nothing. Notifications are sent
//! in order by one forwarder per call, and all of them before the call's
//! answer.
//!
//! [`Sessions`] is the other half: every connected session joins it once
//! (at `initialize`), with the level it chose through `logging/setLevel`
//! (`info` until it chooses), and [`Sessions::log`] hands a message to each
//! session whose level it meets, in order, through one forwarder per
//! session. rmcp marks logging deprecated (SEP-2577) but it is part of
//! every protocol revision that has `initialize`; hence the `allow`s.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
use serde_json::Value;
use tokio::sync::mpsc;

/// Where progress of the current call goes. The forwarder task starts on
/// the first report, so calls that never report cost nothing extra.
#[derive(Clone)]
pub struct Reporter {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    forwarder: Arc<Mutex<Option<Forwarder>>>,
    /// Progress must increase; reports that would not are dropped.
    last: Arc<AtomicU64>,
}

struct Forwarder {
    queue: mpsc::UnboundedSender<ProgressNotificationParam>,
    task: tokio::task::JoinHandle<()>,
}

tokio::task_local! {
    static REPORTER: Reporter;
}

/// Runs `f`; when `token` is given, progress it reports goes to `peer`,
/// every notification before `f`'s result is returned.
pub async fn scope<F: std::future::Future>(
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    f: F,
) -> F::Output {
    let Some(token) = token else {
        return f.await;
    };
    let forwarder = Arc::new(Mutex::new(None));
    let reporter = Reporter {
        peer,
        token,
        forwarder: forwarder.clone(),
        last: Arc::new(AtomicU64::new(0)),
    };
    let output = REPORTER.scope(reporter, f).await;
    let started = forwarder.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(Forwarder { queue, task }) = started {
        // Closing the queue lets the forwarder drain what is left and end.
        drop(queue);
        let _ = task.await;
    }
    output
}

/// Reports `done` of `total` (when known) with a short message. Never
/// blocks and never fails the caller: a lost notification is harmless.
pub fn report(done: u64, total: Option<u64>, message: &str) {
    let _ = REPORTER.try_with(|r| {
        if r.last.fetch_max(done, Ordering::Relaxed) >= done {
            return;
        }
        let mut param =
            ProgressNotificationParam::new(r.token.clone(), done as f64).with_message(message);
        if let Some(total) = total {
            param = param.with_total(total as f64);
        }
        let mut slot = r.forwarder.lock().unwrap_or_else(|p| p.into_inner());
        let forwarder = slot.get_or_insert_with(|| {
            let (queue, mut pending) = mpsc::unbounded_channel::<ProgressNotificationParam>();
            let peer = r.peer.clone();
            let task = tokio::spawn(async move {
                while let Some(param) = pending.recv().await {
                    if peer.notify_progress(param).await.is_err() {
                        break;
                    }
                }
            });
            Forwarder { queue, task }
        });
        let _ = forwarder.queue.send(param);
    });
}

/// Messages waiting for one session's forwarder; beyond this a slow
/// session loses messages rather than holding memory (a lost log line is
/// harmless).
const SESSION_QUEUE: usize = 256;

/// Rank of a logging level, least severe first.
#[allow(deprecated)]
fn rank(level: rmcp::model::LoggingLevel) -> u8 {
    use rmcp::model::LoggingLevel::*;
    match level {
        Debug => 0,
        Info => 1,
        Notice => 2,
        Warning => 3,
        Error => 4,
        Critical => 5,
        Alert => 6,
        Emergency => 7,
    }
}

/// One connected session, as [`Sessions`] sees it. Owned by the session's
/// server handler; [`Sessions`] holds it weakly.
pub struct Session {
    peer: Peer<RoleServer>,
    /// The least severe level the session wants ([`rank`]).
    min_rank: AtomicU8,
    #[allow(deprecated)]
    queue: mpsc::Sender<rmcp::model::LoggingMessageNotificationParam>,
}

impl Session {
    /// `logging/setLevel`: messages below `level` are no longer sent.
    #[allow(deprecated)]
    pub fn set_level(&self, level: rmcp::model::LoggingLevel) {
        self.min_rank.store(rank(level), Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.peer.is_transport_closed() || self.queue.is_closed()
    }
}

/// Every connected session, for logging notifications that belong to no
/// request. Sessions are held weakly and pruned once closed, whenever a
/// session joins or a message goes out, so the list never outgrows the
/// sessions that are actually connected.
#[derive(Default)]
pub struct Sessions {
    list: Mutex<Vec<Weak<Session>>>,
}

impl Sessions {
    /// Adds a session at level `info`. The caller keeps the returned handle
    /// for as long as the session lasts (dropping it leaves the list).
    #[allow(deprecated)]
    pub fn join(&self, peer: Peer<RoleServer>) -> Arc<Session> {
        let (queue, mut pending) =
            mpsc::channel::<rmcp::model::LoggingMessageNotificationParam>(SESSION_QUEUE);
        let forward = peer.clone();
        tokio::spawn(async move {
            while let Some(message) = pending.recv().await {
                if forward.notify_logging_message(message).await.is_err() {
                    break;
                }
            }
        });
        let session = Arc::new(Session {
            peer,
            min_rank: AtomicU8::new(rank(rmcp::model::LoggingLevel::Info)),
            queue,
        });
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|s| s.upgrade().is_some_and(|s| !s.is_closed()));
        list.push(Arc::downgrade(&session));
        session
    }

    /// Sends `data` from `logger` at `level` to every session whose level
    /// it meets. Never blocks: messages are queued per session, in the
    /// order of the calls.
    #[allow(deprecated)]
    pub fn log(&self, level: rmcp::model::LoggingLevel, logger: &str, data: Value) {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|s| s.upgrade().is_some_and(|s| !s.is_closed()));
        for session in list.iter().filter_map(Weak::upgrade) {
            if rank(level) < session.min_rank.load(Ordering::Relaxed) {
                continue;
            }
            let message = rmcp::model::LoggingMessageNotificationParam::new(level, data.clone())
                .with_logger(logger);
            if session.queue.try_send(message).is_err() {
                tracing::debug!(
                    logger,
                    "a session is not reading its log messages; one was dropped"
                );
            }
        }
    }
}
