//! The server's defences and the client, over loopback.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use axum::routing::get;
use haze_http::{HttpClient, Peer, ServeOptions, serve};
use haze_tls::{ClientAuth, IdentityKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

/// A router that answers who asked.
fn router() -> axum::Router {
    axum::Router::new().route(
        "/who",
        get(|peer: axum::Extension<Peer>| async move {
            match &peer.identity {
                Some(identity) => identity.to_string(),
                None => format!("anonymous from {}", peer.addr.ip()),
            }
        }),
    )
}

async fn start(options: ServeOptions) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, router(), options, stop.clone()));
    (addr, stop)
}

/// A connection from a given loopback address (127.0.0.x).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Whether the server closed `stream` (a read gives end of file or an error) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A client that sends its headers one byte at a time, steadily, is cut off once the header
/// deadline passes; meanwhile a normal client is served.
#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_header_deadline() {
    let options = ServeOptions {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..ServeOptions::default()
    };
    let (addr, stop) = start(options).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let header =
        b"GET /who HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    let mut cut = false;
    // One byte every 100 ms: the idle timeout never fires; the deadline must.
    for byte in header {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        // A normal request meanwhile, once.
        if sent == 3 {
            let client = HttpClient::new(addr.to_string(), None, Duration::from_secs(5));
            let answer = client.request("GET", "/who", &[], None).await.unwrap();
            assert_eq!(answer.status, 200);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if closed_within(&mut slow, Duration::from_millis(1)).await {
            cut = true;
            break;
        }
    }
    println!(
        "slowloris: sent {sent} of {} header bytes, cut: {cut}",
        header.len()
    );
    assert!(cut, "the trickling client was never cut off");
    assert!(sent < header.len(), "it was cut before its headers ended");
    stop.cancel();
}

/// One address past its cap has its further connections closed at once; another address still
/// gets in.
#[tokio::test]
async fn one_address_past_its_cap_is_refused_while_another_gets_in() {
    let options = ServeOptions {
        max_per_address: 3,
        ..ServeOptions::default()
    };
    let (addr, stop) = start(options).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    // Let the server account for them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect_from("127.0.0.2", addr).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "a fourth connection from the same address was kept"
    );
    let mut other = connect_from("127.0.0.3", addr).await;
    other
        .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("anonymous from 127.0.0.3"), "{answer}");
    // A held connection is served too (the cap counts connections, not requests).
    held[0]
        .write_all(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held[0].read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.cancel();
}

/// Over TLS: a client with a node's certificate is known by it; one without a certificate is
/// anonymous; a client trusting another CA is refused at the handshake; plaintext to the TLS
/// port gets no answer.
#[tokio::test]
#[allow(clippy::disallowed_methods)] // certificates are valid from now (real time, for rustls)
async fn over_tls_requests_know_their_peer_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    haze_tls::generate::init_ca(dir.path(), now).unwrap();
    let names = ["127.0.0.1".to_string()];
    haze_tls::generate::issue(dir.path(), IdentityKind::Node, "n1", &names, 30, now).unwrap();
    let path = |f: &str| dir.path().join(f);
    let server = haze_tls::server_config(
        &path("n1.pem"),
        &path("n1.key"),
        Some(&path("ca.pem")),
        ClientAuth::Optional,
    )
    .unwrap();
    let options = ServeOptions {
        tls: Some(server),
        ..ServeOptions::default()
    };
    let (addr, stop) = start(options).await;

    let as_node = haze_tls::client_config(
        Some(&path("ca.pem")),
        Some((&path("n1.pem"), &path("n1.key"))),
    )
    .unwrap();
    let client = HttpClient::new(addr.to_string(), Some(as_node), Duration::from_secs(5));
    let answer = client.request("GET", "/who", &[], None).await.unwrap();
    assert_eq!(std::str::from_utf8(&answer.body).unwrap(), "node n1");

    let anonymous = haze_tls::client_config(Some(&path("ca.pem")), None).unwrap();
    let client = HttpClient::new(addr.to_string(), Some(anonymous), Duration::from_secs(5));
    let answer = client.request("GET", "/who", &[], None).await.unwrap();
    assert!(
        std::str::from_utf8(&answer.body)
            .unwrap()
            .starts_with("anonymous")
    );

    let other = tempfile::tempdir().unwrap();
    haze_tls::generate::init_ca(other.path(), now).unwrap();
    let stranger = haze_tls::client_config(Some(&other.path().join("ca.pem")), None).unwrap();
    let client = HttpClient::new(addr.to_string(), Some(stranger), Duration::from_secs(5));
    let refused = client.request("GET", "/who", &[], None).await.unwrap_err();
    println!("another CA: {refused}");
    assert!(
        matches!(refused, haze_http::HttpError::Tls { .. }),
        "{refused:?}"
    );

    let plain = HttpClient::new(addr.to_string(), None, Duration::from_secs(2));
    assert!(plain.request("GET", "/who", &[], None).await.is_err());
    stop.cancel();
}
