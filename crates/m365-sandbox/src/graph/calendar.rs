//! Calendars and events: `/me/events`, `/me/calendar(s)`, `/me/calendarView` (recurring series
//! expanded into occurrences), responses, `getSchedule` and a simple `findMeetingTimes`.
//!
//! Times are stored in UTC. `Prefer: outlook.timezone` converts answers into a zone from a small
//! table of Windows and IANA names with their standard offsets (daylight saving is not modelled).

use serde_json::{Map, Value, json};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::app::{Caller, Request};
use crate::graph::mail::with_context_first;
use crate::graph::{collection_url, context};
use crate::odata::{self, Filter, PageRequest, PageRule};
use crate::reply::{GraphError, GraphResult, Reply};
use crate::seed::{EventSeed, calendar_json, event_json, graph_local, location_json};
use crate::state::{World, public, str_of};

/// Zones the sandbox can convert to and from: (names, offset in minutes).
const ZONES: &[(&[&str], i64)] = &[
    (
        &[
            "UTC",
            "Etc/UTC",
            "GMT Standard Time",
            "Europe/London",
            "Greenwich Standard Time",
        ],
        0,
    ),
    (
        &[
            "W. Europe Standard Time",
            "Europe/Berlin",
            "Europe/Paris",
            "Romance Standard Time",
            "Central Europe Standard Time",
            "Europe/Amsterdam",
        ],
        60,
    ),
    (&["Pacific Standard Time", "America/Los_Angeles"], -480),
    (&["Mountain Standard Time", "America/Denver"], -420),
    (&["Central Standard Time", "America/Chicago"], -360),
    (&["Eastern Standard Time", "America/New_York"], -300),
    (&["India Standard Time", "Asia/Kolkata"], 330),
    (&["Tokyo Standard Time", "Asia/Tokyo"], 540),
    (&["China Standard Time", "Asia/Shanghai"], 480),
    (&["AUS Eastern Standard Time", "Australia/Sydney"], 600),
];

fn zone_offset(name: &str) -> Option<UtcOffset> {
    ZONES
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(name.trim())))
        .and_then(|(_, minutes)| UtcOffset::from_whole_seconds((*minutes * 60) as i32).ok())
}

/// Parses a Graph local date-time (`2025-01-01T10:00:00.0000000`, offsets tolerated) in `zone`.
pub(crate) fn parse_local(text: &str, zone: &str) -> Result<OffsetDateTime, GraphError> {
    let bad = || {
        GraphError::new(
            400,
            "ErrorInvalidRequest",
            format!("The date-time '{text}' or time zone '{zone}' is not valid."),
        )
    };
    let trimmed = text.trim();
    if let Ok(t) = OffsetDateTime::parse(trimmed, &time::format_description::well_known::Rfc3339) {
        return Ok(t.to_offset(UtcOffset::UTC));
    }
    let core = trimmed.trim_end_matches('Z');
    let core = core.split('.').next().unwrap_or(core);
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let local = PrimitiveDateTime::parse(core, &format)
        .or_else(|_| PrimitiveDateTime::parse(core, &short))
        .map_err(|_| bad())?;
    let offset = zone_offset(if zone.is_empty() { "UTC" } else { zone }).ok_or_else(bad)?;
    Ok(local.assume_offset(offset).to_offset(UtcOffset::UTC))
}

fn event_time(event: &Value, key: &str) -> Option<OffsetDateTime> {
    let dt = event.get(key)?;
    parse_local(str_of(dt, "dateTime"), str_of(dt, "timeZone")).ok()
}

