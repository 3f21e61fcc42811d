//! Parsing arbitrary JSON never panics, and whatever parses round-trips through both forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<haze_crdt::Value>(bytes) {
        assert_eq!(haze_crdt::Value::decode(&value.encode()).as_ref(), Ok(&value));
        let json = serde_json::to_vec(&value).expect("a value serialises");
        assert_eq!(serde_json::from_slice::<haze_crdt::Value>(&json).ok().as_ref(), Some(&value));
    }
});
