//! A real network that fails: three nodes on three hosts (network namespaces on a bridge, see
//! `hosts.rs`), the controller on a fourth, a client on a fifth, the cluster secure (TLS and
//! tokens). Under a workload of set adds and counter increments from the client through all
//! three nodes, faults are applied in turn: a node's link down then up; an asymmetric partition;
//! delay; connections refused and cut mid-request; a node that accepts connections but never
//! answers. Then everything heals, and every replica's own copy must hold every acknowledged
//! write, and the replicas' digests must agree for every key.
//!
//! What crosses what:
//! - Each node listens on port 7700 of its host and advertises port 7701 of the same address,
//!   where a fault-injecting proxy (`haze_testkit::proxy`) forwards to it. Every request to a
//!   node goes through its proxy: the client's, and every other node's (forwarded writes,
//!   replica copies, quorum reads, anti-entropy), since peers dial the advertised address. The
//!   node's certificate names its host's address, so TLS verifies end to end through the proxy.
//!   Not through the proxies: the nodes' polls of the controller, and the final check, which
//!   reads each node's own copy at 7700.
//! - The proxies run in this test's process, each on a thread moved into its node's network
//!   namespace (`Hosts::enter`, setns(2) on that thread alone): their sockets are on that host,
//!   and the test switches their modes and reads their counters directly, with no process or
//!   control protocol in between. The client workload runs on a thread on the client's host
//!   the same way.
//! - Link down: `ip link set eth0 down` on a node's host; every connection to and from that
//!   host stalls, the proxies' included.
//! - Asymmetric partition, in the kernel (this kernel has no `netem`, and no iptables is used):
//!   on n1's host, a policy-routing rule sends TCP to n2's ports 7700-7701 into a blackhole
//!   route. n1 can open no connection to n2 (and those it had stall), while n2's connections to
//!   n1 work: n1's answers go to n2's ephemeral ports, which the rule does not match. The
//!   client reaches both.
//!
//! The counters are checked within bounds: an increment that failed (timeout, connection cut)
//! may or may not have been applied, so every replica's value must lie between the sum of the
//! acknowledged increments and that sum plus the failed ones. A set add that failed may or may
//! not be there; an acknowledged one must be on every replica.
//!
//! The proxies' randomness comes from one seed, printed; `HAZE_FAULT_SEED=N` sets it.
//!
//! Needs root (namespaces): skips with a message where they cannot be made, except in CI
//! (`CI=true`). Run it with `cargo test -p haze-cli --test cli net_faults -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haze_client::{Client, ClientConfig, Scalar};
use haze_crdt::{OrSet, PnCounter};
use haze_protocol::Role;
use haze_testkit::process::{Process, pause};
use haze_testkit::proxy::{Mode, Proxy, ProxyThread};

use crate::hosts::{Hosts, admin_token, certs, strs, tls_flags};

/// Hosts 1 to 3 run the nodes; then the controller's host and the client's.
const NODES: usize = 3;
const CONTROLLER: usize = 4;
const CLIENT: usize = 5;
/// Keys the workload writes: this many sets and this many counters.
const KEYS: usize = 6;
/// Workers per node (each sends one request at a time).
const WORKERS_PER_NODE: usize = 2;

/// Where node `i` listens (reached directly only by its proxy and by the final check).
fn node_addr(i: usize) -> String {
    format!("{}:7700", Hosts::addr(i))
}

/// Where node `i`'s proxy listens: the address it advertises.
fn proxy_addr(i: usize) -> String {
    format!("{}:7701", Hosts::addr(i))
}

fn set_key(k: usize) -> String {
    format!("faults:set:{k}")
}

fn counter_key(k: usize) -> String {
    format!("faults:counter:{k}")
}

fn all_keys() -> Vec<String> {
    (0..KEYS)
        .map(set_key)
        .chain((0..KEYS).map(counter_key))
        .collect()
}

