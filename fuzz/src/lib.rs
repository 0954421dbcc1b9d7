//! The invariants of issuerd's HTTP/2 engine and of its IAM map parser, checked on one fuzz
//! input at a time: written once for the fuzz targets (`fuzz_targets/`, nightly, `cargo fuzz`)
//! and the corpus replay (`tests/it/fuzz_replay.rs`, stable, which includes this file as a
//! module). Both drive the engine through `issuerd::server::fuzzing` and the parser through
//! `issuerd::iam_map`, and panic when an invariant fails.
//!
//! - [`h2_connection`]: the input is a client's byte stream, fed to the sans-IO connection in
//!   chunks the way the driver reads a socket; every output is parsed and checked against what
//!   the client sent (frame well-formedness, the client's frame size, flow-control windows,
//!   stream ids, the HPACK size update it owes) and the call's bounds (output, retained bytes,
//!   held streams, no backlog left behind).
//! - [`hpack_decoder`]: the input is a sequence of header blocks, decoded by issuerd's HPACK
//!   decoder and by `loona_hpack` as an oracle; they must agree except where issuerd refuses a
//!   block for one of its own deliberate limits (listed at [`hpack_decoder`]).
//! - [`iam_map`]: the input is the text of an IAM map (a kOps Cluster manifest or a standalone
//!   map), parsed by `issuerd::iam_map`; what it accepts keeps the map's promises (role names,
//!   conditions, lookup), and its `StringLike` matcher agrees with a reference implementation.
//! - [`admission_review`]: the input is a request body for the IRSA webhook (`issuerd::webhook`):
//!   decoded, mutated and answered without a panic; the answer echoes the review, and a patch
//!   applies (by `json-patch`, an independent RFC 6902 implementation) and is not needed twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use issuerd::server::fuzzing::{
    DEFAULT_MAX_FRAME, H2Connection, HpackDecoder, MAX_CONCURRENT_STREAMS, MAX_DECODED,
    MAX_TABLE_SIZE, OUTPUT_HIGH_WATER, PREFACE,
};
use issuerd::webhook::{Injection, Review, mutate};
use serde_json::Value;

// === Frames ===

/// A frame header's length.
const HEADER_LEN: usize = 9;
/// The flow-control window every stream and the connection start with (RFC 9113 6.9.2).
const DEFAULT_WINDOW: i64 = 65_535;
/// The largest flow-control window (2^31 - 1).
const MAX_WINDOW: i64 = (1 << 31) - 1;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
const SETTINGS_ENABLE_PUSH: u16 = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

const NO_ERROR: u32 = 0x0;
/// The error codes of RFC 9113 section 7.
const ERROR_CODES: std::ops::RangeInclusive<u32> = 0x0..=0xd;

/// One frame: its header fields and payload.
#[derive(Clone, Copy, Debug)]
struct Frame<'a> {
    kind: u8,
    flags: u8,
    /// The stream id, reserved bit included.
    raw_stream: u32,
    payload: &'a [u8],
}

impl Frame<'_> {
    fn stream(&self) -> u32 {
        self.raw_stream & 0x7fff_ffff
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.payload[at..at + 4].try_into().expect("four bytes"))
    }
}

/// The length in a frame header.
fn frame_len(header: &[u8]) -> usize {
    usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2])
}

/// Splits `bytes` into frames; panics unless they are all complete.
fn split_frames(bytes: &[u8]) -> Vec<Frame<'_>> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert!(
            bytes.len() - at >= HEADER_LEN,
            "output ends inside a frame header: {} bytes left",
            bytes.len() - at
        );
        let header = &bytes[at..at + HEADER_LEN];
        let len = frame_len(header);
        let end = at + HEADER_LEN + len;
        assert!(end <= bytes.len(), "output ends inside a frame payload");
        frames.push(Frame {
            kind: header[3],
            flags: header[4],
            raw_stream: u32::from_be_bytes(header[5..9].try_into().expect("four bytes")),
            payload: &bytes[at + HEADER_LEN..end],
        });
        at = end;
    }
    frames
}

// === h2_connection ===

/// Response body lengths (chosen by the input): empty, within one frame, several frames, and
/// past the default windows (held back until the client opens them).
const BODY_LENS: [usize; 8] = [0, 1, 100, 1000, 16_384, 16_385, 40_000, 70_000];
/// Chunk sizes (chosen by the input's schedule bytes).
const CHUNKS: [usize; 16] = [
    1, 2, 3, 4, 7, 8, 9, 10, 17, 24, 33, 64, 128, 1000, 4096, READ_CHUNK,
];
/// Clock advances before a chunk, in milliseconds (chosen by the input's schedule bytes).
const ADVANCES_MS: [u64; 16] = [
    0, 0, 0, 0, 1, 1, 10, 10, 100, 100, 1000, 1000, 2000, 10_000, 60_000, 3_600_000,
];
/// The most the driver reads at once (`READ_CHUNK` of `src/server/http2/mod.rs`): the harness
/// feeds no larger chunk, and, like the driver, feeds nothing while the connection has a
/// backlog.
pub const READ_CHUNK: usize = 16 * 1024;
/// Bytes a connection may hold between calls ([`H2Connection::retained_bytes`]). With the
/// driver's feeding (no new input while frames wait, at most [`READ_CHUNK`] at once), what
/// the limits of `connection.rs` let a client make it keep is at most:
/// - unread input: an incomplete frame (< 9 + 16,384) plus one chunk (16,384), in a buffer
///   grown by doubling: < 2 x 32,776 = 65,552;
/// - an unfinished header block: at most `MAX_HEADER_BLOCK` (16 KiB) while the connection
///   stays open, grown by doubling: < 32,768;
/// - held streams: at most 256 (`MAX_CONCURRENT_STREAMS`) of 56 bytes: 14,336;
/// - remembered resets, as counted: 512 (`RESET_REMEMBERED`) of 4 bytes: 2,048;
/// - the HPACK table (4,096) and its two scratch buffers (shrunk past 1,024 each): 6,144.
///
/// That is 120,848 bytes at most; 128 KiB leaves room for a layout change, not for a leak.
pub const RETAINED_MAX: usize = 128 * 1024;
/// The smallest DATA frame the connection writes to stay below [`OUTPUT_HIGH_WATER`] unless
/// it ends a body (`MIN_DATA_FRAME` of `connection.rs`).
const MIN_DATA_FRAME: usize = 1024;

