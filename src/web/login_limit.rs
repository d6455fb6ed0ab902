//! Brute-force protection for every way a password or key is checked (the
//! login form, basic auth, bearer API keys), as Grafana does it for its
//! login: once a user name has had [`MAX_FAILURES`] failures within
//! [`WINDOW_MS`], it is refused — even with the right password — until the
//! oldest of those failures leaves the window. Client addresses are counted
//! too, with a higher bound ([`MAX_FAILURES_PER_ADDRESS`]): a reverse proxy
//! makes every client one address, and one client guessing many names must
//! still be stopped.
//!
//! At most [`MAX_ENTRIES`] names and addresses are kept: when full, entries
//! whose failures all left the window go first, then the one whose last
//! failure is oldest, so a flood of random names cannot stop the counting.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed attempts that lock a user name.
pub const MAX_FAILURES: usize = 5;
/// Failed attempts that lock a client address (any names, API keys).
pub const MAX_FAILURES_PER_ADDRESS: usize = 20;
/// How long failures count (5 minutes).
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// User names and addresses tracked at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

impl Key {
    fn limit(&self) -> usize {
        match self {
            Key::User(_) => MAX_FAILURES,
            Key::Addr(_) => MAX_FAILURES_PER_ADDRESS,
        }
    }
}

/// Recent failures per user name and per client address.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<Key, VecDeque<i64>>>,
}

fn keys(user: Option<&str>, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
    user.map(|u| Key::User(u.to_string()))
        .into_iter()
        .chain(addr.map(Key::Addr))
}

impl LoginLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<i64>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds to wait before an attempt for `user` (when there is a
    /// name) from `addr` (when known) counts; `None` when it may try now.
    pub fn blocked_for(
        &self,
        user: Option<&str>,
        addr: Option<IpAddr>,
        now_ms: i64,
    ) -> Option<i64> {
        let mut map = self.lock();
        keys(user, addr)
            .filter_map(|key| {
                let limit = key.limit();
                let times = map.get_mut(&key)?;
                times.retain(|&t| t > now_ms - WINDOW_MS);
                if times.len() < limit {
                    return None;
                }
                times.front().map(|&oldest| oldest + WINDOW_MS - now_ms)
            })
            .max()
    }

    /// Records a failed attempt for `user` (when there is a name) from `addr`.
    pub fn failed(&self, user: Option<&str>, addr: Option<IpAddr>, now_ms: i64) {
        let mut map = self.lock();
        for key in keys(user, addr) {
            if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
                evict(&mut map, now_ms);
            }
            let limit = key.limit();
            let times = map.entry(key).or_default();
            times.push_back(now_ms);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// A successful check clears the user's failures (not the address's:
    /// one valid account must not reset a guesser's count).
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&Key::User(user.to_string()));
    }

    /// Names and addresses tracked now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for one entry: drops every entry whose failures left the
/// window, or else the one whose last failure is oldest.
fn evict(map: &mut HashMap<Key, VecDeque<i64>>, now_ms: i64) {
    map.retain(|_, times| times.back().is_some_and(|&t| t > now_ms - WINDOW_MS));
    if map.len() < MAX_ENTRIES {
        return;
    }
    let oldest = map
        .iter()
        .min_by_key(|(_, times)| times.back().copied().unwrap_or(i64::MIN))
        .map(|(k, _)| k.clone());
    if let Some(k) = oldest {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn five_failures_lock_a_name_until_the_oldest_leaves_the_window() {
        let l = LoginLimiter::default();
        for i in 0..4 {
            l.failed(Some("admin"), None, 1_000 + i);
            assert_eq!(l.blocked_for(Some("admin"), None, 1_000 + i), None);
        }
        l.failed(Some("admin"), None, 2_000);
        assert_eq!(
            l.blocked_for(Some("admin"), None, 2_000),
            Some(1_000 + WINDOW_MS - 2_000)
        );
        // Other names are not affected.
        assert_eq!(l.blocked_for(Some("viewer"), None, 2_000), None);
        // The oldest failure (at 1000) leaves the window: four remain.
        assert_eq!(l.blocked_for(Some("admin"), None, 1_000 + WINDOW_MS), None);
    }

    #[test]
    fn one_address_guessing_many_names_is_locked() {
        let l = LoginLimiter::default();
        for i in 0..MAX_FAILURES_PER_ADDRESS {
            assert_eq!(l.blocked_for(Some(&format!("u{i}")), ADDR, 10), None);
            l.failed(Some(&format!("u{i}")), ADDR, 10);
        }
        assert_eq!(
            l.blocked_for(Some("fresh"), ADDR, 10),
            Some(WINDOW_MS),
            "a name never tried is refused from this address"
        );
        assert_eq!(l.blocked_for(Some("fresh"), None, 10), None);
        // API keys have no name: the address alone counts.
        assert_eq!(l.blocked_for(None, ADDR, 10), Some(WINDOW_MS));
        l.succeeded("u0");
        assert!(
            l.blocked_for(None, ADDR, 10).is_some(),
            "success keeps the address count"
        );
    }

    #[test]
    fn success_clears_the_name() {
        let l = LoginLimiter::default();
        for i in 0..3 {
            l.failed(Some("admin"), None, i);
        }
        l.succeeded("admin");
        for i in 0..4 {
            l.failed(Some("admin"), None, 10 + i);
        }
        assert_eq!(
            l.blocked_for(Some("admin"), None, 20),
            None,
            "counting restarted at success"
        );
    }

    #[test]
    fn a_full_table_evicts_the_oldest_and_keeps_counting() {
        let l = LoginLimiter::default();
        for i in 0..MAX_ENTRIES {
            l.failed(Some(&format!("name-{i}")), None, 1_000 + i as i64);
        }
        assert_eq!(l.len(), MAX_ENTRIES);
        // New names are still counted once the table is full.
        let now = 1_000 + MAX_ENTRIES as i64;
        for i in 0..MAX_FAILURES {
            l.failed(Some("admin"), None, now + i as i64);
        }
        assert!(
            l.blocked_for(Some("admin"), None, now + 10).is_some(),
            "a full table must not stop the counting"
        );
        assert_eq!(l.len(), MAX_ENTRIES);
        // The oldest names made room.
        let map = l.lock();
        assert!(!map.contains_key(&Key::User("name-0".into())));
        assert!(map.contains_key(&Key::User(format!("name-{}", MAX_ENTRIES - 1))));
        drop(map);
        // Entries whose failures left the window all go at once.
        l.failed(Some("late"), None, now + 2 * WINDOW_MS);
        assert_eq!(l.len(), 1);
    }
}
