//! The binary as users run it: exit codes and `error:` lines, `render`, `serve --dev`, config
//! precedence, SIGTERM.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{golden, key};
use issuerd::config::{Command as Cmd, Config};

fn issuerd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_issuerd"));
    command.env_remove("ISSUERD_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("ISSUERD_") {
            command.env_remove(name);
        }
    }
    command
}

fn run_expecting_usage_error(args: &[&str], expected: &[&str]) {
    let output = issuerd().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{args:?}: {stderr}");
    for needle in expected {
        assert!(
            error_lines[0].contains(needle),
            "{args:?}: {needle:?} not in {stderr}"
        );
    }
}

#[test]
fn refused_key_files_exit_2_naming_file_and_reason() {
    for (file, reason) in [
        ("bad/rsa1024.pem", "at least 2048"),
        ("bad/encrypted.pem", "encrypted"),
        ("bad/empty.pem", "empty"),
        ("bad/ed25519.pem", "Ed25519"),
        ("missing.pem", "No such file"),
    ] {
        let path = key(file).display().to_string();
        for command in ["serve", "render"] {
            let mut args = vec![
                command,
                "--issuer",
                "https://h.example",
                "--key-file",
                &path,
            ];
            if command == "render" {
                args.extend(["--out", "/tmp/issuerd-never-written"]);
            } else {
                args.extend(["--listen", "127.0.0.1:0"]);
            }
            run_expecting_usage_error(&args, &[file, reason]);
        }
    }
}

