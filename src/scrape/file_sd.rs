//! `file_sd_configs`: target groups read from JSON/YAML files (globs), read
//! again when a file changes (checked every few seconds) and every
//! `refresh_interval`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::target::TargetGroup;
use crate::config::FileSdConfig;

/// How often files are checked for changes.
pub const CHANGE_CHECK: Duration = Duration::from_secs(5);

/// A fingerprint of the matched files (path, size, mtime) to notice changes.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// Files matching the config's globs, relative ones against `base`.
pub fn matched_files(cfg: &FileSdConfig, base: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pattern in &cfg.files {
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        if let Ok(paths) = glob::glob(&full.to_string_lossy()) {
            out.extend(paths.flatten());
        }
    }
    out.sort();
    out
}

/// The fingerprint of `files`.
pub fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok();
            (
                p.clone(),
                m.as_ref().map_or(0, |m| m.len()),
                m.and_then(|m| m.modified().ok()),
            )
        })
        .collect()
}

/// Reads every file; a broken file is logged and contributes nothing (the
/// other files still count), as Prometheus does.
pub fn read_groups(files: &[PathBuf]) -> Vec<TargetGroup> {
    let mut out = Vec::new();
    for path in files {
        match read_file(path) {
            Ok(groups) => out.extend(groups),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read file_sd file")
            }
        }
    }
    out
}

fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut groups: Vec<TargetGroup> = match ext {
        "json" => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        "yml" | "yaml" => serde_yaml_ng::from_str::<Option<Vec<TargetGroup>>>(&text)
            .map_err(|e| e.to_string())?
            .unwrap_or_default(),
        other => {
            return Err(format!(
                "unsupported file extension {other:?} (use .json, .yml or .yaml)"
            ));
        }
    };
    for g in &mut groups {
        g.source = Some(path.display().to_string());
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["h1:1", "h2:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h3:3']\n").unwrap();
        std::fs::write(dir.path().join("c.json"), "not json").unwrap();
        let cfg = FileSdConfig {
            files: vec!["*.json".into(), "*.yml".into()],
            refresh_interval: crate::config::PromDuration::from_secs(60),
        };
        let files = matched_files(&cfg, dir.path());
        assert_eq!(files.len(), 3);
        let groups = read_groups(&files);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, vec!["h1:1", "h2:2"]);
        assert!(groups[1].source.as_deref().unwrap().ends_with("b.yml"));
        let before = fingerprint(&files);
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h3:3', 'h4:4']\n").unwrap();
        assert_ne!(fingerprint(&files), before);
    }
}
