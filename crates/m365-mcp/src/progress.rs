//! MCP progress notifications for long runs (folder trees, bulk folder
//! operations, large uploads), sent only when the client asked for them
//! with a progress token.
//!
//! The reporter travels with the tool call as a task-local, so a handler
//! reports progress with one call and no extra parameter; outside a call
//! that asked for progress, reporting does nothing. Notifications are sent
//! in order by one forwarder per call, and all of them before the call's
//! answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::{Peer, RoleServer};
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
