//! OneDrive (`/me/drive`): items by id or path, children, content (download by redirect to a
//! pre-authenticated URL, simple upload, upload sessions), copy, move and rename, delete,
//! sharing links and search.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::app::{App, Caller, Request, lock};
use crate::graph::collection_url;
use crate::graph::mail::with_context_first;
use crate::odata::{self, Filter, PageRequest, PageRule};
use crate::reply::{GraphError, GraphResult, Reply};
use crate::seed::drive_item_json;
use crate::state::{UploadSession, UploadTarget, UserData, World, format_time, public, str_of};

/// Largest body of a simple upload (`PUT .../content`).
const SIMPLE_UPLOAD_MAX: usize = 4 * 1024 * 1024;

fn not_found() -> GraphError {
    GraphError::drive_item_not_found()
}

/// Characters OneDrive refuses in names.
fn check_name(name: &str) -> Result<(), GraphError> {
    let bad = name.trim().is_empty()
        || name
            .chars()
            .any(|c| "\"*:<>?/\\|".contains(c) || c.is_control())
        || name == "."
        || name == "..";
    if bad {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            format!("The name '{name}' contains characters that are not allowed."),
        ));
    }
    Ok(())
}

/// Per-request view of a drive: index, child counts, folder sizes.
struct View<'a> {
    data: &'a UserData,
    index: HashMap<&'a str, usize>,
    children: HashMap<&'a str, usize>,
    sizes: HashMap<&'a str, u64>,
}

impl<'a> View<'a> {
    fn new(data: &'a UserData) -> Self {
        let items = &data.drive.items;
        let index: HashMap<&str, usize> = items
            .iter()
            .enumerate()
            .map(|(i, v)| (str_of(v, "id"), i))
            .collect();
        let mut children: HashMap<&str, usize> = HashMap::new();
        for item in items {
            *children.entry(str_of(item, "_parent")).or_default() += 1;
        }
        let mut view = Self {
            data,
            index,
            children,
            sizes: HashMap::new(),
        };
        // Folder sizes: each file's size added to every ancestor (borrowed
        // ids, no allocation per step: this runs for every request).
        let mut sizes: HashMap<&'a str, u64> = HashMap::new();
        for item in items {
            if item.get("file").is_some() {
                let size = view.content_len(str_of(item, "id"));
                let mut parent: &'a str = str_of(item, "_parent");
                while !parent.is_empty() {
                    *sizes.entry(parent).or_default() += size;
                    parent = view.get(parent).map(|p| str_of(p, "_parent")).unwrap_or("");
                }
            }
        }
        view.sizes = sizes;
        view
    }

    fn content_len(&self, id: &str) -> u64 {
        self.data
            .drive
            .content
            .get(id)
            .map_or(0, |c| c.len() as u64)
    }

    fn get(&self, id: &str) -> Option<&'a Value> {
        self.index.get(id).map(|&i| &self.data.drive.items[i])
    }

    /// `/drive/root:/a/b` of the folder `id`.
    fn path_of(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut current = id.to_string();
        while let Some(item) = self.get(&current) {
            let parent = str_of(item, "_parent");
            if parent.is_empty() {
                break;
            }
            names.push(str_of(item, "name").to_string());
            current = parent.to_string();
        }
        names.reverse();
        if names.is_empty() {
            "/drive/root:".to_string()
        } else {
            format!("/drive/root:/{}", names.join("/"))
        }
    }

    fn out(&self, item: &Value, caller: &Caller, secret: &str) -> Value {
        let id = str_of(item, "id");
        let parent = str_of(item, "_parent");
        let drive_type = if self.data.user.personal {
            "personal"
        } else {
            "business"
        };
        let mut out = public(item);
        let web_base = if self.data.user.personal {
            "https://onedrive.live.com".to_string()
        } else {
            format!(
                "https://contoso-my.sharepoint.com/personal/{}/Documents",
                self.data
                    .user
                    .username
                    .to_lowercase()
                    .replace(['@', '.'], "_")
            )
        };
        let Some(map) = out.as_object_mut() else {
            return out;
        };
        let path = self.path_of(id);
        map.insert(
            "webUrl".into(),
            json!(format!(
                "{web_base}{}",
                path.trim_start_matches("/drive/root:")
            )),
        );
        if map.contains_key("folder") {
            map.insert(
                "size".into(),
                json!(self.sizes.get(id).copied().unwrap_or(0)),
            );
            map.insert(
                "folder".into(),
                json!({"childCount": self.children.get(id).copied().unwrap_or(0)}),
            );
        } else {
            map.insert("size".into(), json!(self.content_len(id)));
            map.insert(
                "@microsoft.graph.downloadUrl".into(),
                json!(format!(
                    "{}/_download/{}/{id}?tempauth={secret}",
                    caller.origin, caller.user
                )),
            );
        }
        if parent.is_empty() {
            map.insert("root".into(), json!({}));
            map.insert(
                "parentReference".into(),
                json!({"driveType": drive_type, "driveId": self.data.drive.id}),
            );
        } else {
            map.insert(
                "parentReference".into(),
                json!({
                    "driveType": drive_type,
                    "driveId": self.data.drive.id,
                    "id": parent,
                    "name": self.get(parent).map(|p| str_of(p, "name")).unwrap_or_default(),
                    "path": self.path_of(parent),
                }),
            );
        }
        out
    }
}

