//! A connection's first exchange: a hello of a version this node speaks, from a caller of a
//! role it accepts (a peer must be of this node's cluster).

use haze_protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response, Role, WireError, read_frame};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::{End, send};
use crate::node::Node;
use crate::security::Caller;

/// Reads the hello and answers it. Returns the caller's role and what it proved (`identity`:
/// what its TLS certificate names, if any); `Err(None)` if the caller closed the connection
/// before saying anything, `Err(Some(why))` if it was refused (it was told why).
pub(super) async fn greet<R, W>(
    node: &Node,
    reader: &mut BufReader<R>,
    writer: &mut W,
    body: &mut Vec<u8>,
    identity: Option<&haze_tls::Identity>,
) -> Result<(Role, Caller), Option<End>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = node.config();
    let hello = tokio::time::timeout(
        config.handshake_timeout,
        read_frame(reader, body, config.max_frame_bytes),
    )
    .await;
    let (id, version, role, token) = match hello {
        Err(_) => return Err(Some(End::Timeout("handshake"))),
        Ok(Ok(false)) => return Err(None),
        Ok(Err(e)) => return Err(Some(End::Protocol(e.to_string()))),
        Ok(Ok(true)) => match Request::decode(body) {
            Ok((
                id,
                Request::Hello {
                    version,
                    role,
                    token,
                },
            )) => (id, version, role, token),
            Ok((id, _)) => {
                let error =
                    WireError::new(ErrorCode::BadRequest, "the first request must be a hello");
                let _ = send(writer, id, &Response::Error(error)).await;
                return Err(Some(End::Protocol("no hello".into())));
            }
            Err(e) => {
                let error = WireError::new(ErrorCode::BadRequest, e.to_string());
                let _ = send(writer, e.request_id.unwrap_or(0), &Response::Error(error)).await;
                return Err(Some(End::Protocol(e.to_string())));
            }
        },
    };
    if version != PROTOCOL_VERSION {
        let error = WireError::new(
            ErrorCode::UnsupportedVersion,
            format!("this node speaks protocol version {PROTOCOL_VERSION}, not {version}"),
        );
        let _ = send(writer, id, &Response::Error(error)).await;
        return Err(Some(End::Protocol("unsupported version".into())));
    }
    if let Role::Peer { cluster } = role {
        let mine = node.view().map(|v| v.cluster);
        if mine != Some(cluster) {
            let message = match mine {
                Some(mine) => {
                    format!("this node belongs to cluster {mine:016x}, not {cluster:016x}")
                }
                None => "this node is not in a cluster (yet)".to_string(),
            };
            let error = WireError::new(ErrorCode::WrongCluster, message);
            let _ = send(writer, id, &Response::Error(error)).await;
            return Err(Some(End::Protocol("a peer of another cluster".into())));
        }
    }
    let caller = match crate::security::authenticate(
        &config.security,
        node.cluster().tokens(),
        role,
        token.as_deref(),
        identity,
        node.replica().now_ms(),
    ) {
        Ok(caller) => caller,
        Err(e) => {
            let _ = send(writer, id, &Response::Error(e.to_wire())).await;
            node.metrics()
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Some(End::Protocol(e.to_string())));
        }
    };
    let welcome = Response::Hello {
        version: PROTOCOL_VERSION,
    };
    send(writer, id, &welcome).await.map_err(|_| None)?;
    Ok((role, caller))
}
