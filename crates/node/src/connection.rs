//! One client connection: handshake, then pipelined requests.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use haze_protocol::{
    ErrorCode, FrameError, PROTOCOL_VERSION, Request, RequestId, Response, WireError, read_frame,
    write_frame,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::handler::handle;
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
    let (id, version) = match hello {
        Err(_) => return end(&node, End::Timeout("handshake")),
        Ok(Ok(false)) => return,
        Ok(Err(e)) => return end(&node, End::Protocol(e.to_string())),
        Ok(Ok(true)) => match Request::decode(&body) {
            Ok((id, Request::Hello { version })) => (id, version),
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

    // Requests are handled concurrently; their encoded responses flow to one writer task, which
    // sends whatever has accumulated in one write.
    let (responses, mut outbox) = mpsc::channel::<Vec<u8>>(config.max_in_flight);
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    let idle = config.idle_timeout;
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(frame) = outbox.recv().await {
            buf.clear();
            buf.extend_from_slice(&frame);
            while buf.len() < 256 * 1024 {
                match outbox.try_recv() {
                    Ok(frame) => buf.extend_from_slice(&frame),
                    Err(_) => break,
                }
            }
            // A client that stops reading its responses is cut off after the idle timeout.
            match tokio::time::timeout(idle, write_half.write_all(&buf)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = write_half.shutdown().await;
    });

    let ended = loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break End::Shutdown,
            permit = in_flight.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break End::Shutdown,
            frame = tokio::time::timeout(idle, read_frame(&mut reader, &mut body, config.max_frame_bytes)) => frame,
        };
        match frame {
            Err(_) => break End::Timeout("idle"),
            Ok(Ok(false)) => break End::Closed,
            Ok(Err(FrameError::Io(e))) => break End::Protocol(e.to_string()),
            Ok(Err(e)) => {
                let error = WireError::new(ErrorCode::BadRequest, e.to_string());
                let _ = responses.send(encode(0, &Response::Error(error))).await;
                break End::Protocol(e.to_string());
            }
            Ok(Ok(true)) => match Request::decode(&body) {
                Ok((id, request)) => {
                    let node = node.clone();
                    let responses = responses.clone();
                    tokio::spawn(async move {
                        let response = handle(node, request).await;
                        let _ = responses.send(encode(id, &response)).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    let error = WireError::new(ErrorCode::BadRequest, e.reason.clone());
                    let _ = responses
                        .send(encode(e.request_id.unwrap_or(0), &Response::Error(error)))
                        .await;
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
