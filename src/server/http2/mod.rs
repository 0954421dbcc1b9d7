//! HTTP/2 connections (h2c with prior knowledge, h2 by ALPN), served by issuerd's own engine.
//!
//! Why not hyper on this path: every response here is one of a few precomputed ones, yet
//! hyper's h2 server builds a `HeaderMap`, HPACK-encodes it and moves each response through
//! its stream machinery per request, which cost about five times what the HTTP/1.1 loop does.
//! This engine decodes the request's header block (`hpack.rs`), answers as soon as it
//! is complete, and copies the document's header block, encoded once per published generation
//! (`server/response_block.rs`), plus a `date` field and the body, into one write per batch of
//! frames. Protocol state is in `connection.rs`, without IO; this file runs it over a
//! transport with the timeouts:
//!
//! - a client that has not sent its SETTINGS within the handshake timeout is closed;
//! - a header block not complete within the header timeout of its first fragment is closed
//!   (after GOAWAY `NO_ERROR`), and is never held beyond 16 KiB (431, then GOAWAY);
//! - one that opens no stream for the keep-alive timeout is sent GOAWAY and closed (PINGs do
//!   not keep it);
//! - one that floods control frames is sent GOAWAY `ENHANCE_YOUR_CALM` (a budget of
//!   [`connection::BUDGET_MAX`] frames, refilled by requests and over time; frames that carry
//!   nothing, or come on a stream already reset, are control frames too), and one that keeps
//!   sending on a reset stream past a small allowance, GOAWAY `PROTOCOL_ERROR`;
//! - on shutdown, GOAWAY `NO_ERROR`, then close once owed responses are written;
//! - a client that stops reading is cut off after the write timeout.

mod connection;
mod field;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod hpack;
mod request;

use std::borrow::Cow;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Method, StatusCode};
use tokio::io::ReadBuf;
use tokio::time::Instant;
use tracing::debug;

use self::connection::{Asked, Connection, Reply, Status};
pub(crate) use self::frame::PREFACE;
use super::date::http_date;
use super::encoded::{Encoded, View};
use super::limits::{Limits, Timeouts};
use super::metrics::{ConnectionInfo, Protocol, Route, Shard};
use super::output::{self, Written};
use super::response_block;
use super::service::{Answer, IssuerService, error_response};
use super::transport::{Transport, linger_close, write_all_flushed};
use crate::shutdown;

