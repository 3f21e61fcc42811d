//! The simulated cluster's nodes: turmoil hosts running `haze_node::serve` over simulated TCP,
//! each on its own simulated disk, polling an in-process controller as `haze serve
//! --controller` polls the real one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haze_client::ClientConfig;
use haze_controller::api::{Registered, SeenRequest, Status};
use haze_crdt::ActorId;
use haze_node::cluster::{AckPolicy, ControlError, ControlPlane, Registration};
use haze_node::{Node, NodeConfig, ReadQuorum};
use haze_protocol::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::disk::SimDisk;
use crate::net::{SimClock, SimDial, SimListener};

pub const PORT: u16 = 7700;

pub fn host(id: u64) -> String {
    format!("n{id}")
}

/// What the hosts share with the harness: the controller, whether it is up, who is cut off
/// from it, stale answers waiting to be delivered, and the simulated time in milliseconds.
#[derive(Clone)]
pub struct Shared {
    pub control: Arc<Mutex<Control>>,
    pub up: Arc<AtomicBool>,
    pub cut: Arc<Mutex<BTreeSet<u64>>>,
    pub stale: Arc<Mutex<BTreeMap<u64, Status>>>,
    /// The epoch each node last reported having.
    pub epochs: Arc<Mutex<BTreeMap<u64, u64>>>,
    pub now_ms: Arc<AtomicU64>,
}

impl Shared {
    pub fn new(mut control: Control) -> Shared {
        if let Some(c) = secure() {
            control.admit(&c.token);
        }
        Shared {
            control: Arc::new(Mutex::new(control)),
            up: Arc::new(AtomicBool::new(true)),
            cut: Arc::default(),
            stale: Arc::default(),
            epochs: Arc::default(),
            now_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().expect("not poisoned")
    }

    /// Whether node `id` can reach the controller now.
    fn reaches(&self, id: u64) -> bool {
        self.up.load(Ordering::SeqCst) && !self.cut.lock().expect("not poisoned").contains(&id)
    }
}

/// Node `id`'s side of the controller's API, in the simulation's process: what `haze serve
/// --controller` does over HTTP, so that every node runs the real loop that follows the
/// controller (`haze_node::cluster::join`). A node cut off from the controller, or one whose
/// controller is down, hears "unreachable"; a long poll waits (in simulated time) until the
/// state changes, as the controller's does.
struct SimPlane {
    shared: Shared,
    id: u64,
}

fn unreachable() -> ControlError {
    ControlError::Unreachable("the controller is down, or cut off from this node".into())
}

impl ControlPlane for SimPlane {
    fn register<'a>(
        &'a self,
        advertise: &'a str,
    ) -> BoxFuture<'a, Result<Registered, ControlError>> {
        Box::pin(async move {
            if !self.shared.reaches(self.id) {
                return Err(unreachable());
            }
            // As the controller does: an address it knows keeps its id; one it released (a
            // removed node started again) registers afresh, on standby.
            let mut control = self.shared.control();
            let node = control.register(advertise);
            let standby = control
                .state
                .members()
                .get(&node)
                .is_some_and(|m| m.state == haze_controller::MemberState::Standby);
            Ok(Registered {
                node,
                cluster: control.state.cluster,
                standby,
            })
        })
    }

    fn seen<'a>(&'a self, report: &'a SeenRequest) -> BoxFuture<'a, Result<Status, ControlError>> {
        Box::pin(async move {
            // A long-delayed answer of the controller, left by the harness: delivered now.
            if let Some(stale) = self
                .shared
                .stale
                .lock()
                .expect("not poisoned")
                .remove(&self.id)
            {
                return Ok(stale);
            }
            if !self.shared.reaches(self.id) {
                return Err(unreachable());
            }
            if let Some(epoch) = report.epoch {
                self.shared
                    .epochs
                    .lock()
                    .expect("not poisoned")
                    .insert(self.id, epoch);
            }
            let now = self.shared.now_ms.load(Ordering::SeqCst);
            let status = self
                .shared
                .control()
                .seen(report, now)
                .ok_or(ControlError::Refused {
                    code: "unknown_node".into(),
                    message: report.node.to_string(),
                })?;
            let wait = report.wait_ms.unwrap_or(0).min(LONG_POLL_MAX_MS);
            if report.known != status.version || wait == 0 {
                return Ok(status);
            }
            let until = tokio::time::Instant::now() + Duration::from_millis(wait);
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(LONG_POLL_STEP).await;
                if !self.shared.reaches(self.id) {
                    return Err(unreachable());
                }
                let control = self.shared.control();
                if Some(control.version) != status.version {
                    return Ok(control.status());
                }
            }
            Ok(status)
        })
    }
}

