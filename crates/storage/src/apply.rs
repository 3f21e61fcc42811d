//! Applying one write to a stored value: the rules both stores share.

use haze_crdt::{Value, ValueKind};

use crate::entry::Framed;
use crate::{Mutation, StoreConfig, WriteError};

/// Returns the new value of a key given its current value, or why the write is refused.
/// Returns the new value's encoding too, which the caller stores (it was needed for the size
/// check anyway), framed: with room for its entry's header before it. `size_hint` is the current value's encoded size, if known: the new encoding
/// starts with that much room, rather than growing (and being copied) a dozen times for a
/// large value.
pub(crate) fn merged_value(
    config: &StoreConfig,
    key: &[u8],
    current: Option<Value>,
    mutation: Mutation,
    size_hint: usize,
) -> Result<(Value, Framed), WriteError> {
    if key.len() > config.max_key_bytes {
        return Err(WriteError::KeyTooLarge {
            size: key.len(),
            limit: config.max_key_bytes,
        });
    }
    let merged = match (current, mutation) {
        (None, Mutation::Merge(given)) => given,
        (Some(mut stored), Mutation::Merge(given)) => {
            stored.merge(given)?;
            stored
        }
        (mut current, Mutation::InPlace(op)) => {
            let stored_kind = current.as_ref().map(Value::kind);
            op.apply(&mut current)?;
            let updated = current.ok_or_else(|| {
                WriteError::Store(crate::Error::Io("an operation left no value behind".into()))
            })?;
            kept_kind(stored_kind, &updated)?;
            updated
        }
        (current, Mutation::Update(f)) => {
            let stored_kind = current.as_ref().map(Value::kind);
            let updated = f(current)?;
            kept_kind(stored_kind, &updated)?;
            updated
        }
    };
    let room = size_hint.min(config.max_value_bytes).saturating_add(64);
    let encoded = Framed::encode(&merged, room);
    let size = encoded.encoded().len();
    if size > config.max_value_bytes {
        return Err(WriteError::ValueTooLarge {
            size,
            limit: config.max_value_bytes,
        });
    }
    Ok((merged, encoded))
}

/// Refuses an operation's result of another type than the stored value's (`stored`; `None`:
/// the key was absent).
pub(crate) fn kept_kind(stored: Option<ValueKind>, updated: &Value) -> Result<(), WriteError> {
    match stored {
        Some(stored) if stored != updated.kind() => Err(WriteError::TypeMismatch {
            stored,
            given: updated.kind(),
        }),
        _ => Ok(()),
    }
}
