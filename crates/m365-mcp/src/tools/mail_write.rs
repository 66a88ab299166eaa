//! Mail writes: drafts, sending, replies and forwards, message updates,
//! moves, deletes, and saving attachments.
//!
//! Every tool that sends mail or deletes refuses without `confirm: true`,
//! and every argument (recipients, ids, local files) is checked before the
//! first Graph request. What each write changes in the cache is declared
//! beside it, from the ids it touched.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use m365_graph::{Method, RequestOptions, encode_segment, validate_id};
use m365_store::AccountRecord;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::args::default_true;
use super::files_local;
pub use super::item_args::{StringOrList, id_segment, is_address, require_confirm};
use super::mail::canonical_folder;
use super::{Cache, DESTRUCTIVE, Hints, Target, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

/// Most recipients (To and Cc together, after removing duplicates).
pub const MAX_RECIPIENTS: usize = 500;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Largest attachment sent or saved (25 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 25 * 1024 * 1024;
/// Attachments are sent inline while their total stays at or below this
/// (3 MiB); larger ones go through an upload session.
pub const INLINE_LIMIT: u64 = 3 * 1024 * 1024;

/// One recipient entry, `a@b.c` or `Name <a@b.c>`, as Graph's recipient.
fn recipient(param: &str, entry: &str) -> Result<(String, Value), ToolError> {
    let (name, address) = match entry.rsplit_once('<') {
        Some((name, rest)) if rest.trim_end().ends_with('>') => {
            let address = rest.trim_end().trim_end_matches('>').trim();
            (name.trim().trim_matches('"').trim(), address)
        }
        _ => ("", entry.trim()),
    };
    if !is_address(address) {
        return Err(ToolError::invalid(
            param,
            entry,
            "is not an e-mail address",
            "addresses like name@example.com or 'Name <name@example.com>'",
        ));
    }
    let mut email = json!({ "address": address });
    if !name.is_empty() {
        email["name"] = json!(name);
    }
    Ok((
        address.to_ascii_lowercase(),
        json!({ "emailAddress": email }),
    ))
}

/// Checks and de-duplicates To and Cc (case-insensitively, across both);
/// at least one To, at most [`MAX_RECIPIENTS`] in all.
pub fn recipients(
    to: &StringOrList,
    cc: Option<&StringOrList>,
) -> Result<(Vec<Value>, Vec<Value>), ToolError> {
    let mut seen: Vec<String> = Vec::new();
    let mut lists = [Vec::new(), Vec::new()];
    let sources = [("to", Some(to)), ("cc", cc)];
    for (i, (param, source)) in sources.into_iter().enumerate() {
        for entry in source.map(StringOrList::items).unwrap_or_default() {
            let (key, value) = recipient(param, &entry)?;
            if !seen.contains(&key) {
                seen.push(key);
                lists[i].push(value);
            }
        }
    }
    let [to_list, cc_list] = lists;
    if to_list.is_empty() {
        return Err(ToolError::invalid(
            "to",
            "",
            "at least one recipient is required",
            "one or more e-mail addresses",
        ));
    }
    if seen.len() > MAX_RECIPIENTS {
        return Err(ToolError::invalid(
            "to",
            &format!("{} recipients", seen.len()),
            "too many recipients",
            &format!("at most {MAX_RECIPIENTS} distinct addresses across to and cc"),
        ));
    }
    Ok((to_list, cc_list))
}

/// A local file to attach.
#[derive(Debug)]
pub struct LocalAttachment {
    path: PathBuf,
    name: String,
    size: u64,
    content_type: &'static str,
    inline: bool,
}

/// Checks the attachments named by the user and decides how each is sent.
pub fn plan_attachments(list: Option<&StringOrList>) -> Result<Vec<LocalAttachment>, ToolError> {
    let entries = list.map(StringOrList::entries).unwrap_or_default();
    if entries.len() > MAX_ATTACHMENTS {
        return Err(ToolError::invalid(
            "attachments",
            &format!("{} files", entries.len()),
            "too many attachments",
            &format!("at most {MAX_ATTACHMENTS} files per message"),
        ));
    }
    let mut inline_total = 0u64;
    let mut planned = Vec::new();
    for entry in entries {
        let path = files_local::readable_file("attachments", &entry)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| {
                ToolError::invalid(
                    "attachments",
                    &entry,
                    &format!("cannot be read ({e})"),
                    "a readable local file",
                )
            })?
            .len();
        if size > MAX_ATTACHMENT_BYTES {
            return Err(ToolError::invalid(
                "attachments",
                &entry,
                &format!("is {size} bytes"),
                "files of at most 25 MiB",
            ));
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("attachment")
            .to_string();
        let inline = size < INLINE_LIMIT && inline_total + size <= INLINE_LIMIT;
        if inline {
            inline_total += size;
        }
        planned.push(LocalAttachment {
            content_type: files_local::content_type_for(&name),
            path,
            name,
            size,
            inline,
        });
    }
    Ok(planned)
}

async fn inline_json(attachment: &LocalAttachment) -> Result<Value, ToolError> {
    let bytes = tokio::fs::read(&attachment.path).await.map_err(|e| {
        ToolError::Unavailable(format!("Could not read {}: {e}", attachment.path.display()))
    })?;
    Ok(json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": attachment.name,
        "contentType": attachment.content_type,
        "contentBytes": base64::engine::general_purpose::STANDARD.encode(bytes),
    }))
}

