//! [`ScrapeLoop`]: scrapes one target every interval, turns the body into
//! samples (target labels, metric relabelling, limits), appends them with
//! the synthetic `up`/`scrape_*` series, and writes staleness markers for
//! series that vanish or a target that goes down or away.

use rustc_hash::{FxHashMap, FxHashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::fetch::{FetchRequest, FetchResponse, Fetcher};
use super::metrics::ScrapeMetrics;
use super::target::{JobSettings, Target};
use crate::background::{Priority, WorkerPool};
use crate::model::relabel;
use crate::model::textparse::{Format, LineParser};
use crate::model::{Labels, METRIC_NAME, Sample, stale_nan};
use crate::shutdown::Shutdown;
use crate::storage::{AppendSample, Appender, OUT_OF_BOUNDS, SampleBounds, SeriesRef};

/// Health of a target, as the targets API spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not scraped yet.
    #[default]
    Unknown,
    /// The last scrape worked.
    Up,
    /// The last scrape failed.
    Down,
}

/// What the dashboard and `/api/v1/targets` show for a target.
#[derive(Clone, Debug, Default)]
pub struct TargetHealth {
    /// Health.
    pub health: Health,
    /// Wall-clock start of the last scrape (ms since the epoch).
    pub last_scrape_ms: Option<i64>,
    /// How long it took.
    pub last_duration: Duration,
    /// Why it failed (empty when it worked).
    pub last_error: String,
    /// Samples it stored.
    pub last_samples: u64,
}

/// Wall-clock milliseconds derived from tokio's clock, so paused-time tests
/// see scrape timestamps advance with the virtual clock.
#[derive(Clone, Copy, Debug)]
pub struct ScrapeClock {
    base_ms: i64,
    base: Instant,
}

impl ScrapeClock {
    /// A clock reading the wall time now.
    pub fn new() -> Self {
        ScrapeClock {
            base_ms: crate::util::now_ms(),
            base: Instant::now(),
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }
}

impl Default for ScrapeClock {
    fn default() -> Self {
        Self::new()
    }
}

/// The scrape loop of one target.
pub struct ScrapeLoop {
    target: Target,
    settings: Arc<JobSettings>,
    fetcher: Arc<dyn Fetcher>,
    appender: Arc<dyn Appender>,
    state: Arc<RwLock<TargetHealth>>,
    metrics: ScrapeMetrics,
    clock: ScrapeClock,
    /// Series of the last scrape without an exposed timestamp (they get a
    /// staleness marker when they disappear).
    /// Keyed by [`series_key`], so a scrape's series are never cloned.
    previous: FxHashMap<u64, Labels>,
    /// Keys of every series seen in the last scrape (for `scrape_series_added`).
    seen: FxHashSet<u64>,
    /// Turns bodies into samples, on a scrape thread; `None` only while a
    /// scrape has it there.
    processor: Option<Box<BodyProcessor>>,
    /// The store's ref of each series stored by the last scrape, by key.
    refs: FxHashMap<u64, SeriesRef>,
}

/// The scrape cache, as Prometheus keeps one: a line's series text (metric
/// name and `{…}`, as exposed) → what target labels, metric relabelling
/// and the label checks made of it. A line whose text the last scrape saw
/// skips label parsing, relabelling and building a label set, and appends
/// the very same shared label set, which the store recognises at once. It
/// belongs to one loop: a reload (new relabel rules, new target labels)
/// starts a new loop with an empty cache.
#[derive(Default)]
struct SeriesCache {
    entries: FxHashMap<Box<str>, CacheEntry>,
    /// The scrape being processed; entries not seen in it are dropped.
    scrape: u64,
    /// Lines read through the cache since the loop started.
    hits: u64,
}

struct CacheEntry {
    /// The series to store, with its key; `None`: relabelling dropped it
    /// (or left no metric name).
    kept: Option<(Labels, u64)>,
    seen_in: u64,
}

/// What a target's loop hands to its successor when its job is reloaded:
/// the series its next scrape compares against (so one that disappears
/// still gets its staleness marker) and the health the targets page shows.
#[derive(Debug)]
pub struct LoopCarry {
    previous: FxHashMap<u64, Labels>,
    seen: FxHashSet<u64>,
    /// Health, last scrape, last error.
    pub state: Arc<RwLock<TargetHealth>>,
}

/// Why a target's loop stops, besides shutdown.
#[derive(Clone, Debug, Default)]
pub struct LoopStop {
    /// The target left discovery: its series get staleness markers.
    pub removed: CancellationToken,
    /// Its job was reloaded: the loop hands its state over
    /// ([`LoopCarry`]) and writes no staleness markers.
    pub replaced: CancellationToken,
}

/// One scrape's outcome before it is appended.
struct Scraped {
    samples: Vec<AppendSample>,
    /// Key of each sample in `samples`.
    keys: Vec<u64>,
    /// Keys of the samples without an exposed timestamp.
    current: FxHashSet<u64>,
    seen: FxHashSet<u64>,
    scraped: usize,
    /// Samples dropped for an exposed timestamp outside the store's window.
    out_of_bounds: usize,
}

/// Threads that parse scraped bodies and store their samples, shared by
/// every scrape loop: below the model's priority like all monitoring work
/// (`background`), never on the async runtime's threads.
#[cfg_attr(test, allow(dead_code))]
fn scrape_pool() -> &'static WorkerPool {
    static POOL: OnceLock<WorkerPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 8);
        WorkerPool::new("scrape-work", threads, SCRAPE_PRIORITY)
    })
}

