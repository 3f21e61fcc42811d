//! `Identity::from_certificate` on certificates `generate` would never write: it names one
//! identity or none, never a guess.

use haze_tls::Identity;
use rcgen::{CertificateParams, KeyPair, SanType};

fn certificate(sans: &[SanType]) -> Vec<u8> {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans.to_vec();
    params
        .self_signed(&key)
        .expect("a certificate")
        .der()
        .to_vec()
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().expect("an IA5 string"))
}

fn dns(text: &str) -> SanType {
    SanType::DnsName(text.try_into().expect("an IA5 string"))
}

#[test]
fn one_well_formed_haze_uri_names_the_identity() {
    let sans = [
        dns("n1.example"),
        uri("https://example.com/"),
        uri("haze://node/n1"),
    ];
    assert_eq!(
        Identity::from_certificate(&certificate(&sans)),
        Some(Identity::Node("n1".to_string()))
    );
    let sans = [uri("haze://client/alice")];
    assert_eq!(
        Identity::from_certificate(&certificate(&sans)),
        Some(Identity::Client("alice".to_string()))
    );
}

#[test]
fn none_two_or_a_malformed_one_name_nobody() {
    let cases: Vec<Vec<SanType>> = vec![
        vec![],
        vec![dns("n1.example")],
        vec![dns("haze.node.n1"), uri("https://haze/node/n1")],
        vec![uri("haze://node/n1"), uri("haze://node/n2")],
        vec![uri("haze://node/n1"), uri("haze://client/n1")],
        vec![uri("haze://node/n1"), uri("haze://node/n1")],
        vec![uri("haze://node/n1"), uri("HAZE://node/n2")],
        vec![uri("haze://admin/root")],
        vec![uri("haze://node/")],
        vec![uri("haze://node/n1/extra")],
        vec![uri("haze://node/../ca")],
        vec![uri("haze://node/n1"), uri("haze://nobody")],
    ];
    for sans in cases {
        assert_eq!(
            Identity::from_certificate(&certificate(&sans)),
            None,
            "{sans:?}"
        );
    }
}

#[test]
fn truncated_or_padded_certificates_name_nobody() {
    let der = certificate(&[uri("haze://node/n1")]);
    for cut in [0, 1, 10, der.len() / 2, der.len() - 1] {
        assert_eq!(
            Identity::from_certificate(&der[..cut]),
            None,
            "cut at {cut}"
        );
    }
    let mut padded = der.clone();
    padded.push(0);
    assert_eq!(Identity::from_certificate(&padded), None);
    // Every single-byte corruption: no panic, and never another identity.
    for i in 0..der.len() {
        let mut bent = der.clone();
        bent[i] ^= 0x55;
        let found = Identity::from_certificate(&bent);
        assert!(
            found.is_none()
                || found
                    .as_ref()
                    .is_some_and(|id| id.kind() == haze_tls::IdentityKind::Node),
            "byte {i}: {found:?}"
        );
    }
}
