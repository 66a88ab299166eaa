//! Microsoft Search (`POST /search/query`) over messages, events and drive items. Work and
//! school accounts only: personal accounts get the 400 Graph answers.

use serde_json::{Value, json};

use crate::app::{Caller, Request};
use crate::odata;
use crate::reply::{GraphError, GraphResult, Reply};
use crate::state::{World, public, str_of};

/// `/search/query`.
pub(crate) fn handle(world: &mut World, caller: &Caller, request: &Request) -> GraphResult {
    if request.segment(2).as_deref() != Some("query") || request.method != "POST" {
        return Err(GraphError::unknown_segment(
            &request.segment(2).unwrap_or_default(),
        ));
    }
    if world.users[caller.user].user.personal {
        return Err(GraphError::new(
            400,
            "BadRequest",
            "This API is not supported for MSA accounts.",
        ));
    }
    let body = request.json()?;
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| GraphError::bad_request("The 'requests' parameter is required."))?;
    let mut value = Vec::new();
    for r in requests {
        let query = r
            .get("query")
            .and_then(|q| q.get("queryString"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let from = r.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
        let size = r.get("size").and_then(Value::as_u64).unwrap_or(25).min(500) as usize;
        let types: Vec<String> = r
            .get("entityTypes")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if types.is_empty() {
            return Err(GraphError::bad_request("entityTypes is required."));
        }
        let terms = odata::search_terms(&query);
        let data = &world.users[caller.user];
        let mut hits: Vec<(String, Value)> = Vec::new();
        for t in &types {
            match t.as_str() {
                "message" => hits.extend(
                    data.messages
                        .iter()
                        .filter(|m| {
                            odata::search_matches(
                                m,
                                &terms,
                                &[
                                    "subject",
                                    "bodyPreview",
                                    "from/emailAddress/name",
                                    "from/emailAddress/address",
                                ],
                            )
                        })
                        .map(|m| ("#microsoft.graph.message".to_string(), public(m))),
                ),
                "event" => hits.extend(
                    data.events
                        .iter()
                        .filter(|e| {
                            odata::search_matches(
                                e,
                                &terms,
                                &["subject", "bodyPreview", "location/displayName"],
                            )
                        })
                        .map(|e| ("#microsoft.graph.event".to_string(), public(e))),
                ),
                "driveItem" => hits.extend(
                    crate::graph::drive::search_items(world, caller, &terms)
                        .into_iter()
                        .map(|d| ("#microsoft.graph.driveItem".to_string(), d)),
                ),
                other => {
                    return Err(GraphError::bad_request(format!(
                        "The entity type '{other}' is not supported."
                    )));
                }
            }
        }
        let total = hits.len();
        let page: Vec<Value> = hits.into_iter().skip(from).take(size).enumerate().map(|(i, (kind, mut resource))| {
            if let Some(map) = resource.as_object_mut() {
                map.insert("@odata.type".into(), json!(kind));
            }
            json!({"hitId": str_of(&resource, "id"), "rank": from + i + 1, "summary": str_of(&resource, "bodyPreview").chars().take(120).collect::<String>(), "resource": resource})
        }).collect();
        value.push(json!({
            "searchTerms": terms.split_whitespace().collect::<Vec<_>>(),
            "hitsContainers": [{"hits": page, "total": total, "moreResultsAvailable": from + size < total}],
        }));
    }
    Ok(Reply::json(
        json!({"@odata.context": format!("{}/$metadata#Collection(microsoft.graph.searchResponse)", caller.base), "value": value}),
    ))
}
