//! The Go-template engine on arbitrary text: parsing and rendering (with the
//! data an alerting rule gets) must not panic, and what parses must render
//! or fail with an error.
#![no_main]

use std::collections::BTreeMap;

use infermon::model::Labels;
use infermon::template::{Template, expand_alert_text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if Template::parse(&text).is_err() {
        return;
    }
    let labels = Labels::new([("alertname", "A"), ("instance", "gpu-07:8080")]);
    let external: BTreeMap<String, String> = [("box".to_string(), "gpu-07".to_string())].into();
    let _ = expand_alert_text(&text, &labels, &external, "http://infermon:8080", 2.5);
});