/// The faults, in the order they are applied (phase 0: none yet).
const PHASES: [&str; 7] = [
    "no fault",
    "n3's link down",
    "asymmetric: n1 cannot reach n2, n2 reaches n1",
    "delay (n1 100 ms, n2 300 ms, n3 1200 ms a chunk)",
    "20% of new connections refused, every connection cut within 8 KiB",
    "n2's proxy blackholes (accepts, never answers)",
    "healed",
];

/// What the workload tried and what was acknowledged.
#[derive(Debug, Default)]
struct Ledger {
    /// Each set's members whose add was acknowledged.
    members: BTreeMap<String, BTreeSet<String>>,
    /// Each counter's acknowledged increments and failed ones (applied or not: unknown).
    increments: BTreeMap<String, (u64, u64)>,
    adds_acked: usize,
    adds_failed: usize,
    incrs_acked: usize,
    incrs_failed: usize,
    /// Per phase: writes acknowledged, writes failed.
    phases: [(usize, usize); PHASES.len()],
    /// Failures by kind (the error's text up to its first ": ").
    errors: BTreeMap<String, usize>,
}

/// The client's connection settings: TLS with the test's CA, the admin token, short waits.
fn client_config(certs: &std::path::Path, token: &str, role: Role) -> ClientConfig {
    let mut config = ClientConfig {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        role,
        token: Some(token.to_string()),
        ..ClientConfig::default()
    };
    let tls = haze_tls::client_config(Some(&certs.join("ca.pem")), None).expect("the CA loads");
    config.dial = Arc::new(haze_tls::TlsDial::new(config.dial, tls));
    config
}

