//! A connection's writer: the one task that sends its responses, whatever has accumulated in
//! one write. Each response carries the permit of its request, released only once written, so
//! a client that stops reading stops being read.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{SHUTDOWN_GRACE, Slot, WRITE_STALL};

/// Where a request's encoded response goes, with the permit it holds.
pub(super) type Responses = mpsc::UnboundedSender<(Vec<u8>, Slot)>;

/// Starts the writer of `write_half`. It ends once every sender of the returned channel is
/// dropped and everything sent was written; when a write stalls longer than `idle` (at most
/// the write-stall limit: the client does not take its responses, while its requests hold the
/// node's byte budget); or `SHUTDOWN_GRACE` after `shutdown`.
pub(super) fn spawn<W>(
    mut write_half: W,
    idle: std::time::Duration,
    shutdown: CancellationToken,
) -> (Responses, tokio::task::JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (responses, mut outbox) = mpsc::unbounded_channel::<(Vec<u8>, Slot)>();
    let stalled = idle.min(WRITE_STALL);
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut permits = Vec::new();
        // One deadline for the whole connection once the node starts shutting down.
        let stopping = async {
            shutdown.cancelled().await;
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
    (responses, writer)
}
