//! The mail write tools, folder tools and message-rule tools, driven through
//! the real binary against the Graph sandbox: each one changes the mailbox
//! as it says, refuses bad input before any Graph request, and invalidates
//! exactly the cached reads it made stale.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{World, ok};
use m365_mcp::demo::{Client, call};
use serde_json::{Value, json};

/// Signs in one sandbox user, so `account_id` may be omitted.
async fn sign_in(client: &Client, world: &World, index: usize) {
    let username = world.username(index);
    let (started, err, _) = call(client, "account_authenticate", json!({}))
        .await
        .unwrap();
    assert!(!err, "{started}");
    world
        .sandbox
        .approve_device_code(started["user_code"].as_str().unwrap(), &username)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, err, _) = call(
            client,
            "account_complete_auth",
            json!({"flow_cache": started["_flow_cache"]}),
        )
        .await
        .unwrap();
        assert!(!err, "{done}");
        if done["status"] == "success" {
            return;
        }
        assert!(Instant::now() < deadline, "sign-in did not complete");
        let wait = done["retry_after_seconds"]
            .as_u64()
            .unwrap_or(1)
            .clamp(1, 5);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
}

/// A sandbox, a server with `roots` as its allowed directory (if any), and
/// user 0 signed in.
async fn start(roots: Option<&Path>) -> (World, Client) {
    let mut world = World::manual().await;
    if let Some(roots) = roots {
        world.with_env("MCP_FILE_ALLOWED_ROOTS", roots.to_str().unwrap());
    }
    let client = world.client().await;
    sign_in(&client, &world, 0).await;
    (world, client)
}

fn state(world: &World, index: usize) -> Value {
    world.sandbox.user_state(&world.username(index)).unwrap()
}

fn folder_id(state: &Value, well_known: &str) -> String {
    state["mailFolders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["wellKnownName"] == well_known)
        .unwrap_or_else(|| panic!("no {well_known} folder"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn messages_in<'a>(state: &'a Value, folder: &str) -> Vec<&'a Value> {
    state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["parentFolderId"] == folder)
        .collect()
}

fn message<'a>(state: &'a Value, id: &str) -> Option<&'a Value> {
    state["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
}

