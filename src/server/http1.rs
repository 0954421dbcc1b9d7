//! HTTP/1.1 connections, answered from the snapshot's precomputed header blocks.
//!
//! Why not hyper on this path: hyper keeps a read and a write buffer (8 KiB each) for the life of
//! every connection, about 18 KiB per idle keep-alive connection, and formats headers for every
//! response. This loop reads into a stack buffer, keeps only an unfinished request head on the
//! heap, answers pipelined requests in order with one write, and copies precomputed bytes for the
//! two documents. Request heads are parsed by `httparse`; request bodies are never read (a
//! request that announces one is answered, then the connection is closed). A connection that
//! opens with the HTTP/2 preface (h2c, prior knowledge) is handed back to the caller for the
//! HTTP/2 engine (`http2/`).
//!
//! Where it decides differently from hyper's HTTP/1.1 server, on purpose, is listed in
//! [`DELIBERATE_DIFFERENCES`]; `tests/it/differential.rs` holds both to that list.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Response, StatusCode};
use tokio::io::ReadBuf;
use tokio::time::Instant;

use super::date::append_date_line;
use super::encoded::{Encoded, View};
use super::http2::PREFACE as H2_PREFACE;
use super::limits::Timeouts;
use super::metrics::{ConnectionInfo, Protocol, Route, Shard};
use super::output::{self, Written};
use super::service::{Answer, IssuerService, error_response};
use super::transport::{Transport, linger_close, write_all_flushed};
use crate::shutdown;

/// Largest request head accepted (request line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// Pipelined requests are answered until about this much output is waiting; then no further
/// request is parsed until it is written. This bounds what a client that stops reading pins.
pub(crate) const OUTPUT_HIGH_WATER: usize = 8 * 1024;

/// Where this loop and hyper's HTTP/1.1 server decide differently on purpose, as
/// (input, issuerd, hyper). The differential test accepts exactly these differences; `docs/http.md`
/// repeats the table (`tests/it/readme.rs`).
pub const DELIBERATE_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "HTTP/1.1 request without Host, or any request with several Host lines",
        "400 and close (RFC 9112 section 3.2)",
        "answers",
    ),
    (
        "higher minor version, e.g. HTTP/1.2",
        "served as HTTP/1.1 (RFC 9112 section 2.3)",
        "400",
    ),
    (
        "request announcing a body (Content-Length > 0 or Transfer-Encoding)",
        "answered without reading the body, then the connection closes",
        "reads and discards the body if it is already buffered and goes on, else closes; 431 \
         for a length of 2^64 - 2 or more",
    ),
    (
        "Transfer-Encoding on an HTTP/1.0 request",
        "answered, then close (framing is faulty, RFC 9112 section 6.1)",
        "400",
    ),
    (
        "Transfer-Encoding together with Content-Length",
        "400 and close (RFC 9112 section 6.1 allows rejecting it; smuggling defence)",
        "answers from the chunked body, then closes",
    ),
    (
        "Transfer-Encoding list ending in an empty element, e.g. `chunked,`",
        "chunked is last (empty list elements are ignored, RFC 9110 section 5.6.1): answered, \
         then close",
        "400",
    ),
    (
        "Connection or Transfer-Encoding line with non-ASCII bytes in it",
        "its list elements are read as usual: a `close` closes (RFC 9112 section 9.6)",
        "the line is not read: Connection is ignored, Transfer-Encoding is 400",
    ),
    (
        "Content-Length as a comma list of identical values, e.g. `5, 5`",
        "taken as that one value (RFC 9110 section 8.6)",
        "400",
    ),
    (
        "request-target the http crate rejects: characters outside RFC 3986 (a backtick, \
         non-ASCII) or an odd authority in absolute form (`https://:h:443/`)",
        "routed by its path: no served path has such characters, a query is not looked at, \
         and the authority is not used (every host gets the same documents)",
        "400",
    ),
    (
        "authority-form request-target `h.example:443`, or a scheme that is none (`://h/p`, \
         `ht~tp://h/p`)",
        "400 and close (the authority form is for CONNECT to a proxy, RFC 9112 section 3.2.3; \
         a scheme is one or more letters, digits, `+`, `-` or `.`, RFC 3986 section 3.1)",
        "answered by the path (404 for an authority) where the http crate parses it, else 400",
    ),
    (
        "more than 64 header lines, or a request head over 16 KiB",
        "431 and close (RFC 6585 section 5); hyper allows 100 lines and about 400 KiB",
        "answers",
    ),
    (
        "malformed or oversized request head",
        "400, 431 or 505 with a body and close",
        "400 or 431 without a body, or a bare close",
    ),
];