/// What a request addressed: an existing item, or a missing name under an existing folder.
enum Target {
    Item(String),
    Missing { parent: String, name: String },
}

fn child_named(data: &UserData, parent: &str, name: &str) -> Option<String> {
    data.drive
        .items
        .iter()
        .find(|i| str_of(i, "_parent") == parent && str_of(i, "name").eq_ignore_ascii_case(name))
        .map(|i| str_of(i, "id").to_string())
}

fn walk(data: &UserData, start: &str, names: &[String]) -> Result<Target, GraphError> {
    let mut current = start.to_string();
    for (i, name) in names.iter().enumerate() {
        match child_named(data, &current, name) {
            Some(id) => current = id,
            None if i + 1 == names.len() => {
                return Ok(Target::Missing {
                    parent: current,
                    name: name.clone(),
                });
            }
            None => return Err(not_found()),
        }
    }
    Ok(Target::Item(current))
}

/// Parses the item reference at `at`; returns the target and the index of the first segment
/// after it.
fn locate(data: &UserData, request: &Request, at: usize) -> Result<(Target, usize), GraphError> {
    let raw = |i: usize| request.segments.get(i).map(String::as_str);
    let (start, mut next, first) = match raw(at) {
        Some("root") => return Ok((Target::Item(data.drive.root_id.clone()), at + 1)),
        Some("items") => {
            let id_raw =
                raw(at + 1).ok_or_else(|| GraphError::bad_request("An item id is required."))?;
            match id_raw.strip_suffix(':') {
                Some(id) => (crate::odata::decode_path(id), at + 2, None),
                None => {
                    let id = crate::odata::decode_path(id_raw);
                    if data.drive.items.iter().all(|i| str_of(i, "id") != id) {
                        return Err(not_found());
                    }
                    return Ok((Target::Item(id), at + 2));
                }
            }
        }
        Some(s) if s.starts_with("root:") => {
            let rest = &s["root:".len()..];
            (
                data.drive.root_id.clone(),
                at + 1,
                (!rest.is_empty()).then(|| rest.to_string()),
            )
        }
        Some(other) => {
            return Err(GraphError::unknown_segment(&crate::odata::decode_path(
                other,
            )));
        }
        None => return Err(GraphError::bad_request("An item reference is required.")),
    };
    // Path addressing: names until a segment that ends with ':' (or the end).
    let mut names: Vec<String> = Vec::new();
    if let Some(first) = first {
        let done = first.ends_with(':');
        names.push(crate::odata::decode_path(first.trim_end_matches(':')));
        if done {
            return Ok((walk(data, &start, &names)?, next));
        }
    }
    while let Some(seg) = raw(next) {
        next += 1;
        if let Some(last) = seg.strip_suffix(':') {
            if !last.is_empty() {
                names.push(crate::odata::decode_path(last));
            }
            break;
        }
        names.push(crate::odata::decode_path(seg));
    }
    names.retain(|n| !n.is_empty());
    Ok((walk(data, &start, &names)?, next))
}

