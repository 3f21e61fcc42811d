//! What one run did (counted as it happened, not as planned) and which invariants it broke.

use haze_node::{AckPolicy, ReadQuorum};

use crate::history::Reads;
use crate::schedule::Faults;

/// What one run did and what held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub seed: u64,
    pub faults_of: Faults,
    pub nodes: u64,
    pub replicas: usize,
    /// The nodes' read quorum.
    pub read_quorum: ReadQuorum,
    /// Faults planned, and those that hit a live target (a crash of a node already down, or a
    /// fault on the ends of a stream when none was under way, does not count).
    pub faults_planned: usize,
    pub faults_hit: usize,
    /// Power losses of every node at once (each node kept only what it had synced), and the
    /// applied writes they took away in all (acknowledged or not: none may have been).
    pub power_losses: usize,
    pub unsynced_dropped: usize,
    /// Stale views delivered to a node (it must keep its newer one).
    pub stale_views: usize,
    /// Partitions whose replicas changed (both changes together).
    pub migrations: usize,
    /// Faults that hit the two ends of a stream under way (crashes, partitions).
    pub movers_hit: usize,
    /// What the controller did about nodes down past `dead_after`: streams given another
    /// source or receiver, moves rolled back.
    pub sources_replaced: u64,
    pub receivers_replaced: u64,
    pub rolled_back: u64,
    pub controller_restarts: u64,
    /// Writes by what their clients were told: acknowledged, failed, unknown.
    pub acked: u64,
    pub failed: u64,
    pub unknown: u64,
    pub reads: Reads,
    /// Acknowledged writes missing from a replica of their key after healing (summed over
    /// replicas).
    pub lost: u64,
    /// Values on a replica that nobody wrote (a member never added, an increment applied twice).
    pub phantom: u64,
    /// The first lost or phantom write found, described.
    pub breach: Option<String>,
    /// Partitions whose replicas' digests differ after healing.
    pub divergent: usize,
    /// Copies of partitions left on members that are not their replicas after healing (a
    /// node down when its moved partition was cleaned up keeps it until it hands it back).
    pub leftovers: usize,
    /// Whether a change was still running at the end.
    pub unfinished: bool,
}

impl Outcome {
    /// Whether reads merge a majority of a key's replicas (as writes wait for one): every
    /// read then meets a replica that holds every acknowledged write, even after one replica
    /// lost its disk (N = 2: the other answers too; N = 3: one of the two others holds it,
    /// unless it also missed the copy, which anti-entropy and read repairs soon fix). A read
    /// quorum of one is not enough even where it meets the write quorum (N = 2): the replica
    /// that lost its disk answers alone.
    pub fn majority_reads(&self) -> bool {
        let n = self.replicas;
        self.read_quorum.required(n) >= AckPolicy::Quorum.required(n)
    }

    /// The invariants this run broke, by name. Every read is checked against the writes
    /// acknowledged before it began (the workload waits for each answer before its next
    /// request, so no read is concurrent with a write; a write whose outcome is unknown is
    /// never required). With reads of a majority (the default, [`majority_reads`]), no read
    /// may find nothing or less than was acknowledged, whatever crashed, restarted, lost power,
    /// lost its disk or was cut off. With a read quorum of one, a replica that missed writes
    /// while down, or lost its disk, may answer alone before anti-entropy repairs it: that is
    /// allowed then, except with the controller's faults alone. A node down during a cleanup
    /// may keep its copy for a while.
    ///
    /// [`majority_reads`]: Self::majority_reads
    pub fn violations(&self) -> Vec<&'static str> {
        let moves_alone = self.faults_of == Faults::ControllerOnly;
        let reads_meet_writes = moves_alone || self.majority_reads();
        [
            (self.lost > 0, "acknowledged write lost"),
            (
                self.phantom > 0 || self.reads.phantom > 0,
                "value nobody wrote (or written twice)",
            ),
            (
                reads_meet_writes && self.reads.not_found > 0,
                "read found nothing",
            ),
            (
                reads_meet_writes && self.reads.stale > 0,
                "read went back in time",
            ),
            (self.divergent > 0, "replicas diverge"),
            (moves_alone && self.leftovers > 0, "copy left behind"),
            (self.unfinished, "change unfinished"),
        ]
        .into_iter()
        .filter_map(|(broken, name)| broken.then_some(name))
        .collect()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.reads;
        write!(
            f,
            "seed {} nodes {} N={} R={} faults hit {}/{} (power losses {} dropping {} unsynced writes, \
             stale views {}) migrations {} (faults on streams {}, sources replaced {}, receivers \
             replaced {}, rolled back {}, controller restarts {}) writes: {} acked, {} failed, \
             {} unknown; reads {} (failed {}, not found {}, stale {}, phantom {}); lost {}, \
             phantom {}, divergent partitions {}, leftover copies {}{}{}",
            self.seed,
            self.nodes,
            self.replicas,
            self.read_quorum.required(self.replicas),
            self.faults_hit,
            self.faults_planned,
            self.power_losses,
            self.unsynced_dropped,
            self.stale_views,
            self.migrations,
            self.movers_hit,
            self.sources_replaced,
            self.receivers_replaced,
            self.rolled_back,
            self.controller_restarts,
            self.acked,
            self.failed,
            self.unknown,
            r.ok,
            r.failed,
            r.not_found,
            r.stale,
            r.phantom,
            self.lost,
            self.phantom,
            self.divergent,
            self.leftovers,
            if self.unfinished { ", UNFINISHED" } else { "" },
            self.breach
                .as_ref()
                .map(|b| format!(" (first breach: {b})"))
                .unwrap_or_default(),
        )
    }
}
