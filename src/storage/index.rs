//! The series index: label set ↔ series id, and postings (label pair → sorted
//! series ids) that narrow a matcher set down before labels are checked.
//! It lives in memory and is rebuilt from the `series` table at open.
//!
//! Label sets are found by a 64-bit hash of their pairs, so an ingest path
//! holding the pairs of a decoded series (remote_write) finds its series
//! without building a [`Labels`] first ([`SeriesIndex::get_pairs`]).

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use rustc_hash::FxHashMap;

use crate::model::{Labels, Matcher};

/// Series id as stored in SQLite.
pub type SeriesId = i64;

/// The ids whose label sets share one hash (almost always one).
#[derive(Debug)]
enum Slot {
    One(SeriesId),
    Many(Vec<SeriesId>),
}

impl Slot {
    fn ids(&self) -> &[SeriesId] {
        match self {
            Slot::One(id) => std::slice::from_ref(id),
            Slot::Many(ids) => ids,
        }
    }
}

/// Every known series, with postings for matchers.
pub struct SeriesIndex {
    /// Seed of [`SeriesIndex::hash_pairs`], random per process so that
    /// senders cannot choose label sets that collide.
    seed: u64,
    by_hash: FxHashMap<u64, Slot>,
    by_id: FxHashMap<SeriesId, Labels>,
    /// name → value → ids, ids sorted ascending.
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesId>>>,
}

impl Default for SeriesIndex {
    fn default() -> Self {
        SeriesIndex {
            seed: std::collections::hash_map::RandomState::new().hash_one(0u64),
            by_hash: FxHashMap::default(),
            by_id: FxHashMap::default(),
            postings: BTreeMap::new(),
        }
    }
}

