//! Haze's ring: where every key lives.
//!
//! The key space `[0, 2^64)` (the xxh3 ring hash of the key bytes) is cut into a fixed number
//! `Q` of equal partitions (a power of two, chosen when a cluster is created). A
//! [`PartitionTable`] assigns each partition an ordered list of `N` distinct nodes, primary
//! first, and carries an [`Epoch`] that grows with every change. Finding a key's replicas is a
//! hash and an index, with no allocation.
//!
//! Placement ([`PartitionTable::place`]) is balanced (every node holds its share of the replica
//! slots, within one) and moves little: from an existing table, only the slots of departed nodes
//! and the excess of overloaded ones move, so adding the n-th node moves about 1/n of the slots.
//! [`moves`] lists what changed between two tables, slot by slot: the unit of repartitioning.
//!
//! This crate is pure and synchronous: no I/O, no clock, no randomness.
//!
//! # Layout
//!
//! * `ids` — [`NodeId`], [`PartitionId`], [`Epoch`].
//! * `partition_table` — [`PartitionTable`]: lookups and serialisation.
//! * `placement` — balanced placement with minimal movement.
//! * `plan` — [`moves`] between two tables.
//! * `routing` — [`RoutingTable`]: a table with every node's address, for routers.
//! * `transition` — [`Transition`]: a membership change in progress, partition by partition,
//!   and what it asks of each node.

mod error;
mod ids;
mod partition_table;
mod placement;
mod plan;
mod routing;
mod transition;

pub use error::{Error, Result};
pub use ids::{Epoch, NodeId, PartitionId};
pub use partition_table::PartitionTable;
pub use plan::{Move, moves};
pub use routing::RoutingTable;
pub use transition::{CleanReport, MoveState, PartitionMove, Stream, StreamReport, Transition};
