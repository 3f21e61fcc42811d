//! A small HTTP/1 client over hyper: one connection per request (the controller's clients make
//! few: a long poll at a time, a command now and then), over TLS when given a configuration,
//! with a deadline for the whole exchange and a bound on the answer's size.

use std::sync::Arc;
use std::time::Duration;

use haze_tls::rustls::ClientConfig;
use haze_tls::tokio_rustls::TlsConnector;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The largest answer read (a controller's status with a table of 4096 partitions is well
/// under this).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// Why a request did not get an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server could not be reached.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Its address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (another cluster's CA, a wrong name, plaintext...).
    #[error("TLS with {addr}")]
    Tls {
        /// Its address.
        addr: String,
        /// Why.
        #[source]
        source: haze_tls::TlsError,
    },
    /// No complete answer within the deadline.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// Its address.
        addr: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The exchange broke (the connection closed, an answer that is not HTTP).
    #[error("HTTP with {addr}")]
    Http {
        /// Its address.
        addr: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// The answer is larger than any this client reads.
    #[error("an answer from {addr} larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge {
        /// Its address.
        addr: String,
    },
    /// The request could not be built (a path that is not a URI).
    #[error("a malformed request: {0}")]
    Request(String),
}

/// A client of one HTTP server, plaintext or over TLS.
#[derive(Clone)]
pub struct HttpClient {
    addr: String,
    tls: Option<Arc<ClientConfig>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// An answer: its status and its body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

impl HttpClient {
    /// A client of the server at `addr` (`host:port`), over TLS with `tls` if given, each
    /// request answered within `timeout` or failed.
    pub fn new(addr: impl Into<String>, tls: Option<Arc<ClientConfig>>, timeout: Duration) -> Self {
        HttpClient {
            addr: addr.into(),
            tls,
            timeout,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `method path` with `body` (JSON) and the headers given, and returns the answer.
    ///
    /// # Errors
    ///
    /// [`HttpError`]: not reached, TLS refused, no answer in time, a broken exchange, an answer
    /// too large.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, HttpError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange(method, path, headers, body))
            .await
            .map_err(|_| HttpError::Timeout {
                addr: self.addr.clone(),
                timeout,
            })?
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, HttpError> {
        let addr = self.addr.clone();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| HttpError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &addr);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| HttpError::Request(e.to_string()))?;
        match &self.tls {
            Some(tls) => {
                let name = haze_tls::server_name(&addr).map_err(|source| HttpError::Tls {
                    addr: addr.clone(),
                    source,
                })?;
                let stream = TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| HttpError::Tls {
                        addr: addr.clone(),
                        source: haze_tls::TlsError::Handshake(e),
                    })?;
                send(&addr, stream, request).await
            }
            None => send(&addr, tcp, request).await,
        }
    }
}

async fn send<S>(
    addr: &str,
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<Answer, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let http = |source| HttpError::Http {
        addr: addr.to_string(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // The connection is driven beside the request; it ends with the answer (or the deadline,
    // which drops it).
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let answer = sender.send_request(request).await.map_err(http)?;
    let status = answer.status().as_u16();
    let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => http(*e),
            Err(_) => HttpError::TooLarge {
                addr: addr.to_string(),
            },
        })?
        .to_bytes();
    driver.abort();
    Ok(Answer { status, body })
}
