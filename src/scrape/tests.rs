//! Scrape loop and pool tests with a fake fetcher, an in-memory store and
//! tokio's paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;

use super::*;
use crate::config::{Config, GlobalConfig, ScrapeConfig};
use crate::model::{MatchOp, Matcher, is_stale_nan};
use crate::shutdown::Shutdown;
use crate::storage::{MemoryStorage, Querier, Series};

/// Answers with queued bodies (the last one repeats), counting calls.
struct FakeFetcher {
    answers: Mutex<VecDeque<Result<FetchResponse, String>>>,
    calls: Mutex<Vec<String>>,
}

impl FakeFetcher {
    fn new(answers: Vec<Result<&str, &str>>) -> Arc<Self> {
        let answers = answers
            .into_iter()
            .map(|a| {
                a.map(|b| FetchResponse::plain("text/plain; version=0.0.4", b))
                    .map_err(str::to_string)
            })
            .collect();
        Arc::new(FakeFetcher {
            answers: Mutex::new(answers),
            calls: Mutex::new(Vec::new()),
        })
    }
}

impl Fetcher for FakeFetcher {
    fn fetch(&self, req: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, String>> {
        self.calls.lock().unwrap().push(req.url);
        let mut q = self.answers.lock().unwrap();
        let answer = if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().unwrap()
        };
        Box::pin(async move { answer })
    }
}

