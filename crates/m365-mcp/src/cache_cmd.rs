//! `m365-mcp cache …`: statistics, invalidation, key rotation, migration of a
//! plain cache, and clearing — on the same encrypted store the server uses.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use m365_store::{OpenOutcome, Opened, Paths, StoreConfig};

/// The `cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show hits, misses, hit rate, entries and bytes, per account and per resource.
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries whose key matches a pattern (`*` is the only wildcard).
    Invalidate {
        /// A pattern such as `email_list:*` or `*:<account id>:*`.
        pattern: String,
        /// Only this account's entries.
        #[arg(long)]
        account: Option<String>,
        /// Why (kept in the invalidation log).
        #[arg(long, default_value = "manual (cli)")]
        reason: String,
    },
    /// Re-encrypt the cache with a new key and store it where the old one was.
    /// Stop running servers first.
    RotateKey,
    /// Encrypt a plain (unencrypted) SQLite cache file in place with the cache key.
    Migrate {
        /// The plain database file.
        plain_db: PathBuf,
    },
    /// Remove every cache entry (accounts and tokens stay).
    Clear,
}

/// Opens the store the server would use, reporting what opening found.
pub fn open_store(paths: &Paths) -> anyhow::Result<Opened> {
    let keys = paths.key_manager();
    let opened = m365_store::open_encrypted(StoreConfig::new(&paths.db_path), &keys)
        .with_context(|| format!("cannot open the cache at {}", paths.db_path.display()))?;
    match &opened.outcome {
        OpenOutcome::MovedAside { moved_to } => eprintln!(
            "warning: the cache did not open with its key and was moved aside to {}; a new cache was created",
            moved_to.display()
        ),
        OpenOutcome::MigratedFromPlain { rows } => {
            eprintln!("note: an unencrypted cache was found and encrypted in place ({rows} rows)")
        }
        _ => {}
    }
    Ok(opened)
}

/// Runs one `cache` subcommand.
pub fn run(command: CacheCommand, paths: &Paths) -> anyhow::Result<()> {
    match command {
        CacheCommand::Stats { json } => {
            let opened = open_store(paths)?;
            let stats = opened.store.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("cache:            {}", paths.db_path.display());
                println!("key:              {}", opened.key_source);
                if let Some(v) = opened.store.cipher_version() {
                    println!("cipher:           SQLCipher {v}");
                }
                let t = &stats.total;
                println!("entries:          {}", t.entries);
                println!(
                    "bytes:            {} stored, {} raw (ratio {:.2}), cap {}",
                    t.stored_bytes, t.raw_bytes, stats.compression_ratio, stats.max_total_bytes
                );
                println!("file size:        {}", stats.file_bytes);
                println!(
                    "reads:            {} hits, {} stale, {} misses, hit rate {}",
                    t.hits,
                    t.stale_hits,
                    t.misses,
                    t.hit_rate
                        .map(|r| format!("{:.1} %", r * 100.0))
                        .unwrap_or_else(|| "n/a".into())
                );
                println!(
                    "writes:           {} writes, {} invalidated, {} evicted, {} refreshes",
                    t.writes, t.invalidations, t.evictions, t.refreshes
                );
                println!("tasks pending:    {}", stats.tasks_pending);
                if !stats.per_resource.is_empty() {
                    println!(
                        "\n{:<26} {:>8} {:>12} {:>8} {:>8}",
                        "resource", "entries", "bytes", "hits", "misses"
                    );
                    for (name, row) in &stats.per_resource {
                        println!(
                            "{:<26} {:>8} {:>12} {:>8} {:>8}",
                            name,
                            row.entries,
                            row.stored_bytes,
                            row.hits + row.stale_hits,
                            row.misses
                        );
                    }
                }
            }
        }
        CacheCommand::Invalidate {
            pattern,
            account,
            reason,
        } => {
            let opened = open_store(paths)?;
            let n = opened
                .store
                .invalidate_pattern(&pattern, account.as_deref(), &reason)?;
            println!("invalidated {n} entries");
        }
        CacheCommand::RotateKey => {
            let rotation = m365_store::rotate_key(&paths.key_manager())
                .context("cannot rotate the cache key")?;
            let names: Vec<String> = rotation
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            println!(
                "re-encrypted with a new key, stored in the {}: {}; the old key no longer opens them",
                rotation.source,
                names.join(", ")
            );
        }
        CacheCommand::Migrate { plain_db } => {
            let keys = paths.key_manager();
            let rows = m365_store::migrate_plain_file(&plain_db, &keys)
                .with_context(|| format!("cannot migrate {}", plain_db.display()))?;
            println!(
                "encrypted {} in place: {rows} rows copied and verified; the plain file is gone",
                plain_db.display()
            );
        }
        CacheCommand::Clear => {
            let opened = open_store(paths)?;
            let n = opened.store.clear()?;
            println!("removed {n} entries");
        }
    }
    Ok(())
}
