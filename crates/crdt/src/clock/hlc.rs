//! The hybrid logical clock that stamps last-writer-wins writes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of physical time in milliseconds since the Unix epoch.
///
/// This crate never reads the system clock itself: the caller passes one in, so that tests and
/// simulations control time. A node or client implements it over `SystemTime`.
pub trait PhysicalClock {
    /// Returns the current time in milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// A clock that reads whatever was last set: for tests, simulations and examples.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Returns a clock that reads `millis`.
    pub const fn new(millis: u64) -> Self {
        ManualClock(AtomicU64::new(millis))
    }

    /// Sets the time (it may go backwards, as real clocks sometimes do).
    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::Relaxed);
    }

    /// Moves the time forward by `millis`.
    pub fn advance(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::Relaxed);
    }
}

impl PhysicalClock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A hybrid logical clock timestamp: 48 bits of milliseconds, then a 16-bit logical counter,
/// ordered as one 64-bit number.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct HlcTimestamp(u64);

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest millisecond count a timestamp holds (2^47 − 1: the year 6429).
const MAX_MILLIS: u64 = (1 << 47) - 1;

impl HlcTimestamp {
    /// The greatest timestamp (2^63 − 1 packed). Decoders refuse greater ones, and the clock
    /// never passes it, so a stored stamp can never freeze a register at the end of time.
    pub const MAX: HlcTimestamp = HlcTimestamp((MAX_MILLIS << LOGICAL_BITS) | LOGICAL_MASK);

    /// Returns the timestamp `(millis, logical)`; `millis` is clamped to 2^47 − 1.
    pub const fn new(millis: u64, logical: u16) -> Self {
        let millis = if millis > MAX_MILLIS {
            MAX_MILLIS
        } else {
            millis
        };
        HlcTimestamp((millis << LOGICAL_BITS) | logical as u64)
    }

    /// Returns the timestamp packed in one number, as it is encoded, or `None` above
    /// [`HlcTimestamp::MAX`].
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw > HlcTimestamp::MAX.0 {
            None
        } else {
            Some(HlcTimestamp(raw))
        }
    }

    /// Returns the packed form.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// Returns the physical part, in milliseconds since the Unix epoch.
    pub const fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// Returns the logical counter.
    pub const fn logical(self) -> u16 {
        (self.0 & LOGICAL_MASK) as u16
    }

    /// Returns the next timestamp after this one.
    fn successor(self) -> Self {
        // The logical counter overflowing into the milliseconds is harmless: the clock runs a
        // millisecond ahead, which the next physical reading absorbs. It stops at MAX, 6429.
        HlcTimestamp(self.0.saturating_add(1).min(HlcTimestamp::MAX.0))
    }
}

impl fmt::Debug for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.millis(), self.logical())
    }
}

/// A hybrid logical clock: timestamps that follow physical time when clocks agree, and never
/// run backwards or behind an event already observed when they do not.
///
/// Every timestamp it returns is greater than every timestamp it returned or
/// [observed](Hlc::observe) before, so a write stamped after observing a state always sorts after
/// that state's writes, whatever the physical clocks say.
///
/// # Examples
///
/// ```
/// use haze_crdt::{Hlc, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// let mut hlc = Hlc::new();
/// let first = hlc.tick(&clock);
/// clock.set(900); // the wall clock stepped back
/// let second = hlc.tick(&clock);
/// assert!(second > first);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Hlc {
    last: HlcTimestamp,
}

impl Hlc {
    /// Returns a clock that has seen nothing yet.
    pub const fn new() -> Self {
        Hlc {
            last: HlcTimestamp(0),
        }
    }

    /// Returns a new timestamp for a local event, greater than any seen before.
    pub fn tick(&mut self, clock: &(impl PhysicalClock + ?Sized)) -> HlcTimestamp {
        let physical = HlcTimestamp::new(clock.now_millis(), 0);
        self.last = if physical > self.last {
            physical
        } else {
            self.last.successor()
        };
        self.last
    }

    /// Records a timestamp seen in another replica's state, so later ticks sort after it.
    pub fn observe(&mut self, seen: HlcTimestamp) {
        self.last = self.last.max(seen);
    }

    /// Returns the last timestamp returned or observed.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_when_time_stands_still() {
        let clock = ManualClock::new(5);
        let mut hlc = Hlc::new();
        let a = hlc.tick(&clock);
        let b = hlc.tick(&clock);
        assert_eq!((a.millis(), a.logical()), (5, 0));
        assert_eq!((b.millis(), b.logical()), (5, 1));
    }

    #[test]
    fn observing_a_future_timestamp_moves_the_clock_past_it() {
        let clock = ManualClock::new(10);
        let mut hlc = Hlc::new();
        hlc.observe(HlcTimestamp::new(500, 7));
        let t = hlc.tick(&clock);
        assert_eq!((t.millis(), t.logical()), (500, 8));
        clock.set(600);
        assert_eq!(hlc.tick(&clock), HlcTimestamp::new(600, 0));
    }

    #[test]
    fn logical_overflow_carries_into_millis() {
        let mut hlc = Hlc::new();
        hlc.observe(HlcTimestamp::new(1, u16::MAX));
        assert_eq!(hlc.tick(&ManualClock::new(0)), HlcTimestamp::new(2, 0));
    }

    #[test]
    fn huge_physical_times_are_clamped() {
        let t = HlcTimestamp::new(u64::MAX, 3);
        assert_eq!(t.millis(), MAX_MILLIS);
        assert_eq!(t.logical(), 3);
        let mut hlc = Hlc::new();
        hlc.observe(HlcTimestamp::MAX);
        assert_eq!(hlc.tick(&ManualClock::new(u64::MAX)), HlcTimestamp::MAX);
        assert_eq!(HlcTimestamp::from_raw(u64::MAX), None);
        assert_eq!(
            HlcTimestamp::from_raw(HlcTimestamp::MAX.to_raw()),
            Some(HlcTimestamp::MAX)
        );
    }
}
