//! Connections to the other nodes of the cluster, and the queue of copies to each.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use haze_crdt::Value;
use haze_protocol::{CallError, Channel, ChannelConfig, Dial, Request, Response, Role};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use haze_ring::NodeId;

use super::{ClusterError, ClusterView};
use crate::supervisor::Supervisor;

/// Why a request to another node failed.
pub type PeerError = CallError;

/// Copies waiting for one peer; past this, a coordinator waits for room (up to the forward
/// timeout; then the copy is left to anti-entropy).
const COPY_QUEUE: usize = 8192;
/// The most copies in one request.
const COPIES_PER_REQUEST: usize = 512;
/// Copy requests in flight to one peer at once.
const COPY_REQUESTS_IN_FLIGHT: usize = 8;
/// The bytes one copy request may carry, counting every state at the largest size allowed.
const COPY_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// After a failed connection to a peer, requests to it fail at once for this long.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// One copy of a write for a replica: the merged state, and where its outcome goes (the
/// coordinator counting acknowledgements; it may have stopped listening).
struct CopyJob {
    key: Vec<u8>,
    value: Value,
    /// The coordinator's tag for this copy's item.
    tag: usize,
    done: mpsc::UnboundedSender<(usize, bool)>,
}

/// A peer: its channel and the queue its copier task drains.
#[derive(Clone)]
struct Link {
    client: Channel,
    copies: mpsc::Sender<CopyJob>,
}

/// One lazily opened, pipelined client per other node, keyed by address, all saying they come
/// from cluster `cluster`, and a copier per node that sends queued copies in batches. A client
/// whose node is down costs nothing until used; it reconnects on its next request once the node
/// is back.
pub(crate) struct Peers {
    dial: Arc<dyn Dial>,
    timeout: Duration,
    /// Copies a request may carry without measuring them: as many states of the largest allowed
    /// size as fit in [`COPY_REQUEST_BYTES`]. Past that, each is measured.
    unmeasured_copies: usize,
    links: Mutex<(u64, BTreeMap<String, Link>)>,
    /// Copies that failed or were never queued (the node's `copies_failed` metric).
    failed: Arc<AtomicU64>,
    /// Copies waiting for room in a full queue in tasks of their own (see `spill`): bounded,
    /// past which coordinators wait for room themselves (backpressure).
    spilled: Arc<Semaphore>,
    /// Starts the copier of each peer.
    tasks: Arc<Supervisor>,
}