/// The longest a long poll is held: the controller's cap (a quarter of `dead_after`).
const LONG_POLL_MAX_MS: u64 = crate::schedule::DEAD_AFTER_MS / 4;
/// How often a held long poll looks for a change of state.
const LONG_POLL_STEP: Duration = Duration::from_millis(50);

/// The disk of every node, by id (index `id - 1`): a crash keeps it, a wipe or a power loss
/// replaces it.
pub type Disks = Vec<Arc<Mutex<Arc<SimDisk>>>>;

pub fn disks(count: usize) -> Disks {
    (0..count)
        .map(|_| Arc::new(Mutex::new(Arc::new(SimDisk::new()))))
        .collect()
}

/// The read quorum of the nodes of the runs that start from now on (default: a majority). The
/// simulations run one at a time (`exclusive`), so a test may set it for its runs.
static READ_QUORUM: Mutex<ReadQuorum> = Mutex::new(ReadQuorum::Majority);

/// Sets the read quorum of the runs that start from now on.
pub fn set_read_quorum(quorum: ReadQuorum) {
    *READ_QUORUM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = quorum;
}

/// Whether the runs starting now are secure ([`set_secure`]).
static SECURE: Mutex<bool> = Mutex::new(false);

/// The credentials of secure runs, made once per process.
static CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// A secure run's credentials: a CA made for the run and one node certificate naming every
/// host, an admin token in the controller's table.
pub struct Credentials {
    /// Holds the certificate files while the process runs.
    _dir: tempfile::TempDir,
    server: Arc<haze_tls::rustls::ServerConfig>,
    peer: Arc<haze_tls::rustls::ClientConfig>,
    client: Arc<haze_tls::rustls::ClientConfig>,
    /// The clients' token.
    pub token: String,
}

impl Credentials {
    // rustls checks certificates against the real clock, so they are made on it.
    #[allow(clippy::disallowed_methods)]
    fn make() -> Credentials {
        use haze_tls::generate;
        let dir = tempfile::tempdir().expect("a temporary folder");
        let now = std::time::SystemTime::now();
        generate::init_ca(dir.path(), now).expect("a CA");
        let names: Vec<String> = (1..=16).map(host).collect();
        let cert = generate::issue(
            dir.path(),
            haze_tls::IdentityKind::Node,
            "sim",
            &names,
            generate::LEAF_DAYS,
            now,
        )
        .expect("a node certificate");
        let ca = dir.path().join(generate::CA_CERT);
        Credentials {
            server: haze_tls::server_config(
                &cert.cert,
                &cert.key,
                Some(&ca),
                haze_tls::ClientAuth::Optional,
            )
            .expect("a server configuration"),
            peer: haze_tls::client_config(Some(&ca), Some((&cert.cert, &cert.key)))
                .expect("a peer configuration"),
            client: haze_tls::client_config(Some(&ca), None).expect("a client configuration"),
            token: format!("haze_{}", "5a".repeat(32)),
            _dir: dir,
        }
    }
}

/// Makes the runs starting now secure (TLS on every connection, node certificates between
/// nodes, clients' tokens required) or not.
pub fn set_secure(on: bool) {
    *SECURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = on;
}

