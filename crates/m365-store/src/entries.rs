//! How one cache entry lies in the file (schema version 2), and the row
//! operations that keep its three parts consistent.
//!
//! An entry's row id is the first 8 bytes of its key digest, so finding it
//! needs no index: a read is one descent of the `entries` b-tree by rowid.
//! The entry is split so that each path touches as few pages as possible —
//! every page a statement touches is decrypted, and every page a write
//! dirties is encrypted and authenticated again:
//!
//! - `entries` holds what a read needs: the payload and its timing. It is
//!   the only table `get` reads.
//! - `entry_meta` holds what bookkeeping needs — account, resource type,
//!   sizes, lifetimes, write time, tag list — in small rows, so the expiry
//!   sweep, eviction and statistics scan a few dense pages instead of every
//!   payload page, and no secondary index has to be kept up to date on every
//!   write.
//! - `entry_access` holds read times and hit counts, written back in batches
//!   from memory. Its rows are tiny, so a batch of thousands of reads dirties
//!   a few hundred pages, not one per entry read; an entry never read has no
//!   row, so a write does not touch this table.
//! - `entry_tags` maps a 64-bit tag id (a digest of account and tag) to the
//!   entries carrying it: the one index invalidation needs. Every entry also
//!   carries a tag for its resource type, so "all entries of this resource"
//!   is a tag lookup too.
//!
//! Invariants:
//! - the three tables change together, inside the caller's transaction;
//! - an entry's tag rows are exactly the ids in its `entry_meta.tags`;
//! - an `entry_access` row exists only for an entry that exists;
//! - a row is served only when its stored 16-byte key digest equals the
//!   requested one, so a 64-bit row-id collision is a miss, never a wrong
//!   answer (and the next write of either key replaces the other).

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The schema-2 tables (created by the migration to version 2).
pub(crate) const CREATE_TABLES: &str = r#"
CREATE TABLE entries (
    id          INTEGER PRIMARY KEY,
    key_hash    BLOB    NOT NULL,
    encoding    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    fresh_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    payload     BLOB    NOT NULL
);
CREATE TABLE entry_meta (
    id            INTEGER PRIMARY KEY,
    key_hash      BLOB    NOT NULL,
    account_id    TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    stored_bytes  INTEGER NOT NULL,
    raw_bytes     INTEGER NOT NULL,
    fresh_until   INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    written_at    INTEGER NOT NULL,
    tags          BLOB    NOT NULL
);
CREATE TABLE entry_access (
    id      INTEGER PRIMARY KEY,
    read_at INTEGER NOT NULL,
    hits    INTEGER NOT NULL
);
CREATE TABLE entry_tags (
    tag      INTEGER NOT NULL,
    entry_id INTEGER NOT NULL,
    PRIMARY KEY (tag, entry_id)
) WITHOUT ROWID;
"#;

/// The first 8 bytes of a digest as a row id.
pub(crate) fn row_id(digest: &[u8]) -> i64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The 16-byte digest identifying an entry (resource, account, canonical
/// parameters).
pub(crate) fn key_digest(resource_type: &str, account_id: &str, params_json: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(resource_type.as_bytes());
    hasher.update([0]);
    hasher.update(account_id.as_bytes());
    hasher.update([0]);
    hasher.update(params_json.as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The id of a tag within an account.
pub(crate) fn tag_id(account_id: &str, tag: &str) -> i64 {
    let mut hasher = Sha256::new();
    hasher.update(account_id.as_bytes());
    hasher.update([0]);
    hasher.update(tag.as_bytes());
    row_id(&hasher.finalize())
}

/// The tag every entry of a resource type carries. The leading control
/// character keeps it apart from item and container tags.
pub(crate) fn resource_tag(resource_type: &str) -> String {
    format!("\u{1}resource:{resource_type}")
}

/// Tag ids of an entry: its dependencies and its resource tag, sorted and
/// without repeats.
pub(crate) fn entry_tag_ids<'a>(
    account_id: &str,
    resource_type: &str,
    tags: impl IntoIterator<Item = &'a String>,
) -> Vec<i64> {
    let mut ids: Vec<i64> = tags
        .into_iter()
        .map(|t| tag_id(account_id, t))
        .chain(std::iter::once(tag_id(
            account_id,
            &resource_tag(resource_type),
        )))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn encode_tags(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_be_bytes()).collect()
}

fn decode_tags(blob: &[u8]) -> impl Iterator<Item = i64> + '_ {
    blob.chunks_exact(8).map(row_id)
}

/// Everything stored for one entry.
pub(crate) struct NewEntry<'a> {
    pub key_hash: &'a [u8; 16],
    pub account_id: &'a str,
    pub resource_type: &'a str,
    /// Sorted, without repeats (see [`entry_tag_ids`]).
    pub tag_ids: &'a [i64],
    pub encoding: i64,
    pub stored: &'a [u8],
    pub raw_bytes: i64,
    pub created_at: i64,
    pub fresh_until: i64,
    pub expires_at: i64,
}

