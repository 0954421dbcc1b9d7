//! The map as a whole: both input forms, kOps's rules with the messages that name file and
//! entry, role names and ARNs, and lookup's order of preference.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const KOPS: &str = include_str!("../../tests/fixtures/iam_map/kops-get-all.yaml");
const STANDALONE: &str = include_str!("../../tests/fixtures/iam_map/standalone.yaml");

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/iam_map")
        .join(name)
}

fn parse(text: &str) -> Result<IamMap, IamMapError> {
    IamMap::parse(text, Path::new("map.yaml"))
}

/// A standalone map of cluster `c.example.com` with these entries (YAML list items).
fn map_of(entries: &str) -> String {
    format!("clusterName: c.example.com\nserviceAccountExternalPermissions:\n{entries}")
}

/// The message of a refused map.
fn refusal(text: &str) -> String {
    parse(text).expect_err("refused").to_string()
}

const ARN: &str = "arn:aws:iam::123456789012:policy/p";

// === Input forms ===

#[test]
fn a_kops_get_all_stream_yields_its_cluster_s_map() {
    let map = IamMap::load(&fixture("kops-get-all.yaml")).unwrap();
    assert_eq!(map.form(), Form::Kops);
    assert_eq!(map.cluster_name(), "prod.k8s.example.com");
    assert_eq!(map.source(), fixture("kops-get-all.yaml"));
    let pairs: Vec<(&str, &str)> = map
        .entries()
        .iter()
        .map(|e| (e.namespace(), e.name()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("kube-system", "external-dns"),
            ("default", "app"),
            ("team-*", "app"),
            ("*", "metrics"),
            ("team-a*", "app"),
            ("data-processing", "batch-pipeline-orchestrator"),
        ]
    );
    assert_eq!(map.additional_audiences(), ["sts.amazonaws.com"]);
    assert_eq!(map.client_ids(), ["amazonaws.com", "sts.amazonaws.com"]);
    let Permissions::Inline(policy) = map.entries()[1].permissions() else {
        panic!("{:?}", map.entries()[1]);
    };
    assert_eq!(policy.statements()[0]["Action"][1], "s3:ListBucket");
    assert_eq!(
        map.entries()[3].permissions(),
        &Permissions::PolicyArns(vec![
            "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy".into(),
            "arn:aws:iam::123456789012:policy/platform/metrics-extra".into(),
        ])
    );
}

#[test]
fn a_lone_cluster_document_and_v1alpha3_are_read() {
    let cluster = KOPS.split("\n---\n").next().unwrap();
    assert_eq!(parse(cluster).unwrap().entries().len(), 6);
    let v1alpha3 = cluster.replace("kops.k8s.io/v1alpha2", "kops.k8s.io/v1alpha3");
    assert_eq!(parse(&v1alpha3).unwrap().entries().len(), 6);
    // A Cluster without IRSA entries is an empty map.
    let bare = "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\n\
                spec:\n  iam:\n    legacy: false\n";
    let map = parse(bare).unwrap();
    assert!(map.entries().is_empty());
    assert_eq!(map.client_ids(), ["amazonaws.com"]);
}

#[test]
fn the_standalone_form_is_read() {
    let map = IamMap::load(&fixture("standalone.yaml")).unwrap();
    assert_eq!(map.form(), Form::Standalone);
    assert_eq!(map.cluster_name(), "lab.example.org");
    assert_eq!(map.entries().len(), 2);
    assert_eq!(map.additional_audiences(), ["sts.amazonaws.com"]);
    assert_eq!(map.entries()[1].condition(), Condition::StringLike);
    assert!(matches!(
        map.entries()[1].permissions(),
        Permissions::Inline(_)
    ));
    // additionalAudiences is optional there.
    let map = parse(&map_of(&format!(
        "- {{name: a, namespace: b, aws: {{policyARNs: [{ARN}]}}}}\n"
    )))
    .unwrap();
    assert!(map.additional_audiences().is_empty());
}

#[test]
fn a_standalone_map_refuses_unknown_keys() {
    let text = STANDALONE.replace("additionalAudiences", "additionalAudience");
    assert_eq!(
        refusal(&text),
        "map.yaml: unknown key \"additionalAudience\" (a standalone IAM map has clusterName, \
         serviceAccountExternalPermissions and additionalAudiences)"
    );
    let text = STANDALONE.replace("clusterName: lab.example.org\n", "");
    assert_eq!(refusal(&text), "map.yaml: clusterName is required");
    let text = STANDALONE.replace("clusterName: lab.example.org", "clusterName: Lab_Example");
    assert!(
        refusal(&text).starts_with("map.yaml: clusterName \"Lab_Example\" is not a DNS name"),
        "{}",
        refusal(&text)
    );
}

