//! The token table: every token's hash, scope and expiry, as the controller keeps it and nodes
//! check presented tokens against it; and the [`Grant`] a valid token gives.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    AuthError, MAX_DESCRIPTION_BYTES, MAX_PREFIX_BYTES, MAX_PREFIXES, MAX_TOKENS, Right,
    TokenError, TokenHash, TokenId, well_formed,
};

/// A token as the controller keeps it: never its text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Its id, for people.
    pub id: TokenId,
    /// The SHA-256 of its text.
    pub hash: TokenHash,
    /// The key prefixes it may touch, sorted (none: every key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Its rights (at least one).
    pub rights: BTreeSet<Right>,
    /// When it stops working, in milliseconds since the epoch (`None`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// What it is for, for people (left out of the table nodes get).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When it was created, in milliseconds since the epoch.
    pub created_ms: u64,
}

impl Token {
    /// The grant it gives.
    pub fn grant(&self) -> Grant {
        Grant {
            id: self.id,
            prefixes: self.prefixes.clone(),
            rights: self.rights.clone(),
            expires_at_ms: self.expires_at_ms,
        }
    }

    /// Whether it has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A token to create: its scope, checked by [`TokenTable::insert`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewToken {
    /// Key prefixes (none: every key).
    pub prefixes: Vec<String>,
    /// Rights (at least one).
    pub rights: BTreeSet<Right>,
    /// The expiry, in milliseconds since the epoch.
    pub expires_at_ms: Option<u64>,
    /// What it is for.
    pub description: String,
}

/// What a valid token may do: [`TokenTable::check`]'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's id (for logs and errors: not a secret).
    pub id: TokenId,
    /// The key prefixes it may touch (none: every key).
    pub prefixes: Vec<String>,
    /// Its rights.
    pub rights: BTreeSet<Right>,
    /// Its expiry.
    pub expires_at_ms: Option<u64>,
}

impl Grant {
    /// Whether the token may exercise `right` on `key`: the key is inside its prefixes, and it
    /// has `right` (or `admin`, which implies `read` and `write`).
    pub fn allows(&self, key: &[u8], right: Right) -> bool {
        self.has(right) && self.covers(key)
    }

    /// Whether `key` starts with one of its prefixes (any key, without prefixes).
    pub fn covers(&self, key: &[u8]) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| key.starts_with(p.as_bytes()))
    }

    /// Whether it has `right` (`admin` implies the others).
    pub fn has(&self, right: Right) -> bool {
        self.rights.contains(&right) || self.rights.contains(&Right::Admin)
    }

    /// Whether it may administer the cluster and list keys.
    pub fn is_admin(&self) -> bool {
        self.rights.contains(&Right::Admin)
    }
}

/// Every token, by hash. Serialized as a list ordered by id; duplicate ids or hashes are
/// refused when it is read.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(into = "Vec<Token>", try_from = "Vec<Token>")]
pub struct TokenTable {
    by_hash: BTreeMap<TokenHash, Token>,
}