/// A GOAWAY frame.
const GOAWAY_FRAME: usize = HEADER_LEN + 8;
/// A RST_STREAM frame.
const RST_FRAME: usize = HEADER_LEN + 4;
/// The largest response HEADERS frame: a size update (1), the 431 block (5) and the `date`
/// field (3 + 29), which fits one frame.
const RESPONSE_HEADERS_FRAME: usize = HEADER_LEN + 1 + 5 + 3 + 29;

/// The most one call may write. The connection reads no further frame once its output has
/// reached [`OUTPUT_HIGH_WATER`], and writes no DATA past it (checked per frame); so only
/// the other frames of the last frame read, which started below the mark, go past it. The
/// most those write is a request's: its response HEADERS, then (no body fits) RST_STREAM
/// `NO_ERROR` (its request body was still coming), then GOAWAY (a header block too large:
/// 431, then GOAWAY `NO_ERROR`). A SETTINGS ACK, PING ACK, WINDOW_UPDATE or RST_STREAM and a
/// GOAWAY write less.
pub const OUTPUT_BOUND: usize =
    OUTPUT_HIGH_WATER - 1 + RESPONSE_HEADERS_FRAME + RST_FRAME + GOAWAY_FRAME;

/// One non-ACK SETTINGS frame of the client, as the server must apply it when it ACKs it.
#[derive(Debug, Default)]
struct ClientSettings {
    /// Why the frame is invalid (RFC 9113 section 6.5), if it is: it must not be ACKed.
    invalid: Option<&'static str>,
    max_frame: Option<usize>,
    /// The last INITIAL_WINDOW_SIZE: the one the window arithmetic ends with.
    initial_window: Option<i64>,
    /// The last HEADER_TABLE_SIZE, and whether any in the frame was below the default.
    table_size: Option<u32>,
    table_size_lowered: bool,
}

impl ClientSettings {
    fn parse(frame: &Frame<'_>) -> Self {
        let mut settings = Self::default();
        if frame.stream() != 0 {
            settings.invalid = Some("SETTINGS on a stream");
        }
        if !frame.payload.len().is_multiple_of(6) {
            settings.invalid = Some("SETTINGS length not a multiple of 6");
            return settings;
        }
        for entry in frame.payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes(entry[2..6].try_into().expect("four bytes"));
            match id {
                SETTINGS_ENABLE_PUSH if value > 1 => {
                    settings.invalid = Some("SETTINGS_ENABLE_PUSH above 1");
                }
                SETTINGS_INITIAL_WINDOW_SIZE if i64::from(value) > MAX_WINDOW => {
                    settings.invalid = Some("SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1");
                }
                SETTINGS_INITIAL_WINDOW_SIZE => settings.initial_window = Some(i64::from(value)),
                SETTINGS_MAX_FRAME_SIZE => {
                    let value = value as usize;
                    if (DEFAULT_MAX_FRAME..1 << 24).contains(&value) {
                        settings.max_frame = Some(value);
                    } else {
                        settings.invalid = Some("SETTINGS_MAX_FRAME_SIZE out of range");
                    }
                }
                SETTINGS_HEADER_TABLE_SIZE => {
                    settings.table_size = Some(value);
                    settings.table_size_lowered |= (value as usize) < MAX_TABLE_SIZE;
                }
                _ => {}
            }
        }
        settings
    }
}

/// What the client has sent: the complete frames of the bytes fed so far. The server reads
/// them in order, but may not have read the last ones yet (its output filled up, or it
/// stopped at an error); so sums over them (window increments, DATA received) are upper
/// bounds of what the server has read. SETTINGS are matched to the server's ACKs exactly.
#[derive(Debug, Default)]
struct Client {
    /// Non-ACK SETTINGS not yet ACKed, oldest first.
    settings: VecDeque<ClientSettings>,
    /// WINDOW_UPDATE increments per stream (0: the connection).
    window_updates: HashMap<u32, i64>,
    /// Streams opened by HEADERS.
    opened: HashSet<u32>,
    highest_opened: u32,
    /// Streams the client sent PRIORITY on before it opened them (a malformed PRIORITY gets
    /// RST_STREAM; the stream may still be opened and answered after).
    priority_while_idle: HashSet<u32>,
    /// PING payloads not yet acknowledged.
    pings: HashMap<[u8; 8], usize>,
    /// DATA payload bytes sent (padding included: flow control counts it).
    data_sent: u64,
    goaway: bool,
}

