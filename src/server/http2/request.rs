//! A request's header block, decoded (`hpack.rs`) and checked against RFC 9113 section 8: only
//! what the server needs is kept, in buffers reused from request to request.

use http::Method;

use super::field::Validity;
use super::hpack::{DecodeError, Decoder};

/// Largest decoded header list accepted (names, values and 32 bytes per field, RFC 9113
/// section 6.5.2), as over HTTP/1.1: 16 KiB. A larger one is answered 431.
pub(crate) const MAX_HEADER_LIST_SIZE: usize = 16 * 1024;

/// Why a request is malformed (a stream error, RST_STREAM `PROTOCOL_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// A pseudo-header other than the four of a request, or one given twice.
    PseudoHeader,
    /// A pseudo-header after a regular field.
    PseudoAfterField,
    /// `:method`, `:scheme` or `:path` missing or empty.
    Missing,
    /// A field name with uppercase or other characters a name may not have.
    Name,
    /// A field value with NUL, CR or LF, or starting or ending with white space.
    Value,
    /// A connection-specific field (`connection`, `transfer-encoding`, ...) or `te` other
    /// than `trailers`.
    ConnectionSpecific,
}

/// What one request's header block says.
#[derive(Debug, Default)]
pub(crate) struct RequestHead {
    method: Option<Method>,
    /// `:path` (with any query).
    target: Vec<u8>,
    has_scheme: bool,
    seen_authority: bool,
    seen_field: bool,
    /// The `If-None-Match` values, in order; `if_none_match_count` of them are in use.
    if_none_match: Vec<Vec<u8>>,
    if_none_match_count: usize,
    /// Decoded size so far (RFC 9113 section 6.5.2).
    list_size: usize,
    malformed: Option<Malformed>,
}

/// How a header block was read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A well-formed request.
    Request,
    /// Larger than [`MAX_HEADER_LIST_SIZE`].
    TooLarge,
    /// Malformed: answered with RST_STREAM.
    Malformed(Malformed),
}

impl RequestHead {
    /// Decodes `block` with `decoder` (whose dynamic table it updates) into `self`. `Err` is an
    /// HPACK decoding failure: a connection error (`COMPRESSION_ERROR`).
    pub(crate) fn decode(
        &mut self,
        decoder: &mut Decoder,
        block: &[u8],
    ) -> Result<Decoded, DecodeError> {
        self.method = None;
        self.target.clear();
        self.has_scheme = false;
        self.seen_authority = false;
        self.seen_field = false;
        self.if_none_match_count = 0;
        self.list_size = 0;
        self.malformed = None;
        decoder.decode(block, |name, value, validity| {
            self.field(name, value, validity);
        })?;
        if self.list_size > MAX_HEADER_LIST_SIZE {
            return Ok(Decoded::TooLarge);
        }
        if let Some(malformed) = self.malformed {
            return Ok(Decoded::Malformed(malformed));
        }
        let complete = match &self.method {
            None => false,
            Some(method) if method == Method::CONNECT => true,
            Some(_) => self.has_scheme && !self.target.is_empty(),
        };
        Ok(if complete {
            Decoded::Request
        } else {
            Decoded::Malformed(Malformed::Missing)
        })
    }

    /// One field: its size counted, then (while the list is within its limit and well-formed)
    /// checked and kept. Nothing here reads a name or value through (the decoder judged their
    /// bytes), but for the few fields the server keeps.
    fn field(&mut self, name: &[u8], value: &[u8], validity: Validity) {
        self.list_size += name.len() + value.len() + 32;
        if self.malformed.is_some() || self.list_size > MAX_HEADER_LIST_SIZE {
            return;
        }
        if let Err(malformed) = self.check(name, value, validity) {
            self.malformed = Some(malformed);
        }
    }

