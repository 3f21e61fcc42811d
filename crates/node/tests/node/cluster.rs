//! Three nodes in this process, routed, replicated and repaired over loopback TCP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use haze_client::{Client, ClientConfig, Error};
use haze_crdt::{Scalar, Value};
use haze_node::NodeConfig;
use haze_node::cluster::{AckPolicy, ClusterView, sync_round};
use haze_protocol::{Request, Response, Role};
use haze_ring::{NodeId, PartitionTable};
use haze_storage::{MemStore, Store, StoreConfig};
use haze_testkit::TestNode;

const CLUSTER: u64 = 0xc1a5_7e00_0000_0001;

struct Cluster {
    nodes: Vec<Option<TestNode>>,
    /// Starts so far: every start of a node takes a fresh actor id.
    starts: u64,
    stores: Vec<Arc<MemStore>>,
    table: PartitionTable,
    config: NodeConfig,
}

fn config(ack: AckPolicy) -> NodeConfig {
    NodeConfig {
        ack,
        forward_timeout: Duration::from_millis(500),
        ..NodeConfig::default()
    }
}

impl Cluster {
    async fn start(n: u64, replicas: usize, ack: AckPolicy) -> Cluster {
        let config = config(ack);
        let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let table = PartitionTable::place(None, &ids, 16, replicas).unwrap();
        let mut cluster = Cluster {
            nodes: Vec::new(),
            starts: 0,
            stores: Vec::new(),
            table,
            config,
        };
        for _ in 0..n {
            let store = Arc::new(MemStore::new(StoreConfig::default()));
            let node = cluster.start_node(store.clone()).await;
            cluster.stores.push(store);
            cluster.nodes.push(Some(node));
        }
        cluster.install_views();
        cluster
    }

    async fn start_node(&mut self, store: Arc<MemStore>) -> TestNode {
        self.starts += 1;
        let actor = haze_crdt::ActorId::new(0xc000 + self.starts);
        TestNode::start_as(self.config.clone(), store, actor).await
    }

    fn addrs(&self) -> BTreeMap<NodeId, String> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((NodeId(i as u64 + 1), n.as_ref()?.addr.to_string())))
            .collect()
    }

    fn install_views(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(node) = node {
                node.node.install_view(ClusterView {
                    cluster: CLUSTER,
                    me: NodeId(i as u64 + 1),
                    table: self.table.clone(),
                    addrs: self.addrs(),
                    transition: None,
                });
            }
        }
    }

    fn node(&self, id: NodeId) -> &TestNode {
        self.nodes[id.0 as usize - 1].as_ref().expect("running")
    }

    async fn client(&self, id: NodeId) -> Client {
        self.node(id).client().await
    }

    /// A client that reads the node's own copy (`haze get --local`).
    async fn local(&self, id: NodeId) -> Client {
        let config = ClientConfig {
            role: Role::Local,
            ..ClientConfig::default()
        };
        Client::connect_with(&self.node(id).addr.to_string(), config)
            .await
            .unwrap()
    }

    async fn stop(&mut self, id: NodeId) {
        self.nodes[id.0 as usize - 1].take().unwrap().stop().await;
    }

    /// Starts node `id` again on `store` (its old one, or an empty one), at a new address.
    async fn restart(&mut self, id: NodeId, store: Arc<MemStore>) {
        let node = self.start_node(store.clone()).await;
        self.stores[id.0 as usize - 1] = store;
        self.nodes[id.0 as usize - 1] = Some(node);
        self.install_views();
    }

    async fn anti_entropy(&self) -> usize {
        let mut repaired = 0;
        for node in self.nodes.iter().flatten() {
            let view = node.node.view().unwrap();
            let report = sync_round(node.node.cluster(), &view).await;
            repaired += report.pushed + report.pulled;
        }
        repaired
    }

    fn running(&self) -> Vec<NodeId> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .map(|i| NodeId(i as u64 + 1))
            .collect()
    }
}

