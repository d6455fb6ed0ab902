//! Getting models from the Hugging Face hub or a mirror of it: `infermon
//! pull ORG/NAME[@revision]` and `models[].hf_repo`.
//!
//! The hub's HTTP API, as huggingface_hub uses it: the file list of a
//! revision from `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`
//! (`siblings`, with sizes, the sha256 of LFS files and the git blob id of
//! the others), and each file from
//! `{endpoint}/{repo}/resolve/{commit}/{file}`. Environment, as
//! huggingface_hub reads it: `HF_ENDPOINT` (mirrors such as
//! `https://hf-mirror.com`), `HF_TOKEN` (sent as `Authorization: Bearer`,
//! else the token file `$HF_HOME/token`, `HF_HOME` defaulting to
//! `~/.cache/huggingface`). infermon writes a plain model folder (what
//! `models[].path` names), not the hub cache's blobs-and-symlinks layout.
//!
//! Written on reqwest rather than the `hf-hub` crate: hf-hub does not check
//! a download against its sha256 and only writes into the hub cache layout,
//! and infermon needs both a checked file and a plain folder.

mod download;
mod select;

use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

pub use select::needed_files;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Attempts per file; each one resumes from what the last one wrote.
const ATTEMPTS: u32 = 4;

/// The longest file list accepted (the hub's largest repositories list a
/// few MiB).
const MAX_LISTING_BYTES: usize = 32 << 20;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `ORG/NAME[@revision]` was not given in that form.
    #[error(
        "{0:?} is not a Hugging Face model id: write ORG/NAME or ORG/NAME@revision (for example sentence-transformers/all-MiniLM-L6-v2)"
    )]
    BadRepo(String),
    /// The hub could not be reached or broke off.
    #[error("{url}: {reason}")]
    Http {
        /// The URL (no token in it).
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The hub answered with an error status.
    #[error("{url} answered {status}: {hint}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What to do about it.
        hint: String,
    },
    /// A downloaded file is not the file the hub lists.
    #[error(
        "{file}: the download does not match the hub's checksum ({what}); it was deleted — run the pull again, and if it fails again the mirror serves a different file"
    )]
    Mismatch {
        /// The file in the repository.
        file: String,
        /// Expected against received.
        what: String,
    },
    /// The revision has no files infermon can serve.
    #[error("{repo}@{revision} has no config.json and weights infermon can load (files: {files})")]
    NothingToServe {
        /// Repository.
        repo: String,
        /// Revision.
        revision: String,
        /// What it does have.
        files: String,
    },
    /// The answer was not the hub API's JSON.
    #[error("{url}: not a hub file list: {reason}")]
    BadListing {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A stop signal came before the download finished.
    #[error("stopped before the download finished; the next start resumes it")]
    Interrupted,
    /// Writing the folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A model repository and revision: `ORG/NAME[@revision]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoRef {
    /// `ORG/NAME`.
    pub repo: String,
    /// Branch, tag or commit (`main` when not given).
    pub revision: String,
}

impl RepoRef {
    /// Parses `ORG/NAME[@revision]`.
    pub fn parse(spec: &str) -> Result<RepoRef, HubError> {
        let bad = || HubError::BadRepo(spec.to_string());
        let (repo, revision) = match spec.split_once('@') {
            Some((repo, rev)) if !rev.is_empty() => (repo, rev),
            Some(_) => return Err(bad()),
            None => (spec, "main"),
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match repo.split_once('/') {
            Some((org, name)) if name_ok(org) && name_ok(name) => Ok(RepoRef {
                repo: repo.to_string(),
                revision: revision.to_string(),
            }),
            _ => Err(bad()),
        }
    }

    /// The folder name a pull writes: the part after the slash.
    pub fn folder_name(&self) -> &str {
        self.repo.rsplit('/').next().unwrap_or(&self.repo)
    }
}

/// Where and how to reach the hub.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// `HF_ENDPOINT`, without a trailing slash.
    pub endpoint: String,
    /// `HF_TOKEN` or the token file.
    pub token: Option<String>,
    /// Draw progress bars (a terminal) instead of one log line per file.
    pub progress_bars: bool,
}