impl SeriesIndex {
    /// The hash a label set is found by: its non-empty pairs in the order
    /// given (a [`Labels`] gives them sorted by name).
    pub fn hash_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl Iterator<Item = (N, V)>,
    ) -> u64 {
        // Gathered on the stack and hashed in one go (XXH64 of the
        // concatenation either way; streaming only sets longer than it).
        let mut buf = [0u8; 512];
        let mut len = 0;
        let mut stream: Option<xxhash_rust::xxh64::Xxh64> = None;
        for (n, v) in pairs {
            let (n, v) = (n.as_ref(), v.as_ref());
            if v.is_empty() {
                continue;
            }
            // Lengths first, so ("ab","c") and ("a","bc") differ.
            let (nl, vl) = (
                (n.len() as u32).to_le_bytes(),
                (v.len() as u32).to_le_bytes(),
            );
            for part in [&nl[..], n, &vl[..], v] {
                if len + part.len() <= buf.len() {
                    buf[len..len + part.len()].copy_from_slice(part);
                    len += part.len();
                } else {
                    let h = stream.get_or_insert_with(|| xxhash_rust::xxh64::Xxh64::new(self.seed));
                    h.update(&buf[..len]);
                    h.update(part);
                    len = 0;
                }
            }
        }
        match stream {
            None => xxhash_rust::xxh64::xxh64(&buf[..len], self.seed),
            Some(mut h) => {
                h.update(&buf[..len]);
                h.digest()
            }
        }
    }

    /// The id of `labels`, if known.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        let hash = self.hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        self.find(hash, |l| l == labels)
    }

    /// The id and labels of the series whose labels are exactly `pairs`
    /// (sorted by name, each name once; empty values are skipped as
    /// [`Labels::new`] skips them), found without building a label set.
    /// Pairs may be unchecked bytes: a match is equal to a stored set.
    pub fn get_pairs<N: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: &[(N, V)],
    ) -> Option<(SeriesId, &Labels)> {
        let hash = self.hash_pairs(pairs.iter().map(|(n, v)| (n, v)));
        let id = self.find(hash, |l| {
            let mut given = pairs.iter().filter(|(_, v)| !v.as_ref().is_empty());
            l.iter().all(|l| {
                given.next().is_some_and(|(n, v)| {
                    n.as_ref() == l.name.as_bytes() && v.as_ref() == l.value.as_bytes()
                })
            }) && given.next().is_none()
        })?;
        Some((id, self.by_id.get(&id)?))
    }

    /// The id among those hashed to `hash` whose labels pass `same`.
    fn find(&self, hash: u64, same: impl Fn(&Labels) -> bool) -> Option<SeriesId> {
        self.by_hash
            .get(&hash)?
            .ids()
            .iter()
            .copied()
            .find(|id| self.by_id.get(id).is_some_and(&same))
    }

    /// The labels of `id`.
    pub fn labels(&self, id: SeriesId) -> Option<&Labels> {
        self.by_id.get(&id)
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Adds a series (ids are handed out by SQLite).
    pub fn insert(&mut self, id: SeriesId, labels: Labels) {
        for l in labels.iter() {
            let ids = self
                .postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default();
            if let Err(pos) = ids.binary_search(&id) {
                ids.insert(pos, id);
            }
        }
        let hash = self.hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        match self.by_hash.get_mut(&hash) {
            None => {
                self.by_hash.insert(hash, Slot::One(id));
            }
            Some(Slot::One(other)) if *other == id => {}
            Some(slot @ Slot::One(_)) => {
                let other = slot.ids()[0];
                *slot = Slot::Many(vec![other, id]);
            }
            Some(Slot::Many(ids)) => {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        self.by_id.insert(id, labels);
    }

    /// Removes a series (retention removed all its data).
    pub fn remove(&mut self, id: SeriesId) {
        let Some(labels) = self.by_id.remove(&id) else {
            return;
        };
        let hash = self.hash_pairs(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        let emptied = match self.by_hash.get_mut(&hash) {
            Some(Slot::One(other)) => *other == id,
            Some(Slot::Many(ids)) => {
                ids.retain(|x| *x != id);
                ids.is_empty()
            }
            None => false,
        };
        if emptied {
            self.by_hash.remove(&hash);
        }
        for l in labels.iter() {
            if let Some(values) = self.postings.get_mut(&l.name) {
                if let Some(ids) = values.get_mut(&l.value) {
                    ids.retain(|x| *x != id);
                    if ids.is_empty() {
                        values.remove(&l.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&l.name);
                }
            }
        }
    }

    /// Ids of the series matching every matcher, ascending.
    ///
    /// Matchers that cannot match an empty value (so need the label present)
    /// select candidates from postings; every candidate is then checked
    /// against all matchers, which also covers those matching the empty value.
    pub fn select(&self, matchers: &[Matcher]) -> Vec<SeriesId> {
        let mut candidates: Option<Vec<SeriesId>> = None;
        for m in matchers.iter().filter(|m| !m.matches("")) {
            let ids = self.postings_for(m);
            candidates = Some(match candidates {
                None => ids,
                Some(c) => intersect(&c, &ids),
            });
            if candidates.as_ref().is_some_and(Vec::is_empty) {
                return Vec::new();
            }
        }
        let candidates = candidates.unwrap_or_else(|| {
            let mut all: Vec<SeriesId> = self.by_id.keys().copied().collect();
            all.sort_unstable();
            all
        });
        candidates
            .into_iter()
            .filter(|id| {
                self.by_id
                    .get(id)
                    .is_some_and(|l| matchers.iter().all(|m| m.matches_labels(l)))
            })
            .collect()
    }

    fn postings_for(&self, m: &Matcher) -> Vec<SeriesId> {
        let Some(values) = self.postings.get(&m.name) else {
            return Vec::new();
        };
        if m.op == crate::model::MatchOp::Equal {
            return values.get(&m.value).cloned().unwrap_or_default();
        }
        let mut ids: Vec<SeriesId> = values
            .iter()
            .filter(|(v, _)| m.matches(v))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MatchOp;

    #[test]
    fn matchers_through_postings() {
        let mut ix = SeriesIndex::default();
        ix.insert(1, Labels::new([("__name__", "up"), ("job", "a")]));
        ix.insert(
            2,
            Labels::new([("__name__", "up"), ("job", "b"), ("env", "prod")]),
        );
        ix.insert(3, Labels::new([("__name__", "x"), ("job", "a")]));
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap();
        assert_eq!(
            ix.select(&[m("__name__", MatchOp::Equal, "up")]),
            vec![1, 2]
        );
        assert_eq!(
            ix.select(&[
                m("__name__", MatchOp::Equal, "up"),
                m("job", MatchOp::NotEqual, "a")
            ]),
            vec![2]
        );
        assert_eq!(
            ix.select(&[
                m("job", MatchOp::Regex, "a|b"),
                m("env", MatchOp::Equal, "")
            ]),
            vec![1, 3]
        );
        assert_eq!(
            ix.select(&[m("env", MatchOp::NotRegex, "pr.*")]),
            vec![1, 3]
        );
        assert!(ix.select(&[m("nope", MatchOp::Equal, "x")]).is_empty());
        ix.remove(2);
        assert_eq!(ix.select(&[m("__name__", MatchOp::Equal, "up")]), vec![1]);
        assert_eq!(ix.len(), 2);
    }

    #[test]
    fn found_by_pairs_without_building_labels() {
        let mut ix = SeriesIndex::default();
        let a = Labels::new([("__name__", "up"), ("job", "a")]);
        ix.insert(1, a.clone());
        ix.insert(2, Labels::new([("__name__", "up"), ("job", "ab")]));
        assert_eq!(ix.get(&a), Some(1));
        let (id, labels) = ix.get_pairs(&[("__name__", "up"), ("job", "a")]).unwrap();
        assert_eq!((id, labels), (1, &a));
        // Empty values are absent labels, as in `Labels::new`.
        assert_eq!(
            ix.get_pairs(&[("__name__", "up"), ("env", ""), ("job", "a")])
                .map(|x| x.0),
            Some(1)
        );
        // Same bytes split differently, a prefix, an extra label: not found.
        assert!(ix.get_pairs(&[("__name__", "up"), ("joba", "")]).is_none());
        assert!(ix.get_pairs(&[("__name__", "up")]).is_none());
        assert!(
            ix.get_pairs(&[("__name__", "up"), ("job", "a"), ("x", "y")])
                .is_none()
        );
        assert_eq!(
            ix.get_pairs(&[("__name__", "up"), ("job", "ab")])
                .map(|x| x.0),
            Some(2)
        );
    }

    #[test]
    fn long_label_sets_hash_as_their_concatenation() {
        let ix = SeriesIndex::default();
        let long = "v".repeat(700);
        let pairs = [("__name__", "m"), ("a", long.as_str()), ("b", "x")];
        let mut bytes = Vec::new();
        for (n, v) in pairs {
            bytes.extend((n.len() as u32).to_le_bytes());
            bytes.extend(n.as_bytes());
            bytes.extend((v.len() as u32).to_le_bytes());
            bytes.extend(v.as_bytes());
        }
        assert_eq!(
            ix.hash_pairs(pairs.into_iter()),
            xxhash_rust::xxh64::xxh64(&bytes, ix.seed)
        );
        assert_eq!(
            ix.hash_pairs(pairs[..1].iter().copied()),
            xxhash_rust::xxh64::xxh64(&bytes[..4 + 8 + 4 + 1], ix.seed)
        );
    }

    #[test]
    fn hash_collisions_keep_every_series() {
        let mut ix = SeriesIndex::default();
        let labels: Vec<Labels> = (0..3)
            .map(|i| Labels::new([("__name__", format!("m{i}"))]))
            .collect();
        // Force all three into one slot, as a colliding hash would.
        let hash = ix.hash_pairs(
            labels[0]
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        ix.by_hash.insert(hash, Slot::Many(vec![1, 2, 3]));
        for (i, l) in labels.iter().enumerate() {
            ix.by_id.insert(i as i64 + 1, l.clone());
        }
        assert_eq!(ix.find(hash, |l| *l == labels[2]), Some(3));
        ix.remove(1);
        assert_eq!(ix.find(hash, |l| *l == labels[1]), Some(2));
        assert_eq!(ix.find(hash, |l| *l == labels[0]), None);
    }
}
