use serde_json::json;

use super::*;

const ARN: &str = "arn:aws:iam::111122223333:oidc-provider/oidc.example.com/c";
const P: &str = "oidc.example.com/c";

fn policy(condition: serde_json::Value) -> TrustPolicy {
    TrustPolicy::parse(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }]
    }))
    .unwrap()
}

fn ctx<'a>(sub: &'a str, aud: &'a str, amr: &'a [String]) -> Context<'a> {
    Context {
        provider_arn: ARN,
        provider: P,
        sub,
        aud,
        amr,
    }
}

#[test]
fn string_equals_on_sub_and_aud() {
    let p = policy(json!({"StringEquals": {
        "oidc.example.com/c:sub": "system:serviceaccount:ns:app",
        "oidc.example.com/c:aud": "sts.amazonaws.com"}}));
    assert_eq!(
        p.evaluate(&ctx(
            "system:serviceaccount:ns:app",
            "sts.amazonaws.com",
            &[]
        )),
        Decision::Allow
    );
    assert_eq!(
        p.evaluate(&ctx(
            "system:serviceaccount:ns:other",
            "sts.amazonaws.com",
            &[]
        )),
        Decision::ImplicitDeny
    );
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:ns:app", "other", &[])),
        Decision::ImplicitDeny
    );
}

#[test]
fn condition_keys_are_case_insensitive_values_are_not() {
    let p =
        policy(json!({"StringEquals": {"OIDC.example.com/C:SUB": "system:serviceaccount:ns:app"}}));
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:ns:app", "a", &[])),
        Decision::Allow
    );
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:NS:app", "a", &[])),
        Decision::ImplicitDeny
    );
}

#[test]
fn string_like_wildcards() {
    let p = policy(
        json!({"StringLike": {"oidc.example.com/c:sub": ["system:serviceaccount:ns:*", "x?z"]}}),
    );
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:ns:anything", "a", &[])),
        Decision::Allow
    );
    assert_eq!(p.evaluate(&ctx("xyz", "a", &[])), Decision::Allow);
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:other:app", "a", &[])),
        Decision::ImplicitDeny
    );
    assert!(wildcard("a*b*c", "aXXbYYc") && !wildcard("a*b", "ac") && wildcard("*", ""));
}

#[test]
fn a_key_for_another_provider_is_absent() {
    let p = policy(json!({"StringEquals": {"other.example.com:sub": "x"}}));
    assert_eq!(p.evaluate(&ctx("x", "a", &[])), Decision::ImplicitDeny);
    let p = policy(json!({"StringNotEquals": {"other.example.com:sub": "x"}}));
    assert_eq!(p.evaluate(&ctx("x", "a", &[])), Decision::Allow);
    let p = policy(json!({"StringEqualsIfExists": {"other.example.com:sub": "x"}}));
    assert_eq!(p.evaluate(&ctx("x", "a", &[])), Decision::Allow);
}

#[test]
fn set_operators_on_amr() {
    let amr = vec!["authenticated".to_owned(), "mfa".to_owned()];
    let any = policy(json!({"ForAnyValue:StringEquals": {"oidc.example.com/c:amr": "mfa"}}));
    assert_eq!(any.evaluate(&ctx("s", "a", &amr)), Decision::Allow);
    assert_eq!(any.evaluate(&ctx("s", "a", &[])), Decision::ImplicitDeny);
    let all = policy(json!({"ForAllValues:StringLike": {"oidc.example.com/c:amr": ["auth*"]}}));
    assert_eq!(all.evaluate(&ctx("s", "a", &amr)), Decision::ImplicitDeny);
    assert_eq!(all.evaluate(&ctx("s", "a", &amr[..1])), Decision::Allow);
    // ForAllValues over an absent key is true, as in IAM.
    assert_eq!(all.evaluate(&ctx("s", "a", &[])), Decision::Allow);
}

#[test]
fn deny_wins_over_allow() {
    let p = TrustPolicy::parse(&json!({
        "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": ARN}, "Action": "sts:AssumeRoleWithWebIdentity"},
            {"Sid": "NoDefault", "Effect": "Deny", "Principal": "*", "Action": "sts:*",
             "Condition": {"StringLike": {"oidc.example.com/c:sub": "system:serviceaccount:default:*"}}}
        ]
    }))
    .unwrap();
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:ns:app", "a", &[])),
        Decision::Allow
    );
    assert_eq!(
        p.evaluate(&ctx("system:serviceaccount:default:app", "a", &[])),
        Decision::ExplicitDeny(Some("NoDefault".into()))
    );
}

#[test]
fn other_principals_and_actions_do_not_match() {
    let p = TrustPolicy::parse(&json!({"Statement": [
        {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/elsewhere"}, "Action": "sts:AssumeRoleWithWebIdentity"},
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Federated": ARN}, "Action": "sts:AssumeRole"}
    ]}))
    .unwrap();
    assert_eq!(p.evaluate(&ctx("s", "a", &[])), Decision::ImplicitDeny);
}

#[test]
fn what_cannot_be_evaluated_is_refused() {
    let statement = |extra: serde_json::Value| {
        let mut s = json!({"Effect": "Allow", "Principal": {"Federated": ARN}, "Action": "sts:AssumeRoleWithWebIdentity"});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        TrustPolicy::parse(&json!({"Statement": [s]}))
    };
    for (extra, needle) in [
        (
            json!({"Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}}),
            "DateGreaterThan",
        ),
        (
            json!({"Condition": {"StringEquals": {"aws:SourceIp": "1.2.3.4"}}}),
            "aws:SourceIp",
        ),
        (
            json!({"Condition": {"StringEquals": {"oidc.example.com/c:email": "x"}}}),
            "email",
        ),
        (
            json!({"Condition": {"StringEquals": {"oidc.example.com/c:amr": "x"}}}),
            "multivalued",
        ),
        (
            json!({"Condition": {"StringEquals": {"oidc.example.com/c:sub": "${aws:username}"}}}),
            "policy variables",
        ),
        (json!({"NotAction": "sts:AssumeRole"}), "NotAction"),
        (json!({"Resource": "*"}), "Resource"),
        (json!({"Effect": "Maybe"}), "Effect"),
    ] {
        let error = statement(extra.clone()).unwrap_err().to_string();
        assert!(error.contains(needle), "{extra}: {error}");
    }
    assert!(TrustPolicy::parse(&json!({"Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "*"}]})).is_err());
    assert!(TrustPolicy::parse(&json!("not json")).is_err());
}

#[test]
fn a_policy_given_as_a_string_is_parsed() {
    let text =
        json!({"Statement": {"Effect": "Allow", "Principal": "*", "Action": "*"}}).to_string();
    let p = TrustPolicy::parse(&serde_json::Value::String(text)).unwrap();
    assert_eq!(p.evaluate(&ctx("s", "a", &[])), Decision::Allow);
}
