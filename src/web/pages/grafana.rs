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
}

impl Variable {
    /// The saved value, when it is a single string.
    pub fn saved(&self) -> Option<&str> {
        match self.current.get("value") {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_str()),
            _ => None,
        }
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

/// Substitutes Grafana's variables in an expression: `$__rate_interval`,
/// `$__interval`, `$__range`, and the dashboard's own (`$model`, `${model}`,
/// `[[model]]`); `All` becomes `.*` (use them with `=~`).
pub fn substitute(expr: &str, step_ms: i64, range_ms: i64, vars: &[(String, String)]) -> String {
    let secs = |ms: i64| format!("{}s", (ms / 1000).max(1));
    // Grafana: max(4 × scrape interval, interval + scrape interval); 15 s scrapes.
    let rate = (4 * 15_000).max(step_ms + 15_000);
    let mut out = expr
        .replace("$__rate_interval", &secs(rate))
        .replace("${__rate_interval}", &secs(rate))
        .replace("$__interval_ms", &step_ms.to_string())
        .replace("$__interval", &secs(step_ms))
        .replace("${__interval}", &secs(step_ms))
        .replace("$__range", &secs(range_ms));
    let mut sorted: Vec<&(String, String)> = vars.iter().collect();
    // Longest names first so `$model_name` is not eaten by `$model`.
    sorted.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in sorted {
        let v = if value == "All" || value == "$__all" {
            ".*"
        } else {
            value.as_str()
        };
        out = out
            .replace(&format!("${{{name}}}"), v)
            .replace(&format!("[[{name}]]"), v)
            .replace(&format!("${name}"), v);
    }
    out
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