/// `/me/drive...`; `at` is the index after `drive`.
pub(crate) fn handle(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
) -> GraphResult {
    let user = caller.user;
    if request.segments.get(at).is_none() {
        if request.method != "GET" {
            return Err(GraphError::method_not_allowed());
        }
        let data = &world.users[user];
        let used: u64 = data.drive.content.values().map(|c| c.len() as u64).sum();
        let total: u64 = 1024 * 1024 * 1024 * 1024;
        return Ok(Reply::json(json!({
            "@odata.context": format!("{}/$metadata#drives/$entity", caller.base),
            "id": data.drive.id,
            "driveType": if data.user.personal { "personal" } else { "business" },
            "name": "OneDrive",
            "owner": {"user": {"displayName": data.user.display_name, "id": data.user.oid}},
            "quota": {"deleted": 0, "remaining": total - used, "state": "normal", "total": total, "used": used},
        })));
    }
    if matches!(
        request.segment(at).as_deref(),
        Some("recent" | "sharedWithMe")
    ) {
        return Ok(Reply::json(
            json!({"@odata.context": format!("{}/$metadata#Collection(driveItem)", caller.base), "value": []}),
        ));
    }
    let (target, next) = locate(&world.users[user], request, at)?;
    let action = request.segment(next);
    match (target, action.as_deref()) {
        (Target::Missing { parent, name }, Some("content")) if request.method == "PUT" => {
            simple_upload(world, caller, request, &parent, &name, None)
        }
        (Target::Missing { parent, name }, Some("createUploadSession"))
            if request.method == "POST" =>
        {
            create_upload_session(world, caller, request, &parent, &name)
        }
        (Target::Missing { .. }, _) => Err(not_found()),
        (Target::Item(id), None) => match request.method.as_str() {
            "GET" => item_reply(world, caller, request, &id, 200),
            "PATCH" => update_item(world, caller, request, &id),
            "DELETE" => {
                if id == world.users[user].drive.root_id {
                    return Err(GraphError::new(
                        403,
                        "accessDenied",
                        "The root folder cannot be deleted.",
                    ));
                }
                delete_subtree(&mut world.users[user], &id);
                Ok(Reply::empty(204))
            }
            _ => Err(GraphError::method_not_allowed()),
        },
        (Target::Item(id), Some("children")) => match request.method.as_str() {
            "GET" => list_children(world, caller, request, &id),
            "POST" => create_child(world, caller, request, &id),
            _ => Err(GraphError::method_not_allowed()),
        },
        (Target::Item(id), Some("content")) => match request.method.as_str() {
            "GET" => {
                let data = &world.users[user];
                let item = data
                    .drive
                    .items
                    .iter()
                    .find(|i| str_of(i, "id") == id)
                    .ok_or_else(not_found)?;
                if item.get("folder").is_some() {
                    return Err(GraphError::new(
                        400,
                        "invalidRequest",
                        "A folder has no content.",
                    ));
                }
                let url = format!(
                    "{}/_download/{user}/{id}?tempauth={}",
                    caller.origin, world.download_secret
                );
                Ok(Reply::empty(302).header("Location", url))
            }
            "PUT" => {
                let (parent, name) = {
                    let item = world.users[user]
                        .drive
                        .items
                        .iter()
                        .find(|i| str_of(i, "id") == id)
                        .ok_or_else(not_found)?;
                    if item.get("folder").is_some() {
                        return Err(GraphError::new(
                            400,
                            "invalidRequest",
                            "Content cannot be written to a folder.",
                        ));
                    }
                    (
                        str_of(item, "_parent").to_string(),
                        str_of(item, "name").to_string(),
                    )
                };
                simple_upload(world, caller, request, &parent, &name, Some(&id))
            }
            _ => Err(GraphError::method_not_allowed()),
        },
        (Target::Item(id), Some("createUploadSession")) if request.method == "POST" => {
            let item = world.users[user]
                .drive
                .items
                .iter()
                .find(|i| str_of(i, "id") == id)
                .ok_or_else(not_found)?
                .clone();
            if item.get("folder").is_some() {
                // `items/{folder}:/name:/createUploadSession` is handled as Missing; a folder
                // itself cannot take content.
                return Err(GraphError::new(
                    400,
                    "invalidRequest",
                    "Content cannot be written to a folder.",
                ));
            }
            create_upload_session(
                world,
                caller,
                request,
                str_of(&item, "_parent"),
                str_of(&item, "name"),
            )
        }
        (Target::Item(id), Some("copy")) if request.method == "POST" => {
            copy_item(world, caller, request, &id)
        }
        (Target::Item(id), Some("createLink")) if request.method == "POST" => {
            create_link(world, caller, request, &id)
        }
        (Target::Item(_), Some("permissions")) if request.method == "GET" => Ok(Reply::json(
            json!({"@odata.context": format!("{}/$metadata#Collection(permission)", caller.base), "value": []}),
        )),
        (Target::Item(id), Some(action)) if action.starts_with("search(") => {
            search(world, caller, request, &id, action)
        }
        (Target::Item(_), Some(other)) => Err(GraphError::unknown_segment(other)),
    }
}

