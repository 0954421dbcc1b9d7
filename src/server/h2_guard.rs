//! What hyper's HTTP/2 server does not limit, watched from the bytes: an IO wrapper that reads
//! the frame headers going in and out, notes the client's SETTINGS and its requests (for the
//! handshake and idle timeouts, enforced by `serve_h2`), and answers a flood of control frames
//! with GOAWAY `ENHANCE_YOUR_CALM`, as nginx does.
//!
//! Control frames (PING, SETTINGS, WINDOW_UPDATE, PRIORITY, RST_STREAM, empty DATA, and every
//! other type but HEADERS, DATA and CONTINUATION) spend a budget of [`BUDGET_MAX`] per
//! connection. The budget refills by [`REFILL_PER_SEC`] per second and by [`REQUEST_CREDIT`] per
//! request (a HEADERS frame), up to [`BUDGET_MAX`]; a client that overdraws it is sent GOAWAY
//! at the next outbound frame boundary, its further input is discarded (a bounded lingering
//! close, so the GOAWAY is not lost to a reset), and hyper then sees the end of input.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most control frames a connection may send in a burst.
pub(crate) const BUDGET_MAX: i64 = 1000;
/// Control frames per second a connection may send for ever.
pub(crate) const REFILL_PER_SEC: i64 = 100;
/// Control frames a request brings (its WINDOW_UPDATEs, a PRIORITY, a RST_STREAM).
pub(crate) const REQUEST_CREDIT: i64 = 16;
/// Input discarded at most after GOAWAY, before the connection is closed.
const DISCARD_MAX: usize = 64 * 1024;
/// What every HTTP/2 connection starts with: passed through, not parsed as frames.
const PREFACE_LEN: usize = 24;
/// The GOAWAY error code for a peer that is "generating excessive load" (RFC 9113 section 7).
const ENHANCE_YOUR_CALM: u32 = 0xb;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const ACK: u8 = 0x1;

/// What the connection's supervisor (`serve_h2`) reads of the guarded connection.
#[derive(Debug)]
pub(crate) struct Watch {
    start: Instant,
    settings: AtomicBool,
    /// Nanoseconds from `start` to the last request.
    last_request: AtomicU64,
    calm: AtomicBool,
}

impl Watch {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            settings: AtomicBool::new(false),
            last_request: AtomicU64::new(0),
            calm: AtomicBool::new(false),
        })
    }

    /// When the connection started.
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// The client has sent its SETTINGS: the handshake is complete.
    pub(crate) fn settings_seen(&self) -> bool {
        self.settings.load(Ordering::Relaxed)
    }

    /// When the last request arrived (the start, if none did).
    pub(crate) fn last_request(&self) -> Instant {
        self.start + std::time::Duration::from_nanos(self.last_request.load(Ordering::Relaxed))
    }

    /// The client flooded and was sent GOAWAY `ENHANCE_YOUR_CALM`.
    pub(crate) fn calmed(&self) -> bool {
        self.calm.load(Ordering::Relaxed)
    }

    fn request(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_request.store(nanos, Ordering::Relaxed);
    }
}

/// One frame header (RFC 9113 section 4.1).
#[derive(Clone, Copy, Debug)]
struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

/// Where a byte stream is among frames: inside a header, or skipping a payload.
#[derive(Clone, Debug)]
struct Frames {
    header: [u8; 9],
    filled: usize,
    skip: usize,
}

impl Frames {
    fn new(skip: usize) -> Self {
        Self {
            header: [0; 9],
            filled: 0,
            skip,
        }
    }

    fn at_boundary(&self) -> bool {
        self.skip == 0 && self.filled == 0
    }

    /// Walks `data`, calling `on` for each frame header completed in it.
    fn feed(&mut self, mut data: &[u8], mut on: impl FnMut(FrameHeader)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.filled).min(data.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == 9 {
                let h = &self.header;
                let header = FrameHeader {
                    len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                };
                self.filled = 0;
                self.skip = header.len;
                on(header);
            }
        }
    }

    /// How many bytes of `data` complete the frame under way (all of it if it does not end).
    fn to_boundary(&self, data: &[u8]) -> usize {
        let mut probe = self.clone();
        for (i, byte) in data.iter().enumerate() {
            probe.feed(std::slice::from_ref(byte), |_| {});
            if probe.at_boundary() {
                return i + 1;
            }
        }
        data.len()
    }
}