/// Runs `job` on a scrape thread.
#[cfg(not(test))]
async fn on_scrape_thread<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::background::PoolError> {
    scrape_pool().run(SCRAPE_WORK_WAIT, move |_| job()).await
}

/// Unit tests run scrape loops on tokio's paused clock, which only holds
/// still for threads tokio knows of: there the job runs on its blocking
/// pool. The binary's tests check the scrape threads
/// (`tests/ingest_limits.rs`).
#[cfg(test)]
async fn on_scrape_thread<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, crate::background::PoolError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| crate::background::PoolError::Panicked(e.to_string()))
}

/// nice 19 and `SCHED_BATCH`, as remote_write ingest and queries.
const SCRAPE_PRIORITY: Priority = Priority {
    nice: 19,
    batch: true,
};

/// How long a scrape waits for a free scrape thread before it fails with
/// that reason (the threads only stay busy that long while the model keeps
/// every core).
#[cfg_attr(test, allow(dead_code))]
const SCRAPE_WORK_WAIT: Duration = Duration::from_secs(60);

/// What turns a scraped body into samples: target labels, metric
/// relabelling, limits and the scrape cache. Moved onto a scrape thread for
/// each scrape and back.
struct BodyProcessor {
    target: Target,
    settings: Arc<JobSettings>,
    bounds: SampleBounds,
    /// What the last scrapes made of each series text (the scrape cache).
    cache: SeriesCache,
    /// The last decompressed body's size: the next one's buffer.
    last_body_len: usize,
}

impl BodyProcessor {
    /// Decompresses a fetched body and [`process`](Self::process)es it.
    fn scrape(&mut self, resp: FetchResponse, ts: i64) -> Result<Scraped, String> {
        let format = Format::from_content_type(&resp.content_type);
        let raw = resp.into_decoded(self.settings.limits.body_size_limit, self.last_body_len)?;
        self.last_body_len = raw.len();
        // Validating first takes std's word-at-a-time ASCII path; the lossy
        // conversion walks byte by byte even when the body is valid, as it
        // nearly always is.
        let body = match std::str::from_utf8(&raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(&raw),
        };
        self.process(&body, format, ts)
    }

