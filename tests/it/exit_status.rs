//! The exit status table of README.md ("Exit status"), row by row, through the binary: what the
//! user gave exits 2, what happened at run time 1, publish's bucket 3 (and 4 in `mirror::`).

use crate::common;

use std::process::{Command, Output};

use issuerd::app::exit;

fn issuerd(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_issuerd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ISSUERD_") {
            command.env_remove(name);
        }
    }
    command.args(args).env("NO_COLOR", "1").output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The README's table: (status, meaning).
fn readme_rows() -> Vec<(u8, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table = readme
        .split("| status | meaning |")
        .nth(1)
        .expect("README has the exit status table");
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            (cells[0].parse().unwrap(), cells[1].to_owned())
        })
        .collect()
}

#[test]
fn the_readme_table_is_the_code_s() {
    let rows = readme_rows();
    let statuses: Vec<u8> = rows.iter().map(|(status, _)| *status).collect();
    assert_eq!(
        statuses,
        [
            0,
            exit::FAILURE,
            exit::USAGE,
            exit::BUCKET,
            exit::NOT_PUBLIC
        ]
    );
    assert!(rows[3].1.contains("publish") && rows[4].1.contains("publish"));
}

#[test]
fn row_0_done() {
    let dir = tempfile::tempdir().unwrap();
    let output = issuerd(&[
        "render",
        "--issuer",
        "https://issuer.example",
        "--key-file",
        common::key("ec256.pub.pem").to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn row_1_runtime_failures() {
    // Held (bound, not listening) until the test ends: connections to it are refused.
    let (_socket, port) = common::refusing_port();
    let refusing = format!("http://127.0.0.1:{port}");
    let key = common::key("ec256.pkcs8.pem");
    let token = issuerd(&[
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--issuer",
        &refusing,
        "--subject",
        "ns/app",
    ]);
    assert_eq!(token.status.code(), Some(0), "{}", stderr(&token));
    let token = String::from_utf8(token.stdout).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for (what, args) in [
        (
            "an issuer that cannot be reached",
            vec![
                "verify",
                token.trim(),
                "--issuer",
                &refusing,
                "--allow-insecure",
            ],
        ),
        (
            "check found a failure",
            vec!["check", "--allow-insecure", &refusing],
        ),
        (
            "a probe got no 200",
            vec!["probe", &format!("{refusing}/healthz")],
        ),
        (
            "a socket cannot be bound",
            vec![
                "serve",
                "--issuer",
                "https://issuer.example",
                "--key-file",
                common::key("ec256.pub.pem").to_str().unwrap(),
                "--listen",
                &taken,
            ],
        ),
    ] {
        let output = issuerd(&args);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", stderr(&output));
    }
}

#[test]
fn row_2_usage_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tls = common::ca::Ca::new().leaf(&["localhost"], 1, (-1, 30));
    tls.write(dir.path());
    let other = common::ca::Ca::new().leaf(&["localhost"], 2, (-1, 30));
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.key).unwrap();
    let pub_key = common::key("ec256.pub.pem");
    let pub_key = pub_key.to_str().unwrap();
    let signing_key = common::key("ec256.pkcs8.pem");
    let cert = dir.path().join("tls.crt");
    for (what, args, needle) in [
        (
            "an unknown flag",
            vec!["serve", "--no-such-flag"],
            "--no-such-flag",
        ),
        (
            "a key file that cannot be used",
            vec![
                "render",
                "--issuer",
                "https://i.example",
                "--key-file",
                "/nonexistent",
                "--out",
                "/tmp",
            ],
            "/nonexistent",
        ),
        (
            "a TLS pair that does not match",
            vec![
                "serve",
                "--issuer",
                "https://i.example",
                "--key-file",
                pub_key,
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                other_key.to_str().unwrap(),
            ],
            "does not match",
        ),
        (
            "a malformed --subject",
            vec![
                "mint",
                "--key",
                signing_key.to_str().unwrap(),
                "--issuer",
                "https://i.example",
                "--subject",
                "app",
            ],
            "--subject \"app\"",
        ),
        (
            "an http:// thumbprint URL",
            vec!["thumbprint", "http://issuer.example"],
            "https://",
        ),
        (
            "a probe URL that is not http(s)",
            vec!["probe", "ftp://issuer.example/healthz"],
            "only http://",
        ),
        (
            "an unusable --ca-file",
            vec![
                "check",
                "--ca-file",
                "/nonexistent.pem",
                "https://i.example",
            ],
            "/nonexistent.pem",
        ),
    ] {
        let output = issuerd(&args);
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{what}: {error}");
        assert!(error.contains(needle), "{what}: {needle:?} not in {error}");
    }
}

#[test]
fn row_3_publish_cannot_reach_the_bucket() {
    let (_socket, port) = common::refusing_port();
    let output = issuerd(&[
        "publish",
        "--issuer",
        "https://issuer.example",
        "--key-file",
        common::key("ec256.pub.pem").to_str().unwrap(),
        "--mirror",
        "s3://bucket/prefix",
        "--s3-endpoint",
        &format!("http://127.0.0.1:{port}"),
        "--s3-region",
        "us-east-1",
    ]);
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::BUCKET)),
        "{}",
        stderr(&output)
    );
}
