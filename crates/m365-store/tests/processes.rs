//! Several processes and threads on one file, and processes killed in the
//! middle of writing. The second process is this test binary re-run with
//! `--ignored --exact child_worker` and its orders in the environment.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use m365_store::{
    CacheKey, Dependencies, EntryKey, Invalidation, NewTask, OpenOutcome, Scope, Store, StoreConfig,
};

const ENV_DB: &str = "M365_STORE_TEST_CHILD_DB";
const ENV_KEY: &str = "M365_STORE_TEST_CHILD_KEY";
const ENV_MODE: &str = "M365_STORE_TEST_CHILD_MODE";

fn spawn_child(db: &std::path::Path, key: &CacheKey, mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_worker",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DB, db)
        .env(ENV_KEY, hex::encode(key.as_bytes()))
        .env(ENV_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process")
}

fn key_from_hex(text: &str) -> CacheKey {
    let bytes = hex::decode(text).expect("hex key");
    CacheKey::from_bytes(bytes.try_into().expect("32 bytes"))
}

/// One step of a mixed workload; every error is a test failure.
fn mixed_op(store: &Store, worker: u64, i: u64) {
    let account = format!("acct-{}", i % 3);
    let id = format!("m{}", (i * 7 + worker) % 200);
    let key = message_key(&account, &id);
    match i % 10 {
        0..=4 => {
            store.get(&key).expect("get");
        }
        5..=7 => store
            .set(
                &key,
                &Dependencies::item(&id),
                &payload(&id, 200 + (i % 5) as usize * 900),
            )
            .expect("set"),
        8 => {
            store
                .invalidate(
                    &[Invalidation::new(
                        &account,
                        "email_get",
                        Scope::Item(id.clone()),
                    )],
                    "test",
                )
                .expect("invalidate");
        }
        _ => {
            if i % 20 == 9 {
                store
                    .enqueue_task(&NewTask::new(
                        &account,
                        "email_list",
                        serde_json::json!({ "n": i % 13 }),
                    ))
                    .expect("enqueue");
            } else if let Some(task) = store.claim_task().expect("claim") {
                store
                    .complete_task(&task.task_id, &serde_json::json!({}))
                    .expect("complete");
            }
        }
    }
}

/// Entry point of the child process (ignored unless run on purpose).
#[test]
#[ignore = "entry point of the child process of other tests"]
fn child_worker() {
    let Ok(db) = std::env::var(ENV_DB) else {
        return;
    };
    let key = key_from_hex(&std::env::var(ENV_KEY).expect("key"));
    let mode = std::env::var(ENV_MODE).expect("mode");
    let (store, _) = Store::open(StoreConfig::new(&db), key, None).expect("child opens the store");
    match mode.as_str() {
        "mixed" => {
            for i in 0..3000 {
                mixed_op(&store, 99, i);
            }
        }
        "write-forever" => {
            // Killed by the parent at a random moment.
            for i in 0.. {
                let id = format!("k{}", i % 500);
                let key = EntryKey::new("acct", "email_get", &serde_json::json!({ "id": id }));
                store
                    .set(
                        &key,
                        &Dependencies::item(&id),
                        &payload(&id, 100 + (i % 37) * 1000),
                    )
                    .expect("set");
                if i == 0 {
                    // Tell the parent the loop is running, so it kills a
                    // writer and not a process that is still starting.
                    use std::io::Write;
                    println!("writing");
                    std::io::stdout().flush().expect("flush");
                }
                if i % 25 == 0 {
                    // Churn: drop an entry written a while ago.
                    let old = format!("k{}", (i + 250) % 500);
                    store
                        .invalidate(
                            &[Invalidation::new("acct", "email_get", Scope::Item(old))],
                            "churn",
                        )
                        .expect("invalidate");
                }
                if i % 50 == 0 {
                    store.maintain().expect("maintain");
                }
            }
        }
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn two_processes_and_four_threads_share_one_file_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let key = CacheKey::generate();
    let store = open(dir.path(), &key);
    let child = spawn_child(&db, &key, "mixed");
    std::thread::scope(|s| {
        for worker in 0..4u64 {
            let store = store.clone();
            s.spawn(move || {
                for i in 0..1500 {
                    mixed_op(&store, worker, i);
                }
            });
        }
    });
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let stats = store.stats().unwrap();
    assert!(stats.total.entries > 0);
}

/// Reads the child's stdout until `expected` (the test harness prints its
/// own lines too).
fn wait_for_line(child: &mut Child, expected: &str) {
    use std::io::BufRead;
    let stdout = child.stdout.as_mut().expect("piped stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "the child ended before it started writing");
        // libtest prints "test child_worker ... " on the same line.
        if line.trim_end().ends_with(expected) {
            return;
        }
    }
}

#[test]
fn a_process_killed_mid_write_never_corrupts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache.db");
    let key = CacheKey::generate();
    drop(open(dir.path(), &key));
    let rounds = 12;
    for round in 0..rounds {
        let mut child = spawn_child(&db, &key, "write-forever");
        wait_for_line(&mut child, "writing");
        // Let it get well into its loop, at a different point each round.
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(150 + (round * 53) % 250));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("child ended on its own ({status}): {err}");
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        let (store, outcome) = Store::open(StoreConfig::new(&db), key.clone(), None).unwrap();
        assert_eq!(
            outcome,
            OpenOutcome::Opened { created: false },
            "round {round}: reopened after {:?}",
            start.elapsed()
        );
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
    }
    let (store, _) = Store::open(StoreConfig::new(&db), key, None).unwrap();
    assert!(
        store.stats().unwrap().total.entries > 0,
        "the children wrote entries"
    );
}
