//! The sync state machine, step by step, against the test's store (server.rs).

use haze_crdt::{ActorId, PnCounter, Scalar, Value};
use haze_device::sync::{Answer, Message, Outgoing, Report, Session, Step};
use haze_device::{Error, MemStore, Replica};

use crate::edits::replica;
use crate::server::Server;

/// Runs `sync` to its end, answering every message at once, in order.
pub fn run(sync: &mut Session, replica: &mut Replica<MemStore>, server: &mut Server) -> Report {
    let mut queue: Vec<Outgoing> = Vec::new();
    let mut step = sync.start(replica).unwrap();
    loop {
        match step {
            Step::Done(report) => return report,
            Step::Send(out) => queue.extend(out),
        }
        let next = queue.remove(0);
        let answer = server.answer(&next.message);
        step = sync.receive(replica, next.id, answer).unwrap();
    }
}

fn sent(step: Step) -> Vec<Outgoing> {
    match step {
        Step::Send(out) => out,
        Step::Done(report) => panic!("done early: {report:?}"),
    }
}

fn counters(r: &mut Replica<MemStore>, keys: std::ops::Range<usize>) {
    for i in keys {
        r.counter_add(format!("k{i:04}"), 1).unwrap();
    }
}

#[test]
fn a_first_sync_sends_the_key_list_then_every_state() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..3);
    let mut sync = phone.sync(1_000);
    let out = sent(sync.start(&mut phone).unwrap());
    assert!(matches!(
        &out[..],
        [Outgoing {
            message: Message::Digests { keys: None, .. },
            ..
        }]
    ));
    let again = sent(
        sync.receive(&mut phone, out[0].id, Answer::UnknownList)
            .unwrap(),
    );
    let Message::Digests {
        keys: Some(keys), ..
    } = &again[0].message
    else {
        panic!("the list again, with its keys: {again:?}")
    };
    assert_eq!(keys.len(), 3);
    let answer = server.answer(&again[0].message);
    let merges = sent(sync.receive(&mut phone, again[0].id, answer).unwrap());
    let Message::Merge { items } = &merges[0].message else {
        panic!("{merges:?}")
    };
    assert_eq!(items.len(), 3, "the store lacks every key");
    let answer = server.answer(&merges[0].message);
    let Step::Done(report) = sync.receive(&mut phone, merges[0].id, answer).unwrap() else {
        panic!("done after the last merge")
    };
    assert_eq!((report.checked, report.sent, report.updated), (3, 3, 0));
    assert!(sync.is_done());
    for key in phone.keys() {
        assert_eq!(phone.get(key).cloned(), server.get(key));
    }
    let last = phone.last_sync().expect("a sync of every key is recorded");
    assert_eq!((last.at, last.keys), (1_000, 3));
}

#[test]
fn a_sync_when_nothing_changed_sends_only_list_ids() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..600);
    let first = run(&mut phone.sync(0), &mut phone, &mut server);
    assert_eq!((first.checked, first.sent), (600, 600));
    let mut sync = phone.sync(1);
    let mut step = sync.start(&mut phone).unwrap();
    while let Step::Send(out) = step {
        let mut last = Step::Send(Vec::new());
        for o in out {
            assert!(
                matches!(o.message, Message::Digests { keys: None, .. }),
                "{o:?}"
            );
            last = sync
                .receive(&mut phone, o.id, server.answer(&o.message))
                .unwrap();
        }
        step = last;
    }
    let Step::Done(report) = step else {
        unreachable!()
    };
    assert_eq!((report.sent, report.updated), (0, 0));
}

#[test]
fn merges_go_in_batches_and_the_stores_edits_come_back() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..600);
    server.replica.counter_add("k0007", 5).unwrap();
    let mut sync = phone.sync(0);
    let mut step = sync.start(&mut phone).unwrap();
    let mut batches = Vec::new();
    let report = loop {
        let out = match step {
            Step::Done(report) => break report,
            Step::Send(out) => out,
        };
        let mut last = Step::Send(Vec::new());
        for o in out {
            if let Message::Merge { items } = &o.message {
                batches.push(items.len());
            }
            last = sync
                .receive(&mut phone, o.id, server.answer(&o.message))
                .unwrap();
        }
        step = last;
    };
    assert_eq!(batches, [256, 256, 88]);
    assert_eq!((report.sent, report.updated), (600, 1));
    let c: PnCounter = phone.get_typed("k0007").unwrap().unwrap();
    assert_eq!(c.value(), 6);
}

#[test]
fn an_empty_replica_is_done_at_once() {
    let mut phone = replica(1);
    let mut sync = phone.sync(7);
    assert_eq!(
        sync.start(&mut phone).unwrap(),
        Step::Done(Report::default())
    );
    assert_eq!(phone.last_sync().map(|l| l.at), Some(7));
    assert_eq!(sync.start(&mut phone).unwrap(), Step::Send(Vec::new()));
}

#[test]
fn answers_that_do_not_fit_are_protocol_errors() {
    let mut phone = replica(1);
    counters(&mut phone, 0..3);
    let protocol = |r: Result<Step, Error>| matches!(r, Err(Error::Protocol(_)));
    let start = |phone: &mut Replica<MemStore>| {
        let mut sync = phone.sync(0);
        let out = sent(sync.start(phone).unwrap());
        (sync, out[0].id)
    };
    let (mut sync, id) = start(&mut phone);
    assert!(protocol(sync.receive(
        &mut phone,
        id + 100,
        Answer::UnknownList
    )));
    assert!(protocol(sync.receive(
        &mut phone,
        id,
        Answer::Digests(vec![None])
    )));
    let (mut sync, id) = start(&mut phone);
    assert!(protocol(sync.receive(
        &mut phone,
        id,
        Answer::Merged(vec![])
    )));
    let (mut sync, id) = start(&mut phone);
    let again = sent(sync.receive(&mut phone, id, Answer::UnknownList).unwrap());
    assert!(protocol(sync.receive(
        &mut phone,
        again[0].id,
        Answer::UnknownList
    )));
    assert!(!sync.is_done());
}

