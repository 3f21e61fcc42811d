//! Stable codes for errors that cross the wire.

use std::fmt;

/// What went wrong with a request, as a number that never changes meaning. Clients branch on the
/// code; the message that comes with it is for humans. `docs/protocol.md` lists each code, its
/// HTTP status and what a client should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed (bad frame, unknown kind, invalid value encoding). Do not retry.
    BadRequest,
    /// The client's protocol version is not supported. Upgrade.
    UnsupportedVersion,
    /// The stored value has another type. Do not retry with the same value.
    TypeMismatch,
    /// The value (after merging) would exceed the value size limit.
    ValueTooLarge,
    /// The key exceeds the key size limit.
    KeyTooLarge,
    /// The node is overloaded (write queue full). Retry later, with backoff.
    Overloaded,
    /// The node cannot serve writes (its storage failed). Try another node.
    Unavailable,
    /// The operation was refused by the value (a counter overflow, nesting too deep).
    Refused,
    /// A bug on the node. Report it.
    Internal,
    /// A node-to-node connection came from a node of another cluster (or this node is in none).
    WrongCluster,
    /// A node was sent a write for a key it does not hold under its table (its table or the
    /// sender's is stale). Nothing was applied: try another replica.
    NotReplica,
    /// The caller did not prove who it is: no token, or one the cluster does not know (or has
    /// revoked, or that expired), or a node-to-node connection without a node's certificate.
    /// Nothing was done.
    Unauthorized,
    /// The caller's token does not allow this: a key outside its prefixes, a write with a
    /// read-only token, an administrative request without `admin`. Nothing was done.
    Forbidden,
    /// A register's stamp is further ahead of the node's clock than it allows
    /// (`--max-clock-skew`): the writer's clock is wrong. Nothing was written; fix the clock.
    ClockSkew,
    /// The stored value of the key is corrupt (it failed its checksum): it is never served.
    /// The node quarantined it until a healthy copy is merged into it; read another replica.
    Corrupt,
    /// A code this build does not know (sent by a newer peer).
    Unknown(u16),
}

impl ErrorCode {
    /// Returns the code's number on the wire.
    pub const fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::TypeMismatch => 3,
            ErrorCode::ValueTooLarge => 4,
            ErrorCode::KeyTooLarge => 5,
            ErrorCode::Overloaded => 6,
            ErrorCode::Unavailable => 7,
            ErrorCode::Refused => 8,
            ErrorCode::Internal => 9,
            ErrorCode::WrongCluster => 10,
            ErrorCode::NotReplica => 11,
            ErrorCode::Unauthorized => 12,
            ErrorCode::Forbidden => 13,
            ErrorCode::ClockSkew => 14,
            ErrorCode::Corrupt => 15,
            ErrorCode::Unknown(n) => n,
        }
    }

    /// Returns the code with this number.
    pub const fn from_u16(n: u16) -> Self {
        match n {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::UnsupportedVersion,
            3 => ErrorCode::TypeMismatch,
            4 => ErrorCode::ValueTooLarge,
            5 => ErrorCode::KeyTooLarge,
            6 => ErrorCode::Overloaded,
            7 => ErrorCode::Unavailable,
            8 => ErrorCode::Refused,
            9 => ErrorCode::Internal,
            10 => ErrorCode::WrongCluster,
            11 => ErrorCode::NotReplica,
            12 => ErrorCode::Unauthorized,
            13 => ErrorCode::Forbidden,
            14 => ErrorCode::ClockSkew,
            15 => ErrorCode::Corrupt,
            n => ErrorCode::Unknown(n),
        }
    }

    /// Returns the code's name, as in JSON error bodies (`"type_mismatch"`).
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TypeMismatch => "type_mismatch",
            ErrorCode::ValueTooLarge => "value_too_large",
            ErrorCode::KeyTooLarge => "key_too_large",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Refused => "refused",
            ErrorCode::Internal => "internal",
            ErrorCode::WrongCluster => "wrong_cluster",
            ErrorCode::NotReplica => "not_replica",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::ClockSkew => "clock_skew",
            ErrorCode::Corrupt => "corrupt",
            ErrorCode::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        for n in 0..20u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::TypeMismatch.to_u16(), 3, "never renumber a code");
    }
}