async fn upload_attachment(
    app: &App,
    account: &str,
    message_segment: &str,
    attachment: &LocalAttachment,
) -> Result<(), ToolError> {
    let file = tokio::fs::File::open(&attachment.path).await.map_err(|e| {
        ToolError::Unavailable(format!("Could not read {}: {e}", attachment.path.display()))
    })?;
    app.graph
        .upload_large(
            account,
            &format!("/me/messages/{message_segment}/attachments/createUploadSession"),
            &json!({"AttachmentItem": {
                "attachmentType": "file",
                "name": attachment.name,
                "size": attachment.size,
                "contentType": attachment.content_type,
            }}),
            file,
            attachment.size,
            |_, _| {},
        )
        .await?;
    Ok(())
}

fn attachment_summary(planned: &[LocalAttachment]) -> Value {
    Value::Array(
        planned
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "size": a.size,
                    "contentType": a.content_type,
                    "sent_as": if a.inline { "inline" } else { "upload_session" },
                })
            })
            .collect(),
    )
}

/// Removes what a client does not need from a message Graph returned.
fn compact_message(mut message: Value) -> Value {
    if let Some(obj) = message.as_object_mut() {
        obj.remove("@odata.context");
        obj.remove("@odata.etag");
        obj.remove("body");
        obj.remove("uniqueBody");
    }
    message
}

fn message_resource(
    subject: &str,
    body: &str,
    to: Vec<Value>,
    cc: Vec<Value>,
    inline: Vec<Value>,
) -> Value {
    let mut message = json!({
        "subject": subject,
        "body": {"contentType": "Text", "content": body},
        "toRecipients": to,
    });
    if !cc.is_empty() {
        message["ccRecipients"] = Value::Array(cc);
    }
    if !inline.is_empty() {
        message["attachments"] = Value::Array(inline);
    }
    message
}

/// Creates a draft holding the message and all its attachments; returns it.
async fn create_full_draft(
    app: &App,
    account: &str,
    message: &Value,
    planned: &[LocalAttachment],
) -> ToolResult {
    let created = app
        .graph
        .post(account, "/me/messages", Some(message))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    if id.is_empty() {
        return Err(ToolError::Unavailable(
            "Graph created the draft but returned no id".into(),
        ));
    }
    let segment = encode_segment(&id);
    for attachment in planned.iter().filter(|a| !a.inline) {
        if let Err(e) = upload_attachment(app, account, &segment, attachment).await {
            // The message is incomplete: do not leave it behind as a draft.
            if let Err(cleanup) = app
                .graph
                .delete(account, &format!("/me/messages/{segment}"))
                .await
            {
                tracing::warn!(error = %cleanup, "could not remove an incomplete draft");
            }
            return Err(e);
        }
    }
    Ok(created)
}

async fn inline_attachments(planned: &[LocalAttachment]) -> Result<Vec<Value>, ToolError> {
    let mut out = Vec::new();
    for attachment in planned.iter().filter(|a| a.inline) {
        out.push(inline_json(attachment).await?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Parameters

/// Parameters of `email_create_draft`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftParams {
    /// Recipients: an address, a comma-separated string, or a list.
    pub to: StringOrList,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Cc recipients.
    #[serde(default)]
    pub cc: Option<StringOrList>,
    /// Absolute paths of local files to attach (inside MCP_FILE_ALLOWED_ROOTS; at most 10, 25 MiB each).
    #[serde(default)]
    pub attachments: Option<StringOrList>,
}

/// Parameters of `email_send`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendParams {
    /// Recipients: an address, a comma-separated string, or a list.
    pub to: StringOrList,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Cc recipients.
    #[serde(default)]
    pub cc: Option<StringOrList>,
    /// Absolute paths of local files to attach (inside MCP_FILE_ALLOWED_ROOTS; at most 10, 25 MiB each).
    #[serde(default)]
    pub attachments: Option<StringOrList>,
    /// Must be true: sending mail cannot be undone.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `email_update`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateParams {
    /// The message id.
    pub email_id: String,
    /// Properties to change: isRead, categories, importance (low|normal|high),
    /// flag {flagStatus, startDateTime, dueDateTime, completedDateTime},
    /// inferenceClassification (focused|other).
    pub updates: Map<String, Value>,
}

/// Parameters of tools acting on one message.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    /// The message id.
    pub email_id: String,
}