fn item_reply(
    world: &World,
    caller: &Caller,
    request: &Request,
    id: &str,
    status: u16,
) -> GraphResult {
    let data = &world.users[caller.user];
    let view = View::new(data);
    let item = view.get(id).ok_or_else(not_found)?;
    let out = view.out(item, caller, &world.download_secret);
    let ctx = format!(
        "{}/$metadata#users('{}')/drive/items/$entity",
        caller.base, data.user.oid
    );
    Ok(Reply::with_status(
        status,
        with_context_first(out, ctx, request),
    ))
}

fn list_children(world: &World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let data = &world.users[caller.user];
    let view = View::new(data);
    let parent = view.get(id).ok_or_else(not_found)?;
    if parent.get("folder").is_none() {
        return Ok(Reply::json(json!({"value": []})));
    }
    let mut items: Vec<Value> = data
        .drive
        .items
        .iter()
        .filter(|i| str_of(i, "_parent") == id)
        .map(|i| view.out(i, caller, &world.download_secret))
        .collect();
    if let Some(filter) = request.query.get("filter") {
        let filter = Filter::parse(filter)?;
        items.retain(|i| filter.matches(i));
    }
    odata::order_by(&mut items, request.query.get("orderby").unwrap_or("name"))?;
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#users('{}')/drive/items('{id}')/children",
            caller.base, data.user.oid
        )),
    );
    let page = PageRequest {
        query: &request.query,
        url: collection_url(caller, request),
    };
    odata::page_into(&mut out, items, &page, PageRule::DRIVE)?;
    Ok(Reply::json(Value::Object(out)))
}

fn conflict_behavior(body: &Map<String, Value>) -> String {
    body.get("@microsoft.graph.conflictBehavior")
        .or_else(|| {
            body.get("item")
                .and_then(|i| i.get("@microsoft.graph.conflictBehavior"))
        })
        .and_then(Value::as_str)
        .unwrap_or("fail")
        .to_string()
}

/// A free name under `parent` in the "rename" style (`name 1.txt`).
fn free_name(data: &UserData, parent: &str, name: &str) -> String {
    if child_named(data, parent, name).is_none() {
        return name.to_string();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    (1..)
        .map(|n| format!("{stem} {n}{ext}"))
        .find(|candidate| child_named(data, parent, candidate).is_none())
        .unwrap_or_else(|| name.to_string())
}

fn name_conflict() -> GraphError {
    GraphError::new(
        409,
        "nameAlreadyExists",
        "The specified item name already exists.",
    )
}

fn create_child(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    parent: &str,
) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    check_name(&name)?;
    if body.get("folder").is_none() && body.get("file").is_none() {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "Either 'folder' or 'file' must be provided.",
        ));
    }
    if world.users[user]
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == parent)
        .and_then(|p| p.get("folder"))
        .is_none()
    {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "The parent is not a folder.",
        ));
    }
    let mut name = name;
    if let Some(existing) = child_named(&world.users[user], parent, &name) {
        match conflict_behavior(&body).as_str() {
            "rename" => name = free_name(&world.users[user], parent, &name),
            "replace" => delete_subtree(&mut world.users[user], &existing),
            _ => return Err(name_conflict()),
        }
    }
    let owner = world.users[user].user.clone();
    let mime = body
        .get("folder")
        .is_none()
        .then_some("application/octet-stream");
    let item = drive_item_json(
        world,
        &owner,
        &name,
        parent,
        mime,
        OffsetDateTime::now_utc(),
    );
    let id = str_of(&item, "id").to_string();
    world.users[user].drive.items.push(item);
    if mime.is_some() {
        world.users[user]
            .drive
            .content
            .insert(id.clone(), Vec::new());
    }
    item_reply(world, caller, request, &id, 201)
}

fn delete_subtree(data: &mut UserData, id: &str) {
    let mut doomed = vec![id.to_string()];
    let mut i = 0;
    while i < doomed.len() {
        let current = doomed[i].clone();
        doomed.extend(
            data.drive
                .items
                .iter()
                .filter(|x| str_of(x, "_parent") == current)
                .map(|x| str_of(x, "id").to_string()),
        );
        i += 1;
    }
    data.drive
        .items
        .retain(|x| !doomed.iter().any(|d| d == str_of(x, "id")));
    for d in doomed {
        data.drive.content.remove(&d);
    }
}

