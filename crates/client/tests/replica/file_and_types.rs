//! The replica as haze-device's core over a file: the file's bytes are those it always had,
//! and every type the core edits syncs through a node.

use haze_client::{Edit, Scalar};
use haze_crdt::encode::writer;
use haze_crdt::{EnableWinsFlag, Field, MvRegister, ValueKind};
use xxhash_rust::xxh3::xxh3_64;

use crate::harness::{replica, start_node};

#[test]
fn the_file_keeps_its_format_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut phone = replica(dir.path(), "phone.haze", 0x0102_0304_0506_0708);
    phone.counter_add("visits", 2).unwrap();
    phone.set_add("list", [Scalar::from("milk")]).unwrap();
    // HAZEREP1, saves (the open, two edits), actor, the keys in order with their encoded
    // states, and the xxh3 of all that.
    let mut expected = b"HAZEREP1".to_vec();
    expected.extend_from_slice(&3u64.to_be_bytes());
    expected.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
    writer::len(&mut expected, 2);
    for key in ["list", "visits"] {
        writer::bytes(&mut expected, key.as_bytes());
        writer::bytes(&mut expected, &phone.get(key).unwrap().encode());
    }
    let checksum = xxh3_64(&expected);
    expected.extend_from_slice(&checksum.to_be_bytes());
    let path = dir.path().join("phone.haze");
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let saves = std::fs::read(dir.path().join("phone.haze.saves")).unwrap();
    assert_eq!(saves, 3u64.to_be_bytes());
}

#[tokio::test]
async fn every_type_the_core_edits_syncs_through_a_node() {
    let node = start_node().await;
    let client = node.client().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut phone, mut laptop) = (
        replica(dir.path(), "phone", 1),
        replica(dir.path(), "laptop", 2),
    );
    let edits = [
        ("g", Edit::GCounterAdd(3)),
        ("v", Edit::MvRegisterSet(Scalar::UInt(1))),
        ("f", Edit::FlagEnable),
        ("x", Edit::MaxSet(Scalar::UInt(9))),
        ("n", Edit::MinSet(Scalar::UInt(2))),
        ("s", Edit::SetClear),
        (
            "m",
            Edit::map_update("todo", Edit::map_update("done", Edit::FlagEnable)),
        ),
    ];
    for (key, edit) in edits {
        phone.apply(key, edit).unwrap();
    }
    laptop
        .apply("v", Edit::MvRegisterSet(Scalar::UInt(2)))
        .unwrap();
    laptop
        .apply(
            "m",
            Edit::map_update("title", Edit::RegisterSet("milk".into())),
        )
        .unwrap();
    for _ in 0..2 {
        phone.sync(&client).await.unwrap();
        for key in ["g", "v", "f", "x", "n", "s", "m"] {
            laptop.fetch(&client, key).await.unwrap();
        }
        laptop.sync(&client).await.unwrap();
        for key in ["v", "m"] {
            phone.fetch(&client, key).await.unwrap();
        }
    }
    for key in ["g", "v", "f", "x", "n", "s", "m"] {
        assert_eq!(phone.get(key), laptop.get(key), "{key}");
        assert_eq!(
            phone.get(key).cloned(),
            client.get(key).await.unwrap(),
            "{key}"
        );
    }
    let v: MvRegister<Scalar> = phone.get_typed("v").unwrap().unwrap();
    assert_eq!(v.values().count(), 2, "concurrent writes are both kept");
    let flag: EnableWinsFlag = laptop.get_typed("f").unwrap().unwrap();
    assert!(flag.is_enabled());
    let haze_crdt::Value::OrMap(map) = laptop.get("m").unwrap() else {
        panic!("a map")
    };
    assert!(map.get(&Field::new("todo", ValueKind::OrMap)).is_some());
    assert!(
        map.get(&Field::new("title", ValueKind::LwwRegister))
            .is_some()
    );
    assert!(phone.last_sync().is_some());
}
