//! Conversions between the typed CRDTs and `Value`.

use std::collections::BTreeMap;

use super::{Field, Scalar, Value, ValueKind, ValueMap};
use crate::clock::{Dot, DotSet};
use crate::map::Join;
use crate::{
    EnableWinsFlag, Error, GCounter, LwwRegister, Max, Min, MvRegister, OrMap, OrSet, PnCounter,
    Result,
};

/// A Rust type that can be a scalar leaf of a [`Value`]: the elements of sets, the contents of
/// registers, the keys of maps.
///
/// Conversions must be injective and preserve order within the type, so that a typed set and
/// its `Value` hold the same elements in the same order.
pub trait Leaf: Ord + Sized {
    /// Converts into a scalar.
    fn into_scalar(self) -> Scalar;
    /// Converts back from a scalar.
    ///
    /// # Errors
    ///
    /// [`Error::ScalarMismatch`] if the scalar has another type.
    fn try_from_scalar(scalar: Scalar) -> Result<Self>;
}

impl Leaf for Scalar {
    fn into_scalar(self) -> Scalar {
        self
    }
    fn try_from_scalar(scalar: Scalar) -> Result<Self> {
        Ok(scalar)
    }
}

macro_rules! leaf {
    ($ty:ty, $variant:ident, $name:literal) => {
        impl Leaf for $ty {
            fn into_scalar(self) -> Scalar {
                Scalar::$variant(self)
            }
            fn try_from_scalar(scalar: Scalar) -> Result<Self> {
                match scalar {
                    Scalar::$variant(x) => Ok(x),
                    other => Err(Error::ScalarMismatch {
                        expected: $name,
                        found: other.type_name(),
                    }),
                }
            }
        }
    };
}

leaf!(Vec<u8>, Bytes, "bytes");
leaf!(String, String, "string");
leaf!(i64, Int, "int");
leaf!(u64, UInt, "uint");

/// A typed CRDT that converts to and from a [`Value`] of one [`ValueKind`].
pub trait TypedValue: Sized {
    /// The kind of value this type converts to.
    const KIND: ValueKind;
    /// Converts into a value, keeping the whole state (dots, stamps and context).
    fn into_value(self) -> Value;
    /// Converts back from a value.
    ///
    /// # Errors
    ///
    /// [`Error::TypeMismatch`] for a value of another kind; [`Error::ScalarMismatch`] for a
    /// leaf of another scalar type.
    fn try_from_value(value: Value) -> Result<Self>;
}

fn mismatch<T: TypedValue>(given: &Value) -> Error {
    Error::TypeMismatch {
        stored: T::KIND,
        given: given.kind(),
    }
}

fn leaf_vec<T: Leaf, X>(items: Vec<(X, Scalar)>) -> Result<Vec<(X, T)>> {
    items
        .into_iter()
        .map(|(x, s)| Ok((x, T::try_from_scalar(s)?)))
        .collect()
}

