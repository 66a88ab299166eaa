//! OneDrive folders: listing, one folder, the folder tree (levels fetched
//! concurrently, a bounded number at a time), create, rename, move, delete.

use std::collections::HashMap;
use std::sync::Arc;

use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::check_range;
use super::files::{
    check_name, children, drive_written, expect_kind, get_item, item_by_id, item_path, patch_item,
    summary, written,
};
use super::item_args::{id_segment, optional, param_id, require_confirm, strip_odata};
use super::{Cache, DESTRUCTIVE, READ, ToolDef, ToolResult, UPDATE, WRITE};
use crate::app::App;
use crate::error::ToolError;

/// Most folders a tree may hold; a bigger one is refused rather than cut.
const MAX_TREE_FOLDERS: usize = 5_000;
/// Most children read from one folder.
const MAX_CHILDREN: usize = 10_000;

fn default_root() -> String {
    "/".into()
}
fn default_limit() -> i64 {
    50
}
fn default_depth() -> i64 {
    10
}

/// Parameters of `folder_list`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderListParams {
    /// Folder path, e.g. /Documents ('/' is the root).
    #[serde(default = "default_root")]
    pub path: String,
    /// Folder id (wins over path).
    #[serde(default)]
    pub folder_id: Option<String>,
    /// How many subfolders (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// Parameters of `folder_get`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderGetParams {
    /// Folder id (one of folder_id or path is required).
    #[serde(default)]
    pub folder_id: Option<String>,
    /// Folder path, e.g. /Documents/Reports.
    #[serde(default)]
    pub path: Option<String>,
}

/// Parameters of `folder_get_tree`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderTreeParams {
    /// Path of the top folder ('/' is the root).
    #[serde(default = "default_root")]
    pub path: String,
    /// Id of the top folder (wins over path).
    #[serde(default)]
    pub folder_id: Option<String>,
    /// Levels below the top folder (1–25).
    #[serde(default = "default_depth")]
    pub max_depth: i64,
}

/// Parameters of `folder_create`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderCreateParams {
    /// Name of the new folder (a free name like "Name 1" is used if it exists).
    pub name: String,
    /// Parent folder id (default: the root).
    #[serde(default)]
    pub parent_folder_id: Option<String>,
}

/// Parameters of `folder_delete`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderDeleteParams {
    /// The folder id.
    pub folder_id: String,
    /// Must be true: the folder and everything in it go to the recycle bin.
    #[serde(default)]
    pub confirm: bool,
}

/// Parameters of `folder_rename`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderRenameParams {
    /// The folder id.
    pub folder_id: String,
    /// The new name.
    pub new_name: String,
}

/// Parameters of `folder_move`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderMoveParams {
    /// The folder id.
    pub folder_id: String,
    /// The folder to move it into.
    pub destination_folder_id: String,
}

