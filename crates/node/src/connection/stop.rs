//! The shutdown signal that connections wait on beside every read and every write.
//!
//! (And for a connection's reader, the end of its writer: see [`TripOnDrop`].)
//!
//! A `CancellationToken`'s future takes two locks each time it is polled, both shared by every
//! clone of the token: the token's own mutex (`is_cancelled`), then the waiter list of its
//! `Notify` (tokio looks at a registered waiter under that list's lock). A connection's reader
//! and writer each select on shutdown beside their work, so every request of every connection
//! took the node's same two locks, from both cores (`perf` under pipeline-1 gets: 3.4% of the
//! node's samples). A [`Watch`] reads a flag instead and registers its task's waker in a slot of
//! its own: nothing another connection writes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

/// A listener's shutdown: [`trip`](Self::trip) completes every [`Watch`] it gave out, and
/// every one it gives out later.
#[derive(Clone, Default)]
pub(crate) struct Stop {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    /// The watches' wakers; a dropped watch's entry is pruned when the list doubles.
    watches: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl Stop {
    /// A signal not yet tripped.
    pub(crate) fn new() -> Stop {
        Stop::default()
    }

    /// Stops: every watch completes (those waiting are woken).
    pub(crate) fn trip(&self) {
        // Set before the wakes: a watch woken (or registering meanwhile) reads it after.
        self.shared.stopped.store(true, Ordering::SeqCst);
        let watches = std::mem::take(
            &mut *self
                .shared
                .watches
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for waker in watches.iter().filter_map(Weak::upgrade) {
            waker.wake();
        }
    }

    /// A future that completes once this signal is tripped, for one task to wait on (as often
    /// as it likes: polling it costs a flag's read and, when the task's waker is the one it
    /// holds, nothing more).
    pub(crate) fn watch(&self) -> Watch {
        let waker = Arc::new(AtomicWaker::new());
        let mut watches = (self.shared.watches.lock()).unwrap_or_else(PoisonError::into_inner);
        if watches.len() == watches.capacity() {
            watches.retain(|w| w.strong_count() > 0);
        }
        watches.push(Arc::downgrade(&waker));
        Watch {
            shared: self.shared.clone(),
            waker,
        }
    }
}

/// Trips its [`Stop`] when dropped: a task that holds it signals its end however it ends
/// (a connection's writer, whose reader then stops reading).
pub(crate) struct TripOnDrop(pub(crate) Stop);

impl Drop for TripOnDrop {
    fn drop(&mut self) {
        self.0.trip();
    }
}

/// One task's wait for a [`Stop`] (see [`Stop::watch`]); ready for good once tripped.
pub(crate) struct Watch {
    shared: Arc<Shared>,
    waker: Arc<AtomicWaker>,
}

impl Watch {
    fn stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }
}

impl Future for Watch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.stopped() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // Tripped between the first look and the registration: its wake may have missed it.
        if self.stopped() {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(watch: &mut Watch) -> Poll<()> {
        Pin::new(watch).poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test]
    async fn a_trip_completes_watches_made_before_and_after() {
        let stop = Stop::new();
        let waiting = tokio::spawn(stop.watch());
        let mut idle = stop.watch();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(poll(&mut idle).is_pending());
        stop.trip();
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the waiting watch is woken")
            .unwrap();
        assert!(poll(&mut idle).is_ready());
        assert!(poll(&mut stop.watch()).is_ready());
    }

    #[test]
    fn dropped_watches_do_not_accumulate() {
        let stop = Stop::new();
        for _ in 0..10_000 {
            drop(stop.watch());
        }
        let _kept = stop.watch();
        let held = stop.shared.watches.lock().unwrap().len();
        assert!(held <= 64, "{held} entries for one live watch");
    }
}
