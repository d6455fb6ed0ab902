//! A recording rule: evaluates an expression and names the result, so an
//! expensive query is computed once per interval and stored as a series.

use std::collections::{BTreeMap, HashSet};

use super::{InstantSample, RulesError};
use crate::model::{Labels, METRIC_NAME};

/// A recording rule.
#[derive(Clone, Debug)]
pub struct RecordingRule {
    /// Name of the written series.
    pub name: String,
    /// PromQL expression.
    pub expr: String,
    /// Labels set on every written series.
    pub labels: BTreeMap<String, String>,
    /// Error of the last evaluation.
    pub last_error: Option<String>,
}

impl RecordingRule {
    /// A new rule.
    pub fn new(name: &str, expr: &str, labels: BTreeMap<String, String>) -> Self {
        RecordingRule {
            name: name.to_string(),
            expr: expr.to_string(),
            labels,
            last_error: None,
        }
    }

    /// Names the query result: the series to write (labels, value).
    pub fn eval(
        &mut self,
        result: Vec<InstantSample>,
        limit: u64,
    ) -> Result<Vec<(Labels, f64)>, RulesError> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(result.len());
        for s in result {
            let mut labels = s.labels;
            labels.set(METRIC_NAME, &self.name);
            for (k, v) in &self.labels {
                labels.set(k, v);
            }
            if !seen.insert(labels.clone()) {
                return self.fail(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((labels, s.value));
        }
        if limit > 0 && out.len() as u64 > limit {
            return self.fail(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        self.last_error = None;
        Ok(out)
    }

    fn fail(&mut self, err: String) -> Result<Vec<(Labels, f64)>, RulesError> {
        self.last_error = Some(err.clone());
        Err(RulesError::Eval(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_result() {
        let mut r = RecordingRule::new(
            "job:up:sum",
            "sum by (job) (up)",
            [("team".into(), "ml".into())].into(),
        );
        let out = r
            .eval(
                vec![InstantSample {
                    labels: Labels::new([("job", "a")]),
                    value: 2.0,
                }],
                0,
            )
            .unwrap();
        assert_eq!(out[0].0.to_string(), r#"job:up:sum{job="a", team="ml"}"#);
        let two = vec![
            InstantSample {
                labels: Labels::new([("job", "a")]),
                value: 1.0,
            },
            InstantSample {
                labels: Labels::new([("job", "b")]),
                value: 1.0,
            },
        ];
        assert!(r.eval(two, 1).is_err());
    }
}
