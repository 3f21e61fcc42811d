//! Client tokens: bearer secrets scoped to key prefixes and rights, kept by the controller as
//! hashes and handed to nodes in the [`TokenTable`] of every `/v1/seen` answer.
//!
//! Pure: no I/O, no clock (callers pass `now_ms`, milliseconds since the Unix epoch), and the
//! randomness of [`generate`] is the caller's `SecureRandom`.
//!
//! * A token's text is `haze_` and 64 lowercase hex digits: 256 random bits. It is shown once,
//!   when it is created; the controller keeps only its SHA-256 ([`TokenHash`], of the whole
//!   text), so neither `controller.json` nor a node's memory holds anything that authenticates.
//! * Its id ([`TokenId`], `t1`, `t2`, ...) names it for people (`haze token revoke t2`); ids
//!   count up and are never reused, so a revoked id names nothing.
//! * Its *prefixes* are byte prefixes of keys: a key is inside when it starts with one of them
//!   (`user:42/` covers `user:42/name`, not `user:420`; `user:42` covers both, so end a prefix
//!   with a separator). No prefix: every key.
//! * Its [`Right`]s: `read`, `write`, `admin`; `admin` implies reading and writing inside its
//!   prefixes, plus cluster administration (the controller's changes and tokens) and listing
//!   keys. An admin token may create tokens of any scope, so its prefixes bound only its own
//!   reads and writes: give `admin` only to administrators.
//! * Its expiry, if any, is absolute: the token is refused from `expires_at_ms` on.
//!
//! A presented token is checked by its shape first ([`TOKEN_LEN`] bytes, the prefix, lowercase
//! hex), so input of any other size is refused without being hashed. It is then looked up by
//! its hash: comparing hashes is not constant-time, which tells an attacker at most how many
//! leading bytes of a stored hash their guess's hash shares, and that does not help find a
//! token that hashes to it.

mod table;

#[cfg(test)]
mod tests;

use ring::digest;
use ring::rand::SecureRandom;

pub use table::{Grant, NewToken, Token, TokenTable};

/// What every token starts with (so a leaked one is recognizable, by people and by scanners).
pub const TOKEN_PREFIX: &str = "haze_";

/// A token's length in bytes: the prefix and 64 hex digits.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 64;

/// The most tokens a controller keeps (every change rewrites the state file, and every
/// `/v1/seen` answer carries the table).
pub const MAX_TOKENS: usize = 4096;

/// The most prefixes one token has.
pub const MAX_PREFIXES: usize = 64;

/// The longest prefix, in bytes.
pub const MAX_PREFIX_BYTES: usize = 1024;

/// The longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256;

/// A token's id: `t1`, `t2`, ... in the order they were created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenId(pub u64);

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl std::str::FromStr for TokenId {
    type Err = TokenError;

    /// `t3` or `3`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix('t').unwrap_or(text);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::BadId);
        }
        match digits.parse::<u64>() {
            Ok(n) if n > 0 => Ok(TokenId(n)),
            _ => Err(TokenError::BadId),
        }
    }
}

impl serde::Serialize for TokenId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TokenId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a token may do. `admin` implies `read` and `write` (see the module's docs).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    /// Reading keys inside the token's prefixes.
    Read,
    /// Writing keys inside the token's prefixes.
    Write,
    /// Reading and writing inside its prefixes, listing keys, administering the cluster.
    Admin,
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Right::Read => "read",
            Right::Write => "write",
            Right::Admin => "admin",
        })
    }
}

/// The SHA-256 of a token's text: what the controller keeps and nodes look tokens up by.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash of a token's text (of any shape: [`TokenTable::check`] checks the shape first).
    pub fn of(token: &str) -> TokenHash {
        let digest = digest::digest(&digest::SHA256, token.as_bytes());
        let mut hash = [0; 32];
        hash.copy_from_slice(digest.as_ref());
        TokenHash(hash)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({self})")
    }
}

impl std::fmt::Display for TokenHash {
    /// 64 lowercase hex digits.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl serde::Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = text.as_bytes();
        let mut hash = [0; 32];
        if bytes.len() != 64 {
            return Err(serde::de::Error::custom("a token hash is 64 hex digits"));
        }
        for (out, pair) in hash.iter_mut().zip(bytes.chunks_exact(2)) {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(hi), Some(lo)) => *out = hi << 4 | lo,
                _ => return Err(serde::de::Error::custom("a token hash is 64 hex digits")),
            }
        }
        Ok(TokenHash(hash))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// A token's text, as created: shown once to whoever created it, never stored, logged or
