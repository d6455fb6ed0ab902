use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use futures::FutureExt;
use tower::ServiceExt;

use super::*;
use crate::model::Labels;
use crate::promql::PromqlError;

/// Answers every query with two series (or an error for `bad(`).
struct Fake;

impl QueryApi for Fake {
    fn range(
        &self,
        expr: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> futures::future::BoxFuture<'static, Result<RangeResult, QueryError>> {
        async move {
            if expr.contains("bad(") {
                return Err(
                    PromqlError::Parse("parse error: unexpected end of input".into()).into(),
                );
            }
            let pts: Vec<(i64, f64)> = (0..)
                .map(|i| start + i * step)
                .take_while(|t| *t <= end)
                .map(|t| (t, (t % 7) as f64))
                .collect();
            Ok(vec![
                (
                    Labels::new([("__name__", "x"), ("route", "/embed"), ("le", "0.1")]),
                    pts.clone(),
                ),
                (
                    Labels::new([("__name__", "x"), ("route", "/rerank"), ("le", "+Inf")]),
                    pts,
                ),
            ])
        }
        .boxed()
    }
    fn instant(
        &self,
        expr: String,
        _t: i64,
    ) -> futures::future::BoxFuture<'static, Result<Vec<(Labels, f64)>, QueryError>> {
        async move {
            if expr.contains("bad(") {
                return Err(PromqlError::Parse("parse error".into()).into());
            }
            Ok(vec![(
                Labels::new([
                    ("model", "all-MiniLM-L6-v2"),
                    ("route", "/embed"),
                    ("le", "1"),
                ]),
                2.5,
            )])
        }
        .boxed()
    }
}

fn app() -> axum::Router {
    let config = crate::config::Config::load_default().unwrap().config;
    routes(Arc::new(Pages {
        query: Arc::new(Fake),
        config: arc_swap::ArcSwap::from_pointee(config),
        started_ms: crate::util::now_ms(),
        dashboards: arc_swap::ArcSwap::from_pointee(Pages::load_dashboards(&[]).unwrap()),
        snapshots: None,
        facts: Arc::new(Vec::new),
        ops: Arc::new(NoOperations),
        csrf: "t0ken".to_string(),
        uploads: Arc::new(UploadedDashboards::load(
            std::env::temp_dir().join(format!("infermon-pages-test-{}-none", std::process::id())),
        )),
        status: Default::default(),
    }))
}

async fn get(path: &str, lang: Option<&str>) -> (u16, axum::http::HeaderMap, String) {
    let mut req = Request::builder().uri(path);
    if let Some(l) = lang {
        req = req.header("accept-language", l);
    }
    let resp = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn overview_renders_every_panel_with_a_strict_csp() {
    let (status, headers, body) = get("/?range=6h", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let d = &Pages::load_dashboards(&[]).unwrap()[0].1;
    let panels = d.flat_panels().iter().filter(|p| p.kind != "row").count();
    assert_eq!(body.matches("<article class=\"panel").count(), panels);
    assert!(body.contains("data-kind=\"heatmap\""));
    assert!(
        body.contains("class=\"threshold\""),
        "error-ratio threshold drawn"
    );
    assert!(!body.contains("style="), "no inline styles under the CSP");
    assert!(body.contains("<option value=\"6h\" selected>"));
}

#[tokio::test]
async fn explore_shows_graph_table_and_errors() {
    let (_, _, body) = get("/explore?q=rate(x%5B5m%5D)&view=graph", None).await;
    assert_eq!(body.matches("class=\"series\"").count(), 2, "{body}");
    let (_, _, body) = get("/explore?q=x&view=table", None).await;
    assert!(
        body.contains("<table class=\"data\">") && body.contains("2.5"),
        "{body}"
    );
    let (_, _, body) = get("/explore?q=bad(", None).await;
    assert!(
        body.contains("id=\"query-error\"") && body.contains("parse error"),
        "{body}"
    );
    assert!(body.contains("bad("), "the query stays in the box");
}

#[tokio::test]
async fn chinese_from_accept_language_and_switch_remembered() {
    let (_, _, body) = get("/status", Some("zh-CN,zh;q=0.9")).await;
    assert!(
        body.contains("<html lang=\"zh-CN\">") && body.contains("运行时间"),
        "{body}"
    );
    let (_, headers, body) = get("/status?lang=en", Some("zh-CN")).await;
    assert!(body.contains("Uptime"));
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("lang=en")
    );
}

#[tokio::test]
async fn status_redacts_secrets_and_static_assets_are_served() {
    let (_, _, body) = get("/status", None).await;
    assert!(body.contains("listen: 127.0.0.1:8080"), "{body}");
    let (status, headers, js) = get("/static/app.js", None).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.contains("DOMContentLoaded"));
    assert_eq!(get("/static/../Cargo.toml", None).await.0, 404);
}

