//! `vault-config`: what it prints configures Vault's JWT auth method as Vault documents it, the
//! text and the JSON say the same thing to Vault, a token minted for the role's ServiceAccount
//! verifies and passes the role while another ServiceAccount's does not, and refused inputs exit 2
//! naming their flag.
//!
//! Vault cannot run here. What stands in for it, each from Vault's own sources:
//! - the parameter names of its JWT/OIDC auth method API (`CONFIG_PARAMETERS`,
//!   `ROLE_PARAMETERS`);
//! - its CLI's reading of `vault write PATH key=value... [-]` (`vault_cli_body`, after
//!   hashicorp/vault `internalshared/kv-builder/builder.go`), run behind a stub `vault` that
//!   records what the shell handed it;
//! - its login checks for a `jwt` role after the signature (`vault_login`, after
//!   hashicorp/vault-plugin-auth-jwt `path_login.go` and `claims.go`), with go-glob v1.0.0's
//!   matcher for `bound_claims_type=glob` (`go_glob`).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{key, start_local_issuer};
use serde_json::{Map, Value, json};

/// Vault's JWT/OIDC auth method API, "Configure" (`POST /auth/:mount/config`): every parameter
/// it documents. Source: developer.hashicorp.com/vault/api-docs/auth/jwt, i.e. hashicorp/vault
/// `website/content/api-docs/auth/jwt.mdx`.
const CONFIG_PARAMETERS: &[&str] = &[
    "oidc_discovery_url",
    "oidc_discovery_ca_pem",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_response_mode",
    "oidc_response_types",
    "jwks_url",
    "jwks_ca_pem",
    "jwks_pairs",
    "jwt_validation_pubkeys",
    "bound_issuer",
    "jwt_supported_algs",
    "default_role",
    "provider_config",
    "namespace_in_state",
];

/// The same page, "Create/Update role" (`POST /auth/:mount/role/:name`), with the token fields
/// it includes (`website/content/partials/tokenfields.mdx` and `tokenstorefields.mdx`).
const ROLE_PARAMETERS: &[&str] = &[
    "name",
    "role_type",
    "bound_audiences",
    "user_claim",
    "user_claim_json_pointer",
    "clock_skew_leeway",
    "expiration_leeway",
    "not_before_leeway",
    "bound_subject",
    "bound_claims",
    "bound_claims_type",
    "groups_claim",
    "claim_mappings",
    "oidc_scopes",
    "allowed_redirect_uris",
    "verbose_oidc_logging",
    "max_age",
    "token_ttl",
    "token_max_ttl",
    "token_policies",
    "policies",
    "token_bound_cidrs",
    "token_explicit_max_ttl",
    "token_no_default_policy",
    "token_num_uses",
    "token_period",
    "token_type",
];

/// Documented, but deprecated ("please use the `token_policies` parameters instead").
const DEPRECATED: &[&str] = &["policies"];

/// The role parameters Vault takes as "comma-separated string, or array of strings".
const COMMA_LISTS: &[&str] = &["bound_audiences", "token_policies"];

const ISSUER: &str = "https://oidc.example.com/clusters/prod";

// === running issuerd ===

fn issuerd(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_issuerd"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ISSUERD_") {
            command.env_remove(name);
        }
    }
    command.args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let output = issuerd(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `vault-config` with `args` after the subcommand.
fn vault_config(args: &[&str]) -> String {
    ok(&[&["vault-config"], args].concat())
}

fn vault_config_json(args: &[&str]) -> Value {
    serde_json::from_str(&vault_config(&[args, &["--json"]].concat())).unwrap()
}

/// `--issuer ISSUER --role app --namespace NS --service-account SA` and `more`.
fn args<'a>(ns: &'a str, sa: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--issuer",
        ISSUER,
        "--role",
        "app",
        "--namespace",
        ns,
        "--service-account",
        sa,
    ];
    args.extend_from_slice(more);
    args
}

fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

// === (1) the shape Vault documents ===

/// The JSON requests: paths, documented keys only, what Vault requires present.
fn assert_documented(requests: &Value, mount: &str, role: &str) {
    assert_eq!(requests["config"]["method"], "POST");
    assert_eq!(
        requests["config"]["path"],
        format!("/v1/auth/{mount}/config")
    );
    assert_eq!(requests["role"]["method"], "POST");
    assert_eq!(
        requests["role"]["path"],
        format!("/v1/auth/{mount}/role/{role}")
    );
    let objects = requests.as_object().unwrap();
    assert_eq!(objects.len(), 2, "{requests:#}");
    assert_bodies_documented(
        requests["config"]["body"].as_object().unwrap(),
        requests["role"]["body"].as_object().unwrap(),
    );
}

