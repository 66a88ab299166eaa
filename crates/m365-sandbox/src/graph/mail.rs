//! Mail folders, messages and attachments (`/me/mailFolders`, `/me/messages`, `/me/sendMail`).

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::app::{Caller, Request};
use crate::graph::{collection_url, context, rules};
use crate::odata::{self, Filter, PageRequest, PageRule, Window};
use crate::reply::{GraphError, GraphResult, Reply};
use crate::seed::{MessageSeed, folder_json, html_body, message_json, preview};
use crate::state::{UploadSession, UploadTarget, World, format_time, public, str_of};

/// Largest attachment an upload session accepts (150 MB).
const MAX_ATTACHMENT_BYTES: u64 = 150 * 1024 * 1024;

/// Resolves a folder id or well-known name to the folder's id.
pub(crate) fn resolve_folder(world: &World, user: usize, key: &str) -> Result<String, GraphError> {
    let folders = &world.users[user].folders;
    folders
        .iter()
        .find(|f| {
            str_of(f, "id") == key
                || f.get("_wellKnownName")
                    .and_then(Value::as_str)
                    .is_some_and(|wk| wk.eq_ignore_ascii_case(key))
        })
        .map(|f| str_of(f, "id").to_string())
        .ok_or_else(GraphError::item_not_found)
}

fn well_known_id(world: &World, user: usize, name: &str) -> String {
    resolve_folder(world, user, name).unwrap_or_default()
}

fn is_well_known(world: &World, user: usize, id: &str) -> bool {
    world.users[user]
        .folders
        .iter()
        .any(|f| str_of(f, "id") == id && f.get("_wellKnownName").is_some())
}

/// (total, unread) messages per folder id.
fn counts(world: &World, user: usize) -> HashMap<String, (u64, u64)> {
    let mut map: HashMap<String, (u64, u64)> = HashMap::new();
    for m in &world.users[user].messages {
        let entry = map
            .entry(str_of(m, "parentFolderId").to_string())
            .or_default();
        entry.0 += 1;
        if m.get("isRead") == Some(&Value::Bool(false)) {
            entry.1 += 1;
        }
    }
    map
}

/// A folder as Graph returns it, with its counts.
fn folder_out(
    world: &World,
    user: usize,
    folder: &Value,
    counts: &HashMap<String, (u64, u64)>,
) -> Value {
    let id = str_of(folder, "id");
    let children = world.users[user]
        .folders
        .iter()
        .filter(|f| str_of(f, "parentFolderId") == id)
        .count();
    let (total, unread) = counts.get(id).copied().unwrap_or_default();
    json!({
        "id": id,
        "displayName": folder["displayName"],
        "parentFolderId": folder["parentFolderId"],
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "sizeInBytes": total * 4096,
        "isHidden": folder.get("isHidden").cloned().unwrap_or(Value::Bool(false)),
    })
}

/// `/me/mailFolders...`; `at` is the index of the segment after `mailFolders`.
pub(crate) fn folders(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
) -> GraphResult {
    let user = caller.user;
    let Some(key) = request.segment(at) else {
        let root = well_known_id(world, user, "msgfolderroot");
        return match request.method.as_str() {
            "GET" => list_folders(world, caller, request, &root),
            "POST" => create_folder(world, caller, request, &root),
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    if key == "delta" {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            "Delta queries are not available in the sandbox.",
        ));
    }
    let mut id = resolve_folder(world, user, &key)?;
    let mut next = at + 1;
    // `/childFolders/{id}` chains address nested folders directly.
    while request.segment(next).as_deref() == Some("childFolders")
        && request.segment(next + 1).is_some()
    {
        let child = request.segment(next + 1).unwrap_or_default();
        id = resolve_folder(world, user, &child)?;
        next += 2;
    }
    match request.segment(next).as_deref() {
        None => match request.method.as_str() {
            "GET" => {
                let c = counts(world, user);
                let folder = find_folder(world, user, &id)?;
                let out = folder_out(world, user, folder, &c);
                Ok(Reply::json(with_context_first(
                    out,
                    context(caller, world, "mailFolders/$entity"),
                    request,
                )))
            }
            "PATCH" => update_folder(world, caller, request, &id),
            "DELETE" => delete_folder(world, user, &id),
            _ => Err(GraphError::method_not_allowed()),
        },
        Some("childFolders") => match request.method.as_str() {
            "GET" => list_folders(world, caller, request, &id),
            "POST" => create_folder(world, caller, request, &id),
            _ => Err(GraphError::method_not_allowed()),
        },
        Some("messages") => messages_in(world, caller, request, next + 1, Some(id)),
        Some("move") if request.method == "POST" => move_folder(world, caller, request, &id),
        Some("copy") if request.method == "POST" => Err(GraphError::new(
            501,
            "NotImplemented",
            "Copying folders is not available in the sandbox.",
        )),
        Some("messageRules") => rules::handle(world, caller, request, next + 1, &id),
        Some(other) => Err(GraphError::unknown_segment(other)),
    }
}

