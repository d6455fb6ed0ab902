//! One file of a pull: resumable (a `.part` file continued with a `Range`
//! request) and checked (size, and sha256 against the LFS oid the hub lists
//! or its `X-Linked-Etag` / `ETag`; a small file's git blob id, SHA-1,
//! against the listing's `blobId`) before it takes its final name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, RANGE};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Hub, HubError, Sibling, status_hint};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.to_path_buf();
    move |source| HubError::Io { path, source }
}

/// `target` with `.part` appended.
fn part_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    target.with_file_name(name)
}

/// A sha256 in an ETag: 64 hex digits once quotes and `W/` are gone (the
/// hub's ETag of an LFS file is its oid; a small file's is a git SHA-1).
fn sha256_etag(value: &str) -> Option<String> {
    let v = value.trim().trim_start_matches("W/").trim_matches('"');
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

/// A git blob id: 40 hex digits, lower-cased.
fn git_blob_id(value: &str) -> Option<String> {
    let v = value.trim();
    (v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

/// What a downloaded file is checked against besides its size.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ContentHash {
    /// sha256 of the content (LFS oid or a 64-hex ETag).
    Sha256(String),
    /// git blob id of a small file (SHA-1 of `blob {len}\0` + content).
    GitBlob(String),
}

/// Downloads `file` from `url` to `target`, resuming `target.part`; returns
/// the bytes received by this call.
pub(super) async fn fetch(
    hub: &Hub,
    url: &str,
    file: &Sibling,
    target: &Path,
) -> Result<u64, HubError> {
    let mut size = file.lfs.as_ref().and_then(|l| l.size).or(file.size);
    if target.is_file() {
        // Finished and checked by an earlier, interrupted pull.
        let len = std::fs::metadata(target).map_err(io(target))?.len();
        if size.is_none_or(|s| s == len) {
            return Ok(0);
        }
    }
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(io(parent))?;
    }
    let part = part_path(target);
    let mut have = tokio::fs::metadata(&part).await.map_or(0, |m| m.len());
    if size.is_some_and(|s| have > s) {
        have = 0;
    }
    let mut sha = file
        .lfs
        .as_ref()
        .map(|l| ContentHash::Sha256(l.sha256.to_ascii_lowercase()))
        // An LFS file's blobId is its pointer's; only a small file's is its own.
        .or_else(|| {
            file.blob_id
                .as_deref()
                .and_then(git_blob_id)
                .map(ContentHash::GitBlob)
        });
    let started = Instant::now();
    let mut received = 0;
    if size.is_none_or(|s| have < s) || have == 0 {
        let mut request = hub.get(url);
        if have > 0 {
            request = request.header(RANGE, format!("bytes={have}-"));
        }
        let http = |e: reqwest::Error| HubError::Http {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let mut response = request.send().await.map_err(http)?;
        let status = response.status();
        let append = match status {
            StatusCode::PARTIAL_CONTENT => true,
            StatusCode::OK => {
                have = 0;
                false
            }
            // The part already holds everything; the checks below decide.
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => true,
            _ => {
                return Err(HubError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                    hint: status_hint(status.as_u16(), hub.options.token.is_some()),
                });
            }
        };
        let headers = response.headers();
        if sha.is_none() {
            sha = headers
                .get("x-linked-etag")
                .or_else(|| headers.get(ETAG))
                .and_then(|v| v.to_str().ok())
                .and_then(sha256_etag)
                .map(ContentHash::Sha256);
        }
        if size.is_none() {
            let header = |name| {
                headers
                    .get(name)
                    .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            };
            size = match status {
                StatusCode::PARTIAL_CONTENT => header(CONTENT_RANGE)
                    .and_then(|r| r.rsplit('/').next())
                    .and_then(|t| t.parse().ok()),
                StatusCode::OK => header(CONTENT_LENGTH).and_then(|l| l.parse().ok()),
                _ => None,
            };
        }
        if status != StatusCode::RANGE_NOT_SATISFIABLE {
            let mut out = tokio::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(&part)
                .await
                .map_err(io(&part))?;
            let bar = hub.options.progress_bars.then(|| {
                let bar = indicatif::ProgressBar::new(size.unwrap_or(0));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg:30!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                ) {
                    bar.set_style(style);
                }
                bar.set_message(file.rfilename.clone());
                bar.set_position(have);
                bar
            });
            // A broken connection leaves what arrived in the .part file.
            let result = async {
                while let Some(chunk) = response.chunk().await.map_err(http)? {
                    // More than the listed size cannot be the listed file.
                    if let Some(s) = size.filter(|s| have + received + chunk.len() as u64 > *s) {
                        return Err(HubError::Mismatch {
                            file: file.rfilename.clone(),
                            what: format!("more than the listed {s} bytes sent"),
                        });
                    }
                    out.write_all(&chunk).await.map_err(io(&part))?;
                    received += chunk.len() as u64;
                    if let Some(bar) = &bar {
                        bar.inc(chunk.len() as u64);
                    }
                }
                Ok::<_, HubError>(())
            }
            .await;
            out.flush().await.map_err(io(&part))?;
            out.sync_all().await.map_err(io(&part))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if let Err(HubError::Mismatch { .. }) = &result {
                let _ = tokio::fs::remove_file(&part).await;
            }
            result?;
        }
    }
    check(&file.rfilename, &part, size, sha.as_ref()).await?;
    tokio::fs::rename(&part, target).await.map_err(io(target))?;
    tracing::info!(
        file = %file.rfilename,
        bytes = have + received,
        resumed_from = have,
        checked = match sha {
            Some(ContentHash::Sha256(_)) => "size, sha256",
            Some(ContentHash::GitBlob(_)) => "size, git blob id",
            None => "size",
        },
        seconds = started.elapsed().as_secs_f64(),
        "downloaded"
    );
    Ok(received)
}

