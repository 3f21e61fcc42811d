//! Handshakes: who gets in, who is refused, and what each side is told.

use std::time::Duration;

use haze_tls::tokio_rustls::TlsAcceptor;
use haze_tls::{ClientAuth, Identity, IdentityKind, TlsError};
use tokio::io::AsyncWriteExt;

use crate::support::{DAY, Pki, connect, now};

const ADDR: &str = "127.0.0.1:7000";

fn server_error(outcome: &crate::support::Outcome) -> String {
    match &outcome.server {
        Err(e) => e.to_string(),
        Ok(identity) => panic!("the server let the client in as {identity:?}"),
    }
}

fn client_error(outcome: &crate::support::Outcome) -> String {
    match &outcome.client {
        Err(e) => e.to_string(),
        Ok(()) => panic!("the client connected"),
    }
}

#[tokio::test]
async fn a_node_certificate_is_seen_as_that_node() {
    let pki = Pki::new();
    let server = pki.server(&pki.node("n2"), ClientAuth::Optional);
    let n1 = pki.node("n1");
    let outcome = connect(server, pki.client_config(Some(&n1)), ADDR, None).await;
    outcome.client.expect("the client connects");
    let identity = outcome.server.expect("the server accepts");
    assert_eq!(identity, Some(Identity::Node("n1".to_string())));
}

#[tokio::test]
async fn a_client_certificate_is_seen_as_that_client_over_ipv6_too() {
    let pki = Pki::new();
    let server = pki.server(&pki.node("n1"), ClientAuth::Required);
    let alice = pki.client("alice");
    let outcome = connect(server, pki.client_config(Some(&alice)), "[::1]:7000", None).await;
    outcome.client.expect("the client connects");
    let identity = outcome.server.expect("the server accepts");
    assert_eq!(identity, Some(Identity::Client("alice".to_string())));
}

#[tokio::test]
async fn no_client_certificate_is_no_identity_allowed_if_optional_refused_if_required() {
    let pki = Pki::new();
    let node = pki.node("n1");
    let optional = pki.server(&node, ClientAuth::Optional);
    let outcome = connect(optional, pki.client_config(None), ADDR, None).await;
    outcome.client.expect("the client connects");
    assert_eq!(outcome.server.expect("the server accepts"), None);

    let none = pki.server(&node, ClientAuth::None);
    let outcome = connect(none, pki.client_config(None), ADDR, None).await;
    outcome.client.expect("the client connects");
    assert_eq!(outcome.server.expect("the server accepts"), None);

    let required = pki.server(&node, ClientAuth::Required);
    let outcome = connect(required, pki.client_config(None), ADDR, None).await;
    let refused = server_error(&outcome);
    assert!(refused.contains("client certificate"), "{refused}");
    client_error(&outcome);
}

#[tokio::test]
async fn a_client_certificate_of_another_ca_is_refused_at_the_handshake() {
    let pki = Pki::new();
    let other = Pki::new();
    // The impostor trusts our CA (it knows whom it talks to) but holds another CA's n1.
    let impostor = other.node("n1");
    for auth in [ClientAuth::Optional, ClientAuth::Required] {
        let server = pki.server(&pki.node(&format!("s{auth:?}")), auth);
        let outcome = connect(server, pki.client_config(Some(&impostor)), ADDR, None).await;
        let refused = server_error(&outcome);
        assert!(refused.contains("TLS handshake failed"), "{refused}");
        assert!(refused.contains("not issued by a trusted CA"), "{refused}");
        client_error(&outcome);
    }
}

#[tokio::test]
async fn a_server_certificate_of_another_ca_is_refused_by_the_client() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = other.server(&other.node("n1"), ClientAuth::Optional);
    let outcome = connect(server, pki.client_config(None), ADDR, None).await;
    let refused = client_error(&outcome);
    assert!(
        refused.contains("TLS handshake with 127.0.0.1:7000 failed"),
        "{refused}"
    );
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    assert!(refused.contains("another cluster's?"), "{refused}");
    server_error(&outcome);
}