/// Puts `@odata.context` first and applies `$select`.
pub(crate) fn with_context_first(value: Value, ctx: String, request: &Request) -> Value {
    let selected = odata::select(value, request.query.get("select"));
    let mut out = Map::new();
    out.insert("@odata.context".into(), Value::String(ctx));
    if let Value::Object(map) = selected {
        for (k, v) in map {
            if k != "@odata.context" {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

fn find_folder<'a>(world: &'a World, user: usize, id: &str) -> Result<&'a Value, GraphError> {
    world.users[user]
        .folders
        .iter()
        .find(|f| str_of(f, "id") == id)
        .ok_or_else(GraphError::item_not_found)
}

fn list_folders(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    parent: &str,
) -> GraphResult {
    let user = caller.user;
    let include_hidden = request.query.flag("includehiddenfolders");
    let c = counts(world, user);
    let mut items: Vec<Value> = world.users[user]
        .folders
        .iter()
        .filter(|f| str_of(f, "parentFolderId") == parent)
        .filter(|f| include_hidden || f.get("isHidden") != Some(&Value::Bool(true)))
        .map(|f| folder_out(world, user, f, &c))
        .collect();
    if let Some(filter) = request.query.get("filter") {
        let filter = Filter::parse(filter)?;
        items.retain(|f| filter.matches(f));
    }
    if let Some(order) = request.query.get("orderby") {
        odata::order_by(&mut items, order)?;
    }
    let ctx = if parent == well_known_id(world, user, "msgfolderroot") {
        context(caller, world, "mailFolders")
    } else {
        context(
            caller,
            world,
            &format!("mailFolders('{parent}')/childFolders"),
        )
    };
    let mut out = Map::new();
    out.insert("@odata.context".into(), Value::String(ctx));
    let page = PageRequest {
        query: &request.query,
        url: collection_url(caller, request),
    };
    odata::page_into(&mut out, items, &page, PageRule::OUTLOOK)?;
    Ok(Reply::json(Value::Object(out)))
}

fn display_name(body: &Map<String, Value>) -> Result<String, GraphError> {
    match body.get("displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => Ok(name.clone()),
        Some(Value::String(_)) | None => Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "The request is invalid: displayName is required.",
        )),
        Some(_) => Err(GraphError::new(
            400,
            "RequestBodyRead",
            "Cannot convert the value of 'displayName' to the expected type 'Edm.String'.",
        )),
    }
}

fn sibling_exists(world: &World, user: usize, parent: &str, name: &str, except: &str) -> bool {
    world.users[user].folders.iter().any(|f| {
        str_of(f, "parentFolderId") == parent
            && str_of(f, "id") != except
            && str_of(f, "displayName").eq_ignore_ascii_case(name)
    })
}

fn folder_exists_error() -> GraphError {
    GraphError::new(
        409,
        "ErrorFolderExists",
        "A folder with the specified name already exists.",
    )
}

fn create_folder(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    parent: &str,
) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let name = display_name(&body)?;
    if sibling_exists(world, user, parent, &name, "") {
        return Err(folder_exists_error());
    }
    let hidden = body
        .get("isHidden")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let id = world.outlook_id();
    let folder = folder_json(&id, &name, parent, hidden, None);
    world.users[user].folders.push(folder.clone());
    let c = counts(world, user);
    let out = folder_out(world, user, &folder, &c);
    let ctx = context(caller, world, "mailFolders/$entity");
    Ok(Reply::created(with_context_first(out, ctx, request)))
}

fn update_folder(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    if body.contains_key("parentFolderId") {
        return Err(GraphError::invalid_property(
            "The property 'parentFolderId' cannot be updated. Use the move action.",
        ));
    }
    if let Some(name) = body.get("displayName") {
        let name = display_name(&body).map_err(|_| {
            GraphError::new(
                400,
                "RequestBodyRead",
                format!("Invalid displayName {name}."),
            )
        })?;
        if is_well_known(world, user, id) {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The display name of a distinguished folder cannot be changed.",
            ));
        }
        let parent = str_of(find_folder(world, user, id)?, "parentFolderId").to_string();
        if sibling_exists(world, user, &parent, &name, id) {
            return Err(folder_exists_error());
        }
        if let Some(folder) = world.users[user]
            .folders
            .iter_mut()
            .find(|f| str_of(f, "id") == id)
        {
            folder["displayName"] = Value::String(name);
        }
    }
    let c = counts(world, user);
    let folder = find_folder(world, user, id)?;
    let out = folder_out(world, user, folder, &c);
    let ctx = context(caller, world, "mailFolders/$entity");
    Ok(Reply::json(with_context_first(out, ctx, request)))
}

/// The folder and all folders below it.
fn subtree(world: &World, user: usize, id: &str) -> Vec<String> {
    let mut out = vec![id.to_string()];
    let mut i = 0;
    while i < out.len() {
        let current = out[i].clone();
        for f in &world.users[user].folders {
            if str_of(f, "parentFolderId") == current {
                out.push(str_of(f, "id").to_string());
            }
        }
        i += 1;
    }
    out
}

fn delete_folder(world: &mut World, user: usize, id: &str) -> GraphResult {
    if is_well_known(world, user, id) {
        return Err(GraphError::new(
            403,
            "ErrorDeleteDistinguishedFolder",
            "Distinguished folders cannot be deleted.",
        ));
    }
    let doomed = subtree(world, user, id);
    let data = &mut world.users[user];
    data.folders
        .retain(|f| !doomed.iter().any(|d| d == str_of(f, "id")));
    let removed: Vec<String> = data
        .messages
        .iter()
        .filter(|m| doomed.iter().any(|d| d == str_of(m, "parentFolderId")))
        .map(|m| str_of(m, "id").to_string())
        .collect();
    data.messages
        .retain(|m| !doomed.iter().any(|d| d == str_of(m, "parentFolderId")));
    for id in removed {
        data.attachments.remove(&id);
    }
    Ok(Reply::empty(204))
}

