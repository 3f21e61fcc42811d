//! A connection's writer: the one task that sends its responses, whatever has accumulated in
//! one write. Each response carries the permit of its request, released only once written, so
//! a client that stops reading stops being read.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::stop::{Stop, TripOnDrop, Watch};
use super::{InFlight, SHUTDOWN_GRACE, Slot, WRITE_STALL};

/// Where a request's encoded response goes, with the permit it holds.
pub(super) type Responses = mpsc::UnboundedSender<(Vec<u8>, Slot)>;

/// Starts the writer of `write_half`. It ends once every sender of the returned channel is
/// dropped and everything sent was written; when a write stalls longer than `idle` (at most
/// the write-stall limit: the client does not take its responses, while its requests hold the
/// node's byte budget); or `SHUTDOWN_GRACE` after the node's shutdown (`stop`). `in_flight`
/// tells it whether more responses are on their way. The returned watch completes when the
/// writer has ended.
pub(super) fn spawn<W>(
    mut write_half: W,
    in_flight: InFlight,
    idle: std::time::Duration,
    stop: Watch,
) -> (Responses, tokio::task::JoinHandle<()>, Watch)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (responses, mut outbox) = mpsc::unbounded_channel::<(Vec<u8>, Slot)>();
    let stalled = idle.min(WRITE_STALL);
    let ended = Stop::new();
    let writer_ended = ended.watch();
    let writer = tokio::spawn(async move {
        let _ended = TripOnDrop(ended);
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut permits = Vec::new();
        // One deadline for the whole connection once the node starts shutting down.
        let stopping = async {
            stop.await;
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
            drain(&mut outbox, &mut buf, &mut permits);
            if permits.len() == 1 && in_flight.unanswered(1) > 0 {
                // One response while others of this connection are still being served: the
                // task that answered woke this one straight away (tokio runs a woken task
                // next), before the others ready to answer had their turn. Let them run
                // once, so that a pipeline's responses share a write (a system call costs
                // more than a request's own work).
                tokio::task::yield_now().await;
                drain(&mut outbox, &mut buf, &mut permits);
            }
            // Most writes complete at once (the socket has room): only one that must wait
            // arms the stall timer.
            let write = write_half.write_all(&buf);
            tokio::pin!(write);
            let written = match super::ready_now(&mut write).await {
                Some(written) => Ok(written),
                None => tokio::select! {
                    biased;
                    written = tokio::time::timeout(stalled, &mut write) => written,
                    () = &mut stopping => break,
                },
            };
            match written {
                Ok(Ok(())) => permits.clear(),
                _ => break,
            }
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, write_half.shutdown()).await;
    });
    (responses, writer, writer_ended)
}

/// Appends the responses already queued to `buf`, up to a write's worth, and keeps their
/// permits until it is written.
fn drain(
    outbox: &mut mpsc::UnboundedReceiver<(Vec<u8>, Slot)>,
    buf: &mut Vec<u8>,
    permits: &mut Vec<Slot>,
) {
    while buf.len() < 256 * 1024 {
        match outbox.try_recv() {
            Ok((frame, permit)) => {
                buf.extend_from_slice(&frame);
                permits.push(permit);
            }
            Err(_) => break,
        }
    }
}
