//! Calendar and contacts tools, through the real binary against the Graph
//! sandbox: each tool's effect, bad input refused before any Graph call, and
//! cache entries invalidated precisely by writes.

mod common;

use common::{World, fails, for_account, ok};
use m365_mcp::demo::sign_in_all;
use serde_json::{Value, json};

fn events<'a>(state: &'a Value, subject: &str) -> Vec<&'a Value> {
    state["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_tools_work_end_to_end() {
    let world = World::manual().await;
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let alex = world.username(2);
    let a = for_account(&adele);

    // A 7-day window shows the recurring stand-up several times, expanded by calendarView.
    let listed = ok(&client, "calendar_list_events", a(json!({"days_ahead": 7}))).await;
    let items = listed["value"].as_array().unwrap();
    let standups: Vec<&Value> = items
        .iter()
        .filter(|e| e["subject"] == "Daily stand-up")
        .collect();
    assert!(
        standups.len() >= 5,
        "several occurrences expected, got {}: {listed}",
        standups.len()
    );
    assert!(standups.iter().all(|e| e["type"] == "occurrence"));
    assert!(items.iter().any(|e| e["subject"] == "Weekly team sync"));
    assert_eq!(listed["time_zone"], "Pacific Standard Time");
    assert_eq!(items[0]["start"]["timeZone"], "Pacific Standard Time");
    let starts: Vec<&str> = items
        .iter()
        .map(|e| e["start"]["dateTime"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "earliest first");
    assert!(
        world
            .sandbox
            .request_log()
            .iter()
            .any(|e| e.path.starts_with("/v1.0/me/calendarView?startDateTime=")),
        "calendarView is used"
    );

    // Calendars, cached.
    let calendars = ok(&client, "calendar_list_calendars", a(json!({}))).await;
    assert!(
        calendars["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["isDefaultCalendar"] == true)
    );
    let default_id = calendars["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["isDefaultCalendar"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Create with naive times: read in the mailbox zone (Pacific, UTC-8 in the sandbox).
    let created = ok(
        &client,
        "calendar_create_event",
        a(json!({
            "subject": "Quarterly review",
            "start": "2030-01-15T10:00",
            "end": "2030-01-15T11:30",
            "location": "Room 7",
            "body": "Numbers, plans.",
            "attendees": format!("{alex}, {alex}"),
        })),
    )
    .await;
    let event_id = created["id"].as_str().unwrap().to_string();
    let state = world.sandbox.user_state(&adele).unwrap();
    let stored = events(&state, "Quarterly review");
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-15T18:00:00"),
        "{}",
        stored[0]["start"]
    );
    assert_eq!(
        stored[0]["attendees"].as_array().unwrap().len(),
        1,
        "deduped"
    );
    assert_eq!(stored[0]["location"]["displayName"], "Room 7");

    // An explicit Windows zone and an offset time are honoured too.
    let zoned = ok(
        &client,
        "calendar_create_event",
        a(json!({"subject": "Berlin call", "start": "2030-02-01T09:00:00", "end": "2030-02-01T09:30:00", "timezone": "W. Europe Standard Time"})),
    )
    .await;
    let exact = ok(
        &client,
        "calendar_create_event",
        a(json!({"subject": "Exact call", "start": "2030-02-01T09:00:00+02:00", "end": "2030-02-01T09:30:00+02:00"})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(
        events(&state, "Berlin call")[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2030-02-01T08:00:00")
    );
    assert!(
        events(&state, "Exact call")[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2030-02-01T07:00:00")
    );

    // Cache: get (miss) → get (fresh, no Graph call) → update → get shows the change,
    // while the unrelated calendar list stays fresh without a Graph call.
    let got = ok(
        &client,
        "calendar_get_event",
        a(json!({"event_id": event_id})),
    )
    .await;
    assert_eq!(got["subject"], "Quarterly review");
    assert_eq!(got["_cache"]["status"], "miss");
    assert!(got["body"]["content"].is_string());
    let before = world.sandbox.counts().graph;
    let again = ok(
        &client,
        "calendar_get_event",
        a(json!({"event_id": event_id})),
    )
    .await;
    assert_eq!(again["_cache"]["status"], "fresh");
    let cals = ok(&client, "calendar_list_calendars", a(json!({}))).await;
    assert_eq!(cals["_cache"]["status"], "fresh");
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "cache hits cost nothing"
    );

    ok(
        &client,
        "calendar_update_event",
        a(json!({"event_id": event_id, "updates": {"subject": "Quarterly review (moved)", "start": "2030-01-16T10:00", "end": "2030-01-16T11:00"}})),
    )
    .await;
    let updated = ok(
        &client,
        "calendar_get_event",
        a(json!({"event_id": event_id})),
    )
    .await;
    assert_eq!(updated["subject"], "Quarterly review (moved)");
    assert_ne!(updated["_cache"]["status"], "fresh");
    let before = world.sandbox.counts().graph;
    let cals = ok(&client, "calendar_list_calendars", a(json!({}))).await;
    assert_eq!(cals["_cache"]["status"], "fresh", "unrelated entry kept");
    assert_eq!(world.sandbox.counts().graph, before);
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(
        events(&state, "Quarterly review (moved)")[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2030-01-16T18:00:00")
    );

    // Responding to an invitation (the stand-up is organised by someone else).
    let standup_id = standups[0]["id"].as_str().unwrap().to_string();
    let answer = ok(
        &client,
        "calendar_respond_event",
        a(json!({"event_id": standup_id, "response": "Tentative", "message": "Might be late"})),
    )
    .await;
    assert_eq!(answer["status"], "tentativelyAccept");
    let state = world.sandbox.user_state(&adele).unwrap();
    assert_eq!(
        events(&state, "Daily stand-up")[0]["responseStatus"]["response"],
        "tentativelyAccepted"
    );
    ok(
        &client,
        "calendar_respond_event",
        a(json!({"event_id": standup_id})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert_eq!(
        events(&state, "Daily stand-up")[0]["responseStatus"]["response"],
        "accepted"
    );
    let proposed = ok(
        &client,
        "calendar_propose_new_time",
        a(json!({"event_id": standup_id, "proposed_start": "2030-03-01T09:30", "proposed_end": "2030-03-01T09:45"})),
    )
    .await;
    assert_eq!(proposed["status"], "proposed_new_time");
    assert_eq!(
        proposed["proposed"]["start"]["timeZone"],
        "Pacific Standard Time"
    );
    let state = world.sandbox.user_state(&adele).unwrap();
    assert_eq!(
        events(&state, "Daily stand-up")[0]["responseStatus"]["response"],
        "tentativelyAccepted"
    );

    // Forwarding needs confirm; with it, Graph's forward is called.
    let forwarded = ok(
        &client,
        "calendar_forward_event",
        a(json!({"event_id": event_id, "to": [alex], "cc": "megan.bowen@outlook.com", "message": "FYI", "confirm": true})),
    )
    .await;
    assert_eq!(forwarded["status"], "forwarded");
    assert_eq!(forwarded["to"].as_array().unwrap().len(), 2);
    assert!(
        world
            .sandbox
            .request_log()
            .iter()
            .any(|e| e.method == "POST" && e.path.ends_with("/forward") && e.status == 202)
    );

    // Availability and free/busy.
    let availability = ok(
        &client,
        "calendar_check_availability",
        a(json!({"start": "2030-01-16T08:00", "end": "2030-01-16T12:00", "attendees": [alex]})),
    )
    .await;
    let schedules = availability["value"].as_array().unwrap();
    assert_eq!(schedules.len(), 2);
    assert_eq!(schedules[0]["scheduleId"], adele.as_str());
    let view = schedules[0]["availabilityView"].as_str().unwrap();
    assert_eq!(view.len(), 8, "4 hours in 30-minute slots");
    assert!(view.contains('2'), "the moved review is busy time: {view}");
    let free_busy = ok(
        &client,
        "calendar_get_free_busy",
        a(json!({"attendees": [adele, alex], "start": "2030-01-16T18:00:00Z", "end": "2030-01-16T19:00:00Z", "time_interval": 15})),
    )
    .await;
    assert_eq!(
        free_busy["value"][0]["availabilityView"], "2222",
        "{free_busy}"
    );

    // Calendars: create, refuse to delete the default, delete with confirm.
    let made = ok(
        &client,
        "calendar_create_calendar",
        a(json!({"name": "Project X"})),
    )
    .await;
    let calendar_id = made["id"].as_str().unwrap().to_string();
    let cals = ok(&client, "calendar_list_calendars", a(json!({}))).await;
    assert_eq!(
        cals["_cache"]["status"], "miss",
        "invalidated by the create"
    );
    assert!(
        cals["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "Project X")
    );
    let before_log = world.sandbox.request_log().len();
    fails(
        &client,
        "calendar_delete_calendar",
        a(json!({"calendar_id": default_id, "confirm": true})),
        "is the default calendar",
    )
    .await;
    assert!(
        world.sandbox.request_log()[before_log..]
            .iter()
            .all(|e| e.method == "GET"),
        "nothing deleted"
    );
    ok(
        &client,
        "calendar_delete_calendar",
        a(json!({"calendar_id": calendar_id, "confirm": true})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(
        state["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "Project X")
    );

    // Delete with a cancellation (Adele organises it), and without.
    ok(
        &client,
        "calendar_delete_event",
        a(json!({"event_id": event_id, "confirm": true})),
    )
    .await;
    ok(
        &client,
        "calendar_delete_event",
        a(json!({"event_id": zoned["id"], "send_cancellation": false, "confirm": true})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(events(&state, "Quarterly review (moved)").is_empty());
    assert!(events(&state, "Berlin call").is_empty());
    assert_eq!(events(&state, "Exact call").len(), 1);
    fails(
        &client,
        "calendar_get_event",
        a(json!({"event_id": event_id})),
        "",
    )
    .await;
    let _ = exact;

    // Bad input: clear errors, no Graph call at all.
    let before = world.sandbox.counts().graph;
    let cases = [
        (
            "calendar_list_events",
            json!({"days_ahead": 0}),
            "Invalid days_ahead '0'",
        ),
        (
            "calendar_list_events",
            json!({"limit": 500}),
            "Invalid limit '500'",
        ),
        (
            "calendar_get_event",
            json!({"event_id": "../../users/x"}),
            "Invalid event_id",
        ),
        (
            "calendar_create_event",
            json!({"subject": "x", "start": "2030-01-01T10:00", "end": "2030-01-01T09:00"}),
            "Invalid end",
        ),
        (
            "calendar_create_event",
            json!({"subject": "x", "start": "next tuesday", "end": "2030-01-01T09:00"}),
            "Invalid start 'next tuesday': is not an ISO 8601 date-time",
        ),
        (
            "calendar_create_event",
            json!({"subject": "x", "start": "2030-01-01T10:00", "end": "2030-01-01T11:00", "attendees": ["not-an-address"]}),
            "Invalid attendees 'not-an-address'",
        ),
        (
            "calendar_create_event",
            json!({"subject": "x", "start": "2030-01-01T10:00", "end": "2030-01-01T11:00", "timezone": "Mars/Olympus\"x"}),
            "Invalid timezone",
        ),
        (
            "calendar_create_event",
            json!({"subject": "  ", "start": "2030-01-01T10:00", "end": "2030-01-01T11:00"}),
            "Invalid subject",
        ),
        (
            "calendar_update_event",
            json!({"event_id": "AAMk1", "updates": {"colour": "red"}}),
            "Invalid updates 'colour'",
        ),
        (
            "calendar_update_event",
            json!({"event_id": "AAMk1", "updates": {}}),
            "Invalid updates",
        ),
        (
            "calendar_update_event",
            json!({"event_id": "AAMk1", "updates": {"timezone": "UTC"}}),
            "applies only together with start or end",
        ),
        (
            "calendar_delete_event",
            json!({"event_id": "AAMk1"}),
            "Invalid confirm 'false'",
        ),
        (
            "calendar_respond_event",
            json!({"event_id": "AAMk1", "response": "maybe"}),
            "Invalid response 'maybe'",
        ),
        (
            "calendar_forward_event",
            json!({"event_id": "AAMk1", "to": "a@b.com"}),
            "Invalid confirm 'false'",
        ),
        (
            "calendar_forward_event",
            json!({"event_id": "AAMk1", "to": "nobody", "confirm": true}),
            "Invalid to 'nobody'",
        ),
        (
            "calendar_check_availability",
            json!({"start": "2030-01-01T10:00", "end": "yesterday"}),
            "Invalid end 'yesterday'",
        ),
        (
            "calendar_get_free_busy",
            json!({"attendees": "a@b.com", "start": "2030-01-01T10:00", "end": "2030-01-01T11:00", "time_interval": 2}),
            "Invalid time_interval '2'",
        ),
        (
            "calendar_create_calendar",
            json!({"name": ""}),
            "Invalid name",
        ),
        (
            "calendar_delete_calendar",
            json!({"calendar_id": "AAMk2"}),
            "Invalid confirm 'false'",
        ),
        (
            "calendar_propose_new_time",
            json!({"event_id": "AAMk1", "proposed_start": "2030-01-01T10:00", "proposed_end": "2030-01-01T09:00"}),
            "Invalid end",
        ),
        (
            "calendar_list_calendars",
            json!({"x": 1}),
            "unknown field `x`",
        ),
    ];
    for (tool, extra, expected) in cases {
        fails(&client, tool, a(extra), expected).await;
    }
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "bad input must not reach Graph"
    );
    client.cancel().await.unwrap();
}

fn contacts_named<'a>(state: &'a Value, given: &str) -> Vec<&'a Value> {
    state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["givenName"] == given)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_tools_work_end_to_end() {
    let world = World::manual().await;
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let a = for_account(&adele);

    let listed = ok(&client, "contact_list", a(json!({"limit": 5}))).await;
    assert_eq!(listed["count"], 5);
    let seeded_id = listed["value"][0]["id"].as_str().unwrap().to_string();
    let seeded = ok(&client, "contact_get", a(json!({"contact_id": seeded_id}))).await;
    assert_eq!(seeded["id"], seeded_id.as_str());

    // Create with escaping-worthy values.
    let created = ok(
        &client,
        "contact_create",
        a(json!({
            "given_name": "Zoë",
            "surname": "O'Hara; Jr",
            "email_addresses": "zoe@example.com, ZOE@example.com",
            "phone_numbers": {"business": "+1 425 555 0100", "mobile": "+1 (425) 555-0101"},
        })),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let state = world.sandbox.user_state(&adele).unwrap();
    let stored = contacts_named(&state, "Zoë");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["emailAddresses"].as_array().unwrap().len(), 1);
    assert_eq!(stored[0]["mobilePhone"], "+1 (425) 555-0101");

    // Cache: get → update → get shows the change; the unrelated seeded contact stays fresh.
    let got = ok(&client, "contact_get", a(json!({"contact_id": id}))).await;
    assert_eq!(got["_cache"]["status"], "miss");
    ok(
        &client,
        "contact_update",
        a(json!({"contact_id": id, "updates": {"companyName": "Contoso, Ltd", "jobTitle": "Lead\nEngineer", "homePhones": ["+44 20 7946 0000"]}})),
    )
    .await;
    let got = ok(&client, "contact_get", a(json!({"contact_id": id}))).await;
    assert_eq!(got["companyName"], "Contoso, Ltd");
    assert_eq!(got["_cache"]["status"], "miss", "invalidated by the update");
    let before = world.sandbox.counts().graph;
    let other = ok(&client, "contact_get", a(json!({"contact_id": seeded_id}))).await;
    assert_eq!(other["_cache"]["status"], "fresh");
    assert_eq!(world.sandbox.counts().graph, before);

    // Export: vCard 4.0, escaped, folded.
    let exported = ok(
        &client,
        "contact_export",
        a(json!({"contact_id": id, "format": "VCARD"})),
    )
    .await;
    let card = exported["vcard"].as_str().unwrap();
    assert!(card.starts_with("BEGIN:VCARD\r\nVERSION:4.0\r\n"), "{card}");
    assert!(card.contains("N:O'Hara\\; Jr;Zoë;;;\r\n"), "{card}");
    assert!(card.contains("ORG:Contoso\\, Ltd\r\n"), "{card}");
    assert!(card.contains("TITLE:Lead\\nEngineer\r\n"), "{card}");
    assert!(card.contains("EMAIL;TYPE=work:zoe@example.com\r\n"));
    assert!(card.split("\r\n").all(|l| l.len() <= 75));
    assert!(card.ends_with("END:VCARD\r\n"));

    // Lists: create, add, add again (no duplicate).
    let list = ok(
        &client,
        "contact_create_list",
        a(json!({"list_name": "Suppliers 2030"})),
    )
    .await;
    let list_id = list["id"].as_str().unwrap().to_string();
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(
        state["contactFolders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["displayName"] == "Suppliers 2030")
    );
    let added = ok(
        &client,
        "contact_add_to_list",
        a(json!({"contact_id": id, "list_id": list_id})),
    )
    .await;
    assert_eq!(added["status"], "added");
    let again = ok(
        &client,
        "contact_add_to_list",
        a(json!({"contact_id": id, "list_id": list_id})),
    )
    .await;
    assert_eq!(again["status"], "already_present");
    assert_eq!(again["contact_id"], added["id"]);
    let state = world.sandbox.user_state(&adele).unwrap();
    let in_list = state["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parentFolderId"] == list_id.as_str())
        .count();
    assert_eq!(in_list, 1, "no duplicate");

    // Delete.
    ok(
        &client,
        "contact_delete",
        a(json!({"contact_id": id, "confirm": true})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert_eq!(
        contacts_named(&state, "Zoë").len(),
        1,
        "only the list copy remains"
    );
    fails(&client, "contact_get", a(json!({"contact_id": id})), "").await;

    // Bad input: clear errors and no Graph call.
    let before = world.sandbox.counts().graph;
    let cases = [
        ("contact_list", json!({"limit": 501}), "Invalid limit '501'"),
        (
            "contact_get",
            json!({"contact_id": "a/b"}),
            "Invalid contact_id",
        ),
        (
            "contact_create",
            json!({"given_name": " "}),
            "Invalid given_name",
        ),
        (
            "contact_create",
            json!({"given_name": "X", "email_addresses": ["not an address"]}),
            "Invalid email_addresses",
        ),
        (
            "contact_create",
            json!({"given_name": "X", "phone_numbers": {"fax": "1"}}),
            "Invalid phone_numbers 'fax'",
        ),
        (
            "contact_create",
            json!({"given_name": "X", "phone_numbers": {"home": "call me"}}),
            "Invalid phone_numbers.home",
        ),
        (
            "contact_update",
            json!({"contact_id": id, "updates": {"nickname": "x"}}),
            "Invalid updates 'nickname'",
        ),
        (
            "contact_update",
            json!({"contact_id": id, "updates": {"emailAddresses": [{"address": "bad"}]}}),
            "Invalid updates.emailAddresses 'bad'",
        ),
        (
            "contact_delete",
            json!({"contact_id": id}),
            "Invalid confirm 'false'",
        ),
        (
            "contact_create_list",
            json!({"list_name": ""}),
            "Invalid list_name",
        ),
        (
            "contact_add_to_list",
            json!({"contact_id": id, "list_id": "../x"}),
            "Invalid list_id",
        ),
        (
            "contact_export",
            json!({"contact_id": id, "format": "csv"}),
            "Invalid format 'csv'",
        ),
    ];
    for (tool, extra, expected) in cases {
        fails(&client, tool, a(extra), expected).await;
    }
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "bad input must not reach Graph"
    );
    client.cancel().await.unwrap();
}