fn bump(world: &mut World, user: usize, id: &str) {
    let now = format_time(OffsetDateTime::now_utc());
    if let Some(item) = world.users[user]
        .drive
        .items
        .iter_mut()
        .find(|i| str_of(i, "id") == id)
    {
        let version = str_of(item, "eTag")
            .rsplit(',')
            .next()
            .and_then(|v| v.trim_end_matches('"').parse::<u64>().ok())
            .unwrap_or(1)
            + 1;
        item["eTag"] = json!(format!("\"{{{id}}},{version}\""));
        item["cTag"] = json!(format!("\"c:{{{id}}},{version}\""));
        item["lastModifiedDateTime"] = json!(now);
        item["fileSystemInfo"]["lastModifiedDateTime"] = json!(now);
    }
}

fn store_content(
    world: &mut World,
    user: usize,
    parent: &str,
    name: &str,
    existing: Option<&str>,
    bytes: Vec<u8>,
) -> (String, bool) {
    let existing = existing
        .map(str::to_string)
        .or_else(|| child_named(&world.users[user], parent, name));
    match existing {
        Some(id) => {
            world.users[user].drive.content.insert(id.clone(), bytes);
            let hash = world.token(20);
            if let Some(item) = world.users[user]
                .drive
                .items
                .iter_mut()
                .find(|i| str_of(i, "id") == id)
            {
                item["file"]["hashes"]["quickXorHash"] = json!(hash);
            }
            bump(world, user, &id);
            (id, false)
        }
        None => {
            let owner = world.users[user].user.clone();
            let mime = mime_for(name);
            let item = drive_item_json(
                world,
                &owner,
                name,
                parent,
                Some(mime),
                OffsetDateTime::now_utc(),
            );
            let id = str_of(&item, "id").to_string();
            world.users[user].drive.items.push(item);
            world.users[user].drive.content.insert(id.clone(), bytes);
            (id, true)
        }
    }
}

fn mime_for(name: &str) -> &'static str {
    match name
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("txt" | "md" | "csv") => "text/plain",
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("json") => "application/json",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/octet-stream",
    }
}

fn simple_upload(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    parent: &str,
    name: &str,
    existing: Option<&str>,
) -> GraphResult {
    check_name(name)?;
    if request.body.len() > SIMPLE_UPLOAD_MAX {
        return Err(GraphError::new(
            413,
            "requestEntityTooLarge",
            "Files larger than 4 MB must be uploaded with an upload session.",
        ));
    }
    let behavior = request
        .query
        .get("@microsoft.graph.conflictbehavior")
        .unwrap_or("replace")
        .to_string();
    let mut name = name.to_string();
    let mut existing = existing.map(str::to_string);
    if existing.is_none() && child_named(&world.users[caller.user], parent, &name).is_some() {
        match behavior.as_str() {
            "fail" => return Err(name_conflict()),
            "rename" => name = free_name(&world.users[caller.user], parent, &name),
            _ => existing = child_named(&world.users[caller.user], parent, &name),
        }
    }
    let (id, created) = store_content(
        world,
        caller.user,
        parent,
        &name,
        existing.as_deref(),
        request.body.clone(),
    );
    item_reply(world, caller, request, &id, if created { 201 } else { 200 })
}

fn create_upload_session(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    parent: &str,
    name: &str,
) -> GraphResult {
    check_name(name)?;
    let body = request.json()?;
    if child_named(&world.users[caller.user], parent, name).is_some()
        && conflict_behavior(&body) == "fail"
    {
        return Err(name_conflict());
    }
    let token = world.token(32);
    let expiration = OffsetDateTime::now_utc() + time::Duration::hours(24);
    let size = body
        .get("item")
        .and_then(|i| i.get("fileSize"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    world.uploads.insert(
        token.clone(),
        UploadSession {
            target: UploadTarget::DriveItem {
                user: caller.user,
                parent_id: parent.to_string(),
                name: name.to_string(),
            },
            size,
            received: Vec::new(),
            expiration,
        },
    );
    Ok(Reply::json(json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", caller.base),
        "uploadUrl": format!("{}/_upload/{token}", caller.origin),
        "expirationDateTime": format_time(expiration),
        "nextExpectedRanges": ["0-"],
    })))
}