impl Client {
    fn frame(&mut self, frame: &Frame<'_>) {
        let stream = frame.stream();
        match frame.kind {
            SETTINGS if !frame.has(ACK) => self.settings.push_back(ClientSettings::parse(frame)),
            WINDOW_UPDATE if frame.payload.len() == 4 => {
                let increment = i64::from(frame.u32_at(0) & 0x7fff_ffff);
                *self.window_updates.entry(stream).or_default() += increment;
            }
            HEADERS if !stream.is_multiple_of(2) => {
                self.opened.insert(stream);
                self.highest_opened = self.highest_opened.max(stream);
            }
            PRIORITY if !self.opened.contains(&stream) => {
                self.priority_while_idle.insert(stream);
            }
            PING if !frame.has(ACK) && frame.payload.len() == 8 => {
                let payload: [u8; 8] = frame.payload.try_into().expect("eight bytes");
                *self.pings.entry(payload).or_default() += 1;
            }
            DATA => self.data_sent += frame.payload.len() as u64,
            GOAWAY => self.goaway = true,
            _ => {}
        }
    }

    fn window_updates(&self, stream: u32) -> i64 {
        self.window_updates.get(&stream).copied().unwrap_or(0)
    }
}

/// A response as the server has written it so far.
#[derive(Debug, Default)]
struct Response {
    status: Option<u16>,
    body: usize,
    /// END_STREAM was sent.
    ended: bool,
    /// The server reset the stream.
    reset: bool,
}

/// What the server has written, and what it may still write.
struct Server {
    body_len: usize,
    /// The client's SETTINGS_MAX_FRAME_SIZE, as of the last ACK.
    max_frame: usize,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE, as of the last ACK.
    initial_window: i64,
    /// The client's SETTINGS_HEADER_TABLE_SIZE, as of the last ACK.
    table_size: u32,
    /// The client lowered its table size: the next response block starts with a size update.
    size_update_due: bool,
    /// DATA payload bytes sent on the connection.
    data_sent: i64,
    responses: HashMap<u32, Response>,
    /// Streams reset before any response on them.
    reset_unanswered: HashSet<u32>,
    /// A response block waiting for CONTINUATION: stream, END_STREAM, fragments.
    partial: Option<(u32, bool, Vec<u8>)>,
    /// The client's HPACK decoder, for the response blocks.
    decoder: loona_hpack::Decoder<'static>,
    /// Connection window increments sent.
    window_updates: u64,
    goaway: Option<u32>,
}