fn destination(
    world: &World,
    user: usize,
    body: &Map<String, Value>,
) -> Result<String, GraphError> {
    let key = body
        .get("destinationId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GraphError::new(400, "ErrorInvalidIdMalformed", "Id is malformed."))?;
    resolve_folder(world, user, key)
}

fn move_folder(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let dest = destination(world, user, &body)?;
    if is_well_known(world, user, id) {
        return Err(GraphError::new(
            400,
            "ErrorMoveCopyFailed",
            "Distinguished folders cannot be moved.",
        ));
    }
    if subtree(world, user, id).contains(&dest) {
        return Err(GraphError::new(
            400,
            "ErrorMoveCopyFailed",
            "A folder cannot be moved into itself or one of its subfolders.",
        ));
    }
    let name = str_of(find_folder(world, user, id)?, "displayName").to_string();
    if sibling_exists(world, user, &dest, &name, id) {
        return Err(folder_exists_error());
    }
    if let Some(folder) = world.users[user]
        .folders
        .iter_mut()
        .find(|f| str_of(f, "id") == id)
    {
        folder["parentFolderId"] = Value::String(dest);
    }
    let c = counts(world, user);
    let folder = find_folder(world, user, id)?;
    let out = folder_out(world, user, folder, &c);
    let ctx = context(caller, world, "mailFolders/$entity");
    Ok(Reply::created(with_context_first(out, ctx, request)))
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `/me/messages...`.
pub(crate) fn messages(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
) -> GraphResult {
    messages_in(world, caller, request, at, None)
}

fn wants_text(request: &Request) -> bool {
    request.header("prefer").is_some_and(|p| {
        p.to_ascii_lowercase()
            .replace(' ', "")
            .contains("outlook.body-content-type=\"text\"")
    })
}

/// Turns stored HTML into the plain text Outlook returns for `Prefer: ... "text"`.
pub(crate) fn html_to_text(html: &str) -> String {
    let body = html.find("<body").map_or(html, |i| &html[i..]);
    let mut out = String::new();
    let mut in_tag = false;
    let mut tag = String::new();
    for ch in body.chars() {
        match ch {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if name == "br" || (tag.starts_with('/') && (name == "p" || name == "div")) {
                    out.push_str("\r\n");
                }
            }
            _ if in_tag => tag.push(ch),
            _ => out.push(ch),
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_string()
}

/// A stored message as Graph returns it for this request.
fn message_out(message: &Value, text: bool, select: Option<&str>) -> Value {
    let mut out = public(message);
    if text
        && let Some(body) = out.get_mut("body")
        && str_of(body, "contentType") == "html"
    {
        let content = html_to_text(str_of(body, "content"));
        *body = json!({"contentType": "text", "content": content});
    }
    if select.is_some_and(|s| {
        s.split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("uniqueBody"))
    }) {
        let body = out.get("body").cloned().unwrap_or(Value::Null);
        if let Some(map) = out.as_object_mut() {
            map.insert("uniqueBody".into(), body);
        }
    }
    odata::select(out, select)
}

fn find_message(world: &World, user: usize, id: &str) -> Result<usize, GraphError> {
    world.users[user]
        .messages
        .iter()
        .position(|m| str_of(m, "id") == id)
        .ok_or_else(GraphError::item_not_found)
}

fn messages_in(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    folder: Option<String>,
) -> GraphResult {
    let Some(id) = request.segment(at) else {
        return match request.method.as_str() {
            "GET" => list_messages(world, caller, request, folder.as_deref()),
            "POST" => create_message(world, caller, request, folder.as_deref()),
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    if id == "delta" {
        return Err(GraphError::new(
            501,
            "NotImplemented",
            "Delta queries are not available in the sandbox.",
        ));
    }
    let user = caller.user;
    let index = find_message(world, user, &id)?;
    if let Some(f) = &folder
        && str_of(&world.users[user].messages[index], "parentFolderId") != f
    {
        return Err(GraphError::item_not_found());
    }
    match request.segment(at + 1).as_deref() {
        None => match request.method.as_str() {
            "GET" => get_message(world, caller, request, &id),
            "PATCH" => update_message(world, caller, request, &id),
            "DELETE" => {
                remove_message(world, user, &id);
                Ok(Reply::empty(204))
            }
            _ => Err(GraphError::method_not_allowed()),
        },
        Some("$value") if request.method == "GET" => {
            let m = &world.users[user].messages[index];
            let mime = format!(
                "From: {}\r\nSubject: {}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n{}",
                str_of(&m["from"]["emailAddress"], "address"),
                str_of(m, "subject"),
                str_of(m, "receivedDateTime"),
                str_of(&m["body"], "content")
            );
            Ok(Reply::bytes("text/plain", mime.into_bytes()))
        }
        Some("attachments") => attachments(world, caller, request, at + 2, &id),
        Some(action) if request.method == "POST" => {
            message_action(world, caller, request, &id, action)
        }
        Some(other) => Err(GraphError::unknown_segment(other)),
    }
}

/// Filters and sorts message indexes for a list request.
fn select_messages(
    world: &World,
    user: usize,
    request: &Request,
    folder: Option<&str>,
) -> Result<Vec<usize>, GraphError> {
    let messages = &world.users[user].messages;
    let filter = request.query.get("filter").map(Filter::parse).transpose()?;
    let search = request.query.get("search").map(odata::search_terms);
    if search.is_some() && request.query.get("orderby").is_some() {
        return Err(GraphError::new(
            400,
            "ErrorInvalidUrlQuery",
            "The query parameter 'OrderBy' is invalid.",
        ));
    }
    if search.is_some() && request.query.get("skip").is_some() {
        return Err(GraphError::new(
            400,
            "ErrorInvalidUrlQuery",
            "The query parameter 'Skip' is invalid.",
        ));
    }
    let mut indexes: Vec<usize> = (0..messages.len())
        .filter(|&i| folder.is_none_or(|f| str_of(&messages[i], "parentFolderId") == f))
        .filter(|&i| filter.as_ref().is_none_or(|f| f.matches(&messages[i])))
        .filter(|&i| {
            search.as_ref().is_none_or(|terms| {
                odata::search_matches(
                    &messages[i],
                    terms,
                    &[
                        "subject",
                        "bodyPreview",
                        "from/emailAddress/name",
                        "from/emailAddress/address",
                        "body/content",
                    ],
                )
            })
        })
        .collect();
    let order = request
        .query
        .get("orderby")
        .unwrap_or("receivedDateTime desc");
    let keys = odata::parse_order(order)?;
    indexes.sort_by(|&a, &b| odata::compare_by(&keys, &messages[a], &messages[b]));
    Ok(indexes)
}

fn list_messages(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    folder: Option<&str>,
) -> GraphResult {
    let user = caller.user;
    let indexes = select_messages(world, user, request, folder)?;
    let page = PageRequest {
        query: &request.query,
        url: collection_url(caller, request),
    };
    let window = Window::new(&page, indexes.len(), PageRule::OUTLOOK)?;
    let text = wants_text(request);
    let select = request.query.get("select");
    let expand = request
        .query
        .get("expand")
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("attachments"));
    let data = &world.users[user];
    let value: Vec<Value> = indexes[window.start..window.end]
        .iter()
        .map(|&i| {
            let mut m = message_out(&data.messages[i], text, select);
            if expand {
                attach_expansion(
                    &mut m,
                    data.attachments.get(str_of(&data.messages[i], "id")),
                );
            }
            m
        })
        .collect();
    let tail = match folder {
        Some(f) => format!("mailFolders('{f}')/messages"),
        None => "messages".to_string(),
    };
    let tail = match select {
        Some(s) => format!("{tail}({s})"),
        None => tail,
    };
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Value::String(context(caller, world, &tail)),
    );
    window.write(&mut out, value);
    let mut reply = Reply::json(Value::Object(out));
    if text {
        reply = reply.header("Preference-Applied", "outlook.body-content-type=\"text\"");
    }
    Ok(reply)
}

fn attach_expansion(message: &mut Value, attachments: Option<&Vec<Value>>) {
    let list: Vec<Value> = attachments
        .map(|a| a.iter().map(public).collect())
        .unwrap_or_default();
    if let Some(map) = message.as_object_mut() {
        map.insert("attachments".into(), Value::Array(list));
    }
}

fn get_message(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let index = find_message(world, user, id)?;
    let data = &world.users[user];
    let text = wants_text(request);
    let mut out = message_out(&data.messages[index], text, request.query.get("select"));
    if let Some(expand) = request.query.get("expand") {
        if expand.to_ascii_lowercase().starts_with("attachments") {
            // `attachments($select=id,name)` narrows the expanded items.
            let inner_select = expand
                .split_once("$select=")
                .map(|(_, s)| s.trim_end_matches(')').to_string());
            let list: Vec<Value> = data
                .attachments
                .get(id)
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let p = public(x);
                            match &inner_select {
                                Some(s) => {
                                    let mut v = odata::select(p.clone(), Some(s));
                                    if let (Some(map), Some(t)) =
                                        (v.as_object_mut(), p.get("@odata.type"))
                                    {
                                        map.insert("@odata.type".into(), t.clone());
                                    }
                                    v
                                }
                                None => p,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(map) = out.as_object_mut() {
                map.insert("attachments".into(), Value::Array(list));
            }
        } else {
            return Err(GraphError::bad_request(format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{expand}'."
            )));
        }
    }
    let ctx = context(caller, world, "messages/$entity");
    let mut reply = Reply::json(with_context_first(out, ctx, request));
    if text {
        reply = reply.header("Preference-Applied", "outlook.body-content-type=\"text\"");
    }
    Ok(reply)
}

fn recipients(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, GraphError> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Array(list)) => {
            for r in list {
                let address = r
                    .get("emailAddress")
                    .and_then(|e| e.get("address"))
                    .and_then(Value::as_str);
                if address.is_none_or(|a| !a.contains('@')) {
                    return Err(GraphError::new(
                        400,
                        "ErrorInvalidRecipients",
                        "At least one recipient isn't valid.",
                    ));
                }
            }
            Ok(Some(Value::Array(list.clone())))
        }
        Some(_) => Err(GraphError::new(
            400,
            "RequestBodyRead",
            format!("Cannot convert the value of '{key}' to a collection of recipients."),
        )),
    }
}