/// Parameters of `email_delete`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The message id.
    pub email_id: String,
    /// Must be true to delete.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `email_move`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveParams {
    /// The message id.
    pub email_id: String,
    /// Destination: a folder id or a well-known name (inbox, sent, drafts,
    /// deleted, junk, archive, or Graph's names such as deleteditems).
    pub destination_folder: String,
}

/// Parameters of `email_reply` and `email_reply_all`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyParams {
    /// The message replied to.
    pub email_id: String,
    /// Plain-text reply; the original is quoted below it.
    pub body: String,
    /// Must be true: sending mail cannot be undone.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `email_forward`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardParams {
    /// The message forwarded.
    pub email_id: String,
    /// Recipients: an address, a comma-separated string, or a list.
    pub to: StringOrList,
    /// Cc recipients.
    #[serde(default)]
    pub cc: Option<StringOrList>,
    /// A comment above the forwarded message.
    #[serde(default)]
    pub body: Option<String>,
    /// Must be true: sending mail cannot be undone.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `email_get_attachment`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentParams {
    /// The message id.
    pub email_id: String,
    /// The attachment id (from email_get).
    pub attachment_id: String,
    /// Absolute path of the new file, or of an existing directory to save
    /// into under the attachment's name (inside MCP_FILE_ALLOWED_ROOTS; never overwrites).
    pub save_path: String,
}

/// Parameters of `email_mark_read`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadParams {
    /// The message id.
    pub email_id: String,
    /// true marks read, false unread.
    #[serde(default = "default_true")]
    pub is_read: bool,
}

fn default_flag() -> String {
    "flagged".into()
}

/// Parameters of `email_flag`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagParams {
    /// The message id.
    pub email_id: String,
    /// flagged, complete or notFlagged.
    #[serde(default = "default_flag")]
    pub flag_status: String,
}

/// Parameters of `email_add_category`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryParams {
    /// The message id.
    pub email_id: String,
    /// Categories to add (kept alongside the ones already set).
    pub categories: StringOrList,
}

// ---------------------------------------------------------------------------
// Declarations

const SEND: Hints = WRITE;

/// The mail write tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::account(
            "email_create_draft",
            "Create a draft",
            "email",
            WRITE,
            Cache::Write {
                invalidates: draft_targets,
            },
            "Create a draft message in Drafts (plain-text body), optionally with local files attached. \
             Nothing is sent.",
            email_create_draft,
        ),
        ToolDef::account(
            "email_send",
            "Send an email",
            "email",
            SEND,
            Cache::Write {
                invalidates: sent_targets,
            },
            "Send a message (plain-text body) to the given recipients, optionally with local files \
             attached; a copy is kept in Sent Items. Requires confirm=true.",
            email_send,
        ),
        ToolDef::account(
            "email_update",
            "Update an email",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: changed_targets,
            },
            "Change a message's read state, categories, importance, follow-up flag or Focused/Other \
             classification.",
            email_update,
        ),
        ToolDef::account(
            "email_delete",
            "Delete an email",
            "email",
            DESTRUCTIVE,
            Cache::Write {
                invalidates: deleted_targets,
            },
            "Delete a message (it moves to Deleted Items). Requires confirm=true.",
            email_delete,
        ),
        ToolDef::account(
            "email_move",
            "Move an email",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: moved_targets,
            },
            "Move a message to any folder, by id or well-known name. The message gets a new id, \
             returned as new_id.",
            email_move,
        ),
        ToolDef::account(
            "email_reply",
            "Reply to an email",
            "email",
            SEND,
            Cache::Write {
                invalidates: sent_targets,
            },
            "Reply to the sender of a message; the original is quoted below the reply. Requires \
             confirm=true.",
            email_reply,
        ),
        ToolDef::account(
            "email_reply_all",
            "Reply to all",
            "email",
            SEND,
            Cache::Write {
                invalidates: sent_targets,
            },
            "Reply to the sender and all recipients of a message; the original is quoted below the \
             reply. Requires confirm=true.",
            email_reply_all,
        ),
        ToolDef::account(
            "email_forward",
            "Forward an email",
            "email",
            SEND,
            Cache::Write {
                invalidates: sent_targets,
            },
            "Forward a message (with its attachments) to new recipients, with an optional comment. \
             Requires confirm=true.",
            email_forward,
        ),
        ToolDef::account(
            "email_get_attachment",
            "Save an attachment",
            "email",
            WRITE,
            Cache::None,
            "Save a file attachment of a message to a new local file inside MCP_FILE_ALLOWED_ROOTS \
             (at most 25 MiB; existing files are never overwritten).",
            email_get_attachment,
        ),
        ToolDef::account(
            "email_mark_read",
            "Mark read or unread",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: changed_targets,
            },
            "Mark a message read (or unread with is_read=false).",
            email_mark_read,
        ),
        ToolDef::account(
            "email_flag",
            "Flag an email",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: changed_targets,
            },
            "Set a message's follow-up flag: flagged, complete or notFlagged.",
            email_flag,
        ),
        ToolDef::account(
            "email_add_category",
            "Add categories",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: changed_targets,
            },
            "Add categories to a message, keeping the ones it already has.",
            email_add_category,
        ),
        ToolDef::account(
            "email_archive",
            "Archive an email",
            "email",
            UPDATE,
            Cache::Write {
                invalidates: moved_targets,
            },
            "Move a message to the Archive folder. The message gets a new id, returned as new_id.",
            email_archive,
        ),
    ]
}

