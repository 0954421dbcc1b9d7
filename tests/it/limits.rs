//! Server limits against the real server on 127.0.0.1: the connection cap (and how it reclaims
//! connections that wait for their client), descriptor
//! exhaustion under a low `ulimit -n` (no crash, no spinning core), the HTTP/2 handshake and idle
//! timeouts, GOAWAY `ENHANCE_YOUR_CALM` for a PING flood, `--drain-delay`, `--backlog`, and how
//! those settings are configured.
//! HTTP/2 is spoken in raw frames over a `TcpStream`, so that the client can misbehave.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::frame_type::{GOAWAY, PING, SETTINGS};
use common::{JWKS, KillOnDrop, TestServer, key};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use common::{H2_PREFACE as PREFACE, h2_frame as frame};

fn serve_args(extra: &[&'static str]) -> Vec<String> {
    let mut args = vec![
        "--issuer".to_owned(),
        "https://h.example".to_owned(),
        "--key-file".to_owned(),
        key("ec256.pub.pem").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

async fn start(extra: &[&'static str]) -> TestServer {
    let args = serve_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start(&args).await
}

// === raw HTTP/1.1 and HTTP/2 ===

/// A connection that has been served one request (so it is established and counted).
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert_eq!(get_on(&mut stream).await, Some(200));
    stream
}

/// Whether a new connection gets a 200.
async fn served_once(addr: SocketAddr) -> bool {
    match TcpStream::connect(addr).await {
        Ok(mut stream) => get_on(&mut stream).await == Some(200),
        Err(_) => false,
    }
}

/// GET on `stream`; the status, or `None` if the connection ended without an answer.
async fn get_on(stream: &mut TcpStream) -> Option<u16> {
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("no answer and no close within 5 s");
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let status = std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap();
    Some(status)
}

/// Reads one frame: (type, flags, payload); `None` at the end of the connection.
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.ok()?;
    let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await.ok()?;
    Some((header[3], header[4], payload))
}

/// An h2c connection after the preface and SETTINGS exchange.
async fn h2c(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    stream.write_all(&hello).await.unwrap();
    let (kind, flags, _) = read_frame(&mut stream).await.expect("server SETTINGS");
    assert_eq!((kind, flags), (SETTINGS, 0));
    stream
        .write_all(&frame(SETTINGS, 0x1, 0, &[]))
        .await
        .unwrap();
    stream
}

// === the connection cap ===

/// Whether the server closed `stream` (reads end) within 2 s; false if it is still open.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A connection whose answers the client never reads: it pipelines requests until the server
/// can no longer write, so the connection is busy writing, not waiting for its client.
async fn stalled_writer(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).await.unwrap();
    let socket = socket2::SockRef::from(&stream);
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = stream;
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n").repeat(1000);
    // Until the server stops reading (it parses nothing more while its answers wait).
    while tokio::time::timeout(
        Duration::from_millis(500),
        stream.write_all(request.as_bytes()),
    )
    .await
    .is_ok()
    {}
    stream
}

#[tokio::test]
async fn at_the_cap_silent_then_idle_connections_are_reclaimed_for_a_new_client() {
    let server = start(&["--max-connections", "3"]).await;
    let mut idle = served_connection(server.addr).await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server accept them.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A fourth client is served, in the place of a connection that never sent a request.
    let started = Instant::now();
    assert!(
        served_once(server.addr).await,
        "the fourth client was refused"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut closed = 0;
    for stream in &mut silent {
        closed += usize::from(closed_by_server(stream).await);
    }
    assert!(closed >= 1, "no silent connection was closed");
    // Once the silent ones are gone, the idle keep-alive one goes for the next client.
    for _ in 0..3 {
        assert!(served_once(server.addr).await, "a later client was refused");
    }
    assert!(
        closed_by_server(&mut idle).await,
        "the idle connection was kept"
    );
}

#[tokio::test]
async fn silent_sockets_holding_the_whole_cap_do_not_lock_out_a_new_client() {
    let server = start(&["--max-connections", "100"]).await;
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(served_once(server.addr).await, "a new client was refused");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "served after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn at_the_cap_with_no_connection_waiting_the_next_is_refused_at_once() {
    let server = start(&["--max-connections", "2"]).await;
    let busy = [
        stalled_writer(server.addr).await,
        stalled_writer(server.addr).await,
    ];
    // Accepted and closed at once: no answer, and no hang.
    let started = Instant::now();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get_on(&mut third).await, None);
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(busy);
    let addr = server.addr;
    eventually!(
        served_once(addr).await,
        "a connection was never served again after the busy ones closed"
    );
}

// === descriptor exhaustion ===

/// `issuerd serve` in its own process under `ulimit -n NOFILE` (set by the shell, not by a
/// pre_exec hook), its stderr collected.
struct Process {
    child: KillOnDrop,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

fn spawn(nofile: Option<u32>, extra: &[&'static str]) -> Process {
    let mut args = serve_args(extra);
    args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
    let bin = env!("CARGO_BIN_EXE_issuerd");
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" serve \"$@\""))
                .arg(bin);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.arg("serve");
            c
        }
    };
    let mut child = KillOnDrop(
        command
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run sh or issuerd"),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = None;
    let log = Arc::new(Mutex::new(Vec::new()));
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.lock().unwrap().push(line.clone());
        if let Some(ready) = common::ready_address(&line) {
            addr = Some(ready);
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("never ready: {:?}", log.lock().unwrap()));
    let collected = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            collected.lock().unwrap().push(line);
        }
    });
    Process { child, addr, log }
}

