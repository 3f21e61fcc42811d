//! The controller's state: members, the partition table, and the rules that change them.

use std::collections::BTreeMap;

use std::collections::VecDeque;

use haze_ring::{NodeId, PartitionTable, Transition};

use crate::change::Change;
use crate::outcome::Outcome;
use crate::tokens::{NewToken, Token, TokenHash, TokenId, TokenTable};

use crate::{Error, Inconsistency, Result};

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
    /// Holding partitions in the current table (or receiving them in the change under way).
    Active,
    /// Being removed: its partitions move to the others; it leaves the members once they have.
    Leaving,
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// Where its binary protocol listens.
    pub addr: String,
    /// Whether it holds partitions.
    pub state: MemberState,
    /// The node name its certificate proves (`haze://node/NAME`), when the controller serves
    /// TLS: only a caller presenting that certificate reports as this member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
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
    pub(crate) table: Option<PartitionTable>,
    /// The change being carried out, if any.
    #[serde(default)]
    pub(crate) transition: Option<Transition>,
    /// Changes committed while another runs, in order.
    #[serde(default)]
    pub(crate) queued: VecDeque<Change>,
    /// The change last planned, which `commit` carries out.
    #[serde(default)]
    pub(crate) proposed: Option<Change>,
    /// The number of the next change.
    #[serde(default)]
    pub(crate) next_change: u64,
    /// Queued changes that could not start, and why (the last few).
    #[serde(default)]
    pub(crate) dropped: VecDeque<String>,
    /// The change under way as it was asked (which nodes to add and remove), to tell when it
    /// ends whether it did that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) running: Option<Change>,
    /// The notes its moves had on the way (re-planned, rolled back), each once: a move's note
    /// goes when it streams again, its outcome keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) notes: Vec<String>,
    /// How the last changes ended (the last few), newest last.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub(crate) outcomes: VecDeque<Outcome>,
    /// Client tokens: hashes and scopes, never a token's text. Left out of the file while
    /// there is none, so a cluster that never made one keeps the file older versions read.
    #[serde(default, skip_serializing_if = "TokenTable::is_empty")]
    pub(crate) tokens: TokenTable,
    /// The number of the next token's id (0 reads as 1). Ids are never reused: a revoked id
    /// names nothing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) next_token: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
            transition: None,
            queued: VecDeque::new(),
            proposed: None,
            next_change: 1,
            dropped: VecDeque::new(),
            running: None,
            notes: Vec::new(),
            outcomes: VecDeque::new(),
            tokens: TokenTable::default(),
            next_token: 0,
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
        self.register_as(addr, None)
    }

    /// Registers the node listening at `addr` whose certificate names it `identity` (a
    /// controller serving TLS registers nodes only so), or returns its id if it is registered.
    /// A node keeps its id across restarts: found by its identity first (its address may have
    /// changed, and is updated), then by its address.
    ///
    /// # Errors
    ///
    /// [`Error::BadAddress`], [`Error::TooManyMembers`]; [`Error::IdentityMismatch`] if another
    /// node's certificate already holds `addr`.
    pub fn register_as(&mut self, addr: &str, identity: Option<&str>) -> Result<NodeId> {
        let well_formed = addr.len() <= 256
            && addr.bytes().all(|b| b.is_ascii_graphic())
            && addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !well_formed {
            return Err(Error::BadAddress(addr.to_string()));
        }
        if let Some(name) = identity
            && let Some(id) = self.member_of(name)
        {
            if self
                .members
                .iter()
                .any(|(other, m)| *other != id && m.addr == addr)
            {
                return Err(Error::IdentityMismatch(format!(
                    "{addr} is another registered node's address"
                )));
            }
            if let Some(member) = self.members.get_mut(&id) {
                member.addr = addr.to_string();
            }
            return Ok(id);
        }
        if let Some((id, member)) = self.members.iter_mut().find(|(_, m)| m.addr == addr) {
            return match (&member.identity, identity) {
                (None, None) => Ok(*id),
                // A node registered before the cluster had certificates claims its entry once.
                (None, Some(name)) => {
                    member.identity = Some(name.to_string());
                    Ok(*id)
                }
                (Some(_), _) => Err(Error::IdentityMismatch(format!(
                    "{addr} is registered to a node with another certificate"
                ))),
            };
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
                identity: identity.map(str::to_string),
            },
        );
        Ok(id)
    }

    /// The member whose certificate names it `identity`.
    #[must_use]
    pub fn member_of(&self, identity: &str) -> Option<NodeId> {
        self.members
            .iter()
            .find(|(_, m)| m.identity.as_deref() == Some(identity))
            .map(|(id, _)| *id)
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

    /// Checks what a state read from a file must satisfy: the table matches the cluster's `Q`,
    /// places only active members, every active member is in it, and ids are below `next_node`.
    ///
    /// # Errors
    ///
    /// The first [`Inconsistency`] found.
    pub fn check(&self) -> std::result::Result<(), Inconsistency> {
        check_parameters(self.partitions, self.replicas)?;
        if let Some(table) = &self.table {
            if table.partitions() != self.partitions {
                return Err(Inconsistency::TablePartitions {
                    table: table.partitions(),
                    cluster: self.partitions,
                });
            }
            let placed = table.nodes();
            for id in &placed {
                match self.members.get(id) {
                    Some(m) if m.state != MemberState::Standby => {}
                    _ => return Err(Inconsistency::PlacesNonMember(*id)),
                }
            }
            // Active members hold partitions (while a change runs, one whose receiving moves
            // all went elsewhere holds none until it ends: it then goes back to standby).
            if self.transition.is_none()
                && let Some((id, _)) = self
                    .members
                    .iter()
                    .find(|(id, m)| m.state == MemberState::Active && !placed.contains(id))
            {
                return Err(Inconsistency::ActiveWithoutPartition(*id));
            }
            if let Some(t) = &self.transition
                && t.target.partitions() != self.partitions
            {
                return Err(Inconsistency::TargetPartitions);
            }
        } else if let Some((id, _)) = self
            .members
            .iter()
            .find(|(_, m)| m.state == MemberState::Active)
        {
            return Err(Inconsistency::ActiveWithoutTable(*id));
        } else if self.transition.is_some() {
            return Err(Inconsistency::ChangeWithoutTable);
        }
        if let Some(last) = self.tokens.last_id()
            && last.0 >= self.next_token.max(1)
        {
            return Err(Inconsistency::TokenIdNotBelowNext {
                id: last,
                next: self.next_token.max(1),
            });
        }
        match self.members.keys().next_back() {
            Some(last) if last.0 >= self.next_node => Err(Inconsistency::IdNotBelowNext {
                id: *last,
                next: self.next_node,
            }),
            _ => Ok(()),
        }
    }

    /// Returns the client tokens.
    pub fn tokens(&self) -> &TokenTable {
        &self.tokens
    }

    /// Adds a token of `new`'s scope whose text hashes to `hash`, created at `now_ms`, with
    /// the next id.
    ///
    /// # Errors
    ///
    /// [`Error::Token`] for a scope [`TokenTable::insert`] refuses.
    pub fn create_token(&mut self, new: NewToken, hash: TokenHash, now_ms: u64) -> Result<Token> {
        let id = TokenId(self.next_token.max(1));
        let token = self.tokens.insert(id, hash, new, now_ms)?.clone();
        self.next_token = id.0 + 1;
        Ok(token)
    }

    /// Revokes the token `id` (it is removed: nodes refuse it once they have the table), and
    /// returns it.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownToken`].
    pub fn revoke_token(&mut self, id: TokenId) -> Result<Token> {
        self.tokens
            .revoke(id)
            .ok_or_else(|| Error::UnknownToken(id.to_string()))
    }

    /// Returns the registered nodes.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        &self.members
    }

    /// Returns the partition table in force, if any.
    pub fn table(&self) -> Option<&PartitionTable> {
        self.table.as_ref()
    }

    /// Returns the change being carried out, if any.
    pub fn transition(&self) -> Option<&Transition> {
        self.transition.as_ref()
    }

    /// Returns the queued changes that could not start, and why (the last few).
    pub fn dropped(&self) -> impl Iterator<Item = &String> {
        self.dropped.iter()
    }

    /// Returns the changes committed after it, in order.
    pub fn queued(&self) -> impl Iterator<Item = &Change> {
        self.queued.iter()
    }

    pub(crate) fn members_mut(&mut self) -> &mut BTreeMap<NodeId, Member> {
        &mut self.members
    }
}

/// Checks a cluster's `Q` and `N` the way a table would.
fn check_parameters(partitions: u32, replicas: usize) -> haze_ring::Result<()> {
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
    fn bad_parameters_are_refused() {
        assert!(ControllerState::new(ClusterId(1), 100, 3).is_err());
        assert!(ControllerState::new(ClusterId(1), 64, 0).is_err());
    }
}
