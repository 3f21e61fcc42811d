//! Log records as docs/storage-format.md describes them, built by hand: what a test needs to
//! write a record the store did not (a torn one, one a newer build might write).

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A version-3 record numbered `seq` holding `payload`, to be written at byte `offset` of its
/// segment: "HzR3", length, number, xxh3 of the payload seeded by the number, xxh3 of the 24
/// bytes before seeded by the offset, the payload.
pub fn record(offset: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut record = b"HzR3".to_vec();
    record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    record.extend_from_slice(&seq.to_be_bytes());
    record.extend_from_slice(&xxh3_64_with_seed(payload, seq).to_be_bytes());
    let check = xxh3_64_with_seed(&record, offset);
    record.extend_from_slice(&check.to_be_bytes());
    record.extend_from_slice(payload);
    record
}

/// The payload of a merge record of one key and value encoding.
pub fn merge_payload(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut payload = vec![1];
    for bytes in [key, value] {
        assert!(bytes.len() < 128, "a one-byte length");
        payload.push(bytes.len() as u8);
        payload.extend_from_slice(bytes);
    }
    payload
}

/// A record of the first layout (log versions 1 and 2): length, xxh3 of the payload, payload.
pub fn plain_record(payload: &[u8]) -> Vec<u8> {
    let mut record = (payload.len() as u32).to_be_bytes().to_vec();
    record.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_be_bytes());
    record.extend_from_slice(payload);
    record
}
