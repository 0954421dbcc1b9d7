//! scripts/test-deps.sh, the README test command's installer, run against a stand-in `apt-get`
//! on a PATH where every tool is missing: it installs through apt-get with service starts
//! refused (prometheus's package would otherwise start a server on :9090, issuerd's admin port),
//! puts back the policy it found, and without apt-get stops with the list of what is needed.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-deps.sh");
const POLICY: &str = "/usr/sbin/policy-rc.d";

/// A PATH directory with only the coreutils the script uses, and `apt-get` if given.
fn bare_path(apt_get: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tool in ["id", "mktemp", "cp", "rm", "tee", "chmod", "cat"] {
        let real = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(real, dir.path().join(tool)).unwrap();
    }
    if let Some(body) = apt_get {
        let fake = dir.path().join("apt-get");
        std::fs::write(&fake, body).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn run(path: &Path, log: &Path) -> std::process::Output {
    Command::new("/bin/bash")
        .arg(SCRIPT)
        .env("PATH", path)
        .env("FAKE_APT_LOG", log)
        .output()
        .unwrap()
}

#[test]
fn installs_with_apt_get_and_no_service_may_start() {
    assert_eq!(
        std::fs::metadata("/proc/self").unwrap().uid(),
        0,
        "this test runs as root (CI does): it exercises the script's writes to {POLICY}"
    );
    // A policy that allows every start stands in for the machine's (restored on drop), so the
    // script's own policy is what refuses.
    let _restore = RestorePolicy(std::fs::read(POLICY).ok());
    let allowing = b"#!/bin/sh\nexit 0\n".to_vec();
    std::fs::write(POLICY, &allowing).unwrap();
    std::fs::set_permissions(POLICY, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The stand-in asks the policy what invoke-rc.d would (may prometheus start?) on install.
    let bin = bare_path(Some(
        "#!/bin/sh\n\
         echo \"apt-get $*\" >> \"$FAKE_APT_LOG\"\n\
         if [ \"$1\" = install ]; then /usr/sbin/policy-rc.d prometheus start; \
         echo \"policy $?\" >> \"$FAKE_APT_LOG\"; fi\n",
    ));
    let log = bin.path().join("log");
    let output = run(bin.path(), &log);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let log = std::fs::read_to_string(&log).unwrap();
    let install = log
        .lines()
        .find(|l| l.starts_with("apt-get install"))
        .unwrap_or_else(|| panic!("no apt-get install: {log}"));
    for package in [
        "prometheus",
        "pebble",
        "nodejs",
        "golang-go",
        "python3-venv",
    ] {
        assert!(install.split(' ').any(|w| w == package), "{install}");
    }
    assert!(
        log.contains("policy 101"),
        "service starts were allowed: {log}"
    );
    assert_eq!(
        std::fs::read(POLICY).unwrap(),
        allowing,
        "{POLICY} was not restored"
    );
}

/// Puts back the machine's policy-rc.d (or its absence).
struct RestorePolicy(Option<Vec<u8>>);

impl Drop for RestorePolicy {
    fn drop(&mut self) {
        match &self.0 {
            Some(body) => std::fs::write(POLICY, body).unwrap(),
            None => std::fs::remove_file(POLICY).unwrap(),
        }
    }
}

#[test]
fn without_apt_get_it_names_what_is_needed() {
    let bin = bare_path(None);
    let output = run(bin.path(), &bin.path().join("log"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no apt-get here"), "{stderr}");
    for package in ["prometheus", "pebble", "nghttp2-client"] {
        assert!(stderr.contains(&format!("  {package}\n")), "{stderr}");
    }
}
