//! What a node does with a request: one pure function of the cluster view, the caller's role and
//! the operation (with its key), so that every rule of routing and of a move is in one place.
//!
//! The rules, in the order they apply:
//!
//! * A `local` connection is served from this node's store, always (diagnostics).
//! * Copies, backfills and bucket listings are for nodes only: a client's are refused.
//! * Without a view: a node that waits for its cluster's view refuses clients' (and peers'
//!   routed) data requests; a single node serves everything itself.
//! * A client's read of a key whose primary is this node, while its partition does not move, is
//!   read here (a miss is routed: another replica may hold it). Any other data request of a
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
}

impl<'a> Operation<'a> {
    pub(crate) fn of(request: &'a Request) -> Operation<'a> {
        match request {
            Request::Get { key } => Operation::Read(key),
            Request::Digest { key } => Operation::Digest(key),
            Request::GetMerged { key } => Operation::ReadMerged(key),
            Request::Merge { key, .. } | Request::Op { key, .. } => Operation::Write(key),
            Request::MergeBatch { .. } => Operation::MergeBatch,
            Request::DigestBatch { keys } => Operation::DigestBatch(keys),
            Request::DigestList { .. } => Operation::DigestList,
            Request::Copy { .. } | Request::Backfill { .. } => Operation::Copy,
            Request::Buckets | Request::BucketKeys { .. } => Operation::Buckets,
            Request::Ping | Request::Table | Request::Hello { .. } => Operation::Meta,
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
        !matches!(self, Operation::Copy | Operation::Buckets | Operation::Meta)
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
/// has none).
pub(crate) fn dispose(
    view: Option<&ClusterView>,
    awaiting: bool,
    role: Role,
    op: &Operation<'_>,
) -> Disposition {
    let op = *op;
    let peer = matches!(role, Role::Peer { .. });
    match (role, op) {
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
                "this node has not received its cluster's partition table yet (is it added? \
                 see `haze cluster status`)"
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
            if view.replicas(key).first() == Some(&view.me) && !view.in_move(key) =>
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
