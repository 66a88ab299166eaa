//! Inbox message rules (`/me/mailFolders/inbox/messageRules`).
//!
//! Conditions, exceptions and actions are checked against Graph's own
//! `messageRulePredicates` and `messageRuleActions` before anything is sent;
//! an unknown key is refused with the list of valid ones. Moving a rule
//! renumbers the rules 1..n in their new order, so sequences stay dense.

use std::sync::Arc;

use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::args::default_true;
use super::item_args::{is_address, require_confirm};
use super::mail::well_known_name;
use super::{Cache, DESTRUCTIVE, READ, Target, ToolDef, ToolResult, UPDATE, WRITE, listed_ids};
use crate::app::App;
use crate::error::ToolError;

const RULES: &str = "/me/mailFolders/inbox/messageRules";
/// Most rules read from a mailbox (Exchange allows far fewer).
const MAX_RULES: usize = 1_000;

/// Graph's `messageRulePredicates` properties.
pub const PREDICATES: &[&str] = &[
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

/// Graph's `messageRuleActions` properties.
pub const ACTIONS: &[&str] = &[
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

const STRING_LISTS: &[&str] = &[
    "bodyContains",
    "bodyOrSubjectContains",
    "categories",
    "headerContains",
    "recipientContains",
    "senderContains",
    "subjectContains",
    "assignCategories",
];
const RECIPIENT_LISTS: &[&str] = &[
    "fromAddresses",
    "sentToAddresses",
    "forwardAsAttachmentTo",
    "forwardTo",
    "redirectTo",
];
const FOLDERS: &[&str] = &["copyToFolder", "moveToFolder"];
const IMPORTANCE: &[&str] = &["low", "normal", "high"];
const SENSITIVITY: &[&str] = &["normal", "personal", "private", "confidential"];
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

fn bad(param: &str, value: &Value, reason: &str, expected: &str) -> ToolError {
    ToolError::invalid(param, &value.to_string(), reason, expected)
}

fn choice(param: &str, value: &Value, allowed: &[&str]) -> Result<Value, ToolError> {
    match value
        .as_str()
        .and_then(|s| allowed.iter().find(|a| a.eq_ignore_ascii_case(s.trim())))
    {
        Some(found) => Ok(json!(found)),
        None => Err(bad(param, value, "is not allowed", &allowed.join(", "))),
    }
}

/// `"a@b"`, `{address}` or `{emailAddress: {address}}` → Graph's recipient.
fn rule_recipient(param: &str, value: &Value) -> Result<Value, ToolError> {
    let (address, name) = match value {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Object(map) => {
            let inner = map.get("emailAddress").unwrap_or(value);
            (inner["address"].as_str(), inner["name"].as_str())
        }
        _ => (None, None),
    };
    let expected =
        "\"name@example.com\" or {\"emailAddress\": {\"address\": \"name@example.com\"}}";
    let address = address.map(str::trim).unwrap_or_default();
    if !is_address(address) {
        return Err(bad(param, value, "is not an e-mail address", expected));
    }
    let mut email = json!({"address": address.to_ascii_lowercase()});
    if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
        email["name"] = json!(name.trim());
    }
    Ok(json!({ "emailAddress": email }))
}

fn check_value(section: &str, key: &str, value: &Value) -> Result<Value, ToolError> {
    let param = format!("{section}.{key}");
    if STRING_LISTS.contains(&key) {
        let list: Option<Vec<String>> = match value {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => None,
        };
        return match list {
            Some(list) if !list.is_empty() && list.iter().all(|s| !s.trim().is_empty()) => {
                Ok(json!(list))
            }
            _ => Err(bad(
                &param,
                value,
                "must be a non-empty list of non-empty strings",
                "[\"text\", \"more text\"]",
            )),
        };
    }
    if RECIPIENT_LISTS.contains(&key) {
        let items: Vec<Value> = match value {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        if items.is_empty() {
            return Err(bad(
                &param,
                value,
                "needs at least one address",
                "a list of e-mail addresses",
            ));
        }
        return items
            .iter()
            .map(|item| rule_recipient(&param, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if FOLDERS.contains(&key) {
        return match value.as_str().map(str::trim).filter(|s| !s.is_empty()) {
            Some(folder) => {
                m365_graph::validate_id(&param, folder)?;
                Ok(json!(folder))
            }
            None => Err(bad(
                &param,
                value,
                "must be a folder id or well-known name",
                "a folder id (from emailfolders_list) or e.g. archive",
            )),
        };
    }
    match key {
        "importance" | "markImportance" => choice(&param, value, IMPORTANCE),
        "sensitivity" => choice(&param, value, SENSITIVITY),
        "messageActionFlag" => choice(&param, value, ACTION_FLAGS),
        "withinSizeRange" => {
            let size = |k: &str| -> Result<Option<i64>, ToolError> {
                match value.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                        bad(
                            &param,
                            value,
                            &format!("{k} must be a whole number ≥ 0"),
                            "sizes in kilobytes",
                        )
                    }),
                }
            };
            let Some(map) = value.as_object() else {
                return Err(bad(
                    &param,
                    value,
                    "must be an object",
                    "{\"minimumSize\": 0, \"maximumSize\": 1024} (kilobytes)",
                ));
            };
            if let Some(extra) = map
                .keys()
                .find(|k| *k != "minimumSize" && *k != "maximumSize")
            {
                return Err(bad(
                    &param,
                    value,
                    &format!("'{extra}' is not a size bound"),
                    "minimumSize, maximumSize",
                ));
            }
            let (min, max) = (size("minimumSize")?, size("maximumSize")?);
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(bad(
                    &param,
                    value,
                    "minimumSize is above maximumSize",
                    "minimumSize ≤ maximumSize",
                ));
            }
            Ok(value.clone())
        }
        // Every other predicate and action is a boolean.
        _ => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err(bad(&param, value, "must be a boolean", "true or false")),
        },
    }
}

