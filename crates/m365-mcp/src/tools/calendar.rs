//! Calendar tools: events in a window (recurring series expanded through
//! `calendarView`), one event, writes and responses, availability, and the
//! calendars themselves.
//!
//! Date-times with an offset (`2025-03-01T10:00:00+01:00`, `…Z`) are exact
//! instants and are sent in UTC. Naive ones (`2025-03-01T10:00`) are wall
//! times in the `timezone` given or, without one, in the mailbox's time zone
//! (`/me/mailboxSettings`, UTC when it cannot be read); Graph accepts IANA and
//! Windows zone names alike, so both are passed through.

use std::sync::Arc;

use m365_graph::{GraphError, RequestOptions};
use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::args::{check_range, default_true};
use super::item_args::{
    StringOrList, emails, id_segment, optional, param_id, recipients, require_confirm,
    required_text, strip_odata,
};
use super::{Cache, DESTRUCTIVE, NoParams, READ, Target, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

const LIST_FIELDS: &str = "id,subject,start,end,location,organizer,isAllDay,isCancelled,isOrganizer,\
type,seriesMasterId,showAs,responseStatus,webLink,bodyPreview";
const DETAIL_FIELDS: &str = ",body,attendees,recurrence,onlineMeeting";
const CALENDAR_FIELDS: &str =
    "id,name,color,canEdit,canShare,canViewPrivateItems,owner,isDefaultCalendar";
const MAX_ATTENDEES: usize = 500;

// ---------------------------------------------------------------- times

/// A date-time argument: an exact instant, or a wall time in some zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// Had an offset or `Z`.
    Exact(OffsetDateTime),
    /// No offset: read in the event's or mailbox's time zone.
    Wall(PrimitiveDateTime),
}

