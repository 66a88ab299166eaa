//! Mail folder tree and folder writes, including the bulk operations
//! (mark all read, empty) that go through `$batch` and report every item
//! that failed.

use std::collections::HashMap;
use std::sync::Arc;

use m365_graph::{BatchRequest, BatchResponse, encode_segment};
use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::check_range;
use super::item_args::require_confirm;
use super::mail::{canonical_folder, folder_segment};
use super::{Cache, DESTRUCTIVE, READ, Target, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

const TREE_FIELDS: &str =
    "id,displayName,parentFolderId,childFolderCount,unreadItemCount,totalItemCount,isHidden";
/// Most folders a tree holds; larger mailboxes are refused rather than cut.
const MAX_TREE_FOLDERS: usize = 5_000;
/// Most messages a bulk operation collects.
const MAX_BULK_MESSAGES: usize = 100_000;

fn default_depth() -> i64 {
    10
}

/// Parameters of `emailfolders_get_tree`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TreeParams {
    /// Start below this folder (id or well-known name) instead of the top level.
    #[serde(default)]
    pub parent_folder_id: Option<String>,
    /// How many levels to descend (1–25); 1 lists one level without children.
    #[serde(default = "default_depth")]
    pub max_depth: i64,
    /// Include hidden folders.
    #[serde(default)]
    pub include_hidden: bool,
}

/// Parameters of `emailfolders_create`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Name of the new folder.
    pub display_name: String,
    /// Create it inside this folder (id or well-known name); top level when omitted.
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

/// Parameters of `emailfolders_rename`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameParams {
    /// The folder id.
    pub folder_id: String,
    /// Its new name.
    pub new_display_name: String,
}

/// Parameters of `emailfolders_move`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveFolderParams {
    /// The folder to move.
    pub folder_id: String,
    /// The folder to move it into (id or well-known name).
    pub destination_folder_id: String,
}

/// Parameters of `emailfolders_delete` and `emailfolders_empty`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmFolderParams {
    /// The folder id (or well-known name).
    pub folder_id: String,
    /// Must be true: this deletes.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `emailfolders_mark_all_as_read`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderParams {
    /// The folder id (or well-known name).
    pub folder_id: String,
}

/// The mail folder tree and folder writes.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::account(
            "emailfolders_get_tree",
            "Mail folder tree",
            "emailfolders",
            READ,
            Cache::Read { deps: tree_deps },
            "The mail folder hierarchy (from the top, or below parent_folder_id) down to max_depth \
             levels, with unread and total counts. Fails as a whole if any level cannot be read.",
            emailfolders_get_tree,
        ),
        ToolDef::account(
            "emailfolders_create",
            "Create a mail folder",
            "emailfolders",
            WRITE,
            Cache::Write {
                invalidates: created_targets,
            },
            "Create a mail folder at the top level or inside parent_folder_id.",
            emailfolders_create,
        ),
        ToolDef::account(
            "emailfolders_rename",
            "Rename a mail folder",
            "emailfolders",
            UPDATE,
            Cache::Write {
                invalidates: renamed_targets,
            },
            "Rename a mail folder (well-known folders such as Inbox cannot be renamed).",
            emailfolders_rename,
        ),
        ToolDef::account(
            "emailfolders_move",
            "Move a mail folder",
            "emailfolders",
            UPDATE,
            Cache::Write {
                invalidates: structure_targets,
            },
            "Move a mail folder, with everything in it, into another folder.",
            emailfolders_move,
        ),
        ToolDef::account(
            "emailfolders_delete",
            "Delete a mail folder",
            "emailfolders",
            DESTRUCTIVE,
            Cache::Write {
                invalidates: deleted_targets,
            },
            "Delete a mail folder with its messages and subfolders. Requires confirm=true.",
            emailfolders_delete,
        ),
        ToolDef::account(
            "emailfolders_mark_all_as_read",
            "Mark a folder read",
            "emailfolders",
            UPDATE,
            Cache::Write {
                invalidates: contents_targets,
            },
            "Mark every unread message in a folder as read (20 per $batch request); reports how many \
             succeeded and each one that failed.",
            emailfolders_mark_all_as_read,
        ),
        ToolDef::account(
            "emailfolders_empty",
            "Empty a mail folder",
            "emailfolders",
            DESTRUCTIVE,
            Cache::Write {
                invalidates: emptied_targets,
            },
            "Delete every message in a folder (20 per $batch request); reports how many succeeded and \
             each one that failed. Subfolders are kept. Requires confirm=true.",
            emailfolders_empty,
        ),
    ]
}

