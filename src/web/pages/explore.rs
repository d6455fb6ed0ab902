//! `/explore`: one PromQL expression as a graph (lines or stacked) or a
//! table with a column per label, downloadable as CSV; and the link every
//! dashboard panel carries to open its query here.
//!
//! The page is a plain form; `static/app.js` adds metric-name and label
//! completion, the metrics browser and the recent queries on top of it.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ctx::{PageCtx, PageFrame, TimeRange};
use super::grafana::{GridPos, Target};
use super::{Pages, Panel, PanelView, QueryError, render_panel};
use crate::model::{Labels, METRIC_NAME};
use crate::web::ApiError;

/// The words the Explore page shows, in the page's language.
struct Words {
    query: &'static str,
    graph: &'static str,
    table: &'static str,
    lines: &'static str,
    stacked: &'static str,
    display: &'static str,
    csv: &'static str,
    browser: &'static str,
    filter: &'static str,
    recent: &'static str,
    clear: &'static str,
    value: &'static str,
    no_data: &'static str,
    hint: &'static str,
}

/// The table view: a column per label name, then the value.
struct TableView {
    columns: Vec<String>,
    rows: Vec<(Vec<String>, String)>,
}

#[derive(Template)]
#[template(path = "explore.html")]
struct ExplorePage {
    page: PageFrame,
    query: String,
    table_view: bool,
    stacked: bool,
    /// The range as hidden form fields: `range`, or `from` and `to`.
    range_fields: Vec<(&'static str, String)>,
    csv_href: String,
    words: Words,
    error: Option<String>,
    panel: Option<PanelView>,
    table: Option<TableView>,
}

/// The link a dashboard panel carries to Explore: its first drawn query
/// (variables already substituted) over the page's range, which the
/// template appends (`range=1h` or `from=..&to=..`). `None` for panels
/// without a query (rows, text).
pub(super) fn panel_href(exprs: &[(String, String)]) -> Option<String> {
    let expr = exprs
        .iter()
        .map(|(e, _)| e)
        .find(|e| !e.trim().is_empty())?;
    Some(format!("/explore?{}", encode(&[("q", expr.trim())])))
}

/// `k=v&…`, form-encoded.
fn encode(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

/// The range as the fields a form carries.
fn range_fields(r: &TimeRange) -> Vec<(&'static str, String)> {
    if r.name == "custom" {
        vec![("from", r.start.to_string()), ("to", r.end.to_string())]
    } else {
        vec![("range", r.name.to_string())]
    }
}

/// `GET /explore?q=...&view=table&stack=1`.
pub(super) async fn explore(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    let params = &ctx.params;
    let page = ctx.frame("Explore", "Explore", true);
    let lang = page.lang;
    let query = params.get("q").unwrap_or("").trim().to_string();
    let table_view = params.get("view") == Some("table");
    let stacked = params.get("stack") == Some("1");
    let mut error = None;
    let (mut panel, mut table) = (None, None);
    if !query.is_empty() && table_view {
        match pages.query.instant(query.clone(), ctx.range.end).await {
            Ok(result) => table = Some(table_of(&result)),
            Err(e) => error = Some(e.to_string()),
        }
    } else if !query.is_empty() {
        let mut rendered = render_panel(
            pages.query.as_ref(),
            &graph_panel(&query, stacked),
            page.window,
            &[],
            lang,
        )
        .await;
        error = rendered.error.take();
        panel = Some(rendered);
    }
    let fields = range_fields(&ctx.range);
    let mut csv_pairs = vec![("q", query.as_str())];
    csv_pairs.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    let csv_href = format!("/explore/csv?{}", encode(&csv_pairs));
    let words = Words {
        query: lang.t("Expression"),
        graph: lang.t("Graph"),
        table: lang.t("Table"),
        lines: lang.t("Lines"),
        stacked: lang.t("Stacked"),
        display: lang.t("Display"),
        csv: lang.t("Download CSV"),
        browser: lang.t("Metrics browser"),
        filter: lang.t("Filter metrics"),
        recent: lang.t("Recent queries"),
        clear: lang.t("Clear"),
        value: lang.t("Value"),
        no_data: lang.t("No data"),
        hint: lang.t(
            "Type a metric name: Tab takes the first suggestion, the arrow keys and Enter another; Enter runs the query",
        ),
    };
    ctx.html(
        ExplorePage {
            range_fields: fields,
            page,
            query,
            table_view,
            stacked,
            csv_href,
            words,
            error,
            panel,
            table,
        }
        .render(),
    )
}

/// The full-width panel Explore draws, stacked or as lines.
fn graph_panel(query: &str, stacked: bool) -> Panel {
    let mut panel = Panel {
        kind: "timeseries".to_string(),
        targets: vec![Target {
            expr: query.to_string(),
            ..Default::default()
        }],
        grid_pos: GridPos {
            h: 12,
            w: 24,
            x: 0,
            y: 0,
        },
        ..Default::default()
    };
    if stacked {
        panel.field_config.defaults.custom = serde_json::json!({"stacking": {"mode": "normal"}});
    }
    panel
}

/// The label names of a result in column order: the metric name first, then
/// the others sorted.
fn columns_of(result: &[(Labels, f64)]) -> Vec<String> {
    let names: BTreeSet<&str> = result
        .iter()
        .flat_map(|(l, _)| l.iter().map(|x| x.name.as_str()))
        .collect();
    let mut columns: Vec<String> = Vec::with_capacity(names.len());
    if names.contains(METRIC_NAME) {
        columns.push(METRIC_NAME.to_string());
    }
    columns.extend(
        names
            .into_iter()
            .filter(|n| *n != METRIC_NAME)
            .map(str::to_string),
    );
    columns
}

/// A sample value as Prometheus writes it.
fn value_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

fn table_of(result: &[(Labels, f64)]) -> TableView {
    let columns = columns_of(result);
    let rows = result
        .iter()
        .map(|(labels, v)| {
            (
                columns
                    .iter()
                    .map(|c| labels.get(c).unwrap_or("").to_string())
                    .collect(),
                value_text(*v),
            )
        })
        .collect();
    TableView { columns, rows }
}

/// A label value made safe for a spreadsheet: one starting like a formula
/// (`=`, `+`, `-`, `@`, tab, CR) gets a leading `'`, so a scraped target
/// cannot plant a formula in the file a person opens.
fn cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// Errors of the CSV download, answered as JSON.
#[derive(Debug, thiserror::Error)]
enum CsvError {
    #[error("missing parameter q: the PromQL expression to download")]
    NoQuery,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("writing CSV: {0}")]
    Write(String),
}

impl IntoResponse for CsvError {
    fn into_response(self) -> Response {
        let status = match self {
            CsvError::NoQuery | CsvError::Query(_) => StatusCode::BAD_REQUEST,
            CsvError::Write(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, "bad_data", self.to_string()).into_response()
    }
}

/// `GET /explore/csv?q=...&range=1h`: the table view as CSV — the
/// expression's instant value at the end of the range, a column per label,
/// then `timestamp` (RFC 3339) and `value`. Works without JavaScript.
pub(super) async fn csv(State(pages): State<Arc<Pages>>, ctx: PageCtx) -> Response {
    match csv_body(&pages, &ctx).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"infermon-explore.csv\"",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn csv_body(pages: &Pages, ctx: &PageCtx) -> Result<String, CsvError> {
    let query = ctx.params.get("q").unwrap_or("").trim();
    if query.is_empty() {
        return Err(CsvError::NoQuery);
    }
    let at = ctx.range.end;
    let result = pages.query.instant(query.to_string(), at).await?;
    let table = table_of(&result);
    let time = chrono::DateTime::from_timestamp_millis(at)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let mut w = csv::Writer::from_writer(Vec::new());
    let write = |e: csv::Error| CsvError::Write(e.to_string());
    w.write_record(
        table
            .columns
            .iter()
            .map(String::as_str)
            .chain(["timestamp", "value"]),
    )
    .map_err(write)?;
    for (labels, value) in &table.rows {
        w.write_record(
            labels
                .iter()
                .map(|l| cell(l))
                .chain([time.clone(), value.clone()]),
        )
        .map_err(write)?;
    }
    let bytes = w.into_inner().map_err(|e| CsvError::Write(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| CsvError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_links_carry_the_first_query_encoded() {
        let exprs = vec![
            (" ".to_string(), String::new()),
            (
                "sum by (route) (rate(x{a=\"b c\"}[1m])) > 0 & 1".to_string(),
                "{{route}}".to_string(),
            ),
            ("second".to_string(), String::new()),
        ];
        let href = panel_href(&exprs).unwrap();
        assert!(href.starts_with("/explore?q="), "{href}");
        let q: Vec<(String, String)> =
            form_urlencoded::parse(href.trim_start_matches("/explore?").as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            q,
            vec![(
                "q".to_string(),
                "sum by (route) (rate(x{a=\"b c\"}[1m])) > 0 & 1".to_string()
            )]
        );
        assert_eq!(panel_href(&[]), None);
    }

    #[test]
    fn tables_have_a_column_per_label_and_the_name_first() {
        let result = vec![
            (
                Labels::new([("__name__", "up"), ("job", "a"), ("instance", "x:1")]),
                1.0,
            ),
            (
                Labels::new([("__name__", "up"), ("zone", "=1+1")]),
                f64::NAN,
            ),
        ];
        let t = table_of(&result);
        assert_eq!(t.columns, vec!["__name__", "instance", "job", "zone"]);
        assert_eq!(
            t.rows[1],
            (
                vec!["up".into(), "".into(), "".into(), "=1+1".into()],
                "NaN".into()
            )
        );
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("-x"), "'-x");
        assert_eq!(cell("ok"), "ok");
        assert_eq!(value_text(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value_text(0.25), "0.25");
    }
}
