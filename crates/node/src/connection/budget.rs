//! A connection's own budgets (request slots, bytes in flight): taken by its reader alone, given
//! back by whoever drops what a request holds (its writer, once the response is written).
//!
//! tokio's semaphore takes its waiter list's lock on every release, whether anyone waits or
//! not: three releases per request (two of them for the connection's budgets) were about 340
//! instructions of a pipeline-1 get's 7,800 (callgrind). With a single taker there is no
//! list to keep: taking is a compare-and-swap, giving back an atomic add, and a wake only when
//! the reader waits.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

/// A budget of `capacity` units for one taker (see the module's documentation).
pub(super) struct Budget {
    available: AtomicUsize,
    /// Set by the taker before it looks again and sleeps; a release that sees it wakes it.
    taker_waits: AtomicBool,
    waker: AtomicWaker,
}

/// Units taken from a [`Budget`], given back when dropped.
pub(super) struct Taken {
    budget: Arc<Budget>,
    units: usize,
}

impl Budget {
    pub(super) fn new(capacity: usize) -> Arc<Budget> {
        Arc::new(Budget {
            available: AtomicUsize::new(capacity),
            taker_waits: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    /// The units not taken now.
    pub(super) fn available(&self) -> usize {
        self.available.load(Ordering::SeqCst)
    }

    /// Takes `units` if that many are available now.
    pub(super) fn try_take(self: &Arc<Self>, units: usize) -> Option<Taken> {
        let mut available = self.available.load(Ordering::SeqCst);
        loop {
            let left = available.checked_sub(units)?;
            match self.available.compare_exchange_weak(
                available,
                left,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    return Some(Taken {
                        budget: self.clone(),
                        units,
                    });
                }
                Err(now) => available = now,
            }
        }
    }

    /// Takes `units`, waiting for releases until that many are available (never, if `units`
    /// is more than the budget's capacity: callers clamp). Cancel-safe: dropped before it
    /// completes, it has taken nothing.
    pub(super) async fn take(self: &Arc<Self>, units: usize) -> Taken {
        poll_fn(|cx| {
            if let Some(taken) = self.try_take(units) {
                return Poll::Ready(taken);
            }
            self.waker.register(cx.waker());
            // Flag, then look again: a release either sees the flag (and wakes this task) or
            // came before the second look (which sees its units). Both are sequentially
            // consistent, as are the release's add and its look at the flag.
            self.taker_waits.store(true, Ordering::SeqCst);
            match self.try_take(units) {
                Some(taken) => Poll::Ready(taken),
                None => Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        let budget = &self.budget;
        budget.available.fetch_add(self.units, Ordering::SeqCst);
        if budget.taker_waits.load(Ordering::SeqCst) {
            budget.taker_waits.store(false, Ordering::SeqCst);
            budget.waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::AtomicUsize;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    /// Counts its wakes and unparks the thread that made it.
    struct Wakes(std::thread::Thread, AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.unpark();
        }
    }

    fn wakes() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes(std::thread::current(), AtomicUsize::new(0)));
        (wakes.clone(), Waker::from(wakes))
    }

    #[test]
    fn units_are_taken_up_to_the_capacity_and_come_back_when_dropped() {
        let budget = Budget::new(10);
        let a = budget.try_take(6).unwrap();
        assert!(budget.try_take(5).is_none());
        let b = budget.try_take(4).unwrap();
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 6);
        drop(b);
        assert_eq!(budget.available(), 10);
    }

    #[test]
    fn a_waiting_taker_is_woken_by_each_release_and_takes_once_enough_are_back() {
        let budget = Budget::new(2);
        let (a, b) = (budget.try_take(1).unwrap(), budget.try_take(1).unwrap());
        let (count, waker) = wakes();
        let mut cx = Context::from_waker(&waker);
        let mut take = std::pin::pin!(budget.take(2));
        assert!(take.as_mut().poll(&mut cx).is_pending());
        drop(a);
        assert_eq!(
            count.1.load(Ordering::SeqCst),
            1,
            "woken by the first release"
        );
        assert!(take.as_mut().poll(&mut cx).is_pending());
        drop(b);
        assert_eq!(count.1.load(Ordering::SeqCst), 2, "woken by the second");
        let Poll::Ready(taken) = take.as_mut().poll(&mut cx) else {
            panic!("both units are back")
        };
        assert_eq!((budget.available(), taken.units), (0, 2));
    }

    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a hang guard: a lost wake-up shows as no wake within seconds"
    )]
    fn a_waiting_taker_is_woken_by_releases_on_other_threads() {
        // Many rounds of: the budget all taken, given back from other threads one unit at a
        // time while this thread waits for all of it, parked until woken.
        let budget = Budget::new(4);
        let (count, waker) = wakes();
        let mut cx = Context::from_waker(&waker);
        for round in 0..2_000 {
            let held: Vec<Taken> = (0..4).map(|_| budget.try_take(1).unwrap()).collect();
            std::thread::scope(|threads| {
                for taken in held {
                    threads.spawn(move || drop(taken));
                }
                let mut take = std::pin::pin!(budget.take(4));
                loop {
                    let seen = count.1.load(Ordering::SeqCst);
                    if let Poll::Ready(all) = take.as_mut().poll(&mut cx) {
                        drop(all);
                        break;
                    }
                    let since = std::time::Instant::now();
                    while count.1.load(Ordering::SeqCst) == seen {
                        assert!(
                            since.elapsed() < Duration::from_secs(10),
                            "round {round}: a release never woke the waiting taker"
                        );
                        std::thread::park_timeout(Duration::from_millis(100));
                    }
                }
            });
            assert_eq!(budget.available(), 4);
        }
    }
}
