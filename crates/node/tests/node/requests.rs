//! Requests through the client: every kind, pipelined from many tasks over one connection.

use haze_client::{Error, Scalar, TypedOp};
use haze_crdt::{ActorId, Crdt, GCounter, OrSet, PnCounter, Value};
use haze_node::NodeConfig;
use haze_storage::StoreConfig;
use haze_testkit::{FailingStore, TestNode};

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn every_request_kind_round_trips() {
    let node = TestNode::start(NodeConfig::default()).await;
    let client = node.client().await;
    client.ping().await.unwrap();
    assert_eq!(client.get("missing").await.unwrap(), None);
    assert_eq!(client.digest("missing").await.unwrap(), None);

    assert_eq!(client.counter_add("visits", 5).await.unwrap().value(), 5);
    assert_eq!(client.counter_add("visits", -2).await.unwrap().value(), 3);
    let counter: PnCounter = client.get_typed("visits").await.unwrap().unwrap();
    assert_eq!(counter.value(), 3);

    client
        .set_add("list", [Scalar::from("milk"), Scalar::from("eggs")])
        .await
        .unwrap();
    let set = client
        .set_remove("list", [Scalar::from("milk")])
        .await
        .unwrap();
    assert_eq!(set.iter().collect::<Vec<_>>(), [&Scalar::from("eggs")]);

    let register = client.register_set("title", "Groceries").await.unwrap();
    assert_eq!(register.get(), Some(&Scalar::from("Groceries")));

    // A device's offline state merges in; the node never overwrites.
    let mut mine = OrSet::new();
    mine.insert(ActorId::new(0x9f1c), "bread".to_string());
    let merged: OrSet<String> = client.merge_typed("list", mine).await.unwrap();
    assert_eq!(
        merged.iter().map(String::as_str).collect::<Vec<_>>(),
        ["bread", "eggs"]
    );

    let digest = client.digest("list").await.unwrap().unwrap();
    let stored = client.get("list").await.unwrap().unwrap();
    assert_eq!(digest, haze_storage::key_digest(b"list", &stored.encode()));
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_batch_merges_every_item_and_reports_each_outcome() {
    let node = TestNode::start(NodeConfig::default()).await;
    let client = node.client().await;
    client.counter_add("taken", 1).await.unwrap();
    let mut g = GCounter::new();
    g.increment(ActorId::new(1), 2).unwrap();
    let items = vec![
        (b"a".to_vec(), Value::from(g.clone())),
        (b"taken".to_vec(), Value::from(g.clone())), // holds a PN-counter: refused
        (b"b".to_vec(), Value::from(g)),
    ];
    let results = client.merge_batch(items).await.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(
        matches!(results[1], Err(Error::TypeMismatch(_))),
        "{:?}",
        results[1]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_pipeline_over_one_connection_and_every_increment_counts() {
    let node = TestNode::start(NodeConfig::default()).await;
    let client = node.client().await;
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    client.counter_add(format!("k{}", t % 4), 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for k in 0..4 {
        total += client
            .get_typed::<PnCounter>(format!("k{k}"))
            .await
            .unwrap()
            .unwrap()
            .value();
    }
    assert_eq!(total, 500);
    let commits = node
        .node
        .commit_stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(commits >= 1);
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn type_mismatches_and_limits_are_refused_and_store_nothing() {
    let config = NodeConfig {
        store: StoreConfig {
            max_key_bytes: 16,
            max_value_bytes: 200,
            ..StoreConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let client = node.client().await;
    client.counter_add("n", 1).await.unwrap();
    let err = client.set_add("n", [Scalar::from("x")]).await.unwrap_err();
    assert!(matches!(err, Error::TypeMismatch(_)), "{err}");
    assert!(matches!(
        client.counter_add("a key that is far too long", 1).await,
        Err(Error::TooLarge(_))
    ));
    assert_eq!(
        client
            .get("a key that is far too long")
            .await
            .map_err(|e| e.to_string())
            .unwrap_err(),
        "too large: key of 26 bytes exceeds the limit of 16 bytes"
    );
    let big = Scalar::String("x".repeat(300));
    assert!(matches!(
        client.set_add("s", [big]).await,
        Err(Error::TooLarge(_))
    ));
    assert_eq!(client.get("s").await.unwrap(), None);
    // 1 + 2 × (2^63 − 1) = 2^64 − 1 fits in one actor's count; one more does not.
    client.counter_add("n", i64::MAX).await.unwrap();
    client.counter_add("n", i64::MAX).await.unwrap();
    let err = client.counter_add("n", 1).await.unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert_eq!(
        client
            .get_typed::<PnCounter>("n")
            .await
            .unwrap()
            .unwrap()
            .value(),
        i128::from(u64::MAX)
    );
    let merged = GCounter::new().merge(GCounter::new());
    assert!(client.merge("n", merged).await.is_err());
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn the_client_reconnects_after_the_connection_breaks() {
    let node = TestNode::start(crate::harness::short_timeouts()).await;
    let client = node.client().await;
    client.counter_add("k", 1).await.unwrap();
    // Idle past the node's timeout: the node closes the connection.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // Reads are idempotent: retried over a new connection.
    assert!(client.get("k").await.unwrap().is_some());
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_full_disk_refuses_writes_says_why_in_health_and_writing_resumes_when_there_is_room() {
    use haze_testkit::{Fault, Faulty};
    // The first two commits find the disk full; the next ones have room again.
    let store = Faulty::new(
        StoreConfig::default(),
        [Some(Fault::WriteNoSpace), Some(Fault::WriteNoSpace)],
        [],
    );
    let node = TestNode::start_with(NodeConfig::default(), store.clone()).await;
    let client = node.client().await;
    let err = client.counter_add("k", 1).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("disk is full"), "{err}");
    let (status, body) = crate::harness::http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("disk_full") && body.contains("refused"),
        "{body}"
    );
    assert_eq!(client.get("k").await.unwrap(), None, "reads are served");
    let _ = client.counter_add("k", 1).await.unwrap_err();
    // Room again: the next write is acknowledged, and durable; health is ok.
    client.counter_add("k", 1).await.unwrap();
    let (status, body) = crate::harness::http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 200, "{body}");
    assert!(store.durable(b"k").is_some());
    eprintln!(
        "2 commits met ENOSPC: both refused (unavailable), /health said disk_full; the next was acknowledged and durable"
    );
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn after_a_storage_failure_writes_are_unavailable_and_health_says_so() {
    let store = FailingStore::new(StoreConfig::default());
    let node = TestNode::start_with(NodeConfig::default(), std::sync::Arc::new(store)).await;
    let client = node.client().await;
    for _ in 0..2 {
        let err = client.counter_add("k", 1).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err}");
    }
    assert_eq!(client.get("k").await.unwrap(), None, "reads still work");
    let (status, body) = crate::harness::http(node.http, "GET", "/health", "").await;
    assert_eq!(status, 503, "{body}");
    node.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn an_apply_is_acknowledged_without_the_state_and_what_it_did_reads_back() {
    let config = NodeConfig {
        store: StoreConfig {
            max_value_bytes: 4096,
            ..StoreConfig::default()
        },
        ..NodeConfig::default()
    };
    let node = TestNode::start(config).await;
    let client = node.client().await;
    // Many tasks over one connection add to one set and one counter: every write counts.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let member = Scalar::from(format!("m{t}-{i}").as_str());
                    client
                        .apply_ack("s", TypedOp::SetAdd(vec![member]))
                        .await
                        .unwrap();
                    client.apply_ack("n", TypedOp::CounterAdd(2)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let set: OrSet<Scalar> = client.get_typed("s").await.unwrap().unwrap();
    assert_eq!(set.iter().count(), 200);
    let counter: PnCounter = client.get_typed("n").await.unwrap().unwrap();
    assert_eq!(counter.value(), 400);
    client
        .apply_ack("r", TypedOp::RegisterSet(Scalar::from("v")))
        .await
        .unwrap();
    let stored = client.get("r").await.unwrap().unwrap();
    let Value::LwwRegister(register) = stored else {
        panic!("{stored:?}")
    };
    assert_eq!(register.get(), Some(&Scalar::from("v")));

    // Refusals come back as they do for an operation that answers the state.
    let err = client
        .apply_ack("n", TypedOp::SetAdd(vec![Scalar::from("x")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TypeMismatch(_)), "{err}");
    let big = Scalar::String("x".repeat(5000));
    let err = client
        .apply_ack("s", TypedOp::SetAdd(vec![big]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err}");
    let set: OrSet<Scalar> = client.get_typed("s").await.unwrap().unwrap();
    assert_eq!(set.iter().count(), 200, "a refused add changed nothing");
    node.stop().await;
}
