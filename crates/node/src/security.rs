//! Who may do what on a node (docs/security.md).
//!
//! * **TLS** on the binary protocol and the HTTP API (`Security::tls`): a client certificate is
//!   optional, and verified against the cluster's CA when presented; the identity it names
//!   travels with the connection.
//! * **Nodes** prove they are nodes with a certificate of the cluster's CA naming a node
//!   identity: with TLS on, a `peer` hello on a connection without one is refused
//!   (`unauthorized`). A node dials its peers with its own certificate (`Security::peer_tls`).
//! * **Clients** present a bearer token (the hello's, or HTTP's `Authorization: Bearer`) when
//!   the node requires tokens: the cluster's token table (from the controller) says what it
//!   may read and write, on which key prefixes, until when. A `local` connection and every
//!   request that lists keys a caller did not name need `admin`.
//!
//! What a connection proved is a [`Caller`]; [`authorize`] decides each request from it.

use std::sync::Arc;
use std::time::Duration;

use haze_controller::tokens::{AuthError, Grant, Right, TokenTable};
use haze_protocol::{Request, Role};
use haze_tls::Identity;

use crate::error::RequestError;

/// How a node protects itself.
#[derive(Debug, Clone)]
pub struct Security {
    /// TLS for the binary protocol and the HTTP API, with client certificates optional and
    /// verified against the cluster's CA; `None`: plaintext.
    pub tls: Option<Arc<haze_tls::rustls::ServerConfig>>,
    /// How this node dials other nodes: TLS with its own node certificate; `None`: plaintext.
    pub peer_tls: Option<Arc<haze_tls::rustls::ClientConfig>>,
    /// Whether clients must present a token the cluster knows.
    pub require_tokens: bool,
    /// Whether `/health` and `/metrics` answer without a token.
    pub open_metrics: bool,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How far ahead of this node's clock a register's stamp may be: a write or merge stamped
    /// further is refused, so one bad clock cannot drag every node's clock into the future.
    pub max_clock_skew: Duration,
}

impl Default for Security {
    /// Plaintext, no tokens: what a single node on loopback runs with.
    fn default() -> Self {
        Security {
            tls: None,
            peer_tls: None,
            require_tokens: false,
            open_metrics: true,
            handshake_timeout: Duration::from_secs(5),
            max_clock_skew: Duration::from_secs(60),
        }
    }
}

/// What a connection (or an HTTP request) proved about who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Nobody needs to prove anything on this node (tokens are not required).
    Anyone,
    /// Another node of the cluster (its certificate says so, or TLS is off and it said so).
    Node,
    /// A client with a token, and what the token allows (as of the token table's version).
    Client {
        /// The token, to check again when the table changes (a revocation).
        token: String,
        /// What it allows.
        grant: Grant,
        /// The version of the token table the grant was read from.
        version: u64,
    },
}

/// The cluster's token table as a node knows it, with a version that grows when it changes.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    table: std::sync::RwLock<(u64, Arc<TokenTable>)>,
    /// The table's version, readable without the lock: every request of a client compares it
    /// with its grant's (set under the write lock, after the table).
    version: std::sync::atomic::AtomicU64,
}

impl Tokens {
    /// Installs the table the controller sent, if it differs.
    pub(crate) fn install(&self, table: TokenTable) {
        let mut current = self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current.1 != table {
            *current = (current.0 + 1, Arc::new(table));
            self.version
                .store(current.0, std::sync::atomic::Ordering::Release);
        }
    }

    /// The table and its version.
    pub(crate) fn current(&self) -> (u64, Arc<TokenTable>) {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The version alone (one atomic load).
    pub(crate) fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }
}

fn unauthorized(e: AuthError) -> RequestError {
    RequestError::Unauthorized(e.to_string())
}

