//! The controller's state: members, the partition table, and the rules that change them.

use std::collections::BTreeMap;

use haze_ring::{NodeId, PartitionTable, moves};

use crate::{Error, Result};

/// A cluster's identity, chosen at random when the controller creates the cluster. Nodes record
/// it in their data directory and name it in the hello of every node-to-node connection, so a
/// node of another cluster is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ClusterId(pub u64);

impl std::fmt::Display for ClusterId {
    /// Sixteen hex digits, as `haze cluster status` and the logs print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Whether a node holds partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Registered, holding no partition yet.
    Standby,
    /// Holding partitions in the current table.
    Active,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Where its binary protocol listens.
    pub addr: String,
    /// Whether it holds partitions.
    pub state: MemberState,
}

/// The most registered nodes a cluster takes (every change rewrites the whole state file).
pub const MAX_MEMBERS: usize = 4096;

/// Everything the controller knows, as it is persisted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerState {
    /// The cluster's identity, chosen when it was created.
    pub cluster: ClusterId,
    /// `Q`, fixed for the cluster's life.
    pub partitions: u32,
    /// The replication factor asked for (clamped to the number of nodes in the table).
    pub replicas: usize,
    /// The id the next registered node gets.
    next_node: u64,
    /// Registered nodes by id.
    members: BTreeMap<NodeId, Member>,
    /// The current partition table, once nodes were added.
    table: Option<PartitionTable>,
}

impl ControllerState {
    /// Returns the state of a new cluster.
    ///
    /// # Errors
    ///
    /// [`Error::Ring`] unless `partitions` is a power of two up to 4096 and `replicas` ≥ 1.
    pub fn new(cluster: ClusterId, partitions: u32, replicas: usize) -> Result<Self> {
        check_parameters(partitions, replicas)?;
        Ok(ControllerState {
            cluster,
            partitions,
            replicas,
            next_node: 1,
            members: BTreeMap::new(),
            table: None,
        })
    }

    /// Registers the node listening at `addr` (again: same id), and returns its id. A new node
    /// is standby.
    ///
    /// # Errors
    ///
    /// [`Error::BadAddress`] unless `addr` is `host:port` in printable ASCII, at most 256 bytes;
    /// [`Error::TooManyMembers`] past [`MAX_MEMBERS`].
    pub fn register(&mut self, addr: &str) -> Result<NodeId> {
        let well_formed = addr.len() <= 256
            && addr.bytes().all(|b| b.is_ascii_graphic())
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !well_formed {
            return Err(Error::BadAddress(addr.to_string()));
        }
        if let Some((id, _)) = self.members.iter().find(|(_, m)| m.addr == addr) {
            return Ok(*id);
        }
        if self.members.len() >= MAX_MEMBERS {
            return Err(Error::TooManyMembers(self.members.len()));
        }
        let id = NodeId(self.next_node);
        self.next_node += 1;
        self.members.insert(
            id,
            Member {
                addr: addr.to_string(),
                state: MemberState::Standby,
            },
        );
        Ok(id)
    }

    /// Finds a member by id (`"3"` or `"n3"`) or address.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`].
    pub fn resolve(&self, node: &str) -> Result<NodeId> {
        let by_id = node
            .strip_prefix('n')
            .unwrap_or(node)
            .parse::<u64>()
            .ok()
            .map(NodeId)
            .filter(|id| self.members.contains_key(id));
        by_id
            .or_else(|| {
                self.members
                    .iter()
                    .find(|(_, m)| m.addr == node)
                    .map(|(id, _)| *id)
            })
            .ok_or_else(|| Error::UnknownNode(node.to_string()))
    }

