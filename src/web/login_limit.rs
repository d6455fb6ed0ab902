//! Brute-force protection for the login form, as Grafana does it: once a
//! user name has had `MAX_FAILURES` failed logins within `WINDOW_MS`, it is
//! refused — even with the right password — until the oldest of those
//! failures leaves the window. Counting by user name, not by address,
//! because a reverse proxy in front of infermon makes every client the same
//! address.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Failed logins that lock a user name.
pub const MAX_FAILURES: usize = 5;
/// How long failures count (5 minutes).
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// User names tracked at most; beyond this, names whose failures all left
/// the window are forgotten first (random names cannot grow memory
/// without bound).
const MAX_NAMES: usize = 10_000;

/// Recent failed logins per user name.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl LoginLimiter {
    /// Milliseconds `user` must wait before the next attempt counts; `None`
    /// when it may try now.
    pub fn blocked_for(&self, user: &str, now_ms: i64) -> Option<i64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let times = map.get_mut(user)?;
        times.retain(|&t| t > now_ms - WINDOW_MS);
        if times.len() < MAX_FAILURES {
            return None;
        }
        times.front().map(|&oldest| oldest + WINDOW_MS - now_ms)
    }

    /// Records a failed login for `user`.
    pub fn failed(&self, user: &str, now_ms: i64) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_NAMES && !map.contains_key(user) {
            map.retain(|_, times| times.back().is_some_and(|&t| t > now_ms - WINDOW_MS));
            if map.len() >= MAX_NAMES {
                return;
            }
        }
        let times = map.entry(user.to_string()).or_default();
        times.push_back(now_ms);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// A successful login clears the user's failures.
    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_a_name_until_the_oldest_leaves_the_window() {
        let l = LoginLimiter::default();
        for i in 0..4 {
            l.failed("admin", 1_000 + i);
            assert_eq!(l.blocked_for("admin", 1_000 + i), None);
        }
        l.failed("admin", 2_000);
        assert_eq!(
            l.blocked_for("admin", 2_000),
            Some(1_000 + WINDOW_MS - 2_000)
        );
        // Other names are not affected.
        assert_eq!(l.blocked_for("viewer", 2_000), None);
        // The oldest failure (at 1000) leaves the window: four remain.
        assert_eq!(l.blocked_for("admin", 1_000 + WINDOW_MS), None);
    }

    #[test]
    fn success_clears_and_memory_stays_bounded() {
        let l = LoginLimiter::default();
        for i in 0..3 {
            l.failed("admin", i);
        }
        l.succeeded("admin");
        for i in 0..4 {
            l.failed("admin", 10 + i);
        }
        assert_eq!(
            l.blocked_for("admin", 20),
            None,
            "counting restarted at success"
        );
        for i in 0..(MAX_NAMES + 50) {
            l.failed(&format!("name-{i}"), 0);
        }
        let len = l.failures.lock().unwrap().len();
        assert!(len <= MAX_NAMES, "{len} names kept");
        // Old entries are dropped once they have left the window.
        l.failed("late", WINDOW_MS + 100);
        assert_eq!(l.failures.lock().unwrap().len(), 1);
    }
}