fn preferred_zone(request: &Request) -> Option<String> {
    let prefer = request.header("prefer")?;
    prefer.split(',').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("outlook.timezone")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// An event as returned for this request (times in the preferred zone, or UTC).
fn event_out(event: &Value, request: &Request) -> Value {
    let mut out = public(event);
    let zone = preferred_zone(request)
        .filter(|z| zone_offset(z).is_some())
        .unwrap_or_else(|| "UTC".to_string());
    let offset = zone_offset(&zone).unwrap_or(UtcOffset::UTC);
    for key in ["start", "end"] {
        if let Some(t) = event_time(event, key) {
            out[key] = json!({"dateTime": graph_local(t.to_offset(offset)), "timeZone": zone});
        }
    }
    odata::select(out, request.query.get("select"))
}

fn default_calendar(world: &World, user: usize) -> String {
    world.users[user]
        .calendars
        .iter()
        .find(|c| c["isDefaultCalendar"] == true)
        .map(|c| str_of(c, "id").to_string())
        .unwrap_or_default()
}

/// Routes calendar paths; `at` is the index of `events`, `calendar`, `calendars`, ….
pub(crate) fn handle(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
) -> GraphResult {
    let user = caller.user;
    let head = request.segment(at).unwrap_or_default();
    match head.as_str() {
        "events" => events(world, caller, request, at + 1, None),
        "calendarView" => calendar_view(world, caller, request, None),
        "findMeetingTimes" => find_meeting_times(world, caller, request),
        "calendarGroups" => Ok(Reply::json(
            json!({"@odata.context": context(caller, world, "calendarGroups"), "value": [{"name": "My Calendars", "classId": "0006f0b7-0000-0000-c000-000000000046", "changeKey": "", "id": world.users[user].user.oid}]}),
        )),
        "calendar" => {
            let id = default_calendar(world, user);
            calendar_item(world, caller, request, at + 1, &id)
        }
        _ => match request.segment(at + 1) {
            None => match request.method.as_str() {
                "GET" => {
                    let items: Vec<Value> =
                        world.users[user].calendars.iter().map(public).collect();
                    let mut out = Map::new();
                    out.insert(
                        "@odata.context".into(),
                        json!(context(caller, world, "calendars")),
                    );
                    let page = PageRequest {
                        query: &request.query,
                        url: collection_url(caller, request),
                    };
                    odata::page_into(&mut out, items, &page, PageRule::OUTLOOK)?;
                    Ok(Reply::json(Value::Object(out)))
                }
                "POST" => {
                    let body = request.json()?;
                    let name = body
                        .get("name")
                        .and_then(Value::as_str)
                        .filter(|n| !n.trim().is_empty())
                        .ok_or_else(|| {
                            GraphError::new(
                                400,
                                "ErrorInvalidRequest",
                                "The calendar name is required.",
                            )
                        })?;
                    if world.users[user]
                        .calendars
                        .iter()
                        .any(|c| str_of(c, "name").eq_ignore_ascii_case(name))
                    {
                        return Err(GraphError::new(
                            409,
                            "ErrorFolderExists",
                            "A folder with the specified name already exists.",
                        ));
                    }
                    let owner = world.users[user].user.clone();
                    let calendar = calendar_json(world, name, false, &owner);
                    world.users[user].calendars.push(calendar.clone());
                    let ctx = context(caller, world, "calendars/$entity");
                    Ok(Reply::created(with_context_first(
                        public(&calendar),
                        ctx,
                        request,
                    )))
                }
                _ => Err(GraphError::method_not_allowed()),
            },
            Some(id) => {
                if !world.users[user]
                    .calendars
                    .iter()
                    .any(|c| str_of(c, "id") == id)
                {
                    return Err(GraphError::item_not_found());
                }
                calendar_item(world, caller, request, at + 2, &id)
            }
        },
    }
}

fn calendar_item(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    id: &str,
) -> GraphResult {
    let user = caller.user;
    match request.segment(at).as_deref() {
        None => match request.method.as_str() {
            "GET" => {
                let c = world.users[user]
                    .calendars
                    .iter()
                    .find(|c| str_of(c, "id") == id)
                    .ok_or_else(GraphError::item_not_found)?;
                let ctx = context(caller, world, "calendars/$entity");
                Ok(Reply::json(with_context_first(public(c), ctx, request)))
            }
            "PATCH" => {
                let body = request.json()?;
                let mut c = world.users[user]
                    .calendars
                    .iter()
                    .find(|c| str_of(c, "id") == id)
                    .cloned()
                    .ok_or_else(GraphError::item_not_found)?;
                for key in ["name", "color"] {
                    if let Some(v) = body.get(key) {
                        c[key] = v.clone();
                    }
                }
                world.touch(&mut c);
                if let Some(map) = c.as_object_mut() {
                    map.remove("lastModifiedDateTime");
                }
                if let Some(slot) = world.users[user]
                    .calendars
                    .iter_mut()
                    .find(|x| str_of(x, "id") == id)
                {
                    *slot = c.clone();
                }
                let ctx = context(caller, world, "calendars/$entity");
                Ok(Reply::json(with_context_first(public(&c), ctx, request)))
            }
            "DELETE" => {
                if id == default_calendar(world, user) {
                    return Err(GraphError::new(
                        400,
                        "ErrorInvalidRequest",
                        "The default calendar cannot be deleted.",
                    ));
                }
                world.users[user]
                    .calendars
                    .retain(|c| str_of(c, "id") != id);
                world.users[user]
                    .events
                    .retain(|e| str_of(e, "_calendarId") != id);
                Ok(Reply::empty(204))
            }
            _ => Err(GraphError::method_not_allowed()),
        },
        Some("events") => events(world, caller, request, at + 1, Some(id.to_string())),
        Some("calendarView") => calendar_view(world, caller, request, Some(id)),
        Some("getSchedule") if request.method == "POST" => get_schedule(world, caller, request),
        Some(other) => Err(GraphError::unknown_segment(other)),
    }
}

/// Splits an occurrence id into (master id, occurrence date).
fn occurrence_parts(id: &str) -> Option<(String, String)> {
    let (master, date) = id.rsplit_once("_OCC_")?;
    Some((master.to_string(), date.to_string()))
}

fn find_event(world: &World, user: usize, id: &str) -> Result<Value, GraphError> {
    if let Some(e) = world.users[user]
        .events
        .iter()
        .find(|e| str_of(e, "id") == id)
    {
        return Ok(e.clone());
    }
    if let Some((master, date)) = occurrence_parts(id) {
        let m = world.users[user]
            .events
            .iter()
            .find(|e| str_of(e, "id") == master)
            .ok_or_else(GraphError::item_not_found)?;
        let start = event_time(m, "start").ok_or_else(GraphError::item_not_found)?;
        let end = event_time(m, "end").ok_or_else(GraphError::item_not_found)?;
        let fmt = time::macros::format_description!("[year][month][day]");
        let day = Date::parse(&date, &fmt).map_err(|_| GraphError::item_not_found())?;
        let occ_start = start.replace_date(day);
        return Ok(occurrence(m, occ_start, occ_start + (end - start)));
    }
    Err(GraphError::item_not_found())
}

fn occurrence(master: &Value, start: OffsetDateTime, end: OffsetDateTime) -> Value {
    let mut occ = master.clone();
    let day = format!(
        "{:04}{:02}{:02}",
        start.year(),
        u8::from(start.month()),
        start.day()
    );
    occ["id"] = json!(format!("{}_OCC_{day}", str_of(master, "id")));
    occ["type"] = json!("occurrence");
    occ["seriesMasterId"] = master["id"].clone();
    occ["recurrence"] = Value::Null;
    occ["start"] = json!({"dateTime": graph_local(start), "timeZone": "UTC"});
    occ["end"] = json!({"dateTime": graph_local(end), "timeZone": "UTC"});
    occ
}

/// Occurrences of a series master overlapping [from, to).
fn expand(master: &Value, from: OffsetDateTime, to: OffsetDateTime) -> Vec<Value> {
    let (Some(start), Some(end)) = (event_time(master, "start"), event_time(master, "end")) else {
        return Vec::new();
    };
    let pattern = &master["recurrence"]["pattern"];
    let range = &master["recurrence"]["range"];
    let interval = pattern["interval"].as_i64().unwrap_or(1).max(1);
    let kind = str_of(pattern, "type").to_string();
    let days: Vec<String> = pattern["daysOfWeek"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x.as_str().map(str::to_lowercase))
                .collect()
        })
        .unwrap_or_default();
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let end_date = (str_of(range, "type") == "endDate")
        .then(|| Date::parse(str_of(range, "endDate"), &fmt).ok())
        .flatten();
    let max_count = (str_of(range, "type") == "numbered")
        .then(|| range["numberOfOccurrences"].as_u64().unwrap_or(0));
    let length = end - start;
    let mut out = Vec::new();
    let mut produced = 0u64;
    let mut day = start.date();
    let limit = to.date() + Duration::days(1);
    while day <= limit {
        if end_date.is_some_and(|e| day > e) || max_count.is_some_and(|m| produced >= m) {
            break;
        }
        let offset_days = (day - start.date()).whole_days();
        let hit = match kind.as_str() {
            "daily" => offset_days % interval == 0,
            "weekly" => {
                let weekday = format!("{:?}", day.weekday()).to_lowercase();
                let week = offset_days.div_euclid(7);
                (days.is_empty() && offset_days % 7 == 0 || days.contains(&weekday))
                    && week % interval == 0
            }
            "absoluteMonthly" => day.day() == start.day(),
            "absoluteYearly" => day.day() == start.day() && day.month() == start.month(),
            _ => offset_days == 0,
        };
        if hit {
            produced += 1;
            let occ_start = start.replace_date(day);
            let occ_end = occ_start + length;
            if occ_start < to && occ_end > from {
                out.push(occurrence(master, occ_start, occ_end));
            }
        }
        day += Duration::days(1);
    }
    out
}