#[test]
fn a_kops_cluster_ignores_other_fields_and_documents() {
    // Fields of every shape elsewhere in the Cluster, and documents of any content around it.
    let text = format!(
        "kind: Strange\nspec:\n  iam: 3\n---\n{}\n---\n- a list document\n",
        KOPS.replace(
            "  channel: stable\n",
            "  channel: stable\n  futureField: {nested: [1, 2, {x: y}]}\n",
        )
    );
    assert_eq!(parse(&text).unwrap().entries().len(), 6);
}

#[test]
fn a_stream_needs_exactly_one_kops_cluster() {
    let instance_groups: String = KOPS
        .split("\n---\n")
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n---\n");
    assert_eq!(
        refusal(&instance_groups),
        "map.yaml: has no kind: Cluster document (found kinds: InstanceGroup, InstanceGroup)"
    );
    let cluster = KOPS.split("\n---\n").next().unwrap();
    let other = cluster.replace("prod.k8s.example.com", "dev.k8s.example.com");
    assert_eq!(
        refusal(&format!("{cluster}\n---\n{other}")),
        "map.yaml: has 2 kind: Cluster documents (prod.k8s.example.com, dev.k8s.example.com); \
         give one cluster's manifest"
    );
    let capi = "apiVersion: cluster.x-k8s.io/v1beta1\nkind: Cluster\nmetadata:\n  name: a\n";
    assert_eq!(
        refusal(capi),
        "map.yaml: kind: Cluster has apiVersion \"cluster.x-k8s.io/v1beta1\", not \
         kops.k8s.io/v1alpha2 (or kops.k8s.io/v1alpha3)"
    );
}

#[test]
fn wrong_shapes_are_named_by_their_path() {
    let cluster =
        "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: a.example.com\n";
    assert_eq!(
        refusal(&format!(
            "{cluster}spec:\n  iam:\n    serviceAccountExternalPermissions: all\n"
        )),
        "map.yaml: spec.iam.serviceAccountExternalPermissions: expected a list, found string"
    );
    assert_eq!(
        refusal(&format!("{cluster}spec:\n  iam: [1]\n")),
        "map.yaml: spec.iam: expected a mapping, found array"
    );
    assert_eq!(
        refusal(&format!(
            "{cluster}spec:\n  serviceAccountIssuerDiscovery:\n    additionalAudiences: [a, '']\n"
        )),
        "map.yaml: spec.serviceAccountIssuerDiscovery.additionalAudiences[1] is empty"
    );
    assert_eq!(
        refusal("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata: {}\n"),
        "map.yaml: metadata.name is required"
    );
    assert_eq!(
        refusal("[1, 2]"),
        "map.yaml: the document: expected a mapping, found array"
    );
    assert_eq!(
        refusal(""),
        "map.yaml: is empty: expected a kOps Cluster manifest or a standalone IAM map"
    );
    assert_eq!(
        refusal("a: 1\n---\nb: 2\n"),
        "map.yaml: has 2 YAML documents and none has a kind: a standalone IAM map is one document"
    );
}

#[test]
fn yaml_errors_keep_the_parser_s_reason() {
    // An alias bomb: 8^6 copies of a scalar, far over the alias budget.
    let bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: [*f, *f, *f, *f, *f, *f, *f, *f]\n";
    for (text, reason) in [
        (
            "clusterName: [unclosed\n",
            "unclosed bracket '[' at line 1, column 14",
        ),
        (
            "clusterName: a.example.com\nclusterName: b.example.com\n",
            "duplicate mapping key: clusterName",
        ),
        (bomb, "alias replay limit exceeded"),
    ] {
        let error = parse(text).expect_err(text);
        assert!(
            matches!(error, IamMapError::Yaml { .. }),
            "{text}: {error:?}"
        );
        assert_eq!(error.to_string(), "map.yaml: not valid YAML");
        let cause = std::error::Error::source(&error)
            .expect("a cause")
            .to_string();
        assert!(cause.contains(reason), "{cause}");
    }
}

#[test]
fn size_and_unreadable_files_are_refused_by_name() {
    let huge = format!("clusterName: a.example.com\n#{}\n", "x".repeat(MAX_BYTES));
    assert_eq!(
        refusal(&huge),
        format!("map.yaml: IAM maps over {MAX_BYTES} bytes are refused")
    );
    let missing = fixture("no-such-map.yaml");
    let error = IamMap::load(&missing).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("cannot read IAM map {}", missing.display())
    );
}

