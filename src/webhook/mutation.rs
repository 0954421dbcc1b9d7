//! Pod -> the JSON Patch that wires it for IRSA, as the EKS pod identity webhook does (env,
//! projected token volume, read-only mount); pure. `issuerd pod-env` renders the same pieces
//! ([`env_for`], [`token_volume`], [`token_mount`]), so the two cannot disagree.
//!
//! # What an ordinary pod gets (as the EKS webhook)
//! - In every container and init container (native sidecars included; ephemeral containers
//!   never), unless its name is in the pod annotation [`SKIP_CONTAINERS_ANNOTATION`] (CSV), the
//!   env of [`env_for`] appended, in this order: `AWS_STS_REGIONAL_ENDPOINTS=regional` (when
//!   [`Injection::regional_sts`]), `AWS_DEFAULT_REGION` and `AWS_REGION` (when a region is set),
//!   `AWS_ROLE_ARN`, `AWS_WEB_IDENTITY_TOKEN_FILE`. Existing values are never overwritten, by the
//!   EKS grouping: either web-identity variable present means neither is added, either region
//!   variable present means neither is added, the STS variable stands alone.
//! - The mount of [`token_mount`] (read-only, at [`TOKEN_DIR`]) appended to each such container.
//! - The volume of [`token_volume`] inserted first in `spec.volumes` (where the EKS webhook
//!   puts it), or `spec.volumes` created with it.
//! - The token lifetime: the pod annotation [`TOKEN_EXPIRATION_ANNOTATION`] wins over
//!   [`Injection::expiration_seconds`]; below [`MIN_EXPIRATION_SECONDS`] it is raised to it.
//! - Windows pods get [`WINDOWS_TOKEN_FILE`] as the token file (the mount path stays the same:
//!   the kubelet maps it to `C:`).
//!
//! # Where it does better than the EKS webhook
//! - **Fine-grained, idempotent patches.** Each env var and mount is its own `add .../env/-`
//!   (or `add .../env` with a new list when the container has none); the EKS webhook replaces
//!   `/spec/containers` and `/spec/initContainers` whole, which undoes what an earlier webhook in
//!   the same round wrote there. Applying the patch and mutating again yields an empty patch, so
//!   `reinvocationPolicy: IfNeeded` is safe; nothing is sent when nothing changes (the EKS webhook
//!   always sends its patch).
//! - **Conflicts by path, not by name.** A volume named [`VOLUME`] that is not a projected
//!   ServiceAccount token at path `token` leaves the whole pod unchanged, with a warning (the EKS
//!   webhook adds the env anyway and the credentials silently break, its #315). A mount of
//!   another volume at [`TOKEN_DIR`] or inside it (it would hide the token) leaves that container
//!   unchanged, with a warning naming it (the EKS webhook checks the mount's name only and can
//!   produce a duplicate `mountPath`, its #159). No patch ever produces a duplicate volume name
//!   or a duplicate `mountPath` in a container.
//! - **The mount is always added** to an injected container that lacks it; the EKS webhook skips
//!   it when all three env groups are already set (its #82, #32).
//! - **Windows** is also recognised by `spec.os.name: windows` and by a required node affinity
//!   whose every term pins `kubernetes.io/os` (or `beta.kubernetes.io/os`) `In [windows]` (the
//!   EKS webhook reads `nodeSelector` only, its #57). A pod whose terms disagree may land on
//!   Linux, and gets the Linux path.
//! - **Bounds.** A lifetime above what the API server accepts ([`MAX_EXPIRATION_SECONDS`]) is
//!   lowered to it with a warning (the pod would otherwise be refused); an unreadable
//!   expiration annotation is reported as a warning (the EKS webhook only logs it). Names in the
//!   skip annotation are trimmed (`"a, b"` skips `b`; the EKS webhook's CSV reader keeps the
//!   space and skips nothing).
//! - **`fsGroup`** on request ([`Injection::set_fs_group`]); the EKS webhook never sets it.
//!
//! Not here: Pod Identity mode (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), `--compose-role-arn`,
//! per-container roles; the ServiceAccount lookup and its annotations are the caller's (they
//! become the [`Injection`]).

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Where the token volume is mounted in each container.
pub const TOKEN_DIR: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
/// The token's file name in the volume (`serviceAccountToken.path`).
pub const TOKEN_PATH: &str = "token";
/// The token file, as `AWS_WEB_IDENTITY_TOKEN_FILE` names it in a Linux container.
pub const TOKEN_FILE: &str = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
/// The token file, as `AWS_WEB_IDENTITY_TOKEN_FILE` names it in a Windows container.
pub const WINDOWS_TOKEN_FILE: &str = r"C:\var\run\secrets\eks.amazonaws.com\serviceaccount\token";
/// The token volume's name.
pub const VOLUME: &str = "aws-iam-token";
/// The token audience when none is configured.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// The token lifetime when none is configured.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 86_400;
/// The shortest token lifetime; shorter ones are raised to it (the API server's minimum).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest token lifetime the API server accepts in a pod (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// Pod annotation: container names (CSV) that get nothing.
pub const SKIP_CONTAINERS_ANNOTATION: &str = "eks.amazonaws.com/skip-containers";
/// Pod annotation: the token lifetime in seconds, overriding the configured one.
pub const TOKEN_EXPIRATION_ANNOTATION: &str = "eks.amazonaws.com/token-expiration";
/// At most this many warnings are returned (the API server truncates long warning lists).
const MAX_WARNINGS: usize = 16;
/// User-supplied strings quoted in warnings are cut to this many characters.
const MAX_QUOTED: usize = 100;
/// The longest warning, in bytes (the API server may truncate longer ones).
const MAX_WARNING_LEN: usize = 255;
/// Node labels that name the operating system.
const OS_LABELS: [&str; 2] = ["kubernetes.io/os", "beta.kubernetes.io/os"];