impl Server {
    fn new(body_len: usize) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(MAX_TABLE_SIZE);
        Self {
            body_len,
            max_frame: DEFAULT_MAX_FRAME,
            initial_window: DEFAULT_WINDOW,
            table_size: MAX_TABLE_SIZE as u32,
            size_update_due: false,
            data_sent: 0,
            responses: HashMap::new(),
            reset_unanswered: HashSet::new(),
            partial: None,
            decoder,
            window_updates: 0,
            goaway: None,
        }
    }

    /// Checks one call's output frame by frame.
    fn output(&mut self, client: &mut Client, out: &[u8], closed: bool) {
        let frames = split_frames(out);
        let mut end = 0;
        for (i, frame) in frames.iter().enumerate() {
            end += HEADER_LEN + frame.payload.len();
            assert!(
                frame.kind != DATA || end <= OUTPUT_HIGH_WATER,
                "DATA up to byte {end} of one call's output, past the high water mark"
            );
            assert!(
                frame.payload.len() <= self.max_frame,
                "a {}-byte frame (type {}) past the client's frame size {}",
                frame.payload.len(),
                frame.kind,
                self.max_frame
            );
            assert_eq!(
                frame.raw_stream >> 31,
                0,
                "reserved bit set (type {})",
                frame.kind
            );
            if let Some((stream, _, _)) = &self.partial {
                assert!(
                    frame.kind == CONTINUATION && frame.stream() == *stream,
                    "a response block on stream {stream} is interrupted by a frame of type {}",
                    frame.kind
                );
            }
            if frame.kind == GOAWAY {
                assert!(closed, "GOAWAY sent, but the connection stays open");
                assert_eq!(i, frames.len() - 1, "frames after GOAWAY");
            }
            self.frame(client, frame);
        }
        assert!(
            self.partial.is_none(),
            "a call ends inside a response header block"
        );
        if closed {
            let goaway_last = frames.last().is_some_and(|f| f.kind == GOAWAY);
            assert!(
                goaway_last || client.goaway,
                "closed without a GOAWAY, and the client sent none"
            );
        }
    }

    fn frame(&mut self, client: &mut Client, frame: &Frame<'_>) {
        let stream = frame.stream();
        let len = frame.payload.len();
        match frame.kind {
            DATA => self.data(client, frame),
            HEADERS => {
                assert_eq!(
                    frame.flags & !(END_STREAM | END_HEADERS),
                    0,
                    "HEADERS flags {:#x}",
                    frame.flags
                );
                assert!(!stream.is_multiple_of(2), "HEADERS on stream {stream}");
                assert!(
                    client.opened.contains(&stream),
                    "HEADERS on stream {stream}, which the client did not open"
                );
                assert!(
                    !self.responses.contains_key(&stream),
                    "a second HEADERS on stream {stream}, or HEADERS after its reset"
                );
                assert!(
                    !self.reset_unanswered.contains(&stream)
                        || client.priority_while_idle.contains(&stream),
                    "stream {stream} answered after it was refused"
                );
                self.responses.insert(stream, Response::default());
                let fragments = frame.payload.to_vec();
                if frame.has(END_HEADERS) {
                    self.block(stream, frame.has(END_STREAM), &fragments);
                } else {
                    self.partial = Some((stream, frame.has(END_STREAM), fragments));
                }
            }
            CONTINUATION => {
                assert_eq!(frame.flags & !END_HEADERS, 0, "CONTINUATION flags");
                let Some((_, end_stream, mut fragments)) = self.partial.take() else {
                    panic!("CONTINUATION without a HEADERS before it (stream {stream})");
                };
                fragments.extend_from_slice(frame.payload);
                if frame.has(END_HEADERS) {
                    self.block(stream, end_stream, &fragments);
                } else {
                    self.partial = Some((stream, end_stream, fragments));
                }
            }
            RST_STREAM => {
                assert_eq!((len, frame.flags), (4, 0), "RST_STREAM length or flags");
                assert_ne!(stream, 0, "RST_STREAM on stream 0");
                let code = frame.u32_at(0);
                assert!(ERROR_CODES.contains(&code), "RST_STREAM code {code:#x}");
                match self.responses.get_mut(&stream) {
                    Some(response) => {
                        assert!(
                            code != NO_ERROR || response.ended,
                            "RST_STREAM NO_ERROR on stream {stream} before its response ended"
                        );
                        response.reset = true;
                    }
                    None => {
                        assert_ne!(code, NO_ERROR, "RST_STREAM NO_ERROR without a response");
                        self.reset_unanswered.insert(stream);
                    }
                }
            }
            SETTINGS => {
                assert_eq!(
                    (stream, frame.flags, len),
                    (0, ACK, 0),
                    "the server's only SETTINGS after its first are empty ACKs on stream 0"
                );
                let settings = client
                    .settings
                    .pop_front()
                    .expect("a SETTINGS ACK, but no SETTINGS of the client is unacknowledged");
                if let Some(reason) = settings.invalid {
                    panic!("ACK of a SETTINGS frame that is a connection error: {reason}");
                }
                if let Some(max_frame) = settings.max_frame {
                    self.max_frame = max_frame;
                }
                if let Some(window) = settings.initial_window {
                    self.initial_window = window;
                }
                if let Some(size) = settings.table_size {
                    self.table_size = size;
                }
                self.size_update_due |= settings.table_size_lowered;
            }
            PING => {
                assert_eq!(
                    (stream, frame.flags, len),
                    (0, ACK, 8),
                    "PING from the server"
                );
                let payload: [u8; 8] = frame.payload.try_into().expect("eight bytes");
                let count = client.pings.get_mut(&payload);
                match count {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => panic!("PING ACK of a PING the client did not send: {payload:?}"),
                }
            }
            GOAWAY => {
                assert_eq!((stream, frame.flags), (0, 0), "GOAWAY stream or flags");
                assert!(len >= 8, "GOAWAY of {len} bytes");
                let last = frame.u32_at(0);
                let code = frame.u32_at(4);
                assert_eq!(last >> 31, 0, "GOAWAY's reserved bit");
                assert!(ERROR_CODES.contains(&code), "GOAWAY code {code:#x}");
                assert!(
                    last <= client.highest_opened,
                    "GOAWAY's last stream {last} was never opened (highest {})",
                    client.highest_opened
                );
                if let Some(before) = self.goaway {
                    assert!(last <= before, "GOAWAY's last stream rose");
                }
                self.goaway = Some(last);
            }
            WINDOW_UPDATE => {
                assert_eq!((stream, frame.flags, len), (0, 0, 4), "WINDOW_UPDATE");
                let increment = frame.u32_at(0);
                assert!(
                    (1..=MAX_WINDOW as u32).contains(&increment),
                    "WINDOW_UPDATE increment {increment}"
                );
                self.window_updates += u64::from(increment);
                assert!(
                    self.window_updates <= client.data_sent,
                    "the server granted {} bytes of window, the client sent {} of DATA",
                    self.window_updates,
                    client.data_sent
                );
            }
            kind => panic!("the server sent a frame of type {kind}"),
        }
    }

    /// A complete response header block on `stream`.
    fn block(&mut self, stream: u32, end_stream: bool, block: &[u8]) {
        if std::mem::take(&mut self.size_update_due) {
            assert!(
                block.first().is_some_and(|b| b & 0xe0 == 0x20),
                "the client lowered its table size; the next block has no size update"
            );
            let size = hpack_integer(block, 5).expect("a complete size update").0;
            assert!(
                size <= self.table_size as usize,
                "size update to {size}, above the client's {}",
                self.table_size
            );
        }
        let fields = self
            .decoder
            .decode(block)
            .unwrap_or_else(|e| panic!("response block on stream {stream} does not decode: {e:?}"));
        let status = match fields.first() {
            Some((name, value)) if name == b":status" => value.clone(),
            _ => panic!("response block without :status first: {fields:?}"),
        };
        let response = self
            .responses
            .get_mut(&stream)
            .expect("inserted at HEADERS");
        response.status = Some(match &status[..] {
            b"200" => 200,
            b"431" => 431,
            _ => panic!("status {}", String::from_utf8_lossy(&status)),
        });
        if end_stream {
            assert!(
                response.status == Some(431) || self.body_len == 0,
                "a 200 ends at HEADERS with a {}-byte body",
                self.body_len
            );
            response.ended = true;
        } else {
            assert!(
                response.status == Some(200) && self.body_len > 0,
                "a response with no body to send does not end at HEADERS"
            );
        }
    }

    fn data(&mut self, client: &Client, frame: &Frame<'_>) {
        let stream = frame.stream();
        let len = frame.payload.len();
        assert_eq!(
            frame.flags & !END_STREAM,
            0,
            "DATA flags {:#x}",
            frame.flags
        );
        assert!(
            frame.payload.iter().all(|&b| b == b'x'),
            "DATA is not the body"
        );
        let response = self
            .responses
            .get_mut(&stream)
            .unwrap_or_else(|| panic!("DATA on stream {stream} before its HEADERS"));
        assert!(
            !response.ended && !response.reset,
            "DATA on stream {stream} after it ended or was reset"
        );
        assert_eq!(
            response.status,
            Some(200),
            "DATA of a response without a body"
        );
        response.body += len;
        assert!(response.body <= self.body_len, "more DATA than the body");
        if frame.has(END_STREAM) {
            assert_eq!(response.body, self.body_len, "the body ends short");
            response.ended = true;
        }
        // Flow control (RFC 9113 section 6.9): the stream's window is the client's initial
        // window (as last ACKed; a change applies to open streams) plus its WINDOW_UPDATEs.
        let body = response.body as i64;
        let stream_window = self.initial_window + client.window_updates(stream);
        assert!(
            body <= stream_window,
            "{body} bytes sent on stream {stream}, its window allows {stream_window}"
        );
        self.data_sent += len as i64;
        let connection_window = DEFAULT_WINDOW + client.window_updates(0);
        assert!(
            self.data_sent <= connection_window,
            "{} bytes sent on the connection, its window allows {connection_window}",
            self.data_sent
        );
    }
}

