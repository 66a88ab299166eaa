//! Mail reads: messages in a folder, one message, mail folders.
//!
//! Answers are kept small by default: list items carry `bodyPreview`, full
//! bodies come only when asked and are cut at `body_max_length` with a note
//! saying how much was cut.

use std::sync::Arc;

use m365_graph::{RequestOptions, encode_segment, validate_id};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::{check_range, default_true};
use super::{Cache, READ, ToolDef, ToolResult, listed_ids};
use crate::app::App;
use m365_store::{AccountRecord, Dependencies};

/// Friendly folder names and the well-known names Graph uses for them.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("inbox", "inbox"),
    ("sent", "sentitems"),
    ("sentitems", "sentitems"),
    ("drafts", "drafts"),
    ("deleted", "deleteditems"),
    ("deleteditems", "deleteditems"),
    ("junk", "junkemail"),
    ("junkemail", "junkemail"),
    ("archive", "archive"),
    ("outbox", "outbox"),
];

/// The Graph path segment of a folder given by id or by (well-known) name.
pub fn folder_segment(
    folder: Option<&str>,
    folder_id: Option<&str>,
) -> Result<String, crate::ToolError> {
    if let Some(id) = folder_id.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(encode_segment(validate_id("folder_id", id)?));
    }
    let name = folder
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("inbox");
    let lower = name.to_ascii_lowercase();
    if let Some((_, graph_name)) = WELL_KNOWN.iter().find(|(k, _)| *k == lower) {
        return Ok((*graph_name).to_string());
    }
    // Anything else is taken as a folder id, as Graph accepts either.
    Ok(encode_segment(validate_id("folder", name)?))
}

/// Listing fields: what a person scanning a folder needs. Long ids that
/// repeat on every item (folder, conversation) and links are left to
/// email_get, so a page of 50 stays small.
const LIST_FIELDS: &str = "id,subject,from,toRecipients,receivedDateTime,hasAttachments,isRead,importance,\
flag,categories,bodyPreview,parentFolderId";
const BODY_FIELDS: &str = ",ccRecipients,body";
const FOLDER_FIELDS: &str =
    "id,displayName,parentFolderId,childFolderCount,unreadItemCount,totalItemCount,isHidden";

/// Parameters of `email_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailListParams {
    /// Folder name: inbox, sent, drafts, deleted, junk, archive (or a folder id).
    #[serde(default = "default_folder")]
    pub folder: Option<String>,
    /// Folder id (wins over `folder`).
    #[serde(default)]
    pub folder_id: Option<String>,
    /// How many messages, newest first (1–200).
    #[serde(default = "default_list_limit")]
    pub limit: i64,
    /// Include each message's full body (otherwise `bodyPreview` only).
    #[serde(default)]
    pub include_body: bool,
    /// With include_body: cut each body after this many characters (100–500000).
    #[serde(default = "default_list_body_max")]
    pub body_max_length: i64,
}

fn default_folder() -> Option<String> {
    Some("inbox".into())
}
fn default_list_limit() -> i64 {
    10
}
fn default_list_body_max() -> i64 {
    10_000
}
fn default_get_body_max() -> i64 {
    50_000
}
fn default_folder_limit() -> i64 {
    100
}

/// Parameters of `email_get`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailGetParams {
    /// The message id.
    pub email_id: String,
    /// Include the body (as plain text).
    #[serde(default = "default_true")]
    pub include_body: bool,
    /// Cut the body after this many characters (1–500000).
    #[serde(default = "default_get_body_max")]
    pub body_max_length: i64,
    /// Include attachment names, sizes and types (not their content).
    #[serde(default = "default_true")]
    pub include_attachments: bool,
}

/// Parameters of `emailfolders_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FoldersListParams {
    /// List the children of this folder instead of the top level.
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// Include hidden folders.
    #[serde(default)]
    pub include_hidden: bool,
    /// How many folders (1–250).
    #[serde(default = "default_folder_limit")]
    pub limit: i64,
}

/// Parameters of `emailfolders_get`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderGetParams {
    /// Folder id or well-known name (inbox, sentitems, drafts, …).
    pub folder_id: String,
}

