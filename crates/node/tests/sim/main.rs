//! Deterministic simulation of a cluster under faults (turmoil): CONVENTIONS.md, convention 5.
//!
//! `HAZE_SIM_SEED=N` replays one seed; `HAZE_SIM_SEEDS=A..B` sweeps a range, for at most
//! `HAZE_SIM_SECONDS` of wall time (default 60).

#![allow(unreachable_pub)]
#![allow(clippy::print_stdout)] // the simulation reports what it tried and what held

#[path = "../common/control.rs"]
mod control;
mod disk;
mod exactly_once;
mod history;
mod hosts;
mod net;
mod outcome;
mod scenario;
mod schedule;

use outcome::Outcome;
use scenario::run_with;
use schedule::Faults;

/// One simulation at a time: a planted bug is a process-wide switch.
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

/// However fast or slow the machine, a sweep runs at least this many seeds (or its whole
/// range, if shorter): the time box only decides how many more.
const MIN_SEEDS: usize = 10;

/// The first panic of the seed running now, where it happened and what it said: a task's
/// panic reaches `catch_unwind` only as the runtime's "a spawned task panicked".
static FIRST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Runs one seed; a panic anywhere in it (a node's task included: `--cfg tokio_unstable` makes
/// turmoil shut the host down and fail the step) is reported with the seed, and with the
/// place and message of the first panic.
fn run_caught(seed: u64, faults: Faults) -> Result<Outcome, String> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                let place = info.location().map(ToString::to_string).unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                *first = Some(format!("{message} (at {place})"));
            }
            drop(first);
            default(info);
        }));
    });
    *FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = None;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_with(seed, faults))).map_err(
        |_| {
            let first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
            format!("seed {seed} panicked: {}", first.unwrap_or_default())
        },
    )
}

