//! The self-describing value the server stores, its scalar leaves and conversions to and from
//! the typed CRDTs.

mod convert;
mod json;
mod kind;
mod scalar;
#[allow(clippy::module_inception)]
mod value;
mod value_map;

pub use convert::{Leaf, TypedValue};
pub use kind::ValueKind;
pub use scalar::Scalar;
pub(crate) use value::join;
pub use value::{Field, Value};
pub use value_map::ValueMap;
