//! Live updates across nodes. A device connected to node B watches keys that other nodes
//! commit (B may hold none of them). So:
//!
//! * **B announces** (`announce`, a task started with B's first device subscription): the union
//!   of what its devices watch, sent as a `Watch` to every other node of its view at once when
//!   it changes, and again every [`RENEW`] while any device is subscribed. Past
//!   [`MAX_WATCH_KEYS`] keys it watches every key instead (one empty prefix): bounded requests,
//!   more notices to filter.
//! * **A forwards** ([`accept`]): each `Watch` replaces what that node watches on A and renews
//!   its lease ([`LEASE`]: a node that stops renewing is forgotten, holding nothing on A). A
//!   task per watching node drains a hub subscription of A's commits and sends them as `Notify`
//!   batches, the latest state per key.
//! * **B delivers** ([`notified`]): to its devices only (a notice is never passed on, so nothing
//!   loops). If A had to drop notices (its queue for B filled: B too slow or unreachable), its
//!   next `Notify` says `missed`, and B ends every device subscription: the devices resubscribe
//!   and resync by digests, as after any lag.
//!
//! A key whose replicas include B is heard twice (B's own commit and A's notice): devices merge
//! states, so a repeat changes nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use haze_crdt::Value;
use haze_protocol::{Request, Response};
use haze_ring::NodeId;
use tokio::time::Instant;

use super::hub::{Audience, Hub, Subscription, Update};
use crate::cluster::Cluster;
use crate::error::RequestError;

/// How long a watch lasts unless renewed.
pub(crate) const LEASE: Duration = Duration::from_secs(15);
/// How often a node with subscribed devices renews its watches.
pub(crate) const RENEW: Duration = Duration::from_secs(5);
/// The most keys one `Watch` names; more, and the node watches every key.
pub(crate) const MAX_WATCH_KEYS: usize = crate::handler::MAX_BATCH_ITEMS;
/// The most notices one `Notify` carries.
const NOTIFY_BATCH: usize = 256;
/// How long a `Notify` may take before it is given up (its notices count as missed).
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

/// The watches other nodes hold on this one, by watching node.
#[derive(Default)]
pub(crate) struct Remote {
    by_node: Mutex<HashMap<u64, RemoteWatch>>,
    /// Whether this node's announcer runs.
    announcing: AtomicBool,
}

struct RemoteWatch {
    /// The forwarding task's subscription's id.
    sub: u64,
    until: Arc<Mutex<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes node `from`'s `Watch`: replaces what it watches here and renews its lease, starting its
/// forwarding task if it has none.
///
/// # Errors
///
/// `BadRequest` or `Overloaded` past the hub's bounds.
pub(crate) fn accept(
    hub: &Arc<Hub>,
    cluster: &Arc<Cluster>,
    from: u64,
    lease_ms: u32,
    keys: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
) -> Result<(), RequestError> {
    if keys.len() > MAX_WATCH_KEYS {
        return Err(RequestError::BadRequest(format!(
            "a watch names at most {MAX_WATCH_KEYS} keys"
        )));
    }
    let lease = Duration::from_millis(u64::from(lease_ms)).clamp(RENEW, LEASE * 4);
    let until = Instant::now() + lease;
    let mut watches = lock(&hub.remote().by_node);
    if let Some(watch) = watches.get(&from)
        && hub.rewatch_id(watch.sub, keys.clone(), prefixes.clone())
    {
        *lock(&watch.until) = until;
        return Ok(());
    }
    let sub = hub.subscribe(Audience::Peer);
    sub.rewatch(keys, prefixes)?;
    let until = Arc::new(Mutex::new(until));
    watches.insert(
        from,
        RemoteWatch {
            sub: sub.id(),
            until: until.clone(),
        },
    );
    drop(watches);
    let (hub, cluster) = (hub.clone(), cluster.clone());
    cluster
        .clone()
        .tasks()
        .spawn(format!("live updates to node {from}"), move |stop| {
            forward(hub, cluster, from, sub, until, stop)
        });
    Ok(())
}

/// Sends node `to` the commits its watch covers until the lease ends (or the node stops).
async fn forward(
    hub: Arc<Hub>,
    cluster: Arc<Cluster>,
    to: u64,
    mut sub: Subscription,
    until: Arc<Mutex<Instant>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let id = sub.id();
    let mut missed = false;
    let mut batch = Vec::new();
    loop {
        let deadline = *lock(&until);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep_until(deadline) => {
                if *lock(&until) <= Instant::now() {
                    break;
                }
                continue;
            }
            update = sub.next() => match update {
                Some(update) => batch.push(update),
                None => {
                    // Lagged: dropped from the hub. Watch again with what it watched (the
                    // lease holds), and say that notices were missed.
                    missed = true;
                    let (keys, prefixes) = sub.watched();
                    sub = hub.subscribe(Audience::Peer);
                    if sub.rewatch(keys, prefixes).is_err() {
                        break;
                    }
                    if let Some(watch) = lock(&hub.remote().by_node).get_mut(&to) {
                        watch.sub = sub.id();
                    }
                }
            }
        }
        sub.drain(NOTIFY_BATCH, &mut batch);
        if batch.is_empty() && !missed {
            continue;
        }
        let items = latest(std::mem::take(&mut batch));
        let sent = send(&cluster, to, items, missed).await;
        // What could not be sent is lost to B's devices: the next notice tells B so.
        missed = !sent;
    }
    let mut watches = lock(&hub.remote().by_node);
    if watches
        .get(&to)
        .is_some_and(|w| w.sub == sub.id() || w.sub == id)
    {
        watches.remove(&to);
    }
}

