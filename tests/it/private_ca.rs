//! An issuer behind a private CA (made here, trusted by nothing on this machine): every client
//! issuerd makes (`check`, `verify`, `sts`, `probe`, `thumbprint`) accepts it with `--ca-file`,
//! refuses it without (saying to pass `--ca-file`), and refuses it with an unrelated CA; the STS
//! beside `serve --tls-cert` trusts the certificate served without any flag.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::KillOnDrop;
use common::ca::Ca;

/// `issuerd serve --dev` over HTTPS with a leaf of `ca` (and `extra` flags), as a child.
struct DevIssuer {
    _child: KillOnDrop,
    issuer: String,
    /// The dev signing key (private, from the banner).
    key: PathBuf,
    /// The STS beside it, with `--sts-listen`.
    sts: Option<SocketAddr>,
    /// The demo token of the STS, with `--sts-listen`.
    token_file: Option<PathBuf>,
}

impl DevIssuer {
    fn start(dir: &Path, ca: &Ca, extra: &[&str]) -> Self {
        ca.leaf(&["localhost", "127.0.0.1"], 7, (-1, 30)).write(dir);
        let mut child = KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_issuerd"))
                .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--tls-cert"])
                .arg(dir.join("tls.crt"))
                .arg("--tls-key")
                .arg(dir.join("tls.key"))
                .args(extra)
                .env_remove("ISSUERD_CONFIG")
                .env("NO_COLOR", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let with_sts = extra.contains(&"--sts-listen");
        let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
        let (mut issuer, mut key, mut sts, mut token_file) = (None, None, None, None);
        let mut banner = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            let field = |name: &str| line.trim().strip_prefix(name).map(str::trim);
            if let Some(value) = field("issuer:") {
                issuer = Some(value.to_owned());
            }
            if let Some(value) = field("signing key:") {
                key = Some(PathBuf::from(value.split(' ').next().unwrap()));
            }
            if let Some(value) = line.strip_prefix("export AWS_ENDPOINT_URL_STS=http://") {
                sts = Some(value.parse().unwrap());
            }
            if let Some(value) = line.strip_prefix("export AWS_WEB_IDENTITY_TOKEN_FILE=") {
                token_file = Some(PathBuf::from(value));
            }
            if key.is_some() && (!with_sts || line.starts_with("export KEY=")) {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            _child: child,
            issuer: issuer.unwrap_or_else(|| panic!("no issuer in the banner:\n{banner}")),
            key: key.unwrap_or_else(|| panic!("no key in the banner:\n{banner}")),
            sts,
            token_file,
        }
    }
}

/// Runs `issuerd args...`, with no CA of the machine's environment in the way.
fn issuerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(args)
        .env_remove("ISSUERD_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The CA in `dir/ca.pem`, and an unrelated one in `dir/other.pem`.
fn ca_files(dir: &Path, ca: &Ca) -> (String, String) {
    let (own, other) = (dir.join("ca.pem"), dir.join("other.pem"));
    std::fs::write(&own, ca.pem()).unwrap();
    std::fs::write(&other, Ca::new().pem()).unwrap();
    (own.display().to_string(), other.display().to_string())
}

#[test]
fn check_verify_probe_and_thumbprint_trust_a_private_ca_given_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (own, other) = ca_files(dir.path(), &ca);
    let server = DevIssuer::start(dir.path(), &ca, &[]);
    let issuer = server.issuer.as_str();

    // check: refused without, accepted with, refused with another CA.
    let without = issuerd(&["check", issuer]);
    assert_eq!(without.status.code(), Some(1), "{}", text(&without));
    assert!(
        text(&without).contains("UnknownIssuer"),
        "{}",
        text(&without)
    );
    assert!(text(&without).contains("--ca-file"), "{}", text(&without));
    let with = issuerd(&["check", "--ca-file", &own, issuer]);
    assert_eq!(with.status.code(), Some(0), "{}", text(&with));
    let wrong = issuerd(&["check", "--ca-file", &other, issuer]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("nor by one in --ca-file"),
        "{}",
        text(&wrong)
    );
    // The env variable works as the flag does.
    let env = Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["check", issuer])
        .env("ISSUERD_CA_FILE", &own)
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(0), "{}", text(&env));
    // No ERROR line of the platform verifier besides the one error.
    assert!(
        !String::from_utf8_lossy(&without.stderr).contains("rustls_platform_verifier"),
        "{}",
        text(&without)
    );

    // verify: a token signed with the dev key.
    let token = dir.path().join("token");
    let minted = issuerd(&[
        "mint",
        "--key",
        server.key.to_str().unwrap(),
        "--issuer",
        issuer,
        "--subject",
        "ns/app",
        "--out",
        token.to_str().unwrap(),
    ]);
    assert!(minted.status.success(), "{}", text(&minted));
    let token_arg = format!("@{}", token.display());
    let verify = |ca: Option<&str>| {
        let mut args = vec!["verify", &token_arg, "--issuer", issuer];
        if let Some(ca) = ca {
            args.extend(["--ca-file", ca]);
        }
        issuerd(&args)
    };
    let without = verify(None);
    assert_eq!(without.status.code(), Some(1), "{}", text(&without));
    assert!(text(&without).contains("--ca-file"), "{}", text(&without));
    let with = verify(Some(&own));
    assert_eq!(with.status.code(), Some(0), "{}", text(&with));
    assert_eq!(verify(Some(&other)).status.code(), Some(1));

    // probe: any certificate without --ca-file (kubelet's way); verified with it.
    let healthz = format!("{issuer}/healthz");
    assert_eq!(issuerd(&["probe", &healthz]).status.code(), Some(0));
    let with = issuerd(&["probe", "--ca-file", &own, &healthz]);
    assert_eq!(with.status.code(), Some(0), "{}", text(&with));
    let wrong = issuerd(&["probe", "--ca-file", &other, &healthz]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));

    // thumbprint: says whether the chain verifies to the --ca-file CA.
    let verdict = |ca: &str| {
        let output = issuerd(&["thumbprint", "--json", "--ca-file", ca, issuer]);
        assert!(output.status.success(), "{}", text(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["trust"]["publicly_trusted"], false, "{report}");
        report["trust"]["ca_file"]["trusted"].clone()
    };
    assert_eq!(verdict(&own), true);
    assert_eq!(verdict(&other), false);
}

