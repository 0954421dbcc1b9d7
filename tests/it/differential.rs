//! Differential test of issuerd's HTTP/1.1 loop against hyper's HTTP/1.1 server: generated
//! request byte streams go to both over in-memory duplex streams, and every request must be
//! decided alike or differ only as a named row of `DELIBERATE_DIFFERENCES` says.
//!
//! How to run it:
//! - `cargo test --test it -- differential::`: 2048 generated cases (under 15 s in a debug
//!   build).
//! - `ISSUERD_DIFF_CASES=1000000 cargo test --release --test it -- differential::` runs a
//!   million (proptest's own `PROPTEST_CASES` works too; `ISSUERD_DIFF_CASES` wins if both are
//!   set).
//! - `ISSUERD_DIFF_MINUTES=10 cargo test --release --test it -- --ignored --exact
//!   differential::stress` runs the same generator for ten minutes without shrinking, printing
//!   every panic (a server task that panicked) and divergence, the cases per second, and how
//!   often each deliberate difference was seen.
//!
//! A case is a pipeline of requests (every route, methods, HTTP/1.0 to 1.x, framing, Host,
//! conditional and odd headers, bodies), then byte mutations (flips, insertions, deletions,
//! truncation, bare LF), written in chunks split at random points with yields between. Both
//! servers get the same chunks; the client then closes its write side and reads until the
//! server closes. Responses are compared in order: the same status, body and headers (ignoring
//! `date` and hop-by-hop headers), or both refuse (a protocol error status, or a close). The
//! first divergence must be explained by [`classify`], which maps the input to one row of the
//! table; anything else fails with the input bytes printed escaped.

use crate::common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use issuerd::server::DELIBERATE_DIFFERENCES;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::task::JoinHandle;

