//! What a connection is served over: any byte stream (a TCP socket in production, an in-memory
//! duplex in tests, a TLS stream) with one extra hook for the HTTP/1.1 loop's reads.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A connection's byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Reads once into `buf` (over a stack buffer of the caller's, left uninitialized so that no
    /// read costs a memset); nothing filled means the end of input.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self).poll_read(cx, buf)
    }
}

impl Transport for tokio::io::DuplexStream {}

impl Transport for tokio_rustls::server::TlsStream<TcpStream> {}

impl Transport for TcpStream {
    /// A short read means the socket is drained, so its readiness is cleared right away (by
    /// reporting `WouldBlock` to tokio, which keeps any readiness that arrived meanwhile) instead
    /// of being learnt from a second, empty `read` call on the next request.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            let mut read = None;
            let capacity = buf.remaining();
            let result = self.try_io(Interest::READABLE, || {
                let n = self.try_read_buf(buf)?;
                read = Some(n);
                if n > 0 && n < capacity {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(n)
                }
            });
            return match (result, read) {
                (Ok(_), _) | (Err(_), Some(_)) => Poll::Ready(Ok(())),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => Poll::Ready(Err(e)),
            };
        }
    }
}
