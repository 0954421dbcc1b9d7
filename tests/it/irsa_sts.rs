//! The STS endpoint over a real socket: Query API over GET and POST, AWS's error codes and
//! statuses for what the boto3 suite cannot send, explicit Deny, the refetch interval, and the
//! roles file and flags that configure it.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{TestServer, get, key, start_local_issuer};
use issuerd::arn::{AccountId, Partition};
use issuerd::config::{Command, Config};
use issuerd::shutdown;
use issuerd::sts::key_cache::KeyCache;
use issuerd::sts::roles::Roles;
use issuerd::sts::{self, Sts};
use issuerd::token::claims::Subject;
use issuerd::token::fetch::Fetcher;
use issuerd::token::mint::{MintRequest, mint};
use issuerd::token::signing_key::SigningKey;
use tokio::net::TcpListener;

const ROLE: &str = "arn:aws:iam::111122223333:role/app";
const DENIED_ROLE: &str = "arn:aws:iam::111122223333:role/no-default";
/// A role in the China partition, with a path: its provider and session ARNs are aws-cn's.
const CN_ROLE: &str = "arn:aws-cn:iam::111122223333:role/team/cn-app";

struct Fixture {
    issuer: String,
    server: TestServer,
    sts: String,
    stop: shutdown::Trigger,
    keys_dir: tempfile::TempDir,
}

async fn start(refetch: Duration) -> Fixture {
    let keys_dir = tempfile::tempdir().unwrap();
    std::fs::copy(key("ec256.pkcs8.pem"), keys_dir.path().join("a.pem")).unwrap();
    let dir = keys_dir.path().display().to_string();
    let (server, issuer) = start_local_issuer(&["--key-file", &dir, "--debounce", "20ms"]).await;

    let provider = issuer.trim_start_matches("http://");
    let account: AccountId = "111122223333".parse().unwrap();
    let policy = |partition: &Partition| {
        let text = issuerd::irsa::trust_policy(
            &issuer,
            partition,
            &account,
            &["ns/app".into()],
            "sts.amazonaws.com",
        )
        .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let roles = serde_json::json!({
        "OpenIDConnectProviders": [{"Url": issuer, "ClientIDList": ["sts.amazonaws.com"]}],
        "Roles": [
            {"Arn": ROLE, "AssumeRolePolicyDocument": policy(&Partition::AWS)},
            {"Arn": DENIED_ROLE, "MaxSessionDuration": 7200, "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Federated": format!("arn:aws:iam::111122223333:oidc-provider/{provider}")},
                     "Action": "sts:AssumeRoleWithWebIdentity",
                     "Condition": {"StringLike": {format!("{provider}:sub"): "system:serviceaccount:*"}}},
                    {"Sid": "NotInDefault", "Effect": "Deny", "Principal": "*", "Action": "sts:*",
                     "Condition": {"StringLike": {format!("{provider}:sub"): "system:serviceaccount:default:*"}}}
                ]}},
            {"Arn": CN_ROLE, "AssumeRolePolicyDocument": policy(&Partition::AWS_CN)}
        ]
    });
    let roles = Roles::parse(roles.to_string().as_bytes(), true).unwrap();
    let fetcher = Fetcher::new(
        Duration::from_secs(5),
        true,
        &issuerd::trust::Trust::public(),
    )
    .unwrap();
    let sts = Arc::new(Sts::new(
        roles,
        KeyCache::new(fetcher, Duration::from_secs(300), refetch),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sts_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, signal) = shutdown::channel();
    tokio::spawn(sts::serve(listener, sts, signal, Duration::from_secs(1)));
    Fixture {
        issuer,
        server,
        sts: sts_url,
        stop,
        keys_dir,
    }
}

impl Fixture {
    async fn stop(self) {
        self.stop.trigger();
        self.server.stop().await.unwrap();
    }
}

fn request(issuer: &str, subject: &str) -> MintRequest {
    MintRequest {
        issuer: issuer.to_owned(),
        subject: Subject::parse(subject).unwrap(),
        audiences: vec!["sts.amazonaws.com".into()],
        ttl: Duration::from_secs(3600),
        not_before: None,
        pod: None,
        service_account_uid: None,
    }
}