impl Process {
    /// CPU time (user + system) the process has used, from /proc/PID/stat.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which is in parentheses): utime is the 14th field.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = String::from_utf8(
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap();
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log_lines(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Opens `n` connections (each served once where the server can); returns them.
async fn flood_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let Ok(Ok(mut stream)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        else {
            continue;
        };
        // Best effort: a request queued in the backlog is not answered, which is the point.
        let _ = stream
            .write_all(format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .await;
        held.push(stream);
    }
    held
}

/// With 64 descriptors and a cap above them, `accept` fails with EMFILE: the server must
/// neither exit nor spin, log the failure rarely, and serve again once descriptors are free.
#[tokio::test(flavor = "multi_thread")]
async fn descriptor_exhaustion_neither_kills_nor_spins() {
    let mut process = spawn(Some(64), &["--max-connections", "1000", "--workers", "2"]);
    let held = flood_connections(process.addr, 120).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        process.log_lines("accept failed") >= 1,
        "EMFILE was never hit"
    );

    let before = process.cpu();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let used = process.cpu() - before;
    assert!(process.alive(), "the server died at the descriptor limit");
    // A spinning accept loop burns the whole window; backing off costs next to nothing.
    assert!(
        used < window / 10,
        "{used:?} of CPU in {window:?} while out of descriptors"
    );
    // The first failure, then at most one line per 10 s.
    assert!(process.log_lines("accept failed") <= 2);

    drop(held);
    let addr = process.addr;
    eventually!(
        served_once(addr).await,
        "not served again once descriptors were free"
    );
    assert!(process.terminate().success());
}

/// With the default cap (sized from the same 64 descriptors), the cap is met before the
/// descriptors run out: the extra connections are closed at once, nothing waits in the backlog.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_cap_is_sized_from_the_descriptor_limit() {
    let mut process = spawn(Some(64), &["--workers", "2"]);
    let mut held = flood_connections(process.addr, 120).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(process.alive());
    assert_eq!(process.log_lines("accept failed"), 0, "EMFILE was hit");
    // 64 descriptors: a quarter (16) kept for the rest, 8 for each of the two workers'
    // runtimes and sockets, 32 connections (16 per worker).
    assert!(process.log_lines("connection limit reached") >= 1);
    assert!(process.log_lines("max_connections=32") >= 1);
    // Every connection was answered one way or the other: a 200 or a close, no hang (those
    // served and idle were reclaimed for later ones).
    let mut served = 0;
    for stream in &mut held[..] {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a connection was left unanswered");
        if matches!(read, Ok(n) if n > 0) {
            served += 1;
        }
    }
    assert!(served >= 10, "{served} served");
    drop(held);
    assert!(process.terminate().success());
}