/// Cases run by `cargo test` unless `ISSUERD_DIFF_CASES` or `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 2048;
/// issuerd's limits (see `src/server/http1.rs`), needed to classify 431s.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[test]
fn issuerd_decides_each_request_like_hyper() {
    let fixture = Fixture::new();
    let cases = env_number("ISSUERD_DIFF_CASES")
        .or_else(|| env_number("PROPTEST_CASES"))
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = Instant::now();
    let tally = RefCell::new(Tally::default());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case_strategy(&fixture.etags), |case| {
        let seen = fixture.check(&case).map_err(TestCaseError::fail)?;
        tally.borrow_mut().add(&seen);
        Ok(())
    });
    tally.borrow().print(started.elapsed());
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
#[ignore = "runs for ISSUERD_DIFF_MINUTES minutes (default 1)"]
fn stress() {
    let minutes = std::env::var("ISSUERD_DIFF_MINUTES")
        .ok()
        .and_then(|m| m.parse::<f64>().ok())
        .unwrap_or(1.0);
    let fixture = Fixture::new();
    let strategy = case_strategy(&fixture.etags);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(minutes * 60.0);
    let mut tally = Tally::default();
    let mut failures = 0usize;
    let mut panics = 0usize;
    let mut next_progress = started + Duration::from_secs(30);
    while Instant::now() < deadline {
        let case = strategy
            .new_tree(&mut runner)
            .expect("the generator never rejects")
            .current();
        match fixture.check(&case) {
            Ok(seen) => tally.add(&seen),
            Err(failure) => {
                failures += 1;
                tally.cases += 1;
                if failure.contains("connection task panicked") {
                    panics += 1;
                }
                eprintln!("FAILURE {failures}: {failure}\n");
            }
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "{} cases, {failures} failures ({panics} panics), {:.0} cases/s",
                tally.cases,
                tally.cases as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    tally.print(started.elapsed());
    assert_eq!(
        failures, 0,
        "{failures} failing cases ({panics} of them panics), printed above"
    );
}

fn env_number(name: &str) -> Option<u32> {
    std::env::var(name).ok()?.parse().ok()
}

// === Fixture: one store, issuerd and hyper over the same service ===

/// The documents both servers answer from (`common::DifferentialFixture`).
struct Fixture(common::DifferentialFixture);

impl std::ops::Deref for Fixture {
    type Target = common::DifferentialFixture;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Fixture {
    fn new() -> Self {
        Self(common::DifferentialFixture::new())
    }

    /// Runs one case against both servers and compares; `Ok` lists what was seen.
    fn check(&self, case: &Case) -> Result<Seen, String> {
        let input = case.bytes();
        let splits = case.split_points(input.len());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let describe = |what: String| {
            format!(
                "{what}\n  input ({} bytes, split at {splits:?}): b\"{}\"",
                input.len(),
                input.escape_ascii()
            )
        };
        let (issuerd, hyper) = runtime.block_on(async {
            let issuerd = exchange(&input, &splits, |io| {
                let server = Arc::clone(&self.server);
                // Dropping the trigger would ask for shutdown: it lives as long as the connection.
                let (trigger, signal) = issuerd::shutdown::channel();
                tokio::spawn(async move {
                    server
                        .serve_connection(io, signal, Default::default())
                        .await;
                    drop(trigger);
                })
            })
            .await;
            let hyper = exchange(&input, &splits, |io| {
                let service = self.service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        // The client closes its write side once it has sent everything; hyper
                        // must still answer what it read, as issuerd does.
                        .half_close(true)
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                })
            })
            .await;
            (issuerd, hyper)
        });
        let issuerd = issuerd.map_err(|e| describe(format!("issuerd: {e}")))?;
        let hyper = hyper.map_err(|e| describe(format!("hyper: {e}")))?;
        let outputs = || {
            format!(
                "\n  issuerd sent: b\"{}\"\n  hyper sent:   b\"{}\"",
                issuerd.escape_ascii(),
                hyper.escape_ascii()
            )
        };
        let issuerd_replies =
            parse_replies(&issuerd).map_err(|e| describe(format!("issuerd: {e}{}", outputs())))?;
        let hyper_replies =
            parse_replies(&hyper).map_err(|e| describe(format!("hyper: {e}{}", outputs())))?;
        compare(&input, &issuerd_replies, &hyper_replies)
            .map_err(|e| describe(format!("{e}{}", outputs())))
    }
}

/// Writes `input` to a fresh server in chunks (yielding between them so the server reads each
/// separately), closes the write side, and returns everything the server sent until it closed.
/// A server task that panics is an error.
async fn exchange(
    input: &[u8],
    splits: &[usize],
    serve: impl FnOnce(DuplexStream) -> JoinHandle<()>,
) -> Result<Vec<u8>, String> {
    let (client, server_side) = tokio::io::duplex(64 * 1024);
    let task = serve(server_side);
    let (mut reader, mut writer) = tokio::io::split(client);
    let write = async move {
        let mut at = 0;
        for &end in splits.iter().chain([&input.len()]) {
            if writer.write_all(&input[at..end]).await.is_err() {
                // The server closed; what it did not read is dropped, as a socket would.
                return;
            }
            at = end;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        let _ = writer.shutdown().await;
    };
    let read = async move {
        let mut output = Vec::new();
        let _ = reader.read_to_end(&mut output).await;
        output
    };
    // Time is paused: this only fires if both sides wait for nothing but a timer, i.e. the
    // server neither answers nor closes after the client closed its write side.
    let exchanged = tokio::time::timeout(Duration::from_secs(600), async {
        tokio::join!(write, read).1
    })
    .await;
    let output = exchanged.map_err(|_| "did not close the connection".to_owned())?;
    match tokio::time::timeout(Duration::from_secs(600), task).await {
        Ok(Ok(())) => Ok(output),
        Ok(Err(error)) if error.is_panic() => {
            let panic = error.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)");
            Err(format!("connection task panicked: {message}"))
        }
        Ok(Err(error)) => Err(format!("connection task failed: {error}")),
        Err(_) => Err("connection task did not end after the connection closed".to_owned()),
    }
}

// === The generator ===

/// One generated input: requests rendered in order, then mutated, then split.
#[derive(Clone)]
struct Case {
    requests: Vec<RequestSpec>,
    mutations: Vec<Mutation>,
    splits: Vec<Index>,
    byte_by_byte: bool,
}

#[derive(Clone, Debug)]
struct RequestSpec {
    method: String,
    target: String,
    version: String,
    /// Whole header lines without the line ending (`Name: value`, or something odd).
    headers: Vec<Vec<u8>>,
    body: Vec<u8>,
    /// Bare LF instead of CRLF for this request's head.
    bare_lf: bool,
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// Every CRLF becomes LF.
    BareLf,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.bytes();
        let splits = self.split_points(bytes.len());
        write!(f, "b\"{}\" split at {splits:?}", bytes.escape_ascii())
    }
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for request in &self.requests {
            request.render(&mut out);
        }
        for mutation in &self.mutations {
            mutation.apply(&mut out);
        }
        out
    }

    fn split_points(&self, len: usize) -> Vec<usize> {
        if self.byte_by_byte && len <= 2048 {
            return (1..len).collect();
        }
        let mut points: Vec<usize> = self.splits.iter().map(|i| i.index(len + 1)).collect();
        points.sort_unstable();
        points.dedup();
        points.retain(|&p| p > 0 && p < len);
        points
    }
}

