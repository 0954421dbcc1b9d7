//! HTTP/2 response header blocks (HPACK, RFC 7541), shared by the per-generation encodings
//! (`encoded`) and the HTTP/2 engine, written without the dynamic table: every field is
//! a static-table index or a literal "without indexing". The encoder then holds no state, so a
//! document's block is encoded once per published generation and copied into every response,
//! as the HTTP/1.1 loop copies its precomputed head; only `date` is added per response.

use http::{HeaderMap, StatusCode};

/// Static table indexes of the names issuerd sends (RFC 7541 appendix A).
const STATIC_NAMES: &[(&str, usize)] = &[
    ("access-control-allow-origin", 20),
    ("allow", 22),
    ("cache-control", 24),
    ("content-length", 28),
    ("content-type", 31),
    ("date", 33),
    ("etag", 34),
];
/// The static index of `:status` (with the value 200).
const STATUS_NAME: usize = 8;
pub(crate) use crate::server::date::DATE_LEN;

/// Appends an HPACK integer with an `prefix_bits`-bit prefix; `first` holds the bits above it.
fn put_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a string literal, not Huffman-coded.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_integer(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends `:status`: an index for the statuses of the static table, a literal otherwise.
pub(crate) fn put_status(out: &mut Vec<u8>, status: StatusCode) {
    let index = match status.as_u16() {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => {
            put_integer(out, 0x00, 4, STATUS_NAME);
            put_string(out, status.as_str().as_bytes());
            return;
        }
    };
    put_integer(out, 0x80, 7, index);
}

/// Appends one field as a literal without indexing, its name indexed when the static table
/// has it.
pub(crate) fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    match STATIC_NAMES.iter().find(|(n, _)| *n == name) {
        Some(&(_, index)) => put_integer(out, 0x00, 4, index),
        None => {
            out.push(0x00);
            put_string(out, name.as_bytes());
        }
    }
    put_string(out, value);
}

/// The `date` field for `date`, an HTTP date.
pub(crate) fn date_field(date: &[u8; DATE_LEN]) -> [u8; DATE_LEN + 3] {
    // Literal without indexing, name index 33 (`0x0f 0x12`), a 29-byte raw string.
    let mut field = [0; DATE_LEN + 3];
    field[..3].copy_from_slice(&[0x0f, 0x12, DATE_LEN as u8]);
    field[3..].copy_from_slice(date);
    field
}

/// The block of a response with `status` and `headers` (no `date`).
pub(crate) fn encode(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_status(&mut out, status);
    for (name, value) in headers {
        put_field(&mut out, name.as_str(), value.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        let mut decoder = loona_hpack::Decoder::new();
        decoder
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn blocks_decode_to_the_fields_with_an_independent_decoder() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("x-content-type-options", "nosniff".parse().unwrap());
        let long = "x".repeat(300);
        headers.insert("etag", long.parse().unwrap());
        for (status, text) in [
            (200, "200"),
            (304, "304"),
            (404, "404"),
            (405, "405"),
            (503, "503"),
        ] {
            let block = encode(StatusCode::from_u16(status).unwrap(), &headers);
            let fields = decode(&block);
            assert_eq!(fields[0], (":status".into(), text.into()));
            assert_eq!(fields[1], ("content-type".into(), "text/plain".into()));
            assert_eq!(
                fields[2],
                ("x-content-type-options".into(), "nosniff".into())
            );
            assert_eq!(fields[3], ("etag".into(), long.clone()));
        }
        let date = *b"Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            decode(&date_field(&date)),
            [("date".into(), "Sun, 06 Nov 1994 08:49:37 GMT".into())]
        );
    }

    #[test]
    fn integers_use_continuation_bytes_past_the_prefix() {
        // RFC 7541 appendix C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        put_integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [31, 154, 10]);
        out.clear();
        put_integer(&mut out, 0, 5, 10);
        assert_eq!(out, [10]);
    }
}
