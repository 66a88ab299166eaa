//! Search over files, mail, events and contacts, routed by account type:
//! work and school accounts use Microsoft Search (`POST /search/query`),
//! personal accounts, which that API refuses, use each collection's own
//! search (`$search`, drive `search(q=…)`). Contacts use a `startswith`
//! filter on both, as Outlook contacts have no `$search`.

use std::sync::Arc;

use m365_graph::{RequestOptions, encode_segment};
use m365_store::{AccountRecord, Dependencies};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::args::check_range;
use super::files::summary;
use super::item_args::{optional, strip_odata};
use super::mail::folder_segment;
use super::{Cache, READ, ToolDef, ToolResult};
use crate::app::App;
use crate::error::ToolError;

const MESSAGE_FIELDS: &str = "id,subject,from,toRecipients,receivedDateTime,hasAttachments,isRead,bodyPreview,parentFolderId,webLink";
const EVENT_FIELDS: &str = "id,subject,start,end,location,organizer,isAllDay,bodyPreview,webLink";
const CONTACT_FIELDS: &str = "id,displayName,givenName,surname,emailAddresses,companyName,jobTitle,mobilePhone,businessPhones";
const ENTITY_TYPES: &[&str] = &["message", "event", "driveItem"];

fn default_limit() -> i64 {
    50
}
fn default_days() -> i64 {
    365
}

/// Parameters of `search_files` and `search_contacts`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for (1–512 characters).
    pub query: String,
    /// How many results (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// Parameters of `search_emails`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchEmailsParams {
    /// What to look for (1–512 characters).
    pub query: String,
    /// How many results (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
    /// Only this folder: inbox, sent, drafts, deleted, junk, archive, or a folder id.
    #[serde(default)]
    pub folder: Option<String>,
}

/// Parameters of `search_events`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchEventsParams {
    /// What to look for (1–512 characters).
    pub query: String,
    /// Days after today to include (0–730).
    #[serde(default = "default_days")]
    pub days_ahead: i64,
    /// Days before today to include (0–730).
    #[serde(default = "default_days")]
    pub days_back: i64,
    /// How many results (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// Parameters of `search_unified`.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchUnifiedParams {
    /// What to look for (1–512 characters).
    pub query: String,
    /// Kinds to search: message, event, driveItem (default all three).
    #[serde(default)]
    pub entity_types: Option<Vec<String>>,
    /// How many results per kind (1–500).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// The search tools.
pub fn tools() -> Vec<ToolDef> {
    vec![
        ToolDef::account(
            "search_files",
            "Search files",
            "search",
            READ,
            Cache::Read { deps: list_deps },
            "Search OneDrive files and folders by name and content.",
            search_files,
        ),
        ToolDef::account(
            "search_emails",
            "Search mail",
            "search",
            READ,
            Cache::Read { deps: list_deps },
            "Search messages (subject, body, people) across the mailbox or in one folder.",
            search_emails,
        ),
        ToolDef::account(
            "search_events",
            "Search events",
            "search",
            READ,
            Cache::Read { deps: list_deps },
            "Search calendar events by subject, body or location within days_back/days_ahead of today.",
            search_events,
        ),
        ToolDef::account(
            "search_contacts",
            "Search contacts",
            "search",
            READ,
            Cache::Read { deps: list_deps },
            "Find contacts whose display name, first name or last name starts with the query.",
            search_contacts,
        ),
        ToolDef::account(
            "search_unified",
            "Search everything",
            "search",
            READ,
            Cache::Read { deps: unified_deps },
            "Search messages, events and OneDrive items at once; results grouped by kind.",
            search_unified,
        ),
    ]
}

fn list_deps(_: &Value, result: &Value) -> Dependencies {
    Dependencies::none().with_items(super::listed_ids(result))
}

fn unified_deps(_: &Value, result: &Value) -> Dependencies {
    let mut deps = Dependencies::none();
    for kind in ENTITY_TYPES {
        for item in result["results"][*kind].as_array().into_iter().flatten() {
            if let Some(id) = item["id"].as_str() {
                deps = deps.with_item(id);
            }
        }
    }
    deps
}

/// The trimmed query, 1–512 characters, without control characters.
fn check_query(query: &str) -> Result<String, ToolError> {
    let q = query.trim();
    if q.is_empty() || q.chars().count() > 512 || q.chars().any(char::is_control) {
        return Err(ToolError::invalid(
            "query",
            query,
            "must be 1 to 512 characters without control characters",
            "search words, e.g. budget review",
        ));
    }
    Ok(q.to_string())
}

/// A `$search` value: the query in double quotes, inner `\` and `"` escaped.
pub fn search_value(query: &str) -> String {
    format!("\"{}\"", query.replace('\\', "\\\\").replace('"', "\\\""))
}