fn body_from(body: &Map<String, Value>) -> Result<Option<(String, String)>, GraphError> {
    match body.get("body") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(b)) => {
            let kind = b
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("text")
                .to_ascii_lowercase();
            let content = b
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match kind.as_str() {
                "text" => Ok(Some((html_body(&content), content))),
                "html" => {
                    let text = html_to_text(&content);
                    Ok(Some((content, text)))
                }
                other => Err(GraphError::new(
                    400,
                    "RequestBodyRead",
                    format!(
                        "Cannot convert the literal '{other}' to the expected type 'microsoft.graph.bodyType'."
                    ),
                )),
            }
        }
        Some(_) => Err(GraphError::new(
            400,
            "RequestBodyRead",
            "Cannot convert the value of 'body' to the expected type 'microsoft.graph.itemBody'.",
        )),
    }
}

fn check_enum(
    value: &Value,
    field: &str,
    allowed: &[&str],
    type_name: &str,
) -> Result<(), GraphError> {
    match value.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        _ => Err(GraphError::new(
            400,
            "RequestBodyRead",
            format!(
                "Cannot convert the literal '{}' to the expected type '{type_name}' for '{field}'.",
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string)
            ),
        )),
    }
}

/// Validates and applies the writable properties of a message.
fn apply_message_patch(
    world: &mut World,
    user: usize,
    index: usize,
    body: &Map<String, Value>,
) -> Result<(), GraphError> {
    let is_draft = world.users[user].messages[index].get("isDraft") == Some(&Value::Bool(true));
    const DRAFT_ONLY: &[&str] = &[
        "bccRecipients",
        "body",
        "ccRecipients",
        "internetMessageId",
        "replyTo",
        "sender",
        "subject",
        "toRecipients",
        "from",
    ];
    const ALLOWED: &[&str] = &[
        "bccRecipients",
        "body",
        "ccRecipients",
        "internetMessageId",
        "replyTo",
        "sender",
        "subject",
        "toRecipients",
        "from",
        "categories",
        "importance",
        "inferenceClassification",
        "isDeliveryReceiptRequested",
        "isReadReceiptRequested",
        "isRead",
        "flag",
        "attachments",
        "@odata.type",
    ];
    for key in body.keys() {
        if !ALLOWED.contains(&key.as_str()) {
            return Err(GraphError::invalid_property(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.message' or cannot be updated."
            )));
        }
        if !is_draft && DRAFT_ONLY.contains(&key.as_str()) {
            return Err(GraphError::new(
                400,
                "ErrorInvalidPropertyUpdateSentMessage",
                "Update operation is invalid for property of a sent message.",
            ));
        }
    }
    if let Some(v) = body.get("isRead")
        && !v.is_boolean()
    {
        return Err(GraphError::new(
            400,
            "RequestBodyRead",
            "Cannot convert the value of 'isRead' to the expected type 'Edm.Boolean'.",
        ));
    }
    if let Some(v) = body.get("importance") {
        check_enum(
            v,
            "importance",
            &["low", "normal", "high"],
            "microsoft.graph.importance",
        )?;
    }
    if let Some(v) = body.get("inferenceClassification") {
        check_enum(
            v,
            "inferenceClassification",
            &["focused", "other"],
            "microsoft.graph.inferenceClassificationType",
        )?;
    }
    if let Some(v) = body.get("categories")
        && !v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
    {
        return Err(GraphError::new(
            400,
            "RequestBodyRead",
            "Cannot convert the value of 'categories' to a collection of 'Edm.String'.",
        ));
    }
    if let Some(flag) = body.get("flag") {
        let status = flag
            .get("flagStatus")
            .cloned()
            .unwrap_or(json!("notFlagged"));
        check_enum(
            &status,
            "flagStatus",
            &["notFlagged", "complete", "flagged"],
            "microsoft.graph.followupFlagStatus",
        )?;
    }
    for key in ["toRecipients", "ccRecipients", "bccRecipients", "replyTo"] {
        recipients(body, key)?;
    }
    let new_body = body_from(body)?;
    let data = &mut world.users[user];
    let message = &mut data.messages[index];
    for (key, value) in body {
        match key.as_str() {
            "body" | "attachments" | "@odata.type" => {}
            "flag" => {
                let mut flag = value.clone();
                if let Some(map) = flag.as_object_mut() {
                    map.entry("flagStatus").or_insert(json!("notFlagged"));
                }
                message["flag"] = flag;
            }
            _ => message[key.as_str()] = value.clone(),
        }
    }
    if let Some((html, text)) = new_body {
        message["body"] = json!({"contentType": "html", "content": html});
        message["bodyPreview"] = Value::String(preview(&text));
    }
    let mut m = std::mem::take(&mut world.users[user].messages[index]);
    world.touch(&mut m);
    world.users[user].messages[index] = m;
    Ok(())
}

