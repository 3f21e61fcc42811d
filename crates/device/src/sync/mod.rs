//! Sync as a state machine: digests out, differing keys' full states out, merged states in.
//!
//! ```text
//!  start()   ──▶ Digests{list}             (every chunk of keys at once)
//!  receive   ◀── UnknownList               ──▶ Digests{list, keys}   (that chunk again)
//!  receive   ◀── Digests (the last chunk)  ──▶ Merge{items}, ...     (keys whose digests differ)
//!  receive   ◀── Merged (the last batch)   ──▶ Done(report)          (merged locally, saved)
//! ```
//!
//! Whoever owns the I/O sends the messages (all of one step may be in flight at once, answered
//! in any order) and hands each answer back. The sync holds no borrow of the replica: edits
//! may happen between steps, and the session may be dropped at any point. Everything it does
//! to the replica is a merge, so an interrupted sync loses no local edit, and the next one
//! finishes the work.

mod chunk;
mod message;

use std::collections::BTreeMap;
use std::ops::Range;

use haze_crdt::digest::key_digest;

pub use chunk::{DIGEST_CHUNK, MAX_DIGEST_CHUNK, MAX_REQUEST_BYTES, MERGE_CHUNK, list_id};
pub use message::{Answer, Message, MessageId, Outgoing};

use crate::store::{LastSync, Store};
use crate::{Error, Replica, Result};

/// What a step asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these (none: wait for the answers in flight).
    Send(Vec<Outgoing>),
    /// The sync is complete, and what it merged is saved.
    Done(Report),
}

/// What a complete sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys whose digests were compared.
    pub checked: usize,
    /// Keys whose full state was sent (they differed from the store's, or the store lacked them).
    pub sent: usize,
    /// Keys whose local state changed: the store had edits this replica had not seen.
    pub updated: usize,
    /// Keys that did not merge: refused by the store, or of another type there. Each keeps its
    /// local state and is sent again by the next sync.
    pub failed: Vec<(Vec<u8>, Error)>,
}

/// What a message in flight was about.
#[derive(Debug)]
enum Pending {
    /// The digests of chunk `chunk`; `with_keys` once its keys were sent.
    Digests { chunk: usize, with_keys: bool },
    /// The merge of these keys' states.
    Merge { keys: Vec<Vec<u8>> },
}

/// Where the sync is.
#[derive(Debug)]
enum Phase {
    /// Not started.
    New,
    /// Digests asked: each chunk's answer, until all came.
    Digests {
        chunks: Vec<Range<usize>>,
        remote: Vec<Option<Vec<Option<u64>>>>,
        missing: usize,
    },
    /// Merges in flight.
    Merges,
    /// Complete.
    Done,
}

/// One sync of a replica with the store, driven step by step; see the [module](self) docs.
#[derive(Debug)]
pub struct Session {
    keys: Vec<Vec<u8>>,
    /// The caller's time at the start, for a sync of every key.
    every_key_at: Option<u64>,
    phase: Phase,
    pending: BTreeMap<MessageId, Pending>,
    next_id: MessageId,
    report: Report,
}

fn unexpected(expected: &str, answer: &Answer) -> Error {
    let got = match answer {
        Answer::Digests(d) => format!("{} digests", d.len()),
        Answer::UnknownList => "an unknown list".into(),
        Answer::Merged(m) => format!("{} merged states", m.len()),
    };
    Error::Protocol(format!("expected {expected}, got {got}"))
}