/// Checks a conditions, exceptions or actions object key by key.
pub fn check_section(section: &str, value: &Map<String, Value>) -> Result<Value, ToolError> {
    let (allowed, type_name) = if section == "actions" {
        (ACTIONS, "messageRuleActions")
    } else {
        (PREDICATES, "messageRulePredicates")
    };
    let mut out = Map::new();
    for (key, v) in value {
        if !allowed.contains(&key.as_str()) {
            return Err(ToolError::invalid(
                section,
                key,
                &format!("is not a property of Graph's {type_name}"),
                &format!("one of {}", allowed.join(", ")),
            ));
        }
        out.insert(key.clone(), check_value(section, key, v)?);
    }
    if section == "actions" && out.is_empty() {
        return Err(ToolError::invalid(
            section,
            "{}",
            "a rule needs at least one action",
            &format!("one or more of {}", ACTIONS.join(", ")),
        ));
    }
    Ok(Value::Object(out))
}

/// Replaces well-known folder names in move/copy actions by the folders' ids,
/// which is what Graph stores.
async fn resolve_folders(app: &App, account: &str, actions: &mut Value) -> Result<(), ToolError> {
    for key in FOLDERS {
        let Some(folder) = actions[*key].as_str().map(str::to_string) else {
            continue;
        };
        let Some(canonical) = well_known_name(&folder) else {
            continue; // already an id
        };
        let found = app
            .graph
            .get(
                account,
                &format!("/me/mailFolders/{canonical}"),
                &[("$select", "id")],
            )
            .await?;
        if let Some(id) = found["id"].as_str() {
            actions[*key] = json!(id);
        }
    }
    Ok(())
}

/// The encoded URL segment of a rule id. Exchange writes rule ids in
/// standard base64 (`AQAAAJ5dZp8=`), so unlike other ids they may hold `/`;
/// only base64 characters are accepted, and the id is percent-encoded, so
/// it always stays one path segment.
pub fn rule_segment(raw: &str) -> Result<String, ToolError> {
    let id = raw.trim();
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
    if id.is_empty() || id.len() > 512 || !id.chars().all(base64) {
        return Err(ToolError::invalid(
            "rule_id",
            raw,
            "is not a message rule id",
            "a rule id from emailrules_list (base64 characters only)",
        ));
    }
    Ok(m365_graph::encode_segment(id))
}

fn clean(mut rule: Value) -> Value {
    if let Some(obj) = rule.as_object_mut() {
        obj.remove("@odata.context");
        obj.remove("@odata.etag");
    }
    rule
}

fn default_sequence() -> i64 {
    1
}

/// Parameters of `emailrules_get` and the move tools.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleParams {
    /// The rule id (from emailrules_list).
    pub rule_id: String,
}