fn update_message(world: &mut World, caller: &Caller, request: &Request, id: &str) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let index = find_message(world, user, id)?;
    apply_message_patch(world, user, index, &body)?;
    get_message(world, caller, request, id)
}

fn remove_message(world: &mut World, user: usize, id: &str) {
    let data = &mut world.users[user];
    data.messages.retain(|m| str_of(m, "id") != id);
    data.attachments.remove(id);
}

fn me_address(world: &World, user: usize) -> (String, String) {
    let u = &world.users[user].user;
    (u.display_name.clone(), u.username.clone())
}

fn create_message(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    folder: Option<&str>,
) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    let folder = match folder {
        Some(f) => f.to_string(),
        None => well_known_id(world, user, "drafts"),
    };
    let id = new_draft(world, user, &folder, &body)?;
    let index = find_message(world, user, &id)?;
    let out = message_out(
        &world.users[user].messages[index],
        wants_text(request),
        None,
    );
    let ctx = context(caller, world, "messages/$entity");
    Ok(Reply::created(with_context_first(out, ctx, request)))
}

/// Creates a draft from a message resource in `folder`; returns its id.
fn new_draft(
    world: &mut World,
    user: usize,
    folder: &str,
    body: &Map<String, Value>,
) -> Result<String, GraphError> {
    let (name, address) = me_address(world, user);
    let subject = match body.get("subject") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(GraphError::new(
                400,
                "RequestBodyRead",
                "Cannot convert the value of 'subject' to the expected type 'Edm.String'.",
            ));
        }
    };
    let mut message = message_json(
        world,
        MessageSeed {
            subject: &subject,
            body_text: "",
            from: (&name, &address),
            to: &[],
            received: OffsetDateTime::now_utc(),
            folder,
            is_read: true,
            is_draft: true,
        },
    );
    if let Some(map) = message.as_object_mut() {
        map.insert("body".into(), json!({"contentType": "text", "content": ""}));
        map.insert("bodyPreview".into(), json!(""));
    }
    world.users[user].messages.push(message);
    let index = world.users[user].messages.len() - 1;
    let mut patch = body.clone();
    patch.remove("subject");
    for key in [
        "id",
        "isDraft",
        "parentFolderId",
        "createdDateTime",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "conversationId",
        "webLink",
        "changeKey",
    ] {
        patch.remove(key);
    }
    let attachments = patch.remove("attachments");
    if let Err(e) = apply_message_patch(world, user, index, &patch) {
        world.users[user].messages.pop();
        return Err(e);
    }
    let id = str_of(&world.users[user].messages[index], "id").to_string();
    if let Some(Value::Array(list)) = attachments {
        for a in list {
            if let Value::Object(map) = a {
                add_attachment(world, user, &id, &map)?;
            }
        }
    }
    Ok(id)
}

