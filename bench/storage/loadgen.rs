//! Load generator for the storage comparison (`bench/storage/run.sh`).
//!
//! Generates the same deterministic data every run — `series` series over
//! `hours` at a 15s step, ending now — and either sends it with Prometheus
//! remote_write 1.0 (snappy protobuf, one request per step, in time order,
//! like an agent catching up) or appends it in-process to infermon's
//! `SqliteStorage` (same batches).
//!
//! Two data shapes, chosen by `LOADGEN_SHAPE`:
//! - `int` (default): half counters, some byte gauges, some histogram
//!   buckets, integer values, each series at an exact 15 s step (plus a fixed
//!   per-series offset);
//! - `float`: what a Python model service exports — integer request counters
//!   and buckets beside histogram `_sum` counters of random float durations,
//!   latency and utilisation gauges at full float precision, CPU seconds in
//!   hundredths and memory bytes, with every timestamp jittered by a few
//!   milliseconds around the 15 s step, as scrapes land.
//!
//! Usage:
//!   storage_loadgen remote-write <url> <series> <hours>
//!   storage_loadgen local <data-dir> <series> <hours>
//!   storage_loadgen query <data-dir> <series> <hours>   (after `local`)
//!   storage_loadgen compact <data-dir> - -                (a stopped infermon's store:
//!                                                         compact every day now, report bytes)
//!   storage_loadgen maintain <data-dir> - -               (a stopped infermon's store: one
//!                                                         maintenance pass at the real now, as
//!                                                         the server runs it every minute; bytes
//!                                                         in total and of data older than 3 h,
//!                                                         per data kind)
//!   storage_loadgen pco-probe - <series> <hours>          (pco settings tried on the data of
//!                                                         each kind, bytes per sample)
//! Prints one JSON line with what it did.

use std::time::Instant;

use infermon::model::{Labels, Sample};
use infermon::storage::{AppendSample, Appender, SqliteStorage, StorageOptions};

const STEP_MS: i64 = 15_000;

/// xorshift64*: deterministic per series, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One generated series and its running value.
struct Gen {
    labels: Vec<(String, String)>,
    kind: u8,
    value: f64,
    rng: Rng,
    offset_ms: i64,
}

const BUCKETS: [&str; 8] = ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];

/// The `job` label of every generated series: `LOADGEN_JOB`, else "bench"
/// (the isolation bench sends fresh series per round under other jobs).
fn job() -> String {
    std::env::var("LOADGEN_JOB").unwrap_or_else(|_| "bench".to_string())
}

/// Whether `LOADGEN_SHAPE=float` asks for the model-service shape.
fn float_shape() -> bool {
    match std::env::var("LOADGEN_SHAPE").as_deref() {
        Ok("float") => true,
        Ok("int") | Err(_) => false,
        Ok(other) => panic!("LOADGEN_SHAPE must be int or float, not {other}"),
    }
}

/// Series kinds of the float shape (`Gen::kind` = 10 + index).
const FLOAT_KINDS: [&str; 10] = [
    "counter", "counter", "bucket", "bucket", "bucket", "sum", "latency", "ratio", "cpu", "bytes",
];

/// The data kind of a series, for per-kind reports.
fn kind_name(name: &str) -> &'static str {
    if name.ends_with("_bucket") {
        "bucket"
    } else if name.ends_with("_sum") {
        "sum"
    } else if name.ends_with("_ratio") {
        "ratio"
    } else if name.ends_with("_cpu_seconds_total") {
        "cpu"
    } else if name.ends_with("_total") {
        "counter"
    } else if name.ends_with("_bytes") {
        "bytes"
    } else if name.ends_with("_seconds") {
        "latency"
    } else {
        "other"
    }
}

