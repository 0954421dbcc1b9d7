//! What a connection is served over: any byte stream (a TCP socket in production, an in-memory
//! duplex in tests, a TLS stream) with one extra hook for the engines' reads; and the two ways
//! both engines end a write or a connection (a flushed write, a lingering close).

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How much unread input a closing connection drains at most.
const LINGER_BYTES: usize = 64 * 1024;

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

/// Writes `bytes` and flushes what the transport buffers (nothing for TCP, records for TLS).
pub(crate) async fn write_all_flushed<T: Transport>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// Closing a socket with unread input makes the kernel send a reset, which can destroy the
/// response before the client reads it. So: stop sending, and read and discard what the client
/// still sends, for a bounded time and amount, before closing.
pub(crate) async fn linger_close<T: Transport>(io: &mut T, linger: Duration) {
    let deadline = Instant::now() + linger;
    // A TLS shutdown writes a close_notify, which a client that does not read can hold up.
    if tokio::time::timeout_at(deadline, io.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        let read = poll_fn(|cx| {
            let mut sink = [MaybeUninit::<u8>::uninit(); 4096];
            let mut sink = ReadBuf::uninit(&mut sink);
            io.poll_read_some(cx, &mut sink)
                .map_ok(|()| sink.filled().len())
        });
        match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(n)) => discarded += n,
        }
    }
}
