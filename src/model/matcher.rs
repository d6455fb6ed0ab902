//! Label matchers (`name="v"`, `!=`, `=~`, `!~`), in the syntax Alertmanager's
//! `matchers:` and PromQL selectors share. Regexes are fully anchored.

use std::fmt;

/// How a matcher compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Comparison.
    pub op: MatchOp,
    /// Value or regex source.
    pub value: String,
    regex: Option<regex::Regex>,
}

/// A matcher that could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad matcher {text:?}: {reason}")]
pub struct MatcherError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher; regexes are anchored as `^(?:re)$`.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| MatcherError {
                    text: format!("{name}{op}{value:?}"),
                    reason: format!("invalid regex: {e}"),
                })?,
            ),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses `name="value"` (quotes optional, as Alertmanager allows).
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let err = |reason: &str| MatcherError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let t = text
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .trim();
        let pos = t
            .find(['=', '!'])
            .ok_or_else(|| err("expected one of = != =~ !~"))?;
        let name = t[..pos].trim();
        let rest = &t[pos..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(err("expected one of = != =~ !~"));
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
        {
            return Err(err("label name must be letters, digits and _"));
        }
        let value = value.trim();
        let value = if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            unescape(&value[1..value.len() - 1])
        } else if value.contains('"') {
            return Err(err("unbalanced quotes"));
        } else {
            value.to_string()
        };
        Matcher::new(name, op, &value)
    }

    /// Whether `value` (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }

    /// Whether a label set matches (absent labels count as empty).
    pub fn matches_labels(&self, labels: &super::Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op, self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alertmanager_forms() {
        let m = Matcher::parse(r#"severity="critical""#).unwrap();
        assert!(m.matches("critical") && !m.matches("warning"));
        let m = Matcher::parse("alertname=~Gpu.*").unwrap();
        assert!(m.matches("GpuHot") && !m.matches("xGpu"));
        let m = Matcher::parse(r#"{team!="ml"}"#).unwrap();
        assert!(m.matches("") && !m.matches("ml"));
        assert!(Matcher::parse("no operator").is_err());
        assert!(Matcher::parse("a=~(").is_err());
    }
}
