//! One multiplexed connection: a writer task, a reader task, and the requests in flight by id
//! (responses may come back in any order).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::{
    CallError, Dial, PROTOCOL_VERSION, Request, RequestId, Response, Role, read_frame, write_frame,
};

type Result<T, E = CallError> = std::result::Result<T, E>;

type Waiters = Arc<Mutex<BTreeMap<RequestId, oneshot::Sender<Result<Response>>>>>;

/// A live connection. Dropping the last handle closes it.
#[derive(Debug)]
pub(super) struct Connection {
    /// The node's address (for errors).
    addr: String,
    outbox: mpsc::UnboundedSender<Vec<u8>>,
    waiters: Waiters,
    next_id: AtomicU64,
    closed: Arc<AtomicBool>,
    /// The reader task: it holds the socket's read half, so it must end with the connection.
    reader: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The writer ends when the outbox closes; the reader may be waiting on a silent node.
        self.reader.abort();
    }
}

fn lock(
    waiters: &Waiters,
) -> std::sync::MutexGuard<'_, BTreeMap<RequestId, oneshot::Sender<Result<Response>>>> {
    waiters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Connects and completes the handshake within `timeout`.
    pub(super) async fn open(
        dial: &dyn Dial,
        addr: &str,
        timeout: Duration,
        max_frame: usize,
        role: Role,
        token: Option<String>,
        epochs: Arc<AtomicU64>,
    ) -> Result<Connection> {
        let connect_err = |reason: String| CallError::Connect {
            addr: addr.to_string(),
            reason,
        };
        let stream = tokio::time::timeout(timeout, dial.dial(addr.to_string()))
            .await
            .map_err(|_| connect_err(format!("no answer within {timeout:?}")))?
            .map_err(|e| connect_err(e.to_string()))?;
        let (read_half, mut write_half) = tokio::io::split(stream);
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);

        let mut hello = Vec::new();
        let mut body = Vec::new();
        Request::Hello {
            version: PROTOCOL_VERSION,
            role,
            token,
        }
        .encode(0, &mut body);
        write_frame(&mut hello, &body);
        let handshake = async {
            write_half
                .write_all(&hello)
                .await
                .map_err(|e| connect_err(e.to_string()))?;
            if !read_frame(&mut reader, &mut body, max_frame)
                .await
                .map_err(|e| connect_err(handshake_failure(&e)))?
            {
                return Err(connect_err("closed during the handshake".into()));
            }
            match Response::decode(&body).map_err(|e| CallError::Protocol(e.to_string()))? {
                (_, Response::Hello { .. }) => Ok(()),
                (_, Response::Error(e)) => Err(CallError::Refused(e)),
                (_, other) => Err(CallError::Protocol(format!(
                    "unexpected handshake answer {other:?}"
                ))),
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| connect_err(format!("no handshake within {timeout:?}")))??;

        let waiters: Waiters = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (outbox, mut frames) = mpsc::unbounded_channel::<Vec<u8>>();

        // Writer: sends whatever frames have accumulated in one write.
        let (writer_closed, writer_waiters) = (closed.clone(), waiters.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(frame) = frames.recv().await {
                buf.clear();
                buf.extend_from_slice(&frame);
                drain(&mut frames, &mut buf);
                if buf.len() == frame.len() && lock(&writer_waiters).len() > 1 {
                    // A lone frame while other requests are in flight (many callers share
                    // this connection): the task that queued it woke this one straight away
                    // (tokio runs a woken task next), before the other callers ready to send
                    // had their turn. Let them run once, so that their requests share a write
                    // (a system call costs more than a request's own work).
                    tokio::task::yield_now().await;
                    drain(&mut frames, &mut buf);
                }
                if write_half.write_all(&buf).await.is_err() {
                    break;
                }
            }
            writer_closed.store(true, Ordering::Relaxed);
        });

        // Reader: routes each response to its waiter; on any failure, fails every waiter.
        let reader_waiters = waiters.clone();
        let reader_closed = closed.clone();
        let reader = tokio::spawn(async move {
            let mut body = Vec::new();
            let reason = loop {
                match read_frame(&mut reader, &mut body, max_frame).await {
                    Ok(true) => match Response::decode(&body) {
                        Ok((id, response)) => {
                            if let Some(waiter) = lock(&reader_waiters).remove(&id) {
                                let _ = waiter.send(Ok(response));
                            } else if let (0, Response::Epoch(epoch)) = (id, &response) {
                                // The cluster's table moved on: a routing client refreshes.
                                epochs.fetch_max(*epoch, Ordering::Relaxed);
                            } else if let (0, Response::Error(e)) = (id, response) {
                                // An error not tied to a request: the node closes. (A late
                                // answer to a request that timed out is simply dropped.)
                                break format!("{}: {}", e.code, e.message);
                            }
                        }
                        Err(e) => break format!("undecodable response: {e}"),
                    },
                    Ok(false) => break "closed by the node".to_string(),
                    Err(e) => break e.to_string(),
                }
            };
            reader_closed.store(true, Ordering::Relaxed);
            for (_, waiter) in std::mem::take(&mut *lock(&reader_waiters)) {
                let _ = waiter.send(Err(CallError::ConnectionLost(reason.clone())));
            }
        });

        Ok(Connection {
            addr: addr.to_string(),
            outbox,
            waiters,
            next_id: AtomicU64::new(1),
            closed,
            reader: reader.abort_handle(),
        })
    }

    /// Returns whether the connection has failed (a new one is needed).
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Sends `request` and waits up to `timeout` for its response.
    pub(super) async fn call(&self, request: &Request, timeout: Duration) -> Result<Response> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = Vec::with_capacity(64);
        request.encode(id, &mut body);
        let mut frame = Vec::with_capacity(body.len() + 4);
        write_frame(&mut frame, &body);
        let (done, response) = oneshot::channel();
        lock(&self.waiters).insert(id, done);
        if self.is_closed() || self.outbox.send(frame).is_err() {
            lock(&self.waiters).remove(&id);
            // Never sent: as safe to try again as a failed connect.
            return Err(CallError::Connect {
                addr: self.addr.clone(),
                reason: "the connection closed before the request was sent".into(),
            });
        }
        match tokio::time::timeout(timeout, response).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::ConnectionLost("the connection is closed".into())),
            Err(_) => {
                lock(&self.waiters).remove(&id);
                // A connection that let a response go missing is not trusted again (a node
                // that hangs, a half-open connection, a network that dropped bytes): the next
                // request opens a new one. Requests already in flight on it go on.
                self.closed.store(true, Ordering::Relaxed);
                Err(CallError::Timeout(timeout))
            }
        }
    }
}

