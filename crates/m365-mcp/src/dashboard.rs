//! The cache dashboard (`GET /dashboard` in HTTP mode): cache health at a
//! glance — hit rate over time, entries and bytes per resource and per
//! account, stale serves, evictions, warming progress and the task queue.
//!
//! One server-rendered page with inline SVG and no script: nothing to build,
//! nothing fetched from elsewhere, and it refreshes itself every 15 s. The
//! same figures are at `/dashboard/data` as JSON.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use m365_store::{CacheStats, StatsRow, TaskStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::http::HttpState;

/// Samples kept for the hit-rate chart.
const HISTORY: usize = 360;

/// Cumulative counters at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Fresh hits so far.
    pub hits: u64,
    /// Stale serves so far.
    pub stale_hits: u64,
    /// Misses so far.
    pub misses: u64,
}

/// The dashboard's memory: counter samples for the chart.
#[derive(Debug, Default)]
pub struct Dashboard {
    samples: Mutex<VecDeque<Sample>>,
}

impl Dashboard {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&self, total: &StatsRow, min_gap: Duration) {
        let now = m365_store::now_ms();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples
            .back()
            .is_some_and(|s| now - s.at_ms < min_gap.as_millis() as i64)
        {
            return;
        }
        if samples.len() == HISTORY {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at_ms: now,
            hits: total.hits,
            stale_hits: total.stale_hits,
            misses: total.misses,
        });
    }

    fn history(&self) -> Vec<Sample> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Samples the counters every `every` until the process ends.
    pub fn start_sampler(self: &Arc<Self>, app: Arc<App>, every: Duration) {
        let dashboard = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Counters only: a full `stats()` would read every entry.
                if let Some(cache) = &app.cache
                    && let Ok(total) = cache.counters().await
                {
                    dashboard.record(&total, every / 2);
                }
            }
        });
    }
}

/// Everything the page shows.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Server version.
    pub version: &'static str,
    /// `sqlcipher`, `redis`, or none when the cache is off.
    pub backend: Option<&'static str>,
    /// `open` or `bypass`.
    pub cache_state: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Cache statistics (absent when the cache is off or unreachable).
    pub stats: Option<CacheStats>,
    /// Why statistics are missing.
    pub stats_error: Option<String>,
    /// Signed-in accounts: id and username.
    pub accounts: Vec<(String, String)>,
    /// Warming progress.
    pub warming: crate::cache::WarmingStatus,
    /// Tasks per status.
    pub task_counts: Vec<(&'static str, usize)>,
    /// The most recent tasks (operation, account, status, attempts, created).
    pub recent_tasks: Vec<Value>,
    /// Counter samples for the chart.
    pub history: Vec<Sample>,
}

const TASK_STATUSES: [TaskStatus; 5] = [
    TaskStatus::Queued,
    TaskStatus::Running,
    TaskStatus::Completed,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
];

/// Gathers a snapshot (also records a chart sample).
pub async fn snapshot(app: &App, dashboard: &Dashboard) -> Snapshot {
    let (stats, stats_error) = match &app.cache {
        Some(cache) => match cache.stats().await {
            Ok(stats) => {
                dashboard.record(&stats.total, Duration::from_secs(1));
                (Some(stats), None)
            }
            Err(e) => (None, Some(e.to_string())),
        },
        None => (None, Some("the cache is off".to_string())),
    };
    let mut task_counts = Vec::new();
    let mut recent_tasks = Vec::new();
    if let Some(cache) = &app.cache {
        // One listing (finished tasks are pruned to a few hundred) gives
        // both the counts per status and the most recent ones.
        let tasks = cache.list_tasks(None, None, 1000).await.unwrap_or_default();
        for status in TASK_STATUSES {
            let n = tasks.iter().filter(|t| t.status == status).count();
            task_counts.push((status.as_str(), n));
        }
        recent_tasks = tasks
            .iter()
            .take(15)
            .map(|t| {
                json!({
                    "operation": t.operation,
                    "account_id": t.account_id,
                    "status": t.status.as_str(),
                    "attempts": t.attempts,
                    "created_at": crate::cache::rfc3339_ms(t.created_at),
                })
            })
            .collect();
    }
    Snapshot {
        version: crate::VERSION,
        backend: app.cache.as_ref().map(|c| c.kind().as_str()),
        cache_state: if app.cache.is_some() {
            "open"
        } else {
            "bypass"
        },
        uptime_seconds: app.started.elapsed().as_secs(),
        stats,
        stats_error,
        accounts: app
            .accounts
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.account_id, a.username))
            .collect(),
        warming: crate::cache::warming_status(app),
        task_counts,
        recent_tasks,
        history: dashboard.history(),
    }
}

