//! HPACK decoding of request header blocks, as the HTTP/2 engine does it (`decode_request`:
//! fields judged and kept), in ns per received byte: a client's repeated request (all indexed),
//! a first request (literals), and blocks of 1-byte references to a ~4 KB dynamic-table entry
//! (the amplification an attacker would use; its cost must stay linear in the bytes received,
//! a reference costing no more than a copy where the server keeps the field).
//!
//!   cargo bench --bench hpack
//!
//! Criterion prints each case's throughput; the summary at the end gives ns per received byte
//! and each case's ratio to the repeated request.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use issuerd::server::fuzzing::HpackDecoder;

/// A case: blocks decoded once to fill the table, then the block measured.
struct Case {
    name: &'static str,
    prime: Vec<Vec<u8>>,
    block: Vec<u8>,
}

/// A literal with incremental indexing and a literal name (RFC 7541 section 6.2.1).
fn indexed_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40];
    put_string(&mut out, name);
    put_string(&mut out, value);
    out
}

/// A raw (not Huffman) string literal with its 7-bit-prefix length.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let mut len = s.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push((len % 128) as u8 | 0x80);
            len /= 128;
        }
        out.push(len as u8);
    }
    out.extend_from_slice(s);
}

fn cases() -> Vec<Case> {
    // A client's first request: :method GET and :scheme https from the static table, then
    // :path, :authority, user-agent and accept as literals it indexes (names from the static
    // table), as nghttp2 and curl do. Its next requests refer to all six by index.
    let mut first = vec![0x82, 0x87];
    for (name_index, value) in [
        (4u8, &b"/openid/v1/jwks"[..]),
        (1, b"issuer.example.com"),
        (58, b"aws-sdk-go/1.44 (go1.21; linux; amd64)"),
        (19, b"application/json"),
    ] {
        first.push(0x40 | name_index);
        put_string(&mut first, value);
    }
    let repeated = vec![0x82, 0x87, 0xc1, 0xc0, 0xbf, 0xbe];
    // GET https / (static 2, 7, 4), then three references to the newest dynamic entry (62).
    let references = |n: usize| {
        let mut block = vec![0x82, 0x87, 0x84];
        block.extend(std::iter::repeat_n(0xbe, n));
        block
    };
    let big = vec![b'v'; 4000];
    vec![
        Case {
            name: "repeated request (6 indexed fields)",
            prime: vec![first.clone()],
            block: repeated,
        },
        Case {
            name: "first request (4 literals)",
            prime: vec![],
            block: first,
        },
        Case {
            name: "3 refs to a 4 KB x-custom entry",
            prime: vec![indexed_literal(b"x-custom", &big)],
            block: references(3),
        },
        Case {
            name: "3 refs to a 4 KB if-none-match entry (kept: copied)",
            prime: vec![indexed_literal(b"if-none-match", &big)],
            block: references(3),
        },
    ]
}

/// A decoder with the case's table, ready for its block.
fn primed(case: &Case) -> HpackDecoder {
    let mut decoder = HpackDecoder::default();
    for block in &case.prime {
        decoder.decode(block).expect("prime block decodes");
    }
    decoder
}

fn hpack(c: &mut Criterion) {
    let mut group = c.benchmark_group("hpack");
    for case in cases() {
        let mut decoder = primed(&case);
        assert!(decoder.decode_request(&case.block).is_ok());
        group.throughput(Throughput::Bytes(case.block.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(case.name),
            &case.block,
            |b, block| b.iter(|| decoder.decode_request(black_box(block))),
        );
    }
    group.finish();
}

/// ns per received byte of each case, and its ratio to the repeated request (timed directly,
/// after criterion's runs, so the figures sit side by side).
fn summary(_: &mut Criterion) {
    let mut rows = Vec::new();
    for case in cases() {
        let mut decoder = primed(&case);
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let mut runs = 0u64;
            while started.elapsed() < Duration::from_millis(200) {
                for _ in 0..100 {
                    let _ = black_box(decoder.decode_request(black_box(&case.block)));
                }
                runs += 100;
            }
            let ns = started.elapsed().as_nanos() as f64 / runs as f64;
            best = best.min(ns);
        }
        rows.push((case.name, case.block.len(), best));
    }
    let base = rows[0].2 / rows[0].1 as f64;
    println!("\n| block | bytes | ns per block | ns per received byte | / repeated request |");
    println!("|---|--:|--:|--:|--:|");
    for (name, bytes, ns) in rows {
        let per_byte = ns / bytes as f64;
        println!(
            "| {name} | {bytes} | {ns:.0} | {per_byte:.1} | {:.1}x |",
            per_byte / base
        );
    }
}

criterion_group!(benches, hpack, summary);
criterion_main!(benches);