// === kOps's rules, each refusal naming file and entry ===

#[test]
fn kops_s_required_fields_and_one_of_rule() {
    let cases = [
        (
            format!("- namespace: default\n  aws: {{policyARNs: [{ARN}]}}\n"),
            "map.yaml: serviceAccountExternalPermissions[0] (default/): name is required",
        ),
        (
            format!("- name: app\n  namespace: ''\n  aws: {{policyARNs: [{ARN}]}}\n"),
            "map.yaml: serviceAccountExternalPermissions[0] (/app): namespace is required",
        ),
        (
            "- name: app\n  namespace: default\n".to_owned(),
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws is required",
        ),
        (
            "- name: app\n  namespace: default\n  aws: {policyARNs: [], inlinePolicy: ''}\n"
                .to_owned(),
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws: either \
             inlinePolicy or policyARNs must be set",
        ),
        (
            format!(
                "- name: app\n  namespace: default\n  aws:\n    policyARNs: [{ARN}]\n    \
                 inlinePolicy: '[]'\n"
            ),
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws: cannot set both \
             inlinePolicy and policyARNs",
        ),
    ];
    for (entries, expected) in cases {
        assert_eq!(refusal(&map_of(&entries)), expected, "{entries}");
    }
}

#[test]
fn a_service_account_may_have_one_entry() {
    let entry = format!("- {{name: app, namespace: default, aws: {{policyARNs: [{ARN}]}}}}\n");
    let other = format!("- {{name: other, namespace: default, aws: {{policyARNs: [{ARN}]}}}}\n");
    assert_eq!(
        refusal(&map_of(&format!("{entry}{other}{entry}"))),
        "map.yaml: serviceAccountExternalPermissions[2] (default/app): duplicate of \
         serviceAccountExternalPermissions[0]"
    );
}

#[test]
fn two_entries_may_not_share_a_role() {
    // `*` is spelled `wildcard` in the role name.
    let entries = format!(
        "- {{name: app, namespace: '*', aws: {{policyARNs: [{ARN}]}}}}\n\
         - {{name: app, namespace: wildcard, aws: {{policyARNs: [{ARN}]}}}}\n"
    );
    assert_eq!(
        refusal(&map_of(&entries)),
        "map.yaml: serviceAccountExternalPermissions[1] (wildcard/app): its role name \
         app.wildcard.sa.c.example.com is also serviceAccountExternalPermissions[0]'s"
    );
}

#[test]
fn names_kops_or_iam_cannot_make_a_role_of_are_refused() {
    let with = |namespace: &str, name: &str| {
        refusal(&map_of(&format!(
            "- {{name: '{name}', namespace: '{namespace}', aws: {{policyARNs: [{ARN}]}}}}\n"
        )))
    };
    assert_eq!(
        with("default", "app-*"),
        "map.yaml: serviceAccountExternalPermissions[0] (default/app-*): name \"app-*\" has a \
         wildcard; kOps allows one in the namespace only"
    );
    assert_eq!(
        with("team-?", "app"),
        "map.yaml: serviceAccountExternalPermissions[0] (team-?/app): namespace \"team-?\" has \
         '?', which IAM refuses in the role name kOps makes of it (A-Z a-z 0-9 + = , . @ _ -, and \
         * in a namespace)"
    );
    assert!(with("default", "a:b").contains("name \"a:b\" has ':'"));
    assert!(with("défault", "app").contains("namespace \"défault\" has 'é'"));
}

#[test]
fn policies_are_checked() {
    let entries = "- name: app\n  namespace: default\n  aws:\n    policyARNs:\n    - arn:aws:iam::123456789012:policy/ok\n    - arn:aws:s3:::bucket\n";
    assert_eq!(
        refusal(&map_of(entries)),
        "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws.policyARNs[1] \
         \"arn:aws:s3:::bucket\" service \"s3\" is not iam"
    );
    let entries = "- name: app\n  namespace: default\n  aws:\n    inlinePolicy: |\n      {\"Version\": \"2012-10-17\", \"Statement\": []}\n";
    assert_eq!(
        refusal(&map_of(entries)),
        "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws.inlinePolicy is a \
         JSON object, not the JSON array of statements kOps expects (kOps adds the Version and \
         the Statement key itself)"
    );
    let entries = "- name: app\n  namespace: default\n  aws:\n    inlinePolicy: '[{\"Effect\": \"Allow\", \"Action\": \"s3:*\"}]'\n";
    assert_eq!(
        refusal(&map_of(entries)),
        "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws.inlinePolicy \
         statement [0]: has no Resource"
    );
}