impl RequestSpec {
    fn render(&self, out: &mut Vec<u8>) {
        let eol: &[u8] = if self.bare_lf { b"\n" } else { b"\r\n" };
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.version.as_bytes());
        out.extend_from_slice(eol);
        for line in &self.headers {
            // `\n` inside a generated line is an obs-fold: it takes this request's line ending.
            for (i, part) in line.split(|&b| b == b'\n').enumerate() {
                if i > 0 {
                    out.extend_from_slice(eol);
                }
                out.extend_from_slice(part);
            }
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        out.extend_from_slice(&self.body);
    }
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        match *self {
            _ if bytes.is_empty() => {}
            Self::Flip(ref at, bit) => {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << (bit % 8);
            }
            Self::Insert(ref at, byte) => bytes.insert(at.index(bytes.len() + 1), byte),
            Self::Delete(ref at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Self::Truncate(ref at) => bytes.truncate(at.index(bytes.len())),
            Self::BareLf => {
                let mut out = Vec::with_capacity(bytes.len());
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i..].starts_with(b"\r\n") {
                        i += 1;
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                *bytes = out;
            }
        }
    }
}

fn case_strategy(etags: &[String]) -> impl Strategy<Value = Case> + use<> {
    let mutations = prop_oneof![
        8 => Just(Vec::new()),
        2 => prop::collection::vec(mutation_strategy(), 1..4),
    ];
    (
        prop::collection::vec(request_strategy(etags), 1..5),
        mutations,
        prop::collection::vec(any::<Index>(), 0..6),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(requests, mutations, splits, byte_by_byte)| Case {
            requests,
            mutations,
            splits,
            byte_by_byte,
        })
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        select(vec![
            b' ', b'\t', b'\r', b'\n', b':', b',', b'/', b'?', b'"', 0, 0x01, 0x7f, 0x80, 0xff,
        ]),
        any::<u8>(),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        3 => (any::<Index>(), interesting).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        2 => any::<Index>().prop_map(Mutation::Truncate),
        1 => Just(Mutation::BareLf),
    ]
}

fn request_strategy(etags: &[String]) -> impl Strategy<Value = RequestSpec> + use<> {
    let method = prop_oneof![
        8 => Just("GET".to_owned()),
        3 => Just("HEAD".to_owned()),
        2 => Just("POST".to_owned()),
        2 => select(vec!["PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "get", "FOO",
            "M-SEARCH", "G\"T"]).prop_map(str::to_owned),
    ];
    let version = prop_oneof![
        12 => Just("HTTP/1.1".to_owned()),
        5 => Just("HTTP/1.0".to_owned()),
        1 => select(vec!["HTTP/1.2", "HTTP/1.9", "HTTP/2.0", "HTTP/0.9", "HTTP/1.10", "HTTP/3.0",
            "http/1.1", "HTTP/1.1 ", "HTTP/1"]).prop_map(str::to_owned),
    ];
    let hosts = prop_oneof![
        20 => select(vec!["h.example", "h.example:443", "other", ""])
            .prop_map(|h| vec![format!("Host: {h}").into_bytes()]),
        1 => Just(Vec::new()),
        1 => Just(vec![b"Host: h.example".to_vec(), b"host: other".to_vec()]),
    ];
    let many = prop_oneof![
        60 => Just(0usize),
        1 => 55usize..80,
    ];
    let body = prop_oneof![
        24 => Just(Vec::new()),
        1 => Just(b"hello".to_vec()),
        1 => Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ];
    (
        method,
        target_strategy(),
        version,
        hosts,
        // Most requests carry only headers a real client sends, so pipelines get long.
        prop_oneof![
            3 => prop::collection::vec(plain_header_strategy(etags), 0..4),
            2 => prop::collection::vec(header_strategy(etags), 0..5),
        ],
        many,
        body,
        prop::bool::weighted(0.1),
        any::<Index>(),
    )
        .prop_map(
            |(method, target, version, hosts, others, many, body, bare_lf, host_at)| {
                let mut headers = others;
                // Host goes anywhere among the other headers.
                let at = host_at.index(headers.len() + 1);
                headers.splice(at..at, hosts);
                headers.extend((0..many).map(|i| format!("X-Many-{i}: {i}").into_bytes()));
                RequestSpec {
                    method,
                    target,
                    version,
                    headers,
                    body,
                    bare_lf,
                }
            },
        )
}

