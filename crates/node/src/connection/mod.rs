//! One client connection: the handshake (`handshake`), then pipelined requests, read here and
//! answered through one writer task (`writer`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use haze_protocol::{
    ErrorCode, FrameError, Request, RequestId, Response, Role, WireError, read_frame,
    write_frame_with,
};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use haze_storage::Priority;

use self::budget::{Budget, Taken};
use crate::handler::{self, Plan};
use crate::node::Node;
use crate::security::Caller;

mod budget;
mod handshake;
mod stop;
mod writer;

pub(crate) use stop::{Stop, Watch};

/// Why a connection ended (for logs).
#[derive(Debug)]
enum End {
    Closed,
    Shutdown,
    Timeout(&'static str),
    Protocol(String),
}

/// Serves one connection until the client closes it, misbehaves, idles out, or the node shuts
/// down: the handshake, then pipelined requests answered as soon as each completes, in any
/// order, through one writer task.
pub(crate) async fn serve_connection<S>(
    node: Arc<Node>,
    stream: S,
    identity: Option<haze_tls::Identity>,
    stop: Stop,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut body = Vec::new();
    let greeted = handshake::greet(
        &node,
        &mut reader,
        &mut write_half,
        &mut body,
        identity.as_ref(),
    )
    .await;
    let (role, caller) = match greeted {
        Ok(greeted) => greeted,
        Err(None) => return,
        Err(Some(why)) => return end(&node, why),
    };
    let budgets = Budgets::new(node.config());
    let (responses, writer, writer_ended) = writer::spawn(
        write_half,
        budgets.in_flight(),
        node.config().idle_timeout,
        stop.watch(),
    );
    let ended = Reader {
        node: &node,
        role,
        caller,
        reader,
        body,
        responses: &responses,
        budgets,
        epoch_told: 0,
    }
    .run(stop.watch(), writer_ended)
    .await;
    // The writer ends once every in-flight request has sent its response.
    drop(responses);
    let _ = writer.await;
    end(&node, ended);
}

/// The per-connection budgets, clamped to what works: at least one request and one whole
/// frame.
struct Budgets {
    requests: Arc<Budget>,
    /// The request slots `requests` started with.
    request_slots: usize,
    bytes: Arc<Budget>,
    byte_budget: usize,
}

impl Budgets {
    fn new(config: &crate::NodeConfig) -> Budgets {
        let byte_budget = config
            .max_in_flight_bytes
            .clamp(config.max_frame_bytes.max(1), Semaphore::MAX_PERMITS);
        let request_slots = config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        Budgets {
            requests: Budget::new(request_slots),
            request_slots,
            bytes: Budget::new(byte_budget),
            byte_budget,
        }
    }

    fn in_flight(&self) -> InFlight {
        InFlight {
            requests: self.requests.clone(),
            slots: self.request_slots,
        }
    }
}

/// How many of a connection's requests are in flight: each holds a request slot until its
/// response is written.
struct InFlight {
    requests: Arc<Budget>,
    slots: usize,
}

impl InFlight {
    /// The requests being served other than the `answered` ones whose responses are in hand.
    /// The reader takes a slot before it reads the next request, so that slot is not counted
    /// (when the budget is spent and the reader holds none, one request too few is).
    fn unanswered(&self, answered: usize) -> usize {
        self.slots
            .saturating_sub(self.requests.available())
            .saturating_sub(answered + 1)
    }
}

/// Takes a frame's `len` bytes from this connection's budget and the node's: memory follows the
/// bytes of the requests in flight, not their number, and many connections cannot add up to
/// more than the node allows either.
async fn reserve_bytes(
    budgets: &Budgets,
    node: &Node,
    role: Role,
    len: usize,
) -> (Option<Taken>, Option<OwnedSemaphorePermit>) {
    let mine = budgets.bytes.take(len.max(1)).await;
    let node_wide = if node_wide_budget(role) {
        node.in_flight_bytes()
            .acquire_many_owned(weight(len))
            .await
            .ok()
    } else {
        None
    };
    (Some(mine), node_wide)
}

/// A frame's weight in the node's byte budget.
fn weight(len: usize) -> u32 {
    u32::try_from(len.max(1)).unwrap_or(u32::MAX)
}

/// Whether a caller's requests count against the node-wide byte budget. Other nodes' requests
/// (copies, forwarded writes) are exempt: clients' writes waiting for copies hold that budget,
/// and the copies must not wait for it. A peer connection still has its own budget, and peers
/// are few.
fn node_wide_budget(role: Role) -> bool {
    !matches!(role, Role::Peer { .. })
}

/// Polls `future` once and returns its output if it is ready at once: an operation that
/// usually completes without waiting (a write the socket has room for) then arms no timer.
/// When it is not ready, it is registered to wake the caller, and can be awaited further.
pub(crate) async fn ready_now<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match Pin::new(&mut *future).poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// A connection's idle timer: one timer for the connection's life (arming one per request
/// costs a trip through the timer wheel each time), moved only when it fires early.
pub(crate) struct IdleTimer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    idle: std::time::Duration,
}

