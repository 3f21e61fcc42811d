//! `haze local`: replica files edited offline, synced, and the recovery drill after the store
//! lost its data.

use crate::harness::{HAZE, Process, haze, ok};

/// Runs `haze local --replica FILE ARGS [--addr ADDR]` and returns stdout; it must succeed.
fn local(replica: &std::path::Path, args: &[&str], server: Option<&Process>) -> String {
    let mut cmd = haze();
    cmd.arg("local").arg("--replica").arg(replica).args(args);
    if let Some(server) = server {
        cmd.args(["--addr", &server.addr]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "haze local {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_recovery_drill_restores_a_wiped_store_from_two_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (phone, laptop) = (
        dir.path().join("phone.haze"),
        dir.path().join("laptop.haze"),
    );
    let data = dir.path().join("node");

    // Offline edits on two devices, with nothing running.
    local(&phone, &["set", "add", "list", "milk", "eggs"], None);
    local(&phone, &["counter", "incr", "visits", "2"], None);
    assert_eq!(
        local(&phone, &["set", "members", "list"], None),
        "eggs\nmilk\n"
    );
    local(&laptop, &["set", "add", "list", "bread"], None);
    local(&laptop, &["counter", "incr", "visits", "3"], None);
    local(&laptop, &["register", "set", "title", "Groceries"], None);
    local(&laptop, &["map", "set", "item:1", "name", "bread"], None);
    assert_eq!(
        local(&laptop, &["map", "incr", "item:1", "qty", "2"], None),
        "2\n"
    );
    local(&phone, &["map", "set", "item:1", "note", "brown"], None);

    // Both sync; the laptop learns the phone's list by name... it holds "list" already, so a
    // sync merges it; the phone fetches "title", which it has never seen.
    let server = HAZE.serve(&data, &[]);
    assert!(local(&phone, &["sync"], Some(&server)).starts_with("synced 3 keys: 3 sent"));
    local(&laptop, &["sync"], Some(&server));
    local(&phone, &["fetch", "title"], Some(&server));
    local(&phone, &["sync"], Some(&server));
    assert_eq!(
        ok(&server, &["set", "members", "list"]),
        "bread\neggs\nmilk\n"
    );
    assert_eq!(ok(&server, &["counter", "get", "visits"]), "5\n");
    assert_eq!(
        local(&phone, &["register", "get", "title"], None),
        "Groceries\n"
    );
    // Both devices edited the map `item:1` offline: the node holds the fields of both.
    assert_eq!(
        ok(&server, &["map", "get", "item:1"]),
        "name=bread\nnote=brown\nqty=2\n"
    );

    // The node's disk is lost.
    server.kill();
    std::fs::remove_dir_all(&data).unwrap();
    let server = HAZE.serve(&data, &[]);
    assert_eq!(
        ok(&server, &["counter", "get", "visits"]),
        "0\n",
        "the store is empty"
    );

    // The next sync of each device re-supplies what it holds.
    local(&phone, &["sync"], Some(&server));
    local(&laptop, &["sync"], Some(&server));
    assert_eq!(
        ok(&server, &["set", "members", "list"]),
        "bread\neggs\nmilk\n"
    );
    assert_eq!(ok(&server, &["counter", "get", "visits"]), "5\n");
    assert_eq!(ok(&server, &["register", "get", "title"]), "Groceries\n");
    let again = local(&phone, &["sync"], Some(&server));
    assert!(
        again.starts_with("synced 4 keys: 0 sent, 0 updated"),
        "{again}"
    );
}
