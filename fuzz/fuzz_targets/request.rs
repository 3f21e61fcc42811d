//! Decoding arbitrary frame bodies as requests and responses never panics, and a decoded
//! request re-encodes to a body that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok((id, request)) = haze_protocol::Request::decode(body) {
        let mut again = Vec::new();
        request.encode(id, &mut again);
        assert_eq!(haze_protocol::Request::decode(&again).ok(), Some((id, request)));
    }
    let _ = haze_protocol::Response::decode(body);
});