impl Session {
    pub(crate) fn new(keys: Vec<Vec<u8>>, every_key_at: Option<u64>) -> Session {
        Session {
            report: Report {
                checked: keys.len(),
                ..Report::default()
            },
            keys,
            every_key_at,
            phase: Phase::New,
            pending: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Returns the keys this sync compares, in order.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// Returns whether the sync is complete.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// Returns the ids of the messages sent and not answered yet.
    pub fn in_flight(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.pending.keys().copied()
    }

    fn send(&mut self, message: Message, pending: Pending) -> Outgoing {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, pending);
        Outgoing { id, message }
    }

    /// Returns the first messages: a digest request by list id for every chunk of keys. With
    /// no keys the sync is done at once. A second call returns no messages.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if a sync with no keys could not save its end.
    pub fn start<S: Store>(&mut self, replica: &mut Replica<S>) -> Result<Step> {
        if !matches!(self.phase, Phase::New) {
            return Ok(Step::Send(Vec::new()));
        }
        if self.keys.is_empty() {
            return self.finish(replica);
        }
        let chunks = chunk::chunk_by_content(&self.keys);
        let mut out = Vec::with_capacity(chunks.len());
        for (i, range) in chunks.iter().enumerate() {
            let list = list_id(&self.keys[range.clone()]);
            let message = Message::Digests { list, keys: None };
            let pending = Pending::Digests {
                chunk: i,
                with_keys: false,
            };
            out.push(self.send(message, pending));
        }
        self.phase = Phase::Digests {
            remote: vec![None; chunks.len()],
            missing: chunks.len(),
            chunks,
        };
        Ok(Step::Send(out))
    }

    /// Consumes the answer to message `id` and returns what to do next: more messages, none
    /// (wait for others in flight), or done. Merged states are merged into `replica` at once
    /// and saved when the sync completes (or by any edit or save before).
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for an answer that does not fit its message (the message counts as
    /// answered, and the sync may then never complete: drop it, and save the replica);
    /// [`Error::Store`] if the final save failed. The replica keeps everything merged so far
    /// either way, and the next sync finishes the work.
    pub fn receive<S: Store>(
        &mut self,
        replica: &mut Replica<S>,
        id: MessageId,
        answer: Answer,
    ) -> Result<Step> {
        let pending = self.pending.remove(&id).ok_or_else(|| {
            Error::Protocol(format!("an answer to message {id}, which is not in flight"))
        })?;
        let step = match (pending, answer) {
            (Pending::Digests { chunk, with_keys }, Answer::UnknownList) => {
                if with_keys {
                    return Err(Error::Protocol(
                        "the store did not take a key list it was sent".into(),
                    ));
                }
                self.resend_with_keys(chunk)
            }
            (Pending::Digests { chunk, .. }, Answer::Digests(digests)) => {
                self.digests(replica, chunk, digests)?
            }
            (Pending::Digests { .. }, other) => return Err(unexpected("digests", &other)),
            (Pending::Merge { keys }, Answer::Merged(results)) => {
                if results.len() != keys.len() {
                    return Err(Error::Protocol(format!(
                        "{} merged states for {} keys",
                        results.len(),
                        keys.len()
                    )));
                }
                self.merged(replica, keys, results);
                Step::Send(Vec::new())
            }
            (Pending::Merge { .. }, other) => return Err(unexpected("merged states", &other)),
        };
        if matches!(self.phase, Phase::Merges) && self.pending.is_empty() {
            return self.finish(replica);
        }
        Ok(step)
    }

    fn resend_with_keys(&mut self, chunk: usize) -> Step {
        let Phase::Digests { chunks, .. } = &self.phase else {
            unreachable!("digest requests are in flight only in the digest phase")
        };
        let keys = self.keys[chunks[chunk].clone()].to_vec();
        let message = Message::Digests {
            list: list_id(&keys),
            keys: Some(keys),
        };
        let pending = Pending::Digests {
            chunk,
            with_keys: true,
        };
        Step::Send(vec![self.send(message, pending)])
    }

    /// Takes a chunk's digests; after the last chunk, sends the keys that differ.
    fn digests<S: Store>(
        &mut self,
        replica: &Replica<S>,
        chunk: usize,
        digests: Vec<Option<u64>>,
    ) -> Result<Step> {
        let Phase::Digests {
            chunks,
            remote,
            missing,
        } = &mut self.phase
        else {
            unreachable!("digest requests are in flight only in the digest phase")
        };
        let expected = chunks[chunk].len();
        if digests.len() != expected {
            return Err(Error::Protocol(format!(
                "{} digests for {expected} keys",
                digests.len()
            )));
        }
        if remote[chunk].replace(digests).is_none() {
            *missing -= 1;
        }
        if *missing > 0 {
            return Ok(Step::Send(Vec::new()));
        }
        let remote = std::mem::take(remote);
        let differing: Vec<_> = (self.keys.iter())
            .zip(remote.into_iter().flatten().flatten())
            .filter_map(|(key, theirs)| {
                // Every key of the sync is held: a replica never drops a key.
                let mine = replica.get(key)?;
                let encoded = mine.encode();
                (Some(key_digest(key, &encoded)) != theirs)
                    .then(|| (key.clone(), mine.clone(), encoded.len()))
            })
            .collect();
        self.report.sent = differing.len();
        self.phase = Phase::Merges;
        let mut out = Vec::new();
        for items in chunk::chunk_states(differing) {
            let keys = items.iter().map(|(k, _)| k.clone()).collect();
            out.push(self.send(Message::Merge { items }, Pending::Merge { keys }));
        }
        Ok(Step::Send(out))
    }

    /// Merges a batch's states into the replica.
    fn merged<S: Store>(
        &mut self,
        replica: &mut Replica<S>,
        keys: Vec<Vec<u8>>,
        results: Vec<Result<haze_crdt::Value, String>>,
    ) {
        for (key, result) in keys.into_iter().zip(results) {
            let outcome = result
                .map_err(Error::Refused)
                .and_then(|state| replica.merge_unsaved(&key, state));
            match outcome {
                Ok(changed) => self.report.updated += usize::from(changed),
                Err(e) => self.report.failed.push((key, e)),
            }
        }
    }

    fn finish<S: Store>(&mut self, replica: &mut Replica<S>) -> Result<Step> {
        self.phase = Phase::Done;
        let last = self.every_key_at.map(|at| LastSync {
            at,
            keys: self.keys.len() as u64,
        });
        replica.finish_sync(last)?;
        Ok(Step::Done(self.report.clone()))
    }
}
