//! Go's string-literal semantics for PromQL queries.
//!
//! In Prometheus a string literal is a Go string: a sequence of bytes. The
//! escapes `\xNN` and `\NNN` (octal) stand for one *byte* each, so `"\xff"`
//! is the single byte 0xFF (not valid UTF-8) and `"\xc3\xbf"` is the two
//! bytes of `ÿ`. The `promql-parser` crate decodes into Rust strings and
//! reads those escapes as code points instead (`"\xff"` becomes `ÿ`,
//! `"\xc3\xbf"` becomes `Ã¿`). Before parsing, [`normalise`] decodes every
//! quoted literal that holds such an escape of a byte ≥ 0x80 the way Go
//! does and writes it back as an equivalent literal the parser reads the
//! same way. Bytes that do not form valid UTF-8 become U+FFFD (what
//! Prometheus' JSON output shows for them), and the resulting strings are
//! remembered, so the engine can reject them where Prometheus checks for
//! valid UTF-8 (label names, regular expressions).

use std::borrow::Cow;
use std::collections::HashSet;

/// A query whose string literals decode as Go decodes them.
#[derive(Debug)]
pub(crate) struct Normalised<'a> {
    /// The query text to hand to the parser.
    pub text: Cow<'a, str>,
    /// Decoded values of literals that are not valid UTF-8 in Go (with
    /// U+FFFD in place of the stray bytes). A literal written with U+FFFD
    /// itself and equal to one of these is treated the same way.
    pub invalid_utf8: HashSet<String>,
}

/// A string value during evaluation, with whether Go would see valid UTF-8.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GoString {
    /// The decoded text (U+FFFD where Go holds stray bytes).
    pub text: String,
    /// Whether the Go string is valid UTF-8.
    pub valid_utf8: bool,
}

impl GoString {
    /// Whether Prometheus 3 (UTF-8 name validation) accepts this as a label
    /// name: not empty, valid UTF-8.
    pub fn is_valid_label_name(&self) -> bool {
        self.valid_utf8 && !self.text.is_empty()
    }
}

