//! A controller killed while it saves its state: `controller.json` is replaced whole (a temporary
//! file, fsync, rename), so whatever point the save reached, a restart reads the state before
//! the change or after it, never a mix; a leftover temporary file changes nothing; a damaged
//! `controller.json` is refused with the file and the reason, and left as it is
//! (docs/cluster.md, "What the controller keeps").

use std::path::Path;

use haze_controller::{Change, ClusterId, Controller, ControllerState, Error};
use haze_ring::NodeId;

const STATE: &str = "controller.json";
/// Where a save writes the new state before it renames it over [`STATE`].
const TEMP: &str = "controller.json.tmp";

fn open(dir: &Path) -> Result<Controller, Error> {
    Controller::open(dir, ClusterId(0x5eed), 64, 3)
}

/// Two states on either side of one save, and the bytes of their files: three active nodes,
/// then a fourth registered and being added.
struct Saves {
    old: ControllerState,
    old_bytes: Vec<u8>,
    new: ControllerState,
    new_bytes: Vec<u8>,
}

fn saves() -> Saves {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path()).unwrap();
    for port in 1..=4 {
        c.change(|s| s.register(&format!("127.0.0.1:770{port}")))
            .unwrap();
    }
    c.change(|s| s.add(&["n1".into(), "n2".into(), "n3".into()]).map(drop))
        .unwrap();
    let old = c.state().clone();
    let old_bytes = std::fs::read(dir.path().join(STATE)).unwrap();
    c.change(|s| {
        s.carry_out(
            Change {
                add: vec![NodeId(4)],
                remove: vec![],
            },
            0,
        )
        .map(drop)
    })
    .unwrap();
    let new = c.state().clone();
    let new_bytes = std::fs::read(dir.path().join(STATE)).unwrap();
    assert!(new.transition().is_some(), "the change under way is saved");
    assert_ne!(old, new);
    assert!(
        !dir.path().join(TEMP).exists(),
        "a completed save leaves no temporary file"
    );
    Saves {
        old,
        old_bytes,
        new,
        new_bytes,
    }
}

/// A controller folder as a crash left it: `controller.json` and perhaps a temporary file.
fn image(state: &[u8], temp: Option<&[u8]>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE), state).unwrap();
    if let Some(temp) = temp {
        std::fs::write(dir.path().join(TEMP), temp).unwrap();
    }
    dir
}

/// A point a save reached when the process died: its name, the bytes of `controller.json` and
/// of the temporary file, and whether a restart must find the new state.
type Point<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, bool);

#[test]
fn a_restart_after_a_crash_at_any_point_of_a_save_has_the_old_or_the_new_state() {
    let s = saves();
    let half = s.new_bytes.len() / 2;
    let last = s.new_bytes.len() - 1;
    let zeros = vec![0u8; s.new_bytes.len()];
    // Each point a save passes, in order, and whether a restart must find the new state.
    let points: [Point; 8] = [
        ("the temporary file created", &s.old_bytes, Some(b""), false),
        (
            "half the new state written",
            &s.old_bytes,
            Some(&s.new_bytes[..half]),
            false,
        ),
        (
            "all but its last byte written",
            &s.old_bytes,
            Some(&s.new_bytes[..last]),
            false,
        ),
        (
            "written but not synced (the disk kept zeros)",
            &s.old_bytes,
            Some(&zeros),
            false,
        ),
        (
            "written and synced, not renamed",
            &s.old_bytes,
            Some(&s.new_bytes),
            false,
        ),
        ("renamed", &s.new_bytes, None, true),
        (
            "renamed, beside the garbage of an earlier crash",
            &s.new_bytes,
            Some(b"{\"format\": 1, \"sta"),
            true,
        ),
        (
            "renamed, beside an earlier crash's complete temporary file",
            &s.new_bytes,
            Some(&s.old_bytes),
            true,
        ),
    ];
    for (point, state, temp, newer) in points {
        let dir = image(state, temp);
        let mut c = open(dir.path())
            .unwrap_or_else(|e| panic!("crashed with {point}: the restart failed: {e}"));
        let (want, which) = if newer {
            (&s.new, "new")
        } else {
            (&s.old, "old")
        };
        assert!(
            c.state() == want,
            "crashed with {point}: the restart does not have the {which} state as saved"
        );
        // The restarted controller saves its next change over whatever the crash left, and
        // that change survives the next restart.
        c.change(|s| s.register("127.0.0.1:7799")).unwrap();
        let after = c.state().clone();
        drop(c);
        assert!(
            !dir.path().join(TEMP).exists(),
            "crashed with {point}: the next save left a temporary file"
        );
        let again = open(dir.path()).unwrap();
        assert!(
            again.state() == &after,
            "crashed with {point}: the change saved after the restart was lost"
        );
    }
}

#[test]
fn a_damaged_state_file_is_refused_with_the_file_and_the_reason_and_left_as_it_is() {
    let s = saves();
    let zeros = vec![0u8; s.new_bytes.len()];
    // What a save that wrote `controller.json` in place could leave, or a damaged disk.
    let damaged: [(&str, &[u8], &str); 6] = [
        ("empty", b"", "EOF"),
        ("cut after one byte", &s.new_bytes[..1], "EOF"),
        (
            "cut in the middle",
            &s.new_bytes[..s.new_bytes.len() / 2],
            "EOF",
        ),
        (
            "without its last byte",
            &s.new_bytes[..s.new_bytes.len() - 1],
            "EOF",
        ),
        ("zeros", &zeros, "expected value"),
        ("JSON, but no state", b"{}", "missing field `format`"),
    ];
    for (how, bytes, why) in damaged {
        // With and without a complete temporary file beside it: the controller never guesses
        // from a temporary file, which a crash may have left at any point.
        for temp in [None, Some(s.new_bytes.as_slice())] {
            let dir = image(bytes, temp);
            let Err(err) = open(dir.path()) else {
                panic!(
                    "{how} (temporary file beside it: {}): opened",
                    temp.is_some()
                );
            };
            let message = err.to_string();
            let path = dir.path().join(STATE);
            assert!(
                matches!(&err, Error::State { path: p, .. } if Path::new(p) == path),
                "{how}: {err:?}"
            );
            assert!(
                message.starts_with(&format!("controller state {}: ", path.display()))
                    && message.contains(why),
                "{how}: the message names the file and the reason ({why}): {message}"
            );
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{how}: the refused file was changed"
            );
            assert_eq!(
                std::fs::read(dir.path().join(TEMP)).ok().as_deref(),
                temp,
                "{how}: the temporary file was changed"
            );
        }
    }
    // The same folder with the file restored opens: the refusals changed nothing else.
    let dir = image(b"", None);
    assert!(open(dir.path()).is_err());
    std::fs::write(dir.path().join(STATE), &s.new_bytes).unwrap();
    assert_eq!(open(dir.path()).unwrap().state(), &s.new);
}
