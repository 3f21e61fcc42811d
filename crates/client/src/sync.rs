//! Synchronising a local replica with the store: digests first, full states only where they
//! differ.

use haze_crdt::Value;
use haze_crdt::digest::key_digest;
use haze_protocol::{Request, Response};
use tokio::task::JoinSet;

use crate::replica::Replica;
use crate::{Client, Error, Result};

/// The average number of keys per digest request. Chunks end after a key whose ring hash is a
/// multiple of this (content-defined), so adding or removing a key changes only its own chunk's
/// list: the node still knows every other chunk's list from the last sync.
const DIGEST_CHUNK: u64 = 1024;
/// The most keys per digest request.
const MAX_DIGEST_CHUNK: usize = 4 * DIGEST_CHUNK as usize;
/// The most keys per merge request.
const MERGE_CHUNK: usize = 256;
/// The most bytes of keys, or of states, per request: well inside a node's 4 MiB frames.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Keys whose digests were compared.
    pub checked: usize,
    /// Keys whose full state was sent (they differed from the store's, or the store lacked them).
    pub sent: usize,
    /// Keys whose local state changed: the store had edits this replica had not seen.
    pub updated: usize,
    /// Bytes of the requests sent (frames included).
    pub bytes_sent: u64,
    /// Bytes of the responses received (frames included).
    pub bytes_received: u64,
}

fn request_bytes(request: &Request) -> u64 {
    let mut body = Vec::new();
    request.encode(0, &mut body);
    body.len() as u64 + 4
}

fn response_bytes(response: &Response) -> u64 {
    let mut body = Vec::new();
    response.encode(0, &mut body);
    body.len() as u64 + 4
}

