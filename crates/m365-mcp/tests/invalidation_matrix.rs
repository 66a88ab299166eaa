//! The write → invalidation matrix of `tools.md`, row by row, through the
//! real binary against the Graph sandbox.
//!
//! Every row follows the same three steps:
//! 1. prime the cached reads the row names, plus reads it must leave alone
//!    (another item, another folder, another resource type, and the same
//!    read for another account), and prove each is now a fresh hit that
//!    costs no Graph request;
//! 2. run the write through its MCP tool;
//! 3. read again: each named read is a miss that reached Graph (the
//!    sandbox's request log shows the request, made as that account) and
//!    shows what the write changed; each other read is still a fresh hit
//!    with no Graph request — the write was precise, not a wipe.
//!
//! Every assertion message starts with `[row <tool>]`, so a failure names
//! the matrix row it belongs to. Reads made to set a row up bypass the cache
//! (`use_cache: false`); changes made behind the server's back (through a
//! plain Graph client) happen before anything they touch is cached.

mod common;

use std::fmt;

use common::World;
use m365_mcp::demo::{Client, call, sign_in_all};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The bench: one sandbox, one server, every sandbox user signed in.

/// The sandbox user whose writes are tested (a work account).
const ADELE: usize = 0;
/// Another work account of the same tenant: its entries must never move.
const ALEX: usize = 2;

struct Bench {
    world: World,
    client: Client,
    adele: String,
    alex: String,
}

/// A cached read: the tool and its arguments, `account_id` included.
#[derive(Clone)]
struct Read {
    tool: &'static str,
    args: Value,
}

impl fmt::Display for Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.tool, self.args)
    }
}

impl Read {
    fn user(&self) -> &str {
        self.args["account_id"].as_str().unwrap_or_default()
    }
}

fn with_account(mut args: Value, user: &str) -> Value {
    args["account_id"] = json!(user);
    args
}

fn status(value: &Value) -> &str {
    value["_cache"]["status"].as_str().unwrap_or("none")
}

impl Bench {
    async fn start() -> Bench {
        Bench::start_with(&[]).await
    }

    async fn start_with(env: &[(&str, &str)]) -> Bench {
        let mut world = World::manual().await;
        // Warming would add background Graph requests to the counts.
        world.with_env("M365_MCP_CACHE_WARMING", "false");
        for (key, value) in env {
            world.with_env(key, value);
        }
        let client = world.client().await;
        sign_in_all(&client, &world.sandbox)
            .await
            .expect("every sandbox user signs in");
        let adele = world.username(ADELE);
        let alex = world.username(ALEX);
        Bench {
            world,
            client,
            adele,
            alex,
        }
    }

    fn adele(&self, tool: &'static str, args: Value) -> Read {
        Read {
            tool,
            args: with_account(args, &self.adele),
        }
    }

    fn alex(&self, tool: &'static str, args: Value) -> Read {
        Read {
            tool,
            args: with_account(args, &self.alex),
        }
    }

    fn row(&self, name: &str) -> Row<'_> {
        Row {
            bench: self,
            name: name.to_string(),
        }
    }

    fn graph_calls(&self) -> u64 {
        self.world.sandbox.counts().graph
    }

    /// A read for setting a row up: Adele's, bypassing the cache, so it
    /// neither stores nor serves an entry.
    async fn look(&self, tool: &str, args: Value) -> Value {
        let mut args = with_account(args, &self.adele);
        args["use_cache"] = json!(false);
        let (value, err, _) = call(&self.client, tool, args.clone()).await.unwrap();
        assert!(!err, "setup read {tool} {args} failed: {value}");
        assert_eq!(status(&value), "bypass", "setup read {tool} {args}");
        value
    }

    /// Adele's mailbox, folders, events, contacts and drive as the sandbox holds them.
    fn state(&self) -> Value {
        self.world.sandbox.user_state(&self.adele).unwrap()
    }

    /// Adele's Graph client, for changes behind the server's back while a
    /// row is set up (before anything is primed).
    async fn graph_post(&self, path: &str, body: Value) -> Value {
        let account = self.world.sandbox.users()[ADELE].account_id();
        self.world
            .graph_as(&self.adele)
            .post(&account, path, Some(&body))
            .await
            .unwrap_or_else(|e| panic!("setup POST {path}: {e}"))
    }

    fn well_known_folder(&self, name: &str) -> String {
        self.state()["mailFolders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["wellKnownName"] == name)
            .unwrap_or_else(|| panic!("no {name} folder"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// One row of the matrix being exercised: every assertion names it.
struct Row<'a> {
    bench: &'a Bench,
    name: String,
}

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[row {}]", self.name)
    }
}

impl Row<'_> {
    async fn read(&self, read: &Read) -> (Value, bool) {
        let (value, err, _) = call(&self.bench.client, read.tool, read.args.clone())
            .await
            .unwrap();
        (value, err)
    }

    /// Step 1: reads each entry into the cache, then proves each one is a
    /// fresh hit that costs no Graph request.
    async fn prime(&self, reads: &[&Read]) {
        for read in reads {
            let (value, err) = self.read(read).await;
            assert!(!err, "{self} priming {read} failed: {value}");
        }
        for read in reads {
            self.fresh(read).await;
        }
    }

    /// A fresh hit with no Graph request.
    async fn fresh(&self, read: &Read) -> Value {
        let before = self.bench.graph_calls();
        let (value, err) = self.read(read).await;
        assert!(!err, "{self} {read} failed: {value}");
        assert_eq!(
            status(&value),
            "fresh",
            "{self} {read} should be a fresh cache hit: {}",
            value["_cache"]
        );
        assert_eq!(
            self.bench.graph_calls(),
            before,
            "{self} {read}: a fresh hit must not reach Graph"
        );
        value
    }

    /// Step 3, for reads the write must leave alone.
    async fn untouched(&self, reads: &[&Read]) {
        for read in reads {
            self.fresh(read).await;
        }
    }

    /// Graph requests made as `read`'s account since `from` in the log.
    fn requests_since(&self, from: usize, read: &Read) -> Vec<(String, u16)> {
        self.bench.world.sandbox.request_log()[from..]
            .iter()
            .filter(|e| {
                e.user
                    .as_deref()
                    .is_some_and(|u| u.eq_ignore_ascii_case(read.user()))
            })
            .map(|e| (format!("{} {}", e.method, e.path), e.status))
            .collect()
    }

    /// Step 3, for reads the row names: the entry is gone, so the read is a
    /// miss answered by Graph (the log shows the request, made as that
    /// account). Returns what Graph answered.
    async fn refetched(&self, read: &Read) -> Value {
        let log_start = self.bench.world.sandbox.request_log().len();
        let calls = self.bench.graph_calls();
        let (value, err) = self.read(read).await;
        assert!(!err, "{self} {read} failed after the write: {value}");
        assert_eq!(
            status(&value),
            "miss",
            "{self} {read} should have been invalidated by the write: {}",
            value["_cache"]
        );
        assert!(
            self.bench.graph_calls() > calls,
            "{self} {read}: a miss must reach Graph"
        );
        let requests = self.requests_since(log_start, read);
        assert!(
            requests.iter().any(|(_, status)| *status < 400),
            "{self} {read}: no successful Graph request as {} in the log: {requests:?}",
            read.user()
        );
        value
    }

    /// Step 3, for an entry whose item the write removed: the read is not
    /// answered from the cache but by Graph, which no longer has the item.
    async fn gone(&self, read: &Read) {
        let log_start = self.bench.world.sandbox.request_log().len();
        let (value, err) = self.read(read).await;
        assert!(
            err,
            "{self} {read} should no longer be served (the item is gone): {value}"
        );
        assert_eq!(value["error"]["status"], 404, "{self} {read}: {value}");
        let requests = self.requests_since(log_start, read);
        assert!(
            requests.iter().any(|(_, status)| *status == 404),
            "{self} {read}: the 404 must come from Graph, not the cache: {requests:?}"
        );
    }

    /// Step 2: the write, as Adele, through its MCP tool.
    async fn write(&self, tool: &str, args: Value) -> Value {
        let args = with_account(args, &self.bench.adele);
        let before = self.bench.graph_calls();
        let (value, err, _) = call(&self.bench.client, tool, args.clone()).await.unwrap();
        assert!(!err, "{self} {tool} {args} failed: {value}");
        assert!(
            self.bench.graph_calls() > before,
            "{self} {tool} made no Graph request"
        );
        value
    }
}