const STS_REGIONAL_ENDPOINTS: &str = "AWS_STS_REGIONAL_ENDPOINTS";
const DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
const REGION: &str = "AWS_REGION";
const ROLE_ARN: &str = "AWS_ROLE_ARN";
const WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";

/// What to inject into one pod: the resolved configuration for its ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// `AWS_ROLE_ARN`.
    pub role_arn: String,
    /// The projected token's audience ([`DEFAULT_AUDIENCE`] by default).
    pub audience: String,
    /// The projected token's lifetime ([`DEFAULT_EXPIRATION_SECONDS`] by default); clamped to
    /// [`MIN_EXPIRATION_SECONDS`]..=[`MAX_EXPIRATION_SECONDS`] where used. The pod annotation
    /// [`TOKEN_EXPIRATION_ANNOTATION`] overrides it.
    pub expiration_seconds: i64,
    /// Add `AWS_STS_REGIONAL_ENDPOINTS=regional`.
    pub regional_sts: bool,
    /// Add `AWS_DEFAULT_REGION` and `AWS_REGION` (an empty region counts as none).
    pub region: Option<String>,
    /// Set the pod's `securityContext.fsGroup` to this group when the pod has none (and is not
    /// a Windows pod, where the API server forbids it).
    ///
    /// When it matters (checked against the Kubernetes docs, "Projected Volumes: SecurityContext
    /// interactions", and the kubelet change kubernetes/kubernetes#89193, in 1.19): the kubelet
    /// writes the token file with the volume's `defaultMode` (0644 unless set), readable by every
    /// user, *unless* the pod has an `fsGroup` or all its containers share one `runAsUser`. Then
    /// the file is 0600: owned by that `runAsUser`, or, with an `fsGroup`, by root and made 0640
    /// for the `fsGroup`, which every container gets as a supplemental group. So a container
    /// that runs as a user other than the shared `runAsUser` (a process that changes user
    /// after start, a sidecar injected later with another user) can read the token only through
    /// an `fsGroup`. (The old claim "0600 root-owned unless fsGroup is set" was true of
    /// Kubernetes 1.18 and earlier, which the EKS webhook's README still reflects.) An
    /// `fsGroup` is not free: the kubelet changes the group of every file of every volume that
    /// supports ownership management (a large PVC mounts slowly), hence off by default.
    pub set_fs_group: Option<i64>,
}