#[tokio::test]
async fn a_grafana_dashboard_with_each_panel_type() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.json");
    let panel = |t: &str, x: u32| {
        format!(
            r#"{{"type":"{t}","title":"{t} panel","gridPos":{{"h":6,"w":8,"x":{x},"y":0}},"datasource":{{"type":"prometheus","uid":"p"}},"targets":[{{"expr":"up","legendFormat":"{{{{route}}}}"}}],"fieldConfig":{{"defaults":{{"unit":"bytes"}}}}}}"#
        )
    };
    let kinds = [
        "timeseries",
        "graph",
        "stat",
        "gauge",
        "bargauge",
        "heatmap",
        "histogram",
        "barchart",
        "table",
        "piechart",
    ];
    let panels: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| panel(k, (i as u32 % 3) * 8))
        .collect();
    std::fs::write(
        &file,
        format!(
            r#"{{"title":"Mine","uid":"mine","panels":[{}]}}"#,
            panels.join(",")
        ),
    )
    .unwrap();
    let dashboards = Pages::load_dashboards(&[file]).unwrap();
    let config = crate::config::Config::load_default().unwrap().config;
    let router = routes(Arc::new(Pages {
        query: Arc::new(Fake),
        config: arc_swap::ArcSwap::from_pointee(config),
        started_ms: 0,
        dashboards: arc_swap::ArcSwap::from_pointee(dashboards),
        snapshots: None,
        facts: Arc::new(Vec::new),
        ops: Arc::new(NoOperations),
        csrf: "t0ken".to_string(),
        uploads: Arc::new(UploadedDashboards::load(
            std::env::temp_dir().join(format!("infermon-pages-test-{}-none", std::process::id())),
        )),
        status: Default::default(),
    }));
    let resp = router
        .oneshot(
            Request::builder()
                .uri("/dashboards/mine")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(body.matches("<article class=\"panel").count(), kinds.len());
    for k in kinds {
        assert!(body.contains(&format!("data-kind=\"{k}\"")), "{k}");
    }
    assert!(
        body.contains("Panel type &#39;piechart&#39; is not supported by infermon"),
        "unsupported types get a placeholder"
    );
    assert!(body.contains("2.5 B"), "stat in the panel's unit");
    assert!(body.contains("/embed"), "legendFormat applied");
}

/// Records every query it answers; `group by (job)` gets two jobs, bucket
/// queries get cumulative buckets, everything else one series.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<(String, String, i64)>>);

impl QueryApi for Recording {
    fn range(
        &self,
        expr: String,
        start: i64,
        end: i64,
        step: i64,
    ) -> futures::future::BoxFuture<'static, Result<RangeResult, QueryError>> {
        self.0
            .lock()
            .unwrap()
            .push(("range".into(), expr.clone(), step));
        async move {
            let pts: Vec<(i64, f64)> = (0..)
                .map(|i| start + i * step)
                .take_while(|t| *t <= end)
                .map(|t| (t, 1536.0))
                .collect();
            if expr.contains("_bucket") {
                return Ok(["0.1", "1", "+Inf"]
                    .iter()
                    .enumerate()
                    .map(|(i, le)| {
                        (
                            Labels::new([("le", *le)]),
                            pts.iter().map(|p| (p.0, (i + 1) as f64)).collect(),
                        )
                    })
                    .collect());
            }
            Ok(vec![(Labels::new([("status", "200")]), pts)])
        }
        .boxed()
    }
    fn instant(
        &self,
        expr: String,
        _t: i64,
    ) -> futures::future::BoxFuture<'static, Result<Vec<(Labels, f64)>, QueryError>> {
        self.0
            .lock()
            .unwrap()
            .push(("instant".into(), expr.clone(), 0));
        async move {
            if expr.starts_with("group by (job)") {
                return Ok(vec![
                    (Labels::new([("job", "infermon")]), 1.0),
                    (Labels::new([("job", "node")]), 1.0),
                ]);
            }
            if expr.contains("_bucket") {
                return Ok(vec![
                    (Labels::new([("le", "0.1")]), 4.0),
                    (Labels::new([("le", "1")]), 6.0),
                    (Labels::new([("le", "+Inf")]), 7.0),
                ]);
            }
            Ok(vec![(
                Labels::new([
                    ("job", "infermon"),
                    ("instance", "i:1"),
                    ("route", "/embed"),
                ]),
                1536.0,
            )])
        }
        .boxed()
    }
}

