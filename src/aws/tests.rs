//! The desired state against kOps's own role names and trust policies, the diff of desired and
//! actual (each change one IAM call, key order no change, prune), and IAM's encoded documents.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Value, json};

use super::desired::{Target, desired, provider_url, thumbprints};
use super::*;
use crate::arn::{AccountId, Partition};
use crate::iam_map::IamMap;

const MAP: &str = r#"
clusterName: minimal.example.com
additionalAudiences: [extra.example.com]
serviceAccountExternalPermissions:
- name: myserviceaccount
  namespace: default
  aws:
    policyARNs: ["arn:aws-test:iam::123456789012:policy/UserPolicy"]
- name: myserviceaccount
  namespace: test-*
  aws:
    policyARNs: ["arn:aws-test:iam::123456789012:policy/UserPolicy"]
- name: myotherserviceaccount
  namespace: myapp
  aws:
    inlinePolicy: |-
      [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": ["*"]}]
"#;

const ISSUER: &str = "https://discovery.example.com/minimal.example.com";

fn map(text: &str) -> IamMap {
    IamMap::parse(text, Path::new("map.yaml")).unwrap()
}

fn state(text: &str, audience: Option<&str>) -> State {
    let (partition, account): (Partition, AccountId) =
        ("aws-test".parse().unwrap(), "123456789012".parse().unwrap());
    desired(
        &map(text),
        &Target {
            issuer: ISSUER,
            partition: &partition,
            account: &account,
            audience,
            thumbprints: Thumbprints::LeftOut,
            allow_http: false,
        },
    )
    .unwrap()
}

/// kOps's own trust policies for these entries (tests/integration/update_cluster/irsa/data/
/// aws_iam_role_*.sa.minimal.example.com_policy): JSON-equal with `--no-aud-condition`.
#[test]
fn trust_policies_without_aud_are_kops_s() {
    let desired = state(MAP, None);
    let kops = |ns: &str, name: &str, operator: &str| {
        json!({
          "Statement": [{
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {operator: {
              "discovery.example.com/minimal.example.com:sub":
                format!("system:serviceaccount:{ns}:{name}")
            }},
            "Effect": "Allow",
            "Principal": {"Federated":
              "arn:aws-test:iam::123456789012:oidc-provider/discovery.example.com/minimal.example.com"}
          }],
          "Version": "2012-10-17"
        })
    };
    let names: Vec<&str> = desired.roles.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "myotherserviceaccount.myapp.sa.minimal.example.com",
            "myserviceaccount.default.sa.minimal.example.com",
            "myserviceaccount.test-wildcard.sa.minimal.example.com",
        ]
    );
    let role = |name: &str| &desired.roles[name];
    assert_eq!(
        role("myserviceaccount.default.sa.minimal.example.com").trust_policy,
        kops("default", "myserviceaccount", "StringEquals")
    );
    assert_eq!(
        role("myserviceaccount.test-wildcard.sa.minimal.example.com").trust_policy,
        kops("test-*", "myserviceaccount", "StringLike")
    );
    assert_eq!(
        role("myotherserviceaccount.myapp.sa.minimal.example.com").trust_policy,
        kops("myapp", "myotherserviceaccount", "StringEquals")
    );
}

#[test]
fn the_aud_condition_is_string_equals_beside_a_string_like_sub() {
    let desired = state(MAP, Some("sts.amazonaws.com"));
    let glob = &desired.roles["myserviceaccount.test-wildcard.sa.minimal.example.com"];
    let condition = &glob.trust_policy["Statement"][0]["Condition"];
    assert_eq!(
        condition,
        &json!({
            "StringLike": {"discovery.example.com/minimal.example.com:sub":
                "system:serviceaccount:test-*:myserviceaccount"},
            "StringEquals": {"discovery.example.com/minimal.example.com:aud": "sts.amazonaws.com"},
        })
    );
    let exact = &desired.roles["myserviceaccount.default.sa.minimal.example.com"];
    let equals = &exact.trust_policy["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(equals.as_object().unwrap().len(), 2, "{equals}");
}

#[test]
fn provider_permissions_and_tags_follow_the_map() {
    let desired = state(MAP, Some("sts.amazonaws.com"));
    let provider = desired.provider.as_ref().unwrap();
    assert_eq!(
        provider.arn,
        "arn:aws-test:iam::123456789012:oidc-provider/discovery.example.com/minimal.example.com"
    );
    assert_eq!(provider.url, ISSUER);
    let ids: Vec<&str> = provider.client_ids.iter().map(String::as_str).collect();
    assert_eq!(
        ids,
        ["amazonaws.com", "extra.example.com", "sts.amazonaws.com"]
    );
    let inline = &desired.roles["myotherserviceaccount.myapp.sa.minimal.example.com"];
    assert!(inline.attached.is_empty());
    assert_eq!(
        inline.inline["myotherserviceaccount.myapp.sa.minimal.example.com"],
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": ["*"]}
        ]})
    );
    let managed = &desired.roles["myserviceaccount.default.sa.minimal.example.com"];
    assert_eq!(
        managed.attached,
        BTreeSet::from(["arn:aws-test:iam::123456789012:policy/UserPolicy".to_owned()])
    );
    assert!(managed.inline.is_empty());
    for role in desired.roles.values() {
        assert_eq!(role.tags[CLUSTER_TAG], "minimal.example.com");
    }
    assert_eq!(provider.tags[CLUSTER_TAG], "minimal.example.com");
}

