//! Per-query memory of label-set work. A range query hands the same label
//! sets (shared `Arc`s) to an operator at every step; deriving a grouping key
//! or dropping `__name__` again at each step would clone and hash the same
//! strings hundreds of times. A [`LabelMemo`] does each derivation once per
//! input set and interns the results, so equal outputs are one shared set and
//! later stages can group by [`Labels::ptr_id`] instead of hashing strings.

use rustc_hash::FxHashMap;

use crate::model::Labels;

/// Input sets remembered per memo at most; past it, results are still
/// interned but no longer remembered per input (bounds memory on queries
/// whose label sets are new at every step).
const MAX_REMEMBERED: usize = 200_000;

/// One derivation (a function of the label set alone), remembered per input.
#[derive(Default)]
pub(crate) struct LabelMemo {
    /// (input id, variant) → (the input, kept alive so its id is not
    /// reused; the output).
    by_input: FxHashMap<(usize, u8), (Labels, Labels)>,
    /// Every distinct output, once.
    interned: FxHashMap<Labels, Labels>,
}

impl LabelMemo {
    /// `derive(input)`, computed once per input set; equal results are the
    /// same shared set.
    pub fn get(&mut self, input: &Labels, derive: impl FnOnce(&Labels) -> Labels) -> Labels {
        self.get_variant(input, 0, derive)
    }

    /// As [`LabelMemo::get`] for one of several derivations that share the
    /// interned outputs (`variant` tells them apart).
    pub fn get_variant(
        &mut self,
        input: &Labels,
        variant: u8,
        derive: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        let key = (input.ptr_id(), variant);
        if let Some((_, out)) = self.by_input.get(&key) {
            return out.clone();
        }
        let out = self.intern(derive(input));
        if self.by_input.len() < MAX_REMEMBERED {
            self.by_input.insert(key, (input.clone(), out.clone()));
        }
        out
    }

    /// The shared set equal to `l`.
    pub fn intern(&mut self, l: Labels) -> Labels {
        if let Some(x) = self.interned.get(&l) {
            return x.clone();
        }
        self.interned.insert(l.clone(), l.clone());
        l
    }
}

/// Memos of one query, one per operator node and derivation.
#[derive(Default)]
pub(crate) struct Memos {
    memos: FxHashMap<(usize, MemoKind), LabelMemo>,
}

/// What a memo derives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MemoKind {
    /// An aggregation's grouping key.
    Group,
    /// A classic histogram bucket's group: without `le` and `__name__`.
    Bucket,
    /// Result series, interned (variant 0: as they are; 1: without
    /// `__name__` and the labels that describe it).
    Output,
}

impl Memos {
    /// The memo for `kind` at node `node` (0 for query-wide memos).
    pub fn of(&mut self, node: usize, kind: MemoKind) -> &mut LabelMemo {
        self.memos.entry((node, kind)).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_once_per_input_and_interns_outputs() {
        let mut m = LabelMemo::default();
        let a = Labels::new([("__name__", "x"), ("job", "a"), ("i", "1")]);
        let b = Labels::new([("__name__", "x"), ("job", "a"), ("i", "2")]);
        let calls = std::cell::Cell::new(0);
        let job = |l: &Labels| {
            calls.set(calls.get() + 1);
            Labels::new([("job", l.get("job").unwrap_or(""))])
        };
        let ka = m.get(&a, job);
        let ka2 = m.get(&a.clone(), job);
        let kb = m.get(&b, job);
        assert_eq!(calls.get(), 2, "a clone of `a` is the same input");
        assert_eq!(ka.ptr_id(), ka2.ptr_id());
        assert_eq!(ka.ptr_id(), kb.ptr_id(), "equal outputs are one set");
        // An equal but separately built input is derived again, same output.
        let a2 = Labels::new([("__name__", "x"), ("job", "a"), ("i", "1")]);
        assert_eq!(m.get(&a2, job).ptr_id(), ka.ptr_id());
        assert_eq!(calls.get(), 3);
    }
}