fn calendar_view(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    calendar: Option<&str>,
) -> GraphResult {
    let user = caller.user;
    let (Some(start), Some(end)) = (
        request.query.get("startdatetime"),
        request.query.get("enddatetime"),
    ) else {
        return Err(GraphError::new(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        ));
    };
    let from = parse_local(start, "UTC")?;
    let to = parse_local(end, "UTC")?;
    let calendar = calendar.map_or_else(|| default_calendar(world, user), str::to_string);
    let mut items = Vec::new();
    for e in world.users[user]
        .events
        .iter()
        .filter(|e| str_of(e, "_calendarId") == calendar)
    {
        if str_of(e, "type") == "seriesMaster" {
            items.extend(expand(e, from, to));
        } else if let (Some(s), Some(t)) = (event_time(e, "start"), event_time(e, "end"))
            && s < to
            && t > from
        {
            items.push(e.clone());
        }
    }
    list_events(
        world,
        caller,
        request,
        items,
        "calendarView",
        "start/dateTime",
    )
}

fn list_events(
    world: &World,
    caller: &Caller,
    request: &Request,
    mut items: Vec<Value>,
    tail: &str,
    default_order: &str,
) -> GraphResult {
    if let Some(filter) = request.query.get("filter") {
        let filter = Filter::parse(filter)?;
        items.retain(|e| filter.matches(e));
    }
    if let Some(search) = request.query.get("search") {
        let terms = odata::search_terms(search);
        items.retain(|e| {
            odata::search_matches(
                e,
                &terms,
                &[
                    "subject",
                    "bodyPreview",
                    "location/displayName",
                    "organizer/emailAddress/name",
                ],
            )
        });
    }
    odata::order_by(
        &mut items,
        request.query.get("orderby").unwrap_or(default_order),
    )?;
    let items: Vec<Value> = items.iter().map(|e| event_out(e, request)).collect();
    let mut out = Map::new();
    out.insert("@odata.context".into(), json!(context(caller, world, tail)));
    let page = PageRequest {
        query: &request.query,
        url: collection_url(caller, request),
    };
    odata::page_into(&mut out, items, &page, PageRule::OUTLOOK)?;
    Ok(Reply::json(Value::Object(out)))
}

