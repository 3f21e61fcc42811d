//! Routed reads: a key's value or digest merged from a read quorum of its replicas, with the
//! replicas that were behind repaired (or, with a read quorum of one, from the first replica
//! that answers); a majority's merge while its partition moves; digests of many keys; and
//! merged reads of every replica, which repair too.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use haze_crdt::Value;
use haze_protocol::{CallError, ErrorCode, Request, Response, WireError};
use haze_ring::NodeId;
use haze_storage::Priority;
use tokio::task::JoinSet;

use super::super::{Cluster, ClusterView};
use super::{first_answer, forward, no_replica, retry_elsewhere};
use crate::error::RequestError;
use crate::replica::WriteRequest;

/// A read of a key (its value, or its digest): merged from a read quorum of its replicas
/// ([`quorum_read`]), or, with a read quorum of one, from the first replica that answers.
pub(super) async fn read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    digest: bool,
) -> Result<Response, RequestError> {
    cluster.replica().check_key(&key)?;
    let needed = cluster
        .settings()
        .read_quorum
        .required(view.replicas(&key).len());
    if !digest && view.in_move(&key) {
        return moving_read(cluster, view, key, needed)
            .await
            .map(Response::Value);
    }
    if needed > 1 {
        return quorum_read(cluster, view, &key, needed, digest).await;
    }
    let replicas = view.replicas(&key).to_vec();
    let local = || async {
        if digest {
            cluster.replica().digest(&key).map(Response::Digest)
        } else {
            cluster.replica().get(&key).map(Response::Value)
        }
    };
    let request = if digest {
        Request::Digest { key: key.clone() }
    } else {
        Request::Get { key: key.clone() }
    };
    let (mut from, mut absent) = (0, 0);
    loop {
        let (i, answer) =
            first_answer(cluster, view, &replicas[from..], request.clone(), local).await?;
        // A replica without the key may be one that lost its disk or missed the writes while
        // down, not yet refilled by anti-entropy: "absent" is believed only when every replica
        // that answers says so, and they are a majority of the key's replicas (a write
        // acknowledged by a quorum is on at least one of them).
        if !matches!(answer, Response::Value(None)) {
            return Ok(answer);
        }
        absent += 1;
        if from + i + 1 >= replicas.len() {
            let majority = replicas.len() / 2 + 1;
            if absent < majority {
                return Err(RequestError::Unavailable(format!(
                    "the replicas that answered do not hold the key, but only {absent} of {} \
                     answered: it may be on the others",
                    replicas.len()
                )));
            }
            return Ok(answer);
        }
        from += i + 1;
    }
}

/// What a quorum read asks each replica for: a key's value, or its digest.
trait Held: PartialEq + Send + Sized {
    fn request(key: &[u8]) -> Request;
    fn local(cluster: &Cluster, key: &[u8]) -> Result<Option<Self>, RequestError>;
    /// The answer in a replica's response, if it is one.
    fn take(response: Response) -> Option<Option<Self>>;
}

impl Held for Value {
    fn request(key: &[u8]) -> Request {
        Request::Get { key: key.to_vec() }
    }

    fn local(cluster: &Cluster, key: &[u8]) -> Result<Option<Self>, RequestError> {
        cluster.replica().get(key)
    }

