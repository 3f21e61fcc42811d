//! Bugs planted on purpose (feature `planted-bugs`, tests only): the simulation must catch each
//! of them. Nothing here is compiled into a normal build.
//!
//! Each bug removes exactly one defence, so a catch proves that the invariant the simulation
//! checks depends on that defence (docs/testing.md lists which invariant catches which bug).
//! Several may be planted together, for defences that back each other up.

use std::sync::atomic::{AtomicU32, Ordering};

/// A bug to plant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Bug {
    /// A coordinator drops its copies to the other replicas while reporting them acknowledged:
    /// a write then lives on one node only, whatever the acknowledgement policy says.
    DropCopies = 1,
    /// The source of a stream does not forward the writes it commits while it streams.
    NoForwarding,
    /// Coordinators do not copy a write of a moving partition to its new replicas (only to
    /// the table's), nor count their acknowledgements.
    NoCopiesToNewReplicas,
    /// A departing replica skips its last pass (sending what differs) before it deletes.
    NoLastPass,
    /// A departing node deletes its copy of a partition as soon as its stream completes,
    /// while it still serves it (before the switch).
    DeleteEarly,
    /// A write is acknowledged before the fsync that makes it durable.
    AckBeforeDurable,
    /// A node installs a view older than the one it has (a delayed answer of the controller).
    AcceptStaleView,
    /// A router that does not know whether a counter addition or register write was applied
    /// (its replica did not answer) sends it to the next replica anyway.
    RetryUnknownWrites,
}

static PLANTED: AtomicU32 = AtomicU32::new(0);

/// Plants exactly `bugs` (removing any others; none: a correct node again).
pub fn plant(bugs: &[Bug]) {
    let mask = bugs.iter().fold(0, |mask, bug| mask | 1 << *bug as u8);
    PLANTED.store(mask, Ordering::SeqCst);
}

/// Returns whether `bug` is planted.
pub(crate) fn planted(bug: Bug) -> bool {
    PLANTED.load(Ordering::SeqCst) & 1 << bug as u8 != 0
}
