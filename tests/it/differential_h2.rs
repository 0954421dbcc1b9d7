//! Differential test of issuerd's HTTP/2 engine against hyper's HTTP/2 server (the `h2` crate):
//! generated connections (requests with every route, methods, conditions, malformed header
//! lists, bodies, trailers, padding, CONTINUATION splits and PRIORITY frames) go to both over
//! in-memory duplex streams, and every stream must end alike: the same status, headers (but
//! `date`) and body, or the same RST_STREAM code, or the same GOAWAY.
//!
//! `cargo test --test it -- differential_h2::` runs 1024 cases; `ISSUERD_DIFF_CASES=100000
//! cargo test --release --test it -- differential_h2::` runs more. Where the two decide
//! differently on purpose, `H2_DELIBERATE_DIFFERENCES` names the input and both outcomes;
//! nothing else may differ.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use issuerd::server::H2_DELIBERATE_DIFFERENCES as DELIBERATE;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};

const DEFAULT_CASES: u32 = 1024;
use common::frame_type::{CONTINUATION, DATA, GOAWAY, HEADERS, PRIORITY, RST_STREAM, SETTINGS};
use common::{H2_PREFACE as PREFACE, h2_frame as frame};

/// Why RFC 9113 calls a request malformed, judged here from the fields as sent; `None` for a
/// well-formed one. issuerd must reset exactly these.
fn malformed(fields: &[(String, String)]) -> Option<&'static str> {
    let mut seen_regular = false;
    let mut pseudo = Vec::new();
    for (name, value) in fields {
        let edge = |c: Option<char>| matches!(c, Some(' ' | '\t'));
        if edge(value.chars().next()) || edge(value.chars().last()) {
            return Some("value with white space at an end");
        }
        if let Some(p) = name.strip_prefix(':') {
            if seen_regular {
                return Some("pseudo-header after a regular field");
            }
            if !["method", "scheme", "path", "authority"].contains(&p) || pseudo.contains(&p) {
                return Some("unknown or repeated pseudo-header");
            }
            pseudo.push(p);
            continue;
        }
        seen_regular = true;
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Some("uppercase field name");
        }
        let connection_specific = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
        ];
        if connection_specific.contains(&name.as_str()) || (name == "te" && value != "trailers") {
            return Some("connection-specific field");
        }
    }
    for required in ["method", "scheme", "path"] {
        if !pseudo.contains(&required) {
            return Some("missing pseudo-header");
        }
    }
    None
}

#[test]
fn issuerd_answers_each_h2_stream_like_hyper() {
    let fixture = Fixture::new();
    let cases = std::env::var("ISSUERD_DIFF_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let seen = std::cell::RefCell::new(BTreeMap::<String, usize>::new());
    let result = runner.run(&connection_strategy(fixture.etags.clone()), |requests| {
        let outcome = fixture.check(&requests).map_err(TestCaseError::fail)?;
        for kind in outcome {
            *seen.borrow_mut().entry(kind).or_default() += 1;
        }
        Ok(())
    });
    let seen = seen.into_inner();
    eprintln!("outcomes seen: {seen:?}");
    if let Err(error) = result {
        panic!("{error}");
    }
    // The generator must reach the interesting outcomes, or the comparison proves little.
    for needed in ["200", "304", "404", "405", "RST 1"] {
        assert!(seen.contains_key(needed), "no {needed} in {seen:?}");
    }
}

// === One generated request and its encoding ===

#[derive(Clone, Debug)]
struct RequestSpec {
    /// Header fields in order, pseudo-headers included (malformations are fields too).
    fields: Vec<(String, String)>,
    /// DATA frames (lengths) after HEADERS; none means END_STREAM on HEADERS.
    body: Vec<usize>,
    /// Trailers end the request instead of the last DATA frame.
    trailers: bool,
    /// Split the header block at this fraction into HEADERS + CONTINUATION.
    split: Option<u8>,
    /// Pad the HEADERS frame with this many bytes.
    padding: Option<u8>,
    /// Send a PRIORITY frame for the stream first.
    priority: bool,
    /// Whether the path has characters the http crate refuses (see `DELIBERATE`).
    odd_path: bool,
}

fn paths() -> Vec<&'static str> {
    vec![
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
        "/openid/v1/jwks?x=1",
        "/healthz",
        "/readyz",
        "/nope",
        "/",
        "*",
        "//openid/v1/jwks",
        "/openid/v1/jwks/",
        "/a b",
        "/\u{e9}",
    ]
}

