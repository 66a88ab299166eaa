//! Inbox message rules (`/me/mailFolders/inbox/messageRules`), validated against Graph's
//! `messageRulePredicates` and `messageRuleActions`.

use serde_json::{Map, Value};

use crate::app::{Caller, Request};
use crate::graph::mail::{resolve_folder, with_context_first};
use crate::graph::{collection_url, context};
use crate::odata::{self, PageRequest, PageRule};
use crate::reply::{GraphError, GraphResult, Reply};
use crate::seed::{rule_id, rule_json};
use crate::state::{World, public, str_of};

const PREDICATES: &[&str] = &[
    "bodyContains",
    "bodyOrSubjectContains",
    "categories",
    "fromAddresses",
    "hasAttachments",
    "headerContains",
    "importance",
    "isApprovalRequest",
    "isAutomaticForward",
    "isAutomaticReply",
    "isEncrypted",
    "isMeetingRequest",
    "isMeetingResponse",
    "isNonDeliveryReport",
    "isPermissionControlled",
    "isReadReceipt",
    "isSigned",
    "isVoicemail",
    "messageActionFlag",
    "notSentToMe",
    "recipientContains",
    "senderContains",
    "sensitivity",
    "sentCcMe",
    "sentOnlyToMe",
    "sentToAddresses",
    "sentToMe",
    "sentToOrCcMe",
    "subjectContains",
    "withinSizeRange",
];
const STRING_LISTS: &[&str] = &[
    "bodyContains",
    "bodyOrSubjectContains",
    "categories",
    "headerContains",
    "recipientContains",
    "senderContains",
    "subjectContains",
];
const RECIPIENT_LISTS: &[&str] = &[
    "fromAddresses",
    "sentToAddresses",
    "forwardAsAttachmentTo",
    "forwardTo",
    "redirectTo",
];
const ACTIONS: &[&str] = &[
    "assignCategories",
    "copyToFolder",
    "delete",
    "forwardAsAttachmentTo",
    "forwardTo",
    "markAsRead",
    "markImportance",
    "moveToFolder",
    "permanentDelete",
    "redirectTo",
    "stopProcessingRules",
];
const ACTION_FLAGS: &[&str] = &[
    "any",
    "call",
    "doNotForward",
    "followUp",
    "fyi",
    "forward",
    "noResponseNecessary",
    "read",
    "reply",
    "replyToAll",
    "review",
];

fn body_error(message: String) -> GraphError {
    GraphError::new(400, "RequestBodyRead", message)
}

fn check_value(type_name: &str, key: &str, value: &Value) -> Result<(), GraphError> {
    let bad = || {
        body_error(format!(
            "Invalid value for property '{key}' of type '{type_name}'."
        ))
    };
    if STRING_LISTS.contains(&key) || key == "assignCategories" {
        return match value.as_array() {
            Some(list) if list.iter().all(Value::is_string) => Ok(()),
            _ => Err(bad()),
        };
    }
    if RECIPIENT_LISTS.contains(&key) {
        let ok = value.as_array().is_some_and(|list| {
            list.iter().all(|r| {
                r.get("emailAddress")
                    .and_then(|e| e.get("address"))
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains('@'))
            })
        });
        return if ok { Ok(()) } else { Err(bad()) };
    }
    match key {
        "importance" | "markImportance" => match value.as_str() {
            Some("low" | "normal" | "high") => Ok(()),
            _ => Err(bad()),
        },
        "sensitivity" => match value.as_str() {
            Some("normal" | "personal" | "private" | "confidential") => Ok(()),
            _ => Err(bad()),
        },
        "messageActionFlag" => match value.as_str() {
            Some(flag) if ACTION_FLAGS.contains(&flag) => Ok(()),
            _ => Err(bad()),
        },
        "withinSizeRange" => {
            let min = value
                .get("minimumSize")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let max = value
                .get("maximumSize")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX);
            if value.is_object() && min >= 0 && max >= min {
                Ok(())
            } else {
                Err(bad())
            }
        }
        "copyToFolder" | "moveToFolder" => match value.as_str() {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(bad()),
        },
        _ => {
            if value.is_boolean() {
                Ok(())
            } else {
                Err(bad())
            }
        }
    }
}

fn check_object(value: &Value, allowed: &[&str], type_name: &str) -> Result<(), GraphError> {
    let map = value
        .as_object()
        .ok_or_else(|| body_error(format!("Expected an object of type '{type_name}'.")))?;
    for (key, v) in map {
        if !allowed.contains(&key.as_str()) {
            return Err(body_error(format!(
                "The property '{key}' does not exist on type '{type_name}'. Make sure to only use property names that are defined by the type."
            )));
        }
        check_value(type_name, key, v)?;
    }
    Ok(())
}