fn target_strategy() -> impl Strategy<Value = String> {
    let path = select(vec![
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
        "/healthz",
        "/readyz",
        "/statusz",
        "/",
        "/nope",
        "/openid/v1/jwks/",
        "//openid/v1/jwks",
        "/OPENID/v1/jwks",
        "/openid/v1/%6Awks",
    ]);
    let query = prop_oneof![
        4 => Just(String::new()),
        1 => Just("?".to_owned()),
        1 => "\\?[a-z=&%0-9]{1,12}".prop_map(String::from),
        1 => Just("?next=http://x/openid/v1/jwks".to_owned()),
    ];
    let authority = select(vec![
        "http://h.example",
        "https://h.example:443",
        "http://x",
        "HTTP://h.example",
        "ftp://h.example",
        ":http://h.example",
        "://h.example",
    ]);
    prop_oneof![
        10 => (path.clone(), query.clone()).prop_map(|(p, q)| format!("{p}{q}")),
        2 => (authority, path, query).prop_map(|(a, p, q)| format!("{a}{p}{q}")),
        1 => select(vec!["*", "h.example:443", "http://h.example", "http://h.example?x=/healthz",
            "/healthz#frag", "/a b", "/{x}", "/|", "/\\", "/\"q\"", "/^`", "/caf\u{e9}", ""])
            .prop_map(str::to_owned),
        1 => "/[a-zA-Z0-9._~%!$&'()*+,;=:@-]{0,24}".prop_map(String::from),
    ]
}

/// If-None-Match values: the right ETags (strong, weak, in lists), wrong ones, `*`, empty.
fn conditions(etags: &[String]) -> Vec<String> {
    let mut conditions: Vec<String> = vec![
        "\"nope\"".into(),
        "*".into(),
        String::new(),
        "W/\"nope\"".into(),
        "\"a\", *".into(),
    ];
    for e in etags {
        conditions.push(e.clone());
        conditions.push(format!("W/{e}"));
        conditions.push(format!("\"a\", {e}"));
        conditions.push(format!("{e},\"b\""));
    }
    conditions
}

/// Headers a well-behaved client sends.
fn plain_header_strategy(etags: &[String]) -> impl Strategy<Value = Vec<u8>> + use<> {
    let named = |name: &'static str, values: Vec<&'static str>| {
        select(values).prop_map(move |v| format!("{name}: {v}").into_bytes())
    };
    prop_oneof![
        2 => named("Connection", vec!["close", "keep-alive", "Keep-Alive", "close, keep-alive"]),
        3 => select(conditions(etags)).prop_map(|v| format!("If-None-Match: {v}").into_bytes()),
        3 => named("Accept", vec!["*/*", "application/json", "application/jwk-set+json"]),
        3 => named("User-Agent", vec!["curl/8.5.0", "Go-http-client/1.1", "aws-sdk-go/1.0"]),
        1 => named("Content-Length", vec!["0"]),
        1 => named("Accept-Encoding", vec!["gzip", "identity"]),
    ]
}