/// How a connection ended.
pub(crate) enum Outcome {
    /// Closed (by either side, a timeout, an error response or shutdown).
    Closed,
    /// The client spoke HTTP/2; these bytes were already read.
    Http2(Vec<u8>),
}

/// What one read-and-answer step did.
enum Step {
    /// Need more bytes to finish a request head.
    Incomplete,
    /// The peer closed its side.
    Eof,
    /// The connection is HTTP/2.
    Http2,
    /// Responses were written; `unwritten` did not fit in the socket buffer.
    Answered {
        /// Output still to write.
        unwritten: Vec<u8>,
        /// The transport still holds written output (a TLS stream's records): flush it.
        unflushed: bool,
        /// Close after writing.
        close: bool,
        /// Unread input may follow (a body, more requests): close gracefully.
        linger: bool,
        /// Complete requests are still buffered (the output batch was full).
        more: bool,
    },
}

/// How a wait for input ended.
enum Waited {
    Step(io::Result<Step>),
    /// Shutdown, or the connection was reclaimed.
    Stopped,
    /// The keep-alive or header deadline passed.
    Due,
}

impl From<shutdown::Woken> for Waited {
    fn from(woken: shutdown::Woken) -> Self {
        match woken {
            shutdown::Woken::Stopped => Self::Stopped,
            shutdown::Woken::Due => Self::Due,
        }
    }
}

/// Connection state kept across reads.
struct Connection<'a, T> {
    io: &'a mut T,
    service: &'a IssuerService,
    view: View,
    /// An unfinished request head (or unanswered pipelined requests); empty and unallocated
    /// while the connection is idle.
    pending: Vec<u8>,
    served_any: bool,
    info: &'a ConnectionInfo,
    /// The requests of the last step, timed once their answers are written: when the step's
    /// read returned, and the requests by route.
    /// (Counts as `u32`: a step answers a few dozen requests; every idle connection keeps this.)
    unobserved: Option<(Instant, [u32; 4])>,
}

/// The requests of one read-and-answer step, for the metrics and the access log.
struct Tally<'a> {
    info: &'a ConnectionInfo,
    /// This thread's counters.
    counters: &'a Shard,
    /// When the read that completed the requests returned.
    started: Instant,
    /// Requests answered, by route.
    routes: [u64; 4],
}

impl Tally<'_> {
    /// Counts one answered request.
    #[inline]
    fn count(
        &mut self,
        service: &IssuerService,
        route: Route,
        status: StatusCode,
        bytes: usize,
        request: Option<(&Method, &str)>,
    ) {
        self.counters
            .count(route, Protocol::Http1, self.info.tls, status, bytes);
        self.routes[route as usize] += 1;
        if service.access_log() {
            // A request refused before it was understood is logged as `- -`.
            let (method, path) = request.map_or(("-", "-"), |(m, p)| (m.as_str(), p));
            let elapsed = self.started.elapsed();
            service.log_access(
                self.info,
                Protocol::Http1,
                method,
                path,
                status,
                bytes,
                elapsed,
            );
        }
    }
}