/// `GET /dashboard/data`: the snapshot as JSON.
pub async fn data(State(state): State<HttpState>) -> Response {
    let snap = snapshot(&state.app, &state.dashboard).await;
    match serde_json::to_string(&snap) {
        Ok(body) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// `GET /dashboard`: the page.
pub async fn page(State(state): State<HttpState>) -> Response {
    let snap = snapshot(&state.app, &state.dashboard).await;
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        render(&snap),
    )
        .into_response()
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "–".into(),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:24px 0 8px}.sub{color:#57606a;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:120px}
.card .v{font-size:22px;font-weight:600}.card .l{color:#57606a;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de}th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:right}
th:first-child,td:first-child{text-align:left}.bar{background:#eaeef2;border-radius:4px;height:10px;width:300px}
.bar>div{background:#2da44e;height:10px;border-radius:4px}.err{color:#cf222e}svg{background:#fff;border:1px solid #d0d7de;border-radius:6px}
form{display:inline}button{font:inherit}";

fn card(out: &mut String, id: &str, value: &str, raw: Option<u64>, label: &str) {
    let data = raw
        .map(|r| format!(" data-value=\"{r}\""))
        .unwrap_or_default();
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v\" id=\"{id}\"{data}>{}</div><div class=\"l\">{}</div></div>",
        esc(value),
        esc(label)
    );
}

fn stats_table(out: &mut String, id: &str, first: &str, rows: &[(String, String, &StatsRow)]) {
    let _ = write!(
        out,
        "<table id=\"{id}\"><tr><th>{first}</th><th>entries</th><th>bytes</th><th>hits</th><th>stale</th><th>misses</th><th>hit rate</th><th>invalidations</th><th>evictions</th></tr>"
    );
    for (key, label, r) in rows {
        let _ = write!(
            out,
            "<tr data-key=\"{}\"><td>{}</td><td class=\"entries\">{}</td><td class=\"bytes\" data-value=\"{}\">{}</td><td class=\"hits\">{}</td><td class=\"stale\">{}</td><td class=\"misses\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(key),
            esc(label),
            r.entries,
            r.stored_bytes,
            human_bytes(r.stored_bytes),
            r.hits,
            r.stale_hits,
            r.misses,
            percent(r.hit_rate),
            r.invalidations,
            r.evictions
        );
    }
    out.push_str("</table>");
}

/// The hit-rate chart: per interval between samples (green) and overall
/// (grey), 0–100 %.
fn chart(history: &[Sample]) -> String {
    const W: f64 = 640.0;
    const H: f64 = 160.0;
    let mut svg = format!(
        "<svg id=\"hit-rate-chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"hit rate over time\">"
    );
    for pct in [0.0, 50.0, 100.0] {
        let y = H - 10.0 - (H - 20.0) * pct / 100.0;
        let _ = write!(
            svg,
            "<line x1=\"30\" x2=\"{W}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eaeef2\"/><text x=\"2\" y=\"{}\" font-size=\"10\" fill=\"#57606a\">{pct}%</text>",
            y + 3.0
        );
    }
    let mut interval = Vec::new();
    let mut overall = Vec::new();
    for (i, s) in history.iter().enumerate() {
        let served = s.hits + s.stale_hits;
        let calls = served + s.misses;
        if calls > 0 {
            overall.push((i, served as f64 / calls as f64));
        }
        if i > 0 {
            let p = history[i - 1];
            let d_served = served.saturating_sub(p.hits + p.stale_hits);
            let d_calls = d_served + s.misses.saturating_sub(p.misses);
            if d_calls > 0 {
                interval.push((i, d_served as f64 / d_calls as f64));
            }
        }
    }
    let n = history.len().max(2) as f64 - 1.0;
    let points = |pts: &[(usize, f64)]| {
        pts.iter()
            .map(|(i, r)| {
                format!(
                    "{:.1},{:.1}",
                    30.0 + (W - 40.0) * (*i as f64) / n,
                    H - 10.0 - (H - 20.0) * r
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if overall.len() < 2 {
        svg.push_str(
            "<text x=\"40\" y=\"80\" fill=\"#57606a\">collecting samples (one every 10 s)…</text>",
        );
    } else {
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"#8c959f\" stroke-width=\"1.5\" points=\"{}\"/><polyline fill=\"none\" stroke=\"#2da44e\" stroke-width=\"2\" points=\"{}\"/>",
            points(&overall),
            points(&interval)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The page for a snapshot.
pub fn render(snap: &Snapshot) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\">\
         <title>m365-mcp cache</title><style>{STYLE}</style></head><body>\
         <h1>m365-mcp cache</h1><div class=\"sub\">version {} · backend <span id=\"backend\">{}</span> · cache <span id=\"cache-state\">{}</span> · up {} s \
         <form method=\"post\" action=\"/dashboard/logout\"><button>sign out</button></form></div>",
        esc(snap.version),
        snap.backend.unwrap_or("none"),
        snap.cache_state,
        snap.uptime_seconds
    );
    match &snap.stats {
        Some(stats) => {
            let t = &stats.total;
            out.push_str("<div class=\"cards\">");
            card(&mut out, "hit-rate", &percent(t.hit_rate), None, "hit rate");
            card(
                &mut out,
                "hits",
                &t.hits.to_string(),
                Some(t.hits),
                "fresh hits",
            );
            card(
                &mut out,
                "stale-hits",
                &t.stale_hits.to_string(),
                Some(t.stale_hits),
                "stale serves",
            );
            card(
                &mut out,
                "misses",
                &t.misses.to_string(),
                Some(t.misses),
                "misses",
            );
            card(
                &mut out,
                "entries",
                &t.entries.to_string(),
                Some(t.entries),
                "entries",
            );
            card(
                &mut out,
                "stored-bytes",
                &human_bytes(t.stored_bytes),
                Some(t.stored_bytes),
                "stored",
            );
            card(
                &mut out,
                "compression",
                &format!("{:.2}×", stats.compression_ratio),
                None,
                "compression",
            );
            card(
                &mut out,
                "invalidations",
                &t.invalidations.to_string(),
                Some(t.invalidations),
                "invalidated",
            );
            card(
                &mut out,
                "evictions",
                &t.evictions.to_string(),
                Some(t.evictions),
                "evicted",
            );
            card(
                &mut out,
                "tasks-pending",
                &stats.tasks_pending.to_string(),
                Some(stats.tasks_pending),
                "tasks pending",
            );
            out.push_str("</div><h2>Hit rate over time</h2>");
            out.push_str(&chart(&snap.history));
            out.push_str("<h2>Per resource</h2>");
            let rows: Vec<(String, String, &StatsRow)> = stats
                .per_resource
                .iter()
                .map(|(k, r)| (k.clone(), k.clone(), r))
                .collect();
            stats_table(&mut out, "per-resource", "resource", &rows);
            out.push_str("<h2>Per account</h2>");
            let rows: Vec<(String, String, &StatsRow)> = stats
                .per_account
                .iter()
                .map(|(id, r)| {
                    let name = snap
                        .accounts
                        .iter()
                        .find(|(a, _)| a == id)
                        .map(|(_, u)| u.clone())
                        .unwrap_or_else(|| id.clone());
                    (id.clone(), name, r)
                })
                .collect();
            stats_table(&mut out, "per-account", "account", &rows);
        }
        None => {
            let _ = write!(
                out,
                "<p class=\"err\" id=\"stats-error\">No statistics: {}</p>",
                esc(snap.stats_error.as_deref().unwrap_or("unknown"))
            );
        }
    }
    let w = &snap.warming;
    let _ = write!(
        out,
        "<h2>Warming</h2><div id=\"warming\" data-percent=\"{}\"><div class=\"bar\"><div style=\"width:{}%\"></div></div>\
         {} · {} of {} done ({} skipped as fresh, {} failed)</div>",
        w.progress_percent,
        w.progress_percent.clamp(0.0, 100.0),
        if !w.enabled {
            "off"
        } else if w.is_warming {
            "warming"
        } else {
            "done"
        },
        w.operations_completed + w.operations_skipped + w.operations_failed,
        w.operations_total,
        w.operations_skipped,
        w.operations_failed
    );
    out.push_str("<h2>Task queue</h2><table id=\"task-counts\"><tr>");
    for (status, _) in &snap.task_counts {
        let _ = write!(out, "<th>{status}</th>");
    }
    out.push_str("</tr><tr>");
    for (status, n) in &snap.task_counts {
        let _ = write!(out, "<td data-status=\"{status}\">{n}</td>");
    }
    out.push_str("</tr></table><h2>Recent tasks</h2><table id=\"recent-tasks\"><tr><th>operation</th><th>status</th><th>attempts</th><th>created</th></tr>");
    for t in &snap.recent_tasks {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(t["operation"].as_str().unwrap_or_default()),
            esc(t["status"].as_str().unwrap_or_default()),
            t["attempts"],
            esc(t["created_at"].as_str().unwrap_or_default())
        );
    }
    out.push_str("</table></body></html>");
    out
}

/// The login form, with an error line after a failed attempt.
pub fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"err\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>m365-mcp cache — sign in</title>\
         <style>{STYLE}</style></head><body><h1>m365-mcp cache</h1>\
         <div class=\"sub\">Sign in with the server's bearer token (MCP_AUTH_TOKEN).</div>{error}\
         <form id=\"login\" method=\"post\" action=\"/dashboard/login\">\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" size=\"70\" placeholder=\"token\"> \
         <button id=\"sign-in\" type=\"submit\">Sign in</button></form></body></html>"
    )
}
