//! Batch planning: which waiting inputs go into the next forward pass.
//!
//! Pure functions over input lengths so the policy is unit-tested apart from
//! threads and models. The oldest waiting input is always in the batch (no
//! starvation); the rest are its neighbours by length (less padding), added
//! while the batch stays within `max_batch_requests` inputs and
//! `max_batch_tokens` padded tokens.

/// Limits of one forward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most inputs in one batch.
    pub max_batch_requests: usize,
    /// Most padded tokens (longest input × inputs) in one batch.
    pub max_batch_tokens: usize,
    /// How long a batch smaller than the previous one may wait for more.
    pub max_batch_delay: std::time::Duration,
}

/// How many waiting inputs the planner looks at: enough to find inputs of
/// similar length, few enough that old inputs are not passed over for long.
pub fn window(limits: BatchLimits) -> usize {
    limits.max_batch_requests.saturating_mul(4).max(1)
}

/// Picks the next batch from `lengths` (token counts of waiting inputs,
/// oldest first). Returns indices into `lengths`, shortest first; always
/// contains 0 when `lengths` is not empty, even if that one input alone is
/// over `max_batch_tokens` (it must run some time).
pub fn plan(lengths: &[usize], limits: BatchLimits) -> Vec<usize> {
    if lengths.is_empty() {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let Some(pos) = order.iter().position(|&i| i == 0) else {
        return vec![0];
    };
    // The batch is the sorted range order[lo..hi]; its padded cost is
    // (hi - lo) × the length of order[hi - 1].
    let (mut lo, mut hi) = (pos, pos + 1);
    let max_n = limits.max_batch_requests.max(1);
    while hi - lo < max_n {
        let n = hi - lo + 1;
        let longest = lengths[order[hi - 1]];
        // Adding a shorter input pads it up to `longest`.
        let left = (lo > 0).then(|| {
            let len = lengths[order[lo - 1]];
            (longest - len, n * longest)
        });
        // Adding a longer input pads every input already chosen.
        let right = (hi < order.len()).then(|| {
            let len = lengths[order[hi]];
            ((n - 1) * (len - longest), n * len)
        });
        let fits =
            |c: Option<(usize, usize)>| c.filter(|&(_, cost)| cost <= limits.max_batch_tokens);
        match (fits(left), fits(right)) {
            (Some((wl, _)), Some((wr, _))) if wl <= wr => lo -= 1,
            (Some(_), Some(_)) => hi += 1,
            (Some(_), None) => lo -= 1,
            (None, Some(_)) => hi += 1,
            (None, None) => break,
        }
    }
    order[lo..hi].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: usize, tokens: usize) -> BatchLimits {
        BatchLimits {
            max_batch_requests: n,
            max_batch_tokens: tokens,
            max_batch_delay: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn empty_gives_nothing() {
        assert!(plan(&[], limits(4, 100)).is_empty());
    }

    #[test]
    fn takes_everything_that_fits() {
        let mut got = plan(&[5, 5, 5], limits(8, 100));
        got.sort();
        assert_eq!(got, vec![0, 1, 2]);
    }

    #[test]
    fn respects_request_limit_and_keeps_oldest() {
        let got = plan(&[9, 1, 2, 3, 8, 9, 10], limits(3, 1000));
        assert_eq!(got.len(), 3);
        assert!(got.contains(&0));
        // Neighbours of length 9: 8, 9 and not the short ones.
        let lens: Vec<usize> = got.iter().map(|&i| [9, 1, 2, 3, 8, 9, 10][i]).collect();
        assert!(lens.iter().all(|&l| l >= 8), "{lens:?}");
    }

    #[test]
    fn groups_by_length_to_cut_padding() {
        // Oldest is short; long inputs would pad everything.
        let lens = [4, 100, 5, 101, 4, 6];
        let got = plan(&lens, limits(3, 10_000));
        let mut chosen: Vec<usize> = got.iter().map(|&i| lens[i]).collect();
        chosen.sort();
        assert_eq!(chosen, vec![4, 4, 5]);
    }

    #[test]
    fn respects_token_budget() {
        // 4 inputs of 10 tokens fit in 40; a fifth does not.
        let got = plan(&[10; 8], limits(32, 40));
        assert_eq!(got.len(), 4);
        // Padded cost counts the longest input.
        let got = plan(&[10, 30, 10], limits(32, 40));
        let mut got = got;
        got.sort();
        assert_eq!(got, vec![0, 2]);
    }

    #[test]
    fn oversized_oldest_still_runs_alone() {
        assert_eq!(plan(&[500, 1, 1], limits(32, 100)), vec![0]);
    }

    #[test]
    fn window_is_bounded() {
        assert_eq!(window(limits(32, 1)), 128);
        assert_eq!(window(limits(0, 1)), 1);
    }
}
