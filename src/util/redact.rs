//! The one place that decides what of a URL or a message may leave the
//! process. Robot webhooks carry their credential in the URL (DingTalk
//! `access_token` and `sign`, WeCom `key`, Feishu's hook id), remote_write
//! endpoints in query strings and user info; every log line, stored error,
//! API answer, page and metric label that can hold one goes through here.
//!
//! The rules are plain string rules, so they also hold for URLs that do not
//! parse: every query value, the user info, the fragment, and the path
//! segment after a known token segment become [`SECRET`].

/// What a redacted value is replaced with.
pub const SECRET: &str = "<secret>";

/// Path segments whose next segment is a credential: Feishu/Lark
/// `/bot/v2/hook/<id>`, Slack-style `/hooks/<id>`, and `/<name>/<value>`
/// forms of the query names below.
const TOKEN_SEGMENTS: &[&str] = &[
    "hook",
    "hooks",
    "access_token",
    "key",
    "sign",
    "token",
    "secret",
];

/// Names whose `name=value` pairs are credentials even outside a URL
/// (an error message that quotes a query string).
const TOKEN_NAMES: &[&str] = &["access_token", "key", "sign", "token", "secret", "password"];

/// `url` with its user info, query values, fragment and token path segments
/// replaced by [`SECRET`]; scheme, host, port and the rest of the path stay.
///
/// `https://oapi.dingtalk.com/robot/send?access_token=t&sign=s` becomes
/// `https://oapi.dingtalk.com/robot/send?access_token=<secret>&sign=<secret>`.
pub fn url(url: &str) -> String {
    let (rest, fragment) = match url.split_once('#') {
        Some((r, _)) => (r, true),
        None => (url, false),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (scheme, after_scheme) = match before_query.find("://") {
        Some(i) => before_query.split_at(i + 3),
        None => ("", before_query),
    };
    let (authority, path) = match after_scheme.find('/') {
        Some(i) if !scheme.is_empty() => after_scheme.split_at(i),
        _ if !scheme.is_empty() => (after_scheme, ""),
        _ => ("", after_scheme),
    };
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(scheme);
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str(SECRET);
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(&redact_path(path));
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    if fragment {
        out.push('#');
        out.push_str(SECRET);
    }
    out
}

fn redact_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut secret_next = false;
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase();
        // Telegram-style `bot<id>:<token>` segments.
        let telegram = lower.starts_with("bot") && segment.contains(':');
        if (secret_next && !segment.is_empty()) || telegram {
            out.push(SECRET);
        } else {
            out.push(segment);
        }
        secret_next = TOKEN_SEGMENTS.contains(&lower.as_str());
    }
    out.join("/")
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}={SECRET}"),
            None if pair.is_empty() => String::new(),
            None => SECRET.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Free text (an error message, a log line) with every URL in it passed
/// through [`url`] and every `name=value` pair of a known credential name
/// (`access_token`, `key`, `sign`, `token`, `secret`, `password`) redacted.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')))
            .map_or(0, |p| p + 1);
        if start == i {
            // `://` without a scheme: not a URL; keep it and look further.
            out.push_str(&redact_pairs(&rest[..i + 3]));
            rest = &rest[i + 3..];
            continue;
        }
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '(' | ')'))
            .map_or(rest.len(), |e| i + e);
        out.push_str(&redact_pairs(&rest[..start]));
        out.push_str(&url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(&redact_pairs(rest));
    out
}

/// `name=value` pairs of [`TOKEN_NAMES`] in `text`, values redacted.
fn redact_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < text.len() {
        let found = TOKEN_NAMES.iter().find(|name| {
            let end = i + name.len();
            end < text.len()
                && bytes[end] == b'='
                && text.is_char_boundary(i)
                && text.is_char_boundary(end)
                && text[i..end].eq_ignore_ascii_case(name)
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        });
        match found {
            Some(name) => {
                let value_start = i + name.len() + 1;
                let value_end = text[value_start..]
                    .find(|c: char| {
                        c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ')' | ',' | ';')
                    })
                    .map_or(text.len(), |e| value_start + e);
                out.push_str(&text[i..value_start]);
                out.push_str(SECRET);
                i = value_end;
            }
            None => {
                let c = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + c]);
                i += c;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robot_urls_lose_their_tokens() {
        assert_eq!(
            url("https://oapi.dingtalk.com/robot/send?access_token=abc123&timestamp=1&sign=x%2By"),
            "https://oapi.dingtalk.com/robot/send?access_token=<secret>&timestamp=<secret>&sign=<secret>"
        );
        assert_eq!(
            url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-1"),
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<secret>"
        );
        assert_eq!(
            url("https://open.feishu.cn/open-apis/bot/v2/hook/2f0c-77aa"),
            "https://open.feishu.cn/open-apis/bot/v2/hook/<secret>"
        );
        assert_eq!(
            url("https://api.telegram.org/bot123:AAH/sendMessage"),
            "https://api.telegram.org/<secret>/sendMessage"
        );
    }

    #[test]
    fn user_info_query_and_fragment_go_host_and_path_stay() {
        assert_eq!(
            url("https://u:pw@vm.example:8428/api/v1/write?tenant=7#frag"),
            "https://<secret>@vm.example:8428/api/v1/write?tenant=<secret>#<secret>"
        );
        assert_eq!(
            url("http://vm:8428/api/v1/write"),
            "http://vm:8428/api/v1/write"
        );
        assert_eq!(url("http://h?flag"), "http://h?<secret>");
        // Not a URL at all: still no query value survives.
        assert_eq!(url("vm:8428?key=x"), "vm:8428?key=<secret>");
        assert_eq!(url(""), "");
    }

    #[test]
    fn urls_inside_messages_are_redacted() {
        let msg = "request failed: error sending request for url (http://127.0.0.1:9/robot/send?access_token=tok&sign=abc): connection refused";
        assert_eq!(
            text(msg),
            "request failed: error sending request for url (http://127.0.0.1:9/robot/send?access_token=<secret>&sign=<secret>): connection refused"
        );
        assert_eq!(
            text("bad reply for key=abc, monkey=ok, Sign=s2 token=t"),
            "bad reply for key=<secret>, monkey=ok, Sign=<secret> token=<secret>"
        );
        assert_eq!(text("plain ✓ text :// here"), "plain ✓ text :// here");
        assert_eq!(text("a://"), "a://");
    }
}
