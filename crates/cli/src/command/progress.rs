//! Showing a membership change: its plan, its state in `haze cluster status`, and progress bars
//! while `--wait` follows it.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use haze_controller::api::{ChangeStatus, MoveStatus, Status};
use haze_controller::{ControllerClient, Plan};
use haze_ring::{MoveState, NodeId};

/// How often `--wait` asks the controller.
const POLL: Duration = Duration::from_millis(500);
/// Moves listed one per line at most.
const LISTED: usize = 12;

fn names(ids: &[NodeId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints a plan: what moves where, and how to carry it out.
pub(crate) fn print_plan(plan: &Plan) {
    println!("plan: {}", plan.change);
    let Some(from) = &plan.from else {
        println!(
            "the first table: {} partitions on {} (nothing to move)",
            plan.target.partitions(),
            names(&plan.target.nodes().into_iter().collect::<Vec<_>>())
        );
        println!("carry it out with: haze cluster commit");
        return;
    };
    println!(
        "{} of {} partitions change replicas (epoch {} → {} and on)",
        plan.moves.len(),
        plan.target.partitions(),
        from.epoch().0,
        from.epoch().0 + 1
    );
    let (before, after) = (from.load(), plan.target.load());
    let mut nodes: Vec<NodeId> = before.keys().chain(after.keys()).copied().collect();
    nodes.sort();
    nodes.dedup();
    for node in nodes {
        let (b, a) = (
            before.get(&node).copied().unwrap_or(0),
            after.get(&node).copied().unwrap_or(0),
        );
        let delta = a as i64 - b as i64;
        if delta != 0 {
            println!("  {node}: {b} → {a} replicas ({delta:+})");
        }
    }
    for m in plan.moves.iter().take(LISTED) {
        println!(
            "  {}: {} → {}",
            m.partition,
            names(&m.before),
            names(&m.after)
        );
    }
    if plan.moves.len() > LISTED {
        println!(
            "  … and {} more (--json lists all)",
            plan.moves.len() - LISTED
        );
    }
    println!("carry it out with: haze cluster commit [--wait]");
}

/// Prints the change under way and the queued ones, if any (part of `haze cluster status`).
pub(crate) fn print_change(status: &Status) {
    if let Some(change) = &status.progress {
        println!("{}", summary(change));
        let active: Vec<&MoveStatus> = change
            .moves
            .iter()
            .filter(|m| !matches!(m.state, MoveState::Pending | MoveState::Done))
            .collect();
        for m in active.iter().take(LISTED) {
            println!("{}", move_line(m, None));
        }
        if active.len() > LISTED {
            println!("  … and {} more (--json lists all)", active.len() - LISTED);
        }
    }
    for queued in &status.queued {
        println!("queued: {queued}");
    }
    for dropped in &status.dropped {
        println!("dropped: {dropped}");
    }
    if let Some(last) = status.outcomes.last() {
        println!("last {}", last.summary());
        if !last.done {
            for note in &last.notes {
                println!("  {note}");
            }
        }
    }
}

/// `change 2 (add n4): 3 pending, 4 streaming, … , 173 done`.
fn summary(change: &ChangeStatus) -> String {
    let parts: Vec<String> = MoveState::ALL
        .iter()
        .zip(change.counts)
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.name()))
        .collect();
    format!(
        "change {} ({}): {}",
        change.change,
        change.description,
        parts.join(", ")
    )
}

