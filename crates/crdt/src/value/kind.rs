//! The type tag of a value.

use std::fmt;

/// The type of a [`Value`](crate::Value): its tag in the encoding, its name in JSON and errors.
///
/// Tags are part of the stored format: never renumber one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueKind {
    /// A [`GCounter`](crate::GCounter).
    GCounter = 1,
    /// A [`PnCounter`](crate::PnCounter).
    PnCounter = 2,
    /// A [`LwwRegister`](crate::LwwRegister) of a scalar.
    LwwRegister = 3,
    /// A [`MvRegister`](crate::MvRegister) of scalars.
    MvRegister = 4,
    /// An [`OrSet`](crate::OrSet) of scalars.
    OrSet = 5,
    /// An [`OrMap`](crate::OrMap) of nested values.
    OrMap = 6,
    /// An [`EnableWinsFlag`](crate::EnableWinsFlag).
    Flag = 7,
    /// A [`Max`](crate::Max) of a scalar.
    Max = 8,
    /// A [`Min`](crate::Min) of a scalar.
    Min = 9,
}

impl ValueKind {
    /// Every kind, in tag order.
    pub const ALL: [ValueKind; 9] = [
        ValueKind::GCounter,
        ValueKind::PnCounter,
        ValueKind::LwwRegister,
        ValueKind::MvRegister,
        ValueKind::OrSet,
        ValueKind::OrMap,
        ValueKind::Flag,
        ValueKind::Max,
        ValueKind::Min,
    ];

    /// Returns the tag byte of this kind in the encoding.
    pub const fn tag(self) -> u8 {
        self as u8
    }

    /// Returns the kind with this tag byte.
    pub fn from_tag(tag: u8) -> Option<Self> {
        ValueKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// Returns the kind's name as used in JSON and errors (`"or_set"`).
    pub const fn name(self) -> &'static str {
        match self {
            ValueKind::GCounter => "g_counter",
            ValueKind::PnCounter => "pn_counter",
            ValueKind::LwwRegister => "lww_register",
            ValueKind::MvRegister => "mv_register",
            ValueKind::OrSet => "or_set",
            ValueKind::OrMap => "or_map",
            ValueKind::Flag => "flag",
            ValueKind::Max => "max",
            ValueKind::Min => "min",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_names_match_serde() {
        for kind in ValueKind::ALL {
            assert_eq!(ValueKind::from_tag(kind.tag()), Some(kind));
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
        assert_eq!(ValueKind::from_tag(0), None);
        assert_eq!(ValueKind::from_tag(10), None);
    }
}
