//! The group committer: writes that arrive together share one commit, and a failed commit stops
//! every later acknowledgement.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use haze_crdt::Value;
use haze_storage::{
    BACKGROUND_ALONE, BACKGROUND_PER_COMMIT, Durability, Error, GroupCommitter, Mutation, Priority,
    Reply, Store, StoreConfig, WriteError,
};
use haze_testkit::Gated;

use crate::suite::counter;

fn reply_to(tx: &mpsc::Sender<Result<Value, WriteError>>) -> Reply {
    let tx = tx.clone();
    Box::new(move |outcome| {
        let _ = tx.send(outcome);
    })
}

fn submit(
    committer: &GroupCommitter,
    key: &[u8],
    value: Value,
    tx: &mpsc::Sender<Result<Value, WriteError>>,
) {
    committer
        .handle()
        .submit(key.to_vec(), Mutation::Merge(value), reply_to(tx))
        .map_err(|(_, e)| e)
        .unwrap();
}

#[test]
fn writes_that_arrive_during_a_commit_share_the_next_one() {
    let store = Gated::new(StoreConfig::default(), true, None);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    submit(&committer, b"first", counter(1, 1), &tx);
    while store.applies() == 0 {
        std::thread::yield_now(); // the writer is now inside the first commit, held
    }
    for i in 0..100u64 {
        submit(&committer, b"k", counter(i, 1), &tx);
    }
    store.release();
    let outcomes: Vec<_> = (0..101).map(|_| rx.recv().unwrap()).collect();
    assert!(outcomes.iter().all(Result::is_ok));
    let stats = committer.handle();
    assert_eq!(stats.stats().writes.load(Ordering::SeqCst), 101);
    assert_eq!(
        stats.stats().commits.load(Ordering::SeqCst),
        2,
        "100 queued writes share one commit"
    );
    match store.get(b"k").unwrap() {
        Some(Value::GCounter(c)) => assert_eq!(c.value(), 100),
        other => panic!("{other:?}"),
    }
}

/// Queues a merge of `value` into `key` with `priority`; its outcome is sent with `tag`.
fn submit_tagged(
    committer: &GroupCommitter,
    priority: Priority,
    (key, value): (&[u8], Value),
    tag: usize,
    tx: &mpsc::Sender<(usize, bool)>,
) {
    let tx = tx.clone();
    let reply: Reply = Box::new(move |outcome| {
        let _ = tx.send((tag, outcome.is_ok()));
    });
    committer
        .handle()
        .submit_with(priority, key.to_vec(), Mutation::Merge(value), reply)
        .map_err(|(_, e)| e)
        .unwrap();
}

