//! The real binary, driven through rmcp's MCP client over stdio, against the
//! Graph sandbox: sign-in, accounts, tools, errors, faults.

mod common;

use std::time::Duration;

use common::World;
use m365_mcp::demo::{call, sign_in_all};
use m365_sandbox::{FaultConfig, SandboxConfig};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_accounts_list_them_call_tools_and_get_clear_errors() {
    let world = World::manual().await;
    let client = world.client().await;

    // Before sign-in: a clear instruction.
    let (none, err, _) = call(&client, "email_list", json!({})).await.unwrap();
    assert!(err);
    assert!(
        none["error"]["text"]
            .as_str()
            .unwrap()
            .contains("No account is signed in"),
        "{none}"
    );

    let signed_in = sign_in_all(&client, &world.sandbox).await.unwrap();
    assert_eq!(signed_in.len(), world.sandbox.users().len());
    assert!(signed_in.len() >= 2);

    let (list, err, _) = call(&client, "account_list", json!({})).await.unwrap();
    assert!(!err);
    let accounts = list["value"].as_array().unwrap();
    assert_eq!(accounts.len(), signed_in.len());
    for user in world.sandbox.users() {
        let account = accounts
            .iter()
            .find(|a| a["username"] == user.username.as_str())
            .unwrap_or_else(|| panic!("{} missing from {list}", user.username));
        assert_eq!(account["account_id"], user.account_id().as_str());
        let expected = if user.personal {
            "personal"
        } else {
            "work_school"
        };
        assert_eq!(
            account["account_type"], expected,
            "type comes from the tenant id"
        );
    }

    // A Graph-backed tool, by username in another case.
    let adele = world.username(0);
    let before = world.sandbox.counts().graph;
    let (inbox, err, _) = call(
        &client,
        "email_list",
        json!({"account_id": adele.to_uppercase(), "limit": 15}),
    )
    .await
    .unwrap();
    assert!(!err, "{inbox}");
    let messages = inbox["value"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        15,
        "paging collects 15 across Graph's default pages"
    );
    assert!(world.sandbox.counts().graph > before);
    let dates: Vec<&str> = messages
        .iter()
        .map(|m| m["receivedDateTime"].as_str().unwrap())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert!(messages[0].get("body").is_none(), "no bodies unless asked");
    assert!(messages[0]["bodyPreview"].is_string());

    // The same message through email_get, with a plain-text body.
    let id = messages[0]["id"].as_str().unwrap();
    let (message, err, _) = call(
        &client,
        "email_get",
        json!({"account_id": adele, "email_id": id}),
    )
    .await
    .unwrap();
    assert!(!err, "{message}");
    assert_eq!(message["id"], id);
    assert_eq!(message["body"]["contentType"], "text");

    // Bad input: clear errors, and no Graph call for any of them.
    let before = world.sandbox.counts().graph;
    let cases = [
        (
            "email_list",
            json!({"account_id": adele, "limit": 0}),
            "Invalid limit '0': out of range. Expected: an integer from 1 to 200",
        ),
        (
            "email_list",
            json!({"account_id": adele, "limit": "ten"}),
            "Invalid arguments for email_list",
        ),
        (
            "email_list",
            json!({"account_id": adele, "colour": "red"}),
            "unknown field `colour`",
        ),
        ("email_list", json!({}), "Several accounts are signed in"),
        (
            "email_list",
            json!({"account_id": "nobody@example.com"}),
            "Invalid account_id 'nobody@example.com'",
        ),
        (
            "email_get",
            json!({"account_id": adele, "email_id": "../../users/x"}),
            "Invalid email_id",
        ),
        (
            "email_get",
            json!({"account_id": adele}),
            "missing field `email_id`",
        ),
        (
            "account_complete_auth",
            json!({"flow_cache": "no-such-flow"}),
            "Invalid flow_cache",
        ),
    ];
    for (tool, args, expected) in cases {
        let (value, err, _) = call(&client, tool, args.clone()).await.unwrap();
        assert!(err, "{tool} {args} should fail");
        let text = value["error"]["text"].as_str().unwrap_or_default();
        assert!(text.contains(expected), "{tool} {args}: {text}");
    }
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "bad input must not reach Graph"
    );

    // A Graph error carries code, message and request-id.
    let (missing, err, _) = call(
        &client,
        "email_get",
        json!({"account_id": adele, "email_id": "AAMkAGDoesNotExist="}),
    )
    .await
    .unwrap();
    assert!(err);
    assert_eq!(missing["error"]["status"], 404, "{missing}");
    assert!(
        missing["error"]["code"]
            .as_str()
            .unwrap()
            .contains("NotFound"),
        "{missing}"
    );
    assert!(
        missing["error"]["request_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{missing}"
    );

    // An unknown tool is a protocol error, and the server keeps serving.
    let unknown = client
        .call_tool(rmcp::model::CallToolRequestParams::new("no_such_tool"))
        .await;
    assert!(unknown.is_err());
    let (_, err, _) = call(&client, "server_get_version", json!({}))
        .await
        .unwrap();
    assert!(!err);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_are_declared_for_every_tool() {
    let world = World::manual().await;
    let client = world.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let expect_local = ["account_list", "server_get_version"];
    for tool in &tools {
        let a = tool.annotations.as_ref().expect("annotations");
        assert!(
            a.title.as_deref().is_some_and(|t| !t.is_empty()),
            "{}",
            tool.name
        );
        assert!(
            a.read_only_hint.is_some()
                && a.destructive_hint.is_some()
                && a.idempotent_hint.is_some()
        );
        if expect_local.contains(&tool.name.as_ref()) {
            assert_eq!(a.open_world_hint, Some(false), "{} is local", tool.name);
        }
        if tool.name.starts_with("email_list") || tool.name == "email_get" {
            assert_eq!(a.read_only_hint, Some(true));
        }
        assert_eq!(
            tool.input_schema.get("type").and_then(|t| t.as_str()),
            Some("object")
        );
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for name in [
        "account_list",
        "account_authenticate",
        "account_complete_auth",
        "server_get_version",
        "email_list",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throttling_and_outages_are_absorbed_and_a_dead_graph_is_a_clear_error() {
    let world = World::start(SandboxConfig {
        auto_approve_device_code: false,
        seed: 7,
        ..SandboxConfig::default()
    })
    .await;
    let client = std::sync::Arc::new(world.client().await);
    sign_in_all(&client, &world.sandbox).await.unwrap();
    world.sandbox.set_faults(FaultConfig {
        throttle_ratio: 0.2,
        throttle_retry_after: Duration::from_secs(1),
        unavailable_ratio: 0.1,
    });
    world.sandbox.reset_counters();
    let users: Vec<String> = world
        .sandbox
        .users()
        .iter()
        .map(|u| u.username.clone())
        .collect();
    let mut tasks = Vec::new();
    for worker in 0..8usize {
        let client = client.clone();
        let user = users[worker % users.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..25 {
                // use_cache=false: every call must get through the faults to Graph.
                let (tool, args) = if i % 2 == 0 {
                    (
                        "emailfolders_get",
                        json!({"account_id": user, "folder_id": "inbox", "use_cache": false}),
                    )
                } else {
                    (
                        "email_list",
                        json!({"account_id": user, "limit": 3, "use_cache": false}),
                    )
                };
                let (value, err, _) = call(&client, tool, args).await.unwrap();
                if err {
                    failures.push(value.to_string());
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        failures.extend(t.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of 200 calls failed: {:?}",
        failures.len(),
        failures.first()
    );
    let log = world.sandbox.request_log();
    let throttled = log.iter().filter(|e| e.status == 429).count();
    let unavailable = log.iter().filter(|e| e.status == 503).count();
    assert!(
        throttled >= 10 && unavailable >= 5,
        "faults were injected: {throttled} × 429, {unavailable} × 503"
    );

    world.sandbox.set_faults(FaultConfig::none());
    world.sandbox.set_down(true);
    let (down, err, _) = call(
        &client,
        "emailfolders_get",
        json!({"account_id": users[0], "folder_id": "inbox"}),
    )
    .await
    .unwrap();
    assert!(err);
    let text = down["error"]["text"].as_str().unwrap();
    assert!(text.contains("503"), "{text}");
}