/// Runs seeds until the range ends, or the time box does once `MIN_SEEDS` ran.
#[allow(clippy::disallowed_methods)] // wall time bounds the sweep; the simulation never sees it
fn sweep(seeds: std::ops::Range<u64>, faults: Faults) -> Vec<Result<Outcome, String>> {
    let budget = std::time::Duration::from_secs(
        std::env::var("HAZE_SIM_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    for seed in seeds {
        if started.elapsed() > budget && outcomes.len() >= MIN_SEEDS {
            println!("time box of {budget:?} reached: stopping before seed {seed}");
            break;
        }
        let outcome = run_caught(seed, faults);
        match &outcome {
            Ok(o) => println!("{o}"),
            Err(e) => println!("{e}"),
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Checks what every seed must show it did (guards counted as things happened), and returns
/// the seeds that broke an invariant, with the invariants' names.
fn judge(outcomes: &[Result<Outcome, String>], min_reads: u64) -> Vec<String> {
    let mut failures = Vec::new();
    for outcome in outcomes {
        let o = match outcome {
            Ok(o) => o,
            Err(e) => {
                failures.push(e.clone());
                continue;
            }
        };
        let seed = o.seed;
        assert!(
            o.faults_hit >= 2,
            "seed {seed}: faults hit live targets: {o}"
        );
        assert!(o.acked > 100, "seed {seed}: writes were acknowledged: {o}");
        assert!(o.reads.ok >= min_reads, "seed {seed}: reads succeeded: {o}");
        assert!(o.migrations > 0, "seed {seed}: partitions moved: {o}");
        let broken = o.violations();
        if !broken.is_empty() {
            failures.push(format!("seed {seed}: {}", broken.join(", ")));
        }
    }
    failures
}

fn total(outcomes: &[Result<Outcome, String>], f: impl Fn(&Outcome) -> u64) -> u64 {
    outcomes.iter().flatten().map(f).sum()
}

fn summary(outcomes: &[Result<Outcome, String>]) {
    let t = |f: fn(&Outcome) -> u64| total(outcomes, f);
    println!(
        "seeds run {}, faults hit {} of {} planned, power losses {} (unsynced writes dropped {}), \
         stale views {}, migrations {}, faults on streams under way {}, sources replaced {}, \
         receivers replaced {}, rolled back {}, controller restarts {}, writes acknowledged {} \
         (failed {}, unknown {}), reads {} (failed {}, not found {}, stale {}, phantom {}), \
         lost {}, phantom {}, divergent partitions {}, leftover copies {}, unfinished changes {}",
        outcomes.len(),
        t(|o| o.faults_hit as u64),
        t(|o| o.faults_planned as u64),
        t(|o| o.power_losses as u64),
        t(|o| o.unsynced_dropped as u64),
        t(|o| o.stale_views as u64),
        t(|o| o.migrations as u64),
        t(|o| o.movers_hit as u64),
        t(|o| o.sources_replaced),
        t(|o| o.receivers_replaced),
        t(|o| o.rolled_back),
        t(|o| o.controller_restarts),
        t(|o| o.acked),
        t(|o| o.failed),
        t(|o| o.unknown),
        t(|o| o.reads.ok),
        t(|o| o.reads.failed),
        t(|o| o.reads.not_found),
        t(|o| o.reads.stale),
        t(|o| o.reads.phantom),
        t(|o| o.lost),
        t(|o| o.phantom),
        t(|o| o.divergent as u64),
        t(|o| o.leftovers as u64),
        t(|o| u64::from(o.unfinished)),
    );
}

#[test]
fn no_acknowledged_write_is_lost_and_replicas_converge_under_faults() {
    let _one = exclusive();
    let range = seeds();
    let outcomes = sweep(range.clone(), Faults::All);
    let failures = judge(&outcomes, 50);
    summary(&outcomes);
    for failure in &failures {
        println!("{failure}");
    }
    for seed in range.clone().take(outcomes.len()) {
        if failures.iter().any(|f| {
            f.starts_with(&format!("seed {seed}:")) || f.starts_with(&format!("seed {seed} "))
        }) {
            println!(
                "replay: HAZE_SIM_SEED={seed} cargo test -p haze-node --test sim -- --nocapture"
            );
        }
    }
    // Reads merge a majority of replicas, writes wait for a majority: no read may miss an
    // acknowledged write (each seed's violations say so; here the totals, for the record).
    let t = |f: fn(&Outcome) -> u64| total(&outcomes, f);
    println!(
        "read quorum {}: reads {}, stale {}, not found {} (writes acknowledged before them \
         that they missed), lost {}",
        hosts::read_quorum(),
        t(|o| o.reads.ok),
        t(|o| o.reads.stale),
        t(|o| o.reads.not_found),
        t(|o| o.lost),
    );
    // A sweep (not a single replayed seed) must have gone through every kind of fault.
    if outcomes.len() >= MIN_SEEDS {
        assert!(
            t(|o| o.movers_hit as u64) > 0,
            "faults hit the ends of streams under way"
        );
        assert!(
            t(|o| o.sources_replaced) > 0,
            "a stream's source down past dead_after was replaced"
        );
        assert!(
            t(|o| o.receivers_replaced + o.rolled_back) > 0,
            "a stream's receiver down past dead_after was replaced or its move rolled back"
        );
        assert!(
            t(|o| o.power_losses as u64) > 0,
            "every node lost power at once"
        );
        assert!(
            t(|o| o.stale_views as u64) > 0,
            "stale views were delivered"
        );
        assert!(t(|o| o.unknown) > 0, "some writes' outcomes were unknown");
    }
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

/// The control of the read quorum: with reads answered by one replica alone, the same faults
/// make reads miss acknowledged writes (a replica that missed them while down, or lost its disk,
/// answers before anti-entropy repairs it), and the simulation sees it; the checks that pass with a majority's
/// reads are therefore not blind. Bounded: the seeds of `HAZE_SIM_ONE_SEEDS` (default 0..8)
/// until one read goes back in time.
#[test]
fn reads_of_one_replica_alone_go_back_in_time_under_faults() {
    let _one = exclusive();
    let seeds = std::env::var("HAZE_SIM_ONE_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(0..8);
    hosts::set_read_quorum(haze_node::ReadQuorum::ONE);
    let mut back_in_time = None;
    for seed in seeds.clone() {
        let outcome = run_caught(seed, Faults::All);
        match &outcome {
            Ok(o) => println!("{o}"),
            Err(e) => println!("{e}"),
        }
        if let Ok(o) = outcome
            && o.reads.stale + o.reads.not_found > 0
        {
            back_in_time = Some(o);
            break;
        }
    }
    hosts::set_read_quorum(haze_node::ReadQuorum::Majority);
    let o = back_in_time.unwrap_or_else(|| {
        panic!("no seed of {seeds:?} read back in time with a read quorum of one")
    });
    assert!(!o.majority_reads());
    println!(
        "with a read quorum of one, seed {} read back in time: {} stale, {} not found of {} reads",
        o.seed, o.reads.stale, o.reads.not_found, o.reads.ok
    );
}

/// The same invariants with TLS on every connection (node certificates between nodes, a CA
/// made for the run) and clients' tokens required: the security layer neither loses nor
/// duplicates a write under the faults. Bounded: the seeds of `HAZE_SIM_SECURE_SEEDS`
/// (default 0..4).
#[test]
fn the_invariants_hold_with_tls_and_tokens_on() {
    let _one = exclusive();
    let seeds = std::env::var("HAZE_SIM_SECURE_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(0..4);
    hosts::set_secure(true);
    let outcomes: Vec<_> = seeds
        .clone()
        .map(|seed| std::panic::catch_unwind(|| run_caught(seed, Faults::All)))
        .collect();
    hosts::set_secure(false);
    let mut acked = 0;
    for outcome in outcomes {
        let outcome = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));
        let o = outcome.unwrap_or_else(|e| panic!("{e}"));
        println!("secure: {o}");
        assert!(
            o.violations().is_empty(),
            "seed {}: {:?}",
            o.seed,
            o.violations()
        );
        assert!(
            o.reads.ok > 0,
            "seed {}: no read succeeded over TLS",
            o.seed
        );
        acked += o.acked;
    }
    println!(
        "with TLS and tokens on, seeds {seeds:?}: {acked} writes acknowledged, lost 0, phantom 0"
    );
}

/// With the membership changes and the controller's faults alone (no node crashes or network
/// partitions), no read finds nothing or less than was acknowledged: the moves themselves
/// never take a read back in time. And every old replica deleted its copy.
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
    let outcomes: Vec<_> = seeds
        .map(|seed| {
            let o = run_caught(seed, Faults::ControllerOnly);
            match &o {
                Ok(o) => println!("{o}"),
                Err(e) => println!("{e}"),
            }
            o
        })
        .collect();
    let failures = judge(&outcomes, 100);
    summary(&outcomes);
    assert!(
        failures.is_empty(),
        "moves alone read back in time, lost writes or left copies behind: {failures:?}"
    );
}

/// A counter addition whose answer never reaches the router (the primary applied it) is
/// applied once: the router does not try another replica, the client hears "unknown", and
/// every replica ends up holding exactly that one increment.
#[test]
fn a_counter_addition_whose_answer_is_lost_is_applied_at_most_once() {
    let _one = exclusive();
    for seed in 0..3 {
        let once = exactly_once::run(seed);
        println!("{once:?}");
        assert_eq!(
            once.told,
            Some(history::Told::Unknown),
            "seed {seed}: the client heard the outcome is unknown"
        );
        assert_eq!(
            once.phantom, 0,
            "seed {seed}: applied more than once: {once:?}"
        );
        assert_eq!(once.lost, 0, "seed {seed}: {once:?}");
        assert_eq!(
            once.values,
            vec![1, 1, 1],
            "seed {seed}: the primary applied it, once, and every replica has it"
        );
    }
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

#[cfg(feature = "planted-bugs")]
mod planted {
    use haze_node::planted::{Bug, plant};

    use super::*;

    /// The seeds a planted bug must be caught within.
    const SEEDS: std::ops::Range<u64> = 0..8;

    /// Runs `scenario` on `SEEDS` with `bugs` planted until one breaks an invariant, then the
    /// same seed without them (the control), which must break none. Returns the catch.
    fn caught_set(bugs: Vec<Bug>, scenario: impl Fn(u64) -> Vec<&'static str>) -> String {
        caught_reading(bugs, haze_node::ReadQuorum::Majority, scenario)
    }

    /// As [`caught_set`], with the nodes reading with `quorum`.
    fn caught_reading(
        bugs: Vec<Bug>,
        quorum: haze_node::ReadQuorum,
        scenario: impl Fn(u64) -> Vec<&'static str>,
    ) -> String {
        let _one = exclusive();
        crate::hosts::set_read_quorum(quorum);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            caught_seeds(&bugs, scenario)
        }));
        crate::hosts::set_read_quorum(haze_node::ReadQuorum::Majority);
        caught.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    fn caught_seeds(bugs: &[Bug], scenario: impl Fn(u64) -> Vec<&'static str>) -> String {
        for seed in SEEDS {
            plant(bugs);
            let broken = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(seed)));
            plant(&[]);
            let broken = broken.unwrap_or_else(|_| vec!["a panic"]);
            if broken.is_empty() {
                println!("{bugs:?}: seed {seed} held");
                continue;
            }
            let control = scenario(seed);
            assert!(
                control.is_empty(),
                "{bugs:?}: seed {seed} breaks {control:?} without the bug too: no proof"
            );
            let caught = format!(
                "planted {bugs:?} caught on seed {seed} by: {}; the control run of seed {seed} \
                 without it broke nothing",
                broken.join(", ")
            );
            println!("{caught}");
            return caught;
        }
        panic!("no seed of {SEEDS:?} caught the planted bugs {bugs:?}");
    }

    /// As [`caught_set`], for one bug.
    fn caught(bug: Bug, scenario: impl Fn(u64) -> Vec<&'static str>) -> String {
        caught_set(vec![bug], scenario)
    }

    fn with(faults: Faults) -> impl Fn(u64) -> Vec<&'static str> {
        move |seed| {
            let o = run_with(seed, faults);
            println!("{o}");
            o.violations()
        }
    }

    #[test]
    fn the_simulation_catches_dropped_copies() {
        caught(Bug::DropCopies, with(Faults::All));
    }

    /// New replicas that miss the writes made while they stream serve older states once they
    /// take over. Three defences each deliver those writes: the source forwards what it commits,
    /// coordinators copy to the new replicas too, and a departing replica sends what differs
    /// before it deletes. They back each other up: with any one of them removed no seed of 0..40
    /// broke an invariant, nor with any two of them on seeds 0..16 (docs/testing.md), so the
    /// simulation proves the three together.
    ///
    /// The reads that see it are reads of one replica: a read of a majority merges the new
    /// replica's copy with a replica that kept the writes and repairs it, so with all three
    /// removed no seed of 0..8 broke an invariant (the writes are still on a majority, and
    /// anti-entropy refills the new replica before the final check). With a read quorum of
    /// one, a read the new replica answers alone shows the writes it missed.
    #[test]
    fn the_simulation_catches_new_replicas_that_miss_the_writes_made_while_they_stream() {
        caught_reading(
            vec![
                Bug::NoForwarding,
                Bug::NoCopiesToNewReplicas,
                Bug::NoLastPass,
            ],
            haze_node::ReadQuorum::ONE,
            with(Faults::ControllerOnly),
        );
    }

    /// An old replica that deletes a partition before routers switch to the new replicas
    /// answers for keys it no longer holds. A read of a majority merges its empty answer with
    /// replicas that still hold the keys (and the new replicas, which streamed them, are not
    /// left out of quorums: they registered on standby, with nothing to refill), so nothing
    /// shows; a read of one replica shows the keys missing, as with the stream bugs above.
    #[test]
    fn the_simulation_catches_a_partition_deleted_before_the_switch() {
        caught_reading(
            vec![Bug::DeleteEarly],
            haze_node::ReadQuorum::ONE,
            with(Faults::ControllerOnly),
        );
    }

    #[test]
    fn the_simulation_catches_writes_acknowledged_before_they_are_durable() {
        caught(Bug::AckBeforeDurable, with(Faults::All));
    }

    #[test]
    fn the_simulation_catches_a_stale_view_accepted() {
        caught(Bug::AcceptStaleView, with(Faults::ControllerOnly));
    }

    #[test]
    fn the_simulation_catches_an_unknown_counter_addition_sent_twice() {
        caught(Bug::RetryUnknownWrites, |seed| {
            let once = exactly_once::run(seed);
            println!("{once:?}");
            let mut broken = Vec::new();
            if once.phantom > 0 {
                broken.push("value nobody wrote (or written twice)");
            }
            if once.lost > 0 {
                broken.push("acknowledged write lost");
            }
            broken
        });
    }
}
