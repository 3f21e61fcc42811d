//! A controller in the test's process: the real state machine of `haze-controller`, polled by
//! calling it, as `haze serve --controller` polls it over HTTP (`haze-cli`'s `join.rs`).

#![allow(
    dead_code,
    reason = "each test binary that includes this uses a part of it"
)]

use std::sync::Arc;

use haze_controller::api::{SeenRequest, Status};
use haze_controller::{Change, ClusterId, ControllerState, MoveLimits, Tracker};
use haze_node::Node;
use haze_node::cluster::ClusterView;
use haze_ring::NodeId;

/// The controller's state, what nodes told it, and its clock (restarted with it).
pub struct Control {
    pub state: ControllerState,
    pub tracker: Tracker,
    pub limits: MoveLimits,
    /// The test's time at which this controller (re)started: its clock counts from there.
    started_ms: u64,
    /// What the moves went through, counted as the controller decided it.
    pub events: MoveEvents,
    /// Every (change, partition, note) counted in `events`.
    noted: std::collections::BTreeSet<(u64, u32, String)>,
    /// Grows with every change of the state: what a node that has the current state sends
    /// back to wait for the next (a long poll).
    pub version: u64,
}

/// What happened to moves beyond the plan: how the controller reacted to nodes that stopped
/// answering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveEvents {
    /// Streams given another source (theirs was down).
    pub sources_replaced: u64,
    /// Streams given another receiving node (theirs was down).
    pub receivers_replaced: u64,
    /// Moves rolled back (a receiver down and no other node to take its replica).
    pub rolled_back: u64,
}

impl Control {
    /// A cluster of `partitions` × `replicas` whose members are `addrs` (ids 1, 2, …), the first
    /// `active` of them holding partitions.
    pub fn new(
        cluster: u64,
        partitions: u32,
        replicas: usize,
        addrs: &[String],
        active: usize,
        limits: MoveLimits,
    ) -> Control {
        let mut state = ControllerState::new(ClusterId(cluster), partitions, replicas).unwrap();
        for addr in addrs {
            state.register(addr).unwrap();
        }
        let add = (1..=active as u64).map(NodeId).collect();
        state
            .carry_out(
                Change {
                    add,
                    remove: vec![],
                },
                limits.rate,
            )
            .unwrap();
        Control {
            state,
            tracker: Tracker::default(),
            limits,
            started_ms: 0,
            events: MoveEvents::default(),
            noted: std::collections::BTreeSet::new(),
            version: 1,
        }
    }

    /// One poll of node `id` at the test's time `now_ms`: its report, the controller's
    /// advance, the view it installs. Returns whether the state changed.
    pub fn poll(&mut self, node: &Arc<Node>, id: NodeId, now_ms: u64) -> bool {
        if !self.state.members().contains_key(&id) {
            return false; // released
        }
        let (streams, cleaned) = node.handoff_reports();
        let report = SeenRequest {
            node: id,
            epoch: node.view().map(|v| v.table.epoch().0),
            streams,
            cleaned,
            known: None,
            wait_ms: None,
        };
        let changed = self.record_and_advance(&report, now_ms);
        if let Some(view) = self.view(id) {
            node.install_view(view);
        }
        changed
    }

    /// Records a node's report at the test's time `now_ms` and advances; counts what the
    /// advance did to moves. Returns whether the state changed (its version grows then).
    fn record_and_advance(&mut self, report: &SeenRequest, now_ms: u64) -> bool {
        let now = now_ms.saturating_sub(self.started_ms);
        let change = self.state.transition().map(|t| t.change);
        self.tracker.record(report, change, now);
        let before = self.state.transition().cloned();
        let changed = self
            .state
            .advance(&mut self.tracker, now, &self.limits)
            .expect("the controller advances");
        self.count_events(before);
        if changed {
            self.version += 1;
        }
        changed
    }

    /// What `POST /v1/seen` does: records node `report.node`'s report at the test's time
    /// `now_ms`, advances, and answers the state with its version; `None` for a node that is
    /// not a member (the controller answers `unknown_node`).
    pub fn seen(&mut self, report: &SeenRequest, now_ms: u64) -> Option<Status> {
        if !self.state.members().contains_key(&report.node) {
            return None;
        }
        self.record_and_advance(report, now_ms);
        Some(self.status())
    }