// ---------------------------------------------------------------------------
// Reading answers

fn items(value: &Value) -> &[Value] {
    value["value"].as_array().map_or(&[], Vec::as_slice)
}

fn find<'a>(value: &'a Value, id: &str) -> Option<&'a Value> {
    items(value).iter().find(|i| i["id"] == id)
}

fn has_id(value: &Value, id: &str) -> bool {
    find(value, id).is_some()
}

fn has(value: &Value, key: &str, wanted: &str) -> bool {
    items(value).iter().any(|i| i[key] == wanted)
}

fn ids(value: &Value) -> Vec<String> {
    items(value)
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// The longest word of a subject: a search term that finds it.
fn search_word(subject: &str) -> String {
    subject
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .max_by_key(|w| w.len())
        .unwrap()
        .to_string()
}

/// Groups of reads as one list (a read in two groups is read once).
fn reads<'r>(groups: &[&[&'r Read]]) -> Vec<&'r Read> {
    let mut all: Vec<&Read> = Vec::new();
    for read in groups.iter().flat_map(|g| g.iter()) {
        if !all.iter().any(|r| std::ptr::eq(*r, *read)) {
            all.push(read);
        }
    }
    all
}

fn int(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
}

// ---------------------------------------------------------------------------
// Mail: sending and drafts

/// Rows `email_send, email_reply, email_reply_all, email_forward` (Sent
/// Items and search_emails) and `email_create_draft` (Drafts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_mail_and_drafts_rows() {
    let b = Bench::start().await;
    let inbox_ids = ids(&b.look("email_list", json!({"limit": 10})).await);
    let subject = |id: &str| -> String {
        b.state()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["subject"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let sent = b.adele("email_list", json!({"folder": "sent", "limit": 5}));
    // Sent Items under its id: the send knows the folder only by name.
    let sent_by_id = b.adele(
        "email_list",
        json!({"folder_id": b.well_known_folder("sentitems"), "limit": 5}),
    );
    let inbox = b.adele("email_list", json!({"limit": 5}));
    let drafts = b.adele("email_list", json!({"folder": "drafts", "limit": 50}));
    let get_y = b.adele("email_get", json!({"email_id": inbox_ids[9]}));
    let alex_sent = b.alex("email_list", json!({"folder": "sent", "limit": 5}));
    let alex_drafts = b.alex("email_list", json!({"folder": "drafts", "limit": 50}));

    // Each send carries a word found nowhere else, so the search primed
    // before it is empty and the one after it finds the Sent Items copy.
    // External recipients: nobody's mailbox but Adele's changes.
    let rows = [
        (
            "email_send",
            json!({"to": "pat@example.com", "subject": "Numbat notes", "body": "wombatsend", "confirm": true}),
            "Numbat notes".to_string(),
            "wombatsend",
        ),
        (
            "email_reply",
            json!({"email_id": inbox_ids[0], "body": "quokkareply", "confirm": true}),
            format!("RE: {}", subject(&inbox_ids[0])),
            "quokkareply",
        ),
        (
            "email_reply_all",
            json!({"email_id": inbox_ids[1], "body": "bilbyreplyall", "confirm": true}),
            format!("RE: {}", subject(&inbox_ids[1])),
            "bilbyreplyall",
        ),
        (
            "email_forward",
            json!({"email_id": inbox_ids[2], "to": "pat@example.com", "body": "dingoforward", "confirm": true}),
            format!("FW: {}", subject(&inbox_ids[2])),
            "dingoforward",
        ),
    ];
    for (tool, args, new_subject, word) in rows {
        let row = b.row(tool);
        let search = b.adele("search_emails", json!({"query": word}));
        row.prime(&[
            &sent,
            &sent_by_id,
            &search,
            &inbox,
            &drafts,
            &get_y,
            &alex_sent,
        ])
        .await;
        let before = ids(&row.fresh(&sent).await);
        assert_eq!(row.fresh(&search).await["count"], 0, "{row} precondition");

        row.write(tool, args).await;

        let listed = row.refetched(&sent).await;
        assert!(
            items(&listed)
                .iter()
                .any(|m| m["subject"] == new_subject && !before.iter().any(|id| m["id"] == *id)),
            "{row} Sent Items lists the new message: {listed}"
        );
        let listed = row.refetched(&sent_by_id).await;
        assert!(
            items(&listed).iter().any(|m| m["subject"] == new_subject),
            "{row} Sent Items by id lists the new message: {listed}"
        );
        let found = row.refetched(&search).await;
        assert!(
            has(&found, "subject", &new_subject),
            "{row} the search finds the sent message: {found}"
        );
        row.untouched(&[&inbox, &drafts, &get_y, &alex_sent]).await;
    }

    let row = b.row("email_create_draft");
    let unrelated_search = b.adele("search_emails", json!({"query": "wombatsend"}));
    row.prime(&[&drafts, &sent, &inbox, &unrelated_search, &alex_drafts])
        .await;
    assert!(
        !has(&row.fresh(&drafts).await, "subject", "Bilby draft"),
        "{row} precondition"
    );
    let draft = row
        .write(
            "email_create_draft",
            json!({"to": "pat@example.com", "subject": "Bilby draft", "body": "Not sent"}),
        )
        .await;
    let listed = row.refetched(&drafts).await;
    assert!(
        has_id(&listed, draft["id"].as_str().unwrap()) && has(&listed, "subject", "Bilby draft"),
        "{row} Drafts shows the new draft: {listed}"
    );
    row.untouched(&[&sent, &inbox, &unrelated_search, &alex_drafts])
        .await;
}

// ---------------------------------------------------------------------------
// Mail: changing a message

/// Row `email_update, email_mark_read, email_flag, email_add_category`:
/// email_get of that id, email_list of its folder, search_emails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_change_rows() {
    let b = Bench::start().await;
    // A message only the control search finds, added before anything is cached.
    b.graph_post(
        "/me/messages",
        json!({"subject": "Platypus control", "body": {"contentType": "Text", "content": "x"}}),
    )
    .await;
    let inbox_ids = ids(&b.look("email_list", json!({"limit": 10})).await);
    let state = b.state();
    let message = |id: &str| -> Value {
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };

    let inbox = b.adele("email_list", json!({"limit": 10}));
    let sent = b.adele("email_list", json!({"folder": "sent", "limit": 5}));
    let get_y = b.adele("email_get", json!({"email_id": inbox_ids[9]}));
    let control = b.adele("search_emails", json!({"query": "Platypus"}));
    let sent_folder = b.adele("emailfolders_get", json!({"folder_id": "sentitems"}));
    let alex_inbox = b.alex("email_list", json!({"limit": 10}));

    type Shows = Box<dyn Fn(&Value) -> bool>;
    let mut rows: Vec<(&str, String, Value, Shows, bool)> = Vec::new();
    // (tool, message id, arguments, "the message shows the change", every search goes)
    {
        let id = inbox_ids[0].clone();
        let m = message(&id);
        let read = !m["isRead"].as_bool().unwrap();
        let importance = if m["importance"] == "high" {
            "low"
        } else {
            "high"
        };
        rows.push((
            "email_update",
            id.clone(),
            json!({"email_id": id, "updates": {"isRead": read, "importance": importance}}),
            Box::new(move |m: &Value| m["isRead"] == read && m["importance"] == importance),
            true,
        ));
    }
    {
        let id = inbox_ids[1].clone();
        let read = !message(&id)["isRead"].as_bool().unwrap();
        rows.push((
            "email_mark_read",
            id.clone(),
            json!({"email_id": id, "is_read": read}),
            Box::new(move |m: &Value| m["isRead"] == read),
            false,
        ));
    }
    {
        let id = inbox_ids[2].clone();
        let flag = if message(&id)["flag"]["flagStatus"] == "flagged" {
            "complete"
        } else {
            "flagged"
        };
        rows.push((
            "email_flag",
            id.clone(),
            json!({"email_id": id, "flag_status": flag}),
            Box::new(move |m: &Value| m["flag"]["flagStatus"] == flag),
            false,
        ));
    }
    {
        let id = inbox_ids[3].clone();
        rows.push((
            "email_add_category",
            id.clone(),
            json!({"email_id": id, "categories": "Purple category"}),
            Box::new(|m: &Value| {
                m["categories"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == "Purple category"))
            }),
            false,
        ));
    }

    for (tool, id, args, shows, all_searches) in rows {
        let row = b.row(tool);
        let get_x = b.adele("email_get", json!({"email_id": id}));
        let search_x = b.adele(
            "search_emails",
            json!({"query": search_word(message(&id)["subject"].as_str().unwrap()), "limit": 100}),
        );
        row.prime(&[
            &get_x,
            &inbox,
            &search_x,
            &get_y,
            &sent,
            &control,
            &sent_folder,
            &alex_inbox,
        ])
        .await;
        let before = row.fresh(&get_x).await;
        assert!(!shows(&before), "{row} precondition: {before}");
        assert!(has_id(&row.fresh(&inbox).await, &id), "{row} precondition");
        assert!(
            has_id(&row.fresh(&search_x).await, &id),
            "{row} precondition"
        );
        let control_hits = row.fresh(&control).await;
        assert!(
            control_hits["count"] == 1 && !has_id(&control_hits, &id),
            "{row} precondition: {control_hits}"
        );

        row.write(tool, args).await;

        let got = row.refetched(&get_x).await;
        assert!(shows(&got), "{row} email_get shows the change: {got}");
        let listed = row.refetched(&inbox).await;
        assert!(
            find(&listed, &id).is_some_and(&shows),
            "{row} the folder's listing shows the change: {listed}"
        );
        let found = row.refetched(&search_x).await;
        assert!(
            find(&found, &id).is_some_and(&shows),
            "{row} the search shows the change: {found}"
        );
        if all_searches {
            // email_update may change what a message matches: every search goes.
            row.refetched(&control).await;
        } else {
            // Read state, flag and categories change no match: only the
            // searches showing the message go.
            row.untouched(&[&control]).await;
        }
        row.untouched(&[&get_y, &sent, &sent_folder, &alex_inbox])
            .await;
    }
}