/// Moves a message to `dest`, giving it a new id as Exchange does; returns the new id.
fn move_message(
    world: &mut World,
    user: usize,
    id: &str,
    dest: &str,
) -> Result<String, GraphError> {
    let index = find_message(world, user, id)?;
    let new_id = world.outlook_id();
    let mut message = world.users[user].messages.remove(index);
    message["id"] = Value::String(new_id.clone());
    message["parentFolderId"] = Value::String(dest.to_string());
    world.touch(&mut message);
    let data = &mut world.users[user];
    data.messages.push(message);
    if let Some(a) = data.attachments.remove(id) {
        data.attachments.insert(new_id.clone(), a);
    }
    Ok(new_id)
}

fn copy_message(
    world: &mut World,
    user: usize,
    id: &str,
    dest: &str,
) -> Result<String, GraphError> {
    let index = find_message(world, user, id)?;
    let new_id = world.outlook_id();
    let mut message = world.users[user].messages[index].clone();
    message["id"] = Value::String(new_id.clone());
    message["parentFolderId"] = Value::String(dest.to_string());
    world.touch(&mut message);
    let data = &mut world.users[user];
    data.messages.push(message);
    if let Some(a) = data.attachments.get(id).cloned() {
        data.attachments.insert(new_id.clone(), a);
    }
    Ok(new_id)
}

fn message_action(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    id: &str,
    action: &str,
) -> GraphResult {
    let user = caller.user;
    let body = request.json()?;
    match action {
        "move" | "copy" => {
            let dest = destination(world, user, &body)?;
            let new_id = if action == "move" {
                move_message(world, user, id, &dest)?
            } else {
                copy_message(world, user, id, &dest)?
            };
            let index = find_message(world, user, &new_id)?;
            let out = message_out(
                &world.users[user].messages[index],
                wants_text(request),
                None,
            );
            let ctx = context(caller, world, "messages/$entity");
            Ok(Reply::created(with_context_first(out, ctx, request)))
        }
        "send" => {
            let index = find_message(world, user, id)?;
            if world.users[user].messages[index].get("isDraft") != Some(&Value::Bool(true)) {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRequest",
                    "Only draft messages can be sent.",
                ));
            }
            let has_recipients = ["toRecipients", "ccRecipients", "bccRecipients"]
                .iter()
                .any(|k| {
                    world.users[user].messages[index]
                        .get(*k)
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                });
            if !has_recipients {
                return Err(GraphError::new(
                    400,
                    "ErrorInvalidRecipients",
                    "At least one recipient isn't valid.",
                ));
            }
            send_existing(world, user, id, true)?;
            Ok(Reply::empty(202))
        }
        "permanentDelete" => {
            remove_message(world, user, id);
            Ok(Reply::empty(204))
        }
        "reply" | "replyAll" | "forward" | "createReply" | "createReplyAll" | "createForward" => {
            respond(world, caller, request, id, action, &body)
        }
        other => Err(GraphError::unknown_segment(other)),
    }
}

/// Sends a draft: it leaves Drafts, lands in Sent Items, and reaches seeded recipients' Inboxes.
fn send_existing(world: &mut World, user: usize, id: &str, save: bool) -> Result<(), GraphError> {
    let index = find_message(world, user, id)?;
    let mut message = world.users[user].messages.remove(index);
    let now = format_time(OffsetDateTime::now_utc());
    message["isDraft"] = Value::Bool(false);
    message["sentDateTime"] = Value::String(now.clone());
    message["receivedDateTime"] = Value::String(now);
    let attachments = world.users[user].attachments.remove(id);
    deliver(world, user, &message, attachments.as_ref());
    if save {
        let sent = well_known_id(world, user, "sentitems");
        let new_id = world.outlook_id();
        message["id"] = Value::String(new_id.clone());
        message["parentFolderId"] = Value::String(sent);
        world.touch(&mut message);
        world.users[user].messages.push(message);
        if let Some(a) = attachments {
            world.users[user].attachments.insert(new_id, a);
        }
    }
    Ok(())
}