// ---------------------------------------------------------------------------
// What writes invalidate

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A new draft changes the Drafts listing and its counts.
fn draft_targets(_: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![
        Target::container("email_list", "drafts"),
        Target::item("emailfolders_get", "drafts"),
    ];
    if let Some(folder) = str_at(result, "parentFolderId") {
        targets.push(Target::container("email_list", folder));
        targets.push(Target::item("emailfolders_get", folder));
        targets.push(Target::item("emailfolders_list", folder));
    }
    targets
}

/// Sent mail lands in Sent Items and in search results.
fn sent_targets(_: &Value, _: &Value) -> Vec<Target> {
    vec![
        Target::container("email_list", "sentitems"),
        Target::container("email_list", super::mail::LISTED_BY_ID),
        Target::all("search_emails"),
    ]
}

/// A changed message: its own entry, every listing and search result
/// showing it (all searches when its text may have changed, since it may
/// now match others); its folder's counts when the read state changed.
fn changed_targets(params: &Value, result: &Value) -> Vec<Target> {
    let id = str_at(params, "email_id").unwrap_or_default();
    // email_update may change subject or body; read state, flag and
    // categories do not change which searches match.
    let searches = if params.get("updates").is_some() {
        Target::all("search_emails")
    } else {
        Target::item("search_emails", id)
    };
    let mut targets = vec![
        Target::item("email_get", id),
        Target::item("email_list", id),
        searches,
    ];
    let read_changed = params.get("is_read").is_some() || params["updates"].get("isRead").is_some();
    // Unread counts: the folder's own entries go. The tree is left to its
    // lifetime — it is fetched for structure, and rebuilding every folder
    // level after each message read would cost more than it shows.
    if read_changed && let Some(folder) = str_at(result, "parentFolderId") {
        targets.push(Target::item("emailfolders_get", folder));
        targets.push(Target::item("emailfolders_list", folder));
    }
    targets
}

fn folder_count_targets() -> [Target; 3] {
    [
        Target::all("emailfolders_list"),
        Target::all("emailfolders_get"),
        Target::all("emailfolders_get_tree"),
    ]
}

/// A deleted message leaves its entry and listings and lands in Deleted Items.
fn deleted_targets(params: &Value, _: &Value) -> Vec<Target> {
    let id = str_at(params, "email_id").unwrap_or_default();
    let mut targets = vec![
        Target::item("email_get", id),
        Target::item("email_list", id),
        Target::container("email_list", "deleteditems"),
        Target::container("email_list", super::mail::LISTED_BY_ID),
        Target::all("search_emails"),
    ];
    targets.extend(folder_count_targets());
    targets
}

/// A moved message leaves its source listings and lands in the destination.
fn moved_targets(params: &Value, result: &Value) -> Vec<Target> {
    let id = str_at(params, "email_id").unwrap_or_default();
    let mut targets = vec![
        Target::item("email_get", id),
        Target::item("email_list", id),
        Target::all("search_emails"),
    ];
    if let Some(dest) = str_at(result, "destination_folder") {
        targets.push(Target::container("email_list", dest));
    }
    if let Some(dest) = str_at(result, "destination_folder_id") {
        targets.push(Target::container("email_list", dest));
    }
    targets.extend(folder_count_targets());
    targets
}