    /// Parses the body line by line and applies target labels, metric
    /// relabelling, limits and de-duplication to each sample as it comes,
    /// so a limit stops the scrape before the rest of the body is parsed.
    /// Lines whose series text the last scrape saw take its outcome from
    /// the scrape cache and only have their value parsed.
    fn process(&mut self, body: &str, format: Format, ts: i64) -> Result<Scraped, String> {
        self.cache.scrape += 1;
        let scraped = self.process_lines(body, format, ts);
        // Series texts gone from this scrape leave the cache (after a
        // failed scrape too, so it never holds more than one body's lines).
        let scrape = self.cache.scrape;
        self.cache.entries.retain(|_, e| e.seen_in == scrape);
        scraped
    }

    fn process_lines(&mut self, body: &str, format: Format, ts: i64) -> Result<Scraped, String> {
        let s = self.settings.clone();
        let bounds = self.bounds;
        // Sized for the last body's series (the cache holds one entry per
        // line it had), so a steady target never regrows them.
        let hint = self.cache.entries.len();
        let mut out = Scraped {
            samples: Vec::with_capacity(hint),
            keys: Vec::with_capacity(hint),
            current: FxHashSet::with_capacity_and_hasher(hint, Default::default()),
            seen: FxHashSet::with_capacity_and_hasher(hint, Default::default()),
            scraped: 0,
            out_of_bounds: 0,
        };
        let scrape = self.cache.scrape;
        let mut parser = LineParser::new(format);
        // Counted as the lines go by rather than by a first pass over the body.
        let mut pieces = 0;
        let end = body.len();
        for (i, raw) in body.split('\n').enumerate() {
            pieces = i + 1;
            // The newline that ends the last line leaves an empty piece
            // behind (the only piece that starts at the body's end).
            if raw.is_empty() && raw.as_ptr() as usize == body.as_ptr() as usize + end {
                break;
            }
            let series_text = parser.series_text(raw);
            let cached = series_text.and_then(|t| self.cache.entries.get_mut(t));
            let (kept, value, exposed_ts) = match cached {
                Some(entry) => {
                    entry.seen_in = scrape;
                    self.cache.hits += 1;
                    let parsed = parser
                        .value_line(i + 1, raw, series_text.unwrap_or_default())
                        .map_err(|e| format!("parse error: {e}"))?;
                    let Some((value, t)) = parsed else {
                        continue;
                    };
                    out.scraped += 1;
                    (entry.kept.clone(), value, t)
                }
                None => {
                    let parsed = parser
                        .line(i + 1, raw)
                        .map_err(|e| format!("parse error: {e}"))?;
                    let Some(p) = parsed else {
                        continue;
                    };
                    out.scraped += 1;
                    let labels = self.with_target_labels(p.labels);
                    let kept = match relabel::process(labels, &s.metric_relabel) {
                        Some(l) if l.metric_name().is_some_and(|n| !n.is_empty()) => {
                            check_label_limits(&l, &s)?;
                            let key = series_key(&l);
                            Some((l, key))
                        }
                        _ => None,
                    };
                    if let Some(text) = series_text {
                        self.cache.entries.insert(
                            text.into(),
                            CacheEntry {
                                kept: kept.clone(),
                                seen_in: scrape,
                            },
                        );
                    }
                    (kept, p.value, p.timestamp_ms)
                }
            };
            let Some((labels, key)) = kept else {
                continue;
            };
            if !out.seen.insert(key) {
                // A repeated series in one body: Prometheus keeps the first.
                continue;
            }
            let timestamp_ms = match (s.honor_timestamps, exposed_ts) {
                (true, Some(t)) => t,
                _ => {
                    out.current.insert(key);
                    ts
                }
            };
            if !bounds.contains(timestamp_ms, ts) {
                // Prometheus' out-of-bounds samples: dropped and counted,
                // the rest of the scrape is kept.
                out.out_of_bounds += 1;
                continue;
            }
            out.samples.push(AppendSample {
                labels,
                sample: Sample {
                    timestamp_ms,
                    value,
                },
            });
            out.keys.push(key);
            if s.limits.sample_limit > 0 && out.samples.len() as u64 > s.limits.sample_limit {
                return Err(format!(
                    "sample_limit exceeded: more than {} samples after metric relabelling",
                    s.limits.sample_limit
                ));
            }
        }
        parser
            .finish(pieces)
            .map_err(|e| format!("parse error: {e}"))?;
        Ok(out)
    }

