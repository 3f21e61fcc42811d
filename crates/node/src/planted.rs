//! Bugs planted on purpose (feature `planted-bugs`, tests only): the simulation must catch them.
//! Nothing here is compiled into a normal build.

use std::sync::atomic::{AtomicBool, Ordering};

static DROP_COPIES: AtomicBool = AtomicBool::new(false);

/// Makes every coordinator drop its copies to the other replicas while reporting them
/// acknowledged: a write then lives on one node only, whatever the acknowledgement policy says.
pub fn drop_copies(on: bool) {
    DROP_COPIES.store(on, Ordering::SeqCst);
}

pub(crate) fn drops_copies() -> bool {
    DROP_COPIES.load(Ordering::SeqCst)
}

static SKIP_FORWARDING: AtomicBool = AtomicBool::new(false);
static DELETE_EARLY: AtomicBool = AtomicBool::new(false);

/// Makes the new replicas of a moving partition miss every write made while they stream: the
/// old replica does not forward what it applies, coordinators do not copy to them, the old
/// replica skips its last pass before deleting, and old and new replicas do not compare.
pub fn skip_forwarding(on: bool) {
    SKIP_FORWARDING.store(on, Ordering::SeqCst);
}

pub(crate) fn skips_forwarding() -> bool {
    SKIP_FORWARDING.load(Ordering::SeqCst)
}

/// Makes a departing node delete its copy of a partition as soon as its stream completes,
/// without waiting for the new table to be in use or sending its copy a last time.
pub fn delete_early(on: bool) {
    DELETE_EARLY.store(on, Ordering::SeqCst);
}

pub(crate) fn deletes_early() -> bool {
    DELETE_EARLY.load(Ordering::SeqCst)
}
