//! The webhook's tests: the EKS rules one by one, AdmissionReview decoding and encoding, the
//! golden reviews of `tests/fixtures/webhook/`, and random pods whose patches are applied by an
//! independent RFC 6902 implementation (`json-patch`) and checked for what the API server would
//! refuse and for idempotence.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::mutation::{
    DEFAULT_EXPIRATION_SECONDS, Injection, MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS,
    Mutation, PatchOp, SKIP_CONTAINERS_ANNOTATION, TOKEN_DIR, TOKEN_EXPIRATION_ANNOTATION,
    TOKEN_FILE, VOLUME, WINDOWS_TOKEN_FILE, env_for, mutate,
};
use super::review::{Review, ReviewError, V1, V1BETA1};

const ROLE: &str = "arn:aws:iam::111122223333:role/app";

// === Helpers ===

/// `pod` with `mutation`'s patch applied by `json-patch`; panics when the patch does not apply.
fn apply(pod: &Value, mutation: &Mutation) -> Value {
    let patch: json_patch::Patch =
        serde_json::from_slice(&mutation.patch_json()).expect("the patch is an RFC 6902 patch");
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch)
        .unwrap_or_else(|e| panic!("the patch does not apply: {e}\n{mutation:#?}\n{pod:#}"));
    patched
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