/// The most copies waiting for room in full queues at once, node-wide.
const SPILLED_COPIES: usize = 4096;

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// Returns an empty set of peers that connect with `dial` and give up on a request after
    /// `timeout` (then the router tries the next replica); `largest_item` is the largest key and
    /// state a copy may carry.
    pub(crate) fn new(
        dial: Arc<dyn Dial>,
        timeout: Duration,
        largest_item: usize,
        failed: Arc<AtomicU64>,
        tasks: Arc<Supervisor>,
    ) -> Peers {
        Peers {
            dial,
            timeout,
            unmeasured_copies: (COPY_REQUEST_BYTES / largest_item.max(1))
                .clamp(1, COPIES_PER_REQUEST),
            links: Mutex::new((0, BTreeMap::new())),
            failed,
            spilled: Arc::new(Semaphore::new(SPILLED_COPIES)),
            tasks,
        }
    }

    fn link(&self, cluster: u64, addr: &str) -> Link {
        let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        if links.0 != cluster {
            // Another cluster (a view from a new controller): old connections say the old id.
            *links = (cluster, BTreeMap::new());
        }
        links
            .1
            .entry(addr.to_string())
            .or_insert_with(|| {
                let client = Channel::lazy(
                    addr,
                    ChannelConfig {
                        dial: self.dial.clone(),
                        connect_timeout: self.timeout,
                        request_timeout: self.timeout,
                        role: Role::Peer { cluster },
                        reconnect_backoff: RECONNECT_BACKOFF,
                        ..ChannelConfig::default()
                    },
                );
                let (copies, queue) = mpsc::channel(COPY_QUEUE);
                let (copying, unmeasured, failed) =
                    (client.clone(), self.unmeasured_copies, self.failed.clone());
                self.tasks.spawn(format!("copier to {addr}"), move |stop| {
                    copier(copying, queue, unmeasured, failed, stop)
                });
                Link { client, copies }
            })
            .clone()
    }

    /// Closes every connection to other nodes (the node is stopping; its copiers have ended):
    /// each connection's tasks end with it.
    pub(crate) fn close(&self) {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clear();
    }

    /// Returns the channel to the node at `addr`, as a member of cluster `cluster`.
    pub(crate) fn client(&self, cluster: u64, addr: &str) -> Channel {
        self.link(cluster, addr).client
    }

    /// Queues a copy of `value` for the node at `addr` if its queue has room now; otherwise
    /// gives the key and value back (nothing is counted: the caller decides).
    pub(crate) fn try_copy(
        &self,
        cluster: u64,
        addr: &str,
        key: Vec<u8>,
        value: Value,
        tag: usize,
        done: &mpsc::UnboundedSender<(usize, bool)>,
    ) -> Option<(Vec<u8>, Value)> {
        let queue = self.link(cluster, addr).copies;
        let job = CopyJob {
            key,
            value,
            tag,
            done: done.clone(),
        };
        match queue.try_send(job) {
            Ok(()) => None,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                Some((job.key, job.value))
            }
        }
    }

    /// Returns a permit to let a copy wait for room in a task of its own, if fewer than
    /// [`SPILLED_COPIES`] do.
    pub(crate) fn spill(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.spilled.clone().try_acquire_owned().ok()
    }

    /// Queues a copy of `value` for the node at `addr`; `done` gets `tag` and whether the node
    /// merged it. When many copies wait for that node already, this waits for room (the
    /// coordinator slows down rather than fail writes), up to the forward timeout.
    pub(crate) async fn copy(
        &self,
        cluster: u64,
        addr: &str,
        key: Vec<u8>,
        value: Value,
        tag: usize,
        done: mpsc::UnboundedSender<(usize, bool)>,
    ) {
        let Some((key, value)) = self.try_copy(cluster, addr, key, value, tag, &done) else {
            return;
        };
        // Full (or closed: then `reserve` fails at once): wait for room.
        let queue = self.link(cluster, addr).copies;
        let job = CopyJob {
            key,
            value,
            tag,
            done,
        };
        let refused = match tokio::time::timeout(self.timeout, queue.reserve()).await {
            Ok(Ok(room)) => {
                room.send(job);
                None
            }
            _ => Some(job),
        };
        if let Some(job) = refused {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let _ = job.done.send((job.tag, false));
        }
    }
}

/// Sends a peer's queued copies: whatever has queued goes in one `Copy` request (up to
/// [`COPIES_PER_REQUEST`] and [`COPY_REQUEST_BYTES`]), with a few requests in flight at once, so
/// copies cost a request per batch, not per write, under load.
/// Ends when the queue closes (the peer's link was dropped) or `stop` is cancelled; requests in
/// flight then end with it (their copies count as failed; anti-entropy heals them).
async fn copier(
    client: Channel,
    mut queue: mpsc::Receiver<CopyJob>,
    unmeasured: usize,
    failed: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(COPY_REQUESTS_IN_FLIGHT));
    let mut requests = JoinSet::new();
    let mut held: Option<CopyJob> = None;
    loop {
        // Reap answered requests so the set stays small.
        while requests.try_join_next().is_some() {}
        let first = match held.take() {
            Some(job) => job,
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                job = queue.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            },
        };
        let mut jobs = vec![first];
        // The first `unmeasured` copies fit whatever their size; past them, each is measured
        // so a request stays well under a frame.
        let mut bytes = 0usize;
        while jobs.len() < COPIES_PER_REQUEST {
            let Ok(job) = queue.try_recv() else { break };
            if jobs.len() >= unmeasured {
                if bytes == 0 {
                    bytes = jobs
                        .iter()
                        .map(|j| j.key.len() + j.value.encode().len())
                        .sum();
                }
                let size = job.key.len() + job.value.encode().len();
                if bytes + size > COPY_REQUEST_BYTES {
                    held = Some(job);
                    break;
                }
                bytes += size;
            }
            jobs.push(job);
        }
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (client, failed) = (client.clone(), failed.clone());
        requests.spawn(async move {
            let (items, waiters): (Vec<_>, Vec<_>) = jobs
                .into_iter()
                .map(|j| ((j.key, j.value), (j.tag, j.done)))
                .unzip();
            let n = items.len();
            let answer = client.send(Request::Copy { items }, true).await;
            match answer {
                Ok(Response::Acks(results)) if results.len() == n => {
                    for ((tag, done), result) in waiters.into_iter().zip(results) {
                        if result.is_err() {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        let _ = done.send((tag, result.is_ok()));
                    }
                }
                other => {
                    tracing::debug!(?other, copies = n, "a copy request failed");
                    failed.fetch_add(n as u64, Ordering::Relaxed);
                    for (tag, done) in waiters {
                        let _ = done.send((tag, false));
                    }
                }
            }
            drop(permit);
        });
    }
    requests.shutdown().await;
}

