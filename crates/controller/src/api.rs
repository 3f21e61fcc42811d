//! The controller's HTTP/JSON API: the bodies it takes and gives (docs/cluster.md).

use std::collections::BTreeMap;

use haze_ring::{NodeId, PartitionTable};

use crate::{ClusterId, ControllerState, MemberState};

/// `POST /v1/nodes`: a node announcing itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The address other nodes and clients reach it at.
    pub addr: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// The node's id in the cluster (the same every time it registers with that address).
    pub node: NodeId,
    /// The cluster's identity.
    pub cluster: ClusterId,
}

/// `POST /v1/cluster/add`: standby nodes to give partitions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Ids (`n3` or `3`) or addresses of registered nodes.
    pub nodes: Vec<String>,
}

/// `GET /v1/cluster`: everything the controller knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The cluster's identity.
    pub cluster: ClusterId,
    /// `Q`.
    pub partitions: u32,
    /// The replication factor asked for.
    pub replicas: usize,
    /// The table's epoch, once there is a table.
    pub epoch: Option<u64>,
    /// The registered nodes, by id.
    pub members: Vec<MemberStatus>,
    /// The partition table, once nodes were added.
    pub table: Option<PartitionTable>,
}

/// One member in a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: String,
    /// Standby or active.
    pub state: MemberState,
    /// The partitions it holds a replica of.
    pub partitions: usize,
    /// The partitions it is the primary of.
    pub primaries: usize,
    /// When the node last asked for the table, and which epoch it had then (`None`: not since
    /// this controller started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Seen>,
}

/// A node's last report (`POST /v1/seen`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    /// The epoch of the table the node had installed (`None`: no table yet).
    pub epoch: Option<u64>,
    /// Milliseconds since the report.
    pub ago_ms: u64,
}

/// A node's report of the table it has, sent when it asks for the current one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenRequest {
    /// The reporting node.
    pub node: NodeId,
    /// The epoch of the table it has installed, if any.
    pub epoch: Option<u64>,
}

/// An error, as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    /// A stable code: `unknown_node`, `would_move_data`, `nothing_to_add`, `no_room`,
    /// `too_many_members`, `bad_request`, `state`, `not_found`, `internal` (docs/cluster.md).
    pub error: String,
    /// What happened, for people.
    pub message: String,
}

impl Status {
    /// Summarizes `state`.
    pub fn of(state: &ControllerState) -> Status {
        let table = state.table();
        let (load, primaries) = table.map_or_else(
            || (BTreeMap::new(), BTreeMap::new()),
            |t| (t.load(), t.primaries()),
        );
        let members = state
            .members()
            .iter()
            .map(|(id, m)| MemberStatus {
                id: *id,
                addr: m.addr.clone(),
                state: m.state,
                partitions: load.get(id).copied().unwrap_or(0),
                primaries: primaries.get(id).copied().unwrap_or(0),
                seen: None,
            })
            .collect();
        Status {
            cluster: state.cluster,
            partitions: state.partitions,
            replicas: state.replicas,
            epoch: table.map(|t| t.epoch().0),
            members,
            table: table.cloned(),
        }
    }
}
