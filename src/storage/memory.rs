//! An in-memory store for tests and the PromQL test runner.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use super::{AppendSample, Appender, Querier, Series, StorageError};
use crate::model::{Labels, Matcher, Sample};

/// Series kept in a map; samples kept sorted, a repeated timestamp overwrites.
#[derive(Default)]
pub struct MemoryStorage {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `series`, each as (time ms, value) points.
    pub fn from_points(series: &[(Labels, Vec<(i64, f64)>)]) -> Self {
        let store = Self::new();
        {
            let mut map = store.series.write().unwrap_or_else(|p| p.into_inner());
            for (labels, points) in series {
                let samples = map.entry(labels.clone()).or_default();
                for &(timestamp_ms, value) in points {
                    insert(
                        samples,
                        Sample {
                            timestamp_ms,
                            value,
                        },
                    );
                }
            }
        }
        store
    }

    /// Removes every series.
    pub fn clear(&self) {
        self.series
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn matches(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers.iter().all(|m| m.matches_labels(labels))
}

impl Appender for MemoryStorage {
    fn append(&self, batch: &[AppendSample]) -> Result<(), StorageError> {
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        for s in batch {
            insert(map.entry(s.labels.clone()).or_default(), s.sample);
        }
        Ok(())
    }
}

/// Puts `sample` in time order; a repeated timestamp overwrites.
fn insert(samples: &mut Vec<Sample>, sample: Sample) {
    match samples.binary_search_by(|x| x.timestamp_ms.cmp(&sample.timestamp_ms)) {
        Ok(i) => samples[i] = sample,
        Err(i) => samples.insert(i, sample),
    }
}

impl MemoryStorage {
    fn in_range(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Series> {
        let map = self.series.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(labels, _)| matches(labels, matchers))
            .filter_map(|(labels, samples)| {
                let start = samples.partition_point(|s| s.timestamp_ms < mint);
                let end = samples.partition_point(|s| s.timestamp_ms <= maxt);
                (start < end).then(|| Series {
                    labels: labels.clone(),
                    samples: samples[start..end].to_vec(),
                })
            })
            .collect()
    }
}

impl Querier for MemoryStorage {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        Ok(self.in_range(matchers, mint, maxt))
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .in_range(matchers, mint, maxt)
            .iter()
            .flat_map(|s| s.labels.iter().map(|l| l.name.clone()).collect::<Vec<_>>())
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = self
            .in_range(matchers, mint, maxt)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        Ok(values.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    #[test]
    fn append_select_overwrite() {
        let st = MemoryStorage::new();
        let l = Labels::new([("__name__", "up"), ("job", "a")]);
        let s = |t, v| AppendSample {
            labels: l.clone(),
            sample: Sample {
                timestamp_ms: t,
                value: v,
            },
        };
        st.append(&[s(20, 2.0), s(10, 1.0), s(20, 3.0)]).unwrap();
        let m = [Matcher::new("job", MatchOp::Equal, "a").unwrap()];
        let got = st.select(&m, 0, 100).unwrap();
        assert_eq!(
            got[0].samples,
            vec![
                Sample {
                    timestamp_ms: 10,
                    value: 1.0
                },
                Sample {
                    timestamp_ms: 20,
                    value: 3.0
                }
            ]
        );
        assert!(st.select(&m, 30, 100).unwrap().is_empty());
        assert_eq!(st.label_values("job", &[], 0, 100).unwrap(), vec!["a"]);
    }
}
