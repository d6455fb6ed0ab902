//! `${VAR}` expansion from the environment, done on the raw text so that
//! line numbers in later messages stay right.

use super::Diagnostic;

/// Replaces `${NAME}` (NAME = `[A-Za-z_][A-Za-z0-9_]*`) with the variable's value;
/// `$${NAME}` stays literal as `${NAME}`. Other `$` uses (`$1`, `${1}` in relabel
/// replacements) are left alone. An unset variable is an error at its position.
pub fn expand_env(
    text: &str,
    file: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<Diagnostic>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        // Comments are documentation: leave `${...}` in them alone.
        let code_end = comment_start(line).unwrap_or(line.len());
        let (code, comment) = line.split_at(code_end);
        let mut rest = code;
        let mut col = 1;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            col += rest[..i].chars().count();
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
                col += 3;
                continue;
            }
            match env_reference(after) {
                Some((name, len)) => {
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => errors.push(Diagnostic {
                            file: file.to_string(),
                            line: line_no + 1,
                            column: col,
                            message: format!(
                                "environment variable {name} is not set (referenced as ${{{name}}}; write $${{{name}}} for a literal)"
                            ),
                        }),
                    }
                    rest = &after[len..];
                    col += after[..len].chars().count();
                }
                None => {
                    out.push('$');
                    rest = &after[1..];
                    col += 1;
                }
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// `${NAME}` at the start of `s`: the name and the reference's byte length.
fn env_reference(s: &str) -> Option<(&str, usize)> {
    let inner = s.strip_prefix("${")?;
    let end = inner.find('}')?;
    let name = &inner[..end];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((name, end + 3))
}

/// Byte offset of a YAML comment (`#` at line start or after whitespace,
/// outside quotes).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote = None::<char>;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return Some(i),
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn expands_set_variables_and_keeps_others() {
        let text = "a: ${TOKEN}\nb: $1 ${1} $${TOKEN}\n# ${UNSET} in a comment\n";
        let out = expand_env(text, "f", env).unwrap();
        assert_eq!(out, "a: s3cret\nb: $1 ${1} ${TOKEN}\n# ${UNSET} in a comment\n");
    }

    #[test]
    fn unset_variable_is_an_error_with_position() {
        let err = expand_env("x: 1\nkey: ${MISSING}\n", "f.yml", env).unwrap_err();
        assert_eq!(err[0].to_string().split(": environment").next().unwrap(), "f.yml:2:6");
    }
}
