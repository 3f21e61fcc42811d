//! Live repartitioning with real processes: a three-node cluster under continuous client load
//! grows to four and shrinks back to three. While it grows, a node streaming a partition (an
//! old owner) and the new node are each SIGKILLed mid-stream and restarted. The cluster is
//! secure, as clusters run: TLS on every port (streams included), tokens required.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use haze_client::{Client, ClientConfig};
use haze_crdt::{Scalar, Value};

use haze_testkit::process::Haze;

use crate::harness::{HAZE, Process, pause};

/// The secure binary of the test (its CA and admin token).
static SECURE: OnceLock<Haze> = OnceLock::new();

fn h() -> &'static Haze {
    SECURE.get().expect("the test made its secure binary first")
}

/// How the load's clients connect: TLS against the test's CA, with the admin token.
fn client_config() -> ClientConfig {
    let tls = haze_tls::client_config(h().ca().as_deref(), None).unwrap();
    let tcp = ClientConfig::default().dial;
    ClientConfig {
        dial: Arc::new(haze_tls::TlsDial::new(tcp, tls)),
        token: h().admin_token(),
        ..ClientConfig::default()
    }
}

const NODE_FLAGS: [&str; 4] = ["--anti-entropy-ms", "500", "--forward-timeout-ms", "1000"];
/// Slow streams (256 KiB/s per node), so a kill lands mid-stream; quick failure detection.
const CONTROLLER_FLAGS: [&str; 10] = [
    "--partitions",
    "16",
    "--move-partitions",
    "2",
    "--move-rate",
    "256KiB",
    "--move-grace-secs",
    "2",
    "--dead-after-secs",
    "3",
];
/// Preloaded keys, each about 2 KB: about 250 KB per partition to stream.
const PRELOAD: usize = 2000;

fn status(controller: &Process) -> serde_json::Value {
    h().cluster_status(&controller.addr)
}

fn cluster(controller: &Process, args: &[&str]) -> String {
    h().cluster_ok(&controller.addr, args)
}

/// Waits up to `seconds` for a partition streaming with keys sent, whose source is not one of
/// `spare`; returns its source and receiving node (`n<id>`).
fn streaming(controller: &Process, spare: &[&str], seconds: u64) -> Option<(String, String)> {
    for _ in 0..seconds * 10 {
        let s = status(controller);
        for m in s["progress"]["moves"].as_array().into_iter().flatten() {
            if m["state"] != "streaming" {
                continue;
            }
            for st in m["streams"].as_array().into_iter().flatten() {
                let (source, to) = (st["source"].as_u64()?, st["to"].as_u64()?);
                let sent = st["report"]["keys"].as_u64().unwrap_or(0);
                let source = format!("n{source}");
                if sent > 0 && !spare.contains(&source.as_str()) {
                    return Some((source, format!("n{to}")));
                }
            }
        }
        pause(100);
    }
    None
}

fn wait_idle(controller: &Process, seconds: u64) {
    for _ in 0..seconds * 5 {
        let s = status(controller);
        if s["progress"].is_null() && s["queued"].as_array().is_none_or(Vec::is_empty) {
            return;
        }
        pause(200);
    }
    panic!(
        "the change did not finish: {}",
        status(controller)["progress"]
    );
}

/// What the load attempted and was told: acknowledged increments and additions, increments
/// whose outcome is unknown (they may be applied, at most once), every member attempted, and
/// which requests failed in which phase.
#[derive(Default)]
struct Load {
    counters: BTreeMap<String, i128>,
    unknown: BTreeMap<String, i128>,
    sets: BTreeMap<String, Vec<i64>>,
    attempted: BTreeMap<String, Vec<i64>>,
    acked: u64,
    failures: Vec<(usize, String)>,
}

/// Counter increments and set additions through `addr` until `stop`.
fn load(addr: String, stop: Arc<AtomicBool>, phase: Arc<AtomicUsize>) -> Load {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let config = ClientConfig {
            request_timeout: Duration::from_secs(10),
            ..client_config()
        };
        let client = Client::connect_with(&addr, config).await.unwrap();
        let mut out = Load::default();
        let mut i = 0i64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let (c, s) = (format!("load:c{}", i % 64), format!("load:s{}", i % 64));
            match client.counter_add(&c, 1).await {
                Ok(_) => {
                    *out.counters.entry(c).or_default() += 1;
                    out.acked += 1;
                }
                Err(e) => {
                    if e.is_indeterminate() {
                        *out.unknown.entry(c.clone()).or_default() += 1;
                    }
                    out.failures
                        .push((phase.load(Ordering::Relaxed), format!("{c}: {e}")));
                }
            }
            out.attempted.entry(s.clone()).or_default().push(i);
            match client.set_add(&s, vec![Scalar::Int(i)]).await {
                Ok(_) => {
                    out.sets.entry(s).or_default().push(i);
                    out.acked += 1;
                }
                Err(e) => out
                    .failures
                    .push((phase.load(Ordering::Relaxed), format!("{s}: {e}"))),
            }
        }
        out
    })
}

/// Writes the preloaded keys through `addr`, 64 at a time.
fn preload(addr: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::connect_with(addr, client_config()).await.unwrap();
        let filler = "x".repeat(2000);
        for chunk in (0..PRELOAD).collect::<Vec<_>>().chunks(64) {
            let writes = chunk.iter().map(|i| {
                let member = Scalar::from(format!("{i}:{filler}").as_str());
                let client = client.clone();
                async move { client.set_add(format!("pre:{i}"), vec![member]).await }
            });
            for result in futures_join(writes).await {
                result.unwrap();
            }
        }
    });
}