/// Where this engine and hyper's HTTP/2 server (the `h2` crate) decide differently on purpose, as
/// (input, issuerd, hyper). `tests/it/differential_h2.rs` holds both to this list; `docs/http.md`
/// repeats it (`tests/it/readme.rs`).
pub const DELIBERATE_DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        ":path with characters the http crate refuses (space, non-ASCII)",
        "routed by its path (404: no served path has such characters)",
        "RST_STREAM PROTOCOL_ERROR",
    ),
    (
        "a malformed request (RFC 9113 sections 8.1.1, 8.2 and 8.3: a missing :method, :scheme \
         or :path, a field value starting or ending with white space, an uppercase field name, \
         a pseudo-header after a regular field...)",
        "RST_STREAM PROTOCOL_ERROR (a stream error; the connection goes on)",
        "answers some (no :path is taken as `/`, white space is kept), and rejects others with \
         GOAWAY PROTOCOL_ERROR (a connection error, which section 5.4.1 allows)",
    ),
    (
        "a request whose DATA does not add up to its content-length",
        "answered (its body is never read), then the stream is reset NO_ERROR",
        "RST_STREAM PROTOCOL_ERROR when it reads the DATA before answering, else like issuerd",
    ),
    (
        "h2c on the plain port: bytes that are not the HTTP/2 preface (h2spec http2/3.5/2)",
        "read as HTTP/1.1: a request line whose version is not HTTP/1.x is answered 505 with \
         connection: close (over TLS with ALPN h2: GOAWAY PROTOCOL_ERROR)",
        "hyper-util's auto server reads them as HTTP/1.1 too: 400 with connection: close \
         (hyper's HTTP/2 server alone sends its SETTINGS and closes)",
    ),
    (
        "DATA or HEADERS on a stream after the client's own RST_STREAM, the request already \
         answered and reset NO_ERROR (h2spec http2/5.1/8, http2/5.1/9)",
        "GOAWAY STREAM_CLOSED (a frame on a closed stream, RFC 9113 section 5.1)",
        "depends on whether its answer went out before it read them: RST_STREAM STREAM_CLOSED \
         (DATA) or GOAWAY PROTOCOL_ERROR (HEADERS), or the answer, RST_STREAM NO_ERROR and the \
         frames ignored",
    ),
    (
        "trailers without END_STREAM (or also with a pseudo-header) after the request was \
         answered and reset NO_ERROR (h2spec http2/8.1/1, http2/8.1.2.1/3)",
        "GOAWAY PROTOCOL_ERROR (the stream is already reset: a connection error, RFC 9113 \
         section 5.4.1)",
        "RST_STREAM PROTOCOL_ERROR when it reads them before answering, else the answer, \
         RST_STREAM NO_ERROR and the trailers ignored",
    ),
    (
        "more than 16 DATA or HEADERS frames on a stream after it was answered and reset \
         NO_ERROR (a request body in small frames; issuerd serves no request body)",
        "GOAWAY PROTOCOL_ERROR at the 17th, each before it spending the frame budget (frames on \
         reset streams cost a connection nothing otherwise)",
        "ignored while the reset is recent, within its limits on pending resets",
    ),
    (
        "WINDOW_UPDATEs taking a stream window above 2^31-1 once its response is out in full \
         (h2spec http2/6.9.1/3)",
        "ignored: the stream was answered and reset NO_ERROR when its HEADERS came (a response \
         still held by flow control gets RST_STREAM FLOW_CONTROL_ERROR)",
        "RST_STREAM FLOW_CONTROL_ERROR when it reads them before answering, else like issuerd",
    ),
    (
        "HEADERS on a stream id below the highest one opened, whether used (h2spec \
         http2/5.1/12) or skipped (h2spec http2/5.1.1/2)",
        "GOAWAY STREAM_CLOSED (only the highest id is kept; every lower stream is closed)",
        "GOAWAY PROTOCOL_ERROR (RFC 9113 section 5.1.1)",
    ),
    (
        "a PING after the client's GOAWAY, read in a later step, with nothing owed (h2spec \
         http2/7/1)",
        "not answered: the connection is closed cleanly once the client has sent GOAWAY and \
         nothing is owed",
        "PING ACK and the connection kept open (at times GOAWAY NO_ERROR and close)",
    ),
];

/// Bytes read per `read` call: one largest frame.
const READ_CHUNK: usize = 16 * 1024;

/// What one read-and-answer step did.
struct Step {
    /// Output the transport did not take at once.
    unwritten: Vec<u8>,
    /// The transport still holds written output (a TLS stream's records): flush it.
    unflushed: bool,
    status: Status,
    /// The client closed its side.
    eof: bool,
}

/// Connection state the steps share.
struct Driver<'a, T> {
    io: &'a mut T,
    service: &'a IssuerService,
    view: View,
    connection: Connection,
    info: ConnectionInfo,
    /// The requests of the last step, timed once their answers are written: when the step's
    /// read returned, and the requests by route.
    unobserved: Option<(Instant, [u64; 4])>,
}