/// Decides who is calling from a connection's hello: its role, the token it carries, and the
/// identity its TLS certificate named (if any).
///
/// # Errors
///
/// `Unauthorized` for a peer without a node's certificate (with TLS on), a client without a
/// valid token (when tokens are required); `Forbidden` for a `local` connection without an
/// admin token.
pub(crate) fn authenticate(
    security: &Security,
    tokens: &Tokens,
    role: Role,
    token: Option<&str>,
    identity: Option<&Identity>,
    now_ms: u64,
) -> Result<Caller, RequestError> {
    if let Role::Peer { .. } = role {
        return match (&security.tls, identity) {
            (None, _) | (Some(_), Some(Identity::Node(_))) => Ok(Caller::Node),
            (Some(_), _) => Err(RequestError::Unauthorized(
                "a node-to-node connection needs a node's certificate of this cluster's CA".into(),
            )),
        };
    }
    if !security.require_tokens {
        return Ok(Caller::Anyone);
    }
    let token = token.ok_or_else(|| unauthorized(AuthError::Missing))?;
    let (version, table) = tokens.current();
    let grant = table.check(token, now_ms).map_err(unauthorized)?;
    if role == Role::Local && !grant.is_admin() {
        return Err(RequestError::Forbidden(
            "a local connection (one node's own copy) needs an admin token".into(),
        ));
    }
    Ok(Caller::Client {
        token: token.to_string(),
        grant,
        version,
    })
}