fn events(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    calendar: Option<String>,
) -> GraphResult {
    let user = caller.user;
    let Some(id) = request.segment(at) else {
        return match request.method.as_str() {
            "GET" => {
                let items: Vec<Value> = world.users[user]
                    .events
                    .iter()
                    .filter(|e| {
                        calendar
                            .as_ref()
                            .is_none_or(|c| str_of(e, "_calendarId") == c)
                    })
                    .cloned()
                    .collect();
                list_events(
                    world,
                    caller,
                    request,
                    items,
                    "events",
                    "start/dateTime desc",
                )
            }
            "POST" => {
                let cal = calendar.unwrap_or_else(|| default_calendar(world, user));
                create_event(world, caller, request, &cal)
            }
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    let event = find_event(world, user, &id)?;
    let ctx = context(caller, world, "events/$entity");
    match (request.method.as_str(), request.segment(at + 1).as_deref()) {
        ("GET", None) => Ok(Reply::json(with_context_first(
            event_out(&event, request),
            ctx,
            request,
        ))),
        ("PATCH", None) => {
            let body = request.json()?;
            let index = world.users[user]
                .events
                .iter()
                .position(|e| str_of(e, "id") == id)
                .ok_or_else(GraphError::item_not_found)?;
            let mut updated = world.users[user].events[index].clone();
            apply_event_fields(&mut updated, &body)?;
            world.touch(&mut updated);
            world.users[user].events[index] = updated.clone();
            Ok(Reply::json(with_context_first(
                event_out(&updated, request),
                ctx,
                request,
            )))
        }
        ("DELETE", None) => {
            world.users[user].events.retain(|e| str_of(e, "id") != id);
            Ok(Reply::empty(204))
        }
        ("GET", Some("instances")) => {
            let (Some(start), Some(end)) = (
                request.query.get("startdatetime"),
                request.query.get("enddatetime"),
            ) else {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
                ));
            };
            let items = expand(&event, parse_local(start, "UTC")?, parse_local(end, "UTC")?);
            list_events(world, caller, request, items, "events", "start/dateTime")
        }
        ("POST", Some(action @ ("accept" | "decline" | "tentativelyAccept"))) => {
            if event["isOrganizer"] == true {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRequest",
                    "Your request can't be completed. You can't respond to a meeting you organized.",
                ));
            }
            let response = match action {
                "accept" => "accepted",
                "decline" => "declined",
                _ => "tentativelyAccepted",
            };
            let target = occurrence_parts(&id).map_or(id.clone(), |(m, _)| m);
            if let Some(e) = world.users[user]
                .events
                .iter_mut()
                .find(|e| str_of(e, "id") == target)
            {
                e["responseStatus"] =
                    json!({"response": response, "time": crate::state::now_string()});
            }
            Ok(Reply::empty(202))
        }
        ("POST", Some("cancel")) => {
            if event["isOrganizer"] != true {
                return Err(GraphError::new(
                    400,
                    "ErrorAccessDenied",
                    "Your request can't be completed. You need to be an organizer to cancel a meeting.",
                ));
            }
            world.users[user].events.retain(|e| str_of(e, "id") != id);
            Ok(Reply::empty(202))
        }
        ("POST", Some("forward")) => {
            let body = request.json()?;
            if body
                .get("toRecipients")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty())
            {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRecipients",
                    "At least one recipient isn't valid.",
                ));
            }
            Ok(Reply::empty(202))
        }
        (_, Some(other)) => Err(GraphError::unknown_segment(other)),
        _ => Err(GraphError::method_not_allowed()),
    }
}