fn request_strategy(etags: Vec<String>) -> impl Strategy<Value = RequestSpec> {
    let methods = prop::sample::select(vec![
        "GET", "GET", "GET", "GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get",
    ]);
    let mut conditions: Vec<String> = etags.to_vec();
    conditions.extend(etags.iter().map(|e| format!("W/{e}")));
    conditions.extend(["*".to_owned(), "\"other\"".to_owned()]);
    conditions.push(format!("\"x\", {}", etags[1]));
    let good = prop::sample::select(vec![
        ("accept", "*/*"),
        ("user-agent", "differential"),
        ("accept-encoding", "gzip, br"),
        ("te", "trailers"),
        ("content-length", "0"),
    ]);
    let bad = prop::sample::select(vec![
        ("te", "gzip"),
        ("connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("Accept", "x"),
        ("x-a", " lead"),
        ("x-a", "trail "),
        ("host", "h.example"),
        (":path", "/openid/v1/jwks"),
        (":method", "GET"),
        (":foo", "x"),
        (":status", "200"),
    ]);
    let extra = prop_oneof![8 => good, 1 => bad];
    (
        methods,
        prop::sample::select(paths()),
        prop::option::weighted(0.95, prop::sample::select(vec!["https", "http"])),
        any::<bool>(),
        prop::collection::vec(prop::sample::select(conditions), 0..3),
        prop::collection::vec(extra, 0..3),
        (0u8..20, 0u8..10),
        prop::collection::vec(1usize..300, 0..3),
        any::<bool>(),
        prop::option::weighted(0.2, 1u8..100),
        prop::option::weighted(0.2, 0u8..20),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                method,
                path,
                scheme,
                authority,
                conditions,
                extra,
                (drop_roll, order_roll),
                body,
                trailers,
                split,
                padding,
                priority,
            )| {
                let mut fields = Vec::new();
                if drop_roll != 0 {
                    fields.push((":method".to_owned(), method.to_owned()));
                }
                if let Some(scheme) = scheme {
                    fields.push((":scheme".to_owned(), scheme.to_owned()));
                }
                if drop_roll != 1 {
                    fields.push((":path".to_owned(), path.to_owned()));
                }
                if authority {
                    fields.push((":authority".to_owned(), "h.example".to_owned()));
                }
                for condition in conditions {
                    fields.push(("if-none-match".to_owned(), condition));
                }
                for (name, value) in extra {
                    fields.push((name.to_owned(), value.to_owned()));
                }
                if order_roll == 0 && fields.len() > 1 {
                    // A regular field first: pseudo-headers after it.
                    fields.insert(0, ("accept".to_owned(), "*/*".to_owned()));
                }
                let odd_path = path.contains(' ') || !path.is_ascii();
                RequestSpec {
                    fields,
                    body,
                    trailers,
                    split,
                    padding,
                    priority,
                    odd_path,
                }
            },
        )
}

fn connection_strategy(etags: Vec<String>) -> impl Strategy<Value = Vec<RequestSpec>> {
    prop::collection::vec(request_strategy(etags), 1..8)
}

/// The client's bytes for `requests`, on streams 1, 3, 5...
fn encode(requests: &[RequestSpec]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    let mut encoder = loona_hpack::Encoder::new();
    for (i, request) in requests.iter().enumerate() {
        let id = 1 + 2 * u32::try_from(i).unwrap();
        if request.priority {
            out.extend(frame(PRIORITY, 0, id, &[0, 0, 0, 0, 16]));
        }
        let block = encoder.encode(
            request
                .fields
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        );
        let end_stream = if request.body.is_empty() { 0x1 } else { 0 };
        let (first, rest) = match request.split {
            Some(at) if block.len() > 1 => {
                let at = (block.len() * usize::from(at) / 100).clamp(1, block.len() - 1);
                block.split_at(at)
            }
            _ => (&block[..], &[][..]),
        };
        let end_headers = if rest.is_empty() { 0x4 } else { 0 };
        let (payload, padded) = match request.padding {
            Some(pad) => {
                let mut payload = vec![pad];
                payload.extend_from_slice(first);
                payload.extend(std::iter::repeat_n(0, usize::from(pad)));
                (payload, 0x8)
            }
            None => (first.to_vec(), 0),
        };
        out.extend(frame(
            HEADERS,
            end_stream | end_headers | padded,
            id,
            &payload,
        ));
        if !rest.is_empty() {
            out.extend(frame(CONTINUATION, 0x4, id, rest));
        }
        for (n, &len) in request.body.iter().enumerate() {
            let last = n + 1 == request.body.len() && !request.trailers;
            out.extend(frame(DATA, u8::from(last), id, &vec![b'x'; len]));
        }
        if !request.body.is_empty() && request.trailers {
            let block = encoder.encode([(&b"x-trailer"[..], &b"1"[..])]);
            out.extend(frame(HEADERS, 0x1 | 0x4, id, &block));
        }
    }
    out
}

