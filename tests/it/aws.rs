//! `issuerd aws plan|apply` as users run it, against moto's IAM and STS in server mode (real
//! HTTP, SigV4-signed by the AWS SDK, the endpoint given the standard way: `AWS_ENDPOINT_URL`),
//! behind a proxy that records the IAM action of every request, so that "no write calls" is
//! counted, not assumed. What was made is read back with boto3, straight from moto.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::moto::{Moto, venv};
use common::proxy::RecordingProxy;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// moto's account.
const ACCOUNT: &str = "123456789012";
const ISSUER: &str = "https://oidc.example.com/clusters/minimal";
const HOST_PATH: &str = "oidc.example.com/clusters/minimal";
const CLUSTER: &str = "minimal.example.com";
const THUMBPRINT: &str = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280";

/// A 70-character ServiceAccount name: its role name is cut with kOps's hash.
const LONG_NAME: &str = "a-service-account-with-a-name-long-enough-to-cut-its-role-name-at-64ch";

fn provider_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{HOST_PATH}")
}

fn policy_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:policy/{name}")
}

// === the counting proxy ===

/// Notes the `Action=` of every request body (IAM and STS speak the AWS query protocol: values
/// are URL-encoded, so `Action=` and `&` appear only as the form's own syntax).
fn actions(pending: &mut Vec<u8>, records: &mut Vec<String>) {
    while let Some(start) = common::find(pending, b"Action=") {
        let rest = &pending[start + 7..];
        let Some(end) = rest.iter().position(|b| !b.is_ascii_alphanumeric()) else {
            break;
        };
        records.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        pending.drain(..start + 7 + end);
    }
}

/// The actions that are not reads (`Get*`, `List*`), in order.
fn writes(proxy: &RecordingProxy) -> Vec<String> {
    proxy
        .records()
        .into_iter()
        .filter(|a| !a.starts_with("Get") && !a.starts_with("List"))
        .collect()
}

// === the account ===

/// moto behind the counting proxy.
struct Account {
    moto: Moto,
    proxy: RecordingProxy,
    dir: tempfile::TempDir,
}

