//! The sandbox answers documented requests with the field names and JSON types of Microsoft's
//! documented response examples (recursively, for the fields each example has).

mod common;

use serde_json::Value;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks that `actual` has every field of `expected` with the same JSON type. An array in the
/// example must be matched element by element by some element of the actual array.
fn conforms(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                let av = a.get(key).ok_or_else(|| format!("{path}/{key}: missing"))?;
                conforms(ev, av, &format!("{path}/{key}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, ev) in e.iter().enumerate() {
                if !a.iter().any(|av| conforms(ev, av, path).is_ok()) {
                    let why = a
                        .first()
                        .map(|av| conforms(ev, av, &format!("{path}[{i}]")))
                        .and_then(Result::err)
                        .unwrap_or_else(|| "empty".into());
                    return Err(format!("{path}[{i}]: no element matches ({why})"));
                }
            }
            Ok(())
        }
        // An empty facet object in the example (`"file": {}`) matches any object.
        (e, a) if kind(e) == kind(a) => Ok(()),
        (e, a) => Err(format!("{path}: expected {}, got {}", kind(e), kind(a))),
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

#[tokio::test]
async fn documented_examples_match_the_sandbox() {
    let env = common::start().await;
    let cases = [
        (
            "list-messages.json",
            "/me/messages?$select=sender,subject".to_string(),
        ),
        (
            "list-childfolders.json",
            "/me/mailFolders/inbox/childFolders".to_string(),
        ),
        (
            "list-children.json",
            "/me/drive/root/children?$top=3".to_string(),
        ),
        (
            "error-not-found.json",
            "/me/messages/AAMkAGUAAAwTW09AAA=".to_string(),
        ),
    ];
    for (name, path) in cases {
        let (_, body) = env.get(&path).await;
        if let Err(why) = conforms(&fixture(name), &body, "") {
            panic!("{name} vs GET {path}: {why}\n{body:#}");
        }
    }
    // The calendar view example has an accepted response status; accept an invitation first.
    let (_, listing) = env
        .get("/me/events?$top=100&$filter=isOrganizer eq false")
        .await;
    let invite = &listing["value"][0];
    let id = common::seg(invite["id"].as_str().unwrap());
    env.post(&format!("/me/events/{id}/accept"), serde_json::json!({}))
        .await;
    let (_, body) = env.get("/me/calendarView?startDateTime=2000-01-01T00:00:00Z&endDateTime=2100-01-01T00:00:00Z&$top=100").await;
    if let Err(why) = conforms(&fixture("calendarview.json"), &body, "") {
        panic!("calendarview.json: {why}");
    }
}

#[test]
fn the_shape_check_can_fail() {
    let expected: Value = serde_json::json!({"value": [{"id": "x", "folder": {"childCount": 1}}]});
    let wrong: Value = serde_json::json!({"value": [{"id": 1, "folder": {"childCount": 1}}]});
    let missing: Value = serde_json::json!({"value": [{"id": "x"}]});
    assert!(conforms(&expected, &wrong, "").is_err());
    assert!(conforms(&expected, &missing, "").is_err());
    assert!(conforms(&expected, &expected, "").is_ok());
}
