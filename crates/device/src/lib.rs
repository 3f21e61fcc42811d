//! A Haze device's replica without I/O: the core that a phone, a laptop or a browser runs.
//!
//! * [`Replica`]: values by key, the device's actor id (fresh random bits whenever the state
//!   cannot be proven the newest it wrote), typed [`Edit`]s of every CRDT type, applied with
//!   that actor id and a hybrid logical clock fed by the caller's time, saved through a
//!   [`Store`] before they return.
//! * [`Store`]: load everything, save the changed keys and the metadata as one unit;
//!   [`MemStore`] keeps it in memory. haze-client keeps it in one file.
//! * [`sync::Session`]: digests first, full states only where they differ, as a state machine:
//!   [`start`](sync::Session::start) gives the first messages, [`receive`](sync::Session::receive)
//!   takes each answer and gives the next ones, until [`Done`](sync::Step::Done). Whoever owns
//!   the I/O (tokio and TCP in haze-client, a browser's fetch or WebSocket) sends them.
//!
//! No tokio, no file system, no clock, no random source: the crate builds for
//! `wasm32-unknown-unknown` (`scripts/build-wasm.sh`).
//!
//! ```
//! use haze_device::sync::{Answer, Message, Step};
//! use haze_device::{Edit, MemStore, Replica};
//! use haze_crdt::{ActorId, Scalar};
//!
//! # fn main() -> Result<(), haze_device::Error> {
//! // 64 random bits from the caller: used if the store holds no state (or an older copy).
//! let mut phone = Replica::open(MemStore::new(), ActorId::new(0x9f1c_2e07_b3a5_0d41))?;
//! phone.set_add("list", [Scalar::from("milk")])?; // offline, saved before it returns
//! phone.apply("todo:1", Edit::map_update("done", Edit::FlagEnable), 1_764_133_200_000)?;
//!
//! // Back online: the driver sends each message and hands the answer back.
//! let mut sync = phone.sync(1_764_133_260_000);
//! let mut step = sync.start(&mut phone)?;
//! # let mut answers = Vec::new();
//! while let Step::Send(messages) = step {
//!     for out in messages {
//!         // A store that knows nothing: it asks for the key list, then lacks every key,
//!         // then merges what it is sent.
//!         let answer = match out.message {
//!             Message::Digests { keys: None, .. } => Answer::UnknownList,
//!             Message::Digests { keys: Some(keys), .. } => Answer::Digests(vec![None; keys.len()]),
//!             Message::Merge { items } => Answer::Merged(items.into_iter().map(|(_, v)| Ok(v)).collect()),
//!         };
//!         answers.push((out.id, answer));
//!     }
//!     let (id, answer) = answers.pop().expect("a message in flight");
//!     step = sync.receive(&mut phone, id, answer)?;
//! }
//! let Step::Done(report) = step else { unreachable!() };
//! assert_eq!((report.checked, report.sent), (2, 2));
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! * `replica` — [`Replica`]: the values, the actor id rule, edits, merges, saves.
//! * `edit` — [`Edit`]: the typed edits, and how each applies to a [`Value`](haze_crdt::Value).
//! * `store` — [`Store`], [`MemStore`], and what they keep ([`Meta`], [`Saved`]).
//! * `sync` — the sync state machine, its messages ([`sync::Message`], [`sync::Answer`]) and
//!   the rules that cut keys into requests.
//! * `error` — [`Error`].
#![deny(missing_docs)]

mod edit;
mod error;
mod replica;
mod store;
pub mod sync;

pub use edit::{Edit, MAX_EDIT_DEPTH};
pub use error::{Error, Result};
pub use replica::Replica;
pub use store::{LastSync, Loaded, MemStore, MemStoreFailure, Meta, Save, Saved, Store};
