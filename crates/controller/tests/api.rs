//! The controller's API as nodes and `haze cluster` use it: over loopback, through the client.

use haze_controller::api::{PlanRequest, SeenRequest};
use haze_controller::{
    AnswerError, ClientError, ClusterId, Controller, ControllerClient, MemberState, MoveLimits,
};
use haze_ring::NodeId;
use tokio_util::sync::CancellationToken;

async fn start(dir: &std::path::Path) -> (String, CancellationToken, tokio::task::JoinHandle<()>) {
    let controller = Controller::open(dir, ClusterId(9), 64, 2).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        haze_controller::serve(controller, MoveLimits::default(), listener, stop)
            .await
            .unwrap();
    });
    (addr, shutdown, task)
}

/// A raw `GET path`: the body.
async fn get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn nodes_register_are_added_and_a_later_add_is_planned_then_carried_out() {
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
    let nothing = client.commit().await.unwrap_err();
    assert!(matches!(&nothing, ClientError::Refused(e) if e.error == "nothing_proposed"));
    let plan = client
        .plan(&PlanRequest {
            add: vec!["n3".into()],
            remove: vec![],
        })
        .await
        .unwrap();
    assert!(!plan.moves.is_empty(), "a third node takes partitions");
    assert!(
        plan.moves.iter().all(|m| m.after.contains(&NodeId(3))),
        "only partitions n3 joins change"
    );
    let status = client.status().await.unwrap();
    assert!(status.transition.is_none(), "a plan alone changes nothing");
    let status = client.commit().await.unwrap();
    let change = status.progress.as_ref().expect("the change runs");
    assert_eq!(change.description, "add n3");
    assert_eq!(change.moves.len(), plan.moves.len());
    assert!(
        status
            .members
            .iter()
            .all(|m| m.state == MemberState::Active)
    );
    let metrics = get(&addr, "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "haze_controller_moves{{state=\"pending\"}} {}",
            plan.moves.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("haze_controller_members{state=\"active\"} 3"),
        "{metrics}"
    );
    let unknown = client.add(&["n99".into()]).await.unwrap_err();
    assert!(matches!(&unknown, ClientError::Refused(e) if e.error == "unknown_node"));
    let refused = client
        .remove(&["n1".into(), "n2".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ClientError::Refused(e) if e.error == "too_few_nodes"),
        "{refused}"
    );

    // What was acknowledged (the change under way too) survives a restart of the controller.
    let before = client.status().await.unwrap();
    shutdown.cancel();
    task.await.unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    let after = ControllerClient::new(&addr).status().await.unwrap();
    assert_eq!(after.table, before.table);
    assert_eq!(after.transition, before.transition);
    assert_eq!(after.members.len(), before.members.len());
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
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

#[tokio::test(unhandled_panic = "shutdown_runtime")]
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
    let report = |node, epoch| SeenRequest {
        node,
        epoch,
        streams: vec![],
        cleaned: vec![],
        known: None,
        wait_ms: None,
    };
    let status = client.seen(&report(a.node, Some(1))).await.unwrap();
    assert_eq!(status.epoch, Some(1), "the report answers with the table");
    let seen =
        |s: &haze_controller::api::Status, id| s.members.iter().find(|m| m.id == id).unwrap().seen;
    assert_eq!(seen(&status, a.node).map(|s| s.epoch), Some(Some(1)));
    assert_eq!(seen(&status, b.node), None);
    client.seen(&report(b.node, None)).await.unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(seen(&status, b.node).map(|s| s.epoch), Some(None));

    let err = client.seen(&report(NodeId(99), Some(1))).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Refused(e) if e.error == "unknown_node"),
        "{err}"
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_node_that_has_the_current_state_hears_of_the_next_change_as_it_happens() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, task) = start(dir.path()).await;
    let client = ControllerClient::new(&addr);
    let a = client.register("127.0.0.1:7701").await.unwrap();
    let report = |known, wait_ms| SeenRequest {
        node: a.node,
        epoch: None,
        streams: vec![],
        cleaned: vec![],
        known,
        wait_ms,
    };
    let first = client.seen(&report(None, None)).await.unwrap();
    let version = first
        .version
        .expect("the controller says which state it answers with");

    // Nothing changes: the answer comes when the wait is over, with the same state.
    let idle = client
        .seen(&report(Some(version), Some(200)))
        .await
        .unwrap();
    assert_eq!(idle.version, Some(version));
    assert_eq!(idle.members.len(), 1);

    // A node registers while the poll waits: the answer carries it.
    let waiting = {
        let client = client.clone();
        let request = report(Some(version), Some(5_000));
        tokio::spawn(async move { client.seen(&request).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    client.register("127.0.0.1:7702").await.unwrap();
    let news = waiting.await.unwrap().unwrap();
    assert_ne!(news.version, Some(version));
    assert_eq!(
        news.members.len(),
        2,
        "the answer shows the change it waited for"
    );

    // A version from another controller process is not the current one: answered at once.
    let other = news.version.unwrap() ^ (1 << 40);
    let stale = client
        .seen(&report(Some(other), Some(5_000)))
        .await
        .unwrap();
    assert_eq!(stale.members.len(), 2);
    shutdown.cancel();
    task.await.unwrap();
}

/// A server at a loopback address that reads one request's headers, answers `answer` and
/// closes.
async fn answering(answer: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            request.push(byte[0]);
        }
        stream.write_all(answer).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    addr
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn client_errors_keep_their_causes() {
    use std::error::Error as _;
    let nobody = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nobody_addr = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let err = ControllerClient::new(&nobody_addr)
        .status()
        .await
        .unwrap_err();
    // The refusal is in the chain of causes, under the HTTP client's error.
    let io = std::iter::successors(err.source(), |e| (*e).source())
        .find_map(|e| e.downcast_ref::<std::io::Error>());
    assert_eq!(
        io.map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{err:?}"
    );

    let addr = answering(b"SSH-2.0-OpenSSH\r\n\r\n").await;
    let err = ControllerClient::new(&addr).status().await.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Unreachable {
                source: haze_http::HttpError::Http { .. },
                ..
            }
        ),
        "{err:?}"
    );

    let addr = answering(b"HTTP/1.1 500 Oops\r\n\r\nnot JSON").await;
    let err = ControllerClient::new(&addr).status().await.unwrap_err();
    let ClientError::BadAnswer {
        source: AnswerError::NotAnApiError { status, source },
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*status, 500);
    assert!(
        source.is_syntax(),
        "the body's JSON error is kept: {source}"
    );

    let addr = answering(b"HTTP/1.1 200 OK\r\n\r\n{\"cluster\": 1}").await;
    let err = ControllerClient::new(&addr).status().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::BadAnswer { source: AnswerError::Json(e), .. } if e.is_data()),
        "{err:?}"
    );
}