/// Serves HTTP/1.x requests on `io` until the connection ends. (Not an `async fn`, whose
/// arguments would be stored twice in every idle connection's future: rust-lang/rust#62958.)
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn stores its arguments twice"
)]
pub(crate) fn serve<'a, T: Transport>(
    io: &'a mut T,
    service: &'a IssuerService,
    shutdown: &'a mut shutdown::Signal,
    timeouts: &'a Timeouts,
    info: &'a ConnectionInfo,
) -> impl Future<Output = io::Result<Outcome>> + Send + 'a {
    async move {
        let mut connection = Connection {
            io,
            service,
            view: service.view(),
            pending: Vec::new(),
            served_any: false,
            info,
            unobserved: None,
        };
        let mut backlog = false;
        // A request head must be complete this long after its first byte, however it trickles in.
        let mut head_deadline: Option<Instant> = None;
        loop {
            // The answers of the last step are written: time them with the clock read the
            // keep-alive deadline needs anyway.
            let now = Instant::now();
            connection.observe(now);
            let step = if backlog {
                // Complete requests are already buffered: answer them without waiting for input.
                poll_fn(|cx| connection.poll_step(cx, false)).await?
            } else {
                let (deadline, idle) = if connection.pending.is_empty() {
                    head_deadline = None;
                    (now + timeouts.keep_alive, true)
                } else {
                    let deadline = *head_deadline.get_or_insert_with(|| now + timeouts.header_read);
                    (deadline, false)
                };
                // Input first; then shutdown (or this connection reclaimed at the connection
                // cap) and the deadline, polled without futures of their own: an idle
                // connection's future is what every idle connection costs.
                let waited = poll_fn(|cx| match connection.poll_step(cx, true) {
                    Poll::Ready(step) => Poll::Ready(Waited::Step(step)),
                    Poll::Pending => shutdown.poll_wait(cx, deadline).map(Waited::from),
                })
                .await;
                shutdown.busy();
                match waited {
                    Waited::Step(step) => step?,
                    Waited::Stopped => return Ok(Outcome::Closed),
                    Waited::Due if idle => return Ok(Outcome::Closed),
                    Waited::Due => {
                        let mut out = Vec::new();
                        refuse(StatusCode::REQUEST_TIMEOUT, &mut out);
                        let status = StatusCode::REQUEST_TIMEOUT;
                        service.metrics().local().count(
                            Route::Other,
                            Protocol::Http1,
                            info.tls,
                            status,
                            0,
                        );
                        let write = write_all_flushed(connection.io, &out);
                        let _ = Box::pin(tokio::time::timeout(timeouts.write, write)).await;
                        return Ok(Outcome::Closed);
                    }
                }
            };
            match step {
                Step::Incomplete => backlog = false,
                Step::Eof => return Ok(Outcome::Closed),
                Step::Http2 => return Ok(Outcome::Http2(connection.pending)),
                Step::Answered {
                    unwritten,
                    unflushed,
                    close,
                    linger,
                    more,
                } => {
                    if !connection.served_any {
                        shutdown.served();
                    }
                    connection.served_any = true;
                    backlog = more;
                    head_deadline = None;
                    // A client that stops reading must not hold the connection (and its unwritten
                    // output) forever; nothing more is parsed until this is written.
                    if !unwritten.is_empty() || unflushed {
                        // Boxed, as the linger below: rare waits, kept out of the future that
                        // every idle connection stores.
                        let written = Box::pin(tokio::time::timeout(
                            timeouts.write,
                            write_all_flushed(connection.io, &unwritten),
                        ))
                        .await;
                        match written {
                            Ok(result) => result?,
                            Err(_) => return Ok(Outcome::Closed),
                        }
                    }
                    if close {
                        connection.observe(Instant::now());
                        if linger {
                            Box::pin(linger_close(connection.io, timeouts.linger)).await;
                        }
                        return Ok(Outcome::Closed);
                    }
                }
            }
        }
    }
}