/// printed by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The token's text, to hand to the one who asked for it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token's text, to hand to the one who asked for it.
    pub fn into_exposed(self) -> String {
        self.0
    }

    /// Its hash.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl std::fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// Creates a token: 256 bits from `random`, as text, and its hash.
///
/// # Errors
///
/// [`TokenError::Random`] if `random` fails.
pub fn generate(random: &dyn SecureRandom) -> Result<(TokenSecret, TokenHash), TokenError> {
    let mut bits = [0u8; 32];
    random.fill(&mut bits).map_err(|_| TokenError::Random)?;
    let mut text = String::with_capacity(TOKEN_LEN);
    text.push_str(TOKEN_PREFIX);
    for b in bits {
        use std::fmt::Write as _;
        write!(text, "{b:02x}").expect("writing to a String does not fail");
    }
    let secret = TokenSecret(text);
    let hash = secret.hash();
    Ok((secret, hash))
}

/// Returns whether `text` has a token's shape: [`TOKEN_PREFIX`] and 64 lowercase hex digits.
/// Looks at no more than [`TOKEN_LEN`] bytes.
pub fn well_formed(text: &str) -> bool {
    text.len() == TOKEN_LEN
        && text.starts_with(TOKEN_PREFIX)
        && text.as_bytes()[TOKEN_PREFIX.len()..]
            .iter()
            .all(|b| hex_value(*b).is_some())
}

/// The longest `Authorization` header value looked at: `Bearer `, a token and some spaces.
const MAX_HEADER_BYTES: usize = 256;

/// Takes the token out of an HTTP `Authorization` header's value (`Bearer <token>`, the scheme
/// in any case), without checking the token itself ([`TokenTable::check`] does).
///
/// # Errors
///
/// [`AuthError::Missing`] without a header (or an empty one), [`AuthError::Malformed`] for
/// another scheme, a value that is not ASCII, or one over 256 bytes.
pub fn bearer(header: Option<&[u8]>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    if value.iter().all(u8::is_ascii_whitespace) {
        return Err(AuthError::Missing);
    }
    if value.len() > MAX_HEADER_BYTES || !value.is_ascii() {
        return Err(AuthError::Malformed);
    }
    let value = std::str::from_utf8(value).map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// Why a presented token was refused. The messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error("no token given (haze: --token or HAZE_TOKEN; HTTP: Authorization: Bearer)")]
    Missing,
    /// What was presented is not a token's shape.
    #[error("not a Haze token (haze_ and 64 lowercase hex digits)")]
    Malformed,
    /// No such token: never created, or revoked.
    #[error("unknown token (revoked, or never created)")]
    Unknown,
    /// The token's expiry has passed.
    #[error("token {0} has expired")]
    Expired(TokenId),
}

/// Why a token cannot be created (or an id read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No right asked for.
    #[error("a token needs at least one right: read, write or admin")]
    NoRights,
    /// Too many prefixes.
    #[error("{0} prefixes: a token has at most {MAX_PREFIXES}")]
    TooManyPrefixes(usize),
    /// An empty prefix (which would cover every key: give none instead).
    #[error("an empty prefix: give no prefix for a token that covers every key")]
    EmptyPrefix,
    /// A prefix over [`MAX_PREFIX_BYTES`].
    #[error("a prefix of {0} bytes: at most {MAX_PREFIX_BYTES}")]
    PrefixTooLong(usize),
    /// A description over [`MAX_DESCRIPTION_BYTES`], or with control characters.
    #[error(
        "the description must be at most {MAX_DESCRIPTION_BYTES} bytes, without control characters"
    )]
    BadDescription,
    /// An expiry that is not in the future.
    #[error("the expiry is not in the future")]
    ExpiryPassed,
    /// An expiry given both ways (`expires_in_ms` and `expires_at_ms`), or out of range.
    #[error("give the expiry one way: expires_in_ms (at least 1) or expires_at_ms")]
    BadExpiry,
    /// [`MAX_TOKENS`] tokens exist already.
    #[error("the controller keeps {MAX_TOKENS} tokens already: revoke some first")]
    TooMany,
    /// Not a token id (`t3` or `3`).
    #[error("not a token id (t3, or 3)")]
    BadId,
    /// The system's random source failed.
    #[error("the system's random source failed")]
    Random,
}