fn update_item(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let root = world.users[user].drive.root_id.clone();
    if id == root && (body.contains_key("name") || body.contains_key("parentReference")) {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "The root folder cannot be renamed or moved.",
        ));
    }
    let current = world.users[user]
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == id)
        .ok_or_else(not_found)?
        .clone();
    let mut parent = str_of(&current, "_parent").to_string();
    if let Some(reference) = body.get("parentReference") {
        let target = if let Some(pid) = reference.get("id").and_then(Value::as_str) {
            pid.to_string()
        } else if let Some(path) = reference.get("path").and_then(Value::as_str) {
            let rel = path
                .trim_start_matches("/drive/root:")
                .trim_start_matches('/');
            let names: Vec<String> = rel
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            match walk(&world.users[user], &root, &names)? {
                Target::Item(pid) => pid,
                Target::Missing { .. } => return Err(not_found()),
            }
        } else {
            return Err(GraphError::new(
                400,
                "invalidRequest",
                "parentReference needs an id or a path.",
            ));
        };
        let folder = world.users[user]
            .drive
            .items
            .iter()
            .find(|i| str_of(i, "id") == target)
            .ok_or_else(not_found)?;
        if folder.get("folder").is_none() {
            return Err(GraphError::new(
                400,
                "invalidRequest",
                "The destination is not a folder.",
            ));
        }
        // A folder cannot move below itself.
        let mut walker = target.clone();
        while !walker.is_empty() {
            if walker == id {
                return Err(GraphError::new(
                    400,
                    "invalidRequest",
                    "An item cannot be moved into itself.",
                ));
            }
            walker = world.users[user]
                .drive
                .items
                .iter()
                .find(|i| str_of(i, "id") == walker)
                .map(|i| str_of(i, "_parent").to_string())
                .unwrap_or_default();
        }
        parent = target;
    }
    let name = match body.get("name") {
        Some(Value::String(n)) => {
            check_name(n)?;
            n.clone()
        }
        Some(_) => {
            return Err(GraphError::new(
                400,
                "invalidRequest",
                "The name must be a string.",
            ));
        }
        None => str_of(&current, "name").to_string(),
    };
    if let Some(other) = child_named(&world.users[user], &parent, &name)
        && other != id
    {
        return Err(name_conflict());
    }
    if let Some(item) = world.users[user]
        .drive
        .items
        .iter_mut()
        .find(|i| str_of(i, "id") == id)
    {
        item["name"] = json!(name);
        item["_parent"] = json!(parent);
        if let Some(description) = body.get("description") {
            item["description"] = description.clone();
        }
    }
    bump(world, user, id);
    item_reply(world, caller, request, id, 200)
}

fn copy_item(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let source = world.users[user]
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == id)
        .ok_or_else(not_found)?
        .clone();
    let parent = body
        .get("parentReference")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| str_of(&source, "_parent").to_string());
    if world.users[user]
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == parent)
        .and_then(|p| p.get("folder"))
        .is_none()
    {
        return Err(not_found());
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map_or_else(|| str_of(&source, "name").to_string(), str::to_string);
    check_name(&name)?;
    if child_named(&world.users[user], &parent, &name).is_some() {
        return Err(name_conflict());
    }
    let new_id = copy_tree(world, user, id, &parent, &name);
    let monitor = world.token(16);
    world.monitors.insert(
        monitor.clone(),
        json!({"operation": "itemCopy", "percentageComplete": 100.0, "resourceId": new_id, "status": "completed"}),
    );
    Ok(Reply::empty(202).header("Location", format!("{}/_monitor/{monitor}", caller.origin)))
}