/// The OneDrive folder tools.
pub fn tools() -> Vec<ToolDef> {
    let write = Cache::Write {
        invalidates: drive_written,
    };
    vec![
        ToolDef::account(
            "folder_list",
            "List OneDrive folders",
            "folders",
            READ,
            Cache::Read { deps: list_deps },
            "List the subfolders of a OneDrive folder (by path or id) with their item counts.",
            folder_list,
        ),
        ToolDef::account(
            "folder_get",
            "Get a OneDrive folder",
            "folders",
            READ,
            Cache::Read { deps: get_deps },
            "Get one OneDrive folder by id or path: name, item count, size, path, parent and web link.",
            folder_get,
        ),
        ToolDef::account(
            "folder_get_tree",
            "Get the OneDrive folder tree",
            "folders",
            READ,
            Cache::Read { deps: tree_deps },
            "The folders below a OneDrive folder, nested, down to max_depth levels. Fails as a whole if any \
             branch cannot be read.",
            folder_get_tree,
        ),
        ToolDef::account(
            "folder_create",
            "Create a OneDrive folder",
            "folders",
            WRITE,
            write,
            "Create a folder in the root or in parent_folder_id; an existing name gets a free variant.",
            folder_create,
        ),
        ToolDef::account(
            "folder_delete",
            "Delete a OneDrive folder",
            "folders",
            DESTRUCTIVE,
            write,
            "Delete a folder and everything in it (to the recycle bin; confirm=true required).",
            folder_delete,
        ),
        ToolDef::account(
            "folder_rename",
            "Rename a OneDrive folder",
            "folders",
            UPDATE,
            write,
            "Rename a folder.",
            folder_rename,
        ),
        ToolDef::account(
            "folder_move",
            "Move a OneDrive folder",
            "folders",
            UPDATE,
            write,
            "Move a folder into another folder.",
            folder_move,
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

fn get_deps(params: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none();
    for id in [result["id"].as_str(), param_id(params, "folder_id")]
        .into_iter()
        .flatten()
    {
        deps = deps.with_item(id);
    }
    deps
}

fn tree_deps(_: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none();
    if let Some(root) = result["root_folder_id"].as_str() {
        deps = deps.with_container(root).with_item(root);
    }
    let mut stack: Vec<&Value> = result["folders"].as_array().into_iter().flatten().collect();
    while let Some(node) = stack.pop() {
        if let Some(id) = node["id"].as_str() {
            deps = deps.with_item(id).with_container(id);
        }
        stack.extend(node["children"].as_array().into_iter().flatten());
    }
    deps
}

fn is_folder(item: &Value) -> bool {
    item.get("folder").is_some_and(|f| !f.is_null())
}

async fn folder_list(app: Arc<App>, account: AccountRecord, p: FolderListParams) -> ToolResult {
    let limit = check_range("limit", p.limit, 1, 500)?;
    let path = item_path("folder_id", p.folder_id.as_deref(), &p.path)?;
    let folder = get_item(&app, &account, &path).await?;
    expect_kind(&folder, true, "path", &p.path)?;
    let folder_id = folder["id"].as_str().unwrap_or_default().to_string();
    let items = children(
        &app,
        &account,
        &item_by_id("folder_id", &folder_id)?,
        MAX_CHILDREN,
    )
    .await?;
    let value: Vec<Value> = items
        .iter()
        .filter(|i| is_folder(i))
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

async fn folder_get(app: Arc<App>, account: AccountRecord, p: FolderGetParams) -> ToolResult {
    let (id, path) = (
        optional(p.folder_id.as_deref()),
        optional(p.path.as_deref()),
    );
    if id.is_none() && path.is_none() {
        return Err(ToolError::invalid(
            "folder_id",
            "",
            "neither folder_id nor path was given",
            "a folder id or a path such as /Documents",
        ));
    }
    let target = item_path("folder_id", id, path.unwrap_or("/"))?;
    let item = get_item(&app, &account, &target).await?;
    expect_kind(&item, true, "folder_id", id.or(path).unwrap_or_default())?;
    Ok(summary(&item))
}

/// One folder of the tree while it is being read.
struct Node {
    summary: Value,
    children: Vec<String>,
}

async fn folder_get_tree(app: Arc<App>, account: AccountRecord, p: FolderTreeParams) -> ToolResult {
    let max_depth = check_range("max_depth", p.max_depth, 1, 25)?;
    let path = item_path("folder_id", p.folder_id.as_deref(), &p.path)?;
    let top = get_item(&app, &account, &path).await?;
    expect_kind(&top, true, "path", &p.path)?;
    let root_id = top["id"].as_str().unwrap_or_default().to_string();

    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut top_children: Vec<String> = Vec::new();
    // (folder id, depth of its children)
    let mut level: Vec<(String, usize)> = vec![(root_id.clone(), 1)];
    // Level by level; each level's listings go twenty to a $batch call.
    while !level.is_empty() {
        let depth_of: HashMap<String, usize> = level.iter().cloned().collect();
        let listings = level
            .drain(..)
            .map(|(id, _)| {
                Ok((
                    id.clone(),
                    format!("{}/children", item_by_id("folder_id", &id)?),
                ))
            })
            .collect::<Result<Vec<_>, ToolError>>()?;
        let top = MAX_CHILDREN.clamp(1, 200).to_string();
        let listed = super::listing::list_many(
            &app,
            &account.account_id,
            listings,
            &[
                ("$select", super::files::ITEM_FIELDS),
                ("$top", top.as_str()),
            ],
        )
        .await?;
        let mut next = Vec::new();
        for (parent, items) in listed {
            let depth = depth_of.get(&parent).copied().unwrap_or(max_depth);
            crate::progress::report(nodes.len() as u64 + 1, None, "drive folders read");
            for item in items.iter().filter(|i| is_folder(i)) {
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                if parent == root_id {
                    top_children.push(id.to_string());
                } else if let Some(node) = nodes.get_mut(&parent) {
                    node.children.push(id.to_string());
                }
                nodes.insert(
                    id.to_string(),
                    Node {
                        summary: summary(item),
                        children: Vec::new(),
                    },
                );
                let has_children = item["folder"]["childCount"].as_u64().unwrap_or(1) > 0;
                if depth < max_depth && has_children {
                    next.push((id.to_string(), depth + 1));
                }
            }
            if nodes.len() > MAX_TREE_FOLDERS {
                return Err(ToolError::Unavailable(format!(
                    "The tree has more than {MAX_TREE_FOLDERS} folders; ask for a lower max_depth or a subfolder"
                )));
            }
        }
        level = next;
    }

    fn build(id: &str, nodes: &mut HashMap<String, Node>) -> Value {
        let Some(node) = nodes.remove(id) else {
            return Value::Null;
        };
        let mut out = node.summary;
        let mut kids: Vec<Value> = node
            .children
            .iter()
            .map(|c| build(c, nodes))
            .filter(|v| !v.is_null())
            .collect();
        kids.sort_by(|a, b| {
            a["name"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
                .cmp(&b["name"].as_str().unwrap_or_default().to_lowercase())
        });
        out["children"] = Value::Array(kids);
        out
    }
    let count = nodes.len();
    let mut folders: Vec<Value> = top_children.iter().map(|c| build(c, &mut nodes)).collect();
    folders.sort_by(|a, b| {
        a["name"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .cmp(&b["name"].as_str().unwrap_or_default().to_lowercase())
    });
    Ok(json!({
        "root_folder_id": root_id,
        "root": summary(&top),
        "max_depth": max_depth,
        "folder_count": count,
        "folders": folders,
        "account_id": account.account_id,
    }))
}

async fn folder_create(app: Arc<App>, account: AccountRecord, p: FolderCreateParams) -> ToolResult {
    let name = check_name("name", &p.name)?;
    let parent = match optional(p.parent_folder_id.as_deref()) {
        Some(id) => format!("/me/drive/items/{}", id_segment("parent_folder_id", id)?),
        None => "/me/drive/root".to_string(),
    };
    let body = json!({
        "name": name,
        "folder": {},
        "@microsoft.graph.conflictBehavior": "rename",
    });
    let mut item = app
        .graph
        .post(
            &account.account_id,
            &format!("{parent}/children"),
            Some(&body),
        )
        .await?;
    strip_odata(&mut item);
    Ok(written(&item, None))
}

async fn folder_delete(app: Arc<App>, account: AccountRecord, p: FolderDeleteParams) -> ToolResult {
    let base = item_by_id("folder_id", &p.folder_id)?;
    require_confirm(p.confirm, "Deleting a folder and everything in it")?;
    let item = get_item(&app, &account, &base).await?;
    expect_kind(&item, true, "folder_id", &p.folder_id)?;
    if item.get("root").is_some() || item["parentReference"]["id"].is_null() {
        return Err(ToolError::invalid(
            "folder_id",
            &p.folder_id,
            "is the drive's root folder",
            "a folder below the root",
        ));
    }
    app.graph.delete(&account.account_id, &base).await?;
    Ok(json!({
        "status": "deleted",
        "id": item["id"],
        "folder_id": item["id"],
        "name": item["name"],
        "parent_id": item["parentReference"]["id"],
    }))
}

async fn folder_rename(app: Arc<App>, account: AccountRecord, p: FolderRenameParams) -> ToolResult {
    item_by_id("folder_id", &p.folder_id)?;
    let name = check_name("new_name", &p.new_name)?;
    patch_item(
        &app,
        &account,
        "folder_id",
        &p.folder_id,
        true,
        json!({"name": name}),
    )
    .await
}

async fn folder_move(app: Arc<App>, account: AccountRecord, p: FolderMoveParams) -> ToolResult {
    item_by_id("folder_id", &p.folder_id)?;
    id_segment("destination_folder_id", &p.destination_folder_id)?;
    if p.folder_id.trim() == p.destination_folder_id.trim() {
        return Err(ToolError::invalid(
            "destination_folder_id",
            &p.destination_folder_id,
            "is the folder itself",
            "another folder",
        ));
    }
    let body = json!({"parentReference": {"id": p.destination_folder_id.trim()}});
    patch_item(&app, &account, "folder_id", &p.folder_id, true, body).await
}