fn parse_offset(text: &str) -> Option<UtcOffset> {
    if text.eq_ignore_ascii_case("z") {
        return Some(UtcOffset::UTC);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1i32, &text[1..]),
        b'-' => (-1i32, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    UtcOffset::from_whole_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

fn parse_wall(text: &str) -> Option<PrimitiveDateTime> {
    let text = text.split('.').next().unwrap_or(text);
    let full = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let day = format_description!("[year]-[month]-[day]");
    PrimitiveDateTime::parse(text, &full)
        .or_else(|_| PrimitiveDateTime::parse(text, &short))
        .ok()
        .or_else(|| {
            time::Date::parse(text, &day)
                .ok()
                .map(|d| d.with_time(time::Time::MIDNIGHT))
        })
}

/// Parses an ISO 8601 date-time (`T` or a space between date and time;
/// seconds, fractions and offset optional; a date alone is midnight).
pub fn parse_when(param: &str, value: &str) -> Result<When, ToolError> {
    let bad = || {
        ToolError::invalid(
            param,
            value,
            "is not an ISO 8601 date-time",
            "e.g. 2025-03-01T10:00:00 (mailbox time zone), 2025-03-01T10:00:00Z or 2025-03-01T10:00:00+01:00",
        )
    };
    let text = value.trim().replacen(' ', "T", 1);
    if let Ok(t) = OffsetDateTime::parse(&text, &Rfc3339) {
        return Ok(When::Exact(t));
    }
    // Split an offset off the time part, if any.
    let time_start = text.find('T').map_or(text.len(), |i| i + 1);
    let (local, offset) = if text.ends_with(['Z', 'z']) {
        (&text[..text.len() - 1], Some("Z"))
    } else if let Some(pos) = text[time_start..].rfind(['+', '-']) {
        let at = time_start + pos;
        (&text[..at], Some(&text[at..]))
    } else {
        (text.as_str(), None)
    };
    let wall = parse_wall(local).ok_or_else(bad)?;
    match offset {
        None => Ok(When::Wall(wall)),
        Some(o) => {
            let offset = parse_offset(o).ok_or_else(bad)?;
            Ok(When::Exact(wall.assume_offset(offset)))
        }
    }
}

fn graph_local(t: PrimitiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn utc_wall(t: OffsetDateTime) -> PrimitiveDateTime {
    let u = t.to_offset(UtcOffset::UTC);
    PrimitiveDateTime::new(u.date(), u.time())
}

impl When {
    /// Graph's `dateTimeTimeZone` for this time; wall times are in `zone`.
    pub fn to_graph(self, zone: &str) -> Value {
        match self {
            When::Exact(t) => json!({"dateTime": graph_local(utc_wall(t)), "timeZone": "UTC"}),
            When::Wall(t) => json!({"dateTime": graph_local(t), "timeZone": zone}),
        }
    }

    fn is_wall(self) -> bool {
        matches!(self, When::Wall(_))
    }
}

/// Checks `start < end` when both are comparable without a zone database.
fn check_order(
    start: When,
    end: When,
    start_param: &str,
    end_value: &str,
) -> Result<(), ToolError> {
    let before = match (start, end) {
        (When::Exact(s), When::Exact(e)) => Some(s < e),
        (When::Wall(s), When::Wall(e)) => Some(s < e),
        _ => None,
    };
    if before == Some(false) {
        return Err(ToolError::invalid(
            "end",
            end_value,
            &format!("is not after {start_param}"),
            &format!("a date-time later than {start_param}"),
        ));
    }
    Ok(())
}

/// Checks a time-zone name (IANA such as `Europe/Paris`, or Windows such as
/// `W. Europe Standard Time`) well enough to put it in a header or body.
pub fn check_zone(param: &str, value: &str) -> Result<String, ToolError> {
    let zone = value.trim();
    let ok = !zone.is_empty()
        && zone.len() <= 64
        && !zone.contains("..")
        && !zone.starts_with('/')
        && zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _-+/().:".contains(c));
    if !ok {
        return Err(ToolError::invalid(
            param,
            value,
            "is not a time-zone name",
            "an IANA name such as Europe/Paris or a Windows name such as W. Europe Standard Time",
        ));
    }
    Ok(zone.to_string())
}

/// The mailbox's time zone, or UTC when it cannot be read.
pub async fn mailbox_zone(app: &App, account: &AccountRecord) -> String {
    match app
        .graph
        .get(
            &account.account_id,
            "/me/mailboxSettings",
            &[("$select", "timeZone")],
        )
        .await
    {
        Ok(settings) => settings["timeZone"]
            .as_str()
            .and_then(|z| check_zone("timeZone", z).ok())
            .unwrap_or_else(|| "UTC".to_string()),
        Err(e) => {
            tracing::debug!(error = %e, "mailbox time zone unavailable; using UTC");
            "UTC".to_string()
        }
    }
}

/// The zone wall times are read in: the one given, else the mailbox's (only
/// fetched when some time needs it).
async fn zone_for(
    app: &App,
    account: &AccountRecord,
    given: Option<&str>,
    times: &[When],
) -> Result<String, ToolError> {
    match optional(given) {
        Some(z) => check_zone("timezone", z),
        None if times.iter().any(|t| t.is_wall()) => Ok(mailbox_zone(app, account).await),
        None => Ok("UTC".to_string()),
    }
}

// ---------------------------------------------------------------- params

fn default_days_ahead() -> i64 {
    7
}
fn default_limit() -> i64 {
    50
}
fn default_response() -> String {
    "accept".into()
}
fn default_interval() -> i64 {
    30
}

/// Parameters of `calendar_list_events`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEventsParams {
    /// Days from now to include (1–365); recurring meetings appear once per occurrence.
    #[serde(default = "default_days_ahead")]
    pub days_ahead: i64,
    /// Include body, attendees, recurrence and online-meeting details.
    #[serde(default)]
    pub include_details: bool,
    /// How many events, earliest first (1–200).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// A calendar id from calendar_list_calendars (default: the main calendar).
    #[serde(default)]
    pub calendar_id: Option<String>,
}

/// Parameters of tools that take one event id.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIdParams {
    /// The event id (an occurrence id addresses one occurrence of a series).
    pub event_id: String,
}

/// Parameters of `calendar_create_event`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventParams {
    /// Subject.
    pub subject: String,
    /// Start: ISO 8601; without an offset it is read in `timezone`.
    pub start: String,
    /// End: ISO 8601, after start.
    pub end: String,
    /// Location name.
    #[serde(default)]
    pub location: Option<String>,
    /// Body, plain text.
    #[serde(default)]
    pub body: Option<String>,
    /// Attendee addresses (list or comma-separated, at most 500); invitations are sent.
    #[serde(default)]
    pub attendees: Option<StringOrList>,
    /// IANA or Windows time-zone name for naive times (default: the mailbox's time zone).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Calendar to create the event in (default: the main calendar).
    #[serde(default)]
    pub calendar_id: Option<String>,
}