/// Checks the server's first frame: its SETTINGS.
fn check_start(start: &[u8]) {
    let frames = split_frames(start);
    assert_eq!(frames.len(), 1, "the server starts with one frame");
    let frame = frames[0];
    assert_eq!(
        (frame.kind, frame.flags, frame.raw_stream),
        (SETTINGS, 0, 0)
    );
    assert!(frame.payload.len().is_multiple_of(6));
    let concurrent = frame.payload.chunks_exact(6).find_map(|entry| {
        (u16::from_be_bytes([entry[0], entry[1]]) == SETTINGS_MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes(entry[2..6].try_into().expect("four bytes")))
    });
    assert_eq!(concurrent, Some(MAX_CONCURRENT_STREAMS));
}

/// The client's byte stream as frames: where each ends, so that they are handed to
/// [`Client`] as they complete.
struct ClientStream<'a> {
    /// The first byte that is not the preface's, if any: the server errors when it arrives.
    preface_mismatch: Option<usize>,
    /// (end offset, frame) of every complete frame after a correct preface, up to the first
    /// frame longer than the server accepts.
    frames: Vec<(usize, Frame<'a>)>,
    /// Frames handed to the client model.
    handed: usize,
}

impl<'a> ClientStream<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let preface_mismatch =
            (0..PREFACE.len().min(bytes.len())).find(|&i| bytes[i] != PREFACE[i]);
        let mut frames = Vec::new();
        if preface_mismatch.is_none() && bytes.len() >= PREFACE.len() {
            let mut at = PREFACE.len();
            while bytes.len() - at >= HEADER_LEN {
                let header = &bytes[at..at + HEADER_LEN];
                let len = frame_len(header);
                if len > DEFAULT_MAX_FRAME || bytes.len() - at - HEADER_LEN < len {
                    // FRAME_SIZE_ERROR (the server reads no further), or incomplete.
                    break;
                }
                let end = at + HEADER_LEN + len;
                frames.push((
                    end,
                    Frame {
                        kind: header[3],
                        flags: header[4],
                        raw_stream: u32::from_be_bytes(header[5..9].try_into().expect("four")),
                        payload: &bytes[at + HEADER_LEN..end],
                    },
                ));
                at = end;
            }
        }
        Self {
            preface_mismatch,
            frames,
            handed: 0,
        }
    }

    /// Where a chunk starting at `at` must end to complete at most one frame.
    fn first_frame_end_after(&self, at: usize) -> Option<usize> {
        let i = self.frames.partition_point(|&(end, _)| end <= at);
        self.frames.get(i).map(|&(end, _)| end)
    }

    /// Hands the frames complete within the first `fed` bytes to `client`.
    fn feed(&mut self, fed: usize, client: &mut Client) {
        while let Some(&(end, frame)) = self.frames.get(self.handed) {
            if end > fed {
                break;
            }
            client.frame(&frame);
            self.handed += 1;
        }
    }
}

