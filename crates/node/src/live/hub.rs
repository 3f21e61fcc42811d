//! The node's commit observer for live updates: who listens to which keys, and the hand-off of
//! every committed write to them.
//!
//! A [`Subscription`] is a bounded queue of [`Update`]s and the keys and key prefixes it
//! watches. [`Hub::publish`] runs on the writer's thread after each commit: with nobody
//! subscribed it costs one atomic load; otherwise it finds the subscriptions that watch the key
//! and offers each the update without waiting. A subscription whose queue is full is *lagged*:
//! it is dropped from the hub at once (it holds nothing more on the node) and its owner ends it,
//! so that the device resyncs by digests when it comes back (docs/http-api.md, "Live updates").
//!
//! Invariants: every subscription in `subs` has its keys in `by_key` and its prefixes in
//! `by_prefix` (and nothing else is there); `watched` counts the entries of both, and stays under
//! [`MAX_WATCHED`] however many subscribers ask.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use haze_crdt::Value;
use tokio::sync::mpsc;

use crate::error::RequestError;

/// Updates a subscription may have waiting before it counts as lagged.
pub const QUEUE: usize = 256;
/// Keys and prefixes watched by all the subscriptions of a node together.
pub const MAX_WATCHED: usize = 1_000_000;
/// Prefixes one subscription may watch.
pub const MAX_PREFIXES: usize = 64;

/// A committed write to a watched key: the merged state after the commit.
#[derive(Debug, Clone)]
pub struct Update {
    /// The key.
    pub key: Arc<[u8]>,
    /// Its state once the write was committed (shared by every subscription it reaches).
    pub value: Arc<Value>,
    /// The state as JSON, made by the first subscriber that sends it, for all of them.
    json: Arc<std::sync::OnceLock<String>>,
}

impl Update {
    /// The state as JSON (serialised once, whatever the number of subscribers).
    pub fn state_json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&*self.value).expect("a state serialises"))
    }
}

/// Where a subscription's updates come from, so a node never passes another node's
/// notifications on to a third (which would loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A device connected to this node: hears of commits here and of other nodes' notices.
    Device,
    /// Another node watching keys on this one: hears only of commits here.
    Peer,
}

struct Sub {
    keys: HashSet<Arc<[u8]>>,
    prefixes: HashSet<Arc<[u8]>>,
    tx: mpsc::Sender<Update>,
    lagged: Arc<AtomicBool>,
    audience: Audience,
}

#[derive(Default)]
struct Inner {
    next: u64,
    subs: HashMap<u64, Sub>,
    by_key: HashMap<Arc<[u8]>, HashSet<u64>>,
    by_prefix: HashMap<Arc<[u8]>, HashSet<u64>>,
    /// How many prefixes of each length are watched: a key is looked up only at these lengths.
    prefix_lengths: BTreeMap<usize, usize>,
    watched: usize,
}

/// The subscriptions of one node.
#[derive(Default)]
pub struct Hub {
    /// Subscriptions now: zero makes [`publish`](Hub::publish) free.
    active: AtomicUsize,
    inner: Mutex<Inner>,
    /// Bumped whenever a device subscription's watched set changes (the watcher of other
    /// nodes re-announces the union).
    device_changes: AtomicU64,
    changed: tokio::sync::Notify,
    /// Device subscriptions now.
    devices: AtomicUsize,
    /// The watches other nodes hold here.
    remote: super::watch::Remote,
    /// Updates delivered, and subscriptions dropped for lagging (for `/metrics`).
    delivered: AtomicU64,
    lagged: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One subscriber's end: its updates, and whether it lagged. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    hub: Arc<Hub>,
    rx: mpsc::Receiver<Update>,
    lagged: Arc<AtomicBool>,
}

