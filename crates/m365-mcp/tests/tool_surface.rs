//! Drop-in compatibility: the reference server's tool names and parameter
//! names (tests/fixtures/reference_tools.json, taken from its tools/list)
//! are all served, with the annotations the contract asks for.

mod common;

use std::collections::BTreeMap;

use common::World;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reference_tool_and_parameter_is_served() {
    let reference: BTreeMap<String, Value> =
        serde_json::from_str(include_str!("fixtures/reference_tools.json")).expect("fixture");
    let world = World::manual().await;
    let client = world.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let ours: BTreeMap<String, &rmcp::model::Tool> =
        tools.iter().map(|t| (t.name.to_string(), t)).collect();

    let missing: Vec<&String> = reference
        .keys()
        .filter(|name| !ours.contains_key(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "reference tools not served: {missing:?}"
    );
    let extra: Vec<&String> = ours
        .keys()
        .filter(|name| !reference.contains_key(*name))
        .collect();
    assert_eq!(
        extra,
        vec!["cache_task_enqueue"],
        "only the documented addition"
    );
    assert_eq!(reference.len(), 85);

    let mut problems = Vec::new();
    for (name, spec) in &reference {
        let tool = ours[name];
        let props = tool
            .input_schema
            .get("properties")
            .and_then(Value::as_object);
        for param in spec["params"].as_array().unwrap() {
            let param = param.as_str().unwrap();
            if !props.is_some_and(|p| p.contains_key(param)) {
                problems.push(format!("{name}.{param}"));
            }
        }
        let a = tool.annotations.as_ref().expect("annotations");
        let local =
            name.starts_with("cache_") || name == "account_list" || name == "server_get_version";
        if local && a.open_world_hint != Some(false) {
            problems.push(format!("{name}: local tools are openWorldHint false"));
        }
        let destructive = ["delete", "empty"].iter().any(|w| name.contains(w));
        if destructive && a.destructive_hint != Some(true) {
            problems.push(format!("{name}: destructiveHint"));
        }
        let reference_read_only = spec["annotations"]["readOnlyHint"] == true;
        if reference_read_only && a.read_only_hint != Some(true) {
            problems.push(format!("{name}: readOnlyHint"));
        }
        if a.title.as_deref().is_none_or(str::is_empty) {
            problems.push(format!("{name}: title"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Cached reads take use_cache and force_refresh.
    for name in [
        "email_list",
        "email_get",
        "emailfolders_list",
        "emailfolders_get",
        "emailfolders_get_tree",
        "emailrules_list",
        "calendar_list_events",
        "calendar_get_event",
        "calendar_list_calendars",
        "contact_list",
        "contact_get",
        "file_list",
        "folder_list",
        "folder_get",
        "folder_get_tree",
        "search_files",
        "search_emails",
        "search_events",
        "search_contacts",
        "search_unified",
    ] {
        let props = ours[name]
            .input_schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap();
        assert!(
            props.contains_key("use_cache") && props.contains_key("force_refresh"),
            "{name}"
        );
    }
}
