//! HTTP/2 framing (RFC 9113 section 4 and 6): frame headers in, frames out.

/// What every HTTP/2 connection starts with.
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A frame header's length.
pub(crate) const HEADER_LEN: usize = 9;
/// The largest frame payload either side may send before SETTINGS say otherwise, and the
/// largest issuerd accepts.
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;
/// The flow-control window every stream and the connection start with.
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;
/// The largest flow-control window (2^31 - 1).
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;

/// Frame types.
pub(crate) mod kind {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const PRIORITY: u8 = 0x2;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 section 6.5.2).
pub(crate) mod setting {
    pub(crate) const HEADER_TABLE_SIZE: u16 = 0x1;
    pub(crate) const ENABLE_PUSH: u16 = 0x2;
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// Error codes of RST_STREAM and GOAWAY (RFC 9113 section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    CompressionError = 0x9,
    EnhanceYourCalm = 0xb,
}

/// One frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl FrameHeader {
    /// Reads a frame header from the first [`HEADER_LEN`] bytes of `bytes`.
    pub(crate) fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            len: usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            // The reserved bit is ignored on receipt.
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    fn has(self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// END_STREAM (DATA, HEADERS) or ACK (SETTINGS, PING): the same bit.
    pub(crate) fn end_stream(self) -> bool {
        self.has(flag::END_STREAM)
    }

    /// END_HEADERS (HEADERS, CONTINUATION).
    pub(crate) fn end_headers(self) -> bool {
        self.has(flag::END_HEADERS)
    }

    /// Whether the frame carries padding (DATA, HEADERS).
    pub(crate) fn padded(self) -> bool {
        self.has(flag::PADDED)
    }

    /// Whether a HEADERS frame carries priority fields.
    pub(crate) fn priority(self) -> bool {
        self.has(flag::PRIORITY)
    }
}

/// The payload of a DATA or HEADERS frame without its padding (and, for HEADERS, without
/// its priority fields); `None` when the padding is as long as the payload or longer, which
/// is a connection error (RFC 9113 sections 6.1 and 6.2).
pub(crate) fn unpadded(header: FrameHeader, payload: &[u8]) -> Option<&[u8]> {
    let (pad, rest) = if header.padded() {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let rest = if header.kind == kind::HEADERS && header.priority() {
        rest.get(5..)?
    } else {
        rest
    };
    rest.len().checked_sub(pad).map(|len| &rest[..len])
}

/// The stream a HEADERS frame's priority fields (or a PRIORITY frame) make this one depend on.
pub(crate) fn priority_dependency(header: FrameHeader, payload: &[u8]) -> Option<u32> {
    let fields = match header.kind {
        kind::PRIORITY => payload,
        kind::HEADERS if header.priority() => {
            let skip = usize::from(header.padded());
            payload.get(skip..)?
        }
        _ => return None,
    };
    let bytes: [u8; 4] = fields.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes) & 0x7fff_ffff)
}

/// Reads the 31-bit value of a 4-byte payload (WINDOW_UPDATE increment, RST_STREAM code).
pub(crate) fn read_u32(payload: &[u8]) -> u32 {
    let bytes: [u8; 4] = payload[..4]
        .try_into()
        .expect("four bytes checked by the caller");
    u32::from_be_bytes(bytes)
}

/// Appends a frame header.
pub(crate) fn put_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len < 1 << 24);
    let len = u32::try_from(len).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// Appends a SETTINGS frame with `settings`.
