//! Typed operations, applied by the node with its own actor id.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use haze_crdt::{
    ActorId, Field, Hlc, LwwRegister, OrSet, PhysicalClock, PnCounter, Scalar, TypedValue, Value,
    ValueKind,
};
use haze_protocol::TypedOp;
use haze_storage::{InPlace, Mutation, WriteError};

/// What the node needs to apply typed operations: its actor id and its hybrid logical clock.
#[derive(Clone)]
pub(crate) struct OpContext {
    pub(crate) actor: ActorId,
    pub(crate) hlc: Arc<Mutex<Hlc>>,
    pub(crate) clock: Arc<dyn PhysicalClock + Send + Sync>,
}

/// Returns the stored value converted to `T`, or `T`'s empty value when absent.
fn current_or_empty<T: TypedValue + Default>(current: Option<Value>) -> Result<T, WriteError> {
    match current {
        None => Ok(T::default()),
        Some(v) => T::try_from_value(v).map_err(WriteError::from),
    }
}

/// An edit's refusal as the store's: another type is a type mismatch (nothing written), the
/// CRDT's refusals stay refusals.
fn edit_error(e: haze_device::Error) -> WriteError {
    match e {
        haze_device::Error::WrongType { expected, found }
        | haze_device::Error::TypeMismatch {
            stored: found,
            given: expected,
        } => WriteError::TypeMismatch {
            stored: found,
            given: expected,
        },
        haze_device::Error::Crdt(e) => WriteError::Refused(e),
        // Applying an edit touches no store and no sync: nothing else can come of it.
        _ => WriteError::Refused(haze_crdt::Error::Decode(
            haze_crdt::DecodeError::InvalidState("an edit failed outside its value"),
        )),
    }
}

impl OpContext {
    /// Turns a typed operation into a store mutation, applied atomically by the writer.
    pub(crate) fn mutation(&self, op: TypedOp) -> Mutation {
        let actor = self.actor;
        match op {
            TypedOp::CounterAdd(delta) => Mutation::Update(Box::new(move |current| {
                let mut counter: PnCounter = current_or_empty(current)?;
                counter.add(actor, delta)?;
                Ok(Value::from(counter))
            })),
            TypedOp::SetAdd(members) => Mutation::Update(Box::new(move |current| {
                add_members(actor, current, members)
            })),
            TypedOp::SetRemove(members) => {
                Mutation::Update(Box::new(move |current| remove_members(current, &members)))
            }
            TypedOp::RegisterSet(value) => {
                let hlc = self.hlc.clone();
                let clock = self.clock.clone();
                Mutation::Update(Box::new(move |current| {
                    let mut register: LwwRegister<Scalar> = current_or_empty(current)?;
                    // The lock is held only for the tick, never across an await: this runs on
                    // the writer thread.
                    let mut hlc = hlc
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    register.set(actor, value, &mut hlc, &*clock);
                    Ok(Value::from(register))
                }))
            }
            TypedOp::Edit(edit) => {
                let hlc = self.hlc.clone();
                let clock = self.clock.clone();
                Mutation::Update(Box::new(move |current| {
                    let mut hlc = hlc
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    edit.apply_to(current, actor, &mut hlc, clock.now_millis())
                        .map_err(edit_error)
                }))
            }
        }
    }
}

/// An operation whose writer also counts what it changed, as Redis's replies do (`SADD` the
/// members added, `SREM` those removed, `HSET` the fields added): counted on the writer thread
/// against the value the operation is applied to, so the count is exact and costs no read of
/// the key beforehand (a read decodes the whole value: for a large set or map, more than the
/// write itself).
#[derive(Debug, Clone)]
pub(crate) enum CountedOp {
    /// Adds members to a set; counts those it did not hold.
    SetAdd(Vec<Scalar>),
    /// Removes members of a set; counts those it held.
    SetRemove(Vec<Scalar>),
    /// Sets register fields of a map, in order; counts the fields that did not exist.
    MapSetRegisters(Vec<(Scalar, Scalar)>),
}

/// The set stored as `current` (empty when absent), taken as it is: the generic conversion
/// ([`current_or_empty`]) rebuilds a set's tree twice per write (to the typed set and back),
/// which was most of an add's cost on a large set.
fn set_of(current: Option<Value>) -> Result<OrSet<Scalar>, WriteError> {
    match current {
        Some(Value::OrSet(set)) => Ok(set),
        other => current_or_empty(other),
    }
}

fn add_members(
    actor: ActorId,
    current: Option<Value>,
    members: Vec<Scalar>,
) -> Result<Value, WriteError> {
    let mut set = set_of(current)?;
    // A merged state may claim this actor is out of dots: refuse, never panic.
    if !set.seen().has_room(actor, members.len() as u64) {
        return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
    }
    for member in members {
        set.insert(actor, member);
    }
    Ok(Value::OrSet(set))
}

fn remove_members(current: Option<Value>, members: &[Scalar]) -> Result<Value, WriteError> {
    let mut set = set_of(current)?;
    for member in members {
        set.remove(member);
    }
    Ok(Value::OrSet(set))
}

impl OpContext {
    /// As [`mutation`](Self::mutation), for a [`CountedOp`]: once the write is applied,
    /// `changed` holds its count (left alone if the write is refused). Applied in place
    /// ([`InPlace`]): a large set or map written often is neither copied nor encoded per write.
    pub(crate) fn counted(&self, op: CountedOp, changed: Arc<AtomicI64>) -> Mutation {
        Mutation::InPlace(Box::new(Counted {
            op,
            changed,
            actor: self.actor,
            hlc: self.hlc.clone(),
            clock: self.clock.clone(),
        }))
    }
}

