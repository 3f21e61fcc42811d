//! Loading PEM files: every way a file can be wrong is a `TlsError` that names it.

use std::path::{Path, PathBuf};

use haze_tls::load::{MAX_PEM_BYTES, load_certs, load_key, load_roots};
use haze_tls::{ClientAuth, TlsError};

use crate::support::Pki;

/// Test-only keys made with `openssl ecparam -genkey` (EC parameters, then a SEC1 key) and
/// `openssl genrsa -traditional 2048` (PKCS#1): no certificate names them.
const SEC1_KEY: &str = include_str!("fixtures/ec-sec1.key");
const PKCS1_KEY: &str = include_str!("fixtures/rsa-pkcs1.key");

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("a temporary file");
    path
}

/// The error's problem, after checking that it names `path`.
fn problem(result: Result<impl std::fmt::Debug, TlsError>, path: &Path) -> String {
    let e = result.expect_err("an error");
    let text = e.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    text
}

/// A PEM section of `label` around `body`, base64 encoded by hand (no dependency for it).
fn pem(label: &str, body: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in body.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

#[test]
fn garbage_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let dir = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "no certificate"),
        (
            "binary",
            (0..=255u8).cycle().take(5000).collect(),
            "no certificate",
        ),
        (
            "truncated",
            b"-----BEGIN CERTIFICATE-----\nMIIB\n".to_vec(),
            "no END line",
        ),
        (
            "bad-base64",
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
            "not valid base64",
        ),
        (
            "not-x509",
            pem("CERTIFICATE", b"not a certificate at all").into_bytes(),
            "certificate 1 is not a valid X.509 certificate",
        ),
        ("a-key", SEC1_KEY.as_bytes().to_vec(), "no certificate"),
    ];
    for (name, contents, expected) in cases {
        let path = write(dir, name, &contents);
        let text = problem(load_certs(&path), &path);
        assert!(text.contains(expected), "{name}: {text}");
        let text = problem(load_roots(&path), &path);
        assert!(text.contains(expected), "{name}: {text}");
    }
}

#[test]
fn garbage_keys_are_errors_that_name_the_file() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let (cert, key) = pki.node("n1");
    let key_pem = std::fs::read_to_string(&key).expect("the key");
    let cases: Vec<(&str, String, &str)> =
        vec![
        ("empty.key", String::new(), "no private key"),
        ("cert.key", std::fs::read_to_string(&cert).expect("the cert"), "no private key"),
        ("junk.key", pem("PRIVATE KEY", &[0x30, 3, 2, 1, 0]), "not a private key that can sign"),
        ("sec1-junk.key", pem("EC PRIVATE KEY", b"junk"), "not a private key that can sign"),
        ("two.key", format!("{key_pem}{SEC1_KEY}"), "more than one private key"),
        (
            "encrypted.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_string(),
            "encrypted",
        ),
        (
            "truncated.key",
            key_pem[..key_pem.len() / 2].to_string(),
            "no END line",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = write(dir, name, &contents);
        let text = problem(load_key(&path), &path);
        assert!(text.contains(expected), "{name}: {text}");
        let secret = key_pem.lines().nth(1).expect("a key has a body");
        assert!(
            !text.contains(secret),
            "{name}: the error quotes a key: {text}"
        );
    }
}

#[test]
fn pkcs8_sec1_and_pkcs1_keys_load() {
    let pki = Pki::new();
    let (_, pkcs8) = pki.node("n1");
    load_key(&pkcs8).expect("PKCS#8, as generated");
    let sec1 = write(pki.dir.path(), "sec1.key", SEC1_KEY);
    load_key(&sec1).expect("SEC1 after EC parameters");
    let pkcs1 = write(pki.dir.path(), "pkcs1.key", PKCS1_KEY);
    load_key(&pkcs1).expect("PKCS#1 RSA");
}

#[test]
fn missing_huge_and_directory_files_are_errors() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let missing = dir.path().join("missing.pem");
    assert!(matches!(load_certs(&missing), Err(TlsError::Read { .. })));
    assert!(matches!(load_key(dir.path()), Err(TlsError::Read { .. })));
    let too_big = usize::try_from(MAX_PEM_BYTES).expect("4 MiB fits") + 1;
    let huge = write(dir.path(), "huge.pem", vec![b'A'; too_big]);
    let text = problem(load_certs(&huge), &huge);
    assert!(text.contains("larger than"), "{text}");
}

#[test]
fn configurations_refuse_mismatched_pairs_and_client_auth_without_a_ca() {
    let pki = Pki::new();
    let (n1_cert, _) = pki.node("n1");
    let (_, n2_key) = pki.node("n2");
    let result = haze_tls::server_config(&n1_cert, &n2_key, None, ClientAuth::None);
    assert!(matches!(result, Err(TlsError::Pair { .. })), "{result:?}");
    let result = haze_tls::client_config(Some(&pki.ca()), Some((&n1_cert, &n2_key)));
    assert!(matches!(result, Err(TlsError::Pair { .. })), "{result:?}");

    let (cert, key) = pki.node("n3");
    for auth in [ClientAuth::Optional, ClientAuth::Required] {
        let result = haze_tls::server_config(&cert, &key, None, auth);
        assert!(matches!(result, Err(TlsError::NoClientCa)), "{result:?}");
    }
    // A CA file that is not one fails as that file.
    let result = haze_tls::server_config(&cert, &key, Some(&key), ClientAuth::Optional);
    let text = problem(result, &key);
    assert!(text.contains("no certificate"), "{text}");
}
