//! Haze's CRDT library: the [`Crdt`] trait, the replicated types real applications need, the
//! self-describing [`Value`] a Haze node stores, and its one binary encoding.
//!
//! # The phone and the laptop
//!
//! A user keeps a shopping list on a phone and a laptop. Both edit it offline; whenever they can,
//! they synchronise *in full* with Haze, which merges every copy. Nothing here ever asks "which
//! copy is right?": every type is a join-semilattice, so any two copies merge into one that
//! contains every edit of both, and the result does not depend on who synchronised first or
//! how often.
//!
//! ```
//! use haze_crdt::{ActorId, Crdt, OrSet, PnCounter, Value};
//!
//! // Each device has its own actor id (fresh random bits when its replica is created).
//! let (phone, laptop) = (ActorId::new(0x9f1c), ActorId::new(0x4ab2));
//!
//! // Both start from the same synced list.
//! let mut synced = OrSet::new();
//! synced.insert(phone, "milk".to_string());
//! let (mut on_phone, mut on_laptop) = (synced.clone(), synced);
//!
//! // Offline: the phone adds bread and buys the milk, the laptop adds eggs.
//! on_phone.insert(phone, "bread".to_string());
//! on_phone.remove(&"milk".to_string());
//! on_laptop.insert(laptop, "eggs".to_string());
//!
//! // Back online, each merges the other's full state, in any order, any number of times.
//! let merged = on_phone.clone().merge(on_laptop.clone());
//! assert_eq!(merged, on_laptop.merge(on_phone));
//! assert_eq!(merged.iter().collect::<Vec<_>>(), ["bread", "eggs"]);
//!
//! // What the store keeps is a self-describing Value, in one compact encoding.
//! let stored = Value::from(merged);
//! assert_eq!(Value::decode(&stored.encode()).unwrap(), stored);
//! # let _ = PnCounter::new();
//! ```
//!
//! # The laws
//!
//! For every type, `merge` is idempotent, commutative and associative, and every operation only
//! moves a state up the lattice (see [`Crdt`]). There is no operation that shrinks what a
//! replica knows: removes in the causal types ([`OrSet`], [`OrMap`], [`MvRegister`],
//! [`EnableWinsFlag`]) record what they removed in a causal context instead of forgetting it.
//! The property tests in `tests/laws` check every law for every type over states reached by
//! random operations on 2 to 8 replicas, delivered in random orders with duplicates.
//!
//! # Actors
//!
//! Operations that need causality name an explicit [`ActorId`]. An actor id must never be reused
//! by a replica that lost its state: see [`ActorId`] for why (Riak's "kv679") and how to pick a
//! fresh one.
//!
//! # Types
//!
//! | type | what it is | operations |
//! | --- | --- | --- |
//! | [`GCounter`] | grow-only counter | `increment` |
//! | [`PnCounter`] | counter | `increment`, `decrement`, `add` |
//! | [`LwwRegister`] | last writer wins, by [`Hlc`] time then actor | `set` |
//! | [`MvRegister`] | keeps concurrent values | `set` |
//! | [`OrSet`] | add-wins set, no tombstones | `insert`, `remove`, `clear` |
//! | [`OrMap`] | map of nested CRDTs, update wins | `update`, `try_update`, `remove` |
//! | [`EnableWinsFlag`] | boolean, enable wins | `enable`, `disable` |
//! | [`Max`], [`Min`] | greatest / smallest value | `set` |
//!
//! `Crdt` is also implemented for `HashSet`/`BTreeSet` (union), `HashMap`/`BTreeMap` of CRDTs
//! (pointwise) and `Option<T: Crdt>` (`None` is bottom).
//!
//! # Layout
//!
//! * `crdt` — the trait; `std_impls` — the standard types.
//! * `clock` — actor ids, dots, version vectors, dot sets, the hybrid logical clock.
//! * `counter`, `register`, `set`, `map`, `flag`, `extremum` — one type per file.
//! * `value` — [`Value`], [`ValueKind`], [`Scalar`] leaves, conversions ([`TypedValue`],
//!   [`Leaf`]) and the JSON view.
//! * `encode` — the versioned binary encoding and its never-panicking decoder.
//! * `digest` — the stable ring hash of keys and digests of states.
//!
//! # Adding a type
//!
//! A new file with the struct, its operations and `impl Crdt`; a [`Value`] variant and a
//! [`ValueKind`] tag (never renumber one); its layout in `encode/value_codec.rs` and
//! `docs/storage-format.md`; a line in `tests/laws/main.rs`; a golden vector.

#![deny(missing_docs)]

pub mod clock;
mod counter;
mod crdt;
pub mod digest;
pub mod encode;
mod error;
mod extremum;
mod flag;
mod map;
mod merge_join;
mod register;
mod set;
mod std_impls;
mod value;

pub use clock::{
    ActorId, Dot, DotSet, Hlc, HlcTimestamp, ManualClock, PhysicalClock, VersionVector,
};
pub use counter::{GCounter, PnCounter};
pub use crdt::Crdt;
pub use error::{DecodeError, Error, Result};
pub use extremum::{Max, Min};
pub use flag::EnableWinsFlag;
pub use map::{Join, OrMap};
pub use register::{LwwRegister, MvRegister, Stamp};
pub use set::OrSet;
pub use value::{Field, Leaf, Scalar, TypedValue, Value, ValueKind, ValueMap};
