//! Reads that never go back in time: a three-node cluster of real processes (N = 3, writes
//! acknowledged by a majority) whose nodes are killed (SIGKILL) and restarted in turn under a
//! workload of set additions and reads through every node. Anti-entropy is slowed to once in ten
//! minutes, so a restarted node still misses what was added while it was down: only the read
//! quorum keeps reads from going back in time. The same workload with `--read-quorum 1` is the
//! control: there reads do miss acknowledged additions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use haze_client::{Client, ClientConfig, Scalar};
use haze_crdt::OrSet;

use crate::harness::{HAZE, Process, cluster_ok, pause};

/// Keys the workload adds to and reads.
const KEYS: usize = 6;

/// What a run tried and what its reads found.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    adds_acked: usize,
    adds_failed: usize,
    reads: usize,
    reads_failed: usize,
    /// Reads that missed a member whose addition was acknowledged before they began.
    stale: usize,
    /// The first read that failed, and why.
    first_failure: Option<String>,
}

/// The workload's history: each key's acknowledged members, and clients to every node.
struct Workload {
    runtime: tokio::runtime::Runtime,
    clients: Vec<Client>,
    acked: BTreeMap<String, BTreeSet<String>>,
    next: usize,
    tally: Tally,
}

impl Workload {
    /// Adds a new member to every key through the nodes `up` (in turn), then reads every key
    /// through every node `up`.
    fn round(&mut self, up: &[usize]) {
        for k in 0..KEYS {
            let key = format!("quorum:set:{k}");
            let member = format!("m{}", self.next);
            let via = &self.clients[up[self.next % up.len()]];
            self.next += 1;
            match self
                .runtime
                .block_on(via.set_add(&key, [Scalar::from(member.as_str())]))
            {
                Ok(_) => {
                    self.acked.entry(key).or_default().insert(member);
                    self.tally.adds_acked += 1;
                }
                Err(_) => self.tally.adds_failed += 1,
            }
        }
        for k in 0..KEYS {
            let key = format!("quorum:set:{k}");
            for &n in up {
                // The writes acknowledged before the read begins: each of them must be found.
                let before = self.acked.get(&key).cloned().unwrap_or_default();
                let read = self
                    .runtime
                    .block_on(self.clients[n].get_typed::<OrSet<Scalar>>(key.as_str()));
                match read {
                    Ok(found) => {
                        self.tally.reads += 1;
                        let found = found.unwrap_or_default();
                        if before
                            .iter()
                            .any(|m| !found.contains(&Scalar::from(m.as_str())))
                        {
                            self.tally.stale += 1;
                        }
                    }
                    Err(e) => {
                        self.tally.reads_failed += 1;
                        if self.tally.first_failure.is_none() {
                            self.tally.first_failure =
                                Some(format!("read of {key} via node {}: {e}", n + 1));
                        }
                    }
                }
            }
        }
    }
}

/// Runs the workload on a new cluster whose nodes read with `--read-quorum read_quorum`: each
/// node in turn is killed (SIGKILL), the others go on, it restarts on its disk, and every node
/// is read at once.
fn run(dir: &Path, read_quorum: &str) -> Tally {
    let flags = [
        "--anti-entropy-ms",
        "600000",
        "--forward-timeout-ms",
        "1000",
        "--read-quorum",
        read_quorum,
    ];
    let (controller, nodes) = HAZE.cluster(dir, 3, &[], &flags);
    let mut nodes: Vec<Option<Process>> = nodes.into_iter().map(Some).collect();
    cluster_ok(&controller.addr, &["add", "n1", "n2", "n3"]);
    for node in nodes.iter().flatten() {
        node.wait_for_log("cluster view installed");
    }
    // New nodes (registered on standby) have nothing to refill: they answer reads at once.
    let addrs: Vec<String> = nodes.iter().flatten().map(|n| n.addr.clone()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let clients = {
        let _entered = runtime.enter();
        addrs
            .iter()
            .map(|a| Client::lazy(a, config.clone()))
            .collect()
    };
    let mut work = Workload {
        runtime,
        clients,
        acked: BTreeMap::new(),
        next: 0,
        tally: Tally::default(),
    };
    let all = [0, 1, 2];
    work.round(&all);
    for victim in all {
        nodes[victim].take().expect("running").kill();
        work.tally.kills += 1;
        let up: Vec<usize> = all.into_iter().filter(|n| *n != victim).collect();
        for _ in 0..3 {
            work.round(&up);
        }
        let mut node_flags = vec!["--controller", controller.addr.as_str()];
        node_flags.extend(flags);
        let back = HAZE.serve_at(
            &dir.join(format!("node{}", victim + 1)),
            &addrs[victim],
            &node_flags,
        );
        back.wait_for_log("cluster view installed");
        nodes[victim] = Some(back);
        // Back on its disk, it misses what was added while it was down.
        work.round(&all);
        // The others connect to it again (a peer that failed is not dialled for 500 ms) before
        // the next one goes down.
        pause(600);
        work.round(&all);
    }
    for node in nodes.into_iter().flatten() {
        node.kill();
    }
    drop(controller);
    work.tally
}

#[test]
fn reads_through_every_node_never_miss_an_acknowledged_add_while_nodes_restart() {
    let dir = tempfile::tempdir().unwrap();
    let tally = run(&dir.path().join("majority"), "majority");
    println!(
        "read quorum majority (N = 3): {} kills and restarts, {} adds acknowledged ({} failed), \
         {} reads through every node ({} failed), {} missed an acknowledged add",
        tally.kills,
        tally.adds_acked,
        tally.adds_failed,
        tally.reads,
        tally.reads_failed,
        tally.stale
    );
    assert!(tally.adds_acked > 50, "the workload ran: {tally:?}");
    assert!(tally.reads > 100, "the workload read: {tally:?}");
    assert_eq!(tally.stale, 0, "reads went back in time: {tally:?}");
    // The control: the same with reads of one replica.
    let one = run(&dir.path().join("one"), "1");
    println!(
        "read quorum 1 (the control): {} kills and restarts, {} adds acknowledged ({} failed), \
         {} reads ({} failed), {} missed an acknowledged add",
        one.kills, one.adds_acked, one.adds_failed, one.reads, one.reads_failed, one.stale
    );
    // A restarted node answers alone for the keys it is primary of (every key has one among
    // the three): the workload sees what the read quorum prevents.
    assert!(
        one.stale > 0,
        "the control saw no read go back in time: {one:?}"
    );
}

#[test]
fn haze_serve_refuses_a_read_quorum_of_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = crate::harness::serve_command(dir.path())
        .args(["--read-quorum", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid read quorum") && stderr.contains("majority"),
        "{stderr}"
    );
}

#[test]
fn a_read_quorum_above_the_replication_factor_is_reported_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    // One node: every partition has one replica, and a read quorum of 2 cannot be met.
    let (controller, nodes) = HAZE.cluster(dir.path(), 1, &[], &["--read-quorum", "2"]);
    cluster_ok(&controller.addr, &["add", "n1"]);
    let line = nodes[0].wait_for_log("the read quorum cannot be met");
    assert!(
        line.contains("larger than the cluster's replication factor 1"),
        "{line}"
    );
    // Reads then need every replica of a key: here, the one.
    crate::harness::ok(&nodes[0], &["set", "add", "cart", "apple"]);
    assert_eq!(
        crate::harness::ok(&nodes[0], &["set", "members", "cart"]),
        "apple\n"
    );
}
