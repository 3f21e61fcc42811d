//! The limits and timings of moves (`haze controller` flags, docs/repartitioning.md).

/// The limits and timings of moves (`haze controller` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoveLimits {
    /// How many partitions stream at once, cluster-wide.
    pub partitions: usize,
    /// How many partitions stream at once to one node: a new node receives every stream of
    /// its addition, and its writes must keep up with clients' copies too.
    #[serde(default = "default_per_node")]
    pub per_node: usize,
    /// The most bytes per second each node streams (0: no limit).
    pub rate: u64,
    /// How long a partition stays routed before departing replicas delete it even if some node
    /// never reported the new epoch.
    pub grace_ms: u64,
    /// A node silent this long is taken for down: streams from it are re-planned from another
    /// replica, and it is not waited for.
    pub dead_after_ms: u64,
    /// A move in one state longer than this is reported stuck.
    pub stuck_after_ms: u64,
}

fn default_per_node() -> usize {
    2
}

impl Default for MoveLimits {
    fn default() -> Self {
        MoveLimits {
            partitions: 16,
            per_node: default_per_node(),
            rate: 64 * 1024 * 1024,
            grace_ms: 30_000,
            dead_after_ms: 10_000,
            stuck_after_ms: 300_000,
        }
    }
}