/// An OData string literal's content: single quotes doubled.
pub fn odata_literal(query: &str) -> String {
    query.replace('\'', "''")
}

fn is_work(account: &AccountRecord) -> bool {
    account.account_type != "personal"
}

fn clean(items: Vec<Value>) -> Vec<Value> {
    items
        .into_iter()
        .map(|mut v| {
            strip_odata(&mut v);
            v
        })
        .collect()
}

/// `POST /search/query` with one request per entity type; hits' resources by type.
async fn microsoft_search(
    app: &App,
    account: &AccountRecord,
    query: &str,
    types: &[&str],
    size: usize,
) -> Result<Vec<(String, Vec<Value>)>, ToolError> {
    let requests: Vec<Value> = types
        .iter()
        .map(|t| {
            json!({
                "entityTypes": [t],
                "query": {"queryString": query},
                "from": 0,
                "size": size.min(500),
            })
        })
        .collect();
    let answer = app
        .graph
        .post(
            &account.account_id,
            "/search/query",
            Some(&json!({"requests": requests})),
        )
        .await?;
    let mut out = Vec::new();
    for (i, t) in types.iter().enumerate() {
        let hits: Vec<Value> = answer["value"][i]["hitsContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["hits"].as_array().into_iter().flatten())
            .map(|h| {
                let mut r = h["resource"].clone();
                strip_odata(&mut r);
                if let (Some(obj), Some(summary)) = (r.as_object_mut(), h["summary"].as_str()) {
                    obj.entry("summary").or_insert(json!(summary));
                }
                r
            })
            .take(size)
            .collect();
        out.push(((*t).to_string(), hits));
    }
    Ok(out)
}

async fn personal_files(
    app: &App,
    account: &AccountRecord,
    query: &str,
    limit: usize,
) -> Result<Vec<Value>, ToolError> {
    let path = format!(
        "/me/drive/root/search(q='{}')",
        encode_segment(&odata_literal(query))
    );
    let top = limit.min(200).to_string();
    Ok(app
        .graph
        .get_paged(&account.account_id, &path, &[("$top", top.as_str())], limit)
        .await?)
}

async fn personal_messages(
    app: &App,
    account: &AccountRecord,
    query: &str,
    folder: Option<&str>,
    limit: usize,
) -> Result<Vec<Value>, ToolError> {
    let path = match folder {
        Some(f) => format!(
            "/me/mailFolders/{}/messages",
            folder_segment(Some(f), None)?
        ),
        None => "/me/messages".to_string(),
    };
    let search = search_value(query);
    let top = limit.min(100).to_string();
    Ok(clean(
        app.graph
            .get_paged(
                &account.account_id,
                &path,
                &[
                    ("$search", search.as_str()),
                    ("$select", MESSAGE_FIELDS),
                    ("$top", top.as_str()),
                ],
                limit,
            )
            .await?,
    ))
}

async fn personal_events(
    app: &App,
    account: &AccountRecord,
    query: &str,
    limit: usize,
) -> Result<Vec<Value>, ToolError> {
    let search = search_value(query);
    let top = limit.min(100).to_string();
    Ok(clean(
        app.graph
            .get_paged(
                &account.account_id,
                "/me/events",
                &[
                    ("$search", search.as_str()),
                    ("$select", EVENT_FIELDS),
                    ("$top", top.as_str()),
                ],
                limit,
            )
            .await?,
    ))
}

fn answer(items: Vec<Value>, via: &str, account: &AccountRecord) -> Value {
    json!({"value": items, "count": items.len(), "source": via, "account_id": account.account_id})
}

fn via(account: &AccountRecord) -> &'static str {
    if is_work(account) {
        "microsoft_search"
    } else {
        "collection_search"
    }
}

async fn search_files(app: Arc<App>, account: AccountRecord, p: SearchParams) -> ToolResult {
    let query = check_query(&p.query)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    let items = if is_work(&account) {
        microsoft_search(&app, &account, &query, &["driveItem"], limit)
            .await?
            .remove(0)
            .1
    } else {
        personal_files(&app, &account, &query, limit).await?
    };
    let items: Vec<Value> = items.iter().map(summary).collect();
    Ok(answer(items, via(&account), &account))
}

