//! What Redis holds is unreadable without the cache key: no personal data
//! in key names or values, ciphertexts bound to their keys, and another
//! key reads nothing.

mod common;

use std::time::Duration;

use common::{all_keys, cache, contains, key, raw_value, redis};
use m365_redis::RedisCacheError;
use m365_store::{Dependencies, EntryKey, Invalidation, NewTask, Scope};
use serde_json::json;

const ACCOUNT: &str = "alice.wonderland@contoso-secret.example";
const ITEM: &str = "ITEM-SECRET-4242";
const CONTAINER: &str = "FOLDER-SECRET-7777";
const PAYLOAD_WORD: &str = "PAYLOADWORD-xyzzy";
const PARAM_WORD: &str = "PARAMWORD-plugh";
const RESULT_WORD: &str = "RESULTWORD-frobozz";
const ERROR_WORD: &str = "ERRORWORD-zorkmid";

#[tokio::test]
async fn redis_holds_no_plaintext_personal_data() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(42));
    let params = json!({"folder": CONTAINER, "search": PARAM_WORD});
    let list = EntryKey::new(ACCOUNT, "email_list", &params);
    c.set(
        &list,
        &Dependencies::container(CONTAINER).with_item(ITEM),
        format!(r#"{{"value":[{{"id":"{ITEM}","subject":"{PAYLOAD_WORD}"}}]}}"#).as_bytes(),
    )
    .await
    .unwrap();
    // A small payload stays uncompressed: encryption alone must hide it.
    let get = EntryKey::new(ACCOUNT, "email_get", &json!({"id": ITEM}));
    c.set(&get, &Dependencies::item(ITEM), PAYLOAD_WORD.as_bytes())
        .await
        .unwrap();
    c.get(&get).await.unwrap().unwrap();
    c.get(&EntryKey::new(ACCOUNT, "file_get", &json!({"id": ITEM})))
        .await
        .unwrap();
    c.record_refresh(ACCOUNT, "email_list").await;
    let lock = c.try_lock(&list).await.unwrap().expect("free");

    let t1 = c
        .enqueue_task(&NewTask::new(ACCOUNT, "email_list", params.clone()))
        .await
        .unwrap();
    let t2 = c
        .enqueue_task(&NewTask::new(ACCOUNT, "email_get", json!({"id": ITEM})))
        .await
        .unwrap();
    let mut t3 = NewTask::new(ACCOUNT, "contact_get", json!({"id": PARAM_WORD}));
    t3.max_attempts = 1;
    let t3 = c.enqueue_task(&t3).await.unwrap();
    for _ in 0..3 {
        let claimed = c.claim_task().await.unwrap().unwrap();
        if claimed.task_id == t1.task_id {
            c.complete_task(&claimed.task_id, &json!({"subject": RESULT_WORD}))
                .await
                .unwrap();
        } else if claimed.task_id == t2.task_id {
            c.fail_task(&claimed.task_id, ERROR_WORD, Duration::from_secs(60))
                .await
                .unwrap();
        } else {
            assert_eq!(claimed.task_id, t3.task_id);
            c.fail_task(&claimed.task_id, ERROR_WORD, Duration::ZERO)
                .await
                .unwrap();
        }
    }
    // The stats and task listing give the real values back.
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.per_account[0].0, ACCOUNT);
    let tasks = c.list_tasks(None, Some(ACCOUNT), 10).await.unwrap();
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t.account_id == ACCOUNT));
    assert!(tasks.iter().any(|t| t.params_json.contains(PARAM_WORD)));
    assert!(tasks.iter().any(|t| {
        t.result_json
            .as_deref()
            .is_some_and(|r| r.contains(RESULT_WORD))
    }));
    assert!(
        tasks
            .iter()
            .any(|t| t.last_error.as_deref() == Some(ERROR_WORD))
    );

    let secrets = [
        ACCOUNT,
        "alice.wonderland",
        "contoso-secret",
        ITEM,
        CONTAINER,
        PAYLOAD_WORD,
        PARAM_WORD,
        RESULT_WORD,
        ERROR_WORD,
        list.as_str(),
        &list.as_str()[list.as_str().len() - 32..], // the store's params hash
    ];
    let mut raw = server.raw().await;
    let keys = all_keys(&mut raw).await;
    assert!(keys.len() > 15, "{keys:?}");
    let mut kinds = std::collections::BTreeSet::new();
    for name in &keys {
        for s in secrets {
            assert!(!contains(name.as_bytes(), s), "key name {name} reveals {s}");
        }
        let value = raw_value(&mut raw, name).await;
        for s in secrets {
            assert!(!contains(&value, s), "value of {name} reveals {s}");
        }
        let segment = name.split(':').nth(1).unwrap().to_string();
        kinds.insert(segment);
    }
    // Every kind of key was looked at.
    for kind in ["e", "ix", "tg", "st", "res", "accounts", "lk", "t", "tq"] {
        assert!(kinds.contains(kind), "no {kind} key among {keys:?}");
    }
    c.unlock(&list, lock).await.unwrap();
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_key_does_not_decrypt() {
    let Some(server) = redis() else { return };
    let c = cache(&server.url(), &key(7));
    let first = EntryKey::new("acct", "email_get", &json!({"id": "one"}));
    let second = EntryKey::new("acct", "file_get", &json!({"id": "two"}));
    c.set(&first, &Dependencies::none(), b"FIRST PAYLOAD")
        .await
        .unwrap();
    c.set(&second, &Dependencies::none(), b"SECOND PAYLOAD")
        .await
        .unwrap();
    let mut raw = server.raw().await;
    let mut by_resource = std::collections::HashMap::new();
    for k in all_keys(&mut raw).await {
        if k.starts_with("m365mcp:e:") {
            let r: String = redis::cmd("HGET")
                .arg(&k)
                .arg("r")
                .query_async(&mut raw)
                .await
                .unwrap();
            by_resource.insert(r, k);
        }
    }
    let (k1, k2) = (&by_resource["email_get"], &by_resource["file_get"]);

    // The whole entry copied over the other's key.
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg(k1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg(k2)
        .arg(0)
        .arg(dump)
        .arg("REPLACE")
        .query_async(&mut raw)
        .await
        .unwrap();
    match c.get(&second).await {
        Err(RedisCacheError::Corrupt(msg)) => {
            assert!(!msg.contains("acct") && !msg.contains("PAYLOAD"), "{msg}")
        }
        Ok(None) => {}
        other => panic!("a moved ciphertext was served: {other:?}"),
    }

    // Only the payload field moved.
    c.set(&second, &Dependencies::none(), b"SECOND PAYLOAD")
        .await
        .unwrap();
    let p: Vec<u8> = redis::cmd("HGET")
        .arg(k1)
        .arg("p")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(k2)
        .arg("p")
        .arg(p)
        .query_async(&mut raw)
        .await
        .unwrap();
    let got = c.get(&second).await;
    assert!(
        matches!(got, Err(RedisCacheError::Corrupt(_)) | Ok(None)),
        "{got:?}"
    );

    // An edited lifetime (stale made fresh for a year) is caught too.
    c.set(&second, &Dependencies::none(), b"SECOND PAYLOAD")
        .await
        .unwrap();
    let _: () = redis::cmd("HINCRBY")
        .arg(k2)
        .arg("f")
        .arg(365_i64 * 24 * 3600 * 1000)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(
        c.get(&second).await,
        Err(RedisCacheError::Corrupt(_))
    ));

    // The untouched entry still reads.
    assert_eq!(
        c.get(&first).await.unwrap().unwrap().payload,
        b"FIRST PAYLOAD"
    );
}

