//! Typed operations, applied by the node with its own actor id.

use std::sync::{Arc, Mutex};

use haze_crdt::{
    ActorId, Hlc, LwwRegister, OrSet, PhysicalClock, PnCounter, Scalar, TypedValue, Value,
};
use haze_protocol::TypedOp;
use haze_storage::{Mutation, WriteError};

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
                let mut set: OrSet<Scalar> = current_or_empty(current)?;
                // A merged state may claim this actor is out of dots: refuse, never panic.
                if !set.seen().has_room(actor, members.len() as u64) {
                    return Err(WriteError::Refused(haze_crdt::Error::CounterOverflow));
                }
                for member in members {
                    set.insert(actor, member);
                }
                Ok(Value::from(set))
            })),
            TypedOp::SetRemove(members) => Mutation::Update(Box::new(move |current| {
                let mut set: OrSet<Scalar> = current_or_empty(current)?;
                for member in &members {
                    set.remove(member);
                }
                Ok(Value::from(set))
            })),
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
