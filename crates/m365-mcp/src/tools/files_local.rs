//! Local files the server reads (attachments to send, files to upload) or
//! writes (downloaded attachments and files), confined to the directories
//! named in `MCP_FILE_ALLOWED_ROOTS`.
//!
//! Every path is made absolute and canonical (symlinks resolved) before it
//! is compared with the canonical roots, so neither `..` nor a symlink can
//! lead outside them. A file is written only if it does not exist yet, and
//! it is created with `create_new`, so nothing is ever overwritten, not even
//! through a symlink planted between the check and the write.

use std::path::{Component, Path, PathBuf};

use crate::error::ToolError;

/// The environment variable listing the allowed roots.
pub const ROOTS_VAR: &str = "MCP_FILE_ALLOWED_ROOTS";

/// The separator between roots in [`ROOTS_VAR`].
#[cfg(unix)]
const SEPARATOR: char = ':';
#[cfg(not(unix))]
const SEPARATOR: char = ';';

fn how_to_set() -> String {
    format!(
        "set {ROOTS_VAR} in the server's environment to the directories it may read and write, \
         separated by '{SEPARATOR}' (for example {ROOTS_VAR}=/home/me/Documents{SEPARATOR}/tmp)"
    )
}

/// Environment variable capping file downloads, in MiB.
pub const MAX_MB_VAR: &str = "MCP_FILE_DOWNLOAD_MAX_MB";
/// Download cap when `MCP_FILE_DOWNLOAD_MAX_MB` is unset.
const DEFAULT_MAX_MB: u64 = 512;

/// The download size cap in bytes (`MCP_FILE_DOWNLOAD_MAX_MB`, default 512 MiB).
pub fn download_cap() -> u64 {
    std::env::var(MAX_MB_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|mb| *mb > 0)
        .unwrap_or(DEFAULT_MAX_MB)
        .saturating_mul(1024 * 1024)
}

/// The canonical allowed roots. Roots that do not exist are skipped; none
/// at all is an error saying how to configure them.
pub fn allowed_roots() -> Result<Vec<PathBuf>, ToolError> {
    let raw = std::env::var(ROOTS_VAR).unwrap_or_default();
    let roots: Vec<PathBuf> = raw
        .split(SEPARATOR)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|s| std::fs::canonicalize(s).ok())
        .filter(|p| p.is_dir())
        .collect();
    if roots.is_empty() {
        return Err(ToolError::Unavailable(format!(
            "Local files are disabled: no allowed directory is configured. To allow them, {}.",
            how_to_set()
        )));
    }
    Ok(roots)
}

fn outside(param: &str, path: &Path, roots: &[PathBuf]) -> ToolError {
    let list = roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ToolError::invalid(
        param,
        &path.display().to_string(),
        "is outside the allowed directories",
        &format!("a path inside one of: {list} (configured by {ROOTS_VAR})"),
    )
}

fn within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

fn absolute(param: &str, raw: &str) -> Result<PathBuf, ToolError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.chars().any(char::is_control) {
        return Err(ToolError::invalid(
            param,
            raw,
            "must be a non-empty path without control characters",
            "an absolute path to a local file",
        ));
    }
    let path = PathBuf::from(trimmed);
    if !path.is_absolute() {
        return Err(ToolError::invalid(
            param,
            raw,
            "is not an absolute path",
            "an absolute path to a local file",
        ));
    }
    Ok(path)
}

/// A local file to read: it exists, is a regular file, and its canonical
/// path (symlinks resolved) lies inside an allowed root.
pub fn readable_file(param: &str, raw: &str) -> Result<PathBuf, ToolError> {
    let roots = allowed_roots()?;
    let path = absolute(param, raw)?;
    let canonical = std::fs::canonicalize(&path).map_err(|e| {
        ToolError::invalid(
            param,
            raw,
            &format!("cannot be opened ({e})"),
            "an existing local file",
        )
    })?;
    if !within(&canonical, &roots) {
        return Err(outside(param, &path, &roots));
    }
    if !canonical.is_file() {
        return Err(ToolError::invalid(
            param,
            raw,
            "is not a regular file",
            "an existing local file",
        ));
    }
    Ok(canonical)
}

