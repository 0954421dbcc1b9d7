//! ARNs refused where they enter, as users meet it: the real binary's `pod-env --role-arn`,
//! `trust-policy --account --partition` and `sts --roles` with a malformed ARN exit 2 and say
//! what was expected; `issuerd sts` answers a `RoleArn` that is no ARN `ValidationError` and one
//! that names no role of its file `AccessDenied`, each with a hint.

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{KillOnDrop, key, start_local_issuer};
use issuerd::token::claims::Subject;
use issuerd::token::mint::{MintRequest, mint};
use issuerd::token::signing_key::SigningKey;

const FORM: &str = "expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME";

fn issuerd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(args)
        .env("ISSUERD_LOG", "off")
        .output()
        .unwrap()
}

/// The command failed with a usage error (2) and printed nothing on stdout; returns stderr.
fn usage_error(args: &[&str]) -> String {
    let output = issuerd(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed output");
    stderr
}

#[test]
fn pod_env_refuses_a_malformed_role_arn() {
    let cases = [
        // The case: the empty region's colon is missing.
        (
            "arn:aws:iam:111122223333:role/app",
            "a colon is missing before the account",
        ),
        (
            "arn:AWS:iam::111122223333:role/app",
            "partition \"AWS\" is not aws or aws followed by lowercase letters and hyphens",
        ),
        (
            "arn:aws:iam::11112222333:role/app",
            "account \"11112222333\"",
        ),
        (
            "arn:aws:iam::111122223333:user/app",
            "resource \"user/app\" is not role/[PATH/]NAME",
        ),
        (
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com",
            "is not role/[PATH/]NAME",
        ),
        ("arn:aws:iam::111122223333:role/app*", "role name \"app*\""),
        ("arn:aws:iam::111122223333:role/a b/app", "path \"/a b/\""),
    ];
    for (arn, problem) in cases {
        let stderr = usage_error(&["pod-env", "--role-arn", arn]);
        assert!(
            stderr.starts_with(&format!("error: --role-arn: role ARN {arn:?}: "))
                && stderr.contains(problem)
                && stderr.trim_end().ends_with(FORM),
            "{arn}: {stderr}"
        );
    }
    let name = "n".repeat(65);
    let stderr = usage_error(&[
        "pod-env",
        "--role-arn",
        &format!("arn:aws:iam::111122223333:role/{name}"),
    ]);
    assert!(stderr.contains("is not 1 to 64 of"), "{stderr}");
}

#[test]
fn pod_env_takes_every_partition_and_a_path() {
    for arn in [
        "arn:aws-us-gov:iam::111122223333:role/app",
        "arn:aws-cn:iam::111122223333:role/team/app",
        "arn:aws-iso-b:iam::111122223333:role/aws-service-role/x.amazonaws.com/app",
        // A partition named as AWS names them, though no SDK lists it yet.
        "arn:aws-new-partition:iam::111122223333:role/app",
    ] {
        let output = issuerd(&["pod-env", "--role-arn", arn]);
        assert!(
            output.status.success(),
            "{arn}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let yaml = String::from_utf8(output.stdout).unwrap();
        assert!(yaml.contains(&format!("value: {arn:?}")), "{yaml}");
    }
}

#[test]
fn trust_policy_refuses_a_malformed_account_or_partition() {
    let trust_policy = |account: &str, partition: &str| {
        vec![
            "trust-policy".to_owned(),
            "--issuer".into(),
            "https://oidc.example.com/prod".into(),
            "--account".into(),
            account.into(),
            "--partition".into(),
            partition.into(),
            "--service-account".into(),
            "ns/app".into(),
        ]
    };
    for account in [
        "11112222333",
        "1111222233334",
        "11112222333x",
        "",
        "arn:aws:iam::111122223333:root",
    ] {
        let args = trust_policy(account, "aws");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = usage_error(&args);
        assert!(
            stderr.contains(&format!(
                "--account: account {account:?} is not a 12-digit AWS account ID"
            )),
            "{stderr}"
        );
    }
    for partition in ["AWS", "aws_cn", "china", ""] {
        let args = trust_policy("111122223333", partition);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = usage_error(&args);
        assert!(
            stderr.contains(&format!(
                "--partition: partition {partition:?} is not aws or aws followed by lowercase \
                 letters and hyphens (aws-cn, aws-us-gov, aws-iso-b, ...)"
            )),
            "{stderr}"
        );
    }

    // The provider ARN it builds carries the partition given.
    let args = trust_policy("111122223333", "aws-us-gov");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = issuerd(&args);
    assert!(output.status.success());
    let policy: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["Federated"],
        "arn:aws-us-gov:iam::111122223333:oidc-provider/oidc.example.com/prod"
    );
}

#[test]
fn sts_refuses_a_roles_file_with_a_malformed_arn_naming_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.json");
    let allow = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRoleWithWebIdentity"}]});
    std::fs::write(
        &roles,
        serde_json::json!({
            "OpenIDConnectProviders": [{"Url": "https://oidc.example.com/prod", "ClientIDList": ["sts.amazonaws.com"]}],
            "Roles": [
                {"Arn": "arn:aws:iam::111122223333:role/good", "AssumeRolePolicyDocument": allow},
                {"Arn": "arn:aws:iam:111122223333:role/app", "AssumeRolePolicyDocument": allow},
            ]
        })
        .to_string(),
    )
    .unwrap();
    let stderr = usage_error(&[
        "sts",
        "--listen",
        "127.0.0.1:0",
        "--roles",
        roles.to_str().unwrap(),
    ]);
    assert!(
        stderr.contains(&format!(
            "roles file {}: Roles[1]: role ARN \"arn:aws:iam:111122223333:role/app\": a colon is missing",
            roles.display()
        )) && stderr.trim_end().ends_with(FORM),
        "{stderr}"
    );
}