/// Appends the frames already queued to `buf`, up to a write's worth.
fn drain(frames: &mut mpsc::UnboundedReceiver<Vec<u8>>, buf: &mut Vec<u8>) {
    while buf.len() < 256 * 1024 {
        match frames.try_recv() {
            Ok(frame) => buf.extend_from_slice(&frame),
            Err(_) => break,
        }
    }
}

/// Why a handshake's answer could not be read, said plainly when the server answered in TLS: a
/// TLS record starts with its type (0x15 alert, 0x16 handshake) and version (0x03 ..), which
/// read as a frame length of hundreds of MiB.
fn handshake_failure(e: &crate::FrameError) -> String {
    if let crate::FrameError::TooLarge { size, .. } = e {
        let [kind, major, ..] = u32::try_from(*size).unwrap_or(0).to_be_bytes();
        if matches!(kind, 0x15 | 0x16) && major == 0x03 {
            return "the server answered in TLS: connect over TLS, verifying it against the \
                    cluster's CA"
                .to_string();
        }
    }
    e.to_string()
}

#[cfg(test)]
mod handshake_tests {
    #[test]
    fn a_tls_answer_is_named_as_such() {
        let alert = crate::FrameError::TooLarge {
            size: 0x1503_0300,
            limit: 1 << 26,
        };
        assert!(super::handshake_failure(&alert).contains("answered in TLS"));
        let big = crate::FrameError::TooLarge {
            size: 1 << 30,
            limit: 1 << 26,
        };
        assert!(super::handshake_failure(&big).contains("exceeds the limit"));
    }
}