/// Parameters of `calendar_update_event`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventParams {
    /// The event id.
    pub event_id: String,
    /// Fields to change: subject, start, end, timezone (applies to start/end), location, body
    /// (plain text), attendees (list or comma-separated; [] removes all).
    pub updates: Map<String, Value>,
}

/// Parameters of `calendar_delete_event`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteEventParams {
    /// The event id.
    pub event_id: String,
    /// As organizer, send a cancellation to attendees (otherwise just delete it).
    #[serde(default = "default_true")]
    pub send_cancellation: bool,
    /// Must be true: deleting cannot be undone here.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `calendar_respond_event`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondEventParams {
    /// The event id.
    pub event_id: String,
    /// accept, decline or tentativelyAccept (tentative also accepted).
    #[serde(default = "default_response")]
    pub response: String,
    /// A note to the organizer.
    #[serde(default)]
    pub message: Option<String>,
}

/// Parameters of `calendar_check_availability`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityParams {
    /// Window start (ISO 8601; naive = mailbox time zone).
    pub start: String,
    /// Window end.
    pub end: String,
    /// Other people to check besides you (list or comma-separated).
    #[serde(default)]
    pub attendees: Option<StringOrList>,
}

/// Parameters of `calendar_forward_event`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardEventParams {
    /// The event id.
    pub event_id: String,
    /// Recipients (list or comma-separated).
    pub to: StringOrList,
    /// More recipients; Graph's forward has one recipient list, so these join `to`.
    #[serde(default)]
    pub cc: Option<StringOrList>,
    /// A note to include.
    #[serde(default)]
    pub message: Option<String>,
    /// Must be true: this sends mail.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `calendar_create_calendar`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCalendarParams {
    /// Name of the new calendar.
    pub name: String,
}

/// Parameters of `calendar_delete_calendar`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteCalendarParams {
    /// The calendar id (the default calendar cannot be deleted).
    pub calendar_id: String,
    /// Must be true: the calendar and its events are deleted.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `calendar_propose_new_time`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposeTimeParams {
    /// The event id (a meeting you were invited to).
    pub event_id: String,
    /// Proposed start (ISO 8601; naive = mailbox time zone).
    pub proposed_start: String,
    /// Proposed end.
    pub proposed_end: String,
    /// A note to the organizer.
    #[serde(default)]
    pub message: Option<String>,
}

/// Parameters of `calendar_get_free_busy`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FreeBusyParams {
    /// People whose free/busy to read (list or comma-separated, at most 500).
    pub attendees: StringOrList,
    /// Window start (ISO 8601; naive = mailbox time zone).
    pub start: String,
    /// Window end.
    pub end: String,
    /// Minutes per slot of the availability view (5–1440).
    #[serde(default = "default_interval")]
    pub time_interval: i64,
}

// ---------------------------------------------------------------- registry

