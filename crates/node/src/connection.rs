//! One client connection: handshake, then pipelined requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_protocol::{
    ErrorCode, FrameError, PROTOCOL_VERSION, Request, RequestId, Response, Role, WireError,
    read_frame, write_frame,
};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use haze_storage::Priority;

use crate::handler::{self, Plan};
use crate::node::Node;

/// Why a connection ended (for logs).
#[derive(Debug)]
enum End {
    Closed,
    Shutdown,
    Timeout(&'static str),
    Protocol(String),
}

/// Serves one connection until the client closes it, misbehaves, idles out, or the node shuts
/// down. Responses go out as soon as each request completes, in any order.
pub(crate) async fn serve_connection<S>(node: Arc<Node>, stream: S, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read_half, mut write_half) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let config = node.config().clone();
    let mut body = Vec::new();

    // The handshake: the first frame must be a hello of a version we speak.
    let hello = tokio::time::timeout(
        config.handshake_timeout,
        read_frame(&mut reader, &mut body, config.max_frame_bytes),
    )
    .await;
    let (id, version, role) = match hello {
        Err(_) => return end(&node, End::Timeout("handshake")),
        Ok(Ok(false)) => return,
        Ok(Err(e)) => return end(&node, End::Protocol(e.to_string())),
        Ok(Ok(true)) => match Request::decode(&body) {
            Ok((id, Request::Hello { version, role })) => (id, version, role),
            Ok((id, _)) => {
                let error =
                    WireError::new(ErrorCode::BadRequest, "the first request must be a hello");
                let _ = send(&mut write_half, id, &Response::Error(error)).await;
                return end(&node, End::Protocol("no hello".into()));
            }
            Err(e) => {
                let error = WireError::new(ErrorCode::BadRequest, e.to_string());
                let _ = send(
                    &mut write_half,
                    e.request_id.unwrap_or(0),
                    &Response::Error(error),
                )
                .await;
                return end(&node, End::Protocol(e.to_string()));
            }
        },
    };
    if version != PROTOCOL_VERSION {
        let error = WireError::new(
            ErrorCode::UnsupportedVersion,
            format!("this node speaks protocol version {PROTOCOL_VERSION}, not {version}"),
        );
        let _ = send(&mut write_half, id, &Response::Error(error)).await;
        return end(&node, End::Protocol("unsupported version".into()));
    }
    if let Role::Peer { cluster } = role {
        let mine = node.view().map(|v| v.cluster);
        if mine != Some(cluster) {
            let message = match mine {
                Some(mine) => {
                    format!("this node belongs to cluster {mine:016x}, not {cluster:016x}")
                }
                None => "this node is not in a cluster (yet)".to_string(),
            };
            let error = WireError::new(ErrorCode::WrongCluster, message);
            let _ = send(&mut write_half, id, &Response::Error(error)).await;
            return end(&node, End::Protocol("a peer of another cluster".into()));
        }
    }
    if send(
        &mut write_half,
        id,
        &Response::Hello {
            version: PROTOCOL_VERSION,
        },
    )
    .await
    .is_err()
    {
        return;
    }

