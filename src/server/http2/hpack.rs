//! HPACK decoding of request header blocks (RFC 7541): integers, string literals (Huffman ones
//! through `httlib-huffman`'s table-driven decoder), the static table and the connection's
//! dynamic table. Fields are handed to a callback as borrowed slices, with their validity
//! (`field.rs`): a request whose fields are all indexed, as a client's repeated requests are,
//! costs no allocation, and a reference to a large entry costs no more than a small one (the
//! entry was judged once, when it was inserted). Work per block is linear in its bytes plus
//! what the caller copies of the fields.

use std::collections::VecDeque;

use thiserror::Error;

use super::field::{self, Validity};

/// The dynamic table size every connection starts with, and the largest issuerd allows
/// (its SETTINGS_HEADER_TABLE_SIZE stays at the default).
pub(crate) const MAX_TABLE_SIZE: usize = 4096;
/// Per-entry overhead in the table size (RFC 7541 section 4.1).
const ENTRY_OVERHEAD: usize = 32;
/// Most bytes one block may decode to (names, values and 32 per field). Indexed fields expand:
/// a 2-byte reference to a 4 KiB entry is 4 KiB, copied again if it is indexed anew. Past
/// this, decoding stops with a connection error, so a block's work stays a small multiple of
/// its size.
pub(crate) const MAX_DECODED: usize = 64 * 1024;

/// The static table (RFC 7541 appendix A), index 1 first.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Why a header block cannot be decoded: a connection error (`COMPRESSION_ERROR`).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The block ends inside a representation.
    #[error("header block truncated")]
    Truncated,
    /// An integer larger than any this decoder accepts.
    #[error("integer overflow")]
    Overflow,
    /// Index 0, or past the end of both tables.
    #[error("invalid table index {0}")]
    Index(usize),
    /// A Huffman string that does not decode (bad code, padding, or EOS).
    #[error("invalid Huffman string")]
    Huffman,
    /// A dynamic table size update above the limit, or after the first field.
    #[error("invalid dynamic table size update")]
    SizeUpdate,
    /// The block decodes to more than [`MAX_DECODED`] bytes.
    #[error("header block decodes to more than {MAX_DECODED} bytes")]
    TooLarge,
}

/// A dynamic table entry: name, value and what RFC 9113 says of them.
#[derive(Debug)]
struct Entry {
    name: Box<[u8]>,
    value: Box<[u8]>,
    validity: Validity,
}

impl Entry {
    /// Its size in the table (RFC 7541 section 4.1).
    fn size(&self) -> usize {
        self.name.len() + self.value.len() + ENTRY_OVERHEAD
    }
}

/// One connection's HPACK decoder.
#[derive(Debug)]
pub(crate) struct Decoder {
    /// Newest entry first.
    table: VecDeque<Entry>,
    table_size: usize,
    max_size: usize,
    /// Huffman-decoded name and value of the field being read.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            table: VecDeque::new(),
            table_size: 0,
            max_size: MAX_TABLE_SIZE,
            name: Vec::new(),
            value: Vec::new(),
        }
    }
}

/// A string literal's place: in the block, or decoded into a scratch buffer.
#[derive(Clone, Copy)]
enum Str {
    Raw(usize, usize),
    Scratch,
}