/// Parameters of `emailrules_create`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRuleParams {
    /// The rule's name.
    pub display_name: String,
    /// When the rule applies: Graph messageRulePredicates, e.g. {"senderContains": ["news"]}.
    pub conditions: Map<String, Value>,
    /// What it does: Graph messageRuleActions, e.g. {"moveToFolder": "<folder id>", "stopProcessingRules": true}.
    pub actions: Map<String, Value>,
    /// Position among the rules (1 runs first).
    #[serde(default = "default_sequence")]
    pub sequence: i64,
    /// Whether the rule is active.
    #[serde(default = "default_true")]
    pub is_enabled: bool,
    /// When the rule does not apply, even if the conditions match (messageRulePredicates).
    #[serde(default)]
    pub exceptions: Option<Map<String, Value>>,
}

/// Parameters of `emailrules_update`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRuleParams {
    /// The rule id.
    pub rule_id: String,
    /// New name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// New conditions (replace the old ones).
    #[serde(default)]
    pub conditions: Option<Map<String, Value>>,
    /// New actions (replace the old ones).
    #[serde(default)]
    pub actions: Option<Map<String, Value>>,
    /// New position (1 runs first).
    #[serde(default)]
    pub sequence: Option<i64>,
    /// Enable or disable the rule.
    #[serde(default)]
    pub is_enabled: Option<bool>,
    /// New exceptions (replace the old ones).
    #[serde(default)]
    pub exceptions: Option<Map<String, Value>>,
}

/// Parameters of `emailrules_delete`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRuleParams {
    /// The rule id.
    pub rule_id: String,
    /// Must be true to delete.
    #[serde(default)]
    pub confirm: bool,
}

/// The message rule tools.
pub fn tools() -> Vec<ToolDef> {
    let writes = Cache::Write {
        invalidates: rules_changed,
    };
    vec![
        ToolDef::account(
            "emailrules_list",
            "List inbox rules",
            "emailrules",
            READ,
            Cache::Read { deps: list_deps },
            "List the Inbox message rules in the order they run (every page), with their conditions \
             and actions.",
            emailrules_list,
        ),
        ToolDef::account(
            "emailrules_get",
            "Get an inbox rule",
            "emailrules",
            READ,
            Cache::None,
            "Get one Inbox message rule.",
            emailrules_get,
        ),
        ToolDef::account(
            "emailrules_create",
            "Create an inbox rule",
            "emailrules",
            WRITE,
            writes,
            "Create an Inbox message rule. conditions and exceptions use Graph's messageRulePredicates \
             names (senderContains, fromAddresses, subjectContains, hasAttachments, importance, …); \
             actions use messageRuleActions names (moveToFolder, assignCategories, markAsRead, forwardTo, \
             stopProcessingRules, …).",
            emailrules_create,
        ),
        ToolDef::account(
            "emailrules_update",
            "Update an inbox rule",
            "emailrules",
            UPDATE,
            writes,
            "Change an Inbox message rule's name, conditions, actions, exceptions, sequence or enabled \
             state (give at least one).",
            emailrules_update,
        ),
        ToolDef::account(
            "emailrules_delete",
            "Delete an inbox rule",
            "emailrules",
            DESTRUCTIVE,
            writes,
            "Delete an Inbox message rule. Requires confirm=true.",
            emailrules_delete,
        ),
        ToolDef::account(
            "emailrules_move_top",
            "Move rule to top",
            "emailrules",
            WRITE,
            writes,
            "Make a rule run first; the others keep their order (sequences renumbered 1..n).",
            emailrules_move_top,
        ),
        ToolDef::account(
            "emailrules_move_bottom",
            "Move rule to bottom",
            "emailrules",
            WRITE,
            writes,
            "Make a rule run last; the others keep their order (sequences renumbered 1..n).",
            emailrules_move_bottom,
        ),
        ToolDef::account(
            "emailrules_move_up",
            "Move rule up",
            "emailrules",
            WRITE,
            writes,
            "Swap a rule with the one running just before it.",
            emailrules_move_up,
        ),
        ToolDef::account(
            "emailrules_move_down",
            "Move rule down",
            "emailrules",
            WRITE,
            writes,
            "Swap a rule with the one running just after it.",
            emailrules_move_down,
        ),
    ]
}

fn list_deps(_: &Value, result: &Value) -> Dependencies {
    Dependencies::none().with_items(listed_ids(result))
}

fn rules_changed(_: &Value, _: &Value) -> Vec<Target> {
    vec![Target::all("emailrules_list")]
}