// ---------------------------------------------------------------------------
// Handlers

async fn email_create_draft(app: Arc<App>, account: AccountRecord, p: DraftParams) -> ToolResult {
    let (to, cc) = recipients(&p.to, p.cc.as_ref())?;
    let planned = plan_attachments(p.attachments.as_ref())?;
    let inline = inline_attachments(&planned).await?;
    let message = message_resource(&p.subject, &p.body, to, cc, inline);
    let created = create_full_draft(&app, &account.account_id, &message, &planned).await?;
    let mut out = compact_message(created);
    out["status"] = json!("created");
    out["attachments"] = attachment_summary(&planned);
    Ok(out)
}

async fn email_send(app: Arc<App>, account: AccountRecord, p: SendParams) -> ToolResult {
    let (to, cc) = recipients(&p.to, p.cc.as_ref())?;
    let planned = plan_attachments(p.attachments.as_ref())?;
    require_confirm(p.confirm, "sending an email")?;
    let inline = inline_attachments(&planned).await?;
    let recipients_count = to.len() + cc.len();
    let message = message_resource(&p.subject, &p.body, to, cc, inline);
    if planned.iter().all(|a| a.inline) {
        app.graph
            .post(
                &account.account_id,
                "/me/sendMail",
                Some(&json!({"message": message, "saveToSentItems": true})),
            )
            .await?;
    } else {
        // Large files go through upload sessions on a draft, then the draft is sent.
        let draft = create_full_draft(&app, &account.account_id, &message, &planned).await?;
        let segment = encode_segment(draft["id"].as_str().unwrap_or_default());
        app.graph
            .post(
                &account.account_id,
                &format!("/me/messages/{segment}/send"),
                None,
            )
            .await?;
    }
    Ok(json!({
        "status": "sent",
        "subject": p.subject,
        "recipients": recipients_count,
        "attachments": attachment_summary(&planned),
    }))
}

const UPDATE_KEYS: &[&str] = &[
    "isRead",
    "categories",
    "importance",
    "flag",
    "inferenceClassification",
];
const FLAG_STATUSES: &[&str] = &["notFlagged", "flagged", "complete"];
const FLAG_KEYS: &[&str] = &[
    "flagStatus",
    "startDateTime",
    "dueDateTime",
    "completedDateTime",
];

fn categories_value(param: &str, list: Vec<String>) -> Result<Value, ToolError> {
    if list.is_empty() {
        return Err(ToolError::invalid(
            param,
            "[]",
            "at least one category is required",
            "a list of category names",
        ));
    }
    if let Some(long) = list.iter().find(|c| c.chars().count() > 255) {
        return Err(ToolError::invalid(
            param,
            long,
            "is too long",
            "category names of at most 255 characters",
        ));
    }
    Ok(json!(list))
}

/// Parses `YYYY-MM-DDTHH:MM[:SS[.fff]]` with an optional `Z` or offset;
/// returns a sortable UTC-or-naive stamp.
fn parse_date_time(text: &str) -> Option<time::PrimitiveDateTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        let utc = t.to_offset(time::UtcOffset::UTC);
        return Some(time::PrimitiveDateTime::new(utc.date(), utc.time()));
    }
    let base = text.split('.').next().unwrap_or(text);
    let with_seconds =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let without = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(base, with_seconds)
        .or_else(|_| time::PrimitiveDateTime::parse(base, without))
        .ok()
}

