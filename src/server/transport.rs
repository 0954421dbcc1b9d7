//! What a connection is served over: any byte stream (a TCP socket in production, an in-memory
//! duplex in tests, a TLS stream later) with one extra hook for the HTTP/1.1 loop's reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads once into `buf` (a stack buffer of the caller's), returning how many bytes were
    /// read; 0 at the end of input.
    fn poll_read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read_buf = ReadBuf::new(buf);
        ready!(Pin::new(self).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }
}

impl Transport for tokio::io::DuplexStream {}

impl Transport for TcpStream {
    /// A short read means the socket is drained, so its readiness is cleared right away (by
    /// reporting `WouldBlock` to tokio, which keeps any readiness that arrived meanwhile) instead
    /// of being learnt from a second, empty `read` call on the next request.
    fn poll_read_some(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            let mut read = None;
            let len = buf.len();
            let result = self.try_io(Interest::READABLE, || {
                let n = self.try_read(buf)?;
                read = Some(n);
                if n > 0 && n < len {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            });
            return match (result, read) {
                (Ok(n), _) | (Err(_), Some(n)) => Poll::Ready(Ok(n)),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => Poll::Ready(Err(e)),
            };
        }
    }
}