impl HubOptions {
    /// Reads `HF_ENDPOINT`, `HF_TOKEN` and `HF_HOME` as huggingface_hub does.
    pub fn from_env() -> HubOptions {
        use std::io::IsTerminal;
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("HF_ENDPOINT")
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string())
            .trim()
            .trim_end_matches('/')
            .to_string();
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let home = var("HF_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface")))?;
                let text = std::fs::read_to_string(home.join("token")).ok()?;
                Some(text.trim().to_string()).filter(|t| !t.is_empty())
            })
            .map(|t| t.trim().to_string());
        HubOptions {
            endpoint,
            token,
            progress_bars: std::io::stderr().is_terminal(),
        }
    }
}

/// One file of a revision, as the hub lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Sibling {
    /// Path in the repository.
    pub rfilename: String,
    /// Bytes (with `?blobs=true`).
    #[serde(default)]
    pub size: Option<u64>,
    /// Large-file storage details: the file's sha256.
    #[serde(default)]
    pub lfs: Option<Lfs>,
    /// The git blob id (SHA-1 of `blob {len}\0` + content, with
    /// `?blobs=true`); for an LFS file, that of its pointer, not its content.
    #[serde(default, rename = "blobId")]
    pub blob_id: Option<String>,
}

/// An LFS file's pointer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Lfs {
    /// sha256 of the content, hex.
    pub sha256: String,
    /// Bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Listing {
    /// The commit the revision points at.
    #[serde(default)]
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

/// What a pull wrote.
#[derive(Debug)]
pub struct Pulled {
    /// The model folder.
    pub dir: PathBuf,
    /// Files written (repository paths).
    pub files: Vec<String>,
    /// Bytes downloaded in this run.
    pub bytes: u64,
}

/// Path characters escaped in URLs: everything but unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The hub client.
pub struct Hub {
    options: HubOptions,
    client: reqwest::Client,
}