impl IdleTimer {
    pub(crate) fn new(idle: std::time::Duration) -> IdleTimer {
        IdleTimer {
            sleep: Box::pin(tokio::time::sleep(idle)),
            idle,
        }
    }

    /// Completes once the idle timeout has passed since `waiting_since` (when the node began
    /// to wait for the client). Cancel-safe: dropping it leaves the timer as it was.
    pub(crate) async fn passed(&mut self, waiting_since: tokio::time::Instant) {
        loop {
            self.sleep.as_mut().await;
            if waiting_since.elapsed() >= self.idle {
                return;
            }
            // Armed for an earlier wait: fire at this one's deadline instead.
            self.sleep.as_mut().reset(waiting_since + self.idle);
        }
    }
}

/// [`reserve_bytes`] when both budgets have room now (most requests): no waiting.
fn try_reserve_bytes(
    budgets: &Budgets,
    node: &Node,
    role: Role,
    len: usize,
) -> Option<(Option<Taken>, Option<OwnedSemaphorePermit>)> {
    let mine = budgets.bytes.try_take(len.max(1))?;
    let node_wide = if node_wide_budget(role) {
        Some(
            node.in_flight_bytes()
                .try_acquire_many_owned(weight(len))
                .ok()?,
        )
    } else {
        None
    };
    Some((Some(mine), node_wide))
}

/// The reading side of a connection after its handshake.
struct Reader<'a, R> {
    node: &'a Arc<Node>,
    role: Role,
    /// What the connection proved about who is calling.
    caller: Caller,
    reader: BufReader<R>,
    body: Vec<u8>,
    responses: &'a writer::Responses,
    budgets: Budgets,
    /// The latest epoch this connection's client was told of (see `Plan::Route`).
    epoch_told: u64,
}