fn assert_bodies_documented(config: &Map<String, Value>, role: &Map<String, Value>) {
    for (body, documented) in [(config, CONFIG_PARAMETERS), (role, ROLE_PARAMETERS)] {
        for key in body.keys() {
            assert!(
                documented.contains(&key.as_str()),
                "{key} is not a documented parameter: {body:#?}"
            );
            assert!(!DEPRECATED.contains(&key.as_str()), "{key} is deprecated");
        }
    }
    // "One (and only one) of oidc_discovery_url, jwks_url, and jwt_validation_pubkeys must be
    // set"; the discovery URL is the issuer, and bound_issuer pins `iss` to it.
    let sources = ["oidc_discovery_url", "jwks_url", "jwt_validation_pubkeys"];
    assert_eq!(
        sources.iter().filter(|k| config.contains_key(**k)).count(),
        1
    );
    assert_eq!(config["oidc_discovery_url"], config["bound_issuer"]);
    // user_claim is `<required>`; role_type defaults to "oidc", which needs redirect URIs.
    assert_eq!(role["role_type"], "jwt");
    assert_eq!(role["user_claim"], "sub");
    // Kubernetes tokens always carry `aud`: a role without bound_audiences refuses them.
    assert!(
        role.get("bound_audiences")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty()),
        "{role:#?}"
    );
    // The ServiceAccount is bound one way or the other, never both, never neither.
    assert!(
        role.contains_key("bound_subject") != role.contains_key("bound_claims"),
        "{role:#?}"
    );
    match role.get("bound_claims_type").map(|t| t.as_str().unwrap()) {
        Some("glob") => assert!(role["bound_claims"]["sub"].is_string()),
        None => assert!(role.get("bound_claims").is_none()),
        Some(other) => panic!("bound_claims_type {other}: only string and glob exist"),
    }
}

#[test]
fn the_requests_use_only_documented_parameters_and_what_vault_requires() {
    let exact = vault_config_json(&args("payments", "api", &[]));
    assert_documented(&exact, "jwt", "app");
    assert_eq!(
        exact["config"]["body"],
        json!({"oidc_discovery_url": ISSUER, "bound_issuer": ISSUER})
    );
    assert_eq!(
        exact["role"]["body"],
        json!({
            "role_type": "jwt",
            "bound_audiences": ["vault"],
            "user_claim": "sub",
            "bound_subject": "system:serviceaccount:payments:api",
        })
    );

    let ca = tls_fixture("ca.crt.pem");
    let glob = vault_config_json(&args(
        "team-*",
        "api",
        &[
            "--mount",
            "k8s/prod",
            "--audience",
            "https://vault.example.com",
            "--policies",
            "read,write",
            "--ttl",
            "90m",
            "--ca-file",
            ca.to_str().unwrap(),
        ],
    ));
    assert_documented(&glob, "k8s/prod", "app");
    let role = &glob["role"]["body"];
    assert_eq!(role["bound_claims_type"], "glob");
    assert_eq!(
        role["bound_claims"],
        json!({"sub": "system:serviceaccount:team-*:api"})
    );
    assert_eq!(
        role["bound_audiences"],
        json!(["https://vault.example.com"])
    );
    assert_eq!(role["token_policies"], json!(["read", "write"]));
    assert_eq!(role["token_ttl"], "1h30m");
    assert!(
        glob["config"]["body"]["oidc_discovery_ca_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----\n")
    );
}

