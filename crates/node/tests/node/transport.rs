//! The transport seam: a node and a client over an in-memory network instead of TCP, as a
//! simulation will run them.

use std::sync::Arc;

use haze_client::{Client, ClientConfig};
use haze_crdt::{ActorId, ManualClock};
use haze_node::{Node, NodeConfig};
use haze_protocol::{BoxFuture, BoxStream, Dial, Listener};
use haze_storage::MemStore;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

/// A listener whose connections are in-memory pipes handed over by [`PipeDial`].
struct PipeListener(mpsc::UnboundedReceiver<tokio::io::DuplexStream>);

impl Listener for PipeListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxStream, String)>> {
        Box::pin(async move {
            match self.0.recv().await {
                Some(stream) => Ok((Box::new(stream) as BoxStream, "pipe".to_string())),
                // No dialer left: wait for shutdown like an idle TCP listener.
                None => std::future::pending().await,
            }
        })
    }

    fn local_addr(&self) -> std::io::Result<String> {
        Ok("pipe".into())
    }
}

/// A dialer that opens in-memory pipes to a [`PipeListener`].
struct PipeDial(Mutex<mpsc::UnboundedSender<tokio::io::DuplexStream>>);

impl Dial for PipeDial {
    fn dial(&self, _addr: String) -> BoxFuture<'_, std::io::Result<BoxStream>> {
        Box::pin(async move {
            let (near, far) = tokio::io::duplex(64 * 1024);
            self.0
                .lock()
                .await
                .send(far)
                .map_err(|_| std::io::Error::other("the listener is gone"))?;
            Ok(Box::new(near) as BoxStream)
        })
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn a_node_and_a_client_run_over_any_transport() {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = NodeConfig::default();
    let store = Arc::new(MemStore::new(config.store));
    let node = Node::start(
        config,
        store,
        ActorId::new(1),
        Arc::new(ManualClock::new(0)),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(haze_node::serve(
        node,
        PipeListener(rx),
        None,
        shutdown.clone(),
    ));

    let dial = Arc::new(PipeDial(Mutex::new(tx)));
    let client = Client::connect_with(
        "pipe",
        ClientConfig {
            dial,
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    client.ping().await.unwrap();
    assert_eq!(client.counter_add("k", 3).await.unwrap().value(), 3);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