impl TypedValue for GCounter {
    const KIND: ValueKind = ValueKind::GCounter;
    fn into_value(self) -> Value {
        Value::GCounter(self)
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::GCounter(c) => Ok(c),
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

impl TypedValue for PnCounter {
    const KIND: ValueKind = ValueKind::PnCounter;
    fn into_value(self) -> Value {
        Value::PnCounter(self)
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::PnCounter(c) => Ok(c),
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

impl TypedValue for EnableWinsFlag {
    const KIND: ValueKind = ValueKind::Flag;
    fn into_value(self) -> Value {
        Value::Flag(self)
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::Flag(f) => Ok(f),
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

impl<T: Leaf> TypedValue for LwwRegister<T> {
    const KIND: ValueKind = ValueKind::LwwRegister;
    fn into_value(self) -> Value {
        Value::LwwRegister(match self.into_entry() {
            Some((stamp, v)) => LwwRegister::with_stamp(stamp, v.into_scalar()),
            None => LwwRegister::new(),
        })
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::LwwRegister(r) => Ok(match r.into_entry() {
                Some((stamp, s)) => LwwRegister::with_stamp(stamp, T::try_from_scalar(s)?),
                None => LwwRegister::new(),
            }),
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

impl<T: Leaf> TypedValue for MvRegister<T> {
    const KIND: ValueKind = ValueKind::MvRegister;
    fn into_value(self) -> Value {
        let (seen, values) = self.into_parts();
        let values = values
            .into_iter()
            .map(|(d, v)| (d, v.into_scalar()))
            .collect();
        Value::MvRegister(MvRegister::from_parts(seen, values))
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::MvRegister(r) => {
                let (seen, values) = r.into_parts();
                Ok(MvRegister::from_parts(seen, leaf_vec(values)?))
            }
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

impl<T: Leaf> TypedValue for OrSet<T> {
    const KIND: ValueKind = ValueKind::OrSet;
    fn into_value(self) -> Value {
        let (seen, entries) = self.into_parts();
        let entries = entries
            .into_iter()
            .map(|(k, d)| (k.into_scalar(), d))
            .collect();
        Value::OrSet(OrSet::from_parts(seen, entries))
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::OrSet(s) => {
                let (seen, entries) = s.into_parts();
                let entries: Result<BTreeMap<T, DotSet>> = entries
                    .into_iter()
                    .map(|(k, d)| Ok((T::try_from_scalar(k)?, d)))
                    .collect();
                Ok(OrSet::from_parts(seen, entries?))
            }
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

macro_rules! extremum_value {
    ($ty:ident, $kind:ident) => {
        impl<T: Leaf> TypedValue for $ty<T> {
            const KIND: ValueKind = ValueKind::$kind;
            fn into_value(self) -> Value {
                Value::$kind(match self.into_inner() {
                    Some(v) => $ty::of(v.into_scalar()),
                    None => $ty::new(),
                })
            }
            fn try_from_value(value: Value) -> Result<Self> {
                match value {
                    Value::$kind(r) => Ok(match r.into_inner() {
                        Some(s) => $ty::of(T::try_from_scalar(s)?),
                        None => $ty::new(),
                    }),
                    other => Err(mismatch::<Self>(&other)),
                }
            }
        }
    };
}

extremum_value!(Max, Max);
extremum_value!(Min, Min);

/// A typed map becomes a map whose fields all have `V`'s kind.
impl<K: Leaf, V: TypedValue + Join> TypedValue for OrMap<K, V> {
    const KIND: ValueKind = ValueKind::OrMap;
    fn into_value(self) -> Value {
        let (seen, entries) = self.into_parts();
        let entries = entries
            .into_iter()
            .map(|(k, values)| {
                let values = values
                    .into_iter()
                    .map(|(d, v)| (d, v.into_value()))
                    .collect();
                (
                    Field {
                        key: k.into_scalar(),
                        kind: V::KIND,
                    },
                    values,
                )
            })
            .collect();
        Value::OrMap(ValueMap::from_parts(seen, entries))
    }
    fn try_from_value(value: Value) -> Result<Self> {
        match value {
            Value::OrMap(m) => {
                let (seen, entries) = m.into_parts();
                let entries: Result<BTreeMap<K, Vec<(Dot, V)>>> = entries
                    .into_iter()
                    .map(|(field, values)| {
                        if field.kind != V::KIND {
                            return Err(Error::TypeMismatch {
                                stored: V::KIND,
                                given: field.kind,
                            });
                        }
                        let values: Result<Vec<(Dot, V)>> = values
                            .into_iter()
                            .map(|(d, v)| Ok((d, V::try_from_value(v)?)))
                            .collect();
                        Ok((K::try_from_scalar(field.key)?, values?))
                    })
                    .collect();
                Ok(OrMap::from_parts(seen, entries?))
            }
            other => Err(mismatch::<Self>(&other)),
        }
    }
}

macro_rules! from_into_value {
    ($([$($gen:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($gen)*> From<$ty> for Value {
            fn from(typed: $ty) -> Value {
                typed.into_value()
            }
        }
        impl<$($gen)*> TryFrom<Value> for $ty {
            type Error = Error;
            fn try_from(value: Value) -> Result<Self> {
                <$ty as TypedValue>::try_from_value(value)
            }
        }
    )*};
}

from_into_value!(
    [] GCounter,
    [] PnCounter,
    [] EnableWinsFlag,
    [T: Leaf] LwwRegister<T>,
    [T: Leaf] MvRegister<T>,
    [T: Leaf] OrSet<T>,
    [T: Leaf] Max<T>,
    [T: Leaf] Min<T>,
    [K: Leaf, V: TypedValue + Join] OrMap<K, V>,
);