fn copy_tree(world: &mut World, user: usize, id: &str, parent: &str, name: &str) -> String {
    let Some(source) = world.users[user]
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == id)
        .cloned()
    else {
        return String::new();
    };
    let owner = world.users[user].user.clone();
    let mime = source
        .get("file")
        .and_then(|f| f.get("mimeType"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let item = drive_item_json(
        world,
        &owner,
        name,
        parent,
        mime.as_deref(),
        OffsetDateTime::now_utc(),
    );
    let new_id = str_of(&item, "id").to_string();
    world.users[user].drive.items.push(item);
    if let Some(content) = world.users[user].drive.content.get(id).cloned() {
        world.users[user]
            .drive
            .content
            .insert(new_id.clone(), content);
    }
    let children: Vec<(String, String)> = world.users[user]
        .drive
        .items
        .iter()
        .filter(|i| str_of(i, "_parent") == id)
        .map(|i| (str_of(i, "id").to_string(), str_of(i, "name").to_string()))
        .collect();
    for (child, child_name) in children {
        copy_tree(world, user, &child, &new_id, &child_name);
    }
    new_id
}

fn create_link(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let body = request.json()?;
    let kind = body
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !["view", "edit", "embed"].contains(&kind.as_str()) {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "The link type must be view, edit or embed.",
        ));
    }
    let personal = world.users[caller.user].user.personal;
    let scope = body
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or(if personal {
            "anonymous"
        } else {
            "organization"
        })
        .to_string();
    if !["anonymous", "organization", "users"].contains(&scope.as_str())
        || (personal && scope == "organization")
    {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            format!("The link scope '{scope}' is not supported here."),
        ));
    }
    if world.users[caller.user]
        .drive
        .items
        .iter()
        .all(|i| str_of(i, "id") != id)
    {
        return Err(not_found());
    }
    let token = world.token(18);
    Ok(Reply::created(json!({
        "@odata.context": format!("{}/$metadata#permission", caller.base),
        "id": world.guid(),
        "roles": [if kind == "edit" { "write" } else { "read" }],
        "shareId": format!("u!{token}"),
        "hasPassword": false,
        "link": {
            "scope": scope,
            "type": kind,
            "webUrl": format!("https://1drv.ms/{}/s!{token}", if kind == "edit" { "w" } else { "b" }),
            "application": {"id": "1234", "displayName": "Sample Application"},
        },
    })))
}

fn search(
    world: &World,
    caller: &Caller,
    request: &Request,
    id: &str,
    action: &str,
) -> GraphResult {
    let inner = action.trim_start_matches("search(").trim_end_matches(')');
    let q = inner
        .strip_prefix("q=")
        .map(|v| v.trim_matches('\'').replace("''", "'"))
        .ok_or_else(|| GraphError::bad_request("search needs q='...'."))?
        .to_lowercase();
    let data = &world.users[caller.user];
    let view = View::new(data);
    let root = &data.drive.root_id;
    let under = |item: &Value| {
        if id == root {
            return true;
        }
        let mut current = str_of(item, "_parent").to_string();
        while !current.is_empty() {
            if current == id {
                return true;
            }
            current = view
                .get(&current)
                .map(|p| str_of(p, "_parent").to_string())
                .unwrap_or_default();
        }
        false
    };
    let items: Vec<Value> = data
        .drive
        .items
        .iter()
        .filter(|i| {
            str_of(i, "id") != root && str_of(i, "name").to_lowercase().contains(&q) && under(i)
        })
        .map(|i| {
            let mut out = view.out(i, caller, &world.download_secret);
            if let Some(map) = out.as_object_mut() {
                map.insert("searchResult".into(), json!({}));
            }
            out
        })
        .collect();
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#Collection(driveItem)", caller.base)),
    );
    let page = PageRequest {
        query: &request.query,
        url: collection_url(caller, request),
    };
    odata::page_into(&mut out, items, &page, PageRule::DRIVE)?;
    Ok(Reply::json(Value::Object(out)))
}

/// Drive items matching a query, for `/search/query`.
pub(crate) fn search_items(world: &World, caller: &Caller, query: &str) -> Vec<Value> {
    let data = &world.users[caller.user];
    let view = View::new(data);
    let q = query.to_lowercase();
    data.drive
        .items
        .iter()
        .filter(|i| {
            str_of(i, "id") != data.drive.root_id && str_of(i, "name").to_lowercase().contains(&q)
        })
        .map(|i| view.out(i, caller, &world.download_secret))
        .collect()
}

fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.trim().parse().ok()?,
        end.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// PUT (or GET / DELETE) on a pre-authenticated upload URL. No Authorization header is needed;