#[test]
fn several_ca_files_become_one_pem_bundle_in_order() {
    let files = [tls_fixture("ca.crt.pem"), key("rsa2048.crt.pem")];
    let mut argv = args("ns", "app", &[]);
    for file in &files {
        argv.extend(["--ca-file", file.to_str().unwrap()]);
    }
    let requests = vault_config_json(&argv);
    let bundle = requests["config"]["body"]["oidc_discovery_ca_pem"]
        .as_str()
        .unwrap();
    let given: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| pem::parse_many(std::fs::read(f).unwrap()).unwrap())
        .map(|p| p.into_contents())
        .collect();
    let sent: Vec<Vec<u8>> = pem::parse_many(bundle)
        .unwrap()
        .into_iter()
        .map(|p| p.into_contents())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent, given,
        "the bundle holds the files' certificates, in order"
    );
    assert!(!bundle.contains('\r'), "LF line endings");
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----\n").count(), 2);
    assert!(bundle.ends_with("-----END CERTIFICATE-----\n"));

    // The shared --ca-file: ISSUERD_CA_FILE, comma-separated, says the same.
    let joined = files
        .iter()
        .map(|f| f.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(",");
    let output = Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .arg("vault-config")
        .args(args("ns", "app", &["--json"]))
        .env("ISSUERD_CA_FILE", joined)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let from_env: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(from_env, requests);
}

// === (3) the text, through a shell, as Vault's CLI reads it ===

/// One `vault` invocation the stub recorded.
#[derive(Debug)]
struct Call {
    argv: Vec<String>,
    stdin: String,
}

/// Runs the printed commands with `sh -c`, with a stub `vault` first on PATH that records each
/// invocation's arguments and standard input.
fn run_through_a_shell(script: &str) -> Vec<Call> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let calls = dir.path().join("calls");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&calls).unwrap();
    let stub = bin.join("vault");
    std::fs::write(
        &stub,
        "#!/bin/sh\n\
         call=\"$VAULT_STUB_CALLS/$(ls \"$VAULT_STUB_CALLS\" | wc -l | tr -d ' ')\"\n\
         mkdir \"$call\"\n\
         for arg in \"$@\"; do printf '%s\\0' \"$arg\"; done > \"$call/argv\"\n\
         cat > \"$call/stdin\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env("VAULT_STUB_CALLS", &calls)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sh -c failed: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut recorded = Vec::new();
    for n in 0.. {
        let call = calls.join(n.to_string());
        if !call.exists() {
            break;
        }
        let argv = std::fs::read(call.join("argv")).unwrap();
        recorded.push(Call {
            argv: argv
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8(a.to_vec()).unwrap())
                .collect(),
            stdin: std::fs::read_to_string(call.join("stdin")).unwrap(),
        });
    }
    recorded
}

/// What Vault's CLI sends for `vault write PATH ARGS...`: (PATH, body). After
/// `kvbuilder.Builder.add`: `key=value`, where a value `@FILE` is the file's contents, `\@x` is
/// `@x`, `-` is standard input; a bare `-` merges a JSON object from standard input.
fn vault_cli_body(call: &Call) -> (String, Map<String, Value>) {
    let [write, path, rest @ ..] = call.argv.as_slice() else {
        panic!("not `vault write PATH ...`: {:?}", call.argv)
    };
    assert_eq!(write, "write");
    let mut body = Map::new();
    for raw in rest {
        match raw.split_once('=') {
            None if raw == "-" => {
                let Value::Object(object) = serde_json::from_str(&call.stdin).unwrap() else {
                    panic!("stdin is not a JSON object: {}", call.stdin)
                };
                body.extend(object);
            }
            None => panic!("{raw:?}: Vault's CLI wants key=value"),
            Some((key, value)) => {
                assert!(
                    !value.starts_with('@'),
                    "{key}: Vault's CLI would read file {value}"
                );
                let value = match value {
                    "-" => call.stdin.clone(),
                    v if v.starts_with("\\@") => v[1..].to_owned(),
                    v => v.to_owned(),
                };
                assert!(!body.contains_key(key), "{key} twice: Vault makes a list");
                body.insert(key.to_owned(), Value::String(value));
            }
        }
    }
    // What Vault's field parser makes of a comma-separated list (parseutil.ParseCommaStringSlice:
    // split on `,`, each trimmed).
    for key in COMMA_LISTS {
        if let Some(Value::String(list)) = body.get(*key) {
            let items: Vec<Value> = list.split(',').map(|s| json!(s.trim())).collect();
            body.insert((*key).to_owned(), Value::Array(items));
        }
    }
    (path.clone(), body)
}

/// The text's commands, run through a shell, send Vault exactly the JSON form's requests.
fn assert_text_matches_json(argv: &[&str]) -> Vec<Call> {
    let text = vault_config(argv);
    let json = vault_config_json(argv);
    let calls = run_through_a_shell(&text);
    assert_eq!(calls.len(), 2, "{text}");
    for (call, which) in calls.iter().zip(["config", "role"]) {
        let (path, body) = vault_cli_body(call);
        assert_eq!(format!("/v1/{path}"), json[which]["path"], "{text}");
        assert_eq!(Value::Object(body), json[which]["body"], "{which}:\n{text}");
    }
    calls
}

