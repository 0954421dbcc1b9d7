//! A seam for fuzz targets and corpus replays (`fuzz/`, `tests/it/fuzz_replay.rs`): the sans-IO
//! connection and the HPACK decoder, driven from outside the crate. Not part of the server's
//! interface; nothing in issuerd calls it.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::connection::{Asked, Connection, Reply, Status};
use super::hpack::Decoder;
use super::request::{Decoded, RequestHead};
use crate::server::response_block::DATE_LEN;

/// Most concurrent streams a connection allows (those held back by flow control count).
pub const MAX_CONCURRENT_STREAMS: u32 = super::connection::MAX_CONCURRENT_STREAMS;
/// Output beyond which a connection reads no further frame until it is written.
pub const OUTPUT_HIGH_WATER: usize = super::connection::OUTPUT_HIGH_WATER;
/// The largest frame payload before a SETTINGS_MAX_FRAME_SIZE (RFC 9113 section 4.2).
pub const DEFAULT_MAX_FRAME: usize = super::frame::DEFAULT_MAX_FRAME;
/// The client connection preface.
pub const PREFACE: &[u8] = super::frame::PREFACE;
/// The largest dynamic table the HPACK decoder allows: the SETTINGS_HEADER_TABLE_SIZE issuerd
/// leaves at its default (a size update above it is a `COMPRESSION_ERROR`).
pub const MAX_TABLE_SIZE: usize = super::hpack::MAX_TABLE_SIZE;
/// Most bytes one header block may decode to (names, values and 32 per field) before the
/// decoder stops with a `COMPRESSION_ERROR`.
pub const MAX_DECODED: usize = super::hpack::MAX_DECODED;

const DATE: [u8; DATE_LEN] = *b"Sun, 06 Nov 1994 08:49:37 GMT";

/// One HTTP/2 connection's protocol state, answering every request with a fixed 200 whose body
/// is `body_len` bytes (or a 431 for a request that is too large), on a clock the caller moves.
#[derive(Debug)]
pub struct H2Connection {
    connection: Connection,
    now: Instant,
    body: Bytes,
}

/// What one [`H2Connection::receive`] call did.
#[derive(Debug)]
pub struct Received {
    /// The frames written (the server's own SETTINGS are not among them: see
    /// [`H2Connection::start`]).
    pub out: Vec<u8>,
    /// The connection ends (GOAWAY was sent, or the client's GOAWAY and nothing owed).
    pub closed: bool,
}

impl H2Connection {
    /// A connection whose preface is still to come; the server's SETTINGS, which the driver
    /// writes first, are [`H2Connection::start`]'s.
    pub fn new(body_len: usize) -> Self {
        Self {
            connection: Connection::new(Instant::now()),
            now: Instant::now(),
            body: Bytes::from(vec![b'x'; body_len]),
        }
    }

    /// The server's SETTINGS frame, as the driver writes it first.
    pub fn start() -> Vec<u8> {
        let mut out = Vec::new();
        Connection::start(&mut out);
        out
    }

    /// Moves the connection's clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// Feeds `data` (any bytes) to the connection.
    pub fn receive(&mut self, data: &[u8]) -> Received {
        let mut out = Vec::new();
        let body = &self.body;
        let mut answer = |asked: Asked<'_>| match asked {
            // :status 200
            Ok(_) => Reply {
                block: Cow::Borrowed(&[0x88][..]),
                body: Cow::Borrowed(body),
            },
            // :status 431 (literal, not indexed)
            Err(_) => Reply {
                block: Cow::Borrowed(&[0x08, 0x03, b'4', b'3', b'1'][..]),
                body: Cow::Owned(Bytes::new()),
            },
        };
        let status = self
            .connection
            .receive(data, self.now, &DATE, &mut out, &mut answer);
        Received {
            out,
            closed: status == Status::Close,
        }
    }

    /// Responses held back by flow control.
    pub fn held_streams(&self) -> usize {
        self.connection.held_streams()
    }

    /// Bytes the connection holds between calls (its input, partial header block, held bodies'
    /// bookkeeping, HPACK table, remembered resets): what a peer can make it keep.
    pub fn retained_bytes(&self) -> usize {
        self.connection.retained_bytes()
    }

    /// Whether frames (or held responses) wait to be processed without more input.
    pub fn has_backlog(&self) -> bool {
        self.connection.has_backlog()
    }
}

/// A decoded header field: name and value.
pub type Field = (Vec<u8>, Vec<u8>);

/// An HPACK decoder (RFC 7541) for request header blocks, as the connection uses it.
#[derive(Debug, Default)]
pub struct HpackDecoder {
    decoder: Decoder,
    head: RequestHead,
}

impl HpackDecoder {
    /// Decodes one header block into its fields (name, value), updating the dynamic table;
    /// `Err` names the reason the block is a `COMPRESSION_ERROR`.
    pub fn decode(&mut self, block: &[u8]) -> Result<Vec<Field>, String> {
        let mut fields = Vec::new();
        self.decoder
            .decode(block, |name, value, _| {
                fields.push((name.to_vec(), value.to_vec()));
            })
            .map_err(|error| error.to_string())?;
        Ok(fields)
    }

    /// Decodes one block as the connection does a request's (fields checked against RFC 9113
    /// section 8, only what the server needs kept): `Ok(true)` for a well-formed request.
    pub fn decode_request(&mut self, block: &[u8]) -> Result<bool, String> {
        let decoded = self
            .head
            .decode(&mut self.decoder, block)
            .map_err(|error| error.to_string())?;
        Ok(decoded == Decoded::Request)
    }

    /// The dynamic table's size (RFC 7541 section 4.1).
    pub fn table_size(&self) -> usize {
        self.decoder.table_size()
    }
}