/// Starts a sync of `phone` against an empty store and returns it with its merge messages.
fn up_to_merges(phone: &mut Replica<MemStore>) -> (Session, Vec<Outgoing>) {
    let mut sync = phone.sync(0);
    let first = sent(sync.start(phone).unwrap());
    let with_keys = sent(
        sync.receive(phone, first[0].id, Answer::UnknownList)
            .unwrap(),
    );
    let Message::Digests {
        keys: Some(keys), ..
    } = &with_keys[0].message
    else {
        panic!("{with_keys:?}")
    };
    let none = Answer::Digests(vec![None; keys.len()]);
    let merges = sent(sync.receive(phone, with_keys[0].id, none).unwrap());
    (sync, merges)
}

#[test]
fn refused_and_mismatched_keys_are_reported_and_kept() {
    let mut phone = replica(1);
    counters(&mut phone, 0..2);
    let (mut sync, merges) = up_to_merges(&mut phone);
    let set = Value::from(haze_crdt::OrSet::<Scalar>::new());
    let answer = Answer::Merged(vec![Err("too large".into()), Ok(set)]);
    let before: Vec<_> = phone.keys().map(|k| phone.get(k).cloned()).collect();
    let Step::Done(report) = sync.receive(&mut phone, merges[0].id, answer).unwrap() else {
        panic!("done")
    };
    assert_eq!(report.failed.len(), 2, "{report:?}");
    assert_eq!(
        report.failed[0],
        (b"k0000".to_vec(), Error::Refused("too large".into()))
    );
    assert!(matches!(report.failed[1].1, Error::TypeMismatch { .. }));
    let after: Vec<_> = phone.keys().map(|k| phone.get(k).cloned()).collect();
    assert_eq!(before, after);
}

#[test]
fn edits_between_steps_are_kept_and_an_interrupted_sync_loses_no_edit() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..2);
    server.replica.counter_add("k0000", 10).unwrap();
    let (mut sync, merges) = up_to_merges(&mut phone);
    let answer = server.answer(&merges[0].message);
    phone.counter_add("k0000", 100).unwrap(); // after the states were sent
    let step = sync.receive(&mut phone, merges[0].id, answer).unwrap();
    assert!(matches!(step, Step::Done(_)));
    let c: PnCounter = phone.get_typed("k0000").unwrap().unwrap();
    assert_eq!(
        c.value(),
        111,
        "the store's 10, the first 1 and the edit made meanwhile"
    );

    // Cut after the store merged, before the answer: the replica holds what it had.
    let mut laptop = replica(2);
    laptop.counter_add("k0000", 1).unwrap();
    let (sync, merges) = up_to_merges(&mut laptop);
    server.answer(&merges[0].message);
    drop(sync);
    let c: PnCounter = laptop.get_typed("k0000").unwrap().unwrap();
    assert_eq!(c.value(), 1);
    let report = run(&mut laptop.sync(0), &mut laptop, &mut server);
    assert_eq!(report.updated, 1);
    assert_eq!(laptop.get("k0000").cloned(), server.get(b"k0000"));
}

#[test]
fn merged_states_are_saved_when_the_sync_ends_and_only_lost_to_a_crash_before() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..300); // two merge batches
    server.replica.counter_add("k0000", 5).unwrap();
    let value = |r: &Replica<MemStore>| r.get_typed::<PnCounter>("k0000").unwrap().unwrap().value();

    // A crash after the first batch merged: that merge is lost, the local edits are not.
    let (_, merges) = up_to_merges(&mut phone);
    assert_eq!(merges.len(), 2);
    let (mut sync, merges) = up_to_merges(&mut phone);
    let answer = server.answer(&merges[0].message);
    sync.receive(&mut phone, merges[0].id, answer).unwrap();
    assert_eq!(value(&phone), 6);
    assert!(phone.has_unsaved());
    let mut phone = Replica::open(phone.into_store(), ActorId::new(9)).unwrap();
    assert_eq!(
        (value(&phone), phone.actor(), phone.len()),
        (1, ActorId::new(1), 300)
    );

    // A sync that completes saved what it merged.
    run(&mut phone.sync(0), &mut phone, &mut server);
    assert!(!phone.has_unsaved());
    let phone = Replica::open(phone.into_store(), ActorId::new(9)).unwrap();
    assert_eq!(value(&phone), 6);
}

#[test]
fn a_sync_of_some_keys_syncs_those_held_and_records_no_last_sync() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..4);
    let keys = [b"k0001".to_vec(), b"nope".to_vec(), b"k0003".to_vec()];
    let mut sync = phone.sync_keys(&keys);
    assert_eq!(sync.keys(), [b"k0001".to_vec(), b"k0003".to_vec()]);
    let report = run(&mut sync, &mut phone, &mut server);
    assert_eq!(report.sent, 2);
    assert!(server.get(b"k0000").is_none());
    assert_eq!(phone.last_sync(), None);
}

#[test]
fn a_store_that_forgot_its_lists_is_sent_them_again() {
    let (mut phone, mut server) = (replica(1), Server::new());
    counters(&mut phone, 0..3);
    run(&mut phone.sync(0), &mut phone, &mut server);
    server.forget_lists();
    let report = run(&mut phone.sync(0), &mut phone, &mut server);
    assert_eq!((report.checked, report.sent), (3, 0));
}
