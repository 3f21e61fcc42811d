//! What a router needs: the table and where every node is.

use std::collections::BTreeMap;

use crate::{NodeId, PartitionTable};

/// The partition table of a cluster with every member's address: what a node hands a client
/// that routes requests itself (`Request::Table` of the binary protocol, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTable {
    /// The cluster's id.
    pub cluster: u64,
    /// Where every partition lives.
    pub table: PartitionTable,
    /// The binary protocol address of every member.
    pub addrs: BTreeMap<NodeId, String>,
}

impl RoutingTable {
    /// Returns the address of the primary of `key` (the first replica with a known address).
    pub fn primary_addr(&self, key: &[u8]) -> Option<&str> {
        self.table
            .replicas_of_key(key)
            .iter()
            .find_map(|n| self.addrs.get(n))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routing_table_round_trips_through_json_and_finds_primaries() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let table = PartitionTable::place(None, &nodes, 16, 2).unwrap();
        let routing = RoutingTable {
            cluster: 9,
            addrs: nodes.iter().map(|n| (*n, format!("h{}:1", n.0))).collect(),
            table,
        };
        let json = serde_json::to_string(&routing).unwrap();
        let back: RoutingTable = serde_json::from_str(&json).unwrap();
        assert_eq!(back, routing);
        let primary = routing.table.replicas_of_key(b"k")[0];
        assert_eq!(
            routing.primary_addr(b"k"),
            Some(format!("h{}:1", primary.0).as_str())
        );
    }
}
