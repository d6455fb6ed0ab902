//! Import: an OpenMetrics export (plain or gzip, e.g. a snapshot's
//! `metrics.om.gz`) read line by line and backfilled into the store in
//! bounded batches. Idempotent: samples whose timestamp a series already has
//! are skipped, so importing a file twice adds nothing the second time.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read};

use flate2::read::GzDecoder;

use super::SnapshotError;
use crate::model::textparse::{Format, LineParser};
use crate::model::{Labels, Sample};
use crate::storage::{Backfill, BackfillReport, Series};

/// Samples held in memory before they are written.
const BATCH_SAMPLES: usize = 500_000;

/// Longest line taken (2 MiB): room for a series at every label limit
/// (30 labels of 16384-byte values, escaped), while one endless line
/// cannot fill the memory.
pub const MAX_LINE_BYTES: usize = 2 << 20;

/// Gzip input may expand to at most this many times the compressed bytes
/// read so far, plus [`GZIP_SLACK_BYTES`]: exports compress 10–40×, a gzip
/// bomb about 1000×.
pub const MAX_GZIP_RATIO: u64 = 200;

/// Decompressed bytes always allowed on top of the ratio (64 MiB).
pub const GZIP_SLACK_BYTES: u64 = 64 << 20;

/// Reads `input` (gzip-compressed or not) and backfills it into `store`.
/// A file refused part-way leaves the batches before the bad line stored;
/// importing it again once fixed adds only what is missing.
pub fn import(input: impl Read, store: &dyn Backfill) -> Result<BackfillReport, SnapshotError> {
    let mut pending: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    let mut held = 0usize;
    let mut total = BackfillReport::default();
    let mut series_seen: HashSet<Labels> = HashSet::new();
    for_each_sample(input, |_, labels, sample| {
        pending.entry(labels).or_default().push(sample);
        held += 1;
        if held >= BATCH_SAMPLES {
            flush(&mut pending, store, &mut total, &mut series_seen)?;
            held = 0;
        }
        Ok(())
    })?;
    flush(&mut pending, store, &mut total, &mut series_seen)?;
    total.series = series_seen.len() as u64;
    Ok(total)
}

/// Cuts an export (plain or gzip) into valid OpenMetrics bodies of at most
/// about `max_bytes` each and hands them to `send` in order: how the command
/// line imports a large file into a running infermon whose request bodies
/// are limited. `open` is called twice: the whole file is checked before the
/// first body is sent. Returns the number of bodies sent.
pub fn split<R: Read>(
    open: impl Fn() -> std::io::Result<R>,
    max_bytes: usize,
    mut send: impl FnMut(Vec<u8>) -> Result<(), String>,
) -> Result<usize, SnapshotError> {
    const EOF: &[u8] = b"# EOF\n";
    for_each_sample(open()?, |_, _, _| Ok(()))?;
    let mut body: Vec<u8> = Vec::new();
    let mut sent = 0usize;
    let mut ship = |body: &mut Vec<u8>| -> Result<(), SnapshotError> {
        body.extend_from_slice(EOF);
        send(std::mem::take(body)).map_err(SnapshotError::Import)?;
        sent += 1;
        Ok(())
    };
    for_each_sample(open()?, |line, _, _| {
        if !body.is_empty() && body.len() + line.len() + 1 + EOF.len() > max_bytes {
            ship(&mut body)?;
        }
        body.extend_from_slice(line.as_bytes());
        body.push(b'\n');
        Ok(())
    })?;
    if !body.is_empty() {
        ship(&mut body)?;
    }
    Ok(sent)
}

/// Calls `each` with the text, labels and sample of every sample line of an
/// export, refusing lines without a timestamp and bodies without `# EOF`.
fn for_each_sample(
    input: impl Read,
    mut each: impl FnMut(&str, Labels, Sample) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    let read_in = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut reader = BufReader::with_capacity(
        1 << 16,
        Counting {
            inner: input,
            count: read_in.clone(),
        },
    );
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(Bounded {
            inner: GzDecoder::new(reader),
            compressed: read_in,
            out: 0,
        }))
    } else {
        Box::new(reader)
    };
    let mut parser = LineParser::new(Format::OpenMetrics);
    let mut raw: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    loop {
        raw.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut raw)
            // Read errors here are the input's (bad gzip, a bomb).
            .map_err(|e| SnapshotError::Import(format!("after line {line_no}: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if raw.len() > MAX_LINE_BYTES {
            return Err(SnapshotError::Import(format!(
                "line {line_no} is longer than {MAX_LINE_BYTES} bytes, the longest line an import takes"
            )));
        }
        let line = std::str::from_utf8(&raw)
            .map_err(|_| SnapshotError::Import(format!("line {line_no} is not valid UTF-8")))?;
        let text = line.strip_suffix('\n').unwrap_or(line);
        let Some(parsed) = parser
            .line(line_no, text)
            .map_err(|e| SnapshotError::Import(e.to_string()))?
        else {
            continue;
        };
        let timestamp_ms = parsed.timestamp_ms.ok_or_else(|| {
            SnapshotError::Import(format!(
                "line {line_no}: a sample without a timestamp cannot be imported"
            ))
        })?;
        each(
            text,
            parsed.labels,
            Sample {
                timestamp_ms,
                value: parsed.value,
            },
        )?;
    }
    parser
        .finish(line_no)
        .map_err(|e| SnapshotError::Import(e.to_string()))
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Fails once the decompressed output outgrows [`MAX_GZIP_RATIO`] times the
/// compressed bytes read (plus [`GZIP_SLACK_BYTES`]).
struct Bounded<R> {
    inner: R,
    compressed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    out: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let read_in = self.compressed.load(std::sync::atomic::Ordering::Relaxed);
        let allowed = read_in
            .saturating_mul(MAX_GZIP_RATIO)
            .saturating_add(GZIP_SLACK_BYTES);
        if self.out > allowed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the gzip input expands to more than {MAX_GZIP_RATIO} times its size (after {} decompressed bytes); it is not an export",
                    self.out
                ),
            ));
        }
        Ok(n)
    }
}