    fn with_target_labels(&self, mut labels: Labels) -> Labels {
        for t in self.target.labels.iter() {
            match labels.get(&t.name) {
                None => labels.set(&t.name, &t.value),
                Some(_) if self.settings.honor_labels => {}
                Some(exposed) => {
                    let exposed = exposed.to_string();
                    let mut name = format!("exported_{}", t.name);
                    while labels.get(&name).is_some() {
                        name = format!("exported_{name}");
                    }
                    labels.set(&name, &exposed);
                    labels.set(&t.name, &t.value);
                }
            }
        }
        labels
    }
}

impl ScrapeLoop {
    /// A loop for `target`; `state` is what the targets page reads.
    pub fn new(
        target: Target,
        settings: Arc<JobSettings>,
        fetcher: Arc<dyn Fetcher>,
        appender: Arc<dyn Appender>,
        state: Arc<RwLock<TargetHealth>>,
        metrics: ScrapeMetrics,
        clock: ScrapeClock,
    ) -> Self {
        ScrapeLoop {
            target,
            settings,
            fetcher,
            appender,
            state,
            metrics,
            clock,
            previous: FxHashMap::default(),
            seen: FxHashSet::default(),
            processor: None,
            refs: FxHashMap::default(),
        }
    }

    /// The loop's body processor, made anew (with an empty scrape cache)
    /// when a scrape could not bring it back.
    fn take_processor(&mut self) -> Box<BodyProcessor> {
        self.processor.take().unwrap_or_else(|| {
            Box::new(BodyProcessor {
                target: self.target.clone(),
                settings: self.settings.clone(),
                bounds: self.appender.sample_bounds(),
                cache: SeriesCache::default(),
                last_body_len: 0,
            })
        })
    }

    /// The health the targets page reads.
    pub fn state(&self) -> Arc<RwLock<TargetHealth>> {
        self.state.clone()
    }

    /// Continues from a predecessor's state (a reloaded job's target).
    pub fn with_carry(mut self, carry: LoopCarry) -> Self {
        self.previous = carry.previous;
        self.seen = carry.seen;
        self.state = carry.state;
        self
    }

    /// Forgets the scrape cache, so the next scrape parses every line.
    #[cfg(test)]
    pub(super) fn clear_cache(&mut self) {
        if let Some(p) = &mut self.processor {
            p.cache.entries.clear();
        }
    }

    /// Lines read through the scrape cache so far.
    #[cfg(test)]
    pub(super) fn cache_hits(&self) -> u64 {
        self.processor.as_ref().map_or(0, |p| p.cache.hits)
    }

    /// Delay before the first scrape: a stable per-target offset within the
    /// interval, so targets of one job do not all fire at once.
    pub fn offset(&self) -> Duration {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.target.url.hash(&mut h);
        self.target.labels.hash(&mut h);
        let interval = self.settings.interval.as_millis().max(1) as u64;
        let now = self.clock.now_ms().max(0) as u64;
        let slot = h.finish() % interval;
        Duration::from_millis((slot + interval - now % interval) % interval)
    }

