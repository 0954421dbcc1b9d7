//! ARNs refused where they enter, as users meet it: the real binary's `pod-env --role-arn`,
//! `trust-policy --account --partition` and `sts --roles` with a malformed ARN exit 2 and say
//! what was expected.

use std::process::{Command, Output};

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
            "arn:aws-eu:iam::111122223333:role/app",
            "partition \"aws-eu\" is not one of aws, aws-cn, aws-us-gov",
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
    let args = trust_policy("111122223333", "aws-china");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = usage_error(&args);
    assert!(
        stderr.contains("--partition: partition \"aws-china\" is not one of aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f, aws-eusc"),
        "{stderr}"
    );

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
