//! A channel against a scripted node over in-memory pipes (the [`Dial`] seam).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::*;
use crate::{
    BoxFuture, BoxStream, ErrorCode, RequestId, TypedOp, WireError, flush_frames, read_frame,
    write_frame,
};

/// Dials in-memory pipes whose far ends go to the test (the scripted node), or fails.
struct PipeDial {
    far_ends: mpsc::UnboundedSender<DuplexStream>,
    dials: AtomicUsize,
    unreachable: AtomicBool,
}

impl Dial for PipeDial {
    fn dial(&self, _addr: String) -> BoxFuture<'_, io::Result<BoxStream>> {
        self.dials.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.unreachable.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::ConnectionRefused.into());
            }
            let (near, far) = tokio::io::duplex(64 * 1024);
            self.far_ends
                .send(far)
                .map_err(|_| io::Error::other("the node is gone"))?;
            Ok(Box::new(near) as BoxStream)
        })
    }
}

/// The node's side: the connections dialled, one at a time.
struct Node {
    dial: Arc<PipeDial>,
    far_ends: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Node {
    fn new() -> Node {
        let (tx, far_ends) = mpsc::unbounded_channel();
        let dial = Arc::new(PipeDial {
            far_ends: tx,
            dials: AtomicUsize::new(0),
            unreachable: AtomicBool::new(false),
        });
        Node { dial, far_ends }
    }

    fn channel(&self, reconnect_backoff: Duration) -> Channel {
        Channel::lazy(
            "node",
            ChannelConfig {
                dial: self.dial.clone(),
                connect_timeout: Duration::from_secs(10),
                request_timeout: Duration::from_secs(10),
                reconnect_backoff,
                ..ChannelConfig::default()
            },
        )
    }

    fn dials(&self) -> usize {
        self.dial.dials.load(Ordering::SeqCst)
    }

    /// Takes the next connection dialled, before its handshake.
    async fn accept(&mut self) -> Peer {
        let stream = within(self.far_ends.recv())
            .await
            .expect("a dialled connection");
        Peer {
            stream,
            body: Vec::new(),
        }
    }

    /// Takes the next connection dialled and answers its hello.
    async fn accept_hello(&mut self) -> Peer {
        let mut peer = self.accept().await;
        let (id, hello) = peer.request().await;
        assert!(matches!(hello, Request::Hello { .. }), "{hello:?}");
        peer.answer(id, &Response::Hello { version: 1 }).await;
        peer
    }
}

/// One connection, seen from the node.
struct Peer {
    stream: DuplexStream,
    body: Vec<u8>,
}

impl Peer {
    async fn request(&mut self) -> (RequestId, Request) {
        let read = within(read_frame(&mut self.stream, &mut self.body, 1 << 20)).await;
        assert!(read.unwrap(), "a request");
        Request::decode(&self.body).unwrap()
    }

    async fn answer(&mut self, id: RequestId, response: &Response) {
        let (mut body, mut frame) = (Vec::new(), Vec::new());
        response.encode(id, &mut body);
        write_frame(&mut frame, &body);
        flush_frames(&mut self.stream, &frame).await.unwrap();
    }
}

/// Waits for what the channel should do at once: a channel that fails to fails the test
/// instead of hanging it.
async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f)
        .await
        .expect("the channel acts within 5 s")
}

fn get(n: u64) -> Request {
    Request::Get {
        key: n.to_be_bytes().to_vec(),
    }
}

fn key_of(request: &Request) -> u64 {
    let key = request.key().expect("a request about a key");
    u64::from_be_bytes(key.try_into().expect("an 8-byte key"))
}

#[tokio::test]
async fn requests_are_pipelined_and_answers_in_any_order_find_their_request() {
    let mut node = Node::new();
    let channel = node.channel(Duration::ZERO);
    let calls: Vec<_> = (0..64u64)
        .map(|n| {
            let channel = channel.clone();
            tokio::spawn(async move { (n, channel.send(get(n), true).await) })
        })
        .collect();
    let mut peer = node.accept_hello().await;
    // Every request arrives before any is answered: they are all in flight at once.
    let mut requests = Vec::new();
    for _ in 0..64 {
        requests.push(peer.request().await);
    }
    for (id, request) in requests.iter().rev() {
        let digest = Some(key_of(request));
        peer.answer(*id, &Response::Digest(digest)).await;
    }
    for call in calls {
        let (n, answer) = call.await.unwrap();
        assert_eq!(answer, Ok(Response::Digest(Some(n))));
    }
    assert_eq!(node.dials(), 1, "one connection carries them all");
}

#[tokio::test]
async fn a_lost_connection_is_reported_and_an_idempotent_request_is_tried_once_more() {
    let mut node = Node::new();
    let channel = node.channel(Duration::ZERO);
    let node_side = tokio::spawn(async move {
        // A counter addition: the connection breaks after it arrived.
        let mut peer = node.accept_hello().await;
        peer.request().await;
        drop(peer);
        // A read: the first try's connection breaks, the second is answered.
        let mut peer = node.accept_hello().await;
        peer.request().await;
        drop(peer);
        let mut peer = node.accept_hello().await;
        let (id, _) = peer.request().await;
        peer.answer(id, &Response::Value(None)).await;
        // Another read: this connection breaks, and so does the second try's.
        peer.request().await;
        drop(peer);
        let mut peer = node.accept_hello().await;
        peer.request().await;
        node
    });

    let add = Request::Op {
        key: b"k".to_vec(),
        op: TypedOp::CounterAdd(1),
    };
    let lost = channel.send(add, false).await.unwrap_err();
    assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
    assert!(lost.is_indeterminate());
    assert_eq!(channel.send(get(1), true).await, Ok(Response::Value(None)));
    let lost = channel.send(get(2), true).await.unwrap_err();
    assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
    let node = node_side.await.unwrap();
    assert_eq!(node.dials(), 4, "never a third try");
}

