//! Mail folders, messages, attachments, paging, errors and message rules through HTTP.

mod common;

use common::{seg, start};
use serde_json::{Value, json};

#[tokio::test]
async fn folders_list_top_level_with_counts_and_hidden_only_on_request() {
    let env = start().await;
    let (status, body) = env.get("/me/mailFolders?$top=50").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Inbox") && names.contains(&"Sent Items") && names.contains(&"Archive")
    );
    assert!(
        !names.contains(&"Clutter"),
        "hidden folder listed without includeHiddenFolders"
    );
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/mailFolders")
    );
    let (_, hidden) = env
        .get("/me/mailFolders?$top=50&includeHiddenFolders=true")
        .await;
    assert!(
        hidden["value"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["displayName"] == "Clutter" && f["isHidden"] == true)
    );

    // Counts agree with the messages in the folder.
    let (_, inbox) = env.get("/me/mailFolders/inbox").await;
    let total = inbox["totalItemCount"].as_u64().unwrap();
    let unread = inbox["unreadItemCount"].as_u64().unwrap();
    let (_, all) = env
        .get("/me/mailFolders/inbox/messages?$top=100&$count=true&$select=isRead")
        .await;
    assert_eq!(all["@odata.count"].as_u64().unwrap(), total);
    let (_, unread_list) = env
        .get("/me/mailFolders/inbox/messages?$filter=isRead%20eq%20false&$count=true")
        .await;
    assert_eq!(unread_list["@odata.count"].as_u64().unwrap(), unread);
    assert!(inbox["childFolderCount"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn folder_tree_is_three_levels_and_folder_writes_work() {
    let env = start().await;
    // Walk the first chain under the Inbox: seeded folders go three levels deep.
    let mut parent = "inbox".to_string();
    let mut depth = 0;
    loop {
        let (_, children) = env
            .get(&format!("/me/mailFolders/{}/childFolders", seg(&parent)))
            .await;
        let Some(first) = children["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["childFolderCount"].as_u64().unwrap() > 0)
            .or(children["value"].as_array().unwrap().first())
        else {
            break;
        };
        parent = first["id"].as_str().unwrap().to_string();
        depth += 1;
        if first["childFolderCount"] == 0 {
            break;
        }
    }
    assert!(depth >= 3, "depth {depth}");

    let (status, created) = env
        .post(
            "/me/mailFolders/inbox/childFolders",
            json!({"displayName": "Sandbox test"}),
        )
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().unwrap().to_string();
    let (status, dup) = env
        .post(
            "/me/mailFolders/inbox/childFolders",
            json!({"displayName": "Sandbox test"}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(dup["error"]["code"], "ErrorFolderExists");
    let (status, renamed) = env
        .patch(
            &format!("/me/mailFolders/{}", seg(&id)),
            json!({"displayName": "Renamed"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(renamed["displayName"], "Renamed");
    let (status, moved) = env
        .post(
            &format!("/me/mailFolders/{}/move", seg(&id)),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, archive) = env.get("/me/mailFolders/archive").await;
    assert_eq!(moved["parentFolderId"], archive["id"]);
    assert_eq!(
        env.delete(&format!("/me/mailFolders/{}", seg(&id))).await,
        204
    );
    let (status, gone) = env.get(&format!("/me/mailFolders/{}", seg(&id))).await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"]["code"], "ErrorItemNotFound");
    assert_eq!(env.delete("/me/mailFolders/inbox").await, 403);
}

#[tokio::test]
async fn messages_page_by_next_link_until_exhausted() {
    let env = start().await;
    let (_, first) = env.get("/me/messages").await;
    assert_eq!(
        first["value"].as_array().unwrap().len(),
        10,
        "default page size is 10"
    );
    let mut link = env.url("/me/messages?$top=7&$select=id,subject,receivedDateTime");
    let mut seen = Vec::new();
    let mut pages = 0;
    while !link.is_empty() {
        let (status, page) = env.get(&link).await;
        assert_eq!(status, 200);
        for m in page["value"].as_array().unwrap() {
            assert!(m.get("body").is_none(), "$select leaked body");
            seen.push(m["receivedDateTime"].as_str().unwrap().to_string());
            assert!(m["@odata.etag"].as_str().unwrap().starts_with("W/\""));
        }
        link = page["@odata.nextLink"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !link.is_empty() {
            assert!(
                link.starts_with(&env.sandbox.graph_url()),
                "nextLink not absolute on the sandbox: {link}"
            );
        }
        pages += 1;
    }
    let state = env.sandbox.user_state(&env.username).unwrap();
    assert_eq!(seen.len(), state["messages"].as_array().unwrap().len());
    assert!(pages > 1);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "default order is receivedDateTime desc");
    // $top is capped.
    let (_, big) = env.get("/me/messages?$top=999").await;
    assert_eq!(big["value"].as_array().unwrap().len(), 60);
}

#[tokio::test]
async fn filters_search_and_text_bodies() {
    let env = start().await;
    let (_, unread) = env
        .get("/me/messages?$filter=isRead eq false&$top=100")
        .await;
    assert!(!unread["value"].as_array().unwrap().is_empty());
    assert!(
        unread["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["isRead"] == false)
    );
    let (_, att) = env
        .get("/me/messages?$filter=hasAttachments eq true&$top=100")
        .await;
    assert!(
        att["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["hasAttachments"] == true)
    );
    let some = &att["value"][0];
    let sender = some["from"]["emailAddress"]["address"].as_str().unwrap();
    let (_, from) = env
        .get(&format!(
            "/me/messages?$filter=from/emailAddress/address eq '{sender}'&$top=100"
        ))
        .await;
    assert!(
        from["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["from"]["emailAddress"]["address"] == sender)
    );
    let (status, bad) = env.get("/me/messages?$filter=isRead eq").await;
    assert_eq!(status, 400);
    assert!(bad["error"]["innerError"]["request-id"].is_string());
    let (_, search) = env.get("/me/messages?$search=\"budget\"&$top=100").await;
    assert!(search["value"].as_array().unwrap().iter().all(|m| {
        m["subject"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("budget")
            || m["bodyPreview"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("budget")
    }));
    let (status, _) = env
        .get("/me/messages?$search=\"budget\"&$orderby=receivedDateTime desc")
        .await;
    assert_eq!(status, 400);

    let r = env
        .http
        .get(env.url("/me/messages?$top=1&$select=body"))
        .bearer_auth(&env.token)
        .header("Prefer", "outlook.body-content-type=\"text\"")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("request-id").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["value"][0]["body"]["contentType"], "text");
    assert!(
        !body["value"][0]["body"]["content"]
            .as_str()
            .unwrap()
            .contains("<p>")
    );
    let (_, html) = env.get("/me/messages?$top=1&$select=body").await;
    assert_eq!(html["value"][0]["body"]["contentType"], "html");
}

#[tokio::test]
async fn move_gives_a_new_id_and_counts_follow() {
    let env = start().await;
    let (_, list) = env
        .get("/me/mailFolders/inbox/messages?$filter=isRead eq false&$top=1")
        .await;
    let id = list["value"][0]["id"].as_str().unwrap().to_string();
    let (_, before) = env.get("/me/mailFolders/archive").await;
    let (status, moved) = env
        .post(
            &format!("/me/messages/{}/move", seg(&id)),
            json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(status, 201);
    let new_id = moved["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(moved["parentFolderId"], before["id"]);
    let (status, _) = env.get(&format!("/me/messages/{}", seg(&id))).await;
    assert_eq!(status, 404);
    let (_, after) = env.get("/me/mailFolders/archive").await;
    assert_eq!(
        after["totalItemCount"].as_u64().unwrap(),
        before["totalItemCount"].as_u64().unwrap() + 1
    );
    assert_eq!(
        after["unreadItemCount"].as_u64().unwrap(),
        before["unreadItemCount"].as_u64().unwrap() + 1
    );

    // PATCH isRead changes the unread count.
    let (status, patched) = env.patch(&format!("/me/messages/{}", seg(new_id)), json!({"isRead": true, "flag": {"flagStatus": "flagged"}, "categories": ["Blue category"]})).await;
    assert_eq!(status, 200);
    assert_eq!(patched["isRead"], true);
    assert_eq!(patched["flag"]["flagStatus"], "flagged");
    assert_ne!(patched["@odata.etag"], moved["@odata.etag"]);
    let (_, after_read) = env.get("/me/mailFolders/archive").await;
    assert_eq!(
        after_read["unreadItemCount"].as_u64().unwrap(),
        before["unreadItemCount"].as_u64().unwrap()
    );
    let (status, bad) = env
        .patch(
            &format!("/me/messages/{}", seg(new_id)),
            json!({"importance": "urgent"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(bad["error"]["code"].is_string());
    let (status, _) = env
        .patch(
            &format!("/me/messages/{}", seg(new_id)),
            json!({"subject": "x"}),
        )
        .await;
    assert_eq!(status, 400, "subject of a received message is read-only");
    assert_eq!(
        env.delete(&format!("/me/messages/{}", seg(new_id))).await,
        204
    );
    let (status, _) = env.get(&format!("/me/messages/{}", seg(new_id))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn drafts_send_and_reply() {
    let env = start().await;
    let other = env.sandbox.users()[2].username.clone();
    let (status, draft) = env.post("/me/messages", json!({
        "subject": "Sandbox draft",
        "body": {"contentType": "Text", "content": "Hello there"},
        "toRecipients": [{"emailAddress": {"address": other}}],
        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentBytes": "aGVsbG8="}]
    })).await;
    assert_eq!(status, 201);
    assert_eq!(draft["isDraft"], true);
    assert_eq!(draft["hasAttachments"], true);
    let id = draft["id"].as_str().unwrap();
    let (_, drafts) = env.get("/me/mailFolders/drafts").await;
    assert_eq!(draft["parentFolderId"], drafts["id"]);
    let (status, _) = env
        .post(&format!("/me/messages/{}/send", seg(id)), json!({}))
        .await;
    assert_eq!(status, 202);
    let (_, sent) = env
        .get("/me/mailFolders/sentitems/messages?$filter=subject eq 'Sandbox draft'")
        .await;
    assert_eq!(sent["value"].as_array().unwrap().len(), 1);
    // The other seeded user received it.
    let state = env.sandbox.user_state(&other).unwrap();
    assert!(
        state["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["subject"] == "Sandbox draft" && m["isRead"] == false)
    );

    let (status, err) = env
        .post("/me/sendMail", json!({"message": {"subject": "no one"}}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "ErrorInvalidRecipients");
    let (status, _) = env.post("/me/sendMail", json!({"message": {"subject": "hi", "body": {"contentType": "Text", "content": "x"}, "toRecipients": [{"emailAddress": {"address": "someone@example.com"}}]}})).await;
    assert_eq!(status, 202);

    let (_, inbox) = env.get("/me/mailFolders/inbox/messages?$top=1").await;
    let mid = inbox["value"][0]["id"].as_str().unwrap();
    let (status, _) = env
        .post(
            &format!("/me/messages/{}/reply", seg(mid)),
            json!({"comment": "Thanks!"}),
        )
        .await;
    assert_eq!(status, 202);
    let (status, _) = env
        .post(
            &format!("/me/messages/{}/forward", seg(mid)),
            json!({"comment": "fyi"}),
        )
        .await;
    assert_eq!(status, 400, "forward needs recipients");
    let (status, fwd) = env
        .post(
            &format!("/me/messages/{}/createForward", seg(mid)),
            json!({}),
        )
        .await;
    assert_eq!(status, 201);
    assert!(fwd["subject"].as_str().unwrap().starts_with("FW: "));
}

#[tokio::test]
async fn attachments_and_upload_session_without_authorization() {
    let env = start().await;
    let (_, with) = env
        .get("/me/messages?$filter=hasAttachments eq true&$top=1&$expand=attachments")
        .await;
    let message = &with["value"][0];
    let id = message["id"].as_str().unwrap();
    let (status, list) = env
        .get(&format!("/me/messages/{}/attachments", seg(id)))
        .await;
    assert_eq!(status, 200);
    let file = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["@odata.type"] == "#microsoft.graph.fileAttachment")
        .unwrap();
    assert!(file["contentBytes"].as_str().unwrap().len() > 10);
    let (_, one) = env
        .get(&format!(
            "/me/messages/{}?$expand=attachments($select=id,name,size,contentType)",
            seg(id)
        ))
        .await;
    assert!(one["attachments"][0].get("contentBytes").is_none());
    assert!(one["attachments"][0]["name"].is_string());

    let (_, draft) = env.post("/me/messages", json!({"subject": "big"})).await;
    let did = draft["id"].as_str().unwrap();
    let data = vec![7u8; 5000];
    let (status, session) = env.post(&format!("/me/messages/{}/attachments/createUploadSession", seg(did)), json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin", "size": data.len()}})).await;
    assert_eq!(status, 201);
    let url = session["uploadUrl"].as_str().unwrap().to_string();
    assert_eq!(session["nextExpectedRanges"][0], "0-");
    let r = env
        .http
        .put(&url)
        .header("Content-Range", "bytes 0-2999/5000")
        .body(data[..3000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let progress: Value = r.json().await.unwrap();
    assert_eq!(progress["nextExpectedRanges"][0], "3000");
    let r = env
        .http
        .put(&url)
        .header("Content-Range", "bytes 3000-4999/5000")
        .body(data[3000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let (_, list) = env
        .get(&format!("/me/messages/{}/attachments", seg(did)))
        .await;
    assert_eq!(list["value"][0]["name"], "big.bin");
}

#[tokio::test]
async fn message_rules_crud_validation_and_paging() {
    let env = start().await;
    let base = "/me/mailFolders/inbox/messageRules";
    let (status, list) = env.get(base).await;
    assert_eq!(status, 200);
    let seeded = list["value"].as_array().unwrap().len();
    assert!(seeded >= 2);
    let (status, created) = env
        .post(
            base,
            json!({
                "displayName": "From partners", "sequence": 4, "isEnabled": true,
                "conditions": {"senderContains": ["partner"], "isMeetingRequest": false},
                "actions": {"moveToFolder": "archive", "stopProcessingRules": true},
                "exceptions": {"importance": "high"}
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, bad) = env.post(base, json!({"displayName": "x", "sequence": 1, "conditions": {"notAPredicate": true}, "actions": {"delete": true}})).await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"]["code"], "RequestBodyRead");
    let (status, _) = env.post(base, json!({"displayName": "x", "sequence": 1, "conditions": {"messageActionFlag": "flagged"}, "actions": {"delete": true}})).await;
    assert_eq!(status, 400, "flagged is not a messageActionFlag");
    let (status, patched) = env
        .patch(&format!("{base}/{}", seg(id)), json!({"sequence": 1}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["sequence"], 1);
    let (_, page) = env.get(&format!("{base}?$top=2")).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let next = page["@odata.nextLink"].as_str().unwrap();
    let (_, rest) = env.get(next).await;
    assert_eq!(rest["value"].as_array().unwrap().len(), seeded + 1 - 2);
    assert_eq!(env.delete(&format!("{base}/{}", seg(id))).await, 204);
    let (status, _) = env.get("/me/mailFolders/archive/messageRules").await;
    assert_eq!(status, 400);
}
