//! A full or failing disk under the real writer thread (docs/storage-format.md, "A full or
//! failing disk"): nothing is acknowledged that is not durable; a full disk refuses writes and
//! the writer takes them again once a commit finds room; an fsync error (and EIO from a write)
//! stops it for good, never retried as success; reads go on throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use haze_crdt::{ActorId, OrSet, Value};
use haze_storage::{
    DiskStore, Durability, Error, GroupCommitter, Mutation, Priority, Store, StoreConfig,
    WriteError,
};
use haze_testkit::{Fault, Faulty, Tmpfs};

use crate::suite::counter;

/// Queues a merge of `value` into `key` and waits for its outcome.
fn write(committer: &GroupCommitter, key: &[u8], value: Value) -> Result<Value, WriteError> {
    write_as(committer, key, value, false)
}

/// Queues a merge that may be acknowledged only once durable (another node's copy) and waits.
fn write_durable(
    committer: &GroupCommitter,
    key: &[u8],
    value: Value,
) -> Result<Value, WriteError> {
    write_as(committer, key, value, true)
}

fn write_as(
    committer: &GroupCommitter,
    key: &[u8],
    value: Value,
    durable: bool,
) -> Result<Value, WriteError> {
    let (tx, rx) = mpsc::channel();
    let reply: haze_storage::Reply = Box::new(move |outcome| {
        let _ = tx.send(outcome);
    });
    let handle = committer.handle();
    let (key, mutation) = (key.to_vec(), Mutation::Merge(value));
    let queued = if durable {
        handle.submit_durable(Priority::Foreground, key, mutation, reply)
    } else {
        handle.submit(key, mutation, reply)
    };
    queued.map_err(|(_, e)| e).expect("queued");
    rx.recv().expect("answered")
}

#[test]
fn a_full_disk_refuses_writes_and_the_writer_resumes_once_a_commit_finds_room() {
    let script = [
        None,
        Some(Fault::WriteNoSpace),
        Some(Fault::WriteNoSpace),
        None,
    ];
    let store = Faulty::new(StoreConfig::default(), script, []);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let handle = committer.handle();
    assert!(write(&committer, b"a", counter(1, 1)).is_ok());
    for key in [b"b", b"c"] {
        let refused = write(&committer, key, counter(1, 1)).unwrap_err();
        assert!(
            matches!(&refused, WriteError::Store(Error::NoSpace(_))),
            "{refused:?}"
        );
        assert!(handle.disk_full() && !handle.has_failed());
        println!("injected: ENOSPC on the log append; held: refused with \"{refused}\"");
    }
    // Reads go on, and see nothing of the refused writes.
    assert_eq!(store.get(b"a").unwrap(), Some(counter(1, 1)));
    assert_eq!(store.get(b"b").unwrap(), None);
    // Room again: the next commit succeeds, and the writer says so.
    assert_eq!(write(&committer, b"d", counter(1, 1)), Ok(counter(1, 1)));
    assert!(!handle.disk_full() && !handle.has_failed());
    for (key, acknowledged) in [(b"a", true), (b"b", false), (b"c", false), (b"d", true)] {
        assert_eq!(store.durable(key).is_some(), acknowledged, "{key:?}");
    }
    assert_eq!(handle.stats().no_space.load(Ordering::SeqCst), 2);
    println!("held: the writer took writes again; every acknowledged write is durable");
}

#[test]
fn an_fsync_error_or_eio_stops_every_later_acknowledgement_and_is_never_retried() {
    for fault in [Fault::FsyncEio, Fault::FsyncNoSpace, Fault::WriteEio] {
        let store = Faulty::new(StoreConfig::default(), [None, Some(fault)], []);
        let committer = GroupCommitter::start(store.clone()).unwrap();
        assert!(write(&committer, b"a", counter(1, 1)).is_ok());
        let failed = write(&committer, b"b", counter(1, 1)).unwrap_err();
        assert!(
            matches!(&failed, WriteError::Store(Error::Io(_))),
            "{fault:?}: {failed:?}"
        );
        assert!(committer.handle().has_failed());
        // Later writes are answered without being tried: the failed fsync is never followed
        // by one that succeeds and is taken as covering what the failed one did not.
        for key in [b"c", b"d"] {
            let stopped = write(&committer, key, counter(1, 1)).unwrap_err();
            assert!(
                matches!(&stopped, WriteError::Store(Error::Stopped(_))),
                "{stopped:?}"
            );
        }
        assert_eq!(
            store.applies(),
            2,
            "{fault:?}: nothing tried after the failure"
        );
        assert_eq!(store.get(b"a").unwrap(), Some(counter(1, 1)), "reads go on");
        assert!(store.durable(b"a").is_some());
        assert!(store.durable(b"b").is_none() && store.get(b"b").unwrap().is_none());
        println!(
            "injected: {fault:?} on the second commit; held: \"{failed}\", then every write \
             refused untried; reads go on"
        );
    }
}

#[test]
fn a_periodic_fsync_that_fails_stops_the_writer() {
    let config = StoreConfig {
        durability: Durability::Periodic { interval_ms: 5 },
        ..StoreConfig::default()
    };
    let store = Faulty::new(config, [], [Some(Fault::FsyncEio)]);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    // Acknowledged before its fsync (what periodic mode promises), then the fsync fails.
    assert!(write(&committer, b"a", counter(1, 1)).is_ok());
    let mut refused = None;
    for i in 0..1000u64 {
        if let Err(e) = write(&committer, format!("k{i}").as_bytes(), counter(1, 1)) {
            refused = Some(e);
            break;
        }
        let (_keep, never) = mpsc::channel::<()>();
        let _ = never.recv_timeout(std::time::Duration::from_millis(2));
    }
    let refused = refused.expect("the failed fsync stopped the writer");
    assert!(
        matches!(&refused, WriteError::Store(Error::Stopped(_))),
        "{refused:?}"
    );
    assert!(committer.handle().has_failed());
    assert!(store.durable(b"a").is_none(), "never made durable");
    println!("injected: EIO from a periodic fsync; held: the writer stopped (\"{refused}\")");
}