/// The workload on the client's host: workers writing through every node's proxy until told to
/// stop. Dropping it stops it.
struct Workload {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    ledger: Arc<Mutex<Ledger>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Workload {
    fn start(hosts: &Hosts, config: ClientConfig) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let (s, p, l) = (stop.clone(), phase.clone(), ledger.clone());
        let thread = hosts.spawn(CLIENT, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let next = Arc::new(AtomicUsize::new(0));
                let mut workers = Vec::new();
                for node in 1..=NODES {
                    let client = Client::lazy(&proxy_addr(node), config.clone());
                    for _ in 0..WORKERS_PER_NODE {
                        workers.push(tokio::spawn(worker(
                            client.clone(),
                            next.clone(),
                            s.clone(),
                            p.clone(),
                            l.clone(),
                        )));
                    }
                }
                for w in workers {
                    w.await.unwrap();
                }
            });
        });
        Workload {
            stop,
            phase,
            ledger,
            thread: Some(thread),
        }
    }

    fn phase(&self, phase: usize) {
        println!("phase {phase}: {}", PHASES[phase]);
        self.phase.store(phase, Ordering::SeqCst);
    }

    /// Stops the workers (each finishes its request) and returns the ledger.
    fn finish(mut self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the workload ran");
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One worker: alternately a set add of a new member and a counter increment, through one node.
async fn worker(
    client: Client,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    ledger: Arc<Mutex<Ledger>>,
) {
    while !stop.load(Ordering::SeqCst) {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let at = phase.load(Ordering::SeqCst);
        let k = (n / 2) % KEYS;
        if n.is_multiple_of(2) {
            let key = set_key(k);
            let member = format!("m{n}");
            let done = client.set_add(&key, [Scalar::from(member.as_str())]).await;
            let mut l = ledger.lock().unwrap();
            match done {
                Ok(_) => {
                    l.members.entry(key).or_default().insert(member);
                    l.adds_acked += 1;
                    l.phases[at].0 += 1;
                }
                Err(e) => {
                    l.adds_failed += 1;
                    l.phases[at].1 += 1;
                    *l.errors.entry(kind(&e)).or_default() += 1;
                }
            }
        } else {
            let key = counter_key(k);
            let done = client.counter_add(&key, 1).await;
            let mut l = ledger.lock().unwrap();
            match done {
                Ok(_) => {
                    l.increments.entry(key).or_default().0 += 1;
                    l.incrs_acked += 1;
                    l.phases[at].0 += 1;
                }
                Err(e) => {
                    l.increments.entry(key).or_default().1 += 1;
                    l.incrs_failed += 1;
                    l.phases[at].1 += 1;
                    *l.errors.entry(kind(&e)).or_default() += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn kind(e: &haze_client::Error) -> String {
    let text = e.to_string();
    text.split(": ").next().unwrap_or_default().to_string()
}

/// What one node's own copy holds: each set's members, each counter's value, each key's digest.
#[derive(Debug, Default, PartialEq)]
struct Replica {
    members: BTreeMap<String, BTreeSet<String>>,
    counters: BTreeMap<String, i128>,
    digests: Vec<Option<u64>>,
}

async fn read_copy(client: &Client) -> Result<Replica, haze_client::Error> {
    let mut copy = Replica::default();
    for k in 0..KEYS {
        let set = client.get_typed::<OrSet<Scalar>>(set_key(k)).await?;
        let members = set
            .map(|s| s.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        copy.members.insert(set_key(k), members);
        let counter = client.get_typed::<PnCounter>(counter_key(k)).await?;
        copy.counters
            .insert(counter_key(k), counter.map_or(0, |c| c.value()));
    }
    let keys = all_keys().into_iter().map(String::into_bytes).collect();
    copy.digests = client.digest_batch(keys).await?;
    Ok(copy)
}

/// What the final check found, node by node.
#[derive(Debug, Default)]
struct Verdict {
    /// Acknowledged members missing from a node's copy: (node, key, member).
    lost_members: Vec<(usize, String, String)>,
    /// Counters out of bounds on a node: (node, key, value, acknowledged, failed).
    bad_counters: Vec<(usize, String, i128, u64, u64)>,
    /// Keys whose digests differ between the nodes.
    digest_mismatches: Vec<String>,
    /// Nodes that could not be read.
    unread: Vec<String>,
}

impl Verdict {
    fn holds(&self) -> bool {
        self.lost_members.is_empty()
            && self.bad_counters.is_empty()
            && self.digest_mismatches.is_empty()
            && self.unread.is_empty()
    }
}

fn judge(ledger: &Ledger, copies: &[Result<Replica, String>]) -> Verdict {
    let mut verdict = Verdict::default();
    let mut read = Vec::new();
    for (i, copy) in copies.iter().enumerate() {
        let node = i + 1;
        let copy = match copy {
            Ok(copy) => copy,
            Err(e) => {
                verdict.unread.push(format!("n{node}: {e}"));
                continue;
            }
        };
        for (key, acked) in &ledger.members {
            let held = copy.members.get(key).cloned().unwrap_or_default();
            for member in acked.difference(&held) {
                verdict
                    .lost_members
                    .push((node, key.clone(), member.clone()));
            }
        }
        for (key, &(acked, failed)) in &ledger.increments {
            let value = copy.counters.get(key).copied().unwrap_or_default();
            if value < i128::from(acked) || value > i128::from(acked + failed) {
                verdict
                    .bad_counters
                    .push((node, key.clone(), value, acked, failed));
            }
        }
        read.push(copy);
    }
    if let Some(first) = read.first() {
        for (k, key) in all_keys().iter().enumerate() {
            if read.iter().any(|c| c.digests[k] != first.digests[k]) {
                verdict.digest_mismatches.push(key.clone());
            }
        }
    }
    verdict
}

/// Whether a TCP connection from host `from` to `to` opens within 500 ms: a probe of the
/// partition in force (it reaches a proxy, which counts it, and is closed at once).
fn probe(hosts: &Hosts, from: usize, to: &str) -> Result<(), String> {
    let to: std::net::SocketAddr = to.parse().unwrap();
    hosts
        .spawn(from, move || {
            std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500))
                .map(drop)
                .map_err(|e| e.to_string())
        })
        .join()
        .unwrap()
}

/// Applies `f` to the proxies of nodes 1 to 3 with their index.
fn each(proxies: &[ProxyThread], mut f: impl FnMut(usize, &ProxyThread)) {
    for (i, p) in proxies.iter().enumerate() {
        f(i + 1, p);
    }
}

#[test]
fn acknowledged_writes_survive_partitions_delay_and_cut_connections_on_a_real_network() {
    let began = tokio::time::Instant::now();
    // Dropped last: every process and thread below is gone before the hosts are removed.
    let Some(hosts) = Hosts::create_or_skip("nf", CLIENT) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("certs");
    certs(&ca, &["init"]);
    certs(
        &ca,
        &[
            "issue",
            "node",
            "controller",
            "--ip",
            &Hosts::addr(CONTROLLER),
        ],
    );
    for i in 1..=NODES {
        certs(
            &ca,
            &["issue", "node", &format!("n{i}"), "--ip", &Hosts::addr(i)],
        );
    }
    let seed = std::env::var("HAZE_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| RandomState::new().hash_one(std::process::id()));
    println!("seed {seed} (HAZE_FAULT_SEED={seed} to replay the proxies' draws)");

    // The proxies first: a node advertises its proxy's address as soon as it registers.
    let proxies: Vec<ProxyThread> = (1..=NODES)
        .map(|i| {
            Proxy::spawn_thread(
                &proxy_addr(i),
                &node_addr(i),
                seed.wrapping_add(i as u64),
                hosts.enter(i),
            )
            .expect("a proxy on the node's host")
        })
        .collect();

    let data = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let controller_addr = format!("{}:7600", Hosts::addr(CONTROLLER));
    let controller_data = data("controller");
    // Outages here last seconds: no node is taken for dead (and nothing moves) during them.
    let mut args = vec![
        "controller",
        "--listen",
        &controller_addr,
        "--partitions",
        "16",
        "--dead-after-secs",
        "60",
        "--data",
        &controller_data,
    ];
    let flags = tls_flags(&ca, "controller");
    args.extend(strs(&flags));
    let controller = Process::launch(hosts.haze(CONTROLLER, &args), "haze controller ready");
    let token = admin_token(&dir.path().join("controller"));
    let mut nodes = Vec::new();
    for i in 1..=NODES {
        let (listen, advertise) = (node_addr(i), proxy_addr(i));
        let http = format!("{}:7780", Hosts::addr(i));
        let node_data = data(&format!("node{i}"));
        let mut args = vec![
            "serve",
            "--listen",
            &listen,
            "--advertise",
            &advertise,
            "--http",
            &http,
            "--controller",
            &controller_addr,
            "--data",
            &node_data,
            "--anti-entropy-ms",
            "300",
            "--forward-timeout-ms",
            "1000",
        ];
        let flags = tls_flags(&ca, &format!("n{i}"));
        args.extend(strs(&flags));
        let node = Process::launch(hosts.haze(i, &args), "haze node ready");
        node.wait_for_log("registered with the controller");
        nodes.push(node);
    }
    let added = hosts
        .haze(
            CLIENT,
            &[
                "cluster",
                "add",
                "n1",
                "n2",
                "n3",
                "--wait",
                "--controller",
                &controller_addr,
            ],
        )
        .env("HAZE_TLS_CA", ca.join("ca.pem"))
        .env("HAZE_TOKEN", &token)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success() && said.contains("done: epoch"),
        "{said}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    for node in &nodes {
        node.wait_for_log("cluster view installed");
    }
    println!(
        "cluster of 3 on {}, {}, {} (proxies on :7701 advertised), controller on {}, client on \
         {}: started in {:.1?}",
        Hosts::addr(1),
        Hosts::addr(2),
        Hosts::addr(3),
        Hosts::addr(CONTROLLER),
        Hosts::addr(CLIENT),
        began.elapsed()
    );

    let workload_began = tokio::time::Instant::now();
    let work = Workload::start(&hosts, client_config(&ca, &token, Role::Client));
    work.phase(0);
    pause(3000);

    // (a) n3's link down, then up.
    work.phase(1);
    hosts.ip(3, &["link", "set", "eth0", "down"]);
    let cut_off = probe(&hosts, CLIENT, &proxy_addr(3)).expect_err("n3 is cut off");
    println!("  probe: client to n3: {cut_off}");
    pause(6000);
    hosts.ip(3, &["link", "set", "eth0", "up"]);
    pause(3000);

    // (b) Asymmetric: on n1's host, TCP to n2's ports goes nowhere; n2 still reaches n1.
    work.phase(2);
    let n2 = format!("{}/32", Hosts::addr(2));
    let rule = [
        "rule",
        "add",
        "to",
        n2.as_str(),
        "ipproto",
        "tcp",
        "dport",
        "7700-7701",
        "table",
        "100",
        "prio",
        "100",
    ];
    hosts.ip(1, &rule);
    hosts.ip(1, &["route", "add", "blackhole", &n2, "table", "100"]);
    let one_way = probe(&hosts, 1, &proxy_addr(2)).expect_err("n1 cannot reach n2");
    probe(&hosts, 2, &proxy_addr(1)).expect("n2 reaches n1");
    probe(&hosts, CLIENT, &proxy_addr(2)).expect("the client reaches n2");
    println!("  probe: n1 to n2: {one_way}; n2 to n1 and client to n2: connected");
    pause(6000);
    hosts.ip(1, &["rule", "del", "prio", "100"]);
    hosts.ip(1, &["route", "flush", "table", "100"]);
    pause(3000);

    // (c) Delay: each chunk held, longer than the forward timeout on n3.
    work.phase(3);
    for (i, ms) in [(0, 100), (1, 300), (2, 1200)] {
        proxies[i].set(Mode::Delay(Duration::from_millis(ms)));
    }
    pause(6000);
    each(&proxies, |_, p| p.set(Mode::Pass));
    pause(3000);

    // (d) Connections refused, and cut mid-request.
    work.phase(4);
    each(&proxies, |_, p| {
        p.set(Mode::Cut {
            refuse: 0.2,
            within: 8192,
        });
    });
    pause(6000);
    each(&proxies, |_, p| p.set(Mode::Pass));
    pause(3000);

    // (e) A node that accepts connections and never answers.
    work.phase(5);
    proxies[1].set(Mode::Blackhole);
    pause(5000);
    proxies[1].set(Mode::Pass);

    // Healed: the workload goes on a little, then stops.
    work.phase(6);
    pause(3000);
    let ledger = work.finish();
    let worked_for = workload_began.elapsed();

    for (i, (name, (acked, failed))) in PHASES.iter().zip(ledger.phases).enumerate() {
        println!("phase {i} ({name}): {acked} writes acknowledged, {failed} failed");
    }
    println!(
        "workload through n1, n2, n3 ({WORKERS_PER_NODE} workers each): {} set adds \
         acknowledged, {} failed (indeterminate); {} counter increments acknowledged, {} failed \
         (indeterminate)",
        ledger.adds_acked, ledger.adds_failed, ledger.incrs_acked, ledger.incrs_failed
    );
    println!("failures by kind: {:?}", ledger.errors);
    each(&proxies, |i, p| {
        println!("proxy of n{i} (seed {}): {}", p.seed(), p.stats());
    });
    let stats: Vec<_> = proxies.iter().map(|p| p.stats()).collect();
    assert!(
        stats.iter().any(|s| s.cut > 0) && stats.iter().any(|s| s.refused > 0),
        "the proxies cut and refused connections: {stats:?}"
    );
    assert!(
        stats.iter().all(|s| s.delayed_chunks > 0) && stats[1].blackholed_bytes > 0,
        "the proxies delayed and blackholed: {stats:?}"
    );
    assert!(
        ledger.adds_acked > 100 && ledger.incrs_acked > 100,
        "the workload ran: {ledger:?}"
    );
    for (i, (_, (acked, _))) in PHASES.iter().zip(ledger.phases).enumerate() {
        // Every fault leaves a majority that serves some writes.
        assert!(acked > 0, "no write acknowledged in phase {i}: {ledger:?}");
    }

    // Every replica's own copy, read directly (not through the proxies) from the client's host,
    // until anti-entropy has made them equal (or 30 s passed).
    let local = client_config(&ca, &token, Role::Local);
    let ledger = Arc::new(ledger);
    let check = ledger.clone();
    let (verdict, waited) = hosts
        .spawn(CLIENT, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let clients: Vec<Client> = (1..=NODES)
                    .map(|i| Client::lazy(&node_addr(i), local.clone()))
                    .collect();
                let start = tokio::time::Instant::now();
                loop {
                    let mut copies = Vec::new();
                    for c in &clients {
                        copies.push(read_copy(c).await.map_err(|e| e.to_string()));
                    }
                    let verdict = judge(&check, &copies);
                    if verdict.holds() || start.elapsed() > Duration::from_secs(30) {
                        return (verdict, start.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        })
        .join()
        .expect("the check ran");
    let lost = verdict.lost_members.len();
    println!(
        "healed: after {waited:.1?}, on each of n1, n2, n3's own copy: {lost} of {} acknowledged \
         set members lost, {} counters out of bounds (acknowledged <= value <= acknowledged + \
         failed), {} of {} keys with digests that differ, {} nodes unread; workload and faults \
         {worked_for:.1?}, whole test {:.1?}",
        ledger.adds_acked,
        verdict.bad_counters.len(),
        verdict.digest_mismatches.len(),
        KEYS * 2,
        verdict.unread.len(),
        began.elapsed()
    );
    assert!(
        verdict.holds(),
        "after healing, lost (first 10 of {lost}): {:?}; counters out of bounds (node, key, \
         value, acknowledged, failed): {:?}; digests differ: {:?}; unread: {:?}",
        &verdict.lost_members[..lost.min(10)],
        verdict.bad_counters,
        verdict.digest_mismatches,
        verdict.unread
    );
    drop(nodes);
    drop(controller);
    drop(proxies);
}

/// The check itself, on made-up copies: a member missing from one node, a counter above its
/// bounds on another, a digest that differs, a node that could not be read: each is found.
#[test]
fn the_final_check_finds_lost_members_counters_out_of_bounds_and_differing_digests() {
    let mut ledger = Ledger::default();
    ledger
        .members
        .insert(set_key(0), ["m0".to_string(), "m2".to_string()].into());
    ledger.increments.insert(counter_key(0), (5, 2));
    let copy = |members: &[&str], counter: i128, digest: u64| Replica {
        members: [(
            set_key(0),
            members.iter().map(ToString::to_string).collect(),
        )]
        .into(),
        counters: [(counter_key(0), counter)].into(),
        digests: vec![Some(digest); KEYS * 2],
    };
    let good = || Ok(copy(&["m0", "m2", "m4"], 6, 1));
    let verdict = judge(&ledger, &[good(), good(), good()]);
    assert!(verdict.holds(), "{verdict:?}");
    let verdict = judge(
        &ledger,
        &[
            good(),
            Ok(copy(&["m0"], 8, 1)),
            Ok(copy(&["m0", "m2"], 4, 2)),
        ],
    );
    assert_eq!(
        verdict.lost_members,
        [(2, set_key(0), "m2".to_string())],
        "{verdict:?}"
    );
    assert_eq!(verdict.bad_counters.len(), 2, "{verdict:?}");
    assert_eq!(verdict.digest_mismatches.len(), KEYS * 2, "{verdict:?}");
    let verdict = judge(&ledger, &[good(), good(), Err("timeout".into())]);
    assert!(!verdict.holds() && verdict.unread.len() == 1, "{verdict:?}");
}