/// `issuerd sts` (the real binary) with this roles file, and the address it logged.
fn start_sts(roles: &Path) -> (KillOnDrop, SocketAddr) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args([
                "sts",
                "--listen",
                "127.0.0.1:0",
                "--allow-insecure",
                "--roles",
            ])
            .arg(roles)
            .env_remove("ISSUERD_LOG")
            .env_remove("ISSUERD_LOG_FORMAT")
            .env_remove("ISSUERD_CA_FILE")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| common::logged_address(&line, "STS ready"))
        .expect("the STS logs the address it listens on");
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// `AssumeRoleWithWebIdentity` of `role`; returns (status, `<Code>`, unescaped `<Message>`).
async fn assume(sts: SocketAddr, role: &str, token: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{sts}/"))
        .form(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role),
            ("RoleSessionName", "arn-test"),
            ("WebIdentityToken", token),
        ])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let element = |name: &str| {
        body.split(&format!("<{name}>"))
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    if status != 200 {
        assert!(body.contains("<Type>Sender</Type>"), "{body}");
    }
    (status, element("Code"), element("Message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sts_answers_a_malformed_role_arn_validation_error_and_an_unknown_one_access_denied() {
    const ROLE: &str = "arn:aws:iam::111122223333:role/app";
    let key_file = key("ec256.pkcs8.pem").display().to_string();
    let (server, issuer) = start_local_issuer(&["--key-file", &key_file]).await;
    // The trust policy as `issuerd trust-policy` writes it.
    let policy = issuerd(&[
        "trust-policy",
        "--issuer",
        &issuer,
        "--account",
        "111122223333",
        "--service-account",
        "ns/app",
    ]);
    assert!(policy.status.success(), "{policy:?}");
    let policy: serde_json::Value = serde_json::from_slice(&policy.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.json");
    std::fs::write(
        &roles,
        serde_json::json!({
            "OpenIDConnectProviders": [{"Url": issuer, "ClientIDList": ["sts.amazonaws.com"]}],
            "Roles": [{"Arn": ROLE, "AssumeRolePolicyDocument": policy}]
        })
        .to_string(),
    )
    .unwrap();
    let (_sts, sts) = start_sts(&roles);
    let token = mint(
        &SigningKey::load(&key("ec256.pkcs8.pem")).unwrap(),
        &MintRequest {
            issuer: issuer.clone(),
            subject: Subject::parse("ns/app").unwrap(),
            audiences: vec!["sts.amazonaws.com".into()],
            ttl: Duration::from_secs(3600),
            not_before: None,
            pod: None,
            service_account_uid: None,
        },
    )
    .unwrap();

    let (status, code, message) = assume(sts, ROLE, &token).await;
    assert_eq!((status, code.as_str()), (200, ""), "{message}");

    // The ARN: no ARN at all to STS (five fields), whatever the token.
    for token in [token.as_str(), "not-a-jwt"] {
        let (status, code, message) = assume(sts, "arn:aws:iam:111122223333:role/app", token).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "ValidationError"),
            "{message}"
        );
        assert_eq!(
            message,
            "arn:aws:iam:111122223333:role/app is invalid (issuerd: a colon is missing before \
             the account (IAM ARNs have an empty region: iam::ACCOUNT); \
             expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME)"
        );
    }

    // An ARN, but no role's: AWS's AccessDenied, the hint saying why and what the file has.
    let (status, code, message) = assume(sts, "arn:aws:iam::1111:role/app", &token).await;
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "{message}");
    assert_eq!(
        message,
        format!(
            "Not authorized to perform sts:AssumeRoleWithWebIdentity (issuerd: role ARN \
             \"arn:aws:iam::1111:role/app\": account \"1111\" is not 12 digits; expected \
             arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME; the roles file defines {ROLE})"
        )
    );

    // A role ARN the file does not define.
    let unknown = "arn:aws:iam::111122223333:role/other";
    let (status, code, message) = assume(sts, unknown, &token).await;
    assert_eq!((status, code.as_str()), (403, "AccessDenied"), "{message}");
    assert_eq!(
        message,
        format!(
            "Not authorized to perform sts:AssumeRoleWithWebIdentity (issuerd: no role \
             {unknown} in the roles file, which defines {ROLE})"
        )
    );
    server.stop().await.unwrap();
}