pub(crate) fn put_settings(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    put_header(out, settings.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in settings {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement.
pub(crate) fn put_settings_ack(out: &mut Vec<u8>) {
    put_header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING acknowledgement echoing `payload`.
pub(crate) fn put_ping_ack(out: &mut Vec<u8>, payload: &[u8]) {
    put_header(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(payload);
}

/// Appends a WINDOW_UPDATE.
pub(crate) fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_header(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

/// Appends a RST_STREAM.
pub(crate) fn put_reset(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_header(out, 4, kind::RST_STREAM, 0, stream);
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Appends a GOAWAY naming the last stream that was (or may still be) processed.
pub(crate) fn put_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    put_header(out, 8, kind::GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&(reason as u32).to_be_bytes());
}

/// Appends a header block as one HEADERS frame, or HEADERS and CONTINUATION frames when it
/// is larger than `max_frame`. The block is given in parts (precomputed ones and the date).
pub(crate) fn put_headers(
    out: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    parts: &[&[u8]],
    max_frame: usize,
) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let end = if end_stream { flag::END_STREAM } else { 0 };
    if len <= max_frame {
        put_header(out, len, kind::HEADERS, end | flag::END_HEADERS, stream);
        for part in parts {
            out.extend_from_slice(part);
        }
        return;
    }
    let block = parts.concat();
    let mut chunks = block.chunks(max_frame).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let end_headers = if last { flag::END_HEADERS } else { 0 };
        let (kind, flags) = if first {
            (kind::HEADERS, end | end_headers)
        } else {
            (kind::CONTINUATION, end_headers)
        };
        put_header(out, chunk.len(), kind, flags, stream);
        out.extend_from_slice(chunk);
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_round_trip_and_ignore_the_reserved_bit() {
        let mut out = Vec::new();
        put_header(&mut out, 0x01_02_03, kind::HEADERS, 0x25, 7);
        let mut bytes: [u8; HEADER_LEN] = out.as_slice().try_into().unwrap();
        bytes[5] |= 0x80;
        let header = FrameHeader::parse(&bytes);
        assert_eq!(
            header,
            FrameHeader {
                len: 0x01_02_03,
                kind: kind::HEADERS,
                flags: 0x25,
                stream: 7
            }
        );
        assert!(header.end_stream() && header.end_headers() && header.priority());
        assert!(!header.padded());
    }

    #[test]
    fn padding_and_priority_are_stripped_and_overlong_padding_is_refused() {
        let headers = |flags| FrameHeader {
            len: 0,
            kind: kind::HEADERS,
            flags,
            stream: 1,
        };
        let padded = [2, b'a', b'b', 0, 0];
        assert_eq!(unpadded(headers(flag::PADDED), &padded), Some(&b"ab"[..]));
        assert_eq!(
            unpadded(headers(flag::PADDED), &[3, b'a', 0, 0]),
            Some(&b""[..])
        );
        assert_eq!(unpadded(headers(flag::PADDED), &[4, b'a', 0, 0]), None);
        assert_eq!(unpadded(headers(flag::PADDED), &[]), None);
        let with_priority = [0, 0, 0, 3, 16, b'x'];
        assert_eq!(
            unpadded(headers(flag::PRIORITY), &with_priority),
            Some(&b"x"[..])
        );
        assert_eq!(
            priority_dependency(headers(flag::PRIORITY), &with_priority),
            Some(3)
        );
        assert_eq!(unpadded(headers(flag::PRIORITY), &[0, 0]), None);
    }

    #[test]
    fn large_header_blocks_are_split_into_continuations() {
        let mut out = Vec::new();
        put_headers(&mut out, 3, true, &[b"abcde", b"fgh"], 3);
        let frames: Vec<_> = [0usize, 12, 24]
            .iter()
            .map(|&at| FrameHeader::parse(out[at..at + HEADER_LEN].try_into().unwrap()))
            .collect();
        assert_eq!(frames[0].kind, kind::HEADERS);
        assert!(frames[0].end_stream() && !frames[0].end_headers());
        assert_eq!(frames[1].kind, kind::CONTINUATION);
        assert!(!frames[1].end_headers());
        assert_eq!(frames[2].kind, kind::CONTINUATION);
        assert!(frames[2].end_headers());
        assert_eq!(frames[2].len, 2);
        assert_eq!(&out[9..12], b"abc");
        assert_eq!(&out[33..], b"gh");
    }
}
