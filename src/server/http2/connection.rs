//! One HTTP/2 connection's protocol state (RFC 9113), without IO: bytes in, frames out.
//!
//! Every request is answered as soon as its header block is complete, from the caller's
//! answer function, so a stream normally opens and closes within one call of
//! [`Connection::receive`]. State outlives that only for a response that the client's
//! flow-control windows hold back ([`Stream`]), and for the ids of streams reset while the
//! client may still send on them. A request body is never read: the response goes out at once
//! and the stream is reset with `NO_ERROR` (RFC 9113 section 8.1), its DATA discarded.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;
use http::StatusCode;
use tokio::time::Instant;

use super::frame::{
    self, DEFAULT_MAX_FRAME, DEFAULT_WINDOW, FrameHeader, HEADER_LEN, MAX_WINDOW, PREFACE, Reason,
    flag, kind, setting,
};
use super::hpack::Decoder;
use super::request::{Decoded, MAX_HEADER_LIST_SIZE, RequestHead};
use crate::server::response_block::{self, DATE_LEN};

/// Most concurrent streams per connection (those held back by flow control count).
pub(crate) const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Largest header block (HEADERS and CONTINUATION fragments) held until it is complete, as
/// an HTTP/1.1 head: a larger one is answered 431 and the connection closed (its HPACK state
/// is lost with the block), so no peer makes a connection hold more.
pub(crate) const MAX_HEADER_BLOCK: usize = MAX_HEADER_LIST_SIZE;
/// Most CONTINUATION frames one header block may have (nghttp2 allows 8): a client that splits
/// a block finer is sent GOAWAY `ENHANCE_YOUR_CALM` (the CVE-2024-27316 class).
pub(crate) const MAX_CONTINUATIONS: u32 = 16;
/// Reset streams remembered, whose late DATA and trailers are ignored: twice the streams a
/// client may have open, so every one it still sends on is known.
const RESET_REMEMBERED: usize = 2 * MAX_CONCURRENT_STREAMS as usize;
/// Frames a client may still send on a stream after it was reset (its body's DATA in flight,
/// then trailers); one more is a connection error `PROTOCOL_ERROR`, as nginx and hyper answer.
pub(crate) const RESET_FRAME_ALLOWANCE: u16 = 16;
/// The smallest DATA frame written to stay under [`OUTPUT_HIGH_WATER`] (unless it ends a body).
const MIN_DATA_FRAME: usize = 1024;
/// Output beyond which no further frame is read, and no more of a body is written, until the
/// output is written: what a client that stops reading can make a connection hold.
pub(crate) const OUTPUT_HIGH_WATER: usize = 16 * 1024;

/// Most control frames a connection may send in a burst.
pub(crate) const BUDGET_MAX: i64 = 1000;
/// Control frames per second a connection may send for ever.
pub(crate) const REFILL_PER_SEC: i64 = 100;
/// Control frames a request brings (its WINDOW_UPDATEs, a PRIORITY, a RST_STREAM).
pub(crate) const REQUEST_CREDIT: i64 = 16;

/// A response to write: its header block (without `date`) and its body.
#[derive(Debug)]
pub(crate) struct Reply<'a> {
    /// HPACK block of the status and headers.
    pub(crate) block: Cow<'a, [u8]>,
    /// The body; empty for HEAD and 304.
    pub(crate) body: Cow<'a, Bytes>,
}

/// What the caller answers: a request, or a status for one that cannot be served (431).
pub(crate) type Asked<'r> = Result<&'r RequestHead, StatusCode>;

/// A response the client's flow-control windows (or the output's high water) hold back.
#[derive(Debug)]
struct Stream {
    id: u32,
    /// The stream's send window.
    window: i64,
    /// What is left to send: shared with the snapshot's document (a refcount, not a copy).
    body: Bytes,
    /// The client may still send on it (a request body): reset once the response is out.
    receiving: bool,
    /// Request body bytes received, against the stream window the client was given (never
    /// raised: the body is not read).
    received: i64,
}

/// A stream reset while the client may still send on it (a request body, trailers): what it
/// sent since, against [`RESET_FRAME_ALLOWANCE`] and the stream window.
#[derive(Clone, Copy, Debug)]
struct ResetStream {
    id: u32,
    frames: u16,
    received: i64,
}

/// A header block waiting for CONTINUATION frames.
#[derive(Debug)]
struct PartialBlock {
    stream: u32,
    end_stream: bool,
    self_dependent: bool,
    fragments: Vec<u8>,
    continuations: u32,
    /// When its first fragment came: the header timeout runs from here.
    started: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading the 24-byte preface.
    Preface,
    /// The client's first frame must be SETTINGS.
    FirstSettings,
    Open,
}

/// How the connection stands after [`Connection::receive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Keep reading.
    Open,
    /// Write the output, then close (GOAWAY was sent or the client went away).
    Close,
}

/// The control-frame budget: nginx-style flood defence (GOAWAY `ENHANCE_YOUR_CALM`).
#[derive(Debug)]
struct Budget {
    tokens: i64,
    refilled: Instant,
}

impl Budget {
    /// Spends `spent` tokens after crediting `credit`; false when overdrawn even after the
    /// refill earned since the last one.
    fn spend(&mut self, credit: i64, spent: i64, now: Instant) -> bool {
        self.tokens = (self.tokens + credit).min(BUDGET_MAX) - spent;
        if self.tokens >= 0 {
            return true;
        }
        let since = now.saturating_duration_since(self.refilled);
        self.refilled = now;
        let earned = i64::try_from(since.as_millis()).unwrap_or(i64::MAX) * REFILL_PER_SEC / 1000;
        self.tokens = self.tokens.saturating_add(earned).min(BUDGET_MAX);
        self.tokens >= 0
    }
}

