//! The control API under `/_sandbox/...`, so a separate process can drive a running sandbox:
//!
//! | method and path | does |
//! |---|---|
//! | `GET /_sandbox/counts` | `{"graph","batch_inner","identity"}` |
//! | `GET /_sandbox/log` | the request log |
//! | `POST /_sandbox/reset` | zeroes counters and clears the log |
//! | `GET /_sandbox/users` | the seeded users |
//! | `POST /_sandbox/faults` | body: [`crate::FaultConfig`] |
//! | `POST /_sandbox/latency` | body: [`crate::Latency`] (milliseconds) |
//! | `POST /_sandbox/down` | body: `{"down": bool}` |
//! | `POST /_sandbox/device/approve` | body: `{"user_code", "username"}` |
//! | `POST /_sandbox/device/decline` | body: `{"user_code"}` |
//! | `POST /_sandbox/tokens/expire` | every access token expires now |
//! | `POST /_sandbox/tokens/revoke` | body: `{"username"}`: its refresh tokens stop working |
//! | `GET /_sandbox/state/{username}` | counts of the user's messages, folders, events, contacts, drive items |

use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, Request, lock};
use crate::config::{FaultConfig, Latency};
use crate::reply::{GraphError, GraphResult, Reply};

#[derive(Deserialize)]
struct Approve {
    user_code: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct Down {
    down: bool,
}

#[derive(Deserialize)]
struct Username {
    username: String,
}

fn parse<T: for<'de> Deserialize<'de>>(request: &Request) -> Result<T, GraphError> {
    serde_json::from_slice(&request.body)
        .map_err(|e| GraphError::bad_request(format!("Invalid control body: {e}")))
}

fn ok() -> GraphResult {
    Ok(Reply::json(json!({"ok": true})))
}

pub(crate) fn handle(app: &App, request: &Request) -> GraphResult {
    let parts: Vec<String> = (1..request.segments.len())
        .filter_map(|i| request.segment(i))
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["counts"]) => Ok(Reply::json(
            serde_json::to_value(app.counts()).unwrap_or(Value::Null),
        )),
        ("GET", ["log"]) => Ok(Reply::json(
            serde_json::to_value(lock(&app.log).clone()).unwrap_or(Value::Null),
        )),
        ("POST", ["reset"]) => {
            app.reset_counters();
            ok()
        }
        ("GET", ["users"]) => {
            let world = lock(&app.world);
            let users: Vec<Value> = world
                .users
                .iter()
                .map(|u| serde_json::to_value(&u.user).unwrap_or(Value::Null))
                .collect();
            Ok(Reply::json(
                json!({"value": users, "client_id": app.client_id}),
            ))
        }
        ("POST", ["faults"]) => {
            let faults: FaultConfig = parse(request)?;
            lock(&app.knobs).faults = faults;
            ok()
        }
        ("POST", ["latency"]) => {
            let latency: Latency = parse(request)?;
            lock(&app.knobs).latency = latency;
            ok()
        }
        ("POST", ["down"]) => {
            let down: Down = parse(request)?;
            lock(&app.knobs).down = down.down;
            ok()
        }
        ("POST", ["device", "approve"]) => {
            let body: Approve = parse(request)?;
            let username = body.username.unwrap_or_default();
            crate::approve(app, &body.user_code, &username)
                .map_err(|e| GraphError::bad_request(e.to_string()))?;
            ok()
        }
        ("POST", ["device", "decline"]) => {
            let body: Approve = parse(request)?;
            crate::decline(app, &body.user_code)
                .map_err(|e| GraphError::bad_request(e.to_string()))?;
            ok()
        }
        ("POST", ["tokens", "expire"]) => {
            crate::expire_tokens(app);
            ok()
        }
        ("POST", ["tokens", "revoke"]) => {
            let body: Username = parse(request)?;
            crate::revoke(app, &body.username);
            ok()
        }
        ("GET", ["state", username]) => {
            let world = lock(&app.world);
            let index = world
                .user_index(username)
                .ok_or_else(|| GraphError::new(404, "itemNotFound", "No such seeded user."))?;
            let data = &world.users[index];
            Ok(Reply::json(json!({
                "messages": data.messages.len(),
                "unread": data.messages.iter().filter(|m| m.get("isRead") == Some(&Value::Bool(false))).count(),
                "mail_folders": data.folders.len(),
                "rules": data.rules.len(),
                "events": data.events.len(),
                "calendars": data.calendars.len(),
                "contacts": data.contacts.len(),
                "drive_items": data.drive.items.len(),
            })))
        }
        _ => Err(GraphError::new(
            404,
            "itemNotFound",
            "Unknown control endpoint.",
        )),
    }
}