fn series(n: usize) -> Vec<Gen> {
    let job = job();
    let float = float_shape();
    (0..n)
        .map(|i| {
            let family = i / 100;
            let instance = format!("host-{:03}:9100", i % 50);
            let mut kind = (i % 10) as u8;
            let mut labels = vec![
                ("job".to_string(), job.clone()),
                ("instance".to_string(), instance),
                ("idx".to_string(), (i % 100 / 10).to_string()),
            ];
            let name = if float {
                let k = FLOAT_KINDS[kind as usize];
                kind += 10;
                match k {
                    "counter" => format!("model_requests_{family}_total"),
                    "bucket" => {
                        labels.push(("le".to_string(), BUCKETS[i % BUCKETS.len()].to_string()));
                        format!("model_latency_{family}_seconds_bucket")
                    }
                    "sum" => format!("model_latency_{family}_seconds_sum"),
                    "latency" => format!("model_last_latency_{family}_seconds"),
                    "ratio" => format!("model_gpu_utilisation_{family}_ratio"),
                    "cpu" => format!("process_{family}_cpu_seconds_total"),
                    _ => format!("process_resident_memory_{family}_bytes"),
                }
            } else {
                match kind {
                    0..=4 => format!("bench_requests_{family}_total"),
                    5..=7 => format!("bench_memory_{family}_bytes"),
                    _ => {
                        labels.push(("le".to_string(), BUCKETS[i % BUCKETS.len()].to_string()));
                        format!("bench_latency_{family}_seconds_bucket")
                    }
                }
            };
            labels.push(("__name__".to_string(), name));
            labels.sort();
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x1000_0000_01b3));
            let value = match kind {
                5..=7 | 19 => (rng.below(1 << 30) + (1 << 30)) as f64,
                16 => 0.05,
                17 => 0.5,
                12..=15 | 18 => 0.0,
                _ => rng.below(10_000) as f64,
            };
            Gen {
                labels,
                kind,
                value,
                rng,
                offset_ms: (i as i64 * 37) % 1000,
            }
        })
        .collect()
}

