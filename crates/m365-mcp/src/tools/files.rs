//! OneDrive files: listing, download to a local file, upload (simple below
//! 4 MiB, resumable upload session above, streamed from disk), copy, move,
//! rename, delete, sharing links and download URLs. Also the drive helpers
//! the folder tools share: item addressing by id or path, name checks, and
//! what a write invalidates.

use std::sync::Arc;
use std::time::Duration;

use m365_graph::{DEFAULT_DOWNLOAD_HOSTS, encode_drive_path};
use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::args::check_range;
use super::files_local;
use super::item_args::{id_segment, optional, param_id, require_confirm, strip_odata};
use super::{Cache, DESTRUCTIVE, READ, Target, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

/// Largest file sent in one simple `PUT`; larger ones use an upload session.
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;
/// The drive item fields listings ask for.
pub const ITEM_FIELDS: &str =
    "id,name,size,file,folder,parentReference,lastModifiedDateTime,createdDateTime,webUrl";
/// Most children read from one folder.
const MAX_CHILDREN: usize = 10_000;

// ---------------------------------------------------------------- shared drive helpers

/// Normalises a OneDrive path (`/Documents/a b.txt`): absolute, no `.`/`..`
/// or control characters, no characters OneDrive refuses. Returns the
/// segments.
pub fn drive_segments(param: &str, path: &str) -> Result<Vec<String>, ToolError> {
    let trimmed = path.trim();
    if !trimmed.starts_with('/') {
        return Err(ToolError::invalid(
            param,
            path,
            "is not an absolute OneDrive path",
            "a path starting with '/', e.g. /Documents/Report.docx ('/' is the root)",
        ));
    }
    let segments: Vec<String> = trimmed
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    for segment in &segments {
        check_name(param, segment).map_err(|_| {
            ToolError::invalid(
                param,
                path,
                &format!("has a part '{segment}' OneDrive does not accept"),
                "names without \" * : < > ? \\ | or control characters, and no '.' or '..'",
            )
        })?;
    }
    Ok(segments)
}

/// Checks a OneDrive item name.
pub fn check_name(param: &str, name: &str) -> Result<String, ToolError> {
    let bad = name.trim().is_empty()
        || name != name.trim()
        || name == "."
        || name == ".."
        || name.chars().count() > 255
        || name
            .chars()
            .any(|c| "\"*:<>?/\\|".contains(c) || c.is_control());
    if bad {
        return Err(ToolError::invalid(
            param,
            name,
            "is not a name OneDrive accepts",
            "a name without \" * : < > ? / \\ | or control characters, not '.' or '..', at most 255 characters",
        ));
    }
    Ok(name.to_string())
}

/// The Graph path of an item given by id, or by OneDrive path when no id.
pub fn item_path(id_param: &str, id: Option<&str>, path: &str) -> Result<String, ToolError> {
    if let Some(id) = optional(id) {
        return Ok(format!("/me/drive/items/{}", id_segment(id_param, id)?));
    }
    let segments = drive_segments("path", path)?;
    if segments.is_empty() {
        Ok("/me/drive/root".to_string())
    } else {
        Ok(format!(
            "/me/drive/root:{}:",
            encode_drive_path(&format!("/{}", segments.join("/")))
        ))
    }
}

/// The Graph path of an item by id.
pub fn item_by_id(param: &str, id: &str) -> Result<String, ToolError> {
    Ok(format!("/me/drive/items/{}", id_segment(param, id)?))
}

/// Reads one item's metadata.
pub async fn get_item(app: &App, account: &AccountRecord, path: &str) -> ToolResult {
    let mut item = app
        .graph
        .get(&account.account_id, path, &[("$select", ITEM_FIELDS)])
        .await?;
    strip_odata(&mut item);
    Ok(item)
}

/// Reads every child of a folder (by its Graph item path), up to `limit`.
pub async fn children(
    app: &App,
    account: &AccountRecord,
    item_path: &str,
    limit: usize,
) -> Result<Vec<Value>, ToolError> {
    let top = limit.clamp(1, 200).to_string();
    let children_path = format!("{item_path}/children");
    Ok(app
        .graph
        .get_paged(
            &account.account_id,
            &children_path,
            &[("$select", ITEM_FIELDS), ("$top", top.as_str())],
            limit,
        )
        .await?)
}

/// The short form of an item used in listings and answers.
pub fn summary(item: &Value) -> Value {
    let is_folder = item.get("folder").is_some_and(|f| !f.is_null());
    let mut out = json!({
        "id": item["id"],
        "name": item["name"],
        "type": if is_folder { "folder" } else { "file" },
        "size": item["size"],
        "modified": item["lastModifiedDateTime"],
        "parent_id": item["parentReference"]["id"],
        "path": item["parentReference"]["path"].as_str().map(|p| {
            let parent = p.split_once("root:").map_or("", |(_, rest)| rest);
            format!("{parent}/{}", item["name"].as_str().unwrap_or_default())
        }),
        "web_url": item["webUrl"],
    });
    if is_folder {
        out["child_count"] = item["folder"]["childCount"].clone();
    } else {
        out["mime_type"] = item["file"]["mimeType"].clone();
    }
    out
}

fn is_folder(item: &Value) -> bool {
    item.get("folder").is_some_and(|f| !f.is_null())
}

/// Refuses an item that is (or is not) a folder.
pub fn expect_kind(item: &Value, folder: bool, param: &str, value: &str) -> Result<(), ToolError> {
    if is_folder(item) == folder {
        return Ok(());
    }
    let (reason, expected) = if folder {
        (
            "is a file, not a folder",
            "a folder id (file tools handle files)",
        )
    } else {
        (
            "is a folder, not a file",
            "a file id (folder tools handle folders)",
        )
    };
    Err(ToolError::invalid(param, value, reason, expected))
}

/// What a drive write invalidates: listings of the parent folders, the items
/// themselves wherever they are shown or listed, every folder tree, and file
/// searches.
pub fn drive_targets(parents: &[&str], ids: &[&str]) -> Vec<Target> {
    let mut targets = vec![
        Target::all("folder_get_tree"),
        Target::all("search_files"),
        Target::all("search_unified"),
    ];
    let mut add = |t: Target| {
        if !targets.contains(&t) {
            targets.push(t);
        }
    };
    for p in parents.iter().filter(|p| !p.is_empty()) {
        add(Target::container("file_list", *p));
        add(Target::container("folder_list", *p));
        add(Target::item("folder_get", *p));
    }
    for id in ids.iter().filter(|i| !i.is_empty()) {
        for resource in ["file_list", "folder_list", "folder_get"] {
            add(Target::item(resource, *id));
        }
        add(Target::container("file_list", *id));
        add(Target::container("folder_list", *id));
    }
    targets
}

/// Invalidation from a write whose result names `id`, `parent_id` and
/// possibly `previous_parent_id` (plus the id parameters it was called with).
pub fn drive_written(params: &Value, result: &Value) -> Vec<Target> {
    let parents: Vec<&str> = [
        result["parent_id"].as_str(),
        result["previous_parent_id"].as_str(),
        param_id(params, "destination_folder_id"),
        param_id(params, "parent_folder_id"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let ids: Vec<&str> = [
        result["id"].as_str(),
        param_id(params, "file_id"),
        param_id(params, "folder_id"),
    ]
    .into_iter()
    .flatten()
    .collect();
    drive_targets(&parents, &ids)
}

/// An answer for a written item: its summary, with `previous_parent_id` when it moved.
pub fn written(item: &Value, previous_parent: Option<&str>) -> Value {
    let mut out = summary(item);
    if let Some(previous) = previous_parent {
        out["previous_parent_id"] = json!(previous);
    }
    out
}

// ---------------------------------------------------------------- params

fn default_root() -> String {
    "/".into()
}
fn default_limit() -> i64 {
    50
}
fn default_type_filter() -> String {
    "all".into()
}
fn default_permission() -> String {
    "view".into()
}
fn default_scope() -> String {
    "anonymous".into()
}

/// Parameters of `file_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileListParams {
    /// Folder path, e.g. /Documents ('/' is the root).
    #[serde(default = "default_root")]
    pub path: String,
    /// Folder id (wins over path).
    #[serde(default)]
    pub folder_id: Option<String>,
    /// How many items (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// all, files or folders.
    #[serde(default = "default_type_filter")]
    pub type_filter: String,
}

/// Parameters of `file_get`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileGetParams {
    /// The file id.
    pub file_id: String,
    /// Absolute local path to save to, below a directory of MCP_FILE_ALLOWED_ROOTS; never overwritten.
    pub download_path: String,
}

/// Parameters of `file_create`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCreateParams {
    /// OneDrive path of the new file, e.g. /Documents/report.pdf (its folder must exist).
    pub onedrive_path: String,
    /// Absolute local path of the file to upload, below a directory of MCP_FILE_ALLOWED_ROOTS.
    pub local_file_path: String,
}