impl Injection {
    /// `role_arn` with the EKS webhook's defaults: audience [`DEFAULT_AUDIENCE`], lifetime
    /// [`DEFAULT_EXPIRATION_SECONDS`], no regional STS, no region, no `fsGroup`.
    pub fn new(role_arn: impl Into<String>) -> Self {
        Self {
            role_arn: role_arn.into(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            expiration_seconds: DEFAULT_EXPIRATION_SECONDS,
            regional_sts: false,
            region: None,
            set_fs_group: None,
        }
    }

    /// The region, if set and not empty.
    fn region(&self) -> Option<&str> {
        self.region.as_deref().filter(|r| !r.is_empty())
    }
}

// === The injected pieces ===

/// One environment variable, as a container's `env` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    /// The variable's name.
    pub name: &'static str,
    /// Its value.
    pub value: String,
}

/// The env a container without any of it gets, in the EKS webhook's order; `windows` chooses
/// the token file's spelling.
pub fn env_for(injection: &Injection, windows: bool) -> Vec<EnvVar> {
    let mut env = Vec::with_capacity(5);
    if injection.regional_sts {
        env.push(EnvVar {
            name: STS_REGIONAL_ENDPOINTS,
            value: "regional".to_owned(),
        });
    }
    if let Some(region) = injection.region() {
        for name in [DEFAULT_REGION, REGION] {
            env.push(EnvVar {
                name,
                value: region.to_owned(),
            });
        }
    }
    env.push(EnvVar {
        name: ROLE_ARN,
        value: injection.role_arn.clone(),
    });
    env.push(EnvVar {
        name: WEB_IDENTITY_TOKEN_FILE,
        value: if windows {
            WINDOWS_TOKEN_FILE
        } else {
            TOKEN_FILE
        }
        .to_owned(),
    });
    env
}

/// The EKS grouping of the env: a group present in any form is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EnvGroup {
    Sts,
    Region,
    WebIdentity,
    Other,
}

fn group_of(name: &str) -> EnvGroup {
    match name {
        STS_REGIONAL_ENDPOINTS => EnvGroup::Sts,
        DEFAULT_REGION | REGION => EnvGroup::Region,
        ROLE_ARN | WEB_IDENTITY_TOKEN_FILE => EnvGroup::WebIdentity,
        _ => EnvGroup::Other,
    }
}

/// The projected token volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenVolume {
    /// [`VOLUME`].
    pub name: &'static str,
    /// `serviceAccountToken.audience`.
    pub audience: String,
    /// `serviceAccountToken.expirationSeconds`, within the API server's bounds.
    pub expiration_seconds: i64,
    /// `serviceAccountToken.path`: [`TOKEN_PATH`].
    pub path: &'static str,
}

impl TokenVolume {
    fn new(audience: &str, expiration_seconds: i64) -> Self {
        Self {
            name: VOLUME,
            audience: audience.to_owned(),
            expiration_seconds: clamp_expiration(expiration_seconds),
            path: TOKEN_PATH,
        }
    }

    /// As a pod's `spec.volumes` lists it (no `defaultMode`: the API server defaults it).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "projected": {
                "sources": [{
                    "serviceAccountToken": {
                        "audience": self.audience,
                        "expirationSeconds": self.expiration_seconds,
                        "path": self.path,
                    }
                }]
            }
        })
    }
}

/// The volume for `injection`'s audience and lifetime (clamped), before pod annotations.
pub fn token_volume(injection: &Injection) -> TokenVolume {
    TokenVolume::new(&injection.audience, injection.expiration_seconds)
}

/// The token volume's mount in each container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMount {
    /// [`VOLUME`].
    pub name: &'static str,
    /// [`TOKEN_DIR`].
    pub mount_path: &'static str,
    /// Always true.
    pub read_only: bool,
}

impl TokenMount {
    /// As a container's `volumeMounts` lists it.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "readOnly": self.read_only, "mountPath": self.mount_path})
    }
}

/// The mount every injected container gets.
pub fn token_mount() -> TokenMount {
    TokenMount {
        name: VOLUME,
        mount_path: TOKEN_DIR,
        read_only: true,
    }
}