/// The mail read tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::account(
            "email_list",
            "List messages",
            "email",
            READ,
            Cache::Read { deps: list_deps },
            "List messages in a mail folder, newest first: sender, recipients, subject, date, read state, flag, \
             categories and a body preview. Set include_body for full plain-text bodies (cut at body_max_length).",
            email_list,
        ),
        ToolDef::account(
            "email_get",
            "Get a message",
            "email",
            READ,
            Cache::Read { deps: get_deps },
            "Get one message with its plain-text body (cut at body_max_length, saying how much was cut) and its \
             attachments' names, sizes and types.",
            email_get,
        ),
        ToolDef::account(
            "emailfolders_list",
            "List mail folders",
            "emailfolders",
            READ,
            Cache::Read { deps: folders_deps },
            "List mail folders (top level, or the children of parent_folder_id) with unread and total counts.",
            emailfolders_list,
        ),
        ToolDef::account(
            "emailfolders_get",
            "Get a mail folder",
            "emailfolders",
            READ,
            Cache::Read { deps: folder_deps },
            "Get one mail folder by id or well-known name (inbox, sentitems, drafts, deleteditems, junkemail, \
             archive) with its counts.",
            emailfolders_get,
        ),
    ]
}

/// An `email_list` entry depends on the folder it lists (by the name or id
/// asked for, and by the folder's real id) and on every message in it.
/// The container tag of every listing addressed by a folder id rather than
/// a well-known name. A write that lands mail in a well-known folder (Sent
/// Items, Deleted Items) knows the folder only by name, so it invalidates
/// these too: one of them may be that folder under its id.
pub const LISTED_BY_ID: &str = "(folder listed by id)";

fn list_deps(params: &Value, result: &Value) -> Dependencies {
    let by_id = params["folder_id"]
        .as_str()
        .filter(|s| !s.trim().is_empty());
    let folder = by_id.or(params["folder"].as_str()).unwrap_or("inbox");
    let mut deps = Dependencies::container(canonical_folder(folder)).with_items(listed_ids(result));
    if by_id.is_some_and(|id| well_known_name(id).is_none()) {
        deps = deps.with_container(LISTED_BY_ID);
    }
    if let Some(real) = result["folder_id"].as_str() {
        deps = deps.with_container(real);
    }
    deps
}

/// An `email_get` entry shows one message (in one folder).
fn get_deps(params: &Value, result: &Value) -> Dependencies {
    let deps = Dependencies::item(params["email_id"].as_str().unwrap_or_default().trim());
    match result["parentFolderId"].as_str() {
        Some(folder) => deps.with_container(folder),
        None => deps,
    }
}

/// An `emailfolders_list` entry lists folders.
fn folders_deps(_: &Value, result: &Value) -> Dependencies {
    Dependencies::none().with_items(listed_ids(result))
}

/// An `emailfolders_get` entry shows one folder (by the name asked for and its id).
fn folder_deps(params: &Value, result: &Value) -> Dependencies {
    let deps = Dependencies::item(canonical_folder(
        params["folder_id"].as_str().unwrap_or_default(),
    ));
    match result["id"].as_str() {
        Some(id) => deps.with_item(id),
        None => deps,
    }
}

/// The name a folder is known by in cache dependencies: Graph's well-known
/// name for friendly names, the id otherwise. Writes use the same form.
pub fn canonical_folder(folder: &str) -> String {
    let trimmed = folder.trim();
    let lower = trimmed.to_ascii_lowercase();
    WELL_KNOWN
        .iter()
        .find(|(k, _)| *k == lower)
        .map(|(_, graph)| (*graph).to_string())
        .unwrap_or_else(|| trimmed.to_string())
}

/// Graph's well-known name for a friendly or well-known folder name, if it is one.
pub fn well_known_name(folder: &str) -> Option<&'static str> {
    let lower = folder.trim().to_ascii_lowercase();
    WELL_KNOWN
        .iter()
        .find(|(k, _)| *k == lower)
        .map(|(_, graph)| *graph)
}

/// Cuts a message body's content at `max` characters, saying how much was cut.
pub fn truncate_body(message: &mut Value, max: usize) {
    let Some(body) = message.get_mut("body").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(content) = body.get("content").and_then(Value::as_str) else {
        return;
    };
    let total = content.chars().count();
    if total <= max {
        return;
    }
    let kept: String = content.chars().take(max).collect();
    body.insert(
        "content".into(),
        json!(format!(
            "{kept}\n\n[Content truncated: {} of {total} characters shown]",
            max
        )),
    );
    body.insert("truncated".into(), json!(true));
    body.insert("total_length".into(), json!(total));
}