/// Parameters of `file_update`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpdateParams {
    /// The file id.
    pub file_id: String,
    /// Absolute local path of the new content, below a directory of MCP_FILE_ALLOWED_ROOTS.
    pub local_file_path: String,
}

/// Parameters of `file_delete`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDeleteParams {
    /// The file id.
    pub file_id: String,
    /// Must be true: the file goes to the recycle bin.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `file_copy`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileCopyParams {
    /// The file id.
    pub file_id: String,
    /// The folder to copy into.
    pub destination_folder_id: String,
    /// Name of the copy (default: the same name).
    #[serde(default)]
    pub new_name: Option<String>,
}

/// Parameters of `file_move`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileMoveParams {
    /// The file id.
    pub file_id: String,
    /// The folder to move it into.
    pub destination_folder_id: String,
}

/// Parameters of `file_rename`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRenameParams {
    /// The file id.
    pub file_id: String,
    /// The new name.
    pub new_name: String,
}

/// Parameters of `file_share`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileShareParams {
    /// The file id.
    pub file_id: String,
    /// view or edit.
    #[serde(default = "default_permission")]
    pub permission_type: String,
    /// anonymous (anyone with the link; needs confirm=true) or organization.
    #[serde(default = "default_scope")]
    pub scope: String,
    /// Must be true for an anonymous link.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `file_download_url`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileIdParams {
    /// The file id.
    pub file_id: String,
}

