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

    /// The tasks running now and those that panicked, by kind (the first word of their
    /// names: `stream`, `copier`, `anti-entropy`...), in the Prometheus text format.
    pub fn render(&self) -> String {
        let kind = |name: &str| name.split(' ').next().unwrap_or(name).to_string();
        let mut running = BTreeMap::<String, usize>::new();
        for (name, count) in self.running() {
            *running.entry(kind(&name)).or_default() += count;
        }
        let mut panics = BTreeMap::<String, u64>::new();
        for (name, count) in self.panics() {
            *panics.entry(kind(&name)).or_default() += count;
        }
        let mut out = String::from(
            "# HELP haze_background_tasks Background tasks running, by kind.\n\
             # TYPE haze_background_tasks gauge\n",
        );
        for (kind, count) in running {
            out.push_str(&format!(
                "haze_background_tasks{{kind=\"{kind}\"}} {count}\n"
            ));
        }
        out.push_str(
            "# HELP haze_background_task_panics_total Background tasks that panicked (a bug), by kind.\n\
             # TYPE haze_background_task_panics_total counter\n",
        );
        for (kind, count) in panics {
            out.push_str(&format!(
                "haze_background_task_panics_total{{kind=\"{kind}\"}} {count}\n"
            ));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn stopping_cancels_and_joins_every_task() {
        let supervisor = Supervisor::default();
        let ended = Arc::new(AtomicUsize::new(0));
        for name in ["stream 1 to n2", "stream 2 to n2", "anti-entropy"] {
            let ended = ended.clone();
            supervisor.spawn(name, move |stop| async move {
                stop.cancelled().await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(
            supervisor.running(),
            BTreeMap::from([
                ("anti-entropy".into(), 1),
                ("stream 1 to n2".into(), 1),
                ("stream 2 to n2".into(), 1)
            ])
        );
        assert!(
            supervisor
                .render()
                .contains("haze_background_tasks{kind=\"stream\"} 2")
        );
        supervisor.stop().await;
        assert_eq!(
            ended.load(Ordering::SeqCst),
            3,
            "each task saw the stop and ended"
        );
        assert!(supervisor.running().is_empty());
        // Nothing starts once stopped.
        supervisor.spawn("late", |_| async {});
        assert!(supervisor.running().is_empty());
    }

    #[tokio::test]
    async fn a_task_that_panics_is_counted_and_one_that_may_restart_runs_again() {
        let supervisor = Supervisor::default();
        supervisor.spawn("doomed", |_| async { panic!("a planted panic") });
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        supervisor.spawn_restarting("loop", move |_| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        // A hang guard, not a timing assertion: a restart comes after a pause of one second.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while runs.load(Ordering::SeqCst) < 2 || supervisor.panics().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no restart or no panic noted"
            );
            let _ = supervisor.running(); // reaps the finished task, noting its panic
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(supervisor.panics(), BTreeMap::from([("doomed".into(), 1)]));
        supervisor.stop().await;
        assert!(supervisor.running().is_empty());
    }
}