async fn email_list(app: Arc<App>, account: AccountRecord, p: EmailListParams) -> ToolResult {
    let limit = check_range("limit", p.limit, 1, 200)?;
    let body_max = check_range("body_max_length", p.body_max_length, 100, 500_000)?;
    let folder = folder_segment(p.folder.as_deref(), p.folder_id.as_deref())?;
    let select = if p.include_body {
        format!("{LIST_FIELDS}{BODY_FIELDS}")
    } else {
        LIST_FIELDS.to_string()
    };
    let top = limit.min(100).to_string();
    let query = [
        ("$top", top.as_str()),
        ("$orderby", "receivedDateTime desc"),
        ("$select", select.as_str()),
    ];
    let options = RequestOptions {
        prefer_text_body: p.include_body,
        ..RequestOptions::default()
    };
    let mut items = app
        .graph
        .get_paged_with(
            &account.account_id,
            &format!("/me/mailFolders/{folder}/messages"),
            &query,
            limit,
            &options,
        )
        .await?;
    // The folder's real id once, not on every item.
    let folder_id = items
        .first()
        .and_then(|m| m["parentFolderId"].as_str())
        .map(str::to_string);
    for item in &mut items {
        truncate_body(item, body_max);
        if let Some(obj) = item.as_object_mut() {
            obj.remove("parentFolderId");
            obj.retain(|k, _| !k.starts_with("@odata."));
        }
    }
    Ok(json!({
        "value": items,
        "count": items.len(),
        "folder": folder,
        "folder_id": folder_id,
        "account_id": account.account_id,
    }))
}

async fn email_get(app: Arc<App>, account: AccountRecord, p: EmailGetParams) -> ToolResult {
    let body_max = check_range("body_max_length", p.body_max_length, 1, 500_000)?;
    let id = encode_segment(validate_id("email_id", p.email_id.trim())?);
    let mut query: Vec<(&str, &str)> = Vec::new();
    if p.include_attachments {
        query.push((
            "$expand",
            "attachments($select=id,name,size,contentType,isInline)",
        ));
    }
    let options = RequestOptions {
        prefer_text_body: true,
        ..RequestOptions::default()
    };
    let mut message = app
        .graph
        .get_with(
            &account.account_id,
            &format!("/me/messages/{id}"),
            &query,
            &options,
        )
        .await?;
    if let Some(obj) = message.as_object_mut() {
        obj.remove("@odata.context");
        if !p.include_body {
            obj.remove("body");
        }
        // Attachment content is fetched with email_get_attachment, never inline here.
        if let Some(attachments) = obj.get_mut("attachments").and_then(Value::as_array_mut) {
            for a in attachments {
                if let Some(a) = a.as_object_mut() {
                    a.remove("contentBytes");
                }
            }
        }
    }
    truncate_body(&mut message, body_max);
    Ok(message)
}

async fn emailfolders_list(
    app: Arc<App>,
    account: AccountRecord,
    p: FoldersListParams,
) -> ToolResult {
    let limit = check_range("limit", p.limit, 1, 250)?;
    let path = match p
        .parent_folder_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(parent) => format!(
            "/me/mailFolders/{}/childFolders",
            encode_segment(validate_id("parent_folder_id", parent)?)
        ),
        None => "/me/mailFolders".to_string(),
    };
    let top = limit.min(100).to_string();
    let mut query = vec![("$top", top.as_str()), ("$select", FOLDER_FIELDS)];
    if p.include_hidden {
        query.push(("includeHiddenFolders", "true"));
    }
    let folders = app
        .graph
        .get_paged(&account.account_id, &path, &query, limit)
        .await?;
    Ok(json!({ "value": folders, "count": folders.len(), "account_id": account.account_id }))
}

async fn emailfolders_get(app: Arc<App>, account: AccountRecord, p: FolderGetParams) -> ToolResult {
    let folder = folder_segment(Some(&p.folder_id), None)?;
    let mut value = app
        .graph
        .get(
            &account.account_id,
            &format!("/me/mailFolders/{folder}"),
            &[],
        )
        .await?;
    if let Some(obj) = value.as_object_mut() {
        obj.remove("@odata.context");
    }
    Ok(value)
}
