//! Contacts and contact folders (`/me/contacts`, `/me/contactFolders`).

use serde_json::{Map, Value, json};

use crate::app::{Caller, Request};
use crate::graph::mail::with_context_first;
use crate::graph::{collection_url, context};
use crate::odata::{self, Filter, PageRequest, PageRule};
use crate::reply::{GraphError, GraphResult, Reply};
use crate::state::{World, public, str_of};

const WRITABLE: &[&str] = &[
    "givenName",
    "surname",
    "displayName",
    "middleName",
    "nickName",
    "title",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "spouseName",
    "personalNotes",
    "children",
    "emailAddresses",
    "homeAddress",
    "businessAddress",
    "otherAddress",
    "categories",
    "birthday",
    "imAddresses",
    "fileAs",
    "initials",
    "generation",
];

fn root_folder(world: &World, user: usize) -> String {
    world.users[user]
        .contact_folders
        .iter()
        .find(|f| f.get("_default").is_some())
        .map(|f| str_of(f, "id").to_string())
        .unwrap_or_default()
}

/// `/me/contacts...` and `/me/contactFolders...`; `at` is the index of that segment.
pub(crate) fn handle(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
) -> GraphResult {
    let user = caller.user;
    if request.segment(at).as_deref() == Some("contacts") {
        return contacts(world, caller, request, at + 1, None);
    }
    let Some(folder) = request.segment(at + 1) else {
        return match request.method.as_str() {
            "GET" => {
                let root = root_folder(world, user);
                let items: Vec<Value> = world.users[user]
                    .contact_folders
                    .iter()
                    .filter(|f| str_of(f, "parentFolderId") == root)
                    .map(public)
                    .collect();
                let mut out = Map::new();
                out.insert(
                    "@odata.context".into(),
                    json!(context(caller, world, "contactFolders")),
                );
                let page = PageRequest {
                    query: &request.query,
                    url: collection_url(caller, request),
                };
                odata::page_into(&mut out, items, &page, PageRule::OUTLOOK)?;
                Ok(Reply::json(Value::Object(out)))
            }
            "POST" => {
                let body = request.json()?;
                let name = body
                    .get("displayName")
                    .and_then(Value::as_str)
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| {
                        GraphError::new(
                            400,
                            "ErrorInvalidRequest",
                            "The folder displayName is required.",
                        )
                    })?
                    .to_string();
                let root = root_folder(world, user);
                if world.users[user].contact_folders.iter().any(|f| {
                    str_of(f, "displayName").eq_ignore_ascii_case(&name)
                        && str_of(f, "parentFolderId") == root
                }) {
                    return Err(GraphError::new(
                        409,
                        "ErrorFolderExists",
                        "A folder with the specified name already exists.",
                    ));
                }
                let id = world.outlook_id();
                let folder = json!({"id": id, "displayName": name, "parentFolderId": root});
                world.users[user].contact_folders.push(folder.clone());
                let ctx = context(caller, world, "contactFolders/$entity");
                Ok(Reply::created(with_context_first(folder, ctx, request)))
            }
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    let exists = world.users[user]
        .contact_folders
        .iter()
        .any(|f| str_of(f, "id") == folder);
    if !exists {
        return Err(GraphError::item_not_found());
    }
    match (request.method.as_str(), request.segment(at + 2).as_deref()) {
        (_, Some("contacts")) => contacts(world, caller, request, at + 3, Some(folder)),
        ("GET", None) => {
            let f = world.users[user]
                .contact_folders
                .iter()
                .find(|f| str_of(f, "id") == folder)
                .map(public)
                .unwrap_or_default();
            let ctx = context(caller, world, "contactFolders/$entity");
            Ok(Reply::json(with_context_first(f, ctx, request)))
        }
        ("DELETE", None) => {
            if folder == root_folder(world, user) {
                return Err(GraphError::new(
                    403,
                    "ErrorDeleteDistinguishedFolder",
                    "Distinguished folders cannot be deleted.",
                ));
            }
            world.users[user]
                .contact_folders
                .retain(|f| str_of(f, "id") != folder);
            world.users[user]
                .contacts
                .retain(|c| str_of(c, "parentFolderId") != folder);
            Ok(Reply::empty(204))
        }
        (_, Some(other)) => Err(GraphError::unknown_segment(other)),
        _ => Err(GraphError::method_not_allowed()),
    }
}

fn apply(contact: &mut Value, body: &Map<String, Value>) -> Result<(), GraphError> {
    for (key, value) in body {
        if !WRITABLE.contains(&key.as_str()) {
            if key.starts_with('@')
                || [
                    "id",
                    "parentFolderId",
                    "createdDateTime",
                    "lastModifiedDateTime",
                    "changeKey",
                ]
                .contains(&key.as_str())
            {
                continue;
            }
            return Err(GraphError::invalid_property(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.contact'."
            )));
        }
        if key == "emailAddresses"
            && !value.as_array().is_some_and(|a| {
                a.iter()
                    .all(|e| e.get("address").is_some_and(Value::is_string))
            })
        {
            return Err(GraphError::new(
                400,
                "RequestBodyRead",
                "emailAddresses must be a collection of {address, name}.",
            ));
        }
        contact[key.as_str()] = value.clone();
    }
    if !body.contains_key("displayName")
        && (body.contains_key("givenName") || body.contains_key("surname"))
    {
        let name = format!(
            "{} {}",
            str_of(contact, "givenName"),
            str_of(contact, "surname")
        )
        .trim()
        .to_string();
        contact["displayName"] = json!(name);
    }
    Ok(())
}