impl<R: AsyncRead + Unpin> Reader<'_, R> {
    /// Reads and answers requests until the connection ends; returns why it did.
    /// `writer_ended` completes when the connection's writer gives up on a client that does not
    /// read.
    async fn run(mut self, mut cancelled: stop::Watch, mut writer_ended: stop::Watch) -> End {
        let config = self.node.config().clone();
        // Made once per connection, not per request (arming a timer is a trip through the
        // timer wheel); the watches above cost a flag's read per poll (see `stop`).
        let responses = self.responses;
        let mut idle_timer = IdleTimer::new(config.idle_timeout);
        loop {
            if responses.is_closed() {
                // The writer gave up on a client that does not read: stop reading it too.
                return End::Timeout(STALLED);
            }
            let count = match self.budgets.requests.try_take(1) {
                Some(taken) => taken,
                None => tokio::select! {
                    biased;
                    () = &mut cancelled => return End::Shutdown,
                    taken = self.budgets.requests.take(1) => taken,
                },
            };
            // Pipelined requests are usually already buffered: take them without waiting.
            let max_frame = config.max_frame_bytes;
            let mut buffered = buffered_frame(&mut self.reader, &mut self.body, max_frame);
            if buffered.is_none() && self.reader.buffer().is_empty() {
                let waiting_since = tokio::time::Instant::now();
                // Most requests arrive whole: wait for bytes (cancel-safe: they stay in the
                // buffer), then take the frame from the buffer, which costs less than
                // `read_frame`'s reads of a header and then of a body.
                let filled = tokio::select! {
                    biased;
                    () = &mut cancelled => return End::Shutdown,
                    () = &mut writer_ended => return End::Timeout(STALLED),
                    filled = self.reader.fill_buf() => filled.map(|bytes| bytes.is_empty()),
                    () = idle_timer.passed(waiting_since) => return End::Timeout("idle"),
                };
                match filled {
                    Ok(true) => return End::Closed,
                    Ok(false) => {
                        buffered = buffered_frame(&mut self.reader, &mut self.body, max_frame);
                    }
                    Err(e) => return End::Protocol(e.to_string()),
                }
            }
            let frame = match buffered {
                Some(frame) => Ok(frame),
                // Part of a frame, or one larger than the buffer: read the rest.
                None => {
                    let waiting_since = tokio::time::Instant::now();
                    tokio::select! {
                        biased;
                        () = &mut cancelled => return End::Shutdown,
                        () = &mut writer_ended => return End::Timeout(STALLED),
                        frame = read_frame(&mut self.reader, &mut self.body, max_frame) => Ok(frame),
                        () = idle_timer.passed(waiting_since) => Err(()),
                    }
                }
            };
            if matches!(frame, Ok(Ok(true))) && self.body.len() > self.budgets.byte_budget {
                return End::Protocol("a frame larger than the in-flight budget".into());
            }
            let (bytes, node_bytes) = if matches!(frame, Ok(Ok(true))) {
                match try_reserve_bytes(&self.budgets, self.node, self.role, self.body.len()) {
                    Some(permits) => permits,
                    None => tokio::select! {
                        biased;
                        () = &mut cancelled => return End::Shutdown,
                        permits = reserve_bytes(&self.budgets, self.node, self.role, self.body.len()) => permits,
                    },
                }
            } else {
                (None, None)
            };
            let permit = Slot {
                _count: count,
                _bytes: bytes,
                _node_bytes: node_bytes,
            };
            match frame {
                Err(_) => return End::Timeout("idle"),
                Ok(Ok(false)) => return End::Closed,
                Ok(Err(FrameError::Io(e))) => return End::Protocol(e.to_string()),
                Ok(Err(e)) => {
                    let error = WireError::new(ErrorCode::BadRequest, e.to_string());
                    let _ = self
                        .responses
                        .send((encode(0, &Response::Error(error)), permit));
                    return End::Protocol(e.to_string());
                }
                Ok(Ok(true)) => match Request::decode(&self.body) {
                    Ok((id, request)) => {
                        if let Err(e) = self.authorize(&request) {
                            let response = Response::Error(e.to_wire());
                            let _ = self.responses.send((encode(id, &response), permit));
                            continue;
                        }
                        let plan = handler::plan(self.node, request, self.body.len(), self.role);
                        self.dispatch(id, plan, permit);
                    }
                    Err(e) => {
                        let error = WireError::new(ErrorCode::BadRequest, e.reason.clone());
                        let _ = self.responses.send((
                            encode(e.request_id.unwrap_or(0), &Response::Error(error)),
                            permit,
                        ));
                        return End::Protocol(e.to_string());
                    }
                },
            }
        }
    }

    /// Whether this connection's caller may make `request` (its token read again if the
    /// cluster's tokens changed since: a revocation takes effect on open connections too).
    fn authorize(&mut self, request: &Request) -> Result<(), crate::error::RequestError> {
        crate::security::admit(self.node, &mut self.caller, request)
    }

    /// Carries out the plan of request `id`: answers at once, submits a write whose callback
    /// answers, or starts the task that answers.
    fn dispatch(&mut self, id: RequestId, plan: Plan, permit: Slot) {
        let answer = self.responses.clone();
        let node = self.node.clone();
        match plan {
            Plan::Now(response) => {
                let _ = answer.send((encode(id, &response), permit));
            }
            Plan::Write {
                kind,
                key,
                write,
                ack,
            } => {
                let (started, writer_node) = (tokio::time::Instant::now(), node.clone());
                let send = move |response: Response| {
                    let _ = answer.send((encode(id, &response), permit));
                };
                if ack {
                    node.writes().submit_applied(
                        key,
                        write,
                        Box::new(move |outcome| {
                            send(handler::applied(&writer_node, kind, started, outcome));
                        }),
                    );
                } else {
                    node.writes().submit(
                        key,
                        write,
                        Priority::Foreground,
                        Box::new(move |outcome| {
                            send(handler::written(&writer_node, kind, started, outcome));
                        }),
                    );
                }
            }
            Plan::Batch {
                items,
                acks,
                held_only,
                priority,
            } => {
                tokio::spawn(async move {
                    let response = handler::batch(node, items, acks, held_only, priority).await;
                    let _ = answer.send((encode(id, &response), permit));
                });
            }
            Plan::Route {
                view,
                request,
                routing,
                stale,
            } => {
                // Once per epoch, a client that reached a node without the key hears the
                // current epoch, before the answer.
                let notice = stale.filter(|e| *e > self.epoch_told).map(|e| {
                    self.epoch_told = e;
                    encode(0, &Response::Epoch(e))
                });
                tokio::spawn(async move {
                    let response =
                        crate::cluster::route(node.cluster().clone(), view, request, routing).await;
                    let mut frames = notice.unwrap_or_default();
                    frames.extend_from_slice(&encode(id, &response));
                    let _ = answer.send((frames, permit));
                });
            }
            Plan::Digests { list, keys } => {
                tokio::spawn(async move {
                    let response = handler::digests(node, list, keys).await;
                    let _ = answer.send((encode(id, &response), permit));
                });
            }
        }
    }
}