async fn all_rules(app: &App, account: &str) -> Result<Vec<Value>, ToolError> {
    let mut rules = app
        .graph
        .get_paged(account, RULES, &[("$top", "100")], MAX_RULES)
        .await?;
    // Stable: rules with equal sequences keep Graph's order.
    rules.sort_by_key(|r| r["sequence"].as_i64().unwrap_or(i64::MAX));
    Ok(rules.into_iter().map(clean).collect())
}

async fn emailrules_list(app: Arc<App>, account: AccountRecord, _: super::NoParams) -> ToolResult {
    let rules = all_rules(&app, &account.account_id).await?;
    Ok(json!({"value": rules, "count": rules.len(), "account_id": account.account_id}))
}

async fn emailrules_get(app: Arc<App>, account: AccountRecord, p: RuleParams) -> ToolResult {
    let segment = rule_segment(&p.rule_id)?;
    let rule = app
        .graph
        .get(&account.account_id, &format!("{RULES}/{segment}"), &[])
        .await?;
    Ok(clean(rule))
}

fn checked_name(raw: &str) -> Result<String, ToolError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(ToolError::invalid(
            "display_name",
            raw,
            "must be 1 to 255 characters",
            "a rule name",
        ));
    }
    Ok(name.to_string())
}

fn checked_sequence(value: i64) -> Result<i64, ToolError> {
    if value < 1 {
        return Err(ToolError::invalid(
            "sequence",
            &value.to_string(),
            "must be at least 1",
            "a whole number ≥ 1 (1 runs first)",
        ));
    }
    Ok(value)
}

async fn emailrules_create(
    app: Arc<App>,
    account: AccountRecord,
    p: CreateRuleParams,
) -> ToolResult {
    let mut body = json!({
        "displayName": checked_name(&p.display_name)?,
        "sequence": checked_sequence(p.sequence)?,
        "isEnabled": p.is_enabled,
        "conditions": check_section("conditions", &p.conditions)?,
        "actions": check_section("actions", &p.actions)?,
    });
    if let Some(exceptions) = &p.exceptions {
        body["exceptions"] = check_section("exceptions", exceptions)?;
    }
    resolve_folders(&app, &account.account_id, &mut body["actions"]).await?;
    let rule = app
        .graph
        .post(&account.account_id, RULES, Some(&body))
        .await?;
    Ok(clean(rule))
}

async fn emailrules_update(
    app: Arc<App>,
    account: AccountRecord,
    p: UpdateRuleParams,
) -> ToolResult {
    let segment = rule_segment(&p.rule_id)?;
    let mut body = Map::new();
    if let Some(name) = &p.display_name {
        body.insert("displayName".into(), json!(checked_name(name)?));
    }
    if let Some(conditions) = &p.conditions {
        body.insert(
            "conditions".into(),
            check_section("conditions", conditions)?,
        );
    }
    if let Some(actions) = &p.actions {
        body.insert("actions".into(), check_section("actions", actions)?);
    }
    if let Some(exceptions) = &p.exceptions {
        body.insert(
            "exceptions".into(),
            check_section("exceptions", exceptions)?,
        );
    }
    if let Some(sequence) = p.sequence {
        body.insert("sequence".into(), json!(checked_sequence(sequence)?));
    }
    if let Some(enabled) = p.is_enabled {
        body.insert("isEnabled".into(), json!(enabled));
    }
    if body.is_empty() {
        return Err(ToolError::invalid(
            "rule_id",
            &p.rule_id,
            "nothing to change",
            "one or more of display_name, conditions, actions, exceptions, sequence, is_enabled",
        ));
    }
    let mut body = Value::Object(body);
    if body.get("actions").is_some() {
        resolve_folders(&app, &account.account_id, &mut body["actions"]).await?;
    }
    let rule = app
        .graph
        .patch(&account.account_id, &format!("{RULES}/{segment}"), &body)
        .await?;
    Ok(clean(rule))
}

async fn emailrules_delete(
    app: Arc<App>,
    account: AccountRecord,
    p: DeleteRuleParams,
) -> ToolResult {
    let segment = rule_segment(&p.rule_id)?;
    require_confirm(p.confirm, "deleting a message rule")?;
    app.graph
        .delete(&account.account_id, &format!("{RULES}/{segment}"))
        .await?;
    Ok(json!({"status": "deleted", "rule_id": p.rule_id.trim()}))
}

#[derive(Clone, Copy)]
enum Move {
    Top,
    Bottom,
    Up,
    Down,
}

