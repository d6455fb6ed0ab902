//! Alertmanager's routing tree: an alert walks down from the root; the
//! deepest matching routes take it (siblings after a match only with
//! `continue: true`); settings are inherited from the parent.

use std::time::Duration;

use super::AlertingError;
use crate::config::Route;
use crate::model::{Labels, Matcher};

/// Alertmanager's default `group_wait`.
pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(300);
/// Alertmanager's default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// Which labels make up a group.
#[derive(Clone, Debug, PartialEq)]
pub enum GroupBy {
    /// These labels.
    Labels(Vec<String>),
    /// Every label (`group_by: ['...']`): one group per alert.
    All,
}

/// One node of the tree with inherited settings resolved.
#[derive(Clone, Debug)]
pub struct RouteNode {
    /// Position in the tree (`0`, `0.1`, …), part of group keys.
    pub id: String,
    /// Receiver name.
    pub receiver: String,
    /// Grouping.
    pub group_by: GroupBy,
    /// Wait before the first notification of a group.
    pub group_wait: Duration,
    /// Wait between notifications of a group.
    pub group_interval: Duration,
    /// Wait before repeating an unchanged notification.
    pub repeat_interval: Duration,
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// Keep looking at siblings after matching.
    pub continue_matching: bool,
    /// Children.
    pub routes: Vec<RouteNode>,
}

impl RouteNode {
    /// Builds the tree from the config (`receiver` of the root is required).
    pub fn build(root: &Route) -> Result<Self, AlertingError> {
        let defaults = RouteNode {
            id: String::new(),
            receiver: root
                .receiver
                .clone()
                .ok_or_else(|| AlertingError::Config("the root route needs a receiver".into()))?,
            group_by: GroupBy::Labels(Vec::new()),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
        };
        Self::node(root, &defaults, "0".to_string())
    }

    /// A root that sends everything to `receiver` with the defaults.
    pub fn single(receiver: &str) -> Self {
        RouteNode {
            id: "0".into(),
            receiver: receiver.into(),
            group_by: GroupBy::Labels(vec!["alertname".into()]),
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
            matchers: Vec::new(),
            continue_matching: false,
            routes: Vec::new(),
        }
    }

    fn node(r: &Route, parent: &RouteNode, id: String) -> Result<Self, AlertingError> {
        let matchers = r
            .matchers
            .iter()
            .map(|m| Matcher::parse(m).map_err(|e| AlertingError::Config(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let group_by = match &r.group_by {
            Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
            Some(g) => GroupBy::Labels(g.clone()),
            None => parent.group_by.clone(),
        };
        let mut node = RouteNode {
            id: id.clone(),
            receiver: r
                .receiver
                .clone()
                .unwrap_or_else(|| parent.receiver.clone()),
            group_by,
            group_wait: r
                .group_wait
                .map(|d| d.as_duration())
                .unwrap_or(parent.group_wait),
            group_interval: r
                .group_interval
                .map(|d| d.as_duration())
                .unwrap_or(parent.group_interval),
            repeat_interval: r
                .repeat_interval
                .map(|d| d.as_duration())
                .unwrap_or(parent.repeat_interval),
            matchers,
            continue_matching: r.continue_matching,
            routes: Vec::new(),
        };
        let children = r
            .routes
            .iter()
            .enumerate()
            .map(|(i, c)| Self::node(c, &node, format!("{id}.{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        node.routes = children;
        Ok(node)
    }

    /// The routes that take an alert with `labels` (empty if this node does not match).
    pub fn matching(&self, labels: &Labels) -> Vec<&RouteNode> {
        if !self.matchers.iter().all(|m| m.matches_labels(labels)) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let found = child.matching(labels);
            if !found.is_empty() {
                all.extend(found);
                if !child.continue_matching {
                    break;
                }
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The group labels of an alert on this route.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => Labels::new(
                names
                    .iter()
                    .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.to_string()))),
            ),
        }
    }

    /// Every receiver name used in the tree.
    pub fn receivers(&self) -> Vec<String> {
        let mut v = vec![self.receiver.clone()];
        for c in &self.routes {
            v.extend(c.receivers());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> RouteNode {
        let yaml = r#"
receiver: default
group_by: [alertname]
routes:
  - matchers: ['severity="critical"']
    receiver: pager
    group_wait: 10s
    continue: true
  - matchers: ['team="ml"']
    receiver: ml
    group_by: ['...']
    routes:
      - matchers: ['model=~"bge.*"']
        receiver: bge
  - matchers: ['team="ml"']
    receiver: never
"#;
        RouteNode::build(&serde_yaml_ng::from_str::<Route>(yaml).unwrap()).unwrap()
    }

    fn receivers(t: &RouteNode, labels: &[(&str, &str)]) -> Vec<String> {
        t.matching(&Labels::new(labels.iter().copied()))
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    #[test]
    fn matches_like_alertmanager() {
        let t = tree();
        assert_eq!(receivers(&t, &[("alertname", "X")]), ["default"]);
        assert_eq!(receivers(&t, &[("severity", "critical")]), ["pager"]);
        assert_eq!(
            receivers(&t, &[("severity", "critical"), ("team", "ml")]),
            ["pager", "ml"]
        );
        assert_eq!(
            receivers(&t, &[("team", "ml"), ("model", "bge-m3")]),
            ["bge"]
        );
        let pager = &t.routes[0];
        assert_eq!(pager.group_wait, Duration::from_secs(10));
        assert_eq!(
            pager.group_interval, DEFAULT_GROUP_INTERVAL,
            "inherited default"
        );
        assert_eq!(pager.repeat_interval, DEFAULT_REPEAT_INTERVAL);
        assert_eq!(
            t.routes[1].routes[0].group_by,
            GroupBy::All,
            "inherited group_by"
        );
        let l = Labels::new([("alertname", "A"), ("model", "m")]);
        assert_eq!(t.group_labels(&l).to_string(), r#"{alertname="A"}"#);
    }
}
