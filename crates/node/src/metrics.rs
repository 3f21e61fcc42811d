//! Counters and latency histograms, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use haze_storage::{COMMIT_BUCKET_BOUNDS_MICROS, COMMIT_SIZE_BOUNDS, CommitStats};

/// The request kinds that are counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A read.
    Get,
    /// A full-state merge.
    Merge,
    /// A batch of merges.
    MergeBatch,
    /// A typed operation.
    Op,
    /// A digest read.
    Digest,
    /// A ping.
    Ping,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Get,
        Kind::Merge,
        Kind::MergeBatch,
        Kind::Op,
        Kind::Digest,
        Kind::Ping,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Merge => "merge",
            Kind::MergeBatch => "merge_batch",
            Kind::Op => "op",
            Kind::Digest => "digest",
            Kind::Ping => "ping",
        }
    }
}

/// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf).
const LATENCY_BOUNDS_MICROS: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

#[derive(Debug, Default)]
struct PerKind {
    ok: AtomicU64,
    errors: AtomicU64,
    micros_sum: AtomicU64,
    buckets: [AtomicU64; LATENCY_BOUNDS_MICROS.len() + 1],
}

/// The node's metrics: requests by kind and outcome, latencies, connections.
#[derive(Debug, Default)]
pub struct Metrics {
    kinds: [PerKind; Kind::ALL.len()],
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused because the cap was reached.
    pub connections_refused: AtomicU64,
    /// Connections closed for a protocol error (garbage, oversized or truncated frames).
    pub protocol_errors: AtomicU64,
    /// Connections closed for idleness or a slow handshake.
    pub timeouts: AtomicU64,
    /// Of `timeouts`: connections cut off because their client did not take its responses
    /// (the write-stall limit).
    pub stalled_readers: AtomicU64,
    /// Requests sent on to another node (routing, failover).
    pub forwarded: AtomicU64,
    /// Times a replica did not answer and the next one was tried.
    pub failovers: AtomicU64,
    /// Copies of a write to another replica that failed (anti-entropy heals them); shared with
    /// the copiers.
    pub copies_failed: std::sync::Arc<AtomicU64>,
    /// Anti-entropy rounds completed.
    pub anti_entropy_rounds: AtomicU64,
    /// Keys anti-entropy sent to another replica.
    pub anti_entropy_pushed: AtomicU64,
    /// Keys anti-entropy took from another replica.
    pub anti_entropy_pulled: AtomicU64,
    /// Replicas repaired by reads that merge every replica's answer.
    pub read_repairs: AtomicU64,
    /// Keys this node streamed to a partition's new replicas (repartitioning).
    pub handoff_keys: AtomicU64,
    /// Bytes (keys and encoded states) it streamed.
    pub handoff_bytes: AtomicU64,
    /// Stream passes it started (a pass that failed starts over).
    pub handoff_passes: AtomicU64,
    /// Writes it forwarded to a partition's new replica while streaming.
    pub handoff_forwarded: AtomicU64,
    /// Forwarded writes that failed (the stream then makes another pass).
    pub handoff_forward_failures: AtomicU64,
    /// Partitions it deleted after they moved away.
    pub partitions_deleted: AtomicU64,
    /// Keys it deleted with them.
    pub keys_deleted: AtomicU64,
    /// Streams it is sending now.
    pub handoff_streams: AtomicU64,
    /// Connections and requests refused because the caller did not prove who it is or its
    /// token does not allow what it asked.
    pub auth_failures: AtomicU64,
    /// Tasks of the node that panicked (a bug: each is logged at error level with its
    /// message).
    pub task_panics: AtomicU64,
}