fn clamp_expiration(seconds: i64) -> i64 {
    seconds.clamp(MIN_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS)
}

// === The patch ===

/// One JSON Patch (RFC 6902) operation. Only `add` is needed: nothing is ever replaced or
/// removed (an `add` at an existing object member replaces it: used only where that member is
/// `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PatchOp {
    /// Adds `value` at `path` (a JSON Pointer; `-` appends to an array).
    Add {
        /// Where.
        path: String,
        /// What.
        value: Value,
    },
}

impl PatchOp {
    fn add(path: impl Into<String>, value: Value) -> Self {
        Self::Add {
            path: path.into(),
            value,
        }
    }
}

/// What [`mutate`] decided: the patch (empty when the pod needs nothing) and the warnings for
/// whoever creates the pod (admission warnings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mutation {
    /// The operations, in order.
    pub patch: Vec<PatchOp>,
    /// Human-readable warnings, each at most 255 bytes, at most 16.
    pub warnings: Vec<String>,
}

impl Mutation {
    /// The patch as a JSON array (what `AdmissionResponse.patch` carries, before base64).
    pub fn patch_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.patch).expect("a patch of JSON values serializes")
    }

    /// Adds a warning, cut to the length the API server shows whole.
    pub fn warn(&mut self, mut warning: String) {
        if warning.len() > MAX_WARNING_LEN {
            let mut end = MAX_WARNING_LEN - 3;
            while !warning.is_char_boundary(end) {
                end -= 1;
            }
            warning.truncate(end);
            warning.push_str("...");
        }
        self.warnings.push(warning);
    }
}

// === mutate ===

/// The patch that wires `pod` (a `v1` Pod as JSON) for `injection`; see the module docs for the
/// rules. Never panics, whatever the JSON: parts that are not shaped like a pod's are left alone.
pub fn mutate(pod: &Value, injection: &Injection) -> Mutation {
    let mut mutation = Mutation::default();
    let Some(spec) = pod.get("spec").and_then(Value::as_object) else {
        return mutation;
    };
    let annotations = pod
        .pointer("/metadata/annotations")
        .and_then(Value::as_object);
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);

    // The volume first: a foreign one leaves the pod alone.
    let volumes = match spec.get("volumes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(volumes)) => Some(volumes),
        Some(_) => {
            mutation.warn("IRSA: pod not injected: its spec.volumes is not a list".to_owned());
            return mutation;
        }
    };
    match volumes.and_then(|v| v.iter().find(|v| name_of(v) == VOLUME)) {
        Some(existing) => match projected_token(existing) {
            Some(token) => {
                // No audience: the API server's own, which STS refuses.
                let audience = token.get("audience").and_then(Value::as_str);
                if audience != Some(injection.audience.as_str()) {
                    mutation.warn(format!(
                        "IRSA: volume {VOLUME:?} already projects a token for audience {}, not {}; left as is",
                        audience.map_or_else(|| "(none: the API server's)".to_owned(), quoted),
                        quoted(&injection.audience)
                    ));
                }
            }
            None => {
                mutation.warn(format!(
                    "IRSA: pod not injected: its volume {VOLUME:?} is {}, not the projected ServiceAccount token",
                    describe_volume(existing)
                ));
                return mutation;
            }
        },
        None => {
            // The lifetime matters only to a new volume (one already there keeps its own).
            let annotation = annotation(TOKEN_EXPIRATION_ANNOTATION);
            let expiration = expiration_seconds(injection, annotation, &mut mutation);
            let volume = TokenVolume::new(&injection.audience, expiration).to_json();
            mutation.patch.push(match volumes {
                Some(_) => PatchOp::add("/spec/volumes/0", volume),
                None => PatchOp::add("/spec/volumes", json!([volume])),
            });
        }
    }

    let windows = is_windows(spec);
    let env = env_for(injection, windows);
    let skipped = skipped_containers(annotation(SKIP_CONTAINERS_ANNOTATION));
    let mut mounted = false;
    for field in ["initContainers", "containers"] {
        let Some(containers) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let Some(container) = container.as_object() else {
                continue;
            };
            let name = container.get("name").and_then(Value::as_str).unwrap_or("");
            if skipped.contains(name) {
                continue;
            }
            let at = format!("/spec/{field}/{i}");
            mounted |= inject_container(&at, name, container, &env, &mut mutation);
        }
    }

    if let Some(group) = injection.set_fs_group
        && mounted
        && !windows
    {
        match spec.get("securityContext") {
            None | Some(Value::Null) => mutation.patch.push(PatchOp::add(
                "/spec/securityContext",
                json!({ "fsGroup": group }),
            )),
            Some(Value::Object(context)) => {
                if context.get("fsGroup").is_none_or(Value::is_null) {
                    mutation
                        .patch
                        .push(PatchOp::add("/spec/securityContext/fsGroup", json!(group)));
                }
            }
            Some(_) => mutation.warn(
                "IRSA: fsGroup not set: the pod's securityContext is not an object".to_owned(),
            ),
        }
    }

    if mutation.warnings.len() > MAX_WARNINGS {
        let more = mutation.warnings.len() - (MAX_WARNINGS - 1);
        mutation.warnings.truncate(MAX_WARNINGS - 1);
        mutation.warn(format!("IRSA: {more} more warnings"));
    }
    mutation
}