impl Gen {
    /// A uniform float in [0, 1) with all 53 bits random.
    fn unit(&mut self) -> f64 {
        (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The timestamp of step `step` from `start`: exact for the int shape,
    /// jittered by up to ±5 ms for the float shape.
    fn time(&mut self, start: i64, step: i64) -> i64 {
        let t = start + step * STEP_MS + self.offset_ms;
        if self.kind >= 10 {
            t + self.rng.below(11) as i64 - 5
        } else {
            t
        }
    }

    fn step(&mut self) -> f64 {
        match self.kind {
            // Counters: bursty request counts.
            0..=4 | 10 | 11 => self.value += self.rng.below(50) as f64,
            // Gauges: memory in pages of 4 KiB, drifting.
            5..=7 | 19 => {
                let delta = self.rng.below(2048) as f64 * 4096.0 - 1024.0 * 4096.0;
                self.value = (self.value + delta).max(0.0);
            }
            // Histogram `_sum`: the durations of this step's requests.
            15 => {
                for _ in 0..self.rng.below(8) {
                    let d = 0.01 + self.unit() * self.unit() * 2.0;
                    self.value += d;
                }
            }
            // The latest request's latency in seconds.
            16 => self.value = 0.005 + self.unit() * self.unit() * 0.5,
            // Utilisation ratio: a random walk in [0, 1].
            17 => self.value = (self.value + (self.unit() - 0.5) * 0.1).clamp(0.0, 1.0),
            // CPU seconds, as the Python client reports them: hundredths
            // summed in floating point.
            18 => self.value += self.rng.below(30) as f64 * 0.01,
            // Histogram buckets: counters that often stay flat.
            _ => {
                if self.rng.below(3) == 0 {
                    self.value += self.rng.below(5) as f64;
                }
            }
        }
        self.value
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_len_field(out: &mut Vec<u8>, field: u32, body: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// A remote_write 1.0 `WriteRequest` with one sample per series.
fn write_request(gens: &[Gen], values: &[(i64, f64)]) -> Vec<u8> {
    let mut req = Vec::with_capacity(gens.len() * 120);
    let mut ts_buf = Vec::with_capacity(256);
    let mut tmp = Vec::with_capacity(128);
    for (g, &(t, v)) in gens.iter().zip(values) {
        ts_buf.clear();
        for (name, value) in &g.labels {
            tmp.clear();
            put_len_field(&mut tmp, 1, name.as_bytes());
            put_len_field(&mut tmp, 2, value.as_bytes());
            put_len_field(&mut ts_buf, 1, &tmp);
        }
        tmp.clear();
        tmp.push(1 << 3 | 1);
        tmp.extend_from_slice(&v.to_le_bytes());
        tmp.push(2 << 3);
        put_varint(&mut tmp, t as u64);
        put_len_field(&mut ts_buf, 2, &tmp);
        put_len_field(&mut req, 1, &ts_buf);
    }
    req
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-parameter for the calling process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn peak_rss_bytes() -> u64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

/// Times 24h selects over the store `local` filled: one metric family (100
/// series), one job's histogram buckets, and every series; median of 5.
fn query(dir: &str) {
    use infermon::model::{MatchOp, Matcher};
    use infermon::storage::Querier;
    let store = SqliteStorage::open(
        dir,
        StorageOptions {
            min_free_disk: 0,
            ..StorageOptions::default()
        },
    )
    .expect("open");
    let now = infermon::util::now_ms();
    let cases: [(&str, Vec<Matcher>); 3] = [
        (
            "one_family",
            vec![
                Matcher::new("__name__", MatchOp::Equal, "bench_requests_0_total")
                    .expect("matcher"),
            ],
        ),
        (
            "buckets_regex",
            vec![
                Matcher::new("__name__", MatchOp::Regex, "bench_latency_.*_bucket")
                    .expect("matcher"),
            ],
        ),
        (
            "all",
            vec![Matcher::new("job", MatchOp::Equal, "bench").expect("matcher")],
        ),
    ];
    for (name, matchers) in cases {
        let mut times = Vec::new();
        let mut shape = (0, 0);
        for _ in 0..5 {
            let t0 = Instant::now();
            let got = store
                .select(&matchers, now - 24 * 3600 * 1000, now)
                .expect("select");
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            shape = (
                got.len(),
                got.iter().map(|s| s.samples.len()).sum::<usize>(),
            );
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{{\"query\":\"{name}\",\"series\":{},\"samples\":{},\"median_ms\":{:.1}}}",
            shape.0, shape.1, times[2]
        );
    }
}

/// A stopped store after one maintenance pass at the real now: bytes in
/// total, and chunk bytes of data older than 3 h, in total and per kind.
fn maintain(dir: &str) {
    let store = SqliteStorage::open(
        dir,
        StorageOptions {
            min_free_disk: 0,
            ..StorageOptions::default()
        },
    )
    .expect("open store");
    let before = store.used_bytes().expect("size");
    let now = infermon::util::now_ms();
    let c0 = cpu_seconds();
    let report = store.maintain(now).expect("maintain");
    let cpu = cpu_seconds() - c0;
    store.close().expect("close");
    let bytes = store.used_bytes().expect("size");
    let conn = rusqlite::Connection::open(store.db_path()).expect("open db");
    let old_before = now - 3 * 3600 * 1000;
    // kind -> (old bytes, old samples, new bytes, new samples)
    let mut kinds: std::collections::BTreeMap<&str, [i64; 4]> = Default::default();
    let mut encodings = [0i64; 3];
    let mut stmt = conn
        .prepare(
            "SELECT json_extract(s.labels, '$.__name__'), c.max_t, length(c.data), c.samples, c.encoding
             FROM chunks c JOIN series s ON s.id = c.series_id",
        )
        .expect("prepare");
    let mut rows = stmt.query([]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        let name: String = r.get(0).expect("name");
        let (max_t, len, n, enc): (i64, i64, i64, i64) = (
            r.get(1).expect("max_t"),
            r.get(2).expect("len"),
            r.get(3).expect("samples"),
            r.get(4).expect("encoding"),
        );
        let e = kinds.entry(kind_name(&name)).or_default();
        let at = if max_t < old_before { 0 } else { 2 };
        e[at] += len;
        e[at + 1] += n;
        encodings[enc.clamp(0, 2) as usize] += 1;
    }
    let (mut head_bytes, mut head_samples) = (0i64, 0i64);
    let mut heads = conn
        .prepare("SELECT data FROM head_chunks")
        .expect("prepare");
    let mut rows = heads.query([]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        let data: Vec<u8> = r.get(0).expect("data");
        head_bytes += data.len() as i64;
        // The chunk's first two bytes: its sample count (FORMAT.md).
        head_samples += data
            .get(..2)
            .map_or(0, |b| i64::from(u16::from_be_bytes([b[0], b[1]])));
    }
    // The 5-minute rollups (every block that ended `rollup_after` ago): kept for `rollup_retention`
    // (400 d), a store of their own the peers do not keep.
    let rollup_bytes: i64 = conn
        .query_row(
            "SELECT coalesce(sum(length(data)), 0) FROM rollups",
            [],
            |r| r.get(0),
        )
        .expect("rollup bytes");
    let sum = |i: usize| kinds.values().map(|k| k[i]).sum::<i64>();
    let (old_bytes, old_samples) = (sum(0), sum(1));
    let samples = old_samples + sum(3) + head_samples;
    // The file's overhead over the blob bytes it holds (pages, rows,
    // index, series), applied to the old data's chunk bytes.
    let blobs = (old_bytes + sum(2) + head_bytes + rollup_bytes).max(1);
    let overhead = bytes as f64 / blobs as f64;
    let rollup_file_bytes = (rollup_bytes as f64 * overhead) as i64;
    let per_kind: Vec<String> = kinds
        .iter()
        .map(|(k, v)| {
            format!(
                "\"{k}\":{{\"old_bytes_per_sample\":{:.3},\"new_bytes_per_sample\":{:.3},\"old_samples\":{}}}",
                v[0] as f64 / v[1].max(1) as f64,
                v[2] as f64 / v[3].max(1) as f64,
                v[1]
            )
        })
        .collect();
    println!(
        "{{\"bytes_before_maintenance\":{before},\"bytes\":{bytes},\"stored_samples\":{samples},\"head_bytes\":{head_bytes},\"head_samples\":{head_samples},\
\"old_chunk_bytes\":{old_bytes},\"old_samples\":{old_samples},\"old_bytes_per_sample\":{:.3},\"old_file_bytes_per_sample_est\":{:.3},\"file_overhead\":{overhead:.3},\
\"rollup_bytes\":{rollup_bytes},\"rollup_file_bytes_est\":{rollup_file_bytes},\"chunks_by_encoding\":{encodings:?},\"maintenance_cpu_s\":{cpu:.3},\"chunks_compacted\":{},\"kinds\":{{{}}}}}",
        old_bytes as f64 / old_samples.max(1) as f64,
        old_bytes as f64 * overhead / old_samples.max(1) as f64,
        report.chunks_compacted,
        per_kind.join(",")
    );
}

/// Per kind: samples, bytes `pco_chunk::encode` wrote, and timestamp and
/// value stream bytes per pco setting tried.
type ProbeSums = (usize, usize, Vec<usize>, Vec<usize>);

/// pco settings tried on the generated data of each kind, per 2 h block
/// and per `hours` (a day when 24): bytes per sample of the timestamp and
/// value streams, next to what `pco_chunk::encode` writes.
fn pco_probe(n: usize, hours: i64) {
    use infermon::storage::pco_chunk;
    use pco::standalone::simple_compress;
    use pco::{ChunkConfig, DeltaSpec, ModeSpec};
    let steps = hours * 3600 * 1000 / STEP_MS;
    let start = infermon::util::now_ms() / (24 * 3600 * 1000) * (24 * 3600 * 1000);
    let mut gens = series(n);
    let mut data: Vec<Vec<Sample>> = vec![Vec::with_capacity(steps as usize); n];
    for step in 0..steps {
        for (g, d) in gens.iter_mut().zip(data.iter_mut()) {
            let t = g.time(start, step);
            d.push(Sample {
                timestamp_ms: t,
                value: g.step(),
            });
        }
    }
    let configs: Vec<(&str, ChunkConfig)> = vec![
        ("auto", ChunkConfig::default()),
        ("level12", ChunkConfig::default().with_compression_level(12)),
        (
            "delta1",
            ChunkConfig::default().with_delta_spec(DeltaSpec::TryConsecutive(1)),
        ),
        (
            "delta2",
            ChunkConfig::default().with_delta_spec(DeltaSpec::TryConsecutive(2)),
        ),
        (
            "nodelta",
            ChunkConfig::default().with_delta_spec(DeltaSpec::NoOp),
        ),
        (
            "lookback",
            ChunkConfig::default().with_delta_spec(DeltaSpec::TryLookback),
        ),
        (
            "conv1_6",
            ChunkConfig::default().with_delta_spec(DeltaSpec::TryConv1(6)),
        ),
        (
            "classic",
            ChunkConfig::default().with_mode_spec(ModeSpec::Classic),
        ),
        (
            "floatmult_0.01",
            ChunkConfig::default().with_mode_spec(ModeSpec::TryFloatMult(0.01)),
        ),
        (
            "intmult_15000_nodelta",
            ChunkConfig::default()
                .with_mode_spec(ModeSpec::TryIntMult(15_000))
                .with_delta_spec(DeltaSpec::NoOp),
        ),
    ];
    for block in [480usize, steps as usize] {
        let mut acc: std::collections::BTreeMap<&str, ProbeSums> = Default::default();
        for (g, d) in gens.iter().zip(&data) {
            let name = &g.labels.iter().find(|l| l.0 == "__name__").expect("name").1;
            let e = acc
                .entry(kind_name(name))
                .or_insert_with(|| (0, 0, vec![0; configs.len()], vec![0; configs.len()]));
            for part in d.chunks(block) {
                e.0 += part.len();
                e.1 += pco_chunk::encode(part).expect("encode").1.len();
                let ts: Vec<i64> = part.iter().map(|s| s.timestamp_ms).collect();
                let vs: Vec<f64> = part.iter().map(|s| s.value).collect();
                let ints: Option<Vec<i64>> = vs
                    .iter()
                    .map(|v| (v.fract() == 0.0 && v.abs() < 9e15).then_some(*v as i64))
                    .collect();
                for (i, (_, cfg)) in configs.iter().enumerate() {
                    e.2[i] += simple_compress(&ts, cfg)
                        .map(|b| b.len())
                        .unwrap_or(usize::MAX / 4);
                    let vb = match &ints {
                        Some(ints) => simple_compress(ints, cfg),
                        None => simple_compress(&vs, cfg),
                    };
                    e.3[i] += vb.map(|b| b.len()).unwrap_or(usize::MAX / 4);
                }
            }
        }
        for (kind, (samples, enc, ts, vs)) in acc {
            let per = |b: usize| b as f64 / samples.max(1) as f64;
            let cols: Vec<String> = configs
                .iter()
                .enumerate()
                .map(|(i, (c, _))| format!("\"{c}\":[{:.3},{:.3}]", per(ts[i]), per(vs[i])))
                .collect();
            println!(
                "{{\"block\":{block},\"kind\":\"{kind}\",\"samples\":{samples},\"encode\":{:.3},\"ts_value_bytes_per_sample\":{{{}}}}}",
                per(enc),
                cols.join(",")
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: storage_loadgen (remote-write <url> | local <dir>) <series> <hours>");
        std::process::exit(2);
    }
    let (mode, target) = (args[1].as_str(), args[2].as_str());
    if mode == "query" {
        query(target);
        return;
    }
    if mode == "maintain" {
        maintain(target);
        return;
    }
    if mode == "pco-probe" {
        pco_probe(
            args[3].parse().expect("series count"),
            args[4].parse().expect("hours"),
        );
        return;
    }
    if mode == "compact" {
        let store = SqliteStorage::open(
            target,
            StorageOptions {
                min_free_disk: 0,
                ..StorageOptions::default()
            },
        )
        .expect("open store");
        let before = store.used_bytes().expect("size");
        let c0 = cpu_seconds();
        store
            .compact(infermon::util::now_ms(), true)
            .expect("compact");
        store.close().expect("close");
        let cpu = cpu_seconds() - c0;
        let after = store.used_bytes().expect("size");
        println!(
            "{{\"bytes_before_compaction\":{before},\"bytes\":{after},\"compaction_cpu_s\":{cpu:.3}}}"
        );
        return;
    }
    let n: usize = args[3].parse().expect("series count");
    let hours: i64 = args[4].parse().expect("hours");
    let steps = hours * 3600 * 1000 / STEP_MS;
    let now = infermon::util::now_ms() / STEP_MS * STEP_MS;
    let start = now - steps * STEP_MS;
    let mut gens = series(n);
    let client = reqwest::blocking::Client::new();
    let store = (mode == "local").then(|| {
        SqliteStorage::open(
            target,
            StorageOptions {
                min_free_disk: 0,
                ..StorageOptions::default()
            },
        )
        .expect("open store")
    });
    let labels: Vec<Labels> = gens
        .iter()
        .map(|g| Labels::new(g.labels.iter().cloned()))
        .collect();
    let begin = Instant::now();
    let cpu_before = cpu_seconds();
    let mut sent = 0u64;
    let mut values = Vec::with_capacity(n);
    for step in 0..steps {
        values.clear();
        for g in gens.iter_mut() {
            let t = g.time(start, step);
            values.push((t, g.step()));
        }
        match mode {
            "remote-write" => {
                let body = snap::raw::Encoder::new()
                    .compress_vec(&write_request(&gens, &values))
                    .expect("snappy");
                let resp = client
                    .post(target)
                    .header("Content-Encoding", "snappy")
                    .header("Content-Type", "application/x-protobuf")
                    .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                    .body(body)
                    .send()
                    .expect("send");
                if !resp.status().is_success() {
                    panic!(
                        "step {step}: HTTP {}: {}",
                        resp.status(),
                        resp.text().unwrap_or_default()
                    );
                }
            }
            "local" => {
                let batch: Vec<AppendSample> = labels
                    .iter()
                    .zip(&values)
                    .map(|(l, &(t, v))| AppendSample {
                        labels: l.clone(),
                        sample: Sample {
                            timestamp_ms: t,
                            value: v,
                        },
                    })
                    .collect();
                store
                    .as_ref()
                    .expect("store")
                    .append(&batch)
                    .expect("append");
            }
            other => panic!("unknown mode {other}"),
        }
        sent += n as u64;
    }
    let wall = begin.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let rss = peak_rss_bytes();
    // After ingest: checkpoint and measure, then compact every day (forced)
    // and measure again.
    let (mut before, mut after, mut compact_cpu) = (0, 0, 0.0);
    if let Some(s) = &store {
        s.checkpoint().expect("checkpoint");
        before = s.used_bytes().expect("size");
        let c0 = cpu_seconds();
        s.compact(infermon::util::now_ms(), true).expect("compact");
        s.close().expect("close");
        compact_cpu = cpu_seconds() - c0;
        after = s.used_bytes().expect("size");
    }
    println!(
        "{{\"mode\":\"{mode}\",\"series\":{n},\"samples\":{sent},\"wall_s\":{wall:.3},\"cpu_s\":{cpu:.3},\"peak_rss_bytes\":{rss},\"bytes_before_compaction\":{before},\"bytes\":{after},\"compaction_cpu_s\":{compact_cpu:.3}}}"
    );
}