    /// Scrapes every interval until `shutdown` or `stop`. When removed
    /// (the target left discovery), every series it wrote gets a staleness
    /// marker; at shutdown they are left as they are, as Prometheus does.
    /// When replaced (its job was reloaded), it returns its state for the
    /// successor; a scrape in progress finishes first.
    pub async fn run(mut self, stop: LoopStop, shutdown: Shutdown) -> Option<LoopCarry> {
        let start = Instant::now() + self.offset();
        let mut ticker = tokio::time::interval_at(start, self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return None,
                _ = stop.removed.cancelled() => break,
                _ = stop.replaced.cancelled() => {
                    return Some(LoopCarry {
                        previous: self.previous,
                        seen: self.seen,
                        state: self.state,
                    });
                }
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = shutdown.wait() => return None,
                _ = self.scrape_once() => {}
            }
        }
        self.end_of_run_staleness().await;
        None
    }

    /// One scrape: fetch, parse, relabel, append, update the target state.
    pub async fn scrape_once(&mut self) {
        let ts = self.clock.now_ms();
        let started = Instant::now();
        let req = FetchRequest {
            url: self.target.url.clone(),
            timeout: self.settings.timeout,
            body_limit: self.settings.limits.body_size_limit,
        };
        let fetched =
            match tokio::time::timeout(self.settings.timeout, self.fetcher.fetch(req)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "scrape timed out after {:?}",
                    self.settings.timeout
                )),
            };
        let result = match fetched {
            Ok(resp) => {
                let mut processor = self.take_processor();
                let parsed = on_scrape_thread(move || {
                    let r = processor.scrape(resp, ts);
                    (processor, r)
                })
                .await;
                match parsed {
                    Ok((processor, r)) => {
                        self.processor = Some(processor);
                        r
                    }
                    Err(e) => Err(format!("parsing the scrape: {e}")),
                }
            }
            Err(e) => Err(e),
        };
        let duration = started.elapsed();
        let mut current = None;
        let mut keys = Vec::new();
        let (mut batch, error, scraped, post_relabel, added) = match result {
            Ok(s) => {
                self.metrics.rejected(
                    &self.settings.job_name,
                    OUT_OF_BOUNDS,
                    s.out_of_bounds as u64,
                );
                let added = s.seen.difference(&self.seen).count();
                let post = s.samples.len();
                let mut batch = s.samples;
                batch.extend(self.stale_markers(Some(&s.current), ts));
                current = Some(s.current);
                keys = s.keys;
                self.seen = s.seen;
                (batch, None, s.scraped, post, added)
            }
            Err(e) => {
                let batch = self.stale_markers(None, ts);
                self.seen.clear();
                (batch, Some(e), 0, 0, 0)
            }
        };
        self.previous.clear();
        let scraped_series = batch.len();
        let mut up = if error.is_none() { 1.0 } else { 0.0 };
        batch.extend(self.report(ts, up, duration, scraped, post_relabel, added));
        let mut error = error;
        let refs: Vec<Option<SeriesRef>> = keys
            .iter()
            .map(|k| self.refs.get(k).copied())
            .chain(std::iter::repeat(None))
            .take(batch.len())
            .collect();
        let (stored, batch, refs) = self.append_returning(batch, refs).await;
        if let Err(e) = stored {
            // Storage refused the scrape: record it as failed and keep the
            // synthetic series so the dashboard shows why.
            error = Some(format!("storing samples failed: {e}"));
            up = 0.0;
            let report = self.report(ts, up, duration, scraped, post_relabel, added);
            if let Err(e) = self.append(report).await {
                tracing::warn!(target = %self.target.url, error = %e, "cannot store scrape report");
            }
        } else if let Some(current) = current {
            // The stored series become the next scrape's staleness
            // candidates, moved out of the batch rather than cloned.
            // Refilled in place: their tables keep last scrape's size.
            self.refs.clear();
            self.refs.extend(
                keys.iter()
                    .zip(&refs)
                    .filter_map(|(k, r)| r.map(|r| (*k, r))),
            );
            self.previous.extend(
                batch
                    .into_iter()
                    .take(post_relabel)
                    .zip(keys)
                    .filter(|(_, k)| current.contains(k))
                    .map(|(s, k)| (k, s.labels)),
            );
        }
        let job = &self.settings.job_name;
        self.metrics.observe(
            job,
            duration,
            error.is_some(),
            if up == 1.0 { scraped_series as u64 } else { 0 },
        );
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        st.health = if up == 1.0 { Health::Up } else { Health::Down };
        st.last_scrape_ms = Some(ts);
        st.last_duration = duration;
        st.last_samples = if up == 1.0 { post_relabel as u64 } else { 0 };
        st.last_error = error.clone().unwrap_or_default();
        if let Some(e) = error {
            tracing::debug!(target = %self.target.url, error = %e, "scrape failed");
        }
    }

    async fn append(&self, batch: Vec<AppendSample>) -> Result<(), String> {
        let refs = vec![None; batch.len()];
        self.append_returning(batch, refs).await.0
    }

    /// Appends off the async threads (with the series refs known, `refs[i]`
    /// for `batch[i]`) and hands the batch and the refs back.
    async fn append_returning(
        &self,
        batch: Vec<AppendSample>,
        mut refs: Vec<Option<SeriesRef>>,
    ) -> (
        Result<(), String>,
        Vec<AppendSample>,
        Vec<Option<SeriesRef>>,
    ) {
        let appender = self.appender.clone();
        match on_scrape_thread(move || {
            let r = appender
                .append_with_refs(&batch, &mut refs)
                .map_err(|e| e.to_string());
            (r, batch, refs)
        })
        .await
        {
            Ok(r) => r,
            Err(e) => (Err(e.to_string()), Vec::new(), Vec::new()),
        }
    }

    fn stale_markers(&self, current: Option<&FxHashSet<u64>>, ts: i64) -> Vec<AppendSample> {
        self.previous
            .iter()
            .filter(|(k, _)| current.is_none_or(|c| !c.contains(*k)))
            .map(|(_, l)| AppendSample {
                labels: l.clone(),
                sample: Sample {
                    timestamp_ms: ts,
                    value: stale_nan(),
                },
            })
            .collect()
    }

    fn report(
        &self,
        ts: i64,
        up: f64,
        d: Duration,
        scraped: usize,
        post: usize,
        added: usize,
    ) -> Vec<AppendSample> {
        let series: [(&str, f64); 5] = [
            ("up", up),
            ("scrape_duration_seconds", d.as_secs_f64()),
            ("scrape_samples_scraped", scraped as f64),
            ("scrape_samples_post_metric_relabeling", post as f64),
            ("scrape_series_added", added as f64),
        ];
        series
            .into_iter()
            .map(|(name, value)| self.synthetic(name, ts, value))
            .collect()
    }

    fn synthetic(&self, name: &str, ts: i64, value: f64) -> AppendSample {
        let mut labels = self.target.labels.clone();
        labels.set(METRIC_NAME, name);
        AppendSample {
            labels,
            sample: Sample {
                timestamp_ms: ts,
                value,
            },
        }
    }

    async fn end_of_run_staleness(&mut self) {
        let ts = self.clock.now_ms();
        let mut batch = self.stale_markers(None, ts);
        for name in [
            "up",
            "scrape_duration_seconds",
            "scrape_samples_scraped",
            "scrape_samples_post_metric_relabeling",
            "scrape_series_added",
        ] {
            batch.push(self.synthetic(name, ts, stale_nan()));
        }
        self.previous.clear();
        if let Err(e) = self.append(batch).await {
            tracing::warn!(target = %self.target.url, error = %e, "cannot store staleness markers of a removed target");
        }
    }
}

/// A 64-bit key of a label set (staleness tracking compares keys, not sets).
fn series_key(labels: &Labels) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

fn check_label_limits(labels: &Labels, s: &JobSettings) -> Result<(), String> {
    let l = &s.limits;
    if l.label_limit > 0 && labels.len() as u64 > l.label_limit {
        return Err(format!(
            "label_limit exceeded: {labels} has {} labels, limit {}",
            labels.len(),
            l.label_limit
        ));
    }
    for label in labels.iter() {
        if l.label_name_length_limit > 0
            && label.name.chars().count() as u64 > l.label_name_length_limit
        {
            return Err(format!(
                "label_name_length_limit exceeded: label name {:?} of {labels} is longer than {}",
                label.name, l.label_name_length_limit
            ));
        }
        if l.label_value_length_limit > 0
            && label.value.chars().count() as u64 > l.label_value_length_limit
        {
            return Err(format!(
                "label_value_length_limit exceeded: value of label {:?} of {labels} is longer than {}",
                label.name, l.label_value_length_limit
            ));
        }
    }
    Ok(())
}
