//! The generic law checker: scripts of operations and merges over several replicas, and the
//! laws every reachable state must satisfy.

use std::fmt::Debug;
use std::marker::PhantomData;

use haze_crdt::{ActorId, Crdt, Hlc, ManualClock, TypedValue, Value};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError};

/// A type under test: how to make random operations and apply them as a replica would.
pub trait Subject: Crdt + Clone + Debug + PartialEq + 'static {
    /// One operation (its arguments; the actor comes from the replica).
    type Op: Clone + Debug + 'static;

    /// The bottom of the lattice: a new replica's state.
    fn bottom() -> Self;

    /// Random operations.
    fn op() -> BoxedStrategy<Self::Op>;

    /// Applies `op` on behalf of the replica owning `env`. Operations that fail (a counter
    /// overflow) must leave the state unchanged.
    fn apply(&mut self, env: &mut Env, op: &Self::Op);

    /// The state as a `Value`, for types that convert to one.
    fn to_value(&self) -> Option<Value> {
        None
    }

    /// The typed state back from a `Value`.
    fn from_value(_value: Value) -> Option<Self> {
        None
    }
}

/// What a replica owns besides its state: its actor id and its clocks.
#[derive(Debug)]
pub struct Env {
    pub actor: ActorId,
    pub hlc: Hlc,
    pub clock: ManualClock,
}

impl Env {
    pub fn new(replica: usize) -> Self {
        // Distinct, irregular ids: never reused (see ActorId's docs on kv679).
        Env {
            actor: ActorId::new(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(replica as u64 + 1)),
            hlc: Hlc::new(),
            clock: ManualClock::new(1_000),
        }
    }
}

/// One step of a script.
#[derive(Debug, Clone)]
pub enum Step<O> {
    /// A replica applies an operation.
    Apply { replica: usize, op: O },
    /// A replica merges another's current state.
    Sync { from: usize, to: usize },
}

/// A script: operations and merges over `replicas` replicas.
#[derive(Debug, Clone)]
pub struct Script<O> {
    pub replicas: usize,
    pub steps: Vec<Step<O>>,
}

pub fn config() -> Config {
    let cases = std::env::var("HAZE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    Config {
        cases,
        max_shrink_iters: 4_096,
        ..Config::default()
    }
}

fn steps<S: Subject>(max_steps: usize) -> impl Strategy<Value = Vec<Step<S::Op>>> {
    let step = prop_oneof![
        3 => (any::<usize>(), S::op()).prop_map(|(replica, op)| Step::Apply { replica, op }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(from, to)| Step::Sync { from, to }),
    ];
    proptest::collection::vec(step, 0..max_steps)
}

/// Scripts over exactly `replicas` replicas.
pub fn script<S: Subject>(
    replicas: usize,
    max_steps: usize,
) -> impl Strategy<Value = Script<S::Op>> {
    steps::<S>(max_steps).prop_map(move |steps| Script { replicas, steps })
}

/// Runs a script; returns every replica's final state and every state any replica held.
pub fn run<S: Subject>(script: &Script<S::Op>) -> (Vec<S>, Vec<S>) {
    let n = script.replicas;
    let mut envs: Vec<Env> = (0..n).map(Env::new).collect();
    let mut states: Vec<S> = (0..n).map(|_| S::bottom()).collect();
    let mut history = states.clone();
    for step in &script.steps {
        match step {
            Step::Apply { replica, op } => {
                let i = replica % n;
                states[i].apply(&mut envs[i], op);
                history.push(states[i].clone());
            }
            Step::Sync { from, to } => {
                let (from, to) = (from % n, to % n);
                let message = states[from].clone();
                states[to].merge_from(message);
                history.push(states[to].clone());
            }
        }
    }
    (states, history)
}

fn leq<S: Subject>(a: &S, b: &S) -> bool {
    a.clone().merge(b.clone()) == *b
}