/// Runs futures concurrently on the current task and returns their outputs in order.
async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

fn start(dir: &Path, name: &str, controller: &Process, at: Option<&str>) -> Process {
    let data = dir.join(name);
    match at {
        Some(addr) => {
            let mut flags = vec!["--controller", controller.addr.as_str()];
            flags.extend(NODE_FLAGS);
            h().serve_at(&data, addr, &flags)
        }
        None => h().join(&data, &controller.addr, &NODE_FLAGS),
    }
}

#[test]
fn three_nodes_grow_to_four_and_shrink_back_under_load_with_owners_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let h = SECURE.get_or_init(|| HAZE.secure(dir.path()));
    // Node i is n<i>: started one at a time.
    let (controller, started) = h.cluster(dir.path(), 3, &CONTROLLER_FLAGS, &NODE_FLAGS);
    let mut nodes: BTreeMap<String, Process> =
        (1..).map(|i| format!("n{i}")).zip(started).collect();
    cluster(&controller, &["add", "n1", "n2", "n3", "--wait"]);
    for node in nodes.values() {
        node.wait_for_log("cluster view installed");
    }
    preload(&nodes["n1"].addr);
    nodes.insert("n4".into(), start(dir.path(), "node4", &controller, None));

    // The load goes through n1, which is never killed.
    let (stop, phase) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let loader = {
        let (addr, stop, phase) = (nodes["n1"].addr.clone(), stop.clone(), phase.clone());
        std::thread::spawn(move || load(addr, stop, phase))
    };
    pause(500);

    // Phase 1: grow to four; kill an old owner, then the new one, each mid-stream.
    phase.store(1, Ordering::Relaxed);
    cluster(&controller, &["add", "n4"]);
    let mut killed = Vec::new();
    for victim_of in ["source", "target"] {
        let Some((source, to)) = streaming(&controller, &["n1"], 60) else {
            panic!("no partition streamed from a node other than n1");
        };
        let victim = if victim_of == "source" { source } else { to };
        let server = nodes.remove(&victim).unwrap();
        let addr = server.addr.clone();
        server.kill();
        killed.push(victim.clone());
        pause(1500);
        let i = victim.trim_start_matches('n');
        let back = start(dir.path(), &format!("node{i}"), &controller, Some(&addr));
        back.wait_for_log("cluster view installed");
        nodes.insert(victim, back);
    }
    wait_idle(&controller, 120);
    let grown = status(&controller);
    assert!(
        grown["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == 4 && m["partitions"].as_u64() > Some(0)),
        "n4 holds partitions: {grown}"
    );

    // Phase 2: shrink back to three, nobody killed: no request may fail.
    phase.store(2, Ordering::Relaxed);
    let out = cluster(&controller, &["remove", "n4", "--wait"]);
    assert!(out.contains("done: epoch"), "{out}");
    pause(500);
    stop.store(true, Ordering::Relaxed);
    let load = loader.join().unwrap();
    let shrunk = status(&controller);
    assert_eq!(
        shrunk["members"].as_array().unwrap().len(),
        3,
        "n4 was released: {shrunk}"
    );

    // Every acknowledged write (and every preloaded key) reads back through n2, and nothing
    // that was not attempted: a counter holds at most its acknowledged and unknown increments,
    // a set only members some addition attempted.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lost: Vec<String> = runtime.block_on(async {
        let client = Client::connect_with(&nodes["n2"].addr, client_config())
            .await
            .unwrap();
        let mut lost = Vec::new();
        for (key, want) in &load.counters {
            let most = want + load.unknown.get(key).copied().unwrap_or(0);
            match client.get(key).await {
                Ok(Some(Value::PnCounter(c))) if c.value() >= *want && c.value() <= most => {}
                other => lost.push(format!("{key}: {other:?}, want {want}..={most}")),
            }
        }
        for (key, members) in &load.sets {
            match client.get(key).await {
                Ok(Some(Value::OrSet(set))) => {
                    lost.extend(
                        members
                            .iter()
                            .filter(|m| !set.contains(&Scalar::Int(**m)))
                            .map(|m| format!("{key}: member {m}")),
                    );
                    let tried = &load.attempted[key];
                    lost.extend(
                        set.iter()
                            .filter(|m| !matches!(m, Scalar::Int(i) if tried.contains(i)))
                            .map(|m| format!("{key}: member {m} was never added")),
                    );
                }
                other => lost.push(format!("{key}: {other:?}")),
            }
        }
        for i in 0..PRELOAD {
            if !matches!(client.get(format!("pre:{i}")).await, Ok(Some(_))) {
                lost.push(format!("pre:{i}"));
            }
        }
        lost
    });
    let failed = |p: usize| {
        load.failures
            .iter()
            .filter(|(phase, _)| *phase == p)
            .count()
    };
    println!(
        "grow 3→4 (killed {killed:?} mid-stream) and shrink 4→3 under load: {} writes \
         acknowledged ({} increments unknown), {PRELOAD} preloaded; failed requests: {} while \
         nodes were killed, {} while shrinking; lost or never written {}",
        load.acked,
        load.unknown.values().sum::<i128>(),
        failed(1),
        failed(2),
        lost.len()
    );
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(
        failed(0) + failed(2),
        0,
        "requests failed without a fault: {:?}",
        load.failures
    );
    assert!(load.acked > 200, "the load ran throughout");
}