/// One connection's protocol state.
pub(crate) struct Connection {
    phase: Phase,
    decoder: Decoder,
    head: RequestHead,
    /// The client's SETTINGS_MAX_FRAME_SIZE.
    max_frame: usize,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE.
    initial_window: i64,
    /// The connection's send window.
    send_window: i64,
    /// What the client may still send on the connection before a WINDOW_UPDATE.
    receive_window: i64,
    /// Highest stream id the client opened.
    last_stream: u32,
    /// Set when GOAWAY was sent: streams above it are not answered.
    goaway: Option<u32>,
    /// The client lowered SETTINGS_HEADER_TABLE_SIZE: the next response block starts with a
    /// dynamic table size update (to 0: responses use no dynamic table), RFC 7541 section 4.2.
    table_size_update: bool,
    /// The client sent GOAWAY.
    peer_goaway: bool,
    partial: Option<PartialBlock>,
    streams: Vec<Stream>,
    reset: VecDeque<ResetStream>,
    budget: Budget,
    calmed: bool,
    /// Requests received (their count tells the caller when the last one came).
    requests: u64,
    /// An unfinished frame (or frames not yet read because the output was full).
    input: Vec<u8>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phase", &self.phase)
            .field("last_stream", &self.last_stream)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// A connection error: GOAWAY with this reason, then close.
type ConnectionError = Reason;

impl Connection {
    /// A connection whose preface is still to come (or is at the start of the input).
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            phase: Phase::Preface,
            decoder: Decoder::default(),
            head: RequestHead::default(),
            max_frame: DEFAULT_MAX_FRAME,
            initial_window: DEFAULT_WINDOW,
            send_window: DEFAULT_WINDOW,
            receive_window: DEFAULT_WINDOW,
            last_stream: 0,
            goaway: None,
            table_size_update: false,
            peer_goaway: false,
            partial: None,
            streams: Vec::new(),
            reset: VecDeque::new(),
            budget: Budget {
                tokens: BUDGET_MAX,
                refilled: now,
            },
            calmed: false,
            requests: 0,
            input: Vec::new(),
        }
    }

    /// The server's SETTINGS, the first thing it sends.
    pub(crate) fn start(out: &mut Vec<u8>) {
        frame::put_settings(
            out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
                (setting::MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE as u32),
            ],
        );
    }

    /// Whether the client has sent its first SETTINGS.
    pub(crate) fn settings_seen(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Requests received so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Whether the connection was sent GOAWAY `ENHANCE_YOUR_CALM` for a flood.
    pub(crate) fn calmed(&self) -> bool {
        self.calmed
    }

    /// Whether there is work without reading: complete frames wait in the input, or held
    /// responses that the windows allow (both left because the output filled up).
    pub(crate) fn has_backlog(&self) -> bool {
        self.can_send_held()
            || self.input.len() >= HEADER_LEN && {
                let header =
                    FrameHeader::parse(self.input[..HEADER_LEN].try_into().unwrap_or(&[0; 9]));
                self.input.len() >= HEADER_LEN + header.len
            }
    }

    /// Responses held back by flow control.
    pub(crate) fn held_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes held between calls that a peer decides: unread input, an unfinished header block,
    /// held streams' bookkeeping, remembered resets and the HPACK decoder's table and buffers.
    /// (Held bodies are shared with the snapshot and not counted.)
    pub(crate) fn retained_bytes(&self) -> usize {
        self.input.capacity()
            + self.partial.as_ref().map_or(0, |p| p.fragments.capacity())
            + self.streams.capacity() * std::mem::size_of::<Stream>()
            + self.reset.capacity() * std::mem::size_of::<ResetStream>()
            + self.decoder.retained_bytes()
            + self.head.retained_bytes()
    }

    /// When the header block still waiting for CONTINUATION frames began, if one does.
    pub(crate) fn header_block_started(&self) -> Option<Instant> {
        self.partial.as_ref().map(|p| p.started)
    }

    /// Whether a held response may send now (the windows allow it).
    fn can_send_held(&self) -> bool {
        self.send_window > 0 && self.streams.iter().any(|s| s.window > 0)
    }

    /// Whether nothing is owed to the client: no response is waiting for window.
    pub(crate) fn idle(&self) -> bool {
        self.streams.is_empty()
    }

    /// Sends GOAWAY `NO_ERROR` (shutdown or idle): streams the client opens after this are not
    /// answered; the caller closes once [`Connection::idle`].
    pub(crate) fn go_away(&mut self, out: &mut Vec<u8>) {
        if self.goaway.is_none() {
            frame::put_goaway(out, self.last_stream, Reason::NoError);
            self.goaway = Some(self.last_stream);
        }
    }

    /// Reads the frames in `data` (after any kept from before), answering requests through
    /// `answer` and writing frames to `out`. Stops early once `out` passes
    /// [`OUTPUT_HIGH_WATER`], keeping the rest.
    pub(crate) fn receive<'a>(
        &mut self,
        data: &[u8],
        now: Instant,
        date: &[u8; DATE_LEN],
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Status {
        let from_input = !self.input.is_empty();
        let mut input = std::mem::take(&mut self.input);
        if from_input {
            input.extend_from_slice(data);
        }
        let bytes: &[u8] = if from_input { &input } else { data };
        let mut writer = Writer {
            date: response_block::date_field(date),
            now,
        };
        if self.can_send_held() {
            self.send_held(out);
        }
        let (consumed, result) = self.frames(bytes, &mut writer, out, answer);
        let status = match result {
            Ok(()) if self.peer_goaway && self.streams.is_empty() => Status::Close,
            Ok(()) => Status::Open,
            Err(reason) => {
                if reason == Reason::EnhanceYourCalm {
                    self.calmed = true;
                }
                // After a GOAWAY of ours the last stream id may not rise (RFC 9113 section 6.8).
                let last = self.goaway.unwrap_or(self.last_stream);
                frame::put_goaway(out, last, reason);
                self.goaway = Some(last);
                return Status::Close;
            }
        };
        if from_input {
            input.drain(..consumed);
            self.input = input;
        } else {
            self.input.extend_from_slice(&data[consumed..]);
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            self.input = Vec::new();
        }
        self.head.shrink();
        self.decoder.shrink();
        status
    }

    /// Walks the complete frames of `bytes`; returns how many bytes were used.
    fn frames<'a>(
        &mut self,
        bytes: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> (usize, Result<(), ConnectionError>) {
        let mut at = 0;
        if self.phase == Phase::Preface {
            let n = bytes.len().min(PREFACE.len());
            if bytes[..n] != PREFACE[..n] {
                return (0, Err(Reason::ProtocolError));
            }
            if n < PREFACE.len() {
                return (0, Ok(()));
            }
            at = PREFACE.len();
            self.phase = Phase::FirstSettings;
        }
        while out.len() < OUTPUT_HIGH_WATER && bytes.len() - at >= HEADER_LEN {
            let header_bytes: &[u8; HEADER_LEN] =
                bytes[at..at + HEADER_LEN].try_into().expect("nine bytes");
            let header = FrameHeader::parse(header_bytes);
            if header.len > DEFAULT_MAX_FRAME {
                return (at, Err(Reason::FrameSizeError));
            }
            if bytes.len() - at - HEADER_LEN < header.len {
                break;
            }
            let payload = &bytes[at + HEADER_LEN..at + HEADER_LEN + header.len];
            at += HEADER_LEN + header.len;
            if let Err(reason) = self.frame(header, payload, writer, out, answer) {
                return (at, Err(reason));
            }
        }
        (at, Ok(()))
    }

    fn frame<'a>(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Result<(), ConnectionError> {
        if self.phase == Phase::FirstSettings
            && (header.kind != kind::SETTINGS || header.end_stream())
        {
            return Err(Reason::ProtocolError);
        }
        if let Some(partial) = &self.partial
            && (header.kind != kind::CONTINUATION || header.stream != partial.stream)
        {
            return Err(Reason::ProtocolError);
        }
        // HEADERS, CONTINUATION and DATA spend the budget where they carry nothing (below) or
        // arrive on a reset stream; every other frame always does.
        let control = !matches!(header.kind, kind::HEADERS | kind::CONTINUATION | kind::DATA);
        if control && !self.budget.spend(0, 1, writer.now) {
            return Err(Reason::EnhanceYourCalm);
        }
        match header.kind {
            kind::DATA => self.data(header, payload, writer.now, out),
            kind::HEADERS => self.headers(header, payload, writer, out, answer),
            kind::CONTINUATION => self.continuation(header, payload, writer, out, answer),
            kind::SETTINGS => self.settings(header, payload, out),
            kind::PING => {
                if header.stream != 0 {
                    return Err(Reason::ProtocolError);
                }
                if payload.len() != 8 {
                    return Err(Reason::FrameSizeError);
                }
                if !header.end_stream() {
                    frame::put_ping_ack(out, payload);
                }
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(header, payload, out),
            kind::RST_STREAM => {
                if header.stream == 0 || header.stream > self.last_stream {
                    return Err(Reason::ProtocolError);
                }
                if payload.len() != 4 {
                    return Err(Reason::FrameSizeError);
                }
                // The client closed it: nothing more may come on it.
                self.streams.retain(|s| s.id != header.stream);
                self.reset.retain(|r| r.id != header.stream);
                Ok(())
            }
            kind::PRIORITY => {
                if header.stream == 0 {
                    return Err(Reason::ProtocolError);
                }
                let reason = if payload.len() != 5 {
                    Reason::FrameSizeError
                } else if frame::priority_dependency(header, payload) == Some(header.stream) {
                    Reason::ProtocolError
                } else {
                    return Ok(());
                };
                // A stream error; an idle stream (PRIORITY does not open it) is not remembered.
                frame::put_reset(out, header.stream, reason);
                if header.stream <= self.last_stream {
                    self.streams.retain(|s| s.id != header.stream);
                    self.remember_reset(header.stream, 0);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if header.stream != 0 {
                    return Err(Reason::ProtocolError);
                }
                if payload.len() < 8 {
                    return Err(Reason::FrameSizeError);
                }
                self.peer_goaway = true;
                Ok(())
            }
            kind::PUSH_PROMISE => Err(Reason::ProtocolError),
            // Unknown frame types are ignored (RFC 9113 section 4.1).
            _ => Ok(()),
        }
    }

    fn settings(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ConnectionError> {
        if header.stream != 0 {
            return Err(Reason::ProtocolError);
        }
        if header.end_stream() {
            // The acknowledgement of ours.
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(Reason::FrameSizeError)
            };
        }
        if !payload.len().is_multiple_of(6) {
            return Err(Reason::FrameSizeError);
        }
        let mut initial_window = None;
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = frame::read_u32(&entry[2..]);
            match id {
                setting::ENABLE_PUSH if value > 1 => return Err(Reason::ProtocolError),
                setting::INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > MAX_WINDOW {
                        return Err(Reason::FlowControlError);
                    }
                    // Applied once, the last value, however many the frame repeats.
                    initial_window = Some(value);
                }
                setting::MAX_FRAME_SIZE => {
                    let value = value as usize;
                    if !(DEFAULT_MAX_FRAME..1 << 24).contains(&value) {
                        return Err(Reason::ProtocolError);
                    }
                    self.max_frame = value;
                }
                // Responses use no dynamic table, so any size suits them; a smaller one is still
                // acknowledged in the next block, as nghttp2 requires.
                setting::HEADER_TABLE_SIZE => {
                    self.table_size_update |= (value as usize) < super::hpack::MAX_TABLE_SIZE;
                }
                // Unknown settings are ignored (RFC 9113 section 6.5.2).
                _ => {}
            }
        }
        self.phase = Phase::Open;
        frame::put_settings_ack(out);
        if let Some(value) = initial_window {
            let delta = value - self.initial_window;
            for stream in &mut self.streams {
                stream.window += delta;
                if stream.window > MAX_WINDOW {
                    return Err(Reason::FlowControlError);
                }
            }
            self.initial_window = value;
            if delta > 0 {
                self.send_held(out);
            }
        }
        Ok(())
    }

    fn window_update(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ConnectionError> {
        if payload.len() != 4 {
            return Err(Reason::FrameSizeError);
        }
        let increment = i64::from(frame::read_u32(payload) & 0x7fff_ffff);
        if header.stream == 0 {
            if increment == 0 {
                return Err(Reason::ProtocolError);
            }
            self.send_window += increment;
            if self.send_window > MAX_WINDOW {
                return Err(Reason::FlowControlError);
            }
        } else {
            if header.stream > self.last_stream {
                return Err(Reason::ProtocolError);
            }
            if increment == 0 {
                self.reset_stream(header.stream, Reason::ProtocolError, out);
                return Ok(());
            }
            if let Some(stream) = self.streams.iter_mut().find(|s| s.id == header.stream) {
                stream.window += increment;
                if stream.window > MAX_WINDOW {
                    self.reset_stream(header.stream, Reason::FlowControlError, out);
                    return Ok(());
                }
            }
        }
        self.send_held(out);
        Ok(())
    }

    fn data(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnectionError> {
        if header.stream == 0 || header.stream > self.last_stream {
            return Err(Reason::ProtocolError);
        }
        let data = frame::unpadded(header, payload).ok_or(Reason::ProtocolError)?;
        // A DATA frame that carries nothing and ends nothing is a control frame.
        if data.is_empty() && !header.end_stream() && !self.budget.spend(0, 1, now) {
            return Err(Reason::EnhanceYourCalm);
        }
        // The whole payload, padding included, counts against the windows.
        let len = payload.len() as i64;
        if len > self.receive_window {
            return Err(Reason::FlowControlError);
        }
        self.receive_window -= len;
        if self.receive_window < DEFAULT_WINDOW / 2 {
            let increment = DEFAULT_WINDOW - self.receive_window;
            frame::put_window_update(out, 0, increment as u32);
            self.receive_window = DEFAULT_WINDOW;
        }
        if let Some(stream) = self
            .streams
            .iter_mut()
            .find(|s| s.id == header.stream && s.receiving)
        {
            stream.received += len;
            if stream.received > DEFAULT_WINDOW {
                return Err(Reason::FlowControlError);
            }
            stream.receiving = !header.end_stream();
            return Ok(());
        }
        self.on_reset_stream(header, len, now)
    }

    /// A DATA or HEADERS frame on a stream that is not open: one that was reset while the
    /// client could still send on it may take [`RESET_FRAME_ALLOWANCE`] frames, each spending
    /// the budget, until its END_STREAM; anything else is a connection error (`STREAM_CLOSED`,
    /// or `PROTOCOL_ERROR` past the allowance and for trailers that do not end the stream).
    fn on_reset_stream(
        &mut self,
        header: FrameHeader,
        len: i64,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        let Some(at) = self.reset.iter().position(|r| r.id == header.stream) else {
            return Err(Reason::StreamClosed);
        };
        if !self.budget.spend(0, 1, now) {
            return Err(Reason::EnhanceYourCalm);
        }
        let reset = &mut self.reset[at];
        reset.frames += 1;
        reset.received += len;
        if reset.frames > RESET_FRAME_ALLOWANCE {
            return Err(Reason::ProtocolError);
        }
        if reset.received > DEFAULT_WINDOW {
            return Err(Reason::FlowControlError);
        }
        if header.kind == kind::HEADERS && !header.end_stream() {
            // Trailers end the stream (RFC 9113 section 8.1).
            return Err(Reason::ProtocolError);
        }
        if header.end_stream() {
            // Closed for good: a further frame on it is STREAM_CLOSED.
            self.reset.remove(at);
        }
        Ok(())
    }

    fn headers<'a>(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Result<(), ConnectionError> {
        if header.stream == 0 || header.stream.is_multiple_of(2) {
            return Err(Reason::ProtocolError);
        }
        let fragment = frame::unpadded(header, payload).ok_or(Reason::ProtocolError)?;
        let self_dependent = frame::priority_dependency(header, payload) == Some(header.stream);
        // A stream opened before: trailers of a request whose body is still coming, or a frame
        // on a reset stream. Judged from the first fragment, before any is kept or decoded.
        let trailers = header.stream <= self.last_stream;
        if trailers {
            let receiving = self
                .streams
                .iter()
                .any(|s| s.id == header.stream && s.receiving);
            if !receiving {
                self.on_reset_stream(header, 0, writer.now)?;
            } else if !header.end_stream() {
                return Err(Reason::ProtocolError);
            }
        }
        if fragment.is_empty() && !header.end_headers() && !self.budget.spend(0, 1, writer.now) {
            return Err(Reason::EnhanceYourCalm);
        }
        if header.end_headers() {
            return self.request(
                header.stream,
                header.end_stream(),
                self_dependent,
                fragment,
                writer,
                out,
                answer,
            );
        }
        self.partial = Some(PartialBlock {
            stream: header.stream,
            end_stream: header.end_stream(),
            self_dependent,
            fragments: fragment.to_vec(),
            continuations: 0,
            started: writer.now,
        });
        Ok(())
    }

    fn continuation<'a>(
        &mut self,
        header: FrameHeader,
        payload: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Result<(), ConnectionError> {
        let Some(partial) = &mut self.partial else {
            return Err(Reason::ProtocolError);
        };
        partial.continuations += 1;
        if partial.continuations > MAX_CONTINUATIONS
            || payload.is_empty() && !self.budget.spend(0, 1, writer.now)
        {
            return Err(Reason::EnhanceYourCalm);
        }
        if partial.fragments.len() + payload.len() > MAX_HEADER_BLOCK {
            let partial = self.partial.take().expect("checked above");
            return self.too_large(partial.stream, writer, out, answer);
        }
        partial.fragments.extend_from_slice(payload);
        if !header.end_headers() {
            return Ok(());
        }
        let partial = self.partial.take().expect("checked above");
        self.request(
            partial.stream,
            partial.end_stream,
            partial.self_dependent,
            &partial.fragments,
            writer,
            out,
            answer,
        )
    }

    /// A header block larger than [`MAX_HEADER_BLOCK`]: a new request is answered 431 (as an
    /// HTTP/1.1 head too large is), and the connection ends with GOAWAY `NO_ERROR` (it cannot
    /// go on: the dynamic table would need the block decoded).
    fn too_large<'a>(
        &mut self,
        id: u32,
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Result<(), ConnectionError> {
        if id > self.last_stream && self.goaway.is_none() {
            self.last_stream = id;
            self.requests += 1;
            let reply = answer(Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
            self.respond(id, true, reply, writer, out);
        }
        Err(Reason::NoError)
    }

    /// A complete header block on `id`: a new request (or trailers, already judged by
    /// [`Connection::headers`]).
    #[allow(clippy::too_many_arguments)]
    fn request<'a>(
        &mut self,
        id: u32,
        end_stream: bool,
        self_dependent: bool,
        block: &[u8],
        writer: &mut Writer,
        out: &mut Vec<u8>,
        answer: &mut dyn FnMut(Asked<'_>) -> Reply<'a>,
    ) -> Result<(), ConnectionError> {
        // Decoded whatever becomes of the stream: the decoder's table must follow the client's.
        let decoded = self
            .head
            .decode(&mut self.decoder, block)
            .map_err(|_| Reason::CompressionError)?;
        if id <= self.last_stream {
            // Trailers: they end the request.
            if let Some(stream) = self.streams.iter_mut().find(|s| s.id == id && s.receiving) {
                stream.receiving = false;
            }
            return Ok(());
        }
        self.last_stream = id;
        if self.goaway.is_some_and(|last| id > last) {
            // Not answered (the client retries it elsewhere); its DATA may still come.
            if !end_stream {
                self.remember_reset(id, 0);
            }
            return Ok(());
        }
        self.requests += 1;
        let refusal = match decoded {
            _ if self_dependent => Some(Reason::ProtocolError),
            Decoded::Malformed(_) => Some(Reason::ProtocolError),
            _ if self.streams.len() >= MAX_CONCURRENT_STREAMS as usize => {
                Some(Reason::RefusedStream)
            }
            _ => None,
        };
        // A refused stream spends the budget as a control frame; an answered one adds to it.
        let (credit, spent) = if refusal.is_some() {
            (0, 1)
        } else {
            (REQUEST_CREDIT, 0)
        };
        if !self.budget.spend(credit, spent, writer.now) {
            return Err(Reason::EnhanceYourCalm);
        }
        if let Some(reason) = refusal {
            self.refuse(id, end_stream, reason, out);
            return Ok(());
        }
        // (A malformed request was refused above.)
        let reply = if decoded == Decoded::TooLarge {
            answer(Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
        } else {
            answer(Ok(&self.head))
        };
        self.respond(id, !end_stream, reply, writer, out);
        Ok(())
    }

    /// Resets a stream the client opened (and may still send on).
    fn refuse(&mut self, id: u32, end_stream: bool, reason: Reason, out: &mut Vec<u8>) {
        frame::put_reset(out, id, reason);
        if !end_stream {
            self.remember_reset(id, 0);
        }
    }

    /// Resets an existing stream for a stream error.
    fn reset_stream(&mut self, id: u32, reason: Reason, out: &mut Vec<u8>) {
        frame::put_reset(out, id, reason);
        let received = self
            .streams
            .iter()
            .find(|s| s.id == id)
            .map_or(0, |s| s.received);
        self.streams.retain(|s| s.id != id);
        self.remember_reset(id, received);
    }

    /// Remembers a stream reset while the client may still send on it, with the body bytes it
    /// sent before.
    fn remember_reset(&mut self, id: u32, received: i64) {
        if self.reset.len() == RESET_REMEMBERED {
            self.reset.pop_front();
        }
        self.reset.push_back(ResetStream {
            id,
            frames: 0,
            received,
        });
    }

    /// Writes a response: HEADERS, then as much of the body as the windows and the output's
    /// high water allow (the rest is held: see `has_backlog`).
    fn respond(
        &mut self,
        id: u32,
        receiving: bool,
        reply: Reply<'_>,
        writer: &mut Writer,
        out: &mut Vec<u8>,
    ) {
        let body: &Bytes = &reply.body;
        // A dynamic table size update to 0, when the client lowered its table size.
        let size_update: &[u8] = if std::mem::take(&mut self.table_size_update) {
            &[0x20]
        } else {
            &[]
        };
        frame::put_headers(
            out,
            id,
            body.is_empty(),
            &[size_update, &reply.block, &writer.date],
            self.max_frame,
        );
        let mut window = self.initial_window;
        let sent = self.send_data(id, body, &mut window, out);
        if sent < body.len() {
            self.streams.push(Stream {
                id,
                window,
                body: reply.body.into_owned().slice(sent..),
                receiving,
                received: 0,
            });
        } else if receiving {
            frame::put_reset(out, id, Reason::NoError);
            self.remember_reset(id, 0);
        }
    }

    /// Sends as much of `body` as `window`, the connection window and the room below
    /// [`OUTPUT_HIGH_WATER`] allow, in DATA frames, the last with END_STREAM; returns how many
    /// bytes were sent. A frame smaller than [`MIN_DATA_FRAME`] is sent only to end the body
    /// or when the window allows no more.
    fn send_data(&mut self, id: u32, body: &[u8], window: &mut i64, out: &mut Vec<u8>) -> usize {
        let mut sent = 0;
        while sent < body.len() {
            let room = OUTPUT_HIGH_WATER.saturating_sub(out.len() + HEADER_LEN);
            let left = body.len() - sent;
            if room < left.min(MIN_DATA_FRAME) {
                break;
            }
            let allowed = (*window)
                .min(self.send_window)
                .min(self.max_frame as i64)
                .min(room as i64);
            if allowed <= 0 {
                break;
            }
            let n = (body.len() - sent).min(allowed as usize);
            let end = sent + n == body.len();
            frame::put_header(
                out,
                n,
                kind::DATA,
                if end { flag::END_STREAM } else { 0 },
                id,
            );
            out.extend_from_slice(&body[sent..sent + n]);
            sent += n;
            *window -= n as i64;
            self.send_window -= n as i64;
        }
        sent
    }

    /// Sends what the windows now allow of the held responses, oldest first, until the output
    /// reaches [`OUTPUT_HIGH_WATER`] (the rest goes after it is written: see `has_backlog`).
    fn send_held(&mut self, out: &mut Vec<u8>) {
        if self.send_window <= 0 {
            return;
        }
        let mut streams = std::mem::take(&mut self.streams);
        streams.retain_mut(|stream| {
            if stream.window <= 0 || self.send_window <= 0 || out.len() >= OUTPUT_HIGH_WATER {
                return true;
            }
            let body = std::mem::take(&mut stream.body);
            let mut window = stream.window;
            let sent = self.send_data(stream.id, &body, &mut window, out);
            stream.window = window;
            stream.body = body.slice(sent..);
            if !stream.body.is_empty() {
                return true;
            }
            if stream.receiving {
                frame::put_reset(out, stream.id, Reason::NoError);
                self.remember_reset(stream.id, stream.received);
            }
            false
        });
        self.streams = streams;
    }
}

/// Per-call context of [`Connection::receive`].
struct Writer {
    /// The `date` field of this call's responses.
    date: [u8; DATE_LEN + 3],
    now: Instant,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DATE: [u8; DATE_LEN] = *b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        frame::put_header(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out
    }

    /// The frames in `out`, as (type, flags, stream, payload).
    fn frames(out: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
        let mut at = 0;
        let mut frames = Vec::new();
        while at < out.len() {
            let header = FrameHeader::parse(out[at..at + HEADER_LEN].try_into().unwrap());
            let payload = out[at + HEADER_LEN..at + HEADER_LEN + header.len].to_vec();
            frames.push((header.kind, header.flags, header.stream, payload));
            at += HEADER_LEN + header.len;
        }
        frames
    }

    /// A connection past its preface and SETTINGS, at `now`.
    fn open(now: Instant) -> Connection {
        let mut connection = Connection::new(now);
        let mut input = PREFACE.to_vec();
        input.extend(frame_bytes(kind::SETTINGS, 0, 0, &[]));
        let mut out = Vec::new();
        let status = connection.receive(&input, now, &DATE, &mut out, &mut |_| unreachable!());
        assert_eq!(status, Status::Open);
        connection
    }

    fn get_block() -> Vec<u8> {
        // :method GET, :scheme https, :path / (static indexes 2, 7, 4).
        vec![0x82, 0x87, 0x84]
    }

    fn body() -> Bytes {
        Bytes::from(vec![b'x'; 1000])
    }

    fn reply(_: Asked<'_>) -> Reply<'static> {
        Reply {
            block: Cow::Borrowed(&[0x88]),
            body: Cow::Owned(body()),
        }
    }

    #[test]
    fn a_response_held_by_the_stream_window_goes_out_with_window_updates() {
        let now = Instant::now();
        let mut connection = Connection::new(now);
        let mut input = PREFACE.to_vec();
        // SETTINGS_INITIAL_WINDOW_SIZE = 300.
        input.extend(frame_bytes(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 1, 44]));
        input.extend(frame_bytes(kind::HEADERS, 0x5, 1, &get_block()));
        let mut out = Vec::new();
        connection.receive(&input, now, &DATE, &mut out, &mut reply);
        let sent: usize = frames(&out)
            .iter()
            .filter(|f| f.0 == kind::DATA)
            .map(|f| f.3.len())
            .sum();
        assert_eq!(sent, 300);
        assert!(!connection.idle());
        out.clear();
        let update = frame_bytes(kind::WINDOW_UPDATE, 0, 1, &1000u32.to_be_bytes());
        connection.receive(&update, now, &DATE, &mut out, &mut reply);
        let data: Vec<_> = frames(&out)
            .into_iter()
            .filter(|f| f.0 == kind::DATA)
            .collect();
        assert_eq!(data.iter().map(|f| f.3.len()).sum::<usize>(), 700);
        assert_eq!(data.last().unwrap().1, flag::END_STREAM);
        assert!(connection.idle());
    }

    #[test]
    fn held_responses_are_released_no_faster_than_the_output_is_written() {
        let now = Instant::now();
        let mut connection = Connection::new(now);
        let mut input = PREFACE.to_vec();
        // SETTINGS_INITIAL_WINDOW_SIZE = 0: every response is held.
        input.extend(frame_bytes(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]));
        for i in 0..200 {
            input.extend(frame_bytes(kind::HEADERS, 0x5, 1 + 2 * i, &get_block()));
        }
        let mut out = Vec::new();
        connection.receive(&input, now, &DATE, &mut out, &mut reply);
        assert!(frames(&out).iter().all(|f| f.0 != kind::DATA));
        assert!(!connection.has_backlog());
        // Both windows open at once: 200 bodies may go, but not in one output.
        let mut open = frame_bytes(kind::WINDOW_UPDATE, 0, 0, &(1u32 << 30).to_be_bytes());
        open.extend(frame_bytes(kind::SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]));
        let mut sent = 0;
        let mut steps = 0;
        let mut data: &[u8] = &open;
        loop {
            out.clear();
            connection.receive(data, now, &DATE, &mut out, &mut reply);
            data = &[];
            assert!(
                out.len() < OUTPUT_HIGH_WATER + 2 * 1024,
                "{} bytes at once",
                out.len()
            );
            sent += frames(&out).iter().filter(|f| f.0 == kind::DATA).count();
            steps += 1;
            if !connection.has_backlog() {
                break;
            }
        }
        assert_eq!(sent, 200);
        assert!(steps > 2, "{steps} steps");
        assert!(connection.idle());
    }

    #[test]
    fn a_smaller_header_table_is_acknowledged_in_the_next_response_block() {
        let now = Instant::now();
        let mut connection = open(now);
        let mut input = frame_bytes(kind::SETTINGS, 0, 0, &[0, 1, 0, 0, 0, 0]);
        input.extend(frame_bytes(kind::HEADERS, 0x5, 1, &get_block()));
        input.extend(frame_bytes(kind::HEADERS, 0x5, 3, &get_block()));
        let mut out = Vec::new();
        connection.receive(&input, now, &DATE, &mut out, &mut reply);
        let blocks: Vec<_> = frames(&out)
            .into_iter()
            .filter(|f| f.0 == kind::HEADERS)
            .map(|f| f.3)
            .collect();
        assert_eq!(
            blocks[0][..2],
            [0x20, 0x88],
            "size update to 0, then :status 200"
        );
        assert_eq!(blocks[1][0], 0x88, "only once");
    }

    #[test]
    fn a_control_frame_flood_is_calmed_and_time_refills_the_budget() {
        let start = Instant::now();
        let mut connection = open(start);
        let ping = frame_bytes(kind::PING, 0, 0, &[0; 8]);
        let mut out = Vec::new();
        // The budget (less the first SETTINGS) is spent without a word.
        let burst = ping.repeat(usize::try_from(BUDGET_MAX).unwrap() - 1);
        assert_eq!(
            connection.receive(&burst, start, &DATE, &mut out, &mut reply),
            Status::Open
        );
        // Two seconds later, 200 more are allowed, not 201.
        let later = start + Duration::from_secs(2);
        out.clear();
        let refill = ping.repeat(usize::try_from(2 * REFILL_PER_SEC).unwrap());
        assert_eq!(
            connection.receive(&refill, later, &DATE, &mut out, &mut reply),
            Status::Open
        );
        out.clear();
        assert_eq!(
            connection.receive(&ping, later, &DATE, &mut out, &mut reply),
            Status::Close
        );
        assert!(connection.calmed());
        let goaway = frames(&out).pop().unwrap();
        assert_eq!(goaway.0, kind::GOAWAY);
        assert_eq!(
            goaway.3[4..],
            (Reason::EnhanceYourCalm as u32).to_be_bytes()
        );
    }

    /// The last frame of `out`, which must be a GOAWAY, as (last stream, reason).
    fn goaway(out: &[u8]) -> (u32, u32) {
        let last = frames(out).pop().expect("a frame");
        assert_eq!(last.0, kind::GOAWAY, "{:?}", frames(out));
        (frame::read_u32(&last.3[..4]), frame::read_u32(&last.3[4..]))
    }

    #[test]
    fn a_header_block_over_16_kib_is_answered_431_and_the_connection_closed() {
        let now = Instant::now();
        let mut connection = open(now);
        let mut input = frame_bytes(kind::HEADERS, 0x1, 1, &get_block());
        let fragment = frame_bytes(kind::CONTINUATION, 0, 1, &[0x82; 4096]);
        for _ in 0..4 {
            input.extend_from_slice(&fragment);
        }
        let mut out = Vec::new();
        let mut asked = Vec::new();
        let status = connection.receive(&input, now, &DATE, &mut out, &mut |a| {
            asked.push(a.err());
            reply(a)
        });
        assert_eq!(status, Status::Close);
        assert_eq!(asked, [Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)]);
        assert_eq!(goaway(&out), (1, Reason::NoError as u32));
        // What was held never passed the cap.
        assert!(connection.retained_bytes() < MAX_HEADER_BLOCK + 4096);
    }

    #[test]
    fn a_header_block_split_into_many_continuations_is_calmed() {
        let now = Instant::now();
        let mut connection = open(now);
        let mut input = frame_bytes(kind::HEADERS, 0x1, 1, &[0x82]);
        for _ in 0..=MAX_CONTINUATIONS {
            input.extend(frame_bytes(kind::CONTINUATION, 0, 1, &[0x82]));
        }
        let mut out = Vec::new();
        let status = connection.receive(&input, now, &DATE, &mut out, &mut reply);
        assert_eq!(status, Status::Close);
        assert_eq!(goaway(&out).1, Reason::EnhanceYourCalm as u32);
    }

    #[test]
    fn empty_header_fragments_spend_the_budget() {
        let now = Instant::now();
        let mut connection = open(now);
        let before = connection.budget.tokens;
        let mut input = frame_bytes(kind::HEADERS, 0x1, 1, &[]);
        for _ in 0..10 {
            input.extend(frame_bytes(kind::CONTINUATION, 0, 1, &[]));
        }
        let mut out = Vec::new();
        let status = connection.receive(&input, now, &DATE, &mut out, &mut reply);
        assert_eq!(status, Status::Open);
        assert_eq!(connection.budget.tokens, before - 11);
    }

    #[test]
    fn headers_repeated_on_a_reset_stream_end_the_connection() {
        let now = Instant::now();
        let mut connection = open(now);
        // A request whose body never comes: answered, then reset NO_ERROR.
        let mut out = Vec::new();
        let request = frame_bytes(kind::HEADERS, 0x4, 1, &get_block());
        connection.receive(&request, now, &DATE, &mut out, &mut reply);
        assert_eq!(frames(&out).last().unwrap().0, kind::RST_STREAM);
        // Header blocks without END_STREAM on it: not trailers, a protocol error at once.
        out.clear();
        let again = frame_bytes(kind::HEADERS, 0x4, 1, &get_block());
        let status = connection.receive(&again, now, &DATE, &mut out, &mut reply);
        assert_eq!(status, Status::Close);
        assert_eq!(goaway(&out).1, Reason::ProtocolError as u32);

        // Trailers (END_STREAM) are taken once; the stream is then closed.
        let mut connection = open(now);
        out.clear();
        connection.receive(&request, now, &DATE, &mut out, &mut reply);
        let trailers = frame_bytes(kind::HEADERS, 0x5, 1, &[]);
        out.clear();
        assert_eq!(
            connection.receive(&trailers, now, &DATE, &mut out, &mut reply),
            Status::Open
        );
        let status = connection.receive(&trailers, now, &DATE, &mut out, &mut reply);
        assert_eq!(status, Status::Close);
        assert_eq!(goaway(&out).1, Reason::StreamClosed as u32);
    }

    #[test]
    fn data_on_a_reset_stream_is_allowed_a_few_frames_and_its_window() {
        let now = Instant::now();
        let request = frame_bytes(kind::HEADERS, 0x4, 1, &get_block());
        // 1-byte DATA frames: the allowance runs out.
        let mut connection = open(now);
        let mut out = Vec::new();
        connection.receive(&request, now, &DATE, &mut out, &mut reply);
        let byte = frame_bytes(kind::DATA, 0, 1, b"x");
        let mut sent = 0;
        let mut status = Status::Open;
        while status == Status::Open && sent < 1000 {
            out.clear();
            status = connection.receive(&byte, now, &DATE, &mut out, &mut reply);
            sent += 1;
        }
        assert_eq!(sent, usize::from(RESET_FRAME_ALLOWANCE) + 1);
        assert_eq!(goaway(&out).1, Reason::ProtocolError as u32);
        // Padded DATA with no data: each spends the budget besides.
        let mut connection = open(now);
        out.clear();
        connection.receive(&request, now, &DATE, &mut out, &mut reply);
        let padded = frame_bytes(kind::DATA, flag::PADDED, 1, &[0]);
        let before = connection.budget.tokens;
        connection.receive(&padded, now, &DATE, &mut out, &mut reply);
        assert_eq!(connection.budget.tokens, before - 2);
        // More than the stream window in a few large frames: a flow-control error.
        let mut connection = open(now);
        out.clear();
        connection.receive(&request, now, &DATE, &mut out, &mut reply);
        let big = frame_bytes(kind::DATA, 0, 1, &[0; DEFAULT_MAX_FRAME]);
        let mut status = Status::Open;
        for _ in 0..5 {
            out.clear();
            status = connection.receive(&big, now, &DATE, &mut out, &mut reply);
            if status == Status::Close {
                break;
            }
        }
        assert_eq!(status, Status::Close);
        assert_eq!(goaway(&out).1, Reason::FlowControlError as u32);
    }

    #[test]
    fn an_unfinished_header_block_says_when_it_began() {
        let start = Instant::now();
        let mut connection = open(start);
        assert_eq!(connection.header_block_started(), None);
        let later = start + Duration::from_secs(3);
        let mut out = Vec::new();
        let first = frame_bytes(kind::HEADERS, 0x1, 1, &[0x82]);
        connection.receive(&first, later, &DATE, &mut out, &mut reply);
        assert_eq!(connection.header_block_started(), Some(later));
        // A further fragment does not move it.
        let more = frame_bytes(kind::CONTINUATION, 0, 1, &[0x87]);
        connection.receive(
            &more,
            later + Duration::from_secs(5),
            &DATE,
            &mut out,
            &mut reply,
        );
        assert_eq!(connection.header_block_started(), Some(later));
        let end = frame_bytes(kind::CONTINUATION, 0x4, 1, &[0x84]);
        connection.receive(&end, later, &DATE, &mut out, &mut reply);
        assert_eq!(connection.header_block_started(), None);
    }

    #[test]
    fn output_per_step_stays_near_16_kib_whatever_the_windows_allow() {
        let now = Instant::now();
        let mut connection = Connection::new(now);
        let mut input = PREFACE.to_vec();
        // Windows and frames as large as a client may make them.
        input.extend(frame_bytes(
            kind::SETTINGS,
            0,
            0,
            &[0, 4, 0x7f, 0xff, 0xff, 0xff, 0, 5, 0, 0xff, 0xff, 0xff],
        ));
        input.extend(frame_bytes(
            kind::WINDOW_UPDATE,
            0,
            0,
            &(1u32 << 30).to_be_bytes(),
        ));
        for i in 0..4 {
            input.extend(frame_bytes(kind::HEADERS, 0x5, 1 + 2 * i, &get_block()));
        }
        let big = Bytes::from(vec![b'y'; 100_000]);
        let mut big_reply = |_: Asked<'_>| Reply {
            block: Cow::Borrowed(&[0x88][..]),
            body: Cow::Owned(big.clone()),
        };
        let mut data: &[u8] = &input;
        let mut sent = 0;
        loop {
            let mut out = Vec::new();
            connection.receive(data, now, &DATE, &mut out, &mut big_reply);
            data = &[];
            assert!(out.len() <= OUTPUT_HIGH_WATER + 512, "{} bytes", out.len());
            sent += frames(&out)
                .iter()
                .filter(|f| f.0 == kind::DATA)
                .map(|f| f.3.len())
                .sum::<usize>();
            if !connection.has_backlog() {
                break;
            }
        }
        assert_eq!(sent, 4 * 100_000);
        assert!(connection.idle());
    }

    #[test]
    fn a_request_body_is_not_waited_for_the_stream_is_reset_no_error() {
        let now = Instant::now();
        let mut connection = open(now);
        let mut input = frame_bytes(kind::HEADERS, 0x4, 1, &get_block());
        input.extend(frame_bytes(kind::DATA, 0, 1, b"late body"));
        input.extend(frame_bytes(kind::DATA, 0x1, 1, b"and its end"));
        let mut out = Vec::new();
        let status = connection.receive(&input, now, &DATE, &mut out, &mut reply);
        assert_eq!(status, Status::Open);
        let kinds: Vec<_> = frames(&out).iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(
            kinds,
            [
                (kind::HEADERS, flag::END_HEADERS),
                (kind::DATA, flag::END_STREAM),
                (kind::RST_STREAM, 0)
            ]
        );
        assert!(connection.idle());
    }
}
