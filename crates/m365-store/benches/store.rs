//! Store micro-benchmarks on a file holding 100 000 entries of ~2 KiB:
//! get of a fresh entry, set, invalidate-by-id, and open — encrypted
//! (SQLCipher) and, as the baseline, the same code on plain SQLite.
//!
//! `cargo bench -p m365-store --bench store`; results in docs/benchmarks.md.

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use m365_store::{CacheKey, Dependencies, EntryKey, Invalidation, Scope, Store, StoreConfig};

const ENTRIES: usize = 100_000;
const ACCOUNT: &str = "5f1c8a3e-0000-4000-8000-000000000001.72f988bf-86f1-41af-91ab-2d7cd011db47";

fn key(i: usize) -> EntryKey {
    EntryKey::new(
        ACCOUNT,
        "email_get",
        &serde_json::json!({ "email_id": format!("AAMkAGI2TG93AAA-{i}="), "include_body": true }),
    )
}

fn payload(i: usize) -> Vec<u8> {
    let mut s = format!(
        "{{\"id\":\"AAMkAGI2TG93AAA-{i}=\",\"subject\":\"Status report {i}\",\"bodyPreview\":\""
    );
    while s.len() < 2048 {
        s.push_str("The quarterly numbers are in and the team met every milestone. ");
    }
    s.push_str("\"}");
    s.into_bytes()
}

/// xorshift, so runs are repeatable without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
}

enum Mode {
    Encrypted(CacheKey),
    Plain,
}

fn open(path: &Path, mode: &Mode) -> Store {
    match mode {
        Mode::Encrypted(k) => {
            Store::open(StoreConfig::new(path), k.clone(), None)
                .expect("open")
                .0
        }
        Mode::Plain => Store::open_plain_for_benchmarks(StoreConfig::new(path)).expect("open"),
    }
}

fn bench_mode(c: &mut Criterion, name: &str, mode: Mode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache.db");
    let store = open(&path, &mode);
    for i in 0..ENTRIES {
        let id = format!("AAMkAGI2TG93AAA-{i}=");
        store
            .set(&key(i), &Dependencies::item(id), &payload(i))
            .expect("fill");
    }
    store.maintain().expect("checkpoint");
    let mut group = c.benchmark_group(name);

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    group.bench_function("get_fresh", |b| {
        b.iter(|| {
            let hit = store.get(&key(rng.next() % ENTRIES)).expect("get");
            black_box(hit.expect("present"));
        })
    });

    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    group.bench_function("set", |b| {
        b.iter_batched(
            || {
                let i = rng.next() % ENTRIES;
                (key(i), payload(i), format!("AAMkAGI2TG93AAA-{i}="))
            },
            |(k, p, id)| store.set(&k, &Dependencies::item(id), &p).expect("set"),
            BatchSize::SmallInput,
        )
    });

    // Distinct ids in order (a prime stride), so no two measured calls
    // compete for the same entry.
    let mut next_id = 0usize;
    group.bench_function("invalidate_by_id", |b| {
        b.iter_batched(
            || {
                // Re-insert first so every measured call removes one entry.
                next_id = (next_id + 7919) % ENTRIES;
                let i = next_id;
                let id = format!("AAMkAGI2TG93AAA-{i}=");
                store
                    .set(&key(i), &Dependencies::item(id.clone()), &payload(i))
                    .expect("set");
                Invalidation::new(ACCOUNT, "email_get", Scope::Item(id))
            },
            |target| {
                let n = store.invalidate(&[target], "bench").expect("invalidate");
                assert_eq!(n, 1);
            },
            BatchSize::PerIteration,
        )
    });
    drop(store);

    group.bench_function("open", |b| {
        b.iter(|| black_box(open(&path, &mode)));
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_mode(c, "sqlcipher", Mode::Encrypted(CacheKey::generate()));
    bench_mode(c, "plain", Mode::Plain);
}

criterion_group! {
    name = store;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(store);