// === What a server sent ===

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Response {
        status: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Reset(u32),
    /// Neither answered nor reset before the connection ended.
    Unanswered,
}

impl Outcome {
    fn kind(&self) -> String {
        match self {
            Self::Response { status, .. } => status.clone(),
            Self::Reset(code) => format!("RST {code}"),
            Self::Unanswered => "unanswered".to_owned(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    streams: Vec<Outcome>,
    goaway: Option<u32>,
}

/// A stream's response so far: its fields (once HEADERS came), body, and whether it ended.
type Partial = (Option<Vec<(String, String)>>, Vec<u8>, bool);

/// Reads frames until every stream of `count` ended or the server sent GOAWAY and closed.
async fn read_outcomes(reader: &mut (impl AsyncRead + Unpin), count: usize) -> Exchange {
    let mut decoder = loona_hpack::Decoder::new();
    let mut buffer = Vec::new();
    let mut responses: BTreeMap<u32, Partial> = BTreeMap::new();
    let mut resets = BTreeMap::new();
    let mut goaway = None;
    let mut partial: Option<(u32, Vec<u8>, bool)> = None;
    let done = |responses: &BTreeMap<u32, Partial>, resets: &BTreeMap<u32, u32>| {
        (0..count).all(|i| {
            let id = 1 + 2 * i as u32;
            resets.contains_key(&id) || responses.get(&id).is_some_and(|r| r.2)
        })
    };
    loop {
        while buffer.len() >= 9 {
            let len =
                usize::from(buffer[0]) << 16 | usize::from(buffer[1]) << 8 | usize::from(buffer[2]);
            if buffer.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buffer[3], buffer[4]);
            let stream = u32::from_be_bytes(buffer[5..9].try_into().unwrap()) & 0x7fff_ffff;
            let payload: Vec<u8> = buffer[9..9 + len].to_vec();
            buffer.drain(..9 + len);
            match kind {
                HEADERS | CONTINUATION => {
                    let (id, mut block, end_stream) = match partial.take() {
                        Some((id, block, end)) if kind == CONTINUATION => (id, block, end),
                        _ => (stream, Vec::new(), flags & 0x1 != 0),
                    };
                    block.extend_from_slice(&payload);
                    if flags & 0x4 == 0 {
                        partial = Some((id, block, end_stream));
                        continue;
                    }
                    let fields = decoder.decode(&block).expect("server header block decodes");
                    let fields = fields
                        .into_iter()
                        .map(|(n, v)| {
                            (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap())
                        })
                        .collect();
                    let entry = responses.entry(id).or_default();
                    entry.0 = Some(fields);
                    entry.2 |= end_stream;
                }
                DATA => {
                    let entry = responses.entry(stream).or_default();
                    entry.1.extend_from_slice(&payload);
                    entry.2 |= flags & 0x1 != 0;
                }
                RST_STREAM => {
                    let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    resets.entry(stream).or_insert(code);
                }
                GOAWAY => goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap())),
                _ => {}
            }
        }
        if done(&responses, &resets) {
            break;
        }
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let streams = (0..count)
        .map(|i| {
            let id = 1 + 2 * i as u32;
            match (responses.remove(&id), resets.get(&id)) {
                (Some((Some(fields), body, true)), _) => {
                    let mut status = String::new();
                    let mut headers: Vec<(String, String)> = fields
                        .into_iter()
                        .filter(|(n, v)| {
                            if n == ":status" {
                                status = v.clone();
                            }
                            n != ":status" && n != "date"
                        })
                        .collect();
                    headers.sort();
                    Outcome::Response {
                        status,
                        headers,
                        body,
                    }
                }
                // A complete response followed by RST_STREAM NO_ERROR (a request body not
                // read) is the response; any other reset wins.
                (_, Some(&code)) => Outcome::Reset(code),
                _ => Outcome::Unanswered,
            }
        })
        .collect();
    Exchange { streams, goaway }
}

/// Sends `input` to a fresh server and reads what it sends for `count` streams.
async fn exchange(input: &[u8], count: usize, serve: impl FnOnce(DuplexStream)) -> Exchange {
    let (client, server_side) = tokio::io::duplex(1 << 20);
    serve(server_side);
    let (mut reader, mut writer) = tokio::io::split(client);
    let _ = writer.write_all(input).await;
    let exchange = read_outcomes(&mut reader, count).await;
    drop(writer);
    exchange
}

// === Fixture ===

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

