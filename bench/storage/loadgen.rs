//! Load generator for the storage comparison (`bench/storage/run.sh`).
//!
//! Generates the same deterministic data every run — `series` series (half
//! counters, some gauges, some histogram buckets) over `hours` at a 15s step,
//! ending now — and either sends it with Prometheus remote_write 1.0 (snappy
//! protobuf, one request per step, in time order, like an agent catching up)
//! or appends it in-process to infermon's `SqliteStorage` (same batches).
//!
//! Usage:
//!   storage_loadgen remote-write <url> <series> <hours>
//!   storage_loadgen local <data-dir> <series> <hours>
//!   storage_loadgen query <data-dir> <series> <hours>   (after `local`)
//!   storage_loadgen compact <data-dir> - -                (a stopped infermon's store:
//!                                                         compact every day now, report bytes)
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

fn series(n: usize) -> Vec<Gen> {
    let job = job();
    (0..n)
        .map(|i| {
            let family = i / 100;
            let instance = format!("host-{:03}:9100", i % 50);
            let kind = (i % 10) as u8;
            let mut labels = vec![
                ("job".to_string(), job.clone()),
                ("instance".to_string(), instance),
                ("idx".to_string(), (i % 100 / 10).to_string()),
            ];
            let name = match kind {
                0..=4 => format!("bench_requests_{family}_total"),
                5..=7 => format!("bench_memory_{family}_bytes"),
                _ => {
                    labels.push(("le".to_string(), BUCKETS[i % BUCKETS.len()].to_string()));
                    format!("bench_latency_{family}_seconds_bucket")
                }
            };
            labels.push(("__name__".to_string(), name));
            labels.sort();
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1).wrapping_mul(0x1000_0000_01b3));
            let value = match kind {
                5..=7 => (rng.below(1 << 30) + (1 << 30)) as f64,
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
    fn step(&mut self) -> f64 {
        match self.kind {
            // Counters: bursty request counts.
            0..=4 => self.value += self.rng.below(50) as f64,
            // Gauges: memory in pages of 4 KiB, drifting.
            5..=7 => {
                let delta = self.rng.below(2048) as f64 * 4096.0 - 1024.0 * 4096.0;
                self.value = (self.value + delta).max(0.0);
            }
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
            let t = start + step * STEP_MS + g.offset_ms;
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