/// One move: its state, streams, and whether it is stuck; `typical` keys per partition give
/// a streaming partition a bar.
fn move_line(m: &MoveStatus, typical: Option<u64>) -> String {
    let mut line = format!("  {:>5} {:<9}", m.partition.to_string(), m.state.name());
    for s in &m.streams {
        let (keys, bytes, done, passes) = s
            .report
            .as_ref()
            .map_or((0, 0, false, 0), |r| (r.keys, r.bytes, r.done, r.passes));
        line.push_str(&format!(" {}→{}", s.stream.source, s.stream.to));
        if m.state == MoveState::Streaming {
            if let Some(typical) = typical.filter(|t| *t > 0 && !done) {
                line.push_str(&format!(" {}", bar(keys as f64 / typical as f64, 10)));
            }
            line.push_str(&format!(" {keys} keys {}", mib(bytes)));
            if passes > 1 {
                line.push_str(&format!(" (pass {passes})"));
            }
            if let Some(e) = s.report.as_ref().and_then(|r| r.error.as_ref()) {
                line.push_str(&format!(" — {e}"));
            }
        }
    }
    if m.stuck {
        line.push_str(&format!(
            "  STUCK for {:.0} s",
            m.in_state_ms as f64 / 1000.0
        ));
    }
    if let Some(note) = &m.note {
        line.push_str(&format!("  ({note})"));
    }
    line
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// Totals of a change: keys and bytes streamed, and keys per partition of finished streams.
fn totals(change: &ChangeStatus) -> (u64, u64, Option<u64>) {
    let (mut keys, mut bytes, mut finished, mut finished_keys) = (0, 0, 0u64, 0u64);
    for m in &change.moves {
        for r in m.streams.iter().filter_map(|s| s.report.as_ref()) {
            keys += r.keys;
            bytes += r.bytes;
            if r.done {
                finished += 1;
                finished_keys += r.keys;
            }
        }
    }
    (keys, bytes, finished_keys.checked_div(finished))
}

/// Follows the change under way (and the queued ones) until every one is done, drawing
/// progress: overall (partitions, keys, bytes, rate, ETA) and per streaming partition.
pub(crate) async fn wait(client: &ControllerClient, first: &Status) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    let started = tokio::time::Instant::now();
    let mut drawn = 0usize;
    let mut last_print = String::new();
    let mut rate = Rate::default();
    let mut status = first.clone();
    let mut noted: Vec<String> = Vec::new();
    loop {
        print_new_notes(&status, &mut noted);
        let Some(change) = &status.progress else {
            if status.queued.is_empty() {
                return report(first, &status);
            }
            tokio::time::sleep(POLL).await;
            status = refreshed(client).await?;
            continue;
        };
        let (keys, bytes, typical) = totals(change);
        let total = change.moves.len();
        let done = change.counts[5];
        let per_second = rate.update(started.elapsed(), bytes);
        let eta = eta(started.elapsed(), done, total);
        let mut lines = vec![
            format!(
                "{} {} {done}/{total} partitions done",
                summary(change),
                bar(done as f64 / total.max(1) as f64, 20)
            ),
            format!(
                "  streamed {keys} keys, {} · {}/s · ETA {eta}",
                mib(bytes),
                mib(per_second as u64)
            ),
        ];
        lines.extend(
            change
                .moves
                .iter()
                .filter(|m| m.state == MoveState::Streaming || m.stuck)
                .take(LISTED)
                .map(|m| move_line(m, typical)),
        );
        let text = lines.join("\n");
        if terminal {
            if drawn > 0 {
                print!("\x1b[{drawn}A\x1b[J");
            }
            println!("{text}");
            drawn = lines.len();
        } else if lines[0] != last_print {
            println!("{}", lines[..2].join("\n"));
            last_print = lines[0].clone();
        }
        std::io::stdout().flush().ok();
        tokio::time::sleep(POLL).await;
        status = refreshed(client).await?;
    }
}

/// Prints, once each, the notes of the moves under way (a receiving node or source replaced, a
/// move rolled back), with how many partitions each concerns.
fn print_new_notes(status: &Status, noted: &mut Vec<String>) {
    let Some(change) = &status.progress else {
        return;
    };
    let mut news: Vec<(&str, usize)> = Vec::new();
    for note in change.moves.iter().filter_map(|m| m.note.as_deref()) {
        if noted.iter().any(|n| n == note) {
            continue;
        }
        match news.iter_mut().find(|(n, _)| *n == note) {
            Some((_, count)) => *count += 1,
            None => news.push((note, 1)),
        }
    }
    for (note, partitions) in news {
        println!("note: {note} ({partitions} partitions)");
        noted.push(note.to_string());
    }
}

/// A change that ended without doing what was asked (`haze cluster … --wait` then exits
/// with [`NotDone::STATUS`]); what happened was printed already.
#[derive(Debug)]
pub(crate) struct NotDone(pub(crate) String);

impl NotDone {
    /// The exit status: not 1 (the request failed), so scripts can tell the two apart.
    pub(crate) const STATUS: u8 = 2;
}

impl std::fmt::Display for NotDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotDone {}