fn annotated(annotations: Value, spec: Value) -> Value {
    let mut pod = pod(spec);
    pod["metadata"]["annotations"] = annotations;
    pod
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .filter_map(|f| pod["spec"][f].as_array())
        .flatten()
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect()
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

fn has_token_mount(container: &Value) -> bool {
    container["volumeMounts"].as_array().is_some_and(|mounts| {
        mounts
            .iter()
            .any(|m| m["name"] == VOLUME && m["mountPath"] == TOKEN_DIR && m["readOnly"] == true)
    })
}

fn paths(mutation: &Mutation) -> Vec<&str> {
    mutation
        .patch
        .iter()
        .map(|PatchOp::Add { path, .. }| path.as_str())
        .collect()
}

/// Invariants the schema cannot express, which the API server enforces: unique volume names,
/// unique mount paths in a container (compared without trailing slashes), every mount naming
/// a declared volume, unique env names in a container. Each as a list of what breaks it.
fn broken_invariants(pod: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    let volumes: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    if volumes.iter().collect::<BTreeSet<_>>().len() != volumes.len() {
        broken.push(format!("duplicate volume names: {volumes:?}"));
    }
    for container in containers(pod) {
        let name = &container["name"];
        let mounts: Vec<&Value> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let mount_paths: Vec<&str> = mounts
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .map(|p| p.trim_end_matches('/'))
            .collect();
        if mount_paths.iter().collect::<BTreeSet<_>>().len() != mount_paths.len() {
            broken.push(format!("{name}: duplicate mount paths: {mount_paths:?}"));
        }
        for mount in mounts {
            if !volumes.iter().any(|v| mount["name"] == *v) {
                broken.push(format!(
                    "{name}: mount of undeclared volume {}",
                    mount["name"]
                ));
            }
        }
        let env = env_names(container);
        if env.iter().collect::<BTreeSet<_>>().len() != env.len() {
            broken.push(format!("{name}: duplicate env names: {env:?}"));
        }
    }
    broken
}

/// Mutates `pod`, applies the patch, checks the invariants that held before still hold, and
/// that mutating the result changes nothing (and warns of nothing new); returns the patched pod
/// and the mutation.
fn mutate_checked(pod: &Value, injection: &Injection) -> (Value, Mutation) {
    let mutation = mutate(pod, injection);
    let patched = apply(pod, &mutation);
    let before = broken_invariants(pod);
    let after = broken_invariants(&patched);
    assert!(
        after.iter().all(|b| before.contains(b)),
        "the patch broke an invariant: {after:?} (before: {before:?})\n{patched:#}"
    );
    let again = mutate(&patched, injection);
    assert_eq!(again.patch, [], "not idempotent:\n{patched:#}");
    // Warnings about the lifetime of a volume to add are not repeated once it is there.
    assert!(
        again.warnings.iter().all(|w| mutation.warnings.contains(w)),
        "new warnings on reinvocation: {:?} after {:?}",
        again.warnings,
        mutation.warnings
    );
    for PatchOp::Add { path, .. } in &mutation.patch {
        assert!(
            !matches!(path.as_str(), "/spec/containers" | "/spec/initContainers"),
            "a whole container list is replaced: {path}"
        );
    }
    (patched, mutation)
}

fn regional(region: &str) -> Injection {
    Injection {
        regional_sts: true,
        region: Some(region.to_owned()),
        ..Injection::new(ROLE)
    }
}

// === The EKS rules ===

#[test]
fn env_comes_in_the_eks_order() {
    let names = |i: &Injection| env_for(i, false).iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(
        names(&Injection::new(ROLE)),
        ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    );
    assert_eq!(
        names(&regional("eu-west-1")),
        [
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_DEFAULT_REGION",
            "AWS_REGION",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    // An empty region is no region.
    assert_eq!(names(&regional("")).len(), 3);
    let env = env_for(&regional("eu-west-1"), true);
    assert_eq!(env[0].value, "regional");
    assert_eq!(env[1].value, "eu-west-1");
    assert_eq!(env[3].value, ROLE);
    assert_eq!(env[4].value, WINDOWS_TOKEN_FILE);
}

#[test]
fn an_ordinary_pod_gets_volume_env_and_mount() {
    let pod = pod(json!({"containers": [{"name": "app", "image": "nginx"}]}));
    let (patched, mutation) = mutate_checked(&pod, &Injection::new(ROLE));
    assert_eq!(
        paths(&mutation),
        [
            "/spec/volumes",
            "/spec/containers/0/env",
            "/spec/containers/0/volumeMounts"
        ]
    );
    assert_eq!(mutation.warnings, Vec::<String>::new());
    let volume = &patched["spec"]["volumes"][0];
    assert_eq!(
        volume,
        &json!({"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}})
    );
    let app = &patched["spec"]["containers"][0];
    assert_eq!(env_value(app, "AWS_ROLE_ARN"), Some(ROLE));
    assert_eq!(
        env_value(app, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        Some(TOKEN_FILE)
    );
    assert!(has_token_mount(app));
}

#[test]
fn existing_lists_are_appended_to_one_item_at_a_time() {
    let pod = pod(json!({
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "app", "env": [{"name": "X", "value": "1"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
    }));
    let (patched, mutation) = mutate_checked(&pod, &Injection::new(ROLE));
    assert_eq!(
        paths(&mutation),
        [
            "/spec/volumes/0",
            "/spec/containers/0/env/-",
            "/spec/containers/0/env/-",
            "/spec/containers/0/volumeMounts/-"
        ]
    );
    // The EKS webhook puts its volume first; the env and mounts go last.
    assert_eq!(patched["spec"]["volumes"][0]["name"], VOLUME);
    assert_eq!(
        env_names(&patched["spec"]["containers"][0]),
        ["X", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"]
    );
}

#[test]
fn null_lists_are_replaced_by_new_ones() {
    let pod = pod(
        json!({"volumes": null, "containers": [{"name": "app", "env": null, "volumeMounts": null}]}),
    );
    let (_, mutation) = mutate_checked(&pod, &Injection::new(ROLE));
    assert_eq!(
        paths(&mutation),
        [
            "/spec/volumes",
            "/spec/containers/0/env",
            "/spec/containers/0/volumeMounts"
        ]
    );
}

#[test]
fn existing_env_is_never_overwritten_by_group() {
    let injection = regional("eu-west-1");
    let with = |env: Value| {
        let pod = pod(json!({"containers": [{"name": "app", "env": env}]}));
        let (patched, _) = mutate_checked(&pod, &injection);
        patched["spec"]["containers"][0].clone()
    };
    // Either web-identity variable holds the group: neither is added.
    let app = with(json!([{"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/mine"}]));
    assert_eq!(
        env_names(&app),
        [
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_DEFAULT_REGION",
            "AWS_REGION"
        ]
    );
    assert_eq!(
        env_value(&app, "AWS_WEB_IDENTITY_TOKEN_FILE"),
        Some("/mine")
    );
    // Either region variable holds the group.
    let app = with(json!([{"name": "AWS_REGION", "value": "us-east-1"}]));
    assert_eq!(
        env_names(&app),
        [
            "AWS_REGION",
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE"
        ]
    );
    assert_eq!(env_value(&app, "AWS_REGION"), Some("us-east-1"));
    // The STS variable stands alone.
    let app = with(json!([{"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "legacy"}]));
    assert_eq!(
        env_value(&app, "AWS_STS_REGIONAL_ENDPOINTS"),
        Some("legacy")
    );
    assert_eq!(env_names(&app).len(), 5);
}

#[test]
fn the_mount_is_added_even_when_all_the_env_is_there() {
    // The EKS webhook adds no mount here (its #82): the token file would not exist.
    let pod = pod(json!({"containers": [{"name": "app", "env": [
        {"name": "AWS_ROLE_ARN", "value": ROLE},
        {"name": "AWS_REGION", "value": "eu-west-1"},
        {"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"},
    ]}]}));
    let (patched, mutation) = mutate_checked(&pod, &regional("eu-west-1"));
    assert_eq!(
        paths(&mutation),
        ["/spec/volumes", "/spec/containers/0/volumeMounts"]
    );
    assert!(has_token_mount(&patched["spec"]["containers"][0]));
}

#[test]
fn init_containers_and_native_sidecars_are_injected_ephemeral_ones_are_not() {
    let pod = pod(json!({
        "initContainers": [{"name": "init"}, {"name": "proxy", "restartPolicy": "Always"}],
        "containers": [{"name": "app"}],
        "ephemeralContainers": [{"name": "debug"}],
    }));
    let (patched, _) = mutate_checked(&pod, &Injection::new(ROLE));
    for container in containers(&patched) {
        assert!(has_token_mount(container), "{container}");
        assert_eq!(env_value(container, "AWS_ROLE_ARN"), Some(ROLE));
    }
    assert_eq!(
        patched["spec"]["ephemeralContainers"],
        json!([{"name": "debug"}])
    );
}

#[test]
fn skip_containers_are_left_alone() {
    let spec = json!({
        "initContainers": [{"name": "init"}],
        "containers": [{"name": "app"}, {"name": "metrics"}, {"name": "log"}],
    });
    for annotation in [
        "metrics,log,init",
        "metrics, log , init",
        "\"metrics\",log,init\napp",
    ] {
        let pod = annotated(
            json!({SKIP_CONTAINERS_ANNOTATION: annotation}),
            spec.clone(),
        );
        let (patched, _) = mutate_checked(&pod, &Injection::new(ROLE));
        let injected: Vec<&str> = containers(&patched)
            .filter(|c| has_token_mount(c))
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(injected, ["app"], "{annotation:?}");
        assert_eq!(patched["spec"]["containers"][1], json!({"name": "metrics"}));
    }
}

#[test]
fn the_expiration_annotation_wins_within_bounds() {
    let expiration = |annotation: Option<&str>, configured: i64| {
        let annotations = annotation.map_or(json!({}), |a| json!({TOKEN_EXPIRATION_ANNOTATION: a}));
        let pod = annotated(annotations, json!({"containers": [{"name": "app"}]}));
        let injection = Injection {
            expiration_seconds: configured,
            ..Injection::new(ROLE)
        };
        let (patched, mutation) = mutate_checked(&pod, &injection);
        (
            patched["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"]
                .as_i64()
                .unwrap(),
            mutation.warnings,
        )
    };
    assert_eq!(
        expiration(None, DEFAULT_EXPIRATION_SECONDS),
        (86_400, vec![])
    );
    assert_eq!(expiration(Some("3600"), 86_400), (3600, vec![]));
    assert_eq!(
        expiration(Some("100"), 86_400),
        (MIN_EXPIRATION_SECONDS, vec![])
    );
    assert_eq!(expiration(None, -5), (MIN_EXPIRATION_SECONDS, vec![]));
    assert_eq!(
        expiration(Some("1h"), 7200),
        (
            7200,
            vec![
                "IRSA: annotation eks.amazonaws.com/token-expiration \"1h\" is not a number of seconds; using 7200"
                    .to_owned()
            ]
        )
    );
    assert_eq!(
        expiration(Some("9999999999"), 86_400),
        (
            MAX_EXPIRATION_SECONDS,
            vec![
                "IRSA: token expiration 9999999999s is above the 4294967296s Kubernetes accepts; using 4294967296"
                    .to_owned()
            ]
        )
    );
}

#[test]
fn windows_pods_get_the_windows_token_path() {
    let term = |key: &str, values: Value| json!({"matchExpressions": [{"key": key, "operator": "In", "values": values}]});
    let affinity = |terms: Vec<Value>| json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
    let cases = [
        (
            json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
            true,
        ),
        (
            json!({"nodeSelector": {"beta.kubernetes.io/os": "windows"}}),
            true,
        ),
        (
            json!({"nodeSelector": {"kubernetes.io/os": "linux"}}),
            false,
        ),
        (json!({"os": {"name": "windows"}}), true),
        (json!({"os": {"name": "linux"}}), false),
        (
            json!({"affinity": affinity(vec![term("kubernetes.io/os", json!(["windows"]))])}),
            true,
        ),
        (
            json!({"affinity": affinity(vec![
                term("kubernetes.io/os", json!(["windows"])),
                term("beta.kubernetes.io/os", json!(["windows"])),
            ])}),
            true,
        ),
        // A term that allows Linux nodes: the pod may run on Linux.
        (
            json!({"affinity": affinity(vec![
                term("kubernetes.io/os", json!(["windows"])),
                term("kubernetes.io/arch", json!(["amd64"])),
            ])}),
            false,
        ),
        (
            json!({"affinity": affinity(vec![term("kubernetes.io/os", json!(["windows", "linux"]))])}),
            false,
        ),
        (json!({"affinity": affinity(vec![])}), false),
        (
            json!({"affinity": affinity(vec![json!({"matchExpressions": [
                {"key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"]}]})])}),
            false,
        ),
    ];
    for (mut spec, windows) in cases {
        spec["containers"] = json!([{"name": "app"}]);
        spec["securityContext"] = json!({});
        let injection = Injection {
            set_fs_group: Some(1000),
            ..Injection::new(ROLE)
        };
        let (patched, _) = mutate_checked(&pod(spec.clone()), &injection);
        let file = env_value(
            &patched["spec"]["containers"][0],
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        );
        let expected = if windows {
            WINDOWS_TOKEN_FILE
        } else {
            TOKEN_FILE
        };
        assert_eq!(file, Some(expected), "{spec}");
        // The API server refuses an fsGroup in a Windows pod.
        assert_eq!(
            patched["spec"]["securityContext"].get("fsGroup").is_some(),
            !windows,
            "{spec}"
        );
    }
}

#[test]
fn a_foreign_volume_of_that_name_leaves_the_pod_alone() {
    for (volume, kind) in [
        (
            json!({"name": VOLUME, "hostPath": {"path": "/token"}}),
            "a hostPath volume",
        ),
        (
            json!({"name": VOLUME, "projected": {"sources": [{"serviceAccountToken": {"path": "other"}}]}}),
            "a projected volume without a serviceAccountToken at path \"token\"",
        ),
        (json!({"name": VOLUME}), "a volume without a source"),
    ] {
        let pod = pod(json!({"volumes": [volume], "containers": [{"name": "app"}]}));
        let (_, mutation) = mutate_checked(&pod, &Injection::new(ROLE));
        assert_eq!(mutation.patch, [], "{pod}");
        assert_eq!(
            mutation.warnings,
            [format!(
                "IRSA: pod not injected: its volume \"aws-iam-token\" is {kind}, not the projected ServiceAccount token"
            )]
        );
    }
}

#[test]
fn a_token_volume_already_there_is_kept_and_its_audience_checked() {
    let volume = |audience: &str| {
        json!({"name": VOLUME, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"audience": audience, "expirationSeconds": 3600, "path": "token"}}]}})
    };
    let pod_with =
        |audience| pod(json!({"volumes": [volume(audience)], "containers": [{"name": "app"}]}));
    let (patched, mutation) = mutate_checked(&pod_with("sts.amazonaws.com"), &Injection::new(ROLE));
    assert_eq!(
        paths(&mutation),
        ["/spec/containers/0/env", "/spec/containers/0/volumeMounts"]
    );
    assert_eq!(mutation.warnings, Vec::<String>::new());
    assert_eq!(
        patched["spec"]["volumes"],
        json!([volume("sts.amazonaws.com")])
    );
    let mut no_audience = pod_with("");
    no_audience["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
        .as_object_mut()
        .unwrap()
        .remove("audience");
    let (_, mutation) = mutate_checked(&no_audience, &Injection::new(ROLE));
    assert_eq!(
        mutation.warnings,
        [
            "IRSA: volume \"aws-iam-token\" already projects a token for audience (none: the API server's), not \"sts.amazonaws.com\"; left as is"
        ]
    );
    let (_, mutation) = mutate_checked(&pod_with("other"), &Injection::new(ROLE));
    assert_eq!(mutation.patch.len(), 2);
    assert_eq!(
        mutation.warnings,
        [
            "IRSA: volume \"aws-iam-token\" already projects a token for audience \"other\", not \"sts.amazonaws.com\"; left as is"
        ]
    );
}

#[test]
fn a_mount_in_the_way_leaves_that_container_alone() {
    let pod = pod(json!({
        "volumes": [{"name": "istio-token", "emptyDir": {}}],
        "containers": [
            {"name": "istio-proxy", "volumeMounts": [{"name": "istio-token", "mountPath": format!("{TOKEN_DIR}/")}]},
            {"name": "nested", "volumeMounts": [{"name": "istio-token", "mountPath": format!("{TOKEN_DIR}/token")}]},
            {"name": "parent", "volumeMounts": [{"name": "istio-token", "mountPath": "/var/run/secrets/eks.amazonaws.com"}]},
            {"name": "beside", "volumeMounts": [{"name": "istio-token", "mountPath": format!("{TOKEN_DIR}-2")}]},
            {"name": "ours", "volumeMounts": [{"name": VOLUME, "mountPath": format!("{TOKEN_DIR}/")}]},
        ],
    }));
    let (patched, mutation) = mutate_checked(&pod, &Injection::new(ROLE));
    assert_eq!(
        mutation.warnings,
        [
            format!(
                "IRSA: container \"istio-proxy\" not injected: volume \"istio-token\" is mounted at \"{TOKEN_DIR}\", where the token goes"
            ),
            format!(
                "IRSA: container \"nested\" not injected: volume \"istio-token\" is mounted at \"{TOKEN_DIR}/token\", where the token goes"
            ),
        ]
    );
    let spec = &patched["spec"]["containers"];
    assert_eq!(spec[0], pod["spec"]["containers"][0]);
    assert_eq!(spec[1], pod["spec"]["containers"][1]);
    assert!(has_token_mount(&spec[2]) && has_token_mount(&spec[3]));
    // A mount of ours (trailing slash and all) is not added twice; the env still is.
    assert_eq!(
        spec[4]["volumeMounts"],
        pod["spec"]["containers"][4]["volumeMounts"]
    );
    assert_eq!(env_value(&spec[4], "AWS_ROLE_ARN"), Some(ROLE));
}

#[test]
fn fs_group_is_set_only_where_missing() {
    let injection = Injection {
        set_fs_group: Some(2000),
        ..Injection::new(ROLE)
    };
    let context = |security_context: Option<Value>| {
        let mut spec = json!({"containers": [{"name": "app"}]});
        if let Some(c) = security_context {
            spec["securityContext"] = c;
        }
        let (patched, mutation) = mutate_checked(&pod(spec), &injection);
        (patched["spec"]["securityContext"].clone(), mutation)
    };
    assert_eq!(context(None).0, json!({"fsGroup": 2000}));
    assert_eq!(context(Some(Value::Null)).0, json!({"fsGroup": 2000}));
    assert_eq!(
        context(Some(json!({"runAsUser": 1000}))).0,
        json!({"runAsUser": 1000, "fsGroup": 2000})
    );
    assert_eq!(
        context(Some(json!({"fsGroup": 7}))).0,
        json!({"fsGroup": 7})
    );
    assert_eq!(
        context(Some(json!({"fsGroup": 0}))).0,
        json!({"fsGroup": 0})
    );
    // Not without a container that mounts the token.
    let pod = annotated(
        json!({SKIP_CONTAINERS_ANNOTATION: "app"}),
        json!({"containers": [{"name": "app"}]}),
    );
    let (patched, _) = mutate_checked(&pod, &injection);
    assert_eq!(patched["spec"].get("securityContext"), None);
    // Off by default.
    let (patched, _) = mutate_checked(
        &self::pod(json!({"containers": [{"name": "app"}]})),
        &Injection::new(ROLE),
    );
    assert_eq!(patched["spec"].get("securityContext"), None);
}

#[test]
fn json_that_is_not_a_pod_is_left_alone() {
    let injection = Injection::new(ROLE);
    for value in [
        json!(null),
        json!(1),
        json!([]),
        json!({}),
        json!({"spec": 1}),
        json!({"spec": {"containers": "app"}}),
        json!({"spec": {"containers": [1, null, "x"]}}),
        json!({"metadata": {"annotations": 1}, "spec": {}}),
    ] {
        let (_, mutation) = mutate_checked(&value, &injection);
        assert!(mutation.warnings.is_empty(), "{value}");
        let changed = mutation
            .patch
            .iter()
            .any(|PatchOp::Add { path, .. }| path != "/spec/volumes");
        assert!(!changed, "{value}: {mutation:?}");
    }
    let (_, mutation) = mutate_checked(&json!({"spec": {"volumes": {}}}), &injection);
    assert_eq!(mutation.patch, []);
    assert_eq!(
        mutation.warnings,
        ["IRSA: pod not injected: its spec.volumes is not a list"]
    );
    let pod = json!({"spec": {"containers": [{"name": "app", "env": {}}]}});
    let (_, mutation) = mutate_checked(&pod, &injection);
    assert_eq!(paths(&mutation), ["/spec/volumes"]);
    assert_eq!(
        mutation.warnings,
        ["IRSA: container \"app\" not injected: its env or volumeMounts is not a list"]
    );
}

#[test]
fn warnings_are_bounded() {
    let conflicting: Vec<Value> = (0..40)
        .map(|i| json!({"name": format!("c{i}"), "volumeMounts": [{"name": "x", "mountPath": TOKEN_DIR}]}))
        .collect();
    let mutation = mutate(
        &pod(json!({"containers": conflicting})),
        &Injection::new(ROLE),
    );
    assert_eq!(mutation.warnings.len(), 16);
    assert_eq!(mutation.warnings[15], "IRSA: 25 more warnings");
    let long = "x".repeat(300);
    let pod = pod(
        json!({"containers": [{"name": long, "volumeMounts": [{"name": long, "mountPath": format!("{TOKEN_DIR}/{long}")}]}]}),
    );
    let mutation = mutate(&pod, &Injection::new(ROLE));
    assert!(
        mutation.warnings.iter().all(|w| w.len() < 256),
        "{:?}",
        mutation.warnings
    );
}

// === AdmissionReview ===

fn review_body(api_version: &str, request: &Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"apiVersion": api_version, "kind": "AdmissionReview", "request": request}),
    )
    .unwrap()
}

fn pod_request(operation: &str, object: Value) -> Value {
    json!({
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "team",
        "operation": operation,
        "userInfo": {"username": "admin"},
        "object": object,
        "oldObject": null,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    })
}

fn response_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a response is JSON")
}

#[test]
fn both_versions_decode_and_are_echoed() {
    let object = pod(json!({"serviceAccountName": "app", "containers": [{"name": "app"}]}));
    for version in [V1, V1BETA1] {
        let review = Review::decode(&review_body(
            version,
            &pod_request("CREATE", object.clone()),
        ))
        .unwrap();
        assert_eq!(review.api_version(), version);
        assert_eq!(review.request().dry_run, Some(false));
        let create = review.pod_create().expect("a pod CREATE");
        assert_eq!((create.namespace, create.service_account), ("team", "app"));
        let mutation = mutate(create.pod, &Injection::new(ROLE));
        let response = response_of(&review.respond(&mutation));
        assert_eq!(response["apiVersion"], version);
        assert_eq!(response["kind"], "AdmissionReview");
        assert_eq!(
            response["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(response["response"]["allowed"], true);
        assert_eq!(response["response"]["patchType"], "JSONPatch");
        let patch = STANDARD
            .decode(response["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(patch, mutation.patch_json());
        assert_eq!(response["response"].get("warnings"), None);
        assert_eq!(response["response"].get("status"), None);
    }
}

#[test]
fn an_empty_mutation_sends_no_patch_and_warnings_are_sent() {
    let object = pod(json!({"containers": [{"name": "app"}]}));
    let review = Review::decode(&review_body(V1, &pod_request("CREATE", object))).unwrap();
    let response = response_of(&review.allow());
    assert_eq!(
        response,
        json!({"apiVersion": V1, "kind": "AdmissionReview",
               "response": {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": true}})
    );
    let warned = Mutation {
        patch: vec![],
        warnings: vec!["w".to_owned()],
    };
    let response = response_of(&review.respond(&warned));
    assert_eq!(response["response"]["warnings"], json!(["w"]));
    assert_eq!(response["response"].get("patch"), None);
}

#[test]
fn only_the_create_of_a_pod_is_for_mutation() {
    let object = pod(json!({"containers": [{"name": "app"}]}));
    let create = pod_request("CREATE", object.clone());
    let decode = |request: &Value| Review::decode(&review_body(V1, request)).unwrap();
    assert!(decode(&create).pod_create().is_some());
    assert!(
        decode(&pod_request("UPDATE", object))
            .pod_create()
            .is_none()
    );
    let mut eviction = create.clone();
    eviction["subResource"] = json!("eviction");
    eviction["kind"] = json!({"group": "policy", "version": "v1", "kind": "Eviction"});
    eviction["object"] =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}});
    assert!(decode(&eviction).pod_create().is_none());
    let mut other = create.clone();
    other["resource"] = json!({"group": "apps", "version": "v1", "resource": "deployments"});
    assert!(decode(&other).pod_create().is_none());
    let mut no_object = create.clone();
    no_object["object"] = Value::Null;
    assert!(decode(&no_object).pod_create().is_none());
    // Defaults: the ServiceAccount `default`, the pod's own namespace.
    let mut bare = create;
    bare["namespace"] = json!("");
    bare["object"]["metadata"]["namespace"] = json!("own");
    let review = decode(&bare);
    let pod = review.pod_create().unwrap();
    assert_eq!((pod.namespace, pod.service_account), ("own", "default"));
}

#[test]
fn an_undecodable_body_is_refused_with_400() {
    let refuse = |body: &[u8]| {
        let rejection = Review::decode(body).unwrap_err();
        (response_of(&rejection.to_json()), rejection)
    };
    let (response, rejection) = refuse(b"not json");
    assert!(matches!(rejection.error(), ReviewError::NotJson(_)));
    assert_eq!(response["apiVersion"], V1);
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(response["response"]["uid"], "");
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 400);
    assert!(
        response["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the body is not JSON: expected ident at line 1 column 2"),
        "{response}"
    );

    // The uid and a known apiVersion are echoed when they can be read.
    let mut request = pod_request("CREATE", json!({}));
    request.as_object_mut().unwrap().remove("resource");
    let (response, rejection) = refuse(&review_body(V1BETA1, &request));
    assert!(matches!(rejection.error(), ReviewError::BadRequest(_)));
    assert_eq!(rejection.uid(), "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["apiVersion"], V1BETA1);
    assert_eq!(
        response["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(
        response["response"]["status"]["message"],
        "the AdmissionReview's request does not decode: missing field `resource`"
    );

    let (response, rejection) = refuse(&review_body("admission.k8s.io/v2", &request));
    assert!(matches!(rejection.error(), ReviewError::NotAReview { .. }));
    assert_eq!(response["apiVersion"], V1);
    let (_, rejection) =
        refuse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{}}"#);
    assert!(matches!(rejection.error(), ReviewError::NotAReview { .. }));
    let (response, rejection) =
        refuse(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#);
    assert!(matches!(rejection.error(), ReviewError::NoRequest));
    assert_eq!(
        response["response"]["status"],
        json!({"code": 400, "message": "the AdmissionReview has no request"})
    );
    let (response, _) = refuse(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#,
    );
    assert_eq!(response["response"]["uid"], "");
}

// === Golden reviews (tests/fixtures/webhook) ===

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The injection each golden case is answered with (the caller's lookup, here by case name).
fn golden_injection(case: &str) -> Injection {
    match case {
        "v1beta1-sidecars" => regional("eu-west-1"),
        "v1-windows-affinity" | "v1-conflicts" => Injection {
            set_fs_group: Some(1000),
            ..Injection::new(ROLE)
        },
        _ => Injection::new(ROLE),
    }
}

/// What a server does with a body (the module example's flow), with every pod's
/// ServiceAccount mapped to `injection`.
fn answer(body: &[u8], injection: &Injection) -> Vec<u8> {
    match Review::decode(body) {
        Err(rejection) => rejection.to_json(),
        Ok(review) => match review.pod_create() {
            Some(pod) => review.respond(&mutate(pod.pod, injection)),
            None => review.allow(),
        },
    }
}

/// `response.patch`, decoded from base64 and JSON.
fn decoded_patch(response: &Value) -> Option<Value> {
    let patch = response["response"]
        .get("patch")?
        .as_str()
        .expect("patch is a string");
    Some(
        serde_json::from_slice(&STANDARD.decode(patch).expect("patch is base64"))
            .expect("patch is JSON"),
    )
}

#[test]
fn golden_reviews_get_their_responses() {
    let dir = fixtures();
    let mut cases: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".request.json").map(str::to_owned)
        })
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "only {cases:?}");
    for case in &cases {
        let request_bytes = std::fs::read(dir.join(format!("{case}.request.json"))).unwrap();
        let expected = read_json(&dir.join(format!("{case}.response.json")));
        let got: Value = response_of(&answer(&request_bytes, &golden_injection(case)));
        // The patch compared as JSON (its bytes' key order is serde's business).
        let (mut expected_rest, mut got_rest) = (expected.clone(), got.clone());
        for v in [&mut expected_rest, &mut got_rest] {
            if let Some(r) = v["response"].as_object_mut() {
                r.remove("patch");
            }
        }
        assert_eq!(got_rest, expected_rest, "{case}: the response differs");
        assert_eq!(
            decoded_patch(&got),
            decoded_patch(&expected),
            "{case}: the patch differs"
        );
        // The readable patch beside it is the one the response carries.
        let readable = dir.join(format!("{case}.patch.json"));
        assert_eq!(
            readable.exists().then(|| read_json(&readable)),
            decoded_patch(&expected),
            "{case}: {case}.patch.json and the response's patch disagree"
        );

        let request = read_json(&dir.join(format!("{case}.request.json")));
        let Some(object) = request["request"].get("object").filter(|o| o.is_object()) else {
            continue;
        };
        let mutation = mutate(object, &golden_injection(case));
        let (patched, _) = mutate_checked(object, &golden_injection(case));
        assert_eq!(broken_invariants(&patched), Vec::<String>::new(), "{case}");
        let file = dir.join("patched").join(format!("{case}.json"));
        if file.exists() {
            assert_eq!(patched, read_json(&file), "{case}: the patched pod differs");
        } else {
            assert!(
                mutation.patch.is_empty() || decoded_patch(&got).is_none(),
                "{case}: a patched pod belongs in patched/{case}.json"
            );
        }
    }
}

// === Random pods ===

const ENV_NAMES: [&str; 6] = [
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "OTHER",
];

/// Mounts a container may have: (volume, path).
const MOUNTS: [(&str, &str); 8] = [
    ("data", "/data"),
    (VOLUME, TOKEN_DIR),
    (VOLUME, "/var/run/secrets/eks.amazonaws.com/serviceaccount/"),
    ("data", TOKEN_DIR),
    (
        "data",
        "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    ),
    (VOLUME, "/elsewhere"),
    ("data", "/var/run/secrets/eks.amazonaws.com"),
    (
        "kube-api-access",
        "/var/run/secrets/kubernetes.io/serviceaccount",
    ),
];

/// A list field as a generated pod has it.
#[derive(Debug, Clone)]
enum Shape<T> {
    Absent,
    Null,
    List(Vec<T>),
}

fn shape<T: std::fmt::Debug + Clone>(
    items: impl Strategy<Value = Vec<T>>,
) -> impl Strategy<Value = Shape<T>> {
    prop_oneof![
        2 => Just(Shape::Absent),
        1 => Just(Shape::Null),
        5 => items.prop_map(Shape::List),
    ]
}

fn set_list<T>(object: &mut Value, key: &str, shape: &Shape<T>, each: impl Fn(&T) -> Value) {
    match shape {
        Shape::Absent => {}
        Shape::Null => object[key] = Value::Null,
        Shape::List(items) => object[key] = items.iter().map(each).collect(),
    }
}

#[derive(Debug, Clone)]
struct GenContainer {
    env: Shape<&'static str>,
    mounts: Shape<(&'static str, &'static str)>,
    sidecar: bool,
    skipped: bool,
}

fn gen_container() -> impl Strategy<Value = GenContainer> {
    (
        shape(prop::sample::subsequence(
            ENV_NAMES.to_vec(),
            0..=ENV_NAMES.len(),
        )),
        shape(prop::sample::subsequence(MOUNTS.to_vec(), 0..=3)),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(env, mounts, sidecar, skipped)| {
            // The input keeps its mount paths unique, as the API server would.
            let mounts = match mounts {
                Shape::List(mounts) => {
                    let mut seen = BTreeSet::new();
                    Shape::List(
                        mounts
                            .into_iter()
                            .filter(|(_, p)| seen.insert(p.trim_end_matches('/')))
                            .collect(),
                    )
                }
                other => other,
            };
            GenContainer {
                env,
                mounts,
                sidecar,
                skipped,
            }
        })
}

/// Where the pod says it runs.
#[derive(Debug, Clone, Copy)]
enum Os {
    Unsaid,
    SelectorLinux,
    SelectorWindows,
    BetaSelectorWindows,
    SpecOsWindows,
    AffinityWindows,
    AffinityMixed,
}

impl Os {
    fn windows(self) -> bool {
        matches!(
            self,
            Self::SelectorWindows
                | Self::BetaSelectorWindows
                | Self::SpecOsWindows
                | Self::AffinityWindows
        )
    }

    fn apply(self, spec: &mut Value) {
        let term = |key: &str, value: &str| json!({"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]});
        let affinity = |terms: Value| json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}});
        match self {
            Self::Unsaid => {}
            Self::SelectorLinux => spec["nodeSelector"] = json!({"kubernetes.io/os": "linux"}),
            Self::SelectorWindows => spec["nodeSelector"] = json!({"kubernetes.io/os": "windows"}),
            Self::BetaSelectorWindows => {
                spec["nodeSelector"] = json!({"beta.kubernetes.io/os": "windows"});
            }
            Self::SpecOsWindows => spec["os"] = json!({"name": "windows"}),
            Self::AffinityWindows => {
                spec["affinity"] = affinity(json!([term("kubernetes.io/os", "windows")]));
            }
            Self::AffinityMixed => {
                spec["affinity"] = affinity(json!([
                    term("kubernetes.io/os", "windows"),
                    term("kubernetes.io/os", "linux")
                ]));
            }
        }
    }
}

/// The pod's token volume, if any.
#[derive(Debug, Clone, Copy)]
enum TokenVolumeState {
    Missing,
    /// Ours, as the API server stores it after our patch (`defaultMode` defaulted).
    Ours,
    OtherAudience,
    Foreign,
}

#[derive(Debug, Clone)]
struct GenPod {
    init: Vec<GenContainer>,
    containers: Vec<GenContainer>,
    volumes: Shape<()>,
    token_volume: TokenVolumeState,
    os: Os,
    security_context: Option<Value>,
    expiration_annotation: Option<&'static str>,
}

fn gen_pod() -> impl Strategy<Value = GenPod> {
    (
        prop::collection::vec(gen_container(), 0..3),
        prop::collection::vec(gen_container(), 1..4),
        shape(Just(vec![()])),
        prop_oneof![
            4 => Just(TokenVolumeState::Missing),
            2 => Just(TokenVolumeState::Ours),
            1 => Just(TokenVolumeState::OtherAudience),
            1 => Just(TokenVolumeState::Foreign),
        ],
        prop_oneof![
            Just(Os::Unsaid),
            Just(Os::SelectorLinux),
            Just(Os::SelectorWindows),
            Just(Os::BetaSelectorWindows),
            Just(Os::SpecOsWindows),
            Just(Os::AffinityWindows),
            Just(Os::AffinityMixed),
        ],
        prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!({}))),
            Just(Some(json!({"fsGroup": 7}))),
            Just(Some(json!({"runAsUser": 1000}))),
        ],
        prop_oneof![
            Just(None),
            Just(Some("3600")),
            Just(Some("100")),
            Just(Some("soon")),
            Just(Some("99999999999")),
        ],
    )
        .prop_map(
            |(
                init,
                containers,
                volumes,
                token_volume,
                os,
                security_context,
                expiration_annotation,
            )| {
                GenPod {
                    init,
                    containers,
                    volumes,
                    token_volume,
                    os,
                    security_context,
                    expiration_annotation,
                }
            },
        )
}

fn gen_injection() -> impl Strategy<Value = Injection> {
    (
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(String::new())),
            Just(Some("eu-west-1".to_owned()))
        ],
        prop_oneof![Just(None), Just(Some(1000_i64))],
        prop_oneof![Just(86_400_i64), Just(100), Just(5_000_000_000)],
    )
        .prop_map(
            |(regional_sts, region, set_fs_group, expiration_seconds)| Injection {
                regional_sts,
                region,
                set_fs_group,
                expiration_seconds,
                ..Injection::new(ROLE)
            },
        )
}

impl GenPod {
    fn name(field: &str, i: usize) -> String {
        format!("{field}-{i}")
    }

    fn to_json(&self) -> Value {
        let mut spec = json!({});
        let mut skipped = Vec::new();
        for (field, list) in [
            ("initContainers", &self.init),
            ("containers", &self.containers),
        ] {
            let mut containers = Vec::new();
            for (i, c) in list.iter().enumerate() {
                let mut container = json!({"name": Self::name(field, i), "image": "busybox"});
                if c.sidecar && field == "initContainers" {
                    container["restartPolicy"] = json!("Always");
                }
                set_list(
                    &mut container,
                    "env",
                    &c.env,
                    |name| json!({"name": name, "value": "preset"}),
                );
                set_list(
                    &mut container,
                    "volumeMounts",
                    &c.mounts,
                    |(name, path)| json!({"name": name, "mountPath": path}),
                );
                if c.skipped {
                    skipped.push(Self::name(field, i));
                }
                containers.push(container);
            }
            if field == "containers" || !containers.is_empty() {
                spec[field] = Value::Array(containers);
            }
        }
        let token_volume = match self.token_volume {
            TokenVolumeState::Missing => None,
            TokenVolumeState::Ours | TokenVolumeState::OtherAudience => {
                let audience = if matches!(self.token_volume, TokenVolumeState::Ours) {
                    "sts.amazonaws.com"
                } else {
                    "other"
                };
                Some(
                    json!({"name": VOLUME, "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"audience": audience, "expirationSeconds": 3600, "path": "token"}}]}}),
                )
            }
            TokenVolumeState::Foreign => {
                Some(json!({"name": VOLUME, "hostPath": {"path": "/token"}}))
            }
        };
        match (&self.volumes, token_volume) {
            (Shape::List(_), token) | (_, token @ Some(_)) => {
                let mut volumes = vec![
                    json!({"name": "data", "emptyDir": {}}),
                    json!({"name": "kube-api-access", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}]}}),
                ];
                volumes.extend(token);
                spec["volumes"] = Value::Array(volumes);
            }
            (Shape::Null, None) => spec["volumes"] = Value::Null,
            (Shape::Absent, None) => {}
        }
        self.os.apply(&mut spec);
        if let Some(context) = &self.security_context {
            spec["securityContext"] = context.clone();
        }
        let mut annotations = json!({SKIP_CONTAINERS_ANNOTATION: skipped.join(", ")});
        if let Some(expiration) = self.expiration_annotation {
            annotations[TOKEN_EXPIRATION_ANNOTATION] = json!(expiration);
        }
        annotated(annotations, spec)
    }

    /// The lifetime a new token volume must have.
    fn expected_expiration(&self, injection: &Injection) -> i64 {
        let seconds = self
            .expiration_annotation
            .and_then(|a| a.parse().ok())
            .unwrap_or(injection.expiration_seconds);
        seconds.clamp(MIN_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS)
    }
}

/// The generated container conflicts: a mount at or inside the token directory that is not
/// the token volume at exactly that directory.
fn conflicts(c: &GenContainer) -> bool {
    let Shape::List(mounts) = &c.mounts else {
        return false;
    };
    mounts.iter().any(|(name, path)| {
        let path = path.trim_end_matches('/');
        let inside = path == TOKEN_DIR || path.starts_with(&format!("{TOKEN_DIR}/"));
        inside && !(path == TOKEN_DIR && *name == VOLUME)
    })
}

fn check_random_pod(generated: &GenPod, injection: &Injection) {
    let pod = generated.to_json();
    let (patched, mutation) = mutate_checked(&pod, injection);
    if matches!(generated.token_volume, TokenVolumeState::Foreign) {
        assert_eq!(mutation.patch, []);
        assert!(mutation.warnings[0].contains("not the projected ServiceAccount token"));
        return;
    }
    let volume = patched["spec"]["volumes"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == VOLUME))
        .expect("the token volume is there");
    if matches!(generated.token_volume, TokenVolumeState::Missing) {
        let token = &volume["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(
            token["expirationSeconds"],
            generated.expected_expiration(injection)
        );
        assert_eq!(token["audience"], injection.audience.as_str());
    }
    let windows = generated.os.windows();
    let mut any_mounted = false;
    for (field, list) in [
        ("initContainers", &generated.init),
        ("containers", &generated.containers),
    ] {
        for (i, g) in list.iter().enumerate() {
            let before = &pod["spec"][field][i];
            let after = &patched["spec"][field][i];
            if g.skipped || conflicts(g) {
                assert_eq!(after, before, "{field}/{i} must be left alone");
                continue;
            }
            any_mounted = true;
            assert!(
                has_token_mount(after) || g_has_own_mount(g),
                "{field}/{i}: no mount\n{after:#}"
            );
            let names = env_names(after);
            let has = |n: &str| names.contains(&n);
            assert!(has("AWS_ROLE_ARN") || has("AWS_WEB_IDENTITY_TOKEN_FILE"));
            if injection.region.as_deref().is_some_and(|r| !r.is_empty()) {
                assert!(has("AWS_REGION") || has("AWS_DEFAULT_REGION"));
            }
            if injection.regional_sts {
                assert!(has("AWS_STS_REGIONAL_ENDPOINTS"));
            }
            // What was there is kept, in place; ours follows.
            let old = env_names(before);
            assert_eq!(&names[..old.len()], &old[..]);
            if !old
                .iter()
                .any(|n| *n == "AWS_ROLE_ARN" || *n == "AWS_WEB_IDENTITY_TOKEN_FILE")
            {
                let expected = if windows {
                    WINDOWS_TOKEN_FILE
                } else {
                    TOKEN_FILE
                };
                assert_eq!(
                    env_value(after, "AWS_WEB_IDENTITY_TOKEN_FILE"),
                    Some(expected)
                );
                assert_eq!(env_value(after, "AWS_ROLE_ARN"), Some(ROLE));
            }
        }
    }
    let fs_group = &patched["spec"]["securityContext"]["fsGroup"];
    match (&generated.security_context, injection.set_fs_group) {
        (Some(c), _) if c.get("fsGroup").is_some() => assert_eq!(fs_group, &c["fsGroup"]),
        (_, Some(group)) if any_mounted && !windows => assert_eq!(fs_group, group),
        _ => assert!(fs_group.is_null(), "{fs_group}"),
    }
}

