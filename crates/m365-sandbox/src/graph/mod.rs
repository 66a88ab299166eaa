//! The Graph v1.0 surface: authentication of the bearer token, injected faults and latency, and
//! routing of `/v1.0/...` paths to the resource handlers.

pub(crate) mod batch;
pub(crate) mod calendar;
pub(crate) mod contacts;
pub(crate) mod drive;
pub(crate) mod mail;
pub(crate) mod rules;
pub(crate) mod search;

use std::time::Instant;

use serde_json::{Value, json};

use crate::app::{App, Caller, Request, lock};
use crate::odata;
use crate::reply::{GraphError, GraphResult, Reply};
use crate::state::World;

/// What the front needs to log about one Graph call.
pub(crate) struct Outcome {
    pub reply: GraphResult,
    pub user: Option<String>,
    pub batch_size: Option<usize>,
}

fn unauthorized(message: &str) -> GraphError {
    GraphError::new(401, "InvalidAuthenticationToken", message).header(
        "WWW-Authenticate",
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
    )
}

/// Resolves the bearer token to a user.
pub(crate) fn authenticate(app: &App, request: &Request) -> Result<(usize, String), GraphError> {
    let header = request.header("authorization").unwrap_or_default().trim();
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => "",
    };
    if token.is_empty() {
        return Err(unauthorized("Access token is empty."));
    }
    let world = lock(&app.world);
    match world.access_tokens.get(token) {
        None => Err(unauthorized(
            "Access token validation failure. Invalid audience.",
        )),
        Some(grant) if grant.expires_at <= Instant::now() => Err(unauthorized(
            "Lifetime validation failed, the token is expired.",
        )),
        Some(grant) => {
            let name = world
                .users
                .get(grant.user)
                .map(|u| u.user.username.clone())
                .unwrap_or_default();
            Ok((grant.user, name))
        }
    }
}

/// Serves one HTTP request to `/v1.0/...`.
pub(crate) async fn handle(app: &App, request: Request) -> Outcome {
    let delay = app.draw_latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if app.is_down() {
        // An outage, not throttling: no Retry-After to honour.
        return Outcome {
            reply: Err(GraphError::new(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            )),
            user: None,
            batch_size: None,
        };
    }
    let (user, username) = match authenticate(app, &request) {
        Ok(found) => found,
        Err(error) => {
            return Outcome {
                reply: Err(error),
                user: None,
                batch_size: None,
            };
        }
    };
    let caller = Caller {
        user,
        base: app.graph_base(),
        origin: app.origin.clone(),
    };
    let is_batch = request.segments.get(1).map(String::as_str) == Some("$batch");
    if is_batch {
        let (reply, size) = batch::handle(app, &caller, &request);
        return Outcome {
            reply,
            user: Some(username),
            batch_size: size,
        };
    }
    if let Some(fault) = app.draw_fault() {
        return Outcome {
            reply: Err(fault),
            user: Some(username),
            batch_size: None,
        };
    }
    let reply = {
        let mut world = lock(&app.world);
        dispatch(&mut world, &caller, &request)
    };
    Outcome {
        reply,
        user: Some(username),
        batch_size: None,
    }
}

/// Routes one Graph request (also used for each `$batch` item). Segment 0 is `v1.0`.
pub(crate) fn dispatch(world: &mut World, caller: &Caller, request: &Request) -> GraphResult {
    let seg = |i: usize| request.segment(i);
    let first = seg(1).unwrap_or_default();
    let rest_at = match first.as_str() {
        "me" => 2,
        "users" => {
            let who = seg(2).ok_or_else(|| GraphError::unknown_segment("users"))?;
            let me = &world.users[caller.user].user;
            if !(who.eq_ignore_ascii_case(&me.oid) || who.eq_ignore_ascii_case(&me.username)) {
                return Err(GraphError::new(
                    403,
                    "ErrorAccessDenied",
                    "Access is denied. Check credentials and try again.",
                ));
            }
            3
        }
        "search" => return search::handle(world, caller, request),
        "" => return Err(GraphError::new(400, "BadRequest", "Invalid request.")),
        other => return Err(GraphError::unknown_segment(other)),
    };
    let resource = seg(rest_at).unwrap_or_default();
    let at = rest_at + 1;
    match resource.as_str() {
        "" => me(world, caller, request),
        "mailFolders" => mail::folders(world, caller, request, at),
        "messages" => mail::messages(world, caller, request, at),
        "sendMail" => mail::send_mail(world, caller, request),
        "mailboxSettings" => mailbox_settings(world, caller, request),
        "events" | "calendar" | "calendars" | "calendarView" | "findMeetingTimes"
        | "calendarGroups" => calendar::handle(world, caller, request, rest_at),
        "contacts" | "contactFolders" => contacts::handle(world, caller, request, rest_at),
        "drive" => drive::handle(world, caller, request, at),
        other => Err(GraphError::unknown_segment(other)),
    }
}

fn me(world: &mut World, caller: &Caller, request: &Request) -> GraphResult {
    if request.method != "GET" {
        return Err(GraphError::method_not_allowed());
    }
    let data = &world.users[caller.user];
    let u = &data.user;
    let value = json!({
        "@odata.context": format!("{}/$metadata#users/$entity", caller.base),
        "businessPhones": if u.personal { json!([]) } else { json!(["+1 425 555 0109"]) },
        "displayName": u.display_name,
        "givenName": data.given_name,
        "jobTitle": if data.job_title.is_empty() { Value::Null } else { json!(data.job_title) },
        "mail": if u.personal { Value::Null } else { json!(u.username) },
        "mobilePhone": Value::Null,
        "officeLocation": if u.personal { Value::Null } else { json!("18/2111") },
        "preferredLanguage": "en-US",
        "surname": data.surname,
        "userPrincipalName": u.username,
        "id": u.oid,
    });
    Ok(Reply::json(odata::select(
        value,
        request.query.get("select"),
    )))
}

fn mailbox_settings(world: &mut World, caller: &Caller, request: &Request) -> GraphResult {
    let data = &mut world.users[caller.user];
    match request.method.as_str() {
        "GET" => {}
        "PATCH" => {
            let body = request.json()?;
            if let Some(tz) = body.get("timeZone").and_then(Value::as_str) {
                data.time_zone = tz.to_string();
            }
        }
        _ => return Err(GraphError::method_not_allowed()),
    }
    Ok(Reply::json(json!({
        "@odata.context": format!("{}/$metadata#users('{}')/mailboxSettings", caller.base, data.user.oid),
        "archiveFolder": data.folders.iter().find(|f| f.get("_wellKnownName").and_then(Value::as_str) == Some("archive")).and_then(|f| f.get("id")).cloned().unwrap_or(Value::Null),
        "timeZone": data.time_zone,
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "MM/dd/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "user",
        "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all", "internalReplyMessage": "", "externalReplyMessage": ""},
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000", "timeZone": {"name": data.time_zone}},
    })))
}

/// Absolute URL of the collection a request addressed (for `@odata.nextLink`).
pub(crate) fn collection_url(caller: &Caller, request: &Request) -> String {
    format!("{}{}", caller.origin, request.raw_path)
}

/// Graph's `@odata.context` for a collection or entity below the user.
pub(crate) fn context(caller: &Caller, world: &World, tail: &str) -> String {
    format!(
        "{}/$metadata#users('{}')/{tail}",
        caller.base, world.users[caller.user].user.oid
    )
}