fn flush(
    pending: &mut BTreeMap<Labels, Vec<Sample>>,
    store: &dyn Backfill,
    total: &mut BackfillReport,
    series_seen: &mut HashSet<Labels>,
) -> Result<(), SnapshotError> {
    let series: Vec<Series> = std::mem::take(pending)
        .into_iter()
        .map(|(labels, samples)| Series { labels, samples })
        .collect();
    for s in &series {
        if !series_seen.contains(&s.labels) {
            series_seen.insert(s.labels.clone());
        }
    }
    total.add(&store.backfill(&series)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Querier, SqliteStorage, StorageOptions};

    const TEXT: &str = "# TYPE up unknown\nup{job=\"a\"} 1 10\nup{job=\"a\"} 0 20.5\n# TYPE x counter\nx_total 3 10\nx_created 1 10\n# EOF\n";

    #[test]
    fn imports_plain_and_gzip_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let first = import(TEXT.as_bytes(), &store).unwrap();
        assert_eq!((first.series, first.samples_added), (2, 3), "{first:?}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, TEXT.as_bytes()).unwrap();
        let again = import(&gz.finish().unwrap()[..], &store).unwrap();
        assert_eq!((again.samples_added, again.samples_existing), (0, 3));
        let up = store
            .select(
                &[
                    crate::model::Matcher::new("__name__", crate::model::MatchOp::Equal, "up")
                        .unwrap(),
                ],
                0,
                i64::MAX,
            )
            .unwrap();
        assert_eq!(up.len(), 1);
        let got: Vec<(i64, f64)> = up[0]
            .samples
            .iter()
            .map(|s| (s.timestamp_ms, s.value))
            .collect();
        assert_eq!(got, vec![(10_000, 1.0), (20_500, 0.0)]);
    }

    #[test]
    fn refuses_samples_without_timestamps_and_missing_eof() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        let e = import("up 1\n# EOF\n".as_bytes(), &store).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = import("up 1 10\n".as_bytes(), &store).unwrap_err();
        assert!(e.to_string().contains("# EOF"), "{e}");
        // Nothing of a refused file was stored.
        assert!(store.select(&[], 0, i64::MAX).unwrap().is_empty());
    }

    #[test]
    fn an_endless_line_and_a_gzip_bomb_are_refused_without_holding_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path(), StorageOptions::default()).unwrap();
        // One line of 3 MiB: refused once the cap is read, not held whole.
        let long = format!("m{{a=\"{}\"}} 1 1\n# EOF\n", "x".repeat(3 << 20));
        let e = import(long.as_bytes(), &store).unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        // 128 MiB of comment lines compress about 1000×; the import stops
        // once the output passes 200× the input plus the 64 MiB slack.
        let line = format!("#{}\n", "x".repeat((1 << 20) - 2));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for _ in 0..128 {
            std::io::Write::write_all(&mut gz, line.as_bytes()).unwrap();
        }
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        let e = import(&bomb[..], &store).unwrap_err();
        assert!(e.to_string().contains("expands to more than"), "{e}");
    }

    #[test]
    fn split_bodies_are_each_valid_and_hold_every_sample() {
        let text: String = (0..100)
            .map(|i| format!("m{{i=\"{i}\"}} {i} {}\n", 1000 + i))
            .chain(["# EOF\n".to_string()])
            .collect();
        let mut bodies = Vec::new();
        let n = split(
            || Ok(text.as_bytes()),
            300,
            |b| {
                bodies.push(b);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(n, bodies.len());
        assert!(n > 5, "{n}");
        let mut samples = 0;
        for b in &bodies {
            assert!(b.len() <= 300, "{}", b.len());
            let parsed = crate::model::textparse::parse(
                std::str::from_utf8(b).unwrap(),
                Format::OpenMetrics,
            )
            .unwrap();
            samples += parsed.len();
        }
        assert_eq!(samples, 100);
        // A bad line anywhere: nothing is sent.
        let bad = text.replace("m{i=\"50\"} 50 1050", "m{i=\"50\"} x 1050");
        let mut sent = 0;
        assert!(
            split(
                || Ok(bad.as_bytes()),
                300,
                |_| {
                    sent += 1;
                    Ok(())
                }
            )
            .is_err()
        );
        assert_eq!(sent, 0);
    }
}