/// The credentials of the runs starting now, if they are secure.
pub fn secure() -> Option<&'static Credentials> {
    let on = *SECURE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    on.then(|| CREDENTIALS.get_or_init(Credentials::make))
}

/// The read quorum of the runs starting now.
pub fn read_quorum() -> ReadQuorum {
    *READ_QUORUM
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adds a host for each node `1..=disks.len()`: a node over its disk with quorum
/// acknowledgements and the read quorum of [`read_quorum`], inline writes (only the simulation schedules work), anti-entropy every
/// 2 s, following the controller with the node's own loop. Every start takes a fresh actor id,
/// as `haze serve` does.
pub fn add_hosts(sim: &mut turmoil::Sim<'_>, disks: &Disks, shared: &Shared) {
    let starts = Arc::new(AtomicU64::new(0));
    let read_quorum = read_quorum();
    let secure = secure();
    // The nodes' refill markers: files, which survive crashes and power losses (the hosts
    // hold the folder until the simulation ends).
    let markers = Arc::new(tempfile::tempdir().expect("a temporary folder"));
    for (i, slot) in disks.iter().enumerate() {
        let (slot, starts, shared) = (slot.clone(), starts.clone(), shared.clone());
        let id = i as u64 + 1;
        let markers = markers.clone();
        sim.host(host(id), move || {
            let store = slot.lock().expect("not poisoned").clone();
            let shared = shared.clone();
            let actor = ActorId::new(0x5100 + starts.fetch_add(1, Ordering::SeqCst));
            let refill_marker = Some(markers.path().join(format!("n{id}.refilling")));
            async move {
                let security = match secure {
                    Some(c) => haze_node::Security {
                        tls: Some(c.server.clone()),
                        peer_tls: Some(c.peer.clone()),
                        require_tokens: true,
                        ..haze_node::Security::default()
                    },
                    None => haze_node::Security::default(),
                };
                let config = NodeConfig {
                    security,
                    ack: AckPolicy::Quorum,
                    read_quorum,
                    refill_marker,
                    inline_writes: true,
                    dial: Arc::new(SimDial),
                    forward_timeout: Duration::from_millis(500),
                    anti_entropy_interval: Duration::from_secs(2),
                    ..NodeConfig::default()
                };
                let node = Node::start(config, store, actor, Arc::new(SimClock))?;
                let plane = SimPlane { shared, id };
                node.cluster().join(
                    Arc::new(plane),
                    Registration {
                        advertise: format!("{}:{PORT}", host(id)),
                    },
                );
                node.cluster().start_anti_entropy();
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let shutdown = CancellationToken::new();
                haze_node::serve(
                    node,
                    SimListener(listener),
                    None::<tokio::net::TcpListener>,
                    shutdown,
                )
                .await?;
                Ok(())
            }
        });
    }
}

/// A simulation of `seed` lasting at most `duration` (simulated), with 1–10 ms between hosts.
pub fn simulation<'a>(seed: u64, duration: Duration) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .simulation_duration(duration)
        .epoch(std::time::UNIX_EPOCH + Duration::from_secs(1_790_000_000))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(10))
        .rng_seed(seed)
        .build()
}

/// Steps `sim` until its clients are done; a failed step fails the seed.
pub fn run_to_end(
    sim: &mut turmoil::Sim<'_>,
    seed: u64,
    mut between: impl FnMut(&mut turmoil::Sim<'_>),
) {
    loop {
        between(sim);
        match sim.step() {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => panic!("seed {seed}: the simulation failed: {e}"),
        }
    }
}

/// The workload's client settings: every request has a deadline, and a connection is opened
/// again after a failure.
pub fn client_config() -> ClientConfig {
    let (dial, token): (Arc<dyn haze_protocol::Dial>, _) = match secure() {
        Some(c) => (
            Arc::new(haze_tls::TlsDial::new(Arc::new(SimDial), c.client.clone())),
            Some(c.token.clone()),
        ),
        None => (Arc::new(SimDial), None),
    };
    ClientConfig {
        dial,
        token,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        ..ClientConfig::default()
    }
}