#[tokio::test]
async fn another_cache_key_reads_nothing() {
    let Some(server) = redis() else { return };
    let right = cache(&server.url(), &key(1));
    let wrong = cache(&server.url(), &key(2));
    let k = EntryKey::new("acct-x", "email_get", &json!({"id": "m"}));
    right
        .set(&k, &Dependencies::item("m"), b"THE PAYLOAD")
        .await
        .unwrap();
    right
        .enqueue_task(&NewTask::new("acct-x", "email_get", json!({"id": "m"})))
        .await
        .unwrap();
    // Statistics do not reveal the account: its registry entry does not
    // decrypt with another key.
    let stats = wrong.stats().await.unwrap();
    assert_eq!(stats.per_account.len(), 1);
    assert!(
        stats.per_account[0].0.starts_with("(unreadable"),
        "{:?}",
        stats.per_account
    );
    assert_eq!(stats.total.writes, 1);
    match wrong.get(&k).await {
        Ok(None) | Err(RedisCacheError::Corrupt(_)) => {}
        other => panic!("another key read the entry: {other:?}"),
    }
    assert_eq!(wrong.freshness(&k).await.unwrap(), None);
    // Its invalidations and patterns reach nothing either.
    assert_eq!(
        wrong
            .invalidate(
                &[Invalidation::new(
                    "acct-x",
                    "email_get",
                    Scope::Item("m".into())
                )],
                "t"
            )
            .await
            .unwrap(),
        0
    );
    assert_eq!(wrong.invalidate_pattern("*", None, "t").await.unwrap(), 0);
    // Task listings fail rather than guess.
    match wrong.list_tasks(None, None, 10).await {
        Err(RedisCacheError::Corrupt(_)) => {}
        other => panic!("tasks read with another key: {other:?}"),
    }
    // The right key still reads everything.
    assert_eq!(
        right.get(&k).await.unwrap().unwrap().payload,
        b"THE PAYLOAD"
    );
    assert_eq!(right.list_tasks(None, None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn errors_and_debug_output_carry_no_secrets() {
    let Some(server) = redis() else { return };
    let mut raw = server.raw().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("the-real-one")
        .query_async(&mut raw)
        .await
        .unwrap();
    let mut cfg = m365_redis::RedisConfig::new(format!(
        "redis://default:pa55word-secret@127.0.0.1:{}/0",
        server.port
    ));
    cfg.op_timeout = Duration::from_millis(300);
    let c = m365_redis::RedisCache::new(cfg.clone(), &key(1)).unwrap();
    assert!(!format!("{c:?}").contains("pa55word"));
    assert!(!format!("{cfg:?}").contains("pa55word"));
    // The server has another password: authentication fails, quietly.
    let err = c.ping().await.unwrap_err();
    assert!(!err.to_string().contains("pa55word"), "{err}");
    let k = EntryKey::new(ACCOUNT, "email_get", &json!({"id": ITEM}));
    let err = c.get(&k).await.unwrap_err();
    for s in ["pa55word", ACCOUNT, ITEM] {
        assert!(!err.to_string().contains(s), "{err}");
        assert!(!format!("{err:?}").contains(s), "{err:?}");
    }
}
