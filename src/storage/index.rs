//! The series index: label set ↔ series id, and postings (label pair → sorted
//! series ids) that narrow a matcher set down before labels are checked.
//! It lives in memory and is rebuilt from the `series` table at open.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Labels, Matcher};

/// Series id as stored in SQLite.
pub type SeriesId = i64;

/// Every known series, with postings for matchers.
#[derive(Default)]
pub struct SeriesIndex {
    by_labels: HashMap<Labels, SeriesId>,
    by_id: HashMap<SeriesId, Labels>,
    /// name → value → ids, ids sorted ascending.
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesId>>>,
}

impl SeriesIndex {
    /// The id of `labels`, if known.
    pub fn get(&self, labels: &Labels) -> Option<SeriesId> {
        self.by_labels.get(labels).copied()
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
        self.by_labels.insert(labels.clone(), id);
        self.by_id.insert(id, labels);
    }

    /// Removes a series (retention removed all its data).
    pub fn remove(&mut self, id: SeriesId) {
        let Some(labels) = self.by_id.remove(&id) else {
            return;
        };
        self.by_labels.remove(&labels);
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
}