fn apply_event_fields(event: &mut Value, body: &Map<String, Value>) -> Result<(), GraphError> {
    for (key, value) in body {
        match key.as_str() {
            "start" | "end" => {
                let t = parse_local(
                    str_of(value, "dateTime"),
                    value
                        .get("timeZone")
                        .and_then(Value::as_str)
                        .unwrap_or("UTC"),
                )?;
                event[key.as_str()] = json!({"dateTime": graph_local(t), "timeZone": "UTC"});
                event[if key == "start" {
                    "originalStartTimeZone"
                } else {
                    "originalEndTimeZone"
                }] = value.get("timeZone").cloned().unwrap_or(json!("UTC"));
            }
            "location" => {
                let name = str_of(value, "displayName");
                event["location"] = location_json(name);
                event["locations"] = if name.is_empty() {
                    json!([])
                } else {
                    json!([location_json(name)])
                };
            }
            "body" => {
                let content = str_of(value, "content");
                let html = if str_of(value, "contentType").eq_ignore_ascii_case("html") {
                    content.to_string()
                } else {
                    crate::seed::html_body(content)
                };
                event["body"] = json!({"contentType": "html", "content": html});
                event["bodyPreview"] = json!(crate::seed::preview(
                    &crate::graph::mail::html_to_text(&html)
                ));
            }
            "attendees" => {
                let list = value.as_array().ok_or_else(|| {
                    GraphError::new(400, "RequestBodyRead", "attendees must be a collection.")
                })?;
                event["attendees"] = Value::Array(
                    list.iter()
                        .map(|a| {
                            let mut a = a.clone();
                            if a.get("status").is_none() {
                                a["status"] =
                                    json!({"response": "none", "time": "0001-01-01T00:00:00Z"});
                            }
                            if a.get("type").is_none() {
                                a["type"] = json!("required");
                            }
                            a
                        })
                        .collect(),
                );
            }
            "recurrence" => {
                event["recurrence"] = value.clone();
                event["type"] = json!(if value.is_null() {
                    "singleInstance"
                } else {
                    "seriesMaster"
                });
            }
            "subject"
            | "isAllDay"
            | "showAs"
            | "importance"
            | "sensitivity"
            | "categories"
            | "isReminderOn"
            | "reminderMinutesBeforeStart"
            | "isOnlineMeeting"
            | "onlineMeetingProvider"
            | "responseRequested"
            | "allowNewTimeProposals"
            | "hideAttendees" => event[key.as_str()] = value.clone(),
            _ => {}
        }
    }
    if let (Some(s), Some(e)) = (event_time(event, "start"), event_time(event, "end"))
        && e < s
    {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "The end of the event is before its start.",
        ));
    }
    Ok(())
}

