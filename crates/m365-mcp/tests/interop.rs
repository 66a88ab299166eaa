//! Interoperability with an MCP client nobody here wrote: the official
//! Python SDK starts the binary over stdio, initializes, lists tools and
//! calls tools.

mod common;

use std::path::{Path, PathBuf};

use common::{World, exe};
use m365_mcp::demo::sign_in_all;

/// The Python with the `mcp` SDK: `M365_MCP_TEST_PYTHON`, else the
/// project's `.venv`. CI provides it (scripts/test.sh).
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("M365_MCP_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_initializes_lists_tools_and_calls_them() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide a Python with the mcp SDK"
        );
        eprintln!("skipping: run scripts/test.sh (it creates .venv with the mcp SDK)");
        return;
    };
    let world = World::manual().await;
    // Two accounts signed in through our own client first.
    let client = world.client().await;
    sign_in_all(&client, &world.sandbox).await.unwrap();
    client.cancel().await.unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_stdio_client.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(exe())
        .arg(world.username(0))
        .envs(world.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run python");
    assert!(
        output.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["server"], "m365-mcp");
    assert!(
        report["protocol_version"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{report}"
    );
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    for name in [
        "account_list",
        "account_authenticate",
        "email_list",
        "cache_get_stats",
    ] {
        assert!(tools.contains(&name), "{name} missing: {tools:?}");
    }
    assert_eq!(
        report["annotations"]["account_list"]["readOnlyHint"], true,
        "{report}"
    );
    assert_eq!(report["account_list"]["is_error"], false);
    assert_eq!(
        report["account_list"]["structured"]["count"]
            .as_u64()
            .unwrap() as usize,
        world.sandbox.users().len()
    );
    assert_eq!(report["bad_call"]["is_error"], true);
    assert!(
        report["bad_call"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Invalid limit '0'"),
        "{report}"
    );
}
