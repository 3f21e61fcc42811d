//! What a sync says to the store and what the store answers.
//!
//! These are the core's own types, not haze-protocol's `Request`/`Response`: haze-protocol
//! brings tokio's networking, which does not build for wasm32. Each maps one to one onto the
//! binary protocol's exchange (haze-client's adapter does it), and so onto any other transport.

use haze_crdt::Value;

/// Names a message of one sync; its answer is given back with the same id.
pub type MessageId = u64;

/// A message for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The digests of a list of keys (the protocol's `DigestList`), named by its id
    /// ([`list_id`](crate::sync::list_id)). The keys travel only when the store did not know
    /// the list: answered by [`Answer::Digests`] or [`Answer::UnknownList`].
    Digests {
        /// The list's id.
        list: u64,
        /// The keys, in order, or `None` to name a list sent before.
        keys: Option<Vec<Vec<u8>>>,
    },
    /// Full states to merge into the store's (the protocol's `MergeBatch`): answered by
    /// [`Answer::Merged`], the store's state of each key after the merge.
    Merge {
        /// The keys and states.
        items: Vec<(Vec<u8>, Value)>,
    },
}

/// A message to send, with the id its answer is given back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The message's id within its sync.
    pub id: MessageId,
    /// The message.
    pub message: Message,
}

/// The store's answer to a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// One digest per key of the list, in order (`None`: the store lacks the key). The
    /// protocol's `Digests`.
    Digests(Vec<Option<u64>>),
    /// The store does not know the list: the sync sends it again with its keys. The protocol's
    /// `UnknownList`.
    UnknownList,
    /// One outcome per merged item, in order: the store's merged state, or why it refused the
    /// item. The protocol's `Batch`.
    Merged(Vec<Result<Value, String>>),
}