/// Any header, many of them wrong.
fn header_strategy(etags: &[String]) -> impl Strategy<Value = Vec<u8>> + use<> {
    let conditions = conditions(etags);
    let named = |name: &'static str, values: Vec<&'static str>| {
        select(values).prop_map(move |v| format!("{name}: {v}").into_bytes())
    };
    prop_oneof![
        3 => named("Connection", vec!["close", "keep-alive", "Keep-Alive", "close, keep-alive",
            "keep-alive, close", "upgrade", "te, close", "CLOSE", "", "x, keep-alive"]),
        3 => (select(vec!["If-None-Match", "if-none-match", "IF-NONE-MATCH"]), select(conditions))
            .prop_map(|(n, v)| format!("{n}: {v}").into_bytes()),
        2 => named("Content-Length", vec!["0", "5", "+0", "-1", "0x10", "00", "0, 0", "5, 5",
            "1, 2", "", "18446744073709551615", "18446744073709551616",
            "99999999999999999999", "5,", ",5", "1 2", "0\t"]),
        2 => named("content-length", vec!["0", "5"]),
        2 => named("Transfer-Encoding", vec!["chunked", "gzip, chunked", "chunked, gzip",
            "identity", "chunked,", "Chunked", "", "chunked, chunked"]),
        1 => named("Expect", vec!["100-continue", "100-Continue", "nope"]),
        8 => named("Accept", vec!["*/*", "application/json", "application/jwk-set+json"]),
        4 => named("User-Agent", vec!["curl/8.5.0", "Go-http-client/1.1", "aws-sdk-go/1.0"]),
        1 => named("Upgrade", vec!["h2c", "websocket"]),
        1 => named("TE", vec!["trailers"]),
        2 => "X-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}: [ -~]{0,40}".prop_map(String::into_bytes),
        1 => ("X-[a-z]{40,200}", 200usize..4000)
            .prop_map(|(n, len)| format!("{n}: {}", "v".repeat(len)).into_bytes()),
        1 => (16_200usize..16_500).prop_map(|len| format!("X-Huge: {}", "h".repeat(len)).into_bytes()),
        1 => select(vec![
            &b"X-Space : v"[..],
            b"X-Fold: a\n b",
            b"X-Fold: a\n\tb",
            b"X-Ctl: a\x01b",
            b"X-Nul: a\x00b",
            b"X-Del: a\x7fb",
            b"X-Obs: caf\xc3\xa9",
            b"X-Latin: \xff",
            b"X-Tab:\tv\t",
            b"NoColon",
            b": empty-name",
            b"X(y): v",
            b"X-Empty:",
            b" Leading-Space: v",
            b"X-Cr: a\rb",
        ]).prop_map(<[u8]>::to_vec),
    ]
}

// === Responses ===

/// One response as the client saw it.
#[derive(Clone, PartialEq, Eq)]
struct Reply {
    status: u16,
    /// Lower-case names, in the order sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} b\"{}\"",
            self.status,
            self.headers,
            self.body.escape_ascii()
        )
    }
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body that must match. `/statusz` reports, per key, the seconds it has been published
    /// for: read at the moment each server answers, so it is left out, like the `date` header.
    fn comparable_body(&self) -> Vec<u8> {
        match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(mut status) if status.get("keys").is_some_and(|k| k.is_array()) => {
                for key in status["keys"].as_array_mut().into_iter().flatten() {
                    if let Some(key) = key.as_object_mut() {
                        key.remove("published_for_secs");
                    }
                }
                status.to_string().into_bytes()
            }
            _ => self.body.clone(),
        }
    }

    /// Whether this is `/statusz`'s answer (JSON, `no-store`), whose length follows the clock:
    /// `published_for_secs` gains a digit at 10 s, 100 s, ... between the two servers' answers,
    /// also for HEAD, where only `content-length` shows it.
    fn follows_the_clock(&self) -> bool {
        self.header("cache-control") == Some("no-store")
            && self.header("content-type") == Some("application/json")
    }

    /// The headers that must match: no `date`, no hop-by-hop headers (no `content-length` for an
    /// answer that [follows the clock](Self::follows_the_clock)), sorted.
    fn end_to_end_headers(&self) -> Vec<(String, String)> {
        let clock = self.follows_the_clock();
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(name, _)| !(clock && name == "content-length"))
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "date"
                        | "connection"
                        | "keep-alive"
                        | "transfer-encoding"
                        | "te"
                        | "trailer"
                        | "upgrade"
                        | "proxy-connection"
                )
            })
            .cloned()
            .collect();
        headers.sort();
        headers
    }
}

/// A protocol-level refusal: the request was not answered (`None` is a closed connection).
fn refuses(reply: Option<&Reply>) -> bool {
    reply.is_none_or(|r| {
        matches!(
            r.status,
            400 | 408 | 411 | 413 | 414 | 417 | 431 | 501 | 505
        )
    })
}

