//! The config loader on arbitrary text: it loads or fails with an error that
//! says something, never panics (env expansion, YAML, durations, regexes,
//! validation).
#![no_main]

use infermon::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = Config::load_str(&text, None) {
        assert!(!e.to_string().is_empty());
    }
});