/// Compares `part` with what the hub lists; a file that does not match is
/// deleted, so it can neither be served nor resumed.
async fn check(
    name: &str,
    part: &Path,
    size: Option<u64>,
    digest: Option<&ContentHash>,
) -> Result<(), HubError> {
    let len = tokio::fs::metadata(part).await.map_err(io(part))?.len();
    let mismatch = if size.is_some_and(|s| s != len) {
        Some(format!(
            "{} bytes expected, {len} received",
            size.unwrap_or(0)
        ))
    } else if let Some(want) = digest {
        let path = part.to_path_buf();
        let git = matches!(want, ContentHash::GitBlob(_));
        let got = tokio::task::spawn_blocking(move || {
            if git {
                hash_git_blob(&path, len)
            } else {
                hash_file(&path)
            }
        })
        .await
        .map_err(|e| HubError::Io {
            path: part.to_path_buf(),
            source: std::io::Error::other(e),
        })?
        .map_err(io(part))?;
        match want {
            ContentHash::Sha256(want) => {
                (got != *want).then(|| format!("sha256 {want} expected, {got} received"))
            }
            ContentHash::GitBlob(want) => (got != *want)
                .then(|| format!("git blob id (SHA-1) {want} expected, {got} received")),
        }
    } else {
        None
    };
    match mismatch {
        Some(what) => {
            let _ = tokio::fs::remove_file(part).await;
            Err(HubError::Mismatch {
                file: name.to_string(),
                what,
            })
        }
        None => Ok(()),
    }
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    digest_file(Sha256::new(), path)
}

/// The git blob id of the `len`-byte file at `path`, as the hub's `blobId`.
fn hash_git_blob(path: &Path, len: u64) -> std::io::Result<String> {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {len}\0").as_bytes());
    digest_file(hasher, path)
}

fn digest_file<D: Digest>(mut hasher: D, path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_are_what_git_hash_object_prints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        // `printf 'hello\n' | git hash-object --stdin`; the empty blob.
        std::fs::write(&path, b"hello\n").unwrap();
        assert_eq!(
            hash_git_blob(&path, 6).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            hash_git_blob(&path, 0).unwrap(),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_id(" CE013625030BA8DBA906F756967F9E9CA394464A"),
            Some("ce013625030ba8dba906f756967f9e9ca394464a".into())
        );
        assert_eq!(git_blob_id("x"), None);
    }

    #[test]
    fn only_64_hex_etags_are_sha256() {
        let oid = "a".repeat(64);
        assert_eq!(sha256_etag(&format!("\"{oid}\"")), Some(oid.clone()));
        assert_eq!(
            sha256_etag(&format!("W/\"{}\"", oid.to_uppercase())),
            Some(oid)
        );
        assert_eq!(
            sha256_etag("\"5b2c1f0e9d4a3b2c1f0e9d4a3b2c1f0e9d4a3b2c\""),
            None
        );
        assert_eq!(sha256_etag("\"abc-2\""), None);
    }
}