fn create_event(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    calendar: &str,
) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    if body.get("start").is_none() || body.get("end").is_none() {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The start and end of the event are required.",
        ));
    }
    let me = world.users[user].user.clone();
    let now = OffsetDateTime::now_utc();
    let mut event = event_json(
        world,
        EventSeed {
            subject: "",
            body_text: "",
            start: now,
            end: now,
            location: "",
            attendees: &[],
            organizer: (&me.display_name, &me.username),
            is_organizer: true,
            calendar_id: calendar,
        },
    );
    event["createdDateTime"] = json!(crate::state::now_string());
    apply_event_fields(&mut event, &body)?;
    world.touch(&mut event);
    world.users[user].events.push(event.clone());
    let ctx = context(caller, world, "events/$entity");
    Ok(Reply::created(with_context_first(
        event_out(&event, request),
        ctx,
        request,
    )))
}

fn get_schedule(world: &World, caller: &Caller, request: &Request) -> GraphResult {
    let body = request.json()?;
    let schedules: Vec<String> = body
        .get("schedules")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .filter(|s: &Vec<String>| !s.is_empty())
        .ok_or_else(|| {
            GraphError::new(
                400,
                "ErrorInvalidParameter",
                "The 'schedules' parameter is required.",
            )
        })?;
    let start = body
        .get("startTime")
        .ok_or_else(|| GraphError::new(400, "ErrorInvalidParameter", "startTime is required."))?;
    let end = body
        .get("endTime")
        .ok_or_else(|| GraphError::new(400, "ErrorInvalidParameter", "endTime is required."))?;
    let from = parse_local(
        str_of(start, "dateTime"),
        start
            .get("timeZone")
            .and_then(Value::as_str)
            .unwrap_or("UTC"),
    )?;
    let to = parse_local(
        str_of(end, "dateTime"),
        end.get("timeZone").and_then(Value::as_str).unwrap_or("UTC"),
    )?;
    let interval = body
        .get("availabilityViewInterval")
        .and_then(Value::as_i64)
        .unwrap_or(30)
        .clamp(5, 1440);
    let mut value = Vec::new();
    for address in schedules {
        let Some(index) = world.user_index(&address) else {
            value.push(json!({"scheduleId": address, "availabilityView": "", "scheduleItems": [], "workingHours": {}, "error": {"message": "The user isn't in this organization.", "responseCode": "ErrorMailRecipientNotFound"}}));
            continue;
        };
        let mut busy: Vec<(OffsetDateTime, OffsetDateTime, Value)> = Vec::new();
        for e in &world.users[index].events {
            let list = if str_of(e, "type") == "seriesMaster" {
                expand(e, from, to)
            } else {
                vec![e.clone()]
            };
            for occ in list {
                if let (Some(s), Some(t)) = (event_time(&occ, "start"), event_time(&occ, "end"))
                    && s < to
                    && t > from
                {
                    busy.push((s, t, occ));
                }
            }
        }
        let mut view = String::new();
        let mut slot = from;
        while slot < to {
            let next = slot + Duration::minutes(interval);
            view.push(if busy.iter().any(|(s, t, _)| *s < next && *t > slot) {
                '2'
            } else {
                '0'
            });
            slot = next;
        }
        let items: Vec<Value> = busy.iter().map(|(s, t, e)| json!({
            "isPrivate": false, "status": "busy", "subject": e["subject"], "location": e["location"]["displayName"],
            "start": {"dateTime": graph_local(*s), "timeZone": "UTC"}, "end": {"dateTime": graph_local(*t), "timeZone": "UTC"},
        })).collect();
        value.push(json!({
            "scheduleId": address,
            "availabilityView": view,
            "scheduleItems": items,
            "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"], "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000", "timeZone": {"name": world.users[index].time_zone}},
        }));
    }
    Ok(Reply::json(
        json!({"@odata.context": format!("{}/$metadata#Collection(microsoft.graph.scheduleInformation)", caller.base), "value": value}),
    ))
}