/// Splits a server's output into responses. A response to HEAD (or a 304) carries no body; it is
/// recognised by what follows its head: the end of the output, or the next status line (no body
/// served here starts with `HTTP/1.`).
fn parse_replies(mut output: &[u8]) -> Result<Vec<Reply>, String> {
    let mut replies = Vec::new();
    while !output.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(output) {
            Ok(httparse::Status::Complete(len)) => len,
            other => {
                return Err(format!(
                    "unparsable response ({other:?}) after {} responses: b\"{}\"",
                    replies.len(),
                    output.escape_ascii()
                ));
            }
        };
        let status = response.code.expect("complete");
        let headers: Vec<(String, String)> = response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let rest = &output[head_len..];
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        let bodiless = (100..200).contains(&status)
            || status == 204
            || status == 304
            || rest.is_empty()
            || rest.starts_with(b"HTTP/1.");
        let body_len = if bodiless {
            0
        } else if reply.header("transfer-encoding").is_some() {
            return Err(format!("unexpected transfer-encoding in {reply:?}"));
        } else if let Some(length) = reply.header("content-length") {
            length
                .parse::<usize>()
                .map_err(|e| format!("content-length {length:?}: {e}"))?
        } else {
            rest.len()
        };
        if body_len > rest.len() {
            return Err(format!(
                "truncated body: {body_len} announced, {} sent",
                rest.len()
            ));
        }
        reply.body = rest[..body_len].to_vec();
        output = &rest[body_len..];
        replies.push(reply);
    }
    Ok(replies)
}

// === Comparison and classification ===

/// What one case showed: requests answered alike, refused alike, and the deliberate difference
/// (a row of `DELIBERATE_DIFFERENCES`) where the two parted, if they did.
#[derive(Debug, Default)]
struct Seen {
    alike: usize,
    both_refused: bool,
    difference: Option<usize>,
}

/// Compares the responses in order; the first divergence must be a deliberate difference.
fn compare(input: &[u8], issuerd: &[Reply], hyper: &[Reply]) -> Result<Seen, String> {
    let mut seen = Seen::default();
    for i in 0.. {
        let (a, b) = (issuerd.get(i), hyper.get(i));
        if a.is_none() && b.is_none() {
            return Ok(seen);
        }
        if let (Some(a), Some(b)) = (a, b)
            && same_answer(a, b)
        {
            seen.alike += 1;
            continue;
        }
        let heads = model_heads(input);
        if refuses(a) && refuses(b) {
            seen.both_refused = true;
            // Both refuse; their error responses may still differ in form.
            if a.zip(b).is_some_and(|(a, b)| !same_answer(a, b)) || a.is_some() != b.is_some() {
                seen.difference = Some(row("malformed or oversized"));
            }
            // Neither may go on after refusing.
            if issuerd.len() > i + 1 || hyper.len() > i + 1 {
                return Err(format!("request {i}: answered after a refusal"));
            }
            return Ok(seen);
        }
        return match classify(&heads, i, a, b) {
            Some(row) => {
                seen.difference = Some(row);
                Ok(seen)
            }
            None => Err(format!(
                "request {i} decided differently, and no deliberate difference explains it\n  \
                 issuerd: {a:?}\n  hyper:   {b:?}\n  request head as parsed: {:?}",
                heads.get(i)
            )),
        };
    }
    unreachable!()
}

/// Same status, body and end-to-end headers.
fn same_answer(a: &Reply, b: &Reply) -> bool {
    a.status == b.status
        && a.comparable_body() == b.comparable_body()
        && a.end_to_end_headers() == b.end_to_end_headers()
}

/// The index of the row of `DELIBERATE_DIFFERENCES` whose input column contains `words`.
fn row(words: &str) -> usize {
    let rows: Vec<usize> = (0..DELIBERATE_DIFFERENCES.len())
        .filter(|&i| DELIBERATE_DIFFERENCES[i].0.contains(words))
        .collect();
    assert_eq!(rows.len(), 1, "exactly one row must mention {words:?}");
    rows[0]
}