// === HTTP/2 ===

#[tokio::test]
async fn an_h2_client_that_never_sends_settings_is_cut_off_at_the_handshake_timeout() {
    let server = start(&["--h2-handshake-timeout", "1s"]).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    let started = Instant::now();
    // The server's SETTINGS, then nothing until it closes.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "still open after 8 s");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );

    // A client that completes the handshake is not cut off by it.
    let mut stream = h2c(server.addr).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(&frame(PING, 0, 0, &[7; 8])).await.unwrap();
    loop {
        let (kind, flags, payload) = read_frame(&mut stream).await.expect("closed");
        if kind == PING && flags == 0x1 && payload == [7; 8] {
            break;
        }
    }
}

#[tokio::test]
async fn an_idle_h2c_connection_that_answers_pings_is_closed_at_the_idle_timeout() {
    let server = start(&["--keep-alive-timeout", "2s"]).await;
    let mut stream = h2c(server.addr).await;
    let started = Instant::now();
    let mut goaway = None;
    let mut pings_answered = 0;
    let mut pings_acked = 0;
    // The client answers every PING and sends its own, as a live but idle client does.
    loop {
        let next = tokio::time::timeout(Duration::from_millis(300), read_frame(&mut stream)).await;
        match next {
            Err(_) => {
                assert!(started.elapsed() < Duration::from_secs(10), "never closed");
                stream.write_all(&frame(PING, 0, 0, &[1; 8])).await.unwrap();
            }
            Ok(None) => break,
            Ok(Some((PING, 0, payload))) => {
                pings_answered += 1;
                let _ = stream.write_all(&frame(PING, 0x1, 0, &payload)).await;
            }
            Ok(Some((PING, 0x1, _))) => pings_acked += 1,
            Ok(Some((GOAWAY, _, payload))) => goaway = Some(payload),
            Ok(Some(_)) => {}
        }
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(6),
        "closed after {elapsed:?}"
    );
    let goaway = goaway.expect("closed without GOAWAY");
    assert_eq!(&goaway[4..8], &[0, 0, 0, 0], "GOAWAY NO_ERROR");
    // The connection was live all along: the server acknowledged the client's PINGs (and any
    // PING of its own was answered).
    assert!(
        pings_acked >= 3,
        "only {pings_acked} PINGs acknowledged ({pings_answered} of the server's answered)"
    );
}

#[tokio::test]
async fn an_h2_header_block_trickled_in_is_closed_at_the_header_timeout() {
    let server = start(&["--header-timeout", "1s"]).await;
    let mut stream = h2c(server.addr).await;
    let started = Instant::now();
    // HEADERS without END_HEADERS, then a 1-byte CONTINUATION (`:method GET`) every 300 ms.
    stream
        .write_all(&frame(0x1, 0x0, 1, &[0x82]))
        .await
        .unwrap();
    let trickle = async {
        for _ in 0..14 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if stream
                .write_all(&frame(0x9, 0x0, 1, &[0x87]))
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1500), trickle).await;
    let mut goaway = false;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream)).await {
            Ok(Some((kind, _, _))) => goaway |= kind == GOAWAY,
            Ok(None) => break started.elapsed(),
            Err(_) => panic!("the connection was kept open past the header timeout"),
        }
    };
    assert!(goaway, "no GOAWAY before the close");
    assert!(closed < Duration::from_secs(4), "closed after {closed:?}");
}

