//! Property tests of the CRDT laws, for every type, through one generic checker.
//!
//! Cases per property: 1,000 by default; set `HAZE_PROPTEST_CASES` for more (say 100000 for a
//! soak). Failing cases are persisted under `proptest-regressions/` and replayed first.

#![allow(unreachable_pub)] // items are shared between the modules of this one test binary
#![allow(clippy::disallowed_types)] // the std hash collections are subjects of the laws too

mod checker;
mod decode;
mod growth;
mod semantics;
mod subjects;

use proptest::prelude::*;

/// Instantiates the generic law checks for each subject type, and the encoding test its
/// declaration names (`value`, `json`, `unordered_json` or `none`: see `checker.rs`).
macro_rules! laws_for {
    ($($module:ident => $subject:ty [$encoding:ident]),* $(,)?) => {$(
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(checker::config())]

                #[test]
                fn merge_is_idempotent_commutative_associative_and_inflationary(
                    script in checker::script::<$subject>(3, 30),
                    picks in proptest::array::uniform3(any::<proptest::sample::Index>()),
                ) {
                    checker::check_laws::<$subject>(&script, picks)?;
                }

                #[test]
                fn replicas_converge_under_any_delivery_order(case in checker::convergence_case::<$subject>()) {
                    checker::check_convergence::<$subject>(case)?;
                }
            }

            encoding_test!($encoding, $subject);
        }
    )*};
}

/// The encoding test of one subject, named for what it checks. Each subject's line declares
/// which, so that no subject's encoding test passes by checking nothing:
///
/// * `value`: the haze types (and `MapValue`) convert to a `Value`, the one encoding a node
///   stores: `encoding_round_trips_and_is_canonical` (`checker::check_encoding`).
/// * `json`: no `Value` (`Crdt` for std types is a convenience for application types; there is
///   no `ValueKind` for a grow-only set), but serde, what an application would persist them
///   with: `json_round_trips_and_is_canonical` (`checker::check_json`).
/// * `unordered_json`: as `json`, for `HashSet`, whose JSON lists elements in its hasher's random
///   order (why `haze-crdt` bans it in replicated state): equal states need not give equal
///   bytes, so `json_round_trips_in_no_canonical_order` checks the round trip only.
/// * `none`: no `Value` and no serde (maps of `Max<u8>`, an `Option<Min<u8>>`: `u8` is no `Leaf`
///   and the extremum registers do not implement serde), so nothing to encode with:
///   `has_no_encoding_to_check` (`checker::check_no_encoding`) checks that this is still true.
///
/// Each declaration is checked against the type: a `value` subject must give a `Value`; a
/// `json`, `unordered_json` or `none` one must not (nor implement `TypedValue`); a `none` one must
/// not implement serde either. A type that gains an encoding then fails until its declaration
/// names it.
macro_rules! encoding_test {
    (value, $subject:ty) => {
        proptest! {
            #![proptest_config(checker::config())]

            #[test]
            fn encoding_round_trips_and_is_canonical(script in checker::script::<$subject>(3, 30)) {
                checker::check_encoding::<$subject>(&script)?;
            }
        }
    };
    (json, $subject:ty) => {
        proptest! {
            #![proptest_config(checker::config())]

            #[test]
            fn json_round_trips_and_is_canonical(script in checker::script::<$subject>(3, 30)) {
                let found = checker::encodings!($subject);
                checker::check_json::<$subject>(&script, checker::Order::Canonical, found)?;
            }
        }
    };
    (unordered_json, $subject:ty) => {
        proptest! {
            #![proptest_config(checker::config())]

            #[test]
            fn json_round_trips_in_no_canonical_order(script in checker::script::<$subject>(3, 30)) {
                let found = checker::encodings!($subject);
                checker::check_json::<$subject>(&script, checker::Order::Unordered, found)?;
            }
        }
    };
    (none, $subject:ty) => {
        #[test]
        fn has_no_encoding_to_check() {
            checker::check_no_encoding::<$subject>(checker::encodings!($subject));
        }
    };
}

laws_for!(
    g_counter => haze_crdt::GCounter [value],
    pn_counter => haze_crdt::PnCounter [value],
    lww_register => haze_crdt::LwwRegister<haze_crdt::Scalar> [value],
    mv_register => haze_crdt::MvRegister<haze_crdt::Scalar> [value],
    or_set => haze_crdt::OrSet<haze_crdt::Scalar> [value],
    or_map => haze_crdt::OrMap<u64, haze_crdt::OrSet<String>> [value],
    enable_wins_flag => haze_crdt::EnableWinsFlag [value],
    max => haze_crdt::Max<u64> [value],
    min => haze_crdt::Min<i64> [value],
    value_map => crate::subjects::MapValue [value],
    btree_set => std::collections::BTreeSet<u8> [json],
    hash_set => std::collections::HashSet<u8> [unordered_json],
    btree_map => std::collections::BTreeMap<u8, haze_crdt::Max<u8>> [none],
    hash_map => std::collections::HashMap<u8, haze_crdt::Max<u8>> [none],
    option => Option<haze_crdt::Min<u8>> [none],
);
