//! Small helpers shared by several parts.

pub mod heap;
pub mod redact;
pub mod retry;
pub mod systemd;

use std::path::Path;

/// Deterministic noise for tests (xorshift64): the next value of the
/// sequence in `x`, which must not start at zero.
#[cfg(test)]
pub(crate) fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Parses a size like `10MB`, `512KiB`, `1GB` or `2048` (bytes). Like
/// Prometheus, `KB`/`MB`/`GB` are powers of 1024.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" | "K" => 1 << 10,
        "MB" | "MIB" | "M" => 1 << 20,
        "GB" | "GIB" | "G" => 1 << 30,
        "TB" | "TIB" | "T" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// The last component of a path, for default names (`models/bge-m3/` → `bge-m3`).
pub fn dir_name(path: &str) -> String {
    Path::new(path.trim_end_matches('/'))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("10MB"), Some(10 << 20));
        assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("2048"), Some(2048));
        assert_eq!(parse_bytes("ten"), None);
        assert_eq!(dir_name("models/all-MiniLM-L6-v2/"), "all-MiniLM-L6-v2");
    }
}
