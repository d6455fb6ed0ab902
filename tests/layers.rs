//! Dependencies point down the layer list in `src/lib.rs`: every `crate::x`
//! path in `src/` names a part on a lower line than the file's own part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Upward imports that are known and explained: (file, part it names, why).
/// An entry that no longer matches anything fails the test, so the list only
/// shrinks.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "src/inference/handlers.rs",
        "web",
        "the model server's HTTP handlers answer with web's error type; they belong in web/ like the other route handlers",
    ),
    (
        "src/remote/receive.rs",
        "web",
        "the remote_write receiver's handler answers with web's error type; it belongs in web/ like the other route handlers",
    ),
];

/// The layer list from `src/lib.rs`: part name → rank (0 = top).
fn layers(root: &Path) -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let mut lines = lib.lines().skip_while(|l| l.trim() != "//! # Layers");
    let mut ranks = BTreeMap::new();
    let mut in_block = false;
    for line in lines.by_ref() {
        let text = line.trim_start_matches("//!").trim();
        if text.starts_with("```") {
            if in_block {
                break;
            }
            in_block = true;
            continue;
        }
        if !in_block {
            continue;
        }
        let (names, _) = text
            .split_once(':')
            .unwrap_or_else(|| panic!("layer line without `names: what`: {text:?}"));
        let rank = ranks.values().max().map_or(0, |r| r + 1);
        for name in names.split(',') {
            let name = name.trim();
            assert!(
                ranks.insert(name.to_string(), rank).is_none(),
                "{name} twice"
            );
        }
    }
    assert!(
        ranks.len() > 10,
        "no layer list found under `//! # Layers` in src/lib.rs"
    );
    ranks
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The part a file belongs to: `src/scrape/pool.rs` → `scrape`.
fn part_of(rel: &str) -> String {
    let rest = rel.strip_prefix("src/").unwrap();
    let first = rest.split('/').next().unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// Top-level parts a source file names through `crate::`: `crate::x`,
/// and each name of `use crate::{x, y::z}`. Comments are skipped.
fn named_parts(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_group: Option<usize> = None;
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let bytes = code.as_bytes();
        let mut at = 0;
        while let Some(pos) = code[at..].find("crate::") {
            let start = at + pos;
            at = start + "crate::".len();
            let before = start.checked_sub(1).map(|b| bytes[b]);
            if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
                continue;
            }
            let rest = &code[at..];
            if let Some(group) = rest.strip_prefix('{') {
                in_group = Some(0);
                scan_group(group, i, &mut in_group, &mut found);
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push((i + 1, name));
            }
        }
        if in_group.is_some() && !code.contains("crate::{") {
            scan_group(code, i, &mut in_group, &mut found);
        }
    }
    found
}

/// Reads the top-level names of a `use crate::{…}` group that may span lines;
/// `depth` counts nested braces and is `None` once the group closes.
fn scan_group(
    text: &str,
    line: usize,
    depth: &mut Option<usize>,
    found: &mut Vec<(usize, String)>,
) {
    let mut word = String::new();
    let mut word_is_item = false;
    let mut expect_item = true;
    for c in text.chars() {
        let Some(d) = *depth else { return };
        if c.is_ascii_alphanumeric() || c == '_' {
            if word.is_empty() {
                word_is_item = expect_item && d == 0;
            }
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            if word_is_item {
                found.push((line + 1, word.clone()));
            }
            word.clear();
            expect_item = false;
        }
        match c {
            '{' => *depth = Some(d + 1),
            '}' if d == 0 => *depth = None,
            '}' => *depth = Some(d - 1),
            ',' if d == 0 => expect_item = true,
            _ => {}
        }
    }
    if !word.is_empty() && word_is_item {
        found.push((line + 1, word));
    }
}

#[test]
fn every_crate_path_points_down_the_layer_list() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ranks = layers(root);
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut used = vec![false; ALLOWED.len()];
    for file in &files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "src/lib.rs" {
            continue;
        }
        let own = part_of(&rel);
        let Some(&own_rank) = ranks.get(&own) else {
            problems.push(format!(
                "{rel}: part `{own}` is not in the layer list of src/lib.rs"
            ));
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for (line, name) in named_parts(&source) {
            if name == own {
                continue;
            }
            let Some(&rank) = ranks.get(&name) else {
                continue; // not a part (e.g. `crate::Error`, `crate::REVISION`)
            };
            if rank < own_rank || (rank == own_rank && name != own) {
                if let Some(i) = ALLOWED
                    .iter()
                    .position(|(f, to, _)| *f == rel && *to == name)
                {
                    used[i] = true;
                    continue;
                }
                problems.push(format!(
                    "{rel}:{line}: `{own}` uses `crate::{name}`, which is not below it"
                ));
            }
        }
    }
    for (i, (file, to, _)) in ALLOWED.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "allow-list entry ({file}, {to}) no longer matches an import: remove it"
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_scanner_finds_grouped_and_inline_paths() {
    let src = "use crate::{alpha, beta::{gamma, delta}};\n\
               use crate::{\n    epsilon::Zeta,\n    eta,\n};\n\
               // crate::comment is skipped\n\
               let x = crate::theta::f(); macro!($crate::iota);\n";
    let names: Vec<String> = named_parts(src).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["alpha", "beta", "epsilon", "eta", "theta"]);
}

#[test]
fn every_module_of_lib_rs_has_a_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ranks = layers(root);
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        let decl = line.trim().trim_start_matches("pub ");
        if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            assert!(ranks.contains_key(name), "module {name} has no layer");
        }
    }
}
