//! Problems found in a file, with their `file:line:col`: the one shape
//! config, rule-file and template checks report in.

use std::fmt;

/// One problem found in a file, printed as `file:line:col: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File the problem is in.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Turns a YAML/serde error into a diagnostic at the right `line:col`,
/// prefixed with the path of the offending key (`global.scrape_interval`).
pub fn yaml_diagnostic(
    err: serde_path_to_error::Error<serde_yaml_ng::Error>,
    text: &str,
    file: &str,
) -> Diagnostic {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let (line, column) = inner
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let (line, column) = refine_position(text, &path, line, column);
    let mut message = inner.to_string();
    // serde_yaml appends " at line X column Y"; the prefix already says it.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    // serde_yaml prefixes its own (shorter) path; ours is the full one.
    if let Some((prefix, rest)) = message.split_once(": ")
        && path.starts_with(prefix)
    {
        message = rest.to_string();
    }
    let message = match path.as_str() {
        "" | "." => message,
        "?" => format!("invalid YAML: {message}"),
        p => format!("{p}: {message}"),
    };
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

/// serde_yaml reports errors raised inside a value (a bad duration, say) at
/// the start of the enclosing mapping; move to the offending key when the
/// path's last segment names one that appears at or after that position.
pub fn refine_position(text: &str, path: &str, line: usize, column: usize) -> (usize, usize) {
    let Some(key) = path
        .rsplit('.')
        .next()
        .filter(|k| !k.is_empty() && !k.contains('['))
    else {
        return (line, column);
    };
    let needle = format!("{key}:");
    for (i, l) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let trimmed = l.trim_start();
        if trimmed.starts_with(&needle) || trimmed.starts_with(&format!("- {needle}")) {
            let col = l.len() - trimmed.len() + 1 + if trimmed.starts_with('-') { 2 } else { 0 };
            return (i + 1, col);
        }
    }
    (line, column)
}

/// 1-based line and column of the first occurrence of `needle`, skipping
/// comment lines; (1, 1) when absent.
pub fn locate(text: &str, needle: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if let Some(col) = line.find(needle) {
            return (i + 1, line[..col].chars().count() + 1);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_skips_comments_and_counts_characters() {
        let text = "# rule_files: old\nrule_files:\n  - 'ä.yml'\n";
        assert_eq!(locate(text, "rule_files"), (2, 1));
        assert_eq!(locate(text, ".yml"), (3, 7));
        assert_eq!(locate(text, "absent"), (1, 1));
    }
}