fn contacts(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    folder: Option<String>,
) -> GraphResult {
    let user = caller.user;
    let Some(id) = request.segment(at) else {
        return match request.method.as_str() {
            "GET" => {
                let root = root_folder(world, user);
                let scope = folder.clone();
                let mut items: Vec<Value> = world.users[user]
                    .contacts
                    .iter()
                    .filter(|c| {
                        scope
                            .as_ref()
                            .is_none_or(|f| str_of(c, "parentFolderId") == f)
                            && (scope.is_some() || str_of(c, "parentFolderId") == root)
                    })
                    .map(public)
                    .collect();
                if let Some(filter) = request.query.get("filter") {
                    let filter = Filter::parse(filter)?;
                    items.retain(|c| filter.matches(c));
                }
                if let Some(search) = request.query.get("search") {
                    let terms = odata::search_terms(search);
                    items.retain(|c| {
                        odata::search_matches(
                            c,
                            &terms,
                            &[
                                "displayName",
                                "givenName",
                                "surname",
                                "companyName",
                                "emailAddresses",
                            ],
                        )
                    });
                }
                if let Some(order) = request.query.get("orderby") {
                    odata::order_by(&mut items, order)?;
                }
                let mut out = Map::new();
                out.insert(
                    "@odata.context".into(),
                    json!(context(caller, world, "contacts")),
                );
                let page = PageRequest {
                    query: &request.query,
                    url: collection_url(caller, request),
                };
                odata::page_into(&mut out, items, &page, PageRule::OUTLOOK)?;
                Ok(Reply::json(Value::Object(out)))
            }
            "POST" => {
                let body = request.json()?;
                let parent = folder.unwrap_or_else(|| root_folder(world, user));
                let mut contact = crate::seed::contact_json(world, "", "", "", &parent);
                for key in [
                    "mobilePhone",
                    "businessPhones",
                    "emailAddresses",
                    "businessAddress",
                    "jobTitle",
                    "companyName",
                    "fileAs",
                    "initials",
                ] {
                    contact[key] = match key {
                        "businessPhones" | "emailAddresses" => json!([]),
                        "businessAddress" => json!({}),
                        _ => Value::Null,
                    };
                }
                contact["createdDateTime"] = json!(crate::state::now_string());
                apply(&mut contact, &body)?;
                world.touch(&mut contact);
                world.users[user].contacts.push(contact.clone());
                let ctx = context(caller, world, "contacts/$entity");
                Ok(Reply::created(with_context_first(
                    public(&contact),
                    ctx,
                    request,
                )))
            }
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    let index = world.users[user]
        .contacts
        .iter()
        .position(|c| {
            str_of(c, "id") == id
                && folder
                    .as_ref()
                    .is_none_or(|f| str_of(c, "parentFolderId") == f)
        })
        .ok_or_else(GraphError::item_not_found)?;
    let ctx = context(caller, world, "contacts/$entity");
    match request.method.as_str() {
        "GET" => Ok(Reply::json(with_context_first(
            public(&world.users[user].contacts[index]),
            ctx,
            request,
        ))),
        "PATCH" => {
            let body = request.json()?;
            let mut contact = world.users[user].contacts[index].clone();
            apply(&mut contact, &body)?;
            world.touch(&mut contact);
            world.users[user].contacts[index] = contact.clone();
            Ok(Reply::json(with_context_first(
                public(&contact),
                ctx,
                request,
            )))
        }
        "DELETE" => {
            world.users[user].contacts.remove(index);
            Ok(Reply::empty(204))
        }
        _ => Err(GraphError::method_not_allowed()),
    }
}