#[tokio::test]
async fn the_grafana_fixture_renders_each_panel_with_its_queries() {
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/dashboards/all-panels.json");
    let dashboards = Pages::load_dashboards(&[file]).unwrap();
    let recording = Arc::new(Recording::default());
    let config = crate::config::Config::load_default().unwrap().config;
    let router = routes(Arc::new(Pages {
        query: recording.clone(),
        config: arc_swap::ArcSwap::from_pointee(config),
        started_ms: 0,
        dashboards: arc_swap::ArcSwap::from_pointee(dashboards),
        snapshots: None,
        facts: Arc::new(Vec::new),
        ops: Arc::new(NoOperations),
        csrf: "t0ken".to_string(),
        uploads: Arc::new(UploadedDashboards::load(
            std::env::temp_dir().join(format!("infermon-pages-test-{}-none", std::process::id())),
        )),
        status: Default::default(),
    }));
    let resp = router
        .oneshot(
            Request::builder()
                .uri("/dashboards/all-panels?range=1h&var-job=infermon")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    // Panels in gridPos order, the collapsed row's own panels included.
    let kinds: Vec<&str> = body
        .split("data-kind=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(
        kinds,
        vec![
            "stat",
            "gauge",
            "bargauge",
            "timeseries",
            "graph",
            "heatmap",
            "histogram",
            "barchart",
            "table",
            "text",
            "piechart",
            "timeseries"
        ]
    );
    assert_eq!(body.matches("<h2 class=\"row").count(), 2, "both rows");
    assert!(body.contains("Panel type &#39;piechart&#39; is not supported by infermon"));
    assert!(body.contains("Data source &#39;loki&#39; is not supported by infermon"));
    // The variable's options came from label_values(up, job); the saved
    // quantile (0.9) is the default choice.
    assert!(
        body.contains("<option value=\"node\">node</option>"),
        "{body}"
    );
    assert!(body.contains("<option value=\"0.9\" selected>"));
    // Half-width panels get 120 points: 1h in 30 s steps, $__rate_interval =
    // max(4 × 15 s, 30 s + 15 s); the heatmap draws 60 columns (60 s steps).
    let mut queries = recording.0.lock().unwrap().clone();
    queries.sort();
    // Stats, gauges and bar gauges read a range (the sparkline and the
    // reducer, lastNotNull by default); tables, bars and histograms an instant.
    let expected: Vec<(&str, &str, i64)> = vec![
        ("instant", "group by (job) (up)", 0),
        (
            "instant",
            "sum by (le) (increase(infermon_http_request_duration_seconds_bucket{job=~\"infermon\"}[3600s]))",
            0,
        ),
        (
            "instant",
            "sum by (method) (infermon_http_requests_total{job=~\"infermon\"})",
            0,
        ),
        ("instant", "up{job=~\"infermon\"}", 0),
        (
            "range",
            "histogram_quantile(0.9, sum by (le) (rate(infermon_http_request_duration_seconds_bucket{job=~\"infermon\"}[60s])))",
            30_000,
        ),
        (
            "range",
            "process_resident_memory_bytes{job=~\"infermon\"}",
            60_000,
        ),
        (
            "range",
            "sum by (le) (increase(infermon_http_request_duration_seconds_bucket{job=~\"infermon\"}[60s]))",
            60_000,
        ),
        (
            "range",
            "sum by (route) (infermon_http_requests_total{job=~\"infermon\"})",
            30_000,
        ),
        (
            "range",
            "sum by (status) (rate(infermon_http_requests_total{job=~\"infermon\"}[60s]))",
            30_000,
        ),
        ("range", "sum(up{job=~\"infermon\"})", 60_000),
    ];
    assert_eq!(
        queries
            .iter()
            .map(|(k, e, s)| (k.as_str(), e.as_str(), *s))
            .collect::<Vec<_>>(),
        expected,
        "hidden targets, text, unsupported and Loki panels query nothing"
    );
    // What the panels show: units, legends, decumulated buckets, thresholds.
    assert!(body.contains("1.5 KiB"), "gauge in bytes");
    assert!(
        body.contains("data-name=\"200\""),
        "legendFormat {{status}}"
    );
    assert!(body.contains("class=\"threshold\""), "timeseries threshold");
    assert!(
        body.contains("≤0.1") && body.contains("+Inf"),
        "histogram bars"
    );
    assert!(
        body.contains("<th>instance</th>") && body.contains("<td>i:1</td>"),
        "table: labels as columns"
    );
    assert!(body.contains("class=\"chart heatmap\""));
}

/// The built-in error-ratio panels count what `InferenceHighErrorRate`
/// counts and draw its threshold, read from the rule itself; 4xx is a
/// separate "rejected" series.
#[test]
fn error_ratio_panels_draw_the_alert_rules_threshold() {
    let rule = crate::rules::BUILTIN_RULE_FILES
        .iter()
        .find(|(f, _)| f.ends_with("inference.yml"))
        .unwrap()
        .1;
    assert!(rule.contains("> 0.03"), "the rule's threshold");
    assert_eq!(
        super::builtin_alert_threshold("InferenceHighErrorRate"),
        Some(0.03)
    );
    assert_eq!(super::builtin_alert_threshold("NoSuchAlert"), None);
    let boards = Pages::load_dashboards(&[]).unwrap();
    let overview = &boards[0].1;
    let error_panels: Vec<Panel> = overview
        .flat_panels()
        .into_iter()
        .filter(|p| p.title.to_lowercase().contains("error ratio"))
        .collect();
    assert_eq!(error_panels.len(), 2, "the stat and the chart");
    for p in &error_panels {
        assert_eq!(p.thresholds().last().copied(), Some(0.03), "{}", p.title);
        assert!(
            p.targets[0].expr.contains(r#"status=~"5..""#),
            "{}",
            p.title
        );
    }
    let chart = error_panels
        .iter()
        .find(|p| p.kind == "timeseries")
        .unwrap();
    assert!(chart.targets[1].expr.contains(r#"status=~"4..""#));
    assert!(chart.targets[1].legend_format.contains("rejected"));
}

/// An empty panel whose source is off says why: the host collector off, no
/// rerank model served.
#[tokio::test]
async fn panels_of_a_source_that_is_off_say_so() {
    let q = Fixed(vec![(Labels::new([("job", "infermon")]), 1.0)]);
    let panel = |expr: &str| Panel {
        kind: "timeseries".into(),
        title: "t".into(),
        targets: vec![super::grafana::Target {
            expr: expr.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let off = SourcesOff {
        host: Some(super::render::HOST_COLLECTOR_OFF),
        rerank: Some(super::render::NO_RERANK_MODEL),
        gpu: Some(super::render::NO_GPU),
    };
    let scope = |off| PanelScope {
        window: Window {
            start: 0,
            end: 60_000,
            step: 15_000,
        },
        vars: &[],
        scrape_ms: 15_000,
        off,
        lang: Lang::Zh,
    };
    let empty = Fixed(Vec::new());
    for (expr, zh) in [
        ("node_load1", "主机采集器已关闭"),
        ("sum(infermon_rerank_score_bucket)", "未加载重排序"),
        ("infermon_gpu_power_watts", "此主机未检测到 NVIDIA GPU"),
    ] {
        let v = render_panel_in(&empty, &panel(expr), scope(&off)).await;
        assert!(v.html.contains(zh), "{expr}: {}", v.html);
    }
    // With data, the panel draws whatever the source switch says.
    let v = render_panel_in(&q, &panel("node_load1"), scope(&off)).await;
    assert!(!v.html.contains("主机采集器已关闭") && v.series == 1);
    // A source that is on: the plain "No data".
    let v = render_panel_in(&empty, &panel("node_load1"), scope(&SourcesOff::default())).await;
    assert!(v.html.contains("无数据"), "{}", v.html);
}

/// A query engine answering every query with the same series.
struct Fixed(Vec<(Labels, f64)>);

impl QueryApi for Fixed {
    fn range(
        &self,
        _expr: String,
        start: i64,
        _end: i64,
        _step: i64,
    ) -> futures::future::BoxFuture<'static, Result<RangeResult, QueryError>> {
        let out = self
            .0
            .iter()
            .map(|(l, v)| (l.clone(), vec![(start, *v)]))
            .collect();
        async move { Ok(out) }.boxed()
    }
    fn instant(
        &self,
        _expr: String,
        _t: i64,
    ) -> futures::future::BoxFuture<'static, Result<Vec<(Labels, f64)>, QueryError>> {
        let out = self.0.clone();
        async move { Ok(out) }.boxed()
    }
}