fn flag_value(value: &Value) -> Result<Value, ToolError> {
    let Some(flag) = value.as_object() else {
        return Err(ToolError::invalid(
            "updates.flag",
            &value.to_string(),
            "must be an object",
            "{\"flagStatus\": \"flagged\", \"dueDateTime\": {\"dateTime\": \"2025-01-31T17:00:00\", \"timeZone\": \"UTC\"}}",
        ));
    };
    let mut out = Map::new();
    let mut stamps: Vec<(&str, String, time::PrimitiveDateTime)> = Vec::new();
    for (key, v) in flag {
        if !FLAG_KEYS.contains(&key.as_str()) {
            return Err(ToolError::invalid(
                "updates.flag",
                key,
                "is not a flag property",
                &FLAG_KEYS.join(", "),
            ));
        }
        if key == "flagStatus" {
            match v.as_str() {
                Some(s) if FLAG_STATUSES.contains(&s) => out.insert(key.clone(), json!(s)),
                _ => {
                    return Err(ToolError::invalid(
                        "updates.flag.flagStatus",
                        &v.to_string(),
                        "is not a flag status",
                        &FLAG_STATUSES.join(", "),
                    ));
                }
            };
            continue;
        }
        let param = format!("updates.flag.{key}");
        let expected = "{\"dateTime\": \"2025-01-31T17:00:00\", \"timeZone\": \"UTC\"}";
        let date_time = v["dateTime"].as_str().map(str::trim).unwrap_or_default();
        let Some(stamp) = parse_date_time(date_time) else {
            return Err(ToolError::invalid(
                &param,
                &v.to_string(),
                "needs a dateTime in ISO 8601 form",
                expected,
            ));
        };
        let zone = match &v["timeZone"] {
            Value::Null => "UTC".to_string(),
            Value::String(z) if !z.trim().is_empty() => z.trim().to_string(),
            other => {
                return Err(ToolError::invalid(
                    &param,
                    &other.to_string(),
                    "timeZone must be a time-zone name",
                    expected,
                ));
            }
        };
        out.insert(
            key.clone(),
            json!({"dateTime": date_time, "timeZone": zone}),
        );
        stamps.push((key.as_str(), zone, stamp));
    }
    let start = stamps.iter().find(|(k, ..)| *k == "startDateTime");
    let due = stamps.iter().find(|(k, ..)| *k == "dueDateTime");
    if let (Some((_, start_zone, start)), Some((_, due_zone, due))) = (start, due)
        && start_zone == due_zone
        && due < start
    {
        return Err(ToolError::invalid(
            "updates.flag.dueDateTime",
            &due.to_string(),
            "is before startDateTime",
            "a due date at or after the start date",
        ));
    }
    Ok(Value::Object(out))
}

/// Checks `updates` against the properties this tool may change.
fn checked_updates(updates: &Map<String, Value>) -> Result<Value, ToolError> {
    if updates.is_empty() {
        return Err(ToolError::invalid(
            "updates",
            "{}",
            "nothing to change",
            &format!("one or more of {}", UPDATE_KEYS.join(", ")),
        ));
    }
    let mut out = Map::new();
    for (key, value) in updates {
        let checked = match key.as_str() {
            "isRead" => match value {
                Value::Bool(_) => value.clone(),
                _ => {
                    return Err(ToolError::invalid(
                        "updates.isRead",
                        &value.to_string(),
                        "must be a boolean",
                        "true or false",
                    ));
                }
            },
            "categories" => {
                let list: Option<Vec<String>> = value.as_array().and_then(|a| {
                    a.iter()
                        .map(|c| {
                            c.as_str()
                                .map(str::trim)
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                        })
                        .collect()
                });
                match list {
                    Some(list) => categories_value("updates.categories", list)?,
                    None => {
                        return Err(ToolError::invalid(
                            "updates.categories",
                            &value.to_string(),
                            "must be a list of non-empty strings",
                            "[\"Red category\", \"Project X\"]",
                        ));
                    }
                }
            }
            "importance" => match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some(level @ ("low" | "normal" | "high")) => json!(level),
                _ => {
                    return Err(ToolError::invalid(
                        "updates.importance",
                        &value.to_string(),
                        "is not an importance",
                        "low, normal or high",
                    ));
                }
            },
            "inferenceClassification" => {
                match value.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some(kind @ ("focused" | "other")) => json!(kind),
                    _ => {
                        return Err(ToolError::invalid(
                            "updates.inferenceClassification",
                            &value.to_string(),
                            "is not a classification",
                            "focused or other",
                        ));
                    }
                }
            }
            "flag" => flag_value(value)?,
            other => {
                return Err(ToolError::invalid(
                    "updates",
                    other,
                    "is not a property this tool changes",
                    &format!("one or more of {}", UPDATE_KEYS.join(", ")),
                ));
            }
        };
        out.insert(key.clone(), checked);
    }
    Ok(Value::Object(out))
}

async fn patch_message(app: &App, account: &str, segment: &str, body: &Value) -> ToolResult {
    let message = app
        .graph
        .patch(account, &format!("/me/messages/{segment}"), body)
        .await?;
    Ok(compact_message(message))
}

async fn email_update(app: Arc<App>, account: AccountRecord, p: UpdateParams) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    let body = checked_updates(&p.updates)?;
    patch_message(&app, &account.account_id, &segment, &body).await
}

async fn email_mark_read(app: Arc<App>, account: AccountRecord, p: MarkReadParams) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    patch_message(
        &app,
        &account.account_id,
        &segment,
        &json!({"isRead": p.is_read}),
    )
    .await
}

