//! HTTP/1.x on the wire, byte by byte: pipelining, split request heads, HTTP/1.0, connection
//! close, request bodies, malformed and oversized requests, h2c detection.

use crate::common;

use std::time::Duration;

use common::{JWKS, TestServer, find, key};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn server() -> TestServer {
    let key = key("ec256.pub.pem").display().to_string();
    TestServer::start(&["--issuer", "https://h.example", "--key-file", &key]).await
}

/// Reads until the peer closes (or 5 s pass) and returns everything.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads exactly `count` responses (each with a content-length) and returns them.
async fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<(String, String)> {
    let mut buffer = Vec::new();
    let mut responses = Vec::new();
    while responses.len() < count {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("timed out waiting for a response")
            .unwrap();
        assert!(n > 0, "closed after {} responses", responses.len());
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = find(&buffer, b"\r\n\r\n") {
            let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            let is_head_or_304 = head.starts_with("HTTP/1.1 304");
            let body_len = if is_head_or_304 { 0 } else { length };
            if buffer.len() < end + 4 + body_len {
                break;
            }
            let body = String::from_utf8(buffer[end + 4..end + 4 + body_len].to_vec()).unwrap();
            buffer.drain(..end + 4 + body_len);
            responses.push((head, body));
        }
    }
    responses
}

#[tokio::test]
async fn keep_alive_and_pipelining_answer_in_order() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
    // Three pipelined requests in one write, then more one by one on the same connection.
    let batch = [JWKS, "/nope", "/.well-known/openid-configuration"]
        .map(request)
        .concat();
    stream.write_all(batch.as_bytes()).await.unwrap();
    let responses = read_responses(&mut stream, 3).await;
    assert!(
        responses[0].0.starts_with("HTTP/1.1 200 OK"),
        "{:?}",
        responses[0]
    );
    assert!(responses[0].1.starts_with("{\"keys\":["));
    assert!(responses[1].0.starts_with("HTTP/1.1 404 Not Found"));
    assert_eq!(responses[1].1, "404 page not found\n");
    assert!(
        responses[2]
            .1
            .starts_with("{\"issuer\":\"https://h.example\"")
    );
    for _ in 0..50 {
        stream.write_all(request(JWKS).as_bytes()).await.unwrap();
        let response = read_responses(&mut stream, 1).await;
        assert!(response[0].0.starts_with("HTTP/1.1 200 OK"));
    }
}

#[tokio::test]
async fn a_request_head_split_across_writes_is_assembled() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"nope\"\r\n\r\n");
    for byte in request.as_bytes() {
        stream.write_all(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let response = read_responses(&mut stream, 1).await;
    assert!(
        response[0].0.starts_with("HTTP/1.1 200 OK"),
        "{:?}",
        response[0]
    );
    let head = &response[0].0;
    for header in [
        "content-type: application/jwk-set+json",
        "cache-control: public, max-age=3600",
        "etag: \"",
        "access-control-allow-origin: *",
        "date: ",
    ] {
        assert!(head.contains(header), "{header} missing in {head}");
    }
}

#[tokio::test]
async fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("GET {JWKS} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let all = read_to_close(&mut stream).await;
    assert!(
        all.starts_with("HTTP/1.1 200 OK") && all.contains("connection: close"),
        "{all}"
    );

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let keep = format!("GET {JWKS} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    stream.write_all(keep.as_bytes()).await.unwrap();
    let first = read_responses(&mut stream, 1).await;
    assert!(
        first[0].0.contains("connection: keep-alive"),
        "{:?}",
        first[0]
    );
    stream.write_all(keep.as_bytes()).await.unwrap();
    assert!(
        read_responses(&mut stream, 1).await[0]
            .0
            .starts_with("HTTP/1.1 200 OK")
    );
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET {JWKS} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let all = read_to_close(&mut stream).await;
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 1, "{all}");
    assert!(all.contains("connection: close"));
}

#[tokio::test]
async fn a_request_with_a_body_is_answered_then_closed_without_reading_it() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nGET / HTTP/1.1\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let all = read_to_close(&mut stream).await;
    assert!(all.starts_with("HTTP/1.1 405 Method Not Allowed"), "{all}");
    assert!(
        all.contains("allow: GET, HEAD") && all.contains("connection: close"),
        "{all}"
    );
    assert_eq!(all.matches("HTTP/1.1").count(), 1, "{all}");
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused() {
    let server = server().await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), "HTTP/1.1 400 Bad Request"),
        (b"GET /x HTTP/9.9\r\n\r\n".to_vec(), "HTTP/1.1 505"),
        (
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            "HTTP/1.1 431",
        ),
        (
            format!("GET / HTTP/1.1\r\n{}\r\n", "X-H: v\r\n".repeat(100)).into_bytes(),
            "HTTP/1.1 431",
        ),
        (
            format!("GET {JWKS} HTTP/1.1\r\nContent-Length: nope\r\n\r\n").into_bytes(),
            "HTTP/1.1 400",
        ),
    ];
    for (request, expected) in cases {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let all = read_to_close(&mut stream).await;
        assert!(
            all.starts_with(expected),
            "expected {expected}, got {all:?}"
        );
    }
}

