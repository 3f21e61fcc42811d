//! Decoded values of hot keys, kept from one commit to the next.
//!
//! A commit decodes each key's stored value once (`write`); a key written in every commit (a
//! set taking adds from many clients) was decoded again in each, which for a value of
//! 10,000 members was half of the writer's work. A commit now names the keys whose final value
//! it would keep (large enough that decoding costs more than keeping, and held by a write
//! whose caller wants no value), the writer hands those values back once their writes are
//! answered ([`Store::keep`](crate::Store::keep)), and the key's next commit starts from the
//! kept value.
//!
//! Invariant: a kept value is used only if the key's newest stored entry still has the
//! checksum and length of the encoding the value was committed as. Every path that changes a
//! key also forgets it here (a commit, a quarantine, a delete), so the check is a second line.

use haze_crdt::Value;

use crate::key::RingKey;

/// Values whose encoding is shorter are decoded again instead: a decode of a few hundred
/// bytes costs about what keeping it does.
pub(super) const MIN_BYTES: usize = 1024;
/// At most this many values are kept (the least recently committed go first): enough for
/// the hot keys of a workload, few enough that a linear search costs nothing.
const MAX_VALUES: usize = 16;
/// And at most this many bytes of their encodings (their decoded form is a few times larger).
const MAX_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
pub(super) struct HotValues {
    entries: Vec<Hot>,
    /// The sum of the entries' `len`.
    bytes: usize,
    /// Counts commits, to find the least recently committed entry.
    clock: u64,
}

#[derive(Debug)]
struct Hot {
    key: RingKey,
    /// The checksum and length of the encoding committed for `value`.
    checksum: u64,
    len: usize,
    /// `None` until the writer hands it back.
    value: Option<Value>,
    committed: u64,
}

impl HotValues {
    /// Takes the value kept for `key` if it is the one stored: an entry of `checksum` and
    /// `len`. Any entry for the key is forgotten (the caller changes the key).
    pub(super) fn take(&mut self, key: &RingKey, checksum: u64, len: usize) -> Option<Value> {
        let i = self.position(key)?;
        let hot = self.entries.swap_remove(i);
        self.bytes -= hot.len;
        (hot.checksum == checksum && hot.len == len)
            .then_some(hot.value)
            .flatten()
    }

    /// Forgets what is kept for `key`.
    pub(super) fn forget(&mut self, key: &RingKey) {
        if let Some(i) = self.position(key) {
            self.bytes -= self.entries.swap_remove(i).len;
        }
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Starts a commit's changes: `expect`s after this are one commit's.
    pub(super) fn tick(&mut self) {
        self.clock += 1;
    }

    /// Waits for the value committed for `key` as an encoding of `checksum` and `len` (to be
    /// handed back by [`keep`](Self::keep)), making room for it.
    pub(super) fn expect(&mut self, key: RingKey, checksum: u64, len: usize) {
        self.forget(&key);
        if len > MAX_BYTES {
            return;
        }
        while self.entries.len() >= MAX_VALUES || self.bytes + len > MAX_BYTES {
            let oldest = (0..self.entries.len()).min_by_key(|&i| self.entries[i].committed);
            match oldest {
                Some(i) => self.bytes -= self.entries.swap_remove(i).len,
                None => break,
            }
        }
        self.bytes += len;
        self.entries.push(Hot {
            key,
            checksum,
            len,
            value: None,
            committed: self.clock,
        });
    }

    /// Keeps `value` for `key` if it is expected (else drops it: it was forgotten since).
    pub(super) fn keep(&mut self, key: &[u8], value: Value) {
        if let Some(hot) = self
            .entries
            .iter_mut()
            .find(|hot| &hot.key[8..] == key && hot.value.is_none())
        {
            hot.value = Some(value);
        }
    }

    fn position(&self, key: &RingKey) -> Option<usize> {
        self.entries.iter().position(|hot| hot.key == *key)
    }
}

#[cfg(test)]
mod tests {
    use haze_crdt::{ActorId, GCounter};

    use super::*;

    fn counter(n: u64) -> Value {
        let mut c = GCounter::new();
        c.increment(ActorId::new(1), n).unwrap();
        Value::from(c)
    }

    #[test]
    fn a_kept_value_is_used_only_for_the_encoding_it_was_committed_as() {
        let mut hot = HotValues::default();
        let key = RingKey::of(b"k");
        hot.tick();
        hot.expect(key.clone(), 7, 2000);
        assert_eq!(hot.take(&key, 7, 2000), None, "not handed back yet");
        hot.expect(key.clone(), 7, 2000);
        hot.keep(b"k", counter(1));
        assert_eq!(hot.take(&key, 8, 2000), None, "another checksum");
        assert_eq!(hot.take(&key, 7, 2000), None, "a take forgets the entry");
        hot.expect(key.clone(), 7, 2000);
        hot.keep(b"k", counter(1));
        assert_eq!(hot.take(&key, 7, 2001), None, "another length");
        hot.expect(key.clone(), 7, 2000);
        hot.keep(b"k", counter(2));
        assert_eq!(hot.take(&key, 7, 2000), Some(counter(2)));
        hot.expect(key.clone(), 7, 2000);
        hot.forget(&key);
        hot.keep(b"k", counter(3));
        assert_eq!(
            hot.take(&key, 7, 2000),
            None,
            "forgotten, then not expected"
        );
        assert_eq!(hot.bytes, 0);
    }

    #[test]
    fn the_least_recently_committed_value_makes_room() {
        let mut hot = HotValues::default();
        for i in 0..=MAX_VALUES {
            hot.tick();
            let key = format!("k{i}");
            hot.expect(RingKey::of(key.as_bytes()), i as u64, MIN_BYTES);
            hot.keep(key.as_bytes(), counter(i as u64));
        }
        assert_eq!(hot.entries.len(), MAX_VALUES);
        assert_eq!(hot.take(&RingKey::of(b"k0"), 0, MIN_BYTES), None);
        assert_eq!(
            hot.take(&RingKey::of(b"k1"), 1, MIN_BYTES),
            Some(counter(1))
        );
        // Bytes bound too: one value of MAX_BYTES leaves room for nothing else.
        hot.tick();
        hot.expect(RingKey::of(b"big"), 1, MAX_BYTES);
        assert_eq!(hot.entries.len(), 1);
        assert_eq!(hot.bytes, MAX_BYTES);
        hot.clear();
        assert_eq!((hot.entries.len(), hot.bytes), (0, 0));
    }
}