impl<T: Transport> Connection<'_, T> {
    /// Records the duration of the last step's requests, written by `now`.
    fn observe(&mut self, now: Instant) {
        let Some((started, routes)) = self.unobserved.take() else {
            return;
        };
        let elapsed = now.saturating_duration_since(started);
        self.service.metrics().local().observe_step(
            Protocol::Http1,
            self.info.tls,
            elapsed,
            routes.map(u64::from),
        );
    }

    /// Reads what is available (unless `read_more` is false), answers every complete request in
    /// it, and writes the answers. Polled synchronously on purpose: the read buffer lives on the
    /// stack, not in the connection's future.
    fn poll_step(&mut self, cx: &mut Context<'_>, read_more: bool) -> Poll<io::Result<Step>> {
        // Uninitialized: a poll that finds nothing to read costs no 8 KiB memset.
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut chunk = ReadBuf::uninit(&mut chunk);
        if read_more {
            match self.io.poll_read_some(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => {
                    return Poll::Ready(Ok(Step::Eof));
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(self.answer_read(cx, chunk.filled()))
    }

    fn answer_read(&mut self, cx: &mut Context<'_>, read: &[u8]) -> io::Result<Step> {
        let from_pending = !self.pending.is_empty();
        if from_pending {
            self.pending.extend_from_slice(read);
        }
        let data: &[u8] = if from_pending { &self.pending } else { read };

        if !self.served_any {
            let n = data.len().min(H2_PREFACE.len());
            if data[..n] == H2_PREFACE[..n] {
                let complete = n == H2_PREFACE.len();
                if !from_pending {
                    self.pending.extend_from_slice(read);
                }
                return Ok(if complete {
                    Step::Http2
                } else {
                    Step::Incomplete
                });
            }
        }

        let data_len = data.len();
        let encoded = self.view.get(self.service.encoder());
        let io = &mut *self.io;
        let mut tally = Tally {
            info: self.info,
            counters: self.service.metrics().local(),
            started: Instant::now(),
            routes: [0; 4],
        };
        let (
            batch,
            Written {
                unwritten,
                unflushed,
            },
        ) = output::with_buffer(|out| {
            let batch = answer_all(data, self.service, encoded, out, &mut tally);
            output::write_once(io, cx, out).map(|written| (batch, written))
        })?;
        if tally.routes != [0; 4] {
            let routes = tally.routes.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            self.unobserved = Some((tally.started, routes));
        }
        let Batch {
            consumed,
            close,
            unread_body,
            more,
        } = batch;
        let linger = close && (unread_body || consumed < data_len);

        if close {
            self.pending.clear();
        } else if from_pending {
            self.pending.drain(..consumed);
            // What a stalled pipelining client leaves here is bounded by what is kept, not by
            // the largest head it ever sent.
            if self.pending.capacity() > 2 * READ_CHUNK && self.pending.len() <= READ_CHUNK {
                self.pending.shrink_to(READ_CHUNK);
            }
        } else if consumed < read.len() {
            self.pending.extend_from_slice(&read[consumed..]);
        }
        if self.pending.is_empty() {
            // Give an idle connection's buffer back.
            self.pending = Vec::new();
        }
        if consumed == 0 && !close {
            return Ok(Step::Incomplete);
        }
        Ok(Step::Answered {
            unwritten,
            unflushed,
            close,
            linger,
            more,
        })
    }
}

/// What [`answer_all`] did with a buffer of requests.
struct Batch {
    /// Bytes of `data` answered.
    consumed: usize,
    /// The connection must close after the output is written.
    close: bool,
    /// The last request announced a body, which was not read.
    unread_body: bool,
    /// Complete requests remain: the output batch is full.
    more: bool,
}

/// Answers the complete requests in `data`, in order, until the output batch is full.
fn answer_all(
    data: &[u8],
    service: &IssuerService,
    encoded: &Encoded,
    out: &mut Vec<u8>,
    tally: &mut Tally<'_>,
) -> Batch {
    let mut batch = Batch {
        consumed: 0,
        close: false,
        unread_body: false,
        more: false,
    };
    let refuse = |out: &mut Vec<u8>, status: StatusCode, batch: Batch, tally: &mut Tally<'_>| {
        refuse(status, out);
        tally.count(service, Route::Other, status, 0, None);
        Batch {
            close: true,
            ..batch
        }
    };
    while batch.consumed < data.len() {
        if out.len() >= OUTPUT_HIGH_WATER {
            batch.more = true;
            return batch;
        }
        let rest = &data[batch.consumed..];
        let parsed = match parse_and_answer(rest, service, encoded, out, tally) {
            Err(httparse::Error::Version) => match higher_minor_version(rest) {
                // RFC 9112 section 2.3: a higher minor version is answered as HTTP/1.1.
                Some(as_http11) => parse_and_answer(&as_http11, service, encoded, out, tally),
                None => Err(httparse::Error::Version),
            },
            parsed => parsed,
        };
        match parsed {
            Ok(Parsed::Answered(len, disposition)) => {
                batch.consumed += len;
                if disposition.close {
                    batch.close = true;
                    batch.unread_body = disposition.unread_body;
                    return batch;
                }
            }
            Ok(Parsed::TooLarge) => {
                return refuse(
                    out,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    batch,
                    tally,
                );
            }
            Ok(Parsed::Partial) => {
                if rest.len() > MAX_HEAD_BYTES {
                    return refuse(
                        out,
                        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        batch,
                        tally,
                    );
                }
                return batch;
            }
            Err(httparse::Error::TooManyHeaders) => {
                return refuse(
                    out,
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    batch,
                    tally,
                );
            }
            Err(httparse::Error::Version) => {
                return refuse(out, StatusCode::HTTP_VERSION_NOT_SUPPORTED, batch, tally);
            }
            Err(_) => return refuse(out, StatusCode::BAD_REQUEST, batch, tally),
        }
    }
    batch
}

/// The result of parsing one request head.
enum Parsed {
    /// The head was this long and has been answered.
    Answered(usize, Disposition),
    /// The head is complete but over [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The head is not complete yet.
    Partial,
}

fn parse_and_answer(
    data: &[u8],
    service: &IssuerService,
    encoded: &Encoded,
    out: &mut Vec<u8>,
    tally: &mut Tally<'_>,
) -> Result<Parsed, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    Ok(match request.parse(data)? {
        httparse::Status::Complete(len) if len > MAX_HEAD_BYTES => Parsed::TooLarge,
        httparse::Status::Complete(len) => {
            Parsed::Answered(len, answer_one(&request, service, encoded, out, tally))
        }
        httparse::Status::Partial => Parsed::Partial,
    })
}