#[tokio::test]
async fn absolute_form_targets_and_head_requests() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("GET http://h.example{JWKS}?q=1 HTTP/1.1\r\nHost: h\r\n\r\nHEAD {JWKS} HTTP/1.1\r\nHost: h\r\n\r\nHEAD /healthz HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buffer = Vec::new();
    while find(&buffer, b"HTTP/1.1 200 OK").is_none()
        || buffer
            .windows(15)
            .filter(|w| *w == b"HTTP/1.1 200 OK")
            .count()
            < 3
    {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buffer.extend_from_slice(&chunk[..n]);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = String::from_utf8(buffer).unwrap();
    let parts: Vec<&str> = text.split("HTTP/1.1 ").filter(|p| !p.is_empty()).collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert!(parts[0].contains("{\"keys\":["));
    // HEAD: headers with the GET content-length, no body.
    assert!(parts[1].ends_with("\r\n\r\n"), "{:?}", parts[1]);
    assert!(
        parts[2].contains("content-length: 3") && parts[2].ends_with("\r\n\r\n"),
        "{:?}",
        parts[2]
    );
}

#[tokio::test]
async fn an_h2c_preface_split_across_writes_is_handed_to_http2() {
    let server = server().await;
    // The preface byte by byte; then hyper's client finishes the handshake on the same stream.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(SlowStart::new(stream)),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get(format!("http://h{JWKS}"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
}

/// Writes its first 24 bytes one at a time, so the server sees a partial HTTP/2 preface.
struct SlowStart {
    inner: TcpStream,
    written: usize,
}

impl SlowStart {
    fn new(inner: TcpStream) -> Self {
        Self { inner, written: 0 }
    }
}

impl tokio::io::AsyncRead for SlowStart {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SlowStart {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let limit = if self.written < 24 { 1 } else { buf.len() };
        let result =
            std::pin::Pin::new(&mut self.inner).poll_write(cx, &buf[..limit.min(buf.len())]);
        if let std::task::Poll::Ready(Ok(n)) = result {
            self.written += n;
            if self.written < 24 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        result
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    let server = server().await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_responses(&mut idle, 1).await;
    let stopped = tokio::spawn(server.stop());
    let rest = read_to_close(&mut idle).await;
    assert!(rest.is_empty(), "{rest}");
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn hundreds_of_pipelined_requests_are_answered_in_batches() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let batch = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n").repeat(400);
    let (mut reader, mut writer) = stream.split();
    let write = async {
        writer.write_all(batch.as_bytes()).await.unwrap();
    };
    let read = async {
        let mut all = Vec::new();
        let mut chunk = [0u8; 65536];
        while all.windows(15).filter(|w| *w == b"HTTP/1.1 200 OK").count() < 400 {
            let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut chunk))
                .await
                .expect("stalled")
                .unwrap();
            assert!(n > 0, "closed early");
            all.extend_from_slice(&chunk[..n]);
        }
        all
    };
    let ((), all) = tokio::join!(write, read);
    let text = String::from_utf8(all).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 400);
    assert_eq!(text.matches("{\"keys\":[").count(), 400);
}

#[tokio::test]
async fn a_late_body_does_not_reset_the_response() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!("POST {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The body arrives after the server answered; it must not turn into a reset that destroys
    // the answer.
    let _ = stream.write_all(&vec![b'x'; 70_000]).await;
    let all = read_to_close(&mut stream).await;
    assert!(
        all.starts_with("HTTP/1.1 405 Method Not Allowed"),
        "{all:?}"
    );
    assert!(all.ends_with("405 method not allowed\n"), "{all:?}");
}

