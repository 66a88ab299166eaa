//! OneDrive, calendar and contacts through HTTP.

mod common;

use common::{seg, start};
use serde_json::{Value, json};

#[tokio::test]
async fn drive_paths_with_hash_percent_and_spaces() {
    let env = start().await;
    let (status, root) = env.get("/me/drive/root/children").await;
    assert_eq!(status, 200);
    assert!(
        root["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["folder"].is_object())
    );
    let folder = "Q1 #1 100% done";
    let (status, created) = env
        .post(
            "/me/drive/root/children",
            json!({"name": folder, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    assert_eq!(status, 201);
    let folder_id = created["id"].as_str().unwrap().to_string();
    let (status, _) = env
        .post(
            "/me/drive/root/children",
            json!({"name": folder, "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await;
    assert_eq!(status, 409);
    let file = "plan #2 50% final.txt";
    let path = format!("/me/drive/root:/{}/{}:/content", seg(folder), seg(file));
    let r = env
        .http
        .put(env.url(&path))
        .bearer_auth(&env.token)
        .body("hello sandbox")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let item: Value = r.json().await.unwrap();
    assert_eq!(item["name"], file);
    assert_eq!(item["size"], 13);
    assert_eq!(item["parentReference"]["id"], folder_id.as_str());
    assert_eq!(
        item["parentReference"]["path"],
        format!("/drive/root:/{folder}")
    );
    let (status, by_path) = env
        .get(&format!("/me/drive/root:/{}/{}:", seg(folder), seg(file)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(by_path["id"], item["id"]);
    let (_, children) = env
        .get(&format!("/me/drive/root:/{}:/children", seg(folder)))
        .await;
    assert_eq!(children["value"].as_array().unwrap().len(), 1);
    // Content: a redirect to a pre-authenticated URL that needs no token.
    let r = env
        .http
        .get(env.url(&format!(
            "/me/drive/items/{}/content",
            item["id"].as_str().unwrap()
        )))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location.split('?').next(),
        by_path["@microsoft.graph.downloadUrl"]
            .as_str()
            .unwrap()
            .split('?')
            .next()
    );
    let body = env
        .http
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hello sandbox");
    let (status, _) = env
        .get(&format!("/me/drive/root:/{}/missing.txt:", seg(folder)))
        .await;
    assert_eq!(status, 404);
    let (_, found) = env.get("/me/drive/root/search(q='50%25 final')").await;
    assert!(
        found["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == file)
    );
}

#[tokio::test]
async fn drive_upload_session_without_auth_and_moves() {
    let env = start().await;
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let (status, session) = env
        .post(
            "/me/drive/root:/Uploads%20%23big.bin:/createUploadSession",
            json!({"item": {"@microsoft.graph.conflictBehavior": "rename"}}),
        )
        .await;
    assert_eq!(status, 200);
    let url = session["uploadUrl"].as_str().unwrap().to_string();
    let r = env
        .http
        .put(&url)
        .header("Content-Range", "bytes 0-3999/10000")
        .body(data[..4000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let progress: Value = r.json().await.unwrap();
    assert_eq!(progress["nextExpectedRanges"][0], "4000-");
    // A fragment that does not start at the next expected byte is refused.
    let r = env
        .http
        .put(&url)
        .header("Content-Range", "bytes 5000-9999/10000")
        .body(data[5000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 416);
    let status: Value = env
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["nextExpectedRanges"][0], "4000-");
    let r = env
        .http
        .put(&url)
        .header("Content-Range", "bytes 4000-9999/10000")
        .body(data[4000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let item: Value = r.json().await.unwrap();
    assert_eq!(item["name"], "Uploads #big.bin");
    assert_eq!(item["size"], 10_000);

    let (_, docs) = env
        .post(
            "/me/drive/root/children",
            json!({"name": "Moved here", "folder": {}}),
        )
        .await;
    let id = item["id"].as_str().unwrap();
    let (status, moved) = env
        .patch(
            &format!("/me/drive/items/{id}"),
            json!({"parentReference": {"id": docs["id"]}, "name": "renamed.bin"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(moved["name"], "renamed.bin");
    assert_eq!(moved["parentReference"]["id"], docs["id"]);
    let r = env
        .http
        .post(env.url(&format!("/me/drive/items/{id}/copy")))
        .bearer_auth(&env.token)
        .json(&json!({"name": "copy.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let monitor = r
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let done: Value = env
        .http
        .get(&monitor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    let (_, copy) = env
        .get(&format!(
            "/me/drive/items/{}",
            done["resourceId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(copy["size"], 10_000);
    let (status, link) = env
        .post(
            &format!("/me/drive/items/{id}/createLink"),
            json!({"type": "view", "scope": "organization"}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(link["link"]["webUrl"].is_string());
    assert_eq!(env.delete(&format!("/me/drive/items/{id}")).await, 204);
    let (status, gone) = env.get(&format!("/me/drive/items/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["code"], "itemNotFound");
}

#[tokio::test]
async fn calendar_view_expands_the_weekly_series() {
    let env = start().await;
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year]-[month]-[day]T00:00:00Z");
    let from = (now - time::Duration::days(1)).format(&fmt).unwrap();
    let to = (now + time::Duration::days(27)).format(&fmt).unwrap();
    let (status, view) = env
        .get(&format!(
            "/me/calendarView?startDateTime={from}&endDateTime={to}&$top=100"
        ))
        .await;
    assert_eq!(status, 200, "{view}");
    let weekly: Vec<&Value> = view["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == "Weekly team sync")
        .collect();
    assert_eq!(weekly.len(), 4, "four weekly occurrences in 28 days");
    assert!(
        weekly
            .iter()
            .all(|e| e["type"] == "occurrence" && e["seriesMasterId"].is_string())
    );
    let ids: std::collections::HashSet<&str> =
        weekly.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    let (status, occ) = env
        .get(&format!(
            "/me/events/{}",
            seg(weekly[0]["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(occ["start"], weekly[0]["start"]);
    let (status, err) = env.get("/me/calendarView").await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "ErrorInvalidParameter");
    // The series master alone is what /me/events lists.
    let (_, events) = env
        .get("/me/events?$top=100&$filter=subject eq 'Weekly team sync'")
        .await;
    assert_eq!(events["value"].as_array().unwrap().len(), 1);
    assert_eq!(events["value"][0]["type"], "seriesMaster");
}

#[tokio::test]
async fn events_crud_time_zones_and_responses() {
    let env = start().await;
    let (status, created) = env.post("/me/events", json!({
        "subject": "Sandbox review",
        "start": {"dateTime": "2030-01-10T09:00:00", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2030-01-10T10:00:00", "timeZone": "Pacific Standard Time"},
        "location": {"displayName": "Room 1"},
        "attendees": [{"emailAddress": {"address": "x@example.com", "name": "X"}, "type": "required"}]
    })).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["start"]["dateTime"], "2030-01-10T17:00:00.0000000");
    assert_eq!(created["start"]["timeZone"], "UTC");
    let id = created["id"].as_str().unwrap();
    let r = env
        .http
        .get(env.url(&format!("/me/events/{}", seg(id))))
        .bearer_auth(&env.token)
        .header("Prefer", "outlook.timezone=\"Pacific Standard Time\"")
        .send()
        .await
        .unwrap();
    let local: Value = r.json().await.unwrap();
    assert_eq!(local["start"]["dateTime"], "2030-01-10T09:00:00.0000000");
    let (status, patched) = env
        .patch(
            &format!("/me/events/{}", seg(id)),
            json!({"subject": "Renamed review"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["subject"], "Renamed review");
    let (status, _) = env
        .post(
            &format!("/me/events/{}/accept", seg(id)),
            json!({"sendResponse": true}),
        )
        .await;
    assert_eq!(status, 400, "organizers cannot accept their own meeting");
    let (_, listing) = env
        .get("/me/events?$top=100&$filter=isOrganizer eq false")
        .await;
    let other = listing["value"][0]["id"].as_str().unwrap();
    let (status, _) = env
        .post(
            &format!("/me/events/{}/tentativelyAccept", seg(other)),
            json!({"comment": "maybe"}),
        )
        .await;
    assert_eq!(status, 202);
    let (_, after) = env.get(&format!("/me/events/{}", seg(other))).await;
    assert_eq!(after["responseStatus"]["response"], "tentativelyAccepted");
    let (status, schedule) = env.post("/me/calendar/getSchedule", json!({"schedules": [env.username], "startTime": {"dateTime": "2030-01-10T16:00:00", "timeZone": "UTC"}, "endTime": {"dateTime": "2030-01-10T19:00:00", "timeZone": "UTC"}, "availabilityViewInterval": 60})).await;
    assert_eq!(status, 200);
    assert_eq!(schedule["value"][0]["availabilityView"], "020");
    assert_eq!(env.delete(&format!("/me/events/{}", seg(id))).await, 204);
    let (status, cals) = env.get("/me/calendars").await;
    assert_eq!(status, 200);
    assert!(
        cals["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["isDefaultCalendar"] == true)
    );
    let (status, _) = env
        .post("/me/calendars", json!({"name": "Sandbox cal"}))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn contacts_crud_and_folders() {
    let env = start().await;
    let (status, list) = env.get("/me/contacts?$top=5").await;
    assert_eq!(status, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 5);
    assert!(list["@odata.nextLink"].is_string());
    let (status, created) = env.post("/me/contacts", json!({"givenName": "Ada", "surname": "Lovelace", "emailAddresses": [{"address": "ada@example.com", "name": "Ada"}]})).await;
    assert_eq!(status, 201);
    assert_eq!(created["displayName"], "Ada Lovelace");
    let id = created["id"].as_str().unwrap();
    let (_, found) = env
        .get("/me/contacts?$filter=startswith(displayName,'Ada')")
        .await;
    assert!(
        found["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id)
    );
    let (status, patched) = env
        .patch(
            &format!("/me/contacts/{}", seg(id)),
            json!({"jobTitle": "Analyst"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["jobTitle"], "Analyst");
    let (status, folder) = env
        .post("/me/contactFolders", json!({"displayName": "Partners"}))
        .await;
    assert_eq!(status, 201);
    let fid = folder["id"].as_str().unwrap();
    let (status, _) = env
        .post(
            &format!("/me/contactFolders/{}/contacts", seg(fid)),
            json!({"givenName": "Grace"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, in_folder) = env
        .get(&format!("/me/contactFolders/{}/contacts", seg(fid)))
        .await;
    assert_eq!(in_folder["value"].as_array().unwrap().len(), 1);
    assert_eq!(env.delete(&format!("/me/contacts/{}", seg(id))).await, 204);
    let (status, _) = env.get(&format!("/me/contacts/{}", seg(id))).await;
    assert_eq!(status, 404);
}