    /// Gives `nodes` (ids or addresses of registered nodes) partitions. Without a table yet, the
    /// first table is placed at once. With one, a change that would move replicas is refused
    /// (live repartitioning is the next step); returns the table in force.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`], [`Error::NothingToAdd`], [`Error::WouldMoveData`].
    pub fn add(&mut self, nodes: &[String]) -> Result<&PartitionTable> {
        let ids: Vec<NodeId> = nodes
            .iter()
            .map(|n| self.resolve(n))
            .collect::<Result<_>>()?;
        let new: Vec<NodeId> = ids
            .into_iter()
            .filter(|id| self.members[id].state == MemberState::Standby)
            .collect();
        if new.is_empty() {
            return Err(Error::NothingToAdd);
        }
        let mut active: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Active)
            .map(|(id, _)| *id)
            .collect();
        active.extend(&new);
        let table =
            PartitionTable::place(self.table.as_ref(), &active, self.partitions, self.replicas)?;
        // More nodes than replica slots (Q × N): a node placed nowhere would be "active" yet
        // hold nothing.
        let placed = table.nodes();
        let idle: Vec<String> = new
            .iter()
            .filter(|id| !placed.contains(id))
            .map(ToString::to_string)
            .collect();
        if !idle.is_empty() {
            return Err(Error::NoRoom(idle.join(", ")));
        }
        if let Some(old) = &self.table {
            let moved = moves(old, &table).len();
            if moved > 0 {
                let names: Vec<String> = new.iter().map(ToString::to_string).collect();
                return Err(Error::WouldMoveData(names.join(", "), moved));
            }
        }
        for id in &new {
            if let Some(member) = self.members.get_mut(id) {
                member.state = MemberState::Active;
            }
        }
        Ok(self.table.insert(table))
    }

    /// Checks what a state read from a file must satisfy: the table matches the cluster's `Q`,
    /// places only active members, every active member is in it, and ids are below `next_node`.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        check_parameters(self.partitions, self.replicas).map_err(|e| e.to_string())?;
        if let Some(table) = &self.table {
            if table.partitions() != self.partitions {
                return Err(format!(
                    "the table has {} partitions, the cluster {}",
                    table.partitions(),
                    self.partitions
                ));
            }
            let placed = table.nodes();
            for id in &placed {
                match self.members.get(id) {
                    Some(m) if m.state == MemberState::Active => {}
                    _ => return Err(format!("the table places {id}, not an active member")),
                }
            }
            if let Some((id, _)) = self
                .members
                .iter()
                .find(|(id, m)| m.state == MemberState::Active && !placed.contains(id))
            {
                return Err(format!("{id} is active but owns no partition"));
            }
        } else if let Some((id, _)) = self
            .members
            .iter()
            .find(|(_, m)| m.state == MemberState::Active)
        {
            return Err(format!("{id} is active but there is no table"));
        }
        match self.members.keys().next_back() {
            Some(last) if last.0 >= self.next_node => Err(format!(
                "{last} is not below the next id {}",
                self.next_node
            )),
            _ => Ok(()),
        }
    }

    /// Returns the registered nodes.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }

    /// Returns the partition table in force, if any.
    pub fn table(&self) -> Option<&PartitionTable> {
        self.table.as_ref()
    }
}

/// Checks a cluster's `Q` and `N` the way a table would.
fn check_parameters(partitions: u32, replicas: usize) -> Result<()> {
    PartitionTable::place(None, &[NodeId(0)], partitions, replicas)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ControllerState {
        ControllerState::new(ClusterId(7), 64, 3).unwrap()
    }

    #[test]
    fn registering_again_keeps_the_id() {
        let mut s = cluster();
        let a = s.register("127.0.0.1:7701").unwrap();
        assert_eq!(s.register("127.0.0.1:7702").unwrap(), NodeId(2));
        assert_eq!(s.register("127.0.0.1:7701").unwrap(), a);
        for bad in [
            "",
            "7701",
            ":7701",
            "host:port",
            "host:99999",
            "a b:1",
            "h\n:1",
        ] {
            assert!(
                matches!(s.register(bad), Err(Error::BadAddress(_))),
                "{bad:?}"
            );
        }
        assert!(s.register("db-1.example:7701").is_ok());
        assert_eq!(s.resolve("n2").unwrap(), NodeId(2));
        assert_eq!(s.resolve("127.0.0.1:7701").unwrap(), a);
        assert!(matches!(s.resolve("n9"), Err(Error::UnknownNode(_))));
        assert!(matches!(s.resolve("nn2"), Err(Error::UnknownNode(_))));
    }

    #[test]
    fn a_node_that_would_hold_nothing_is_not_made_active() {
        // One partition, one replica: one slot for two nodes.
        let mut s = ControllerState::new(ClusterId(7), 1, 1).unwrap();
        s.register("127.0.0.1:7701").unwrap();
        s.register("127.0.0.1:7702").unwrap();
        let before = s.clone();
        let err = s.add(&["n1".into(), "n2".into()]).unwrap_err();
        assert!(matches!(err, Error::NoRoom(_)), "{err}");
        assert_eq!(s, before);
        s.add(&["n1".into()]).unwrap();
        assert!(s.check().is_ok());
    }

    #[test]
    fn the_first_add_places_the_table_and_later_moves_are_refused() {
        let mut s = cluster();
        for port in 1..=4 {
            s.register(&format!("127.0.0.1:770{port}")).unwrap();
        }
        let table = s
            .add(&["1".into(), "2".into(), "3".into()])
            .unwrap()
            .clone();
        assert_eq!(table.nodes().len(), 3);
        assert_eq!(s.members()[&NodeId(1)].state, MemberState::Active);
        assert_eq!(s.add(&["1".into()]), Err(Error::NothingToAdd));
        let err = s.add(&["4".into()]).unwrap_err();
        assert!(matches!(err, Error::WouldMoveData(_, n) if n > 0), "{err}");
        assert_eq!(
            s.members()[&NodeId(4)].state,
            MemberState::Standby,
            "a refused change changes nothing"
        );
        assert_eq!(s.table(), Some(&table));
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(ControllerState::new(ClusterId(1), 100, 3).is_err());
        assert!(ControllerState::new(ClusterId(1), 64, 0).is_err());
    }
}