#[tokio::test]
async fn close_wins_over_keep_alive() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!("GET {JWKS} HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let all = read_to_close(&mut stream).await;
    assert!(all.contains("connection: close"), "{all}");
}

/// Sends `request` on a new connection and returns everything until the server closes.
async fn exchange(server: &TestServer, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_to_close(&mut stream).await
}

#[tokio::test]
async fn content_length_must_be_digits_and_agree_with_itself() {
    let server = server().await;
    // RFC 9112 section 6.3: an invalid or conflicting Content-Length is 400, then close.
    for value in [
        "+0",
        "-1",
        "0x10",
        "1 2",
        "",
        "18446744073709551616", // u64::MAX + 1
        "99999999999999999999999",
        "1, 2",
        "0,",
    ] {
        let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n");
        let all = exchange(&server, request.as_bytes()).await;
        assert!(
            all.starts_with("HTTP/1.1 400 Bad Request") && all.contains("connection: close"),
            "Content-Length {value:?}: {all:?}"
        );
        assert_eq!(all.matches("HTTP/1.1").count(), 1, "{value:?}: {all:?}");
    }
    // Two lines that disagree.
    let request =
        format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: 1\r\n\r\n");
    let all = exchange(&server, request.as_bytes()).await;
    assert!(all.starts_with("HTTP/1.1 400"), "{all:?}");
    // Repeats that agree (a list or several lines) are one value; 0 means no body, so the
    // connection stays open for the next pipelined request.
    let request = format!(
        "GET {JWKS} HTTP/1.1\r\nHost: h\r\nContent-Length: 0, 0\r\nContent-Length: 0\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    );
    let all = exchange(&server, request.as_bytes()).await;
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all:?}");
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all:?}");
}