    fn check(&mut self, name: &[u8], value: &[u8], validity: Validity) -> Result<(), Malformed> {
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.seen_field {
                return Err(Malformed::PseudoAfterField);
            }
            if validity == Validity::BadValue {
                return Err(Malformed::Value);
            }
            return match pseudo {
                b"method" if self.method.is_none() => {
                    self.method = Some(Method::from_bytes(value).map_err(|_| Malformed::Value)?);
                    Ok(())
                }
                b"scheme" if !self.has_scheme => {
                    self.has_scheme = !value.is_empty();
                    if self.has_scheme {
                        Ok(())
                    } else {
                        Err(Malformed::Missing)
                    }
                }
                b"path" if self.target.is_empty() => {
                    if value.is_empty() {
                        return Err(Malformed::Missing);
                    }
                    self.target.extend_from_slice(value);
                    Ok(())
                }
                b"authority" if !self.seen_authority => {
                    self.seen_authority = true;
                    Ok(())
                }
                _ => Err(Malformed::PseudoHeader),
            };
        }
        self.seen_field = true;
        match validity {
            Validity::Valid => {}
            Validity::BadName => return Err(Malformed::Name),
            Validity::BadValue => return Err(Malformed::Value),
        }
        match name {
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => Err(Malformed::ConnectionSpecific),
            b"te" if value != b"trailers" => Err(Malformed::ConnectionSpecific),
            b"if-none-match" => {
                if self.if_none_match.len() == self.if_none_match_count {
                    self.if_none_match.push(Vec::new());
                }
                let slot = &mut self.if_none_match[self.if_none_match_count];
                slot.clear();
                slot.extend_from_slice(value);
                self.if_none_match_count += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The request method (of a [`Decoded::Request`]).
    pub(crate) fn method(&self) -> &Method {
        self.method.as_ref().unwrap_or(&Method::GET)
    }

    /// The path the request is routed by: `:path` without its query, as text (a path that is
    /// not UTF-8 matches no route and is answered 404).
    pub(crate) fn path(&self) -> &str {
        let end = self
            .target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(self.target.len());
        std::str::from_utf8(&self.target[..end]).unwrap_or("\u{fffd}")
    }

    /// Every `If-None-Match` value, in order.
    pub(crate) fn if_none_match(&self) -> impl Iterator<Item = &[u8]> {
        self.if_none_match[..self.if_none_match_count]
            .iter()
            .map(Vec::as_slice)
    }

    /// Forgets buffers grown by an unusually large request (a long path, many or long
    /// `If-None-Match` values), so an idle connection keeps at most a few KiB here.
    pub(crate) fn shrink(&mut self) {
        if self.target.capacity() > 1024 {
            self.target = Vec::new();
        }
        if self.if_none_match.len() > 8 || self.if_none_match.iter().any(|v| v.capacity() > 1024) {
            self.if_none_match = Vec::new();
            self.if_none_match_count = 0;
        }
    }

    /// Bytes kept between requests: the path and `If-None-Match` buffers.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.target.capacity()
            + self.if_none_match.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.if_none_match.iter().map(Vec::capacity).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(fields: &[(&str, &str)]) -> (Decoded, RequestHead) {
        let mut encoder = loona_hpack::Encoder::new();
        let block = encoder.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        let mut decoder = Decoder::default();
        let mut head = RequestHead::default();
        let decoded = head.decode(&mut decoder, &block).unwrap();
        (decoded, head)
    }

    const BASE: [(&str, &str); 3] = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/p?q=1"),
    ];

    #[test]
    fn a_request_keeps_method_path_and_if_none_match() {
        let mut fields = BASE.to_vec();
        fields.extend([
            (":authority", "h"),
            ("if-none-match", "\"a\""),
            ("te", "trailers"),
        ]);
        fields.push(("if-none-match", "W/\"b\""));
        let (decoded, head) = decode(&fields);
        assert_eq!(decoded, Decoded::Request);
        assert_eq!(head.method(), Method::GET);
        assert_eq!(head.path(), "/p");
        let values: Vec<_> = head.if_none_match().collect();
        assert_eq!(values, [&b"\"a\""[..], &b"W/\"b\""[..]]);
    }

    #[test]
    fn malformed_requests_are_named() {
        let cases: &[(&[(&str, &str)], Malformed)] = &[
            (
                &[(":method", "GET"), (":scheme", "http")],
                Malformed::Missing,
            ),
            (&[(":scheme", "http"), (":path", "/")], Malformed::Missing),
            (
                &[(":method", "GET"), (":scheme", "http"), (":path", "")],
                Malformed::Missing,
            ),
            (
                &[(":method", "GET"), (":method", "GET")],
                Malformed::PseudoHeader,
            ),
            (&[(":status", "200")], Malformed::PseudoHeader),
            (
                &[("accept", "*/*"), (":method", "GET")],
                Malformed::PseudoAfterField,
            ),
            (&[(":method", "GET"), ("Accept", "x")], Malformed::Name),
            (&[(":method", "GET"), ("accept", " x")], Malformed::Value),
            (&[(":method", "GET"), ("accept", "a\nb")], Malformed::Value),
            (
                &[(":method", "GET"), ("connection", "close")],
                Malformed::ConnectionSpecific,
            ),
            (
                &[(":method", "GET"), ("te", "gzip")],
                Malformed::ConnectionSpecific,
            ),
        ];
        for (fields, expected) in cases {
            let (decoded, _) = decode(fields);
            assert_eq!(decoded, Decoded::Malformed(*expected), "{fields:?}");
        }
    }

    #[test]
    fn a_header_list_over_the_limit_is_too_large() {
        let big = "x".repeat(MAX_HEADER_LIST_SIZE);
        let mut fields = BASE.to_vec();
        fields.push(("x-big", &big));
        assert_eq!(decode(&fields).0, Decoded::TooLarge);
    }
}
