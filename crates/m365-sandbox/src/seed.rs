//! The seeded tenant: users, mailboxes, rules, calendars, contacts and OneDrive trees, all drawn
//! from the configured seed. Dates are relative to the anchor (the start of the UTC day the
//! sandbox started on), so "today's mail" and "this week's meetings" exist whenever tests run.

use std::collections::HashMap;

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::config::TenantSize;
use crate::state::{
    CONSUMER_TENANT_ID, Drive, SandboxUser, UserData, WORK_TENANT_ID, World, format_time,
};

const FIRST_NAMES: &[&str] = &[
    "Adele",
    "Alex",
    "Diego",
    "Grady",
    "Henrietta",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Irvin",
    "Sofia",
    "Tomasz",
    "Yuki",
];
const LAST_NAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Siciliani",
    "Archie",
    "Mueller",
    "Langer",
    "Lauer",
    "Sherman",
    "Gu",
    "Holloway",
    "Robbins",
    "Bowen",
    "Hooper",
    "Wilke",
    "Fernandez",
    "Gupta",
    "Sayers",
    "Rossi",
    "Nowak",
    "Tanaka",
];
const COMPANIES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind Traders",
    "Tailspin Toys",
    "Wingtip Toys",
    "Litware",
    "Adventure Works",
    "Woodgrove Bank",
    "Proseware",
    "Lamna Healthcare",
];
const TOPICS: &[&str] = &[
    "Q3 budget review",
    "Mark 8 launch plan",
    "Customer feedback summary",
    "Design sync",
    "Vendor contract renewal",
    "Hiring pipeline",
    "Security audit findings",
    "Travel itinerary",
    "Quarterly business review",
    "Sprint retrospective",
    "Marketing campaign assets",
    "Invoice #4471",
    "Office move logistics",
    "Training schedule",
    "Release notes 2.4",
    "Partner onboarding",
    "Expense report approval",
    "Board deck draft",
    "Support escalation",
    "Roadmap priorities",
];
const PREFIXES: &[&str] = &["", "", "", "RE: ", "FW: ", "RE: RE: "];
const FOLDER_NAMES: &[&str] = &[
    "Projects",
    "Clients",
    "Finance",
    "Receipts",
    "Newsletters",
    "Team",
    "Travel",
    "Legal",
    "Vendors",
    "Reports",
    "Hiring",
    "Archive 2023",
    "Events",
    "Support",
    "Marketing",
    "Product",
];
const CATEGORIES: &[&str] = &[
    "Red category",
    "Blue category",
    "Green category",
    "Yellow category",
    "Purple category",
    "Orange category",
];
const DRIVE_FOLDERS: &[&str] = &[
    "Documents",
    "Projects",
    "Photos",
    "Reports",
    "Finance",
    "Shared",
    "Archive",
    "Drafts",
    "Presentations",
    "Contracts",
    "Design",
    "Research",
    "Notes",
    "Templates",
    "Invoices",
];
const FILE_KINDS: &[(&str, &str)] = &[
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    ("pdf", "application/pdf"),
    ("txt", "text/plain"),
    ("png", "image/png"),
];

/// Well-known mail folders created for every mailbox: (well-known name, display name, hidden).
const WELL_KNOWN: &[(&str, &str, bool)] = &[
    ("inbox", "Inbox", false),
    ("drafts", "Drafts", false),
    ("sentitems", "Sent Items", false),
    ("deleteditems", "Deleted Items", false),
    ("junkemail", "Junk Email", false),
    ("archive", "Archive", false),
    ("outbox", "Outbox", false),
    ("conversationhistory", "Conversation History", false),
    ("clutter", "Clutter", true),
];