/// If the request line names HTTP/1.x with x above 1, a copy of `data` with `HTTP/1.1` there.
/// Only the head is copied: at most [`MAX_HEAD_BYTES`] and one byte more, so a head too large is
/// still seen as such. Empty lines before the request line are skipped, as httparse does.
fn higher_minor_version(data: &[u8]) -> Option<Vec<u8>> {
    let start = data.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let line_end = data[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |end| start + end);
    let line = &data[start..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version_len = b"HTTP/1.x".len();
    let version_at = start + line.len().checked_sub(version_len)?;
    let version = &data[version_at..version_at + version_len];
    let minor = version[version_len - 1];
    if !version.starts_with(b"HTTP/1.") || !(b'2'..=b'9').contains(&minor) {
        return None;
    }
    let mut copy = data[..data.len().min(MAX_HEAD_BYTES + 1)].to_vec();
    // A request line longer than a whole head stays refused.
    *copy.get_mut(version_at + b"HTTP/1.".len())? = b'1';
    Some(copy)
}

/// Whether a connection continues after a response.
struct Disposition {
    close: bool,
    unread_body: bool,
}

/// What the framing headers of a request say (RFC 9112 section 6).
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    transfer_encoding: bool,
    /// The last transfer coding seen is `chunked`.
    chunked_last: bool,
    invalid: bool,
}

impl Framing {
    /// One `Content-Length` line: a comma list of 1*DIGIT values, all equal to any seen before.
    fn content_length(&mut self, value: &[u8]) {
        for item in value.split(|&b| b == b',') {
            let item = item.trim_ascii();
            let parsed = (!item.is_empty() && item.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(item).ok()?.parse::<u64>().ok())
                .flatten();
            match (parsed, self.content_length) {
                (None, _) => self.invalid = true,
                (Some(new), Some(old)) if new != old => self.invalid = true,
                (Some(new), _) => self.content_length = Some(new),
            }
        }
    }