fn periodic_hourly() -> StoreConfig {
    StoreConfig {
        durability: Durability::Periodic {
            interval_ms: 3_600_000,
        },
        ..StoreConfig::default()
    }
}

#[test]
fn a_copy_on_a_periodic_replica_is_acknowledged_only_once_synced() {
    let store = Faulty::new(periodic_hourly(), [], []);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    assert!(write(&committer, b"client", counter(1, 1)).is_ok());
    assert!(
        store.durable(b"client").is_none(),
        "a client's write in periodic mode is acknowledged before its fsync"
    );
    assert!(write_durable(&committer, b"copy", counter(2, 1)).is_ok());
    assert!(
        store.durable(b"copy").is_some(),
        "the copy was acknowledged before an fsync covered it"
    );
    assert!(
        store.durable(b"client").is_some(),
        "the fsync covers the earlier commit too"
    );
    let syncs = committer
        .handle()
        .stats()
        .durable_syncs
        .load(Ordering::SeqCst);
    assert_eq!(syncs, 1);
    println!("held: a periodic replica's copy acknowledged after its fsync ({syncs} sync)");
}

#[test]
fn a_copy_whose_fsync_fails_is_refused_and_stops_the_writer() {
    let store = Faulty::new(periodic_hourly(), [], [Some(Fault::FsyncEio)]);
    let committer = GroupCommitter::start(store.clone()).unwrap();
    let refused = write_durable(&committer, b"copy", counter(1, 1)).unwrap_err();
    assert!(
        matches!(&refused, WriteError::Store(Error::Io(_))),
        "{refused:?}"
    );
    assert!(committer.handle().has_failed());
    assert!(store.durable(b"copy").is_none());
    println!(
        "injected: EIO from the fsync of a copy; held: refused (\"{refused}\"), writer stopped"
    );
}

fn big_value(tag: &str) -> Value {
    let mut set = OrSet::<String>::new();
    set.insert(ActorId::new(1), format!("{tag}:{}", "x".repeat(2000)));
    Value::from(set)
}

#[test]
fn the_disk_store_on_a_filesystem_that_fills_refuses_writes_then_resumes_losing_nothing() {
    let Some(fs) = Tmpfs::mount("8m") else {
        return;
    };
    let data = fs.path().join("data");
    // Room to free later.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![1u8; 1024 * 1024]).unwrap();
    let config = StoreConfig {
        flush_bytes: 256 * 1024 * 1024, // no flush: the log is what fills the disk
        ..StoreConfig::default()
    };
    let store = Arc::new(DiskStore::open(&data, config).unwrap());
    let committer = Arc::new(GroupCommitter::start(store.clone()).unwrap());
    let acknowledged = Mutex::new(Vec::new());
    let refused = Mutex::new(Vec::new());
    let full = AtomicBool::new(false);
    // Four writers until the disk is full and each of them has been refused a few times.
    std::thread::scope(|s| {
        for t in 0..4 {
            let (committer, acknowledged, refused, full) =
                (&committer, &acknowledged, &refused, &full);
            s.spawn(move || {
                let mut refusals = 0;
                for n in 0.. {
                    let key = format!("t{t}-{n}");
                    match write(committer, key.as_bytes(), big_value(&key)) {
                        Ok(_) => acknowledged.lock().unwrap().push(key),
                        Err(e) => {
                            full.store(true, Ordering::SeqCst);
                            refused.lock().unwrap().push(e);
                            refusals += 1;
                            if refusals == 3 {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    assert!(full.load(Ordering::SeqCst));
    assert!(
        refused
            .iter()
            .all(|e| matches!(e, WriteError::Store(Error::NoSpace(_)))),
        "{refused:?}"
    );
    let handle = committer.handle();
    assert!(handle.disk_full() && !handle.has_failed());
    println!(
        "injected: an 8 MiB tmpfs filled by 4 writers of 2 KB values; held: {} writes \
         acknowledged, {} refused with \"{}\"",
        acknowledged.len(),
        refused.len(),
        refused[0]
    );
    // Reads go on.
    for key in &acknowledged {
        assert_eq!(store.get(key.as_bytes()).unwrap(), Some(big_value(key)));
    }
    // Room again: writes are taken again.
    std::fs::remove_file(&ballast).unwrap();
    let mut resumed = Vec::new();
    for n in 0..20 {
        let key = format!("after-{n}");
        write(&committer, key.as_bytes(), big_value(&key)).expect("room again");
        resumed.push(key);
    }
    assert!(!handle.disk_full() && !handle.has_failed());
    // Nothing acknowledged is lost: a crash image of the directory (copied while the store is
    // open) opens on a roomy disk with every acknowledged write.
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.path().join(path.file_name().unwrap())).unwrap();
    }
    committer.shutdown();
    drop(committer);
    drop(store);
    let reopened = DiskStore::open(image.path(), config).unwrap();
    assert!(
        reopened.torn_tail().is_none(),
        "the failed appends were rewound"
    );
    for key in acknowledged.iter().chain(&resumed) {
        assert_eq!(
            reopened.get(key.as_bytes()).unwrap(),
            Some(big_value(key)),
            "{key} was acknowledged"
        );
    }
    println!(
        "held: after freeing 1 MiB the writer took {} more writes; reopened, all {} \
         acknowledged writes read back",
        resumed.len(),
        acknowledged.len() + resumed.len()
    );
    drop(fs);
}
