//! The systemd unit (deploy/systemd/issuerd.service) does what its comments say, shown by running
//! the real binary as the unit would run it: as an unprivileged user (the dynamic user's stand-in
//! is 65534) with the unit's capability sets, no-new-privs, umask and, if the unit asked for one,
//! a private user namespace (`setpriv`, `unshare`). The capability grant the comment documents
//! binds 443 and serves; under `PrivateUsers=yes` that grant would be useless; and the ACME cache
//! path config/issuerd.toml suggests lies in the unit's `StateDirectory=`, where that user can
//! create it. The sandbox is built from the unit's directives, so these tests follow the unit.
//!
//! Each server runs in a network namespace of its own: 443 there is free and privileged whatever
//! the host runs or sets `net.ipv4.ip_unprivileged_port_start` to (containers often set 0).
//! That needs root, as CI has; without it the tests fail and say so.
//!
//! `systemd-analyze verify` and the exposure score of `systemd-analyze security` are checked in
//! tests/interop/test_deploy.py (with the other deployment files, each by its own tool).

use crate::common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{KillOnDrop, key, kid_of};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// The user the tests run the service as, standing in for the dynamic user systemd allocates.
const DYNAMIC_UID: u32 = 65534;

fn unit() -> String {
    std::fs::read_to_string(Path::new(REPO).join("deploy/systemd/issuerd.service")).unwrap()
}

/// Every value assigned to `key` in the unit, in order (comments skipped).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// The one value of `key`, if the unit sets it.
fn value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    let all = values(unit, key);
    assert!(all.len() <= 1, "{key}= is set {} times", all.len());
    all.first().copied()
}

fn yes(unit: &str, key: &str) -> bool {
    value(unit, key).is_some_and(|v| matches!(v, "yes" | "true" | "on" | "1"))
}

/// A capability list as systemd reads it: assignments add up and an empty one resets. As
/// setpriv names them: `CAP_NET_BIND_SERVICE` is `net_bind_service`.
fn capabilities(unit: &str, key: &str) -> Vec<String> {
    let mut caps = Vec::new();
    for value in values(unit, key) {
        if value.is_empty() {
            caps.clear();
        }
        for cap in value.split_whitespace() {
            assert!(!cap.starts_with('~'), "{key}=~ is not handled here");
            let name = cap.strip_prefix("CAP_").expect("a CAP_ name");
            caps.push(name.to_lowercase());
        }
    }
    caps
}

/// The unit with the grant its comment documents for binding 443 applied: each
/// `#   CapabilityBoundingSet=...` / `#   AmbientCapabilities=...` line of the comment replaces the
/// directive it names.
fn with_documented_grant(unit: &str) -> String {
    let mut granted = unit.to_owned();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let documented = unit
            .lines()
            .filter_map(|line| line.strip_prefix('#'))
            .map(str::trim)
            .find(|line| line.starts_with(&format!("{key}=CAP_")))
            .unwrap_or_else(|| {
                panic!("the unit's comment no longer shows the {key}= line that binds 443")
            });
        let shipped = format!(
            "\n{key}={}\n",
            value(unit, key).unwrap_or_else(|| panic!("the unit sets no {key}="))
        );
        assert!(granted.contains(&shipped), "{shipped:?}");
        granted = granted.replace(&shipped, &format!("\n{documented}\n"));
    }
    granted
}

/// The process settings the unit gives the service, as `setpriv` and `unshare` apply them.
struct Sandbox {
    bounding: Vec<String>,
    ambient: Vec<String>,
    no_new_privs: bool,
    private_users: bool,
    umask: String,
}

impl Sandbox {
    fn of(unit: &str) -> Self {
        assert!(
            yes(unit, "DynamicUser"),
            "the unit no longer runs as DynamicUser=yes"
        );
        assert_eq!(
            value(unit, "User"),
            None,
            "a fixed User= is not handled here"
        );
        Self {
            bounding: capabilities(unit, "CapabilityBoundingSet"),
            ambient: capabilities(unit, "AmbientCapabilities"),
            no_new_privs: yes(unit, "NoNewPrivileges"),
            private_users: yes(unit, "PrivateUsers"),
            umask: value(unit, "UMask").unwrap_or("0022").to_owned(),
        }
    }