    /// One `Transfer-Encoding` line.
    fn transfer_encoding(&mut self, value: &[u8]) {
        self.transfer_encoding = true;
        for coding in value.split(|&b| b == b',') {
            let coding = coding.trim_ascii();
            if !coding.is_empty() {
                self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    /// The body's length can be determined (RFC 9112 section 6.3): valid Content-Length, not
    /// together with Transfer-Encoding, and chunked last if Transfer-Encoding is used in HTTP/1.1.
    fn is_determinable(&self, version: u8) -> bool {
        if self.invalid {
            return false;
        }
        if self.transfer_encoding {
            return self.content_length.is_none() && (self.chunked_last || version == 0);
        }
        true
    }

    /// A body follows the head.
    fn has_body(&self) -> bool {
        self.transfer_encoding || self.content_length.is_some_and(|n| n > 0)
    }
}

/// Answers one parsed request.
fn answer_one(
    request: &httparse::Request<'_, '_>,
    service: &IssuerService,
    encoded: &Encoded,
    out: &mut Vec<u8>,
    tally: &mut Tally<'_>,
) -> Disposition {
    let refuse = |out: &mut Vec<u8>, tally: &mut Tally<'_>| {
        refuse(StatusCode::BAD_REQUEST, out);
        tally.count(service, Route::Other, StatusCode::BAD_REQUEST, 0, None);
        Disposition {
            close: true,
            unread_body: true,
        }
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return refuse(out, tally);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return refuse(out, tally);
    };
    let Some(path) = request_path(target) else {
        return refuse(out, tally);
    };
    // HTTP/1.0 closes unless it asks to stay; HTTP/1.1 stays unless it asks to close; `close`
    // wins over `keep-alive`.
    let mut asks_close = false;
    let mut asks_keep_alive = false;
    let mut hosts = 0;
    let mut framing = Framing::default();
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    asks_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    asks_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            framing.content_length(header.value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing.transfer_encoding(header.value);
        }
    }
    // RFC 9112 section 3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0.
    let host_ok = hosts == 1 || (hosts == 0 && version == 0);
    // RFC 9112 section 6.3: a request whose body length cannot be determined is refused.
    let framing_ok = framing.is_determinable(version);
    if !host_ok || !framing_ok {
        return refuse(out, tally);
    }
    let has_body = framing.has_body();
    let keep_alive = !asks_close && (version == 1 || asks_keep_alive);
    // The body is never read, so the next request cannot be found: answer, then close. This is
    // also how `Expect: 100-continue` is handled: the final answer is sent at once, without a
    // 100 (RFC 9110 section 10.1.1 allows it), and the body the client may still send is
    // drained by the lingering close.
    let close = !keep_alive || has_body;
    let connection_header: &[u8] = match (close, version) {
        (true, _) => b"connection: close\r\n",
        (false, 0) => b"connection: keep-alive\r\n",
        (false, _) => b"",
    };

    // Repeated If-None-Match lines are one comma-separated list (RFC 9110 section 5.3).
    let if_none_match = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("if-none-match"))
        .map(|h| h.value);
    let (status, bytes, route) = match service.answer(encoded, &method, path, if_none_match) {
        Answer::Document {
            document,
            route,
            not_modified,
            head,
        } => {
            let block = if not_modified {
                &document.http1_not_modified_head
            } else {
                &document.http1_ok_head
            };
            out.extend_from_slice(block);
            append_date_line(out);
            out.extend_from_slice(connection_header);
            out.extend_from_slice(b"\r\n");
            if not_modified {
                (StatusCode::NOT_MODIFIED, 0, route)
            } else if head {
                (StatusCode::OK, 0, route)
            } else {
                out.extend_from_slice(&document.body);
                (StatusCode::OK, document.body.len(), route)
            }
        }
        Answer::Other { response, route } => {
            let head = method == Method::HEAD;
            let bytes = if head { 0 } else { response.body().len() };
            let answered = (response.status(), bytes, route);
            encode(response, head, connection_header, out);
            answered
        }
    };
    tally.count(service, route, status, bytes, Some((&method, path)));
    Disposition {
        close,
        unread_body: has_body,
    }
}

