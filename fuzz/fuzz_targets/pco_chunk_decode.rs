//! The compacted-chunk decoder (both pco encodings) on arbitrary bytes must
//! not panic or allocate without bound; re-encoding what it decodes must give
//! the same samples bit for bit.
#![no_main]

use infermon::storage::pco_chunk::{Encoding, decode_any, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for encoding in [Encoding::Pco, Encoding::PcoInt] {
        let mut samples = Vec::new();
        if decode_any(encoding, data, i64::MIN, i64::MAX, &mut samples).is_err() {
            continue;
        }
        // Only timestamp-ordered output is a chunk compaction could write.
        if !samples.windows(2).all(|w| w[0].timestamp_ms < w[1].timestamp_ms) {
            continue;
        }
        let (enc, bytes) = encode(&samples).expect("decoded samples encode");
        let mut again = Vec::new();
        decode_any(enc, &bytes, i64::MIN, i64::MAX, &mut again).expect("re-encoded chunk decodes");
        assert_eq!(again.len(), samples.len());
        for (a, b) in again.iter().zip(&samples) {
            assert_eq!(a.timestamp_ms, b.timestamp_ms);
            assert_eq!(a.value.to_bits(), b.value.to_bits());
        }
    }
});