// ---------------------------------------------------------------------------
// Cache declarations

/// A tree depends on every folder in it.
fn tree_deps(params: &Value, result: &Value) -> Dependencies {
    let root = params["parent_folder_id"]
        .as_str()
        .map(canonical_folder)
        .unwrap_or_else(|| "msgfolderroot".to_string());
    let mut ids = Vec::new();
    collect_ids(&result["folders"], &mut ids);
    Dependencies::container(root).with_items(ids)
}

fn collect_ids(folders: &Value, out: &mut Vec<String>) {
    for folder in folders.as_array().into_iter().flatten() {
        if let Some(id) = folder["id"].as_str() {
            out.push(id.to_string());
        }
        collect_ids(&folder["children"], out);
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value[key].as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// A new folder appears in its parent's listing and in trees, and changes
/// the parent's child count.
fn created_targets(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![
        Target::all("emailfolders_list"),
        Target::all("emailfolders_get_tree"),
    ];
    if let Some(parent) = text(params, "parent_folder_id") {
        targets.push(Target::item("emailfolders_get", canonical_folder(parent)));
    }
    if let Some(parent) = text(result, "parentFolderId") {
        targets.push(Target::item("emailfolders_get", parent));
    }
    targets
}

/// A renamed folder: entries showing it, and trees.
fn renamed_targets(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![Target::all("emailfolders_get_tree")];
    for id in [
        text(params, "folder_id").map(canonical_folder),
        text(result, "id").map(str::to_string),
    ]
    .into_iter()
    .flatten()
    {
        targets.push(Target::item("emailfolders_get", id.clone()));
        targets.push(Target::item("emailfolders_list", id));
    }
    targets
}

/// Moving a folder changes two parents' listings and counts.
fn structure_targets(_: &Value, _: &Value) -> Vec<Target> {
    vec![
        Target::all("emailfolders_list"),
        Target::all("emailfolders_get"),
        Target::all("emailfolders_get_tree"),
    ]
}

/// A deleted folder takes its listings and messages with it.
fn deleted_targets(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = structure_targets(params, result);
    for id in [
        text(params, "folder_id").map(canonical_folder),
        text(result, "folder_id").map(str::to_string),
    ]
    .into_iter()
    .flatten()
    {
        targets.push(Target::container("email_list", id.clone()));
        targets.push(Target::container("email_get", id));
    }
    targets.push(Target::all("search_emails"));
    targets
}

/// Marking read or emptying changes the folder's messages and counts.
fn contents_targets(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = vec![
        Target::all("emailfolders_get_tree"),
        Target::all("search_emails"),
    ];
    for id in [
        text(params, "folder_id").map(canonical_folder),
        text(result, "folder_id").map(str::to_string),
    ]
    .into_iter()
    .flatten()
    {
        targets.push(Target::container("email_list", id.clone()));
        targets.push(Target::container("email_get", id.clone()));
        targets.push(Target::item("emailfolders_get", id.clone()));
        targets.push(Target::item("emailfolders_list", id));
    }
    targets
}

/// Emptying also fills Deleted Items: Graph moves deleted messages there,
/// as it does for email_delete.
fn emptied_targets(params: &Value, result: &Value) -> Vec<Target> {
    let mut targets = contents_targets(params, result);
    targets.push(Target::container("email_list", "deleteditems"));
    targets.push(Target::container("email_list", super::mail::LISTED_BY_ID));
    targets
}

// ---------------------------------------------------------------------------
// The tree

async fn list_children(
    app: &App,
    account: &str,
    parent: Option<&str>,
    include_hidden: bool,
) -> Result<Vec<Value>, ToolError> {
    let path = match parent {
        Some(segment) => format!("/me/mailFolders/{segment}/childFolders"),
        None => "/me/mailFolders".to_string(),
    };
    let mut query = vec![("$top", "100"), ("$select", TREE_FIELDS)];
    if include_hidden {
        query.push(("includeHiddenFolders", "true"));
    }
    Ok(app
        .graph
        .get_paged(account, &path, &query, MAX_TREE_FOLDERS + 1)
        .await?)
}

fn too_many() -> ToolError {
    ToolError::Unavailable(format!(
        "The folder tree has more than {MAX_TREE_FOLDERS} folders; ask for a smaller part with \
         parent_folder_id or a lower max_depth"
    ))
}

/// Fetches the tree level by level, each level's listings twenty to a
/// `$batch` call with a few calls in flight. Any failed listing fails the
/// whole tree: a partial tree is never returned as complete.
async fn emailfolders_get_tree(app: Arc<App>, account: AccountRecord, p: TreeParams) -> ToolResult {
    let max_depth = check_range("max_depth", p.max_depth, 1, 25)?;
    let root = p
        .parent_folder_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let root_segment = match root {
        Some(r) => Some(folder_segment(Some(r), None)?),
        None => None,
    };
    let account_id = account.account_id.clone();
    let top = list_children(&app, &account_id, root_segment.as_deref(), p.include_hidden).await?;
    let mut total = top.len();
    if total > MAX_TREE_FOLDERS {
        return Err(too_many());
    }
    let mut children: HashMap<String, Vec<Value>> = HashMap::new();
    let expandable = |folders: &[Value]| -> Vec<String> {
        folders
            .iter()
            .filter(|f| f["childFolderCount"].as_u64().unwrap_or(0) > 0)
            .filter_map(|f| f["id"].as_str().map(str::to_string))
            .collect()
    };
    let mut frontier = expandable(&top);
    // Level by level; each level's listings go twenty to a $batch call.
    let mut query = vec![("$top", "100"), ("$select", TREE_FIELDS)];
    if p.include_hidden {
        query.push(("includeHiddenFolders", "true"));
    }
    for _depth in 1..max_depth {
        if frontier.is_empty() {
            break;
        }
        let listings = frontier
            .drain(..)
            .map(|id| {
                let path = format!("/me/mailFolders/{}/childFolders", encode_segment(&id));
                (id, path)
            })
            .collect();
        let listed = super::listing::list_many(&app, &account_id, listings, &query).await?;
        let mut next = Vec::new();
        for (id, folders) in listed {
            total += folders.len();
            if total > MAX_TREE_FOLDERS {
                return Err(too_many());
            }
            next.extend(expandable(&folders));
            children.insert(id, folders);
            crate::progress::report(total as u64, None, "mail folders read");
        }
        frontier = next;
    }
    let folders: Vec<Value> = top
        .into_iter()
        .map(|f| assemble(f, &mut children))
        .collect();
    Ok(json!({
        "root_folder_id": root.map(canonical_folder).unwrap_or_else(|| "msgfolderroot".into()),
        "max_depth": max_depth,
        "total_folders": total,
        "folders": folders,
    }))
}

fn assemble(mut folder: Value, children: &mut HashMap<String, Vec<Value>>) -> Value {
    let id = folder["id"].as_str().unwrap_or_default().to_string();
    let below: Vec<Value> = children
        .remove(&id)
        .unwrap_or_default()
        .into_iter()
        .map(|child| assemble(child, children))
        .collect();
    if let Some(obj) = folder.as_object_mut() {
        obj.remove("@odata.etag");
        obj.insert("children".into(), Value::Array(below));
    }
    folder
}

// ---------------------------------------------------------------------------
// Writes

fn clean(mut folder: Value) -> Value {
    if let Some(obj) = folder.as_object_mut() {
        obj.remove("@odata.context");
        obj.remove("@odata.etag");
    }
    folder
}

fn folder_name(param: &str, raw: &str) -> Result<String, ToolError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().any(char::is_control) || name.chars().count() > 255 {
        return Err(ToolError::invalid(
            param,
            raw,
            "must be 1 to 255 characters without control characters",
            "a folder name",
        ));
    }
    Ok(name.to_string())
}

async fn emailfolders_create(app: Arc<App>, account: AccountRecord, p: CreateParams) -> ToolResult {
    let name = folder_name("display_name", &p.display_name)?;
    let path = match p
        .parent_folder_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(parent) => format!(
            "/me/mailFolders/{}/childFolders",
            folder_segment(Some(parent), None)?
        ),
        None => "/me/mailFolders".to_string(),
    };
    let created = app
        .graph
        .post(
            &account.account_id,
            &path,
            Some(&json!({ "displayName": name })),
        )
        .await?;
    Ok(clean(created))
}

