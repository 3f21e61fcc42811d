//! A transport that cuts the connection part-way through an exchange: at a chosen byte of a
//! chosen frame, in either direction. What passed before the cut arrived in full; nothing passes
//! after it, the socket is closed (the node sees a truncated frame or the end of the stream) and
//! every later dial is refused, so the client's retry cannot finish the exchange either.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use haze_protocol::{BoxFuture, BoxStream, Dial};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Where a connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Cut the node's answers (`true`) or the client's requests (`false`).
    pub answers: bool,
    /// The frame of that direction, counting the hello as 0.
    pub frame: u32,
    /// The byte of that frame (its 4-byte header included) where the cut falls; past its end,
    /// the connection is cut just after the whole frame passed.
    pub offset: u64,
}

/// Counts the frames (`[length: u32 big-endian][body]`) passing in one direction and finds the
/// position of the cut, if it falls in this direction.
#[derive(Debug, Clone, Copy, Default)]
struct Frames {
    /// Bytes passed.
    pos: u64,
    /// Frames passed in full.
    done: u32,
    /// Whether the current frame has begun, and how much of its header passed.
    begun: bool,
    header: [u8; 4],
    header_len: usize,
    /// Bytes of the current frame's body still to pass.
    body_left: u64,
    /// The frame and byte to cut at, if this direction is cut.
    target: Option<(u32, u64)>,
    /// The position of the cut, once known.
    stop: Option<u64>,
}

impl Frames {
    fn at_cut(&self) -> bool {
        self.stop == Some(self.pos)
    }

    /// Passes the bytes of `data` that come before the cut; returns how many.
    fn advance(&mut self, data: &[u8]) -> usize {
        let mut n = 0;
        while n < data.len() && !self.at_cut() {
            if !self.begun {
                self.begun = true;
                if let Some((frame, offset)) = self.target
                    && frame == self.done
                    && offset < 4
                {
                    self.stop = Some(self.pos + offset);
                }
            } else if self.header_len < 4 {
                self.header[self.header_len] = data[n];
                self.header_len += 1;
                (self.pos, n) = (self.pos + 1, n + 1);
                if self.header_len == 4 {
                    self.body_left = u64::from(u32::from_be_bytes(self.header));
                    if let Some((frame, offset)) = self.target
                        && frame == self.done
                        && self.stop.is_none()
                    {
                        self.stop = Some(self.pos - 4 + offset.min(4 + self.body_left));
                    }
                }
            } else {
                let mut take = self.body_left.min((data.len() - n) as u64);
                if let Some(stop) = self.stop {
                    take = take.min(stop - self.pos);
                }
                self.body_left -= take;
                (self.pos, n) = (self.pos + take, n + take as usize);
            }
            if self.begun && self.header_len == 4 && self.body_left == 0 {
                (self.begun, self.header_len, self.done) = (false, 0, self.done + 1);
            }
        }
        n
    }
}

/// A TCP stream that is cut at its [`Cut`].
struct CutStream {
    /// `None` once cut: dropping the socket is the cut.
    inner: Option<TcpStream>,
    sent: Frames,
    received: Frames,
    cut: Arc<AtomicBool>,
    /// Tasks waiting on the socket, woken when the other direction cuts it.
    wakers: Vec<Waker>,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "cut by the test")
}

impl CutStream {
    fn cut(&mut self) {
        self.inner = None;
        self.cut.store(true, Ordering::Relaxed);
        for waker in self.wakers.drain(..) {
            waker.wake();
        }
    }

    fn wait(&mut self, cx: &Context<'_>) {
        if !self.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.wakers.push(cx.waker().clone());
        }
    }
}