/// Serves one HTTP/2 connection until it ends; `read` holds what was already read of it (the
/// h2c preface the HTTP/1.1 loop recognised).
pub(crate) async fn serve<T: Transport>(
    io: &mut T,
    service: &IssuerService,
    shutdown: &mut shutdown::Signal,
    timeouts: &Timeouts,
    limits: &Limits,
    info: ConnectionInfo,
    read: Vec<u8>,
) -> io::Result<()> {
    let start = Instant::now();
    let mut driver = Driver {
        io,
        service,
        view: service.view(),
        connection: Connection::new(start),
        info,
        unobserved: None,
    };
    let handshake_deadline = start + limits.h2_handshake;
    let mut last_request = start;
    let mut requests = 0;
    // Once GOAWAY is sent (shutdown, idle): when the connection is dropped at the latest.
    let mut closing: Option<Instant> = None;
    let mut draining = false;
    let mut pending = Some(read);
    let mut backlog = false;
    // Close as soon as the GOAWAY is written (an unfinished header block timed out).
    let mut abandon = false;
    loop {
        let now = Instant::now();
        driver.observe(now);
        if driver.connection.requests() != requests {
            if requests == 0 {
                shutdown.served();
            }
            requests = driver.connection.requests();
            last_request = now;
        }
        let idle_at = last_request + timeouts.keep_alive;
        // A header block must be complete within the header timeout of its first fragment.
        let block_deadline = driver
            .connection
            .header_block_started()
            .map(|started| started + timeouts.header_read);
        let deadline = match closing {
            Some(deadline) => deadline,
            None if driver.connection.settings_seen() => idle_at,
            None => idle_at.min(handshake_deadline),
        };
        let deadline = block_deadline.map_or(deadline, |block| block.min(deadline));
        // `None`: the deadline passed. Checked before reading too, so that a client whose
        // input never stops cannot outlive it.
        let step = if let Some(read) = pending.take() {
            Some(driver.first_step(&read)?)
        } else if now >= deadline {
            None
        } else if backlog {
            Some(poll_fn(|cx| driver.poll_step(cx, false)).await?)
        } else {
            tokio::select! {
                biased;
                () = shutdown.requested(), if !draining => {
                    draining = true;
                    closing = Some(Instant::now() + timeouts.write);
                    Some(driver.go_away())
                }
                step = tokio::time::timeout_at(deadline, poll_fn(|cx| driver.poll_step(cx, true))) => match step {
                    Ok(step) => Some(step?),
                    Err(_) => None,
                },
            }
        };
        let step = match step {
            Some(step) => step,
            None if closing.is_some() => {
                debug!("HTTP/2 connection did not close in time; dropped");
                return Ok(());
            }
            None if !driver.connection.settings_seen() => {
                debug!("HTTP/2 client sent no SETTINGS within the handshake timeout");
                return Ok(());
            }
            None if block_deadline.is_some_and(|block| Instant::now() >= block) => {
                debug!("HTTP/2 header block not finished within the header timeout; closed");
                abandon = true;
                driver.go_away()
            }
            None => {
                closing = Some(Instant::now() + timeouts.write);
                driver.go_away()
            }
        };
        backlog = driver.connection.has_backlog();
        if !step.unwritten.is_empty() || step.unflushed {
            let write = write_all_flushed(driver.io, &step.unwritten);
            match tokio::time::timeout(timeouts.write, write).await {
                Ok(result) => result?,
                Err(_) => {
                    driver.observe(Instant::now());
                    debug!("HTTP/2 client stopped reading; closed at the write timeout");
                    return Ok(());
                }
            }
        }
        let done = abandon
            || step.status == Status::Close
            || step.eof
            || (closing.is_some() && driver.connection.idle());
        if done {
            driver.observe(Instant::now());
            if driver.connection.calmed() {
                debug!("HTTP/2 control frame flood; sent GOAWAY ENHANCE_YOUR_CALM and closed");
            }
            if !step.eof {
                linger_close(driver.io, timeouts.linger).await;
            }
            return Ok(());
        }
    }
}