/// A [`CountedOp`] as the store applies it.
struct Counted {
    op: CountedOp,
    changed: Arc<AtomicI64>,
    actor: ActorId,
    hlc: Arc<Mutex<Hlc>>,
    clock: Arc<dyn PhysicalClock + Send + Sync>,
}

/// What a scalar adds to an encoding at most: its tag, a length, its bytes.
fn scalar_bound(s: &Scalar) -> usize {
    1 + 10
        + match s {
            Scalar::Bytes(b) => b.len(),
            Scalar::String(t) => t.len(),
            Scalar::Int(_) | Scalar::UInt(_) => 10,
        }
}

/// What a set or map's encoding may grow by besides its entries, when the actor is already in
/// its causal context: its count of entries and the actor's counter, each a varint that may
/// grow. An actor new to the context gets no bound (its index may push other entries' dots out
/// of the one-byte form), except in a new value, where nothing else is.
const FRAME_BOUND: usize = 32;
/// A new set or map: the version, kind, one actor's entry in the context and the count.
const NEW_VALUE_BOUND: usize = 64;
/// An entry's header, its count of dots, and one dot (actor index and counter).
const ENTRY_BOUND: usize = 1 + 10 + 20;

fn type_mismatch(stored: &Value, given: ValueKind) -> WriteError {
    WriteError::TypeMismatch {
        stored: stored.kind(),
        given,
    }
}

impl InPlace for Counted {
    fn growth_bound(&self, current: Option<&Value>) -> Option<usize> {
        let (frame, seen) = match current {
            None => (NEW_VALUE_BOUND, None),
            Some(Value::OrSet(set)) => (FRAME_BOUND, Some(set.seen())),
            Some(Value::OrMap(map)) => (FRAME_BOUND, Some(map.seen())),
            Some(_) => return Some(0), // refused: another type
        };
        if seen.is_some_and(|seen| seen.get(self.actor) == 0) {
            return None;
        }
        let entries: usize = match &self.op {
            CountedOp::SetAdd(members) => {
                members.iter().map(|m| ENTRY_BOUND + scalar_bound(m)).sum()
            }
            CountedOp::SetRemove(_) => 0, // removing shrinks an encoding
            // A field's entry, and an LWW register: tag, presence, stamp (time and actor),
            // scalar. A field with concurrent values collapses to one.
            CountedOp::MapSetRegisters(pairs) => (pairs.iter())
                .map(|(f, v)| ENTRY_BOUND + scalar_bound(f) + 1 + 1 + 20 + scalar_bound(v))
                .sum(),
        };
        Some(frame + entries)
    }

    fn apply(self: Box<Self>, current: &mut Option<Value>) -> Result<(), WriteError> {
        let Counted {
            op,
            changed,
            actor,
            hlc,
            clock,
        } = *self;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        // Every refusal comes before the first change: `InPlace`'s contract.
        if let (CountedOp::SetAdd(_) | CountedOp::SetRemove(_), Some(stored)) = (&op, &*current)
            && !matches!(stored, Value::OrSet(_))
        {
            return Err(type_mismatch(stored, ValueKind::OrSet));
        }
        match op {
            CountedOp::SetAdd(members) => {
                // A merged state may claim this actor is out of dots: refuse, never panic.
                if let Some(Value::OrSet(set)) = &*current
                    && !set.seen().has_room(actor, members.len() as u64)
                {
                    return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
                }
                let set = current.get_or_insert_with(|| Value::OrSet(OrSet::new()));
                let Value::OrSet(set) = set else {
                    unreachable!("checked above")
                };
                // A member given twice is new only the first time, as Redis counts it.
                let mut added = 0;
                for member in members {
                    added += usize::from(set.insert_new(actor, member).1);
                }
                changed.store(count(added), Ordering::Relaxed);
                Ok(())
            }
            CountedOp::SetRemove(members) => {
                let set = current.get_or_insert_with(|| Value::OrSet(OrSet::new()));
                let Value::OrSet(set) = set else {
                    unreachable!("checked above")
                };
                let removed = members.iter().filter(|member| set.remove(member)).count();
                changed.store(count(removed), Ordering::Relaxed);
                Ok(())
            }
            CountedOp::MapSetRegisters(pairs) => {
                match &*current {
                    Some(Value::OrMap(map)) if !map.seen().has_room(actor, pairs.len() as u64) => {
                        return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
                    }
                    Some(Value::OrMap(_)) | None => {}
                    Some(stored) => return Err(type_mismatch(stored, ValueKind::OrMap)),
                }
                let map = current.get_or_insert_with(|| Value::bottom(ValueKind::OrMap));
                let Value::OrMap(map) = map else {
                    unreachable!("checked above")
                };
                let mut hlc = hlc.lock().unwrap_or_else(PoisonError::into_inner);
                let mut added = 0;
                for (key, value) in pairs {
                    let field = Field::new(key, ValueKind::LwwRegister);
                    added += usize::from(map.get(&field).is_none());
                    // Cannot fail: the field is a register (its kind and depth are fixed) and
                    // the closure sets it; the counter's room was checked above.
                    map.update(actor, field, |v| match v {
                        Value::LwwRegister(register) => {
                            register.set(actor, value, &mut hlc, &*clock);
                            Ok::<(), haze_crdt::Error>(())
                        }
                        other => Err(haze_crdt::Error::TypeMismatch {
                            stored: other.kind(),
                            given: ValueKind::LwwRegister,
                        }),
                    })
                    .map_err(WriteError::Refused)?;
                }
                changed.store(count(added), Ordering::Relaxed);
                Ok(())
            }
        }
    }
}