impl Caller {
    /// Reads the caller's grant again if the token table changed since (a token revoked or
    /// expired is refused from then on, on every connection that holds it). `now_ms` is called
    /// only for a caller with a token (its expiry): a caller without one needs no clock.
    ///
    /// # Errors
    ///
    /// `Unauthorized` once the token is no longer valid.
    pub(crate) fn refresh(
        &mut self,
        tokens: &Tokens,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<(), RequestError> {
        let Caller::Client {
            token,
            grant,
            version,
        } = self
        else {
            return Ok(());
        };
        let now_ms = now_ms();
        let expired = grant.expires_at_ms.is_some_and(|at| now_ms >= at);
        if *version == tokens.version() && !expired {
            return Ok(());
        }
        let (now_version, table) = tokens.current();
        *grant = table.check(token, now_ms).map_err(unauthorized)?;
        *version = now_version;
        Ok(())
    }

    /// Whether the caller may do `right` on `key`.
    pub(crate) fn may(&self, key: &[u8], right: Right) -> bool {
        match self {
            Caller::Anyone | Caller::Node => true,
            Caller::Client { grant, .. } => grant.allows(key, right),
        }
    }

    /// Whether the caller holds an admin token (or needs none).
    pub(crate) fn is_admin(&self) -> bool {
        match self {
            Caller::Anyone | Caller::Node => true,
            Caller::Client { grant, .. } => grant.is_admin(),
        }
    }
}

fn forbidden(key: &[u8], right: Right) -> RequestError {
    let shown: String = String::from_utf8_lossy(&key[..key.len().min(64)]).into_owned();
    RequestError::Forbidden(format!(
        "the token does not allow `{right}` on key {shown:?}"
    ))
}

/// Decides whether `caller` may make `request`: reads need `read` on every key, writes
/// `write`, and requests that list or copy keys the caller did not name (buckets, copies)
/// `admin`.
///
/// # Errors
///
/// `Forbidden`, naming the first key (or the request) refused; nothing was done.
pub(crate) fn authorize(caller: &Caller, request: &Request) -> Result<(), RequestError> {
    if matches!(caller, Caller::Anyone | Caller::Node) {
        return Ok(());
    }
    let check = |key: &[u8], right| {
        if caller.may(key, right) {
            Ok(())
        } else {
            Err(forbidden(key, right))
        }
    };
    match request {
        Request::Get { key } | Request::Digest { key } | Request::GetMerged { key } => {
            check(key, Right::Read)
        }
        Request::Merge { key, .. } | Request::Op { key, .. } | Request::Apply { key, .. } => {
            check(key, Right::Write)
        }
        Request::MergeBatch { items } => items
            .iter()
            .try_for_each(|(key, _)| check(key, Right::Write)),
        Request::DigestBatch { keys }
        | Request::DigestList {
            keys: Some(keys), ..
        } => keys.iter().try_for_each(|key| check(key, Right::Read)),
        // A list named by id alone was remembered from some caller: its keys are checked once
        // resolved (`authorize_keys`).
        Request::DigestList { keys: None, .. } => Ok(()),
        Request::Copy { .. }
        | Request::Backfill { .. }
        | Request::Buckets
        | Request::BucketKeys { .. } => {
            if caller.is_admin() {
                Ok(())
            } else {
                Err(RequestError::Forbidden(
                    "listing or copying keys needs an admin token".into(),
                ))
            }
        }
        Request::Ping | Request::Table | Request::Hello { .. } => Ok(()),
        Request::Watch { .. } | Request::Notify { .. } => Err(RequestError::Forbidden(
            "watch and notify are only for node-to-node connections".into(),
        )),
    }
}

/// Refuses a client's merge holding a register stamped more than `max_skew` ahead of `now_ms`
/// (this node's clock): a stamp in the future wins every write until the clocks reach it, and
/// every node that merged it would stamp its own writes after it. Copies between nodes are not
/// checked: they carry what some node already accepted.
///
/// # Errors
///
/// `ClockSkew`, for the first value stamped too far ahead; nothing was written.
pub(crate) fn check_stamps(
    request: &Request,
    now_ms: impl FnOnce() -> u64,
    max_skew: Duration,
) -> Result<(), RequestError> {
    if !matches!(request, Request::Merge { .. } | Request::MergeBatch { .. }) {
        return Ok(()); // nothing stamped: no clock read
    }
    let now_ms = now_ms();
    let max_ms = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
    let check = |value: &haze_crdt::Value| match value.newest_stamp() {
        Some(stamp) if stamp.millis() > now_ms.saturating_add(max_ms) => {
            Err(RequestError::ClockSkew {
                ahead_ms: stamp.millis() - now_ms,
                max_ms,
            })
        }
        _ => Ok(()),
    };
    match request {
        Request::Merge { value, .. } => check(value),
        Request::MergeBatch { items } => items.iter().try_for_each(|(_, value)| check(value)),
        _ => Ok(()),
    }
}

/// Checks every key of a resolved key list for `read` (see [`authorize`]).
///
/// # Errors
///
/// `Forbidden`, naming the first key refused.
pub(crate) fn authorize_keys(caller: &Caller, keys: &[Vec<u8>]) -> Result<(), RequestError> {
    keys.iter().try_for_each(|key| {
        if caller.may(key, Right::Read) {
            Ok(())
        } else {
            Err(forbidden(key, Right::Read))
        }
    })
}

/// Everything a request of a connection or an HTTP caller must pass before it is served: the
/// caller's token read again if the cluster's tokens changed (a revocation reaches open
/// connections), its rights on every key the request names (a key list named by id alone: the
/// keys this node remembers for it), and registers' stamps within the clock skew allowed. A
/// refusal is counted (`auth_failures` for the token's).
///
/// # Errors
///
/// `Unauthorized`, `Forbidden` or `ClockSkew`; nothing was done.
pub(crate) fn admit(
    node: &crate::node::Node,
    caller: &mut Caller,
    request: &Request,
) -> Result<(), RequestError> {
    if matches!(caller, Caller::Node) {
        return Ok(());
    }
    // The clock is read at most once, and only by a check that needs it (a token's expiry, a
    // merged value's stamps): most requests need neither, and a read costs a system clock call.
    let clock = std::cell::OnceCell::new();
    let now_ms = || *clock.get_or_init(|| node.replica().now_ms());
    let max_skew = node.config().security.max_clock_skew;
    let checked = caller
        .refresh(node.cluster().tokens(), now_ms)
        .and_then(|()| authorize(caller, request))
        .and_then(|()| check_stamps(request, now_ms, max_skew))
        .and_then(|()| match request {
            // A list named by id alone: its keys, as this node remembers them.
            Request::DigestList { list, keys: None } => {
                match node.replica().resolve_list(*list, None) {
                    Ok(Some(keys)) => authorize_keys(caller, &keys),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        });
    if checked.is_err() {
        node.metrics()
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    checked
}