/// Floods PINGs until the server answers GOAWAY; returns its error code and how many PINGs went.
async fn ping_flood(addr: SocketAddr) -> (u32, usize) {
    let stream = h2c(addr).await;
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let batch: Vec<u8> = (0..200)
            .flat_map(|i: u64| frame(PING, 0, 0, &i.to_be_bytes()))
            .collect();
        let mut sent = 0;
        while write.write_all(&batch).await.is_ok() && sent < 1_000_000 {
            sent += 200;
        }
        sent
    });
    let mut code = None;
    let mut header = [0u8; 9];
    while read.read_exact(&mut header).await.is_ok() {
        let len =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let mut payload = vec![0; len];
        if read.read_exact(&mut payload).await.is_err() {
            break;
        }
        if header[3] == GOAWAY {
            code = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
        }
    }
    let sent = writer.await.unwrap();
    (code.expect("no GOAWAY before the close"), sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_gets_goaway_enhance_your_calm_and_others_are_still_served() {
    let server = start(&[]).await;
    let addr = server.addr;
    let (code, sent) = ping_flood(addr).await;
    assert_eq!(code, 0xb, "GOAWAY ENHANCE_YOUR_CALM");
    assert!(sent < 1_000_000, "the flood was never cut off");

    // Four flooders that reconnect as soon as they are cut off, and one ordinary client.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(ping_flood(addr).await.0, 0xb);
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    // Every request of an ordinary client is answered meanwhile. (How its latency holds up is
    // measured in release builds by benches/load/attack.sh, not asserted here.)
    let mut client = served_connection(addr).await;
    for _ in 0..200 {
        assert_eq!(get_on(&mut client).await, Some(200));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for flooder in flooders {
        assert!(flooder.await.unwrap() >= 1);
    }
}

// === drain delay and backlog ===

#[tokio::test(flavor = "multi_thread")]
async fn drain_delay_keeps_serving_while_not_ready_then_exits_zero() {
    let process = spawn(None, &["--drain-delay", "2s"]);
    let addr = process.addr;
    let pid = process.child.id().to_string();
    let signalled = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut checks = 0;
    while signalled.elapsed() < Duration::from_millis(1600) {
        let ready = common::get(addr, "/readyz").await.expect("not served");
        assert_eq!(ready.status, 503);
        let jwks = common::get(addr, JWKS).await.expect("not served");
        assert_eq!(jwks.status, 200);
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checks >= 5);
    let status = process.terminate();
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn backlog_sets_the_listen_queue() {
    let server = start(&["--backlog", "77"]).await;
    let port = server.addr.port();
    // `ss` prints a listening socket's backlog in its Send-Q column.
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) is needed by this test");
    let out = String::from_utf8(out.stdout).unwrap();
    let send_q: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(send_q, ["77"], "{out}");
}

// === configuration ===

fn serve_config(extra: &[&'static str]) -> Result<issuerd::config::ServeConfig, String> {
    let args = serve_args(extra);
    let mut argv = vec!["issuerd", "serve"];
    argv.extend(args.iter().map(String::as_str));
    match issuerd::config::Config::from_args(argv) {
        Ok(config) => match config.command {
            issuerd::config::Command::Serve(serve) => Ok(serve),
            _ => unreachable!("serve arguments make a serve config"),
        },
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn limit_settings_have_defaults_take_flags_and_refuse_zero() {
    let defaults = serve_config(&[]).unwrap();
    assert_eq!(defaults.max_connections, None);
    assert_eq!(defaults.backlog, 1024);
    assert_eq!(defaults.h2_handshake, Duration::from_secs(10));
    assert_eq!(defaults.shutdown.drain_delay, Duration::ZERO);

    let set = serve_config(&[
        "--max-connections",
        "5",
        "--backlog",
        "64",
        "--h2-handshake-timeout",
        "3s",
        "--drain-delay",
        "5s",
    ])
    .unwrap();
    assert_eq!(set.max_connections, Some(5));
    assert_eq!(set.backlog, 64);
    assert_eq!(set.h2_handshake, Duration::from_secs(3));
    assert_eq!(set.shutdown.drain_delay, Duration::from_secs(5));

    for (flag, key) in [
        ("--max-connections", "max_connections"),
        ("--backlog", "backlog"),
        ("--h2-handshake-timeout", "h2_handshake_timeout"),
    ] {
        let zero = if flag.contains("timeout") { "0s" } else { "0" };
        let error = serve_config(&[flag, zero]).unwrap_err();
        assert!(error.contains(key), "{flag} 0: {error}");
    }
}