async fn emailfolders_rename(app: Arc<App>, account: AccountRecord, p: RenameParams) -> ToolResult {
    let segment = folder_segment(Some(&p.folder_id), None)?;
    let name = folder_name("new_display_name", &p.new_display_name)?;
    let renamed = app
        .graph
        .patch(
            &account.account_id,
            &format!("/me/mailFolders/{segment}"),
            &json!({ "displayName": name }),
        )
        .await?;
    Ok(clean(renamed))
}

async fn emailfolders_move(
    app: Arc<App>,
    account: AccountRecord,
    p: MoveFolderParams,
) -> ToolResult {
    let segment = folder_segment(Some(&p.folder_id), None)?;
    let destination = canonical_folder(m365_graph::validate_id(
        "destination_folder_id",
        p.destination_folder_id.trim(),
    )?);
    let moved = app
        .graph
        .post(
            &account.account_id,
            &format!("/me/mailFolders/{segment}/move"),
            Some(&json!({ "destinationId": destination })),
        )
        .await?;
    Ok(clean(moved))
}

async fn emailfolders_delete(
    app: Arc<App>,
    account: AccountRecord,
    p: ConfirmFolderParams,
) -> ToolResult {
    let segment = folder_segment(Some(&p.folder_id), None)?;
    require_confirm(p.confirm, "deleting a mail folder")?;
    app.graph
        .delete(&account.account_id, &format!("/me/mailFolders/{segment}"))
        .await?;
    Ok(json!({"status": "deleted", "folder_id": p.folder_id.trim()}))
}

