//! What a node does with a request: one pure function of the cluster view, the caller's role and
//! the operation (with its key), so that every rule of routing and of a move is in one place.
//!
//! The rules, in the order they apply:
//!
//! * A `local` connection is served from this node's store, always (diagnostics).
//! * Copies, backfills and bucket listings are for nodes only: a client's are refused.
//! * Without a view: a node that waits for its cluster's view refuses clients' (and peers'
//!   routed) data requests; a single node serves everything itself.
//! * A client's read of a key whose primary is this node, while its partition does not move and
//!   reads need one replica's answer alone (a read quorum of one), is read here (a miss is
//!   routed: another replica may hold it). Any other data request of a
//!   client is routed to the key's replicas; a client that reached a node not holding the key
//!   is told the epoch, so it refreshes its table.
//! * A peer chose this node as a replica. Its write is coordinated here if this node holds the
//!   key; passed on to the new replicas if this node is leaving the key's partition (they hold
//!   it, so it never comes back); refused with `not_replica` otherwise (the sender tries
//!   elsewhere: two nodes with tables of two epochs must never pass a write back and forth).
//!   Its reads and digests of a partition this node is leaving, once the new replicas serve, are
//!   passed on to them. Its batches and merged reads are routed (each group of keys decides as
//!   a write does). Anything else of a peer is served from this node's store.

use haze_protocol::{Request, Role};

use super::ClusterView;
use crate::error::RequestError;