    /// Runs one connection against both servers; `Ok` lists the outcomes seen.
    fn check(&self, requests: &[RequestSpec]) -> Result<Vec<String>, String> {
        let input = encode(requests);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (issuerd, hyper) = runtime.block_on(async {
            let issuerd = exchange(&input, requests.len(), |io| {
                let server = Arc::clone(&self.server);
                let (trigger, signal) = issuerd::shutdown::channel();
                tokio::spawn(async move {
                    server
                        .serve_connection(io, signal, Default::default())
                        .await;
                    drop(trigger);
                });
            })
            .await;
            let hyper = exchange(&input, requests.len(), |io| {
                let service = self.service.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .timer(TokioTimer::new())
                        .max_concurrent_streams(256)
                        .max_header_list_size(16 * 1024)
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
            })
            .await;
            (issuerd, hyper)
        });
        let describe =
            || format!("requests: {requests:?}\n  issuerd: {issuerd:?}\n  hyper: {hyper:?}");
        // hyper ended the connection for a malformed request issuerd reset: the streams hyper
        // had not answered by then are not compared.
        let hyper_cut = hyper.goaway == Some(1)
            && requests
                .iter()
                .zip(&issuerd.streams)
                .zip(&hyper.streams)
                .any(|((r, o), t)| {
                    malformed(&r.fields).is_some()
                        && *o == Outcome::Reset(1)
                        && *t == Outcome::Unanswered
                });
        let mut seen = Vec::new();
        for (i, (ours, theirs)) in issuerd.streams.iter().zip(&hyper.streams).enumerate() {
            seen.push(ours.kind());
            let request = &requests[i];
            let malformed = malformed(&request.fields);
            if hyper_cut && *theirs == Outcome::Unanswered {
                if malformed.is_none() {
                    continue;
                }
                seen.push(format!("deliberate: {}", DELIBERATE[1].0));
                return Ok(seen);
            }
            if malformed.is_some() && *ours != Outcome::Reset(1) {
                return Err(format!(
                    "stream {}: a malformed request ({}) was not reset\n{}",
                    1 + 2 * i,
                    malformed.unwrap_or_default(),
                    describe()
                ));
            }
            if ours == theirs {
                continue;
            }
            if request.odd_path
                && matches!(ours, Outcome::Response { status, .. } if status == "404")
                && *theirs == Outcome::Reset(1)
            {
                seen.push(format!("deliberate: {}", DELIBERATE[0].0));
                continue;
            }
            let declared: Option<usize> = request
                .fields
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok());
            if declared.is_some_and(|length| length != request.body.iter().sum::<usize>())
                && !request.body.is_empty()
                && matches!(ours, Outcome::Response { .. })
                && *theirs == Outcome::Reset(1)
            {
                seen.push(format!("deliberate: {}", DELIBERATE[2].0));
                continue;
            }
            if let Some(why) = malformed {
                seen.push(format!("deliberate: malformed, {why}"));
                if *theirs == Outcome::Unanswered && hyper.goaway == Some(1) {
                    // hyper's connection ended here; issuerd's went on.
                    return Ok(seen);
                }
                continue;
            }
            return Err(format!("stream {} differs\n{}", 1 + 2 * i, describe()));
        }
        if issuerd.goaway != hyper.goaway {
            return Err(format!("GOAWAY differs\n{}", describe()));
        }
        Ok(seen)
    }
}
