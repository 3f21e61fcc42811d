//! Direct routing (`ClientConfig::direct`): each key's request goes to the key's primary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use haze_protocol::{Channel, ChannelConfig, Request, Response};
use haze_ring::RoutingTable;

use crate::client::Client;
use crate::{Error, Result};

/// How long to wait before asking again when the first node had no table, or an older one
/// than another node told of (so a lagging first node is not asked at every request).
const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The least time a primary that could not be reached is skipped for.
const REDIAL_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// What was fetched (`None`: the first node was in no cluster), when, and whether it was
/// already behind the epoch some node had told of.
type Fetched = (tokio::time::Instant, Option<Arc<RoutingTable>>, bool);

/// The cached routing table and one channel per node.
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// The table, once asked for.
    table: Mutex<Option<Fetched>>,
    /// One refresh at a time.
    refreshing: tokio::sync::Mutex<()>,
    nodes: Mutex<BTreeMap<String, Channel>>,
}

impl Router {
    fn cached(&self) -> Option<Fetched> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the current table: the cached one, unless none was fetched yet or a node told of
    /// a newer epoch; then it is fetched from the first node (`seed`).
    async fn table(&self, seed: &Client) -> Option<Arc<RoutingTable>> {
        let fresh = |cached: &Option<Fetched>| match cached {
            None => false,
            Some((_, Some(t), _)) if t.table.epoch().0 >= seed.channel().epoch_heard() => true,
            // No table, or behind what a node told of when fetched: ask again, but not at
            // every request.
            Some((at, _, behind)) => *behind && at.elapsed() < REFETCH_AFTER,
        };
        let table = |cached: Option<Fetched>| cached.and_then(|(_, t, _)| t);
        let cached = self.cached();
        if fresh(&cached) {
            return table(cached);
        }
        let _one = self.refreshing.lock().await;
        let cached = self.cached();
        if fresh(&cached) {
            return table(cached);
        }
        let fetched = match seed.send(Request::Table, true).await {
            Ok(Response::Table(None)) => None,
            Ok(Response::Table(Some(json))) => {
                match serde_json::from_slice::<RoutingTable>(&json) {
                    Ok(table) => Some(Arc::new(table)),
                    // A table this client cannot read: route through the first node.
                    Err(_) => None,
                }
            }
            // Could not ask: keep what we had, and ask again after a while (requests meanwhile
            // use the cached table, or the first node).
            _ => {
                let kept = table(cached);
                *self.table.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((tokio::time::Instant::now(), kept.clone(), true));
                return kept;
            }
        };
        let behind = fetched
            .as_ref()
            .is_none_or(|t| t.table.epoch().0 < seed.channel().epoch_heard());
        *self.table.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((tokio::time::Instant::now(), fetched.clone(), behind));
        fetched
    }

    /// The channel to the node at `addr`: it shares the epochs it hears with `seed`'s.
    fn node(&self, seed: &Client, addr: &str) -> Channel {
        let seed = seed.channel();
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(addr.to_string())
            .or_insert_with(|| {
                let config = ChannelConfig {
                    // A primary that cannot be reached is skipped (the first node routes) for a
                    // while instead of being dialled at every request.
                    reconnect_backoff: seed.config().reconnect_backoff.max(REDIAL_AFTER),
                    ..seed.config().clone()
                };
                seed.sibling(addr, config)
            })
            .clone()
    }

    /// Sends `request` to its key's primary. `None`: send it to the first node instead (not a
    /// single-key request, no table, the first node is the primary, or the primary cannot be
    /// reached and the request may safely go elsewhere).
    pub(crate) async fn send(
        &self,
        seed: &Client,
        request: &Request,
        idempotent: bool,
    ) -> Option<Result<Response>> {
        let key = request.key()?;
        let table = self.table(seed).await?;
        let addr = table.primary_addr(key)?;
        if addr == seed.addr() {
            return None;
        }
        let node = self.node(seed, addr);
        match node
            .send(request.clone(), idempotent)
            .await
            .map_err(Error::from)
        {
            Ok(answer) => Some(Ok(answer)),
            // Never sent: the first node routes it (and fails over).
            Err(Error::Connect { .. } | Error::Refused(_)) => None,
            Err(_) if idempotent => None,
            Err(e) => Some(Err(e)),
        }
    }
}
