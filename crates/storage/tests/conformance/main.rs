//! One suite for every `Store` implementation, a model test, and the group committer.

#![allow(unreachable_pub)]
#![allow(clippy::print_stdout)] // the fault tests print what they injected and what held

mod committer;
mod corruption;
mod format;
mod full_disk;
mod log_bytes;
mod log_format;
mod model;
mod recovery;
mod suite;

use haze_storage::{DiskStore, MemStore, StoreConfig};

/// Runs every conformance check against a store made by `make`.
macro_rules! conformance {
    ($($name:ident => $make:expr),* $(,)?) => {$(
        mod $name {
            use super::*;

            fn make(config: StoreConfig) -> (Box<dyn haze_storage::Store>, Option<tempfile::TempDir>) {
                #[allow(clippy::redundant_closure_call)]
                ($make)(config)
            }

            #[test]
            fn absent_keys_read_as_none() { suite::absent_keys_read_as_none(make) }
            #[test]
            fn a_merge_creates_then_merges() { suite::a_merge_creates_then_merges(make) }
            #[test]
            fn a_type_mismatch_is_refused_and_changes_nothing() { suite::a_type_mismatch_is_refused_and_changes_nothing(make) }
            #[test]
            fn oversized_values_and_keys_are_refused_and_change_nothing() { suite::oversized_values_and_keys_are_refused_and_change_nothing(make) }
            #[test]
            fn updates_apply_in_batch_order() { suite::updates_apply_in_batch_order(make) }
            #[test]
            fn digests_track_every_write() { suite::digests_track_every_write(make) }
            #[test]
            fn bucket_keys_list_each_key_once() { suite::bucket_keys_list_each_key_once(make) }
            #[test]
            fn delete_buckets_drops_exactly_their_keys() { suite::delete_buckets_drops_exactly_their_keys(make) }
            #[test]
            fn keys_are_counted_once_wherever_they_are() { suite::keys_are_counted_once_wherever_they_are(make) }
        }
    )*};
}

conformance!(
    mem_store => |config| (Box::new(MemStore::new(config)) as Box<dyn haze_storage::Store>, None),
    disk_store => |config| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = DiskStore::open(dir.path(), config).expect("the store opens");
        (Box::new(store) as Box<dyn haze_storage::Store>, Some(dir))
    },
);