#[test]
fn entry_shapes_and_typos_are_refused() {
    let cases = [
        (
            "- just a string\n".to_owned(),
            "map.yaml: serviceAccountExternalPermissions[0]: expected a mapping, found string",
        ),
        (
            format!("- {{name: app, namespace: default, aws: {{policyArns: [{ARN}]}}}}\n"),
            // The second line is what kOps, which ignores the typo, would say.
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): unknown key \
             \"aws.policyArns\" (expected aws.policyARNs or aws.inlinePolicy)\n\
             map.yaml: serviceAccountExternalPermissions[0] (default/app): aws: either \
             inlinePolicy or policyARNs must be set",
        ),
        (
            format!("- {{name: 7, namespace: default, aws: {{policyARNs: [{ARN}]}}}}\n"),
            "map.yaml: serviceAccountExternalPermissions[0] (default/): name: expected a \
             string, found number",
        ),
        (
            "- {name: app, namespace: default, aws: {policyARNs: arn}}\n".to_owned(),
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws.policyARNs: \
             expected a list of policy ARNs, found string",
        ),
        (
            "- {name: app, namespace: default, aws: {policyARNs: [1]}}\n".to_owned(),
            "map.yaml: serviceAccountExternalPermissions[0] (default/app): aws.policyARNs[0]: \
             expected a string, found number",
        ),
    ];
    for (entries, expected) in cases {
        assert_eq!(refusal(&map_of(&entries)), expected, "{entries}");
    }
}

#[test]
fn every_refusal_is_reported_one_a_line() {
    let entries = format!(
        "- {{name: ok, namespace: default, aws: {{policyARNs: [{ARN}]}}}}\n\
         - {{namespace: default}}\n\
         - {{name: x, namespace: ns, aws: {{policyARNs: [bad]}}, extra: 1}}\n"
    );
    let error = parse(&map_of(&entries)).unwrap_err();
    let IamMapError::Entries { problems, .. } = &error else {
        panic!("{error:?}");
    };
    let found: Vec<(usize, &str)> = problems
        .iter()
        .map(|p| {
            let kind = match p.error {
                EntryError::Missing(what) => what,
                EntryError::UnknownKey { .. } => "unknown key",
                EntryError::PolicyArn { .. } => "policy ARN",
                _ => "other",
            };
            (p.index, kind)
        })
        .collect();
    assert_eq!(
        found,
        [
            (1, "name"),
            (1, "aws"),
            (2, "unknown key"),
            (2, "policy ARN")
        ]
    );
    let lines: Vec<String> = error.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("map.yaml: serviceAccountExternalPermissions["))
    );
}

// === What kOps derives ===

#[test]
fn role_names_arns_conditions_and_claims_follow_kops() {
    let map = parse(KOPS).unwrap();
    let derived: Vec<(String, &str, String)> = map
        .entries()
        .iter()
        .map(|e| {
            (
                e.role_name(map.cluster_name()),
                e.condition().operator(),
                e.subject_claim(),
            )
        })
        .collect();
    let expected = [
        (
            "external-dns.kube-system.sa.prod.k8s.example.com",
            "StringEquals",
            "system:serviceaccount:kube-system:external-dns",
        ),
        (
            "app.default.sa.prod.k8s.example.com",
            "StringEquals",
            "system:serviceaccount:default:app",
        ),
        (
            "app.team-wildcard.sa.prod.k8s.example.com",
            "StringLike",
            "system:serviceaccount:team-*:app",
        ),
        (
            "metrics.wildcard.sa.prod.k8s.example.com",
            "StringLike",
            "system:serviceaccount:*:metrics",
        ),
        (
            "app.team-awildcard.sa.prod.k8s.example.com",
            "StringLike",
            "system:serviceaccount:team-a*:app",
        ),
        (
            // 71 characters before the cut (hash computed independently of this code).
            "batch-pipeline-orchestrator.data-processing.sa.prod.k8s.e-uo5j7r",
            "StringEquals",
            "system:serviceaccount:data-processing:batch-pipeline-orchestrator",
        ),
    ];
    for ((role, operator, claim), (want_role, want_operator, want_claim)) in
        derived.iter().zip(expected)
    {
        assert_eq!(
            (role.as_str(), *operator, claim.as_str()),
            (want_role, want_operator, want_claim)
        );
    }
    assert_eq!(derived.len(), expected.len());
    assert_eq!(
        map.entries()[5].role_arn("aws-cn", "123456789012", map.cluster_name()),
        "arn:aws-cn:iam::123456789012:role/batch-pipeline-orchestrator.data-processing.sa.prod.k8s.e-uo5j7r"
    );
    assert_eq!(
        map.entries()[0].role_arn("aws", "123456789012", map.cluster_name()),
        "arn:aws:iam::123456789012:role/external-dns.kube-system.sa.prod.k8s.example.com"
    );
}

