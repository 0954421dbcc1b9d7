//! Rendering and parsing costs: (issuer, N keys) -> document bytes, and PEM -> keys, including
//! adversarial PEM (one huge block, thousands of blocks, garbage).

#![allow(missing_docs)]

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use issuerd::document::render;
use issuerd::keys::PublicKey;
use issuerd::store::Snapshot;

fn rendering(c: &mut Criterion) {
    let publication = support::publication();
    let mut group = c.benchmark_group("render");
    for count in [1, 4, 16, 100] {
        let keys = support::key_set(count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("documents", count), &keys, |b, keys| {
            b.iter(|| render(&publication.issuer, publication.profile, black_box(keys)))
        });
        group.bench_with_input(BenchmarkId::new("snapshot", count), &keys, |b, keys| {
            b.iter(|| Snapshot::build(&publication, black_box(keys.clone()), 2))
        });
    }
    group.finish();
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_pem");
    for count in [1, 16, 100] {
        let bundle = support::private_pems(count).concat();
        group.throughput(Throughput::Bytes(bundle.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("ec_private_keys", count),
            &bundle,
            |b, pem| b.iter(|| PublicKey::from_pem(black_box(pem.as_bytes())).unwrap()),
        );
    }
    // Adversarial: a 4 MiB block of base64 that is not a key.
    let huge = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        "QUFB\n".repeat(1 << 20)
    );
    group.throughput(Throughput::Bytes(huge.len() as u64));
    group.bench_function("adversarial/huge_block", |b| {
        b.iter(|| PublicKey::from_pem(black_box(huge.as_bytes())).unwrap_err())
    });
    // Adversarial: 10,000 empty certificate blocks.
    let many = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".repeat(10_000);
    group.throughput(Throughput::Bytes(many.len() as u64));
    group.bench_function("adversarial/10k_blocks", |b| {
        b.iter(|| PublicKey::from_pem(black_box(many.as_bytes())).unwrap_err())
    });
    // Adversarial: 4 MiB of garbage without any PEM line.
    let garbage = "not a key at all ".repeat(1 << 18);
    group.throughput(Throughput::Bytes(garbage.len() as u64));
    group.bench_function("adversarial/garbage", |b| {
        b.iter(|| PublicKey::from_pem(black_box(garbage.as_bytes())).unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, rendering, parsing);
criterion_main!(benches);
