//! Fills an encrypted store well past its size cap (default 2 GiB) and
//! reports what the cap did: cleanups to 60 %, file size, duration and peak
//! memory. Documents the size-cap behaviour in docs/benchmarks.md.
//!
//! `cargo run --release -p m365-store --example fill_to_cap -- [cap MiB] [dir]`

use std::time::Instant;

use m365_store::{CacheKey, Dependencies, EntryKey, Store, StoreConfig};

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let cap_mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2048);
    let dir = match args.next() {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("m365-fill-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let mut config = StoreConfig::new(dir.join("cache.db"));
    config.max_total_bytes = cap_mib * 1024 * 1024;
    let (store, _) = Store::open(config, CacheKey::generate(), None)?;

    // 32 KiB entries stay below the compression threshold, so stored bytes
    // equal payload bytes and the cap is exercised byte for byte.
    const ENTRY: usize = 32 * 1024;
    let writes = (cap_mib * 1024 * 1024 * 5 / 4) as usize / ENTRY; // 125 % of the cap
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut payload = vec![0u8; ENTRY];
    let start = Instant::now();
    let mut peak_file = 0u64;
    let mut errors = 0u64;
    for i in 0..writes {
        for chunk in payload.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        let id = format!("item-{i}");
        let key = EntryKey::new("fill.tenant", "file_get", &serde_json::json!({ "id": id }));
        if store.set(&key, &Dependencies::item(id), &payload).is_err() {
            errors += 1;
        }
        if i % 4096 == 0 {
            peak_file = peak_file.max(std::fs::metadata(store.path())?.len());
        }
    }
    let report = store.maintain()?;
    let elapsed = start.elapsed();
    let stats = store.stats()?;
    let file = std::fs::metadata(store.path())?.len();
    peak_file = peak_file.max(file);
    println!("cap:                {} MiB", cap_mib);
    println!(
        "written:            {} entries of 32 KiB ({} MiB)",
        writes,
        writes * ENTRY / (1 << 20)
    );
    println!("errors:             {errors}");
    println!("evictions:          {}", stats.total.evictions);
    println!(
        "held now:           {} entries, {} MiB ({:.0} % of cap)",
        stats.total.entries,
        stats.total.stored_bytes >> 20,
        stats.total.stored_bytes as f64 * 100.0 / (cap_mib << 20) as f64
    );
    println!(
        "file:               peak {} MiB, now {} MiB",
        peak_file >> 20,
        file >> 20
    );
    println!("final maintenance:  {report:?}");
    println!("integrity:          {}", store.integrity_check()?);
    println!("duration:           {:.1} s", elapsed.as_secs_f64());
    println!("peak RSS:           {} MiB", peak_rss_kib() / 1024);
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