/// Creates the seeded users and all their data.
pub(crate) fn seed_world(world: &mut World, size: &TenantSize) {
    world.download_secret = world.token(24);
    let people = [
        (
            "Adele",
            "Vance",
            "AdeleV@contoso.onmicrosoft.com",
            false,
            "Retail Manager",
            "Pacific Standard Time",
        ),
        ("Megan", "Bowen", "megan.bowen@outlook.com", true, "", "UTC"),
        (
            "Alex",
            "Wilber",
            "AlexW@contoso.onmicrosoft.com",
            false,
            "Marketing Assistant",
            "UTC",
        ),
    ];
    for (given, surname, username, personal, job, tz) in people {
        let oid = if personal {
            let guid = world.guid();
            format!("00000000-0000-0000-{}", &guid[19..])
        } else {
            world.guid()
        };
        let user = SandboxUser {
            username: username.to_string(),
            oid,
            tid: if personal {
                CONSUMER_TENANT_ID.to_string()
            } else {
                WORK_TENANT_ID.to_string()
            },
            display_name: format!("{given} {surname}"),
            personal,
        };
        let mut data = UserData {
            user,
            given_name: given.to_string(),
            surname: surname.to_string(),
            job_title: job.to_string(),
            time_zone: tz.to_string(),
            folders: Vec::new(),
            messages: Vec::new(),
            attachments: HashMap::new(),
            rules: Vec::new(),
            calendars: Vec::new(),
            events: Vec::new(),
            contact_folders: Vec::new(),
            contacts: Vec::new(),
            drive: Drive::default(),
        };
        seed_mailbox(world, &mut data, size);
        seed_rules(world, &mut data);
        seed_calendar(world, &mut data, size);
        seed_contacts(world, &mut data, size);
        seed_drive(world, &mut data, size);
        world.users.push(data);
        world.signed_in.push(false);
    }
}