fn count_of(store: &dyn Store, key: &[u8]) -> u128 {
    match store.get(key).unwrap() {
        Some(Value::GCounter(c)) => c.value(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn foreground_writes_overtake_a_queue_of_background_writes() {
    let store = Gated::new(StoreConfig::default(), true, None);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    let first = (b"first".as_slice(), counter(1, 1));
    submit_tagged(&committer, Priority::Foreground, first, usize::MAX, &tx);
    while store.applies() == 0 {
        std::thread::yield_now(); // the writer is now inside the first commit, held
    }
    // A stream's worth of background writes, then a few clients' writes behind them.
    let background = 1000;
    for i in 0..background {
        let write = (b"streamed".as_slice(), counter(i as u64, 1));
        submit_tagged(&committer, Priority::Background, write, i, &tx);
    }
    for i in 0..10 {
        let write = (b"client".as_slice(), counter(i as u64, 1));
        submit_tagged(&committer, Priority::Foreground, write, background + i, &tx);
    }
    store.release();
    let arrived: Vec<(usize, bool)> = (0..background + 11).map(|_| rx.recv().unwrap()).collect();
    assert!(arrived.iter().all(|(_, ok)| *ok));
    let last_client = arrived
        .iter()
        .rposition(|(tag, _)| (background..background + 10).contains(tag))
        .unwrap();
    assert!(
        last_client <= 10 + BACKGROUND_PER_COMMIT,
        "the clients' writes waited behind {last_client} others"
    );
    assert_eq!(count_of(&*store, b"streamed"), background as u128);
    assert_eq!(count_of(&*store, b"client"), 10);
    assert_eq!(
        committer.handle().stats().commits.load(Ordering::SeqCst) as usize,
        2 + (background - BACKGROUND_PER_COMMIT).div_ceil(BACKGROUND_ALONE),
        "the held commit, the clients' writes with a small share of the stream, then larger \
         shares (no client waits)"
    );
}

#[test]
fn a_lone_background_write_wakes_an_idle_writer() {
    let store = Gated::new(StoreConfig::default(), false, None);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    let alone = (b"alone".as_slice(), counter(1, 1));
    submit_tagged(&committer, Priority::Background, alone, 0, &tx);
    assert_eq!(rx.recv().unwrap(), (0, true));
}

#[test]
fn shutdown_applies_every_queued_background_write_then_syncs_once() {
    let config = StoreConfig {
        durability: Durability::Periodic {
            interval_ms: 60_000,
        },
        ..StoreConfig::default()
    };
    let store = Gated::new(config, true, None);
    let committer = Arc::new(GroupCommitter::start(store.clone()).unwrap());
    let (tx, rx) = mpsc::channel();
    let first = (b"first".as_slice(), counter(1, 1));
    submit_tagged(&committer, Priority::Foreground, first, usize::MAX, &tx);
    while store.applies() == 0 {
        std::thread::yield_now(); // the writer is now inside the first commit, held
    }
    // Several commits' worth, so the writer receives the stop with background writes left.
    let background = 4 * BACKGROUND_ALONE + 1;
    for i in 0..background {
        let write = (b"late".as_slice(), counter(i as u64, 1));
        submit_tagged(&committer, Priority::Background, write, i, &tx);
    }
    // Two shutdowns: each queues a stop, then one joins the writer (held, it cannot end) and the
    // other returns at once. The first to return proves that a stop is queued: only then is the
    // writer released, with all the background writes still waiting.
    let (returned, first_return) = mpsc::channel();
    let stopping: Vec<_> = (0..2)
        .map(|_| {
            let (committer, returned) = (committer.clone(), returned.clone());
            std::thread::spawn(move || {
                committer.shutdown();
                let _ = returned.send(());
            })
        })
        .collect();
    first_return.recv().unwrap();
    assert_eq!(store.applies(), 1, "the writer is still held");
    store.release();
    for thread in stopping {
        thread.join().unwrap();
    }
    assert_eq!(
        rx.try_iter().filter(|(_, ok)| *ok).count(),
        background + 1,
        "every queued write is acknowledged before the writer stops"
    );
    assert_eq!(count_of(&*store, b"late"), background as u128);
    assert_eq!(store.syncs(), 1, "one sync, once both queues are drained");
}

#[test]
fn a_failed_commit_stops_every_later_acknowledgement() {
    let store = Gated::new(StoreConfig::default(), false, Some(2));
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    submit(&committer, b"a", counter(1, 1), &tx);
    assert!(rx.recv().unwrap().is_ok());
    submit(&committer, b"b", counter(1, 1), &tx);
    assert_eq!(
        rx.recv().unwrap(),
        Err(WriteError::Store(Error::Io(
            "injected fsync failure".into()
        )))
    );
    assert!(committer.handle().has_failed());
    submit(&committer, b"c", counter(1, 1), &tx);
    assert!(matches!(
        rx.recv().unwrap(),
        Err(WriteError::Store(Error::Stopped(_)))
    ));
    assert_eq!(store.applies(), 2, "nothing is applied after the failure");
}

#[test]
fn periodic_mode_acknowledges_then_syncs_by_shutdown() {
    let config = StoreConfig {
        durability: Durability::Periodic {
            interval_ms: 60_000,
        },
        ..StoreConfig::default()
    };
    let store = Gated::new(config, false, None);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    submit(&committer, b"a", counter(1, 1), &tx);
    assert!(rx.recv().unwrap().is_ok());
    assert_eq!(store.syncs(), 0, "acknowledged before any fsync");
    committer.shutdown();
    assert_eq!(store.syncs(), 1, "shutdown makes everything durable");
}

#[test]
fn an_idle_periodic_writer_waits_instead_of_spinning() {
    // Found by a benchmark: an idle writer in periodic mode recomputed a zero wait forever.
    let interval_ms = 20;
    let config = StoreConfig {
        durability: Durability::Periodic { interval_ms },
        ..StoreConfig::default()
    };
    let store = Gated::new(config, false, None);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    submit(&committer, b"a", counter(1, 1), &tx);
    assert!(rx.recv().unwrap().is_ok());
    store.wait_for_a_sync();
    // From here the writer has nothing to do. Waiting, it wakes once per interval at most (each
    // wait is a whole interval); spinning, it woke hundreds of thousands of times. The bound
    // is in intervals that passed, so a slow machine only loosens it: it asserts no timing.
    let stats = committer.handle();
    #[allow(clippy::disallowed_methods)] // how long the writer idled, to count its intervals
    let (started, before) = (
        std::time::Instant::now(),
        stats.stats().wakeups.load(Ordering::SeqCst),
    );
    wait_at_least(std::time::Duration::from_millis(10 * interval_ms));
    let woke = stats.stats().wakeups.load(Ordering::SeqCst) - before;
    let intervals = started.elapsed().as_millis() as u64 / interval_ms;
    assert!(
        woke <= 2 * (intervals + 1),
        "the idle writer woke {woke} times in {intervals} intervals"
    );
    assert_eq!(store.syncs(), 1, "one sync, for the one write");
}

#[test]
fn commits_go_on_while_a_periodic_fsync_waits_for_the_disk() {
    // The periodic fsync used to run on the writer thread: every commit waited behind it.
    let config = StoreConfig {
        durability: Durability::Periodic { interval_ms: 5 },
        ..StoreConfig::default()
    };
    let store = Gated::new(config, false, None);
    store.hold_syncs();
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    submit(&committer, b"a", counter(1, 1), &tx);
    assert!(rx.recv().unwrap().is_ok());
    store.wait_for_a_sync_to_begin();
    // The fsync is under way, and held: writes are still applied and acknowledged.
    let writes = 20;
    let mut answers = Vec::new();
    for i in 0..writes {
        submit(&committer, format!("k{i}").as_bytes(), counter(1, 1), &tx);
        // A hang guard, not a timing assertion: held behind the fsync, the write never returns.
        let answer = rx.recv_timeout(std::time::Duration::from_secs(10));
        let answered = matches!(answer, Ok(Ok(_)));
        answers.push(answer);
        if !answered {
            break;
        }
    }
    let held_syncs = store.syncs();
    store.release_syncs(); // before any assertion: a failed one must not leave the writer held
    assert!(
        answers.iter().all(|a| matches!(a, Ok(Ok(_)))) && answers.len() == writes,
        "a write waited behind the fsync: {answers:?}"
    );
    assert_eq!(held_syncs, 0, "the fsync was still held");
    committer.shutdown();
    assert!(store.syncs() >= 2, "the held fsync, then shutdown's");
    println!("held: {writes} writes acknowledged while the periodic fsync waited for the disk");
}

/// Waits at least `d` without sleeping the thread (the workspace bans `thread::sleep`): blocking
/// on a channel that nobody sends to, with a timeout.
fn wait_at_least(d: std::time::Duration) {
    let (_keep, rx) = mpsc::channel::<()>();
    let _ = rx.recv_timeout(d);
}
