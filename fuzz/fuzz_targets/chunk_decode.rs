//! The chunk decoder on arbitrary bytes must not panic or allocate beyond
//! the input's size; re-encoding what it decodes must give the same samples.
#![no_main]

use infermon::storage::chunk::{ChunkEncoder, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(samples) = decode(data) {
        assert!(samples.len() <= 2 + data.len() * 8);
        let mut enc = ChunkEncoder::new();
        for s in &samples {
            enc.append(s.timestamp_ms, s.value);
        }
        let again = decode(enc.bytes()).expect("re-encoded chunk decodes");
        assert_eq!(again.len(), samples.len());
        for (a, b) in again.iter().zip(&samples) {
            assert_eq!(a.timestamp_ms, b.timestamp_ms);
            assert_eq!(a.value.to_bits(), b.value.to_bits());
        }
    }
});
