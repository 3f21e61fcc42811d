//! How long a write takes to reach subscribed devices: `DEVICES` WebSocket sessions on one node
//! (or spread over several), each subscribed to one of `KEYS` keys, while a writer sets those
//! keys over HTTP at `RATE` writes per second. Each write's value is its sequence number; each
//! device notes when it hears it. Prints the latency percentiles from the write's send to each
//! device's receipt (one sample per device per write), and how many pushes were missed.
//!
//! ```sh
//! cargo run --release -p haze-node --example live_fanout -- \
//!     --http 127.0.0.1:7781 [--http 127.0.0.1:7782 ...] [--devices 1000] [--keys 10] \
//!     [--rate 50] [--seconds 10] [--token TOKEN]
//! ```
//!
//! `scripts/bench-live.sh` starts the nodes and runs this. Devices connect to the `--http`
//! addresses in turn; writes go to the first. Each device's session and the writer run in one
//! process with the node's clock, so one clock measures both ends.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark reports on standard output"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures wall-clock latency"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

struct Args {
    http: Vec<String>,
    devices: usize,
    keys: usize,
    rate: u64,
    seconds: u64,
    token: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        http: Vec::new(),
        devices: 1000,
        keys: 10,
        rate: 50,
        seconds: 10,
        token: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--http" => args.http.push(value),
            "--devices" => args.devices = value.parse().expect("--devices N"),
            "--keys" => args.keys = value.parse().expect("--keys N"),
            "--rate" => args.rate = value.parse().expect("--rate N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--token" => args.token = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(!args.http.is_empty(), "give --http ADDR");
    args
}

/// When each write was sent, by sequence number.
type Sent = Arc<Mutex<Vec<Option<Instant>>>>;

#[tokio::main]
async fn main() {
    let args = args();
    let total = usize::try_from(args.rate * args.seconds).expect("a count of writes");
    let sent: Sent = Arc::new(Mutex::new(vec![None; total]));
    let samples = Arc::new(Mutex::new(Vec::<Duration>::with_capacity(total * 10)));
    let subscribed = Arc::new(AtomicUsize::new(0));
    let connecting = Instant::now();
    let mut devices = Vec::new();
    for i in 0..args.devices {
        let addr = args.http[i % args.http.len()].clone();
        let key = format!("live:{}", i % args.keys);
        let (sent, samples, subscribed) = (sent.clone(), samples.clone(), subscribed.clone());
        let token = args.token.clone();
        devices.push(tokio::spawn(async move {
            device(addr, key, token, sent, samples, subscribed).await;
        }));
    }
    while subscribed.load(Ordering::Acquire) < args.devices {
        assert!(
            connecting.elapsed() < Duration::from_secs(60),
            "only {} of {} devices subscribed within 60 s",
            subscribed.load(Ordering::Acquire),
            args.devices
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{} devices subscribed to {} keys in {:.1?}",
        args.devices,
        args.keys,
        connecting.elapsed()
    );
    // The watches between nodes are announced just after a subscription changes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut writer = Writer::connect(&args.http[0], args.token.clone()).await;
    let every = Duration::from_micros(1_000_000 / args.rate.max(1));
    let mut tick = tokio::time::interval(every);
    let started = Instant::now();
    for seq in 0..total {
        tick.tick().await;
        let key = format!("live:{}", seq % args.keys);
        sent.lock().await[seq] = Some(Instant::now());
        writer.set(&key, seq).await;
    }
    let writing = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for device in &devices {
        device.abort();
    }
    let mut samples = samples.lock().await.clone();
    samples.sort_unstable();
    let expected = total * args.devices / args.keys;
    let pct = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len().max(1)) - 1;
        samples.get(i).copied().unwrap_or_default()
    };
    println!(
        "{total} writes in {writing:.1?} ({} nodes), {} pushes heard of {expected} due ({} missed)",
        args.http.len(),
        samples.len(),
        expected.saturating_sub(samples.len())
    );
    println!(
        "write → device latency: p50 {:.1?}  p90 {:.1?}  p99 {:.1?}  max {:.1?}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples.last().copied().unwrap_or_default()
    );
}

/// One device: subscribes to `key`, then notes when it hears each sequence number.
async fn device(
    addr: String,
    key: String,
    token: Option<String>,
    sent: Sent,
    samples: Arc<Mutex<Vec<Duration>>>,
    subscribed: Arc<AtomicUsize>,
) {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .expect("a WebSocket session");
    let send = |m: serde_json::Value| Message::Text(m.to_string().into());
    if let Some(token) = token {
        socket
            .send(send(serde_json::json!({"type": "auth", "token": token})))
            .await
            .expect("auth sent");
    }
    socket
        .send(send(
            serde_json::json!({"id": 1, "type": "subscribe", "keys": [key]}),
        ))
        .await
        .expect("subscribe sent");
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let received = Instant::now();
        let body: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        match body["type"].as_str() {
            Some("subscribed") => {
                subscribed.fetch_add(1, Ordering::AcqRel);
            }
            Some("update") => {
                // A register's state: its value is the write's sequence number, as text.
                let seq = body["state"]["entry"]["value"]["string"]
                    .as_str()
                    .and_then(|s| s.parse::<usize>().ok());
                if let Some(seq) = seq
                    && let Some(Some(at)) = sent.lock().await.get(seq).copied()
                {
                    samples.lock().await.push(received - at);
                }
            }
            Some("authed") => {}
            other => panic!("unexpected message {other:?}: {text}"),
        }
    }
}

/// Writes over one kept-alive HTTP/1.1 connection.
struct Writer {
    stream: tokio::net::TcpStream,
    token: Option<String>,
    buf: Vec<u8>,
}

impl Writer {
    async fn connect(addr: &str, token: Option<String>) -> Writer {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the writer's connection");
        stream.set_nodelay(true).expect("nodelay");
        Writer {
            stream,
            token,
            buf: vec![0; 64 * 1024],
        }
    }

    async fn set(&mut self, key: &str, seq: usize) {
        let body = format!(r#"{{"value": "{seq}"}}"#);
        let auth = self
            .token
            .as_ref()
            .map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "POST /v1/keys/{key}/register HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("a write sent");
        // Read one response: headers, then Content-Length bytes of body.
        let mut got = Vec::new();
        loop {
            let n = self.stream.read(&mut self.buf).await.expect("a response");
            assert!(n > 0, "the node closed the writer's connection");
            got.extend_from_slice(&self.buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                assert!(text.starts_with("HTTP/1.1 200"), "a write failed: {text}");
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    return;
                }
            }
        }
    }
}
