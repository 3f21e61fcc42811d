//! The process's real clock and randomness, injected into the libraries.

use haze_crdt::{ActorId, PhysicalClock};

/// The system's wall clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemClock;

impl PhysicalClock for SystemClock {
    #[allow(clippy::disallowed_methods)] // this is the one place that reads the wall clock
    fn now_millis(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Returns a fresh random actor id: 64 bits from the kernel's random source.
///
/// A node takes a new one at every start, so it never reuses the dots of an earlier life, even
/// if its data was restored from an older backup (see `ActorId`'s docs on "kv679").
pub(crate) fn fresh_actor() -> std::io::Result<ActorId> {
    random_u64().map(ActorId::new)
}

/// Returns 64 bits from the kernel's random source.
pub(crate) fn random_u64() -> std::io::Result<u64> {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}