/// Where the connection is.
#[derive(Debug)]
enum Phase {
    /// Frames pass both ways.
    Serving,
    /// A GOAWAY waits for the outbound frame under way to end; then `sent` of its bytes.
    Calming { sent: usize },
    /// GOAWAY sent: hyper's output is dropped, input is discarded until EOF or the bound.
    Discarding { shut: bool, discarded: usize },
    /// Hyper has been told the input ended.
    Done,
}

/// The guarded stream.
#[derive(Debug)]
pub(crate) struct H2Guard<T> {
    inner: T,
    watch: Arc<Watch>,
    inbound: Frames,
    outbound: Frames,
    budget: i64,
    refilled: Option<Instant>,
    last_stream: u32,
    goaway: [u8; 17],
    phase: Phase,
}

impl<T> H2Guard<T> {
    pub(crate) fn new(inner: T, watch: Arc<Watch>) -> Self {
        Self {
            inner,
            watch,
            inbound: Frames::new(PREFACE_LEN),
            outbound: Frames::new(0),
            budget: BUDGET_MAX,
            refilled: None,
            last_stream: 0,
            goaway: [0; 17],
            phase: Phase::Serving,
        }
    }

    /// Accounts the frame headers in bytes just read; true when the client overdrew its budget.
    fn inspect(&mut self, data: &[u8]) -> bool {
        let mut spent = 0;
        let mut credit = 0;
        let mut request = false;
        let mut settings = false;
        let mut last_stream = self.last_stream;
        self.inbound.feed(data, |frame| match frame.kind {
            HEADERS => {
                request = true;
                credit += REQUEST_CREDIT;
                last_stream = last_stream.max(frame.stream);
            }
            DATA if frame.len > 0 => {}
            CONTINUATION => {}
            kind => {
                settings |= kind == SETTINGS && frame.flags & ACK == 0;
                spent += 1;
            }
        });
        self.last_stream = last_stream;
        if request {
            self.watch.request();
        }
        if settings && !self.watch.settings_seen() {
            self.watch.settings.store(true, Ordering::Relaxed);
        }
        self.budget = (self.budget + credit).min(BUDGET_MAX) - spent;
        if self.budget >= 0 {
            return false;
        }
        // Overdrawn: add what the time since the last refill earned, then judge.
        let now = Instant::now();
        let since = self.refilled.map_or(now - self.watch.start, |at| now - at);
        self.refilled = Some(now);
        let earned = i64::try_from(since.as_millis()).unwrap_or(i64::MAX) * REFILL_PER_SEC / 1000;
        self.budget = self.budget.saturating_add(earned).min(BUDGET_MAX);
        self.budget < 0
    }