fn job(yaml: &str) -> ScrapeConfig {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn target(settings: &JobSettings) -> Target {
    let groups = vec![TargetGroup {
        targets: vec!["node:9100".into()],
        ..Default::default()
    }];
    build_targets(&groups, settings).0.remove(0)
}

fn select(store: &MemoryStorage, name: &str) -> Vec<Series> {
    store
        .select(
            &[Matcher::new("__name__", MatchOp::Equal, name).unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap()
}

fn new_loop(
    yaml: &str,
    fetcher: Arc<FakeFetcher>,
    store: Arc<MemoryStorage>,
) -> (ScrapeLoop, Arc<RwLock<TargetHealth>>) {
    let settings = JobSettings::new(&job(yaml), &GlobalConfig::default()).unwrap();
    let state = Arc::new(RwLock::new(TargetHealth::default()));
    let t = target(&settings);
    let sl = ScrapeLoop::new(
        t,
        Arc::new(settings),
        fetcher,
        store,
        state.clone(),
        ScrapeMetrics::unregistered().unwrap(),
        ScrapeClock::new(),
    );
    (sl, state)
}

#[tokio::test(start_paused = true)]
async fn scrape_appends_samples_synthetic_series_and_staleness() {
    let store = Arc::new(MemoryStorage::new());
    let fetcher = FakeFetcher::new(vec![
        Ok("# TYPE a counter\na_total{job=\"inner\"} 1\nb 2\nb 3\n"),
        Ok("a_total{job=\"inner\"} 2\n"),
        Err("connection refused"),
        Ok("a_total{job=\"inner\"} 3\n"),
    ]);
    let (mut sl, state) = new_loop("job_name: node", fetcher.clone(), store.clone());
    sl.scrape_once().await;
    let a = select(&store, "a_total");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].labels.get("job"), Some("node"), "target labels win");
    assert_eq!(a[0].labels.get("exported_job"), Some("inner"));
    assert_eq!(a[0].labels.get("instance"), Some("node:9100"));
    assert_eq!(
        select(&store, "b")[0].samples.len(),
        1,
        "a repeated series keeps its first sample"
    );
    assert_eq!(select(&store, "b")[0].samples[0].value, 2.0);
    assert_eq!(select(&store, "up")[0].samples[0].value, 1.0);
    assert_eq!(
        select(&store, "scrape_samples_scraped")[0].samples[0].value,
        3.0
    );
    assert_eq!(
        select(&store, "scrape_samples_post_metric_relabeling")[0].samples[0].value,
        2.0
    );
    assert_eq!(
        select(&store, "scrape_series_added")[0].samples[0].value,
        2.0
    );
    assert_eq!(state.read().unwrap().health, Health::Up);

    tokio::time::advance(Duration::from_secs(15)).await;
    sl.scrape_once().await;
    let b = &select(&store, "b")[0].samples;
    assert_eq!(b.len(), 2);
    assert!(is_stale_nan(b[1].value), "b vanished: staleness marker");
    assert_eq!(
        select(&store, "scrape_series_added")[0].samples[1].value,
        0.0
    );

    tokio::time::advance(Duration::from_secs(15)).await;
    sl.scrape_once().await;
    let a = &select(&store, "a_total")[0].samples;
    assert!(
        is_stale_nan(a.last().unwrap().value),
        "target down: every series goes stale"
    );
    assert_eq!(select(&store, "up")[0].samples.last().unwrap().value, 0.0);
    {
        let st = state.read().unwrap();
        assert_eq!(st.health, Health::Down);
        assert!(
            st.last_error.contains("connection refused"),
            "{}",
            st.last_error
        );
    }
    tokio::time::advance(Duration::from_secs(15)).await;
    sl.scrape_once().await;
    let a = &select(&store, "a_total")[0].samples;
    assert_eq!(a.last().unwrap().value, 3.0);
    let ts: Vec<i64> = a.iter().map(|s| s.timestamp_ms).collect();
    assert!(
        ts.windows(2).all(|w| w[1] - w[0] == 15_000),
        "timestamps follow the clock: {ts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn limits_fail_the_scrape_with_a_reason() {
    let cases = [
        (
            "job_name: j\nsample_limit: 1",
            "a 1\nb 2\n",
            "sample_limit exceeded",
        ),
        (
            "job_name: j\nlabel_limit: 3",
            "a{x=\"1\",y=\"2\"} 1\n",
            "label_limit exceeded",
        ),
        (
            "job_name: j\nlabel_name_length_limit: 3",
            "a{long=\"1\"} 1\n",
            "label_name_length_limit exceeded",
        ),
        (
            "job_name: j\nlabel_value_length_limit: 3",
            "a{x=\"long\"} 1\n",
            "label_value_length_limit exceeded",
        ),
        ("job_name: j", "a{x=\"1\" 1\n", "parse error: line 1"),
    ];
    for (yaml, body, reason) in cases {
        let store = Arc::new(MemoryStorage::new());
        let (mut sl, state) = new_loop(yaml, FakeFetcher::new(vec![Ok(body)]), store.clone());
        sl.scrape_once().await;
        let st = state.read().unwrap().clone();
        assert_eq!(st.health, Health::Down, "{yaml}");
        assert!(st.last_error.contains(reason), "{yaml}: {}", st.last_error);
        assert!(
            select(&store, "a").is_empty(),
            "{yaml}: nothing of a failed scrape is stored"
        );
        assert_eq!(select(&store, "up")[0].samples[0].value, 0.0);
    }
}

#[tokio::test(start_paused = true)]
async fn honor_labels_timestamps_and_metric_relabelling() {
    let store = Arc::new(MemoryStorage::new());
    let yaml = "job_name: node\nhonor_labels: true\nmetric_relabel_configs:\n\
                - {source_labels: [__name__], regex: 'drop_.*', action: drop}\n\
                - {source_labels: [__name__], target_label: kind, replacement: seen}";
    let body = "a{job=\"inner\"} 1 1000\ndrop_me 1\nc 2\n";
    let (mut sl, _) = new_loop(yaml, FakeFetcher::new(vec![Ok(body)]), store.clone());
    sl.scrape_once().await;
    let a = &select(&store, "a")[0];
    assert_eq!(
        a.labels.get("job"),
        Some("inner"),
        "honor_labels keeps the exposed value"
    );
    assert_eq!(a.labels.get("kind"), Some("seen"));
    assert_eq!(a.samples[0].timestamp_ms, 1000, "honor_timestamps");
    assert!(select(&store, "drop_me").is_empty());
    assert_eq!(
        select(&store, "scrape_samples_post_metric_relabeling")[0].samples[0].value,
        2.0
    );
}

#[tokio::test(start_paused = true)]
async fn pool_scrapes_every_interval_and_follows_file_sd() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.json"),
        r#"[{"targets": ["h1:1", "h2:2"], "labels": {"env": "x"}}]"#,
    )
    .unwrap();
    let mut config = Config::default();
    config.source.path = Some(dir.path().join("infermon.yml"));
    let jobs = vec![job(
        "job_name: files\nscrape_interval: 10s\nfile_sd_configs: [{files: ['*.json']}]",
    )];
    let store = Arc::new(MemoryStorage::new());
    let fetcher = FakeFetcher::new(vec![Ok("m 1\n")]);
    let f2 = fetcher.clone();
    let manager = Manager::with_fetchers(
        &config,
        &jobs,
        store.clone(),
        ScrapeMetrics::unregistered().unwrap(),
        move |_| Ok(f2.clone() as Arc<dyn Fetcher>),
    )
    .unwrap();
    let view = manager.targets();
    let shutdown = Shutdown::new();
    let run = tokio::spawn(manager.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(41)).await;
    let up = select(&store, "up");
    assert_eq!(up.len(), 2);
    for s in &up {
        assert!(
            (4..=5).contains(&s.samples.len()),
            "one scrape per 10s: {}",
            s.samples.len()
        );
        assert_eq!(s.labels.get("env"), Some("x"));
        assert_eq!(
            s.labels.get("__meta_filepath"),
            None,
            "meta labels are not target labels"
        );
    }
    assert_eq!(view.snapshot()["files"].active.len(), 2);
    // h2 leaves the file: its loop stops and marks its series stale.
    std::fs::write(dir.path().join("t.json"), r#"[{"targets": ["h1:1"]}]"#).unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(view.snapshot()["files"].active.len(), 1);
    let h2 = store
        .select(
            &[Matcher::new("instance", MatchOp::Equal, "h2:2").unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap();
    assert!(!h2.is_empty());
    for s in &h2 {
        assert!(
            is_stale_nan(s.samples.last().unwrap().value),
            "{} not stale",
            s.labels
        );
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("manager stops")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn exposed_timestamps_outside_the_window_are_dropped_and_counted() {
    let store = Arc::new(MemoryStorage::new());
    let future = crate::util::now_ms() + 365 * 24 * 3600 * 1000;
    let body = format!("before_epoch 1 -1\nfar_future 1 {future}\nin_window 2\n");
    let fetcher = FakeFetcher::new(vec![Ok(Box::leak(body.into_boxed_str()))]);
    let settings = JobSettings::new(&job("job_name: node"), &GlobalConfig::default()).unwrap();
    let metrics = ScrapeMetrics::unregistered().unwrap();
    let mut sl = ScrapeLoop::new(
        target(&settings),
        Arc::new(settings),
        fetcher,
        store.clone(),
        Arc::new(RwLock::new(TargetHealth::default())),
        metrics.clone(),
        ScrapeClock::new(),
    );
    sl.scrape_once().await;
    assert!(select(&store, "before_epoch").is_empty());
    assert!(select(&store, "far_future").is_empty());
    assert_eq!(select(&store, "in_window").len(), 1);
    assert_eq!(select(&store, "up")[0].samples[0].value, 1.0);
    assert_eq!(metrics.rejected_samples("node", "out_of_bounds"), 2);
}

#[tokio::test(start_paused = true)]
async fn label_limits_apply_by_default_and_fail_the_scrape_early() {
    // One series with 100k labels: over the default label_limit of 30.
    // Parsing it used to cost a quadratic duplicate check.
    let mut body = String::from("wide{");
    for i in 0..100_000 {
        body.push_str(&format!("l{i}=\"v\","));
    }
    body.push_str("} 1\n");
    let store = Arc::new(MemoryStorage::new());
    let fetcher = FakeFetcher::new(vec![Ok(Box::leak(body.into_boxed_str()))]);
    let (mut sl, state) = new_loop("job_name: node", fetcher, store.clone());
    let started = std::time::Instant::now();
    sl.scrape_once().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let st = state.read().unwrap().clone();
    assert_eq!(st.health, Health::Down);
    assert!(st.last_error.contains("label_limit"), "{}", st.last_error);
    assert!(select(&store, "wide").is_empty());
    assert_eq!(select(&store, "up")[0].samples[0].value, 0.0);
    // Explicit 0 lifts a limit, as in Prometheus; unset takes the default.
    let s = JobSettings::new(
        &job("job_name: a\nlabel_limit: 0"),
        &GlobalConfig::default(),
    )
    .unwrap();
    assert_eq!(s.limits.label_limit, 0);
    let s = JobSettings::new(&job("job_name: a"), &GlobalConfig::default()).unwrap();
    assert_eq!(
        (s.limits.label_limit, s.limits.label_value_length_limit),
        (30, 16384)
    );
    assert_eq!(s.limits.body_size_limit, Some(64 << 20));
}

#[tokio::test(start_paused = true)]
async fn sample_limit_stops_parsing_at_the_limit() {
    // A bad line after the limit is never reached: the limit fails the
    // scrape first, without parsing the rest of the body.
    let mut body: String = (0..100).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
    body.push_str("this is { not a sample\n");
    let store = Arc::new(MemoryStorage::new());
    let fetcher = FakeFetcher::new(vec![Ok(Box::leak(body.into_boxed_str()))]);
    let (mut sl, state) = new_loop("job_name: node\nsample_limit: 10", fetcher, store.clone());
    sl.scrape_once().await;
    let st = state.read().unwrap().clone();
    assert!(st.last_error.contains("sample_limit"), "{}", st.last_error);
}

/// Answers `a` and `b` until `only_a` is set, then `a` alone.
#[derive(Default)]
struct Switching {
    only_a: std::sync::atomic::AtomicBool,
}

impl Fetcher for Switching {
    fn fetch(&self, _: FetchRequest) -> BoxFuture<'_, Result<FetchResponse, String>> {
        let body = if self.only_a.load(std::sync::atomic::Ordering::SeqCst) {
            "a 1\n"
        } else {
            "a 1\nb 1\n"
        };
        Box::pin(async move { Ok(FetchResponse::plain("text/plain; version=0.0.4", body)) })
    }
}

fn series(store: &MemoryStorage, name: &str, instance: &str) -> Vec<f64> {
    store
        .select(
            &[
                Matcher::new("__name__", MatchOp::Equal, name).unwrap(),
                Matcher::new("instance", MatchOp::Equal, instance).unwrap(),
            ],
            i64::MIN,
            i64::MAX,
        )
        .unwrap()
        .first()
        .map(|s| s.samples.iter().map(|x| x.value).collect())
        .unwrap_or_default()
}

/// A changed job restarts: a target that stays hands its staleness state
/// to its new loop (a series gone at the next scrape gets its marker, the
/// others none), a target that left gets its markers; an unchanged job is
/// left alone.
#[tokio::test(start_paused = true)]
async fn a_changed_job_restarts_and_its_staying_targets_keep_their_state() {
    let config = |yaml: &str| -> Config { Config::load_str(yaml, None).unwrap().config };
    let before = config(
        "scrape_configs:\n- job_name: node\n  scrape_interval: 10s\n  static_configs: [{targets: ['h1:1', 'h2:2']}]\n\
         - job_name: same\n  scrape_interval: 10s\n  static_configs: [{targets: ['h3:3']}]\n",
    );
    let after = config(
        "scrape_configs:\n- job_name: node\n  scrape_interval: 10s\n  scrape_timeout: 5s\n  static_configs: [{targets: ['h1:1']}]\n\
         - job_name: same\n  scrape_interval: 10s\n  static_configs: [{targets: ['h3:3']}]\n",
    );
    let store = Arc::new(MemoryStorage::new());
    let fetcher = Arc::new(Switching::default());
    let f2 = fetcher.clone();
    let manager = Manager::with_fetchers(
        &before,
        &before.scrape_configs,
        store.clone(),
        ScrapeMetrics::unregistered().unwrap(),
        move |_| Ok(f2.clone() as Arc<dyn Fetcher>),
    )
    .unwrap();
    let (view, reloader) = (manager.targets(), manager.reloader());
    let shutdown = Shutdown::new();
    let run = tokio::spawn(manager.run(shutdown.clone()));
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert!(series(&store, "b", "h1:1").len() >= 2);
    let health = view.snapshot()["node"].active[0].state.clone();

    fetcher
        .only_a
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let prepared = reloader.prepare(&after).unwrap();
    let changes = reloader.apply(prepared).await;
    assert_eq!(changes.changed, ["node"]);
    assert!(changes.added.is_empty() && changes.removed.is_empty());
    tokio::time::sleep(Duration::from_secs(25)).await;

    let node = &view.snapshot()["node"];
    assert_eq!(node.active.len(), 1);
    assert!(
        Arc::ptr_eq(&node.active[0].state, &health),
        "the staying target keeps its health"
    );
    let a1 = series(&store, "a", "h1:1");
    assert!(a1.iter().all(|v| !is_stale_nan(*v)), "{a1:?}");
    let b1 = series(&store, "b", "h1:1");
    assert!(
        is_stale_nan(*b1.last().unwrap()),
        "b left h1's answer after the reload: the new loop knew it: {b1:?}"
    );
    let a2 = series(&store, "a", "h2:2");
    assert!(is_stale_nan(*a2.last().unwrap()), "h2 left: {a2:?}");
    let a3 = series(&store, "a", "h3:3");
    assert!(a3.iter().all(|v| !is_stale_nan(*v)), "{a3:?}");
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("manager stops")
        .unwrap();
}

/// Every series of `store` as (labels, value bits in time order).
fn everything(store: &MemoryStorage) -> Vec<(String, Vec<u64>)> {
    let mut all: Vec<(String, Vec<u64>)> = store
        .select(
            &[Matcher::new("__name__", MatchOp::Regex, ".+").unwrap()],
            i64::MIN,
            i64::MAX,
        )
        .unwrap()
        .into_iter()
        .filter(|s| s.labels.metric_name() != Some("scrape_duration_seconds"))
        .map(|s| {
            let values = s.samples.iter().map(|x| x.value.to_bits()).collect();
            (s.labels.to_string(), values)
        })
        .collect();
    all.sort();
    all
}

/// Scrapes `bodies` in turn (with `content_type`) into a new store, with
/// the scrape cache or with it cleared before every scrape.
async fn scrape_all(bodies: &[&str], content_type: &str, cached: bool) -> (MemoryStorage, u64) {
    let store = Arc::new(MemoryStorage::new());
    let answers = bodies
        .iter()
        .map(|b| Ok(FetchResponse::plain(content_type, *b)))
        .collect();
    let fetcher = Arc::new(FakeFetcher {
        answers: Mutex::new(answers),
        calls: Mutex::new(Vec::new()),
    });
    let yaml = "job_name: node\nmetric_relabel_configs:\n\
                - {source_labels: [__name__], regex: 'drop_.*', action: drop}\n\
                - {source_labels: [__name__, l], regex: 'c;(.*)', target_label: copied, replacement: '$1'}";
    let (mut sl, _) = new_loop(yaml, fetcher, store.clone());
    for _ in bodies {
        if !cached {
            sl.clear_cache();
        }
        sl.scrape_once().await;
        tokio::time::advance(Duration::from_secs(15)).await;
    }
    let hits = sl.cache_hits();
    drop(sl);
    (Arc::try_unwrap(store).ok().unwrap(), hits)
}

#[tokio::test(start_paused = true)]
async fn the_scrape_cache_stores_what_parsing_every_line_stores() {
    // New, removed, repeated and relabelled series, quoted braces, a
    // changed exposed timestamp, a parse error half-way, blanks.
    let text = [
        "# TYPE a counter\na_total{job=\"inner\",x=\"1\"} 1\nb 2\ndrop_me 5\nc{l=\"v\\\"}\"} 3\nt 1 1000\n",
        "a_total{job=\"inner\",x=\"1\"} 2\nb 3 \nnew_one 7\nc{l=\"v\\\"}\"} 4\nt 2 2000\n",
        "a_total{job=\"inner\",x=\"1\"} 3\nnew_one 8\nb 4\nb 5\nt 3 3000\n",
        "a_total{job=\"inner\",x=\"1\"} 4\nb{ 5\n",
        "a_total{job=\"inner\",x=\"1\"} 5\n  b 6\nb   7\nc{l=\"w\"} 1\n",
        "a_total{job=\"inner\",x=\"1\"} 6\nb 7 x\n",
        "a_total{job=\"inner\",x=\"1\"} 7\n",
    ];
    let (cached, hits) = scrape_all(&text, "text/plain; version=0.0.4", true).await;
    let (parsed, _) = scrape_all(&text, "text/plain; version=0.0.4", false).await;
    assert!(hits >= 10, "the cache was used: {hits} hits");
    let got = everything(&cached);
    assert_eq!(got, everything(&parsed));
    // The relabelled series and a staleness marker are there.
    assert!(
        got.iter().any(|(l, _)| l.contains("copied=\"v\\\"}\"")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(l, v)| l.starts_with("new_one")
                && is_stale_nan(f64::from_bits(*v.last().unwrap())))
    );

    // OpenMetrics: `_created` series skipped, content after # EOF refused.
    let om = [
        "# TYPE r counter\nr_total 1\nr_created 100\ng 1 # {id=\"x\"} 1\n# EOF\n",
        "# TYPE r counter\nr_total 2\nr_created 100\ng 2 # {id=\"y\"} 1\n# EOF\n",
        "# TYPE r counter\nr_total 3\n# EOF\nr_total 4\n",
        "# TYPE r gauge\nr_total 5\nr_created 7\ng 3\n# EOF\n",
        "# TYPE r counter\nr_total 6\nr_created 7\ng 4\n# EOF\n",
    ];
    let ct = "application/openmetrics-text; version=1.0.0";
    let (cached, hits) = scrape_all(&om, ct, true).await;
    let (parsed, _) = scrape_all(&om, ct, false).await;
    assert!(hits >= 3, "the cache was used: {hits} hits");
    let got = everything(&cached);
    assert_eq!(got, everything(&parsed));
    assert!(
        got.iter().any(|(l, _)| l.starts_with("r_created")),
        "a gauge's _created is a series"
    );
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn gzipped(body: Vec<u8>) -> FetchResponse {
    FetchResponse {
        content_type: "text/plain; version=0.0.4".into(),
        encoding: BodyEncoding::Gzip,
        body,
    }
}

#[test]
fn gzip_bodies_are_inflated_and_body_size_limit_counts_decompressed_bytes() {
    let text: String = (0..2000).map(|i| format!("m{{i=\"{i}\"}} 1\n")).collect();
    let z = gzip(text.as_bytes());
    assert!(z.len() < text.len() / 4);
    let limit = text.len() as u64;
    // At the limit, with any size hint.
    for hint in [0, 10, text.len(), 1 << 20] {
        let out = gzipped(z.clone()).into_decoded(Some(limit), hint).unwrap();
        assert_eq!(out, text.as_bytes());
    }
    assert_eq!(
        gzipped(z.clone()).into_decoded(None, 0).unwrap(),
        text.as_bytes()
    );
    // One byte under what it inflates to: refused, though the wire bytes are few.
    let e = gzipped(z.clone())
        .into_decoded(Some(limit - 1), 0)
        .unwrap_err();
    assert!(
        e.contains(&format!(
            "body size limit exceeded: more than {} bytes",
            limit - 1
        )),
        "{e}"
    );
    let plain = FetchResponse::plain("text/plain", text.clone());
    assert!(plain.into_decoded(Some(limit - 1), 0).is_err());
    let plain = FetchResponse::plain("text/plain", text.clone());
    assert_eq!(plain.into_decoded(Some(limit), 0).unwrap(), text.as_bytes());
    // Two gzip members, as `cat a.gz b.gz` makes: both are read.
    let mut two = gzip(b"a 1\n");
    two.extend(gzip(b"b 2\n"));
    assert_eq!(gzipped(two).into_decoded(None, 0).unwrap(), b"a 1\nb 2\n");
    // Damaged or cut short: a reason, not a panic or a partial body.
    let mut bad = z.clone();
    bad[z.len() / 2] ^= 0xff;
    let e = gzipped(bad).into_decoded(None, 0).unwrap_err();
    assert!(e.contains("cannot decompress the gzip body"), "{e}");
    let e = gzipped(z[..z.len() - 9].to_vec())
        .into_decoded(None, 0)
        .unwrap_err();
    assert!(e.contains("cannot decompress the gzip body"), "{e}");
    let e = gzipped(b"plain text".to_vec())
        .into_decoded(None, 0)
        .unwrap_err();
    assert!(e.contains("cannot decompress the gzip body"), "{e}");
}

/// One HTTP exchange on 127.0.0.1: answers with `head` and `body` and
/// hands back the request's head.
async fn one_answer(
    head: &'static str,
    body: Vec<u8>,
) -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short");
            req.extend_from_slice(&buf[..n]);
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(reply.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        conn.shutdown().await.unwrap();
        String::from_utf8(req).unwrap().to_ascii_lowercase()
    });
    (url, served)
}

fn fetch_request(url: String, body_limit: Option<u64>) -> FetchRequest {
    FetchRequest {
        url,
        timeout: Duration::from_secs(10),
        body_limit,
    }
}

#[tokio::test]
async fn http_fetcher_asks_for_gzip_and_hands_the_body_over_compressed() {
    let text = "up 1\nm{a=\"b\"} 2\n".repeat(50);
    let fetcher = HttpFetcher::new(&job("job_name: a")).unwrap();
    let (url, served) = one_answer("Content-Encoding: gzip\r\n", gzip(text.as_bytes())).await;
    let resp = fetcher
        .fetch(fetch_request(url, Some(1 << 20)))
        .await
        .unwrap();
    assert!(served.await.unwrap().contains("accept-encoding: gzip"));
    assert_eq!(resp.encoding, BodyEncoding::Gzip);
    assert!(resp.body.len() < text.len());
    assert_eq!(
        resp.into_decoded(Some(1 << 20), 0).unwrap(),
        text.as_bytes()
    );

    // enable_compression: false asks for none; a plain body is as sent.
    let fetcher = HttpFetcher::new(&job("job_name: a\nenable_compression: false")).unwrap();
    let (url, served) = one_answer("", text.clone().into_bytes()).await;
    let resp = fetcher.fetch(fetch_request(url, None)).await.unwrap();
    assert!(!served.await.unwrap().contains("accept-encoding"));
    assert_eq!(resp.encoding, BodyEncoding::Identity);
    assert_eq!(resp.body, text.as_bytes());

    // An encoding the scrape cannot read is a reason, not garbage parsed.
    let (url, _served) = one_answer("Content-Encoding: br\r\n", b"\x0b\x02".to_vec()).await;
    let e = fetcher.fetch(fetch_request(url, None)).await.unwrap_err();
    assert!(e.contains("unsupported Content-Encoding \"br\""), "{e}");

    // A plain body over the limit stops at the wire.
    let (url, _served) = one_answer("", text.clone().into_bytes()).await;
    let e = fetcher
        .fetch(fetch_request(url, Some(100)))
        .await
        .unwrap_err();
    assert!(
        e.contains("body size limit exceeded: more than 100 bytes"),
        "{e}"
    );
}
