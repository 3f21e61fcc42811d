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