    fn start_calming(&mut self) {
        self.watch.calm.store(true, Ordering::Relaxed);
        let mut frame = [0u8; 17];
        frame[2] = 8; // length
        frame[3] = 0x7; // GOAWAY
        frame[9..13].copy_from_slice(&self.last_stream.to_be_bytes());
        frame[13..17].copy_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
        self.goaway = frame;
        self.phase = Phase::Calming { sent: 0 };
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> H2Guard<T> {
    /// Writes what is left of the GOAWAY once hyper's output is at a frame boundary; ready
    /// when it is all written (or writing failed: the connection is over either way).
    fn poll_goaway(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Phase::Calming { sent } = self.phase {
            if !self.outbound.at_boundary() {
                // hyper finishes its frame first (see `poll_write`).
                return Poll::Pending;
            }
            if sent == self.goaway.len() {
                self.phase = Phase::Discarding {
                    shut: false,
                    discarded: 0,
                };
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.goaway[sent..]) {
                Poll::Ready(Ok(n)) if n > 0 => self.phase = Phase::Calming { sent: sent + n },
                Poll::Ready(_) => {
                    self.phase = Phase::Done;
                    break;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    /// After GOAWAY: stop sending, read and drop input until EOF or [`DISCARD_MAX`], then EOF.
    fn poll_discard(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Discarding { shut, discarded } = self.phase {
            if !shut {
                let _ = ready!(Pin::new(&mut self.inner).poll_flush(cx));
                let _ = ready!(Pin::new(&mut self.inner).poll_shutdown(cx));
                self.phase = Phase::Discarding {
                    shut: true,
                    discarded,
                };
                continue;
            }
            let mut sink = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
            let mut sink = ReadBuf::uninit(&mut sink);
            match ready!(Pin::new(&mut self.inner).poll_read(cx, &mut sink)) {
                Ok(()) if !sink.filled().is_empty() && discarded < DISCARD_MAX => {
                    self.phase = Phase::Discarding {
                        shut: true,
                        discarded: discarded + sink.filled().len(),
                    };
                }
                _ => self.phase = Phase::Done,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for H2Guard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::Serving => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let flood = this.inspect(&buf.filled()[before..]);
                    if !flood {
                        return Poll::Ready(Ok(()));
                    }
                    // What was read is still handed over; nothing more is.
                    this.start_calming();
                    if buf.filled().len() > before {
                        cx.waker().wake_by_ref();
                        return Poll::Ready(Ok(()));
                    }
                }
                Phase::Calming { .. } => ready!(this.poll_goaway(cx)),
                Phase::Discarding { .. } => ready!(this.poll_discard(cx))?,
                // The end of input.
                Phase::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for H2Guard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Serving => {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
                this.outbound.feed(&buf[..n], |_| {});
                Poll::Ready(Ok(n))
            }
            Phase::Calming { .. } if !this.outbound.at_boundary() => {
                // Only up to the end of the frame under way; then the GOAWAY goes out.
                let end = this.outbound.to_boundary(buf);
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..end]))?;
                this.outbound.feed(&buf[..n], |_| {});
                if this.outbound.at_boundary() {
                    // Let the reader side send the GOAWAY.
                    cx.waker().wake_by_ref();
                }
                Poll::Ready(Ok(n))
            }
            Phase::Calming { .. } => {
                ready!(this.poll_goaway(cx));
                Poll::Ready(Ok(buf.len()))
            }
            // Nothing more is sent after GOAWAY.
            Phase::Discarding { .. } | Phase::Done => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !matches!(this.phase, Phase::Serving) {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
            return Pin::new(this).poll_write(cx, first);
        }
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for slice in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(slice.len());
            this.outbound.feed(&slice[..take], |_| {});
            left -= take;
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Serving => Pin::new(&mut this.inner).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.phase {
            Phase::Serving => Pin::new(&mut this.inner).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_are_found_across_any_split() {
        let mut bytes = frame(SETTINGS, 0, 0, &[0; 6]);
        bytes.extend(frame(HEADERS, 0x5, 3, &[1, 2, 3]));
        bytes.extend(frame(0x6, 0, 0, &[0; 8]));
        for split in 0..bytes.len() {
            let mut frames = Frames::new(0);
            let mut seen = Vec::new();
            frames.feed(&bytes[..split], |h| seen.push((h.kind, h.stream, h.len)));
            frames.feed(&bytes[split..], |h| seen.push((h.kind, h.stream, h.len)));
            assert_eq!(seen, [(SETTINGS, 0, 6), (HEADERS, 3, 3), (0x6, 0, 8)]);
            assert!(frames.at_boundary());
        }
        let frames = Frames::new(0);
        assert_eq!(frames.to_boundary(&bytes), 15);
    }

    #[test]
    fn a_ping_flood_overdraws_the_budget_and_requests_refill_it() {
        let watch = Watch::new();
        let mut guard = H2Guard::new((), Arc::clone(&watch));
        let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        start.extend(frame(SETTINGS, 0, 0, &[]));
        assert!(!guard.inspect(&start));
        assert!(watch.settings_seen());
        // Requests interleaved with a few control frames each: never a flood.
        for stream in (1..2000).step_by(2) {
            let mut bytes = frame(HEADERS, 0x5, stream, &[0; 10]);
            for _ in 0..8 {
                bytes.extend(frame(0x8, 0, 0, &[0, 0, 1, 0]));
            }
            assert!(!guard.inspect(&bytes));
        }
        let ping = frame(0x6, 0, 0, &[0; 8]);
        let flooded = (0..=BUDGET_MAX).any(|_| guard.inspect(&ping));
        assert!(flooded);
    }
}
