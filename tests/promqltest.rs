//! Runs Prometheus' own promqltest scripts (copied into `tests/testdata/promql/`, see its README)
//! against the engine, prints pass/fail/skip per file, and fails when a case
//! listed in `tests/testdata/promql-expected-passes.txt` no longer passes.
//!
//! `PROMQLTEST_WRITE=1 cargo nextest run -E "test(/^promqltest::/)"` rewrites the list from
//! the current passes (do it only when the pass set grew).
//! `PROMQLTEST_VERBOSE=1` prints every failing case with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use infermon::promql::promqltest::{Outcome, run_script};

fn testdata_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/promql")
}

fn expected_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/promql-expected-passes.txt")
}

#[test]
fn promql_testdata() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata_dir())
        .expect("tests/testdata/promql exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files found");
    let verbose = std::env::var_os("PROMQLTEST_VERBOSE").is_some();
    let mut passes = BTreeSet::new();
    let mut failures = BTreeMap::new();
    let (mut total_pass, mut total_fail, mut total_skip, mut total_unchecked) = (0, 0, 0, 0);
    let mut skip_reasons: BTreeMap<&str, usize> = BTreeMap::new();
    println!(
        "{:<28} {:>5} {:>5} {:>5}  {:>6}",
        "file", "pass", "fail", "skip", "rate"
    );
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).expect("read test file");
        let results = run_script(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (mut p, mut f, mut s) = (0, 0, 0);
        for r in results {
            let id = format!("{name}:{}", r.line);
            match r.outcome {
                Outcome::Pass => {
                    p += 1;
                    if r.annotations_unchecked {
                        total_unchecked += 1;
                    }
                    passes.insert(id);
                }
                Outcome::Fail(why) => {
                    f += 1;
                    if verbose {
                        println!("  FAIL {id}: {}\n       {why}", r.expr);
                    }
                    failures.insert(id, format!("{} — {why}", r.expr));
                }
                Outcome::Skip(reason) => {
                    s += 1;
                    *skip_reasons.entry(reason).or_default() += 1;
                }
            }
        }
        let rate = if p + f > 0 {
            100.0 * p as f64 / (p + f) as f64
        } else {
            100.0
        };
        println!("{name:<28} {p:>5} {f:>5} {s:>5}  {rate:>5.1}%");
        total_pass += p;
        total_fail += f;
        total_skip += s;
    }
    let rate = 100.0 * total_pass as f64 / (total_pass + total_fail).max(1) as f64;
    println!(
        "{:<28} {total_pass:>5} {total_fail:>5} {total_skip:>5}  {rate:>5.1}%",
        "total"
    );
    println!("skipped by reason: {skip_reasons:?}");
    println!(
        "passing cases that expect warnings/infos (annotations not produced, result compared): {total_unchecked}"
    );

    if std::env::var_os("PROMQLTEST_WRITE").is_some() {
        let text: String = passes.iter().map(|p| format!("{p}\n")).collect();
        std::fs::write(expected_file(), text).expect("write expected passes");
        return;
    }
    let expected = std::fs::read_to_string(expected_file()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the expected-passes list must exist (PROMQLTEST_WRITE=1 writes it)",
            expected_file().display()
        )
    });
    let regressions: Vec<String> = expected
        .lines()
        .filter(|l| !l.trim().is_empty() && !passes.contains(l.trim()))
        .map(|l| {
            format!(
                "{l}: {}",
                failures
                    .get(l.trim())
                    .map(String::as_str)
                    .unwrap_or("no longer present")
            )
        })
        .collect();
    assert!(
        regressions.is_empty(),
        "cases that used to pass now fail:\n{}",
        regressions.join("\n")
    );
}