/// The calendar tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::account(
            "calendar_list_events",
            "List calendar events",
            "calendar",
            READ,
            Cache::Read { deps: list_deps },
            "List events from now through days_ahead, earliest first, with recurring meetings expanded into \
             their occurrences. Times are shown in the mailbox's time zone.",
            list_events,
        ),
        ToolDef::account(
            "calendar_get_event",
            "Get an event",
            "calendar",
            READ,
            Cache::Read { deps: event_deps },
            "Get one event (or one occurrence) with its plain-text body, attendees and recurrence, in the \
             mailbox's time zone.",
            get_event,
        ),
        ToolDef::account(
            "calendar_create_event",
            "Create an event",
            "calendar",
            WRITE,
            Cache::Write {
                invalidates: event_written,
            },
            "Create an event; attendees receive an invitation. Times without an offset are read in timezone \
             (IANA or Windows name; default the mailbox's time zone).",
            create_event,
        ),
        ToolDef::account(
            "calendar_update_event",
            "Update an event",
            "calendar",
            UPDATE,
            Cache::Write {
                invalidates: event_written,
            },
            "Change an event's subject, start, end, timezone, location, body or attendees.",
            update_event,
        ),
        ToolDef::account(
            "calendar_delete_event",
            "Delete an event",
            "calendar",
            DESTRUCTIVE,
            Cache::Write {
                invalidates: event_written,
            },
            "Delete an event (confirm=true required). As organizer with send_cancellation, attendees get a \
             cancellation.",
            delete_event,
        ),
        ToolDef::account(
            "calendar_respond_event",
            "Respond to an invitation",
            "calendar",
            UPDATE,
            Cache::Write {
                invalidates: event_written,
            },
            "Accept, tentatively accept or decline a meeting invitation, with an optional note to the \
             organizer.",
            respond_event,
        ),
        ToolDef::account(
            "calendar_check_availability",
            "Check availability",
            "calendar",
            READ,
            Cache::None,
            "Free/busy of you and the given attendees over a window, in 30-minute slots.",
            check_availability,
        ),
        ToolDef::account(
            "calendar_forward_event",
            "Forward an event",
            "calendar",
            WRITE,
            Cache::Write {
                invalidates: event_written,
            },
            "Forward a meeting invitation to other people (confirm=true required: this sends mail).",
            forward_event,
        ),
        ToolDef::account(
            "calendar_list_calendars",
            "List calendars",
            "calendar",
            READ,
            Cache::Read {
                deps: calendars_deps,
            },
            "List your calendars with their ids, colours, permissions and which one is the default.",
            list_calendars,
        ),
        ToolDef::account(
            "calendar_create_calendar",
            "Create a calendar",
            "calendar",
            WRITE,
            Cache::Write {
                invalidates: calendars_written,
            },
            "Create a calendar.",
            create_calendar,
        ),
        ToolDef::account(
            "calendar_delete_calendar",
            "Delete a calendar",
            "calendar",
            DESTRUCTIVE,
            Cache::Write {
                invalidates: calendar_deleted,
            },
            "Delete a calendar and its events (confirm=true required). The default calendar is refused.",
            delete_calendar,
        ),
        ToolDef::account(
            "calendar_propose_new_time",
            "Propose a new time",
            "calendar",
            WRITE,
            Cache::Write {
                invalidates: event_written,
            },
            "Tentatively accept a meeting and propose another time to its organizer.",
            propose_new_time,
        ),
        ToolDef::account(
            "calendar_get_free_busy",
            "Get free/busy",
            "calendar",
            READ,
            Cache::None,
            "Free/busy schedules of the given people over a window, in slots of time_interval minutes.",
            get_free_busy,
        ),
    ]
}

// ---------------------------------------------------------------- cache

fn list_deps(params: &Value, result: &Value) -> Dependencies {
    let calendar = param_id(params, "calendar_id").unwrap_or("calendar");
    let mut deps = Dependencies::container(calendar);
    for item in result["value"].as_array().into_iter().flatten() {
        if let Some(id) = item["id"].as_str() {
            deps = deps.with_item(id);
        }
        if let Some(master) = item["seriesMasterId"].as_str() {
            deps = deps.with_item(master);
        }
    }
    deps
}

fn event_deps(params: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none();
    for id in [
        param_id(params, "event_id"),
        result["id"].as_str(),
        result["seriesMasterId"].as_str(),
    ]
    .into_iter()
    .flatten()
    {
        deps = deps.with_item(id);
    }
    deps
}

fn calendars_deps(_: &Value, result: &Value) -> Dependencies {
    Dependencies::none().with_items(super::listed_ids(result))
}

