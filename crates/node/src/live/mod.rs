//! Live updates: devices subscribed to keys and key prefixes hear of every committed write to
//! them (docs/http-api.md, "Live updates").
//!
//! * `hub` — [`Hub`]: the node's commit observer. A hook on the replica's one write path
//!   ([`WriteHooks`]) hands it each commit; it offers the merged state to every subscription
//!   that watches the key, never waiting; a subscription that cannot keep up is dropped.
//! * `watch` — across nodes: a node whose devices watch keys asks every other node to notify it
//!   of their commits to those keys (a lease it renews), and passes what it is told to its
//!   devices. A device connected to any node hears of a write committed on any node.
//!
//! The WebSocket session that carries updates to a browser is `http::ws`.

mod hub;
pub(crate) mod watch;

use std::sync::Arc;

use haze_crdt::Value;

use crate::replica::WriteHooks;
pub use hub::{Audience, Hub, MAX_PREFIXES, MAX_WATCHED, QUEUE, Subscription, Update};

/// The hook that hands every commit on this node to its hub.
pub(crate) struct LiveHook(pub(crate) Arc<Hub>);

impl WriteHooks for LiveHook {
    fn committed(&self, key: &[u8], value: &Value) {
        self.0.publish(key, value, false);
    }
}