/// Idempotence, commutativity, associativity, bottom as identity, inflation, and that every
/// operation inflates, over three states picked from one script's history.
pub fn check_laws<S: Subject>(
    script: &Script<S::Op>,
    picks: [Index; 3],
) -> Result<(), TestCaseError> {
    let (_, history) = run::<S>(script);
    let [a, b, c] = picks.map(|p| history[p.index(history.len())].clone());

    prop_assert_eq!(a.clone().merge(a.clone()), a.clone(), "idempotence");
    let ab = a.clone().merge(b.clone());
    prop_assert_eq!(&ab, &b.clone().merge(a.clone()), "commutativity");
    prop_assert_eq!(
        ab.clone().merge(c.clone()),
        a.clone().merge(b.clone().merge(c.clone())),
        "associativity"
    );
    prop_assert_eq!(
        S::bottom().merge(a.clone()),
        a.clone(),
        "bottom is the identity"
    );
    prop_assert!(
        leq(&a, &ab) && leq(&b, &ab),
        "a merge is an upper bound of both sides"
    );

    // Every operation only moves a state up: the old state merged in changes nothing.
    for step in &script.steps {
        if let Step::Apply { op, .. } = step {
            let mut updated = a.clone();
            updated.apply(&mut Env::new(0), op);
            prop_assert!(leq(&a, &updated), "operation {:?} did not inflate", op);
        }
    }
    Ok(())
}

/// A convergence case: a script over 2 to 8 replicas and a delivery schedule.
#[derive(Debug, Clone)]
pub struct ConvergenceCase<O> {
    script: Script<O>,
    /// Every (from, to) pair in a random order, then random duplicates.
    deliveries: Vec<(usize, usize)>,
    /// Stale states from the history re-delivered along the way: (history pick, to).
    stale: Vec<(Index, usize)>,
}

pub fn convergence_case<S: Subject>() -> impl Strategy<Value = ConvergenceCase<S::Op>> {
    (2usize..=8).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (0..n).map(move |j| (i, j))).collect();
        (
            steps::<S>(40),
            Just(pairs).prop_shuffle(),
            proptest::collection::vec((0..n, 0..n), 0..8),
            proptest::collection::vec((any::<Index>(), 0..n), 0..8),
        )
            .prop_map(move |(steps, mut deliveries, dups, stale)| {
                deliveries.extend(dups);
                ConvergenceCase {
                    script: Script { replicas: n, steps },
                    deliveries,
                    stale,
                }
            })
    })
}

/// After every replica has received every other's final state (in any order, with duplicates
/// and stale re-deliveries), all replicas are equal, and equal to the join of all final states.
pub fn check_convergence<S: Subject>(case: ConvergenceCase<S::Op>) -> Result<(), TestCaseError> {
    let (finals, history) = run::<S>(&case.script);
    let mut replicas = finals.clone();
    for (k, &(from, to)) in case.deliveries.iter().enumerate() {
        replicas[to].merge_from(finals[from].clone());
        if let Some(&(pick, stale_to)) = case.stale.get(k) {
            replicas[stale_to].merge_from(history[pick.index(history.len())].clone());
        }
    }
    let reference = finals.into_iter().fold(S::bottom(), S::merge);
    for (i, replica) in replicas.iter().enumerate() {
        prop_assert_eq!(replica, &reference, "replica {} diverged", i);
    }
    Ok(())
}

// Encodings: the checks `main.rs`'s `encoding_test!` names, by each subject's declaration (its
// doc comment says why a type gets which).

/// Which encodings a type implements, found where the type is concrete ([`encodings!`]).
#[derive(Debug, Clone, Copy)]
pub struct Encodings {
    /// `TypedValue`: converts to and from a `Value`.
    pub typed_value: bool,
    /// `serde::Serialize` and `serde::de::DeserializeOwned`.
    pub serde: bool,
}

/// Asks whether `T` implements a trait: the method of `Has*` (on `Probe<T>`) applies when `T`
/// meets its bound, else method resolution falls back to `Lacks*` (on `&Probe<T>`). Only
/// answers for a concrete `T`, so it is called through [`encodings!`] in `main.rs`'s macro.
#[derive(Debug)]
pub struct Probe<T>(pub PhantomData<T>);

// Which trait of each pair is picked depends on the subjects probed: `HasTypedValue` only for a
// subject that converts to a `Value` but is declared otherwise, a failing test.
#[allow(dead_code)]
pub trait HasTypedValue {
    fn typed_value(&self) -> bool {
        true
    }
}
impl<T: TypedValue> HasTypedValue for Probe<T> {}

#[allow(dead_code)]
pub trait LacksTypedValue {
    fn typed_value(&self) -> bool {
        false
    }
}
impl<T> LacksTypedValue for &Probe<T> {}

