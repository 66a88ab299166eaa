//! Many listings at once through `$batch`: twenty listings per Graph call,
//! a few batches in flight per account. Folder trees use it level by level,
//! so a tree of hundreds of folders costs tens of Graph calls, not hundreds.

use std::sync::Arc;

use m365_graph::{BatchRequest, encode_query};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::app::App;
use crate::error::ToolError;

/// Batches in flight at once for one account (each carries 20 listings;
/// Outlook and OneDrive allow four concurrent requests per user).
const BATCHES_IN_FLIGHT: usize = 4;

/// Lists every `(key, path)` — `path` relative to the Graph root, already
/// encoded — with `query`, returning `(key, items)` for all of them. Any
/// listing that fails fails the whole call: callers never see a partial
/// answer as complete. A listing longer than one page is read to its end.
pub async fn list_many(
    app: &Arc<App>,
    account: &str,
    listings: Vec<(String, String)>,
    query: &[(&str, &str)],
) -> Result<Vec<(String, Vec<Value>)>, ToolError> {
    let query_string = encode_query(query);
    let owned_query: Arc<Vec<(String, String)>> = Arc::new(
        query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let limit = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    let mut chunks = listings.into_iter().peekable();
    while chunks.peek().is_some() {
        let chunk: Vec<(String, String)> =
            chunks.by_ref().take(m365_graph::MAX_BATCH_SIZE).collect();
        let app = app.clone();
        let account = account.to_string();
        let limit = limit.clone();
        let query_string = query_string.clone();
        let owned_query = owned_query.clone();
        tasks.spawn(async move {
            let _turn = limit
                .acquire_owned()
                .await
                .map_err(|_| ToolError::Unavailable("the listing was cancelled".into()))?;
            let requests = chunk
                .iter()
                .map(|(_, path)| BatchRequest::get(format!("{path}?{query_string}")))
                .collect();
            let answers = app.graph.batch(&account, requests).await?;
            let mut out = Vec::with_capacity(chunk.len());
            for ((key, path), answer) in chunk.into_iter().zip(answers) {
                if let Some(error) = answer.error() {
                    return Err(ToolError::Graph(error));
                }
                let items = if answer.body.get("@odata.nextLink").is_some() {
                    // Rare for folders: read the whole listing by paging.
                    let pairs: Vec<(&str, &str)> = owned_query
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    app.graph
                        .get_paged(&account, &path, &pairs, usize::MAX)
                        .await?
                } else {
                    answer.body["value"].as_array().cloned().unwrap_or_default()
                };
                out.push((key, items));
            }
            Ok::<_, ToolError>(out)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(part)) => results.extend(part),
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => {
                tasks.abort_all();
                return Err(ToolError::Unavailable(format!(
                    "a listing did not complete: {e}"
                )));
            }
        }
    }
    Ok(results)
}