impl TokenTable {
    /// Checks a presented token at `now_ms`: its shape, then whether the table has it, then
    /// its expiry. Input of any length other than a token's is refused before it is hashed.
    ///
    /// # Errors
    ///
    /// [`AuthError::Missing`] for an empty string, [`AuthError::Malformed`],
    /// [`AuthError::Unknown`] (revoked too), [`AuthError::Expired`].
    pub fn check(&self, presented: &str, now_ms: u64) -> Result<Grant, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        if !well_formed(presented) {
            return Err(AuthError::Malformed);
        }
        let token = self
            .by_hash
            .get(&TokenHash::of(presented))
            .ok_or(AuthError::Unknown)?;
        if token.expired(now_ms) {
            return Err(AuthError::Expired(token.id));
        }
        Ok(token.grant())
    }

    /// Adds a token with `id` and `hash`, created at `now_ms`, after checking `new`: prefixes
    /// are sorted and deduplicated.
    ///
    /// # Errors
    ///
    /// [`TokenError`]: no right, bad prefixes or description, an expiry not after `now_ms`,
    /// [`MAX_TOKENS`] reached.
    pub fn insert(
        &mut self,
        id: TokenId,
        hash: TokenHash,
        new: NewToken,
        now_ms: u64,
    ) -> Result<&Token, TokenError> {
        if new.rights.is_empty() {
            return Err(TokenError::NoRights);
        }
        if new.prefixes.len() > MAX_PREFIXES {
            return Err(TokenError::TooManyPrefixes(new.prefixes.len()));
        }
        if let Some(p) = new.prefixes.iter().find(|p| p.len() > MAX_PREFIX_BYTES) {
            return Err(TokenError::PrefixTooLong(p.len()));
        }
        if new.prefixes.iter().any(String::is_empty) {
            return Err(TokenError::EmptyPrefix);
        }
        if new.description.len() > MAX_DESCRIPTION_BYTES
            || new.description.chars().any(char::is_control)
        {
            return Err(TokenError::BadDescription);
        }
        if new.expires_at_ms.is_some_and(|at| at <= now_ms) {
            return Err(TokenError::ExpiryPassed);
        }
        if self.by_hash.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let prefixes: BTreeSet<String> = new.prefixes.into_iter().collect();
        let token = Token {
            id,
            hash,
            prefixes: prefixes.into_iter().collect(),
            rights: new.rights,
            expires_at_ms: new.expires_at_ms,
            description: new.description,
            created_ms: now_ms,
        };
        // A collision of 256-bit random tokens (or a reused id) is a bug of the caller's.
        assert!(
            !self.by_hash.contains_key(&hash) && self.get(id).is_none(),
            "a new token has a new hash and id"
        );
        Ok(self.by_hash.entry(hash).or_insert(token))
    }

    /// Removes the token `id` and returns it (`None`: no such token).
    pub fn revoke(&mut self, id: TokenId) -> Option<Token> {
        let hash = self.get(id)?.hash;
        self.by_hash.remove(&hash)
    }

    /// The token `id`.
    pub fn get(&self, id: TokenId) -> Option<&Token> {
        self.by_hash.values().find(|t| t.id == id)
    }

    /// Whether a token has this hash.
    pub fn contains(&self, hash: &TokenHash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Every token, ordered by id.
    pub fn tokens(&self) -> Vec<&Token> {
        let mut tokens: Vec<&Token> = self.by_hash.values().collect();
        tokens.sort_by_key(|t| t.id);
        tokens
    }

    /// The highest id, if any.
    pub fn last_id(&self) -> Option<TokenId> {
        self.by_hash.values().map(|t| t.id).max()
    }

    /// Whether an admin token works at `now_ms`.
    pub fn has_live_admin(&self, now_ms: u64) -> bool {
        self.by_hash
            .values()
            .any(|t| t.rights.contains(&Right::Admin) && !t.expired(now_ms))
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// The table nodes get: without the descriptions, which are for people.
    pub fn for_nodes(&self) -> TokenTable {
        let mut table = self.clone();
        for token in table.by_hash.values_mut() {
            token.description.clear();
        }
        table
    }
}

impl From<TokenTable> for Vec<Token> {
    fn from(table: TokenTable) -> Vec<Token> {
        let mut tokens: Vec<Token> = table.by_hash.into_values().collect();
        tokens.sort_by_key(|t| t.id);
        tokens
    }
}

impl TryFrom<Vec<Token>> for TokenTable {
    type Error = String;

    fn try_from(tokens: Vec<Token>) -> Result<Self, String> {
        let mut by_hash = BTreeMap::new();
        let mut ids = BTreeSet::new();
        for token in tokens {
            if !ids.insert(token.id) {
                return Err(format!("token {} appears twice", token.id));
            }
            if let Some(other) = by_hash.insert(token.hash, token) {
                return Err(format!("token {} has another token's hash", other.id));
            }
        }
        Ok(TokenTable { by_hash })
    }
}