/// Drops a copy of a sent message into the Inbox of every seeded user it is addressed to.
fn deliver(world: &mut World, sender: usize, message: &Value, attachments: Option<&Vec<Value>>) {
    let mut targets: Vec<usize> = Vec::new();
    for key in ["toRecipients", "ccRecipients", "bccRecipients"] {
        for r in message
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let address = str_of(&r["emailAddress"], "address");
            if let Some(i) = world.user_index(address)
                && !targets.contains(&i)
            {
                targets.push(i);
            }
        }
    }
    let _ = sender;
    for target in targets {
        let inbox = well_known_id(world, target, "inbox");
        let new_id = world.outlook_id();
        let mut copy = message.clone();
        copy["id"] = Value::String(new_id.clone());
        copy["parentFolderId"] = Value::String(inbox);
        copy["isRead"] = Value::Bool(false);
        if let Some(map) = copy.as_object_mut() {
            map.remove("bccRecipients");
            map.insert("bccRecipients".into(), json!([]));
        }
        world.touch(&mut copy);
        world.users[target].messages.push(copy);
        if let Some(a) = attachments {
            world.users[target].attachments.insert(new_id, a.clone());
        }
    }
}

fn respond(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    id: &str,
    action: &str,
    body: &Map<String, Value>,
) -> GraphResult {
    let user = caller.user;
    let index = find_message(world, user, id)?;
    let original = world.users[user].messages[index].clone();
    let (me_name, me_addr) = me_address(world, user);
    let forward = action.ends_with("orward");
    let prefix = if forward { "FW: " } else { "RE: " };
    let subject = format!("{prefix}{}", str_of(&original, "subject"));
    let comment = body
        .get("comment")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut to: Vec<Value> = Vec::new();
    if !forward {
        to.push(original.get("from").cloned().unwrap_or(Value::Null));
    }
    if action.contains("All") {
        for r in original
            .get("toRecipients")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !str_of(&r["emailAddress"], "address").eq_ignore_ascii_case(&me_addr) {
                to.push(r.clone());
            }
        }
    }
    let mut patch = body
        .get("message")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(Value::Array(list)) = body.get("toRecipients") {
        patch.insert("toRecipients".into(), Value::Array(list.clone()));
    }
    if forward && !action.starts_with("create") && !patch.contains_key("toRecipients") {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
        ));
    }
    patch.entry("toRecipients").or_insert(Value::Array(to));
    let quoted = format!(
        "{comment}\n\nFrom: {}\nSent: {}\nSubject: {}\n\n{}",
        str_of(&original["from"]["emailAddress"], "name"),
        str_of(&original, "sentDateTime"),
        str_of(&original, "subject"),
        str_of(&original, "bodyPreview")
    );
    if !patch.contains_key("body") {
        patch.insert(
            "body".into(),
            json!({"contentType": "text", "content": quoted}),
        );
    }
    patch.insert("subject".into(), Value::String(subject));
    let drafts = well_known_id(world, user, "drafts");
    let _ = (me_name, me_addr);
    let draft_id = new_draft(world, user, &drafts, &patch)?;
    if let Some(d) = world.users[user]
        .messages
        .iter_mut()
        .find(|m| str_of(m, "id") == draft_id)
    {
        d["conversationId"] = original["conversationId"].clone();
    }
    if forward && let Some(list) = world.users[user].attachments.get(id).cloned() {
        world.users[user].attachments.insert(draft_id.clone(), list);
        if let Some(d) = world.users[user]
            .messages
            .iter_mut()
            .find(|m| str_of(m, "id") == draft_id)
        {
            d["hasAttachments"] = Value::Bool(true);
        }
    }
    if action.starts_with("create") {
        let index = find_message(world, user, &draft_id)?;
        let out = message_out(
            &world.users[user].messages[index],
            wants_text(request),
            None,
        );
        let ctx = context(caller, world, "messages/$entity");
        return Ok(Reply::created(with_context_first(out, ctx, request)));
    }
    send_existing(world, user, &draft_id, true)?;
    Ok(Reply::empty(202))
}

/// `POST /me/sendMail`.
pub(crate) fn send_mail(world: &mut World, caller: &Caller, request: &Request) -> GraphResult {
    if request.method != "POST" {
        return Err(GraphError::method_not_allowed());
    }
    let user = caller.user;
    let body = request.json()?;
    let Some(Value::Object(message)) = body.get("message") else {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "The 'message' parameter is required.",
        ));
    };
    let save = body
        .get("saveToSentItems")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let has_recipients = ["toRecipients", "ccRecipients", "bccRecipients"]
        .iter()
        .any(|k| {
            message
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        });
    if !has_recipients {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid.",
        ));
    }
    let drafts = well_known_id(world, user, "drafts");
    let id = new_draft(world, user, &drafts, message)?;
    send_existing(world, user, &id, save)?;
    Ok(Reply::empty(202))
}

// ---------------------------------------------------------------------------------------------
// Attachments

