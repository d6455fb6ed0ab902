//! Grafana dashboard JSON, the subset infermon draws: panels with Prometheus
//! targets, units, thresholds, grid positions, rows and template variables.
//! Built-in dashboards use the same format, so users can edit or replace them.

use serde::Deserialize;

/// A dashboard.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Dashboard {
    /// Title shown on the page.
    pub title: String,
    /// Unique id (URL name), when given.
    pub uid: Option<String>,
    /// Panels, possibly rows holding panels.
    pub panels: Vec<Panel>,
    /// Template variables.
    pub templating: Templating,
    /// Links shown under the title.
    pub links: Vec<Link>,
    /// Tags (dashboard links of type `dashboards` pick dashboards by tag).
    pub tags: Vec<String>,
}

/// A dashboard or panel link.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Link {
    /// Text.
    pub title: String,
    /// `link` (a URL) or `dashboards` (every dashboard with one of `tags`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Target; variables are substituted.
    pub url: String,
    /// For `dashboards` links.
    pub tags: Vec<String>,
    /// Open in a new tab.
    #[serde(rename = "targetBlank")]
    pub target_blank: bool,
}

/// `templating:`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Templating {
    /// The variables.
    pub list: Vec<Variable>,
}

/// A template variable (`$model`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Variable {
    /// Name used as `$name`.
    pub name: String,
    /// `query`, `custom`, `interval`, `constant`, `datasource`…
    #[serde(rename = "type")]
    pub kind: String,
    /// For `query`: `label_values(metric, label)` (string or `{query: ...}`); for `custom`: `a,b,c`.
    pub query: serde_json::Value,
    /// Offer "All".
    #[serde(rename = "includeAll")]
    pub include_all: bool,
    /// Label shown.
    pub label: Option<String>,
    /// The value saved with the dashboard (`{"value": "x"}`), the default choice.
    pub current: serde_json::Value,
    /// Several values may be picked at once.
    pub multi: bool,
    /// What "All" stands for (default `.*`).
    #[serde(rename = "allValue")]
    pub all_value: Option<String>,
    /// 2: hidden from the page (constants always are).
    pub hide: u8,
    /// Options saved with the dashboard (custom and interval variables).
    pub options: Vec<serde_json::Value>,
    /// Filter of a query variable's values (`/pattern/`; a capture group picks the part).
    pub regex: String,
    /// An interval variable offers `auto` (the panel's `$__interval`).
    pub auto: bool,
}

impl Variable {
    /// The saved values (one, several, or `$__all`).
    pub fn saved(&self) -> Vec<String> {
        match self.current.get("value") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The query text (a string, or `{query: ...}` as Grafana 9+ saves it).
    pub fn query_text(&self) -> String {
        self.query
            .as_str()
            .or_else(|| self.query.get("query").and_then(|q| q.as_str()))
            .unwrap_or("")
            .to_string()
    }
}

/// One panel (or a row with `panels`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Panel {
    /// `timeseries`, `graph`, `stat`, `gauge`, `bargauge`, `heatmap`, `histogram`, `barchart`, `table`, `row`…
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Layout on Grafana's 24-column grid.
    #[serde(rename = "gridPos")]
    pub grid_pos: GridPos,
    /// Queries.
    pub targets: Vec<Target>,
    /// Units, thresholds, stacking.
    #[serde(rename = "fieldConfig")]
    pub field_config: FieldConfig,
    /// Data source; panels of non-Prometheus sources are shown as unsupported.
    pub datasource: serde_json::Value,
    /// Panels inside a row.
    pub panels: Vec<Panel>,
    /// Grafana's older graph panel keeps its unit here.
    pub yaxes: Vec<serde_json::Value>,
    /// Panel description.
    pub description: Option<String>,
    /// Draw the panel once per value of this variable.
    pub repeat: Option<String>,
    /// `h` (side by side, the default) or `v` (stacked).
    #[serde(rename = "repeatDirection")]
    pub repeat_direction: Option<String>,
    /// Most repeated panels side by side.
    #[serde(rename = "maxPerRow")]
    pub max_per_row: Option<u32>,
    /// Links shown on the panel.
    pub links: Vec<Link>,
    /// Panel options (`content` and `mode` of text panels, `graphMode` of stats…).
    pub options: serde_json::Value,
    /// Text panels before Grafana 7 keep their text here.
    pub content: Option<String>,
    /// A row drawn folded, its panels inside it.
    pub collapsed: bool,
    /// Set on built-in panels whose red threshold is an alert rule's threshold:
    /// the rule's name; loading fills the threshold from the rule.
    #[serde(rename = "infermonAlertThreshold")]
    pub alert_threshold: Option<String>,
    /// Grafana's data transformations (not applied; the panel says so).
    pub transformations: Vec<serde_json::Value>,
}