/// What a request does, as far as deciding where it is served goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation<'a> {
    /// A read of a key's value (`Get`).
    Read(&'a [u8]),
    /// A read of a key's digest (`Digest`).
    Digest(&'a [u8]),
    /// A read that merges every replica's answer (`GetMerged`).
    ReadMerged(&'a [u8]),
    /// A write of a key: a merge or a typed operation.
    Write(&'a [u8]),
    /// Merges of many keys (`MergeBatch`).
    MergeBatch,
    /// Digests of many keys (`DigestBatch`).
    DigestBatch(&'a [Vec<u8>]),
    /// Digests of a named key list (`DigestList`).
    DigestList,
    /// A node's copies (`Copy`, `Backfill`).
    Copy,
    /// A node's listing of buckets and their keys (`Buckets`, `BucketKeys`).
    Buckets,
    /// Anything about the node itself (`Ping`, `Table`, `Hello`).
    Meta,
    /// Live updates between nodes (`Watch`, `Notify`).
    Live,
}

impl<'a> Operation<'a> {
    pub(crate) fn of(request: &'a Request) -> Operation<'a> {
        match request {
            Request::Get { key } => Operation::Read(key),
            Request::Digest { key } => Operation::Digest(key),
            Request::GetMerged { key } => Operation::ReadMerged(key),
            Request::Merge { key, .. } | Request::Op { key, .. } | Request::Apply { key, .. } => {
                Operation::Write(key)
            }
            Request::MergeBatch { .. } => Operation::MergeBatch,
            Request::DigestBatch { keys } => Operation::DigestBatch(keys),
            Request::DigestList { .. } => Operation::DigestList,
            Request::Copy { .. } | Request::Backfill { .. } => Operation::Copy,
            Request::Buckets | Request::BucketKeys { .. } => Operation::Buckets,
            Request::Ping | Request::Table | Request::Hello { .. } => Operation::Meta,
            Request::Watch { .. } | Request::Notify { .. } => Operation::Live,
        }
    }

    /// The key of a one-key operation.
    fn key(self) -> Option<&'a [u8]> {
        match self {
            Operation::Read(k)
            | Operation::Digest(k)
            | Operation::ReadMerged(k)
            | Operation::Write(k) => Some(k),
            _ => None,
        }
    }

    /// Whether a node of a cluster routes this operation for a client.
    fn routed(self) -> bool {
        !matches!(
            self,
            Operation::Copy | Operation::Buckets | Operation::Meta | Operation::Live
        )
    }
}

/// Where a request is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// From this node's own store.
    Local,
    /// A client's read: here, and routed if this node does not have the key.
    ReadHere,
    /// To the key's replicas, by this node's table: the first that answers coordinates a write
    /// (this node, if it comes first). `stale`: the epoch to tell a client that reached a node
    /// not holding the key.
    Route { stale: Option<u64> },
    /// Coordinated here: this node holds the key a peer sent it.
    Coordinate,
    /// A peer's routed request whose keys decide one group at a time (a batch, a merged read).
    RouteForPeer,
    /// To the partition's new replicas: this node is leaving it.
    PassOn,
    /// Refused, with why.
    Refuse(RequestError),
}

/// Decides where a request is served (see the module's rules). `view` is the node's cluster
/// view, if any; `awaiting`, whether the node belongs to a cluster (it waits for a view when it
/// has none); `read_alone`, whether one replica's answer is enough for a read (a read quorum of
/// one: the node's `ReadQuorum`).
pub(crate) fn dispose(
    view: Option<&ClusterView>,
    awaiting: bool,
    read_alone: bool,
    role: Role,
    op: &Operation<'_>,
) -> Disposition {
    let op = *op;
    let peer = matches!(role, Role::Peer { .. });
    match (role, op) {
        (Role::Client | Role::Local, Operation::Live) => {
            return refuse("watch and notify are only for node-to-node connections");
        }
        (Role::Local, _) => return Disposition::Local,
        (Role::Client, Operation::Copy) => {
            return refuse("copy and backfill are only for node-to-node and local connections");
        }
        (Role::Client, Operation::Buckets) => {
            return refuse("bucket digests are only for node-to-node and local connections");
        }
        _ => {}
    }
    let routed = if peer {
        matches!(
            op,
            Operation::Write(_) | Operation::MergeBatch | Operation::ReadMerged(_)
        )
    } else {
        op.routed()
    };
    let Some(view) = view else {
        if routed && awaiting {
            return Disposition::Refuse(RequestError::Unavailable(
                "this node has no partition table: it is waiting for its cluster's first one, \
                 or was removed from its cluster (see `haze cluster status`)"
                    .into(),
            ));
        }
        return Disposition::Local;
    };
    if peer {
        return for_peer(view, op);
    }
    match op {
        Operation::Read(key)
            if read_alone && view.replicas(key).first() == Some(&view.me) && !view.in_move(key) =>
        {
            Disposition::ReadHere
        }
        _ if routed => Disposition::Route {
            stale: op
                .key()
                .filter(|key| !view.holds(key))
                .map(|_| view.table.epoch().0),
        },
        _ => Disposition::Local,
    }
}

/// A peer's request, with a view (see the module's rules).
fn for_peer(view: &ClusterView, op: Operation<'_>) -> Disposition {
    // Passed on once the new replicas serve it: they take writes this node no longer sees.
    let passed_on = |key: &[u8]| view.departing(key) && !view.holds(key);
    match op {
        Operation::Read(key) | Operation::Digest(key)
            if view.transition.is_some() && passed_on(key) =>
        {
            Disposition::PassOn
        }
        Operation::DigestBatch(keys)
            if view.transition.is_some() && keys.iter().any(|k| passed_on(k)) =>
        {
            Disposition::PassOn
        }
        Operation::Write(key) => peer_write(view, key),
        Operation::MergeBatch | Operation::ReadMerged(_) => Disposition::RouteForPeer,
        _ => Disposition::Local,
    }
}

/// A write a peer sent this node for `key` (alone, or as the first key of a group of a batch
/// whose keys share their replicas).
pub(crate) fn peer_write(view: &ClusterView, key: &[u8]) -> Disposition {
    if view.holds(key) {
        Disposition::Coordinate
    } else if view.departing(key) {
        Disposition::PassOn
    } else {
        Disposition::Refuse(RequestError::NotReplica(format!(
            "{} does not hold this key at epoch {}",
            view.me,
            view.table.epoch().0
        )))
    }
}

fn refuse(why: &str) -> Disposition {
    Disposition::Refuse(RequestError::BadRequest(why.into()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use haze_ring::{MoveState, NodeId, PartitionTable, Transition};

    use super::*;

    const ME: NodeId = NodeId(1);

    /// A view of n1..n3 (N = 2) seen by n1; with a move in `state`, a change that gives one
    /// of n1's partitions to n4.
    fn view(state: Option<MoveState>) -> ClusterView {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let table = PartitionTable::place(None, &nodes, 16, 2).expect("a table");
        let transition = state.map(|state| {
            let moved = (0..16)
                .map(haze_ring::PartitionId)
                .find(|p| table.replicas(*p).contains(&ME))
                .expect("n1 holds a partition");
            let after: Vec<NodeId> = table
                .replicas(moved)
                .iter()
                .map(|n| if *n == ME { NodeId(4) } else { *n })
                .collect();
            let target = table.successor(&[(moved, &after)]).expect("a target");
            let mut t = Transition::plan(1, "remove n1".into(), &table, target, 0);
            for m in &mut t.moves {
                m.state = state;
            }
            t
        });
        ClusterView {
            cluster: 7,
            me: ME,
            addrs: BTreeMap::new(),
            table,
            transition,
        }
    }

    /// A key of each kind for `view`: n1 its primary, n1 a secondary, n1 no replica; and a key
    /// of the partition that moves (if any).
    fn keys(view: &ClusterView) -> [Vec<u8>; 4] {
        let find = |want: &dyn Fn(&[u8]) -> bool| {
            (0..)
                .map(|i| format!("key{i}").into_bytes())
                .find(|k| want(k))
                .expect("such a key")
        };
        let table = &view.table;
        let moves = |k: &[u8]| {
            view.transition
                .as_ref()
                .and_then(|t| t.get(table.partition_of_key(k)))
                .is_some()
        };
        [
            find(&|k| table.replicas_of_key(k)[0] == ME && !moves(k)),
            find(&|k| table.replicas_of_key(k)[1] == ME && !moves(k)),
            find(&|k| !table.replicas_of_key(k).contains(&ME)),
            if view.transition.is_some() {
                find(&|k| moves(k))
            } else {
                b"unused".to_vec()
            },
        ]
    }

    fn name(d: &Disposition) -> &'static str {
        match d {
            Disposition::Local => "local",
            Disposition::ReadHere => "read here",
            Disposition::Route { stale: None } => "route",
            Disposition::Route { stale: Some(_) } => "route, tell the epoch",
            Disposition::Coordinate => "coordinate",
            Disposition::RouteForPeer => "route for a peer",
            Disposition::PassOn => "pass on",
            Disposition::Refuse(RequestError::Unavailable(_)) => "refuse: unavailable",
            Disposition::Refuse(RequestError::NotReplica(_)) => "refuse: not a replica",
            Disposition::Refuse(RequestError::BadRequest(_)) => "refuse: bad request",
            Disposition::Refuse(_) => "refuse: other",
        }
    }

    const CLIENT: Role = Role::Client;
    const PEER: Role = Role::Peer { cluster: 7 };
    const LOCAL: Role = Role::Local;

    #[test]
    fn where_each_request_is_served() {
        let still = view(None);
        let [primary, secondary, elsewhere, _] = keys(&still);
        let batch = [primary.clone(), elsewhere.clone()];
        // (view, waiting for one, role, operation, expected)
        let cases: Vec<(Option<&ClusterView>, bool, Role, Operation<'_>, &str)> = vec![
            // A single node serves everything itself; a node waiting for its table refuses
            // clients' data and peers' routed requests, nothing else.
            (None, false, CLIENT, Operation::Write(&primary), "local"),
            (None, false, CLIENT, Operation::Copy, "refuse: bad request"),
            (
                None,
                true,
                CLIENT,
                Operation::Read(&primary),
                "refuse: unavailable",
            ),
            (
                None,
                true,
                CLIENT,
                Operation::MergeBatch,
                "refuse: unavailable",
            ),
            (None, true, CLIENT, Operation::Meta, "local"),
            (
                None,
                true,
                PEER,
                Operation::Write(&primary),
                "refuse: unavailable",
            ),
            (None, true, PEER, Operation::Read(&primary), "local"),
            (None, true, LOCAL, Operation::Write(&primary), "local"),
            // Local connections: always this node's store.
            (
                Some(&still),
                false,
                LOCAL,
                Operation::Read(&elsewhere),
                "local",
            ),
            (Some(&still), false, LOCAL, Operation::Buckets, "local"),
            // Clients: node calls refused; reads of a key this node is the primary of read
            // here; the rest routed, telling the epoch when this node does not hold the key.
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Copy,
                "refuse: bad request",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Buckets,
                "refuse: bad request",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Read(&primary),
                "read here",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Read(&secondary),
                "route",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Read(&elsewhere),
                "route, tell the epoch",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Digest(&primary),
                "route",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::ReadMerged(&primary),
                "route",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Write(&primary),
                "route",
            ),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::Write(&elsewhere),
                "route, tell the epoch",
            ),
            (Some(&still), false, CLIENT, Operation::MergeBatch, "route"),
            (
                Some(&still),
                false,
                CLIENT,
                Operation::DigestBatch(&batch),
                "route",
            ),
            (Some(&still), false, CLIENT, Operation::DigestList, "route"),
            (Some(&still), false, CLIENT, Operation::Meta, "local"),
            // Peers: writes of held keys coordinated here, others refused; reads, copies and
            // listings from this node's store; batches and merged reads decided per group.
            (
                Some(&still),
                false,
                PEER,
                Operation::Write(&secondary),
                "coordinate",
            ),
            (
                Some(&still),
                false,
                PEER,
                Operation::Write(&elsewhere),
                "refuse: not a replica",
            ),
            (
                Some(&still),
                false,
                PEER,
                Operation::Read(&elsewhere),
                "local",
            ),
            (
                Some(&still),
                false,
                PEER,
                Operation::Digest(&primary),
                "local",
            ),
            (Some(&still), false, PEER, Operation::Copy, "local"),
            (Some(&still), false, PEER, Operation::Buckets, "local"),
            (
                Some(&still),
                false,
                PEER,
                Operation::MergeBatch,
                "route for a peer",
            ),
            (
                Some(&still),
                false,
                PEER,
                Operation::ReadMerged(&primary),
                "route for a peer",
            ),
            (
                Some(&still),
                false,
                PEER,
                Operation::DigestBatch(&batch),
                "local",
            ),
        ];
        for (view, awaiting, role, op, want) in cases {
            let got = dispose(view, awaiting, true, role, &op);
            assert_eq!(
                name(&got),
                want,
                "{role:?} {op:?} (view: {}, waiting: {awaiting})",
                view.is_some()
            );
        }
        // A read quorum above one: a client's read of a key this node is primary of is routed
        // too (this node's copy counts as one of the answers); a peer's is still served here.
        for (role, op, want) in [
            (CLIENT, Operation::Read(&primary), "route"),
            (CLIENT, Operation::Read(&secondary), "route"),
            (CLIENT, Operation::Digest(&primary), "route"),
            (PEER, Operation::Read(&primary), "local"),
            (LOCAL, Operation::Read(&primary), "local"),
        ] {
            let got = dispose(Some(&still), false, false, role, &op);
            assert_eq!(name(&got), want, "{role:?} {op:?} with a read quorum");
        }
    }

    /// While n1 leaves a partition: a peer's write of it is passed on to the new replicas
    /// (never refused, never coordinated here once n1 no longer holds it), its reads of it are
    /// passed on once the new replicas serve them, and a client's read of it is routed
    /// (reads of a moving partition merge a majority).
    #[test]
    fn where_requests_of_a_partition_this_node_leaves_are_served() {
        let cases = [
            // (state, peer's write, peer's read, client's read)
            (MoveState::Pending, "coordinate", "local", "read here"),
            (MoveState::Streaming, "coordinate", "local", "route"),
            (
                MoveState::Proxying,
                "pass on",
                "pass on",
                "route, tell the epoch",
            ),
            (
                MoveState::Routed,
                "pass on",
                "pass on",
                "route, tell the epoch",
            ),
            (
                MoveState::Cleaning,
                "pass on",
                "pass on",
                "route, tell the epoch",
            ),
            (
                MoveState::Done,
                "refuse: not a replica",
                "local",
                "route, tell the epoch",
            ),
        ];
        for (state, write, read, client_read) in cases {
            let v = view(Some(state));
            let moving = keys(&v)[3].clone();
            let is_primary = v.table.replicas_of_key(&moving)[0] == ME;
            let client_read = if !is_primary && client_read == "read here" {
                "route"
            } else {
                client_read
            };
            let batch = [moving.clone()];
            assert_eq!(
                name(&dispose(
                    Some(&v),
                    false,
                    true,
                    PEER,
                    &Operation::Write(&moving)
                )),
                write,
                "{state:?}: a peer's write"
            );
            assert_eq!(
                name(&dispose(
                    Some(&v),
                    false,
                    true,
                    PEER,
                    &Operation::Read(&moving)
                )),
                read,
                "{state:?}: a peer's read"
            );
            assert_eq!(
                name(&dispose(
                    Some(&v),
                    false,
                    true,
                    PEER,
                    &Operation::DigestBatch(&batch)
                )),
                read,
                "{state:?}: a peer's digests"
            );
            assert_eq!(
                name(&dispose(
                    Some(&v),
                    false,
                    true,
                    CLIENT,
                    &Operation::Read(&moving)
                )),
                client_read,
                "{state:?}: a client's read"
            );
        }
    }
}
