//! Checks on the repository itself: a clone must stand on its own.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every text file under `dir`, skipping build output and vendored data.
fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(
                name.as_ref(),
                "target" | ".git" | ".venv" | "models" | "fixtures"
            ) {
                text_files(&path, out);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "sh" | "py" | "yml" | "yaml" | "md" | "toml" | "html" | "js")
        ) || name == "Makefile"
        {
            out.push(path);
        }
    }
}

/// Nothing the project runs may read the workspace's shared folder (one level up),
/// which a user who clones the repository does not have.
#[test]
fn no_file_refers_to_the_workspace_shared_folder() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "benches",
        "bench",
        "scripts",
        "config",
        "fuzz",
        "templates",
    ] {
        text_files(&root.join(dir), &mut files);
    }
    files.push(root.join("Makefile"));
    files.push(root.join("README.md"));
    let needle = ["..", "/shared"].concat();
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|text| text.contains(&needle)))
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "these files refer to {needle}; copy what they need into the repository: {offenders:?}"
    );
}