#[test]
fn a_ca_file_that_cannot_be_used_is_a_usage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let key_pem = dir.path().join("key.pem");
    std::fs::copy(common::key("ec256.pkcs8.pem"), &key_pem).unwrap();
    for (file, reason) in [
        ("/nonexistent/ca.pem", "cannot read it"),
        (not_pem.to_str().unwrap(), "no PEM CERTIFICATE block"),
        (key_pem.to_str().unwrap(), "not CERTIFICATE"),
    ] {
        let output = issuerd(&["check", "--ca-file", file, "https://issuer.example"]);
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(file) && stderr.contains(reason), "{stderr}");
    }
}

/// `AssumeRoleWithWebIdentity` with the token in `token_file` for the demo role; the answer.
fn assume_role(sts: SocketAddr, token_file: &Path, role: &str) -> (u16, String) {
    let token = std::fs::read_to_string(token_file).unwrap();
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={role}\
         &RoleSessionName=private-ca&WebIdentityToken={}",
        token.trim()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("http://{sts}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    })
}

const DEMO_ROLE: &str = "arn:aws:iam::111122223333:role/issuerd-dev";

#[test]
fn the_sts_beside_serve_trusts_the_certificate_it_serves_without_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let server = DevIssuer::start(dir.path(), &ca, &["--sts-listen", "127.0.0.1:0"]);
    assert!(server.issuer.starts_with("https://"), "{}", server.issuer);
    let (status, body) = assume_role(
        server.sts.unwrap(),
        server.token_file.as_ref().unwrap(),
        DEMO_ROLE,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<AccessKeyId>ASIA"), "{body}");
}

#[test]
fn the_standalone_sts_trusts_a_private_ca_given_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    let (own, other) = ca_files(dir.path(), &ca);
    // The issuer, and a token for the demo role's ServiceAccount signed with its key.
    let server = DevIssuer::start(dir.path(), &ca, &[]);
    let token = dir.path().join("token");
    let minted = issuerd(&[
        "mint",
        "--key",
        server.key.to_str().unwrap(),
        "--issuer",
        &server.issuer,
        "--subject",
        "default/demo",
        "--out",
        token.to_str().unwrap(),
    ]);
    assert!(minted.status.success(), "{}", text(&minted));
    let policy = issuerd(&[
        "trust-policy",
        "--issuer",
        &server.issuer,
        "--account",
        "111122223333",
        "--service-account",
        "default/demo",
    ]);
    assert!(policy.status.success(), "{}", text(&policy));
    let policy: serde_json::Value = serde_json::from_slice(&policy.stdout).unwrap();
    let roles = dir.path().join("roles.json");
    std::fs::write(
        &roles,
        serde_json::json!({
            "OpenIDConnectProviders": [{"Url": server.issuer, "ClientIDList": ["sts.amazonaws.com"]}],
            "Roles": [{"Arn": DEMO_ROLE, "MaxSessionDuration": 3600, "AssumeRolePolicyDocument": policy}],
        })
        .to_string(),
    )
    .unwrap();
    let sts = |ca: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_issuerd"));
        command
            .args(["sts", "--listen", "127.0.0.1:0", "--roles"])
            .arg(&roles)
            .env_remove("ISSUERD_CA_FILE")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(ca) = ca {
            command.args(["--ca-file", ca]);
        }
        let mut child = KillOnDrop(command.spawn().unwrap());
        let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| common::logged_address(&line, "STS ready"))
            .expect("the STS logs the address it listens on");
        std::thread::spawn(move || lines.for_each(drop));
        (child, addr)
    };
    let (_with, addr) = sts(Some(&own));
    let (status, body) = assume_role(addr, &token, DEMO_ROLE);
    assert_eq!(status, 200, "{body}");
    let (_without, addr) = sts(None);
    let (status, body) = assume_role(addr, &token, DEMO_ROLE);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("IDPCommunicationError") && body.contains("--ca-file"),
        "{body}"
    );
    let (_wrong, addr) = sts(Some(&other));
    let (status, body) = assume_role(addr, &token, DEMO_ROLE);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("IDPCommunicationError"), "{body}");
}
