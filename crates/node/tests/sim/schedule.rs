//! The faults and membership changes of one seed, planned in simulated time.

use std::time::Duration;

/// How long the workload writes; every fault starts and ends within it.
pub const WORKLOAD: Duration = Duration::from_secs(20);
/// How long the controller waits before it takes a silent node for down (`dead_after_ms`).
pub const DEAD_AFTER_MS: u64 = 4_000;

/// A small deterministic generator (splitmix64): the scenario depends on the seed alone.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Event {
    Partition(u64, u64),
    Repair(u64, u64),
    Crash(u64),
    Wipe(u64),
    Restart(u64),
    /// Every node loses power at once: each keeps only what it synced.
    PowerLoss,
    /// Every node that lost power starts again.
    PowerBack,
    /// The controller crashes: nodes cannot reach it, and what it was told is lost.
    ControllerCrash,
    /// It restarts from what it had saved.
    ControllerRestart,
    /// A node cannot reach the controller.
    Cut(u64),
    Uncut(u64),
    /// A node, cut off from the controller for this many milliseconds, receives the view it
    /// had at the start (a long-delayed answer of the controller): it must keep its newer one.
    StaleView(u64, u64),
    /// Commit the spare node's addition.
    AddSpare,
    /// Commit the removal of a member (while the addition still runs).
    Remove(u64),
    /// Crash the sending (`true`) or receiving node of a stream under way, if one is, for
    /// this many milliseconds (past `DEAD_AFTER_MS`, the controller replans the stream).
    CrashMover(bool, u64),
    /// Cut the two ends of a stream under way apart for this many milliseconds.
    PartitionMovers(u64),
}

impl Event {
    /// Whether this event starts a fault (the others end one, or change membership).
    pub fn is_fault(self) -> bool {
        matches!(
            self,
            Event::Partition(..)
                | Event::Crash(_)
                | Event::Wipe(_)
                | Event::PowerLoss
                | Event::ControllerCrash
                | Event::Cut(_)
                | Event::StaleView(..)
                | Event::CrashMover(..)
                | Event::PartitionMovers(_)
        )
    }
}

/// Which faults a run injects: all, or only those of the controller (with the membership changes
/// alone, no read may go back in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    All,
    ControllerOnly,
}

/// An outage of a stream's end: short, or (one time in two) longer than the controller waits
/// before it replaces the node.
fn mover_outage(rng: &mut Rng) -> u64 {
    if rng.below(2) == 0 {
        rng.below(2_000) + 300
    } else {
        DEAD_AFTER_MS + 500 + rng.below(2_000)
    }
}

/// Plans the membership changes (the spare node added, a member removed while that runs) and
/// the controller's faults (a crash, nodes cut off from it, a stale view delivered), then with
/// `Faults::All` the nodes' faults: the ends of a stream crashed (sometimes past
/// `DEAD_AFTER_MS`) and cut apart, a power loss of every node, one node restarted with an empty
/// disk, one to three partitions between two nodes, up to two crashes of other nodes. Each
/// fault ends before the workload does.
pub fn schedule(rng: &mut Rng, nodes: u64, faults: Faults) -> Vec<(Duration, Event)> {
    let mut events = Vec::new();
    let window = WORKLOAD.as_millis() as u64 - 3_000;
    let add = rng.millis(1_000, 5_000);
    events.push((add, Event::AddSpare));
    events.push((
        add + rng.millis(300, 3_000),
        Event::Remove(1 + rng.below(nodes)),
    ));
    let at = rng.millis(2_000, window);
    events.push((at, Event::ControllerCrash));
    events.push((at + rng.millis(300, 3_000), Event::ControllerRestart));
    for _ in 0..1 + rng.below(2) {
        let node = 1 + rng.below(nodes + 1);
        let at = rng.millis(1_000, window);
        events.push((at, Event::Cut(node)));
        events.push((at + rng.millis(300, 3_000), Event::Uncut(node)));
    }
    events.push((
        add + rng.millis(1_000, 6_000),
        Event::StaleView(1 + rng.below(nodes + 1), rng.below(2_000) + 500),
    ));
    if faults == Faults::ControllerOnly {
        events.sort_by_key(|(at, _)| *at);
        return events;
    }
    // The two ends of a stream: crashed (the source, then the receiver) and cut apart, while
    // the addition streams.
    events.push((
        add + rng.millis(300, 2_000),
        Event::CrashMover(true, mover_outage(rng)),
    ));
    events.push((
        add + rng.millis(2_500, 5_000),
        Event::CrashMover(false, mover_outage(rng)),
    ));
    events.push((
        add + rng.millis(500, 4_000),
        Event::PartitionMovers(rng.below(2_000) + 300),
    ));
    let at = rng.millis(2_000, window - 1_500);
    events.push((at, Event::PowerLoss));
    events.push((at + rng.millis(200, 1_500), Event::PowerBack));
    let wiped = 1 + rng.below(nodes);
    let at = rng.millis(2_000, window);
    events.push((at, Event::Wipe(wiped)));
    events.push((at + rng.millis(200, 2_000), Event::Restart(wiped)));
    for _ in 0..1 + rng.below(3) {
        let a = 1 + rng.below(nodes);
        let b = 1 + (a + rng.below(nodes - 1)) % nodes;
        let at = rng.millis(500, window);
        events.push((at, Event::Partition(a, b)));
        events.push((at + rng.millis(300, 3_000), Event::Repair(a, b)));
    }
    let crashes = rng.below(3);
    for c in 0..crashes {
        let node = 1 + (wiped + c) % nodes;
        if node == wiped {
            continue;
        }
        let at = rng.millis(500, window);
        events.push((at, Event::Crash(node)));
        events.push((at + rng.millis(200, 3_000), Event::Restart(node)));
    }
    events.sort_by_key(|(at, _)| *at);
    events
}