/// one that is sent is ignored, as the upload host does.
pub(crate) fn upload_put(app: &App, request: &Request) -> GraphResult {
    let token = request
        .segment(1)
        .ok_or_else(|| GraphError::new(404, "itemNotFound", "The upload session was not found."))?;
    let mut world = lock(&app.world);
    let Some(session) = world.uploads.get(&token).cloned() else {
        return Err(GraphError::new(
            404,
            "itemNotFound",
            "The upload session was not found or has expired.",
        ));
    };
    let is_attachment = matches!(session.target, UploadTarget::Attachment { .. });
    let ranges = |received: usize| {
        if is_attachment {
            json!([received.to_string()])
        } else {
            json!([format!("{received}-")])
        }
    };
    match request.method.as_str() {
        "GET" => {
            return Ok(Reply::json(
                json!({"expirationDateTime": format_time(session.expiration), "nextExpectedRanges": ranges(session.received.len())}),
            ));
        }
        "DELETE" => {
            world.uploads.remove(&token);
            return Ok(Reply::empty(204));
        }
        "PUT" => {}
        _ => return Err(GraphError::method_not_allowed()),
    }
    let header = request.header("content-range").unwrap_or_default();
    let (start, end, total) = parse_content_range(header).ok_or_else(|| {
        GraphError::new(
            400,
            "invalidRequest",
            "The Content-Range header is missing or malformed.",
        )
    })?;
    if end < start || end >= total || (session.size > 0 && total != session.size) {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "The Content-Range header does not match the session.",
        ));
    }
    if start != session.received.len() as u64 {
        return Err(GraphError::new(
            416,
            "invalidRange",
            "The uploaded fragment does not start at the next expected byte.",
        ));
    }
    if request.body.len() as u64 != end - start + 1 {
        return Err(GraphError::new(
            400,
            "invalidRequest",
            "The fragment length does not match the Content-Range header.",
        ));
    }
    if request.body.len() > 60 * 1024 * 1024 {
        return Err(GraphError::new(
            413,
            "requestEntityTooLarge",
            "Fragments must be smaller than 60 MiB.",
        ));
    }
    let mut received = session.received.clone();
    received.extend_from_slice(&request.body);
    if (received.len() as u64) < total {
        let expiration = session.expiration;
        if let Some(s) = world.uploads.get_mut(&token) {
            s.received = received.clone();
            s.size = total;
        }
        let body = json!({"expirationDateTime": format_time(expiration), "nextExpectedRanges": ranges(received.len())});
        return Ok(Reply::with_status(
            if is_attachment { 200 } else { 202 },
            body,
        ));
    }
    world.uploads.remove(&token);
    match session.target {
        UploadTarget::Attachment {
            user,
            message_id,
            name,
            content_type,
        } => {
            let mut body = Map::new();
            body.insert(
                "@odata.type".into(),
                json!("#microsoft.graph.fileAttachment"),
            );
            body.insert("name".into(), json!(name));
            body.insert("contentType".into(), json!(content_type));
            body.insert(
                "contentBytes".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(&received)),
            );
            let id = crate::graph::mail::add_attachment(&mut world, user, &message_id, &body)?;
            Ok(Reply::empty(201).header(
                "Location",
                format!(
                    "{}/v1.0/me/messages('{message_id}')/attachments('{id}')",
                    app.origin
                ),
            ))
        }
        UploadTarget::DriveItem {
            user,
            parent_id,
            name,
        } => {
            let (id, created) = store_content(&mut world, user, &parent_id, &name, None, received);
            let caller = Caller {
                user,
                base: app.graph_base(),
                origin: app.origin.clone(),
            };
            let request = Request {
                query: crate::odata::Query::default(),
                ..request.clone()
            };
            item_reply(
                &world,
                &caller,
                &request,
                &id,
                if created { 201 } else { 200 },
            )
        }
    }
}

/// GET on a pre-authenticated download URL (`/_download/{user}/{item}?tempauth=...`).
pub(crate) fn download(app: &App, request: &Request) -> GraphResult {
    let world = lock(&app.world);
    if request.query.get("tempauth") != Some(world.download_secret.as_str()) {
        return Err(GraphError::new(
            401,
            "unauthenticated",
            "The download URL is not valid.",
        ));
    }
    let user: usize = request
        .segment(1)
        .and_then(|u| u.parse().ok())
        .ok_or_else(not_found)?;
    let id = request.segment(2).ok_or_else(not_found)?;
    let data = world.users.get(user).ok_or_else(not_found)?;
    let item = data
        .drive
        .items
        .iter()
        .find(|i| str_of(i, "id") == id)
        .ok_or_else(not_found)?;
    let content = data.drive.content.get(&id).cloned().unwrap_or_default();
    let mime = item
        .get("file")
        .and_then(|f| f.get("mimeType"))
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    Ok(Reply::bytes(mime, content))
}

/// GET on a copy monitor URL.
pub(crate) fn monitor(app: &App, request: &Request) -> GraphResult {
    let world = lock(&app.world);
    let id = request.segment(1).unwrap_or_default();
    world
        .monitors
        .get(&id)
        .cloned()
        .map(Reply::json)
        .ok_or_else(|| GraphError::new(404, "itemNotFound", "The monitor was not found."))
}
