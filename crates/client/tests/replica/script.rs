//! The property test's script: steps on 2–4 replicas and the node, and their strategies.

use proptest::prelude::*;

use crate::cut::Cut;

/// The keys edited, two of each type (their first letter says which).
pub const KEYS: [&str; 6] = ["c0", "c1", "s0", "s1", "r0", "r1"];
/// The counters a bulk edit adds to: more than a merge request holds (256), so that a sync
/// sends two and can be cut between them (and never three: see `TestNode::settle`).
pub const BULK_KEYS: usize = 270;

#[derive(Debug, Clone)]
pub enum Step {
    /// Replica `who` edits offline.
    Edit { who: usize, edit: Edit },
    /// The node applies an edit itself (another client, online).
    Online { edit: Edit },
    /// Replica `who` syncs every key it holds; with a cut, over a connection cut there.
    Sync { who: usize, cut: Option<Cut> },
    /// Replica `who` fetches a key by name.
    Fetch { who: usize, key: String },
    /// Replica `to` merges replica `from`'s state of a key (device to device).
    Share {
        from: usize,
        to: usize,
        key: &'static str,
    },
    /// Replica `who`'s wall clock jumps, backwards too.
    Clock { who: usize, millis: u64 },
    /// Replica `who` adds 1 to each of the bulk counters.
    Bulk { who: usize },
}

#[derive(Debug, Clone)]
pub enum Edit {
    Count { key: usize, delta: i64 },
    Add { key: usize, member: u64 },
    Remove { key: usize, member: u64 },
    Write { key: usize, value: u64 },
}

impl Edit {
    pub fn key(&self) -> &'static str {
        match self {
            Edit::Count { key, .. } => KEYS[*key],
            Edit::Add { key, .. } | Edit::Remove { key, .. } => KEYS[2 + key],
            Edit::Write { key, .. } => KEYS[4 + key],
        }
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0..2usize, -3i64..4).prop_map(|(key, delta)| Edit::Count { key, delta }),
        (0..2usize, 0u64..4).prop_map(|(key, member)| Edit::Add { key, member }),
        (0..2usize, 0u64..4).prop_map(|(key, member)| Edit::Remove { key, member }),
        (0..2usize, 0u64..3).prop_map(|(key, value)| Edit::Write { key, value }),
    ]
}

/// A cut anywhere in a sync's exchange. Requests: the hello, the digest request by list id,
/// the same with the keys (if the node did not know the list), the merge requests. Answers:
/// the hello, the digests (or "unknown list", then the digests), the merge answers. Offsets
/// are spread over sizes from a header to a merge request of hundreds of states; past the
/// end of a frame, the cut falls just after it (say, after the node merged, before the answer).
fn cut() -> impl Strategy<Value = Cut> {
    // Most cuts fall where merges are under way (frames 2 to 4).
    let frame = prop_oneof![1 => 0u32..2, 2 => 2u32..5];
    (any::<bool>(), frame, 0u32..15, any::<u64>()).prop_map(|(answers, frame, bits, r)| Cut {
        answers,
        frame,
        offset: r % (1 << bits),
    })
}

/// A step on `replicas` replicas.
pub fn step(replicas: usize) -> impl Strategy<Value = Step> {
    let who = 0..replicas;
    let key = (0..KEYS.len()).prop_map(|k| KEYS[k]);
    prop_oneof![
        8 => (who.clone(), edit()).prop_map(|(who, edit)| Step::Edit { who, edit }),
        2 => edit().prop_map(|edit| Step::Online { edit }),
        2 => who.clone().prop_map(|who| Step::Sync { who, cut: None }),
        3 => (who.clone(), cut()).prop_map(|(who, cut)| Step::Sync { who, cut: Some(cut) }),
        1 => (who.clone(), key.clone())
            .prop_map(|(who, key)| Step::Fetch { who, key: key.into() }),
        1 => (who.clone(), who.clone(), key)
            .prop_map(|(from, to, key)| Step::Share { from, to, key }),
        1 => (who.clone(), 0u64..10_000).prop_map(|(who, millis)| Step::Clock { who, millis }),
        1 => who.prop_map(|who| Step::Bulk { who }),
    ]
}

pub fn bulk_key(i: usize) -> String {
    format!("f{i:03}")
}