    /// `program args` as the service, in a fresh network namespace with loopback up.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        require_root();
        let mut command = Command::new("unshare");
        command.args([
            "--net",
            "--",
            "sh",
            "-c",
            r#"ip link set lo up && umask "$0" && exec "$@""#,
            &self.umask,
        ]);
        if self.private_users {
            // PrivateUsers=yes: a user namespace of the service's own. systemd maps the service's
            // user into it and hands it its capabilities there; `unshare` maps only root, so the
            // service stays its root, holding exactly the unit's capabilities. Either way they
            // are capabilities in a namespace that does not own the network.
            command.args(["unshare", "--user", "--map-root-user", "--", "setpriv"]);
        } else {
            command.args([
                "setpriv".to_owned(),
                format!("--reuid={DYNAMIC_UID}"),
                format!("--regid={DYNAMIC_UID}"),
                "--clear-groups".to_owned(),
            ]);
        }
        let set = |caps: &[String]| {
            std::iter::once("-all".to_owned())
                .chain(caps.iter().map(|cap| format!("+{cap}")))
                .collect::<Vec<_>>()
                .join(",")
        };
        command.arg(format!("--inh-caps={}", set(&self.ambient)));
        command.arg(format!("--ambient-caps={}", set(&self.ambient)));
        command.arg(format!("--bounding-set={}", set(&self.bounding)));
        if self.no_new_privs {
            command.arg("--no-new-privs");
        }
        command.arg(program).args(args);
        command
    }
}

fn require_root() {
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        uid, 0,
        "tests/it/systemd.rs runs as root (CI does): it runs issuerd as uid {DYNAMIC_UID} with the \
         unit's capabilities (setpriv) in a network namespace of its own (unshare --net); \
         this is uid {uid}"
    );
}

/// A directory the service's user can read, holding the key it publishes, and the binary if the
/// one cargo built is not reachable for that user (a target directory under a private home).
struct Root {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Root {
    fn new() -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key_file = dir.path().join("sa.pub");
        std::fs::copy(key("ec256.pub.pem"), &key_file).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let built = Path::new(env!("CARGO_BIN_EXE_issuerd"));
        let others_can_run = built
            .ancestors()
            .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
        let binary = if others_can_run {
            built.to_owned()
        } else {
            let copy = dir.path().join("issuerd");
            std::fs::copy(built, &copy).unwrap();
            copy
        };
        Self { dir, binary }
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("sa.pub")
    }
}

/// What `issuerd serve` did in the sandbox: logged ready (and is still running), or exited.
enum Served {
    Ready(KillOnDrop),
    Exited(String),
}

impl Served {
    fn ready(self, what: &str) -> KillOnDrop {
        match self {
            Self::Ready(server) => server,
            Self::Exited(log) => panic!("{what}: issuerd exited:\n{log}"),
        }
    }
}