/// What the previous occupant of a row id was, when a write replaced one.
pub(crate) struct Replaced {
    /// Its stored size.
    pub stored_bytes: i64,
}

/// Writes an entry under its row id, replacing whatever was there (the same
/// key's older copy, or — once in 2^64 — another key). Tag rows change only
/// when the tag set did.
pub(crate) fn put(conn: &Connection, e: &NewEntry<'_>) -> rusqlite::Result<Option<Replaced>> {
    let id = row_id(e.key_hash);
    let previous: Option<(Vec<u8>, Vec<u8>, i64)> = conn
        .prepare_cached("SELECT key_hash, tags, stored_bytes FROM entry_meta WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let tags = encode_tags(e.tag_ids);
    let tags_unchanged = previous
        .as_ref()
        .is_some_and(|(_, old_tags, _)| *old_tags == tags);
    if let Some((key_hash, old_tags, _)) = &previous {
        if !tags_unchanged {
            delete_tag_rows(conn, id, old_tags)?;
        }
        if key_hash.as_slice() != e.key_hash.as_slice() {
            // Another key held the row id: its reads are not this entry's.
            conn.prepare_cached("DELETE FROM entry_access WHERE id = ?1")?
                .execute([id])?;
        }
    }
    // An existing row is updated in place: a delete and re-insert would
    // empty its leaf page (a payload of a few KiB has a page to itself),
    // free it and rebalance the tree, dirtying pages for nothing.
    let (entries_sql, meta_sql) = if previous.is_some() {
        (
            "UPDATE entries SET key_hash = ?2, encoding = ?3, created_at = ?4, fresh_until = ?5,
                                expires_at = ?6, payload = ?7
             WHERE id = ?1",
            "UPDATE entry_meta SET key_hash = ?2, account_id = ?3, resource_type = ?4, stored_bytes = ?5,
                                   raw_bytes = ?6, fresh_until = ?7, expires_at = ?8, written_at = ?9,
                                   tags = ?10
             WHERE id = ?1",
        )
    } else {
        (
            "INSERT INTO entries (id, key_hash, encoding, created_at, fresh_until, expires_at, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            "INSERT INTO entry_meta (id, key_hash, account_id, resource_type, stored_bytes, raw_bytes,
                                     fresh_until, expires_at, written_at, tags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
    };
    conn.prepare_cached(entries_sql)?.execute(params![
        id,
        e.key_hash.as_slice(),
        e.encoding,
        e.created_at,
        e.fresh_until,
        e.expires_at,
        e.stored
    ])?;
    conn.prepare_cached(meta_sql)?.execute(params![
        id,
        e.key_hash.as_slice(),
        e.account_id,
        e.resource_type,
        e.stored.len() as i64,
        e.raw_bytes,
        e.fresh_until,
        e.expires_at,
        e.created_at,
        tags
    ])?;
    if !tags_unchanged {
        let mut insert = conn
            .prepare_cached("INSERT OR IGNORE INTO entry_tags (tag, entry_id) VALUES (?1, ?2)")?;
        for tag in e.tag_ids {
            insert.execute(params![tag, id])?;
        }
    }
    Ok(previous.map(|(_, _, stored_bytes)| Replaced { stored_bytes }))
}

fn delete_tag_rows(conn: &Connection, id: i64, tags: &[u8]) -> rusqlite::Result<()> {
    let mut delete =
        conn.prepare_cached("DELETE FROM entry_tags WHERE tag = ?1 AND entry_id = ?2")?;
    for tag in decode_tags(tags) {
        delete.execute(params![tag, id])?;
    }
    Ok(())
}

/// An entry that was removed, for counters and the size total.
#[derive(Debug, Clone)]
pub(crate) struct Removed {
    pub account_id: String,
    pub resource_type: String,
    pub stored_bytes: i64,
}

/// Removes one entry (payload, bookkeeping and tag rows). None when absent.
pub(crate) fn remove(conn: &Connection, id: i64) -> rusqlite::Result<Option<Removed>> {
    let row: Option<(String, String, i64, Vec<u8>)> = conn
        .prepare_cached(
            "DELETE FROM entry_meta WHERE id = ?1 RETURNING account_id, resource_type, stored_bytes, tags",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((account_id, resource_type, stored_bytes, tags)) = row else {
        return Ok(None);
    };
    conn.prepare_cached("DELETE FROM entries WHERE id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM entry_access WHERE id = ?1")?
        .execute([id])?;
    delete_tag_rows(conn, id, &tags)?;
    Ok(Some(Removed {
        account_id,
        resource_type,
        stored_bytes,
    }))
}

/// Removes every entry `ids` names; returns those that existed.
pub(crate) fn remove_all(conn: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<Removed>> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(r) = remove(conn, id)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Ids of the entries of `account_id`/`resource_type` carrying `tag`.
pub(crate) fn tagged(
    conn: &Connection,
    account_id: &str,
    resource_type: &str,
    tag: &str,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id FROM entry_tags t JOIN entry_meta m ON m.id = t.entry_id
         WHERE t.tag = ?1 AND m.account_id = ?2 AND m.resource_type = ?3",
    )?;
    stmt.query_map(
        params![tag_id(account_id, tag), account_id, resource_type],
        |r| r.get(0),
    )?
    .collect()
}

/// Adds reads noted in memory (entry id → last read ms, hits) to their
/// entries. Entries removed since they were read are skipped.
pub(crate) fn record_reads(conn: &Connection, reads: &[(i64, (i64, u64))]) -> rusqlite::Result<()> {
    let mut update = conn.prepare_cached(
        "UPDATE entry_access SET read_at = max(read_at, ?2), hits = hits + ?3 WHERE id = ?1",
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO entry_access (id, read_at, hits)
         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM entry_meta WHERE id = ?1)",
    )?;
    for (id, (at, hits)) in reads {
        if update.execute(params![id, at, *hits as i64])? == 0 {
            insert.execute(params![id, at, *hits as i64])?;
        }
    }
    Ok(())
}

/// Ids matching a bookkeeping query with one optional parameter.
pub(crate) fn ids_where(
    conn: &Connection,
    sql: &str,
    param: impl rusqlite::ToSql,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(sql)?;
    stmt.query_map([param], |r| r.get(0))?.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_resource_tag_is_distinct() {
        let tags = vec!["item:a".to_string(), "container:b".to_string()];
        let ids = entry_tag_ids("acct", "email_get", &tags);
        assert_eq!(ids.len(), 3);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let decoded: Vec<i64> = decode_tags(&encode_tags(&ids)).collect();
        assert_eq!(decoded, ids);
        assert_ne!(tag_id("acct", "item:a"), tag_id("other", "item:a"));
        assert_ne!(
            tag_id("acct", &resource_tag("email_get")),
            tag_id("acct", "resource:email_get")
        );
    }
}
