//! Requests only nodes make of each other (replication, anti-entropy, a move's stream). They stay
//! on [`Client`] until haze-node sends them over a [`haze_protocol::Channel`] of its own.

use haze_crdt::Value;
use haze_protocol::{Request, Response};

use crate::{Client, Error, Result};

impl Client {
    /// Merges states into the contacted node's own copies, without routing or replicating
    /// (only for [`Role::Peer`](haze_protocol::Role::Peer) and
    /// [`Role::Local`](haze_protocol::Role::Local) connections). Returns one outcome per item.
    ///
    /// # Errors
    ///
    /// As [`merge_batch`](Self::merge_batch).
    pub async fn copy(&self, items: Vec<(Vec<u8>, Value)>) -> Result<Vec<Result<()>>> {
        self.acked(items.len(), Request::Copy { items }).await
    }

    /// As [`copy`](Self::copy), as background work the contacted node commits after the writes
    /// its clients wait for (a move's stream).
    ///
    /// # Errors
    ///
    /// As [`merge_batch`](Self::merge_batch).
    pub async fn backfill(&self, items: Vec<(Vec<u8>, Value)>) -> Result<Vec<Result<()>>> {
        self.acked(items.len(), Request::Backfill { items }).await
    }

    /// Sends a request of `n` items answered with one acknowledgement per item.
    async fn acked(&self, n: usize, request: Request) -> Result<Vec<Result<()>>> {
        match self.call(request, true).await? {
            Response::Acks(results) if results.len() == n => Ok(results
                .into_iter()
                .map(|r| r.map_err(Error::from))
                .collect()),
            other => Err(Error::Protocol(format!(
                "expected {n} results, got {other:?}"
            ))),
        }
    }

    /// Returns the contacted node's digest of every bucket of the ring (for anti-entropy).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn buckets(&self) -> Result<Vec<u64>> {
        match self.call(Request::Buckets, true).await? {
            Response::Buckets(d) => Ok(d),
            other => Err(Error::Protocol(format!("expected buckets, got {other:?}"))),
        }
    }

    /// Returns a page of the keys the contacted node holds in `bucket`, with their digests,
    /// starting after `after`, and whether more follow (for anti-entropy).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn bucket_keys(
        &self,
        bucket: u32,
        after: Option<Vec<u8>>,
    ) -> Result<(Vec<(Vec<u8>, u64)>, bool)> {
        match self
            .call(Request::BucketKeys { bucket, after }, true)
            .await?
        {
            Response::KeyDigests { keys, more } => Ok((keys, more)),
            other => Err(Error::Protocol(format!("expected keys, got {other:?}"))),
        }
    }
}
