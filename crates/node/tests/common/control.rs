//! A controller in the test's process: the real state machine of `haze-controller`, polled by
//! calling it, as `haze serve --controller` polls it over HTTP (`haze-cli`'s `join.rs`).

#![allow(
    dead_code,
    reason = "each test binary that includes this uses a part of it"
)]

use std::sync::Arc;

use haze_controller::api::SeenRequest;
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
        let now = now_ms.saturating_sub(self.started_ms);
        let change = self.state.transition().map(|t| t.change);
        self.tracker.record(&report, change, now);
        let changed = self
            .state
            .advance(&mut self.tracker, now, &self.limits)
            .expect("the controller advances");
        if let Some(view) = self.view(id) {
            node.install_view(view);
        }
        changed
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
    }

    /// A crash and restart at the test's time `now_ms`: only what was persisted (the state,
    /// saved on every change) survives; what nodes reported is forgotten.
    pub fn restart(&mut self, now_ms: u64) {
        let saved = serde_json::to_vec(&self.state).unwrap();
        self.state = serde_json::from_slice(&saved).unwrap();
        self.tracker = Tracker::default();
        self.started_ms = now_ms;
    }

    /// Returns whether no change runs or waits.
    pub fn idle(&self) -> bool {
        self.state.transition().is_none() && self.state.queued().next().is_none()
    }
}