/// A request whose connection broke, and whose second try meets `then` (no node, or a refused
/// handshake): the error the caller gets.
async fn retry_after_a_lost_connection_meets(then: Option<WireError>) -> CallError {
    let mut node = Node::new();
    let channel = node.channel(Duration::ZERO);
    let node_side = tokio::spawn(async move {
        let mut peer = node.accept_hello().await;
        peer.request().await;
        match then {
            None => node.dial.unreachable.store(true, Ordering::SeqCst),
            Some(refusal) => {
                drop(peer);
                let mut peer = node.accept().await;
                peer.request().await;
                peer.answer(0, &Response::Error(refusal)).await;
                return;
            }
        }
        drop(peer);
    });
    let error = channel.send(get(1), true).await.unwrap_err();
    node_side.await.unwrap();
    error
}

#[tokio::test]
async fn an_idempotent_retry_that_cannot_be_sent_reports_the_first_try_lost() {
    let lost = retry_after_a_lost_connection_meets(None).await;
    assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
    let wrong_cluster = WireError::new(ErrorCode::WrongCluster, "not ours");
    let lost = retry_after_a_lost_connection_meets(Some(wrong_cluster)).await;
    assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
    // A node too busy to take the second try did not take it: the first try's loss counts.
    let busy = WireError::new(ErrorCode::Overloaded, "too many connections");
    let lost = retry_after_a_lost_connection_meets(Some(busy)).await;
    assert!(matches!(lost, CallError::ConnectionLost(_)), "{lost:?}");
}

#[tokio::test]
async fn a_failed_connect_fails_fast_within_the_backoff() {
    let node = Node::new();
    node.dial.unreachable.store(true, Ordering::SeqCst);
    let channel = node.channel(Duration::from_secs(3600));
    let first = channel.send(Request::Ping, true).await.unwrap_err();
    assert!(matches!(first, CallError::Connect { .. }), "{first:?}");
    assert!(!first.is_indeterminate());
    node.dial.unreachable.store(false, Ordering::SeqCst);
    assert_eq!(channel.send(Request::Ping, true).await, Err(first));
    assert_eq!(node.dials(), 1, "no second attempt within the backoff");

    // Without a backoff, every request tries.
    let channel = node.channel(Duration::ZERO);
    node.dial.unreachable.store(true, Ordering::SeqCst);
    channel.send(Request::Ping, true).await.unwrap_err();
    channel.send(Request::Ping, true).await.unwrap_err();
    assert_eq!(node.dials(), 3);
}

#[tokio::test]
async fn a_refused_handshake_is_not_remembered() {
    let mut node = Node::new();
    let channel = node.channel(Duration::from_secs(3600));
    let node_side = tokio::spawn(async move {
        for _ in 0..2 {
            let mut peer = node.accept().await;
            peer.request().await;
            let refusal = WireError::new(ErrorCode::WrongCluster, "not ours");
            peer.answer(0, &Response::Error(refusal)).await;
        }
        let mut peer = node.accept_hello().await;
        let (id, _) = peer.request().await;
        peer.answer(id, &Response::Pong).await;
        node
    });
    let wrong_cluster =
        |e: &CallError| matches!(e, CallError::Refused(e) if e.code == ErrorCode::WrongCluster);
    let refused = Channel::connect("node", channel.config().clone())
        .await
        .unwrap_err();
    assert!(wrong_cluster(&refused), "{refused:?}");
    assert!(!refused.is_indeterminate());
    let refused = channel.send(Request::Ping, true).await.unwrap_err();
    assert!(wrong_cluster(&refused), "{refused:?}");
    // A node that answered may take the next attempt, backoff or not.
    assert_eq!(channel.send(Request::Ping, true).await, Ok(Response::Pong));
    assert_eq!(node_side.await.unwrap().dials(), 3);
}

#[tokio::test]
async fn a_timeout_retires_the_connection_and_epoch_notices_are_shared() {
    let mut node = Node::new();
    let channel = Channel::lazy(
        "node",
        ChannelConfig {
            request_timeout: Duration::from_millis(50),
            ..node.channel(Duration::ZERO).config().clone()
        },
    );
    let sibling = channel.sibling("other", channel.config().clone());
    let node_side = tokio::spawn(async move {
        let mut silent = node.accept_hello().await;
        silent.request().await;
        let mut peer = node.accept_hello().await;
        let (id, _) = peer.request().await;
        peer.answer(0, &Response::Epoch(7)).await;
        peer.answer(id, &Response::Pong).await;
        // The silent connection stays open until the end: only the timeout retired it.
        drop(silent);
        node
    });
    let timeout = channel.send(Request::Ping, true).await.unwrap_err();
    assert_eq!(timeout, CallError::Timeout(Duration::from_millis(50)));
    assert!(timeout.is_indeterminate());
    assert_eq!(channel.send(Request::Ping, true).await, Ok(Response::Pong));
    assert_eq!((channel.epoch_heard(), sibling.epoch_heard()), (7, 7));
    assert_eq!(sibling.addr(), "other");
    assert_eq!(node_side.await.unwrap().dials(), 2);
}