/// `gridPos`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(default)]
pub struct GridPos {
    /// Height in grid units (30 px each in Grafana).
    pub h: u32,
    /// Width in columns of 24.
    pub w: u32,
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
}

impl Default for GridPos {
    fn default() -> Self {
        GridPos {
            h: 8,
            w: 12,
            x: 0,
            y: 0,
        }
    }
}

/// A query.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Target {
    /// PromQL.
    pub expr: String,
    /// Legend template (`{{model}} p95`).
    #[serde(rename = "legendFormat")]
    pub legend_format: String,
    /// `heatmap` for bucket series.
    pub format: Option<String>,
    /// Hidden targets are not drawn.
    pub hide: bool,
    /// Query ref.
    #[serde(rename = "refId")]
    pub ref_id: String,
}

/// `fieldConfig`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldConfig {
    /// `defaults`.
    pub defaults: FieldDefaults,
}

/// `fieldConfig.defaults`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FieldDefaults {
    /// Unit (`s`, `bytes`, `percentunit`, `reqps`…).
    pub unit: Option<String>,
    /// Threshold steps.
    pub thresholds: Thresholds,
    /// Drawing options (stacking).
    pub custom: serde_json::Value,
    /// Decimals.
    pub decimals: Option<u32>,
    /// Fixed minimum.
    pub min: Option<f64>,
    /// Fixed maximum.
    pub max: Option<f64>,
}

/// `thresholds`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    /// Steps; the first has no value (the base colour).
    pub steps: Vec<ThresholdStep>,
}

/// One threshold step.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ThresholdStep {
    /// Colour name or hex.
    pub color: String,
    /// From this value on (null for the base).
    pub value: Option<f64>,
}