fn validate(body: &Map<String, Value>, creating: bool) -> Result<(), GraphError> {
    const FIELDS: &[&str] = &[
        "displayName",
        "sequence",
        "isEnabled",
        "conditions",
        "actions",
        "exceptions",
        "hasError",
        "isReadOnly",
        "id",
    ];
    for key in body.keys() {
        if !FIELDS.contains(&key.as_str()) {
            return Err(body_error(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.messageRule'."
            )));
        }
    }
    if creating {
        if body
            .get("displayName")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The rule's displayName is required.",
            ));
        }
        if !body.contains_key("sequence") {
            return Err(GraphError::new(
                400,
                "ErrorInvalidRequest",
                "The rule's sequence is required.",
            ));
        }
    }
    if let Some(seq) = body.get("sequence")
        && seq.as_i64().is_none_or(|n| n < 1)
    {
        return Err(body_error(
            "The rule's sequence must be an integer greater than zero.".into(),
        ));
    }
    if let Some(v) = body.get("isEnabled")
        && !v.is_boolean()
    {
        return Err(body_error(
            "Cannot convert the value of 'isEnabled' to 'Edm.Boolean'.".into(),
        ));
    }
    for key in ["conditions", "exceptions"] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            check_object(v, PREDICATES, "microsoft.graph.messageRulePredicates")?;
        }
    }
    if let Some(v) = body.get("actions").filter(|v| !v.is_null()) {
        check_object(v, ACTIONS, "microsoft.graph.messageRuleActions")?;
    }
    Ok(())
}

fn check_folders(world: &World, user: usize, body: &Map<String, Value>) -> Result<(), GraphError> {
    for key in ["moveToFolder", "copyToFolder"] {
        if let Some(id) = body
            .get("actions")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
        {
            resolve_folder(world, user, id).map_err(|_| {
                GraphError::new(
                    400,
                    "ErrorInvalidRequest",
                    format!("The folder '{id}' named in '{key}' does not exist."),
                )
            })?;
        }
    }
    Ok(())
}

/// `/me/mailFolders/{inbox}/messageRules...`; `at` is the index after `messageRules`.
pub(crate) fn handle(
    world: &mut World,
    caller: &Caller,
    request: &Request,
    at: usize,
    folder_id: &str,
) -> GraphResult {
    let user = caller.user;
    let inbox = resolve_folder(world, user, "inbox")?;
    if folder_id != inbox {
        return Err(GraphError::new(
            400,
            "ErrorInvalidRequest",
            "Message rules exist only on the Inbox folder.",
        ));
    }
    let ctx_list = context(caller, world, "mailFolders('inbox')/messageRules");
    let ctx_entity = format!("{ctx_list}/$entity");
    let Some(id) = request.segment(at) else {
        return match request.method.as_str() {
            "GET" => {
                let mut rules: Vec<Value> = world.users[user].rules.iter().map(public).collect();
                odata::order_by(
                    &mut rules,
                    request.query.get("orderby").unwrap_or("sequence"),
                )?;
                let mut out = Map::new();
                out.insert("@odata.context".into(), Value::String(ctx_list));
                let page = PageRequest {
                    query: &request.query,
                    url: collection_url(caller, request),
                };
                odata::page_into(&mut out, rules, &page, PageRule::OUTLOOK)?;
                Ok(Reply::json(Value::Object(out)))
            }
            "POST" => {
                let body = request.json()?;
                validate(&body, true)?;
                check_folders(world, user, &body)?;
                let id = rule_id(world);
                let mut rule = rule_json(
                    &id,
                    body.get("displayName")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    body.get("sequence").and_then(Value::as_i64).unwrap_or(1),
                    body.get("conditions")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                    body.get("actions")
                        .cloned()
                        .unwrap_or_else(|| Value::Object(Map::new())),
                );
                if let Some(map) = rule.as_object_mut() {
                    if let Some(e) = body.get("isEnabled") {
                        map.insert("isEnabled".into(), e.clone());
                    }
                    if let Some(x) = body.get("exceptions").filter(|v| !v.is_null()) {
                        map.insert("exceptions".into(), x.clone());
                    }
                }
                world.users[user].rules.push(rule.clone());
                Ok(Reply::created(with_context_first(
                    rule, ctx_entity, request,
                )))
            }
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    if request.segment(at + 1).is_some() {
        return Err(GraphError::unknown_segment(
            &request.segment(at + 1).unwrap_or_default(),
        ));
    }
    let index = world.users[user]
        .rules
        .iter()
        .position(|r| str_of(r, "id") == id)
        .ok_or_else(GraphError::item_not_found)?;
    match request.method.as_str() {
        "GET" => Ok(Reply::json(with_context_first(
            public(&world.users[user].rules[index]),
            ctx_entity,
            request,
        ))),
        "PATCH" => {
            let body = request.json()?;
            validate(&body, false)?;
            check_folders(world, user, &body)?;
            let rule = &mut world.users[user].rules[index];
            for (k, v) in &body {
                if ["id", "hasError", "isReadOnly"].contains(&k.as_str()) {
                    continue;
                }
                rule[k.as_str()] = v.clone();
            }
            Ok(Reply::json(with_context_first(
                public(rule),
                ctx_entity,
                request,
            )))
        }
        "DELETE" => {
            world.users[user].rules.remove(index);
            Ok(Reply::empty(204))
        }
        _ => Err(GraphError::method_not_allowed()),
    }
}