fn token(fixture: &Fixture, file: &str, subject: &str) -> String {
    let key = SigningKey::load(&key(file)).unwrap();
    mint(&key, &request(&fixture.issuer, subject)).unwrap()
}

/// POSTs a Query API form; returns (status, body).
async fn call(fixture: &Fixture, params: &[(&str, &str)]) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(&fixture.sts)
        .form(params)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn assume(
    fixture: &Fixture,
    role: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut params = vec![
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", "test-session"),
        ("WebIdentityToken", token),
    ];
    params.extend_from_slice(extra);
    call(fixture, &params).await
}

fn code(body: &str) -> &str {
    body.split("<Code>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or("<no code>")
}

#[tokio::test]
async fn get_with_a_query_string_works_as_in_aws() {
    let f = start(Duration::from_secs(30)).await;
    let token = token(&f, "ec256.pkcs8.pem", "ns/app");
    let url = reqwest::Url::parse_with_params(
        &f.sts,
        [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "get"),
            ("WebIdentityToken", token.as_str()),
        ],
    )
    .unwrap();
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/xml");
    let request_id = response.headers()["x-amzn-requestid"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.text().await.unwrap();
    assert!(body.contains("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"), "{body}");
    assert!(body.contains("<AccessKeyId>ASIA"), "{body}");
    assert!(
        body.contains(&format!("<RequestId>{request_id}</RequestId>")),
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_aws_codes_and_statuses() {
    let f = start(Duration::from_secs(30)).await;
    let good = token(&f, "ec256.pkcs8.pem", "ns/app");
    let (status, body) = call(
        &f,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "s1"),
        ],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");
    assert!(body.contains("webIdentityToken"), "{body}");

    let (status, body) = call(
        &f,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("RoleArn", ROLE),
            ("RoleSessionName", "bad name"),
            ("WebIdentityToken", &good),
        ],
    )
    .await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");
    assert!(body.contains("roleSessionName"), "{body}");

    let (status, body) = assume(&f, ROLE, &good, &[("DurationSeconds", "899")]).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");

    let (status, body) = assume(&f, ROLE, &good, &[("Policy", "{not json")]).await;
    assert_eq!(
        (status, code(&body)),
        (400, "MalformedPolicyDocument"),
        "{body}"
    );

    let (status, body) = call(&f, &[("Action", "AssumeRole")]).await;
    assert_eq!((status, code(&body)), (400, "InvalidAction"), "{body}");

    let (status, body) = assume(&f, ROLE, "not-a-jwt", &[]).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidIdentityToken"),
        "{body}"
    );

    let (status, body) = assume(&f, "arn:aws:iam::111122223333:role/missing", &good, &[]).await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
    assert!(
        body.contains("<Type>Sender</Type>") && body.contains("<RequestId>"),
        "{body}"
    );
    f.stop().await;
}