/// The folder's real id (a well-known name resolves to one).
async fn real_folder_id(app: &App, account: &str, segment: &str) -> Result<String, ToolError> {
    let folder = app
        .graph
        .get(
            account,
            &format!("/me/mailFolders/{segment}"),
            &[("$select", "id")],
        )
        .await?;
    folder["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ToolError::Unavailable("Graph returned a folder without an id".into()))
}

/// The ids of the folder's messages, all pages.
async fn message_ids(
    app: &App,
    account: &str,
    segment: &str,
    filter: Option<&str>,
) -> Result<Vec<String>, ToolError> {
    let mut query = vec![("$select", "id"), ("$top", "100")];
    if let Some(filter) = filter {
        query.push(("$filter", filter));
    }
    let items = app
        .graph
        .get_paged(
            account,
            &format!("/me/mailFolders/{segment}/messages"),
            &query,
            MAX_BULK_MESSAGES,
        )
        .await?;
    Ok(items
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect())
}

/// Runs one request per id through `$batch` — twenty per Graph call, a few
/// calls in flight — and reports each failure.
async fn bulk(
    app: &Arc<App>,
    account: &str,
    ids: &[String],
    request: fn(String) -> BatchRequest,
) -> Result<(usize, Vec<Value>), ToolError> {
    if ids.is_empty() {
        return Ok((0, Vec::new()));
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, chunk) in ids.chunks(m365_graph::MAX_BATCH_SIZE).enumerate() {
        let requests: Vec<BatchRequest> = chunk
            .iter()
            .map(|id| request(format!("/me/messages/{}", encode_segment(id))))
            .collect();
        let app = app.clone();
        let account = account.to_string();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _turn = limit
                .acquire_owned()
                .await
                .map_err(|_| ToolError::Unavailable("the bulk run was cancelled".into()))?;
            Ok::<_, ToolError>((index, app.graph.batch(&account, requests).await?))
        });
    }
    let mut parts = Vec::new();
    let mut done = 0u64;
    while let Some(joined) = tasks.join_next().await {
        let (index, answers) = match joined {
            Ok(Ok(part)) => part,
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(ToolError::Unavailable(format!(
                    "a bulk request did not complete: {e}"
                )));
            }
        };
        done += answers.len() as u64;
        crate::progress::report(done, Some(ids.len() as u64), "messages processed");
        parts.push((index, answers));
    }
    parts.sort_by_key(|(index, _)| *index);
    let answers = parts.into_iter().flat_map(|(_, answers)| answers).collect();
    Ok(tally(ids, answers))
}