#[tokio::test]
async fn transfer_encoding_with_content_length_is_refused() {
    let server = server().await;
    for head in [
        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        // In HTTP/1.1 a body whose last coding is not chunked has no determinable length.
        "Transfer-Encoding: gzip\r\n",
        "Transfer-Encoding: chunked, gzip\r\n",
    ] {
        let request = format!("POST {JWKS} HTTP/1.1\r\nHost: h\r\n{head}\r\n0\r\n\r\n");
        let all = exchange(&server, request.as_bytes()).await;
        assert!(
            all.starts_with("HTTP/1.1 400 Bad Request") && all.contains("connection: close"),
            "{head:?}: {all:?}"
        );
    }
    // chunked alone is a body issuerd does not read: answered, then closed.
    let request =
        format!("POST {JWKS} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    let all = exchange(&server, request.as_bytes()).await;
    assert!(all.starts_with("HTTP/1.1 405"), "{all:?}");
    assert!(all.contains("connection: close"), "{all:?}");
}

#[tokio::test]
async fn http_1_1_needs_exactly_one_host() {
    let server = server().await;
    for (request, expected) in [
        (format!("GET {JWKS} HTTP/1.1\r\n\r\n"), "HTTP/1.1 400"),
        (
            format!("GET {JWKS} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            "HTTP/1.1 400",
        ),
        (
            format!("GET {JWKS} HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
            "HTTP/1.1 400",
        ),
        // HTTP/1.0 may omit it.
        (format!("GET {JWKS} HTTP/1.0\r\n\r\n"), "HTTP/1.1 200 OK"),
        (
            format!("GET {JWKS} HTTP/1.1\r\nhOsT: a\r\nConnection: close\r\n\r\n"),
            "HTTP/1.1 200 OK",
        ),
    ] {
        let all = exchange(&server, request.as_bytes()).await;
        assert!(all.starts_with(expected), "{request:?}: {all:?}");
    }
}

#[tokio::test]
async fn repeated_if_none_match_lines_are_one_list_in_h1_and_h2() {
    let server = server().await;
    let etag = common::get(server.addr, JWKS)
        .await
        .unwrap()
        .header("etag")
        .unwrap()
        .to_owned();
    // The match sits in the first line and in the last: a server that reads only one fails
    // one of them (HTTP/1.1 used to keep the last, h2 the first).
    let cases: [(&[&str], bool); 6] = [
        (&["\"a\"", etag.as_str()], true),
        (&[etag.as_str(), "\"a\""], true),
        (&["\"a\", \"b\"", &format!("W/{etag}")], true),
        (&["\"a\"", "*"], true),
        (&["\"a\"", "\"b\""], false),
        (&["*"], true),
    ];
    for (values, matches) in cases {
        let expected = if matches { 304 } else { 200 };
        // HTTP/1.1 on the wire.
        let mut request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n");
        for value in values {
            request.push_str(&format!("If-None-Match: {value}\r\n"));
        }
        request.push_str("\r\n");
        let all = exchange(&server, request.as_bytes()).await;
        assert!(
            all.starts_with(&format!("HTTP/1.1 {expected}")),
            "h1 {values:?}: {all:?}"
        );
        // h2 through hyper.
        let reply = common::request_h2c_with(
            server.addr,
            JWKS,
            &values
                .iter()
                .map(|v| ("if-none-match", *v))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status.as_u16(), expected, "h2 {values:?}");
    }
}

#[tokio::test]
async fn expect_100_continue_is_answered_at_once() {
    let server = server().await;
    // The client waits for 100 or a final answer; it gets the final answer straight away, with
    // no 100, and as the body is never read the connection then closes.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "GET {JWKS} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let response = read_responses(&mut stream, 1).await;
    assert!(response[0].0.starts_with("HTTP/1.1 200 OK"), "{response:?}");
    assert!(response[0].0.contains("connection: close"), "{response:?}");
    assert!(response[0].1.starts_with("{\"keys\":["));
    // The body sent after the answer is drained, not answered with a reset.
    stream.write_all(b"body").await.unwrap();
    let rest = read_to_close(&mut stream).await;
    assert_eq!(rest, "", "nothing after the final response");

    // Without a body, Expect changes nothing: the connection stays open.
    let request = format!(
        "GET {JWKS} HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    );
    let all = exchange(&server, request.as_bytes()).await;
    assert!(!all.contains("100 Continue"), "{all:?}");
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all:?}");
}

#[tokio::test]
async fn a_higher_minor_version_is_served_as_http_1_1() {
    let server = server().await;
    // RFC 9112 section 2.3: HTTP/1.2 is answered as HTTP/1.1 (keep-alive and Host rules too).
    let request = format!(
        "GET {JWKS} HTTP/1.2\r\nHost: h\r\n\r\nGET /healthz HTTP/1.9\r\nHost: h\r\nConnection: close\r\n\r\n"
    );
    let all = exchange(&server, request.as_bytes()).await;
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all:?}");
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all:?}");
    assert!(all.contains("{\"keys\":["), "{all:?}");
    // Split across writes, the rewrite waits for the whole head.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for part in [
        format!("GET {JWKS} HTT"),
        "P/1.2\r\nHo".to_owned(),
        "st: h\r\nConnection: close\r\n\r\n".to_owned(),
    ] {
        stream.write_all(part.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = read_to_close(&mut stream).await;
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all:?}");
    // Other major versions are still 505.
    for version in ["HTTP/2.0", "HTTP/0.9", "HTTP/1.10"] {
        let all = exchange(
            &server,
            format!("GET / {version}\r\nHost: h\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(
            all.starts_with("HTTP/1.1 505") || all.starts_with("HTTP/1.1 400"),
            "{version}: {all:?}"
        );
    }
}

#[tokio::test]
async fn a_fragment_in_the_target_is_not_part_of_the_path() {
    // Clients never send a fragment (RFC 9112 section 3.2); one that does means the path
    // before it, as hyper reads it (found by tests/it/differential.rs).
    let server = server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            format!("GET {JWKS}#keys HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let all = read_to_close(&mut stream).await;
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all}");
    assert!(all.contains("{\"keys\":["), "{all}");
}

#[tokio::test]
async fn a_target_of_no_form_is_refused() {
    // RFC 9112 section 3.2: origin form, absolute form (with a real scheme) or `*`; the authority
    // form is for CONNECT to a proxy. Anything else is 400, as hyper does (found by
    // tests/it/differential.rs: these used to be routed, the first even to the JWKS).
    let server = server().await;
    for target in [
        format!(":http://h{JWKS}"),
        format!("http;//h{JWKS}"),
        "h.example:443".to_owned(),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let all = read_to_close(&mut stream).await;
        assert!(
            all.starts_with("HTTP/1.1 400 Bad Request"),
            "{target}: {all}"
        );
    }
}
