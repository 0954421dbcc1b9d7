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
use std::future::Future as _;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Method, Response};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::date::append_date_line;
use super::service::{Answer, Body, IssuerService};
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
/// Output buffers larger than this are not kept for reuse.
const MAX_RETAINED_OUTPUT: usize = 256 * 1024;

const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 16\r\nconnection: close\r\n\r\n400 Bad Request\n";
const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 36\r\nconnection: close\r\n\r\n431 Request Header Fields Too Large\n";
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 20\r\nconnection: close\r\n\r\n408 Request Timeout\n";
const VERSION_NOT_SUPPORTED: &[u8] = b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 31\r\nconnection: close\r\n\r\n505 HTTP Version Not Supported\n";

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
    Answered { unwritten: Vec<u8>, close: bool },
}

/// Serves HTTP/1.x requests on `stream` until the connection ends.
pub(crate) async fn serve(
    stream: &TcpStream,
    service: &IssuerService,
    shutdown: &mut shutdown::Signal,
    timeouts: Timeouts,
) -> io::Result<Outcome> {
    // An unfinished request head; empty (and unallocated) while the connection is idle.
    let mut pending: Vec<u8> = Vec::new();
    let mut served_any = false;
    let mut latest = service.latest();
    loop {
        if pending.is_empty() {
            tokio::select! {
                biased;
                ready = tokio::time::timeout(timeouts.keep_alive, stream.readable()) => match ready {
                    Ok(ready) => ready?,
                    Err(_) => return Ok(Outcome::Closed),
                },
                () = shutdown.requested() => return Ok(Outcome::Closed),
            }
        } else if let Ok(ready) =
            tokio::time::timeout(timeouts.header_read, stream.readable()).await
        {
            ready?;
        } else {
            let _ = stream.try_write(REQUEST_TIMEOUT);
            return Ok(Outcome::Closed);
        }
        match read_and_answer(stream, service, &mut latest, &mut pending, !served_any)? {
            Step::WouldBlock | Step::Incomplete => {}
            Step::Eof => return Ok(Outcome::Closed),
            Step::Http2 => return Ok(Outcome::Http2(pending)),
            Step::Answered { unwritten, close } => {
                served_any = true;
                write_all(stream, &unwritten).await?;
                if close {
                    return Ok(Outcome::Closed);
                }
            }
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
) -> io::Result<Step> {
    let mut chunk = [0u8; READ_CHUNK];
    let read = match read_draining(stream, &mut chunk) {
        Ok(0) => return Ok(Step::Eof),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
        Err(e) => return Err(e),
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

    let (consumed, close, unwritten) = OUTPUT.with(|output| {
        let mut out = output.borrow_mut();
        out.clear();
        let (consumed, close) = answer_all(data, service, latest.get(), &mut out);
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
        unwritten.map(|u| (consumed, close, u))
    })?;

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
    Ok(Step::Answered { unwritten, close })
}

/// Answers every complete request in `data`, in order. Returns the bytes consumed and whether
/// the connection must close after the output is written.
fn answer_all(
    data: &[u8],
    service: &IssuerService,
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> (usize, bool) {
    let mut consumed = 0;
    while consumed < data.len() {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&data[consumed..]) {
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
                out.extend_from_slice(HEAD_TOO_LARGE);
                return (consumed + len, true);
            }
            Ok(httparse::Status::Complete(len)) => {
                consumed += len;
                if answer_one(&request, service, snapshot, out) {
                    return (consumed, true);
                }
            }
            Ok(httparse::Status::Partial) => {
                if data.len() - consumed > MAX_HEAD_BYTES {
                    out.extend_from_slice(HEAD_TOO_LARGE);
                    return (consumed, true);
                }
                return (consumed, false);
            }
            Err(httparse::Error::TooManyHeaders) => {
                out.extend_from_slice(HEAD_TOO_LARGE);
                return (consumed, true);
            }
            Err(httparse::Error::Version) => {
                out.extend_from_slice(VERSION_NOT_SUPPORTED);
                return (consumed, true);
            }
            Err(_) => {
                out.extend_from_slice(BAD_REQUEST);
                return (consumed, true);
            }
        }
    }
    (consumed, false)
}

/// Answers one parsed request; returns whether the connection must close afterwards.
fn answer_one(
    request: &httparse::Request<'_, '_>,
    service: &IssuerService,
    snapshot: &Snapshot,
    out: &mut Vec<u8>,
) -> bool {
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        out.extend_from_slice(BAD_REQUEST);
        return true;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        out.extend_from_slice(BAD_REQUEST);
        return true;
    };
    // HTTP/1.0 closes unless it asks to stay; HTTP/1.1 stays unless it asks to close.
    let mut keep_alive = version == 1;
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
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => {}
                Some(_) => has_body = true,
                None => {
                    out.extend_from_slice(BAD_REQUEST);
                    return true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            has_body = true;
        }
    }
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
    close
}

/// The path of a request target: origin form `/p?q` or absolute form `http://h/p?q`.
fn request_path(target: &str) -> &str {
    let path = match target.find("://") {
        Some(scheme_end) if !target.starts_with('/') => {
            let after = &target[scheme_end + 3..];
            after.find('/').map_or("/", |slash| &after[slash..])
        }
        _ => target,
    };
    path.split_once('?').map_or(path, |(path, _)| path)
}

/// Writes a response built by the service (health, status, errors) in HTTP/1.1 form.
fn encode(response: Response<Body>, head: bool, connection_header: &[u8], out: &mut Vec<u8>) {
    let (parts, body) = response.into_parts();
    let body: Bytes = body_bytes(body);
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

/// The bytes of a `Full` body, which is always one ready frame.
fn body_bytes(body: Body) -> Bytes {
    use http_body_util::BodyExt as _;
    let mut future = std::pin::pin!(body.collect());
    let waker = std::task::Waker::noop();
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
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
    }
}