/// Counts the successes and describes each failure of a bulk `$batch`.
fn tally(ids: &[String], answers: Vec<BatchResponse>) -> (usize, Vec<Value>) {
    let mut succeeded = 0;
    let mut failed = Vec::new();
    for (id, answer) in ids.iter().zip(answers) {
        if answer.is_success() {
            succeeded += 1;
            continue;
        }
        let error = answer.body.get("error");
        failed.push(json!({
            "id": id,
            "status": answer.status,
            "code": error.and_then(|e| e["code"].as_str()).unwrap_or("BatchItemFailed"),
            "message": error.and_then(|e| e["message"].as_str()).unwrap_or(""),
        }));
    }
    (succeeded, failed)
}

fn bulk_answer(
    folder: &str,
    real_id: &str,
    counted: &str,
    succeeded: usize,
    failed: Vec<Value>,
) -> Value {
    json!({
        "status": if failed.is_empty() { "completed" } else { "completed_with_errors" },
        "folder": folder,
        "folder_id": real_id,
        counted: succeeded,
        "succeeded": succeeded,
        "failed_count": failed.len(),
        "failed": failed,
    })
}

async fn emailfolders_mark_all_as_read(
    app: Arc<App>,
    account: AccountRecord,
    p: FolderParams,
) -> ToolResult {
    let segment = folder_segment(Some(&p.folder_id), None)?;
    let account_id = &account.account_id;
    let real = real_folder_id(&app, account_id, &segment).await?;
    let ids = message_ids(&app, account_id, &segment, Some("isRead eq false")).await?;
    let (succeeded, failed) = bulk(&app, account_id, &ids, |url| {
        BatchRequest::patch(url, json!({"isRead": true}))
    })
    .await?;
    Ok(bulk_answer(
        p.folder_id.trim(),
        &real,
        "messages_marked_read",
        succeeded,
        failed,
    ))
}

async fn emailfolders_empty(
    app: Arc<App>,
    account: AccountRecord,
    p: ConfirmFolderParams,
) -> ToolResult {
    let segment = folder_segment(Some(&p.folder_id), None)?;
    require_confirm(p.confirm, "emptying a mail folder")?;
    let account_id = &account.account_id;
    let real = real_folder_id(&app, account_id, &segment).await?;
    let ids = message_ids(&app, account_id, &segment, None).await?;
    let (succeeded, failed) = bulk(&app, account_id, &ids, BatchRequest::delete).await?;
    Ok(bulk_answer(
        p.folder_id.trim(),
        &real,
        "messages_deleted",
        succeeded,
        failed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_failures_are_reported_per_item() {
        let ok = BatchResponse {
            status: 204,
            headers: HashMap::new(),
            body: Value::Null,
        };
        let missing = BatchResponse {
            status: 404,
            headers: HashMap::new(),
            body: json!({"error": {"code": "ErrorItemNotFound", "message": "Not found."}}),
        };
        let ids = vec!["a".to_string(), "b".to_string()];
        let (succeeded, failed) = tally(&ids, vec![ok, missing]);
        assert_eq!(succeeded, 1);
        assert_eq!(
            failed,
            vec![
                json!({"id": "b", "status": 404, "code": "ErrorItemNotFound", "message": "Not found."})
            ]
        );
    }

    #[test]
    fn trees_depend_on_every_folder_in_them() {
        let tree = json!({"folders": [{"id": "a", "children": [{"id": "b", "children": []}]}]});
        let deps = tree_deps(&json!({"parent_folder_id": null}), &tree);
        assert_eq!(deps.tags(), ["container:msgfolderroot", "item:a", "item:b"]);
    }
}