fn pick<'a>(world: &mut World, list: &'a [&'a str]) -> &'a str {
    list[world.rng.random_range(0..list.len())]
}

fn person(world: &mut World) -> (String, String) {
    let first = pick(world, FIRST_NAMES);
    let last = pick(world, LAST_NAMES);
    let company = pick(world, COMPANIES);
    let domain = company.to_lowercase().replace(' ', "");
    (
        format!("{first} {last}"),
        format!(
            "{}.{}@{domain}.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
    )
}

/// A mail folder object.
pub(crate) fn folder_json(
    id: &str,
    name: &str,
    parent: &str,
    hidden: bool,
    well_known: Option<&str>,
) -> Value {
    let mut folder = json!({
        "id": id,
        "displayName": name,
        "parentFolderId": parent,
        "isHidden": hidden,
    });
    if let (Some(wk), Some(map)) = (well_known, folder.as_object_mut()) {
        map.insert("_wellKnownName".into(), Value::String(wk.to_string()));
    }
    folder
}

fn seed_mailbox(world: &mut World, data: &mut UserData, size: &TenantSize) {
    let root_id = world.outlook_id();
    data.folders.push(folder_json(
        &root_id,
        "Top of Information Store",
        "",
        false,
        Some("msgfolderroot"),
    ));
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (wk, name, hidden) in WELL_KNOWN {
        let id = world.outlook_id();
        data.folders
            .push(folder_json(&id, name, &root_id, *hidden, Some(wk)));
        ids.insert(wk, id);
    }
    // User folders under Inbox and Archive, up to the configured depth.
    let mut parents: Vec<(String, usize)> =
        vec![(ids["inbox"].clone(), 0), (ids["archive"].clone(), 0)];
    let mut user_folders: Vec<String> = Vec::new();
    let mut used_names: HashMap<String, usize> = HashMap::new();
    for i in 0..size.mail_folders {
        // The first folders form one full-depth chain; later ones pick a random parent.
        let (parent, depth) = if i < size.mail_folder_depth {
            if i == 0 {
                (ids["inbox"].clone(), 0)
            } else {
                parents
                    .last()
                    .cloned()
                    .unwrap_or_else(|| (ids["inbox"].clone(), 0))
            }
        } else {
            let candidates: Vec<&(String, usize)> = parents
                .iter()
                .filter(|(_, d)| *d < size.mail_folder_depth)
                .collect();
            let choice = candidates[world.rng.random_range(0..candidates.len())];
            choice.clone()
        };
        let base = FOLDER_NAMES[i % FOLDER_NAMES.len()];
        let key = format!("{parent}/{base}");
        let n = used_names.entry(key).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            base.to_string()
        } else {
            format!("{base} {n}")
        };
        let id = world.outlook_id();
        data.folders
            .push(folder_json(&id, &name, &parent, false, None));
        parents.push((id.clone(), depth + 1));
        user_folders.push(id);
    }

    let me_name = data.user.display_name.clone();
    let me_address = data.user.username.clone();
    let total = size.messages_per_user;
    let span_minutes = 180 * 24 * 60;
    for i in 0..total {
        let roll = world.rng.random_range(0..100);
        let (folder, kind) = match roll {
            0..=49 => (ids["inbox"].clone(), "received"),
            50..=59 => (ids["sentitems"].clone(), "sent"),
            60..=62 => (ids["drafts"].clone(), "draft"),
            63..=67 => (ids["deleteditems"].clone(), "received"),
            68..=70 => (ids["junkemail"].clone(), "received"),
            71..=79 => (ids["archive"].clone(), "received"),
            _ if !user_folders.is_empty() => (
                user_folders[world.rng.random_range(0..user_folders.len())].clone(),
                "received",
            ),
            _ => (ids["inbox"].clone(), "received"),
        };
        let minutes_back =
            (i as i64 * span_minutes / total.max(1) as i64) + world.rng.random_range(0..60);
        let received = world.anchor + Duration::hours(9) - Duration::minutes(minutes_back);
        let (other_name, other_address) = person(world);
        let topic = pick(world, TOPICS);
        let prefix = pick(world, PREFIXES);
        let subject = format!("{prefix}{topic}");
        let (from, to) = if kind == "received" {
            (
                (other_name.clone(), other_address.clone()),
                (me_name.clone(), me_address.clone()),
            )
        } else {
            (
                (me_name.clone(), me_address.clone()),
                (other_name.clone(), other_address.clone()),
            )
        };
        let is_read = kind != "received" || i > total / 12 && world.rng.random_bool(0.85);
        let mut categories = Vec::new();
        if world.rng.random_bool(0.15) {
            categories.push(pick(world, CATEGORIES).to_string());
        }
        let flagged = kind == "received" && world.rng.random_bool(0.08);
        let importance = match world.rng.random_range(0..20) {
            0 | 1 => "high",
            2 => "low",
            _ => "normal",
        };
        let text = format!(
            "Hi {},\n\nPlease find the latest on {} below. Let me know if anything needs to change before {}.\n\nThanks,\n{}",
            to.0.split(' ').next().unwrap_or_default(),
            topic.to_lowercase(),
            format_time(received + Duration::days(3))
                .get(..10)
                .unwrap_or_default(),
            from.0
        );
        let mut message = message_json(
            world,
            MessageSeed {
                subject: &subject,
                body_text: &text,
                from: (&from.0, &from.1),
                to: &[(&to.0, &to.1)],
                received,
                folder: &folder,
                is_read,
                is_draft: kind == "draft",
            },
        );
        if let Some(map) = message.as_object_mut() {
            map.insert("categories".into(), json!(categories));
            map.insert("importance".into(), json!(importance));
            if flagged {
                map.insert("flag".into(), json!({"flagStatus": "flagged"}));
            }
        }
        let id = message["id"].as_str().unwrap_or_default().to_string();
        if world.rng.random_bool(0.15) {
            let attachments = seed_attachments(world, i, received);
            if let Some(map) = message.as_object_mut() {
                map.insert("hasAttachments".into(), Value::Bool(true));
            }
            data.attachments.insert(id, attachments);
        }
        data.messages.push(message);
    }
}

/// What a seeded or created message is made of.
pub(crate) struct MessageSeed<'a> {
    pub subject: &'a str,
    pub body_text: &'a str,
    pub from: (&'a str, &'a str),
    pub to: &'a [(&'a str, &'a str)],
    pub received: OffsetDateTime,
    pub folder: &'a str,
    pub is_read: bool,
    pub is_draft: bool,
}