async fn email_flag(app: Arc<App>, account: AccountRecord, p: FlagParams) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    let wanted = p.flag_status.trim();
    let Some(status) = FLAG_STATUSES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(wanted))
    else {
        return Err(ToolError::invalid(
            "flag_status",
            &p.flag_status,
            "is not a flag status",
            &FLAG_STATUSES.join(", "),
        ));
    };
    patch_message(
        &app,
        &account.account_id,
        &segment,
        &json!({"flag": {"flagStatus": status}}),
    )
    .await
}

async fn email_add_category(
    app: Arc<App>,
    account: AccountRecord,
    p: CategoryParams,
) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    let adding = categories_value("categories", p.categories.items())?;
    let current = app
        .graph
        .get(
            &account.account_id,
            &format!("/me/messages/{segment}"),
            &[("$select", "id,categories")],
        )
        .await?;
    let mut merged: Vec<String> = current["categories"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    for category in adding
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !merged.iter().any(|c| c.eq_ignore_ascii_case(category)) {
            merged.push(category.to_string());
        }
    }
    patch_message(
        &app,
        &account.account_id,
        &segment,
        &json!({"categories": merged}),
    )
    .await
}

async fn email_delete(app: Arc<App>, account: AccountRecord, p: DeleteParams) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    require_confirm(p.confirm, "deleting an email")?;
    app.graph
        .delete(&account.account_id, &format!("/me/messages/{segment}"))
        .await?;
    Ok(json!({"status": "deleted", "email_id": p.email_id.trim()}))
}

async fn move_to(
    app: &App,
    account: &str,
    email_id: &str,
    destination: &str,
    status: &str,
) -> ToolResult {
    let segment = id_segment("email_id", email_id)?;
    let dest = canonical_folder(validate_id("destination_folder", destination.trim())?);
    let moved = app
        .graph
        .request(
            account,
            Method::POST,
            &format!("/me/messages/{segment}/move"),
            &[],
            Some(&json!({"destinationId": dest})),
            &RequestOptions::default(),
        )
        .await?;
    let new_id = moved["id"].as_str().unwrap_or_default();
    Ok(json!({
        "status": status,
        "email_id": email_id.trim(),
        "new_id": new_id,
        "destination_folder": dest,
        "destination_folder_id": moved["parentFolderId"],
        "subject": moved["subject"],
    }))
}

async fn email_move(app: Arc<App>, account: AccountRecord, p: MoveParams) -> ToolResult {
    move_to(
        &app,
        &account.account_id,
        &p.email_id,
        &p.destination_folder,
        "moved",
    )
    .await
}

async fn email_archive(app: Arc<App>, account: AccountRecord, p: MessageParams) -> ToolResult {
    move_to(
        &app,
        &account.account_id,
        &p.email_id,
        "archive",
        "archived",
    )
    .await
}

async fn reply(app: &App, account: &str, p: ReplyParams, action: &str) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    let comment = p.body.trim();
    if comment.is_empty() {
        return Err(ToolError::invalid(
            "body",
            "",
            "a reply needs some text",
            "a non-empty plain-text reply",
        ));
    }
    let what = if action == "reply" {
        "replying to an email"
    } else {
        "replying to all recipients of an email"
    };
    require_confirm(p.confirm, what)?;
    app.graph
        .post(
            account,
            &format!("/me/messages/{segment}/{action}"),
            Some(&json!({"comment": comment})),
        )
        .await?;
    Ok(json!({"status": "sent", "email_id": p.email_id.trim(), "action": action}))
}

async fn email_reply(app: Arc<App>, account: AccountRecord, p: ReplyParams) -> ToolResult {
    reply(&app, &account.account_id, p, "reply").await
}

async fn email_reply_all(app: Arc<App>, account: AccountRecord, p: ReplyParams) -> ToolResult {
    reply(&app, &account.account_id, p, "replyAll").await
}

async fn email_forward(app: Arc<App>, account: AccountRecord, p: ForwardParams) -> ToolResult {
    let segment = id_segment("email_id", &p.email_id)?;
    let (to, cc) = recipients(&p.to, p.cc.as_ref())?;
    require_confirm(p.confirm, "forwarding an email")?;
    let count = to.len() + cc.len();
    let mut body = json!({ "toRecipients": to });
    if let Some(comment) = p.body.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        body["comment"] = json!(comment);
    }
    if !cc.is_empty() {
        // Graph's forward action takes Cc on the message, not beside toRecipients.
        body["message"] = json!({ "ccRecipients": cc });
    }
    app.graph
        .post(
            &account.account_id,
            &format!("/me/messages/{segment}/forward"),
            Some(&body),
        )
        .await?;
    Ok(
        json!({"status": "sent", "email_id": p.email_id.trim(), "action": "forward", "recipients": count}),
    )
}

