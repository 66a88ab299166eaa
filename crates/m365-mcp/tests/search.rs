//! Search tools through the real binary against the Graph sandbox: work
//! accounts through Microsoft Search, personal accounts through each
//! collection's own search (never `/search/query`), escaping, bad input, and
//! invalidation by writes.

mod common;

use common::{World, fails, ok};
use m365_mcp::demo::sign_in_all;
use serde_json::{Value, json};

fn names(result: &Value) -> Vec<String> {
    result["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["name"]
                .as_str()
                .or(i["subject"].as_str())
                .or(i["displayName"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_routed_by_account_type_and_cached() {
    let world = World::manual().await;
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let megan = world.username(1);
    assert!(megan.ends_with("@outlook.com"));

    for user in [&adele, &megan] {
        let files = ok(
            &client,
            "search_files",
            json!({"account_id": user, "query": "budget"}),
        )
        .await;
        assert!(
            names(&files).iter().any(|n| n.starts_with("Budget")),
            "{user}: {files}"
        );
        let events = ok(
            &client,
            "search_events",
            json!({"account_id": user, "query": "stand-up", "days_back": 30, "days_ahead": 30}),
        )
        .await;
        assert!(
            names(&events).iter().any(|n| n == "Daily stand-up"),
            "{user}: {events}"
        );
        let inbox = ok(
            &client,
            "email_list",
            json!({"account_id": user, "limit": 1}),
        )
        .await;
        let subject = inbox["value"][0]["subject"].as_str().unwrap().to_string();
        let word = subject
            .split_whitespace()
            .max_by_key(|w| w.len())
            .unwrap()
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_string();
        let mail = ok(
            &client,
            "search_emails",
            json!({"account_id": user, "query": word}),
        )
        .await;
        assert!(
            names(&mail).iter().any(|s| s == &subject),
            "{user} '{word}': {mail}"
        );
        let in_folder = ok(
            &client,
            "search_emails",
            json!({"account_id": user, "query": word, "folder": "inbox"}),
        )
        .await;
        assert_eq!(in_folder["source"], "collection_search");
        assert!(names(&in_folder).iter().any(|s| s == &subject));
        let contacts = ok(
            &client,
            "contact_list",
            json!({"account_id": user, "limit": 1}),
        )
        .await;
        let given = contacts["value"][0]["givenName"]
            .as_str()
            .unwrap()
            .to_string();
        let found = ok(
            &client,
            "search_contacts",
            json!({"account_id": user, "query": &given[..3]}),
        )
        .await;
        assert!(found["count"].as_u64().unwrap() >= 1, "{found}");
        let unified = ok(
            &client,
            "search_unified",
            json!({"account_id": user, "query": "budget", "entity_types": ["driveItem", "message"]}),
        )
        .await;
        assert!(
            !unified["results"]["driveItem"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(unified["results"].get("event").is_none());
        // Quotes are escaped, not an error.
        ok(
            &client,
            "search_contacts",
            json!({"account_id": user, "query": "O'Neil \"x\""}),
        )
        .await;
        ok(
            &client,
            "search_files",
            json!({"account_id": user, "query": "it's 50% #1"}),
        )
        .await;
    }

    let log = world.sandbox.request_log();
    let megan_calls: Vec<_> = log
        .iter()
        .filter(|e| e.user.as_deref() == Some(megan.as_str()))
        .collect();
    assert!(
        megan_calls
            .iter()
            .all(|e| !e.path.starts_with("/v1.0/search/query")),
        "a personal account never uses /search/query"
    );
    assert!(megan_calls.iter().any(|e| e.path.contains("$search=")));
    assert!(megan_calls.iter().any(|e| e.path.contains("/search(q=")));
    assert!(
        megan_calls.iter().all(|e| e.status < 400),
        "{:?}",
        megan_calls
            .iter()
            .filter(|e| e.status >= 400)
            .collect::<Vec<_>>()
    );
    assert!(
        log.iter().any(|e| e.user.as_deref() == Some(adele.as_str())
            && e.path == "/v1.0/search/query"
            && e.status == 200),
        "a work account uses Microsoft Search"
    );

    // Cache: a search read twice is a hit; a drive write invalidates file searches
    // but not contact searches.
    let args = json!({"account_id": adele, "query": "budget"});
    let again = ok(&client, "search_files", args.clone()).await;
    assert_eq!(again["_cache"]["status"], "fresh");
    let people = json!({"account_id": adele, "query": "A"});
    ok(&client, "search_contacts", people.clone()).await;
    ok(
        &client,
        "folder_create",
        json!({"account_id": adele, "name": "Budget extra"}),
    )
    .await;
    let after = ok(&client, "search_files", args).await;
    assert_eq!(after["_cache"]["status"], "miss");
    assert!(names(&after).iter().any(|n| n == "Budget extra"));
    let before = world.sandbox.counts().graph;
    let kept = ok(&client, "search_contacts", people).await;
    assert_eq!(kept["_cache"]["status"], "fresh");
    assert_eq!(world.sandbox.counts().graph, before);

    // Bad input.
    let before = world.sandbox.counts().graph;
    let cases = [
        ("search_files", json!({"query": "  "}), "Invalid query"),
        (
            "search_files",
            json!({"query": "x", "limit": 0}),
            "Invalid limit '0'",
        ),
        (
            "search_emails",
            json!({"query": "x", "folder": "../x"}),
            "Invalid folder",
        ),
        (
            "search_events",
            json!({"query": "x", "days_ahead": 731}),
            "Invalid days_ahead '731'",
        ),
        (
            "search_contacts",
            json!({"query": "a\u{7}b"}),
            "Invalid query",
        ),
        (
            "search_unified",
            json!({"query": "x", "entity_types": ["contact"]}),
            "Invalid entity_types 'contact'",
        ),
    ];
    for (tool, mut args, expected) in cases {
        args["account_id"] = json!(megan);
        fails(&client, tool, args, expected).await;
    }
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "bad input must not reach Graph"
    );
    client.cancel().await.unwrap();
}