    // Requests are answered concurrently; their encoded responses flow to one writer task,
    // which sends whatever has accumulated in one write. Each response carries the permit of its
    // request, released only once written, so a client that stops reading stops being read.
    let (responses, mut outbox) = mpsc::unbounded_channel::<(Vec<u8>, Slot)>();
    // Budgets are clamped to what works: at least one request and one whole frame.
    let in_flight = Arc::new(Semaphore::new(
        config.max_in_flight.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let byte_budget = config
        .max_in_flight_bytes
        .clamp(config.max_frame_bytes.max(1), Semaphore::MAX_PERMITS);
    let in_flight_bytes = Arc::new(Semaphore::new(byte_budget));
    let idle = config.idle_timeout;
    // A client that does not take its responses for this long is cut off: its requests hold
    // the node's byte budget meanwhile.
    let stalled = idle.min(WRITE_STALL);
    let writer_shutdown = shutdown.clone();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut permits = Vec::new();
        // One deadline for the whole connection once the node starts shutting down.
        let stopping = async {
            writer_shutdown.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::pin!(stopping);
        loop {
            let next = tokio::select! {
                biased;
                next = outbox.recv() => next,
                () = &mut stopping => break,
            };
            let Some((frame, permit)) = next else { break };
            buf.clear();
            buf.extend_from_slice(&frame);
            permits.push(permit);
            while buf.len() < 256 * 1024 {
                match outbox.try_recv() {
                    Ok((frame, permit)) => {
                        buf.extend_from_slice(&frame);
                        permits.push(permit);
                    }
                    Err(_) => break,
                }
            }
            tokio::select! {
                biased;
                written = tokio::time::timeout(stalled, write_half.write_all(&buf)) => match written {
                    Ok(Ok(())) => permits.clear(),
                    _ => break,
                },
                () = &mut stopping => break,
            }
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, write_half.shutdown()).await;
    });

    let peer = matches!(role, Role::Peer { .. });
    // The latest epoch this connection's client was told of (see `Plan::Route`).
    let mut epoch_told = 0u64;
    let ended = loop {
        if responses.is_closed() {
            // The writer gave up on a client that does not read: stop reading it too.
            break End::Timeout("responses not read");
        }
        let count = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break End::Shutdown,
            permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // Pipelined requests are usually already buffered: take them without arming a timer.
        let frame = match buffered_frame(&mut reader, &mut body, config.max_frame_bytes) {
            Some(frame) => Ok(frame),
            None => tokio::select! {
                biased;
                _ = shutdown.cancelled() => break End::Shutdown,
                () = responses.closed() => break End::Timeout("responses not read"),
                frame = tokio::time::timeout(idle, read_frame(&mut reader, &mut body, config.max_frame_bytes)) => frame,
            },
        };
        if matches!(frame, Ok(Ok(true))) && body.len() > byte_budget {
            break End::Protocol("a frame larger than the in-flight budget".into());
        }
        // Memory follows the bytes of the requests in flight, not their number.
        let weight = u32::try_from(body.len().max(1)).unwrap_or(u32::MAX);
        // Both this connection's budget and the node's: many connections cannot add up to
        // more than the node allows either.
        let (bytes, node_bytes) = if matches!(frame, Ok(Ok(true))) {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break End::Shutdown,
                permits = async {
                    let mine = in_flight_bytes.clone().acquire_many_owned(weight).await;
                    // Other nodes' requests (copies, forwarded writes) are exempt from the
                    // node-wide budget: clients' writes waiting for copies hold that budget,
                    // and the copies must not wait for it. A peer connection still has its
                    // own budget, and peers are few.
                    let node_wide = if peer {
                        None
                    } else {
                        node.in_flight_bytes().acquire_many_owned(weight).await.ok()
                    };
                    (mine.ok(), node_wide)
                } => permits,
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
            Err(_) => break End::Timeout("idle"),
            Ok(Ok(false)) => break End::Closed,
            Ok(Err(FrameError::Io(e))) => break End::Protocol(e.to_string()),
            Ok(Err(e)) => {
                let error = WireError::new(ErrorCode::BadRequest, e.to_string());
                let _ = responses.send((encode(0, &Response::Error(error)), permit));
                break End::Protocol(e.to_string());
            }
            Ok(Ok(true)) => match Request::decode(&body) {
                Ok((id, request)) => match handler::plan(&node, request, body.len(), role) {
                    Plan::Now(response) => {
                        let _ = responses.send((encode(id, &response), permit));
                    }
                    Plan::Write { kind, key, write } => {
                        let (answer, started, writer_node) =
                            (responses.clone(), tokio::time::Instant::now(), node.clone());
                        node.writes().submit(
                            key,
                            write,
                            Priority::Foreground,
                            Box::new(move |outcome| {
                                let response =
                                    handler::written(&writer_node, kind, started, outcome);
                                let _ = answer.send((encode(id, &response), permit));
                            }),
                        );
                    }
                    Plan::Batch {
                        items,
                        acks,
                        held_only,
                        priority,
                    } => {
                        let (answer, node) = (responses.clone(), node.clone());
                        tokio::spawn(async move {
                            let response =
                                handler::batch(node, items, acks, held_only, priority).await;
                            let _ = answer.send((encode(id, &response), permit));
                        });
                    }
                    Plan::Route {
                        view,
                        request,
                        routing,
                        stale,
                    } => {
                        // Once per epoch, a client that reached a node without the key hears
                        // the current epoch, before the answer.
                        let notice = stale.filter(|e| *e > epoch_told).map(|e| {
                            epoch_told = e;
                            encode(0, &Response::Epoch(e))
                        });
                        let (answer, node) = (responses.clone(), node.clone());
                        tokio::spawn(async move {
                            let response = crate::cluster::route(
                                node.cluster().clone(),
                                view,
                                request,
                                routing,
                            )
                            .await;
                            let mut frames = notice.unwrap_or_default();
                            frames.extend_from_slice(&encode(id, &response));
                            let _ = answer.send((frames, permit));
                        });
                    }
                    Plan::Digests { list, keys } => {
                        let (answer, node) = (responses.clone(), node.clone());
                        tokio::spawn(async move {
                            let response = handler::digests(node, list, keys).await;
                            let _ = answer.send((encode(id, &response), permit));
                        });
                    }
                },
                Err(e) => {
                    let error = WireError::new(ErrorCode::BadRequest, e.reason.clone());
                    let _ = responses.send((
                        encode(e.request_id.unwrap_or(0), &Response::Error(error)),
                        permit,
                    ));
                    break End::Protocol(e.to_string());
                }
            },
        }
    };
    // The writer ends once every in-flight request has sent its response.
    drop(responses);
    let _ = writer.await;
    end(&node, ended);
}

/// The longest a client may leave its responses unread before it is cut off.
const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// How long responses may still take to reach a client once the node is shutting down.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a request in flight holds until its response is written: one of the connection's
/// request slots, and its frame's bytes of the connection's and of the node's byte budgets.
struct Slot {
    _count: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
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
    let mut body = Vec::with_capacity(64);
    response.encode(id, &mut body);
    let mut frame = Vec::with_capacity(body.len() + 4);
    write_frame(&mut frame, &body);
    frame
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    id: RequestId,
    response: &Response,
) -> std::io::Result<()> {
    haze_protocol::flush_frames(writer, &encode(id, response)).await
}

fn end(node: &Node, why: End) {
    match &why {
        End::Closed | End::Shutdown => tracing::debug!(?why, "connection ended"),
        End::Timeout(during) => {
            node.metrics().timeouts.fetch_add(1, Ordering::Relaxed);
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