#[test]
fn an_empty_account_gets_everything_and_a_matching_one_nothing() {
    let desired = state(MAP, Some("sts.amazonaws.com"));
    let changes = diff(&desired, &State::default(), true);
    let actions: Vec<&str> = changes.iter().map(Change::action).collect();
    assert_eq!(
        actions,
        [
            "CreateOpenIDConnectProvider",
            "CreateRole",
            "PutRolePolicy",
            "CreateRole",
            "AttachRolePolicy",
            "CreateRole",
            "AttachRolePolicy",
        ]
    );
    assert!(diff(&desired, &desired, true).is_empty());
}

/// `value` as JSON text with every object's keys in reverse order.
fn reversed(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), reversed(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reversed).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// `desired` as IAM would return it: no entries, documents re-read from text with their keys
/// in another order, a tag of someone else's.
fn as_found(desired: &State) -> State {
    let mut found = desired.clone();
    for role in found.roles.values_mut() {
        role.entry = None;
        let text = reversed(&role.trust_policy);
        assert!(text.starts_with("{ \"Version\""), "{text}");
        role.trust_policy = serde_json::from_str(&text).unwrap();
        role.tags.insert("owner".into(), "someone".into());
    }
    found
}

#[test]
fn what_iam_returns_for_the_desired_state_is_no_change() {
    let desired = state(MAP, Some("sts.amazonaws.com"));
    let found = as_found(&desired);
    assert!(diff(&desired, &found, false).is_empty());
}

#[test]
fn a_changed_map_changes_exactly_what_changed() {
    let before = state(MAP, Some("sts.amazonaws.com"));
    let changed = MAP
        .replace(
            "policy/UserPolicy\"]\n- name: myserviceaccount\n  namespace: test-*",
            "policy/Other\"]\n- name: myserviceaccount\n  namespace: test-*",
        )
        .replace("dynamodb:*", "s3:GetObject");
    let after = state(&changed, Some("sts.amazonaws.com"));
    let changes = diff(&after, &as_found(&before), false);
    let summary: Vec<(&str, String)> = changes
        .iter()
        .map(|c| match c {
            Change::Attach { policy_arn, .. } | Change::Detach { policy_arn, .. } => {
                (c.action(), policy_arn.clone())
            }
            Change::PutInline { role, .. } => (c.action(), role.clone()),
            other => (other.action(), String::new()),
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "PutRolePolicy",
                "myotherserviceaccount.myapp.sa.minimal.example.com".to_owned()
            ),
            (
                "AttachRolePolicy",
                "arn:aws-test:iam::123456789012:policy/Other".to_owned()
            ),
            (
                "DetachRolePolicy",
                "arn:aws-test:iam::123456789012:policy/UserPolicy".to_owned()
            ),
        ]
    );
}

#[test]
fn prune_empties_then_deletes_roles_that_left_the_map() {
    let desired = state(MAP, None);
    let mut found = as_found(&desired);
    let mut gone = found.roles["myserviceaccount.default.sa.minimal.example.com"].clone();
    gone.name = "old.default.sa.minimal.example.com".into();
    gone.inline
        .insert("extra".into(), json!({"Version": "2012-10-17"}));
    found.roles.insert(gone.name.clone(), gone);
    assert!(diff(&desired, &found, false).is_empty());
    let actions: Vec<&str> = diff(&desired, &found, true)
        .iter()
        .map(Change::action)
        .collect();
    assert_eq!(
        actions,
        ["DetachRolePolicy", "DeleteRolePolicy", "DeleteRole"]
    );
}

#[test]
fn provider_thumbprints_client_ids_and_tags_are_brought_in_line() {
    let mut desired = state(MAP, Some("sts.amazonaws.com"));
    let mut found = desired.clone();
    let have = found.provider.as_mut().unwrap();
    have.client_ids.remove("extra.example.com");
    have.client_ids.insert("old.example.com".into());
    have.tags = BTreeMap::new();
    have.thumbprints = Thumbprints::Listed(BTreeSet::from(["a".repeat(40)]));
    // Left out: what the provider holds is left alone.
    let actions: Vec<&str> = diff(&desired, &found, false)
        .iter()
        .map(Change::action)
        .collect();
    assert_eq!(
        actions,
        [
            "AddClientIDToOpenIDConnectProvider",
            "RemoveClientIDFromOpenIDConnectProvider",
            "TagOpenIDConnectProvider"
        ]
    );
    desired.provider.as_mut().unwrap().thumbprints =
        Thumbprints::Listed(BTreeSet::from(["b".repeat(40)]));
    assert_eq!(
        diff(&desired, &found, false)[0].action(),
        "UpdateOpenIDConnectProviderThumbprint"
    );
}