/// The container mounts the token volume at the token directory itself (with a trailing slash:
/// kept as it is).
fn g_has_own_mount(c: &GenContainer) -> bool {
    matches!(&c.mounts, Shape::List(m) if m.iter().any(|(n, p)| *n == VOLUME && p.trim_end_matches('/') == TOKEN_DIR))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_pods_are_patched_validly_and_idempotently(generated in gen_pod(), injection in gen_injection()) {
        check_random_pod(&generated, &injection);
    }

    /// Arbitrary JSON shapes where a pod's parts should be: never a panic, a patch that
    /// applies, idempotence.
    #[test]
    fn arbitrary_json_never_breaks_mutate(value in arbitrary_json()) {
        let pod = json!({"metadata": {"annotations": {SKIP_CONTAINERS_ANNOTATION: "b"}}, "spec": value});
        mutate_checked(&pod, &regional("eu-west-1"));
    }
}

/// JSON made of the names a pod uses, nested a few levels.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let keys = prop::sample::select(vec![
        "containers",
        "initContainers",
        "volumes",
        "env",
        "volumeMounts",
        "name",
        "mountPath",
        "projected",
        "sources",
        "serviceAccountToken",
        "path",
        "securityContext",
        "fsGroup",
        "nodeSelector",
        "kubernetes.io/os",
        "os",
        "a",
        "b",
        "aws-iam-token",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "a",
            "b",
            "token",
            "windows",
            "aws-iam-token",
            TOKEN_DIR,
            "AWS_REGION"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}
