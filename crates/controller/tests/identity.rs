//! Over TLS, the controller's node endpoints believe certificates, not bodies: only a node's
//! certificate from the cluster CA registers or reports, and only as the node it names; a
//! client certificate, no certificate, or another cluster's CA is refused.

use std::path::Path;
use std::time::SystemTime;

use haze_controller::api::SeenRequest;
use haze_controller::{
    ClientError, ClusterId, Controller, ControllerClient, MoveLimits, ServeOptions,
};
use haze_tls::{ClientAuth, IdentityKind};
use tokio_util::sync::CancellationToken;

/// The API's error code of a refusal, or the error itself.
fn code(e: &ClientError) -> String {
    match e {
        ClientError::Refused(e) => e.error.clone(),
        other => format!("{other:?}"),
    }
}

fn seen(node: haze_ring::NodeId) -> SeenRequest {
    SeenRequest {
        node,
        epoch: None,
        streams: vec![],
        cleaned: vec![],
        known: None,
        wait_ms: None,
    }
}

fn client(addr: &str, ca: &Path, identity: Option<&str>) -> ControllerClient {
    let dir = ca.parent().unwrap();
    let pair = identity.map(|name| {
        (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        )
    });
    let config = haze_tls::client_config(
        Some(ca),
        pair.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
    .unwrap();
    ControllerClient::new(addr).with_tls(config)
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
#[allow(clippy::disallowed_methods)] // certificates are valid from now (real time, for rustls)
async fn node_endpoints_believe_certificates_not_bodies() {
    let now = SystemTime::now();
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    haze_tls::generate::init_ca(dir, now).unwrap();
    let local = ["127.0.0.1".to_string(), "localhost".to_string()];
    for (kind, name) in [
        (IdentityKind::Node, "controller"),
        (IdentityKind::Node, "n1"),
        (IdentityKind::Node, "n2"),
        (IdentityKind::Client, "alice"),
    ] {
        haze_tls::generate::issue(dir, kind, name, &local, 30, now).unwrap();
    }
    let server = haze_tls::server_config(
        &dir.join("controller.pem"),
        &dir.join("controller.key"),
        Some(&dir.join("ca.pem")),
        ClientAuth::Optional,
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let controller = Controller::open(data.path(), ClusterId(5), 16, 1).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let options = ServeOptions::new(MoveLimits::default()).with_tls(server);
    let task = tokio::spawn(haze_controller::serve_with(
        controller,
        options,
        listener,
        shutdown.clone(),
    ));
    let ca = dir.join("ca.pem");

    // Nodes register with their certificates, each as itself.
    let n1 = client(&addr, &ca, Some("n1"));
    let n2 = client(&addr, &ca, Some("n2"));
    let id1 = n1.register("127.0.0.1:7001").await.unwrap().node;
    let id2 = n2.register("127.0.0.1:7002").await.unwrap().node;
    assert_ne!(id1, id2);
    eprintln!("registered n1 as {id1} and n2 as {id2} with their certificates");
    // A restart on another address keeps the id its certificate names.
    assert_eq!(n1.register("127.0.0.1:7011").await.unwrap().node, id1);
    // Another node's address is not taken over.
    let err = n1.register("127.0.0.1:7002").await.unwrap_err();
    assert_eq!(code(&err), "forbidden", "{err}");
    n1.seen(&seen(id1)).await.unwrap();

    // n1's certificate cannot speak for n2.
    let err = n1.seen(&seen(id2)).await.unwrap_err();
    assert_eq!(code(&err), "forbidden", "{err}");
    eprintln!("n1 reporting as n2: {err}");
    // A client's certificate, or none, reaches no node endpoint.
    let alice = client(&addr, &ca, Some("alice"));
    let err = alice.register("127.0.0.1:7003").await.unwrap_err();
    assert_eq!(code(&err), "forbidden", "{err}");
    let anonymous = client(&addr, &ca, None);
    let err = anonymous.seen(&seen(id1)).await.unwrap_err();
    assert_eq!(code(&err), "unauthorized", "{err}");
    let err = anonymous.register("127.0.0.1:7004").await.unwrap_err();
    assert_eq!(code(&err), "unauthorized", "{err}");
    // ... but reads what anyone may read.
    let status = anonymous.status().await.unwrap();
    assert_eq!(status.members.len(), 2, "junk registrations got in");

    // Another cluster's CA is refused at the handshake, and plaintext gets no answer.
    let other = tempfile::tempdir().unwrap();
    haze_tls::generate::init_ca(other.path(), now).unwrap();
    haze_tls::generate::issue(other.path(), IdentityKind::Node, "n1", &local, 30, now).unwrap();
    let stranger = client(&addr, &other.path().join("ca.pem"), Some("n1"));
    let err = stranger.register("127.0.0.1:7005").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Unreachable {
                source: haze_http::HttpError::Tls { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let err = ControllerClient::new(&addr).status().await.unwrap_err();
    assert!(matches!(&err, ClientError::Unreachable { .. }), "{err:?}");

    shutdown.cancel();
    task.await.unwrap().unwrap();
}