/// The path of a request target: origin form `/p?q`, absolute form `http://h/p?q`, or `*`.
/// `None` for anything else: an absolute form whose scheme is not one (RFC 3986 section 3.1),
/// the authority form `h:443` (for CONNECT to a proxy, which this is not) or a target of no
/// form at all (RFC 9112 section 3.2).
fn request_path(target: &str) -> Option<&str> {
    let path = match target.find("://") {
        Some(scheme_end) if !target.starts_with('/') => {
            let scheme = &target.as_bytes()[..scheme_end];
            let scheme_char = |b: &u8| b.is_ascii_alphanumeric() || b"+-.".contains(b);
            if scheme.is_empty() || !scheme.iter().all(scheme_char) {
                return None;
            }
            // The authority ends at the first `/`, `?` or `#`.
            let after = &target[scheme_end + 3..];
            match after.find(['/', '?', '#']) {
                Some(end) if after[end..].starts_with('/') => &after[end..],
                _ => "/",
            }
        }
        _ if target.starts_with('/') || target == "*" => target,
        _ => return None,
    };
    // A fragment is never sent (RFC 9112 section 3.2); a client that does anyway means the
    // path before it, as hyper reads it.
    Some(path.find(['?', '#']).map_or(path, |end| &path[..end]))
}

/// Writes an error response that ends the connection.
fn refuse(status: StatusCode, out: &mut Vec<u8>) {
    encode(error_response(status), false, b"connection: close\r\n", out);
}

/// Writes a response built by the service (health, status, errors) in HTTP/1.1 form.
fn encode(response: Response<Bytes>, head: bool, connection_header: &[u8], out: &mut Vec<u8>) {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(CONTENT_LENGTH) {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    append_date_line(out);
    out.extend_from_slice(connection_header);
    out.extend_from_slice(b"\r\n");
    if !head {
        out.extend_from_slice(&body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_minor_versions_are_rewritten_in_the_head_only() {
        let rewritten = higher_minor_version(b"\r\nGET / HTTP/1.2\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(rewritten, b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            higher_minor_version(b"GET / HTTP/1.9").unwrap(),
            b"GET / HTTP/1.1"
        );
        for same in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.10\r\n",
            b"\r\n",
            b"",
        ] {
            assert!(higher_minor_version(same).is_none(), "{same:?}");
        }
        // A request line longer than a head: not rewritten (and no panic).
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 10));
        long.extend_from_slice(b" HTTP/1.2\r\n\r\n");
        assert!(higher_minor_version(&long).is_none());
        // Only the head is copied.
        let mut pipelined = b"GET / HTTP/1.2\r\nHost: a\r\n\r\n".to_vec();
        pipelined.extend(std::iter::repeat_n(b'x', 3 * MAX_HEAD_BYTES));
        assert_eq!(
            higher_minor_version(&pipelined).unwrap().len(),
            MAX_HEAD_BYTES + 1
        );
    }

    #[test]
    fn request_paths() {
        assert_eq!(request_path("/a/b?x=1"), Some("/a/b"));
        assert_eq!(request_path("/a/b"), Some("/a/b"));
        assert_eq!(request_path("http://h.example/a?x"), Some("/a"));
        assert_eq!(request_path("http://h.example"), Some("/"));
        assert_eq!(request_path("*"), Some("*"));
        assert_eq!(request_path("/p?next=http://x/y"), Some("/p"));
        assert_eq!(request_path("/a#frag"), Some("/a"));
        assert_eq!(request_path("/a?q#frag"), Some("/a"));
        assert_eq!(request_path("http://h/a#f?x"), Some("/a"));
        assert_eq!(
            request_path("http://h?x=/.well-known/openid-configuration"),
            Some("/")
        );
        assert_eq!(request_path(":http://h/a"), None);
        assert_eq!(request_path("://h/a"), None);
        assert_eq!(request_path("x y://h/a"), None);
        assert_eq!(request_path("h.example:443"), None);
        assert_eq!(request_path("http;//h/a"), None);
        assert_eq!(request_path("h?x"), None);
    }
}
