//! The controller's request bodies, as its HTTP API takes them: each line of the input is one
//! request (its first byte picks the endpoint, the rest is the JSON body), applied in order to
//! a cluster of 4 registered nodes, 3 of them active, with the state moved along after each
//! (time passes, so nodes that do not report are taken for down). Nothing panics, and after
//! every request the state is one the controller would load again from its file; the status
//! it answers reads back the same.
#![no_main]

use haze_controller::api::{
    AddRequest, CreateTokenRequest, PlanRequest, RegisterRequest, SeenRequest, Status,
};
use haze_controller::{Change, ClusterId, ControllerState, MoveLimits, Tracker};
use libfuzzer_sys::fuzz_target;

fn cluster() -> ControllerState {
    let mut state = ControllerState::new(ClusterId(7), 16, 3).expect("a cluster");
    for port in 7701..=7704 {
        state
            .register(&format!("127.0.0.1:{port}"))
            .expect("registers");
    }
    let first: Vec<String> = ["n1", "n2", "n3"].map(String::from).to_vec();
    state.add(&first).expect("the first table");
    state
}

fuzz_target!(|bytes: &[u8]| {
    let mut state = cluster();
    let mut tracker = Tracker::default();
    let limits = MoveLimits {
        dead_after_ms: 1_000,
        grace_ms: 2_000,
        ..MoveLimits::default()
    };
    let mut now = 0u64;
    for line in bytes.split(|&b| b == b'\n').take(16) {
        let Some((&kind, body)) = line.split_first() else {
            continue;
        };
        match kind % 7 {
            0 => {
                if let Ok(r) = serde_json::from_slice::<RegisterRequest>(body) {
                    let _ = state.register(&r.addr);
                }
            }
            k @ (1 | 2) => {
                if let Ok(r) = serde_json::from_slice::<AddRequest>(body)
                    && let Ok(ids) = state.resolve_all(&r.nodes)
                {
                    let change = if k == 1 {
                        Change {
                            add: ids,
                            remove: Vec::new(),
                        }
                    } else {
                        Change {
                            add: Vec::new(),
                            remove: ids,
                        }
                    };
                    let _ = state.carry_out(change, limits.rate);
                }
            }
            3 => {
                if let Ok(r) = serde_json::from_slice::<PlanRequest>(body)
                    && let (Ok(add), Ok(remove)) =
                        (state.resolve_all(&r.add), state.resolve_all(&r.remove))
                {
                    let _ = state.propose(Change { add, remove });
                }
            }
            4 => {
                let _ = state.commit(limits.rate);
            }
            5 => {
                if let Ok(r) = serde_json::from_slice::<SeenRequest>(body)
                    && state.members().contains_key(&r.node)
                {
                    let change = state.transition().map(|t| t.change);
                    tracker.record(&r, change, now);
                }
            }
            _ => {
                let _ = serde_json::from_slice::<CreateTokenRequest>(body);
            }
        }
        now += 700;
        state
            .advance(&mut tracker, now, &limits)
            .expect("a table can be derived");
        state.check().expect("the state stays consistent");
    }
    // What the API answers, as a node or the CLI reads it back.
    let status = Status::of(&state).with_progress(&tracker, now, &limits);
    let json = serde_json::to_vec(&status).expect("a status serialises");
    assert_eq!(
        serde_json::from_slice::<Status>(&json).ok().as_ref(),
        Some(&status)
    );
});
