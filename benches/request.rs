//! The request path without a socket: the hyper service's `respond` for discovery and JWKS, with
//! and without a matching If-None-Match, and a 404.

#![allow(missing_docs)]

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Request;
use issuerd::server::IssuerService;
use issuerd::shutdown::Readiness;
use issuerd::store::Store;

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("respond");
    for count in [1, 4] {
        let store = Store::new(support::publication(), support::key_set(count));
        let readiness = Readiness::default();
        readiness.set_ready();
        let service = IssuerService::new(store.reader(), readiness);
        let snapshot = store.reader().snapshot();
        for (name, document) in [("discovery", &snapshot.discovery), ("jwks", &snapshot.jwks)] {
            let plain = Request::get(document.path.as_str()).body(()).unwrap();
            let conditional = Request::get(document.path.as_str())
                .header("if-none-match", document.etag.as_str())
                .body(())
                .unwrap();
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/200"), count),
                &plain,
                |b, r| b.iter(|| service.respond(black_box(r))),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/304"), count),
                &conditional,
                |b, r| b.iter(|| service.respond(black_box(r))),
            );
        }
        let missing = Request::get("/nope").body(()).unwrap();
        group.bench_with_input(BenchmarkId::new("404", count), &missing, |b, r| {
            b.iter(|| service.respond(black_box(r)))
        });
    }
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);