// === Lookup ===

#[test]
fn lookup_prefers_the_exact_entry_then_the_first_glob() {
    let map = parse(KOPS).unwrap();
    let found = |ns: &str, sa: &str| map.lookup(ns, sa).map(Entry::index);
    let all = |ns: &str, sa: &str| map.lookup_all(ns, sa).map(Entry::index).collect::<Vec<_>>();
    assert_eq!(found("kube-system", "external-dns"), Some(0));
    assert_eq!(found("default", "app"), Some(1));
    // `team-*` (2) and `team-a*` (4) both match: the first in file order wins.
    assert_eq!(all("team-a1", "app"), [2, 4]);
    assert_eq!(found("team-a1", "app"), Some(2));
    assert_eq!(found("team-b", "app"), Some(2));
    // `*` matches the empty run.
    assert_eq!(found("team-", "app"), Some(2));
    assert_eq!(found("anything", "metrics"), Some(3));
    assert_eq!(found("team", "app"), None);
    assert_eq!(found("prod", "app"), None);
    assert_eq!(found("kube-system", "external-dns-2"), None);
    assert_eq!(found("Kube-system", "external-dns"), None);
    // No ServiceAccount has these.
    assert_eq!(found("team-a:x", "app"), None);
    assert_eq!(found("", "metrics"), None);
    assert_eq!(found("default", ""), None);
}

#[test]
fn an_exact_entry_wins_over_an_earlier_glob() {
    let map = parse(&map_of(&format!(
        "- {{name: app, namespace: '*', aws: {{policyARNs: [{ARN}]}}}}\n\
         - {{name: app, namespace: 'de*', aws: {{policyARNs: [{ARN}]}}}}\n\
         - {{name: app, namespace: default, aws: {{policyARNs: [{ARN}]}}}}\n"
    )))
    .unwrap();
    assert_eq!(map.lookup("default", "app").map(Entry::index), Some(2));
    assert_eq!(
        map.lookup_all("default", "app")
            .map(Entry::index)
            .collect::<Vec<_>>(),
        [2, 0, 1]
    );
    assert_eq!(map.lookup("dev", "app").map(Entry::index), Some(0));
}

/// A Kubernetes name: DNS-1123 label characters.
fn k8s_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
}

/// A namespace glob as kOps allows it: label characters and `*`.
fn namespace_glob() -> impl Strategy<Value = String> {
    "[a-z0-9*-]{1,8}"
}

proptest! {
    /// Matching the subject claim (as IAM does) is matching the namespace glob and the name,
    /// for every name a ServiceAccount can have.
    #[test]
    fn matching_the_claim_is_matching_namespace_and_name(
        glob in namespace_glob(),
        name in k8s_name(),
        namespace in k8s_name(),
        service_account in prop_oneof![Just(String::new()), k8s_name()],
    ) {
        let text = map_of(&format!(
            "- {{name: '{name}', namespace: '{glob}', aws: {{policyARNs: [{ARN}]}}}}\n"
        ));
        let map = parse(&text).unwrap();
        let service_account = if service_account.is_empty() { name.clone() } else { service_account };
        let expected = pattern::string_like(&glob, &namespace) && name == service_account;
        prop_assert_eq!(map.lookup(&namespace, &service_account).is_some(), expected);
    }

    /// Role names fit IAM, keep kOps's prefix, and are the full name whenever it fits.
    #[test]
    fn role_names_fit_iam(
        name in k8s_name(),
        namespace in namespace_glob(),
        cluster in "[a-z0-9]{1,40}(\\.[a-z0-9]{1,40}){0,4}",
    ) {
        let full = format!("{name}.{}.sa.{cluster}", namespace.replace('*', "wildcard"));
        let role = role_name(&name, &namespace, &cluster);
        prop_assert!(role.len() <= MAX_ROLE_NAME);
        if full.len() <= MAX_ROLE_NAME {
            prop_assert_eq!(role, full);
        } else {
            prop_assert_eq!(role.len(), MAX_ROLE_NAME);
            prop_assert_eq!(&role[..57], &full[..57]);
        }
    }
}