#[test]
fn the_commands_survive_a_shell_and_say_what_the_json_says() {
    // Policies a shell would split, expand, glob or unquote, and one Vault's CLI would read as
    // a file name.
    let policies = [
        "@ops",
        "read only",
        "it's \"quoted\"",
        "$HOME `id` $(id)",
        "a*b?[c]",
        "back\\slash;&|<>",
        "~tilde",
    ];
    let mut argv = args("payments", "api", &["--ttl", "2h", "--audience", "my aud"]);
    for policy in &policies {
        argv.extend(["--policies", policy]);
    }
    let calls = assert_text_matches_json(&argv);
    let (_, role) = vault_cli_body(&calls[1]);
    assert_eq!(role["token_policies"], json!(policies));
    assert_eq!(role["bound_audiences"], json!(["my aud"]));
    assert_eq!(calls[1].argv[1], "auth/jwt/role/app");
    assert!(
        calls[1]
            .argv
            .contains(&"bound_subject=system:serviceaccount:payments:api".to_owned())
    );

    // A glob role: JSON on standard input (a map has no key=value form), CA bundles inline.
    let ca = tls_fixture("ca.crt.pem");
    let other_ca = key("ec256.crt.pem");
    let argv = args(
        "*",
        "api-*",
        &[
            "--mount",
            "/kube/",
            "--policies",
            "it's",
            "--ca-file",
            ca.to_str().unwrap(),
            "--ca-file",
            other_ca.to_str().unwrap(),
        ],
    );
    let calls = assert_text_matches_json(&argv);
    assert_eq!(calls[0].argv[1], "auth/kube/config");
    let (_, config) = vault_cli_body(&calls[0]);
    assert_eq!(
        pem::parse_many(config["oidc_discovery_ca_pem"].as_str().unwrap())
            .unwrap()
            .len(),
        2
    );
    assert_eq!(calls[1].argv[2..], ["-"]);
}

// === (2) a token for the ServiceAccount passes; another's does not ===

