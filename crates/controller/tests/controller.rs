//! The controller's state survives restarts, and a refused or unsaved change changes nothing.

use haze_controller::{ClusterId, Controller, Error, Inconsistency, MemberState, StateError};
use haze_ring::NodeId;

#[test]
fn the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let table = {
        let mut c = Controller::open(dir.path(), ClusterId(42), 256, 3).unwrap();
        for port in 1..=3 {
            c.change(|s| s.register(&format!("127.0.0.1:770{port}")))
                .unwrap();
        }
        c.change(|s| {
            s.add(&["n1".into(), "n2".into(), "127.0.0.1:7703".into()])
                .cloned()
        })
        .unwrap()
    };
    // Reopening ignores the parameters: the cluster was created already.
    let c = Controller::open(dir.path(), ClusterId(1), 16, 1).unwrap();
    assert_eq!(c.state().cluster, ClusterId(42));
    assert_eq!(c.state().table(), Some(&table));
    assert_eq!(c.state().members()[&NodeId(3)].state, MemberState::Active);
}

#[test]
fn a_refused_change_is_not_saved() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Controller::open(dir.path(), ClusterId(1), 64, 2).unwrap();
    let before = c.state().clone();
    assert!(matches!(
        c.change(|s| s.add(&["n1".into()]).cloned()),
        Err(Error::UnknownNode(_))
    ));
    assert_eq!(c.state(), &before);
    drop(c);
    assert_eq!(
        Controller::open(dir.path(), ClusterId(1), 64, 2)
            .unwrap()
            .state(),
        &before
    );
}

#[test]
fn a_damaged_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("controller.json"), b"{ not json").unwrap();
    let err = Controller::open(dir.path(), ClusterId(1), 64, 2).unwrap_err();
    assert!(matches!(err, Error::State { .. }), "{err}");
}

#[test]
fn another_format_or_an_inconsistent_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = Controller::open(dir.path(), ClusterId(7), 64, 2).unwrap();
        c.change(|s| s.register("127.0.0.1:7701")).unwrap();
        c.change(|s| s.add(&["n1".into()]).map(|_| ())).unwrap();
    }
    let path = dir.path().join("controller.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("\"format\": 1"), "{saved}");

    let refused = |text: &str, why: &str| {
        std::fs::write(&path, text).unwrap();
        let err = Controller::open(dir.path(), ClusterId(7), 64, 2).unwrap_err();
        assert!(matches!(err, Error::State { .. }), "{err}");
        assert!(err.to_string().contains(why), "{err} lacks {why}");
    };
    refused(&saved.replace("\"format\": 1", "\"format\": 2"), "format 2");
    // The member is active in the table; a file that says standby contradicts it.
    refused(&saved.replace("\"active\"", "\"standby\""), "not a member");
    refused(
        &saved.replace("\"next_node\": 2", "\"next_node\": 1"),
        "next id",
    );

    std::fs::write(&path, &saved).unwrap();
    assert!(Controller::open(dir.path(), ClusterId(7), 64, 2).is_ok());
}

#[test]
fn one_folder_serves_one_controller() {
    let dir = tempfile::tempdir().unwrap();
    let first = Controller::open(dir.path(), ClusterId(1), 64, 2).unwrap();
    let err = Controller::open(dir.path(), ClusterId(1), 64, 2).unwrap_err();
    assert!(matches!(err, Error::Locked(_)), "{err}");
    drop(first);
    assert!(Controller::open(dir.path(), ClusterId(1), 64, 2).is_ok());
}

#[test]
fn a_refused_state_file_names_its_cause() {
    use std::error::Error as _;
    let dir = tempfile::tempdir().unwrap();
    {
        let mut c = Controller::open(dir.path(), ClusterId(7), 64, 2).unwrap();
        c.change(|s| s.register("127.0.0.1:7701")).unwrap();
        c.change(|s| s.add(&["n1".into()]).map(|_| ())).unwrap();
    }
    let path = dir.path().join("controller.json");
    let saved = std::fs::read_to_string(&path).unwrap();
    let cause = |text: &str| {
        std::fs::write(&path, text).unwrap();
        let err = Controller::open(dir.path(), ClusterId(7), 64, 2).unwrap_err();
        let source = err.source().expect("the cause is kept");
        assert!(source.downcast_ref::<StateError>().is_some(), "{source:?}");
        match err {
            Error::State { source, .. } => source,
            other => panic!("{other:?}"),
        }
    };
    assert!(matches!(cause("{ not json"), StateError::Json(e) if e.is_syntax()));
    assert!(matches!(
        cause(&saved.replace("\"format\": 1", "\"format\": 2")),
        StateError::Format {
            found: 2,
            expected: 1
        }
    ));
    assert!(matches!(
        cause(&saved.replace("\"active\"", "\"standby\"")),
        StateError::Inconsistent(Inconsistency::PlacesNonMember(NodeId(1)))
    ));
    // A state "file" that cannot be read: the operating system's error.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = Controller::open(dir.path(), ClusterId(7), 64, 2).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::State {
                source: StateError::Io(_),
                ..
            }
        ),
        "{err:?}"
    );
}
