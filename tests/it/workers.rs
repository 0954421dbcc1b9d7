//! `serve --workers`: the issuer listener on worker threads of their own, each accepting on its own
//! `SO_REUSEPORT` socket (the default), or on the shared runtime. What a worker did is read from
//! its thread's `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{self, KillOnDrop, key};

const JWKS: &str = "/openid/v1/jwks";

struct Serving {
    child: KillOnDrop,
    addr: SocketAddr,
    /// The admin listener, when `--admin-listen` was given.
    admin: Option<SocketAddr>,
}

fn serve(workers: &str) -> Serving {
    serve_with(workers, &[])
}

/// `issuerd serve` of the fixture key on 127.0.0.1:0, with `args`.
fn serve_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_issuerd"));
    command
        .args(["serve", "--issuer", "https://h.example"])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--key-file")
        .arg(key("ec256.pub.pem"))
        .args(args)
        .env_remove("ISSUERD_CONFIG")
        .env_remove("ISSUERD_WORKERS");
    command
}

fn serve_with(workers: &str, extra: &[&str]) -> Serving {
    let mut child = KillOnDrop(
        serve_command(&["--workers", workers])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let mut admin = None;
    let wants_admin = extra.contains(&"--admin-listen");
    let mut addr = None;
    while addr.is_none() || (wants_admin && admin.is_none()) {
        let Some(Ok(line)) = lines.next() else {
            panic!("issuerd exited before ready:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        admin = admin.or(common::logged_address(&line, "admin listener ready"));
        addr = addr.or(common::ready_address(&line));
    }
    let addr = addr.unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    Serving { child, addr, admin }
}

impl Serving {
    /// The worker threads (`issuerd-io-N`) by name, with the CPU time each has used so far.
    fn workers(&self) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.0.id())).unwrap() {
            let task = task.unwrap().path();
            let name = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            let name = name.trim();
            if !name.starts_with("issuerd-io-") {
                continue;
            }
            let schedstat = std::fs::read_to_string(task.join("schedstat")).unwrap();
            let on_cpu_ns = schedstat
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
            found.push((name.to_owned(), on_cpu_ns));
        }
        found.sort();
        found
    }

    fn stop(mut self) {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(self.child.0.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let status = self.child.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// One GET of the JWKS on a new connection: the status line and the body.
async fn get(addr: SocketAddr) -> (String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {JWKS} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let end = common::find(&answer, b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    (
        head.lines().next().unwrap().to_owned(),
        answer[end..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_spread_over_the_workers_threads() {
    let server = serve("3");
    // A thread names itself once it runs: wait for all three.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.workers().len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = server.workers();
    let names: Vec<&str> = before.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["issuerd-io-0", "issuerd-io-1", "issuerd-io-2"]);
    let (status, body) = get(server.addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    // 90 connections from as many source ports: the kernel's SO_REUSEPORT hash sends some to
    // every worker (all three starved of all 90 has a chance of 3 * (2/3)^90 ~ 4e-16).
    let started = std::time::Instant::now();
    let answers = futures::future::join_all((0..90).map(|_| get(server.addr))).await;
    for (status, answer) in &answers {
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(answer, &body);
    }
    let after = server.workers();
    let took = started.elapsed();
    // Idle, a worker wakes a few times a second for a few microseconds (its connections'
    // deadlines); serving 30 connections (accept, read, answer, close) takes it far longer.
    let idle = server.workers();
    std::thread::sleep(took);
    let idle: Vec<u64> = server
        .workers()
        .iter()
        .zip(&idle)
        .map(|((_, now), (_, was))| now - was)
        .collect();
    let busiest_idle = idle.iter().copied().max().unwrap();
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        let used = now - was;
        assert!(
            used >= 300_000 && used >= 5 * busiest_idle,
            "{name} used {used} ns serving, idle workers {idle:?} ns in the same time: it \
             served next to nothing"
        );
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_serves_from_the_runtime_without_worker_threads() {
    let server = serve("shared");
    let (status, body) = get(server.addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.starts_with(b"{\"keys\":["));
    assert!(server.workers().is_empty(), "{:?}", server.workers());
    server.stop();
}

#[test]
fn a_workers_value_it_cannot_use_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("issuerd.toml"),
        "[server]\nworkers = 2000\n",
    )
    .unwrap();
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut command = serve_command(args);
        command.current_dir(dir.path());
        if let Some((k, v)) = env {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (args, env, needle) in [
        (&["--workers", "0"][..], None, "workers"),
        (&[][..], Some(("ISSUERD_WORKERS", "two")), "\"two\""),
        (&["--config", "issuerd.toml"][..], None, "2000"),
    ] {
        let (code, stderr) = run(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("auto") && stderr.contains("shared"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_cap_is_one_for_all_workers() {
    // 4 connections for 3 workers: a cap of 4 in all, not 4 (or 2, rounded up) each.
    let server = serve_with(
        "3",
        &["--max-connections", "4", "--admin-listen", "127.0.0.1:0"],
    );
    let admin = server.admin.expect("the admin listener's address");
    let open = || async move {
        let text = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("issuerd_open_connections{tls=\"false\"} "))
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    // Twelve silent connections: at the cap, each new one reclaims one that never sent a
    // request, whichever worker holds it.
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let now = open().await;
    assert!(
        (1..=4).contains(&now),
        "{now} connections open for a cap of 4"
    );
    // And the cap still serves.
    drop(held);
    let (status, _) = get(server.addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.stop();
}
