//! SIGKILL under write load: in sync mode, every acknowledged write survives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use haze_client::{Client, ClientConfig, Scalar};
use haze_crdt::{OrSet, PnCounter};

use crate::harness::HAZE;

const WRITERS: usize = 8;

/// What one writer had acknowledged when the node died.
#[derive(Debug, Default)]
struct Acked {
    increments: i128,
    members: Vec<String>,
}

async fn write_until_failure(client: Client, writer: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    let (counter, set) = (
        format!("crash:counter:{writer}"),
        format!("crash:set:{writer}"),
    );
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match client.counter_add(&counter, 1).await {
            Ok(_) => acked.increments += 1,
            Err(_) => break,
        }
        let member = format!("m{n}");
        match client.set_add(&set, [Scalar::from(member.as_str())]).await {
            Ok(_) => acked.members.push(member),
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn every_acknowledged_write_survives_sigkill_in_sync_mode() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut total_acked = 0usize;
    let mut total_lost = 0usize;
    for round in 0..2 {
        let server = HAZE.serve(dir.path(), &["--durability", "sync"]);
        let addr = server.addr.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let config = ClientConfig {
            request_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        };
        let writers = runtime.block_on(async {
            let client = Client::connect_with(&addr, config).await.unwrap();
            (0..WRITERS)
                .map(|w| {
                    tokio::spawn(write_until_failure(
                        client.clone(),
                        w + round * WRITERS,
                        stop.clone(),
                    ))
                })
                .collect::<Vec<_>>()
        });
        runtime.block_on(async { tokio::time::sleep(Duration::from_millis(1_500)).await }); // the load runs
        server.kill(); // SIGKILL mid-write
        stop.store(true, Ordering::Relaxed);
        let acked: Vec<Acked> = runtime.block_on(async {
            let mut all = Vec::new();
            for w in writers {
                all.push(w.await.unwrap());
            }
            all
        });

        let server = HAZE.serve(dir.path(), &[]);
        let lost = runtime.block_on(async {
            let client = Client::connect(&server.addr).await.unwrap();
            let mut lost = 0;
            for (w, acked) in acked.iter().enumerate() {
                let w = w + round * WRITERS;
                let counter: PnCounter = client
                    .get_typed(format!("crash:counter:{w}"))
                    .await
                    .unwrap()
                    .unwrap_or_default();
                if counter.value() < acked.increments {
                    lost += usize::try_from(acked.increments - counter.value()).unwrap();
                }
                let set: OrSet<Scalar> = client
                    .get_typed(format!("crash:set:{w}"))
                    .await
                    .unwrap()
                    .unwrap_or_default();
                lost += acked
                    .members
                    .iter()
                    .filter(|m| !set.contains(&Scalar::from(m.as_str())))
                    .count();
            }
            lost
        });
        let round_acked: usize = acked
            .iter()
            .map(|a| a.increments as usize + a.members.len())
            .sum();
        println!(
            "crash round {round}: {WRITERS} writers, SIGKILL after 1.5 s: {round_acked} writes acknowledged, {lost} lost"
        );
        total_acked += round_acked;
        total_lost += lost;
        drop(server);
    }
    println!(
        "crash test: 2 SIGKILLs under load, {total_acked} acknowledged writes, {total_lost} lost"
    );
    assert!(total_acked > 100, "the load ran");
    assert_eq!(total_lost, 0);
}