// ---------------------------------------------------------------------------
// Mail: deleting, moving and archiving a message

/// Rows `email_delete` (email_get, its folder's and Deleted Items' lists,
/// search_emails) and `email_move, email_archive` (email_get, source and
/// destination lists, folder counts, search_emails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_move_and_archive_rows() {
    let b = Bench::start().await;
    let inbox_ids = ids(&b.look("email_list", json!({"limit": 10})).await);
    let state = b.state();
    let subject = |id: &str| -> String {
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["subject"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let inbox_id = b.well_known_folder("inbox");
    let user_folder = state["mailFolders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["wellKnownName"].is_null() && f["parentFolderId"] == inbox_id.as_str())
        .expect("a user folder below Inbox")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let inbox = b.adele("email_list", json!({"limit": 10}));
    let sent = b.adele("email_list", json!({"folder": "sent", "limit": 5}));
    let get_y = b.adele("email_get", json!({"email_id": inbox_ids[9]}));
    let alex_inbox = b.alex("email_list", json!({"limit": 10}));
    let alex_folders = b.alex("emailfolders_list", json!({}));

    // --- email_delete
    {
        let row = b.row("email_delete");
        let x = &inbox_ids[0];
        let get_x = b.adele("email_get", json!({"email_id": x}));
        let deleted = b.adele("email_list", json!({"folder": "deleted", "limit": 50}));
        let deleted_by_id = b.adele(
            "email_list",
            json!({"folder_id": b.well_known_folder("deleteditems"), "limit": 50}),
        );
        let archive = b.adele("email_list", json!({"folder": "archive", "limit": 50}));
        let search_x = b.adele(
            "search_emails",
            json!({"query": search_word(&subject(x)), "limit": 100}),
        );
        row.prime(&[
            &get_x,
            &inbox,
            &deleted,
            &deleted_by_id,
            &search_x,
            &get_y,
            &sent,
            &archive,
            &alex_inbox,
        ])
        .await;
        assert!(has_id(&row.fresh(&search_x).await, x), "{row} precondition");

        row.write("email_delete", json!({"email_id": x, "confirm": true}))
            .await;

        row.gone(&get_x).await;
        let listed = row.refetched(&inbox).await;
        assert!(
            !has_id(&listed, x),
            "{row} the message left Inbox: {listed}"
        );
        // Graph moves a deleted message to Deleted Items; the sandbox drops
        // it, so the listing is re-read but shows nothing new.
        row.refetched(&deleted).await;
        row.refetched(&deleted_by_id).await;
        let found = row.refetched(&search_x).await;
        assert!(!has_id(&found, x), "{row} the search no longer finds it");
        row.untouched(&[&get_y, &sent, &archive, &alex_inbox]).await;
    }

    // --- email_move (by well-known name, then by folder id) and email_archive
    // (tool, message, destination argument, destination listing, its folder
    // for emailfolders_get). Junk, moved to by name, is listed by its real id.
    let junk_id = b.well_known_folder("junkemail");
    let moves = [
        (
            "email_move",
            inbox_ids[1].clone(),
            "junk",
            json!({"folder_id": junk_id, "limit": 50}),
            "junkemail",
        ),
        (
            "email_move",
            inbox_ids[2].clone(),
            user_folder.as_str(),
            json!({"folder_id": user_folder, "limit": 50}),
            user_folder.as_str(),
        ),
        (
            "email_archive",
            inbox_ids[3].clone(),
            "archive",
            json!({"folder": "archive", "limit": 50}),
            "archive",
        ),
    ];
    for (tool, x, destination, dest_list_args, destination_folder) in moves {
        let row = b.row(&format!("{tool} to {destination}"));
        let get_x = b.adele("email_get", json!({"email_id": x}));
        let dest_list = b.adele("email_list", dest_list_args);
        let dest_folder = b.adele("emailfolders_get", json!({"folder_id": destination_folder}));
        let inbox_folder = b.adele("emailfolders_get", json!({"folder_id": "inbox"}));
        let top_folders = b.adele("emailfolders_list", json!({}));
        let search_x = b.adele(
            "search_emails",
            json!({"query": search_word(&subject(&x)), "limit": 100}),
        );
        row.prime(&[
            &get_x,
            &inbox,
            &dest_list,
            &dest_folder,
            &inbox_folder,
            &top_folders,
            &search_x,
            &get_y,
            &sent,
            &alex_inbox,
            &alex_folders,
        ])
        .await;
        let dest_total = int(&row.fresh(&dest_folder).await, "totalItemCount");
        let inbox_total = int(&row.fresh(&inbox_folder).await, "totalItemCount");

        let args = if tool == "email_archive" {
            json!({"email_id": x})
        } else {
            json!({"email_id": x, "destination_folder": destination})
        };
        let moved = row.write(tool, args).await;
        let new_id = moved["new_id"].as_str().unwrap().to_string();
        assert_ne!(new_id, x, "{row} Graph gives a moved message a new id");

        row.gone(&get_x).await;
        let source = row.refetched(&inbox).await;
        assert!(!has_id(&source, &x), "{row} the message left Inbox");
        let target = row.refetched(&dest_list).await;
        assert!(
            has_id(&target, &new_id),
            "{row} the destination lists it: {target}"
        );
        let counted = row.refetched(&dest_folder).await;
        assert_eq!(
            int(&counted, "totalItemCount"),
            dest_total + 1,
            "{row} destination count"
        );
        let counted = row.refetched(&inbox_folder).await;
        assert_eq!(
            int(&counted, "totalItemCount"),
            inbox_total - 1,
            "{row} source count"
        );
        let listed = row.refetched(&top_folders).await;
        let inbox_entry = find(&listed, &inbox_id).expect("Inbox is a top-level folder");
        assert_eq!(
            int(inbox_entry, "totalItemCount"),
            inbox_total - 1,
            "{row} emailfolders_list counts"
        );
        let found = row.refetched(&search_x).await;
        assert!(
            has_id(&found, &new_id) && !has_id(&found, &x),
            "{row} the search shows the new id only: {found}"
        );
        row.untouched(&[&get_y, &sent, &alex_inbox, &alex_folders])
            .await;
    }
}

// ---------------------------------------------------------------------------
// Mail folders

/// Row `emailfolders_create / rename / move / delete / empty /
/// mark_all_as_read`: emailfolders_list, emailfolders_get(_tree), and
/// email_list of the folder(s) whose messages the write changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_folder_rows() {
    let b = Bench::start().await;
    let inbox_id = b.well_known_folder("inbox");
    let archive_id = b.well_known_folder("archive");
    let junk_id = b.well_known_folder("junkemail");
    let inbox_ids = ids(&b.look("email_list", json!({"limit": 20})).await);
    // Junk gets two messages and Inbox unread mail, behind the server's back,
    // before anything is cached.
    let mut in_junk = Vec::new();
    for id in &inbox_ids[..2] {
        let moved = b
            .graph_post(
                &format!("/me/messages/{}/move", m365_graph::encode_segment(id)),
                json!({"destinationId": "junkemail"}),
            )
            .await;
        in_junk.push(moved["id"].as_str().unwrap().to_string());
    }
    let unread_id = inbox_ids[5].clone();
    let account = b.world.sandbox.users()[ADELE].account_id();
    b.world
        .graph_as(&b.adele)
        .patch(
            &account,
            &format!("/me/messages/{}", m365_graph::encode_segment(&unread_id)),
            &json!({"isRead": false}),
        )
        .await
        .unwrap();
    let sent_message = ids(&b
        .look("email_list", json!({"folder": "sent", "limit": 1}))
        .await)
    .remove(0);

    let top = b.adele("emailfolders_list", json!({}));
    let below_inbox = b.adele("emailfolders_list", json!({"parent_folder_id": inbox_id}));
    let below_archive = b.adele("emailfolders_list", json!({"parent_folder_id": archive_id}));
    let tree = b.adele("emailfolders_get_tree", json!({}));
    let inbox_folder = b.adele("emailfolders_get", json!({"folder_id": "inbox"}));
    let archive_folder = b.adele("emailfolders_get", json!({"folder_id": "archive"}));
    let sent_folder = b.adele("emailfolders_get", json!({"folder_id": "sentitems"}));
    let inbox = b.adele("email_list", json!({"limit": 50}));
    let sent = b.adele("email_list", json!({"folder": "sent", "limit": 5}));
    let get_sent = b.adele("email_get", json!({"email_id": sent_message}));
    let alex_folders = b.alex("emailfolders_list", json!({}));
    let alex_inbox = b.alex("email_list", json!({"limit": 10}));

    fn tree_has(nodes: &Value, id: &str, name: &str) -> bool {
        nodes.as_array().into_iter().flatten().any(|n| {
            (n["id"] == id && n["displayName"] == name) || tree_has(&n["children"], id, name)
        })
    }

    // --- emailfolders_create (below Inbox)
    let folder_id = {
        let row = b.row("emailfolders_create");
        row.prime(&[
            &top,
            &below_inbox,
            &tree,
            &inbox_folder,
            &inbox,
            &sent_folder,
            &alex_folders,
        ])
        .await;
        let children = int(&row.fresh(&inbox_folder).await, "childFolderCount");
        let created = row
            .write(
                "emailfolders_create",
                json!({"display_name": "Echidna", "parent_folder_id": "inbox"}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        // A new folder can show in any folder listing: all of them go.
        row.refetched(&top).await;
        let listed = row.refetched(&below_inbox).await;
        assert!(has_id(&listed, &id), "{row} Inbox's children: {listed}");
        let got = row.refetched(&inbox_folder).await;
        assert_eq!(
            int(&got, "childFolderCount"),
            children + 1,
            "{row} parent's count"
        );
        let shown = row.refetched(&tree).await;
        assert!(
            tree_has(&shown["folders"], &id, "Echidna"),
            "{row} tree: {shown}"
        );
        // The parent's messages did not change.
        row.untouched(&[&inbox, &sent_folder, &alex_folders]).await;
        id
    };
    // A message in the new folder, moved there behind the server's back
    // before any entry of the folder is cached.
    let message_in_folder = b
        .graph_post(
            &format!(
                "/me/messages/{}/move",
                m365_graph::encode_segment(&inbox_ids[6])
            ),
            json!({"destinationId": folder_id}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let folder = b.adele("emailfolders_get", json!({"folder_id": folder_id}));
    let folder_messages = b.adele("email_list", json!({"folder_id": folder_id, "limit": 10}));

    // --- emailfolders_rename
    {
        let row = b.row("emailfolders_rename");
        row.prime(&[
            &below_inbox,
            &folder,
            &tree,
            &top,
            &inbox_folder,
            &folder_messages,
            &inbox,
            &alex_folders,
        ])
        .await;
        row.write(
            "emailfolders_rename",
            json!({"folder_id": folder_id, "new_display_name": "Echidna 2"}),
        )
        .await;
        let listed = row.refetched(&below_inbox).await;
        assert!(
            find(&listed, &folder_id).is_some_and(|f| f["displayName"] == "Echidna 2"),
            "{row} {listed}"
        );
        let got = row.refetched(&folder).await;
        assert_eq!(got["displayName"], "Echidna 2", "{row}");
        let shown = row.refetched(&tree).await;
        assert!(
            tree_has(&shown["folders"], &folder_id, "Echidna 2"),
            "{row}"
        );
        // Precise: listings not showing the folder, other folders' entries
        // and its (unchanged) messages stay.
        row.untouched(&[&top, &inbox_folder, &folder_messages, &inbox, &alex_folders])
            .await;
    }

    // --- emailfolders_move (Inbox → Archive)
    {
        let row = b.row("emailfolders_move");
        row.prime(&[
            &below_inbox,
            &below_archive,
            &folder,
            &inbox_folder,
            &archive_folder,
            &tree,
            &folder_messages,
            &inbox,
            &alex_folders,
        ])
        .await;
        let inbox_children = int(&row.fresh(&inbox_folder).await, "childFolderCount");
        let archive_children = int(&row.fresh(&archive_folder).await, "childFolderCount");
        row.write(
            "emailfolders_move",
            json!({"folder_id": folder_id, "destination_folder_id": "archive"}),
        )
        .await;
        assert!(
            !has_id(&row.refetched(&below_inbox).await, &folder_id),
            "{row} left Inbox"
        );
        assert!(
            has_id(&row.refetched(&below_archive).await, &folder_id),
            "{row} in Archive"
        );
        assert_eq!(
            row.refetched(&folder).await["parentFolderId"],
            archive_id.as_str(),
            "{row}"
        );
        assert_eq!(
            int(&row.refetched(&inbox_folder).await, "childFolderCount"),
            inbox_children - 1,
            "{row}"
        );
        assert_eq!(
            int(&row.refetched(&archive_folder).await, "childFolderCount"),
            archive_children + 1,
            "{row}"
        );
        row.refetched(&tree).await;
        row.untouched(&[&folder_messages, &inbox, &alex_folders])
            .await;
    }

    // --- emailfolders_empty (Junk)
    {
        let row = b.row("emailfolders_empty");
        let junk = b.adele("email_list", json!({"folder": "junk", "limit": 50}));
        let junk_folder = b.adele("emailfolders_get", json!({"folder_id": "junkemail"}));
        let deleted = b.adele("email_list", json!({"folder": "deleted", "limit": 50}));
        let search = b.adele("search_emails", json!({"query": "review"}));
        let alex_junk = b.alex("email_list", json!({"folder": "junk", "limit": 50}));
        let junk_message = b.adele("email_get", json!({"email_id": in_junk[0]}));
        row.prime(&[
            &junk,
            &junk_folder,
            &deleted,
            &top,
            &tree,
            &junk_message,
            &search,
            &inbox,
            &sent,
            &sent_folder,
            &alex_junk,
        ])
        .await;
        assert!(
            int(&row.fresh(&junk_folder).await, "totalItemCount") >= 2,
            "{row} precondition"
        );
        let emptied = row
            .write(
                "emailfolders_empty",
                json!({"folder_id": "junk", "confirm": true}),
            )
            .await;
        assert!(emptied["messages_deleted"].as_u64().unwrap() >= 2, "{row}");
        let listed = row.refetched(&junk).await;
        assert_eq!(listed["count"], 0, "{row} Junk is empty: {listed}");
        assert_eq!(
            int(&row.refetched(&junk_folder).await, "totalItemCount"),
            0,
            "{row}"
        );
        let listed = row.refetched(&top).await;
        assert_eq!(
            int(find(&listed, &junk_id).unwrap(), "totalItemCount"),
            0,
            "{row} emailfolders_list counts"
        );
        row.refetched(&tree).await;
        // Deleted messages go to Deleted Items in Graph (the sandbox drops them).
        row.refetched(&deleted).await;
        row.gone(&junk_message).await;
        row.refetched(&search).await;
        row.untouched(&[&inbox, &sent, &sent_folder, &alex_junk])
            .await;
    }

    // --- emailfolders_mark_all_as_read (Inbox)
    {
        let row = b.row("emailfolders_mark_all_as_read");
        let get_unread = b.adele("email_get", json!({"email_id": unread_id}));
        row.prime(&[
            &inbox,
            &inbox_folder,
            &top,
            &tree,
            &get_unread,
            &sent,
            &get_sent,
            &sent_folder,
            &below_inbox,
            &alex_inbox,
        ])
        .await;
        assert!(
            int(&row.fresh(&inbox_folder).await, "unreadItemCount") > 0,
            "{row} precondition"
        );
        assert_eq!(row.fresh(&get_unread).await["isRead"], false, "{row}");
        row.write(
            "emailfolders_mark_all_as_read",
            json!({"folder_id": "inbox"}),
        )
        .await;
        let listed = row.refetched(&inbox).await;
        assert!(
            items(&listed).iter().all(|m| m["isRead"] == true),
            "{row} every listed message is read: {listed}"
        );
        assert_eq!(
            int(&row.refetched(&inbox_folder).await, "unreadItemCount"),
            0,
            "{row}"
        );
        let listed = row.refetched(&top).await;
        assert_eq!(
            int(find(&listed, &inbox_id).unwrap(), "unreadItemCount"),
            0,
            "{row} emailfolders_list counts"
        );
        row.refetched(&tree).await;
        assert_eq!(row.refetched(&get_unread).await["isRead"], true, "{row}");
        // Other folders, their messages and Inbox's child listing stay.
        row.untouched(&[&sent, &get_sent, &sent_folder, &below_inbox, &alex_inbox])
            .await;
    }

    // --- emailfolders_delete (the folder made above, with a message in it)
    {
        let row = b.row("emailfolders_delete");
        let in_folder = b.adele("email_get", json!({"email_id": message_in_folder}));
        row.prime(&[
            &below_archive,
            &archive_folder,
            &folder,
            &tree,
            &folder_messages,
            &in_folder,
            &inbox,
            &sent,
            &alex_folders,
        ])
        .await;
        assert_eq!(
            row.fresh(&folder_messages).await["count"],
            1,
            "{row} precondition"
        );
        let archive_children = int(&row.fresh(&archive_folder).await, "childFolderCount");
        row.write(
            "emailfolders_delete",
            json!({"folder_id": folder_id, "confirm": true}),
        )
        .await;
        assert!(
            !has_id(&row.refetched(&below_archive).await, &folder_id),
            "{row}"
        );
        assert_eq!(
            int(&row.refetched(&archive_folder).await, "childFolderCount"),
            archive_children - 1,
            "{row}"
        );
        let shown = row.refetched(&tree).await;
        assert!(
            !tree_has(&shown["folders"], &folder_id, "Echidna 2"),
            "{row}"
        );
        row.gone(&folder).await;
        row.gone(&folder_messages).await;
        row.gone(&in_folder).await;
        row.untouched(&[&inbox, &sent, &alex_folders]).await;
    }
}

// ---------------------------------------------------------------------------
// Message rules

/// Row `emailrules_* writes`: emailrules_list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rule_rows() {
    let b = Bench::start().await;
    let rules = b.adele("emailrules_list", json!({}));
    let folders = b.adele("emailfolders_list", json!({}));
    let inbox = b.adele("email_list", json!({"limit": 5}));
    let alex_rules = b.alex("emailrules_list", json!({}));
    let names = |listed: &Value| -> Vec<String> {
        items(listed)
            .iter()
            .map(|r| r["displayName"].as_str().unwrap().to_string())
            .collect()
    };

    // (tool, arguments, what the listing then shows)
    type Check = fn(&[String]) -> bool;
    let rows: [(&str, Value, Check); 7] = [
        (
            "emailrules_create",
            json!({"display_name": "Kiwi rule", "sequence": 10, "conditions": {"subjectContains": ["kiwi"]}, "actions": {"markAsRead": true}}),
            |n| n.last().is_some_and(|l| l == "Kiwi rule"),
        ),
        (
            "emailrules_update",
            json!({"display_name": "Kiwi rule 2"}),
            |n| n.iter().any(|l| l == "Kiwi rule 2") && !n.iter().any(|l| l == "Kiwi rule"),
        ),
        ("emailrules_move_top", json!({}), |n| n[0] == "Kiwi rule 2"),
        ("emailrules_move_down", json!({}), |n| n[1] == "Kiwi rule 2"),
        ("emailrules_move_bottom", json!({}), |n| {
            n.last().is_some_and(|l| l == "Kiwi rule 2")
        }),
        ("emailrules_move_up", json!({}), |n| {
            n[n.len() - 2] == "Kiwi rule 2"
        }),
        ("emailrules_delete", json!({"confirm": true}), |n| {
            !n.iter().any(|l| l.starts_with("Kiwi"))
        }),
    ];
    let mut rule_id = None::<String>;
    for (tool, mut args, shows) in rows {
        let row = b.row(tool);
        row.prime(&[&rules, &folders, &inbox, &alex_rules]).await;
        let before = names(&row.fresh(&rules).await);
        assert!(!shows(&before), "{row} precondition: {before:?}");
        if let Some(id) = &rule_id {
            args["rule_id"] = json!(id);
        }
        let written = row.write(tool, args).await;
        if tool == "emailrules_create" {
            rule_id = Some(written["id"].as_str().unwrap().to_string());
        }
        let after = names(&row.refetched(&rules).await);
        assert!(
            shows(&after),
            "{row} the listing shows the change: {after:?}"
        );
        row.untouched(&[&folders, &inbox, &alex_rules]).await;
    }
}

// ---------------------------------------------------------------------------
// Calendar

/// Rows `calendar_create_event / update / delete / respond / propose /
/// forward` (calendar_list_events, calendar_get_event of that id,
/// search_events) and `calendar_create_calendar / delete_calendar`
/// (calendar_list_calendars).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_rows() {
    let b = Bench::start().await;
    let week = b
        .look("calendar_list_events", json!({"days_ahead": 7}))
        .await;
    let standup = items(&week)
        .iter()
        .find(|e| e["subject"] == "Daily stand-up" && e["isOrganizer"] == false)
        .expect("an occurrence of a meeting someone else organises")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other_event = items(&week)
        .iter()
        .find(|e| e["subject"] != "Daily stand-up")
        .expect("another event this week")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let at = |days: i64, hour: u8| -> String {
        let day = time::OffsetDateTime::now_utc().date() + time::Duration::days(days);
        format!("{day}T{hour:02}:00:00Z")
    };

    let events = b.adele("calendar_list_events", json!({"days_ahead": 7}));
    let search = b.adele(
        "search_events",
        json!({"query": "Wallaby", "days_back": 1, "days_ahead": 30}),
    );
    let search_standup = b.adele(
        "search_events",
        json!({"query": "stand-up", "days_back": 30, "days_ahead": 30}),
    );
    let calendars = b.adele("calendar_list_calendars", json!({}));
    let get_other = b.adele("calendar_get_event", json!({"event_id": other_event}));
    let get_standup = b.adele("calendar_get_event", json!({"event_id": standup}));
    let contacts = b.adele("contact_list", json!({"limit": 5}));
    let alex_events = b.alex("calendar_list_events", json!({"days_ahead": 7}));
    let alex_calendars = b.alex("calendar_list_calendars", json!({}));

    // --- calendar_create_event
    let new_id = {
        let row = b.row("calendar_create_event");
        row.prime(&[
            &events,
            &search,
            &calendars,
            &get_other,
            &contacts,
            &alex_events,
        ])
        .await;
        assert_eq!(row.fresh(&search).await["count"], 0, "{row} precondition");
        let created = row
            .write(
                "calendar_create_event",
                json!({"subject": "Wallaby review", "start": at(2, 10), "end": at(2, 11)}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        let listed = row.refetched(&events).await;
        assert!(has_id(&listed, &id), "{row} listed: {listed}");
        let found = row.refetched(&search).await;
        assert!(has_id(&found, &id), "{row} found: {found}");
        row.untouched(&[&calendars, &get_other, &contacts, &alex_events])
            .await;
        id
    };
    let get_new = b.adele("calendar_get_event", json!({"event_id": new_id}));

    // --- calendar_update_event
    {
        let row = b.row("calendar_update_event");
        row.prime(&[
            &events,
            &get_new,
            &search,
            &calendars,
            &get_other,
            &alex_events,
        ])
        .await;
        row.write(
            "calendar_update_event",
            json!({"event_id": new_id, "updates": {"subject": "Wallaby review (moved)"}}),
        )
        .await;
        let renamed = |v: &Value| v["subject"] == "Wallaby review (moved)";
        let listed = row.refetched(&events).await;
        assert!(find(&listed, &new_id).is_some_and(renamed), "{row}");
        assert!(renamed(&row.refetched(&get_new).await), "{row}");
        let found = row.refetched(&search).await;
        assert!(find(&found, &new_id).is_some_and(renamed), "{row}");
        row.untouched(&[&calendars, &get_other, &alex_events]).await;
    }

    // --- calendar_respond_event, calendar_propose_new_time (the stand-up)
    let responses = [
        (
            "calendar_respond_event",
            json!({"event_id": standup, "response": "accept"}),
            "accepted",
        ),
        (
            "calendar_propose_new_time",
            json!({"event_id": standup, "proposed_start": at(3, 16), "proposed_end": at(3, 17)}),
            "tentativelyAccepted",
        ),
    ];
    for (tool, args, response) in responses {
        let row = b.row(tool);
        row.prime(&[
            &events,
            &get_standup,
            &search_standup,
            &calendars,
            &get_new,
            &alex_events,
        ])
        .await;
        assert_ne!(
            row.fresh(&get_standup).await["responseStatus"]["response"],
            response,
            "{row} precondition"
        );
        row.write(tool, args).await;
        let got = row.refetched(&get_standup).await;
        assert_eq!(got["responseStatus"]["response"], response, "{row} {got}");
        let listed = row.refetched(&events).await;
        assert_eq!(
            find(&listed, &standup).unwrap()["responseStatus"]["response"],
            response,
            "{row}"
        );
        row.refetched(&search_standup).await;
        row.untouched(&[&calendars, &get_new, &alex_events]).await;
    }

    // --- calendar_forward_event (nothing the reads show changes; they are re-read)
    {
        let row = b.row("calendar_forward_event");
        row.prime(&[
            &events,
            &get_new,
            &search,
            &calendars,
            &get_standup,
            &alex_events,
        ])
        .await;
        row.write(
            "calendar_forward_event",
            json!({"event_id": new_id, "to": "pat@example.com", "confirm": true}),
        )
        .await;
        assert!(has_id(&row.refetched(&events).await, &new_id), "{row}");
        assert_eq!(
            row.refetched(&get_new).await["id"],
            new_id.as_str(),
            "{row}"
        );
        assert!(has_id(&row.refetched(&search).await, &new_id), "{row}");
        row.untouched(&[&calendars, &get_standup, &alex_events])
            .await;
    }

    // --- calendar_delete_event
    {
        let row = b.row("calendar_delete_event");
        row.prime(&[
            &events,
            &get_new,
            &search,
            &calendars,
            &get_standup,
            &alex_events,
        ])
        .await;
        row.write(
            "calendar_delete_event",
            json!({"event_id": new_id, "confirm": true}),
        )
        .await;
        assert!(!has_id(&row.refetched(&events).await, &new_id), "{row}");
        row.gone(&get_new).await;
        assert_eq!(row.refetched(&search).await["count"], 0, "{row}");
        row.untouched(&[&calendars, &get_standup, &alex_events])
            .await;
    }

    // --- calendar_create_calendar
    let calendar_id = {
        let row = b.row("calendar_create_calendar");
        row.prime(&[
            &calendars,
            &events,
            &get_standup,
            &search_standup,
            &alex_calendars,
        ])
        .await;
        let made = row
            .write("calendar_create_calendar", json!({"name": "Koala plans"}))
            .await;
        let listed = row.refetched(&calendars).await;
        assert!(has(&listed, "name", "Koala plans"), "{row} {listed}");
        row.untouched(&[&events, &get_standup, &search_standup, &alex_calendars])
            .await;
        made["id"].as_str().unwrap().to_string()
    };

    // --- calendar_delete_calendar
    {
        let row = b.row("calendar_delete_calendar");
        row.prime(&[&calendars, &contacts, &alex_calendars, &alex_events])
            .await;
        row.write(
            "calendar_delete_calendar",
            json!({"calendar_id": calendar_id, "confirm": true}),
        )
        .await;
        let listed = row.refetched(&calendars).await;
        assert!(!has(&listed, "name", "Koala plans"), "{row} {listed}");
        // Its events may have shown anywhere, so event entries go too (more
        // than the row names); other resources and accounts stay.
        row.untouched(&[&contacts, &alex_calendars, &alex_events])
            .await;
    }
}

// ---------------------------------------------------------------------------
// Contacts

/// Row `contact_create / update / delete / add_to_list / create_list`:
/// contact_list, contact_get of that id, search_contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_rows() {
    let b = Bench::start().await;
    let seeded = ids(&b.look("contact_list", json!({"limit": 1})).await).remove(0);

    let contacts = b.adele("contact_list", json!({"limit": 500}));
    let search = b.adele("search_contacts", json!({"query": "Quoll"}));
    let get_seeded = b.adele("contact_get", json!({"contact_id": seeded}));
    let calendars = b.adele("calendar_list_calendars", json!({}));
    let alex_contacts = b.alex("contact_list", json!({"limit": 500}));
    let untouched = [&get_seeded, &calendars, &alex_contacts];

    // --- contact_create
    let id = {
        let row = b.row("contact_create");
        row.prime(&[&contacts, &search, &get_seeded, &calendars, &alex_contacts])
            .await;
        assert_eq!(row.fresh(&search).await["count"], 0, "{row} precondition");
        let created = row
            .write(
                "contact_create",
                json!({"given_name": "Quoll", "surname": "Spotted", "email_addresses": "quoll@example.com"}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        assert!(has_id(&row.refetched(&contacts).await, &id), "{row}");
        assert!(has_id(&row.refetched(&search).await, &id), "{row}");
        row.untouched(&untouched).await;
        id
    };
    let get_new = b.adele("contact_get", json!({"contact_id": id}));

    // --- contact_update
    {
        let row = b.row("contact_update");
        row.prime(&[
            &contacts,
            &get_new,
            &search,
            &get_seeded,
            &calendars,
            &alex_contacts,
        ])
        .await;
        row.write(
            "contact_update",
            json!({"contact_id": id, "updates": {"companyName": "Fabrikam"}}),
        )
        .await;
        let at_fabrikam = |c: &Value| c["companyName"] == "Fabrikam";
        assert!(at_fabrikam(&row.refetched(&get_new).await), "{row}");
        let listed = row.refetched(&contacts).await;
        assert!(find(&listed, &id).is_some_and(at_fabrikam), "{row}");
        let found = row.refetched(&search).await;
        assert!(find(&found, &id).is_some_and(at_fabrikam), "{row}");
        row.untouched(&untouched).await;
    }

    // --- contact_create_list (a new contact folder: nothing listed changes,
    // the entries are re-read)
    let list_id = {
        let row = b.row("contact_create_list");
        row.prime(&[
            &contacts,
            &search,
            &get_new,
            &get_seeded,
            &calendars,
            &alex_contacts,
        ])
        .await;
        let list = row
            .write("contact_create_list", json!({"list_name": "Marsupials"}))
            .await;
        assert!(has_id(&row.refetched(&contacts).await, &id), "{row}");
        assert!(has_id(&row.refetched(&search).await, &id), "{row}");
        // A new folder shows no contact: contact_get entries stay.
        row.untouched(&[&get_new, &get_seeded, &calendars, &alex_contacts])
            .await;
        list["id"].as_str().unwrap().to_string()
    };

    // --- contact_add_to_list
    {
        let row = b.row("contact_add_to_list");
        row.prime(&[
            &contacts,
            &get_new,
            &search,
            &get_seeded,
            &calendars,
            &alex_contacts,
        ])
        .await;
        let added = row
            .write(
                "contact_add_to_list",
                json!({"contact_id": id, "list_id": list_id}),
            )
            .await;
        assert_eq!(added["status"], "added", "{row} {added}");
        row.refetched(&contacts).await;
        assert_eq!(row.refetched(&get_new).await["id"], id.as_str(), "{row}");
        row.refetched(&search).await;
        assert!(
            b.state()["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["parentFolderId"] == list_id.as_str() && c["givenName"] == "Quoll"),
            "{row} the list holds a copy"
        );
        row.untouched(&untouched).await;
    }

    // --- contact_delete
    {
        let row = b.row("contact_delete");
        row.prime(&[
            &contacts,
            &get_new,
            &search,
            &get_seeded,
            &calendars,
            &alex_contacts,
        ])
        .await;
        row.write("contact_delete", json!({"contact_id": id, "confirm": true}))
            .await;
        assert!(!has_id(&row.refetched(&contacts).await, &id), "{row}");
        row.gone(&get_new).await;
        assert!(!has_id(&row.refetched(&search).await, &id), "{row}");
        row.untouched(&untouched).await;
    }
}

// ---------------------------------------------------------------------------
// OneDrive

/// Rows `file_create / update / delete / copy / move / rename, folder_create
/// / delete / rename / move` (file_list and folder_list of the parent(s),
/// folder_get(_tree), folder_get of that id, search_files) and `file_share`
/// (nothing cached changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_rows() {
    let local = tempfile::tempdir().unwrap();
    let root = local.path().canonicalize().unwrap();
    let b = Bench::start_with(&[("MCP_FILE_ALLOWED_ROOTS", root.to_str().unwrap())]).await;
    let small = root.join("quokka.txt");
    std::fs::write(&small, b"first").unwrap();
    let larger = root.join("quokka-2.txt");
    std::fs::write(&larger, b"second, longer version").unwrap();

    // Three folders, none inside another (leaves of the tree): A and B are
    // written in, C is only read.
    fn leaves(nodes: &Value, out: &mut Vec<Value>) {
        for node in nodes.as_array().into_iter().flatten() {
            if node["children"].as_array().is_none_or(Vec::is_empty) {
                out.push(node.clone());
            }
            leaves(&node["children"], out);
        }
    }
    let mut found = Vec::new();
    leaves(
        &b.look("folder_get_tree", json!({})).await["folders"],
        &mut found,
    );
    assert!(found.len() >= 3, "the seeded drive has three leaf folders");
    let [a, b_folder, c] = [0, 1, 2].map(|i| found[i].clone());
    let id_of = |f: &Value| f["id"].as_str().unwrap().to_string();
    let (a_id, b_id, c_id) = (id_of(&a), id_of(&b_folder), id_of(&c));
    let a_path = a["path"].as_str().unwrap().to_string();

    let files_a = b.adele("file_list", json!({"folder_id": a_id}));
    let folders_a = b.adele("folder_list", json!({"folder_id": a_id}));
    let get_a = b.adele("folder_get", json!({"folder_id": a_id}));
    let files_b = b.adele("file_list", json!({"folder_id": b_id}));
    let folders_b = b.adele("folder_list", json!({"folder_id": b_id}));
    let get_b = b.adele("folder_get", json!({"folder_id": b_id}));
    let tree = b.adele("folder_get_tree", json!({}));
    let search = b.adele("search_files", json!({"query": "quokka"}));
    let files_c = b.adele("file_list", json!({"folder_id": c_id}));
    let get_c = b.adele("folder_get", json!({"folder_id": c_id}));
    let mail = b.adele("email_list", json!({"limit": 5}));
    let alex_files = b.alex("file_list", json!({}));
    let untouched = [&files_c, &get_c, &mail, &alex_files];
    // What a write in A (or B) invalidates, less the written item's own entries.
    let in_a = [&files_a, &folders_a, &get_a, &tree, &search];
    let in_b = [&files_b, &folders_b, &get_b, &tree, &search];
    let child_count = |v: &Value| int(v, "child_count");
    let named = |v: &Value, id: &str, name: &str| find(v, id).is_some_and(|i| i["name"] == name);

    fn tree_has(nodes: &Value, id: &str) -> bool {
        nodes
            .as_array()
            .into_iter()
            .flatten()
            .any(|n| n["id"] == id || tree_has(&n["children"], id))
    }

    // --- file_create (in A, by path)
    let file_id = {
        let row = b.row("file_create");
        row.prime(&reads(&[&in_a, &untouched])).await;
        let children = child_count(&row.fresh(&get_a).await);
        assert_eq!(row.fresh(&search).await["count"], 0, "{row} precondition");
        let created = row
            .write(
                "file_create",
                json!({"onedrive_path": format!("{a_path}/quokka.txt"), "local_file_path": small}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_string();
        assert!(
            named(&row.refetched(&files_a).await, &id, "quokka.txt"),
            "{row}"
        );
        row.refetched(&folders_a).await;
        assert_eq!(
            child_count(&row.refetched(&get_a).await),
            children + 1,
            "{row}"
        );
        row.refetched(&tree).await;
        assert!(
            named(&row.refetched(&search).await, &id, "quokka.txt"),
            "{row}"
        );
        row.untouched(&untouched).await;
        id
    };

    // --- file_update
    {
        let row = b.row("file_update");
        row.prime(&reads(&[&in_a, &untouched])).await;
        row.write(
            "file_update",
            json!({"file_id": file_id, "local_file_path": larger}),
        )
        .await;
        let size = 22; // "second, longer version"
        let listed = row.refetched(&files_a).await;
        assert_eq!(find(&listed, &file_id).unwrap()["size"], size, "{row}");
        row.refetched(&folders_a).await;
        row.refetched(&get_a).await;
        row.refetched(&tree).await;
        let found = row.refetched(&search).await;
        assert_eq!(find(&found, &file_id).unwrap()["size"], size, "{row}");
        row.untouched(&untouched).await;
    }

    // --- file_rename
    {
        let row = b.row("file_rename");
        row.prime(&reads(&[&in_a, &untouched])).await;
        row.write(
            "file_rename",
            json!({"file_id": file_id, "new_name": "quokka renamed.txt"}),
        )
        .await;
        assert!(
            named(
                &row.refetched(&files_a).await,
                &file_id,
                "quokka renamed.txt"
            ),
            "{row}"
        );
        row.refetched(&folders_a).await;
        row.refetched(&get_a).await;
        row.refetched(&tree).await;
        assert!(
            named(
                &row.refetched(&search).await,
                &file_id,
                "quokka renamed.txt"
            ),
            "{row}"
        );
        row.untouched(&untouched).await;
    }

    // --- file_copy (A → B)
    let copy_id = {
        let row = b.row("file_copy");
        row.prime(&reads(&[&in_b, &untouched])).await;
        let children = child_count(&row.fresh(&get_b).await);
        let copied = row
            .write(
                "file_copy",
                json!({"file_id": file_id, "destination_folder_id": b_id, "new_name": "quokka copy.txt"}),
            )
            .await;
        assert_eq!(copied["status"], "completed", "{row} {copied}");
        let id = copied["id"].as_str().unwrap().to_string();
        assert!(
            named(&row.refetched(&files_b).await, &id, "quokka copy.txt"),
            "{row}"
        );
        row.refetched(&folders_b).await;
        assert_eq!(
            child_count(&row.refetched(&get_b).await),
            children + 1,
            "{row}"
        );
        row.refetched(&tree).await;
        assert!(has_id(&row.refetched(&search).await, &id), "{row}");
        row.untouched(&untouched).await;
        id
    };

    // --- file_move (A → B)
    {
        let row = b.row("file_move");
        row.prime(&reads(&[&in_a, &in_b, &untouched])).await;
        let (in_a, in_b) = (
            child_count(&row.fresh(&get_a).await),
            child_count(&row.fresh(&get_b).await),
        );
        row.write(
            "file_move",
            json!({"file_id": file_id, "destination_folder_id": b_id}),
        )
        .await;
        assert!(!has_id(&row.refetched(&files_a).await, &file_id), "{row}");
        assert!(has_id(&row.refetched(&files_b).await, &file_id), "{row}");
        row.refetched(&folders_a).await;
        row.refetched(&folders_b).await;
        assert_eq!(child_count(&row.refetched(&get_a).await), in_a - 1, "{row}");
        assert_eq!(child_count(&row.refetched(&get_b).await), in_b + 1, "{row}");
        row.refetched(&tree).await;
        let found = row.refetched(&search).await;
        assert_eq!(
            find(&found, &file_id).unwrap()["parent_id"],
            b_id.as_str(),
            "{row} {found}"
        );
        row.untouched(&untouched).await;
    }

    // --- file_delete (the copy, in B)
    {
        let row = b.row("file_delete");
        row.prime(&reads(&[&in_b, &untouched])).await;
        let children = child_count(&row.fresh(&get_b).await);
        row.write("file_delete", json!({"file_id": copy_id, "confirm": true}))
            .await;
        assert!(!has_id(&row.refetched(&files_b).await, &copy_id), "{row}");
        row.refetched(&folders_b).await;
        assert_eq!(
            child_count(&row.refetched(&get_b).await),
            children - 1,
            "{row}"
        );
        row.refetched(&tree).await;
        assert!(!has_id(&row.refetched(&search).await, &copy_id), "{row}");
        row.untouched(&untouched).await;
    }

    // --- folder_create (in A)
    let dir_id = {
        let row = b.row("folder_create");
        row.prime(&reads(&[&in_a, &untouched])).await;
        let children = child_count(&row.fresh(&get_a).await);
        let made = row
            .write(
                "folder_create",
                json!({"name": "Quokka dir", "parent_folder_id": a_id}),
            )
            .await;
        let id = made["id"].as_str().unwrap().to_string();
        assert!(has_id(&row.refetched(&files_a).await, &id), "{row}");
        assert!(
            named(&row.refetched(&folders_a).await, &id, "Quokka dir"),
            "{row}"
        );
        assert_eq!(
            child_count(&row.refetched(&get_a).await),
            children + 1,
            "{row}"
        );
        assert!(
            tree_has(&row.refetched(&tree).await["folders"], &id),
            "{row}"
        );
        assert!(has_id(&row.refetched(&search).await, &id), "{row}");
        row.untouched(&untouched).await;
        id
    };
    let get_dir = b.adele("folder_get", json!({"folder_id": dir_id}));

    // --- folder_rename
    {
        let row = b.row("folder_rename");
        row.prime(&reads(&[&in_a, &[&get_dir], &untouched])).await;
        row.write(
            "folder_rename",
            json!({"folder_id": dir_id, "new_name": "Quokka dir 2"}),
        )
        .await;
        assert!(
            named(&row.refetched(&files_a).await, &dir_id, "Quokka dir 2"),
            "{row}"
        );
        assert!(
            named(&row.refetched(&folders_a).await, &dir_id, "Quokka dir 2"),
            "{row}"
        );
        assert_eq!(
            row.refetched(&get_dir).await["name"],
            "Quokka dir 2",
            "{row}"
        );
        row.refetched(&tree).await;
        assert!(
            named(&row.refetched(&search).await, &dir_id, "Quokka dir 2"),
            "{row}"
        );
        row.untouched(&untouched).await;
    }

    // --- folder_move (A → B)
    {
        let row = b.row("folder_move");
        row.prime(&reads(&[&in_a, &in_b, &[&get_dir], &untouched]))
            .await;
        row.write(
            "folder_move",
            json!({"folder_id": dir_id, "destination_folder_id": b_id}),
        )
        .await;
        assert!(!has_id(&row.refetched(&files_a).await, &dir_id), "{row}");
        assert!(!has_id(&row.refetched(&folders_a).await, &dir_id), "{row}");
        assert!(has_id(&row.refetched(&files_b).await, &dir_id), "{row}");
        assert!(has_id(&row.refetched(&folders_b).await, &dir_id), "{row}");
        row.refetched(&get_a).await;
        row.refetched(&get_b).await;
        assert_eq!(
            row.refetched(&get_dir).await["parent_id"],
            b_id.as_str(),
            "{row}"
        );
        row.refetched(&tree).await;
        let found = row.refetched(&search).await;
        assert_eq!(
            find(&found, &dir_id).unwrap()["parent_id"],
            b_id.as_str(),
            "{row} {found}"
        );
        row.untouched(&untouched).await;
    }

    // --- folder_delete (in B)
    {
        let row = b.row("folder_delete");
        row.prime(&reads(&[&in_b, &[&get_dir], &untouched])).await;
        row.write(
            "folder_delete",
            json!({"folder_id": dir_id, "confirm": true}),
        )
        .await;
        assert!(!has_id(&row.refetched(&files_b).await, &dir_id), "{row}");
        assert!(!has_id(&row.refetched(&folders_b).await, &dir_id), "{row}");
        row.refetched(&get_b).await;
        row.gone(&get_dir).await;
        assert!(
            !tree_has(&row.refetched(&tree).await["folders"], &dir_id),
            "{row}"
        );
        assert!(!has_id(&row.refetched(&search).await, &dir_id), "{row}");
        row.untouched(&untouched).await;
    }

    // --- file_share: nothing cached changes
    {
        let row = b.row("file_share");
        let everything = reads(&[&in_a, &in_b, &untouched]);
        row.prime(&everything).await;
        let shared = row
            .write(
                "file_share",
                json!({"file_id": file_id, "scope": "organization"}),
            )
            .await;
        assert!(shared["link"].as_str().is_some(), "{row} {shared}");
        row.untouched(&everything).await;
    }
}
