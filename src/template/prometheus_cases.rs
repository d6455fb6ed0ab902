//! The cases Prometheus' own template tests (`template/template_test.go`)
//! cover, with Prometheus' expected output, for every function infermon
//! implements; then the documented differences.

use super::*;

fn nums(v: &[f64]) -> Value {
    Value::List(v.iter().map(|n| Value::Num(*n)).collect())
}

fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|s| Value::Str(s.to_string())).collect())
}

fn render(text: &str, dot: &Value) -> Result<String, TemplateError> {
    Template::parse(text)?.render(dot, &[])
}

const I64_MAX: f64 = i64::MAX as f64;
const U64_MAX: f64 = u64::MAX as f64;

#[test]
fn outputs_match_prometheus() {
    let range = |f: &str| format!("{{{{ range . }}}}{{{{ {f} . }}}}:{{{{ end }}}}");
    let cases: Vec<(String, Value, &str)> = vec![
        ("plain text".into(), Value::Nil, "plain text"),
        ("{{ 1 }}".into(), Value::Nil, "1"),
        // Outside HTML nothing is escaped.
        ("{{ \"<b>\" }}".into(), Value::Nil, "<b>"),
        ("{{ \"<b>\" | safeHtml }}".into(), Value::Nil, "<b>"),
        // stripPort: net.SplitHostPort, the input when it cannot split.
        ("{{ \"foo.example.com\" | stripPort }}".into(), Value::Nil, "foo.example.com"),
        ("{{ \"foo.example.com:12345\" | stripPort }}".into(), Value::Nil, "foo.example.com"),
        ("{{ \"192.0.2.1\" | stripPort }}".into(), Value::Nil, "192.0.2.1"),
        ("{{ \"192.0.2.1:12345\" | stripPort }}".into(), Value::Nil, "192.0.2.1"),
        ("{{ \"2001:0DB8::1\" | stripPort }}".into(), Value::Nil, "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]:12345\" | stripPort }}".into(), Value::Nil, "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]::12345\" | stripPort }}".into(), Value::Nil, "[2001:0DB8::1]::12345"),
        // stripDomain keeps the port and leaves addresses alone.
        ("{{ \"foo.example.com\" | stripDomain }}".into(), Value::Nil, "foo"),
        ("{{ \"foo.example.com:12345\" | stripDomain }}".into(), Value::Nil, "foo:12345"),
        ("{{ \"192.0.2.1\" | stripDomain }}".into(), Value::Nil, "192.0.2.1"),
        ("{{ \"192.0.2.1:12345\" | stripDomain }}".into(), Value::Nil, "192.0.2.1:12345"),
        ("{{ \"2001:0DB8::1\" | stripDomain }}".into(), Value::Nil, "2001:0DB8::1"),
        ("{{ \"[2001:0DB8::1]:12345\" | stripDomain }}".into(), Value::Nil, "[2001:0DB8::1]:12345"),
        ("{{ \"[2001:0DB8::1]::12345\" | stripDomain }}".into(), Value::Nil, "[2001:0DB8::1]::12345"),
        ("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}".into(), Value::Nil, "xa"),
        (range("humanize"), nums(&[0.0, 1.0, 1234567.0, 0.12]), "0:1:1.235M:120m:"),
        (range("humanize"), strs(&["0.0", "1.0", "1234567.0", ".12"]), "0:1:1.235M:120m:"),
        (range("humanize"), nums(&[0.0, -1.0, 1.0, 1234567.0, I64_MAX]), "0:-1:1:1.235M:9.223E:"),
        (range("humanize"), nums(&[0.0, 1.0, 1234567.0, U64_MAX]), "0:1:1.235M:18.45E:"),
        (range("humanize1024"), nums(&[0.0, 1.0, 1048576.0, 0.12]), "0:1:1Mi:0.12:"),
        (range("humanize1024"), strs(&["0.0", "1.0", "1048576.0", ".12"]), "0:1:1Mi:0.12:"),
        (range("humanize1024"), nums(&[0.0, -1.0, 1.0, 1234567.0, I64_MAX]), "0:-1:1:1.177Mi:8Ei:"),
        (range("humanize1024"), nums(&[0.0, 1.0, 1234567.0, U64_MAX]), "0:1:1.177Mi:16Ei:"),
        (
            range("humanizeDuration"),
            nums(&[0.0, 1.0, 60.0, 3600.0, 86400.0, 86400.0 + 3600.0, -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0), 899.99]),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
        ),
        (
            range("humanizeDuration"),
            strs(&["0", "1", "60", "3600", "86400"]),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:",
        ),
        (
            range("humanizeDuration"),
            nums(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345]),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
        ),
        (
            range("humanizeDuration"),
            strs(&[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
        ),
        (range("humanizeDuration"), nums(&[0.0, -1.0, 1.0, 1234567.0]), "0s:-1s:1s:14d 6h 56m 7s:"),
        (
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}".into(),
            nums(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN]),
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}".into(),
            strs(&["+Inf", "-Inf", "NaN"]),
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}".into(),
            Value::Nil,
            "-22.22%:0%:12.35%:123.5%",
        ),
        (
            "{{ \"-0.22222\" | humanizePercentage }}:{{ \"0.0\" | humanizePercentage }}:{{ \"0.1234567\" | humanizePercentage }}:{{ \"1.23456\" | humanizePercentage }}".into(),
            Value::Nil,
            "-22.22%:0%:12.35%:123.5%",
        ),
        (range("humanizePercentage"), nums(&[0.0, -1.0, 1.0, 1234567.0, I64_MAX]), "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
        (range("humanizePercentage"), nums(&[0.0, 1.0, 1234567.0, U64_MAX]), "0%:100%:1.235e+08%:1.845e+21%:"),
        (
            range("humanizeTimestamp"),
            nums(&[0.0, -1.0, 1.0, 1234567.0, 9223372036.0]),
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
        ),
        ("{{ 1435065584.128 | humanizeTimestamp }}".into(), Value::Nil, "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ \"1435065584.128\" | humanizeTimestamp }}".into(), Value::Nil, "2015-06-23 13:19:44.128 +0000 UTC"),
        ("{{ \"aa bb CC\" | title }}".into(), Value::Nil, "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}".into(), Value::Nil, "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}".into(), Value::Nil, "aa bb cc"),
        ("{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}".into(), Value::Nil, "true false"),
    ];
    let mut wrong = Vec::new();
    for (text, dot, want) in &cases {
        match render(text, dot) {
            Ok(got) if got == *want => {}
            other => wrong.push(format!("{text}\n  want {want:?}\n  got  {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn errors_match_prometheus() {
    let parse_errors = [
        // A non-ASCII space inside an action.
        "{{\u{a0}}}",
        "{{",
    ];
    for text in parse_errors {
        assert!(Template::parse(text).is_err(), "{text:?} should not parse");
    }
    let run_errors: [(&str, Value); 6] = [
        ("{{ humanize \"one\" }}", Value::Nil),
        ("{{ humanize1024 \"one\" }}", Value::Nil),
        ("{{ humanizeDuration \"one\" }}", Value::Nil),
        ("{{ \"one\" | humanizePercentage }}", Value::Nil),
        // Timestamps whose nanoseconds overflow int64.
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            nums(&[i64::MIN as f64, I64_MAX]),
        ),
        (
            "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
            nums(&[U64_MAX]),
        ),
    ];
    for (text, dot) in run_errors {
        assert!(render(text, &dot).is_err(), "{text:?} should fail");
    }
}

/// Where infermon deliberately differs from Prometheus.
#[test]
fn documented_differences() {
    // A missing key prints as the empty string (`missingkey=zero`), not `<no value>`.
    assert_eq!(render("{{ .Foo }}", &Value::Nil).unwrap(), "");
    // Functions that query the store, HTML-page helpers and sub-templates are
    // refused when the rule file is checked, never rendered wrong.
    for text in [
        "{{ query \"1.5\" | first | value }}",
        "{{ range query \"metric\" | sortByLabel \"instance\" }}{{ end }}",
        "{{define \"x\"}}{{.arg0}}{{end}}{{template \"x\" (args 1 \"2\")}}",
        "{{ graphLink \"up\" }}",
        "{{ tableLink \"up\" }}",
        "{{ pathPrefix }}",
        "{{ externalURL }}",
        "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
        "{{ (1435065584.128 | toTime).Format \"2006\" }}",
    ] {
        let err = Template::parse(text).unwrap_err();
        assert!(err.0.contains("not"), "{text}: {err}");
    }
}

/// Random templates built from the engine's own tokens (a fixed seed, so a
/// failure repeats): parsing and rendering never panic. The cargo-fuzz
/// target `template` does the same with arbitrary bytes.
#[test]
fn random_templates_never_panic() {
    const PIECES: &[&str] = &[
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        "$value",
        "$labels",
        ".Labels",
        ".x",
        "$x :=",
        "$x",
        "|",
        "(",
        ")",
        "\"s\"",
        "`r`",
        "1",
        "-2.5e3",
        "0x1f",
        "nil",
        "true",
        "if",
        "else",
        "end",
        "range",
        "with",
        "$k, $v :=",
        "humanize",
        "humanizeDuration",
        "printf",
        "\"%5.2f %s %d %v %q %x %e %g %%\"",
        "index",
        "len",
        "eq",
        "lt",
        "and",
        "or",
        "not",
        "reReplaceAll",
        "match",
        "\"(a\"",
        "title",
        "stripPort",
        "stripDomain",
        "/*",
        "*/",
        "humanizeTimestamp",
        "humanize1024",
        "print",
        "\u{a0}",
        "{{/* c */}}",
        "'c'",
    ];
    let mut rng = fastrand::Rng::with_seed(0x1f2e_3d4c);
    let labels = crate::model::Labels::new([("instance", "gpu-07:8080")]);
    let external = BTreeMap::new();
    for _ in 0..20_000 {
        let n = rng.usize(1..24);
        let text: String = (0..n).map(|_| PIECES[rng.usize(..PIECES.len())]).collect();
        let _ = expand_alert_text(&text, &labels, &external, "http://x", rng.f64() * 1e6);
    }
    // Deep nesting is rendered or refused, never a stack overflow.
    let makers: [fn(usize) -> String; 3] = [
        |d| format!("{{{{ {}1{} }}}}", "(".repeat(d), ")".repeat(d)),
        |d| format!("{}x{}", "{{ if 1 }}".repeat(d), "{{ end }}".repeat(d)),
        |d| {
            format!(
                "{{{{ if 0 }}}}{}x{{{{ end }}}}",
                "{{ else if 0 }}".repeat(d)
            )
        },
    ];
    for make in makers {
        assert!(expand_alert_text(&make(50), &labels, &external, "http://x", 0.0).is_ok());
        let err = expand_alert_text(&make(100_000), &labels, &external, "http://x", 0.0);
        assert!(err.unwrap_err().0.contains("nested more than"));
    }
}
