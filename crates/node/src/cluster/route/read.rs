//! Routed reads: a key's value or digest from the first replica that answers (a majority's
//! merge while its partition moves), digests of many keys, and merged reads that repair.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_crdt::Value;
use haze_protocol::{ErrorCode, Request, Response, WireError};
use haze_ring::NodeId;
use haze_storage::Priority;
use tokio::task::JoinSet;

use super::super::{Cluster, ClusterView};
use super::{first_answer, forward, no_replica};
use crate::error::RequestError;
use crate::replica::WriteRequest;

/// A read of a key (its value, or its digest) from the first replica that answers.
pub(super) async fn read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
    digest: bool,
) -> Result<Response, RequestError> {
    cluster.replica().check_key(&key)?;
    if !digest && view.in_move(&key) {
        return moving_read(cluster, view, key).await.map(Response::Value);
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

/// A read of a key whose partition moves: the merge of a majority of the replicas this router
/// sends the key to. Writes meanwhile need a majority of the old and of the new replicas, and
/// the new ones serve only once their stream completed (they then hold what the old one they
/// replace held), so any majority holds every acknowledged write, whichever replica answers
/// alone before and after the switch.
async fn moving_read(
    cluster: &Arc<Cluster>,
    view: &ClusterView,
    key: Vec<u8>,
) -> Result<Option<Value>, RequestError> {
    let replicas = view.replicas(&key).to_vec();
    let majority = replicas.len() / 2 + 1;
    let (mut answered, mut merged, mut tried) = (0usize, None::<Value>, Vec::new());
    for replica in replicas {
        let answer = if replica == view.me {
            cluster.replica().get(&key).map_err(|e| e.to_string())
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

/// Digests of many keys: one request per group of keys that share their replicas.
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
                cluster.replica().get(&key).map_err(|e| e.to_string())
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
        if value.as_ref() == Some(&merged) {
            continue;
        }
        cluster
            .metrics()
            .read_repairs
            .fetch_add(1, Ordering::Relaxed);
        let repaired = if replica == view.me {
            cluster
                .replica()
                .writes()
                .write(
                    key.clone(),
                    WriteRequest::Merge(merged.clone()),
                    Priority::Foreground,
                )
                .await
                .map(drop)
        } else {
            let items = vec![(key.clone(), merged.clone())];
            forward(cluster, view, replica, Request::Copy { items }, true)
                .await
                .map(drop)
                .map_err(|e| RequestError::Unavailable(e.to_string()))
        };
        if let Err(e) = repaired {
            tracing::debug!(%replica, error = %e, "a read repair failed");
        }
    }
    Ok(Some(merged))
}
