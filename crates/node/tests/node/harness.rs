//! Talking to a node byte by byte: raw frames, raw HTTP, timeouts short enough to watch. The
//! node itself is `haze_testkit::TestNode`.

use std::net::SocketAddr;
use std::time::Duration;

use haze_node::NodeConfig;
use haze_protocol::{PROTOCOL_VERSION, Request, Response, write_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn short_timeouts() -> NodeConfig {
    NodeConfig {
        handshake_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..NodeConfig::default()
    }
}

pub fn frame(id: u64, request: &Request) -> Vec<u8> {
    let mut body = Vec::new();
    request.encode(id, &mut body);
    let mut out = Vec::new();
    write_frame(&mut out, &body);
    out
}

/// A raw connection that has completed the handshake.
pub async fn raw(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&frame(
            0,
            &Request::Hello {
                version: PROTOCOL_VERSION,
                role: haze_protocol::Role::Client,
                token: None,
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut stream).await,
        Some((
            0,
            Response::Hello {
                version: PROTOCOL_VERSION
            }
        ))
    );
    stream
}

/// Reads one response frame, or `None` when the node closed the connection (within 5 s).
pub async fn read_response(stream: &mut TcpStream) -> Option<(u64, Response)> {
    let read = async {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(Response::decode(&body).expect("the node sends valid responses"))
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the node answers or closes within 5 s")
}

/// Returns whether the node closed the connection (reads hit the end) within 5 s.
pub async fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue, // an error frame before the close
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or(false)
}

/// Sends one HTTP/1.1 request and returns the status and body.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // A node may answer (413) and close before reading a huge body: ignore a broken pipe then.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_all)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("an HTTP status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