/// Puts the rule at its new place and renumbers every rule 1..n, patching
/// only the rules whose sequence changes.
async fn move_rule(app: &App, account: &str, rule_id: &str, how: Move) -> ToolResult {
    rule_segment(rule_id)?;
    let wanted = rule_id.trim();
    let mut rules = all_rules(app, account).await?;
    let Some(from) = rules.iter().position(|r| r["id"] == wanted) else {
        return Err(ToolError::invalid(
            "rule_id",
            rule_id,
            "no such rule in the Inbox",
            "a rule id from emailrules_list",
        ));
    };
    let last = rules.len() - 1;
    let to = match how {
        Move::Top => 0,
        Move::Bottom => last,
        Move::Up if from == 0 => {
            return Err(ToolError::invalid(
                "rule_id",
                rule_id,
                "the rule already runs first",
                "a rule that is not at the top",
            ));
        }
        Move::Up => from - 1,
        Move::Down if from == last => {
            return Err(ToolError::invalid(
                "rule_id",
                rule_id,
                "the rule already runs last",
                "a rule that is not at the bottom",
            ));
        }
        Move::Down => from + 1,
    };
    let rule = rules.remove(from);
    rules.insert(to, rule);
    let mut changed = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let sequence = index as i64 + 1;
        if rule["sequence"].as_i64() != Some(sequence) {
            changed.push((
                rule["id"].as_str().unwrap_or_default().to_string(),
                sequence,
            ));
        }
    }
    // The moved rule first, so a failure leaves the most visible change made.
    changed.sort_by_key(|(id, _)| *id != wanted);
    let mut updated = 0usize;
    let mut failed = Vec::new();
    for (id, sequence) in &changed {
        let result = app
            .graph
            .patch(
                account,
                &format!("{RULES}/{}", m365_graph::encode_segment(id)),
                &json!({ "sequence": sequence }),
            )
            .await;
        match result {
            Ok(_) => updated += 1,
            Err(e) if updated == 0 => return Err(e.into()),
            Err(e) => failed.push(json!({"id": id, "sequence": sequence, "error": e.to_string()})),
        }
    }
    let order: Vec<Value> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"id": r["id"], "displayName": r["displayName"], "sequence": i + 1}))
        .collect();
    let moved = rules[to].clone();
    let mut moved = clean(moved);
    moved["sequence"] = json!(to + 1);
    Ok(json!({
        "status": if failed.is_empty() { "moved" } else { "incomplete" },
        "rule": moved,
        "order": order,
        "rules_updated": updated,
        "failed": failed,
    }))
}

async fn emailrules_move_top(app: Arc<App>, account: AccountRecord, p: RuleParams) -> ToolResult {
    move_rule(&app, &account.account_id, &p.rule_id, Move::Top).await
}

async fn emailrules_move_bottom(
    app: Arc<App>,
    account: AccountRecord,
    p: RuleParams,
) -> ToolResult {
    move_rule(&app, &account.account_id, &p.rule_id, Move::Bottom).await
}

async fn emailrules_move_up(app: Arc<App>, account: AccountRecord, p: RuleParams) -> ToolResult {
    move_rule(&app, &account.account_id, &p.rule_id, Move::Up).await
}

async fn emailrules_move_down(app: Arc<App>, account: AccountRecord, p: RuleParams) -> ToolResult {
    move_rule(&app, &account.account_id, &p.rule_id, Move::Down).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn predicates_and_actions_follow_graph() {
        let ok = check_section(
            "conditions",
            &map(
                json!({"sentToMe": true, "fromAddresses": ["A@Example.com"], "importance": "HIGH"}),
            ),
        )
        .unwrap();
        assert_eq!(
            ok["fromAddresses"][0]["emailAddress"]["address"],
            "a@example.com"
        );
        assert_eq!(ok["importance"], "high");
        let e = check_section("conditions", &map(json!({"fromAddress": ["a@b.c"]})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Invalid conditions 'fromAddress'") && e.contains("fromAddresses"),
            "{e}"
        );
        let e = check_section("actions", &map(json!({"moveTo": "x"})))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("messageRuleActions") && e.contains("moveToFolder"),
            "{e}"
        );
        assert!(
            check_section("conditions", &map(json!({"messageActionFlag": "flagged"}))).is_err()
        );
        assert!(
            check_section("conditions", &map(json!({"messageActionFlag": "followUp"}))).is_ok()
        );
        assert!(check_section("actions", &map(json!({}))).is_err());
        assert!(
            check_section(
                "conditions",
                &map(json!({"withinSizeRange": {"minimumSize": 10, "maximumSize": 5}}))
            )
            .is_err()
        );
    }
}
