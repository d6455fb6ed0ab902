//! The human-readable message of a notification, in English or Simplified
//! Chinese (`alerting.language`): a title like `[FIRING:2] HighLatency
//! model=bge-m3`, a markdown body for chat robots, plain text and HTML for
//! email. A receiver may override title and body with Go templates over
//! Alertmanager's data (`.Status`, `.Alerts`, `.CommonLabels`, …).

use std::collections::BTreeMap;

use super::notification::{Notification, NotifiedAlert};
use crate::template::{Template, TemplateError, Value};

/// Language of the built-in templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Language {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

/// A rendered message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// One line.
    pub title: String,
    /// Markdown body (chat robots).
    pub markdown: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body (email).
    pub html: String,
}

struct Words {
    firing: &'static str,
    resolved: &'static str,
    firing_section: &'static str,
    resolved_section: &'static str,
    since: &'static str,
    ended: &'static str,
    labels: &'static str,
    open: &'static str,
}

const EN: Words = Words {
    firing: "FIRING",
    resolved: "RESOLVED",
    firing_section: "Firing",
    resolved_section: "Resolved",
    since: "Since",
    ended: "Resolved at",
    labels: "Labels",
    open: "Open infermon",
};

const ZH: Words = Words {
    firing: "告警",
    resolved: "已恢复",
    firing_section: "告警中",
    resolved_section: "已恢复",
    since: "开始时间",
    ended: "恢复时间",
    labels: "标签",
    open: "打开 infermon",
};

fn words(lang: Language) -> &'static Words {
    match lang {
        Language::En => &EN,
        Language::Zh => &ZH,
    }
}

fn when(rfc: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc.to_string())
}

/// `[FIRING:2] HighLatency model=bge-m3`.
pub fn title(n: &Notification, lang: Language) -> String {
    let w = words(lang);
    let firing = n.firing().count();
    let head = if n.status == "firing" {
        format!("[{}:{firing}]", w.firing)
    } else {
        format!("[{}]", w.resolved)
    };
    let mut parts = vec![head];
    let labels = if n.group_labels.is_empty() {
        &n.common_labels
    } else {
        &n.group_labels
    };
    if let Some(name) = labels.get("alertname") {
        parts.push(name.clone());
    }
    parts.extend(
        labels
            .iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| format!("{k}={v}")),
    );
    parts.join(" ")
}

fn headline(a: &NotifiedAlert) -> String {
    a.annotations
        .get("summary")
        .or_else(|| a.annotations.get("message"))
        .cloned()
        .unwrap_or_else(|| a.labels.get("alertname").unwrap_or("alert").to_string())
}

fn label_line(a: &NotifiedAlert) -> String {
    a.labels
        .iter()
        .filter(|l| l.name != "alertname")
        .map(|l| format!("{}={}", l.name, l.value))
        .collect::<Vec<_>>()
        .join(", ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the built-in message.
pub fn render_message(n: &Notification, lang: Language) -> Message {
    let w = words(lang);
    let title = title(n, lang);
    let mut md = format!("### {title}\n");
    let mut text = format!("{title}\n");
    let mut html = format!("<h2>{}</h2>\n", html_escape(&title));
    let sections: [(&str, Vec<&NotifiedAlert>); 2] = [
        (w.firing_section, n.firing().collect()),
        (w.resolved_section, n.resolved().collect()),
    ];
    for (name, alerts) in sections {
        if alerts.is_empty() {
            continue;
        }
        md.push_str(&format!("\n**{name} ({})**\n", alerts.len()));
        text.push_str(&format!("\n{name} ({}):\n", alerts.len()));
        html.push_str(&format!(
            "<h3>{} ({})</h3>\n<ul>\n",
            html_escape(name),
            alerts.len()
        ));
        for a in alerts {
            let head = headline(a);
            let desc = a
                .annotations
                .get("description")
                .cloned()
                .unwrap_or_default();
            let time = if a.status == "resolved" {
                format!("{}: {}", w.ended, when(&a.ends_at))
            } else {
                format!("{}: {}", w.since, when(&a.starts_at))
            };
            let labels = label_line(a);
            md.push_str(&format!("\n- **{head}**\n"));
            text.push_str(&format!("- {head}\n"));
            html.push_str(&format!("<li><b>{}</b>", html_escape(&head)));
            if !desc.is_empty() {
                md.push_str(&format!("  {desc}\n"));
                text.push_str(&format!("  {desc}\n"));
                html.push_str(&format!("<br>{}", html_escape(&desc)));
            }
            md.push_str(&format!("  > {}: {labels}\n  > {time}\n", w.labels));
            text.push_str(&format!("  {}: {labels}\n  {time}\n", w.labels));
            html.push_str(&format!(
                "<br><small>{}: {}<br>{}</small></li>\n",
                w.labels,
                html_escape(&labels),
                html_escape(&time)
            ));
        }
        html.push_str("</ul>\n");
    }
    if !n.external_url.is_empty() {
        let url = format!("{}/alerts", n.external_url.trim_end_matches('/'));
        md.push_str(&format!("\n[{}]({url})\n", w.open));
        text.push_str(&format!("\n{}: {url}\n", w.open));
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>\n",
            html_escape(&url),
            w.open
        ));
    }
    Message {
        title,
        markdown: md,
        text,
        html,
    }
}