impl Metrics {
    /// Requests served, of every kind and outcome.
    pub fn requests_total(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.ok.load(Ordering::Relaxed) + k.errors.load(Ordering::Relaxed))
            .sum()
    }

    /// Records one request of `kind` that took `took`.
    pub fn record(&self, kind: Kind, ok: bool, took: Duration) {
        let k = &self.kinds[Kind::ALL
            .iter()
            .position(|&x| x == kind)
            .expect("every kind is listed")];
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        if ok { &k.ok } else { &k.errors }.fetch_add(1, Ordering::Relaxed);
        k.micros_sum.fetch_add(micros, Ordering::Relaxed);
        let bucket = LATENCY_BOUNDS_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(LATENCY_BOUNDS_MICROS.len());
        k.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self, commits: &CommitStats) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP haze_requests_total Requests served, by kind and outcome.\n# TYPE haze_requests_total counter\n");
        for (kind, k) in Kind::ALL.iter().zip(&self.kinds) {
            let _ = writeln!(
                out,
                "haze_requests_total{{kind=\"{}\",outcome=\"ok\"}} {}",
                kind.name(),
                get(&k.ok)
            );
            let _ = writeln!(
                out,
                "haze_requests_total{{kind=\"{}\",outcome=\"error\"}} {}",
                kind.name(),
                get(&k.errors)
            );
        }
        out.push_str("# HELP haze_request_duration_seconds Request latency, by kind.\n# TYPE haze_request_duration_seconds histogram\n");
        for (kind, k) in Kind::ALL.iter().zip(&self.kinds) {
            histogram(
                &mut out,
                "haze_request_duration_seconds",
                &format!("kind=\"{}\",", kind.name()),
                &LATENCY_BOUNDS_MICROS,
                &k.buckets,
                get(&k.micros_sum),
            );
        }
        out.push_str("# HELP haze_storage_commits_total Storage commits (groups of writes sharing one fsync in sync mode).\n# TYPE haze_storage_commits_total counter\n");
        let _ = writeln!(out, "haze_storage_commits_total {}", get(&commits.commits));
        out.push_str("# HELP haze_storage_writes_total Writes applied by storage commits.\n# TYPE haze_storage_writes_total counter\n");
        let _ = writeln!(out, "haze_storage_writes_total {}", get(&commits.writes));
        out.push_str("# HELP haze_storage_syncs_total Periodic fsyncs (periodic durability).\n# TYPE haze_storage_syncs_total counter\n");
        let _ = writeln!(out, "haze_storage_syncs_total {}", get(&commits.syncs));
        out.push_str("# HELP haze_storage_durable_syncs_total Fsyncs made at once in periodic mode because a commit held another node's copy, acknowledged only once durable.\n# TYPE haze_storage_durable_syncs_total counter\n");
        let _ = writeln!(
            out,
            "haze_storage_durable_syncs_total {}",
            get(&commits.durable_syncs)
        );
        out.push_str("# HELP haze_storage_commit_duration_seconds Time to apply and commit a group (with its fsync in sync mode).\n# TYPE haze_storage_commit_duration_seconds histogram\n");
        histogram(
            &mut out,
            "haze_storage_commit_duration_seconds",
            "",
            &COMMIT_BUCKET_BOUNDS_MICROS,
            &commits.commit_micros_buckets,
            get(&commits.commit_micros),
        );
        out.push_str("# HELP haze_storage_commit_writes Writes per storage commit: how well concurrent writes share a commit (and its fsync).\n# TYPE haze_storage_commit_writes histogram\n");
        scaled_histogram(
            &mut out,
            "haze_storage_commit_writes",
            "",
            &COMMIT_SIZE_BOUNDS,
            &commits.commit_size_buckets,
            get(&commits.writes),
            1.0,
        );
        for (name, help, value) in [
            (
                "haze_connections_open",
                "Client connections open now.",
                &self.connections_open,
            ),
            (
                "haze_connections_total",
                "Client connections accepted.",
                &self.connections_total,
            ),
            (
                "haze_connections_refused_total",
                "Connections refused at the connection cap.",
                &self.connections_refused,
            ),
            (
                "haze_protocol_errors_total",
                "Connections closed for a protocol error.",
                &self.protocol_errors,
            ),
            (
                "haze_auth_failures_total",
                "Connections and requests refused for want of a valid token or certificate, or of a right.",
                &self.auth_failures,
            ),
            (
                "haze_task_panics_total",
                "Tasks of the node that panicked (a bug; the log has each message).",
                &self.task_panics,
            ),
            (
                "haze_timeouts_total",
                "Connections closed for idleness or a slow handshake.",
                &self.timeouts,
            ),
            (
                "haze_stalled_readers_total",
                "Connections cut off because their client did not read its responses (of haze_timeouts_total).",
                &self.stalled_readers,
            ),
            (
                "haze_forwarded_total",
                "Requests sent on to another node of the cluster.",
                &self.forwarded,
            ),
            (
                "haze_failovers_total",
                "Times a replica did not answer and the next one was tried.",
                &self.failovers,
            ),
            (
                "haze_copies_failed_total",
                "Copies of writes to other replicas that failed (anti-entropy heals them).",
                &*self.copies_failed,
            ),
            (
                "haze_anti_entropy_rounds_total",
                "Anti-entropy rounds completed.",
                &self.anti_entropy_rounds,
            ),
            (
                "haze_anti_entropy_pushed_total",
                "Keys anti-entropy sent to other replicas.",
                &self.anti_entropy_pushed,
            ),
            (
                "haze_anti_entropy_pulled_total",
                "Keys anti-entropy took from other replicas.",
                &self.anti_entropy_pulled,
            ),
            (
                "haze_read_repairs_total",
                "Replicas repaired by merged reads.",
                &self.read_repairs,
            ),
            (
                "haze_handoff_streams",
                "Partition streams this node is sending now.",
                &self.handoff_streams,
            ),
            (
                "haze_handoff_keys_total",
                "Keys streamed to partitions' new replicas.",
                &self.handoff_keys,
            ),
            (
                "haze_handoff_bytes_total",
                "Bytes streamed to partitions' new replicas.",
                &self.handoff_bytes,
            ),
            (
                "haze_handoff_passes_total",
                "Stream passes started (a failed pass starts over).",
                &self.handoff_passes,
            ),
            (
                "haze_handoff_forwarded_total",
                "Writes forwarded to a partition's new replica while it streams.",
                &self.handoff_forwarded,
            ),
            (
                "haze_handoff_forward_failures_total",
                "Forwarded writes that failed (the stream makes another pass).",
                &self.handoff_forward_failures,
            ),
            (
                "haze_partitions_deleted_total",
                "Partitions deleted after they moved away.",
                &self.partitions_deleted,
            ),
            (
                "haze_keys_deleted_total",
                "Keys deleted with partitions that moved away.",
                &self.keys_deleted,
            ),
        ] {
            let kind = if name == "haze_connections_open" || name == "haze_handoff_streams" {
                "gauge"
            } else {
                "counter"
            };
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                get(value)
            );
        }
        out
    }
}

/// Renders a histogram whose bounds and sum are in microseconds, as seconds.
fn histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[u64],
    buckets: &[AtomicU64],
    micros_sum: u64,
) {
    scaled_histogram(out, name, labels, bounds, buckets, micros_sum, 1e6);
}

/// Renders a histogram, dividing its bounds and sum by `scale`.
fn scaled_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[u64],
    buckets: &[AtomicU64],
    sum: u64,
    scale: f64,
) {
    let mut cumulative = 0;
    for (i, bucket) in buckets.iter().enumerate() {
        cumulative += bucket.load(Ordering::Relaxed);
        let le = bounds
            .get(i)
            .map_or("+Inf".to_string(), |b| format!("{}", *b as f64 / scale));
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
    }
    let labels = labels.trim_end_matches(',');
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", sum as f64 / scale);
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}