// ---------------------------------------------------------------- registry

/// The OneDrive file tools.
pub fn tools() -> Vec<ToolDef> {
    let write = Cache::Write {
        invalidates: drive_written,
    };
    vec![
        ToolDef::account(
            "file_list",
            "List OneDrive items",
            "files",
            READ,
            Cache::Read { deps: list_deps },
            "List the files and folders in a OneDrive folder (by path or id), optionally only files or only \
             folders, with sizes and dates.",
            file_list,
        ),
        ToolDef::account(
            "file_get",
            "Download a file",
            "files",
            WRITE,
            Cache::None,
            "Download a OneDrive file to a new local file below a directory listed in MCP_FILE_ALLOWED_ROOTS \
             (never overwriting; capped by MCP_FILE_DOWNLOAD_MAX_MB).",
            file_get,
        ),
        ToolDef::account(
            "file_create",
            "Upload a new file",
            "files",
            WRITE,
            write,
            "Upload a local file (below MCP_FILE_ALLOWED_ROOTS) to a new OneDrive path; large files go through \
             a resumable upload session. An existing file is not replaced (use file_update).",
            file_create,
        ),
        ToolDef::account(
            "file_update",
            "Replace a file's content",
            "files",
            UPDATE,
            write,
            "Replace a OneDrive file's content with a local file (below MCP_FILE_ALLOWED_ROOTS).",
            file_update,
        ),
        ToolDef::account(
            "file_delete",
            "Delete a file",
            "files",
            DESTRUCTIVE,
            write,
            "Delete a OneDrive file (to the recycle bin; confirm=true required).",
            file_delete,
        ),
        ToolDef::account(
            "file_copy",
            "Copy a file",
            "files",
            WRITE,
            write,
            "Copy a file into a folder, optionally under a new name; waits for the copy to finish or reports \
             its progress.",
            file_copy,
        ),
        ToolDef::account(
            "file_move",
            "Move a file",
            "files",
            UPDATE,
            write,
            "Move a file into another folder.",
            file_move,
        ),
        ToolDef::account(
            "file_rename",
            "Rename a file",
            "files",
            UPDATE,
            write,
            "Rename a file.",
            file_rename,
        ),
        ToolDef::account(
            "file_share",
            "Create a sharing link",
            "files",
            WRITE,
            Cache::None,
            "Create a view or edit link to a file, for your organization or for anyone with the link \
             (anonymous links need confirm=true).",
            file_share,
        ),
        ToolDef::account(
            "file_download_url",
            "Get a download URL",
            "files",
            READ,
            Cache::None,
            "Get a short-lived pre-authenticated download URL for a file. Anyone holding the URL can download \
             the file until it expires.",
            file_download_url,
        ),
    ]
}

fn list_deps(params: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none().with_items(super::listed_ids(result));
    for id in [result["folder_id"].as_str(), param_id(params, "folder_id")]
        .into_iter()
        .flatten()
    {
        deps = deps.with_container(id).with_item(id);
    }
    deps
}