/// Any event write: every event listing (the event may enter or leave any
/// window), the event itself (and its series), and event searches.
fn event_written(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![
        Target::all("calendar_list_events"),
        Target::all("search_events"),
        Target::all("search_unified"),
    ];
    for id in [
        param_id(params, "event_id"),
        result["event_id"].as_str(),
        result["id"].as_str(),
        result["seriesMasterId"].as_str(),
    ]
    .into_iter()
    .flatten()
    {
        let target = Target::item("calendar_get_event", id);
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

fn calendars_written(_: &Value, _: &Value) -> Vec<Target> {
    vec![Target::all("calendar_list_calendars")]
}

fn calendar_deleted(params: &Value, _: &Value) -> Vec<Target> {
    let mut targets = vec![
        Target::all("calendar_list_calendars"),
        Target::all("search_events"),
        Target::all("search_unified"),
    ];
    if let Some(id) = param_id(params, "calendar_id") {
        targets.push(Target::container("calendar_list_events", id));
    }
    // Its events may show in the default view and in single-event entries too.
    targets.push(Target::all("calendar_list_events"));
    targets.push(Target::all("calendar_get_event"));
    targets
}

// ---------------------------------------------------------------- handlers

fn clean_list(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut v| {
            strip_odata(&mut v);
            v
        })
        .collect()
}

fn format_utc(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

async fn list_events(app: Arc<App>, account: AccountRecord, p: ListEventsParams) -> ToolResult {
    let days = check_range("days_ahead", p.days_ahead, 1, 365)?;
    let limit = check_range("limit", p.limit, 1, 200)?;
    let base = match optional(p.calendar_id.as_deref()) {
        Some(id) => format!(
            "/me/calendars/{}/calendarView",
            id_segment("calendar_id", id)?
        ),
        None => "/me/calendarView".to_string(),
    };
    let zone = mailbox_zone(&app, &account).await;
    let now = OffsetDateTime::now_utc();
    let start = format_utc(now);
    let end = format_utc(now + Duration::days(days as i64));
    let select = if p.include_details {
        format!("{LIST_FIELDS}{DETAIL_FIELDS}")
    } else {
        LIST_FIELDS.to_string()
    };
    let top = limit.min(100).to_string();
    let query = [
        ("startDateTime", start.as_str()),
        ("endDateTime", end.as_str()),
        ("$select", select.as_str()),
        ("$orderby", "start/dateTime"),
        ("$top", top.as_str()),
    ];
    let options = RequestOptions {
        prefer_text_body: p.include_details,
        prefer_timezone: Some(zone.clone()),
        ..RequestOptions::default()
    };
    let items = app
        .graph
        .get_paged_with(&account.account_id, &base, &query, limit, &options)
        .await?;
    let items = clean_list(items);
    Ok(json!({
        "value": items,
        "count": items.len(),
        "window": {"start": start, "end": end},
        "time_zone": zone,
        "account_id": account.account_id,
    }))
}

async fn get_event(app: Arc<App>, account: AccountRecord, p: EventIdParams) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    let zone = mailbox_zone(&app, &account).await;
    let options = RequestOptions {
        prefer_text_body: true,
        prefer_timezone: Some(zone),
        ..RequestOptions::default()
    };
    let mut event = app
        .graph
        .get_with(
            &account.account_id,
            &format!("/me/events/{id}"),
            &[],
            &options,
        )
        .await?;
    strip_odata(&mut event);
    Ok(event)
}

fn attendees_json(addresses: &[String]) -> Value {
    Value::Array(
        addresses
            .iter()
            .map(|a| json!({"emailAddress": {"address": a}, "type": "required"}))
            .collect(),
    )
}

async fn create_event(app: Arc<App>, account: AccountRecord, p: CreateEventParams) -> ToolResult {
    let subject = required_text("subject", &p.subject, 255)?;
    let start = parse_when("start", &p.start)?;
    let end = parse_when("end", &p.end)?;
    check_order(start, end, "start", &p.end)?;
    let attendees = emails("attendees", p.attendees.as_ref(), MAX_ATTENDEES)?;
    let path = match optional(p.calendar_id.as_deref()) {
        Some(id) => format!("/me/calendars/{}/events", id_segment("calendar_id", id)?),
        None => "/me/events".to_string(),
    };
    if let Some(z) = optional(p.timezone.as_deref()) {
        check_zone("timezone", z)?;
    }
    let zone = zone_for(&app, &account, p.timezone.as_deref(), &[start, end]).await?;
    let mut body = json!({
        "subject": subject,
        "start": start.to_graph(&zone),
        "end": end.to_graph(&zone),
    });
    if let Some(location) = optional(p.location.as_deref()) {
        body["location"] = json!({"displayName": location});
    }
    if let Some(text) = p.body.as_deref().filter(|b| !b.trim().is_empty()) {
        body["body"] = json!({"contentType": "text", "content": text});
    }
    if !attendees.is_empty() {
        body["attendees"] = attendees_json(&attendees);
    }
    let mut event = app
        .graph
        .post(&account.account_id, &path, Some(&body))
        .await?;
    strip_odata(&mut event);
    Ok(event)
}

const UPDATE_KEYS: &[&str] = &[
    "subject",
    "start",
    "end",
    "timezone",
    "location",
    "body",
    "attendees",
];

fn update_text<'a>(key: &str, value: &'a Value) -> Result<&'a str, ToolError> {
    value.as_str().ok_or_else(|| {
        ToolError::invalid(
            &format!("updates.{key}"),
            &value.to_string(),
            "must be a string",
            "a text value",
        )
    })
}

