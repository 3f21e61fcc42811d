//! A connection's first exchange: a hello of a version this node speaks, from a caller of a
//! role it accepts (a peer must be of this node's cluster).

use haze_protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response, Role, WireError, read_frame};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};

use super::{End, send};
use crate::node::Node;

/// Reads the hello and answers it. Returns the caller's role; `Err(None)` if the caller closed
/// the connection before saying anything, `Err(Some(why))` if it was refused (it was told).
pub(super) async fn greet<R, W>(
    node: &Node,
    reader: &mut BufReader<R>,
    writer: &mut W,
    body: &mut Vec<u8>,
) -> Result<Role, Option<End>>
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
    let (id, version, role) = match hello {
        Err(_) => return Err(Some(End::Timeout("handshake"))),
        Ok(Ok(false)) => return Err(None),
        Ok(Err(e)) => return Err(Some(End::Protocol(e.to_string()))),
        Ok(Ok(true)) => match Request::decode(body) {
            Ok((id, Request::Hello { version, role })) => (id, version, role),
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
    let welcome = Response::Hello {
        version: PROTOCOL_VERSION,
    };
    send(writer, id, &welcome).await.map_err(|_| None)?;
    Ok(role)
}