// ---------------------------------------------------------------- handlers

async fn file_list(app: Arc<App>, account: AccountRecord, p: FileListParams) -> ToolResult {
    let limit = check_range("limit", p.limit, 1, 500)?;
    let filter = p.type_filter.trim().to_ascii_lowercase();
    if !matches!(filter.as_str(), "all" | "files" | "folders") {
        return Err(ToolError::invalid(
            "type_filter",
            &p.type_filter,
            "is not a type filter",
            "all, files or folders",
        ));
    }
    let path = item_path("folder_id", p.folder_id.as_deref(), &p.path)?;
    let folder = get_item(&app, &account, &path).await?;
    expect_kind(&folder, true, "path", &p.path)?;
    let folder_id = folder["id"].as_str().unwrap_or_default().to_string();
    // Filtering happens over the whole folder, so `limit` counts matching items.
    let fetch = if filter == "all" { limit } else { MAX_CHILDREN };
    let items = children(&app, &account, &item_by_id("folder_id", &folder_id)?, fetch).await?;
    let value: Vec<Value> = items
        .iter()
        .filter(|i| match filter.as_str() {
            "files" => !is_folder(i),
            "folders" => is_folder(i),
            _ => true,
        })
        .take(limit)
        .map(summary)
        .collect();
    Ok(json!({
        "value": value,
        "count": value.len(),
        "folder_id": folder_id,
        "folder": summary(&folder),
        "account_id": account.account_id,
    }))
}

async fn file_get(app: Arc<App>, account: AccountRecord, p: FileGetParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    let target = files_local::new_file_target("download_path", &p.download_path, "download")?;
    let cap = files_local::download_cap();
    let item = get_item(&app, &account, &base).await?;
    expect_kind(&item, false, "file_id", &p.file_id)?;
    let size = item["size"].as_u64().unwrap_or(0);
    if size > cap {
        return Err(ToolError::Unavailable(format!(
            "The file is {size} bytes, above the download limit of {cap} bytes ({}); raise it to download this file",
            files_local::MAX_MB_VAR
        )));
    }
    // create_new: an existing file (even one that appeared meanwhile) is never replaced.
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .await
        .map_err(|e| {
            ToolError::invalid(
                "download_path",
                &p.download_path,
                &format!("cannot be created ({e})"),
                "a new file in a writable directory",
            )
        })?;
    let written = app
        .graph
        .download_to(
            &account.account_id,
            &format!("{base}/content"),
            file,
            cap,
            DEFAULT_DOWNLOAD_HOSTS,
        )
        .await;
    match written {
        Ok(bytes) => Ok(json!({
            "path": target.display().to_string(),
            "name": item["name"],
            "size": bytes,
            "size_mb": (bytes as f64 / 1_048_576.0 * 100.0).round() / 100.0,
            "mime_type": item["file"]["mimeType"],
            "id": item["id"],
        })),
        Err(e) => {
            let _ = tokio::fs::remove_file(&target).await;
            Err(e.into())
        }
    }
}

/// Uploads a local file to `target` (a Graph item path ending in `:` for a
/// new path, or `/me/drive/items/{id}` for an existing file).
async fn upload(
    app: &App,
    account: &AccountRecord,
    target: &str,
    local: &std::path::Path,
    conflict: &str,
) -> ToolResult {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| ToolError::Unavailable(format!("cannot open {}: {e}", local.display())))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ToolError::Unavailable(format!("cannot read {}: {e}", local.display())))?
        .len();
    let content_path = format!("{target}/content");
    let mut item = if len < SIMPLE_UPLOAD_MAX {
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(SIMPLE_UPLOAD_MAX)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| ToolError::Unavailable(format!("cannot read {}: {e}", local.display())))?;
        app.graph
            .put_bytes(
                &account.account_id,
                &content_path,
                bytes,
                "application/octet-stream",
            )
            .await?
    } else {
        let session = json!({"item": {"@microsoft.graph.conflictBehavior": conflict}});
        app.graph
            .upload_large(
                &account.account_id,
                &format!("{target}/createUploadSession"),
                &session,
                file,
                len,
                |sent, total| crate::progress::report(sent, Some(total), "bytes uploaded"),
            )
            .await?
    };
    strip_odata(&mut item);
    Ok(item)
}