/// Another node, as background work (anti-entropy, streams, hand-backs) asks it: each error
/// names the node.
#[derive(Clone)]
pub(crate) struct Peer {
    pub(crate) id: NodeId,
    channel: Channel,
}

impl Peer {
    /// The node `id` of `view`, over this node's connection to it.
    pub(crate) fn of(peers: &Peers, view: &ClusterView, id: NodeId) -> Result<Peer, ClusterError> {
        let addr = view.addrs.get(&id).ok_or(ClusterError::NoAddress(id))?;
        Ok(Peer {
            id,
            channel: peers.client(view.cluster, addr),
        })
    }

    /// Sends `request` (all of these may be sent twice) and returns the answer, an error answer
    /// as an error.
    pub(crate) async fn ask(&self, request: Request) -> Result<Response, ClusterError> {
        match self.channel.send(request, true).await {
            Ok(Response::Error(error)) => Err(ClusterError::Answered {
                peer: self.id,
                error,
            }),
            Ok(answer) => Ok(answer),
            Err(source) => Err(ClusterError::Peer {
                peer: self.id,
                source,
            }),
        }
    }

    fn unexpected(&self, asked: &'static str, answer: &Response) -> ClusterError {
        ClusterError::Unexpected {
            peer: self.id,
            asked,
            answer: format!("{answer:?}").chars().take(200).collect(),
        }
    }

    /// The digest of each of its buckets.
    pub(crate) async fn buckets(&self) -> Result<Vec<u64>, ClusterError> {
        match self.ask(Request::Buckets).await? {
            Response::Buckets(digests) => Ok(digests),
            other => Err(self.unexpected("bucket digests", &other)),
        }
    }

    /// A page of the keys of one of its buckets, with their digests.
    pub(crate) async fn bucket_keys(
        &self,
        bucket: u32,
        after: Option<Vec<u8>>,
    ) -> Result<(Vec<(Vec<u8>, u64)>, bool), ClusterError> {
        match self.ask(Request::BucketKeys { bucket, after }).await? {
            Response::KeyDigests { keys, more } => Ok((keys, more)),
            other => Err(self.unexpected("a bucket's keys", &other)),
        }
    }

    /// Its own copy of `key`.
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Value>, ClusterError> {
        match self.ask(Request::Get { key: key.to_vec() }).await? {
            Response::Value(value) => Ok(value),
            other => Err(self.unexpected("a value", &other)),
        }
    }

    /// Merges `items` into its copies, in the foreground (`Copy`) or the background
    /// (`Backfill`) queue of its writer; one outcome per item.
    pub(crate) async fn merge_copies(
        &self,
        items: Vec<(Vec<u8>, Value)>,
        priority: haze_storage::Priority,
    ) -> Result<Vec<Result<(), haze_protocol::WireError>>, ClusterError> {
        let n = items.len();
        let request = match priority {
            haze_storage::Priority::Foreground => Request::Copy { items },
            haze_storage::Priority::Background => Request::Backfill { items },
        };
        match self.ask(request).await? {
            Response::Acks(acks) if acks.len() == n => Ok(acks),
            other => Err(self.unexpected("acknowledgements", &other)),
        }
    }
}