/// What Vault checks at login to a `jwt` role once the signature verified (path_login.go):
/// `iss` against bound_issuer, `aud` against bound_audiences, `sub` against bound_subject, then
/// bound_claims (claims.go `validateBoundClaims`), and the user claim must be a string.
fn vault_login(config: &Value, role: &Value, claims: &Value) -> Result<(), String> {
    if let Some(issuer) = config["bound_issuer"].as_str().filter(|s| !s.is_empty())
        && claims["iss"] != issuer
    {
        return Err(format!(
            "iss {} is not bound_issuer {issuer}",
            claims["iss"]
        ));
    }
    let audiences: Vec<&Value> = match &claims["aud"] {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    let bound = role["bound_audiences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if bound.is_empty() {
        return Err("audience claim found in JWT but no audiences bound to the role".into());
    }
    if !bound.iter().any(|b| audiences.contains(&b)) {
        return Err("aud claim does not match any bound audience".into());
    }
    if let Some(subject) = role["bound_subject"].as_str().filter(|s| !s.is_empty())
        && claims["sub"] != subject
    {
        return Err(format!(
            "sub {} is not bound_subject {subject}",
            claims["sub"]
        ));
    }
    let globs = role["bound_claims_type"] == "glob";
    if let Some(bound_claims) = role["bound_claims"].as_object() {
        for (claim, expected) in bound_claims {
            let Some(actual) = claims[claim].as_str() else {
                return Err(format!("claim {claim:?} is missing"));
            };
            let expected = expected.as_str().unwrap();
            let matched = match globs {
                true => go_glob(expected, actual),
                false => expected == actual,
            };
            if !matched {
                return Err(format!(
                    "claim {claim:?} does not match any associated bound claim values"
                ));
            }
        }
    }
    let user_claim = role["user_claim"].as_str().unwrap();
    if !claims[user_claim].is_string() {
        return Err(format!("claim {user_claim:?} not found in token"));
    }
    Ok(())
}

/// ryanuber/go-glob v1.0.0 `Glob` (the version vault-plugin-auth-jwt requires), line for line:
/// only `*` is special and matches any run of characters, `:` and `/` included; no `?`, no
/// classes, no escape.
fn go_glob(pattern: &str, subject: &str) -> bool {
    if pattern.is_empty() {
        return subject.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return subject == pattern;
    }
    let leading = pattern.starts_with('*');
    let trailing = pattern.ends_with('*');
    let end = parts.len() - 1;
    let mut subject = subject;
    for (i, part) in parts[..end].iter().enumerate() {
        let index = subject.find(part);
        match (i, index) {
            (0, Some(0)) => {}
            (0, _) if !leading => return false,
            (_, None) => return false,
            _ => {}
        }
        subject = &subject[index.unwrap() + part.len()..];
    }
    trailing || subject.ends_with(parts[end])
}

#[test]
fn the_glob_is_go_globs() {
    // go-glob's own tests (glob_test.go).
    for pattern in [
        "*test",
        "this*",
        "*is *",
        "*is*a*",
        "**test**",
        "**is**a***test*",
    ] {
        assert!(go_glob(pattern, "this is a test"), "{pattern}");
    }
    for pattern in ["test*", "*is", "*no*"] {
        assert!(!go_glob(pattern, "this is a test"), "{pattern}");
    }
    assert!(go_glob("", ""));
    assert!(!go_glob("", "test"));
    assert!(!go_glob("test", ""));
    assert!(go_glob("***", ""));
    assert!(!go_glob("**x", ""));
    assert!(!go_glob("x**", ""));
    assert!(!go_glob("x**x", ""));
    assert!(go_glob("test", "test"));
    // On ServiceAccount subjects: `*` crosses `:`, which Kubernetes names cannot hold.
    let sub = "system:serviceaccount:team-a:api";
    assert!(go_glob("system:serviceaccount:team-*:api", sub));
    assert!(go_glob("system:serviceaccount:*:api", sub));
    assert!(go_glob("system:serviceaccount:*", sub));
    assert!(!go_glob(
        "system:serviceaccount:team-*:api",
        "system:serviceaccount:prod:api"
    ));
    assert!(!go_glob(
        "system:serviceaccount:team-*:api",
        "system:serviceaccount:team-a:api2"
    ));
    assert!(go_glob(
        "system:serviceaccount:*:api",
        "system:serviceaccount:a:b:api"
    ));
}

#[test]
fn the_login_check_refuses_what_vault_refuses() {
    let config = json!({"bound_issuer": ISSUER});
    let role = json!({
        "role_type": "jwt", "bound_audiences": ["vault"], "user_claim": "sub",
        "bound_subject": "system:serviceaccount:ns:app",
    });
    let claims = json!({"iss": ISSUER, "aud": ["vault"], "sub": "system:serviceaccount:ns:app"});
    assert_eq!(vault_login(&config, &role, &claims), Ok(()));
    for (field, value) in [
        ("iss", json!("https://other.example")),
        ("aud", json!(["sts.amazonaws.com"])),
        ("sub", json!("system:serviceaccount:ns:other")),
    ] {
        let mut wrong = claims.clone();
        wrong[field] = value;
        assert!(vault_login(&config, &role, &wrong).is_err(), "{field}");
    }
}

/// Mints a token for `subject` with `audience` against `issuer`, signed by the key `serve`
/// publishes; returns its file.
fn mint(dir: &Path, issuer: &str, subject: &str, audience: &str) -> PathBuf {
    let out = dir.join(subject.replace(':', "_"));
    let key = key("ec256.pkcs8.pem");
    ok(&[
        "mint",
        "--key",
        key.to_str().unwrap(),
        "--issuer",
        issuer,
        "--subject",
        subject,
        "--audience",
        audience,
        "--out",
        out.to_str().unwrap(),
    ]);
    out
}

/// `verify` with the Vault configuration's issuer and audience; the claims, or the failure.
fn verify(token: &Path, config: &Value, role: &Value) -> Result<Value, String> {
    let at_file = format!("@{}", token.display());
    let mut argv = vec![
        "verify",
        &at_file,
        "--issuer",
        config["oidc_discovery_url"].as_str().unwrap(),
        "--allow-insecure",
    ];
    for audience in role["bound_audiences"].as_array().unwrap() {
        argv.extend(["--audience", audience.as_str().unwrap()]);
    }
    let output = issuerd(&argv);
    match output.status.success() {
        true => Ok(serde_json::from_slice(&output.stdout).unwrap()),
        false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
    }
}

#[tokio::test]
async fn a_token_for_the_service_account_verifies_and_passes_the_role_and_others_do_not() {
    let (server, issuer) =
        start_local_issuer(&["--key-file", key("ec256.pkcs8.pem").to_str().unwrap()]).await;
    let dir = tempfile::tempdir().unwrap();
    let issuer_for_task = issuer.clone();
    let dir_path = dir.path().to_owned();
    // The binary runs as a child and blocks; the server runs on this runtime.
    tokio::task::spawn_blocking(move || {
        let issuer = issuer_for_task;
        // (namespace, service account, subjects Vault must admit, subjects it must refuse)
        let cases: [(&str, &str, &[&str], &[&str]); 3] = [
            (
                "payments",
                "api",
                &["payments:api"],
                &[
                    "payments:api2",
                    "payment:api",
                    "other:api",
                    "payments:other",
                ],
            ),
            (
                "team-*",
                "api",
                &["team-a:api", "team-prod-2:api"],
                &["prod:api", "team-a:api2", "team-a:worker", "xteam-a:api"],
            ),
            (
                "ci",
                "runner-*",
                &["ci:runner-1"],
                &["ci:runner", "cd:runner-1"],
            ),
        ];
        for (ns, sa, admitted, refused) in cases {
            let requests = vault_config_json(&[
                "--issuer",
                &issuer,
                "--allow-insecure-issuer",
                "--role",
                "app",
                "--namespace",
                ns,
                "--service-account",
                sa,
            ]);
            let config = &requests["config"]["body"];
            let role = &requests["role"]["body"];
            let audience = role["bound_audiences"][0].as_str().unwrap();
            assert_eq!(audience, "vault");
            for (subjects, admit) in [(admitted, true), (refused, false)] {
                for subject in subjects {
                    let subject = format!("system:serviceaccount:{subject}");
                    let token = mint(
                        &dir_path,
                        config["bound_issuer"].as_str().unwrap(),
                        &subject,
                        audience,
                    );
                    // Signed by the issuer, for the audience: it verifies either way.
                    let claims = verify(&token, config, role)
                        .unwrap_or_else(|e| panic!("{subject} does not verify: {e}"));
                    assert_eq!(claims["sub"], subject.as_str());
                    let login = vault_login(config, role, &claims);
                    match admit {
                        true => assert_eq!(login, Ok(()), "{ns}/{sa} must admit {subject}"),
                        false => {
                            let error =
                                login.expect_err(&format!("{ns}/{sa} must refuse {subject}"));
                            assert!(
                                error.contains("bound_subject") || error.contains("bound claim"),
                                "{error}"
                            );
                        }
                    }
                }
            }
        }

        // A token for another audience fails `verify` with the role's audience, and the role.
        let requests = vault_config_json(&[
            "--issuer",
            &issuer,
            "--allow-insecure-issuer",
            "--role",
            "app",
            "--namespace",
            "payments",
            "--service-account",
            "api",
        ]);
        let (config, role) = (&requests["config"]["body"], &requests["role"]["body"]);
        let token = mint(
            &dir_path,
            &issuer,
            "system:serviceaccount:payments:api",
            "sts.amazonaws.com",
        );
        let error = verify(&token, config, role).expect_err("another audience must not verify");
        assert!(error.contains("vault"), "{error}");
    })
    .await
    .unwrap();
    server.stop().await.unwrap();
}

// === (4) refused inputs ===

#[test]
fn refused_inputs_exit_2_naming_the_input() {
    let not_pem = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let private_key = key("ec256.pkcs8.pem");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--issuer", "http://oidc.example.com"],
            &["--issuer", "https", "--allow-insecure-issuer"],
        ),
        (
            &["--issuer", "ftp://oidc.example.com"],
            &["--issuer", "https"],
        ),
        (
            &["--issuer", "oidc.example.com/prod"],
            &["--issuer", "absolute"],
        ),
        (
            &["--issuer", "https://oidc.example.com/prod?x=1"],
            &["--issuer", "query"],
        ),
        (
            &["--issuer", "https://oidc.example.com/\nprod"],
            &["--issuer", "whitespace"],
        ),
        (
            &["--namespace", "Payments"],
            &["--namespace", "DNS-1123 label"],
        ),
        (&["--namespace", "a.b"], &["--namespace", "DNS-1123 label"]),
        (&["--namespace=-*"], &["--namespace", "glob"]),
        (
            &["--service-account", "api_1"],
            &["--service-account", "DNS-1123 subdomain"],
        ),
        (&["--service-account", "*."], &["--service-account", "glob"]),
        (&["--role", "a/b"], &["--role", "Vault role name"]),
        (&["--role", ""], &["--role"]),
        (&["--role=-x"], &["--role"]),
        (&["--mount", "a b"], &["--mount"]),
        (&["--mount", "a/../b"], &["--mount"]),
        (&["--audience", "a,b"], &["--audience", "','"]),
        (&["--audience", ""], &["--audience", "empty"]),
        (&["--audience", "-"], &["--audience", "standard input"]),
        (&["--policies", "a,,b"], &["--policies", "empty"]),
        (&["--policies", " a"], &["--policies", "whitespace"]),
        (&["--policies", "\\@x"], &["--policies", "\\@"]),
        (&["--ttl", "0s"], &["--ttl", "greater than zero"]),
        (&["--ttl", "1500ms"], &["--ttl", "whole seconds"]),
        (&["--ttl", "soon"], &["--ttl"]),
        (
            &["--ca-file", "/nonexistent/ca.pem"],
            &["--ca-file", "/nonexistent/ca.pem", "cannot read"],
        ),
        (
            &["--ca-file", not_pem.to_str().unwrap()],
            &["--ca-file", "Cargo.toml"],
        ),
        (
            &["--ca-file", private_key.to_str().unwrap()],
            &["--ca-file", "not CERTIFICATE"],
        ),
    ];
    for (overrides, expected) in cases {
        // The valid arguments, with the flags of `overrides` (`--flag value`, `--flag=value`)
        // replaced.
        let mut argv = vec!["vault-config"];
        let base = args("payments", "api", &[]);
        for pair in base.chunks(2) {
            if !overrides
                .iter()
                .any(|o| o.split('=').next() == Some(pair[0]))
            {
                argv.extend_from_slice(pair);
            }
        }
        argv.extend_from_slice(overrides);
        let output = issuerd(&argv);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{argv:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{argv:?} printed {:?}",
            output.stdout
        );
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{argv:?}: {stderr}");
        for needle in *expected {
            assert!(
                errors[0].contains(needle),
                "{argv:?}: {needle:?} not in {stderr}"
            );
        }
    }

    // A required flag left out is clap's usage error, naming it.
    let output = issuerd(&[
        "vault-config",
        "--issuer",
        ISSUER,
        "--namespace",
        "a",
        "--service-account",
        "b",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--role"));
}

#[test]
fn an_http_issuer_is_allowed_when_asked_with_a_warning() {
    let output = issuerd(&[
        "vault-config",
        "--issuer",
        "http://127.0.0.1:8080",
        "--allow-insecure-issuer",
        "--role",
        "dev",
        "--namespace",
        "*",
        "--service-account",
        "*",
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http"), "{stderr}");
    assert!(stderr.contains("every ServiceAccount"), "{stderr}");
}

/// The fenced code blocks of a Markdown text: (language, contents).
fn code_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (open.take(), line.strip_prefix("```")) {
            (None, Some(language)) => open = Some((language.to_owned(), String::new())),
            (Some(block), Some("")) => blocks.push(block),
            (Some((language, mut contents)), _) => {
                contents.push_str(line);
                contents.push('\n');
                open = Some((language, contents));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block");
    blocks
}

#[test]
fn the_guide_shows_what_its_commands_print() {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guides/vault.md"))
            .unwrap();
    let blocks = code_blocks(&guide);
    let bin = Path::new(env!("CARGO_BIN_EXE_issuerd")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shown = 0;
    for pair in blocks.windows(2) {
        let [(_, command), (_, shown_output)] = pair else {
            unreachable!()
        };
        if !command.starts_with("issuerd vault-config ") {
            continue;
        }
        // The command as the reader would run it: through a shell, the binary on PATH.
        let mut sh = Command::new("sh");
        for (name, _) in std::env::vars() {
            if name.starts_with("ISSUERD_") {
                sh.env_remove(name);
            }
        }
        let output = sh
            .arg("-c")
            .arg(command)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let printed = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            shown_output, &printed,
            "docs/guides/vault.md: the block after\n{command}\nmust be what it prints"
        );
        shown += 1;
    }
    // The guide's three examples: one ServiceAccount, a glob, --json.
    assert_eq!(shown, 3, "examples found in docs/guides/vault.md");
}