/// Escapes text for HTML.
pub(crate) fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Wraps plain text in the HTML Outlook stores.
pub(crate) fn html_body(text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .map(|p| format!("<p>{}</p>", html_escape(p).replace('\n', "<br>")))
        .collect();
    format!(
        "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><div>{}</div></body></html>",
        paragraphs.join("")
    )
}

/// First 255 characters of the text, as `bodyPreview`.
pub(crate) fn preview(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect()
}

fn recipient(name: &str, address: &str) -> Value {
    json!({"emailAddress": {"name": name, "address": address}})
}

/// A complete message object as Graph returns it.
pub(crate) fn message_json(world: &mut World, seed: MessageSeed<'_>) -> Value {
    let id = world.outlook_id();
    let when = format_time(seed.received);
    let conversation = format!("AAQkA{}=", world.token(24));
    let internet_id = format!(
        "<{}@{}>",
        world.token(18),
        seed.from.1.split('@').nth(1).unwrap_or("contoso.com")
    );
    let mut message = json!({
        "id": id,
        "createdDateTime": when,
        "lastModifiedDateTime": when,
        "categories": [],
        "receivedDateTime": when,
        "sentDateTime": when,
        "hasAttachments": false,
        "internetMessageId": internet_id,
        "subject": seed.subject,
        "bodyPreview": preview(seed.body_text),
        "importance": "normal",
        "parentFolderId": seed.folder,
        "conversationId": conversation,
        "conversationIndex": base64::engine::general_purpose::STANDARD.encode(world.token(16)),
        "isDeliveryReceiptRequested": false,
        "isReadReceiptRequested": false,
        "isRead": seed.is_read,
        "isDraft": seed.is_draft,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={id}&exvsurl=1&viewmodel=ReadMessageItem"),
        "inferenceClassification": "focused",
        "body": {"contentType": "html", "content": html_body(seed.body_text)},
        "sender": recipient(seed.from.0, seed.from.1),
        "from": recipient(seed.from.0, seed.from.1),
        "toRecipients": seed.to.iter().map(|(n, a)| recipient(n, a)).collect::<Vec<_>>(),
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
    });
    world.touch(&mut message);
    if let Some(map) = message.as_object_mut() {
        map.insert("lastModifiedDateTime".into(), Value::String(when));
    }
    message
}

fn seed_attachments(world: &mut World, index: usize, when: OffsetDateTime) -> Vec<Value> {
    let mut list = Vec::new();
    let (ext, mime) = FILE_KINDS[index % FILE_KINDS.len()];
    let content = format!("Attachment {index} generated by the sandbox.\n").repeat(8 + index % 20);
    list.push(json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": mime,
        "id": world.outlook_id(),
        "lastModifiedDateTime": format_time(when),
        "name": format!("{}-{index}.{ext}", pick(world, &["report", "notes", "summary", "invoice"])),
        "contentType": mime,
        "size": content.len() + 180,
        "isInline": false,
        "contentId": null,
        "contentLocation": null,
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(content.as_bytes()),
    }));
    if index.is_multiple_of(7) {
        list.push(json!({
            "@odata.type": "#microsoft.graph.itemAttachment",
            "id": world.outlook_id(),
            "lastModifiedDateTime": format_time(when),
            "name": "Original meeting request",
            "contentType": null,
            "size": 4210,
            "isInline": false,
        }));
    }
    if index.is_multiple_of(11) {
        list.push(json!({
            "@odata.type": "#microsoft.graph.referenceAttachment",
            "id": world.outlook_id(),
            "lastModifiedDateTime": format_time(when),
            "name": "Shared plan.docx",
            "contentType": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "size": 382,
            "isInline": false,
        }));
    }
    list
}

/// A message rule object.
pub(crate) fn rule_json(
    id: &str,
    name: &str,
    sequence: i64,
    conditions: Value,
    actions: Value,
) -> Value {
    json!({
        "id": id,
        "displayName": name,
        "sequence": sequence,
        "isEnabled": true,
        "hasError": false,
        "isReadOnly": false,
        "conditions": conditions,
        "actions": actions,
    })
}