/// Runs one fuzz input through an HTTP/2 connection, checking every call's output.
///
/// Input: byte 0 is the mode (bits 0-1: the client preface is prepended unless both are 0;
/// bit 2: chunks end at frame ends, so that each call completes at most one frame and the
/// window sums are exact while the output does not fill up; bits 3-5: the response body length, from [`BODY_LENS`]); byte 1
/// says how many schedule bytes follow (each: low nibble a chunk size from [`CHUNKS`], high
/// nibble a clock advance from [`ADVANCES_MS`]; past them, chunks are [`READ_CHUNK`]); the
/// rest is what the client sends.
pub fn h2_connection(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (schedule, client_bytes) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    let aligned = mode & 0x04 != 0;
    let body_len = BODY_LENS[usize::from(mode >> 3 & 0x07)];
    let mut bytes = Vec::with_capacity(PREFACE.len() + client_bytes.len());
    if mode & 0x03 != 0 {
        bytes.extend_from_slice(PREFACE);
    }
    bytes.extend_from_slice(client_bytes);

    check_start(&H2Connection::start());
    let mut connection = H2Connection::new(body_len);
    let mut stream = ClientStream::new(&bytes);
    let mut client = Client::default();
    let mut server = Server::new(body_len);
    let mut schedule = schedule.iter();
    let mut fed = 0;
    let mut calls = 0;
    loop {
        let chunk: &[u8] = if connection.has_backlog() {
            // As the driver: no reading while frames (or sendable responses) wait.
            &[]
        } else if fed < bytes.len() {
            let (size, advance) = match schedule.next() {
                Some(&s) => (
                    CHUNKS[usize::from(s & 0x0f)],
                    ADVANCES_MS[usize::from(s >> 4)],
                ),
                None => (READ_CHUNK, 0),
            };
            connection.advance(Duration::from_millis(advance));
            let mut end = (fed + size).min(bytes.len());
            if aligned && let Some(frame_end) = stream.first_frame_end_after(fed) {
                end = end.min(frame_end);
            }
            &bytes[fed..end]
        } else {
            break;
        };
        calls += 1;
        assert!(calls < 1_000_000, "the connection never settles");
        let before = fed;
        fed += chunk.len();
        stream.feed(fed, &mut client);
        let received = connection.receive(chunk);
        server.output(&mut client, &received.out, received.closed);
        check_call(&connection, &received.out, received.closed);
        if let Some(mismatch) = stream.preface_mismatch
            && (before..fed).contains(&mismatch)
        {
            assert!(received.closed, "a wrong preface is not refused");
        }
        if received.closed {
            return;
        }
    }
}

/// The bounds every call keeps.
fn check_call(connection: &H2Connection, out: &[u8], closed: bool) {
    assert!(
        out.len() <= OUTPUT_BOUND,
        "{} bytes written in one call; at most {OUTPUT_BOUND} expected",
        out.len()
    );
    assert!(
        connection.retained_bytes() <= RETAINED_MAX,
        "{} bytes retained",
        connection.retained_bytes()
    );
    assert!(
        connection.held_streams() <= MAX_CONCURRENT_STREAMS as usize,
        "{} streams held",
        connection.held_streams()
    );
    // Below the mark every complete frame was read; with room for a DATA frame of the
    // smallest size left, every response the windows allow was sent too.
    if !closed && out.len() + HEADER_LEN + MIN_DATA_FRAME <= OUTPUT_HIGH_WATER {
        assert!(
            !connection.has_backlog(),
            "work left behind with the output well below its mark ({} bytes)",
            out.len()
        );
    }
}

// === hpack_decoder ===