/// The latest state of each key, in the order keys were first seen.
fn latest(updates: Vec<Update>) -> Vec<(Vec<u8>, Value)> {
    let mut at: HashMap<Arc<[u8]>, usize> = HashMap::new();
    let mut items: Vec<(Arc<[u8]>, Arc<Value>)> = Vec::new();
    for update in updates {
        match at.get(&update.key) {
            Some(&i) => items[i].1 = update.value,
            None => {
                at.insert(update.key.clone(), items.len());
                items.push((update.key, update.value));
            }
        }
    }
    items
        .into_iter()
        .map(|(k, v)| (k.to_vec(), Arc::unwrap_or_clone(v)))
        .collect()
}

async fn send(cluster: &Arc<Cluster>, to: u64, items: Vec<(Vec<u8>, Value)>, missed: bool) -> bool {
    let Some(view) = cluster.view() else {
        return false;
    };
    let Ok(peer) = crate::cluster::peer(cluster, &view, NodeId(to)) else {
        return false;
    };
    let notice = peer.ask(Request::Notify { items, missed });
    match tokio::time::timeout(NOTIFY_TIMEOUT, notice).await {
        Ok(Ok(Response::Acks(_))) => true,
        Ok(Ok(other)) => {
            tracing::debug!(node = to, answer = ?other, "a notice got an unexpected answer");
            false
        }
        Ok(Err(e)) => {
            tracing::debug!(node = to, error = %e, "a notice of live updates failed");
            false
        }
        Err(_) => false,
    }
}

/// Takes another node's notices: to this node's devices only.
pub(crate) fn notified(hub: &Hub, items: &[(Vec<u8>, Value)], missed: bool) {
    if missed {
        hub.drop_devices();
    }
    for (key, value) in items {
        hub.publish(key, value, true);
    }
}

/// Starts this node's announcer once (at its first device subscription).
pub(crate) fn ensure_announcer(hub: &Arc<Hub>, cluster: &Arc<Cluster>) {
    if hub.remote().announcing.swap(true, Ordering::AcqRel) {
        return;
    }
    let (hub, cluster) = (hub.clone(), cluster.clone());
    cluster
        .clone()
        .tasks()
        .spawn("live updates: watching other nodes", move |stop| {
            announce(hub, cluster, stop)
        });
}

/// Tells every other node what this node's devices watch: at once when it changes (after a
/// short pause that gathers many devices' subscriptions into one announcement), and every
/// [`RENEW`] while any device is subscribed.
async fn announce(hub: Arc<Hub>, cluster: Arc<Cluster>, stop: tokio_util::sync::CancellationToken) {
    let mut announced: Option<u64> = None;
    let mut renew_at = Instant::now();
    loop {
        let changed = hub.changed();
        let version = hub.device_version();
        let watching = hub.devices() > 0;
        let due = watching && (announced != Some(version) || Instant::now() >= renew_at);
        if due && let Some(view) = cluster.view() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (version, mut keys, mut prefixes) = hub.device_interest();
            if keys.len() > MAX_WATCH_KEYS {
                keys.clear();
                prefixes = vec![Vec::new()];
            }
            let lease_ms = u32::try_from(LEASE.as_millis()).unwrap_or(u32::MAX);
            for (&id, _) in view.addrs.iter().filter(|(id, _)| **id != view.me) {
                let Ok(peer) = crate::cluster::peer(&cluster, &view, id) else {
                    continue;
                };
                let watch = Request::Watch {
                    node: view.me.0,
                    lease_ms,
                    keys: keys.clone(),
                    prefixes: prefixes.clone(),
                };
                // Each node in its own task: one that does not answer delays no other.
                tokio::spawn(async move {
                    let asked = tokio::time::timeout(NOTIFY_TIMEOUT, peer.ask(watch)).await;
                    if !matches!(asked, Ok(Ok(Response::Acks(_)))) {
                        tracing::debug!(node = id.0, outcome = ?asked.map(|r| r.map(|_| ())), "a watch was not taken");
                    }
                });
            }
            announced = Some(version);
            renew_at = Instant::now() + RENEW;
            continue;
        }
        let wait = if watching {
            renew_at.saturating_duration_since(Instant::now())
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = changed => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