fn error_text(value: &Value) -> String {
    value["error"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Calls a tool that must fail with `expected` in its message, without any
/// Graph request.
async fn refused(world: &World, client: &Client, tool: &str, args: Value, expected: &str) {
    let before = world.sandbox.counts().graph;
    let (value, err, _) = call(client, tool, args.clone()).await.unwrap();
    assert!(err, "{tool} {args} should fail: {value}");
    let text = error_text(&value);
    assert!(
        text.contains(expected),
        "{tool} {args}: '{text}' lacks '{expected}'"
    );
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "{tool} {args}: bad input must not reach Graph"
    );
}

/// Graph requests other than GET since `from` in the request log.
fn writes_since(world: &World, from: usize) -> Vec<String> {
    world.sandbox.request_log()[from..]
        .iter()
        .filter(|e| e.method != "GET")
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_tools_change_the_mailbox_and_refuse_bad_input() {
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().canonicalize().unwrap();
    let (world, client) = start(Some(&root)).await;
    let megan = world.username(1);
    let alex = world.username(2);
    let s0 = state(&world, 0);
    let inbox = folder_id(&s0, "inbox");
    let drafts = folder_id(&s0, "drafts");
    let sent = folder_id(&s0, "sentitems");

    // Files to attach: one small, one above the 3 MiB inline limit.
    let small = root.join("notes.txt");
    std::fs::write(&small, b"small attachment").unwrap();
    let large = root.join("big.bin");
    std::fs::write(&large, vec![7u8; 3 * 1024 * 1024 + 4096]).unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();

    // --- email_create_draft
    let log_start = world.sandbox.request_log().len();
    let draft = ok(
        &client,
        "email_create_draft",
        json!({"to": format!("{megan}, Alex <{alex}>"), "cc": [megan.to_uppercase()],
               "subject": "Quarterly numbers", "body": "Draft text",
               "attachments": [small.to_str().unwrap(), large.to_str().unwrap()]}),
    )
    .await;
    let draft_id = draft["id"].as_str().unwrap();
    let s = state(&world, 0);
    let stored = message(&s, draft_id).expect("draft stored");
    assert_eq!(stored["parentFolderId"], drafts.as_str());
    assert_eq!(stored["subject"], "Quarterly numbers");
    assert_eq!(stored["toRecipients"].as_array().unwrap().len(), 2);
    assert_eq!(
        stored["ccRecipients"].as_array().map_or(0, Vec::len),
        0,
        "a Cc already in To is dropped"
    );
    assert!(
        writes_since(&world, log_start)
            .iter()
            .any(|w| w.contains("/attachments/createUploadSession")),
        "the large file goes through an upload session"
    );
    let got = ok(&client, "email_get", json!({"email_id": draft_id})).await;
    let mut names: Vec<&str> = got["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["big.bin", "notes.txt"]);
    refused(
        &world,
        &client,
        "email_create_draft",
        json!({"to": "not-an-address", "subject": "s", "body": "b"}),
        "Invalid to 'not-an-address'",
    )
    .await;
    refused(
        &world,
        &client,
        "email_create_draft",
        json!({"to": megan, "subject": "s", "body": "b", "attachments": outside.path().to_str().unwrap()}),
        "outside the allowed directories",
    )
    .await;
    let eleven: Vec<&str> = (0..11).map(|_| small.to_str().unwrap()).collect();
    refused(
        &world,
        &client,
        "email_create_draft",
        json!({"to": megan, "subject": "s", "body": "b", "attachments": eleven}),
        "at most 10 files",
    )
    .await;
    // A symlink inside the root that leads outside it is refused too.
    let link = root.join("escape.txt");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    refused(
        &world,
        &client,
        "email_create_draft",
        json!({"to": megan, "subject": "s", "body": "b", "attachments": link.to_str().unwrap()}),
        "outside the allowed directories",
    )
    .await;

    // --- email_send (inline, then with a large attachment)
    refused(
        &world,
        &client,
        "email_send",
        json!({"to": megan, "subject": "Hello Megan", "body": "Hi"}),
        "requires confirm=true",
    )
    .await;
    refused(
        &world,
        &client,
        "email_send",
        json!({"to": "", "subject": "x", "body": "y", "confirm": true}),
        "at least one recipient",
    )
    .await;
    let sent_answer = ok(
        &client,
        "email_send",
        json!({"to": [megan], "subject": "Hello Megan", "body": "Hi", "confirm": true}),
    )
    .await;
    assert_eq!(sent_answer["status"], "sent");
    let megan_state = state(&world, 1);
    assert!(
        megan_state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == "Hello Megan"),
        "delivered to Megan"
    );
    ok(
        &client,
        "email_send",
        json!({"to": megan, "subject": "Big file", "body": "Attached", "attachments": large.to_str().unwrap(), "confirm": true}),
    )
    .await;
    let s = state(&world, 0);
    let in_sent: Vec<&Value> = messages_in(&s, &sent);
    assert!(in_sent.iter().any(|m| m["subject"] == "Hello Megan"));
    let big = in_sent
        .iter()
        .find(|m| m["subject"] == "Big file")
        .expect("large send in Sent Items");
    assert_eq!(big["hasAttachments"], true);
    assert!(
        !messages_in(&s, &drafts)
            .iter()
            .any(|m| m["subject"] == "Big file"),
        "the draft used for sending is gone"
    );

    // Pick inbox messages to work on.
    let mut inbox_ids: Vec<String> = messages_in(&s, &inbox)
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    inbox_ids.sort();
    let [a, b, c, d, e, f, g] = [0, 1, 2, 3, 4, 5, 6].map(|i| inbox_ids[i].clone());

    // --- email_update
    ok(
        &client,
        "email_update",
        json!({"email_id": a, "updates": {"importance": "high", "categories": ["Blue category"], "isRead": false}}),
    )
    .await;
    let s = state(&world, 0);
    let m = message(&s, &a).unwrap();
    assert_eq!(m["importance"], "high");
    assert_eq!(m["categories"], json!(["Blue category"]));
    assert_eq!(m["isRead"], false);
    refused(
        &world,
        &client,
        "email_update",
        json!({"email_id": a, "updates": {"subject": "x"}}),
        "Expected: one or more of isRead, categories, importance, flag, inferenceClassification",
    )
    .await;
    refused(
        &world,
        &client,
        "email_update",
        json!({"email_id": a, "updates": {"importance": "urgent"}}),
        "low, normal or high",
    )
    .await;

    // --- email_mark_read
    ok(&client, "email_mark_read", json!({"email_id": a})).await;
    assert_eq!(message(&state(&world, 0), &a).unwrap()["isRead"], true);
    ok(
        &client,
        "email_mark_read",
        json!({"email_id": a, "is_read": false}),
    )
    .await;
    assert_eq!(message(&state(&world, 0), &a).unwrap()["isRead"], false);
    refused(
        &world,
        &client,
        "email_mark_read",
        json!({"email_id": "../../me"}),
        "Invalid email_id",
    )
    .await;

    // --- email_flag
    ok(
        &client,
        "email_flag",
        json!({"email_id": b, "flag_status": "complete"}),
    )
    .await;
    assert_eq!(
        message(&state(&world, 0), &b).unwrap()["flag"]["flagStatus"],
        "complete"
    );
    refused(
        &world,
        &client,
        "email_flag",
        json!({"email_id": b, "flag_status": "urgent"}),
        "Invalid flag_status 'urgent'",
    )
    .await;

    // --- email_add_category keeps what is there
    ok(
        &client,
        "email_add_category",
        json!({"email_id": a, "categories": "Red category, Blue category"}),
    )
    .await;
    assert_eq!(
        message(&state(&world, 0), &a).unwrap()["categories"],
        json!(["Blue category", "Red category"])
    );
    refused(
        &world,
        &client,
        "email_add_category",
        json!({"email_id": a, "categories": []}),
        "at least one category",
    )
    .await;

    // --- email_move (well-known name and folder id) and email_archive
    let moved = ok(
        &client,
        "email_move",
        json!({"email_id": c, "destination_folder": "junk"}),
    )
    .await;
    let new_c = moved["new_id"].as_str().unwrap();
    let s = state(&world, 0);
    assert!(message(&s, &c).is_none(), "the old id is gone");
    assert_eq!(
        message(&s, new_c).unwrap()["parentFolderId"],
        folder_id(&s, "junkemail")
    );
    let user_folder = s["mailFolders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["wellKnownName"].is_null() && f["parentFolderId"] == inbox.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let moved = ok(
        &client,
        "email_move",
        json!({"email_id": new_c, "destination_folder": user_folder}),
    )
    .await;
    assert_eq!(
        message(&state(&world, 0), moved["new_id"].as_str().unwrap()).unwrap()["parentFolderId"],
        user_folder.as_str()
    );
    refused(
        &world,
        &client,
        "email_move",
        json!({"email_id": d, "destination_folder": "a/../b"}),
        "Invalid destination_folder",
    )
    .await;
    let archived = ok(&client, "email_archive", json!({"email_id": d})).await;
    assert_eq!(archived["status"], "archived");
    let s = state(&world, 0);
    assert_eq!(
        message(&s, archived["new_id"].as_str().unwrap()).unwrap()["parentFolderId"],
        folder_id(&s, "archive")
    );
    refused(
        &world,
        &client,
        "email_archive",
        json!({"email_id": " "}),
        "Invalid email_id",
    )
    .await;

    // --- email_reply / email_reply_all / email_forward
    let subject_of = |id: &str| {
        message(&state(&world, 0), id).unwrap()["subject"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let e_subject = subject_of(&e);
    refused(
        &world,
        &client,
        "email_reply",
        json!({"email_id": e, "body": "Thanks"}),
        "requires confirm=true",
    )
    .await;
    refused(
        &world,
        &client,
        "email_reply",
        json!({"email_id": e, "body": "   ", "confirm": true}),
        "Invalid body",
    )
    .await;
    ok(
        &client,
        "email_reply",
        json!({"email_id": e, "body": "Thanks", "confirm": true}),
    )
    .await;
    let count_sent = |subject: &str| {
        messages_in(&state(&world, 0), &sent)
            .iter()
            .filter(|m| m["subject"] == subject)
            .count()
    };
    assert_eq!(count_sent(&format!("RE: {e_subject}")), 1);
    refused(
        &world,
        &client,
        "email_reply_all",
        json!({"email_id": e, "body": "All"}),
        "requires confirm=true",
    )
    .await;
    ok(
        &client,
        "email_reply_all",
        json!({"email_id": e, "body": "All of you", "confirm": true}),
    )
    .await;
    assert_eq!(count_sent(&format!("RE: {e_subject}")), 2);
    let f_subject = subject_of(&f);
    refused(
        &world,
        &client,
        "email_forward",
        json!({"email_id": f, "to": megan}),
        "requires confirm=true",
    )
    .await;
    refused(
        &world,
        &client,
        "email_forward",
        json!({"email_id": f, "to": "megan", "confirm": true}),
        "Invalid to 'megan'",
    )
    .await;
    ok(
        &client,
        "email_forward",
        json!({"email_id": f, "to": megan, "cc": alex, "body": "FYI", "confirm": true}),
    )
    .await;
    let s = state(&world, 0);
    let forwarded = messages_in(&s, &sent)
        .into_iter()
        .find(|m| m["subject"] == format!("FW: {f_subject}"))
        .expect("forward in Sent Items");
    assert_eq!(
        forwarded["ccRecipients"][0]["emailAddress"]["address"],
        alex.as_str()
    );
    assert!(
        state(&world, 1)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == format!("FW: {f_subject}")),
        "Megan received the forward"
    );

    // --- email_delete
    refused(
        &world,
        &client,
        "email_delete",
        json!({"email_id": g}),
        "requires confirm=true",
    )
    .await;
    ok(
        &client,
        "email_delete",
        json!({"email_id": g, "confirm": true}),
    )
    .await;
    assert!(message(&state(&world, 0), &g).is_none());

    // --- email_get_attachment
    let s = state(&world, 0);
    let mut file_attachment = None;
    let mut item_attachment = None;
    for m in s["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["hasAttachments"] == true)
    {
        let id = m["id"].as_str().unwrap();
        let got = ok(&client, "email_get", json!({"email_id": id})).await;
        for a in got["attachments"].as_array().into_iter().flatten() {
            let pair = (id.to_string(), a.clone());
            match a["@odata.type"].as_str() {
                Some("#microsoft.graph.fileAttachment") if file_attachment.is_none() => {
                    file_attachment = Some(pair)
                }
                Some("#microsoft.graph.itemAttachment") if item_attachment.is_none() => {
                    item_attachment = Some(pair)
                }
                _ => {}
            }
        }
        if file_attachment.is_some() && item_attachment.is_some() {
            break;
        }
    }
    let (message_id, attachment) = file_attachment.expect("a file attachment in the mailbox");
    let saved = ok(
        &client,
        "email_get_attachment",
        json!({"email_id": message_id, "attachment_id": attachment["id"], "save_path": root.to_str().unwrap()}),
    )
    .await;
    let saved_to = saved["saved_to"].as_str().unwrap();
    assert_eq!(
        Path::new(saved_to),
        root.join(attachment["name"].as_str().unwrap())
    );
    let content = std::fs::read_to_string(saved_to).unwrap();
    assert!(content.contains("generated by the sandbox"), "{content}");
    refused(
        &world,
        &client,
        "email_get_attachment",
        json!({"email_id": message_id, "attachment_id": attachment["id"], "save_path": saved_to}),
        "already exists",
    )
    .await;
    assert_eq!(std::fs::read_to_string(saved_to).unwrap(), content);
    refused(
        &world,
        &client,
        "email_get_attachment",
        json!({"email_id": message_id, "attachment_id": attachment["id"], "save_path": "/etc/m365-test.txt"}),
        "outside the allowed directories",
    )
    .await;
    let linked_dir = root.join("elsewhere");
    std::os::unix::fs::symlink(std::env::temp_dir(), &linked_dir).unwrap();
    refused(
        &world,
        &client,
        "email_get_attachment",
        json!({"email_id": message_id, "attachment_id": attachment["id"],
               "save_path": linked_dir.join("x.txt").to_str().unwrap()}),
        "outside the allowed directories",
    )
    .await;
    let (item_message, item) = match item_attachment {
        Some(found) => found,
        None => {
            // Attach an Outlook item to the draft behind the server's back.
            let added = world
                .graph_as(&world.username(0))
                .post(
                    &world.sandbox.users()[0].account_id(),
                    &format!("/me/messages/{}/attachments", m365_graph::encode_segment(draft_id)),
                    Some(&json!({"@odata.type": "#microsoft.graph.itemAttachment", "name": "Meeting"})),
                )
                .await
                .unwrap();
            (draft_id.to_string(), added)
        }
    };
    let (value, err, _) = call(
        &client,
        "email_get_attachment",
        json!({"email_id": item_message, "attachment_id": item["id"], "save_path": root.join("item.eml").to_str().unwrap()}),
    )
    .await
    .unwrap();
    assert!(err);
    assert!(
        error_text(&value).contains("no file content to save"),
        "{value}"
    );
    assert!(!root.join("item.eml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_tools_change_the_hierarchy_and_use_batch() {
    let (world, client) = start(None).await;
    let s0 = state(&world, 0);
    let root_id = folder_id(&s0, "msgfolderroot");
    let inbox = folder_id(&s0, "inbox");
    let archive = folder_id(&s0, "archive");
    let folders = s0["mailFolders"].as_array().unwrap().clone();

    // Local files are refused, saying how to allow them, when no root is set.
    refused(
        &world,
        &client,
        "email_create_draft",
        json!({"to": world.username(1), "subject": "s", "body": "b", "attachments": "/tmp/x.txt"}),
        "MCP_FILE_ALLOWED_ROOTS",
    )
    .await;

    // --- emailfolders_get_tree matches the sandbox's hierarchy.
    let tree = ok(&client, "emailfolders_get_tree", json!({})).await;
    fn count(nodes: &Value) -> usize {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .map(|n| 1 + count(&n["children"]))
            .sum()
    }
    let visible = folders
        .iter()
        .filter(|f| f["isHidden"] != true && f["id"] != root_id.as_str())
        .count();
    assert_eq!(count(&tree["folders"]), visible, "{tree}");
    assert_eq!(tree["total_folders"], visible);
    let top = tree["folders"].as_array().unwrap();
    let inbox_node = top.iter().find(|n| n["id"] == inbox.as_str()).unwrap();
    let inbox_children = folders
        .iter()
        .filter(|f| f["parentFolderId"] == inbox.as_str())
        .count();
    assert_eq!(
        inbox_node["children"].as_array().unwrap().len(),
        inbox_children
    );
    let shallow = ok(&client, "emailfolders_get_tree", json!({"max_depth": 1})).await;
    assert!(
        shallow["folders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["children"] == json!([]))
    );
    let below = ok(
        &client,
        "emailfolders_get_tree",
        json!({"parent_folder_id": "inbox"}),
    )
    .await;
    assert_eq!(below["folders"].as_array().unwrap().len(), inbox_children);
    let hidden = ok(
        &client,
        "emailfolders_get_tree",
        json!({"include_hidden": true, "use_cache": false}),
    )
    .await;
    assert!(hidden["total_folders"].as_u64().unwrap() > visible as u64);
    refused(
        &world,
        &client,
        "emailfolders_get_tree",
        json!({"max_depth": 0}),
        "Invalid max_depth '0'",
    )
    .await;
    let (missing, err, _) = call(
        &client,
        "emailfolders_get_tree",
        json!({"parent_folder_id": "AAMkNoSuchFolder"}),
    )
    .await
    .unwrap();
    assert!(err, "a failed listing fails the tree: {missing}");
    assert_eq!(missing["error"]["status"], 404);
    let before = world.sandbox.counts().graph;
    let (_, err, _) = call(
        &client,
        "emailfolders_get_tree",
        json!({"parent_folder_id": "AAMkNoSuchFolder"}),
    )
    .await
    .unwrap();
    assert!(err);
    assert!(
        world.sandbox.counts().graph > before,
        "a failed tree is never cached"
    );

    // --- emailfolders_create
    let created = ok(
        &client,
        "emailfolders_create",
        json!({"display_name": " Client work ", "parent_folder_id": "inbox"}),
    )
    .await;
    let new_id = created["id"].as_str().unwrap().to_string();
    let find = |id: &str| {
        state(&world, 0)["mailFolders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .cloned()
    };
    let stored = find(&new_id).expect("folder created");
    assert_eq!(stored["displayName"], "Client work");
    assert_eq!(stored["parentFolderId"], inbox.as_str());
    refused(
        &world,
        &client,
        "emailfolders_create",
        json!({"display_name": "   "}),
        "Invalid display_name",
    )
    .await;
    let top_level = ok(
        &client,
        "emailfolders_create",
        json!({"display_name": "Top level"}),
    )
    .await;
    assert_eq!(
        find(top_level["id"].as_str().unwrap()).unwrap()["parentFolderId"],
        root_id.as_str()
    );

    // --- emailfolders_rename
    ok(
        &client,
        "emailfolders_rename",
        json!({"folder_id": new_id, "new_display_name": "Client work 2025"}),
    )
    .await;
    assert_eq!(find(&new_id).unwrap()["displayName"], "Client work 2025");
    refused(
        &world,
        &client,
        "emailfolders_rename",
        json!({"folder_id": new_id, "new_display_name": ""}),
        "Invalid new_display_name",
    )
    .await;

    // --- emailfolders_move (Graph's move action)
    let log_start = world.sandbox.request_log().len();
    ok(
        &client,
        "emailfolders_move",
        json!({"folder_id": new_id, "destination_folder_id": "archive"}),
    )
    .await;
    assert_eq!(find(&new_id).unwrap()["parentFolderId"], archive.as_str());
    assert!(writes_since(&world, log_start)[0].starts_with("POST /v1.0/me/mailFolders/"));
    assert!(writes_since(&world, log_start)[0].contains("/move"));
    refused(
        &world,
        &client,
        "emailfolders_move",
        json!({"folder_id": new_id, "destination_folder_id": "../inbox"}),
        "Invalid destination_folder_id",
    )
    .await;

    // --- emailfolders_mark_all_as_read: every unread inbox message, in $batch calls of 20.
    // Mark the whole inbox unread behind the server's back first.
    let requests: Vec<m365_graph::BatchRequest> = messages_in(&state(&world, 0), &inbox)
        .iter()
        .map(|m| {
            m365_graph::BatchRequest::patch(
                format!(
                    "/me/messages/{}",
                    m365_graph::encode_segment(m["id"].as_str().unwrap())
                ),
                json!({"isRead": false}),
            )
        })
        .collect();
    world
        .graph_as(&world.username(0))
        .batch(&world.sandbox.users()[0].account_id(), requests)
        .await
        .unwrap();
    let unread = messages_in(&state(&world, 0), &inbox)
        .iter()
        .filter(|m| m["isRead"] == false)
        .count();
    assert!(unread > 20, "the seed has enough unread mail to batch");
    let log_start = world.sandbox.request_log().len();
    let marked = ok(
        &client,
        "emailfolders_mark_all_as_read",
        json!({"folder_id": "inbox"}),
    )
    .await;
    assert_eq!(marked["messages_marked_read"], unread);
    assert_eq!(marked["failed"], json!([]));
    assert_eq!(marked["folder_id"], inbox.as_str());
    assert!(
        messages_in(&state(&world, 0), &inbox)
            .iter()
            .all(|m| m["isRead"] == true)
    );
    let batches: Vec<usize> = world.sandbox.request_log()[log_start..]
        .iter()
        .filter_map(|e| e.batch_size)
        .collect();
    assert_eq!(batches.len(), unread.div_ceil(20), "{batches:?}");
    assert!(batches.iter().all(|n| *n <= 20));
    refused(
        &world,
        &client,
        "emailfolders_mark_all_as_read",
        json!({"folder_id": "a/b"}),
        "Invalid folder",
    )
    .await;

    // --- emailfolders_empty
    let junk = folder_id(&state(&world, 0), "junkemail");
    let to_junk: Vec<String> = messages_in(&state(&world, 0), &inbox)
        .iter()
        .take(3)
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for id in to_junk {
        ok(
            &client,
            "email_move",
            json!({"email_id": id, "destination_folder": "junk"}),
        )
        .await;
    }
    let in_junk = messages_in(&state(&world, 0), &junk).len();
    assert!(in_junk > 0);
    refused(
        &world,
        &client,
        "emailfolders_empty",
        json!({"folder_id": "junk"}),
        "requires confirm=true",
    )
    .await;
    let emptied = ok(
        &client,
        "emailfolders_empty",
        json!({"folder_id": "junk", "confirm": true}),
    )
    .await;
    assert_eq!(emptied["messages_deleted"], in_junk);
    assert_eq!(emptied["status"], "completed");
    assert!(messages_in(&state(&world, 0), &junk).is_empty());

    // --- emailfolders_delete
    refused(
        &world,
        &client,
        "emailfolders_delete",
        json!({"folder_id": new_id}),
        "requires confirm=true",
    )
    .await;
    let deleted = ok(
        &client,
        "emailfolders_delete",
        json!({"folder_id": new_id, "confirm": true}),
    )
    .await;
    assert_eq!(deleted["status"], "deleted");
    assert!(find(&new_id).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_tools_validate_against_graph_and_keep_sequences_dense() {
    let (world, client) = start(None).await;
    let sequences = || -> Vec<(String, i64)> {
        let mut rules: Vec<(String, i64)> = state(&world, 0)["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["displayName"].as_str().unwrap().to_string(),
                    r["sequence"].as_i64().unwrap(),
                )
            })
            .collect();
        rules.sort_by_key(|r| r.1);
        rules
    };
    let names = |list: &[(String, i64)]| list.iter().map(|r| r.0.clone()).collect::<Vec<_>>();

    // --- emailrules_list (cached) and emailrules_get
    let listed = ok(&client, "emailrules_list", json!({})).await;
    assert_eq!(listed["count"], 3);
    assert_eq!(listed["_cache"]["status"], "miss");
    let first = listed["value"][0].clone();
    assert_eq!(first["sequence"], 1);
    let again = ok(&client, "emailrules_list", json!({})).await;
    assert_eq!(again["_cache"]["status"], "fresh");
    let got = ok(&client, "emailrules_get", json!({"rule_id": first["id"]})).await;
    assert_eq!(got["displayName"], first["displayName"]);
    refused(
        &world,
        &client,
        "emailrules_get",
        json!({"rule_id": "../inbox"}),
        "Invalid rule_id",
    )
    .await;

    // --- emailrules_create: names checked against Graph's types; folder names resolved.
    let created = ok(
        &client,
        "emailrules_create",
        json!({"display_name": "Boss mail", "sequence": 4,
               "conditions": {"fromAddresses": ["Boss@Contoso.com"], "sentToMe": true},
               "exceptions": {"subjectContains": ["newsletter"]},
               "actions": {"moveToFolder": "archive", "markImportance": "high", "stopProcessingRules": true}}),
    )
    .await;
    let rule_id = created["id"].as_str().unwrap().to_string();
    let s = state(&world, 0);
    let stored = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rule_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        stored["actions"]["moveToFolder"],
        folder_id(&s, "archive"),
        "a well-known name becomes the folder id Graph stores"
    );
    assert_eq!(
        stored["conditions"]["fromAddresses"][0]["emailAddress"]["address"],
        "boss@contoso.com"
    );
    let relisted = ok(&client, "emailrules_list", json!({})).await;
    assert_eq!(
        relisted["_cache"]["status"], "miss",
        "a rule write invalidates the list"
    );
    assert_eq!(relisted["count"], 4);
    refused(
        &world,
        &client,
        "emailrules_create",
        json!({"display_name": "x", "conditions": {"fromAddress": ["a@b.com"]}, "actions": {"delete": true}}),
        "is not a property of Graph's messageRulePredicates. Expected: one of bodyContains",
    )
    .await;
    refused(
        &world,
        &client,
        "emailrules_create",
        json!({"display_name": "x", "conditions": {}, "actions": {"moveTo": "inbox"}}),
        "Invalid actions 'moveTo'",
    )
    .await;
    refused(
        &world,
        &client,
        "emailrules_create",
        json!({"display_name": "x", "conditions": {"messageActionFlag": "flagged"}, "actions": {"markAsRead": true}}),
        "followUp",
    )
    .await;
    refused(
        &world,
        &client,
        "emailrules_create",
        json!({"display_name": "x", "conditions": {}, "actions": {"markAsRead": true}, "sequence": 0}),
        "Invalid sequence '0'",
    )
    .await;

    // --- emailrules_update
    ok(
        &client,
        "emailrules_update",
        json!({"rule_id": rule_id, "is_enabled": false, "display_name": "Boss mail (off)"}),
    )
    .await;
    let s = state(&world, 0);
    let stored = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rule_id.as_str())
        .unwrap();
    assert_eq!(stored["isEnabled"], false);
    assert_eq!(stored["displayName"], "Boss mail (off)");
    refused(
        &world,
        &client,
        "emailrules_update",
        json!({"rule_id": rule_id}),
        "nothing to change",
    )
    .await;
    refused(
        &world,
        &client,
        "emailrules_update",
        json!({"rule_id": rule_id, "actions": {"markImportance": "urgent"}}),
        "low, normal, high",
    )
    .await;

    // --- moves keep 1..n and swap neighbours
    let start_order = names(&sequences());
    assert_eq!(start_order.len(), 4);
    ok(&client, "emailrules_move_top", json!({"rule_id": rule_id})).await;
    let after = sequences();
    assert_eq!(after.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(after[0].0, "Boss mail (off)");
    assert_eq!(names(&after[1..]), start_order[..3]);
    ok(&client, "emailrules_move_down", json!({"rule_id": rule_id})).await;
    let after = sequences();
    assert_eq!(after[1].0, "Boss mail (off)");
    assert_eq!(after[0].0, start_order[0]);
    ok(&client, "emailrules_move_up", json!({"rule_id": rule_id})).await;
    assert_eq!(sequences()[0].0, "Boss mail (off)");
    ok(
        &client,
        "emailrules_move_bottom",
        json!({"rule_id": rule_id}),
    )
    .await;
    let after = sequences();
    assert_eq!(after.iter().map(|r| r.1).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(after[3].0, "Boss mail (off)");
    let log_start = world.sandbox.request_log().len();
    let (value, err, _) = call(&client, "emailrules_move_down", json!({"rule_id": rule_id}))
        .await
        .unwrap();
    assert!(err);
    assert!(error_text(&value).contains("already runs last"), "{value}");
    assert!(writes_since(&world, log_start).is_empty());
    refused(
        &world,
        &client,
        "emailrules_move_up",
        json!({"rule_id": ".."}),
        "Invalid rule_id",
    )
    .await;

    // --- emailrules_delete
    refused(
        &world,
        &client,
        "emailrules_delete",
        json!({"rule_id": rule_id}),
        "requires confirm=true",
    )
    .await;
    ok(
        &client,
        "emailrules_delete",
        json!({"rule_id": rule_id, "confirm": true}),
    )
    .await;
    assert_eq!(sequences().len(), 3);
    let last = ok(&client, "emailrules_list", json!({})).await;
    assert_eq!(last["count"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_invalidate_what_they_changed_and_nothing_else() {
    let (world, client) = start(None).await;

    // Annotations as clients see them.
    let tools = client.list_all_tools().await.unwrap();
    let tool = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    };
    for name in [
        "email_delete",
        "emailfolders_empty",
        "emailfolders_delete",
        "emailrules_delete",
    ] {
        let hints = tool(name).annotations.as_ref().unwrap();
        assert_eq!(hints.destructive_hint, Some(true), "{name}");
        assert_eq!(hints.read_only_hint, Some(false), "{name}");
    }
    for name in ["emailfolders_get_tree", "emailrules_list", "emailrules_get"] {
        let hints = tool(name).annotations.as_ref().unwrap();
        assert_eq!(hints.read_only_hint, Some(true), "{name}");
        assert_eq!(hints.destructive_hint, Some(false), "{name}");
    }
    for name in [
        "email_send",
        "email_reply",
        "email_reply_all",
        "email_forward",
        "email_create_draft",
        "email_move",
        "emailfolders_create",
    ] {
        let hints = tool(name).annotations.as_ref().unwrap();
        assert_eq!(hints.read_only_hint, Some(false), "{name}");
        assert_eq!(hints.destructive_hint, Some(false), "{name}");
        assert!(tool(name).title.is_some(), "{name}");
    }
    for name in ["emailfolders_get_tree", "emailrules_list"] {
        let props = &tool(name).input_schema["properties"];
        assert!(props.get("use_cache").is_some() && props.get("force_refresh").is_some());
    }
    assert!(
        tool("email_send").input_schema["properties"]
            .get("use_cache")
            .is_none()
    );
    for name in [
        "email_send",
        "email_reply",
        "email_reply_all",
        "email_forward",
        "email_delete",
        "emailfolders_delete",
        "emailfolders_empty",
        "emailrules_delete",
    ] {
        assert_eq!(
            tool(name).input_schema["properties"]["confirm"]["default"],
            false,
            "{name}"
        );
    }

    let s = state(&world, 0);
    let inbox = folder_id(&s, "inbox");
    let sent = folder_id(&s, "sentitems");
    let inbox_ids: Vec<String> = {
        let listed = ok(&client, "email_list", json!({"limit": 5})).await;
        listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (x, y) = (&inbox_ids[0], &inbox_ids[1]);
    let unrelated = messages_in(&s, &sent)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Warm: two messages, the inbox listing, Sent Items, the folder tree.
    for args in [
        json!({"email_id": x}),
        json!({"email_id": y}),
        json!({"email_id": unrelated}),
    ] {
        ok(&client, "email_get", args).await;
    }
    ok(&client, "email_list", json!({"folder": "sent", "limit": 5})).await;
    ok(
        &client,
        "email_list",
        json!({"folder": "archive", "limit": 5}),
    )
    .await;
    ok(&client, "emailfolders_get_tree", json!({})).await;
    ok(&client, "emailfolders_get", json!({"folder_id": "inbox"})).await;

    let fresh = |value: &Value| value["_cache"]["status"] == "fresh";
    let read_fresh = |tool: &'static str, args: Value| {
        let client = &client;
        let world = &world;
        async move {
            let before = world.sandbox.counts().graph;
            let value = ok(client, tool, args.clone()).await;
            assert!(
                fresh(&value),
                "{tool} {args} should be fresh: {}",
                value["_cache"]
            );
            assert_eq!(world.sandbox.counts().graph, before, "{tool} {args}");
            value
        }
    };
    let read_miss = |tool: &'static str, args: Value| {
        let client = &client;
        let world = &world;
        async move {
            let before = world.sandbox.counts().graph;
            let value = ok(client, tool, args.clone()).await;
            assert_eq!(value["_cache"]["status"], "miss", "{tool} {args}");
            assert!(world.sandbox.counts().graph > before, "{tool} {args}");
            value
        }
    };

    // mark_read X: X's entry and the listing showing it go; Y and Sent Items stay.
    let before = read_fresh("email_get", json!({"email_id": x})).await;
    let was_read = before["isRead"].as_bool().unwrap();
    ok(
        &client,
        "email_mark_read",
        json!({"email_id": x, "is_read": !was_read}),
    )
    .await;
    let after = read_miss("email_get", json!({"email_id": x})).await;
    assert_eq!(after["isRead"], !was_read);
    let listing = read_miss("email_list", json!({"limit": 5})).await;
    assert_eq!(
        listing["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == x.as_str())
            .unwrap()["isRead"],
        !was_read
    );
    read_fresh("email_get", json!({"email_id": y})).await;
    read_fresh("email_get", json!({"email_id": unrelated})).await;
    read_fresh("email_list", json!({"folder": "sent", "limit": 5})).await;
    // The read state changed the inbox's unread count: the folder's own
    // entry goes; the tree (fetched for structure) keeps to its lifetime.
    read_miss("emailfolders_get", json!({"folder_id": "inbox"})).await;
    read_fresh("emailfolders_get_tree", json!({})).await;

    // archive Y: its entry, listings showing it, the archive listing and
    // folder counts go; Sent Items and the other message stay.
    ok(&client, "email_list", json!({"limit": 5})).await;
    let archived = ok(&client, "email_archive", json!({"email_id": y})).await;
    let new_y = archived["new_id"].as_str().unwrap();
    let (gone, err, _) = call(&client, "email_get", json!({"email_id": y}))
        .await
        .unwrap();
    assert!(err, "the old id is not served from the cache: {gone}");
    let archive_list = read_miss("email_list", json!({"folder": "archive", "limit": 5})).await;
    assert!(
        archive_list["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == new_y)
    );
    let inbox_list = read_miss("email_list", json!({"limit": 5})).await;
    assert!(
        !inbox_list["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == y.as_str())
    );
    read_miss("emailfolders_get_tree", json!({})).await;
    read_fresh("email_get", json!({"email_id": unrelated})).await;
    read_fresh("email_list", json!({"folder": "sent", "limit": 5})).await;

    // send: Sent Items goes; the inbox listing stays.
    ok(&client, "email_list", json!({"limit": 5})).await;
    ok(
        &client,
        "email_send",
        json!({"to": world.username(1), "subject": "Cache check", "body": "b", "confirm": true}),
    )
    .await;
    let sent_list = read_miss("email_list", json!({"folder": "sent", "limit": 5})).await;
    assert_eq!(sent_list["value"][0]["subject"], "Cache check");
    read_fresh("email_list", json!({"limit": 5})).await;
    read_fresh("email_get", json!({"email_id": unrelated})).await;

    // A folder write: the tree goes, messages stay.
    ok(&client, "emailfolders_get_tree", json!({})).await;
    let created = ok(
        &client,
        "emailfolders_create",
        json!({"display_name": "Fresh folder", "parent_folder_id": inbox}),
    )
    .await;
    let tree = read_miss("emailfolders_get_tree", json!({})).await;
    let inbox_node = tree["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == inbox.as_str())
        .unwrap();
    assert!(
        inbox_node["children"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == created["id"])
    );
    read_fresh("email_get", json!({"email_id": unrelated})).await;
    read_fresh("email_list", json!({"limit": 5})).await;
}