fn str_map(m: &BTreeMap<String, String>) -> Value {
    Value::string_map(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn alert_value(a: &NotifiedAlert) -> Value {
    let mut m = BTreeMap::new();
    m.insert("Status".into(), Value::Str(a.status.clone()));
    m.insert(
        "Labels".into(),
        Value::string_map(a.labels.iter().map(|l| (l.name.as_str(), l.value.as_str()))),
    );
    m.insert("Annotations".into(), str_map(&a.annotations));
    m.insert("StartsAt".into(), Value::Str(a.starts_at.clone()));
    m.insert("EndsAt".into(), Value::Str(a.ends_at.clone()));
    m.insert("GeneratorURL".into(), Value::Str(a.generator_url.clone()));
    m.insert("Fingerprint".into(), Value::Str(a.fingerprint.clone()));
    Value::Map(m)
}

/// Renders a receiver's own template over Alertmanager's data:
/// `.Status`, `.Receiver`, `.Alerts` (each with `.Status`, `.Labels`,
/// `.Annotations`, `.StartsAt`, `.EndsAt`, `.GeneratorURL`), `.Firing`,
/// `.Resolved`, `.GroupLabels`, `.CommonLabels`, `.CommonAnnotations`, `.ExternalURL`.
pub fn render_custom(src: &str, n: &Notification) -> Result<String, TemplateError> {
    let t = Template::parse(src)?;
    let mut m = BTreeMap::new();
    m.insert("Status".into(), Value::Str(n.status.clone()));
    m.insert("Receiver".into(), Value::Str(n.receiver.clone()));
    m.insert(
        "Alerts".into(),
        Value::List(n.alerts.iter().map(alert_value).collect()),
    );
    m.insert(
        "Firing".into(),
        Value::List(n.firing().map(alert_value).collect()),
    );
    m.insert(
        "Resolved".into(),
        Value::List(n.resolved().map(alert_value).collect()),
    );
    m.insert("GroupLabels".into(), str_map(&n.group_labels));
    m.insert("CommonLabels".into(), str_map(&n.common_labels));
    m.insert("CommonAnnotations".into(), str_map(&n.common_annotations));
    m.insert("ExternalURL".into(), Value::Str(n.external_url.clone()));
    m.insert("GroupKey".into(), Value::Str(n.group_key.clone()));
    t.render(&Value::Map(m), &[])
}

/// Title and markdown for a robot: the receiver's templates where given,
/// else the built-in ones.
pub fn robot_message(
    n: &Notification,
    lang: Language,
    title_tmpl: Option<&str>,
    text_tmpl: Option<&str>,
) -> (String, String) {
    let built_in = render_message(n, lang);
    let render = |src: Option<&str>, fallback: &str| match src {
        Some(s) => render_custom(s, n).unwrap_or_else(|e| format!("{fallback}\n\n({e})")),
        None => fallback.to_string(),
    };
    (
        render(title_tmpl, &built_in.title),
        render(text_tmpl, &built_in.markdown),
    )
}

/// Cuts `s` to at most `max_bytes` bytes of UTF-8 at a character boundary,
/// ending with `note` when something was cut.
pub fn truncate_utf8(s: &str, max_bytes: usize, note: &str) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let budget = max_bytes.saturating_sub(note.len());
    let mut end = budget.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::Alert;
    use crate::model::Labels;

    pub(crate) fn sample() -> Notification {
        let a = |name: &str, model: &str, ends: i64| Alert {
            labels: Labels::new([
                ("alertname", name),
                ("model", model),
                ("severity", "warning"),
            ]),
            annotations: [("summary".to_string(), format!("P95 of {model} is 2.5s"))].into(),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: ends,
            generator_url: "http://x/alerts".into(),
        };
        let alerts = vec![
            a("HighLatency", "bge-m3", i64::MAX),
            a("HighLatency", "minilm", 1_700_000_100_000),
        ];
        Notification::new(
            "oncall",
            "0:{}",
            &Labels::new([("alertname", "HighLatency")]),
            &alerts,
            1_700_000_200_000,
            "http://infermon:8080",
        )
    }

    #[test]
    fn english_and_chinese() {
        let n = sample();
        let en = render_message(&n, Language::En);
        assert_eq!(en.title, "[FIRING:1] HighLatency");
        assert!(
            en.markdown.contains("**Firing (1)**") && en.markdown.contains("**Resolved (1)**"),
            "{}",
            en.markdown
        );
        assert!(en.markdown.contains("P95 of bge-m3 is 2.5s"));
        assert!(en.html.contains("<h3>Firing (1)</h3>"));
        let zh = render_message(&n, Language::Zh);
        assert_eq!(zh.title, "[告警:1] HighLatency");
        assert!(
            zh.markdown.contains("**告警中 (1)**") && zh.markdown.contains("恢复时间"),
            "{}",
            zh.markdown
        );
    }

    #[test]
    fn custom_template_and_truncation() {
        let n = sample();
        let out = render_custom("{{ .Status | toUpper }}: {{ range .Firing }}{{ .Labels.model }} {{ end }}({{ len .Alerts }})", &n).unwrap();
        assert_eq!(out, "FIRING: bge-m3 (2)");
        let t = truncate_utf8("告警告警告警", 10, "…");
        assert!(t.len() <= 10 && t.ends_with('…'), "{t}");
        assert_eq!(truncate_utf8("short", 10, "…"), "short");
    }
}
