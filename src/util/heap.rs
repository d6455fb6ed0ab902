//! glibc's heap, set for a server that answers bursts of queries next to
//! a model.
//!
//! By default glibc hands memory back to the kernel as soon as 128 KiB sit
//! free at the top of a heap, and serves blocks from 128 KiB upwards
//! (until its adaptive threshold has grown) with a fresh `mmap` each. A
//! query that decodes a day of samples frees such memory when it ends, so
//! the next one page-faults all of it in again: on the 24 h queries of
//! `bench/query` that was about a sixth of their time. With these settings
//! blocks below 32 MiB come from the heaps and up to 8 MiB of free memory
//! stays at the top of each; [`release_free`], run every minute, returns
//! what is still free then, as Go's runtime (Prometheus, VictoriaMetrics)
//! returns idle memory in the background (glibc itself never gives back
//! free memory below a heap's top). mimalloc gave the same query speed but
//! kept ~50 MiB more resident with the default model loaded.

use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks at least this large get their own `mmap`.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory kept at the top of a heap before it is given back.
pub const TRIM_THRESHOLD: usize = 8 << 20;
/// How often [`release_free`] should run.
pub const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Applies [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] unless the environment
/// sets glibc's malloc itself (`MALLOC_*_`, `GLIBC_TUNABLES`), which then
/// wins. Returns whether the settings were applied. Call once, at start.
pub fn tune() -> bool {
    let own = std::env::vars_os().any(|(k, _)| {
        k.to_str()
            .is_some_and(|k| k.starts_with("MALLOC_") || k == "GLIBC_TUNABLES")
    });
    let tuned = !own && set_thresholds();
    TUNED.store(tuned, Ordering::Relaxed);
    tuned
}

/// Whether [`tune`] applied its settings (and so [`release_free`] has work).
static TUNED: AtomicBool = AtomicBool::new(false);

/// Whether [`tune`] applied its settings: only then is [`release_free`]
/// worth scheduling.
pub fn tuned() -> bool {
    TUNED.load(Ordering::Relaxed)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // SAFETY: mallopt only changes glibc's allocator parameters; it takes
    // the allocator's own locks and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

/// Gives free heap memory back to the kernel (`malloc_trim`) when [`tune`]
/// raised the thresholds; glibc's own settings need no help.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if tuned() {
        // SAFETY: malloc_trim only releases free memory, under glibc's locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn mid_sized_blocks_come_from_the_heap_once_tuned() {
        // Bytes glibc holds in blocks of their own mmap; process-wide, so
        // other tests' threads (under plain `cargo test`) can move it:
        // each check may take a few tries.
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
        let grew_by = |len: usize| {
            let before = mapped();
            let block = vec![1u8; len];
            let grew = mapped().saturating_sub(before);
            assert_eq!(block[len - 1], 1);
            grew
        };
        let holds = |len: usize, check: &dyn Fn(usize) -> bool| (0..5).any(|_| check(grew_by(len)));
        // glibc's default in a fresh process (nextest runs each test in
        // one): a 4 MiB block gets its own mmap.
        if std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|m| m == "process-per-test") {
            assert!(holds(4 << 20, &|g| g >= 4 << 20));
        }
        // The test environment sets no MALLOC_* variable.
        assert!(super::tune(), "mallopt refused the thresholds");
        assert!(holds(4 << 20, &|g| g == 0), "a 4 MiB block was mapped");
        assert!(holds(24 << 20, &|g| g == 0), "a 24 MiB block was mapped");
        assert!(
            holds(40 << 20, &|g| g >= 40 << 20),
            "a 40 MiB block was not mapped"
        );
        super::release_free();
    }
}