#[test]
fn iam_s_url_encoded_documents_are_decoded() {
    let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
    assert_eq!(
        decode_policy(encoded).unwrap(),
        json!({"Version": "2012-10-17", "Statement": []})
    );
    // A literal + stays a +.
    assert_eq!(
        decode_policy(r#"{"a": "x+y"}"#).unwrap(),
        json!({"a": "x+y"})
    );
    assert_eq!(
        decode_policy("%7B%22a%22%3A%22x%2By%22%7D").unwrap(),
        json!({"a": "x+y"})
    );
    assert!(decode_policy("not json").is_err());
}

#[test]
fn issuers_and_thumbprints_are_checked() {
    assert_eq!(
        provider_url("https://oidc.example.com/c/", false).unwrap(),
        "https://oidc.example.com/c"
    );
    for bad in [
        "http://oidc.example.com",
        "oidc.example.com",
        "https://oidc.example.com/?a=b",
        "https://u:p@oidc.example.com",
    ] {
        let error = provider_url(bad, false).unwrap_err().to_string();
        assert!(error.contains(bad), "{error}");
    }
    assert_eq!(
        provider_url("http://127.0.0.1:8080", true).unwrap(),
        "http://127.0.0.1:8080"
    );
    let upper = "AB:".repeat(19) + "AB";
    assert_eq!(
        thumbprints(&[upper]).unwrap(),
        BTreeSet::from(["ab".repeat(20)])
    );
    assert!(thumbprints(&["abc".into()]).is_err());
    assert!(thumbprints(&std::iter::repeat_n("a".repeat(40), 6).collect::<Vec<_>>()).is_err());
}

#[test]
fn the_roles_file_names_the_provider_and_each_role_s_arn_and_trust_policy() {
    let desired = state(MAP, Some("sts.amazonaws.com"));
    let file = super::desired::roles_file(
        &desired,
        &"aws-test".parse().unwrap(),
        &"123456789012".parse().unwrap(),
    );
    assert_eq!(
        file["OpenIDConnectProviders"],
        json!([{"Url": ISSUER, "ClientIDList": ["amazonaws.com", "extra.example.com", "sts.amazonaws.com"]}])
    );
    let roles = file["Roles"].as_array().unwrap();
    assert_eq!(roles.len(), 3);
    assert_eq!(
        roles[1]["Arn"],
        "arn:aws-test:iam::123456789012:role/myserviceaccount.default.sa.minimal.example.com"
    );
    assert_eq!(
        roles[1]["AssumeRolePolicyDocument"],
        desired.roles["myserviceaccount.default.sa.minimal.example.com"].trust_policy
    );
}

#[test]
fn a_star_namespace_and_a_long_name_are_kops_s_too() {
    let long = "x".repeat(70);
    let text = format!(
        "clusterName: minimal.example.com\nserviceAccountExternalPermissions:\n\
         - name: app\n  namespace: '*'\n  aws:\n    policyARNs: [\"arn:aws:iam::aws:policy/A\"]\n\
         - name: {long}\n  namespace: default\n  aws:\n    policyARNs: [\"arn:aws:iam::aws:policy/A\"]\n"
    );
    let desired = state(&text, None);
    let star = &desired.roles["app.wildcard.sa.minimal.example.com"];
    assert_eq!(
        star.trust_policy["Statement"][0]["Condition"],
        json!({"StringLike": {"discovery.example.com/minimal.example.com:sub":
            "system:serviceaccount:*:app"}})
    );
    // kOps's cut: 57 bytes, `-`, 6 characters of its hash (role::tests pins the algorithm).
    let cut: Vec<&String> = desired
        .roles
        .keys()
        .filter(|name| name.starts_with('x'))
        .collect();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].len(), 64);
    assert_eq!(&cut[0][..58], format!("{}-", "x".repeat(57)));
}

#[test]
fn a_thumbprint_left_out_is_said_so() {
    let desired = state(MAP, None);
    let text = plan::render(&diff(&desired, &State::default(), false));
    assert!(
        text.contains("thumbprints: none (the issuer's chain ends in a publicly trusted CA"),
        "{text}"
    );
    assert!(
        text.ends_with("Plan: 7 IAM calls: 4 to create, 3 to update, 0 to delete.\n"),
        "{text}"
    );
    assert_eq!(plan::render(&[]), "No changes: IAM matches the map.\n");
}