async fn file_create(app: Arc<App>, account: AccountRecord, p: FileCreateParams) -> ToolResult {
    let segments = drive_segments("onedrive_path", &p.onedrive_path)?;
    if segments.is_empty() {
        return Err(ToolError::invalid(
            "onedrive_path",
            &p.onedrive_path,
            "names no file",
            "a path ending in a file name, e.g. /Documents/report.pdf",
        ));
    }
    let local = files_local::readable_file("local_file_path", &p.local_file_path)?;
    let target = format!(
        "/me/drive/root:{}:",
        encode_drive_path(&format!("/{}", segments.join("/")))
    );
    // Never replace silently: an existing item at the path is an error.
    match get_item(&app, &account, &target).await {
        Ok(existing) => {
            return Err(ToolError::invalid(
                "onedrive_path",
                &p.onedrive_path,
                &format!(
                    "already exists (id {})",
                    existing["id"].as_str().unwrap_or_default()
                ),
                "a new path; use file_update to replace a file's content",
            ));
        }
        Err(ToolError::Graph(e)) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let item = upload(&app, &account, &target, &local, "fail").await?;
    Ok(written(&item, None))
}

async fn file_update(app: Arc<App>, account: AccountRecord, p: FileUpdateParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    let local = files_local::readable_file("local_file_path", &p.local_file_path)?;
    let current = get_item(&app, &account, &base).await?;
    expect_kind(&current, false, "file_id", &p.file_id)?;
    let item = upload(&app, &account, &base, &local, "replace").await?;
    Ok(written(&item, None))
}

async fn file_delete(app: Arc<App>, account: AccountRecord, p: FileDeleteParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    require_confirm(p.confirm, "Deleting a file")?;
    let item = get_item(&app, &account, &base).await?;
    expect_kind(&item, false, "file_id", &p.file_id)?;
    app.graph.delete(&account.account_id, &base).await?;
    Ok(json!({
        "status": "deleted",
        "id": item["id"],
        "name": item["name"],
        "parent_id": item["parentReference"]["id"],
    }))
}

async fn file_copy(app: Arc<App>, account: AccountRecord, p: FileCopyParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    id_segment("destination_folder_id", &p.destination_folder_id)?;
    let name = match optional(p.new_name.as_deref()) {
        Some(n) => Some(check_name("new_name", n)?),
        None => None,
    };
    let mut body = json!({"parentReference": {"id": p.destination_folder_id.trim()}});
    if let Some(name) = &name {
        body["name"] = json!(name);
    }
    let (_, location) = app
        .graph
        .post_accepted(&account.account_id, &format!("{base}/copy"), &body)
        .await?;
    let parent = p.destination_folder_id.trim();
    let Some(monitor) = location else {
        return Ok(json!({"status": "accepted", "parent_id": parent}));
    };
    // Follow the monitor until the copy finishes, for up to about 20 seconds.
    let mut last = Value::Null;
    for attempt in 0..20u64 {
        let status = app
            .graph
            .get_monitor(&monitor, DEFAULT_DOWNLOAD_HOSTS)
            .await?;
        match status["status"].as_str().unwrap_or_default() {
            "completed" => {
                let id = status["resourceId"].as_str().unwrap_or_default();
                let mut out = json!({"status": "completed", "parent_id": parent});
                if !id.is_empty() {
                    out["id"] = json!(id);
                    if let Ok(item) = get_item(&app, &account, &item_by_id("id", id)?).await {
                        out = written(&item, None);
                        out["status"] = json!("completed");
                    }
                }
                return Ok(out);
            }
            "failed" => {
                return Err(ToolError::Unavailable(format!(
                    "The copy failed: {}",
                    status["error"]["message"]
                        .as_str()
                        .or(status["statusDescription"].as_str())
                        .unwrap_or("no reason given")
                )));
            }
            _ => last = status,
        }
        tokio::time::sleep(Duration::from_millis(250 * (attempt + 1).min(4))).await;
    }
    Ok(json!({
        "status": "in_progress",
        "percentage_complete": last["percentageComplete"],
        "parent_id": parent,
        "note": "The copy continues in OneDrive; list the destination folder later to see it.",
    }))
}

/// Moves or renames an item of the given kind; returns the written answer.
pub async fn patch_item(
    app: &App,
    account: &AccountRecord,
    id_param: &str,
    id: &str,
    folder: bool,
    body: Value,
) -> ToolResult {
    let base = item_by_id(id_param, id)?;
    let current = get_item(app, account, &base).await?;
    expect_kind(&current, folder, id_param, id)?;
    let mut item = app.graph.patch(&account.account_id, &base, &body).await?;
    strip_odata(&mut item);
    let previous = current["parentReference"]["id"].as_str();
    Ok(written(&item, previous))
}

async fn file_move(app: Arc<App>, account: AccountRecord, p: FileMoveParams) -> ToolResult {
    item_by_id("file_id", &p.file_id)?;
    id_segment("destination_folder_id", &p.destination_folder_id)?;
    let body = json!({"parentReference": {"id": p.destination_folder_id.trim()}});
    patch_item(&app, &account, "file_id", &p.file_id, false, body).await
}

async fn file_rename(app: Arc<App>, account: AccountRecord, p: FileRenameParams) -> ToolResult {
    item_by_id("file_id", &p.file_id)?;
    let name = check_name("new_name", &p.new_name)?;
    patch_item(
        &app,
        &account,
        "file_id",
        &p.file_id,
        false,
        json!({"name": name}),
    )
    .await
}

async fn file_share(app: Arc<App>, account: AccountRecord, p: FileShareParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    let kind = p.permission_type.trim().to_ascii_lowercase();
    if !matches!(kind.as_str(), "view" | "edit") {
        return Err(ToolError::invalid(
            "permission_type",
            &p.permission_type,
            "is not a link type",
            "view or edit",
        ));
    }
    let scope = p.scope.trim().to_ascii_lowercase();
    if !matches!(scope.as_str(), "anonymous" | "organization") {
        return Err(ToolError::invalid(
            "scope",
            &p.scope,
            "is not a link scope",
            "anonymous or organization",
        ));
    }
    if scope == "anonymous" {
        require_confirm(
            p.confirm,
            "An anonymous link (anyone who has it can open the file)",
        )?;
    }
    let mut permission = app
        .graph
        .post(
            &account.account_id,
            &format!("{base}/createLink"),
            Some(&json!({"type": kind, "scope": scope})),
        )
        .await?;
    strip_odata(&mut permission);
    Ok(json!({
        "link": permission["link"]["webUrl"],
        "type": kind,
        "scope": permission["link"]["scope"],
        "roles": permission["roles"],
        "permission_id": permission["id"],
        "file_id": p.file_id.trim(),
    }))
}

async fn file_download_url(app: Arc<App>, account: AccountRecord, p: FileIdParams) -> ToolResult {
    let base = item_by_id("file_id", &p.file_id)?;
    let item = app
        .graph
        .get(
            &account.account_id,
            &base,
            &[(
                "$select",
                "id,name,size,file,folder,@microsoft.graph.downloadUrl",
            )],
        )
        .await?;
    expect_kind(&item, false, "file_id", &p.file_id)?;
    let url = item["@microsoft.graph.downloadUrl"]
        .as_str()
        .ok_or_else(|| ToolError::Unavailable("Graph gave no download URL for this file".into()))?;
    Ok(json!({
        "id": item["id"],
        "name": item["name"],
        "size": item["size"],
        "download_url": url,
        "note": "Pre-authenticated and short-lived (about an hour); anyone with it can download the file.",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_per_segment_and_checked() {
        assert_eq!(
            item_path("folder_id", None, "/Budget 2025 #final/50% plan").unwrap(),
            "/me/drive/root:/Budget%202025%20%23final/50%25%20plan:"
        );
        assert_eq!(item_path("folder_id", None, "/").unwrap(), "/me/drive/root");
        assert_eq!(
            item_path("folder_id", Some("4B!12"), "/x").unwrap(),
            "/me/drive/items/4B%2112"
        );
        for bad in ["relative", "/a/../b", "/a/./b", "/a:b", "/a\u{1}"] {
            assert!(item_path("folder_id", None, bad).is_err(), "{bad}");
        }
        assert!(item_path("folder_id", Some("../x"), "/").is_err());
        assert!(check_name("new_name", "a/b").is_err());
        assert!(check_name("new_name", " padded").is_err());
        assert!(check_name("new_name", "50% & #1.txt").is_ok());
    }

    #[test]
    fn writes_invalidate_parents_items_trees_and_searches() {
        let targets = drive_written(
            &json!({"file_id": "F1", "destination_folder_id": "D2"}),
            &json!({"id": "F1", "parent_id": "D2", "previous_parent_id": "D1"}),
        );
        for t in [
            Target::container("file_list", "D1"),
            Target::container("file_list", "D2"),
            Target::container("folder_list", "D1"),
            Target::item("folder_get", "F1"),
            Target::all("folder_get_tree"),
            Target::all("search_files"),
        ] {
            assert!(targets.contains(&t), "{t:?} missing");
        }
    }
}
