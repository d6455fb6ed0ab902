//! The PromQL engine: parses with the `promql-parser` crate and evaluates
//! over the store's [`Querier`](crate::storage::Querier) with Prometheus 3
//! semantics (5m lookback, staleness markers, `offset`, `@`, subqueries,
//! delayed `__name__` removal).
//!
//! [`Engine`] answers instant and range queries; `value` holds the result
//! shapes; `functions`, `aggregate` and `binary` hold the operators
//! (`window` and `columns` evaluate range functions, aggregations and
//! classic-histogram functions of a range query over all steps at once);
//! [`promqltest`] runs Prometheus' own `.test` scripts against the engine.

mod aggregate;
mod binary;
mod budget;
mod columns;
mod engine;
mod functions;
mod literal;
mod memo;
pub mod promqltest;
mod value;
mod window;

pub use engine::{Engine, EngineOptions};
pub use value::{Point, RangeSeries, Sample, Value, format_float};

use std::collections::HashSet;

use crate::storage::StorageError;

/// Why a query failed. [`PromqlError::error_type`] gives the Prometheus API's
/// `errorType` for each.
#[derive(Debug, thiserror::Error)]
pub enum PromqlError {
    /// The expression does not parse or does not type-check.
    #[error("{0}")]
    Parse(String),
    /// Evaluation failed (duplicate label sets, bad function arguments…).
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples than `max_samples`.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// The query would select more series than `max_series`.
    #[error(
        "query selects more than {0} series (query.max_series); narrow the selectors or raise the limit"
    )]
    TooManySeries(usize),
    /// The query would hold more memory than `max_memory_bytes`.
    #[error(
        "query would hold more than {} MiB in memory (query.max_memory_bytes); shorten the range, raise the step or narrow the selectors", .0 / (1 << 20)
    )]
    TooMuchMemory(usize),
    /// The query ran past its timeout.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The client went away; the query was stopped.
    #[error("query was canceled because its client went away")]
    Cancelled,
    /// Every query slot stayed busy for the whole wait limit.
    #[error(
        "too many concurrent queries: all {limit} query slots (query.max_concurrency) stayed busy for {waited:?} (query.max_queue_wait); try again later"
    )]
    Busy {
        /// `query.max_concurrency`.
        limit: usize,
        /// How long the query waited for a slot.
        waited: std::time::Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for PromqlError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::TooManySamples | StorageError::ReadStopped => {
                PromqlError::TooManySamples("query execution")
            }
            other => PromqlError::Storage(other),
        }
    }
}

impl PromqlError {
    /// Prometheus' `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            PromqlError::Parse(_) => "bad_data",
            PromqlError::Execution(_)
            | PromqlError::TooManySamples(_)
            | PromqlError::TooManySeries(_)
            | PromqlError::TooMuchMemory(_) => "execution",
            PromqlError::Timeout(_) => "timeout",
            PromqlError::Cancelled => "canceled",
            PromqlError::Busy { .. } => "unavailable",
            PromqlError::Storage(_) => "internal",
        }
    }
}

/// Parses an expression, with the error text Prometheus users know.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, PromqlError> {
    parse_literals(query).map(|(expr, _)| expr)
}

/// Parses an expression whose string literals mean what they mean in Go
/// (see `literal`), with the decoded literals that are not valid UTF-8.
pub(crate) fn parse_literals(
    query: &str,
) -> Result<(promql_parser::parser::Expr, HashSet<String>), PromqlError> {
    let n = literal::normalise(query);
    // The parser panics on some inputs (a range of `[1e308]` overflows its
    // Duration); a query is input, so that is a parse error, not a crash.
    let parsed =
        std::panic::catch_unwind(|| promql_parser::parser::parse(&n.text)).map_err(|_| {
            PromqlError::Parse(format!(
                "cannot parse {query:?}: a number in it is out of range"
            ))
        })?;
    let expr = parsed.map_err(PromqlError::Parse)?;
    Ok((expr, n.invalid_utf8))
}

/// The matcher sets of a series selector such as `up{job="a"}` (for the
/// series and labels endpoints); `or` alternatives give several sets.
pub fn selector_matchers(text: &str) -> Result<Vec<Vec<crate::model::Matcher>>, PromqlError> {
    match parse(text)? {
        promql_parser::parser::Expr::VectorSelector(vs) => engine::to_matchers(&vs),
        _ => Err(PromqlError::Parse(format!(
            "{text:?} is not a series selector"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parser_panics_are_parse_errors() {
        for q in ["x[1e308]", "rate(x[1e308])", "x offset 1e308"] {
            let err = super::parse(q).map(|_| ()).unwrap_err();
            assert!(matches!(err, super::PromqlError::Parse(_)), "{q}: {err}");
        }
    }
}