async fn update_event(app: Arc<App>, account: AccountRecord, p: UpdateEventParams) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    if p.updates.is_empty() {
        return Err(ToolError::invalid(
            "updates",
            "{}",
            "names nothing to change",
            &format!("at least one of {}", UPDATE_KEYS.join(", ")),
        ));
    }
    if let Some(unknown) = p
        .updates
        .keys()
        .find(|k| !UPDATE_KEYS.contains(&k.as_str()))
    {
        return Err(ToolError::invalid(
            "updates",
            unknown,
            "is not a field that can be changed",
            &format!("keys among {}", UPDATE_KEYS.join(", ")),
        ));
    }
    let mut body = Map::new();
    let start = match p.updates.get("start") {
        Some(v) => Some(parse_when("updates.start", update_text("start", v)?)?),
        None => None,
    };
    let end = match p.updates.get("end") {
        Some(v) => Some(parse_when("updates.end", update_text("end", v)?)?),
        None => None,
    };
    if let (Some(s), Some(e), Some(ev)) = (start, end, p.updates.get("end")) {
        check_order(s, e, "start", &ev.to_string())?;
    }
    let timezone = match p.updates.get("timezone") {
        Some(v) => {
            if start.is_none() && end.is_none() {
                return Err(ToolError::invalid(
                    "updates.timezone",
                    &v.to_string(),
                    "applies only together with start or end",
                    "timezone with start and/or end",
                ));
            }
            Some(check_zone("updates.timezone", update_text("timezone", v)?)?)
        }
        None => None,
    };
    if let Some(v) = p.updates.get("subject") {
        body.insert(
            "subject".into(),
            json!(required_text(
                "updates.subject",
                update_text("subject", v)?,
                255
            )?),
        );
    }
    if let Some(v) = p.updates.get("location") {
        body.insert(
            "location".into(),
            json!({"displayName": update_text("location", v)?.trim()}),
        );
    }
    if let Some(v) = p.updates.get("body") {
        body.insert(
            "body".into(),
            json!({"contentType": "text", "content": update_text("body", v)?}),
        );
    }
    if let Some(v) = p.updates.get("attendees") {
        let list: StringOrList = serde_json::from_value(v.clone()).map_err(|_| {
            ToolError::invalid(
                "updates.attendees",
                &v.to_string(),
                "must be a list of addresses or a comma-separated text",
                "e.g. [\"a@example.com\"] or [] to remove all",
            )
        })?;
        let addresses = emails("updates.attendees", Some(&list), MAX_ATTENDEES)?;
        body.insert("attendees".into(), attendees_json(&addresses));
    }
    let times: Vec<When> = [start, end].into_iter().flatten().collect();
    if !times.is_empty() {
        let zone = zone_for(&app, &account, timezone.as_deref(), &times).await?;
        if let Some(s) = start {
            body.insert("start".into(), s.to_graph(&zone));
        }
        if let Some(e) = end {
            body.insert("end".into(), e.to_graph(&zone));
        }
    }
    let mut event = app
        .graph
        .patch(
            &account.account_id,
            &format!("/me/events/{id}"),
            &Value::Object(body),
        )
        .await?;
    strip_odata(&mut event);
    if event.is_null() {
        event = json!({"status": "updated", "event_id": p.event_id.trim()});
    }
    Ok(event)
}

async fn delete_event(app: Arc<App>, account: AccountRecord, p: DeleteEventParams) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    require_confirm(p.confirm, "Deleting an event")?;
    if p.send_cancellation {
        app.graph
            .post(
                &account.account_id,
                &format!("/me/events/{id}/cancel"),
                Some(&json!({})),
            )
            .await
            .map_err(|e| match e {
                GraphError::Graph { status: 400, .. } => ToolError::Unavailable(format!(
                    "{e}. Only the organizer can send a cancellation; call again with send_cancellation=false to delete the event from your calendar."
                )),
                other => ToolError::Graph(other),
            })?;
    } else {
        app.graph
            .delete(&account.account_id, &format!("/me/events/{id}"))
            .await?;
    }
    Ok(json!({
        "status": "deleted",
        "event_id": p.event_id.trim(),
        "cancellation_sent": p.send_cancellation,
    }))
}