/// A short rule id as Exchange writes them (`AQAAAJ5dZp8=`).
pub(crate) fn rule_id(world: &mut World) -> String {
    let n: u32 = world.rng.random();
    format!(
        "AQAAA{}=",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(n.to_be_bytes())
    )
}

fn seed_rules(world: &mut World, data: &mut UserData) {
    let newsletters = data
        .folders
        .iter()
        .find(|f| f["displayName"] == "Newsletters")
        .or_else(|| {
            data.folders
                .iter()
                .find(|f| f.get("_wellKnownName").and_then(Value::as_str) == Some("archive"))
        })
        .and_then(|f| f["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let id = rule_id(world);
    data.rules.push(rule_json(
        &id,
        "Move newsletters",
        1,
        json!({"senderContains": ["newsletter", "digest"]}),
        json!({"moveToFolder": newsletters, "stopProcessingRules": true}),
    ));
    let id = rule_id(world);
    data.rules.push(rule_json(
        &id,
        "Flag mail from the CFO",
        2,
        json!({"fromAddresses": [{"emailAddress": {"name": "Patti Fernandez", "address": "patti.fernandez@contoso.com"}}]}),
        json!({"markImportance": "high", "assignCategories": ["Red category"]}),
    ));
    let id = rule_id(world);
    data.rules.push(rule_json(
        &id,
        "Invoices to Finance",
        3,
        json!({"subjectContains": ["invoice"]}),
        json!({"assignCategories": ["Green category"], "markAsRead": false}),
    ));
}

/// A calendar object.
pub(crate) fn calendar_json(
    world: &mut World,
    name: &str,
    default: bool,
    owner: &SandboxUser,
) -> Value {
    let id = world.outlook_id();
    let mut calendar = json!({
        "id": id,
        "name": name,
        "color": if default { "auto" } else { "lightGreen" },
        "hexColor": if default { "" } else { "#87d28e" },
        "isDefaultCalendar": default,
        "changeKey": "",
        "canShare": true,
        "canViewPrivateItems": true,
        "canEdit": true,
        "allowedOnlineMeetingProviders": if owner.personal { json!([]) } else { json!(["teamsForBusiness"]) },
        "defaultOnlineMeetingProvider": if owner.personal { "none" } else { "teamsForBusiness" },
        "isTallyingResponses": true,
        "isRemovable": !default,
        "owner": {"name": owner.display_name, "address": owner.username},
    });
    world.touch(&mut calendar);
    if let Some(map) = calendar.as_object_mut() {
        map.remove("lastModifiedDateTime");
    }
    calendar
}

/// What a seeded or created event is made of.
pub(crate) struct EventSeed<'a> {
    pub subject: &'a str,
    pub body_text: &'a str,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub location: &'a str,
    pub attendees: &'a [(String, String)],
    pub organizer: (&'a str, &'a str),
    pub is_organizer: bool,
    pub calendar_id: &'a str,
}

/// A complete event object (times in UTC).
pub(crate) fn event_json(world: &mut World, seed: EventSeed<'_>) -> Value {
    let id = world.outlook_id();
    let now = format_time(world.anchor - Duration::days(40));
    let uid = format!(
        "040000008200E00074C5B7101A82E008{}",
        world.token(24).to_uppercase().replace(['-', '_'], "0")
    );
    let attendees: Vec<Value> = seed
        .attendees
        .iter()
        .map(|(n, a)| json!({"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}, "emailAddress": {"name": n, "address": a}}))
        .collect();
    let mut event = json!({
        "id": id,
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "categories": [],
        "transactionId": null,
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": uid,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "subject": seed.subject,
        "bodyPreview": preview(seed.body_text),
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": false,
        "isCancelled": false,
        "isOrganizer": seed.is_organizer,
        "responseRequested": true,
        "seriesMasterId": null,
        "showAs": "busy",
        "type": "singleInstance",
        "webLink": format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item"),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": false,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": true,
        "isDraft": false,
        "hideAttendees": false,
        "responseStatus": {"response": if seed.is_organizer { "organizer" } else { "notResponded" }, "time": "0001-01-01T00:00:00Z"},
        "body": {"contentType": "html", "content": html_body(seed.body_text)},
        "start": {"dateTime": graph_local(seed.start), "timeZone": "UTC"},
        "end": {"dateTime": graph_local(seed.end), "timeZone": "UTC"},
        "location": location_json(seed.location),
        "locations": if seed.location.is_empty() { json!([]) } else { json!([location_json(seed.location)]) },
        "recurrence": null,
        "attendees": attendees,
        "organizer": recipient(seed.organizer.0, seed.organizer.1),
        "onlineMeeting": null,
        "_calendarId": seed.calendar_id,
    });
    world.touch(&mut event);
    if let Some(map) = event.as_object_mut() {
        map.insert("lastModifiedDateTime".into(), Value::String(now));
    }
    event
}

/// A location object.
pub(crate) fn location_json(name: &str) -> Value {
    if name.is_empty() {
        json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}})
    } else {
        json!({"displayName": name, "locationType": "default", "uniqueId": name, "uniqueIdType": "private"})
    }
}

/// `2025-01-01T10:00:00.0000000`, the form of `dateTimeTimeZone.dateTime`.
pub(crate) fn graph_local(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn seed_calendar(world: &mut World, data: &mut UserData, size: &TenantSize) {
    let owner = data.user.clone();
    let main = calendar_json(world, "Calendar", true, &owner);
    let main_id = main["id"].as_str().unwrap_or_default().to_string();
    data.calendars.push(main);
    let birthdays = calendar_json(world, "Birthdays", false, &owner);
    data.calendars.push(birthdays);
    let me = (owner.display_name.as_str(), owner.username.as_str());

    // A weekly team meeting on the anchor's weekday, from four weeks back, with no end.
    let start = world.anchor + Duration::hours(15) - Duration::weeks(4);
    let attendees = vec![person(world), person(world)];
    let mut weekly = event_json(
        world,
        EventSeed {
            subject: "Weekly team sync",
            body_text: "Agenda: status, blockers, next steps.",
            start,
            end: start + Duration::minutes(30),
            location: "Conference Room 4",
            attendees: &attendees,
            organizer: me,
            is_organizer: true,
            calendar_id: &main_id,
        },
    );
    let weekday = format!("{:?}", start.weekday()).to_lowercase();
    if let Some(map) = weekly.as_object_mut() {
        map.insert("type".into(), json!("seriesMaster"));
        map.insert(
            "recurrence".into(),
            json!({
                "pattern": {"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": [weekday], "firstDayOfWeek": "sunday", "index": "first"},
                "range": {"type": "noEnd", "startDate": graph_local(start).get(..10).unwrap_or_default(), "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0}
            }),
        );
    }
    data.events.push(weekly);

    // A daily stand-up for ten working occurrences starting yesterday.
    let start = world.anchor + Duration::hours(9) - Duration::days(1);
    let mut daily = event_json(
        world,
        EventSeed {
            subject: "Daily stand-up",
            body_text: "Fifteen minutes, cameras optional.",
            start,
            end: start + Duration::minutes(15),
            location: "",
            attendees: &attendees,
            organizer: (attendees[0].0.as_str(), attendees[0].1.as_str()),
            is_organizer: false,
            calendar_id: &main_id,
        },
    );
    if let Some(map) = daily.as_object_mut() {
        map.insert("type".into(), json!("seriesMaster"));
        map.insert(
            "recurrence".into(),
            json!({
                "pattern": {"type": "daily", "interval": 1, "month": 0, "dayOfMonth": 0, "firstDayOfWeek": "sunday", "index": "first"},
                "range": {"type": "numbered", "startDate": graph_local(start).get(..10).unwrap_or_default(), "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": 10}
            }),
        );
    }
    data.events.push(daily);

    for i in 0..size.events {
        let day_offset = world.rng.random_range(-30..60i64);
        let hour = world.rng.random_range(8..17i64);
        let start = world.anchor + Duration::days(day_offset) + Duration::hours(hour);
        let length = [30, 45, 60, 90][i % 4];
        let topic = pick(world, TOPICS);
        let organizer_is_me = i % 3 == 0;
        let other = person(world);
        let attendees = vec![other.clone()];
        let organizer = if organizer_is_me {
            me
        } else {
            (other.0.as_str(), other.1.as_str())
        };
        let location = pick(
            world,
            &[
                "Conference Room 1",
                "Microsoft Teams Meeting",
                "Cafeteria",
                "Building 3 / 201",
                "",
            ],
        );
        let event = event_json(
            world,
            EventSeed {
                subject: topic,
                body_text: &format!("Let's discuss {}.", topic.to_lowercase()),
                start,
                end: start + Duration::minutes(length),
                location,
                attendees: &attendees,
                organizer,
                is_organizer: organizer_is_me,
                calendar_id: &main_id,
            },
        );
        data.events.push(event);
    }
}

/// A contact object.
pub(crate) fn contact_json(
    world: &mut World,
    given: &str,
    surname: &str,
    company: &str,
    folder: &str,
) -> Value {
    let id = world.outlook_id();
    let address = format!(
        "{}.{}@{}.com",
        given.to_lowercase(),
        surname.to_lowercase(),
        company.to_lowercase().replace(' ', "")
    );
    let phone = format!("+1 425 555 {:04}", world.rng.random_range(0..10_000));
    let when = format_time(world.anchor - Duration::days(90));
    let mut contact = json!({
        "id": id,
        "createdDateTime": when,
        "lastModifiedDateTime": when,
        "categories": [],
        "parentFolderId": folder,
        "birthday": null,
        "fileAs": format!("{surname}, {given}"),
        "displayName": format!("{given} {surname}"),
        "givenName": given,
        "initials": format!("{}.{}.", given.chars().next().unwrap_or('X'), surname.chars().next().unwrap_or('X')),
        "middleName": null,
        "nickName": null,
        "surname": surname,
        "title": null,
        "yomiGivenName": null,
        "yomiSurname": null,
        "yomiCompanyName": null,
        "generation": null,
        "imAddresses": [],
        "jobTitle": pick(world, &["Account Manager", "Engineer", "Designer", "Director", "Consultant"]),
        "companyName": company,
        "department": null,
        "officeLocation": null,
        "profession": null,
        "businessHomePage": null,
        "assistantName": null,
        "manager": null,
        "homePhones": [],
        "mobilePhone": phone,
        "businessPhones": [phone.replace("555", "706")],
        "spouseName": null,
        "personalNotes": "",
        "children": [],
        "emailAddresses": [{"name": format!("{given} {surname}"), "address": address}],
        "homeAddress": {},
        "businessAddress": {"street": "1 Main St", "city": "Redmond", "state": "WA", "countryOrRegion": "United States", "postalCode": "98052"},
        "otherAddress": {},
    });
    world.touch(&mut contact);
    if let Some(map) = contact.as_object_mut() {
        map.insert("lastModifiedDateTime".into(), Value::String(when));
    }
    contact
}

fn seed_contacts(world: &mut World, data: &mut UserData, size: &TenantSize) {
    let root = world.outlook_id();
    data.contact_folders.push(
        json!({"id": root, "displayName": "Contacts", "parentFolderId": "", "_default": true}),
    );
    let suppliers = world.outlook_id();
    data.contact_folders
        .push(json!({"id": suppliers, "displayName": "Suppliers", "parentFolderId": root}));
    for i in 0..size.contacts {
        let given = FIRST_NAMES[i % FIRST_NAMES.len()];
        let surname = LAST_NAMES[(i * 7 + i / FIRST_NAMES.len()) % LAST_NAMES.len()];
        let company = pick(world, COMPANIES);
        let folder = if i % 10 == 9 { &suppliers } else { &root };
        let contact = contact_json(world, given, surname, company, folder);
        data.contacts.push(contact);
    }
}

/// A drive item object (folder when `mime` is `None`).
pub(crate) fn drive_item_json(
    world: &mut World,
    owner: &SandboxUser,
    name: &str,
    parent: &str,
    mime: Option<&str>,
    when: OffsetDateTime,
) -> Value {
    let id = world.drive_id();
    let when = format_time(when);
    let by = json!({"user": {"displayName": owner.display_name, "id": owner.oid, "email": owner.username}});
    let mut item = json!({
        "id": id,
        "name": name,
        "createdDateTime": when,
        "lastModifiedDateTime": when,
        "eTag": format!("\"{{{id}}},1\""),
        "cTag": format!("\"c:{{{id}}},1\""),
        "createdBy": by,
        "lastModifiedBy": by,
        "fileSystemInfo": {"createdDateTime": when, "lastModifiedDateTime": when},
        "_parent": parent,
    });
    if let Some(map) = item.as_object_mut() {
        match mime {
            None => {
                map.insert("folder".into(), json!({"childCount": 0}));
            }
            Some(mime) => {
                map.insert(
                    "file".into(),
                    json!({"mimeType": mime, "hashes": {"quickXorHash": world.token(20)}}),
                );
            }
        }
    }
    item
}

fn seed_drive(world: &mut World, data: &mut UserData, size: &TenantSize) {
    let owner = data.user.clone();
    data.drive.id = if owner.personal {
        format!("{:016x}", world.rng.random::<u64>())
    } else {
        format!("b!{}", world.token(48))
    };
    let root = drive_item_json(
        world,
        &owner,
        "root",
        "",
        None,
        world.anchor - Duration::days(400),
    );
    let root_id = root["id"].as_str().unwrap_or_default().to_string();
    data.drive.root_id = root_id.clone();
    data.drive.items.push(root);

    let mut folders: Vec<(String, usize)> = vec![(root_id.clone(), 0)];
    let mut sibling_names: HashMap<String, usize> = HashMap::new();
    for i in 0..size.drive_folders {
        let (parent, depth) = if i < size.drive_depth {
            folders
                .last()
                .cloned()
                .unwrap_or_else(|| (root_id.clone(), 0))
        } else {
            let candidates: Vec<&(String, usize)> = folders
                .iter()
                .filter(|(_, d)| *d < size.drive_depth)
                .collect();
            candidates[world.rng.random_range(0..candidates.len())].clone()
        };
        let base = if i == 1 {
            "Budget 2025 #final"
        } else {
            DRIVE_FOLDERS[i % DRIVE_FOLDERS.len()]
        };
        let n = sibling_names.entry(format!("{parent}/{base}")).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            base.to_string()
        } else {
            format!("{base} ({n})")
        };
        let when = world.anchor - Duration::days(world.rng.random_range(1..300));
        let item = drive_item_json(world, &owner, &name, &parent, None, when);
        let id = item["id"].as_str().unwrap_or_default().to_string();
        data.drive.items.push(item);
        folders.push((id, depth + 1));
    }
    for (index, (folder, _)) in folders.iter().enumerate() {
        for f in 0..size.files_per_drive_folder {
            let (ext, mime) = FILE_KINDS[(index + f) % FILE_KINDS.len()];
            let stem = pick(
                world,
                &[
                    "Plan", "Notes", "Summary", "Forecast", "Minutes", "Budget", "Overview",
                ],
            );
            let name = if index == 2 && f == 0 {
                format!("50% plan & notes.{ext}")
            } else {
                format!("{stem} {}.{ext}", index * 10 + f)
            };
            let when = world.anchor - Duration::days(world.rng.random_range(1..200));
            let item = drive_item_json(world, &owner, &name, folder, Some(mime), when);
            let id = item["id"].as_str().unwrap_or_default().to_string();
            let content = format!(
                "{name}\nGenerated content for {} in the sandbox tenant.\n",
                owner.display_name
            )
            .repeat(1 + (index + f) % 5);
            data.drive.content.insert(id, content.into_bytes());
            data.drive.items.push(item);
        }
    }
}
