//! Actor ids: who made an update.

use std::fmt;
use std::str::FromStr;

/// The identity of a replica that makes updates: a device, or a node applying operations on a
/// client's behalf.
///
/// # Never reuse an actor id after losing state (the "kv679" lesson)
///
/// Causal types ([`OrSet`](crate::OrSet), [`MvRegister`](crate::MvRegister), ...) name every
/// update by a *dot*: the actor and that actor's update count. If a replica loses its state (a
/// lost or wiped file, a restore from an older backup) and keeps its actor id, it counts from an
/// old number again and hands out dots that other replicas have already seen, and have perhaps
/// already seen *removed*: its new updates then silently vanish on merge. Riak lost data this way
/// (riak_kv issue 679).
///
/// So an actor id belongs to one copy of one replica's state. A replica that cannot prove its
/// state is the newest it ever wrote — it was created, restored or recovered — takes a fresh
/// random id ([`ActorId::new`] with 64 bits from a good random source) and keeps it in the same
/// file as the state it describes. The birthday bound makes a collision among a billion actors
/// about a one-in-forty-thousand event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ActorId(u64);

impl ActorId {
    /// Returns the actor with this number. Pass 64 random bits for a new replica.
    pub const fn new(id: u64) -> Self {
        ActorId(id)
    }

    /// Returns the actor's number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ActorId {
    /// Formats the id as 16 lowercase hex digits, the form used in JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({:016x})", self.0)
    }
}

impl FromStr for ActorId {
    type Err = ParseActorIdError;

    /// Parses exactly 16 lowercase hex digits, the one form [`Display`](fmt::Display) writes, so
    /// that one actor has one spelling (JSON objects keyed by actor cannot alias).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !canonical {
            return Err(ParseActorIdError);
        }
        u64::from_str_radix(s, 16)
            .map(ActorId)
            .map_err(|_| ParseActorIdError)
    }
}

/// An actor id that is not 16 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an actor id is 16 lowercase hex digits")]
pub struct ParseActorIdError;

impl serde::Serialize for ActorId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As a hex string: JSON numbers above 2^53 lose precision in JavaScript.
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ActorId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let actor = ActorId::new(0xdead_beef_0000_0001);
        assert_eq!(actor.to_string(), "deadbeef00000001");
        assert_eq!("deadbeef00000001".parse::<ActorId>().unwrap(), actor);
        for bad in [
            "not hex",
            "1",
            "+eadbeef00000001",
            "DEADBEEF00000001",
            "deadbeef000000011",
        ] {
            assert_eq!(bad.parse::<ActorId>(), Err(ParseActorIdError), "{bad}");
        }
    }
}
