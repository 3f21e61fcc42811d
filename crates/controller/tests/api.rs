//! The controller's API as nodes and `haze cluster` use it: over loopback, through the client.

use haze_controller::{ClientError, ClusterId, Controller, ControllerClient, MemberState};
use haze_ring::NodeId;
use tokio_util::sync::CancellationToken;

async fn start(dir: &std::path::Path) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let controller = Controller::open(dir, ClusterId(9), 64, 2).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        haze_controller::serve(controller, listener, stop)
            .await
            .unwrap();
    });
    (addr, shutdown, task)
}

#[tokio::test]
async fn nodes_register_are_added_and_a_data_move_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    let client = ControllerClient::new(&addr);

    let a = client.register("127.0.0.1:7701").await.unwrap();
    let b = client.register("127.0.0.1:7702").await.unwrap();
    assert_eq!(
        (a.node, b.node, a.cluster),
        (NodeId(1), NodeId(2), ClusterId(9))
    );
    assert_eq!(
        client.register("127.0.0.1:7701").await.unwrap().node,
        NodeId(1)
    );

    let status = client.status().await.unwrap();
    assert_eq!(status.epoch, None);
    assert!(
        status
            .members
            .iter()
            .all(|m| m.state == MemberState::Standby)
    );

    let status = client
        .add(&["n1".into(), "127.0.0.1:7702".into()])
        .await
        .unwrap();
    assert!(status.epoch.is_some());
    for m in &status.members {
        assert_eq!(m.state, MemberState::Active);
        assert_eq!(
            m.partitions, 64,
            "two replicas of 64 partitions on two nodes"
        );
        assert_eq!(m.primaries, 32);
    }

    client.register("127.0.0.1:7703").await.unwrap();
    let refused = client.add(&["n3".into()]).await.unwrap_err();
    match &refused {
        ClientError::Refused(e) => assert_eq!(e.error, "would_move_data", "{refused}"),
        other => panic!("{other}"),
    }
    assert!(
        refused.to_string().contains("not supported yet"),
        "{refused}"
    );
    let unknown = client.add(&["n99".into()]).await.unwrap_err();
    assert!(matches!(&unknown, ClientError::Refused(e) if e.error == "unknown_node"));

    // What was acknowledged survives a restart of the controller.
    let before = client.status().await.unwrap();
    shutdown.cancel();
    task.await.unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    assert_eq!(ControllerClient::new(&addr).status().await.unwrap(), before);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    let err = ControllerClient::new(&addr).register("").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(e) if e.error == "bad_request"),
        "{err}"
    );
    // Not a controller at all.
    let nobody = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody_addr = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let err = ControllerClient::new(&nobody_addr)
        .status()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn nodes_report_the_epoch_they_have_and_status_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    let client = ControllerClient::new(&addr);
    let a = client.register("127.0.0.1:7701").await.unwrap();
    let b = client.register("127.0.0.1:7702").await.unwrap();
    let status = client.status().await.unwrap();
    assert!(
        status.members.iter().all(|m| m.seen.is_none()),
        "nobody reported yet"
    );

    client
        .add(&["n1".to_string(), "n2".to_string()])
        .await
        .unwrap();
    let status = client.seen(a.node, Some(1)).await.unwrap();
    assert_eq!(status.epoch, Some(1), "the report answers with the table");
    let seen =
        |s: &haze_controller::api::Status, id| s.members.iter().find(|m| m.id == id).unwrap().seen;
    assert_eq!(seen(&status, a.node).map(|s| s.epoch), Some(Some(1)));
    assert_eq!(seen(&status, b.node), None);
    client.seen(b.node, None).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(seen(&status, b.node).map(|s| s.epoch), Some(None));

    let err = client.seen(NodeId(99), Some(1)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(e) if e.error == "unknown_node"),
        "{err}"
    );
    shutdown.cancel();
    task.await.unwrap();
}