impl Account {
    async fn start() -> Self {
        let moto = Moto::start().await;
        let proxy = RecordingProxy::start(moto.addr, true, actions).await;
        Self {
            moto,
            proxy,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs `python` with boto3's IAM client on moto as `iam`; returns what the script assigns
    /// to `out`, as JSON.
    fn boto(&self, script: &str) -> Value {
        let program = format!(
            "import boto3, json\n\
             iam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             out = None\n{script}\nprint(json.dumps(out, default=str))\n",
            self.moto.url()
        );
        let output = std::process::Command::new(venv().join("bin/python"))
            .args(["-c", &program])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "boto3: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Creates customer managed policies (moto has no AWS managed ones).
    fn policies(&self, names: &[&str]) {
        for name in names {
            self.boto(&format!(
                "iam.create_policy(PolicyName='{name}', PolicyDocument=json.dumps(\
                 {{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', \
                 'Action': 's3:GetObject', 'Resource': '*'}}]}}))"
            ));
        }
    }

    /// Everything IAM holds of role `name` (boto3 decodes the documents).
    fn role(&self, name: &str) -> Value {
        self.boto(&format!(
            "r = iam.get_role(RoleName='{name}')['Role']\n\
             out = {{\n\
               'trust': r['AssumeRolePolicyDocument'],\n\
               'tags': {{t['Key']: t['Value'] for t in iam.list_role_tags(RoleName='{name}')['Tags']}},\n\
               'attached': sorted(p['PolicyArn'] for p in iam.list_attached_role_policies(RoleName='{name}')['AttachedPolicies']),\n\
               'inline': {{p: iam.get_role_policy(RoleName='{name}', PolicyName=p)['PolicyDocument'] for p in iam.list_role_policies(RoleName='{name}')['PolicyNames']}},\n\
             }}"
        ))
    }

    fn role_names(&self) -> Vec<String> {
        let names = self.boto("out = sorted(r['RoleName'] for r in iam.list_roles()['Roles'])");
        serde_json::from_value(names).unwrap()
    }

    fn provider(&self) -> Value {
        self.boto(&format!(
            "out = iam.get_open_id_connect_provider(OpenIDConnectProviderArn='{}')\n\
             out.pop('ResponseMetadata')",
            provider_arn()
        ))
    }

    fn write_map(&self, text: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("cluster.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `issuerd aws ARGS --cluster-spec MAP --issuer ISSUER --thumbprint T` with the SDK on the
    /// proxy, through the standard `AWS_ENDPOINT_URL`.
    fn run(&self, args: &[&str], map: &Path) -> Output {
        let mut command = issuerd_aws(&[("AWS_ENDPOINT_URL", &self.proxy.url())]);
        command.args(args).arg("--cluster-spec").arg(map).args([
            "--issuer",
            ISSUER,
            "--thumbprint",
            THUMBPRINT,
        ]);
        command.output().unwrap()
    }
}

/// `issuerd aws` with test credentials, no profile or IMDS, and `env`.
fn issuerd_aws(env: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"));
    test_env(&mut command);
    command.arg("aws");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// No `ISSUERD_*` or `AWS_*` of the test's own; test credentials, no profile, no IMDS.
fn test_env(command: &mut std::process::Command) {
    for (name, _) in std::env::vars() {
        if name.starts_with("ISSUERD_") || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("NO_COLOR", "1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

/// Every action in `actions` (IAM's or STS's) is allowed by docs/guides/aws-iam-policy.json,
/// the policy the guide gives for the command itself.
#[track_caller]
fn assert_documented_policy_allows(actions: &[String]) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/guides/aws-iam-policy.json"
    ))
    .unwrap();
    let policy: Value = serde_json::from_str(&text).unwrap();
    let allowed: Vec<String> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
            other => panic!("Action {other}"),
        })
        .collect();
    for action in actions {
        let service = if action == "GetCallerIdentity" {
            "sts"
        } else {
            "iam"
        };
        let wanted = format!("{service}:{action}");
        assert!(
            allowed.contains(&wanted),
            "{wanted} is not in aws-iam-policy.json"
        );
    }
}

// === the map ===

fn map_text(default_policy: &str, inline_action: &str, with_glob: bool) -> String {
    let glob = if with_glob {
        "- name: app\n  namespace: team-*\n  aws:\n    policyARNs: [\"POLICY_B\"]\n"
    } else {
        ""
    };
    format!(
        "clusterName: {CLUSTER}\n\
         additionalAudiences: [extra.example.com]\n\
         serviceAccountExternalPermissions:\n\
         - name: app\n  namespace: default\n  aws:\n    policyARNs: [\"{default_policy}\"]\n\
         - name: writer\n  namespace: '*'\n  aws:\n    inlinePolicy: |-\n      \
           [{{\"Effect\": \"Allow\", \"Action\": [\"{inline_action}\"], \"Resource\": [\"*\"]}}]\n\
         - name: {LONG_NAME}\n  namespace: kube-system\n  aws:\n    policyARNs: [\"POLICY_B\"]\n\
         {glob}"
    )
    .replace("POLICY_B", &policy_arn("B"))
}

/// kOps's names for the map's roles: `*` spelled `wildcard`; the long one cut to 57 bytes, `-`
/// and kOps's 6-character hash: FNV-1a (32 bits) of the whole name in lower-case base32hex,
/// computed independently with Python:
/// `base64.b32hexencode(fnv1a32(name).to_bytes(4, 'big')).lower()[:6]`.
fn role_names() -> (String, String, String, String) {
    (
        format!("app.default.sa.{CLUSTER}"),
        format!("writer.wildcard.sa.{CLUSTER}"),
        "a-service-account-with-a-name-long-enough-to-cut-its-role-a5drbc".into(),
        format!("app.team-wildcard.sa.{CLUSTER}"),
    )
}

/// The trust policy `aws apply` gives a role: kOps's, plus the `:aud` condition unless `kops`.
fn trust(namespace: &str, name: &str, kops: bool) -> Value {
    let sub = format!("system:serviceaccount:{namespace}:{name}");
    let mut condition = if namespace.contains('*') {
        json!({"StringLike": {format!("{HOST_PATH}:sub"): sub}})
    } else {
        json!({"StringEquals": {format!("{HOST_PATH}:sub"): sub}})
    };
    if !kops {
        condition["StringEquals"][format!("{HOST_PATH}:aud")] = json!("sts.amazonaws.com");
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn()},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }]
    })
}

