//! The config loader on broken input: thousands of seeded mutations of the
//! embedded default config and of the test configs must each load or fail
//! with an error — never panic. (`fuzz/fuzz_targets/config_load.rs` does the
//! same under libFuzzer.)

use infermon::config::{Config, DEFAULT_CONFIG};

/// Pieces that YAML, durations, regexes and env expansion read specially.
const TOKENS: &[&str] = &[
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "*a",
    "&a ",
    "!!binary ",
    "${HOME}",
    "${X",
    "$${Y}",
    "1e400",
    "-1",
    "99999999999999999999",
    "\t",
    "0s",
    "1y2w",
    "-5m",
    "'(('",
    "[a-",
    "~",
    "null",
    ".nan",
    "0x1F",
    "é中",
    "\\u0000",
    ": |\n  ",
    "? ",
    "<<: *a",
    "\n",
    "  ",
    "#",
];

fn mutate(text: &str, rng: &mut fastrand::Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..rng.usize(1..4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.usize(..lines.len());
        match rng.u8(..5) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let copy = lines[i].clone();
                lines.insert(rng.usize(..=lines.len()), copy);
            }
            2 => {
                let line = &mut lines[i];
                let cut = rng.usize(..=line.len());
                let cut = (0..=cut)
                    .rev()
                    .find(|c| line.is_char_boundary(*c))
                    .unwrap_or(0);
                line.insert_str(cut, TOKENS[rng.usize(..TOKENS.len())]);
            }
            3 => {
                let line = &mut lines[i];
                let keep = line.trim_start().len();
                let indent = " ".repeat(rng.usize(..8));
                *line = format!("{indent}{}", &line[line.len() - keep..]);
            }
            _ => {
                // A value replaced by a token: keys keep their place.
                if let Some(colon) = lines[i].find(": ") {
                    lines[i].truncate(colon + 2);
                    lines[i].push_str(TOKENS[rng.usize(..TOKENS.len())]);
                }
            }
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_configs_load_or_fail_with_an_error_never_panic() {
    let mut seeds: Vec<String> = vec![DEFAULT_CONFIG.to_string()];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/config");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(entry.path()) {
            seeds.push(text);
        }
    }
    let mut rng = fastrand::Rng::with_seed(0x1f_e2_40_0c);
    let (mut loaded, mut refused) = (0, 0);
    for round in 0..20_000 {
        let seed = &seeds[round % seeds.len()];
        let text = mutate(seed, &mut rng);
        let result = std::panic::catch_unwind(|| Config::load_str(&text, None).map(|_| ()));
        match result {
            Ok(Ok(())) => loaded += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty(), "an error says something");
                refused += 1;
            }
            Err(_) => panic!("the config loader panicked on:\n{text}"),
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "mutations both load and fail ({loaded}/{refused})"
    );
}