/// The `<Message>` of an error answer, unescaped.
fn message(body: &str) -> String {
    body.split("<Message>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or("<no message>")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn a_role_arn_that_is_no_arn_is_aws_s_validation_error_whatever_the_token() {
    let f = start(Duration::from_secs(30)).await;
    let good = token(&f, "ec256.pkcs8.pem", "ns/app");
    // A string STS's model accepts, but no ARN (six fields; partition, service and resource
    // set): "ARN is invalid", as AWS answers, before the token is looked at; the hint after it
    // is issuerd's.
    for (arn, problem) in [
        ("arn:aws:iam:111122223333:role/app", "a colon is missing"),
        (
            "arn:aws:iam::111122223333role/app",
            "it has 5 colon-separated fields",
        ),
        (
            "arn::iam::111122223333:role/app",
            "partition \"\" is not aws or",
        ),
        (
            "arn:aws:iam::111122223333:",
            "resource \"\" is not role/[PATH/]NAME",
        ),
        ("nothing-valid-in-here", "it does not start with arn:"),
    ] {
        for token in [good.as_str(), "not-a-jwt"] {
            let (status, body) = assume(&f, arn, token, &[]).await;
            assert_eq!(
                (status, code(&body)),
                (400, "ValidationError"),
                "{arn}: {body}"
            );
            assert!(body.contains("<Type>Sender</Type>"), "{body}");
            let message = message(&body);
            assert!(
                message.starts_with(&format!("{arn} is invalid (issuerd: {problem}"))
                    && message.ends_with("; expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME)"),
                "{arn}: {message}"
            );
        }
    }
    // What breaks the member's own constraints (length 20..2048, no control characters) gets
    // AWS's constraint message.
    let (status, body) = assume(&f, "role/app", &good, &[]).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");
    assert_eq!(
        message(&body),
        "1 validation error detected: Value 'role/app' at 'roleArn' failed to satisfy \
         constraint: Member must have length greater than or equal to 20"
    );
    let long = format!("arn:aws:iam::111122223333:role/{}", "a".repeat(2020));
    let (status, body) = assume(&f, &long, &good, &[]).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");
    assert!(
        message(&body).ends_with("Member must have length less than or equal to 2048"),
        "{body}"
    );
    let (status, body) = assume(&f, "a\u{7}b", &good, &[]).await;
    assert_eq!((status, code(&body)), (400, "ValidationError"), "{body}");
    let message = message(&body);
    assert!(
        message.starts_with("2 validation errors detected: Value 'ab' at 'roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u007E\\u0085\\u00A0-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]+; ")
            && message.ends_with("Member must have length greater than or equal to 20"),
        "{message}"
    );
    f.stop().await;
}

#[tokio::test]
async fn an_unknown_role_is_access_denied_naming_the_roles_the_file_defines() {
    let f = start(Duration::from_secs(30)).await;
    let good = token(&f, "ec256.pkcs8.pem", "ns/app");
    for unknown in [
        "arn:aws:iam::111122223333:role/missing",
        // The same name in another partition, account or path is another role.
        "arn:aws-us-gov:iam::111122223333:role/app",
        "arn:aws:iam::444455556666:role/app",
        "arn:aws:iam::111122223333:role/team/app",
    ] {
        let (status, body) = assume(&f, unknown, &good, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (403, "AccessDenied"),
            "{unknown}: {body}"
        );
        assert_eq!(
            message(&body),
            format!(
                "Not authorized to perform sts:AssumeRoleWithWebIdentity (issuerd: no role \
                 {unknown} in the roles file, which defines {ROLE}, {DENIED_ROLE}, {CN_ROLE})"
            )
        );
    }
    // ARNs, but no role's: no role AWS has either, so AccessDenied too, the hint saying why.
    for (arn, problem) in [
        (
            "arn:aws:iam::111122223333:oidc-provider/oidc.example.com",
            "resource \"oidc-provider/oidc.example.com\" is not role/[PATH/]NAME",
        ),
        (
            "arn:aws:iam::1111:role/app",
            "account \"1111\" is not 12 digits",
        ),
        (
            "arn:AWS:iam::111122223333:role/app",
            "partition \"AWS\" is not aws or",
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/app/s",
            "service \"sts\" is not iam",
        ),
        (
            "arn:aws:iam:us-east-1:111122223333:role/app",
            "region \"us-east-1\" is set",
        ),
        (
            "arn:aws:iam::111122223333:role/my app",
            "role name \"my app\"",
        ),
        // Six fields, the account in the region: the colon missing, with a path holding one.
        (
            "arn:aws:iam:111122223333:role/a:b/app",
            "a colon is missing before the account",
        ),
    ] {
        let (status, body) = assume(&f, arn, &good, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (403, "AccessDenied"),
            "{arn}: {body}"
        );
        let message = message(&body);
        assert!(
            message.starts_with(&format!(
                "Not authorized to perform sts:AssumeRoleWithWebIdentity (issuerd: role ARN \
                 {arn:?}: {problem}"
            )) && message.ends_with(&format!(
                "; expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME; the roles file defines \
                 {ROLE}, {DENIED_ROLE}, {CN_ROLE})"
            )),
            "{arn}: {message}"
        );
        // The token is checked first, as for any role.
        let (status, body) = assume(&f, arn, "not-a-jwt", &[]).await;
        assert_eq!(
            (status, code(&body)),
            (400, "InvalidIdentityToken"),
            "{arn}: {body}"
        );
    }
    f.stop().await;
}

#[tokio::test]
async fn a_role_in_another_partition_is_assumed_through_that_partition_s_provider() {
    let f = start(Duration::from_secs(30)).await;
    let good = token(&f, "ec256.pkcs8.pem", "ns/app");
    let (status, body) = assume(&f, CN_ROLE, &good, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("<Arn>arn:aws-cn:sts::111122223333:assumed-role/cn-app/test-session</Arn>"),
        "{body}"
    );
    f.stop().await;
}

#[tokio::test]
async fn an_explicit_deny_wins_and_the_role_maximum_allows_longer_sessions() {
    let f = start(Duration::from_secs(30)).await;
    let (status, body) = assume(
        &f,
        DENIED_ROLE,
        &token(&f, "ec256.pkcs8.pem", "default/app"),
        &[],
    )
    .await;
    assert_eq!((status, code(&body)), (403, "AccessDenied"), "{body}");
    assert!(
        body.contains("explicitly denied") && body.contains("NotInDefault"),
        "{body}"
    );
    let (status, body) = assume(
        &f,
        DENIED_ROLE,
        &token(&f, "ec256.pkcs8.pem", "ns/other"),
        &[("DurationSeconds", "7200")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    f.stop().await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    // Interval of an hour: after the first fetch, a new key stays unknown.
    let f = start(Duration::from_secs(3600)).await;
    let (status, _) = assume(&f, ROLE, &token(&f, "ec256.pkcs8.pem", "ns/app"), &[]).await;
    assert_eq!(status, 200);
    std::fs::copy(key("ec384.pkcs8.pem"), f.keys_dir.path().join("b.pem")).unwrap();
    let addr = f.server.addr;
    eventually!(
        String::from_utf8_lossy(&get(addr, "/openid/v1/jwks").await.unwrap().body)
            .contains("P-384"),
        "serve never published the new key"
    );
    let new = token(&f, "ec384.pkcs8.pem", "ns/app");
    let (status, body) = assume(&f, ROLE, &new, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidIdentityToken"),
        "{body}"
    );
    assert!(body.contains("unknown kid"), "{body}");
    f.stop().await;

    // Interval zero: the unknown kid refetches at once.
    let f = start(Duration::ZERO).await;
    let (status, _) = assume(&f, ROLE, &token(&f, "ec256.pkcs8.pem", "ns/app"), &[]).await;
    assert_eq!(status, 200);
    std::fs::copy(key("ec384.pkcs8.pem"), f.keys_dir.path().join("b.pem")).unwrap();
    let addr = f.server.addr;
    eventually!(
        String::from_utf8_lossy(&get(addr, "/openid/v1/jwks").await.unwrap().body)
            .contains("P-384"),
        "serve never published the new key"
    );
    let (status, body) = assume(&f, ROLE, &token(&f, "ec384.pkcs8.pem", "ns/app"), &[]).await;
    assert_eq!(status, 200, "{body}");
    f.stop().await;
}

#[tokio::test]
async fn a_token_without_sub_is_a_rejected_claim() {
    let f = start(Duration::from_secs(30)).await;
    let key = SigningKey::load(&key("ec256.pkcs8.pem")).unwrap();
    let now = issuerd::token::claims::unix(SystemTime::now());
    let claims = serde_json::json!({"iss": f.issuer, "aud": ["sts.amazonaws.com"], "exp": now + 600, "iat": now});
    let (status, body) = assume(&f, ROLE, &key.sign(&claims, None).unwrap(), &[]).await;
    assert_eq!((status, code(&body)), (403, "IDPRejectedClaim"), "{body}");
    f.stop().await;
}

#[test]
fn the_roles_file_refuses_what_aws_would_and_what_cannot_be_evaluated() {
    let file = |url: &str, policy: serde_json::Value| {
        serde_json::json!({
            "OpenIDConnectProviders": [{"Url": url, "ClientIDList": ["sts.amazonaws.com"]}],
            "Roles": [{"Arn": ROLE, "AssumeRolePolicyDocument": policy}]
        })
        .to_string()
    };
    let ok = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRoleWithWebIdentity"}]});
    let error = Roles::parse(file("http://127.0.0.1:1", ok.clone()).as_bytes(), false).unwrap_err();
    assert!(
        error.contains("uses http") && error.contains("--allow-insecure"),
        "{error}"
    );
    assert!(Roles::parse(file("http://127.0.0.1:1", ok.clone()).as_bytes(), true).is_ok());
    let unsupported = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*",
        "Condition": {"NumericLessThan": {"h/p:sub": "1"}}}]});
    let error = Roles::parse(file("https://h/p", unsupported).as_bytes(), false).unwrap_err();
    assert!(
        error.contains("NumericLessThan") && error.contains("not supported"),
        "{error}"
    );
    let bad_arn = serde_json::json!({"OpenIDConnectProviders": [], "Roles": [{"Arn": "role/app", "AssumeRolePolicyDocument": ok}]});
    let error = Roles::parse(bad_arn.to_string().as_bytes(), false).unwrap_err();
    assert!(
        error.contains("Roles[0]: role ARN \"role/app\"")
            && error.contains("expected arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME"),
        "{error}"
    );
}