/// The longest a client may leave its responses unread before it is cut off.
const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long responses may still take to reach a client once the node is shutting down.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a request in flight holds until its response is written: one of the connection's
/// request slots, and its frame's bytes of the connection's and of the node's byte budgets.
struct Slot {
    _count: Taken,
    _bytes: Option<Taken>,
    _node_bytes: Option<OwnedSemaphorePermit>,
}

/// Takes a whole frame from the reader's buffer if one is there, without touching the socket.
/// Returns `None` when more bytes are needed, and an error for a frame over the limit.
fn buffered_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    body: &mut Vec<u8>,
    max_bytes: usize,
) -> Option<Result<bool, FrameError>> {
    let buffered = reader.buffer();
    let size = u32::from_be_bytes(buffered.get(..4)?.try_into().expect("4 bytes")) as usize;
    if size > max_bytes {
        return Some(Err(FrameError::TooLarge {
            size,
            limit: max_bytes,
        }));
    }
    let frame = buffered.get(4..4 + size)?;
    body.clear();
    body.extend_from_slice(frame);
    std::pin::Pin::new(reader).consume(4 + size);
    Some(Ok(true))
}

fn encode(id: RequestId, response: &Response) -> Vec<u8> {
    // One buffer, sized for the common answers, instead of a body grown and then copied into a
    // frame.
    let room = match response {
        Response::Stored(Some(encoded)) => encoded.len() + 32,
        _ => 128,
    };
    let mut frame = Vec::with_capacity(room);
    write_frame_with(&mut frame, |body| response.encode(id, body));
    frame
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: RequestId,
    response: &Response,
) -> std::io::Result<()> {
    haze_protocol::flush_frames(writer, &encode(id, response)).await
}

/// Why a connection whose client does not take its responses is cut off.
const STALLED: &str = "responses not read";

fn end(node: &Node, why: End) {
    match &why {
        End::Closed | End::Shutdown => tracing::debug!(?why, "connection ended"),
        End::Timeout(during) => {
            node.metrics().timeouts.fetch_add(1, Ordering::Relaxed);
            if *during == STALLED {
                node.metrics()
                    .stalled_readers
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!(during, "connection timed out");
        }
        End::Protocol(reason) => {
            node.metrics()
                .protocol_errors
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                reason = reason.as_str(),
                "connection closed for a protocol error"
            );
        }
    }
}