fn ids() -> [NodeId; 3] {
    [NodeId(1), NodeId(2), NodeId(3)]
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_write_through_any_node_reads_back_through_every_node_and_is_on_every_replica() {
    let cluster = Cluster::start(3, 3, AckPolicy::All).await;
    let keys: Vec<String> = (0..24).map(|i| format!("user:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let through = ids()[i % 3];
        cluster
            .client(through)
            .await
            .counter_add(key, i as i64 + 1)
            .await
            .unwrap();
    }
    for id in ids() {
        let (routed, local) = (cluster.client(id).await, cluster.local(id).await);
        for (i, key) in keys.iter().enumerate() {
            let expected = i as i128 + 1;
            let read = routed.get_typed::<haze_crdt::PnCounter>(key).await.unwrap();
            assert_eq!(read.map(|c| c.value()), Some(expected), "{key} via {id}");
            // `all`: every replica had the copy before the write was acknowledged.
            let own = local.get_typed::<haze_crdt::PnCounter>(key).await.unwrap();
            assert_eq!(own.map(|c| c.value()), Some(expected), "{key} on {id}");
        }
    }
    // Digests through any node are the primaries' digests, key by key.
    let keys: Vec<Vec<u8>> = keys.into_iter().map(String::into_bytes).collect();
    let through_one = cluster
        .client(NodeId(1))
        .await
        .digest_batch(keys.clone())
        .await
        .unwrap();
    let through_three = cluster
        .client(NodeId(3))
        .await
        .digest_batch(keys.clone())
        .await
        .unwrap();
    assert_eq!(through_one, through_three);
    assert!(through_one.iter().all(Option::is_some));
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_dead_primary_fails_over_and_anti_entropy_brings_it_back_up_to_date() {
    let mut cluster = Cluster::start(3, 3, AckPolicy::Quorum).await;
    let key = "cart:42";
    let primary = cluster.table.replicas_of_key(key.as_bytes())[0];
    let others: Vec<NodeId> = ids().into_iter().filter(|n| *n != primary).collect();
    let first = cluster.client(others[0]).await;
    first.set_add(key, [Scalar::from("apple")]).await.unwrap();

    cluster.stop(primary).await;
    for (i, through) in others.iter().enumerate() {
        let client = cluster.client(*through).await;
        let member = Scalar::from(format!("pear-{i}").as_str());
        client.set_add(key, [member]).await.unwrap();
        client.counter_add("visits", 1).await.unwrap();
    }
    let set: haze_crdt::OrSet<Scalar> = cluster
        .client(others[1])
        .await
        .get_typed(key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(set.len(), 3, "reads go on without the primary");

    // Back with its old disk: it missed two writes until anti-entropy runs.
    let store = cluster.stores[primary.0 as usize - 1].clone();
    cluster.restart(primary, store).await;
    let stale = cluster
        .local(primary)
        .await
        .get(key)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(stale, Value::from(set.clone()));
    assert!(
        cluster.anti_entropy().await > 0,
        "anti-entropy repaired something"
    );
    assert_eq!(cluster.anti_entropy().await, 0, "and then nothing differs");
    for id in ids() {
        let own = cluster.local(id).await.get(key).await.unwrap().unwrap();
        assert_eq!(own, Value::from(set.clone()), "{id}'s copy");
    }
    assert_equal_stores(&cluster);
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_wiped_node_is_refilled_by_anti_entropy() {
    let mut cluster = Cluster::start(3, 2, AckPolicy::Quorum).await;
    let client = cluster.client(NodeId(1)).await;
    for i in 0..300 {
        client.counter_add(format!("k{i}"), i + 1).await.unwrap();
    }
    cluster.stop(NodeId(2)).await;
    cluster
        .restart(NodeId(2), Arc::new(MemStore::new(StoreConfig::default())))
        .await;
    // Before anti-entropy: reads of keys whose primary lost everything still find them.
    let through_wiped = cluster.client(NodeId(2)).await;
    for i in 0..300 {
        let c: haze_crdt::PnCounter = through_wiped
            .get_typed(format!("k{i}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("k{i} not found after its replica lost its disk"));
        assert_eq!(c.value(), i128::from(i + 1));
    }
    // Those reads merged a majority (both replicas, N = 2) and repaired what node 2 lacked;
    // anti-entropy brings over whatever is left.
    let repaired = cluster
        .node(NodeId(2))
        .node
        .metrics()
        .read_repairs
        .load(std::sync::atomic::Ordering::Relaxed);
    let pushed = cluster.anti_entropy().await;
    assert!(
        pushed as u64 + repaired >= 150,
        "about 2/3 of the keys live on node 2: {repaired} repaired by reads, {pushed} by \
         anti-entropy"
    );
    assert_equal_stores(&cluster);
    let local = cluster.local(NodeId(2)).await;
    for i in 0..300 {
        let key = format!("k{i}");
        if cluster
            .table
            .replicas_of_key(key.as_bytes())
            .contains(&NodeId(2))
        {
            let c: haze_crdt::PnCounter = local.get_typed(&key).await.unwrap().unwrap();
            assert_eq!(c.value(), i128::from(i + 1));
        }
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn with_ack_all_a_write_fails_when_a_replica_is_down_but_stays_where_it_was_applied() {
    let mut cluster = Cluster::start(3, 3, AckPolicy::All).await;
    cluster.stop(NodeId(3)).await;
    let key = "doc";
    let coordinator = cluster.table.replicas_of_key(key.as_bytes())[0];
    let through = if coordinator == NodeId(3) {
        NodeId(1)
    } else {
        coordinator
    };
    let err = cluster
        .client(through)
        .await
        .register_set(key, "v1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("`all` policy")),
        "{err}"
    );
    let running = cluster.running();
    let mut holders = 0;
    for id in running {
        holders += usize::from(cluster.local(id).await.get(key).await.unwrap().is_some());
    }
    assert!(holders >= 1, "the write stays where it was applied");
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn merged_reads_repair_the_replicas_that_differ() {
    let cluster = Cluster::start(3, 3, AckPolicy::Quorum).await;
    // Diverge on purpose: each node's own copy gets a different member.
    for (i, id) in ids().into_iter().enumerate() {
        cluster
            .local(id)
            .await
            .set_add("tags", [Scalar::from(format!("t{i}").as_str())])
            .await
            .unwrap();
    }
    let merged = cluster
        .client(NodeId(2))
        .await
        .get_merged("tags")
        .await
        .unwrap()
        .unwrap();
    let set: haze_crdt::OrSet<Scalar> =
        haze_crdt::TypedValue::try_from_value(merged.clone()).unwrap();
    assert_eq!(set.len(), 3);
    for id in ids() {
        assert_eq!(
            cluster.local(id).await.get("tags").await.unwrap(),
            Some(merged.clone())
        );
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_node_of_another_cluster_is_refused() {
    let cluster = Cluster::start(3, 3, AckPolicy::Quorum).await;
    let config = ClientConfig {
        role: Role::Peer {
            cluster: CLUSTER + 1,
        },
        ..ClientConfig::default()
    };
    let err = Client::connect_with(&cluster.node(NodeId(1)).addr.to_string(), config)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wrong cluster"), "{err}");
    // Copies are for nodes (and --local diagnostics), not for clients.
    let client = cluster.client(NodeId(1)).await;
    let items = vec![(b"k".to_vec(), Value::from(haze_crdt::GCounter::new()))];
    for request in [
        Request::Copy {
            items: items.clone(),
        },
        Request::Backfill { items },
    ] {
        match client.send(request, true).await {
            Ok(Response::Error(e)) => assert_eq!(e.code, haze_protocol::ErrorCode::BadRequest),
            other => panic!("a client's copy was taken: {other:?}"),
        }
    }
}

/// Every replica of every key holds the same bytes.
fn assert_equal_stores(cluster: &Cluster) {
    let buckets: Vec<Vec<u64>> = cluster
        .running()
        .iter()
        .map(|id| cluster.stores[id.0 as usize - 1].bucket_digests().unwrap())
        .collect();
    let per_partition = haze_storage::DIGEST_BUCKETS / cluster.table.partitions() as usize;
    for p in 0..cluster.table.partitions() {
        let replicas = cluster.table.replicas(haze_ring::PartitionId(p));
        let range = p as usize * per_partition..(p as usize + 1) * per_partition;
        let first = &buckets[replicas[0].0 as usize - 1][range.clone()];
        for r in &replicas[1..] {
            assert_eq!(
                first,
                &buckets[r.0 as usize - 1][range.clone()],
                "partition {p}: {} and {r} differ",
                replicas[0]
            );
        }
    }
}

fn forwarded(cluster: &Cluster) -> u64 {
    cluster
        .nodes
        .iter()
        .flatten()
        .map(|n| {
            n.node
                .metrics()
                .forwarded
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum()
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_direct_client_sends_each_key_to_its_primary_and_follows_a_new_table() {
    let mut cluster = Cluster::start(3, 1, AckPolicy::Quorum).await;
    let config = ClientConfig {
        direct: true,
        ..ClientConfig::default()
    };
    let client = Client::connect_with(&cluster.node(NodeId(1)).addr.to_string(), config)
        .await
        .unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    for key in &keys {
        client.counter_add(key, 1).await.unwrap();
    }
    assert_eq!(
        forwarded(&cluster),
        0,
        "every request went straight to its primary"
    );

    // A new table without n3: the client still sends n3's keys there, until n3 (which routes
    // them on) tells it the epoch.
    let old = cluster.table.clone();
    cluster.table = PartitionTable::place(Some(&old), &[NodeId(1), NodeId(2)], 16, 1).unwrap();
    cluster.install_views();
    let before = forwarded(&cluster);
    for key in &keys {
        client.counter_add(key, 1).await.unwrap();
    }
    let rerouted = forwarded(&cluster) - before;
    assert!(
        (1..=2).contains(&rerouted),
        "one stale request (and its copy) before the client refreshed: {rerouted}"
    );
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn the_http_api_is_routed_too() {
    let cluster = Cluster::start(3, 2, AckPolicy::All).await;
    for i in 0..10 {
        let path = format!("/v1/keys/http{i}/counter");
        let through = cluster.node(ids()[i % 3]).http;
        let (status, body) = crate::harness::http(through, "POST", &path, r#"{"add": 2}"#).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, metrics) =
        crate::harness::http(cluster.node(NodeId(1)).http, "GET", "/metrics", "").await;
    assert!(metrics.contains("haze_cluster_epoch 1"), "{metrics}");
    assert!(metrics.contains("haze_forwarded_total"), "{metrics}");
    for id in ids() {
        for i in 0..10 {
            let path = format!("/v1/keys/http{i}");
            let (status, body) =
                crate::harness::http(cluster.node(id).http, "GET", &path, "").await;
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(r#""value":2"#), "{body}");
        }
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn nodes_with_disagreeing_tables_never_pass_a_write_back_and_forth() {
    let cluster = Cluster::start(2, 1, AckPolicy::Quorum).await;
    // Two tables where every partition sits on the other node: n1 thinks n2 holds a key, n2
    // thinks n1 does (as while a table change spreads).
    let one = PartitionTable::place(None, &[NodeId(1)], 16, 1).unwrap();
    let two = PartitionTable::place(None, &[NodeId(2)], 16, 1).unwrap();
    for (id, table) in [(NodeId(1), two), (NodeId(2), one)] {
        cluster.node(id).node.install_view(ClusterView {
            cluster: CLUSTER,
            me: id,
            table,
            addrs: cluster.addrs(),
            transition: None,
        });
    }
    let err = tokio::time::timeout(
        Duration::from_secs(5),
        cluster.client(NodeId(1)).await.counter_add("k", 1),
    )
    .await
    .expect("answered, not bounced between the nodes")
    .unwrap_err();
    assert!(err.to_string().contains("does not hold this key"), "{err}");
    assert!(forwarded(&cluster) <= 1, "one hop: {}", forwarded(&cluster));
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn periodic_replicas_acknowledge_copies_only_once_synced() {
    // Every node in `periodic` mode with an hourly fsync: only copies may be durable by the
    // time a write is acknowledged, and a quorum write needs one.
    let periodic = StoreConfig {
        durability: haze_storage::Durability::Periodic {
            interval_ms: 3_600_000,
        },
        ..StoreConfig::default()
    };
    let table = PartitionTable::place(None, &ids(), 16, 3).unwrap();
    let mut nodes = Vec::new();
    let mut stores = Vec::new();
    for i in 0..3u64 {
        let store = haze_testkit::Faulty::new(periodic, [], []);
        let actor = haze_crdt::ActorId::new(0xd000 + i);
        nodes.push(TestNode::start_as(config(AckPolicy::Quorum), store.clone(), actor).await);
        stores.push(store);
    }
    let addrs: BTreeMap<NodeId, String> = (0..3)
        .map(|i| (NodeId(i as u64 + 1), nodes[i].addr.to_string()))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.node.install_view(ClusterView {
            cluster: CLUSTER,
            me: NodeId(i as u64 + 1),
            table: table.clone(),
            addrs: addrs.clone(),
            transition: None,
        });
    }
    let keys: Vec<String> = (0..12).map(|i| format!("visits:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let client = nodes[i % 3].client().await;
        client.counter_add(key, 1).await.unwrap();
        // At the acknowledgement, a quorum (2 of 3) holds the write: the coordinator, whose own
        // copy waits for its hourly fsync, and at least one replica, whose copy must be durable.
        let primary = table.replicas_of_key(key.as_bytes())[0];
        let durable: Vec<NodeId> = ids()
            .into_iter()
            .filter(|id| stores[id.0 as usize - 1].durable(key.as_bytes()).is_some())
            .collect();
        assert!(
            durable.iter().any(|id| *id != primary),
            "{key}: acknowledged with no durable copy (durable on {durable:?}, primary {primary})"
        );
    }
    eprintln!("held: 12 quorum writes on periodic nodes, each durable on a copy when acknowledged");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn an_apply_through_any_node_is_acknowledged_and_reads_back_through_every_node() {
    let cluster = Cluster::start(3, 3, AckPolicy::Quorum).await;
    let keys: Vec<String> = (0..12).map(|i| format!("cart:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let client = cluster.client(ids()[i % 3]).await;
        for member in ["a", "b"] {
            client
                .apply_ack(
                    key,
                    haze_client::TypedOp::SetAdd(vec![Scalar::from(member)]),
                )
                .await
                .unwrap();
        }
    }
    for id in ids() {
        let client = cluster.client(id).await;
        for key in &keys {
            let set: haze_crdt::OrSet<Scalar> = client.get_typed(key).await.unwrap().unwrap();
            assert_eq!(set.iter().count(), 2, "{key} via {id}");
        }
    }
}