impl Decoder {
    /// Decodes `block`, calling `field` with each name, value and their validity in order, and
    /// updating the dynamic table as the block says.
    pub(crate) fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8], Validity),
    ) -> Result<(), DecodeError> {
        let mut at = 0;
        let mut first = true;
        let mut decoded = 0;
        let mut count = |name: &[u8], value: &[u8]| {
            decoded += name.len() + value.len() + ENTRY_OVERHEAD;
            if decoded > MAX_DECODED {
                Err(DecodeError::TooLarge)
            } else {
                Ok(())
            }
        };
        while at < block.len() {
            let byte = block[at];
            if byte & 0x80 != 0 {
                // Indexed field (section 6.1).
                let index = integer(block, &mut at, 7)?;
                let (name, value, validity) = self.entry(index)?;
                count(name, value)?;
                field(name, value, validity);
            } else if byte & 0xe0 == 0x20 {
                // Dynamic table size update (section 6.3): only before the first field.
                let size = integer(block, &mut at, 5)?;
                if !first || size > MAX_TABLE_SIZE {
                    return Err(DecodeError::SizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // Literal (section 6.2): with incremental indexing (01), without (0000) or never
                // indexed (0001).
                let indexing = byte & 0x40 != 0;
                let prefix = if indexing { 6 } else { 4 };
                let index = integer(block, &mut at, prefix)?;
                let name = if index == 0 {
                    Some(self.string(block, &mut at, true)?)
                } else {
                    None
                };
                let value = self.string(block, &mut at, false)?;
                let value_bytes: &[u8] = match value {
                    Str::Raw(start, end) => &block[start..end],
                    Str::Scratch => &self.value,
                };
                // A literal name is judged here; an indexed one was when it was inserted.
                let (name_bytes, name_valid): (&[u8], bool) = match name {
                    Some(Str::Raw(start, end)) => {
                        let name = &block[start..end];
                        (name, field::name_is_valid(name))
                    }
                    Some(Str::Scratch) => (&self.name, field::name_is_valid(&self.name)),
                    None => {
                        let (name, _, validity) = self.entry(index)?;
                        (name, validity.name_valid())
                    }
                };
                count(name_bytes, value_bytes)?;
                let validity = Validity::of(name_valid, field::value_is_valid(value_bytes));
                field(name_bytes, value_bytes, validity);
                if indexing {
                    let entry = Entry {
                        name: Box::from(name_bytes),
                        value: Box::from(value_bytes),
                        validity,
                    };
                    self.insert(entry);
                }
            }
            first = false;
        }
        Ok(())
    }

    /// The field at `index` of the static then the dynamic table, with its validity (every
    /// static entry is valid).
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8], Validity), DecodeError> {
        if index == 0 {
            return Err(DecodeError::Index(index));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name.as_bytes(), value.as_bytes(), Validity::Valid));
        }
        self.table
            .get(index - 1 - STATIC_TABLE.len())
            .map(|entry| (&entry.name[..], &entry.value[..], entry.validity))
            .ok_or(DecodeError::Index(index))
    }

    /// Reads a string literal (section 5.2) at `at`; a Huffman one is decoded into the name or
    /// value scratch buffer.
    fn string(&mut self, block: &[u8], at: &mut usize, name: bool) -> Result<Str, DecodeError> {
        let huffman = block.get(*at).ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let len = integer(block, at, 7)?;
        let start = *at;
        let end = start.checked_add(len).ok_or(DecodeError::Overflow)?;
        let bytes = block.get(start..end).ok_or(DecodeError::Truncated)?;
        *at = end;
        if !huffman {
            return Ok(Str::Raw(start, end));
        }
        let scratch = if name {
            &mut self.name
        } else {
            &mut self.value
        };
        scratch.clear();
        httlib_huffman::decode(bytes, scratch, httlib_huffman::DecoderSpeed::FourBits)
            .map_err(|_| DecodeError::Huffman)?;
        // The padding must be the most significant bits of EOS, all ones, and shorter than a
        // byte (RFC 7541 section 5.2); the decoder checks its length, not its bits. The
        // symbols' code lengths say where the padding starts.
        let decoded = if name { &self.name } else { &self.value };
        let code_bits: usize = decoded
            .iter()
            .map(|&b| usize::from(httlib_huffman::encoder::table::ENCODE_TABLE[usize::from(b)].0))
            .sum();
        let padding = (8 * bytes.len())
            .checked_sub(code_bits)
            .unwrap_or(usize::MAX);
        let ones = |last: u8| {
            let mask = (1u16 << padding) - 1;
            u16::from(last) & mask == mask
        };
        if padding >= 8 || !bytes.last().is_none_or(|&last| ones(last)) {
            return Err(DecodeError::Huffman);
        }
        Ok(Str::Scratch)
    }

    /// Adds an entry, evicting the oldest ones to make room (section 4.4).
    fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            // Larger than the whole table: the table is emptied and nothing is added.
            self.evict(self.max_size);
            return;
        }
        self.evict(size);
        self.table_size += size;
        self.table.push_front(entry);
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.table_size + room > self.max_size {
            let Some(entry) = self.table.pop_back() else {
                break;
            };
            self.table_size -= entry.size();
        }
    }

    /// The dynamic table's size (RFC 7541 section 4.1).
    pub(crate) fn table_size(&self) -> usize {
        self.table_size
    }

    /// Bytes this decoder holds between blocks: its table's entries and scratch buffers.
    pub(crate) fn retained_bytes(&self) -> usize {
        self.table_size + self.name.capacity() + self.value.capacity()
    }

    /// Forgets scratch buffers grown by an unusually large field.
    pub(crate) fn shrink(&mut self) {
        for scratch in [&mut self.name, &mut self.value] {
            if scratch.capacity() > 1024 {
                *scratch = Vec::new();
            }
        }
    }
}

