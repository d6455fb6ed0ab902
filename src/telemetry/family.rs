//! Builds metric families directly, for collectors that read a whole source
//! at scrape time (cheaper and simpler than keeping gauge vectors in sync).

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// One metric family being filled.
pub struct Family {
    family: MetricFamily,
}

impl Family {
    /// A gauge family.
    pub fn gauge(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::GAUGE)
    }

    /// A counter family (`name` should end in `_total`).
    pub fn counter(name: &str, help: &str) -> Self {
        Self::new(name, help, MetricType::COUNTER)
    }

    fn new(name: &str, help: &str, kind: MetricType) -> Self {
        let mut family = MetricFamily::default();
        family.set_name(name.to_string());
        family.set_help(help.to_string());
        family.set_field_type(kind);
        Family { family }
    }

    /// Adds one sample with `labels` (name, value) pairs.
    pub fn add(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let mut metric = Metric::default();
        let mut pairs: Vec<LabelPair> = labels
            .iter()
            .map(|(n, v)| {
                let mut p = LabelPair::default();
                p.set_name(n.to_string());
                p.set_value(v.to_string());
                p
            })
            .collect();
        pairs.sort_by(|a, b| a.name().cmp(b.name()));
        metric.set_label(pairs);
        if self.family.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            metric.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            metric.set_gauge(g);
        }
        self.family.mut_metric().push(metric);
        self
    }

    /// The family, or nothing when no sample was added (empty families are
    /// invalid in the exposition format).
    pub fn finish(self) -> Option<MetricFamily> {
        (!self.family.get_metric().is_empty()).then_some(self.family)
    }
}

/// Collects finished families, skipping empty ones.
#[derive(Default)]
pub struct Families(pub Vec<MetricFamily>);

impl Families {
    /// Adds a family if it has samples.
    pub fn push(&mut self, f: Family) {
        if let Some(mf) = f.finish() {
            self.0.push(mf);
        }
    }
}
