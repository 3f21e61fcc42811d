//! Decoding arbitrary bytes never panics, and whatever decodes is the canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(value) = haze_crdt::Value::decode(bytes) {
        assert_eq!(value.encode(), bytes);
    }
});