#[test]
fn bad_config_exits_2() {
    let k = key("ec256.pub.pem").display().to_string();
    run_expecting_usage_error(&["serve", "--key-file", &k], &["issuer is required"]);
    run_expecting_usage_error(
        &["serve", "--issuer", "http://h.example", "--key-file", &k],
        &["must use https"],
    );
    run_expecting_usage_error(
        &[
            "serve",
            "--issuer",
            "https://h.example?a=b",
            "--key-file",
            &k,
        ],
        &["query"],
    );
    run_expecting_usage_error(
        &["serve", "--issuer", "https://h.example"],
        &["key source is required"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "issuer = \"https://h\"\nkey_file = []\n").unwrap();
    run_expecting_usage_error(
        &["serve", "--config", file.to_str().unwrap()],
        &["c.toml", "unknown field `key_file`"],
    );
    let output = issuerd()
        .args(["serve", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn render_writes_the_bucket_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "render".to_owned(),
        "--issuer".into(),
        "https://issuer.example.com/clusters/a".into(),
        "--out".into(),
        tmp.path().display().to_string(),
    ];
    for k in ["rsa2048", "rsa3072", "rsa4096", "ec256", "ec384", "ec521"] {
        args.push("--key-file".into());
        args.push(key(&format!("{k}.pkcs8.pem")).display().to_string());
    }
    let output = issuerd().args(&args).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let discovery = std::fs::read(
        tmp.path()
            .join("clusters/a/.well-known/openid-configuration"),
    )
    .unwrap();
    let jwks = std::fs::read(tmp.path().join("clusters/a/openid/v1/jwks")).unwrap();
    assert_eq!(discovery, golden("all", "discovery.json"));
    assert_eq!(jwks, golden("all", "jwks.json"));
}

#[test]
fn version_is_printed() {
    let output = issuerd().arg("--version").output().unwrap();
    assert!(output.status.success());
    // The git revision follows (tests/it/deploy.rs checks it).
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!("issuerd {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
}

/// Runs a server process, waits for a stdout/stderr line containing `ready`, returns it with the
/// address parsed from the log line `listen=ADDR`.
struct Process {
    child: common::KillOnDrop,
    addr: std::net::SocketAddr,
    stdout: String,
}

fn spawn_serve(args: &[&str]) -> Process {
    let mut child = common::KillOnDrop(
        issuerd()
            .arg("serve")
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(ready) = common::ready_address(&line) {
            addr = Some(ready);
            break;
        }
    }
    let addr = addr.expect("server never logged ready");
    Process {
        child,
        addr,
        stdout: String::new(),
    }
}

impl Process {
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = self.stdout;
                std::io::Read::read_to_string(&mut self.child.stdout.take().unwrap(), &mut out)
                    .unwrap();
                return (status, out);
            }
            assert!(Instant::now() < deadline, "server did not exit on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test]
async fn dev_mode_needs_nothing_and_serves_a_private_key_in_a_private_dir() {
    let process = spawn_serve(&["--dev", "--listen", "127.0.0.1:0"]);
    let addr = process.addr;
    let discovery = common::get(addr, "/.well-known/openid-configuration")
        .await
        .unwrap();
    assert_eq!(discovery.status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&discovery.body).unwrap();
    assert_eq!(doc["issuer"], format!("http://{addr}"));
    assert_eq!(doc["jwks_uri"], format!("http://{addr}/openid/v1/jwks"));
    let jwks: serde_json::Value =
        serde_json::from_slice(&common::get(addr, "/openid/v1/jwks").await.unwrap().body).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert!(jwks["keys"][0].get("d").is_none());

    let (status, stdout) = process.terminate();
    assert!(status.success(), "{status}");
    assert!(stdout.contains(&format!("http://{addr}")), "{stdout}");
    assert!(stdout.contains("curl"), "{stdout}");
    // The key path was printed; it was 0600 in a 0700 dir and is gone after exit.
    let key_line = stdout.lines().find(|l| l.contains("signing key:")).unwrap();
    let key_path = key_line.split_whitespace().nth(2).unwrap();
    assert!(key_path.contains("issuerd-dev-"), "{key_line}");
    assert!(
        !std::path::Path::new(key_path).exists(),
        "dev key left behind"
    );
}

#[tokio::test]
async fn dev_key_is_private_while_running() {
    use std::os::unix::fs::PermissionsExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Cmd::Serve(config) = Config::from_args(["issuerd", "serve", "--dev"])
        .unwrap()
        .command
    else {
        unreachable!("serve arguments make a serve config")
    };
    // --dev is described by the configuration and carried out by the app: no key exists yet,
    // and the issuer will name the address of the listener it is served on.
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert!(config.dev);
    assert!(config.key_files.is_empty());
    assert!(config.issuer.fixed().is_none());
    let bound = listener.local_addr().unwrap();
    assert_eq!(
        config.issuer.publication(bound).unwrap().issuer.url(),
        format!("http://{bound}")
    );
    let server = common::TestServer::start_with(listener, config).await;
    let status: serde_json::Value =
        serde_json::from_slice(&common::get(server.addr, "/statusz").await.unwrap().body).unwrap();
    assert_eq!(status["kids"].as_array().unwrap().len(), 1);
    let kid = status["kids"][0].as_str().unwrap().to_owned();
    // This server's directory is among the dev-key directories (the one whose key has the kid
    // served), and every one is private. Others (of tests running alongside in this process or
    // another) may vanish while they are read.
    let dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("issuerd-dev-"))
        .collect();
    let own = dirs
        .iter()
        .map(|dir| dir.path())
        .find(|dir| {
            issuerd::keys::KeySet::load(&[dir.join("sa.key")])
                .is_ok_and(|set| set.kids().any(|k| k == kid))
        })
        .unwrap_or_else(|| panic!("no dev-key directory holds the served key {kid}: {dirs:?}"));
    for dir in dirs {
        let meta = match dir.metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.path() != own => continue,
            meta => meta.unwrap(),
        };
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o700,
            "{}",
            dir.path().display()
        );
        match std::fs::metadata(dir.path().join("sa.key")) {
            Ok(meta) => assert_eq!(meta.permissions().mode() & 0o777, 0o600),
            Err(e) => assert!(dir.path() != own, "{}: {e}", own.display()),
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sigterm_exits_zero() {
    let k = key("ec256.pub.pem").display().to_string();
    let process = spawn_serve(&[
        "--issuer",
        "https://h.example",
        "--key-file",
        &k,
        "--listen",
        "127.0.0.1:0",
    ]);
    let reply = common::get(process.addr, "/openid/v1/jwks").await.unwrap();
    assert_eq!(reply.status, 200);
    let (status, _) = process.terminate();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn precedence_is_flags_then_file_then_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("k.pem")).unwrap();
    let file = tmp.path().join("issuerd.toml");
    std::fs::write(
        &file,
        "issuer = \"https://from-file.example\"\nkey_files = [\"k.pem\"]\nmax_age = 60\ndiscovery_profile = \"kops\"\n[server]\nlisten = \"127.0.0.1:9999\"\n[watch]\ndebounce = \"1s\"\n",
    )
    .unwrap();
    let config_path = file.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["issuerd", "serve", "--config", config_path];
        args.extend_from_slice(extra);
        match Config::from_args(args).unwrap().command {
            Cmd::Serve(serve) => serve,
            _ => unreachable!(),
        }
    };
    let from_file = serve(&[]);
    let publication = |serve: &issuerd::config::ServeConfig| serve.issuer.fixed().unwrap().clone();
    assert_eq!(
        publication(&from_file).issuer.url(),
        "https://from-file.example"
    );
    assert_eq!(publication(&from_file).max_age_secs, 60);
    assert_eq!(from_file.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(from_file.key_files, vec![tmp.path().join("k.pem")]);
    assert_eq!(from_file.watch.debounce, Duration::from_secs(1));
    assert_eq!(from_file.watch.poll_interval, Duration::from_secs(60));
    let flags = serve(&[
        "--issuer",
        "https://from-flag.example",
        "--max-age",
        "5",
        "--debounce",
        "20ms",
    ]);
    assert_eq!(
        publication(&flags).issuer.url(),
        "https://from-flag.example"
    );
    assert_eq!(publication(&flags).max_age_secs, 5);
    assert_eq!(flags.watch.debounce, Duration::from_millis(20));
    assert_eq!(flags.listen.to_string(), "127.0.0.1:9999");
}

#[test]
fn env_sits_between_flags_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("issuerd.toml");
    std::fs::write(
        &file,
        "issuer = \"https://from-file.example\"\nmax_age = 60\n",
    )
    .unwrap();
    let k = key("ec256.pub.pem").display().to_string();
    let render_dir = tmp.path().join("out");
    let run = |extra: &[&str]| {
        let mut command = issuerd();
        command
            .args(["render", "--config", file.to_str().unwrap(), "--out"])
            .arg(&render_dir)
            .args(extra)
            .env("ISSUERD_ISSUER", "https://from-env.example")
            .env("ISSUERD_KEY_FILE", &k);
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let doc = std::fs::read(render_dir.join(".well-known/openid-configuration")).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        doc["issuer"].as_str().unwrap().to_owned()
    };
    assert_eq!(run(&[]), "https://from-env.example");
    assert_eq!(
        run(&["--issuer", "https://from-flag.example"]),
        "https://from-flag.example"
    );
}

#[test]
fn the_documented_config_file_parses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/issuerd.toml");
    let config =
        Config::from_args(["issuerd", "serve", "--config", path.to_str().unwrap()]).unwrap();
    let Cmd::Serve(serve) = config.command else {
        unreachable!()
    };
    // Every value the file shows is the default (examples are commented out).
    assert_eq!(
        serve.issuer.fixed().unwrap().max_age_secs,
        issuerd::config::DEFAULT_MAX_AGE_SECS
    );
    assert_eq!(serve.watch.debounce, issuerd::config::DEFAULT_DEBOUNCE);
    assert_eq!(
        serve.watch.poll_interval,
        issuerd::config::DEFAULT_POLL_INTERVAL
    );
    assert_eq!(serve.listen.to_string(), issuerd::config::DEFAULT_LISTEN);
    assert_eq!(serve.timeouts, issuerd::server::Timeouts::DEFAULT);
    assert_eq!(
        serve.h2_handshake,
        issuerd::server::limits::DEFAULT_H2_HANDSHAKE
    );
    assert_eq!(serve.backlog, issuerd::config::DEFAULT_BACKLOG);
    assert_eq!(
        serve.shutdown.grace,
        issuerd::config::DEFAULT_SHUTDOWN_GRACE
    );
    assert!(serve.shutdown.drain_delay.is_zero());
    assert!(!serve.access_log && !serve.mirror_required);
    assert!(serve.tls.is_none() && serve.acme.is_none() && serve.mirror.is_none());
    assert!(serve.sts.is_none() && serve.admin_listen.is_none());
}

#[test]
fn an_old_flat_config_key_is_refused_naming_its_new_table() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("old.toml");
    std::fs::write(
        &file,
        "issuer = \"https://h.example\"\nkey_files = [\"k.pem\"]\nkeep_alive_timeout = \"5s\"\n",
    )
    .unwrap();
    run_expecting_usage_error(
        &["serve", "--config", file.to_str().unwrap()],
        &[
            "old.toml",
            "line 3",
            "`keep_alive_timeout` has moved",
            "`keep_alive = ...` under `[timeouts]`",
        ],
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_generation_and_kids() {
    let tmp = tempfile::tempdir().unwrap();
    let k = key("ec256.pub.pem").display().to_string();
    let output = issuerd()
        .args([
            "render",
            "--log-format",
            "json",
            "--issuer",
            "https://h.example/",
        ])
        .args(["--key-file", &k, "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    // The trailing-slash warning, as a structured record.
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("ends with '/'")),
        "{stderr}"
    );
}

#[tokio::test]
async fn every_publish_is_logged_with_generation_and_kids() {
    use std::io::{BufRead as _, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pub.pem"), tmp.path().join("a.pem")).unwrap();
    let mut child = common::KillOnDrop(
        issuerd()
            .args([
                "serve",
                "--log-format",
                "json",
                "--issuer",
                "https://h.example",
            ])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--debounce",
                "10ms",
                "--key-file",
            ])
            .arg(tmp.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut next_publish = || loop {
        let line = lines.next().expect("log ended").unwrap();
        let record: serde_json::Value = serde_json::from_str(&line).unwrap();
        if record["fields"]["message"] == "published key set" {
            return record["fields"].clone();
        }
    };
    let kid = |file: &str| {
        issuerd::keys::KeySet::load(&[key(file)]).unwrap().keys()[0]
            .kid()
            .to_owned()
    };
    let first = next_publish();
    assert_eq!(first["generation"], 1);
    // Lists are JSON arrays, not Debug strings.
    assert_eq!(first["kids"], serde_json::json!([kid("ec256.pub.pem")]));
    std::fs::copy(key("ec384.pub.pem"), tmp.path().join("b.pem")).unwrap();
    let second = next_publish();
    assert_eq!(second["generation"], 2);
    assert_eq!(
        second["added"],
        serde_json::json!([kid("ec384.pub.pem")]),
        "{second}"
    );
    assert_eq!(second["removed"], serde_json::json!([]), "{second}");
    let mut both = vec![kid("ec256.pub.pem"), kid("ec384.pub.pem")];
    both.sort();
    assert_eq!(second["kids"], serde_json::json!(both), "{second}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_closed_stdout_is_not_fatal() {
    // `issuerd serve --dev | true`: the banner cannot be printed; the server keeps serving.
    let mut child = common::KillOnDrop(
        issuerd()
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    drop(child.stdout.take());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let done = line.contains("--dev banner");
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cannot print the --dev banner")),
        "{lines:#?}"
    );
    assert!(child.try_wait().unwrap().is_none(), "exited: {lines:#?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");

    // `render` writes its files; only the listing is lost.
    let tmp = tempfile::tempdir().unwrap();
    let k = key("ec256.pub.pem").display().to_string();
    let mut render = common::KillOnDrop(
        issuerd()
            .args(["render", "--issuer", "https://h.example", "--key-file", &k])
            .arg("--out")
            .arg(tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    drop(render.stdout.take());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut render.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = render.wait().unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(tmp.path().join("openid/v1/jwks").exists());
}

#[test]
fn configuration_errors_name_their_source_and_reason() {
    let k = key("ec256.pub.pem").display().to_string();
    // An unreadable config file says why.
    run_expecting_usage_error(
        &["serve", "--config", "/nonexistent.toml"],
        &["/nonexistent.toml", "No such file or directory"],
    );
    // `serve` with a valid issuer and key, plus `extra`.
    let serve = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["serve", "--issuer", "https://h.example", "--key-file", &k]
            .map(str::to_owned)
            .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let usage_error = |extra: &[&'static str], expected: &[&str]| {
        let args = serve(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_expecting_usage_error(&args, expected);
    };
    // Runs a valid `serve` with one env variable set; it must exit 2. Returns stderr.
    let with_env = |name: &str, value: &str| {
        let output = issuerd()
            .args(serve(&[]))
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        stderr
    };
    // A bad value from an env variable names the variable, not the flag.
    let stderr = with_env("ISSUERD_MAX_AGE", "soon");
    assert!(
        stderr.contains("error: ISSUERD_MAX_AGE: \"soon\" is not valid"),
        "{stderr}"
    );
    // The same value on the command line names the flag.
    usage_error(&["--max-age", "soon"], &["--max-age"]);
    // A value from an env variable that is not one of the choices lists them.
    let stderr = with_env("ISSUERD_LOG_FORMAT", "xml");
    assert!(
        stderr.contains("ISSUERD_LOG_FORMAT") && stderr.contains("human, json"),
        "{stderr}"
    );
    // Durations past a day are refused instead of overflowing deadlines.
    usage_error(
        &["--keep-alive-timeout", "9223372036854775807s"],
        &["keep_alive_timeout", "maximum"],
    );
    // `issuerd` alone prints its help, not an error.
    let output = issuerd().output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Usage:"), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
    // A listen address that is neither an IP address nor resolvable.
    usage_error(
        &["--listen", "no-such-host.invalid:8080"],
        &["listen", "no-such-host.invalid:8080", "IP address"],
    );
}

#[test]
fn boolean_env_variables_take_the_usual_spellings() {
    let k = key("ec256.pub.pem").display().to_string();
    let render = |value: &str| {
        let tmp = tempfile::tempdir().unwrap();
        issuerd()
            .args(["render", "--issuer", "http://h.example", "--key-file", &k])
            .arg("--out")
            .arg(tmp.path())
            .env("ISSUERD_ALLOW_INSECURE_ISSUER", value)
            .output()
            .unwrap()
    };
    for yes in ["1", "yes", "true", "TRUE", "Yes", "on"] {
        let output = render(yes);
        assert!(
            output.status.success(),
            "{yes}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for no in ["0", "no", "false", "off"] {
        let output = render(no);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{no}: {stderr}");
        assert!(stderr.contains("must use https"), "{no}: {stderr}");
    }
    let output = render("maybe");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: ISSUERD_ALLOW_INSECURE_ISSUER: \"maybe\" is not valid: value was not a boolean"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn listen_takes_a_host_name() {
    let k = key("ec256.pub.pem").display().to_string();
    let process = spawn_serve(&[
        "--issuer",
        "https://h.example",
        "--key-file",
        &k,
        "--listen",
        "localhost:0",
    ]);
    assert!(process.addr.ip().is_loopback(), "{}", process.addr);
    let reply = common::get(process.addr, "/healthz").await.unwrap();
    assert_eq!(reply.status, 200);
    let (status, _) = process.terminate();
    assert!(status.success());
}

#[test]
fn inputs_are_checked_before_any_socket_is_bound_and_bind_errors_name_their_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let k = key("ec256.pub.pem").display().to_string();
    // A missing key file on a taken port: the key file is the error (2), not the port.
    run_expecting_usage_error(
        &[
            "serve",
            "--issuer",
            "https://h.example",
            "--key-file",
            "/nonexistent/sa.pub",
            "--listen",
            &taken,
        ],
        &["/nonexistent/sa.pub"],
    );
    // With good inputs, the taken port names --listen and what to do.
    let output = issuerd()
        .args(["serve", "--issuer", "https://h.example", "--key-file", &k])
        .args(["--listen", &taken])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {taken} (--listen)"))
            && stderr.contains("another process listens there"),
        "{stderr}"
    );
    // The same for the admin listener.
    let output = issuerd()
        .args(["serve", "--issuer", "https://h.example", "--key-file", &k])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", &taken])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("(--admin-listen)"), "{stderr}");
}

#[test]
fn two_listeners_on_one_port_are_a_configuration_error() {
    let k = key("ec256.pub.pem").display().to_string();
    let base = ["serve", "--issuer", "https://h.example", "--key-file", &k];
    for (extra, expected) in [
        (
            [
                "--listen",
                "127.0.0.1:9090",
                "--admin-listen",
                "127.0.0.1:9090",
            ],
            "admin_listen: 127.0.0.1:9090 clashes with listen 127.0.0.1:9090",
        ),
        (
            [
                "--listen",
                "0.0.0.0:9090",
                "--admin-listen",
                "127.0.0.1:9090",
            ],
            "clashes with listen 0.0.0.0:9090",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        run_expecting_usage_error(&args, &[expected]);
    }
    // Port 0 never clashes.
    let args: Vec<&str> = base
        .iter()
        .chain(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"].iter())
        .copied()
        .collect();
    assert!(Config::from_args(std::iter::once("issuerd").chain(args)).is_ok());
}

#[test]
fn env_errors_name_the_variable_and_numbers_say_their_unit() {
    let k = key("ec256.pub.pem").display().to_string();
    let output = issuerd()
        .args(["serve", "--issuer", "https://h.example", "--key-file", &k])
        .env("ISSUERD_LISTEN", "not-an-address")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: ISSUERD_LISTEN: \"not-an-address\""),
        "{stderr}"
    );
    let output = issuerd()
        .args(["render", "--key-file", &k, "--out", "/nonexistent"])
        .env("ISSUERD_ISSUER", "http://h.example")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: ISSUERD_ISSUER: "), "{stderr}");
    // A number that reads like a duration: the unit is named, from the env and the flag.
    let render = ["render", "--issuer", "https://h.example", "--key-file", &k];
    let output = issuerd()
        .args(render)
        .args(["--out", "/nonexistent"])
        .env("ISSUERD_MAX_AGE", "1h")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ISSUERD_MAX_AGE") && stderr.contains("max-age is in seconds"),
        "{stderr}"
    );
    let mut args = render.to_vec();
    args.extend(["--out", "/nonexistent", "--max-age", "1h"]);
    run_expecting_usage_error(&args, &["--max-age", "max-age is in seconds"]);
}