fn find_meeting_times(world: &World, caller: &Caller, request: &Request) -> GraphResult {
    if request.method != "POST" {
        return Err(GraphError::method_not_allowed());
    }
    let body = request.json()?;
    let minutes = body
        .get("meetingDuration")
        .and_then(Value::as_str)
        .and_then(|d| {
            d.trim_start_matches("PT")
                .strip_suffix('M')
                .and_then(|m| m.parse::<i64>().ok())
                .or_else(|| {
                    d.trim_start_matches("PT")
                        .strip_suffix('H')
                        .and_then(|h| h.parse::<i64>().ok().map(|h| h * 60))
                })
        })
        .unwrap_or(30);
    let now = OffsetDateTime::now_utc();
    let mut slot = now.replace_time(time::Time::MIDNIGHT) + Duration::days(1) + Duration::hours(9);
    let user = caller.user;
    let mut suggestions = Vec::new();
    while suggestions.len() < 5 && slot < now + Duration::days(14) {
        let end = slot + Duration::minutes(minutes);
        let busy = world.users[user].events.iter().any(|e| {
            let list = if str_of(e, "type") == "seriesMaster" { expand(e, slot, end) } else { vec![e.clone()] };
            list.iter().any(|o| matches!((event_time(o, "start"), event_time(o, "end")), (Some(s), Some(t)) if s < end && t > slot))
        });
        if !busy && slot.hour() < 17 {
            suggestions.push(json!({
                "confidence": 100.0, "organizerAvailability": "free", "attendeeAvailability": [], "locations": [],
                "meetingTimeSlot": {"start": {"dateTime": graph_local(slot), "timeZone": "UTC"}, "end": {"dateTime": graph_local(end), "timeZone": "UTC"}},
            }));
        }
        slot += Duration::minutes(30);
        if slot.hour() >= 17 {
            slot = slot.replace_time(time::Time::MIDNIGHT) + Duration::days(1) + Duration::hours(9);
        }
    }
    Ok(Reply::json(json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.meetingTimeSuggestionsResult", caller.base),
        "emptySuggestionsReason": if suggestions.is_empty() { "organizerUnavailable" } else { "" },
        "meetingTimeSuggestions": suggestions,
    })))
}