/// Adds the env and mount one container lacks; whether it ends up with the token mounted.
fn inject_container(
    at: &str,
    name: &str,
    container: &Map<String, Value>,
    env: &[EnvVar],
    mutation: &mut Mutation,
) -> bool {
    let (Ok(mounts), Ok(existing_env)) = (list(container, "volumeMounts"), list(container, "env"))
    else {
        mutation.warn(format!(
            "IRSA: container {} not injected: its env or volumeMounts is not a list",
            quoted(name)
        ));
        return false;
    };
    let mut has_mount = false;
    for mount in mounts.into_iter().flatten() {
        let Some(path) = mount.get("mountPath").and_then(Value::as_str) else {
            continue;
        };
        let path = path.trim_end_matches('/');
        let inside = path
            .strip_prefix(TOKEN_DIR)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !inside {
            continue;
        }
        if path == TOKEN_DIR && name_of(mount) == VOLUME {
            has_mount = true;
        } else {
            mutation.warn(format!(
                "IRSA: container {} not injected: volume {} is mounted at {}, where the token goes",
                quoted(name),
                quoted(name_of(mount)),
                quoted(path),
            ));
            return false;
        }
    }

    let present: BTreeSet<EnvGroup> = existing_env
        .into_iter()
        .flatten()
        .map(|var| group_of(name_of(var)))
        .collect();
    let missing: Vec<Value> = env
        .iter()
        .filter(|var| !present.contains(&group_of(var.name)))
        .map(|var| json!(var))
        .collect();
    append(mutation, at, "env", existing_env.is_some(), missing);
    if !has_mount {
        append(
            mutation,
            at,
            "volumeMounts",
            mounts.is_some(),
            vec![token_mount().to_json()],
        );
    }
    true
}

/// A container's list field: `Ok(None)` when absent or `null`, `Err` when not a list.
fn list<'a>(container: &'a Map<String, Value>, key: &str) -> Result<Option<&'a Vec<Value>>, ()> {
    match container.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(()),
    }
}

/// Appends `items` to the list `key` of the object at `at`: one `add .../-` each when the list
/// exists (later webhooks' items stay), else one `add` of a new list (RFC 6902 cannot append to
/// a missing array).
fn append(mutation: &mut Mutation, at: &str, key: &str, exists: bool, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    if exists {
        for item in items {
            mutation
                .patch
                .push(PatchOp::add(format!("{at}/{key}/-"), item));
        }
    } else {
        mutation
            .patch
            .push(PatchOp::add(format!("{at}/{key}"), Value::Array(items)));
    }
}