async fn respond_event(app: Arc<App>, account: AccountRecord, p: RespondEventParams) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    let action = match p.response.trim().to_ascii_lowercase().as_str() {
        "accept" | "accepted" => "accept",
        "decline" | "declined" => "decline",
        "tentativelyaccept" | "tentative" | "tentativelyaccepted" => "tentativelyAccept",
        _ => {
            return Err(ToolError::invalid(
                "response",
                &p.response,
                "is not a response",
                "accept, decline or tentativelyAccept",
            ));
        }
    };
    let mut body = json!({"sendResponse": true});
    if let Some(message) = optional(p.message.as_deref()) {
        body["comment"] = json!(message);
    }
    app.graph
        .post(
            &account.account_id,
            &format!("/me/events/{id}/{action}"),
            Some(&body),
        )
        .await?;
    Ok(json!({"status": action, "event_id": p.event_id.trim()}))
}

/// The signed-in user's own address for getSchedule.
async fn my_address(app: &App, account: &AccountRecord) -> Result<String, ToolError> {
    let me = app
        .graph
        .get(
            &account.account_id,
            "/me",
            &[("$select", "mail,userPrincipalName,otherMails")],
        )
        .await?;
    Ok(me["mail"]
        .as_str()
        .filter(|s| !s.is_empty())
        .or(me["userPrincipalName"].as_str().filter(|s| !s.is_empty()))
        .or(me["otherMails"][0].as_str())
        .unwrap_or(account.username.as_str())
        .to_string())
}

async fn schedule(
    app: &App,
    account: &AccountRecord,
    people: Vec<String>,
    start: When,
    end: When,
    interval: usize,
) -> ToolResult {
    let zone = zone_for(app, account, None, &[start, end]).await?;
    let body = json!({
        "schedules": people,
        "startTime": start.to_graph(&zone),
        "endTime": end.to_graph(&zone),
        "availabilityViewInterval": interval,
    });
    let mut answer = app
        .graph
        .post(&account.account_id, "/me/calendar/getSchedule", Some(&body))
        .await?;
    strip_odata(&mut answer);
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("time_zone".into(), json!(zone));
        obj.insert("interval_minutes".into(), json!(interval));
    }
    Ok(answer)
}

async fn check_availability(
    app: Arc<App>,
    account: AccountRecord,
    p: AvailabilityParams,
) -> ToolResult {
    let start = parse_when("start", &p.start)?;
    let end = parse_when("end", &p.end)?;
    check_order(start, end, "start", &p.end)?;
    let others = emails("attendees", p.attendees.as_ref(), MAX_ATTENDEES - 1)?;
    let me = my_address(&app, &account).await?;
    let mut people = vec![me.clone()];
    people.extend(others.into_iter().filter(|a| !a.eq_ignore_ascii_case(&me)));
    schedule(&app, &account, people, start, end, 30).await
}

async fn get_free_busy(app: Arc<App>, account: AccountRecord, p: FreeBusyParams) -> ToolResult {
    let interval = check_range("time_interval", p.time_interval, 5, 1440)?;
    let people = emails("attendees", Some(&p.attendees), MAX_ATTENDEES)?;
    if people.is_empty() {
        return Err(ToolError::invalid(
            "attendees",
            "",
            "names nobody",
            "at least one email address",
        ));
    }
    let start = parse_when("start", &p.start)?;
    let end = parse_when("end", &p.end)?;
    check_order(start, end, "start", &p.end)?;
    schedule(&app, &account, people, start, end, interval).await
}

async fn forward_event(app: Arc<App>, account: AccountRecord, p: ForwardEventParams) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    let mut to = emails("to", Some(&p.to), MAX_ATTENDEES)?;
    for cc in emails("cc", p.cc.as_ref(), MAX_ATTENDEES)? {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&cc)) {
            to.push(cc);
        }
    }
    if to.is_empty() {
        return Err(ToolError::invalid(
            "to",
            "",
            "names nobody",
            "at least one email address",
        ));
    }
    require_confirm(p.confirm, "Forwarding an event (it sends mail)")?;
    let mut body = json!({"toRecipients": recipients(&to)});
    if let Some(message) = optional(p.message.as_deref()) {
        body["comment"] = json!(message);
    }
    app.graph
        .post(
            &account.account_id,
            &format!("/me/events/{id}/forward"),
            Some(&body),
        )
        .await?;
    Ok(json!({"status": "forwarded", "event_id": p.event_id.trim(), "to": to}))
}

async fn list_calendars(app: Arc<App>, account: AccountRecord, _: NoParams) -> ToolResult {
    let items = app
        .graph
        .get_paged(
            &account.account_id,
            "/me/calendars",
            &[("$select", CALENDAR_FIELDS), ("$top", "100")],
            1000,
        )
        .await?;
    let items = clean_list(items);
    Ok(json!({"value": items, "count": items.len(), "account_id": account.account_id}))
}