// === tests ===

#[tokio::test(flavor = "multi_thread")]
async fn plan_apply_and_nothing_left_to_do() {
    let account = Account::start().await;
    account.policies(&["A", "B"]);
    let map = account.write_map(&map_text(&policy_arn("A"), "s3:GetObject", false));
    let (app, writer, long, _) = role_names();

    // An empty account: everything to create, exit 2, and not one write.
    account.proxy.clear();
    let plan = account.run(&["plan"], &map);
    assert_exit(&plan, 2);
    assert!(stderr(&plan).is_empty(), "{}", stderr(&plan));
    let text = stdout(&plan);
    for needle in [
        format!("+ OIDC provider {}", provider_arn()),
        format!("+ role {app} (map entry [0] default/app)"),
        format!("+ role {writer} (map entry [1] */writer)"),
        format!("+ role {long}"),
        format!("~ role {app}: attach {}", policy_arn("A")),
        format!("~ role {writer}: put inline policy {writer}"),
        "Plan: 7 IAM calls: 4 to create, 3 to update, 0 to delete.".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} in\n{text}");
    }
    assert_eq!(writes(&account.proxy), Vec::<String>::new());
    assert!(
        account
            .proxy
            .records()
            .contains(&"GetCallerIdentity".into()),
        "the account comes from STS: {:?}",
        account.proxy.records()
    );

    // Apply: exactly the planned calls.
    account.proxy.clear();
    let apply = account.run(&["apply"], &map);
    assert_exit(&apply, 0);
    assert_eq!(
        writes(&account.proxy),
        [
            "CreateOpenIDConnectProvider",
            "CreateRole",
            "AttachRolePolicy",
            "CreateRole",
            "AttachRolePolicy",
            "CreateRole",
            "PutRolePolicy",
        ]
    );

    // What IAM holds, read back with boto3.
    let provider = account.provider();
    assert_eq!(provider["Url"], HOST_PATH, "{provider}");
    let mut ids: Vec<String> = serde_json::from_value(provider["ClientIDList"].clone()).unwrap();
    ids.sort();
    assert_eq!(
        ids,
        ["amazonaws.com", "extra.example.com", "sts.amazonaws.com"]
    );
    assert_eq!(provider["ThumbprintList"], json!([THUMBPRINT]));
    assert_eq!(
        provider["Tags"],
        json!([{"Key": "issuerd.io/cluster", "Value": CLUSTER}])
    );
    let tags = json!({"issuerd.io/cluster": CLUSTER});
    let role = account.role(&app);
    assert_eq!(role["trust"], trust("default", "app", false));
    assert_eq!(role["attached"], json!([policy_arn("A")]));
    assert_eq!(role["inline"], json!({}));
    assert_eq!(role["tags"], tags);
    let role = account.role(&writer);
    assert_eq!(role["trust"], trust("*", "writer", false));
    assert_eq!(role["attached"], json!([]));
    assert_eq!(
        role["inline"][&writer],
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["*"]}
        ]})
    );
    let role = account.role(&long);
    assert_eq!(role["trust"], trust("kube-system", LONG_NAME, false));
    assert_eq!(role["attached"], json!([policy_arn("B")]));

    // Nothing left: plan exits 0, apply makes no write call.
    account.proxy.clear();
    let plan = account.run(&["plan"], &map);
    assert_exit(&plan, 0);
    assert!(
        stdout(&plan).contains("No changes: IAM matches the map."),
        "{}",
        stdout(&plan)
    );
    let apply = account.run(&["apply"], &map);
    assert_exit(&apply, 0);
    assert_eq!(writes(&account.proxy), Vec::<String>::new());
    assert!(
        account.proxy.records().iter().any(|a| a == "GetRole"),
        "the proxy saw the reads: {:?}",
        account.proxy.records()
    );
    assert_documented_policy_allows(&account.proxy.records());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_map_is_a_diff_and_exactly_the_changed_calls() {
    let account = Account::start().await;
    account.policies(&["A", "B", "C"]);
    let map = account.write_map(&map_text(&policy_arn("A"), "s3:GetObject", false));
    assert_exit(&account.run(&["apply"], &map), 0);

    let map = account.write_map(&map_text(&policy_arn("C"), "s3:PutObject", false));
    let (app, writer, _, _) = role_names();
    account.proxy.clear();
    let plan = account.run(&["plan"], &map);
    assert_exit(&plan, 2);
    let text = stdout(&plan);
    for needle in [
        format!("~ role {app}: attach {}", policy_arn("C")),
        format!("~ role {app}: detach {}", policy_arn("A")),
        format!("~ role {writer}: update inline policy {writer}"),
        "    -         \"s3:GetObject\"".into(),
        "    +         \"s3:PutObject\"".into(),
        "Plan: 3 IAM calls: 0 to create, 3 to update, 0 to delete.".into(),
    ] {
        assert!(text.contains(&needle), "{needle:?} in\n{text}");
    }
    // Only the changed lines are marked.
    let marked = text
        .lines()
        .filter(|l| l.starts_with("    + ") || l.starts_with("    - "))
        .count();
    assert_eq!(marked, 2, "{text}");

    account.proxy.clear();
    assert_exit(&account.run(&["apply"], &map), 0);
    assert_eq!(
        writes(&account.proxy),
        ["AttachRolePolicy", "DetachRolePolicy", "PutRolePolicy"]
    );
    assert_documented_policy_allows(&account.proxy.records());
    assert_eq!(account.role(&app)["attached"], json!([policy_arn("C")]));
    assert_eq!(
        account.role(&writer)["inline"][&writer]["Statement"][0]["Action"],
        json!(["s3:PutObject"])
    );

    // Turning the :aud condition off is a trust policy update to kOps's exact policy.
    account.proxy.clear();
    assert_exit(&account.run(&["apply", "--no-aud-condition"], &map), 0);
    assert_eq!(writes(&account.proxy), ["UpdateAssumeRolePolicy"; 3]);
    assert_documented_policy_allows(&account.proxy.records());
    assert_eq!(account.role(&app)["trust"], trust("default", "app", true));
    assert_eq!(account.role(&writer)["trust"], trust("*", "writer", true));
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_only_this_cluster_s_roles_that_left_the_map() {
    let account = Account::start().await;
    account.policies(&["A", "B"]);
    let full = account.write_map(&map_text(&policy_arn("A"), "s3:GetObject", true));
    assert_exit(&account.run(&["apply"], &full), 0);
    let (app, writer, long, glob) = role_names();
    assert_eq!(
        account.role(&glob)["trust"],
        trust("team-*", "app", false),
        "a namespace glob is StringLike"
    );
    // A role issuerd does not manage, and one of another cluster.
    account.boto(
        "doc = json.dumps({'Version': '2012-10-17', 'Statement': []})\n\
         iam.create_role(RoleName='unmanaged', AssumeRolePolicyDocument=doc)\n\
         iam.create_role(RoleName='other', AssumeRolePolicyDocument=doc, \
         Tags=[{'Key': 'issuerd.io/cluster', 'Value': 'other.example.com'}])",
    );

    let smaller = account.write_map(&map_text(&policy_arn("A"), "s3:GetObject", false));
    // Without --prune the dropped role is left alone.
    assert_exit(&account.run(&["plan"], &smaller), 0);
    account.proxy.clear();
    let plan = account.run(&["plan", "--prune"], &smaller);
    assert_exit(&plan, 2);
    assert!(
        stdout(&plan).contains(&format!(
            "- role {glob} (tagged for this cluster, not in the map)"
        )),
        "{}",
        stdout(&plan)
    );
    assert_eq!(writes(&account.proxy), Vec::<String>::new());
    assert_exit(&account.run(&["apply", "--prune"], &smaller), 0);
    assert_eq!(writes(&account.proxy), ["DetachRolePolicy", "DeleteRole"]);
    assert_documented_policy_allows(&account.proxy.records());
    let mut expected = vec![app, writer, long, "other".into(), "unmanaged".into()];
    expected.sort();
    assert_eq!(account.role_names(), expected);
    assert_exit(&account.run(&["plan", "--prune"], &smaller), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_thumbprint_of_a_live_issuer_is_the_thumbprint_command_s() {
    let ca = common::ca::Ca::new();
    let dir = tempfile::tempdir().unwrap();
    ca.leaf(&["localhost", "127.0.0.1"], 7, (-1, 30))
        .write(dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server = common::TlsServe::start(&dir.path().join("tls.crt"), &dir.path().join("tls.key"));
    let issuer = format!("{}/clusters/minimal", server.url);

    let thumbprint = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["thumbprint", "--json", &issuer])
        .env_remove("ISSUERD_CONFIG")
        .output()
        .unwrap();
    assert!(thumbprint.status.success(), "{}", stderr(&thumbprint));
    let report: Value = serde_json::from_slice(&thumbprint.stdout).unwrap();
    let expected = report["thumbprint"].as_str().unwrap().to_owned();
    // The chain is leaf + CA: the CA is the last certificate presented.
    assert_eq!(expected, issuerd::thumbprint::sha1_hex(&ca.der()));

    let account = Account::start().await;
    let map = account.write_map(&format!(
        "clusterName: {CLUSTER}\nserviceAccountExternalPermissions: []\n"
    ));
    let apply = issuerd_aws(&[("AWS_ENDPOINT_URL", &account.proxy.url())])
        .args(["apply", "--issuer", &issuer, "--cluster-spec"])
        .arg(&map)
        .arg("--ca-file")
        .arg(&ca_file)
        .output()
        .unwrap();
    assert_exit(&apply, 0);
    assert!(
        stdout(&apply).contains(&format!("note: thumbprint {expected} of {issuer}")),
        "{}",
        stdout(&apply)
    );
    let arn = format!(
        "arn:aws:iam::{ACCOUNT}:oidc-provider/{}",
        issuer.trim_start_matches("https://")
    );
    let provider = account.boto(&format!(
        "out = iam.get_open_id_connect_provider(OpenIDConnectProviderArn='{arn}')['ThumbprintList']"
    ));
    assert_eq!(provider, json!([expected]));
}

#[tokio::test(flavor = "multi_thread")]
async fn service_specific_endpoints_are_honoured() {
    let account = Account::start().await;
    let map = account.write_map(&format!(
        "clusterName: {CLUSTER}\nserviceAccountExternalPermissions: []\n"
    ));
    // The generic endpoint refuses connections; IAM's and STS's own point at moto.
    let (_refusing, port) = common::refusing_port();
    let dead = format!("http://127.0.0.1:{port}");
    let url = account.proxy.url();
    let output = issuerd_aws(&[
        ("AWS_ENDPOINT_URL", &dead),
        ("AWS_ENDPOINT_URL_IAM", &url),
        ("AWS_ENDPOINT_URL_STS", &url),
    ])
    .args([
        "plan",
        "--issuer",
        ISSUER,
        "--thumbprint",
        THUMBPRINT,
        "--cluster-spec",
    ])
    .arg(&map)
    .output()
    .unwrap();
    assert_exit(&output, 2);
    assert!(
        stdout(&output).contains("+ OIDC provider"),
        "{}",
        stdout(&output)
    );
    let actions = account.proxy.records();
    assert!(
        actions.contains(&"GetCallerIdentity".into())
            && actions.contains(&"GetOpenIDConnectProvider".into()),
        "{actions:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_a_clear_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("cluster.yaml");
    std::fs::write(
        &map,
        format!("clusterName: {CLUSTER}\nserviceAccountExternalPermissions: []\n"),
    )
    .unwrap();
    let (_refusing, port) = common::refusing_port();
    let dead = format!("http://127.0.0.1:{port}");
    let run = |extra: &[&str]| {
        issuerd_aws(&[("AWS_ENDPOINT_URL", &dead)])
            .args([
                "plan",
                "--issuer",
                ISSUER,
                "--thumbprint",
                THUMBPRINT,
                "--cluster-spec",
            ])
            .arg(&map)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = run(&[]);
    assert_exit(&output, 1);
    let error = stderr(&output);
    assert!(
        error.contains("STS GetCallerIdentity") && error.contains("--account-id"),
        "{error}"
    );
    let output = run(&["--account-id", ACCOUNT]);
    assert_exit(&output, 1);
    let error = stderr(&output);
    assert!(
        error.contains("IAM GetOpenIDConnectProvider") && error.contains("cannot read"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_aws_refuses_are_a_clear_runtime_error() {
    // moto checks every request's access key against its IAM users: "testing" is none.
    let moto = Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]).await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("cluster.yaml");
    std::fs::write(
        &map,
        format!("clusterName: {CLUSTER}\nserviceAccountExternalPermissions: []\n"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        issuerd_aws(&[("AWS_ENDPOINT_URL", &moto.url())])
            .args([
                "plan",
                "--issuer",
                ISSUER,
                "--thumbprint",
                THUMBPRINT,
                "--cluster-spec",
            ])
            .arg(&map)
            .args(extra)
            .output()
            .unwrap()
    };
    let output = run(&[]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(
            "STS GetCallerIdentity: InvalidClientTokenId: The security token included in the \
             request is invalid. (HTTP 403)"
        ),
        "{}",
        stderr(&output)
    );
    let output = run(&["--account-id", ACCOUNT]);
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains(&format!(
            "IAM GetOpenIDConnectProvider {}: InvalidClientTokenId",
            provider_arn()
        )),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_any_call() {
    let account = Account::start().await;
    let bad_policy = account.write_map(&format!(
        "clusterName: {CLUSTER}\nserviceAccountExternalPermissions:\n\
         - name: app\n  namespace: default\n  aws:\n    inlinePolicy: '{{\"Version\": \"2012-10-17\"}}'\n"
    ));
    account.proxy.clear();
    let output = account.run(&["apply"], &bad_policy);
    assert_exit(&output, 2);
    let error = stderr(&output);
    assert!(
        error.contains("default/app") || error.contains("app"),
        "the entry is named: {error}"
    );
    assert!(error.contains("array of statements"), "{error}");
    let good = account.write_map(&format!(
        "clusterName: {CLUSTER}\nserviceAccountExternalPermissions: []\n"
    ));
    for (flag, value, needle) in [
        ("--issuer", "http://oidc.example.com", "https://"),
        ("--thumbprint", "abc", "40 hex digits"),
        ("--account-id", "12345", "12-digit"),
        ("--partition", "azure", "partition"),
    ] {
        let mut args = vec![("--issuer", ISSUER), ("--thumbprint", THUMBPRINT)];
        match args.iter_mut().find(|(f, _)| *f == flag) {
            Some(arg) => arg.1 = value,
            None => args.push((flag, value)),
        }
        let output = issuerd_aws(&[("AWS_ENDPOINT_URL", &account.proxy.url())])
            .args(["plan", "--cluster-spec"])
            .arg(&good)
            .args(args.iter().flat_map(|(f, v)| [*f, *v]))
            .output()
            .unwrap();
        assert_exit(&output, 2);
        assert!(
            stderr(&output).contains(needle),
            "{flag}: {}",
            stderr(&output)
        );
    }
    assert_eq!(account.proxy.records(), Vec::<String>::new());

    // The local STS from the map needs the account (no credentials are asked for it).
    let mut sts = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"));
    test_env(&mut sts);
    let output = sts
        .args([
            "sts",
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            ISSUER,
            "--cluster-spec",
        ])
        .arg(&good)
        .output()
        .unwrap();
    assert_exit(&output, 2);
    assert!(
        stderr(&output).contains("--account-id"),
        "{}",
        stderr(&output)
    );
}

// === the local STS from the same map ===

/// `issuerd sts ARGS --listen 127.0.0.1:0` with test credentials; killed on drop. Returns the
/// child and its URL (read from its "STS ready" log line).
fn start_sts(args: &[&str]) -> (common::KillOnDrop, String) {
    use std::io::{BufRead as _, BufReader};
    let mut sts = std::process::Command::new(env!("CARGO_BIN_EXE_issuerd"));
    test_env(&mut sts);
    let mut child = common::KillOnDrop(
        sts.args(["sts", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            panic!("issuerd sts {args:?} exited before ready:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        if let Some(addr) = common::logged_address(&line, "STS ready") {
            break addr;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, format!("http://{addr}"))
}

/// What boto3's web-identity credential provider gets, configured as IRSA configures a pod:
/// the access key, or the error.
async fn boto3_web_identity(
    sts: &str,
    role_arn: &str,
    token_file: &Path,
) -> Result<String, String> {
    let program = "import boto3, json\n\
         try:\n    out = {'ok': boto3.Session().get_credentials().get_frozen_credentials().access_key}\n\
         except Exception as e:\n    out = {'error': str(e)}\n\
         print(json.dumps(out))\n";
    let mut command = tokio::process::Command::new(venv().join("bin/python"));
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    let output = command
        .args(["-c", program])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_STS", sts)
        .env("AWS_ROLE_ARN", role_arn)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();
    match (&out["ok"], &out["error"]) {
        (Value::String(key), _) => Ok(key.clone()),
        (_, Value::String(error)) => Err(error.clone()),
        _ => panic!("{out}"),
    }
}

/// An https issuer in this process: `serve --tls-cert` with a test CA's certificate for
/// 127.0.0.1, publishing the ec256 fixture key.
async fn https_issuer(dir: &Path) -> (String, tokio::sync::oneshot::Sender<()>) {
    let ca = common::ca::Ca::new();
    ca.leaf(&["localhost", "127.0.0.1"], 9, (-1, 30)).write(dir);
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("https://{}", listener.local_addr().unwrap());
    let (tls_cert, tls_key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let key = common::key("ec256.pkcs8.pem");
    let argv = [
        "issuerd",
        "serve",
        "--issuer",
        &issuer,
        "--allow-issuer-port",
        "--tls-cert",
        tls_cert.to_str().unwrap(),
        "--tls-key",
        tls_key.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ];
    let issuerd::config::Command::Serve(config) =
        issuerd::config::Config::from_args(argv).unwrap().command
    else {
        unreachable!()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(issuerd::app::serve_on(listener, config, async {
        let _ = stopped.await;
    }));
    (issuer, stop)
}

async fn mint(issuer: &str, subject: &str, out: &Path) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_issuerd"))
        .args(["mint", "--issuer", issuer, "--subject", subject, "--key"])
        .arg(common::key("ec256.pkcs8.pem"))
        .arg("--out")
        .arg(out)
        .env_remove("ISSUERD_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_then_the_local_sts_answers_from_iam_and_from_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let (issuer, _stop) = https_issuer(dir.path()).await;
    let ca_file = dir.path().join("ca.pem");
    let account = Account::start().await;
    account.policies(&["A", "B"]);
    let map = account.write_map(&map_text(&policy_arn("A"), "s3:GetObject", false));
    let apply = issuerd_aws(&[("AWS_ENDPOINT_URL", &account.moto.url())])
        .args(["apply", "--issuer", &issuer, "--cluster-spec"])
        .arg(&map)
        .arg("--ca-file")
        .arg(&ca_file)
        .output()
        .unwrap();
    assert_exit(&apply, 0);

    let (app, writer, _, _) = role_names();
    let role_arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let mapped = dir.path().join("mapped.token");
    mint(&issuer, "system:serviceaccount:default:app", &mapped).await;
    let glob = dir.path().join("glob.token");
    mint(&issuer, "system:serviceaccount:any-namespace:writer", &glob).await;
    let unmapped = dir.path().join("unmapped.token");
    mint(&issuer, "system:serviceaccount:default:other", &unmapped).await;

    let ca = ca_file.to_str().unwrap();
    let moto = account.moto.url();
    let spec = map.to_str().unwrap();
    let from_iam = [
        "--cluster-spec",
        spec,
        "--issuer",
        &issuer,
        "--roles-from-iam",
        "--iam-endpoint",
        &moto,
        "--ca-file",
        ca,
    ];
    let from_map = [
        "--cluster-spec",
        spec,
        "--issuer",
        &issuer,
        "--account-id",
        ACCOUNT,
        "--ca-file",
        ca,
    ];
    for args in [&from_iam[..], &from_map[..]] {
        let (_sts, url) = start_sts(args);
        let key = boto3_web_identity(&url, &role_arn(&app), &mapped).await;
        assert!(
            key.as_ref().is_ok_and(|k| k.starts_with("ASIA")),
            "{args:?}: {key:?}"
        );
        let key = boto3_web_identity(&url, &role_arn(&writer), &glob).await;
        assert!(key.is_ok(), "the * namespace matches: {args:?}: {key:?}");
        let error = boto3_web_identity(&url, &role_arn(&app), &unmapped)
            .await
            .unwrap_err();
        assert!(error.contains("AccessDenied"), "{args:?}: {error}");
    }

    // A role that is not in IAM is not in the STS that reads IAM.
    account.boto(&format!("iam.delete_role_policy(RoleName='{writer}', PolicyName='{writer}')\niam.delete_role(RoleName='{writer}')"));
    let (_sts, url) = start_sts(&from_iam);
    let error = boto3_web_identity(&url, &role_arn(&writer), &glob)
        .await
        .unwrap_err();
    assert!(error.contains("AccessDenied"), "{error}");
}

#[tokio::test]
async fn serve_s_sts_answers_from_the_cluster_spec() {
    // One thread: the capture sees the server's log, where the STS says its address.
    let log = common::LogCapture::start();
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("cluster.yaml");
    std::fs::write(&map, map_text(&policy_arn("A"), "s3:GetObject", false)).unwrap();
    let key = common::key("ec256.pkcs8.pem");
    let (_server, issuer) = common::start_local_issuer(&[
        "--key-file",
        key.to_str().unwrap(),
        "--sts-listen",
        "127.0.0.1:0",
        "--sts-cluster-spec",
        map.to_str().unwrap(),
        "--sts-account-id",
        ACCOUNT,
    ])
    .await;
    let sts = format!("http://{}", log.field("STS ready", "listen").await);
    let (app, writer, _, _) = role_names();
    let role_arn = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
    let token = dir.path().join("token");
    mint(&issuer, "system:serviceaccount:default:app", &token).await;
    let key = boto3_web_identity(&sts, &role_arn(&app), &token).await;
    assert!(
        key.as_ref().is_ok_and(|k| k.starts_with("ASIA")),
        "{key:?}\n{}",
        log.text()
    );
    let error = boto3_web_identity(&sts, &role_arn(&writer), &token)
        .await
        .unwrap_err();
    assert!(error.contains("AccessDenied"), "{error}");
}

#[test]
fn serve_s_sts_cluster_spec_flags_and_file_keys() {
    use issuerd::config::{Command, Config};
    let serve = |extra: &[&str]| {
        let mut argv = vec![
            "issuerd",
            "serve",
            "--issuer",
            "https://oidc.example.com",
            "--key-file",
            "k.pem",
            "--sts-listen",
            "127.0.0.1:0",
        ];
        argv.extend_from_slice(extra);
        Config::from_args(argv).map(|config| match config.command {
            Command::Serve(serve) => serve.sts.unwrap(),
            _ => unreachable!(),
        })
    };
    let sts = serve(&["--sts-cluster-spec", "c.yaml", "--sts-account-id", ACCOUNT]).unwrap();
    assert_eq!(
        sts.cluster_spec,
        Some(("c.yaml".into(), ACCOUNT.to_owned()))
    );
    assert_eq!(sts.roles, None);
    for (extra, needle) in [
        (&["--sts-cluster-spec", "c.yaml"][..], "--sts-account-id"),
        (
            &["--sts-cluster-spec", "c.yaml", "--sts-account-id", "123"],
            "12-digit",
        ),
        (
            &[
                "--sts-cluster-spec",
                "c.yaml",
                "--sts-account-id",
                ACCOUNT,
                "--sts-roles",
                "r.json",
            ],
            "sts_roles",
        ),
        (&["--sts-account-id", ACCOUNT], "sts_cluster_spec is not"),
    ] {
        let error = format!("{:#}", anyhow::Error::from(serve(extra).unwrap_err()));
        assert!(error.contains(needle), "{extra:?}: {error}");
    }
    // From the file, relative to it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("issuerd.toml");
    std::fs::write(
        &file,
        format!("[sts]\ncluster_spec = \"cluster.yaml\"\naccount_id = \"{ACCOUNT}\"\n"),
    )
    .unwrap();
    let sts = serve(&["--config", file.to_str().unwrap()]).unwrap();
    assert_eq!(
        sts.cluster_spec,
        Some((dir.path().join("cluster.yaml"), ACCOUNT.to_owned()))
    );
}
