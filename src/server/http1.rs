//! HTTP/1.1 connections, answered from the snapshot's precomputed header blocks.
//!
//! Why not hyper on this path: hyper keeps a read and a write buffer (8 KiB each) for the life of
//! every connection, about 18 KiB per idle keep-alive connection, and formats headers for every
//! response. This loop reads into a stack buffer, keeps only an unfinished request head on the
//! heap, answers pipelined requests in order with one write, and copies precomputed bytes for the
//! two documents. Request heads are parsed by `httparse`; request bodies are never read (a
//! request that announces one is answered, then the connection is closed). A connection that
//! opens with the HTTP/2 preface (h2c, prior knowledge) is handed to hyper.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Response, StatusCode};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::date::append_date_line;
use super::service::{Answer, IssuerService, error_response};
use crate::shutdown;
use crate::store::{Latest, Snapshot};

/// Largest request head accepted (request line and headers).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most request headers accepted.
const MAX_HEADERS: usize = 64;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 8 * 1024;
/// What every HTTP/2 connection starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Pipelined requests are answered in batches of about this much output.
const MAX_BATCH_OUTPUT: usize = 64 * 1024;
/// How long a closing connection's unread input is drained.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How much unread input a closing connection drains at most.
const LINGER_BYTES: usize = 64 * 1024;
/// Output buffers larger than this are not kept for reuse.
const MAX_RETAINED_OUTPUT: usize = 256 * 1024;

thread_local! {
    /// Responses are assembled here, written, and the buffer kept for the next request.
    static OUTPUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Connection timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// Time allowed to finish sending a request head once it has started.
    pub(crate) header_read: Duration,
    /// Time an idle keep-alive connection is kept.
    pub(crate) keep_alive: Duration,
}

/// How a connection ended.
pub(crate) enum Outcome {
    /// Closed (by either side, a timeout, an error response or shutdown).
    Closed,
    /// The client spoke HTTP/2; these bytes were already read.
    Http2(Vec<u8>),
}

/// What one read-and-answer step did.
enum Step {
    /// Nothing to read after all (spurious readiness).
    WouldBlock,
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
        /// Close after writing.
        close: bool,
        /// Unread input may follow (a body, more requests): close gracefully.
        linger: bool,
        /// Complete requests are still buffered (the output batch was full).
        more: bool,
    },
}

/// Serves HTTP/1.x requests on `stream` until the connection ends.
pub(crate) async fn serve(
    stream: &TcpStream,
    service: &IssuerService,
    shutdown: &mut shutdown::Signal,
    timeouts: Timeouts,
) -> io::Result<Outcome> {
    // An unfinished request head (or unanswered pipelined requests); empty and unallocated
    // while the connection is idle.
    let mut pending: Vec<u8> = Vec::new();
    let mut served_any = false;
    let mut backlog = false;
    // A request head must be complete this long after its first byte, however it trickles in.
    let mut head_deadline: Option<Instant> = None;
    let mut latest = service.latest();
    loop {
        if backlog {
            // Complete requests are already buffered: answer them without waiting for input.
        } else if pending.is_empty() {
            head_deadline = None;
            tokio::select! {
                biased;
                ready = tokio::time::timeout(timeouts.keep_alive, stream.readable()) => match ready {
                    Ok(ready) => ready?,
                    Err(_) => return Ok(Outcome::Closed),
                },
                () = shutdown.requested() => return Ok(Outcome::Closed),
            }
        } else {
            let deadline =
                *head_deadline.get_or_insert_with(|| Instant::now() + timeouts.header_read);
            tokio::select! {
                biased;
                ready = tokio::time::timeout_at(deadline, stream.readable()) => match ready {
                    Ok(ready) => ready?,
                    Err(_) => {
                        let mut out = Vec::new();
                        refuse(StatusCode::REQUEST_TIMEOUT, &mut out);
                        let _ = stream.try_write(&out);
                        return Ok(Outcome::Closed);
                    }
                },
                () = shutdown.requested() => return Ok(Outcome::Closed),
            }
        }
        let read_more = !backlog;
        match read_and_answer(
            stream,
            service,
            &mut latest,
            &mut pending,
            !served_any,
            read_more,
        )? {
            Step::WouldBlock | Step::Incomplete => backlog = false,
            Step::Eof => return Ok(Outcome::Closed),
            Step::Http2 => return Ok(Outcome::Http2(pending)),
            Step::Answered {
                unwritten,
                close,
                linger,
                more,
            } => {
                served_any = true;
                backlog = more;
                head_deadline = None;
                // A client that stops reading must not hold the connection (and its unwritten
                // output) forever.
                if !unwritten.is_empty() {
                    let written =
                        tokio::time::timeout(timeouts.header_read, write_all(stream, &unwritten))
                            .await;
                    match written {
                        Ok(result) => result?,
                        Err(_) => return Ok(Outcome::Closed),
                    }
                }
                if close {
                    if linger {
                        linger_close(stream).await;
                    }
                    return Ok(Outcome::Closed);
                }
            }
        }
    }
}