/// Rewrites the literals of `query` whose Go meaning the parser would get
/// wrong; everything else, comments and raw (backtick) strings included,
/// stays byte for byte.
pub(crate) fn normalise(query: &str) -> Normalised<'_> {
    let bytes = query.as_bytes();
    let mut out: Option<String> = None;
    let mut invalid_utf8 = HashSet::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                i = find(bytes, i + 1, |b| b == b'\n').unwrap_or(bytes.len());
            }
            b'`' => {
                i = find(bytes, i + 1, |b| b == b'`').map_or(bytes.len(), |j| j + 1);
            }
            quote @ (b'"' | b'\'') => {
                let Some(end) = quoted_end(bytes, i + 1, quote) else {
                    // Unterminated: the parser reports it.
                    break;
                };
                let inner = &query[i + 1..end];
                if let Some(lit) = decode_go(inner, quote).filter(|d| d.byte_escape) {
                    let text = match String::from_utf8(lit.bytes) {
                        Ok(s) => s,
                        Err(e) => {
                            let s = String::from_utf8_lossy(e.as_bytes()).into_owned();
                            invalid_utf8.insert(s.clone());
                            s
                        }
                    };
                    let o = out.get_or_insert_with(|| String::with_capacity(query.len()));
                    o.push_str(&query[copied..i]);
                    requote(&text, o);
                    copied = end + 1;
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    let text = match out {
        Some(mut o) => {
            o.push_str(&query[copied..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(query),
    };
    Normalised { text, invalid_utf8 }
}

fn find(bytes: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    bytes[from..]
        .iter()
        .position(|&b| pred(b))
        .map(|p| from + p)
}

/// Index of the closing quote of a literal whose body starts at `from`.
fn quoted_end(bytes: &[u8], from: usize, quote: u8) -> Option<usize> {
    let mut j = from;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'\n' => return None,
            b if b == quote => return Some(j),
            _ => j += 1,
        }
    }
    None
}

struct Decoded {
    bytes: Vec<u8>,
    /// Whether a `\x` or octal escape gave a byte ≥ 0x80 (where Go and the
    /// parser disagree).
    byte_escape: bool,
}

/// The bytes Go's `strconv.Unquote` gives for the body of a quoted literal;
/// `None` for a malformed escape (the parser reports those).
fn decode_go(inner: &str, quote: u8) -> Option<Decoded> {
    let b = inner.as_bytes();
    let mut out = Decoded {
        bytes: Vec::with_capacity(b.len()),
        byte_escape: false,
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.bytes.push(b[i]);
            i += 1;
            continue;
        }
        let c = *b.get(i + 1)?;
        i += 2;
        match c {
            b'a' => out.bytes.push(0x07),
            b'b' => out.bytes.push(0x08),
            b'f' => out.bytes.push(0x0c),
            b'n' => out.bytes.push(b'\n'),
            b'r' => out.bytes.push(b'\r'),
            b't' => out.bytes.push(b'\t'),
            b'v' => out.bytes.push(0x0b),
            b'\\' => out.bytes.push(b'\\'),
            b'\'' | b'"' if c == quote => out.bytes.push(c),
            b'x' => {
                let v = radix(b.get(i..i + 2)?, 16)?;
                i += 2;
                out.byte_escape |= v >= 0x80;
                out.bytes.push(v as u8);
            }
            b'u' | b'U' => {
                let n = if c == b'u' { 4 } else { 8 };
                let v = radix(b.get(i..i + n)?, 16)?;
                i += n;
                let ch = char::from_u32(v)?;
                let mut buf = [0u8; 4];
                out.bytes
                    .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            b'0'..=b'7' => {
                let v = radix(b.get(i - 1..i + 2)?, 8)?;
                i += 2;
                if v > 255 {
                    return None;
                }
                out.byte_escape |= v >= 0x80;
                out.bytes.push(v as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn radix(digits: &[u8], radix: u32) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let d = (d as char).to_digit(radix)?;
        acc.checked_mul(radix)?.checked_add(d)
    })
}

/// Writes `text` as a double-quoted literal the parser decodes back to `text`.
fn requote(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed_string(text: &str) -> String {
        match promql_parser::parser::parse(text).expect("parses") {
            promql_parser::parser::Expr::StringLiteral(s) => s.val,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn byte_escapes_decode_as_go_bytes() {
        // Two escaped bytes forming one UTF-8 character: Go reads `ÿ`.
        let n = normalise(r#""\xc3\xbf""#);
        assert_eq!(parsed_string(&n.text), "ÿ");
        assert!(n.invalid_utf8.is_empty());
        // Octal escapes are bytes too.
        assert_eq!(parsed_string(&normalise(r#"'\303\277'"#).text), "ÿ");
        // A lone 0xFF is not UTF-8: U+FFFD stands for it and it is remembered.
        let n = normalise(r#"label_replace(m, "\xff", "", "src", "(.*)")"#);
        assert_eq!(n.invalid_utf8, HashSet::from(["\u{fffd}".to_string()]));
        assert!(n.text.contains("\"\u{fffd}\""));
        assert!(promql_parser::parser::parse(&n.text).is_ok());
    }

    #[test]
    fn other_literals_comments_and_raw_strings_stay() {
        for q in [
            r#"m{a="\x41\u00ff\n\"q"} # "\xff" in a comment"#,
            r"label_replace(m, `\xff`, '', 's', '.*')",
            r#"m{a="unterminated \xff"#,
            r#""\xZZ""#,
        ] {
            let n = normalise(q);
            assert!(matches!(n.text, Cow::Borrowed(_)), "{q}");
            assert!(n.invalid_utf8.is_empty(), "{q}");
        }
    }

    #[test]
    fn rewritten_literals_keep_quotes_backslashes_and_controls() {
        let n = normalise(r#"x{a="\"\\\t\xff"} + y{b='it\'s'}"#);
        assert_eq!(
            n.invalid_utf8,
            HashSet::from(["\"\\\t\u{fffd}".to_string()])
        );
        let e = promql_parser::parser::parse(&n.text).expect("parses");
        let text = e.to_string();
        assert!(text.contains("it's"), "{text}");
    }
}
