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

/// Instantiates the generic law checks for one subject type.
macro_rules! laws_for {
    ($($module:ident => $subject:ty),* $(,)?) => {$(
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

                #[test]
                fn encoding_round_trips_and_is_canonical(script in checker::script::<$subject>(3, 30)) {
                    checker::check_encoding::<$subject>(&script)?;
                }
            }
        }
    )*};
}

laws_for!(
    g_counter => haze_crdt::GCounter,
    pn_counter => haze_crdt::PnCounter,
    lww_register => haze_crdt::LwwRegister<haze_crdt::Scalar>,
    mv_register => haze_crdt::MvRegister<haze_crdt::Scalar>,
    or_set => haze_crdt::OrSet<haze_crdt::Scalar>,
    or_map => haze_crdt::OrMap<u64, haze_crdt::OrSet<String>>,
    enable_wins_flag => haze_crdt::EnableWinsFlag,
    max => haze_crdt::Max<u64>,
    min => haze_crdt::Min<i64>,
    value_map => crate::subjects::MapValue,
    btree_set => std::collections::BTreeSet<u8>,
    hash_set => std::collections::HashSet<u8>,
    btree_map => std::collections::BTreeMap<u8, haze_crdt::Max<u8>>,
    option => Option<haze_crdt::Min<u8>>,
);