/// Closing a socket with unread input makes the kernel send a reset, which can destroy the
/// response before the client reads it. So: stop sending, and read and discard what the client
/// still sends, for a bounded time and amount, before closing.
async fn linger_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        let mut sink = [0u8; 4096];
        match stream.try_read(&mut sink) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Reads once. A short read means the socket is drained, so the readiness is cleared right away
/// (by reporting `WouldBlock` to tokio, which keeps any readiness that arrived meanwhile) instead
/// of learning it from a second, empty `read` call on the next loop.
fn read_draining(stream: &TcpStream, chunk: &mut [u8]) -> io::Result<usize> {
    let mut read = None;
    let result = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read(chunk)?;
        read = Some(n);
        if n > 0 && n < chunk.len() {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match (result, read) {
        (Ok(n), _) => Ok(n),
        (Err(_), Some(n)) => Ok(n),
        (Err(e), None) => Err(e),
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what is available, answers every complete request in it, and writes the answers.
/// Synchronous on purpose: the read buffer lives on the stack, not in the connection's future.
fn read_and_answer(
    stream: &TcpStream,
    service: &IssuerService,
    latest: &mut Latest,
    pending: &mut Vec<u8>,
    first: bool,
    read_more: bool,
) -> io::Result<Step> {
    let mut chunk = [0u8; READ_CHUNK];
    let read = if read_more {
        match read_draining(stream, &mut chunk) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
            Err(e) => return Err(e),
        }
    } else {
        0
    };
    let from_pending = !pending.is_empty();
    if from_pending {
        pending.extend_from_slice(&chunk[..read]);
    }
    let data: &[u8] = if from_pending {
        pending
    } else {
        &chunk[..read]
    };

    if first {
        let n = data.len().min(H2_PREFACE.len());
        if data[..n] == H2_PREFACE[..n] {
            let complete = n == H2_PREFACE.len();
            if !from_pending {
                pending.extend_from_slice(&chunk[..read]);
            }
            return Ok(if complete {
                Step::Http2
            } else {
                Step::Incomplete
            });
        }
    }

    let data_len = data.len();
    let (batch, unwritten) = OUTPUT.with(|output| {
        let mut out = output.borrow_mut();
        out.clear();
        let batch = answer_all(data, service, latest.get(), &mut out);
        let unwritten = if out.is_empty() {
            Ok(Vec::new())
        } else {
            match stream.try_write(&out) {
                Ok(n) => Ok(out[n..].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(out.clone()),
                Err(e) => Err(e),
            }
        };
        if out.capacity() > MAX_RETAINED_OUTPUT {
            *out = Vec::new();
        }
        unwritten.map(|u| (batch, u))
    })?;
    let Batch {
        consumed,
        close,
        unread_body,
        more,
    } = batch;
    let linger = close && (unread_body || consumed < data_len);

    if close {
        pending.clear();
    } else if from_pending {
        pending.drain(..consumed);
    } else if consumed < read {
        pending.extend_from_slice(&chunk[consumed..read]);
    }
    if pending.is_empty() {
        // Give an idle connection's buffer back.
        *pending = Vec::new();
    }
    if consumed == 0 && !close {
        return Ok(Step::Incomplete);
    }
    Ok(Step::Answered {
        unwritten,
        close,
        linger,
        more,
    })
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
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> Batch {
    let mut batch = Batch {
        consumed: 0,
        close: false,
        unread_body: false,
        more: false,
    };
    let refuse = |out: &mut Vec<u8>, status: StatusCode, batch: Batch| {
        refuse(status, out);
        Batch {
            close: true,
            ..batch
        }
    };
    while batch.consumed < data.len() {
        if out.len() >= MAX_BATCH_OUTPUT {
            batch.more = true;
            return batch;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&data[batch.consumed..]) {
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
                return refuse(out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, batch);
            }
            Ok(httparse::Status::Complete(len)) => {
                batch.consumed += len;
                let disposition = answer_one(&request, service, snapshot, out);
                if disposition.close {
                    batch.close = true;
                    batch.unread_body = disposition.unread_body;
                    return batch;
                }
            }
            Ok(httparse::Status::Partial) => {
                if data.len() - batch.consumed > MAX_HEAD_BYTES {
                    return refuse(out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, batch);
                }
                return batch;
            }
            Err(httparse::Error::TooManyHeaders) => {
                return refuse(out, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, batch);
            }
            Err(httparse::Error::Version) => {
                return refuse(out, StatusCode::HTTP_VERSION_NOT_SUPPORTED, batch);
            }
            Err(_) => return refuse(out, StatusCode::BAD_REQUEST, batch),
        }
    }
    batch
}

/// Whether a connection continues after a response.
struct Disposition {
    close: bool,
    unread_body: bool,
}

/// Answers one parsed request.
fn answer_one(
    request: &httparse::Request<'_, '_>,
    service: &IssuerService,
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> Disposition {
    let refuse = |out: &mut Vec<u8>| {
        refuse(StatusCode::BAD_REQUEST, out);
        Disposition {
            close: true,
            unread_body: true,
        }
    };
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return refuse(out);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return refuse(out);
    };
    // HTTP/1.0 closes unless it asks to stay; HTTP/1.1 stays unless it asks to close; `close`
    // wins over `keep-alive`.
    let mut asks_close = false;
    let mut asks_keep_alive = false;
    let mut if_none_match = None;
    let mut has_body = false;
    for header in request.headers.iter() {
        let name = header.name.as_bytes();
        if name.eq_ignore_ascii_case(b"if-none-match") {
            if_none_match = Some(header.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    asks_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    asks_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => {}
                Some(_) => has_body = true,
                None => return refuse(out),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            has_body = true;
        }
    }
    let keep_alive = !asks_close && (version == 1 || asks_keep_alive);
    // The body is never read, so the next request cannot be found: answer, then close.
    let close = !keep_alive || has_body;
    let connection_header: &[u8] = match (close, version) {
        (true, _) => b"connection: close\r\n",
        (false, 0) => b"connection: keep-alive\r\n",
        (false, _) => b"",
    };

    match service.answer(snapshot, &method, request_path(target), if_none_match) {
        Answer::Document {
            document,
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
            if !not_modified && !head {
                out.extend_from_slice(&document.body);
            }
        }
        Answer::Other(response) => {
            encode(response, method == Method::HEAD, connection_header, out);
        }
    }
    Disposition {
        close,
        unread_body: has_body,
    }
}

/// The path of a request target: origin form `/p?q` or absolute form `http://h/p?q`.
fn request_path(target: &str) -> &str {
    let path = match target.find("://") {
        Some(scheme_end) if !target.starts_with('/') => {
            // The authority ends at the first `/`, `?` or `#`.
            let after = &target[scheme_end + 3..];
            match after.find(['/', '?', '#']) {
                Some(end) if after[end..].starts_with('/') => &after[end..],
                _ => "/",
            }
        }
        _ => target,
    };
    path.split_once('?').map_or(path, |(path, _)| path)
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
    fn request_paths() {
        assert_eq!(request_path("/a/b?x=1"), "/a/b");
        assert_eq!(request_path("/a/b"), "/a/b");
        assert_eq!(request_path("http://h.example/a?x"), "/a");
        assert_eq!(request_path("http://h.example"), "/");
        assert_eq!(request_path("*"), "*");
        assert_eq!(request_path("/p?next=http://x/y"), "/p");
        assert_eq!(
            request_path("http://h?x=/.well-known/openid-configuration"),
            "/"
        );
    }
}