/// Keeps a file name (e.g. an attachment's) to one plain path component.
pub fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned.trim().trim_matches('.').to_string();
    if cleaned.is_empty() {
        "attachment".to_string()
    } else {
        cleaned
    }
}

/// Where a new file may be written: the target does not exist yet (not even
/// as a dangling symlink), its directory exists and its canonical form lies
/// inside an allowed root. If `raw` names an existing directory, the file is
/// `default_name` inside it.
pub fn new_file_target(param: &str, raw: &str, default_name: &str) -> Result<PathBuf, ToolError> {
    let roots = allowed_roots()?;
    let mut path = absolute(param, raw)?;
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(ToolError::invalid(
            param,
            raw,
            "must not contain '.' or '..' components",
            "a plain absolute path",
        ));
    }
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        path = path.join(safe_file_name(default_name));
    } else if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        // A symlink to a directory: resolve it and check where it leads.
        path = std::fs::canonicalize(&path)
            .map_err(|e| {
                ToolError::invalid(
                    param,
                    raw,
                    &format!("cannot be resolved ({e})"),
                    "a directory",
                )
            })?
            .join(safe_file_name(default_name));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(ToolError::invalid(
            param,
            raw,
            "has no file name",
            "an absolute path to a new file",
        ));
    };
    let parent = std::fs::canonicalize(parent).map_err(|e| {
        ToolError::invalid(
            param,
            raw,
            &format!("its directory cannot be used ({e})"),
            "a path in an existing directory",
        )
    })?;
    if !within(&parent, &roots) {
        return Err(outside(param, &path, &roots));
    }
    let target = parent.join(name);
    if std::fs::symlink_metadata(&target).is_ok() {
        return Err(ToolError::invalid(
            param,
            &target.display().to_string(),
            "already exists and is never overwritten",
            "a path that does not exist yet",
        ));
    }
    Ok(target)
}

/// Checks a destination before anything is downloaded: an existing
/// directory inside the roots, or a new file as [`new_file_target`] accepts.
pub fn check_destination(param: &str, raw: &str) -> Result<(), ToolError> {
    let path = absolute(param, raw)?;
    if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        let roots = allowed_roots()?;
        let canonical = std::fs::canonicalize(&path).map_err(|e| {
            ToolError::invalid(
                param,
                raw,
                &format!("cannot be resolved ({e})"),
                "a directory",
            )
        })?;
        if !within(&canonical, &roots) {
            return Err(outside(param, &path, &roots));
        }
        return Ok(());
    }
    new_file_target(param, raw, "").map(|_| ())
}

/// Writes `bytes` to `target` (from [`new_file_target`]), failing if it
/// appeared in the meantime. A partly written file is removed.
pub async fn write_new(param: &str, target: &Path, bytes: &[u8]) -> Result<(), ToolError> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .await
        .map_err(|e| {
            ToolError::invalid(
                param,
                &target.display().to_string(),
                &format!("cannot be created ({e})"),
                "a path that does not exist yet, in a writable directory",
            )
        })?;
    let written = async {
        file.write_all(bytes).await?;
        file.flush().await?;
        file.sync_all().await
    }
    .await;
    if let Err(e) = written {
        drop(file);
        let _ = tokio::fs::remove_file(target).await;
        return Err(ToolError::Unavailable(format!(
            "Could not write {}: {e}",
            target.display()
        )));
    }
    Ok(())
}

/// The MIME type for a file name's extension (`application/octet-stream`
/// when unknown).
pub fn content_type_for(name: &str) -> &'static str {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "md" => "text/markdown",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ics" => "text/calendar",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_to_one_component() {
        assert_eq!(safe_file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_file_name(".."), "attachment");
        assert_eq!(safe_file_name("report.pdf"), "report.pdf");
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type_for("a.PDF"), "application/pdf");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