/// Reads an HPACK integer with a `prefix`-bit prefix at the start of `bytes` (RFC 7541 5.1):
/// its value and length, or `None` if `bytes` end first (or it has more than 5 bytes).
fn hpack_integer(bytes: &[u8], prefix: u32) -> Option<(usize, usize)> {
    let max = (1usize << prefix) - 1;
    let mut value = usize::from(*bytes.first()?) & max;
    if value < max {
        return Some((value, 1));
    }
    for (i, &byte) in bytes.iter().enumerate().skip(1).take(4) {
        value += usize::from(byte & 0x7f) << (7 * (i - 1));
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Where a block's dynamic table size updates stand (RFC 7541 section 6.3), from its
/// representations' lengths alone.
#[derive(Debug, Default)]
struct Updates {
    /// A size update after a field: refused by issuerd (section 4.2 puts them at the start),
    /// accepted by loona-hpack.
    after_field: bool,
    /// The value of the last update before the first field.
    leading: Option<usize>,
    /// The block is only size updates (at least one).
    only_updates: bool,
}

fn scan_updates(block: &[u8]) -> Updates {
    let mut updates = Updates::default();
    let mut at = 0;
    let mut field_seen = false;
    while at < block.len() {
        let byte = block[at];
        let rest = &block[at..];
        let step = if byte & 0x80 != 0 {
            field_seen = true;
            hpack_integer(rest, 7).map(|(_, n)| n)
        } else if byte & 0xe0 == 0x20 {
            hpack_integer(rest, 5).map(|(size, n)| {
                if field_seen {
                    updates.after_field = true;
                } else {
                    updates.leading = Some(size);
                }
                n
            })
        } else {
            field_seen = true;
            let prefix = if byte & 0x40 != 0 { 6 } else { 4 };
            hpack_integer(rest, prefix).and_then(|(index, mut n)| {
                let strings = if index == 0 { 2 } else { 1 };
                for _ in 0..strings {
                    let (len, m) = hpack_integer(rest.get(n..)?, 7)?;
                    n = n.checked_add(m)?.checked_add(len)?;
                }
                (n <= rest.len()).then_some(n)
            })
        };
        let Some(step) = step else { break };
        at += step;
    }
    updates.only_updates = !block.is_empty() && !field_seen && at == block.len();
    updates
}

/// What the decoder's [`HpackDecoder::decode`] says when a size update is refused (above
/// [`MAX_TABLE_SIZE`], or after a field), and the start of what it says past [`MAX_DECODED`].
const SIZE_UPDATE_ERROR: &str = "invalid dynamic table size update";
const TOO_LARGE_ERROR: &str = "header block decodes to more than";

/// A field list's decoded size as [`MAX_DECODED`] counts it.
fn decoded_size(fields: &[(Vec<u8>, Vec<u8>)]) -> usize {
    fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
}

/// Runs one fuzz input through issuerd's HPACK decoder, against `loona_hpack` as the oracle.
///
/// Input: header blocks, each a 2-byte big-endian length and that many bytes (the last one
/// may be shorter), decoded in order by one decoder each (issuerd's `decode`, issuerd's
/// `decode_request`, loona-hpack with the same 4,096-byte table limit) until a block is
/// refused (the connection would end there). Where issuerd accepts a block, loona-hpack must
/// accept it with the same fields; where loona-hpack refuses one, issuerd must refuse it.
/// issuerd may refuse what loona-hpack accepts only for its own deliberate limits:
/// - a dynamic table size update after a field (RFC 7541 section 4.2 puts it at the start of
///   a block; loona-hpack takes it anywhere): `invalid dynamic table size update`;
/// - a block that decodes to more than [`MAX_DECODED`] bytes (names, values and 32 per
///   field, as loona-hpack's fields add up): `header block decodes to more than`.
///
/// issuerd's other limits need no excuse, as loona-hpack has the same: size updates above
/// 4,096 (given the same limit), integers of more than 5 bytes, and Huffman padding that is
/// longer than 7 bits or not EOS's ones. The one excuse the other way: loona-hpack refuses a
/// block that ends with a size update (`SizeUpdateAtEnd`, which RFC 7541 does not ask for);
/// issuerd accepts a block of only size updates, with no fields.
pub fn hpack_decoder(data: &[u8]) {
    let mut ours = HpackDecoder::default();
    let mut request = HpackDecoder::default();
    let mut oracle = loona_hpack::Decoder::new();
    oracle.set_max_allowed_table_size(MAX_TABLE_SIZE);
    let mut max_size = MAX_TABLE_SIZE;
    let mut rest = data;
    while !rest.is_empty() {
        let len = match rest {
            [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
            _ => 0,
        };
        let start = rest.len().min(2);
        let end = (start + len).min(rest.len());
        let block = &rest[start..end];
        rest = &rest[end..];

        let updates = scan_updates(block);
        let decoded = ours.decode(block);
        let as_request = request.decode_request(block);
        assert_eq!(
            decoded.as_ref().err(),
            as_request.as_ref().err(),
            "decode and decode_request disagree"
        );
        assert_eq!(ours.table_size(), request.table_size());
        let expected = oracle.decode(block);
        match (&decoded, &expected) {
            (Ok(fields), Ok(expected)) => {
                assert_eq!(fields, expected, "fields differ from loona-hpack's");
                assert!(decoded_size(expected) <= MAX_DECODED, "past MAX_DECODED");
                assert!(!updates.after_field, "a size update after a field accepted");
            }
            (Ok(fields), Err(loona_hpack::decoder::DecoderError::SizeUpdateAtEnd)) => {
                assert!(
                    fields.is_empty() && updates.only_updates,
                    "a block ending in a size update accepted with fields: {fields:?}"
                );
            }
            (Ok(fields), Err(error)) => {
                panic!("accepted ({fields:?}), loona-hpack refuses: {error:?}")
            }
            (Err(error), Ok(expected)) => {
                let excused = (error == SIZE_UPDATE_ERROR && updates.after_field)
                    || (error.starts_with(TOO_LARGE_ERROR) && decoded_size(expected) > MAX_DECODED);
                assert!(
                    excused,
                    "refused ({error}), loona-hpack accepts: {expected:?}"
                );
            }
            (Err(_), Err(_)) => {}
        }
        if decoded.is_err() {
            return;
        }
        if let Some(size) = updates.leading {
            max_size = size;
        }
        assert!(ours.table_size() <= MAX_TABLE_SIZE);
        assert!(
            ours.table_size() <= max_size,
            "table of {} bytes, its size was set to {max_size}",
            ours.table_size()
        );
    }
}

// === iam_map ===

/// The text of an IAM map (kOps Cluster manifest or standalone map) through
/// `issuerd::iam_map::IamMap::parse`: it never panics, refuses with a message that names the
/// file, and what it accepts keeps the map's promises:
/// - the cluster name is a DNS name; every role name fits IAM (at most 64 of its characters)
///   and is the entry's own (no two entries share a ServiceAccount or a role);
/// - the trust condition is `StringLike` exactly when the namespace holds `*`, and there is no
///   `*` in a name;
/// - lookup finds every exact entry for its own ServiceAccount, and some entry for a namespace
///   its glob matches (the exact one, or the first glob in file order);
/// - an inline policy has statements; parsing is deterministic.
///
/// The input's first line, as a pattern, and its second, as a value, also go through IAM's
/// `StringLike` matcher and a reference implementation (dynamic programming); they must agree.
pub fn iam_map(data: &[u8]) {
    use issuerd::iam_map::{Condition, IamMap, MAX_ROLE_NAME, Permissions, pattern::string_like};

    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    if let (Some(pattern), Some(value)) = (lines.next(), lines.next()) {
        let pattern: String = pattern.chars().take(64).collect();
        let value: String = value.chars().take(64).collect();
        assert_eq!(
            string_like(&pattern, &value),
            string_like_reference(&pattern, &value),
            "StringLike {pattern:?} ~ {value:?}"
        );
    }

    let source = std::path::Path::new("fuzz.yaml");
    let map = match IamMap::parse(&text, source) {
        Ok(map) => map,
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("fuzz.yaml"),
                "a refusal that does not name the file: {message}"
            );
            return;
        }
    };
    assert!(
        IamMap::parse(&text, source).is_ok_and(|again| again == map),
        "parsing is not deterministic"
    );
    let cluster = map.cluster_name();
    assert!(
        !cluster.is_empty()
            && cluster.len() <= 253
            && cluster
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'),
        "cluster name {cluster:?}"
    );
    let mut roles = HashSet::new();
    let mut accounts = HashSet::new();
    for entry in map.entries() {
        let role = entry.role_name(cluster);
        assert!(
            !role.is_empty()
                && role.len() <= MAX_ROLE_NAME
                && role
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)),
            "role name {role:?} of {entry:?}"
        );
        assert!(roles.insert(role.clone()), "two entries with role {role}");
        assert!(
            accounts.insert((entry.namespace(), entry.name())),
            "two entries for {}/{}",
            entry.namespace(),
            entry.name()
        );
        assert_eq!(
            entry.role_arn("aws", "123456789012", cluster),
            format!("arn:aws:iam::123456789012:role/{role}")
        );
        assert!(!entry.name().is_empty() && !entry.name().contains('*'));
        let glob = entry.namespace().contains('*');
        assert_eq!(entry.condition() == Condition::StringLike, glob);
        let found = if glob {
            // A namespace the glob matches: each `*` taken as one letter.
            map.lookup(&entry.namespace().replace('*', "x"), entry.name())
        } else {
            map.lookup(entry.namespace(), entry.name())
        };
        let found = found.unwrap_or_else(|| panic!("lookup misses {entry:?}"));
        if !glob {
            assert_eq!(
                found, entry,
                "lookup prefers another entry to the exact one"
            );
        } else if found.condition() == Condition::StringLike {
            assert!(
                found.index() <= entry.index(),
                "lookup prefers a later glob: {found:?} over {entry:?}"
            );
        }
        match entry.permissions() {
            Permissions::PolicyArns(arns) => assert!(!arns.is_empty()),
            Permissions::Inline(policy) => {
                assert!(!policy.statements().is_empty());
                assert_eq!(policy.document()["Version"], "2012-10-17");
            }
        }
    }
}

