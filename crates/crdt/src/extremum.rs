//! Max and min registers.

use crate::Crdt;

/// A register that keeps the greatest value ever written: a high score, a version number.
///
/// # Examples
///
/// ```
/// use haze_crdt::{Crdt, Max};
///
/// let best = Max::of(3).merge(Max::of(7)).merge(Max::new());
/// assert_eq!(best.get(), Some(&7));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Max<T> {
    value: Option<T>,
}

/// A register that keeps the smallest value ever written: a first-seen time, a low price.
///
/// # Examples
///
/// ```
/// use haze_crdt::{Crdt, Min};
///
/// let first_seen = Min::of(1_700).merge(Min::of(1_500)).merge(Min::new());
/// assert_eq!(first_seen.get(), Some(&1_500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Min<T> {
    value: Option<T>,
}

macro_rules! extremum {
    ($name:ident, $keep_theirs:expr) => {
        impl<T> Default for $name<T> {
            fn default() -> Self {
                $name { value: None }
            }
        }

        impl<T: Ord> $name<T> {
            /// Returns an empty register (the bottom: any write replaces it).
            pub const fn new() -> Self {
                $name { value: None }
            }

            /// Returns a register holding `value`.
            pub const fn of(value: T) -> Self {
                $name { value: Some(value) }
            }

            /// Writes `value`; it is kept only if it beats the current value.
            pub fn set(&mut self, value: T) {
                self.merge_from($name::of(value));
            }

            /// Returns the value, or `None` if nothing was written.
            pub fn get(&self) -> Option<&T> {
                self.value.as_ref()
            }

            /// Consumes the register, returning its value.
            pub fn into_inner(self) -> Option<T> {
                self.value
            }
        }

        impl<T: Ord> Crdt for $name<T> {
            fn merge_from(&mut self, other: Self) {
                let Some(theirs) = other.value else { return };
                let keep_theirs: fn(&T, &T) -> bool = $keep_theirs;
                match &self.value {
                    Some(mine) if !keep_theirs(mine, &theirs) => {}
                    _ => self.value = Some(theirs),
                }
            }
        }
    };
}

extremum!(Max, |mine, theirs| theirs > mine);
extremum!(Min, |mine, theirs| theirs < mine);