impl<T: Transport> Driver<'_, T> {
    /// Records the duration of the last step's requests, written by `now`.
    fn observe(&mut self, now: Instant) {
        let Some((started, routes)) = self.unobserved.take() else {
            return;
        };
        let elapsed = now.saturating_duration_since(started);
        self.service
            .metrics()
            .local()
            .observe_step(Protocol::H2, self.info.tls, elapsed, routes);
    }

    /// Reads what is available (unless `read_more` is false: frames are already buffered),
    /// answers it and writes the answers. Polled synchronously: the read buffer lives on the
    /// stack, not in the connection's future.
    fn poll_step(&mut self, cx: &mut Context<'_>, read_more: bool) -> Poll<io::Result<Step>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut chunk = ReadBuf::uninit(&mut chunk);
        if read_more {
            match self.io.poll_read_some(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => {
                    return Poll::Ready(Ok(Step {
                        unwritten: Vec::new(),
                        unflushed: false,
                        status: Status::Close,
                        eof: true,
                    }));
                }
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(self.write_with(Some(cx), |driver, out| driver.receive(chunk.filled(), out)))
    }

    /// The first step: the server's SETTINGS, then the frames in `read` (if any).
    fn first_step(&mut self, read: &[u8]) -> io::Result<Step> {
        self.write_with(None, |driver, out| {
            Connection::start(out);
            driver.receive(read, out)
        })
    }

    /// GOAWAY `NO_ERROR`: no new streams are answered.
    fn go_away(&mut self) -> Step {
        let mut out = Vec::new();
        self.connection.go_away(&mut out);
        Step {
            unwritten: out,
            unflushed: false,
            status: Status::Open,
            eof: false,
        }
    }

    /// Runs `fill` on the thread's output buffer, then writes what it produced (at once when
    /// `cx` is given, else leaves it all to the caller).
    fn write_with(
        &mut self,
        cx: Option<&mut Context<'_>>,
        fill: impl FnOnce(&mut Self, &mut Vec<u8>) -> Status,
    ) -> io::Result<Step> {
        output::with_buffer(|out| {
            let status = fill(self, out);
            let written = match cx {
                None => Written::nothing_of(out),
                Some(cx) => output::write_once(&mut *self.io, cx, out)?,
            };
            Ok(Step {
                unwritten: written.unwritten,
                unflushed: written.unflushed,
                status,
                eof: false,
            })
        })
    }

    /// Feeds `data` to the connection, answering its requests from the newest snapshot.
    fn receive(&mut self, data: &[u8], out: &mut Vec<u8>) -> Status {
        let started = Instant::now();
        let encoded = self.view.get(self.service.encoder());
        let mut tally = Tally {
            service: self.service,
            info: &self.info,
            counters: self.service.metrics().local(),
            started,
            routes: [0; 4],
        };
        let status = self
            .connection
            .receive(data, started, &http_date(), out, &mut |asked| {
                tally.answer(encoded, asked)
            });
        if tally.routes != [0; 4] {
            self.unobserved = Some((started, tally.routes));
        }
        status
    }
}

/// The requests of one step, for the metrics and the access log.
struct Tally<'a> {
    service: &'a IssuerService,
    info: &'a ConnectionInfo,
    /// This thread's counters.
    counters: &'a Shard,
    started: Instant,
    /// Requests answered, by route.
    routes: [u64; 4],
}

impl Tally<'_> {
    /// Answers one request from `encoded`, and counts it.
    fn answer<'e>(&mut self, encoded: &'e Encoded, asked: Asked<'_>) -> Reply<'e> {
        let (method, path) = match asked {
            Ok(head) => (head.method().as_str(), head.path()),
            // Refused before it was read through: logged as `- -`, as HTTP/1.1 does.
            Err(_) => ("-", "-"),
        };
        let (reply, status, route) = match asked {
            Err(status) => {
                let (reply, _) = other_reply(error_response(status), false);
                (reply, status, Route::Other)
            }
            Ok(head) => {
                match self
                    .service
                    .answer(encoded, head.method(), path, head.if_none_match())
                {
                    Answer::Document {
                        document,
                        route,
                        not_modified,
                        head,
                    } => {
                        let (block, body, status) = if not_modified {
                            (
                                &document.h2_not_modified_block,
                                Cow::Owned(Bytes::new()),
                                StatusCode::NOT_MODIFIED,
                            )
                        } else if head {
                            (
                                &document.h2_ok_block,
                                Cow::Owned(Bytes::new()),
                                StatusCode::OK,
                            )
                        } else {
                            (
                                &document.h2_ok_block,
                                Cow::Borrowed(&document.body),
                                StatusCode::OK,
                            )
                        };
                        let reply = Reply {
                            block: Cow::Borrowed(block.as_ref()),
                            body,
                        };
                        (reply, status, route)
                    }
                    Answer::Other { response, route } => {
                        let (reply, status) = other_reply(response, head.method() == Method::HEAD);
                        (reply, status, route)
                    }
                }
            }
        };
        let bytes = reply.body.len();
        self.counters
            .count(route, Protocol::H2, self.info.tls, status, bytes);
        self.routes[route as usize] += 1;
        if self.service.access_log() {
            let elapsed = self.started.elapsed();
            self.service.log_access(
                self.info,
                Protocol::H2,
                method,
                path,
                status,
                bytes,
                elapsed,
            );
        }
        reply
    }
}

/// The reply of a response built per request (health, status, errors): its headers with a
/// `content-length` (the GET length, for HEAD too), encoded.
fn other_reply(response: http::Response<Bytes>, head: bool) -> (Reply<'static>, StatusCode) {
    let (mut parts, body) = response.into_parts();
    parts
        .headers
        .entry(CONTENT_LENGTH)
        .or_insert_with(|| HeaderValue::from(body.len()));
    let reply = Reply {
        block: Cow::Owned(response_block::encode(parts.status, &parts.headers)),
        body: Cow::Owned(if head { Bytes::new() } else { body }),
    };
    (reply, parts.status)
}