/// The lifetime: the pod annotation (when it is a number) over the configured one, clamped.
fn expiration_seconds(
    injection: &Injection,
    annotation: Option<&str>,
    mutation: &mut Mutation,
) -> i64 {
    let mut seconds = injection.expiration_seconds;
    if let Some(raw) = annotation {
        match raw.parse::<i64>() {
            Ok(value) => seconds = value,
            Err(_) => mutation.warn(format!(
                "IRSA: annotation {TOKEN_EXPIRATION_ANNOTATION} {} is not a number of seconds; using {}",
                quoted(raw),
                clamp_expiration(seconds)
            )),
        }
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        mutation.warn(format!(
            "IRSA: token expiration {seconds}s is above the {MAX_EXPIRATION_SECONDS}s Kubernetes accepts; using {MAX_EXPIRATION_SECONDS}"
        ));
    }
    clamp_expiration(seconds)
}

/// Container names of the skip annotation: its first line, comma-separated, each trimmed and
/// unquoted.
fn skipped_containers(annotation: Option<&str>) -> BTreeSet<&str> {
    let first_line = annotation.and_then(|a| a.lines().next()).unwrap_or("");
    first_line
        .split(',')
        .map(|name| {
            let name = name.trim();
            name.strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(name)
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// A Windows pod: `spec.os.name`, the OS node selector, or a required node affinity whose every
/// term pins the OS label to windows.
fn is_windows(spec: &Map<String, Value>) -> bool {
    let os_name = spec
        .get("os")
        .and_then(|os| os.get("name"))
        .and_then(Value::as_str)
        == Some("windows");
    let selector = spec
        .get("nodeSelector")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            OS_LABELS
                .iter()
                .any(|label| s.get(*label).and_then(Value::as_str) == Some("windows"))
        });
    let affinity = spec
        .get("affinity")
        .and_then(|a| {
            a.pointer(
                "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
            )
        })
        .and_then(Value::as_array)
        .is_some_and(|terms| !terms.is_empty() && terms.iter().all(term_pins_windows));
    os_name || selector || affinity
}

/// A node selector term with `{key: <OS label>, operator: In, values: [windows]}` (every value
/// `windows`).
fn term_pins_windows(term: &Value) -> bool {
    term.get("matchExpressions")
        .and_then(Value::as_array)
        .is_some_and(|expressions| {
            expressions.iter().any(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values = e.get("values").and_then(Value::as_array);
                OS_LABELS.contains(&key)
                    && e.get("operator").and_then(Value::as_str) == Some("In")
                    && values.is_some_and(|v| {
                        !v.is_empty() && v.iter().all(|v| v.as_str() == Some("windows"))
                    })
            })
        })
}

/// The `serviceAccountToken` source at path [`TOKEN_PATH`] of a projected volume.
fn projected_token(volume: &Value) -> Option<&Map<String, Value>> {
    volume
        .pointer("/projected/sources")?
        .as_array()?
        .iter()
        .filter_map(|source| source.get("serviceAccountToken")?.as_object())
        .find(|token| token.get("path").and_then(Value::as_str) == Some(TOKEN_PATH))
}

/// "a hostPath volume", "a projected volume without a token at path \"token\"", ...
fn describe_volume(volume: &Value) -> String {
    let source = volume
        .as_object()
        .and_then(|v| v.keys().find(|k| *k != "name"));
    match source.map(String::as_str) {
        Some("projected") => {
            format!("a projected volume without a serviceAccountToken at path {TOKEN_PATH:?}")
        }
        Some(kind) => format!("a {} volume", quoted_bare(kind)),
        None => "a volume without a source".to_owned(),
    }
}

/// The `name` of a JSON object, or "".
fn name_of(item: &Value) -> &str {
    item.get("name").and_then(Value::as_str).unwrap_or("")
}

/// A user-supplied string for a warning: quoted, escaped, cut to [`MAX_QUOTED`] characters.
fn quoted(s: &str) -> String {
    format!("{:?}", cut(s))
}

/// A user-supplied identifier for a warning, cut, without quotes (escaped if it needs it).
fn quoted_bare(s: &str) -> String {
    let s = cut(s);
    if s.chars().all(|c| c.is_ascii_alphanumeric()) {
        s.to_owned()
    } else {
        format!("{s:?}")
    }
}

fn cut(s: &str) -> &str {
    s.char_indices()
        .nth(MAX_QUOTED)
        .map_or(s, |(at, _)| &s[..at])
}
