//! Framing: `[length: u32 big-endian][body: length bytes]`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The bytes before a frame's body (its length).
pub const FRAME_HEADER_BYTES: usize = 4;

/// The default largest frame body: room for a batch of values at the default 64 KiB limit.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer announced a frame larger than the limit; nothing was allocated for it.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The connection closed in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame's body into `body` (replacing its contents). Returns `Ok(false)` on a clean
/// end of stream before a frame starts.
///
/// # Errors
///
/// [`FrameError::TooLarge`] before reading a body over `max_bytes`; [`FrameError::Truncated`] if
/// the stream ends mid-frame; [`FrameError::Io`].
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    body: &mut Vec<u8>,
    max_bytes: usize,
) -> Result<bool, FrameError> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut filled = 0;
    while filled < header.len() {
        match reader.read(&mut header[filled..]).await? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(FrameError::Truncated),
            n => filled += n,
        }
    }
    let size = u32::from_be_bytes(header) as usize;
    if size > max_bytes {
        return Err(FrameError::TooLarge {
            size,
            limit: max_bytes,
        });
    }
    // Grow the buffer with the bytes that actually arrive: a peer that announces a large frame
    // and sends nothing holds no memory for it.
    body.clear();
    let got = reader.take(size as u64).read_to_end(body).await?;
    if got < size {
        return Err(FrameError::Truncated);
    }
    Ok(true)
}

/// Appends a frame holding `body` to `out` (the caller writes `out` when it has collected the
/// frames it wants to send together).
pub fn write_frame(out: &mut Vec<u8>, body: &[u8]) {
    write_frame_with(out, |out| out.extend_from_slice(body));
}

/// Appends a frame whose body `body` appends to `out`: encoded in place, after room for the
/// frame's length (filled in after), rather than encoded apart and copied.
pub fn write_frame_with(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let size = u32::try_from(out.len() - start - 4)
        .expect("frames are far below 4 GiB: bodies are bounded by the limits");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Writes `bytes` (whole frames) and flushes.
///
/// # Errors
///
/// The connection's error.
pub async fn flush_frames<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello");
        write_frame(&mut wire, b"");
        let mut in_place = b"hello".to_vec(); // after bytes already there
        write_frame_with(&mut in_place, |body| body.extend_from_slice(b"hello"));
        write_frame_with(&mut in_place, |_| {});
        assert_eq!(
            &in_place[5..],
            wire.as_slice(),
            "the same frames, encoded in place"
        );
        let mut reader = wire.as_slice();
        let mut body = Vec::new();
        assert!(read_frame(&mut reader, &mut body, 16).await.unwrap());
        assert_eq!(body, b"hello");
        assert!(read_frame(&mut reader, &mut body, 16).await.unwrap());
        assert!(body.is_empty());
        assert!(!read_frame(&mut reader, &mut body, 16).await.unwrap());

        let huge = [0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &huge[..], &mut body, 16).await,
            Err(FrameError::TooLarge { .. })
        ));
        let cut = [0, 0, 0, 5, b'h'];
        assert!(matches!(
            read_frame(&mut &cut[..], &mut body, 16).await,
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &cut[..2], &mut body, 16).await,
            Err(FrameError::Truncated)
        ));
    }
}
