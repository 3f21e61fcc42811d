//! The controller's `/metrics`: what a change is doing, for dashboards and alerts.

use std::fmt::Write as _;

use haze_ring::MoveState;

use crate::MemberState;
use crate::api::Status;

/// Renders `status` in the Prometheus text format.
pub(crate) fn render(status: &Status) -> String {
    let mut out = String::new();
    let gauge = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge(
        &mut out,
        "haze_controller_epoch",
        "The partition table's epoch.",
    );
    let _ = writeln!(out, "haze_controller_epoch {}", status.epoch.unwrap_or(0));
    gauge(
        &mut out,
        "haze_controller_members",
        "Registered nodes, by state.",
    );
    for (state, name) in [
        (MemberState::Standby, "standby"),
        (MemberState::Active, "active"),
        (MemberState::Leaving, "leaving"),
    ] {
        let n = status.members.iter().filter(|m| m.state == state).count();
        let _ = writeln!(out, "haze_controller_members{{state=\"{name}\"}} {n}");
    }
    gauge(
        &mut out,
        "haze_controller_moves",
        "Partitions of the change under way, by state.",
    );
    let counts = status.progress.as_ref().map_or([0; 6], |p| p.counts);
    for (state, n) in MoveState::ALL.iter().zip(counts) {
        let _ = writeln!(
            out,
            "haze_controller_moves{{state=\"{}\"}} {n}",
            state.name()
        );
    }
    let moves = status.progress.iter().flat_map(|p| &p.moves);
    let stuck = moves.clone().filter(|m| m.stuck).count();
    gauge(
        &mut out,
        "haze_controller_moves_stuck",
        "Moves in one state longer than --stuck-after-secs.",
    );
    let _ = writeln!(out, "haze_controller_moves_stuck {stuck}");
    let reports = moves
        .flat_map(|m| &m.streams)
        .filter_map(|s| s.report.as_ref());
    let (keys, bytes) = reports.fold((0, 0), |(k, b), r| (k + r.keys, b + r.bytes));
    gauge(
        &mut out,
        "haze_controller_streamed_keys",
        "Keys streamed in the change under way (current passes).",
    );
    let _ = writeln!(out, "haze_controller_streamed_keys {keys}");
    gauge(
        &mut out,
        "haze_controller_streamed_bytes",
        "Bytes streamed in the change under way (current passes).",
    );
    let _ = writeln!(out, "haze_controller_streamed_bytes {bytes}");
    gauge(
        &mut out,
        "haze_controller_changes_queued",
        "Changes committed after the one under way.",
    );
    let _ = writeln!(
        out,
        "haze_controller_changes_queued {}",
        status.queued.len()
    );
    out
}
