//! Background work with an owner: every long-running task of a node (anti-entropy, the handoff
//! forwarder, streams and cleanups, the copiers to each peer, the loop that follows the
//! controller) is started here, under a name, with a cancellation token. Stopping the node
//! cancels and joins them all, so a stopped node leaves no task running; `running` lists them
//! for status; a task that may restart is restarted when it ends or panics, after a pause.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a restarting task waits before it runs again after ending or panicking.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// One task the supervisor started.
#[derive(Debug)]
struct Task {
    name: String,
    handle: JoinHandle<()>,
}

/// The owner of a node's background tasks.
#[derive(Debug, Default)]
pub struct Supervisor {
    stop: CancellationToken,
    tasks: Mutex<Vec<Task>>,
    /// Tasks that ended by panicking, by name (each also logged).
    panics: Mutex<BTreeMap<String, u64>>,
}

impl Supervisor {
    /// Returns the token cancelled when the supervisor stops: a task started elsewhere can
    /// follow it.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Starts `task` under `name`, unless the supervisor is stopping or there is no runtime
    /// (then it logs why). The task gets a token cancelled when the supervisor stops; it must
    /// end soon after.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        if self.stop.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(task = %name, "no runtime to start a background task on");
            return;
        };
        let handle = runtime.spawn(task(self.stop.child_token()));
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        self.reap(&mut tasks);
        tasks.push(Task { name, handle });
    }

    /// Starts `task` under `name`, and starts it again (after a pause) whenever it ends or
    /// panics, until the supervisor stops.
    pub fn spawn_restarting<F, Fut>(&self, name: impl Into<String>, task: F)
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let label = name.clone();
        self.spawn(name, move |stop| async move {
            loop {
                let run = tokio::spawn(task(stop.clone()));
                let ended = run.await;
                if let Err(e) = ended
                    && e.is_panic()
                {
                    tracing::error!(task = %label, "a background task panicked (a bug); restarting it");
                }
                if stop.is_cancelled() {
                    return;
                }
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RESTART_PAUSE) => {}
                }
            }
        });
    }

    /// Forgets finished tasks, noting those that panicked.
    fn reap(&self, tasks: &mut Vec<Task>) {
        tasks.retain_mut(|t| {
            if !t.handle.is_finished() {
                return true;
            }
            // Finished: its outcome is ready, so one poll takes it.
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(Err(e)) =
                std::pin::Pin::new(&mut t.handle).poll(&mut context)
                && e.is_panic()
            {
                self.note_panic(&t.name);
            }
            false
        });
    }

    fn note_panic(&self, name: &str) {
        tracing::error!(task = %name, "a background task panicked (a bug)");
        *self
            .panics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_string())
            .or_default() += 1;
    }

    /// Returns the tasks running now: how many under each name.
    pub fn running(&self) -> BTreeMap<String, usize> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        self.reap(&mut tasks);
        let mut out = BTreeMap::new();
        for t in tasks.iter() {
            *out.entry(t.name.clone()).or_default() += 1;
        }
        out
    }

    /// Returns how many tasks ended by panicking, by name.
    pub fn panics(&self) -> BTreeMap<String, u64> {
        self.panics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Cancels every task and waits until each has ended. A task that panicked is logged (a
    /// bug), never ignored.
    pub async fn stop(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            if let Err(e) = task.handle.await
                && e.is_panic()
            {
                self.note_panic(&task.name);
            }
        }
    }
}