    fn take(response: Response) -> Option<Option<Self>> {
        match response {
            Response::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl Held for u64 {
    fn request(key: &[u8]) -> Request {
        Request::Digest { key: key.to_vec() }
    }

    fn local(cluster: &Cluster, key: &[u8]) -> Result<Option<Self>, RequestError> {
        cluster.replica().digest(key)
    }

    fn take(response: Response) -> Option<Option<Self>> {
        match response {
            Response::Digest(d) => Some(d),
            _ => None,
        }
    }
}

/// A read that merges the answers of `needed` (more than one) of the key's replicas and repairs
/// those that were behind, before it answers: with writes acknowledged by a majority and reads
/// merging a majority, every read meets a replica that holds every write acknowledged before it
/// began. "Absent" needs a majority's word (a replica that lost its disk, or missed the writes
/// while down, has nothing until it is repaired).
///
/// A digest read asks for digests first: when they agree (the usual case), that is the answer;
/// when they differ, it reads and merges the values, repairs, and answers the merge's digest.
async fn quorum_read(
    cluster: &Cluster,
    view: &ClusterView,
    key: &[u8],
    needed: usize,
    digest: bool,
) -> Result<Response, RequestError> {
    if digest {
        let (mut digests, damaged) = gather::<u64>(cluster, view, key, needed).await?;
        if damaged.is_empty() && digests.iter().all(|(_, d)| *d == digests[0].1) {
            return Ok(Response::Digest(digests.swap_remove(0).1));
        }
    }
    let (values, damaged) = gather::<Value>(cluster, view, key, needed).await?;
    let merged = merge_and_repair(cluster, view, key, values, &damaged).await?;
    Ok(if digest {
        Response::Digest(
            merged
                .as_ref()
                .map(|v| haze_crdt::digest::key_digest(key, &v.encode())),
        )
    } else {
        Response::Value(merged)
    })
}

/// A replica's answer, on its way.
type Asking<'a> = Pin<Box<dyn Future<Output = (NodeId, Result<Response, CallError>)> + Send + 'a>>;

/// What replicas answered, and those whose copy is damaged (they answered `corrupt`).
type Gathered<T> = (Vec<(NodeId, Option<T>)>, Vec<NodeId>);

/// Collects the answers of `needed` of the key's replicas (this node's own first, when it is
/// one; the others in table order, asked together, the next one when one fails), or of a
/// majority while none holds the key. A replica whose copy is damaged (quarantined: it answers
/// `corrupt`) counts as one that failed, and is named so that the read repairs it.
async fn gather<T: Held>(
    cluster: &Cluster,
    view: &ClusterView,
    key: &[u8],
    needed: usize,
) -> Result<Gathered<T>, RequestError> {
    let replicas = view.replicas(key);
    let majority = replicas.len() / 2 + 1;
    let mut answers: Vec<(NodeId, Option<T>)> = Vec::with_capacity(replicas.len());
    let mut damaged = Vec::new();
    let mut tried = Vec::new();
    if replicas.contains(&view.me) && cluster.serves_reads() {
        match T::local(cluster, key) {
            Ok(held) => answers.push((view.me, held)),
            Err(e) => {
                if e.to_wire().code == ErrorCode::Corrupt {
                    damaged.push(view.me);
                }
                tried.push(format!("{}: {e}", view.me));
            }
        }
    }
    let mut others = replicas.iter().copied().filter(|r| *r != view.me);
    let mut asking: Vec<Asking<'_>> = Vec::new();
    let want = loop {
        let found = answers.iter().any(|(_, held)| held.is_some());
        let want = if found { needed } else { needed.max(majority) };
        if answers.len() >= want {
            break want;
        }
        while answers.len() + asking.len() < want {
            let Some(replica) = others.next() else { break };
            let request = T::request(key);
            asking.push(Box::pin(async move {
                (
                    replica,
                    forward(cluster, view, replica, request, true).await,
                )
            }));
        }
        if asking.is_empty() {
            break want;
        }
        let (done, (replica, answer)) = std::future::poll_fn(|cx| {
            for (i, asked) in asking.iter_mut().enumerate() {
                if let Poll::Ready(answer) = asked.as_mut().poll(cx) {
                    return Poll::Ready((i, answer));
                }
            }
            Poll::Pending
        })
        .await;
        drop(asking.swap_remove(done));
        let failed = match answer {
            Ok(Response::Error(e)) if retry_elsewhere(&e) => e.to_string(),
            Ok(Response::Error(e)) if e.code == ErrorCode::Corrupt => {
                damaged.push(replica);
                e.to_string()
            }
            Ok(Response::Error(e)) => return Err(RequestError::Remote(e)),
            Ok(response) => match T::take(response) {
                Some(held) => {
                    answers.push((replica, held));
                    continue;
                }
                None => "an answer of another kind".to_string(),
            },
            Err(e) => e.to_string(),
        };
        cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
        tried.push(format!("{replica}: {failed}"));
    };
    if answers.len() >= want {
        return Ok((answers, damaged));
    }
    if answers.iter().any(|(_, held)| held.is_some()) {
        return Err(RequestError::Unavailable(format!(
            "only {} of the {needed} replicas a read needs answered ({})",
            answers.len(),
            tried.join("; ")
        )));
    }
    if answers.is_empty() {
        return Err(no_replica(&tried));
    }
    Err(RequestError::Unavailable(format!(
        "the replicas that answered do not hold the key, but only {} of {} answered: it may be \
         on the others ({})",
        answers.len(),
        replicas.len(),
        tried.join("; ")
    )))
}

/// Merges what the replicas answered and repairs those whose copy differs from the merge, and
/// the `damaged` ones (through their one write path: this node's `Writes`, a peer's `Copy`; a
/// merge into a quarantined value replaces it) before answering it. When every answer is the
/// same and none is damaged (the usual case), that is the answer: nothing is cloned.
async fn merge_and_repair(
    cluster: &Cluster,
    view: &ClusterView,
    key: &[u8],
    mut answers: Vec<(NodeId, Option<Value>)>,
    damaged: &[NodeId],
) -> Result<Option<Value>, RequestError> {
    if damaged.is_empty() && answers.iter().all(|(_, v)| *v == answers[0].1) {
        return Ok(answers.swap_remove(0).1);
    }
    let mut merged: Option<Value> = None;
    for value in answers.iter().filter_map(|(_, v)| v.as_ref()) {
        match &mut merged {
            None => merged = Some(value.clone()),
            Some(m) => m.merge(value.clone()).map_err(|e| {
                RequestError::Remote(WireError::new(ErrorCode::TypeMismatch, e.to_string()))
            })?,
        }
    }
    let Some(merged) = merged else {
        return Ok(None);
    };
    for (replica, value) in &answers {
        if value.as_ref() != Some(&merged) {
            repair(cluster, view, key, *replica, &merged).await;
        }
    }
    for replica in damaged {
        repair(cluster, view, key, *replica, &merged).await;
    }
    Ok(Some(merged))
}

/// Sends `merged` to `replica`, whose copy of `key` was behind (a read repair), through its one
/// write path. A repair that fails is left to anti-entropy.
async fn repair(
    cluster: &Cluster,
    view: &ClusterView,
    key: &[u8],
    replica: NodeId,
    merged: &Value,
) {
    cluster
        .metrics()
        .read_repairs
        .fetch_add(1, Ordering::Relaxed);
    let repaired = if replica == view.me {
        cluster
            .replica()
            .writes()
            .write(
                key.to_vec(),
                WriteRequest::Merge(merged.clone()),
                Priority::Foreground,
            )
            .await
            .map(drop)
    } else {
        let items = vec![(key.to_vec(), merged.clone())];
        forward(cluster, view, replica, Request::Copy { items }, true)
            .await
            .map(drop)
            .map_err(|e| RequestError::Unavailable(e.to_string()))
    };
    if let Err(e) = repaired {
        tracing::debug!(%replica, error = %e, "a read repair failed");
    }
}

/// A read of a key whose partition moves: the merge of a majority of the replicas this router
/// sends the key to (or of `needed`, the read quorum, if larger). Writes meanwhile need a majority of the old and of the new replicas, and
/// the new ones serve only once their stream completed (they then hold what the old one they
/// replace held), so any majority holds every acknowledged write, whichever replica answers
/// alone before and after the switch.
async fn moving_read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    needed: usize,
) -> Result<Option<Value>, RequestError> {
    let replicas = view.replicas(&key).to_vec();
    let majority = (replicas.len() / 2 + 1).max(needed);
    let (mut answered, mut merged, mut tried) = (0usize, None::<Value>, Vec::new());
    for replica in replicas {
        let answer = if replica == view.me {
            match cluster.refuse_peer_read() {
                Some(e) => Err(e.to_string()),
                None => cluster.replica().get(&key).map_err(|e| e.to_string()),
            }
        } else {
            match forward(
                cluster,
                view,
                replica,
                Request::Get { key: key.clone() },
                true,
            )
            .await
            {
                Ok(Response::Value(v)) => Ok(v),
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        match answer {
            Ok(value) => {
                answered += 1;
                match (&mut merged, value) {
                    (Some(m), Some(v)) => m.merge(v).map_err(|e| {
                        RequestError::Remote(WireError::new(ErrorCode::TypeMismatch, e.to_string()))
                    })?,
                    (None, Some(v)) => merged = Some(v),
                    (_, None) => {}
                }
                if answered >= majority {
                    return Ok(merged);
                }
            }
            Err(e) => {
                cluster.metrics().failovers.fetch_add(1, Ordering::Relaxed);
                tried.push(format!("{replica}: {e}"));
            }
        }
    }
    Err(no_replica(&tried))
}

/// Digests of many keys: one request per group of keys that share their replicas, answered by
/// the first replica that answers, whatever the read quorum. This is a sync's first step: a
/// digest from a replica that is behind makes the device send a key it need not (harmless), or
/// skip one whose newer state another replica holds, which it then learns at a later sync.
pub(super) async fn digests(
    cluster: &Arc<Cluster>,
    view: &Arc<ClusterView>,
    keys: Vec<Vec<u8>>,
) -> Result<Response, RequestError> {
    for key in &keys {
        cluster.replica().check_key(key)?;
    }
    let mut groups: BTreeMap<Vec<NodeId>, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        groups
            .entry(view.replicas(key).to_vec())
            .or_default()
            .push(i);
    }
    let keys = Arc::new(keys);
    let mut tasks = JoinSet::new();
    for (replicas, indices) in groups {
        let (cluster, view, keys) = (cluster.clone(), view.clone(), keys.clone());
        tasks.spawn(async move {
            let group: Vec<Vec<u8>> = indices.iter().map(|&i| keys[i].clone()).collect();
            let request = Request::DigestBatch {
                keys: group.clone(),
            };
            let local = || cluster.replica().digests(Arc::new(group));
            let answer = first_answer(&cluster, &view, &replicas, request, local)
                .await
                .map(|(_, answer)| answer);
            (indices, answer)
        });
    }
    let mut out = vec![None; keys.len()];
    while let Some(joined) = tasks.join_next().await {
        let (indices, answer) =
            joined.map_err(|e| RequestError::Unavailable(format!("a digest task failed: {e}")))?;
        match answer? {
            Response::Digests(d) if d.len() == indices.len() => {
                for (i, digest) in indices.into_iter().zip(d) {
                    out[i] = digest;
                }
            }
            other => {
                return Err(RequestError::Unavailable(format!(
                    "a replica answered a digest batch with {other:?}"
                )));
            }
        }
    }
    Ok(Response::Digests(out))
}

/// Reads a key from every replica, merges what they hold, and sends the merge to those whose
/// copy differed (read repair).
pub(super) async fn get_merged(
    cluster: &Arc<Cluster>,
    view: &Arc<ClusterView>,
    key: Vec<u8>,
) -> Result<Option<Value>, RequestError> {
    cluster.replica().check_key(&key)?;
    let mut tasks = JoinSet::new();
    for &replica in view.replicas(&key) {
        let (cluster, view, key) = (cluster.clone(), view.clone(), key.clone());
        tasks.spawn(async move {
            let answer = if replica == view.me {
                match cluster.refuse_peer_read() {
                    Some(e) => Err(e.to_string()),
                    None => cluster.replica().get(&key).map_err(|e| e.to_string()),
                }
            } else {
                match forward(&cluster, &view, replica, Request::Get { key }, true).await {
                    Ok(Response::Value(v)) => Ok(v),
                    Ok(other) => Err(format!("{other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            (replica, answer)
        });
    }
    let (mut answers, mut tried) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((replica, Ok(value))) => answers.push((replica, value)),
            Ok((replica, Err(e))) => tried.push(format!("{replica}: {e}")),
            Err(e) => tried.push(e.to_string()),
        }
    }
    if answers.is_empty() {
        return Err(no_replica(&tried));
    }
    let mut merged: Option<Value> = None;
    for value in answers.iter().filter_map(|(_, v)| v.clone()) {
        match &mut merged {
            None => merged = Some(value),
            Some(m) => m.merge(value).map_err(|e| {
                RequestError::Remote(WireError::new(ErrorCode::TypeMismatch, e.to_string()))
            })?,
        }
    }
    let Some(merged) = merged else {
        return Ok(None);
    };
    for (replica, value) in answers {
        if value.as_ref() != Some(&merged) {
            repair(cluster, view, &key, replica, &merged).await;
        }
    }
    Ok(Some(merged))
}
