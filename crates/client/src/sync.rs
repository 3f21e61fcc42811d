//! Synchronising a local replica with the store: haze-device's sync state machine, its
//! messages sent over a [`Client`] (the binary protocol's `DigestList` and `MergeBatch`), all
//! of a step's messages in flight at once.

use haze_crdt::Value;
use haze_device::sync::{Answer, Message, MessageId, Outgoing, Session, Step};
use haze_protocol::{Request, Response};
use tokio::task::JoinSet;

use crate::replica::Replica;
use crate::{Client, Error, Result};

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

/// The protocol's request for a message of the core.
pub(crate) fn request_of(message: Message) -> Request {
    match message {
        Message::Digests { list, keys } => Request::DigestList { list, keys },
        Message::Merge { items } => Request::MergeBatch { items },
    }
}

/// The core's answer in a response of the protocol (an error response is the call's error).
/// The first item a merge refused is kept in `refused`, as the client's error it maps to.
pub(crate) fn answer_of(response: Response, refused: &mut Option<Error>) -> Result<Answer> {
    match response {
        Response::Digests(digests) => Ok(Answer::Digests(digests)),
        Response::UnknownList => Ok(Answer::UnknownList),
        Response::Batch(results) => Ok(Answer::Merged(
            (results.into_iter())
                .map(|r| {
                    r.map_err(|e| {
                        let message = e.message.clone();
                        refused.get_or_insert(Error::from(e));
                        message
                    })
                })
                .collect(),
        )),
        other => Err(Error::Protocol(format!(
            "expected digests or merged states, got {other:?}"
        ))),
    }
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
        let now = self.clock.now_millis();
        let session = self.core.sync(now);
        self.drive(client, session).await
    }

    /// Synchronises only `keys` (those this replica holds).
    ///
    /// # Errors
    ///
    /// As [`sync`](Self::sync).
    pub async fn sync_keys(&mut self, client: &Client, keys: &[Vec<u8>]) -> Result<SyncReport> {
        let session = self.core.sync_keys(keys);
        self.drive(client, session).await
    }

    /// Runs `session` to its end over `client`: every message of a step in flight at once, each
    /// answer handed back as it comes. After the first failure nothing more is sent, the
    /// answers in flight are still merged, and what merged is saved.
    async fn drive(&mut self, client: &Client, mut session: Session) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let mut first_error: Option<Error> = None;
        let mut in_flight: JoinSet<(MessageId, Result<Response>)> = JoinSet::new();
        let mut step = session.start(&mut self.core).map_err(|e| self.error(e));
        loop {
            match step {
                Ok(Step::Send(messages)) if first_error.is_none() => {
                    for Outgoing { id, message } in messages {
                        let request = request_of(message);
                        report.bytes_sent += request_bytes(&request);
                        let client = client.clone();
                        // Both requests are idempotent: a digest read, a merge.
                        in_flight.spawn(async move { (id, client.call(request, true).await) });
                    }
                }
                Ok(Step::Send(_)) => {}
                Ok(Step::Done(done)) => {
                    (report.checked, report.sent, report.updated) =
                        (done.checked, done.sent, done.updated);
                    // Refusals are already kept (as the node's errors); a local type mismatch
                    // is reported here.
                    if let Some((_, e)) = done.failed.into_iter().next() {
                        first_error.get_or_insert(self.error(e));
                    }
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (id, result) = joined.map_err(|e| Error::Protocol(e.to_string()))?;
            step = match result {
                Ok(response) => {
                    report.bytes_received += response_bytes(&response);
                    answer_of(response, &mut first_error).and_then(|answer| {
                        (session.receive(&mut self.core, id, answer)).map_err(|e| self.error(e))
                    })
                }
                Err(e) => Err(e),
            };
        }
        if !session.is_done() {
            // Interrupted: keep what merged (a complete sync saved already).
            self.save()?;
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_core_names_key_lists_as_the_protocol_does() {
        let lists: [Vec<Vec<u8>>; 4] = [
            vec![],
            vec![b"a".to_vec()],
            vec![
                b"user:42/item:00001".to_vec(),
                b"user:42/item:00002".to_vec(),
            ],
            (0..300).map(|i| format!("k{i:03}").into_bytes()).collect(),
        ];
        for keys in lists {
            assert_eq!(
                haze_device::sync::list_id(&keys),
                haze_protocol::key_list_id(&keys)
            );
        }
    }
}