#[test]
fn serve_sts_flags_env_and_file_keys() {
    let error = Config::from_args([
        "issuerd",
        "serve",
        "--issuer",
        "https://i.example",
        "--key-file",
        "/k",
        "--sts-listen",
        "127.0.0.1:0",
    ])
    .unwrap_err();
    assert!(error.to_string().contains("--sts-roles"), "{error}");
    let error = Config::from_args([
        "issuerd",
        "serve",
        "--issuer",
        "https://i.example",
        "--key-file",
        "/k",
        "--sts-roles",
        "/r.json",
    ])
    .unwrap_err();
    assert!(error.to_string().contains("sts_listen"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuerd.toml");
    std::fs::write(&file, "issuer = \"https://i.example\"\nkey_files = [\"k.pem\"]\n[sts]\nlisten = \"127.0.0.1:8081\"\nroles = \"roles.json\"\n").unwrap();
    let Command::Serve(config) =
        Config::from_args(["issuerd", "serve", "--config", file.to_str().unwrap()])
            .unwrap()
            .command
    else {
        unreachable!()
    };
    let sts = config.sts.unwrap();
    assert_eq!(sts.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(sts.roles.unwrap(), dir.path().join("roles.json"));
    let Command::Serve(config) = Config::from_args([
        "issuerd",
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--sts-listen",
        "127.0.0.1:9",
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    assert_eq!(
        config.sts.unwrap().listen.to_string(),
        "127.0.0.1:9",
        "the flag wins over the file"
    );
    let Command::Serve(config) = Config::from_args([
        "issuerd",
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--sts-listen",
        "127.0.0.1:0",
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    assert!(config.sts.unwrap().roles.is_none() && config.dev);
}

#[tokio::test]
async fn an_issuer_with_a_trailing_slash_has_no_provider_and_the_error_says_why() {
    let f = start(Duration::from_secs(30)).await;
    let key = SigningKey::load(&key("ec256.pkcs8.pem")).unwrap();
    let mut request = request(&format!("{}/", f.issuer), "ns/app");
    let (status, body) = assume(&f, ROLE, &mint(&key, &request).unwrap(), &[]).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidIdentityToken"),
        "{body}"
    );
    assert!(
        body.contains("No OpenIDConnect provider found") && body.contains("trailing slash"),
        "{body}"
    );

    request.issuer = f.issuer.clone();
    request.audiences = vec!["vault".into()];
    let (status, body) = assume(&f, ROLE, &mint(&key, &request).unwrap(), &[]).await;
    assert_eq!(
        (status, code(&body)),
        (400, "InvalidIdentityToken"),
        "{body}"
    );
    assert!(
        body.contains("Incorrect token audience") && body.contains("[&quot;vault&quot;]"),
        "{body}"
    );
    f.stop().await;
}

#[test]
fn the_generators_print_what_the_sts_and_kubernetes_take() {
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let policy = run(&[
        "trust-policy",
        "--issuer",
        "https://oidc.example.com/prod",
        "--account",
        "111122223333",
        "--service-account",
        "ns/app",
        "--service-account",
        "ns/worker",
    ]);
    let value: serde_json::Value = serde_json::from_str(&policy).unwrap();
    assert_eq!(
        value["Statement"][0]["Condition"]["StringEquals"]["oidc.example.com/prod:sub"],
        serde_json::json!([
            "system:serviceaccount:ns:app",
            "system:serviceaccount:ns:worker"
        ])
    );
    // Accepted unchanged by the roles file.
    let roles = serde_json::json!({
        "OpenIDConnectProviders": [{"Url": "https://oidc.example.com/prod", "ClientIDList": ["sts.amazonaws.com"]}],
        "Roles": [{"Arn": ROLE, "AssumeRolePolicyDocument": value}]
    });
    assert!(Roles::parse(roles.to_string().as_bytes(), false).is_ok());

    let yaml = run(&["pod-env", "--role-arn", ROLE, "--region", "eu-west-1"]);
    assert!(
        yaml.contains("value: \"arn:aws:iam::111122223333:role/app\""),
        "{yaml}"
    );
    assert!(
        yaml.contains("serviceAccountToken:") && yaml.contains("expirationSeconds: 86400"),
        "{yaml}"
    );

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args([
            "trust-policy",
            "--issuer",
            "https://h",
            "--account",
            "12",
            "--service-account",
            "ns/app",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "invalid input is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("12-digit"));
}

#[tokio::test]
async fn concurrent_unknown_kids_refetch_once_per_interval() {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    let (issuer, task, hits) = common::counting_fake_issuer(Duration::ZERO, |issuer| {
        HashMap::from([
            (
                "/.well-known/openid-configuration".to_owned(),
                common::Route::ok(
                    "application/json",
                    format!(r#"{{"issuer":"{issuer}","jwks_uri":"{issuer}/jwks"}}"#),
                ),
            ),
            (
                "/jwks".to_owned(),
                common::Route::ok(
                    "application/json",
                    common::published_jwks(&["ec256.pkcs8.pem"]),
                ),
            ),
        ])
    })
    .await;
    let cache = KeyCache::new(
        Fetcher::new(
            Duration::from_secs(5),
            true,
            &issuerd::trust::Trust::public(),
        )
        .unwrap(),
        Duration::from_secs(300),
        Duration::ZERO,
    );
    cache.keys_for(&issuer, None).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2, "discovery + JWKS");

    // Interval zero: each unknown kid refetches.
    cache.keys_for(&issuer, Some("unknown")).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // One second: once the cached set is older than that, sixteen concurrent requests for
    // unknown kids refetch once between them, not once each.
    let cache = KeyCache::new(
        Fetcher::new(
            Duration::from_secs(5),
            true,
            &issuerd::trust::Trust::public(),
        )
        .unwrap(),
        Duration::from_secs(300),
        Duration::from_secs(1),
    );
    cache.keys_for(&issuer, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = hits.load(Ordering::SeqCst);
    let requests: Vec<_> = (0..16)
        .map(|i| {
            let cache = cache.clone();
            let issuer = issuer.clone();
            tokio::spawn(async move { cache.keys_for(&issuer, Some(&format!("kid-{i}"))).await })
        })
        .collect();
    for request in requests {
        assert!(request.await.unwrap().is_ok());
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        before + 2,
        "one refetch: discovery + JWKS"
    );
    task.abort();
}
