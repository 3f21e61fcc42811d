//! Deterministic simulation of a cluster under faults (turmoil): CONVENTIONS.md, convention 5.
//!
//! `HAZE_SIM_SEED=N` replays one seed; `HAZE_SIM_SEEDS=A..B` sweeps a range, for at most
//! `HAZE_SIM_SECONDS` of wall time (default 60).

#![allow(unreachable_pub)]
#![allow(clippy::print_stdout)] // the simulation reports what it tried and what held

#[path = "../common/control.rs"]
mod control;
mod net;
mod scenario;

use scenario::{Faults, Outcome, run, run_with};

/// One simulation at a time: the planted bug is a process-wide switch.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The seeds to run: one to replay, or a range to sweep.
fn seeds() -> std::ops::Range<u64> {
    if let Some(seed) = std::env::var("HAZE_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return seed..seed + 1;
    }
    std::env::var("HAZE_SIM_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(0..12)
}

/// Runs seeds until the range or the time box ends; returns every outcome.
#[allow(clippy::disallowed_methods)] // wall time bounds the sweep; the simulation never sees it
fn sweep(seeds: std::ops::Range<u64>) -> Vec<Outcome> {
    let budget = std::time::Duration::from_secs(
        std::env::var("HAZE_SIM_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    for seed in seeds {
        if started.elapsed() > budget && !outcomes.is_empty() {
            println!("time box of {budget:?} reached: stopping before seed {seed}");
            break;
        }
        outcomes.push(run(seed));
    }
    outcomes
}

#[test]
fn no_acknowledged_write_is_lost_and_replicas_converge_under_faults() {
    let _one = exclusive();
    let outcomes = sweep(seeds());
    let mut failures = Vec::new();
    for o in &outcomes {
        println!("{o}");
        assert_eq!(
            o.events_fired, o.events_planned,
            "seed {}: every fault fires",
            o.seed
        );
        assert!(o.faults >= 2, "seed {}: faults were injected", o.seed);
        assert!(
            o.acked_adds + o.acked_increments as usize > 100,
            "seed {}: writes were acknowledged",
            o.seed
        );
        assert!(o.migrations > 0, "seed {}: partitions moved", o.seed);
        if o.lost > 0 || o.divergent > 0 || o.not_found > 0 || o.unfinished {
            failures.push(o.seed);
        }
    }
    let total = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    println!(
        "seeds run {}, faults injected {}, migrations {}, faults on streams under way {}, resumes {}, writes acknowledged {}, \
         reads {} (not found {}, stale {}), lost {}, divergent partitions {}, leftover copies {}, unfinished changes {}",
        outcomes.len(),
        total(|o| o.faults as u64),
        total(|o| o.migrations as u64),
        total(|o| o.movers_hit as u64),
        total(|o| o.resumes),
        total(|o| o.acked_adds as u64 + o.acked_increments),
        total(|o| o.reads),
        total(|o| o.not_found),
        total(|o| o.stale),
        total(|o| o.lost as u64),
        total(|o| o.divergent as u64),
        total(|o| o.leftovers as u64),
        total(|o| u64::from(o.unfinished)),
    );
    for seed in &failures {
        println!("replay: HAZE_SIM_SEED={seed} cargo test -p haze-node --test sim -- --nocapture");
    }
    assert!(
        outcomes.len() < 3 || total(|o| o.movers_hit as u64) > 0,
        "faults hit the ends of streams under way"
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

/// With the membership changes and the controller's faults alone (no node crashes or network
/// partitions), no read of an acknowledged counter finds nothing or less than was acknowledged:
/// the moves themselves never take a read back in time. And every old replica deleted its copy.
#[test]
fn moves_alone_never_take_a_read_back_in_time() {
    let _one = exclusive();
    let seeds = std::env::var("HAZE_SIM_MOVE_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(0..4);
    let mut bad = Vec::new();
    for seed in seeds {
        let o = run_with(seed, Faults::ControllerOnly);
        println!("{o}");
        assert!(
            o.migrations > 0 && o.reads > 50,
            "seed {seed}: moves and reads happened"
        );
        if o.stale > 0
            || o.not_found > 0
            || o.lost > 0
            || o.divergent > 0
            || o.leftovers > 0
            || o.unfinished
        {
            bad.push(seed);
        }
    }
    assert!(
        bad.is_empty(),
        "seeds {bad:?} read back in time, lost writes or left copies behind"
    );
}

/// The replay command runs a seed in a new process; two such runs must agree on everything
/// they report. (Two runs in one process may not: runtime internals keep per-thread random
/// state across runs.)
#[test]
fn a_seed_replays_the_same_run() {
    let _one = exclusive();
    let replay = || {
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "no_acknowledged_write_is_lost_and_replicas_converge_under_faults",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HAZE_SIM_SEED", "7")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}");
        stdout
            .lines()
            .find_map(|l| l.find("seed 7 ").map(|at| l[at..].to_string()))
            .unwrap_or_else(|| panic!("no outcome line in {stdout}"))
    };
    let (first, second) = (replay(), replay());
    println!("{first}");
    assert_eq!(first, second);
}

/// With copies to secondaries dropped (while reported acknowledged), a write lives on its
/// coordinator alone until anti-entropy; the node restarted with an empty disk takes some
/// with it. The simulation must see that.
#[cfg(feature = "planted-bugs")]
#[test]
fn the_simulation_catches_dropped_copies() {
    let _one = exclusive();
    haze_node::planted::drop_copies(true);
    let caught = (0..8).map(run).find(|o| o.lost > 0);
    haze_node::planted::drop_copies(false);
    let caught = caught.expect("no seed of 0..8 lost a write with copies dropped");
    println!("planted bug caught: {caught}");
}

/// Runs the moves-only scenario with a planted bug until a seed shows it.
#[cfg(feature = "planted-bugs")]
fn caught_with(bug: fn(bool)) -> Option<Outcome> {
    bug(true);
    let caught = (0..8)
        .map(|seed| run_with(seed, Faults::ControllerOnly))
        .find(|o| o.lost > 0 || o.not_found > 0 || o.stale > 0);
    bug(false);
    caught
}

/// New replicas that miss the writes made while they stream serve older states once they
/// take over: the simulation must see reads go back in time.
#[cfg(feature = "planted-bugs")]
#[test]
fn the_simulation_catches_writes_not_forwarded_while_streaming() {
    let _one = exclusive();
    let caught = caught_with(haze_node::planted::skip_forwarding)
        .expect("no seed of 0..8 noticed the new replicas missing writes");
    println!("planted bug caught: {caught}");
}

/// An old replica that deletes a partition as soon as it streamed, while it still serves it,
/// answers reads with nothing or with less: the simulation must see it.
#[cfg(feature = "planted-bugs")]
#[test]
fn the_simulation_catches_a_partition_deleted_before_the_switch() {
    let _one = exclusive();
    let caught = caught_with(haze_node::planted::delete_early)
        .expect("no seed of 0..8 noticed a partition deleted too early");
    println!("planted bug caught: {caught}");
}