async fn create_calendar(
    app: Arc<App>,
    account: AccountRecord,
    p: CreateCalendarParams,
) -> ToolResult {
    let name = required_text("name", &p.name, 255)?;
    let mut calendar = app
        .graph
        .post(
            &account.account_id,
            "/me/calendars",
            Some(&json!({"name": name})),
        )
        .await?;
    strip_odata(&mut calendar);
    Ok(calendar)
}

async fn delete_calendar(
    app: Arc<App>,
    account: AccountRecord,
    p: DeleteCalendarParams,
) -> ToolResult {
    let id = id_segment("calendar_id", &p.calendar_id)?;
    require_confirm(p.confirm, "Deleting a calendar and its events")?;
    let path = format!("/me/calendars/{id}");
    let calendar = app
        .graph
        .get(
            &account.account_id,
            &path,
            &[("$select", "id,name,isDefaultCalendar")],
        )
        .await?;
    if calendar["isDefaultCalendar"] == true {
        return Err(ToolError::invalid(
            "calendar_id",
            &p.calendar_id,
            "is the default calendar, which cannot be deleted",
            "the id of another calendar (see calendar_list_calendars)",
        ));
    }
    app.graph.delete(&account.account_id, &path).await?;
    Ok(json!({
        "status": "deleted",
        "calendar_id": p.calendar_id.trim(),
        "name": calendar["name"],
    }))
}

async fn propose_new_time(
    app: Arc<App>,
    account: AccountRecord,
    p: ProposeTimeParams,
) -> ToolResult {
    let id = id_segment("event_id", &p.event_id)?;
    let start = parse_when("proposed_start", &p.proposed_start)?;
    let end = parse_when("proposed_end", &p.proposed_end)?;
    check_order(start, end, "proposed_start", &p.proposed_end)?;
    let zone = zone_for(&app, &account, None, &[start, end]).await?;
    let mut body = json!({
        "sendResponse": true,
        "proposedNewTime": {"start": start.to_graph(&zone), "end": end.to_graph(&zone)},
    });
    if let Some(message) = optional(p.message.as_deref()) {
        body["comment"] = json!(message);
    }
    app.graph
        .post(
            &account.account_id,
            &format!("/me/events/{id}/tentativelyAccept"),
            Some(&body),
        )
        .await?;
    Ok(json!({
        "status": "proposed_new_time",
        "event_id": p.event_id.trim(),
        "proposed": body["proposedNewTime"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_with_and_without_offsets() {
        let exact = parse_when("start", "2025-03-01T10:00:00+01:00").unwrap();
        assert_eq!(
            exact.to_graph("Pacific Standard Time"),
            json!({"dateTime": "2025-03-01T09:00:00", "timeZone": "UTC"})
        );
        let short = parse_when("start", "2025-03-01T10:00Z").unwrap();
        assert_eq!(short.to_graph("x")["dateTime"], "2025-03-01T10:00:00");
        let compact = parse_when("start", "2025-03-01T10:00:00-0530").unwrap();
        assert_eq!(compact.to_graph("x")["dateTime"], "2025-03-01T15:30:00");
        let wall = parse_when("start", "2025-03-01 10:00").unwrap();
        assert_eq!(
            wall.to_graph("Europe/Paris"),
            json!({"dateTime": "2025-03-01T10:00:00", "timeZone": "Europe/Paris"})
        );
        let day = parse_when("start", "2025-03-01").unwrap();
        assert_eq!(day.to_graph("UTC")["dateTime"], "2025-03-01T00:00:00");
        for bad in ["tomorrow", "2025-13-01T10:00", "2025-03-01T10:00+99:00", ""] {
            assert!(parse_when("start", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn order_and_zones_are_checked() {
        let a = parse_when("start", "2025-03-01T10:00").unwrap();
        let b = parse_when("end", "2025-03-01T09:00").unwrap();
        assert!(check_order(a, b, "start", "x").is_err());
        assert!(check_order(b, a, "start", "x").is_ok());
        assert!(check_zone("timezone", "W. Europe Standard Time").is_ok());
        assert!(check_zone("timezone", "America/Argentina/Buenos_Aires").is_ok());
        assert!(check_zone("timezone", "UTC\"; x").is_err());
        assert!(check_zone("timezone", "../etc").is_err());
    }
}