#[allow(dead_code)]
pub trait HasSerde {
    fn serde(&self) -> bool {
        true
    }
}
impl<T: serde::Serialize + serde::de::DeserializeOwned> HasSerde for Probe<T> {}

#[allow(dead_code)]
pub trait LacksSerde {
    fn serde(&self) -> bool {
        false
    }
}
impl<T> LacksSerde for &Probe<T> {}

/// The [`Encodings`] of a concrete type.
macro_rules! encodings {
    ($ty:ty) => {{
        #[allow(unused_imports)] // of each pair, the type's bounds pick one
        use $crate::checker::{HasSerde, HasTypedValue, LacksSerde, LacksTypedValue, Probe};
        let probe = &Probe::<$ty>(std::marker::PhantomData);
        $crate::checker::Encodings {
            typed_value: probe.typed_value(),
            serde: probe.serde(),
        }
    }};
}
pub(crate) use encodings;

/// For every state of a script: the `Value` round-trips through the binary encoding and JSON,
/// converts back to the same typed state, and equal states built in different orders encode to
/// the same bytes.
pub fn check_encoding<S: Subject>(script: &Script<S::Op>) -> Result<(), TestCaseError> {
    prop_assert!(
        S::bottom().to_value().is_some(),
        "declared `value`, but `to_value` gives no Value"
    );
    let (finals, history) = run::<S>(script);
    for state in history.iter().chain(&finals) {
        let value = state.to_value().expect("checked above");
        let bytes = value.encode();
        let decoded = Value::decode(&bytes)
            .map_err(|e| TestCaseError::fail(format!("decode failed: {e}")))?;
        prop_assert_eq!(&decoded, &value);
        let typed = S::from_value(decoded);
        prop_assert_eq!(typed.as_ref(), Some(state), "typed round trip");
        let json = serde_json::to_string(&value).expect("a value serialises");
        let from_json: Value =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(from_json, value);
    }
    let forward = finals.iter().cloned().fold(S::bottom(), S::merge);
    let backward = finals.iter().rev().cloned().fold(S::bottom(), S::merge);
    let (f, b) = (
        forward.to_value().expect("checked"),
        backward.to_value().expect("checked"),
    );
    prop_assert_eq!(f.encode(), b.encode(), "equal states encode to equal bytes");
    Ok(())
}

/// Whether equal states serialise to equal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// They do: check it.
    Canonical,
    /// They need not (a hash collection's order is its hasher's): check only the round trip.
    Unordered,
}

/// For a type with no `Value` but serde: every state of a script round-trips through JSON and,
/// if `order` is canonical, serialises again to the same JSON, and equal states built in
/// different orders serialise to the same JSON.
pub fn check_json<S>(
    script: &Script<S::Op>,
    order: Order,
    found: Encodings,
) -> Result<(), TestCaseError>
where
    S: Subject + serde::Serialize + serde::de::DeserializeOwned,
{
    prop_assert!(
        !found.typed_value && S::bottom().to_value().is_none(),
        "declared JSON, but the type has a Value: declare it `value`"
    );
    let (finals, history) = run::<S>(script);
    let json = |state: &S| serde_json::to_string(state).expect("a std collection serialises");
    for state in history.iter().chain(&finals) {
        let text = json(state);
        let back: S =
            serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(&back, state, "JSON round trip of {}", text);
        if order == Order::Canonical {
            prop_assert_eq!(json(&back), text, "a state read back serialises alike");
        }
    }
    if order == Order::Canonical {
        let forward = finals.iter().cloned().fold(S::bottom(), S::merge);
        let backward = finals.iter().rev().cloned().fold(S::bottom(), S::merge);
        prop_assert_eq!(
            json(&forward),
            json(&backward),
            "equal states serialise to equal JSON"
        );
    }
    Ok(())
}

/// For a type declared to have no encoding: it has none (no `Value`, no `TypedValue`, no serde).
pub fn check_no_encoding<S: Subject>(found: Encodings) {
    assert!(
        !found.typed_value && !found.serde && S::bottom().to_value().is_none(),
        "declared `none`, but the type has an encoding ({found:?}, a Value: {}): declare it",
        S::bottom().to_value().is_some()
    );
}