impl Subscription {
    /// Its id in the hub.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// What it watched (keys, prefixes); nothing once dropped from the hub.
    pub(crate) fn watched(&self) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let inner = lock(&self.hub.inner);
        inner
            .subs
            .get(&self.id)
            .map_or_else(Default::default, |sub| {
                (
                    sub.keys.iter().map(|k| k.to_vec()).collect(),
                    sub.prefixes.iter().map(|p| p.to_vec()).collect(),
                )
            })
    }

    /// The next update; `None` once the hub dropped this subscription for lagging.
    pub async fn next(&mut self) -> Option<Update> {
        self.rx.recv().await
    }

    /// Takes the updates waiting now, without waiting (at most `max`).
    pub fn drain(&mut self, max: usize, into: &mut Vec<Update>) {
        while into.len() < max {
            match self.rx.try_recv() {
                Ok(update) => into.push(update),
                Err(_) => break,
            }
        }
    }

    /// Whether the hub dropped this subscription because its queue was full.
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    /// Adds keys and prefixes to what this subscription watches.
    ///
    /// # Errors
    ///
    /// `Overloaded` past the node's or the subscription's bounds (nothing is added then).
    pub fn watch(&self, keys: Vec<Vec<u8>>, prefixes: Vec<Vec<u8>>) -> Result<(), RequestError> {
        self.hub.watch(self.id, keys, prefixes, false)
    }

    /// Replaces what this subscription watches.
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    pub fn rewatch(&self, keys: Vec<Vec<u8>>, prefixes: Vec<Vec<u8>>) -> Result<(), RequestError> {
        self.hub.watch(self.id, keys, prefixes, true)
    }

    /// Stops watching `keys` and `prefixes`.
    pub fn unwatch(&self, keys: &[Vec<u8>], prefixes: &[Vec<u8>]) {
        self.hub.unwatch(self.id, keys, prefixes);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.id);
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A new subscription watching nothing yet.
    pub fn subscribe(self: &Arc<Self>, audience: Audience) -> Subscription {
        let (tx, rx) = mpsc::channel(QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut inner = lock(&self.inner);
        inner.next += 1;
        let id = inner.next;
        inner.subs.insert(
            id,
            Sub {
                keys: HashSet::new(),
                prefixes: HashSet::new(),
                tx,
                lagged: lagged.clone(),
                audience,
            },
        );
        self.count(&inner);
        drop(inner);
        if audience == Audience::Device {
            self.changed.notify_waiters();
        }
        Subscription {
            id,
            hub: self.clone(),
            rx,
            lagged,
        }
    }

    /// Subscriptions now.
    pub fn subscribers(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Hands a committed write to every subscription that watches `key`; never waits. With
    /// `from_peer`, only devices hear of it (a peer's notice is not passed on).
    pub fn publish(&self, key: &[u8], value: &Value, from_peer: bool) {
        if self.active.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut inner = lock(&self.inner);
        let mut targets: Vec<u64> = Vec::new();
        if let Some(ids) = inner.by_key.get(key) {
            targets.extend(ids);
        }
        for (&len, _) in inner.prefix_lengths.range(..=key.len()) {
            if let Some(ids) = inner.by_prefix.get(&key[..len]) {
                targets.extend(ids);
            }
        }
        if targets.is_empty() {
            return;
        }
        targets.sort_unstable();
        targets.dedup();
        let update = Update {
            key: key.into(),
            value: Arc::new(value.clone()),
            json: Arc::default(),
        };
        let mut dropped = Vec::new();
        for id in targets {
            let Some(sub) = inner.subs.get(&id) else {
                continue;
            };
            if from_peer && sub.audience == Audience::Peer {
                continue;
            }
            match sub.tx.try_send(update.clone()) {
                Ok(()) => {
                    self.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagged.store(true, Ordering::Release);
                    self.lagged.fetch_add(1, Ordering::Relaxed);
                    dropped.push(id);
                }
                // Its owner is gone and about to remove it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        if dropped.is_empty() {
            return;
        }
        for id in dropped {
            // Dropping the sender closes the queue: the owner drains what is there, then sees
            // `None` and `lagged`.
            Self::forget(&mut inner, id, &self.device_changes);
        }
        self.count(&inner);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Records how many subscriptions there are (of devices, and in all).
    fn count(&self, inner: &Inner) {
        let devices = inner
            .subs
            .values()
            .filter(|s| s.audience == Audience::Device)
            .count();
        self.devices.store(devices, Ordering::Release);
        self.active.store(inner.subs.len(), Ordering::Release);
    }

    /// Updates handed to subscriptions since the node started.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Subscriptions dropped because they could not keep up, since the node started.
    pub fn lagged_total(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// The hub's figures for `/metrics` (Prometheus text).
    pub fn render(&self) -> String {
        let peers = self.subscribers() - self.devices();
        format!(
            "# HELP haze_live_devices Device sessions subscribed to live updates on this node.\n\
             # TYPE haze_live_devices gauge\nhaze_live_devices {}\n\
             # HELP haze_live_watching_nodes Other nodes watching this node's commits for their devices.\n\
             # TYPE haze_live_watching_nodes gauge\nhaze_live_watching_nodes {peers}\n\
             # HELP haze_live_updates_total Committed writes handed to a subscription (a device's, or another node's).\n\
             # TYPE haze_live_updates_total counter\nhaze_live_updates_total {}\n\
             # HELP haze_live_lagged_total Subscriptions dropped because they could not keep up (their devices resync).\n\
             # TYPE haze_live_lagged_total counter\nhaze_live_lagged_total {}\n",
            self.devices(),
            self.delivered_total(),
            self.lagged_total()
        )
    }

    /// Device subscriptions now.
    pub fn devices(&self) -> usize {
        self.devices.load(Ordering::Acquire)
    }

    /// Ends every device subscription as if it lagged (another node dropped notices for them):
    /// each device resubscribes and resyncs.
    pub(crate) fn drop_devices(&self) {
        let mut inner = lock(&self.inner);
        let ids: Vec<u64> = inner
            .subs
            .iter()
            .filter(|(_, s)| s.audience == Audience::Device)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some(sub) = inner.subs.get(&id) {
                sub.lagged.store(true, Ordering::Release);
            }
            self.lagged.fetch_add(1, Ordering::Relaxed);
            Self::forget(&mut inner, id, &self.device_changes);
        }
        self.count(&inner);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Replaces what subscription `id` watches; `false` if it is gone (or the bounds refuse).
    pub(crate) fn rewatch_id(&self, id: u64, keys: Vec<Vec<u8>>, prefixes: Vec<Vec<u8>>) -> bool {
        self.watch(id, keys, prefixes, true).is_ok()
    }

    pub(super) fn remote(&self) -> &super::watch::Remote {
        &self.remote
    }

    fn watch(
        &self,
        id: u64,
        keys: Vec<Vec<u8>>,
        prefixes: Vec<Vec<u8>>,
        replace: bool,
    ) -> Result<(), RequestError> {
        let mut inner = lock(&self.inner);
        let Some(sub) = inner.subs.get(&id) else {
            return Err(RequestError::Unavailable(
                "the subscription lagged and was dropped: subscribe again and sync".into(),
            ));
        };
        let (old_keys, old_prefixes) = if replace {
            (sub.keys.len(), sub.prefixes.len())
        } else {
            (0, 0)
        };
        let prefix_count = if replace { 0 } else { sub.prefixes.len() } + prefixes.len();
        if prefix_count > MAX_PREFIXES {
            return Err(RequestError::BadRequest(format!(
                "a subscription watches at most {MAX_PREFIXES} prefixes"
            )));
        }
        let after = inner.watched - old_keys - old_prefixes + keys.len() + prefixes.len();
        if after > MAX_WATCHED {
            return Err(RequestError::Overloaded(format!(
                "this node watches {MAX_WATCHED} keys and prefixes for its subscribers at most"
            )));
        }
        if replace {
            let sub = inner.subs.get_mut(&id).expect("checked above");
            let keys: Vec<_> = sub.keys.drain().collect();
            let prefixes: Vec<_> = sub.prefixes.drain().collect();
            for key in keys {
                Self::unindex(&mut inner, id, &key, false);
            }
            for prefix in prefixes {
                Self::unindex(&mut inner, id, &prefix, true);
            }
        }
        let audience = inner.subs[&id].audience;
        for key in keys {
            let key: Arc<[u8]> = key.into();
            if inner
                .subs
                .get_mut(&id)
                .expect("present")
                .keys
                .insert(key.clone())
            {
                inner.by_key.entry(key).or_default().insert(id);
                inner.watched += 1;
            }
        }
        for prefix in prefixes {
            let prefix: Arc<[u8]> = prefix.into();
            let sub = inner.subs.get_mut(&id).expect("present");
            if sub.prefixes.insert(prefix.clone()) {
                *inner.prefix_lengths.entry(prefix.len()).or_default() += 1;
                inner.by_prefix.entry(prefix).or_default().insert(id);
                inner.watched += 1;
            }
        }
        drop(inner);
        if audience == Audience::Device {
            self.device_changes.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
        Ok(())
    }

    fn unwatch(&self, id: u64, keys: &[Vec<u8>], prefixes: &[Vec<u8>]) {
        let mut inner = lock(&self.inner);
        let Some(sub) = inner.subs.get_mut(&id) else {
            return;
        };
        let audience = sub.audience;
        let mut gone: Vec<(Arc<[u8]>, bool)> = Vec::new();
        for key in keys {
            if let Some(k) = sub.keys.take(key.as_slice()) {
                gone.push((k, false));
            }
        }
        for prefix in prefixes {
            if let Some(p) = sub.prefixes.take(prefix.as_slice()) {
                gone.push((p, true));
            }
        }
        for (entry, is_prefix) in gone {
            Self::unindex(&mut inner, id, &entry, is_prefix);
        }
        drop(inner);
        if audience == Audience::Device {
            self.device_changes.fetch_add(1, Ordering::AcqRel);
            self.changed.notify_waiters();
        }
    }

    /// Removes one entry of subscription `id` from the indexes (not from the subscription).
    fn unindex(inner: &mut Inner, id: u64, entry: &[u8], is_prefix: bool) {
        let index = if is_prefix {
            &mut inner.by_prefix
        } else {
            &mut inner.by_key
        };
        if let Some(ids) = index.get_mut(entry) {
            ids.remove(&id);
            if ids.is_empty() {
                index.remove(entry);
            }
        }
        if is_prefix && let Some(n) = inner.prefix_lengths.get_mut(&entry.len()) {
            *n -= 1;
            if *n == 0 {
                inner.prefix_lengths.remove(&entry.len());
            }
        }
        inner.watched -= 1;
    }

    fn forget(inner: &mut Inner, id: u64, device_changes: &AtomicU64) {
        let Some(sub) = inner.subs.remove(&id) else {
            return;
        };
        for key in &sub.keys {
            Self::unindex(inner, id, key, false);
        }
        for prefix in &sub.prefixes {
            Self::unindex(inner, id, prefix, true);
        }
        if sub.audience == Audience::Device {
            device_changes.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn remove(&self, id: u64) {
        let mut inner = lock(&self.inner);
        Self::forget(&mut inner, id, &self.device_changes);
        self.count(&inner);
        drop(inner);
        self.changed.notify_waiters();
    }

    /// What the devices subscribed here watch, together (keys, prefixes), and the change
    /// count it was read at.
    pub fn device_interest(&self) -> (u64, Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let inner = lock(&self.inner);
        let version = self.device_changes.load(Ordering::Acquire);
        let mut keys = HashSet::new();
        let mut prefixes = HashSet::new();
        for sub in inner.subs.values() {
            if sub.audience == Audience::Device {
                keys.extend(sub.keys.iter().cloned());
                prefixes.extend(sub.prefixes.iter().cloned());
            }
        }
        (
            version,
            keys.into_iter().map(|k| k.to_vec()).collect(),
            prefixes.into_iter().map(|p| p.to_vec()).collect(),
        )
    }

    /// The change count of the devices' watched set.
    pub fn device_version(&self) -> u64 {
        self.device_changes.load(Ordering::Acquire)
    }

    /// Completes when a subscription or a device's watched set changes after this call (even
    /// before it is first polled).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haze_crdt::{ActorId, GCounter};

    fn counter(n: u64) -> Value {
        let mut c = GCounter::new();
        c.increment(ActorId::new(1), n).unwrap();
        Value::GCounter(c)
    }

    #[tokio::test]
    async fn a_subscription_hears_of_its_keys_and_prefixes_only() {
        let hub = Arc::new(Hub::default());
        let mut sub = hub.subscribe(Audience::Device);
        sub.watch(vec![b"list".to_vec()], vec![b"todo:".to_vec()])
            .unwrap();
        hub.publish(b"other", &counter(1), false);
        hub.publish(b"list", &counter(2), false);
        hub.publish(b"todo:1", &counter(3), false);
        hub.publish(b"todo", &counter(4), false);
        let mut got = Vec::new();
        sub.drain(10, &mut got);
        let keys: Vec<&[u8]> = got.iter().map(|u| &*u.key).collect();
        assert_eq!(keys, [&b"list"[..], b"todo:1"]);
        drop(sub);
        assert_eq!(hub.subscribers(), 0);
        assert_eq!(lock(&hub.inner).watched, 0, "dropping unindexes everything");
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_subscription_and_frees_what_it_held() {
        let hub = Arc::new(Hub::default());
        let mut slow = hub.subscribe(Audience::Device);
        slow.watch(vec![b"k".to_vec()], vec![]).unwrap();
        let mut fine = hub.subscribe(Audience::Device);
        fine.watch(vec![b"k".to_vec()], vec![]).unwrap();
        for n in 0..=QUEUE as u64 {
            hub.publish(b"k", &counter(n + 1), false);
            let mut got = Vec::new();
            fine.drain(1, &mut got);
            assert_eq!(
                got.len(),
                1,
                "the subscriber that keeps up hears every write"
            );
        }
        assert!(slow.lagged());
        assert_eq!(hub.subscribers(), 1);
        let mut waiting = 0;
        while slow.next().await.is_some() {
            waiting += 1;
        }
        assert_eq!(
            waiting, QUEUE,
            "what was queued is still read, then the end"
        );
        assert!(slow.watch(vec![b"k".to_vec()], vec![]).is_err());
    }

    #[tokio::test]
    async fn peers_do_not_hear_other_peers_notices_and_bounds_hold() {
        let hub = Arc::new(Hub::default());
        let mut peer = hub.subscribe(Audience::Peer);
        peer.watch(vec![], vec![Vec::new()]).unwrap();
        hub.publish(b"k", &counter(1), true);
        let mut got = Vec::new();
        peer.drain(10, &mut got);
        assert!(got.is_empty());
        hub.publish(b"k", &counter(1), false);
        peer.drain(10, &mut got);
        assert_eq!(got.len(), 1, "the empty prefix watches every key");
        let many = (0..=MAX_PREFIXES).map(|i| vec![i as u8]).collect();
        assert!(peer.watch(vec![], many).is_err());
        peer.rewatch(vec![b"a".to_vec()], vec![]).unwrap();
        assert_eq!(lock(&hub.inner).watched, 1);
        assert!(lock(&hub.inner).prefix_lengths.is_empty());
    }
}