impl AsyncRead for CutStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(cut_error()));
        };
        // Read no more than the caller can take: what passes the cut is all handed over.
        let mut scratch = vec![0u8; buf.remaining().min(16 * 1024)];
        let mut read = ReadBuf::new(&mut scratch);
        match Pin::new(inner).poll_read(cx, &mut read) {
            Poll::Pending => {
                this.wait(cx);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let got = read.filled();
                let passed = this.received.advance(got);
                buf.put_slice(&got[..passed]);
                if this.received.at_cut() {
                    this.cut();
                    if passed == 0 {
                        return Poll::Ready(Err(cut_error()));
                    }
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl AsyncWrite for CutStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(cut_error()));
        };
        let mut probe = this.sent;
        let allowed = probe.advance(buf);
        if allowed == 0 && !buf.is_empty() {
            this.cut();
            return Poll::Ready(Err(cut_error()));
        }
        match Pin::new(inner).poll_write(cx, &buf[..allowed]) {
            Poll::Pending => {
                this.wait(cx);
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(written)) => {
                this.sent.advance(&buf[..written]);
                if this.sent.at_cut() {
                    this.cut();
                }
                Poll::Ready(Ok(written))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_flush(cx),
            None => Poll::Ready(Err(cut_error())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Dials TCP; the first connection is cut at `cut`, and once it is, every dial is refused.
pub struct CutDial {
    plan: Mutex<Option<Cut>>,
    cut: Arc<AtomicBool>,
    dials: AtomicU64,
}

impl CutDial {
    pub fn new(cut: Cut) -> CutDial {
        CutDial {
            plan: Mutex::new(Some(cut)),
            cut: Arc::default(),
            dials: AtomicU64::new(0),
        }
    }

    /// Returns how many connections were opened.
    pub fn dials(&self) -> u64 {
        self.dials.load(Ordering::Relaxed)
    }

    /// Returns whether the connection was cut.
    pub fn was_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }
}

impl Dial for CutDial {
    fn dial(&self, addr: String) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            if self.was_cut() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the connection was cut",
                ));
            }
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            self.dials.fetch_add(1, Ordering::Relaxed);
            let plan = self.plan.lock().unwrap().take();
            let target = |answers| {
                plan.filter(|c| c.answers == answers)
                    .map(|c| (c.frame, c.offset))
            };
            Ok(Box::new(CutStream {
                inner: Some(stream),
                sent: Frames {
                    target: target(false),
                    ..Frames::default()
                },
                received: Frames {
                    target: target(true),
                    ..Frames::default()
                },
                cut: self.cut.clone(),
                wakers: Vec::new(),
            }) as BoxStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: usize) -> Vec<u8> {
        let mut out = (body as u32).to_be_bytes().to_vec();
        out.resize(4 + body, 7);
        out
    }

    /// Feeds `data` in pieces of `piece` bytes; returns the bytes passed.
    fn passed(target: (u32, u64), data: &[u8], piece: usize) -> usize {
        let mut frames = Frames {
            target: Some(target),
            ..Frames::default()
        };
        let mut total = 0;
        for chunk in data.chunks(piece) {
            let n = frames.advance(chunk);
            total += n;
            if n < chunk.len() || frames.at_cut() {
                break;
            }
        }
        total
    }

    #[test]
    fn the_cut_falls_on_the_chosen_byte_of_the_chosen_frame() {
        let data: Vec<u8> = [frame(3), frame(10), frame(0), frame(5)].concat();
        for piece in [1, 2, 3, 5, 64] {
            assert_eq!(passed((0, 0), &data, piece), 0);
            assert_eq!(passed((0, 2), &data, piece), 2, "inside the first header");
            assert_eq!(
                passed((1, 0), &data, piece),
                7,
                "just before the second frame"
            );
            assert_eq!(
                passed((1, 9), &data, piece),
                7 + 9,
                "inside the second body"
            );
            assert_eq!(
                passed((1, 99), &data, piece),
                7 + 14,
                "just after the second frame"
            );
            assert_eq!(
                passed((2, 4), &data, piece),
                7 + 14 + 4,
                "after an empty frame"
            );
            assert_eq!(passed((3, 6), &data, piece), 7 + 14 + 4 + 6);
            assert_eq!(
                passed((4, 0), &data, piece),
                data.len(),
                "past the exchange"
            );
        }
    }
}