/// Reads an integer with an `prefix`-bit prefix (section 5.1) at `at`.
fn integer(block: &[u8], at: &mut usize, prefix: u32) -> Result<usize, DecodeError> {
    let max = (1usize << prefix) - 1;
    let first = usize::from(*block.get(*at).ok_or(DecodeError::Truncated)?) & max;
    *at += 1;
    if first < max {
        return Ok(first);
    }
    let mut value = max;
    let mut shift = 0;
    loop {
        let byte = *block.get(*at).ok_or(DecodeError::Truncated)?;
        *at += 1;
        // Nothing here needs more than 2^28: a longer integer is an attack or an error.
        if shift > 21 {
            return Err(DecodeError::Overflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut Decoder,
        block: &[u8],
    ) -> Result<Vec<(String, String)>, DecodeError> {
        let mut fields = Vec::new();
        decoder.decode(block, |n, v, _| {
            fields.push((
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            ));
        })?;
        Ok(fields)
    }

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_7541_appendix_c4_requests_with_huffman_and_the_dynamic_table() {
        let mut decoder = Decoder::default();
        let first = decode_all(
            &mut decoder,
            &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"),
        )
        .unwrap();
        assert_eq!(
            first,
            [
                (":method".into(), "GET".into()),
                (":scheme".into(), "http".into()),
                (":path".into(), "/".into()),
                (":authority".into(), "www.example.com".into()),
            ]
        );
        let second = decode_all(&mut decoder, &hex("8286 84be 5886 a8eb 1064 9cbf")).unwrap();
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        assert_eq!(decoder.table_size, 110);
    }

    #[test]
    fn agrees_with_an_independent_decoder_on_encoded_lists() {
        // loona-hpack's encoder indexes names and values in its own dynamic table.
        let mut encoder = loona_hpack::Encoder::new();
        let mut reference = loona_hpack::Decoder::new();
        let mut decoder = Decoder::default();
        let long = "v".repeat(3000);
        for round in 0..50 {
            let value = format!("value-{round}");
            let fields: Vec<(&[u8], &[u8])> = vec![
                (b":method", b"GET"),
                (b":path", b"/openid/v1/jwks"),
                (b"if-none-match", value.as_bytes()),
                (
                    b"x-custom",
                    if round % 7 == 0 {
                        long.as_bytes()
                    } else {
                        b"short"
                    },
                ),
                (b"user-agent", b"differential"),
            ];
            let block = encoder.encode(fields.iter().copied());
            let expected: Vec<(String, String)> = reference
                .decode(&block)
                .unwrap()
                .into_iter()
                .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                .collect();
            assert_eq!(
                decode_all(&mut decoder, &block).unwrap(),
                expected,
                "round {round}"
            );
        }
        assert!(decoder.table_size <= MAX_TABLE_SIZE);
    }

    #[test]
    fn bad_blocks_are_refused() {
        let mut decoder = Decoder::default();
        assert_eq!(
            decode_all(&mut decoder, &[0x80]),
            Err(DecodeError::Index(0))
        );
        assert_eq!(
            decode_all(&mut decoder, &[0xbe]),
            Err(DecodeError::Index(62))
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x05, b'a']),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x3f, 0xe2, 0x1f]),
            Err(DecodeError::SizeUpdate)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x82, 0x20]),
            Err(DecodeError::SizeUpdate)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(DecodeError::Overflow)
        );
        // A Huffman string of all ones: EOS-length padding, not a symbol.
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Huffman)
        );
        // Padding of zero bits: `a` is 00011, then 000 instead of 111.
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x81, 0x18]),
            Err(DecodeError::Huffman)
        );
        assert_eq!(
            decode_all(&mut decoder, &[0x04, 0x81, 0x1f]).unwrap()[0].1,
            "a"
        );
        // A block that expands past the limit: a 4,000-byte entry, then references to it.
        let mut bomb = vec![0x40, 0x01, b'n', 0x7f, 0xa1, 0x1e];
        bomb.extend(std::iter::repeat_n(b'v', 4000));
        bomb.extend(std::iter::repeat_n(0xbe, 20));
        assert_eq!(decode_all(&mut decoder, &bomb), Err(DecodeError::TooLarge));
        // A size update first is fine and empties the table.
        assert_eq!(decode_all(&mut decoder, &[0x20, 0x82]).unwrap().len(), 1);
        assert_eq!(decoder.max_size, 0);
    }
}
