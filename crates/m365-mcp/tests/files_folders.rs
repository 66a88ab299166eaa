//! OneDrive file and folder tools, through the real binary against the Graph
//! sandbox: effects, uploads below and above the upload-session threshold,
//! paths with `#`, `%` and spaces, local-path confinement, bad input refused
//! before any Graph call, and precise cache invalidation.

mod common;

use common::{World, fails, for_account, ok};
use m365_mcp::demo::sign_in_all;
use serde_json::{Value, json};

fn drive_item<'a>(state: &'a Value, name: &str) -> Option<&'a Value> {
    state["driveItems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
}

fn find_node<'a>(nodes: &'a Value, name: &str) -> Option<&'a Value> {
    for node in nodes.as_array()? {
        if node["name"] == name {
            return Some(node);
        }
        if let Some(found) = find_node(&node["children"], name) {
            return Some(found);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_folder_tools_work_end_to_end() {
    let mut world = World::manual().await;
    let local = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = local.path().to_str().unwrap().to_string();
    world.with_env(
        "MCP_FILE_ALLOWED_ROOTS",
        &format!("/nonexistent-root:{root}"),
    );
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let a = for_account(&adele);

    // The tree: every folder of the drive, nested, read level by level.
    let tree = ok(&client, "folder_get_tree", a(json!({"max_depth": 25}))).await;
    let state = world.sandbox.user_state(&adele).unwrap();
    let folders_in_state = state["driveItems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("folder").is_some() && i["name"] != "root")
        .count();
    assert_eq!(tree["folder_count"], folders_in_state, "{tree}");
    let budget = find_node(&tree["folders"], "Budget 2025 #final").expect("seeded folder");
    let budget_path = budget["path"].as_str().unwrap().to_string();
    let budget_id = budget["id"].as_str().unwrap().to_string();
    assert!(
        budget_path.ends_with("/Budget 2025 #final"),
        "{budget_path}"
    );
    let shallow = ok(&client, "folder_get_tree", a(json!({"max_depth": 1}))).await;
    assert!(
        shallow["folders"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["children"].as_array().unwrap().is_empty())
    );

    // A path with '#', '%' and spaces, by path.
    let listed = ok(&client, "file_list", a(json!({"path": budget_path}))).await;
    assert_eq!(listed["folder_id"], budget_id.as_str());
    let names: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("50% plan & notes")),
        "{names:?}"
    );
    let only_files = ok(
        &client,
        "file_list",
        a(json!({"folder_id": budget_id, "type_filter": "files"})),
    )
    .await;
    assert!(
        only_files["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] == "file")
    );
    let got = ok(&client, "folder_get", a(json!({"path": budget_path}))).await;
    assert_eq!(got["id"], budget_id.as_str());

    // Small upload to a new path with '#', '%' and spaces.
    let small = local.path().join("small.txt");
    std::fs::write(&small, b"hello, drive\n").unwrap();
    let new_path = format!("{budget_path}/notes 100% #1.txt");
    let created = ok(
        &client,
        "file_create",
        a(json!({"onedrive_path": new_path, "local_file_path": small})),
    )
    .await;
    let small_id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "notes 100% #1.txt");
    assert_eq!(created["parent_id"], budget_id.as_str());
    assert!(
        drive_item(
            &world.sandbox.user_state(&adele).unwrap(),
            "notes 100% #1.txt"
        )
        .is_some()
    );
    fails(
        &client,
        "file_create",
        a(json!({"onedrive_path": new_path, "local_file_path": small})),
        "already exists",
    )
    .await;

    // Download it back.
    let back = local.path().join("back.txt");
    let saved = ok(
        &client,
        "file_get",
        a(json!({"file_id": small_id, "download_path": back})),
    )
    .await;
    assert_eq!(saved["size"], 13);
    assert_eq!(std::fs::read(&back).unwrap(), b"hello, drive\n");

    // Large upload (above 4 MiB) through an upload session, streamed in fragments.
    let large = local.path().join("large.bin");
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 123)
        .map(|i: usize| (i * 31 % 251) as u8)
        .collect();
    std::fs::write(&large, &data).unwrap();
    world.sandbox.reset_counters();
    let big = ok(
        &client,
        "file_create",
        a(json!({"onedrive_path": format!("{budget_path}/big file.bin"), "local_file_path": large})),
    )
    .await;
    assert_eq!(big["size"], data.len());
    let log = world.sandbox.request_log();
    assert!(
        log.iter()
            .any(|e| e.method == "POST" && e.path.contains("createUploadSession"))
    );
    let fragments = log
        .iter()
        .filter(|e| e.method == "PUT" && e.path.starts_with("/_upload/"))
        .count();
    assert!(fragments >= 2, "several fragments: {fragments}");
    assert!(
        !log.iter()
            .any(|e| e.method == "PUT" && e.path.ends_with("/content")),
        "no simple PUT for a large file"
    );
    let big_back = local.path().join("big back.bin");
    ok(
        &client,
        "file_get",
        a(json!({"file_id": big["id"], "download_path": big_back})),
    )
    .await;
    assert_eq!(std::fs::read(&big_back).unwrap(), data);

    // Replace content.
    let newer = local.path().join("newer.txt");
    std::fs::write(&newer, b"second version").unwrap();
    ok(
        &client,
        "file_update",
        a(json!({"file_id": small_id, "local_file_path": newer})),
    )
    .await;
    let back2 = local.path().join("back2.txt");
    ok(
        &client,
        "file_get",
        a(json!({"file_id": small_id, "download_path": back2})),
    )
    .await;
    assert_eq!(std::fs::read(&back2).unwrap(), b"second version");

    // Folders: create (two with the same name), rename, move, delete.
    let made = ok(
        &client,
        "folder_create",
        a(json!({"name": "Projects 2030"})),
    )
    .await;
    let made_id = made["id"].as_str().unwrap().to_string();
    let again = ok(
        &client,
        "folder_create",
        a(json!({"name": "Projects 2030"})),
    )
    .await;
    assert_eq!(again["name"], "Projects 2030 1");
    let renamed = ok(
        &client,
        "folder_rename",
        a(json!({"folder_id": again["id"], "new_name": "Archive 50% #2"})),
    )
    .await;
    assert_eq!(renamed["name"], "Archive 50% #2");
    let moved = ok(
        &client,
        "folder_move",
        a(json!({"folder_id": again["id"], "destination_folder_id": made_id})),
    )
    .await;
    assert_eq!(moved["parent_id"], made_id.as_str());
    let sub = ok(&client, "folder_list", a(json!({"folder_id": made_id}))).await;
    assert_eq!(sub["value"][0]["name"], "Archive 50% #2");
    let by_path = ok(
        &client,
        "folder_get",
        a(json!({"path": "/Projects 2030/Archive 50% #2"})),
    )
    .await;
    assert_eq!(by_path["id"], again["id"]);

    // Files: rename, move, copy, share, download URL, delete.
    let renamed = ok(
        &client,
        "file_rename",
        a(json!({"file_id": small_id, "new_name": "renamed & #3.txt"})),
    )
    .await;
    assert_eq!(renamed["name"], "renamed & #3.txt");
    let moved = ok(
        &client,
        "file_move",
        a(json!({"file_id": small_id, "destination_folder_id": made_id})),
    )
    .await;
    assert_eq!(moved["parent_id"], made_id.as_str());
    assert_eq!(moved["previous_parent_id"], budget_id.as_str());
    let copied = ok(
        &client,
        "file_copy",
        a(json!({"file_id": small_id, "destination_folder_id": budget_id, "new_name": "copy of notes.txt"})),
    )
    .await;
    assert_eq!(copied["status"], "completed", "{copied}");
    assert_eq!(copied["name"], "copy of notes.txt");
    assert_eq!(copied["parent_id"], budget_id.as_str());
    let shared = ok(
        &client,
        "file_share",
        a(json!({"file_id": small_id, "scope": "organization", "permission_type": "edit"})),
    )
    .await;
    assert_eq!(shared["scope"], "organization");
    assert!(shared["link"].as_str().unwrap().starts_with("https://"));
    let before = world.sandbox.counts().graph;
    fails(
        &client,
        "file_share",
        a(json!({"file_id": small_id})),
        "Invalid confirm 'false': An anonymous link",
    )
    .await;
    assert_eq!(world.sandbox.counts().graph, before);
    let anonymous = ok(
        &client,
        "file_share",
        a(json!({"file_id": small_id, "confirm": true})),
    )
    .await;
    assert_eq!(anonymous["scope"], "anonymous");
    let url = ok(
        &client,
        "file_download_url",
        a(json!({"file_id": small_id})),
    )
    .await;
    assert!(url["download_url"].as_str().unwrap().contains("tempauth="));
    ok(
        &client,
        "file_delete",
        a(json!({"file_id": copied["id"], "confirm": true})),
    )
    .await;
    assert!(
        drive_item(
            &world.sandbox.user_state(&adele).unwrap(),
            "copy of notes.txt"
        )
        .is_none()
    );
    ok(
        &client,
        "folder_delete",
        a(json!({"folder_id": made_id, "confirm": true})),
    )
    .await;
    let state = world.sandbox.user_state(&adele).unwrap();
    assert!(drive_item(&state, "Projects 2030").is_none());
    assert!(
        drive_item(&state, "renamed & #3.txt").is_none(),
        "deleted with its folder"
    );

    // Cache: two listings; a folder created in the root shows in the root listing,
    // while the unrelated listing stays fresh with no Graph call.
    let first = ok(&client, "folder_list", a(json!({}))).await;
    let other = ok(&client, "file_list", a(json!({"folder_id": budget_id}))).await;
    assert_eq!(
        ok(&client, "folder_list", a(json!({}))).await["_cache"]["status"],
        "fresh"
    );
    let _ = (first, other);
    ok(&client, "folder_create", a(json!({"name": "Fresh Folder"}))).await;
    let after = ok(&client, "folder_list", a(json!({"limit": 50}))).await;
    assert_eq!(after["_cache"]["status"], "miss");
    assert!(
        after["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Fresh Folder")
    );
    let before = world.sandbox.counts().graph;
    let other = ok(&client, "file_list", a(json!({"folder_id": budget_id}))).await;
    assert_eq!(other["_cache"]["status"], "fresh", "unrelated listing kept");
    assert_eq!(world.sandbox.counts().graph, before);
    let tree_again = ok(&client, "folder_get_tree", a(json!({"max_depth": 25}))).await;
    assert_eq!(
        tree_again["_cache"]["status"], "miss",
        "trees are invalidated"
    );

    // Bad input: clear errors and no Graph call.
    let existing = local.path().join("exists.txt");
    std::fs::write(&existing, b"x").unwrap();
    let outside_file = outside.path().join("o.txt");
    std::fs::write(&outside_file, b"x").unwrap();
    let before = world.sandbox.counts().graph;
    let cases = [
        ("file_list", json!({"limit": 0}), "Invalid limit '0'"),
        (
            "file_list",
            json!({"type_filter": "pics"}),
            "Invalid type_filter 'pics'",
        ),
        (
            "file_list",
            json!({"path": "Documents"}),
            "is not an absolute OneDrive path",
        ),
        ("file_list", json!({"path": "/a/../b"}), "Invalid path"),
        (
            "file_list",
            json!({"folder_id": "../../x"}),
            "Invalid folder_id",
        ),
        (
            "file_get",
            json!({"file_id": small_id, "download_path": existing}),
            "already exists and is never overwritten",
        ),
        (
            "file_get",
            json!({"file_id": small_id, "download_path": outside.path().join("n.txt")}),
            "is outside the allowed directories",
        ),
        (
            "file_get",
            json!({"file_id": small_id, "download_path": "relative.txt"}),
            "is not an absolute path",
        ),
        (
            "file_get",
            json!({"file_id": small_id, "download_path": format!("{root}/../escape.txt")}),
            "Invalid download_path",
        ),
        (
            "file_create",
            json!({"onedrive_path": "/x.txt", "local_file_path": outside_file}),
            "is outside the allowed directories",
        ),
        (
            "file_create",
            json!({"onedrive_path": "/", "local_file_path": small}),
            "names no file",
        ),
        (
            "file_create",
            json!({"onedrive_path": "/a:b.txt", "local_file_path": small}),
            "Invalid onedrive_path",
        ),
        (
            "file_update",
            json!({"file_id": "x/y", "local_file_path": small}),
            "Invalid file_id",
        ),
        (
            "file_delete",
            json!({"file_id": small_id}),
            "Invalid confirm 'false'",
        ),
        (
            "file_copy",
            json!({"file_id": small_id, "destination_folder_id": budget_id, "new_name": "a/b"}),
            "Invalid new_name 'a/b'",
        ),
        (
            "file_move",
            json!({"file_id": small_id, "destination_folder_id": ".."}),
            "Invalid destination_folder_id",
        ),
        (
            "file_rename",
            json!({"file_id": small_id, "new_name": ""}),
            "Invalid new_name",
        ),
        (
            "file_share",
            json!({"file_id": small_id, "permission_type": "own"}),
            "Invalid permission_type 'own'",
        ),
        (
            "file_download_url",
            json!({"file_id": "a\u{1}b"}),
            "Invalid file_id",
        ),
        ("folder_list", json!({"limit": 501}), "Invalid limit '501'"),
        ("folder_get", json!({}), "neither folder_id nor path"),
        (
            "folder_get_tree",
            json!({"max_depth": 26}),
            "Invalid max_depth '26'",
        ),
        (
            "folder_create",
            json!({"name": "a:b"}),
            "Invalid name 'a:b'",
        ),
        (
            "folder_delete",
            json!({"folder_id": budget_id}),
            "Invalid confirm 'false'",
        ),
        (
            "folder_rename",
            json!({"folder_id": budget_id, "new_name": ".."}),
            "Invalid new_name",
        ),
        (
            "folder_move",
            json!({"folder_id": budget_id, "destination_folder_id": budget_id}),
            "is the folder itself",
        ),
    ];
    for (tool, extra, expected) in cases {
        fails(&client, tool, a(extra), expected).await;
    }
    assert_eq!(
        world.sandbox.counts().graph,
        before,
        "bad input must not reach Graph"
    );
    assert!(!local.path().join("n.txt").exists());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_files_are_refused_without_allowed_roots() {
    let mut world = World::manual().await;
    world.with_env("MCP_FILE_ALLOWED_ROOTS", "");
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    let adele = world.username(0);
    let before = world.sandbox.counts().graph;
    for (tool, args) in [
        (
            "file_get",
            json!({"account_id": adele, "file_id": "ABC", "download_path": "/tmp/x.bin"}),
        ),
        (
            "file_create",
            json!({"account_id": adele, "onedrive_path": "/x.bin", "local_file_path": "/etc/hostname"}),
        ),
    ] {
        fails(&client, tool, args, "set MCP_FILE_ALLOWED_ROOTS").await;
    }
    assert_eq!(world.sandbox.counts().graph, before);
    client.cancel().await.unwrap();
}