#[tokio::test]
async fn expired_certificates_are_refused_on_both_sides() {
    let pki = Pki::new();
    let sans = ["127.0.0.1".to_string()];
    let long_ago = now() - 400 * DAY;
    let expired = pki.issue(IdentityKind::Node, "old", &sans, 30, long_ago);

    let server = pki.server(&expired, ClientAuth::Optional);
    let outcome = connect(server, pki.client_config(None), ADDR, None).await;
    let refused = client_error(&outcome);
    assert!(refused.contains("expired"), "{refused}");

    let server = pki.server(&pki.node("n1"), ClientAuth::Optional);
    let outcome = connect(server, pki.client_config(Some(&expired)), ADDR, None).await;
    let refused = server_error(&outcome);
    assert!(refused.contains("expired"), "{refused}");
}

#[tokio::test]
async fn the_server_certificate_must_name_the_host_dialed() {
    let pki = Pki::new();
    let sans = ["n1.example".to_string(), "*.nodes.example".to_string()];
    let named = pki.issue(IdentityKind::Node, "n1", &sans, 365, now());
    let server = || pki.server(&named, ClientAuth::Optional);

    let outcome = connect(server(), pki.client_config(None), ADDR, None).await;
    let refused = client_error(&outcome);
    assert!(
        refused.contains("does not name the host dialed"),
        "{refused}"
    );

    for good in ["n1.example", "n7.nodes.example"] {
        let outcome = connect(server(), pki.client_config(None), ADDR, Some(good)).await;
        outcome.client.expect("the name is in the certificate");
    }
    let outcome = connect(server(), pki.client_config(None), "n1.example:7000", None).await;
    outcome
        .client
        .expect("the host dialed is in the certificate");
    let outcome = connect(server(), pki.client_config(None), ADDR, Some("n2.example")).await;
    client_error(&outcome);
}

#[tokio::test]
async fn a_client_certificate_cannot_serve_as_a_node() {
    let pki = Pki::new();
    // A client's certificate is for client authentication only, whatever names it carries.
    let (cert, key) = pki.issue(
        IdentityKind::Client,
        "mallory",
        &["127.0.0.1".to_string()],
        365,
        now(),
    );
    let server = haze_tls::server_config(&cert, &key, None, ClientAuth::None).expect("a config");
    let outcome = connect(server, pki.client_config(None), ADDR, None).await;
    let refused = client_error(&outcome);
    assert!(refused.contains("not for this use"), "{refused}");
}

#[tokio::test]
async fn a_silent_client_times_out_and_a_plaintext_one_is_told() {
    let pki = Pki::new();
    let acceptor = TlsAcceptor::from(pki.server(&pki.node("n1"), ClientAuth::Optional));

    let (_silent, far) = tokio::io::duplex(1024);
    let timeout = Duration::from_millis(100);
    match haze_tls::accept(&acceptor, far, timeout).await {
        Err(TlsError::HandshakeTimeout(t)) => assert_eq!(t, timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }

    let (mut plaintext, far) = tokio::io::duplex(1024);
    plaintext
        .write_all(b"GET / HTTP/1.1\r\nHost: n1\r\n\r\n")
        .await
        .expect("the pipe takes it");
    let e = haze_tls::accept(&acceptor, far, Duration::from_secs(5))
        .await
        .expect_err("plaintext is not TLS");
    assert!(e.to_string().contains("does not speak TLS"), "{e}");
}

#[test]
fn server_names_come_from_the_host_of_the_address() {
    use haze_tls::rustls::pki_types::ServerName;
    let name = |addr: &str| haze_tls::server_name(addr).map(|n| n.to_str().into_owned());
    assert!(matches!(
        haze_tls::server_name("10.1.2.3:7000"),
        Ok(ServerName::IpAddress(_))
    ));
    assert!(matches!(
        haze_tls::server_name("[fd00::1]:7000"),
        Ok(ServerName::IpAddress(_))
    ));
    assert_eq!(name("n1.example:7000").ok().as_deref(), Some("n1.example"));
    assert_eq!(name("n1.example").ok().as_deref(), Some("n1.example"));
    assert_eq!(
        name("[n1.example]:7000").ok().as_deref(),
        Some("n1.example")
    );
    for bad in [":7000", "", "[::1", "fd00::1:7000", "bad host:7000", "[]:1"] {
        assert!(
            matches!(haze_tls::server_name(bad), Err(TlsError::ServerName(_))),
            "{bad:?}"
        );
    }
}