/// Cuts sorted keys into chunks that end after a key whose ring hash is a multiple of
/// [`DIGEST_CHUNK`] (or at [`MAX_DIGEST_CHUNK`] keys).
fn chunk_by_content(keys: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, key) in keys.iter().enumerate() {
        bytes += key.len() + 2;
        let boundary = haze_crdt::digest::ring_hash(key).is_multiple_of(DIGEST_CHUNK);
        if boundary || i + 1 - start >= MAX_DIGEST_CHUNK || bytes >= MAX_REQUEST_BYTES {
            chunks.push(&keys[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < keys.len() {
        chunks.push(&keys[start..]);
    }
    chunks
}

/// Cuts states into merge requests of at most [`MERGE_CHUNK`] states and about
/// [`MAX_REQUEST_BYTES`] (a single larger state goes alone).
fn chunk_states(states: &[(Vec<u8>, Value, usize)]) -> Vec<&[(Vec<u8>, Value, usize)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, (key, _, size)) in states.iter().enumerate() {
        if i > start && (i - start >= MERGE_CHUNK || bytes + key.len() + size > MAX_REQUEST_BYTES) {
            chunks.push(&states[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += key.len() + size;
    }
    if start < states.len() {
        chunks.push(&states[start..]);
    }
    chunks
}

/// Returns the node's digests of `keys`, and the bytes sent and received: the list id first,
/// the keys too only if the node does not know the list.
async fn digests_of(client: &Client, keys: Vec<Vec<u8>>) -> Result<(Vec<Option<u64>>, u64, u64)> {
    let expected = keys.len();
    let (digests, sent, received) = ask_digests(client, keys).await?;
    if digests.len() != expected {
        return Err(Error::Protocol(format!(
            "{} digests for {expected} keys",
            digests.len()
        )));
    }
    Ok((digests, sent, received))
}

async fn ask_digests(client: &Client, keys: Vec<Vec<u8>>) -> Result<(Vec<Option<u64>>, u64, u64)> {
    let list = haze_protocol::key_list_id(&keys);
    let mut sent = request_bytes(&Request::DigestList { list, keys: None });
    let digests = match client.digest_list(list, None).await? {
        Some(digests) => digests,
        None => {
            let received = response_bytes(&Response::UnknownList);
            let request = Request::DigestList {
                list,
                keys: Some(keys),
            };
            sent += request_bytes(&request);
            let Request::DigestList { keys, .. } = request else {
                unreachable!()
            };
            let digests = client.digest_list(list, keys).await?.ok_or_else(|| {
                Error::Protocol("the node did not take a key list it was sent".into())
            })?;
            return Ok((
                digests.clone(),
                sent,
                received + response_bytes(&Response::Digests(digests)),
            ));
        }
    };
    let received = response_bytes(&Response::Digests(digests.clone()));
    Ok((digests, sent, received))
}

impl Replica {
    /// Synchronises every key this replica holds with the store behind `client`.
    ///
    /// For each key, the store's digest is compared with the local one (in batches, pipelined);
    /// the keys that differ, or that the store no longer has, are sent as full states (in
    /// batches), and the merged states that come back are merged locally. Two replicas that each
    /// sync twice hold the same states. A sync interrupted at any point is safe to repeat:
    /// everything it does is a merge.
    ///
    /// # Errors
    ///
    /// [`Error`] from the connection or the store; the replica keeps what merged before it.
    pub async fn sync(&mut self, client: &Client) -> Result<SyncReport> {
        let keys: Vec<Vec<u8>> = self.keys().map(<[u8]>::to_vec).collect();
        self.sync_keys(client, &keys).await
    }

    /// Synchronises only `keys` (those this replica holds).
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync).
    pub async fn sync_keys(&mut self, client: &Client, keys: &[Vec<u8>]) -> Result<SyncReport> {
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| self.get(k).is_some())
            .cloned()
            .collect();
        let mut report = SyncReport {
            checked: keys.len(),
            ..SyncReport::default()
        };

        // 1. Digests, all chunks in flight at once, each named by its list id: the keys travel
        //    only if the node does not remember the list from an earlier sync.
        let chunks = chunk_by_content(&keys);
        let mut digests = JoinSet::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let (client, chunk) = (client.clone(), chunk.to_vec());
            digests.spawn(async move { (i, digests_of(&client, chunk).await) });
        }
        let mut remote = vec![Vec::new(); chunks.len()];
        while let Some(done) = digests.join_next().await {
            let (i, result) = done.map_err(|e| Error::Protocol(e.to_string()))?;
            let (chunk, sent, received) = result?;
            report.bytes_sent += sent;
            report.bytes_received += received;
            remote[i] = chunk;
        }
        let differing: Vec<(Vec<u8>, Value, usize)> = keys
            .iter()
            .zip(remote.into_iter().flatten())
            .filter_map(|(key, theirs)| {
                let mine = self.get(key).expect("filtered above");
                let encoded = mine.encode();
                (Some(key_digest(key, &encoded)) != theirs)
                    .then(|| (key.clone(), mine.clone(), encoded.len()))
            })
            .collect();
        report.sent = differing.len();

        // 2. Full states where they differ, all chunks in flight; merge back what returns.
        let mut merges = JoinSet::new();
        for chunk in chunk_states(&differing) {
            let items: Vec<(Vec<u8>, Value)> = chunk
                .iter()
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect();
            let client = client.clone();
            report.bytes_sent += request_bytes(&Request::MergeBatch {
                items: items.clone(),
            });
            merges.spawn(async move {
                let keys: Vec<Vec<u8>> = items.iter().map(|(k, _)| k.clone()).collect();
                (keys, client.merge_batch(items).await)
            });
        }
        let mut first_error = None;
        while let Some(done) = merges.join_next().await {
            let (keys, result) = done.map_err(|e| Error::Protocol(e.to_string()))?;
            let results = match result {
                Ok(results) => results,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let wire: Vec<_> = results
                .iter()
                .map(|r| {
                    r.clone().map_err(|e| {
                        haze_protocol::WireError::new(
                            haze_protocol::ErrorCode::Refused,
                            e.to_string(),
                        )
                    })
                })
                .collect();
            report.bytes_received += response_bytes(&Response::Batch(wire));
            for (key, result) in keys.into_iter().zip(results) {
                match result {
                    Ok(merged) => match self.merge_unsaved(&key, merged) {
                        Ok(changed) => report.updated += usize::from(changed),
                        // Keep going: what merged so far is saved below either way.
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    },
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        self.save()?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Fetches `key` from the store and merges it into this replica (how a device learns keys
    /// it has never seen: the store has no listing). Returns the local state after the merge.
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync), and [`Error::TypeMismatch`] if the replica holds another type.
    pub async fn fetch(
        &mut self,
        client: &Client,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<&Value>> {
        let key = key.as_ref();
        if let Some(value) = client.get(key).await? {
            self.merge(key, value)?;
        }
        Ok(self.get(key))
    }
}