/// One request head of the input as httparse (which both servers use) reads it.
struct ModelHead {
    /// The minor version as written (`HTTP/1.2` is 2; both parsers see 1.x for x > 1 as bad).
    minor: u8,
    target: Vec<u8>,
    len: usize,
    headers: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for ModelHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target b\"{}\", minor {}, {} bytes:",
            self.target.escape_ascii(),
            self.minor,
            self.len
        )?;
        for (name, value) in &self.headers {
            write!(f, " {name}: b\"{}\";", value.escape_ascii())?;
        }
        Ok(())
    }
}

impl ModelHead {
    fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// A body follows: any Transfer-Encoding, or a Content-Length that is not all zeros.
    fn announces_body(&self) -> bool {
        self.count("transfer-encoding") > 0
            || self
                .values("content-length")
                .any(|v| v.iter().any(|b| !matches!(b, b'0' | b' ' | b'\t' | b',')))
    }
}

/// The request heads of `input`, in order, up to the first one announcing a body (after which
/// issuerd closes) or the first that does not parse (`Err` with its bytes).
fn model_heads(input: &[u8]) -> Vec<Result<ModelHead, Vec<u8>>> {
    let mut heads = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let rest = &input[at..];
        let mut minor = None;
        let parsed = parse_model(rest).or_else(|_| {
            // `HTTP/1.x`, x > 1: both parsers fail; read as 1.1 to find the headers. The
            // request line may follow empty lines, which both servers (and httparse) skip
            // (RFC 9112, section 2.2).
            let start = rest
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(rest.len());
            let line_end = rest[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |p| start + p);
            let line = rest[start..line_end]
                .strip_suffix(b"\r")
                .unwrap_or(&rest[start..line_end]);
            if line.len() > 8 && line[..line.len() - 1].ends_with(b"HTTP/1.") {
                let d = line[line.len() - 1];
                if (b'2'..=b'9').contains(&d) {
                    minor = Some(d - b'0');
                    let mut copy = rest.to_vec();
                    copy[start + line.len() - 1] = b'1';
                    return parse_model(&copy);
                }
            }
            Err(())
        });
        match parsed {
            Ok(mut head) => {
                if let Some(minor) = minor {
                    head.minor = minor;
                }
                at += head.len;
                let body = head.announces_body();
                heads.push(Ok(head));
                if body {
                    break;
                }
            }
            Err(()) => {
                heads.push(Err(rest.to_vec()));
                break;
            }
        }
    }
    heads
}

/// A case CI's stress run found: a request line with a higher minor version after an empty line
/// (both servers skip the empty line; hyper then refuses HTTP/1.4, issuerd reads it as 1.1).
#[test]
fn a_higher_minor_version_after_an_empty_line_is_modelled() {
    let input = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\nHEAD https://h.example:443/statusz HTTP/1.4\r\nHost: \r\n\r\n";
    let heads = model_heads(input);
    assert_eq!(heads.len(), 2, "{heads:?}");
    let Ok(second) = &heads[1] else {
        panic!("the second request did not parse: {heads:?}");
    };
    assert_eq!(second.minor, 4);
    assert_eq!(second.target, b"https://h.example:443/statusz");
}

fn parse_model(data: &[u8]) -> Result<ModelHead, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(data) {
        Ok(httparse::Status::Complete(len)) => Ok(ModelHead {
            minor: request.version.expect("complete"),
            target: request.path.expect("complete").as_bytes().to_vec(),
            len,
            headers: request
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.to_vec()))
                .collect(),
        }),
        _ => Err(()),
    }
}

