//! `generate`: the CA and the certificates it issues, the files they are written to, and
//! what it refuses.

use std::path::Path;
use std::time::Duration;

use haze_tls::generate::{self, CA_DAYS, LEAF_DAYS};
use haze_tls::load::load_certs;
use haze_tls::{Identity, IdentityKind, TlsError};

use crate::support::{DAY, Pki, now};

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the directory")
        .map(|entry| {
            let entry = entry.expect("an entry");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("the file")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_ca_and_its_certificates_name_their_identities_with_private_keys() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca_dir = dir.path().join("certs");
    let start = now();
    let ca = generate::init_ca(&ca_dir, start).expect("a CA");
    let lifetime = ca.not_after.duration_since(start).expect("after now");
    assert!(lifetime.abs_diff(CA_DAYS * DAY) <= Duration::from_secs(1));
    let n1 = generate::issue(&ca_dir, IdentityKind::Node, "n1", &[], LEAF_DAYS, start)
        .expect("a node certificate");
    let lifetime = n1.not_after.duration_since(start).expect("after now");
    assert!(lifetime.abs_diff(LEAF_DAYS * DAY) <= Duration::from_secs(1));
    generate::issue(&ca_dir, IdentityKind::Client, "alice", &[], 30, start)
        .expect("a client certificate");
    assert_eq!(
        files(&ca_dir),
        [
            "alice.key",
            "alice.pem",
            "ca.key",
            "ca.pem",
            "n1.key",
            "n1.pem"
        ]
    );

    let identity = |file: &str| {
        let certs = load_certs(&ca_dir.join(file)).expect("a certificate");
        assert_eq!(certs.len(), 1, "{file} holds its certificate only");
        Identity::from_certificate(&certs[0])
    };
    assert_eq!(identity("n1.pem"), Some(Identity::Node("n1".to_string())));
    assert_eq!(
        identity("alice.pem"),
        Some(Identity::Client("alice".to_string()))
    );
    assert_eq!(identity("ca.pem"), None);

    #[cfg(unix)]
    {
        assert_eq!(mode(&ca_dir) & 0o077, 0, "the new directory is its owner's");
        for key in ["ca.key", "n1.key", "alice.key"] {
            assert_eq!(mode(&ca_dir.join(key)), 0o600, "{key}");
        }
    }
}

#[test]
fn nothing_is_overwritten() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let ca_before = std::fs::read(pki.ca()).expect("ca.pem");
    let e = generate::init_ca(dir, now()).expect_err("a second CA");
    assert!(
        matches!(e, TlsError::Exists(ref path) if path.ends_with("ca.pem")),
        "{e}"
    );
    assert_eq!(std::fs::read(pki.ca()).expect("ca.pem"), ca_before);

    let (cert, _) = pki.node("n1");
    let n1_before = std::fs::read(&cert).expect("n1.pem");
    let e =
        generate::issue(dir, IdentityKind::Client, "n1", &[], 365, now()).expect_err("n1 again");
    assert!(matches!(e, TlsError::Exists(_)), "{e}");
    assert_eq!(std::fs::read(&cert).expect("n1.pem"), n1_before);
    // "ca" as a name would replace the CA.
    let e = generate::issue(dir, IdentityKind::Node, "ca", &[], 365, now()).expect_err("ca");
    assert!(matches!(e, TlsError::Exists(_)), "{e}");
    // A key alone (a half-removed pair) blocks too, and stays.
    std::fs::write(dir.join("n2.key"), "mine").expect("a file");
    let e = generate::issue(dir, IdentityKind::Node, "n2", &[], 365, now()).expect_err("n2");
    assert!(matches!(e, TlsError::Exists(_)), "{e}");
    assert_eq!(
        std::fs::read_to_string(dir.join("n2.key")).expect("n2.key"),
        "mine"
    );
}

#[test]
fn bad_arguments_write_nothing() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let issue = |kind, name: &str, sans: &[&str], days| {
        let sans: Vec<String> = sans.iter().map(ToString::to_string).collect();
        generate::issue(dir, kind, name, &sans, days, now())
    };
    for name in [
        "",
        "../n1",
        "n1/x",
        ".hidden",
        "-n1",
        "n 1",
        "é",
        &"n".repeat(65),
    ] {
        let e = issue(IdentityKind::Node, name, &[], 365).expect_err(name);
        assert!(matches!(e, TlsError::InvalidName(_)), "{name:?}: {e}");
    }
    for san in [
        "bad name",
        "n1..example",
        "*",
        "a*.example",
        "",
        "1.2.3.4.5:7",
    ] {
        let e = issue(IdentityKind::Node, "n1", &[san], 365).expect_err(san);
        assert!(matches!(e, TlsError::InvalidSubjectName(_)), "{san:?}: {e}");
    }
    for days in [0, 36_501] {
        let e = issue(IdentityKind::Node, "n1", &[], days).expect_err("days");
        assert!(matches!(e, TlsError::InvalidDays(_)), "{days}: {e}");
    }
    assert_eq!(files(dir), ["ca.key", "ca.pem"]);
}

#[test]
fn issuing_needs_the_ca_and_its_own_key() {
    let empty = tempfile::tempdir().expect("a temporary directory");
    let e = generate::issue(empty.path(), IdentityKind::Node, "n1", &[], 365, now())
        .expect_err("no CA");
    assert!(
        matches!(e, TlsError::Read { ref path, .. } if path.ends_with("ca.pem")),
        "{e}"
    );

    let pki = Pki::new();
    let other = Pki::new();
    std::fs::copy(other.path("ca.key"), pki.path("ca.key")).expect("a copy");
    let e = generate::issue(pki.dir.path(), IdentityKind::Node, "n1", &[], 365, now())
        .expect_err("another CA's key");
    assert!(e.to_string().contains("not the key of"), "{e}");

    let leaf = Pki::new();
    let (cert, key) = leaf.node("n1");
    std::fs::rename(cert, leaf.path("ca.pem.leaf")).expect("a rename");
    let fake = tempfile::tempdir().expect("a temporary directory");
    std::fs::copy(leaf.path("ca.pem.leaf"), fake.path().join("ca.pem")).expect("a copy");
    std::fs::copy(key, fake.path().join("ca.key")).expect("a copy");
    let e = generate::issue(fake.path(), IdentityKind::Node, "n2", &[], 365, now())
        .expect_err("a leaf as the CA");
    assert!(e.to_string().contains("not a CA certificate"), "{e}");
}