/// IAM's `StringLike` by dynamic programming over (pattern prefix, value prefix).
fn string_like_reference(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // matches[j]: the pattern so far matches v[..j].
    let mut matches = vec![false; v.len() + 1];
    matches[0] = true;
    for &c in &p {
        let mut next = vec![false; v.len() + 1];
        for j in 0..=v.len() {
            next[j] = match c {
                '*' => matches[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matches[j - 1],
                c => j > 0 && matches[j - 1] && v[j - 1] == c,
            };
        }
        matches = next;
    }
    matches[v.len()]
}

// === admission_review ===

/// What every fuzzed pod is injected with: every option on, so that every branch can be reached.
fn injection() -> Injection {
    Injection {
        regional_sts: true,
        region: Some("eu-west-1".to_owned()),
        set_fs_group: Some(1000),
        ..Injection::new("arn:aws:iam::111122223333:role/fuzz")
    }
}

/// Runs one request body through the webhook's core, as a server would: decode, mutate the pod
/// of a pod CREATE (every pod gets [`injection`]), answer.
///
/// - An undecodable body gets a refusal: JSON, `allowed: false`, status 400, the uid it could
///   read.
/// - Otherwise the answer is JSON that echoes the review's `apiVersion`, `kind` and uid, and
///   allows the object; it carries a patch (`patchType: JSONPatch`, base64) exactly when the
///   mutation has one.
/// - The patch applies to the pod (`json-patch`), and mutating the patched pod yields no patch
///   (idempotence, whatever the JSON).
pub fn admission_review(data: &[u8]) {
    let review = match Review::decode(data) {
        Ok(review) => review,
        Err(rejection) => {
            let response: Value =
                serde_json::from_slice(&rejection.to_json()).expect("a refusal is JSON");
            assert_eq!(response["kind"], "AdmissionReview");
            assert_eq!(response["response"]["allowed"], false);
            assert_eq!(response["response"]["status"]["code"], 400);
            assert_eq!(response["response"]["uid"], rejection.uid());
            return;
        }
    };
    let injection = injection();
    let create = review.pod_create();
    let mutation = create.map(|create| mutate(create.pod, &injection));
    let bytes = match &mutation {
        Some(mutation) => review.respond(mutation),
        None => review.allow(),
    };
    let response: Value = serde_json::from_slice(&bytes).expect("a response is JSON");
    assert_eq!(response["apiVersion"], review.api_version());
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(response["response"]["uid"], review.request().uid.as_str());
    assert_eq!(response["response"]["allowed"], true);
    let sent = response["response"].get("patch").map(|patch| {
        assert_eq!(response["response"]["patchType"], "JSONPatch");
        STANDARD
            .decode(patch.as_str().expect("the patch is a string"))
            .expect("the patch is base64")
    });
    let (Some(create), Some(mutation)) = (create, mutation) else {
        assert!(sent.is_none(), "a patch for what is not a pod CREATE");
        return;
    };
    if mutation.patch.is_empty() {
        assert!(sent.is_none(), "an empty patch is sent");
        return;
    }
    assert_eq!(sent.as_deref(), Some(&mutation.patch_json()[..]));
    let patch: json_patch::Patch =
        serde_json::from_slice(&mutation.patch_json()).expect("the patch is RFC 6902");
    let mut patched = create.pod.clone();
    if let Err(error) = json_patch::patch(&mut patched, &patch) {
        panic!("the patch does not apply: {error}");
    }
    let again = mutate(&patched, &injection);
    assert!(again.patch.is_empty(), "not idempotent: {:?}", again.patch);
}