/// Maps the input at the first divergence (request `i`; `issuerd` and `hyper` are what each sent
/// for it) to the row of `DELIBERATE_DIFFERENCES` that explains it, if one does. Each row is
/// recognised by its input, and the behaviour must be the one the row describes.
fn classify(
    heads: &[Result<ModelHead, Vec<u8>>],
    i: usize,
    issuerd: Option<&Reply>,
    hyper: Option<&Reply>,
) -> Option<usize> {
    let answered = |r: Option<&Reply>| !refuses(r);
    let refused_400 = |r: Option<&Reply>| r.is_some_and(|r| r.status == 400);

    // The previous request announced a body: issuerd answered it and closed, hyper read (or
    // gave up on) the body and went on with what followed it.
    if let Some(Ok(previous)) = i.checked_sub(1).and_then(|p| heads.get(p))
        && previous.announces_body()
        && issuerd.is_none()
    {
        return Some(row("announcing a body"));
    }
    // The previous request's Connection line had non-ASCII bytes: issuerd honoured its `close`
    // or `keep-alive`, hyper ignored the line.
    if let Some(Ok(previous)) = i.checked_sub(1).and_then(|p| heads.get(p))
        && previous.values("connection").any(|v| !v.is_ascii())
        && issuerd.is_none() != hyper.is_none()
    {
        return Some(row("Connection or Transfer-Encoding line with non-ASCII"));
    }
    let Some(Ok(head)) = heads.get(i) else {
        return None;
    };
    let hosts = head.count("host");
    let te = head.count("transfer-encoding") > 0;
    let cl = head.count("content-length") > 0;
    let huge_length = head.values("content-length").any(|v| {
        std::str::from_utf8(v).is_ok_and(|v| v.parse::<u64>().is_ok_and(|n| n >= u64::MAX - 1))
    });
    let candidates = [
        (
            huge_length && answered(issuerd) && hyper.is_some_and(|r| r.status == 431),
            "announcing a body",
        ),
        (
            head.minor >= 2 && answered(issuerd) && refuses(hyper),
            "higher minor version",
        ),
        (
            head.minor == 0 && te && answered(issuerd) && refuses(hyper),
            "Transfer-Encoding on an HTTP/1.0",
        ),
        (
            head.values("transfer-encoding").any(|v| !v.is_ascii())
                && answered(issuerd)
                && refused_400(hyper),
            "Connection or Transfer-Encoding line with non-ASCII",
        ),
        (
            te && cl && refused_400(issuerd) && answered(hyper),
            "Transfer-Encoding together with Content-Length",
        ),
        (
            head.values("transfer-encoding").any(|v| {
                v.rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|l| l.trim_ascii().is_empty())
            }) && answered(issuerd)
                && refused_400(hyper),
            "Transfer-Encoding list ending in an empty element",
        ),
        (
            head.values("content-length").any(|v| v.contains(&b','))
                && answered(issuerd)
                && refused_400(hyper),
            "comma list of identical values",
        ),
        (
            http::Uri::try_from(head.target.as_slice()).is_err()
                && answered(issuerd)
                && refused_400(hyper),
            "request-target the http crate rejects",
        ),
        (
            !origin_asterisk_or_absolute(&head.target) && refused_400(issuerd) && answered(hyper),
            "authority-form request-target",
        ),
        (
            ((head.minor != 0 && hosts != 1) || hosts > 1)
                && refused_400(issuerd)
                && answered(hyper),
            "without Host",
        ),
        (
            (head.headers.len() > MAX_HEADERS || head.len > MAX_HEAD_BYTES)
                && issuerd.is_some_and(|r| r.status == 431)
                && answered(hyper),
            "more than 64 header lines",
        ),
    ];
    candidates
        .iter()
        .find(|(applies, _)| *applies)
        .map(|(_, words)| row(words))
}

/// The target is in origin form, `*`, or absolute form with a scheme RFC 3986 (section 3.1)
/// allows: the forms issuerd serves. Written apart from issuerd's own check on purpose.
fn origin_asterisk_or_absolute(target: &[u8]) -> bool {
    if target.starts_with(b"/") || target == b"*" {
        return true;
    }
    let Some(end) = target.windows(3).position(|w| w == b"://") else {
        return false;
    };
    let scheme = &target[..end];
    scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
}

// === Tally ===

#[derive(Default)]
struct Tally {
    cases: u64,
    requests_alike: u64,
    both_refused: u64,
    differences: BTreeMap<usize, u64>,
}

impl Tally {
    fn add(&mut self, seen: &Seen) {
        self.cases += 1;
        self.requests_alike += seen.alike as u64;
        self.both_refused += u64::from(seen.both_refused);
        if let Some(row) = seen.difference {
            *self.differences.entry(row).or_default() += 1;
        }
    }

    fn print(&self, elapsed: Duration) {
        eprintln!(
            "differential: {} cases in {:.1} s ({:.0} cases/s); {} requests answered alike, {} \
             cases ending in a refusal by both",
            self.cases,
            elapsed.as_secs_f64(),
            self.cases as f64 / elapsed.as_secs_f64().max(1e-9),
            self.requests_alike,
            self.both_refused,
        );
        for (row, count) in &self.differences {
            eprintln!("  {count:>8}  {}", DELIBERATE_DIFFERENCES[*row].0);
        }
    }
}