/// Once no change runs or waits: says whether the change this command committed (`first`'s
/// `committed`) did what was asked — every node to add active, every node to remove released —
/// by the members in `last`, with the controller's account of how it ended. Anything else is
/// an error ([`NotDone`]) that says what happened and what to do.
fn report(first: &Status, last: &Status) -> anyhow::Result<()> {
    let epoch = last.epoch.unwrap_or(0);
    let Some(asked) = &first.committed else {
        // A controller that does not say what it committed: the old answer.
        println!("done: epoch {epoch}");
        return Ok(());
    };
    let outcome = last
        .outcomes
        .iter()
        .rev()
        .find(|o| o.add == asked.add && o.remove == asked.remove);
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    for id in &asked.remove {
        if let Some(m) = last.members.iter().find(|m| m.id == *id) {
            problems.push(format!(
                "{id} was not released: it is {} with {} partitions",
                state_name(m.state),
                m.partitions
            ));
            hints.push(format!(
                "once every node is up (`haze cluster status` shows when each was last seen), \
                 run `haze cluster remove {id} --wait` again; until then keep {id} running: it \
                 holds data"
            ));
        }
    }
    for id in &asked.add {
        match last.members.iter().find(|m| m.id == *id) {
            Some(m) if m.state == haze_controller::MemberState::Active => {}
            found => {
                let state = found.map_or("no longer a member", |m| state_name(m.state));
                problems.push(format!("{id} was not added: it is {state}"));
                hints.push(format!(
                    "check that {id} and the nodes are running and reach the controller, then \
                     run `haze cluster add {id} --wait` again"
                ));
            }
        }
    }
    if problems.is_empty() {
        println!("done: epoch {epoch}");
        if let Some(o) = outcome
            && (o.rolled_back + o.replanned > 0 || !o.notes.is_empty())
        {
            println!(
                "  along the way: {} partitions rolled back, {} re-planned",
                o.rolled_back, o.replanned
            );
            for note in &o.notes {
                println!("  {note}");
            }
        }
        return Ok(());
    }
    match outcome {
        Some(o) if o.change > 0 => {
            println!("NOT done: {asked} (change {}, epoch {epoch})", o.change)
        }
        _ => println!("NOT done: {asked} (epoch {epoch})"),
    }
    for problem in &problems {
        println!("  {problem}");
    }
    if let Some(o) = outcome {
        let why = if o.notes.is_empty() {
            &o.problems
        } else {
            &o.notes
        };
        for reason in why {
            println!("  why: {reason}");
        }
        if o.rolled_back + o.replanned > 0 {
            println!(
                "  moves: {} partitions rolled back (they kept their replicas), {} re-planned",
                o.rolled_back, o.replanned
            );
        }
    }
    for hint in &hints {
        println!("  what to do: {hint}");
    }
    Err(NotDone(format!(
        "the change ({asked}) did not do what was asked: {}",
        problems.join("; ")
    ))
    .into())
}

fn state_name(state: haze_controller::MemberState) -> &'static str {
    match state {
        haze_controller::MemberState::Standby => "standby",
        haze_controller::MemberState::Active => "active",
        haze_controller::MemberState::Leaving => "leaving",
    }
}

/// How long `--wait` keeps asking a controller that does not answer (it may be restarting).
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

/// The controller's status, asked again while it does not answer (a restart), for a while.
async fn refreshed(client: &ControllerClient) -> anyhow::Result<Status> {
    let deadline = tokio::time::Instant::now() + UNREACHABLE_FOR;
    loop {
        match client.status().await {
            Ok(status) => return Ok(status),
            Err(haze_controller::ClientError::Unreachable { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A smoothed rate of bytes per second.
#[derive(Default)]
struct Rate {
    last: Option<(Duration, u64)>,
    per_second: f64,
}

impl Rate {
    fn update(&mut self, at: Duration, bytes: u64) -> f64 {
        if let Some((t, b)) = self.last {
            let dt = (at - t).as_secs_f64();
            if dt > 0.0 {
                let now = bytes.saturating_sub(b) as f64 / dt;
                self.per_second = 0.7 * self.per_second + 0.3 * now;
            }
        }
        self.last = Some((at, bytes));
        self.per_second
    }
}

/// The time left at the pace of the partitions done so far.
fn eta(elapsed: Duration, done: usize, total: usize) -> String {
    if done == 0 {
        return "…".into();
    }
    let left = elapsed.as_secs_f64() / done as f64 * total.saturating_sub(done) as f64;
    format!("{left:.0} s")
}
