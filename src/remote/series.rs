//! What a destination sees of each stored series: its labels plus
//! `global.external_labels` (the series' own value wins, as in Prometheus),
//! then `write_relabel_configs`, encoded once and reused for every request.

use std::collections::HashMap;
use std::sync::Arc;

use super::RemoteError;
use super::proto::encode_labels;
use crate::model::Labels;
use crate::model::relabel::{self, Relabel};
use crate::storage::{SeriesId, SqliteStorage};

/// A series' encoded labels, or `None` when relabelling drops it.
type Entry = Option<Arc<[u8]>>;

/// Per-destination cache from series id to encoded labels.
pub struct SeriesCache {
    external: Labels,
    relabel: Vec<Relabel>,
    cache: HashMap<SeriesId, Entry>,
}

/// Whether a series is sent, and with which labels.
pub enum Resolved {
    /// Send with these encoded labels.
    Send(Arc<[u8]>),
    /// Left out by `write_relabel_configs`.
    Relabeled,
    /// Retention removed the series before it was sent.
    Gone,
}

impl SeriesCache {
    /// A cache for one destination.
    pub fn new(external: Labels, relabel: Vec<Relabel>) -> Self {
        SeriesCache {
            external,
            relabel,
            cache: HashMap::new(),
        }
    }

    /// Resolves series `id` (labels from the store on first use).
    pub fn resolve(
        &mut self,
        storage: &SqliteStorage,
        id: SeriesId,
    ) -> Result<Resolved, RemoteError> {
        if let Some(entry) = self.cache.get(&id) {
            return Ok(match entry {
                Some(b) => Resolved::Send(b.clone()),
                None => Resolved::Relabeled,
            });
        }
        let Some(labels) = storage.series_labels(id)? else {
            return Ok(Resolved::Gone);
        };
        let entry = self.outgoing(labels).map(|l| Arc::from(encode_labels(&l)));
        self.cache.insert(id, entry.clone());
        Ok(match entry {
            Some(b) => Resolved::Send(b),
            None => Resolved::Relabeled,
        })
    }

    /// The labels sent for a stored label set, `None` when dropped.
    pub fn outgoing(&self, mut labels: Labels) -> Option<Labels> {
        for l in self.external.iter() {
            if labels.get(&l.name).is_none() {
                labels.set(&l.name, &l.value);
            }
        }
        relabel::process(labels, &self.relabel).filter(|l| !l.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    #[test]
    fn external_labels_then_relabel() {
        let drop_go: RelabelConfig =
            serde_yaml_ng::from_str("{source_labels: [__name__], regex: 'go_.*', action: drop}")
                .unwrap();
        let cache = SeriesCache::new(
            Labels::new([("box", "gpu-07"), ("region", "eu")]),
            Relabel::compile(&[drop_go]).unwrap(),
        );
        let out = cache
            .outgoing(Labels::new([("__name__", "up"), ("region", "us")]))
            .unwrap();
        assert_eq!(
            out,
            Labels::new([("__name__", "up"), ("box", "gpu-07"), ("region", "us")])
        );
        assert!(
            cache
                .outgoing(Labels::new([("__name__", "go_goroutines")]))
                .is_none()
        );
    }
}