impl Panel {
    /// The unit, from fieldConfig or the old graph panel's y axis.
    pub fn unit(&self) -> String {
        self.field_config
            .defaults
            .unit
            .clone()
            .or_else(|| {
                self.yaxes
                    .first()
                    .and_then(|a| a.get("format"))
                    .and_then(|f| f.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "short".to_string())
    }

    /// Threshold values (the steps that have one).
    pub fn thresholds(&self) -> Vec<f64> {
        self.field_config
            .defaults
            .thresholds
            .steps
            .iter()
            .filter_map(|s| s.value)
            .collect()
    }

    /// Threshold steps as (from, colour); the base step has no value.
    pub fn threshold_steps(&self) -> Vec<(Option<f64>, String)> {
        self.field_config
            .defaults
            .thresholds
            .steps
            .iter()
            .map(|s| (s.value, s.color.clone()))
            .collect()
    }

    /// The data source's type or name, for the message of an unsupported one.
    pub fn datasource_name(&self) -> String {
        match &self.datasource {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(o) => o
                .get("type")
                .or_else(|| o.get("uid"))
                .and_then(|t| t.as_str())
                .unwrap_or("unknown")
                .to_string(),
            _ => "unknown".to_string(),
        }
    }

    /// Stacked areas requested.
    pub fn stacked(&self) -> bool {
        self.field_config
            .defaults
            .custom
            .get("stacking")
            .and_then(|s| s.get("mode"))
            .and_then(|m| m.as_str())
            == Some("normal")
    }

    /// Whether the datasource is Prometheus (or unset/default/a variable).
    pub fn is_prometheus(&self) -> bool {
        match &self.datasource {
            serde_json::Value::Null => true,
            serde_json::Value::String(s) => {
                s.is_empty()
                    || s.starts_with('$')
                    || s.to_lowercase().contains("prometheus")
                    || s == "default"
            }
            serde_json::Value::Object(o) => o
                .get("type")
                .and_then(|t| t.as_str())
                .map(|t| t == "prometheus" || t.starts_with('$'))
                .unwrap_or(true),
            _ => true,
        }
    }
}

impl Dashboard {
    /// Sets the top threshold step of every panel marked
    /// `infermonAlertThreshold: <alert>` to that alert's threshold (from
    /// `lookup`); an unknown alert is an error naming it.
    pub fn fill_alert_thresholds(
        &mut self,
        lookup: impl Fn(&str) -> Option<f64> + Copy,
    ) -> Result<(), String> {
        fn fill(p: &mut Panel, lookup: impl Fn(&str) -> Option<f64> + Copy) -> Result<(), String> {
            if let Some(alert) = &p.alert_threshold {
                let t = lookup(alert).ok_or_else(|| {
                    format!(
                        "panel {:?}: no built-in alert {alert:?} with a numeric threshold",
                        p.title
                    )
                })?;
                let steps = &mut p.field_config.defaults.thresholds.steps;
                match steps.iter_mut().rev().find(|s| s.value.is_some()) {
                    Some(top) => top.value = Some(t),
                    None => {
                        if steps.is_empty() {
                            steps.push(ThresholdStep {
                                color: "green".into(),
                                value: None,
                            });
                        }
                        steps.push(ThresholdStep {
                            color: "red".into(),
                            value: Some(t),
                        });
                    }
                }
            }
            for inner in &mut p.panels {
                fill(inner, lookup)?;
            }
            Ok(())
        }
        for p in &mut self.panels {
            fill(p, lookup)?;
        }
        Ok(())
    }

    /// Panels in layout order, rows flattened (a row's own panels follow it).
    pub fn flat_panels(&self) -> Vec<Panel> {
        let mut out = Vec::new();
        for p in &self.panels {
            out.push(p.clone());
            if p.kind == "row" {
                out.extend(p.panels.iter().cloned());
            }
        }
        out.sort_by_key(|p| (p.grid_pos.y, p.grid_pos.x));
        out
    }
}

/// Replaces `{{label}}` in a legend template with the series' label values;
/// an empty template gives the series' label set.
pub fn legend(template: &str, labels: &crate::model::Labels) -> String {
    if template.trim().is_empty() {
        return labels.to_string();
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find("}}") {
            Some(j) => {
                let name = rest[i + 2..i + 2 + j].trim();
                out.push_str(labels.get(name).unwrap_or(""));
                rest = &rest[i + 2 + j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A template variable's picked value(s), as substitution needs them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VarValue {
    /// Name used as `$name`.
    pub name: String,
    /// The picked values (several for a multi-value variable or "All").
    pub values: Vec<String>,
    /// "All" is picked.
    pub all: bool,
    /// What "All" stands for in a query (the variable's `allValue`, else `.*`).
    pub all_value: Option<String>,
    /// Multi-value or with "All": a query gets a regex (`(a|b)`, values escaped).
    pub regex: bool,
}

impl VarValue {
    /// One plain value (`$name` → `value`).
    pub fn single(name: &str, value: &str) -> VarValue {
        VarValue {
            name: name.to_string(),
            values: vec![value.to_string()],
            ..Default::default()
        }
    }
}

/// Where a substituted text goes: a query gets regexes for multi-values,
/// a title or legend gets readable text, a URL gets percent-encoded values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolate {
    /// PromQL.
    Query,
    /// Titles, text panels.
    Text,
    /// Link URLs.
    Url,
}

/// Grafana's built-in interval variables for a query window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Intervals {
    /// Query step (`$__interval`), ms.
    pub step_ms: i64,
    /// Dashboard range (`$__range`), ms.
    pub range_ms: i64,
    /// Scrape interval, ms (for `$__rate_interval`).
    pub scrape_ms: i64,
}

fn regex_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn formatted(v: &VarValue, format: Option<&str>, mode: Interpolate) -> String {
    if v.all && format.is_none() && mode == Interpolate::Query {
        return v.all_value.clone().unwrap_or_else(|| ".*".to_string());
    }
    let vals = &v.values;
    let join_regex = |escape: bool| {
        let parts: Vec<String> = vals
            .iter()
            .map(|x| if escape { regex_escape(x) } else { x.clone() })
            .collect();
        if parts.len() == 1 {
            parts[0].clone()
        } else {
            format!("({})", parts.join("|"))
        }
    };
    match format {
        Some("regex") => join_regex(true),
        Some("pipe") => vals.join("|"),
        Some("csv") | Some("raw") | Some("text") => vals.join(","),
        Some("glob") if vals.len() > 1 => format!("{{{}}}", vals.join(",")),
        Some("glob") => vals.join(","),
        Some("json") => serde_json::to_string(vals).unwrap_or_default(),
        Some("singlequote") => vals
            .iter()
            .map(|x| format!("'{}'", x.replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(","),
        Some("doublequote") => vals
            .iter()
            .map(|x| format!("\"{}\"", x.replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(","),
        Some("percentencode") => vals
            .iter()
            .map(|x| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>())
            .collect::<Vec<_>>()
            .join(","),
        _ => match mode {
            Interpolate::Query if v.regex => join_regex(true),
            Interpolate::Query => vals.join(","),
            Interpolate::Text if v.all => "All".to_string(),
            Interpolate::Text => vals.join(" + "),
            Interpolate::Url => vals
                .iter()
                .map(|x| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>())
                .collect::<Vec<_>>()
                .join(","),
        },
    }
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Substitutes Grafana's variables: the built-ins `$__rate_interval`,
/// `$__interval`, `$__interval_ms`, `$__range`, `$__range_s`, `$__range_ms`
/// and the dashboard's own, in every form Grafana reads (`$model`,
/// `${model}`, `${model:regex}`, `[[model]]`). A multi-value or "All"
/// variable becomes a regex in a query (use it with `=~`); unknown names
/// are left as they are.
pub fn interpolate(text: &str, iv: Intervals, vars: &[VarValue], mode: Interpolate) -> String {
    let secs = |ms: i64| format!("{}s", (ms / 1000).max(1));
    // Grafana: max(4 × scrape interval, interval + scrape interval).
    let rate = (4 * iv.scrape_ms).max(iv.step_ms + iv.scrape_ms);
    let builtin = |name: &str| -> Option<String> {
        Some(match name {
            "__rate_interval" => secs(rate),
            "__interval" => secs(iv.step_ms),
            "__interval_ms" => iv.step_ms.to_string(),
            "__range" => secs(iv.range_ms),
            "__range_s" => (iv.range_ms / 1000).to_string(),
            "__range_ms" => iv.range_ms.to_string(),
            _ => return None,
        })
    };
    let lookup = |name: &str, format: Option<&str>| -> Option<String> {
        builtin(name).or_else(|| {
            vars.iter().find(|v| v.name == name).map(|v| {
                let value = formatted(v, format, mode);
                // An interval variable on `auto` stands for `$__interval`.
                value.strip_prefix('$').and_then(builtin).unwrap_or(value)
            })
        })
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        // `${name}` / `${name:format}` / `[[name]]` / `[[name:format]]`.
        let braced = tail
            .strip_prefix("${")
            .and_then(|t| t.find('}').map(|j| (&t[..j], 2 + j + 1)))
            .or_else(|| {
                tail.strip_prefix("[[")
                    .and_then(|t| t.find("]]").map(|j| (&t[..j], 2 + j + 2)))
            });
        if let Some((inner, used)) = braced {
            let (name, format) = match inner.split_once(':') {
                Some((n, f)) => (n, Some(f)),
                None => (inner, None),
            };
            if let Some(v) = lookup(name, format) {
                out.push_str(&v);
                rest = &tail[used..];
                continue;
            }
        } else if let Some(t) = tail.strip_prefix('$') {
            let n = t.find(|c: char| !is_ident(c)).unwrap_or(t.len());
            if n > 0
                && let Some(v) = lookup(&t[..n], None)
            {
                out.push_str(&v);
                rest = &t[n..];
                continue;
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// [`interpolate`] for a query with single-valued variables (`All` means
/// every value: `.*`) and 15 s scrapes.
pub fn substitute(expr: &str, step_ms: i64, range_ms: i64, vars: &[(String, String)]) -> String {
    let vars: Vec<VarValue> = vars
        .iter()
        .map(|(n, v)| {
            let all = v == "All" || v == "$__all";
            VarValue {
                all,
                ..VarValue::single(n, v)
            }
        })
        .collect();
    interpolate(
        expr,
        Intervals {
            step_ms,
            range_ms,
            scrape_ms: 15_000,
        },
        &vars,
        Interpolate::Query,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn legends_and_variables() {
        let l = Labels::new([("__name__", "x"), ("model", "bge"), ("route", "/embed")]);
        assert_eq!(legend("{{model}} {{ route }} p95", &l), "bge /embed p95");
        assert_eq!(legend("", &l), "x{model=\"bge\", route=\"/embed\"}");
        let vars = vec![
            ("model".to_string(), "bge".to_string()),
            ("model_x".to_string(), "All".to_string()),
        ];
        assert_eq!(
            substitute(
                "rate(a{model=~\"$model\",m=~\"$model_x\"}[$__rate_interval])",
                30_000,
                3_600_000,
                &vars
            ),
            "rate(a{model=~\"bge\",m=~\".*\"}[60s])"
        );
        assert_eq!(
            substitute("x[$__rate_interval]", 120_000, 0, &[]),
            "x[135s]"
        );
    }

    #[test]
    fn multi_values_formats_and_builtins() {
        let iv = Intervals {
            step_ms: 30_000,
            range_ms: 3_600_000,
            scrape_ms: 15_000,
        };
        let multi = VarValue {
            name: "route".into(),
            values: vec!["/embed".into(), "/v1.rerank".into()],
            regex: true,
            ..Default::default()
        };
        let all = VarValue {
            name: "model".into(),
            values: vec!["a".into(), "b".into()],
            all: true,
            regex: true,
            ..Default::default()
        };
        let vars = [multi, all, VarValue::single("quantile", "0.9")];
        let q = |s: &str| interpolate(s, iv, &vars, Interpolate::Query);
        assert_eq!(
            q(r#"x{route=~"$route"}"#),
            r#"x{route=~"(/embed|/v1\.rerank)"}"#
        );
        assert_eq!(q(r#"x{model=~"${model}"}"#), r#"x{model=~".*"}"#);
        assert_eq!(
            q("[[quantile]] ${route:csv} ${route:pipe}"),
            "0.9 /embed,/v1.rerank /embed|/v1.rerank"
        );
        assert_eq!(
            q("$__range $__range_s $__interval_ms $unknown ${nope}"),
            "3600s 3600 30000 $unknown ${nope}"
        );
        assert_eq!(
            interpolate("$model / $route", iv, &vars, Interpolate::Text),
            "All / /embed + /v1.rerank"
        );
        assert_eq!(
            interpolate("/x?r=$route", iv, &vars, Interpolate::Url),
            "/x?r=%2Fembed,%2Fv1.rerank"
        );
        // An interval variable on `auto` is the panel's `$__interval`.
        let auto = [VarValue::single("iv", "$__interval")];
        assert_eq!(
            interpolate("rate(x[$iv])", iv, &auto, Interpolate::Query),
            "rate(x[30s])"
        );
    }

    #[test]
    fn alert_thresholds_fill_the_marked_panels_only() {
        let mut d: Dashboard = serde_json::from_str(
            r#"{"panels":[{"type":"stat","title":"e","infermonAlertThreshold":"A",
                "fieldConfig":{"defaults":{"thresholds":{"steps":[{"color":"green","value":null},{"color":"orange","value":0.01},{"color":"red","value":0.5}]}}}},
              {"type":"row","panels":[{"type":"timeseries","title":"t","infermonAlertThreshold":"A"}]},
              {"type":"stat","title":"other","fieldConfig":{"defaults":{"thresholds":{"steps":[{"color":"red","value":9}]}}}}]}"#,
        )
        .unwrap();
        d.fill_alert_thresholds(|n| (n == "A").then_some(0.03))
            .unwrap();
        assert_eq!(d.panels[0].thresholds(), vec![0.01, 0.03]);
        assert_eq!(d.panels[1].panels[0].thresholds(), vec![0.03]);
        assert_eq!(d.panels[2].thresholds(), vec![9.0]);
        let err = d.fill_alert_thresholds(|_| None).unwrap_err();
        assert!(err.contains("\"A\""), "{err}");
    }

    #[test]
    fn parses_grafana_json_with_rows_and_datasources() {
        let d: Dashboard = serde_json::from_str(
            r#"{"title":"T","panels":[
              {"type":"row","title":"r","gridPos":{"h":1,"w":24,"x":0,"y":0},"panels":[
                 {"type":"stat","title":"s","gridPos":{"h":4,"w":6,"x":0,"y":1},"targets":[{"expr":"up"}],
                  "fieldConfig":{"defaults":{"unit":"s","thresholds":{"steps":[{"color":"green","value":null},{"color":"red","value":2}]}}}}]},
              {"type":"timeseries","title":"t","gridPos":{"h":8,"w":12,"x":0,"y":5},"datasource":{"type":"loki"},
               "fieldConfig":{"defaults":{"custom":{"stacking":{"mode":"normal"}}}}}]}"#,
        )
        .unwrap();
        let p = d.flat_panels();
        assert_eq!(
            p.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>(),
            vec!["row", "stat", "timeseries"]
        );
        assert_eq!(p[1].unit(), "s");
        assert_eq!(p[1].thresholds(), vec![2.0]);
        assert!(p[2].stacked() && !p[2].is_prometheus() && p[1].is_prometheus());
    }
}