impl Hub {
    /// A client for `options`.
    pub fn new(options: HubOptions) -> Result<Hub, HubError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("infermon/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            // Ranges must count the bytes as stored, not a decompressed body.
            .no_gzip()
            .build()
            .map_err(|e| HubError::Http {
                url: options.endpoint.clone(),
                reason: e.to_string(),
            })?;
        Ok(Hub { options, client })
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.get(url);
        // reqwest drops Authorization on a redirect to another host (the
        // CDN LFS files come from), so the token goes to the endpoint only.
        match &self.options.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Lists the files of `r`'s revision.
    pub async fn list(&self, r: &RepoRef) -> Result<(String, Vec<Sibling>), HubError> {
        let url = format!(
            "{}/api/models/{}/revision/{}?blobs=true",
            self.options.endpoint,
            r.repo,
            encode(&r.revision)
        );
        let response = self.get(&url).send().await.map_err(|e| HubError::Http {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(HubError::Status {
                url,
                status,
                hint: status_hint(status, self.options.token.is_some()),
            });
        }
        let mut body = Vec::new();
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(|e| HubError::Http {
            url: url.clone(),
            reason: e.to_string(),
        })? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_LISTING_BYTES {
                return Err(HubError::BadListing {
                    url,
                    reason: format!("longer than {MAX_LISTING_BYTES} bytes"),
                });
            }
        }
        let listing: Listing = serde_json::from_slice(&body).map_err(|e| HubError::BadListing {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        // Files are fetched at the listed commit, so a branch that moves
        // during the pull cannot mix two revisions.
        let commit = listing.sha.unwrap_or_else(|| r.revision.clone());
        Ok((commit, listing.siblings))
    }

    /// Downloads what `r` needs into `dest` (created; its files are written
    /// into `dest` + `.download` first and the folder renamed when complete,
    /// so a folder at `dest` is always whole). Interrupted files resume.
    pub async fn pull(&self, r: &RepoRef, dest: &Path) -> Result<Pulled, HubError> {
        let (commit, siblings) = self.list(r).await?;
        let wanted = needed_files(&siblings);
        if !wanted.iter().any(|s| s.rfilename == "config.json") {
            return Err(HubError::NothingToServe {
                repo: r.repo.clone(),
                revision: r.revision.clone(),
                files: siblings
                    .iter()
                    .map(|s| s.rfilename.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let staging = staging_dir(dest);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HubError::Io { path, source }
        };
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(io(&staging))?;
        tracing::info!(
            repo = %r.repo,
            revision = %r.revision,
            commit = %commit,
            files = wanted.len(),
            endpoint = %self.options.endpoint,
            "pulling model"
        );
        let mut bytes = 0;
        for file in &wanted {
            let url = format!(
                "{}/{}/resolve/{}/{}",
                self.options.endpoint,
                r.repo,
                encode(&commit),
                file.rfilename
                    .split('/')
                    .map(encode)
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let target = staging.join(&file.rfilename);
            bytes += self.fetch_with_retries(&url, file, &target).await?;
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        tokio::fs::rename(&staging, dest).await.map_err(io(dest))?;
        Ok(Pulled {
            dir: dest.to_path_buf(),
            files: wanted.into_iter().map(|s| s.rfilename).collect(),
            bytes,
        })
    }

    async fn fetch_with_retries(
        &self,
        url: &str,
        file: &Sibling,
        target: &Path,
    ) -> Result<u64, HubError> {
        let mut attempt = 1;
        loop {
            match download::fetch(self, url, file, target).await {
                Ok(n) => return Ok(n),
                // A broken connection resumes from the .part file; a wrong
                // checksum or an error status does not get better by retrying.
                Err(HubError::Http { url, reason }) if attempt < ATTEMPTS => {
                    tracing::warn!(file = %file.rfilename, attempt, %reason, %url, "download interrupted; resuming");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Downloads `spec` (`ORG/NAME[@revision]`) into `dest` with the options
/// of the environment: what `models[].hf_repo` does at start.
pub async fn pull_into(spec: &str, dest: &Path) -> Result<Pulled, HubError> {
    let repo = RepoRef::parse(spec)?;
    let pulled = Hub::new(HubOptions::from_env())?.pull(&repo, dest).await?;
    tracing::info!(
        repo = %repo.repo,
        dir = %pulled.dir.display(),
        files = pulled.files.len(),
        bytes = pulled.bytes,
        "model downloaded"
    );
    Ok(pulled)
}

/// The folder a pull writes into before it is complete.
pub fn staging_dir(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".download");
    dest.with_file_name(name)
}

fn status_hint(status: u16, has_token: bool) -> String {
    match status {
        401 | 403 if has_token => {
            "the token in HF_TOKEN has no access to this model (gated or private: accept its terms on the hub)".to_string()
        }
        401 | 403 => {
            "the model is gated or private: set HF_TOKEN to a token with access".to_string()
        }
        404 => "no such model or revision (check ORG/NAME and @revision, and HF_ENDPOINT)".to_string(),
        429 => "rate limited by the hub; wait and run the pull again (it resumes)".to_string(),
        s if s >= 500 => "the hub or mirror failed; run the pull again (it resumes)".to_string(),
        _ => "unexpected answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repo_ids_with_and_without_revision() {
        assert_eq!(
            RepoRef::parse("BAAI/bge-m3").unwrap(),
            RepoRef {
                repo: "BAAI/bge-m3".into(),
                revision: "main".into()
            }
        );
        let r = RepoRef::parse("sentence-transformers/all-MiniLM-L6-v2@v1.0").unwrap();
        assert_eq!(
            (r.revision.as_str(), r.folder_name()),
            ("v1.0", "all-MiniLM-L6-v2")
        );
        for bad in [
            "bge-m3", "a/b/c", "a/", "/b", "a/b@", "../x", "a/..", "a/b c",
        ] {
            assert!(RepoRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revisions_and_paths_are_escaped_in_urls() {
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode("model-00001.safetensors"), "model-00001.safetensors");
        assert_eq!(
            staging_dir(Path::new("models/bge")),
            Path::new("models/bge.download")
        );
    }
}