    /// What `POST /v1/nodes` does: the id of the node at `addr`, registered afresh (on standby)
    /// if the controller does not know the address (any more).
    pub fn register(&mut self, addr: &str) -> NodeId {
        let known = self.state.members().len();
        let id = self.state.register(addr).expect("a well-formed address");
        if self.state.members().len() != known {
            self.version += 1;
        }
        id
    }

    /// The state as a node gets it, with its version and the token table.
    pub fn status(&self) -> Status {
        let mut status = Status::of(&self.state);
        status.version = Some(self.version);
        status.tokens = Some(self.state.tokens().for_nodes());
        status
    }

    /// Adds `token` as an admin token (every key, no expiry), as `haze token create --admin`.
    #[allow(dead_code)] // the simulation's secure runs use it; other test binaries share this file
    pub fn admit(&mut self, token: &str) {
        let new = haze_controller::tokens::NewToken {
            prefixes: Vec::new(),
            rights: [haze_controller::tokens::Right::Admin]
                .into_iter()
                .collect(),
            expires_at_ms: None,
            description: "the simulation's clients".into(),
        };
        self.state
            .create_token(new, haze_controller::tokens::TokenHash::of(token), 0)
            .expect("a token");
        self.version += 1;
    }

    /// Counts what the last advance did to moves, from their notes (and, for a change that
    /// ended in that advance, from the final table: a move whose partition kept its old
    /// replicas though it planned others was rolled back).
    fn count_events(&mut self, before: Option<haze_ring::Transition>) {
        let mut fresh = Vec::new();
        let now = self.state.transition();
        if let Some(t) = now {
            for m in &t.moves {
                if let Some(note) = &m.note {
                    fresh.push((t.change, m.partition.0, note.clone()));
                }
            }
        }
        // The change that was running ended in this advance (the next queued one may have
        // started in it too).
        let ended = before.filter(|b| now.is_none_or(|t| t.change != b.change));
        match ended {
            None => {}
            Some(t) => {
                let table = self.state.table().expect("a table");
                for m in t
                    .moves
                    .iter()
                    .filter(|m| m.state < haze_ring::MoveState::Done)
                {
                    // As sets: the change's new order of replicas may still apply.
                    let set = |nodes: &[NodeId]| {
                        nodes
                            .iter()
                            .copied()
                            .collect::<std::collections::BTreeSet<_>>()
                    };
                    if set(&m.after) != set(&m.before)
                        && set(table.replicas(m.partition)) == set(&m.before)
                    {
                        fresh.push((t.change, m.partition.0, "rolled back".to_string()));
                    }
                }
            }
        }
        for (change, partition, note) in fresh {
            let kind = if note.ends_with("rolled back") {
                &mut self.events.rolled_back
            } else if note.contains("takes its replica instead") {
                &mut self.events.receivers_replaced
            } else if note.contains("instead") {
                &mut self.events.sources_replaced
            } else {
                continue;
            };
            if self.noted.insert((change, partition, note)) {
                *kind += 1;
            }
        }
    }

    /// The view the controller gives node `id`.
    pub fn view(&self, id: NodeId) -> Option<ClusterView> {
        Some(ClusterView {
            cluster: self.state.cluster.0,
            me: id,
            table: self.state.table()?.clone(),
            addrs: self
                .state
                .members()
                .iter()
                .map(|(id, m)| (*id, m.addr.clone()))
                .collect(),
            transition: self.state.transition().cloned(),
        })
    }

    /// Plans and commits a change.
    pub fn commit(&mut self, change: Change) {
        self.state.carry_out(change, self.limits.rate).unwrap();
        self.version += 1;
    }

    /// A crash and restart at the test's time `now_ms`: only what was persisted (the state,
    /// saved on every change) survives; what nodes reported is forgotten.
    pub fn restart(&mut self, now_ms: u64) {
        let saved = serde_json::to_vec(&self.state).unwrap();
        self.state = serde_json::from_slice(&saved).unwrap();
        self.tracker = Tracker::default();
        self.started_ms = now_ms;
        self.version += 1;
    }

    /// Returns whether no change runs or waits.
    pub fn idle(&self) -> bool {
        self.state.transition().is_none() && self.state.queued().next().is_none()
    }
}