async fn search_emails(app: Arc<App>, account: AccountRecord, p: SearchEmailsParams) -> ToolResult {
    let query = check_query(&p.query)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    let folder = optional(p.folder.as_deref());
    if let Some(f) = folder {
        folder_segment(Some(f), None)?;
    }
    // Microsoft Search has no folder scope: a folder always uses the folder's $search.
    let (items, source) = if is_work(&account) && folder.is_none() {
        let hits = microsoft_search(&app, &account, &query, &["message"], limit)
            .await?
            .remove(0)
            .1;
        (hits, "microsoft_search")
    } else {
        (
            personal_messages(&app, &account, &query, folder, limit).await?,
            "collection_search",
        )
    };
    Ok(answer(items, source, &account))
}

fn event_start(event: &Value) -> Option<OffsetDateTime> {
    let text = event["start"]["dateTime"].as_str()?;
    let core = text.split('.').next().unwrap_or(text).trim_end_matches('Z');
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(core, &format)
        .ok()
        .map(|t| t.assume_utc())
}

async fn search_events(app: Arc<App>, account: AccountRecord, p: SearchEventsParams) -> ToolResult {
    let query = check_query(&p.query)?;
    let ahead = check_range("days_ahead", p.days_ahead, 0, 730)?;
    let back = check_range("days_back", p.days_back, 0, 730)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    // Fetch more than asked so the date window still leaves `limit` results.
    let fetch = (limit * 4).min(1000);
    let items = if is_work(&account) {
        microsoft_search(&app, &account, &query, &["event"], fetch.min(500))
            .await?
            .remove(0)
            .1
    } else {
        personal_events(&app, &account, &query, fetch).await?
    };
    let now = OffsetDateTime::now_utc();
    let (from, to) = (
        now - Duration::days(back as i64 + 1),
        now + Duration::days(ahead as i64 + 1),
    );
    let items: Vec<Value> = items
        .into_iter()
        .filter(|e| event_start(e).is_none_or(|s| s >= from && s <= to))
        .take(limit)
        .collect();
    Ok(answer(items, via(&account), &account))
}

async fn search_contacts(app: Arc<App>, account: AccountRecord, p: SearchParams) -> ToolResult {
    let query = check_query(&p.query)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    let q = odata_literal(&query);
    let filter = format!(
        "startswith(displayName,'{q}') or startswith(givenName,'{q}') or startswith(surname,'{q}')"
    );
    let top = limit.min(100).to_string();
    let items = app
        .graph
        .get_paged_with(
            &account.account_id,
            "/me/contacts",
            &[
                ("$filter", filter.as_str()),
                ("$select", CONTACT_FIELDS),
                ("$top", top.as_str()),
            ],
            limit,
            &RequestOptions::default(),
        )
        .await?;
    Ok(answer(clean(items), "filter", &account))
}

async fn search_unified(
    app: Arc<App>,
    account: AccountRecord,
    p: SearchUnifiedParams,
) -> ToolResult {
    let query = check_query(&p.query)?;
    let limit = check_range("limit", p.limit, 1, 500)?;
    let mut types: Vec<&str> = Vec::new();
    match &p.entity_types {
        None => types.extend(ENTITY_TYPES),
        Some(list) => {
            for t in list {
                let known = ENTITY_TYPES
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(t.trim()))
                    .ok_or_else(|| {
                        ToolError::invalid(
                            "entity_types",
                            t,
                            "is not a searchable kind",
                            "message, event or driveItem (contacts: search_contacts)",
                        )
                    })?;
                if !types.contains(known) {
                    types.push(known);
                }
            }
        }
    }
    if types.is_empty() {
        types.extend(ENTITY_TYPES);
    }
    let mut results = serde_json::Map::new();
    if is_work(&account) {
        for (kind, hits) in microsoft_search(&app, &account, &query, &types, limit).await? {
            let hits: Vec<Value> = if kind == "driveItem" {
                hits.iter().map(summary).collect()
            } else {
                hits
            };
            results.insert(kind, Value::Array(hits));
        }
    } else {
        for kind in &types {
            let hits = match *kind {
                "message" => personal_messages(&app, &account, &query, None, limit).await?,
                "event" => personal_events(&app, &account, &query, limit).await?,
                _ => personal_files(&app, &account, &query, limit)
                    .await?
                    .iter()
                    .map(summary)
                    .collect(),
            };
            results.insert((*kind).to_string(), Value::Array(hits));
        }
    }
    let total: usize = results
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    Ok(json!({
        "results": results,
        "count": total,
        "source": via(&account),
        "account_id": account.account_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_values_and_literals_are_escaped() {
        assert_eq!(search_value("say \"hi\" \\ x"), "\"say \\\"hi\\\" \\\\ x\"");
        assert_eq!(odata_literal("O'Neil"), "O''Neil");
        assert!(check_query("  ").is_err());
        assert!(check_query(&"x".repeat(513)).is_err());
        assert_eq!(check_query(" budget ").unwrap(), "budget");
    }
}
