//! Grafana dashboards uploaded through the Dashboards page: validated, kept
//! as `<storage.path>/dashboards/<uid>.json` (so they survive restarts) and
//! shown beside the built-in ones and the config's `dashboards:`.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use super::grafana::Dashboard;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Not JSON, or not a dashboard.
    #[error("not a Grafana dashboard: {0}")]
    Invalid(String),
    /// The uid belongs to a dashboard that is not an upload.
    #[error(
        "uid {0:?} is taken by a built-in or configured dashboard; give the JSON another \"uid\""
    )]
    Taken(String),
    /// The file could not be written or removed.
    #[error("cannot store the dashboard in {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The uploaded dashboards and the folder that keeps them.
pub struct UploadedDashboards {
    dir: PathBuf,
    list: RwLock<Vec<(String, Dashboard)>>,
}

/// Uids the page routes use for themselves.
const RESERVED: [&str; 1] = ["upload"];

/// A uid safe in a URL and a file name: letters, digits, `-` and `_`, at most 64.
pub fn clean_uid(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if (c.is_whitespace() || c == '.') && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(64).collect()
}

/// Parses an upload: a dashboard, or Grafana's export wrapper
/// `{"dashboard": {...}}`. Returns the dashboard and its JSON text.
pub fn parse(bytes: &[u8]) -> Result<(Dashboard, serde_json::Value), UploadError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| UploadError::Invalid(e.to_string()))?;
    let value = match value.get("dashboard") {
        Some(inner) if inner.is_object() => inner.clone(),
        _ => value,
    };
    if !value.is_object() {
        return Err(UploadError::Invalid("expected a JSON object".into()));
    }
    if !value.get("panels").is_some_and(|p| p.is_array()) {
        return Err(UploadError::Invalid(
            "no \"panels\" list (Grafana 5+ dashboard JSON has one)".into(),
        ));
    }
    let dashboard: Dashboard =
        serde_json::from_value(value.clone()).map_err(|e| UploadError::Invalid(e.to_string()))?;
    Ok((dashboard, value))
}

impl UploadedDashboards {
    /// Reads every `*.json` in `dir` (absent: none yet). A file that no
    /// longer parses is skipped with a warning rather than stopping the start.
    pub fn load(dir: PathBuf) -> Self {
        let mut list = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            for f in files {
                let uid = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match std::fs::read(&f)
                    .map_err(|e| e.to_string())
                    .and_then(|b| parse(&b).map_err(|e| e.to_string()))
                {
                    Ok((d, _)) => list.push((uid, d)),
                    Err(e) => {
                        tracing::warn!(file = %f.display(), error = %e, "skipping uploaded dashboard")
                    }
                }
            }
        }
        UploadedDashboards {
            dir,
            list: RwLock::new(list),
        }
    }

    /// The folder uploads are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// All uploads, by uid.
    pub fn list(&self) -> Vec<(String, Dashboard)> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The upload with `uid`.
    pub fn get(&self, uid: &str) -> Option<Dashboard> {
        self.list
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(u, _)| u == uid)
            .map(|(_, d)| d.clone())
    }

    /// Validates and keeps an upload; an upload with the same uid is
    /// replaced. `file_name` names it when the JSON has neither uid nor
    /// title; `taken` are the uids of the other dashboards. Returns the uid.
    pub fn store(
        &self,
        bytes: &[u8],
        file_name: &str,
        taken: &[String],
    ) -> Result<String, UploadError> {
        let (mut dashboard, mut value) = parse(bytes)?;
        let stem = file_name.strip_suffix(".json").unwrap_or(file_name);
        let uid = [dashboard.uid.as_deref(), Some(&dashboard.title), Some(stem)]
            .into_iter()
            .flatten()
            .map(clean_uid)
            .find(|u| !u.is_empty())
            .ok_or_else(|| UploadError::Invalid("give it a \"uid\" or a \"title\"".into()))?;
        if taken.contains(&uid) || RESERVED.contains(&uid.as_str()) {
            return Err(UploadError::Taken(uid));
        }
        if dashboard.title.trim().is_empty() {
            dashboard.title = uid.clone();
            value["title"] = serde_json::Value::String(uid.clone());
        }
        dashboard.uid = Some(uid.clone());
        value["uid"] = serde_json::Value::String(uid.clone());
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| UploadError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let path = self.dir.join(format!("{uid}.json"));
        let tmp = self.dir.join(format!(".{uid}.json.tmp"));
        let text =
            serde_json::to_vec_pretty(&value).map_err(|e| UploadError::Invalid(e.to_string()))?;
        // Write aside, then rename: a crash never leaves half a dashboard.
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        list.retain(|(u, _)| *u != uid);
        list.push((uid.clone(), dashboard));
        list.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(uid)
    }

    /// Deletes an upload; `false` when there is none with `uid`.
    pub fn delete(&self, uid: &str) -> Result<bool, UploadError> {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let before = list.len();
        list.retain(|(u, _)| u != uid);
        if list.len() == before {
            return Ok(false);
        }
        let path = self.dir.join(format!("{}.json", clean_uid(uid)));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(source) => Err(UploadError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_safe_names() {
        assert_eq!(clean_uid("My GPU board v1.2"), "My-GPU-board-v1-2");
        assert_eq!(clean_uid("../../etc/passwd"), "etcpasswd");
        assert_eq!(clean_uid("模型"), "");
        assert_eq!(clean_uid(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn store_validate_replace_delete_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let up = UploadedDashboards::load(dir.path().join("dashboards"));
        assert!(up.list().is_empty(), "no folder yet: no uploads");
        let taken = vec!["inference".to_string()];
        assert!(matches!(
            up.store(b"{not json", "x.json", &taken),
            Err(UploadError::Invalid(_))
        ));
        assert!(matches!(
            up.store(br#"{"title":"no panels"}"#, "x.json", &taken),
            Err(UploadError::Invalid(_))
        ));
        assert!(matches!(
            up.store(br#"{"uid":"inference","panels":[]}"#, "x.json", &taken),
            Err(UploadError::Taken(_))
        ));
        // Grafana's export wrapper, no uid: the title names it.
        let uid = up
            .store(
                br#"{"dashboard":{"title":"GPU box","panels":[{"type":"stat","title":"a"}]}}"#,
                "f.json",
                &taken,
            )
            .unwrap();
        assert_eq!(uid, "GPU-box");
        // Neither uid nor title: the file name.
        let uid2 = up.store(br#"{"panels":[]}"#, "mine.json", &taken).unwrap();
        assert_eq!(uid2, "mine");
        assert_eq!(up.get("mine").unwrap().title, "mine");
        // Same uid again replaces.
        up.store(
            br#"{"uid":"GPU-box","title":"GPU box 2","panels":[]}"#,
            "f.json",
            &taken,
        )
        .unwrap();
        assert_eq!(up.list().len(), 2);
        assert_eq!(up.get("GPU-box").unwrap().title, "GPU box 2");
        // What is on disk comes back after a restart.
        let again = UploadedDashboards::load(dir.path().join("dashboards"));
        assert_eq!(
            again
                .list()
                .iter()
                .map(|(u, d)| (u.as_str(), d.title.as_str()))
                .collect::<Vec<_>>(),
            vec![("GPU-box", "GPU box 2"), ("mine", "mine")]
        );
        assert!(again.delete("mine").unwrap());
        assert!(!again.delete("mine").unwrap());
        assert_eq!(
            UploadedDashboards::load(dir.path().join("dashboards"))
                .list()
                .len(),
            1
        );
    }
}