fn serve(sandbox: &Sandbox, root: &Root, args: &[&str]) -> Served {
    let key_file = root.key_file();
    let mut all = vec![
        "serve",
        "--issuer",
        "https://oidc.example.com",
        "--key-file",
        key_file.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut child = KillOnDrop(
        sandbox
            .command(&root.binary, &all)
            .env_remove("ISSUERD_CONFIG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) runs the sandbox"),
    );
    let (lines_tx, lines_rx) = mpsc::channel();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut log = String::new();
    loop {
        match lines_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(": ready ") {
                    return Served::Ready(child);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().unwrap();
                assert!(!status.success(), "exited 0 without getting ready:\n{log}");
                return Served::Exited(log);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("neither ready nor exited:\n{log}"),
        }
    }
}

/// `curl URL` from inside the network namespace of `server`.
fn fetch_inside(server: &KillOnDrop, url: &str) -> String {
    let output = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", server.id()))
        .args(["--", "curl", "-fsS", "--max-time", "5", url])
        .output()
        .expect("nsenter (util-linux) and curl");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_documented_grant_binds_443_and_serves() {
    let sandbox = Sandbox::of(&with_documented_grant(&unit()));
    assert_eq!(sandbox.ambient, ["net_bind_service"]);
    let root = Root::new();
    let server =
        serve(&sandbox, &root, &["--listen", "127.0.0.1:443"]).ready("the documented grant");
    let jwks = fetch_inside(&server, "http://127.0.0.1:443/openid/v1/jwks");
    assert!(jwks.contains(&kid_of("ec256.pub.pem")), "{jwks}");
}

fn assert_refused_443(served: Served) {
    match served {
        Served::Ready(_) => panic!("bound 127.0.0.1:443"),
        Served::Exited(log) => assert!(
            log.contains("error: cannot listen on 127.0.0.1:443 (--listen): Permission denied"),
            "{log}"
        ),
    }
}

#[test]
fn as_shipped_the_unit_grants_no_capability_and_443_is_refused() {
    // The control: the sandbox is no root, so the test above shows the grant at work.
    let shipped = unit();
    let sandbox = Sandbox::of(&shipped);
    assert!(sandbox.bounding.is_empty() && sandbox.ambient.is_empty());
    let root = Root::new();
    assert_refused_443(serve(&sandbox, &root, &["--listen", "127.0.0.1:443"]));
    // 8080, the unit's default, needs nothing.
    let server = serve(&sandbox, &root, &["--listen", "127.0.0.1:8080"]).ready("port 8080");
    fetch_inside(&server, "http://127.0.0.1:8080/readyz");
}

#[test]
fn private_users_would_void_the_grant() {
    let granted = with_documented_grant(&unit());
    assert!(
        !yes(&granted, "PrivateUsers"),
        "PrivateUsers=yes keeps the grant from binding 443"
    );
    let private = granted.replace(
        "\nNoNewPrivileges=yes\n",
        "\nNoNewPrivileges=yes\nPrivateUsers=yes\n",
    );
    let sandbox = Sandbox::of(&private);
    assert!(sandbox.private_users);
    assert_refused_443(serve(
        &sandbox,
        &Root::new(),
        &["--listen", "127.0.0.1:443"],
    ));
}

/// The ACME cache path config/issuerd.toml suggests (`# cache = "..."` under `[acme]`).
fn suggested_acme_cache() -> PathBuf {
    let config = std::fs::read_to_string(Path::new(REPO).join("config/issuerd.toml")).unwrap();
    let acme = config
        .split("\n[acme]\n")
        .nth(1)
        .expect("config/issuerd.toml has an [acme] section");
    let acme = acme.split("\n[").next().unwrap();
    let line = acme
        .lines()
        .find_map(|line| line.strip_prefix("# cache = "))
        .expect("[acme] suggests a cache path");
    PathBuf::from(line.trim_matches('"'))
}

/// `--acme-cache` at the suggested path, under `root` standing for `/`: systemd's part (the
/// state directory, owned by the dynamic user, with the unit's mode) is done here, if the unit
/// asks for it; issuerd creates the cache inside. Returns the cache path under `root`.
fn acme_cache_in(unit: &str, root: &Root) -> (PathBuf, Served) {
    let cache = suggested_acme_cache();
    let stand_in = root.dir.path().join(cache.strip_prefix("/").unwrap());
    // The parents (/var, /var/lib) are root's, as on the host.
    std::fs::create_dir_all(root.dir.path().join("var/lib")).unwrap();
    if let Some(name) = value(unit, "StateDirectory") {
        let state = root.dir.path().join("var/lib").join(name);
        let mode = value(unit, "StateDirectoryMode").unwrap_or("0755");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(DYNAMIC_UID), Some(DYNAMIC_UID)).unwrap();
        let mode = u32::from_str_radix(mode, 8).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    // Nothing listens on 443 in the fresh network namespace: the order fails (and is retried)
    // after the cache is opened.
    let mut sandbox = Sandbox::of(unit);
    // systemd's PrivateUsers= maps the service's user to itself, which changes nothing for files;
    // the stand-in (root in the namespace) is for capabilities only.
    sandbox.private_users = false;
    let served = serve(
        &sandbox,
        root,
        &[
            "--listen",
            "127.0.0.1:8080",
            "--acme-domain",
            "oidc.example.com",
            "--acme-accept-tos",
            "--acme-directory",
            "https://127.0.0.1/dir",
            "--acme-cache",
            stand_in.to_str().unwrap(),
        ],
    );
    (stand_in, served)
}

#[test]
fn the_suggested_acme_cache_is_created_in_the_state_directory() {
    let unit = unit();
    let state = value(&unit, "StateDirectory").unwrap_or_else(|| {
        panic!("the unit has no StateDirectory=: its dynamic user can write no ACME cache")
    });
    assert_eq!(value(&unit, "StateDirectoryMode"), Some("0700"));
    let cache = suggested_acme_cache();
    assert!(
        cache.starts_with(Path::new("/var/lib").join(state)),
        "config/issuerd.toml suggests {}, outside the unit's /var/lib/{state}",
        cache.display()
    );
    let root = Root::new();
    let (stand_in, served) = acme_cache_in(&unit, &root);
    drop(served.ready(&format!("--acme-cache {}", stand_in.display())));
    let created = std::fs::metadata(&stand_in).unwrap();
    assert!(created.is_dir());
    assert_eq!(created.uid(), DYNAMIC_UID);
    assert_eq!(created.permissions().mode() & 0o777, 0o700);
}

#[test]
fn without_a_state_directory_the_acme_cache_cannot_be_created() {
    // The control: the old unit (DynamicUser=yes and no StateDirectory=).
    let unit = unit()
        .lines()
        .filter(|line| !line.starts_with("StateDirectory"))
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    let root = Root::new();
    let (stand_in, served) = acme_cache_in(&unit, &root);
    let Served::Exited(log) = served else {
        panic!("created {}", stand_in.display())
    };
    assert!(
        log.contains(&format!(
            "error: cannot start ACME: cannot create {}: Permission denied",
            stand_in.display()
        )),
        "{log}"
    );
}