async fn email_get_attachment(
    app: Arc<App>,
    account: AccountRecord,
    p: AttachmentParams,
) -> ToolResult {
    let message = id_segment("email_id", &p.email_id)?;
    let attachment = id_segment("attachment_id", &p.attachment_id)?;
    // Refuse a bad destination before downloading anything.
    files_local::check_destination("save_path", &p.save_path)?;
    let item = app
        .graph
        .get(
            &account.account_id,
            &format!("/me/messages/{message}/attachments/{attachment}"),
            &[],
        )
        .await?;
    let kind = item["@odata.type"].as_str().unwrap_or_default();
    let name = item["name"].as_str().unwrap_or("attachment").to_string();
    if kind != "#microsoft.graph.fileAttachment" {
        let what = match kind {
            "#microsoft.graph.itemAttachment" => {
                "an attached Outlook item (message, event or contact)"
            }
            "#microsoft.graph.referenceAttachment" => "a link to a file in the cloud",
            _ => "not a file",
        };
        return Err(ToolError::invalid(
            "attachment_id",
            &p.attachment_id,
            &format!("'{name}' is {what}, which has no file content to save"),
            "the id of a file attachment (see email_get's attachments)",
        ));
    }
    let size = item["size"].as_u64().unwrap_or(0);
    if size > MAX_ATTACHMENT_BYTES + 64 * 1024 {
        return Err(ToolError::invalid(
            "attachment_id",
            &p.attachment_id,
            &format!("'{name}' is {size} bytes"),
            "attachments of at most 25 MiB",
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(item["contentBytes"].as_str().unwrap_or_default())
        .map_err(|e| {
            ToolError::Unavailable(format!(
                "Graph returned attachment content that is not valid base64 ({e})"
            ))
        })?;
    if bytes.len() as u64 > MAX_ATTACHMENT_BYTES {
        return Err(ToolError::invalid(
            "attachment_id",
            &p.attachment_id,
            &format!("'{name}' is {} bytes", bytes.len()),
            "attachments of at most 25 MiB",
        ));
    }
    // Resolved again now that the name is known (the path may be a directory).
    let target = files_local::new_file_target("save_path", &p.save_path, &name)?;
    files_local::write_new("save_path", &target, &bytes).await?;
    Ok(json!({
        "name": name,
        "content_type": item["contentType"],
        "size": bytes.len(),
        "saved_to": target.display().to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_named_and_deduplicated() {
        let to = StringOrList::One("a@example.com, Bob <B@Example.com>".into());
        let cc = StringOrList::Many(vec!["b@example.com".into(), "c@example.com".into()]);
        let (to, cc) = recipients(&to, Some(&cc)).unwrap();
        assert_eq!(to.len(), 2);
        assert_eq!(to[1]["emailAddress"]["name"], "Bob");
        assert_eq!(cc.len(), 1, "b@ is already in To");
        let bad = StringOrList::One("not-an-address".into());
        let e = recipients(&bad, None).unwrap_err().to_string();
        assert!(e.starts_with("Invalid to 'not-an-address'"), "{e}");
        let none = StringOrList::Many(vec![]);
        assert!(recipients(&none, None).is_err());
        let many = StringOrList::Many((0..501).map(|i| format!("u{i}@example.com")).collect());
        assert!(
            recipients(&many, None)
                .unwrap_err()
                .to_string()
                .contains("at most 500")
        );
    }

    #[test]
    fn updates_are_whitelisted() {
        let ok: Map<String, Value> =
            serde_json::from_value(json!({"isRead": true, "importance": "HIGH"})).unwrap();
        assert_eq!(checked_updates(&ok).unwrap()["importance"], "high");
        let bad: Map<String, Value> = serde_json::from_value(json!({"subject": "x"})).unwrap();
        assert!(
            checked_updates(&bad)
                .unwrap_err()
                .to_string()
                .contains("isRead, categories")
        );
        let flag: Map<String, Value> = serde_json::from_value(json!({"flag": {
            "flagStatus": "flagged",
            "startDateTime": {"dateTime": "2025-02-01T10:00:00", "timeZone": "UTC"},
            "dueDateTime": {"dateTime": "2025-01-01T10:00:00", "timeZone": "UTC"},
        }}))
        .unwrap();
        assert!(
            checked_updates(&flag)
                .unwrap_err()
                .to_string()
                .contains("before startDateTime")
        );
    }
}
