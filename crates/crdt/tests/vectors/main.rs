//! Golden byte vectors: one committed encoding (and JSON view) per value type, so that an
//! accidental format change fails here instead of corrupting stored data.
//!
//! After a deliberate format change (a new format version, see docs/storage-format.md), rewrite
//! the files with `HAZE_BLESS_VECTORS=1 cargo test -p haze-crdt --test vectors` and commit them.

use std::path::PathBuf;

use haze_crdt::{
    ActorId, EnableWinsFlag, Field, GCounter, Hlc, LwwRegister, ManualClock, Max, Min, MvRegister,
    OrSet, PnCounter, Scalar, Value, ValueKind, ValueMap,
};

const PHONE: ActorId = ActorId::new(0x9f1c_0000_0000_0001);
const LAPTOP: ActorId = ActorId::new(0x4ab2_0000_0000_0002);

fn or_set() -> OrSet<String> {
    let mut list = OrSet::new();
    list.insert(PHONE, "milk".to_string());
    list.insert(PHONE, "eggs".to_string());
    let mut on_laptop = list.clone();
    on_laptop.insert(LAPTOP, "bread".to_string());
    on_laptop.insert(LAPTOP, "milk".to_string()); // concurrent re-add: milk gets two dots
    list.insert(PHONE, "milk".to_string());
    list.remove(&"eggs".to_string());
    haze_crdt::Crdt::merge(list, on_laptop)
}

/// One state of every type, built by operations, never by hand.
fn golden() -> Vec<(&'static str, Value)> {
    let clock = ManualClock::new(1_764_133_200_000);
    let mut hlc = Hlc::new();

    let mut g = GCounter::new();
    g.increment(PHONE, 3).unwrap();
    g.increment(LAPTOP, 300).unwrap();

    let mut pn = PnCounter::new();
    pn.increment(PHONE, 10).unwrap();
    pn.decrement(LAPTOP, 4).unwrap();

    let mut lww = LwwRegister::new();
    lww.set(PHONE, Scalar::from("Groceries"), &mut hlc, &clock);
    lww.set(LAPTOP, Scalar::from("Groceries (Sat)"), &mut hlc, &clock);

    let mut mv_phone = MvRegister::new();
    mv_phone.set(PHONE, Scalar::Int(-7));
    let mut mv_laptop = MvRegister::new();
    mv_laptop.set(LAPTOP, Scalar::Bytes(vec![0xca, 0xfe]));
    let mv = haze_crdt::Crdt::merge(mv_phone, mv_laptop);

    let mut flag = EnableWinsFlag::new();
    flag.enable(PHONE);

    let mut map = ValueMap::new();
    map.update(
        PHONE,
        Field::new("visits", ValueKind::GCounter),
        |v| match v {
            Value::GCounter(c) => c.increment(PHONE, 2),
            _ => unreachable!(),
        },
    )
    .unwrap();
    map.update(LAPTOP, Field::new("list", ValueKind::OrSet), |v| {
        *v = Value::from(or_set());
        Ok::<(), haze_crdt::Error>(())
    })
    .unwrap();
    map.update(LAPTOP, Field::new(Scalar::UInt(7), ValueKind::Max), |v| {
        *v = Value::from(Max::of(42u64));
        Ok::<(), haze_crdt::Error>(())
    })
    .unwrap();

    vec![
        ("g_counter", Value::from(g)),
        ("pn_counter", Value::from(pn)),
        ("lww_register", Value::LwwRegister(lww)),
        ("mv_register", Value::MvRegister(mv)),
        ("or_set", Value::from(or_set())),
        ("or_map", Value::OrMap(map)),
        ("flag", Value::from(flag)),
        ("max", Value::from(Max::of(u64::MAX))),
        ("min", Value::from(Min::of(i64::MIN))),
        ("empty_or_set", Value::bottom(ValueKind::OrSet)),
        ("empty_lww_register", Value::bottom(ValueKind::LwwRegister)),
    ]
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.chunks(32) {
        for b in line {
            out.push_str(&format!("{b:02x}"));
        }
        out.push('\n');
    }
    out
}

fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn golden_vectors_are_unchanged() {
    let bless = std::env::var_os("HAZE_BLESS_VECTORS").is_some();
    for (name, value) in golden() {
        let bytes = value.encode();
        let json = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let (hex_path, json_path) = (
            dir().join(format!("{name}.hex")),
            dir().join(format!("{name}.json")),
        );
        if bless {
            std::fs::write(&hex_path, hex(&bytes)).unwrap();
            std::fs::write(&json_path, &json).unwrap();
        }
        let golden_hex = std::fs::read_to_string(&hex_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (bless with HAZE_BLESS_VECTORS=1)",
                hex_path.display()
            )
        });
        let golden_bytes = unhex(&golden_hex);
        assert_eq!(
            hex(&bytes),
            hex(&golden_bytes),
            "{name}: the encoding changed"
        );
        assert_eq!(
            Value::decode(&golden_bytes).unwrap(),
            value,
            "{name}: the golden bytes decode to the state"
        );
        let golden_json = std::fs::read_to_string(&json_path).unwrap();
        assert_eq!(json, golden_json, "{name}: the JSON view changed");
        assert_eq!(
            serde_json::from_str::<Value>(&golden_json).unwrap(),
            value,
            "{name}: the golden JSON parses"
        );
    }
}

#[test]
fn every_kind_has_a_golden_vector() {
    let kinds: std::collections::BTreeSet<ValueKind> =
        golden().iter().map(|(_, v)| v.kind()).collect();
    assert_eq!(kinds.len(), ValueKind::ALL.len());
}