fn attachments(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    message_id: &str,
) -> GraphResult {
    let user = caller.user;
    match request.segment(at).as_deref() {
        None => match request.method.as_str() {
            "GET" => {
                let list: Vec<Value> = world.users[user]
                    .attachments
                    .get(message_id)
                    .map(|a| a.iter().map(public).collect())
                    .unwrap_or_default();
                let mut out = Map::new();
                out.insert(
                    "@odata.context".into(),
                    json!(context(
                        caller,
                        world,
                        &format!("messages('{message_id}')/attachments")
                    )),
                );
                let page = PageRequest {
                    query: &request.query,
                    url: collection_url(caller, request),
                };
                odata::page_into(&mut out, list, &page, PageRule::OUTLOOK)?;
                Ok(Reply::json(Value::Object(out)))
            }
            "POST" => {
                let body = request.json()?;
                let id = add_attachment(world, user, message_id, &body)?;
                let a = find_attachment(world, user, message_id, &id)?;
                let ctx = context(
                    caller,
                    world,
                    &format!("messages('{message_id}')/attachments/$entity"),
                );
                Ok(Reply::created(with_context_first(public(&a), ctx, request)))
            }
            _ => Err(GraphError::method_not_allowed()),
        },
        Some("createUploadSession") if request.method == "POST" => {
            create_attachment_upload(world, caller, request, message_id)
        }
        Some(aid) => {
            let a = find_attachment(world, user, message_id, aid)?;
            match (request.method.as_str(), request.segment(at + 1).as_deref()) {
                ("GET", None) => {
                    let ctx = context(
                        caller,
                        world,
                        &format!("messages('{message_id}')/attachments/$entity"),
                    );
                    Ok(Reply::json(with_context_first(public(&a), ctx, request)))
                }
                ("GET", Some("$value")) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(str_of(&a, "contentBytes"))
                        .unwrap_or_default();
                    let ct = a
                        .get("contentType")
                        .and_then(Value::as_str)
                        .unwrap_or("application/octet-stream")
                        .to_string();
                    Ok(Reply::bytes(&ct, bytes))
                }
                ("DELETE", None) => {
                    let data = &mut world.users[user];
                    if let Some(list) = data.attachments.get_mut(message_id) {
                        list.retain(|x| str_of(x, "id") != aid);
                        let any = !list.is_empty();
                        if let Some(m) = data
                            .messages
                            .iter_mut()
                            .find(|m| str_of(m, "id") == message_id)
                        {
                            m["hasAttachments"] = Value::Bool(any);
                        }
                    }
                    Ok(Reply::empty(204))
                }
                _ => Err(GraphError::method_not_allowed()),
            }
        }
    }
}

fn find_attachment(
    world: &World,
    user: usize,
    message_id: &str,
    id: &str,
) -> Result<Value, GraphError> {
    world.users[user]
        .attachments
        .get(message_id)
        .and_then(|list| list.iter().find(|a| str_of(a, "id") == id))
        .cloned()
        .ok_or_else(GraphError::item_not_found)
}

/// Adds an attachment from a Graph attachment resource; returns its id.
pub(crate) fn add_attachment(
    world: &mut World,
    user: usize,
    message_id: &str,
    body: &Map<String, Value>,
) -> Result<String, GraphError> {
    let kind = body
        .get("@odata.type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_start_matches('#')
        .to_string();
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "The attachment name is required.",
        ));
    }
    let id = world.outlook_id();
    let now = format_time(OffsetDateTime::now_utc());
    let attachment = match kind.as_str() {
        "microsoft.graph.fileAttachment" => {
            let content = body
                .get("contentBytes")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .map_err(|_| {
                    GraphError::new(
                        400,
                        "RequestBodyRead",
                        "The value of 'contentBytes' is not valid base64.",
                    )
                })?;
            let ct = body
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or("application/octet-stream");
            json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "@odata.mediaContentType": ct,
                "id": id,
                "lastModifiedDateTime": now,
                "name": name,
                "contentType": ct,
                "size": bytes.len() + 180,
                "isInline": body.get("isInline").and_then(Value::as_bool).unwrap_or(false),
                "contentId": body.get("contentId").cloned().unwrap_or(Value::Null),
                "contentLocation": null,
                "contentBytes": content,
            })
        }
        "microsoft.graph.itemAttachment" | "microsoft.graph.referenceAttachment" => json!({
            "@odata.type": format!("#{kind}"),
            "id": id,
            "lastModifiedDateTime": now,
            "name": name,
            "contentType": body.get("contentType").cloned().unwrap_or(Value::Null),
            "size": 1024,
            "isInline": false,
        }),
        _ => {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The '@odata.type' of the attachment must be fileAttachment, itemAttachment or referenceAttachment.",
            ));
        }
    };
    let data = &mut world.users[user];
    data.attachments
        .entry(message_id.to_string())
        .or_default()
        .push(attachment);
    if let Some(m) = data
        .messages
        .iter_mut()
        .find(|m| str_of(m, "id") == message_id)
    {
        m["hasAttachments"] = Value::Bool(true);
    }
    Ok(id)
}

fn create_attachment_upload(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    message_id: &str,
) -> GraphResult {
    let body = request.json()?;
    let item = body
        .get("AttachmentItem")
        .or_else(|| body.get("attachmentItem"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The 'AttachmentItem' parameter is required.",
            )
        })?;
    if item
        .get("attachmentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "file")
    {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Only file attachments can be uploaded in a session.",
        ));
    }
    let name = item
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The attachment name is required.",
            )
        })?;
    let size = item.get("size").and_then(Value::as_u64).ok_or_else(|| {
        GraphError::new(
            400,
            "ErrorInvalidRequest",
            "The attachment size is required.",
        )
    })?;
    if size > MAX_ATTACHMENT_BYTES {
        return Err(GraphError::new(
            400,
            "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
            "The attachment is larger than 150 MB.",
        ));
    }
    let content_type = item
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    let token = world.token(32);
    let expiration = OffsetDateTime::now_utc() + time::Duration::hours(24);
    world.uploads.insert(
        token.clone(),
        UploadSession {
            target: UploadTarget::Attachment {
                user: caller.user,
                message_id: message_id.to_string(),
                name: name.to_string(),
                content_type,
            },
            size,
            received: Vec::new(),
            expiration,
        },
    );
    Ok(Reply::created(json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", caller.base),
        "uploadUrl": format!("{}/_upload/{token}", caller.origin),
        "expirationDateTime": format_time(expiration),
        "nextExpectedRanges": ["0-"],
    })))
}
