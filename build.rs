//! Stamps the git revision into the binary, so `issuerd --version` says which commit it is.
//!
//! `ISSUERD_BUILD_REV` (set by the Docker build, which has no `.git`) wins; otherwise
//! `git rev-parse --short HEAD`, plus `-dirty` when the tracked files the binary is built from
//! differ from it. Without git, or outside issuerd's own repository (a source tarball unpacked
//! inside another one), the version is the package version alone.

use std::path::PathBuf;
use std::process::Command;

/// What the binary is built from: `-dirty` means one of these differs from HEAD (edits to tests
/// or docs do not make a binary dirty).
const BUILT_FROM: [&str; 4] = ["src", "Cargo.toml", "Cargo.lock", "build.rs"];

fn main() {
    println!("cargo:rerun-if-env-changed=ISSUERD_BUILD_REV");
    // Edits to what the binary is built from change `-dirty`; they rebuild the crate anyway.
    for path in BUILT_FROM {
        println!("cargo:rerun-if-changed={path}");
    }
    let revision = match std::env::var("ISSUERD_BUILD_REV") {
        Ok(rev) if !rev.trim().is_empty() => Some(rev.trim().to_owned()),
        _ => git_revision(),
    };
    let package = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match &revision {
        Some(rev) => format!("{package} ({rev})"),
        None => package,
    };
    println!(
        "cargo:rustc-env=ISSUERD_GIT_REV={}",
        revision.unwrap_or_default()
    );
    println!("cargo:rustc-env=ISSUERD_VERSION={version}");
}

/// `abc1234` or `abc1234-dirty`; `None` without git or a repository.
fn git_revision() -> Option<String> {
    // Only this package's own repository names the revision built.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    if top.canonicalize().ok()? != here.canonicalize().ok()? {
        return None;
    }
    let rev = git(&["rev-parse", "--short", "HEAD"])?;
    // HEAD, the branch it names and the index move on commit, checkout and add.
    for path in ["HEAD", "index", "packed-refs"] {
        if let Some(file) = git_path(path) {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(file) = git_path(&branch)
    {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=no", "--"];
    status.extend(BUILT_FROM);
    let dirty = git(&status).is_some_and(|status| !status.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}

/// Where git keeps `name` (worktrees keep HEAD and index apart from the shared refs).
fn git_path(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    path.exists().then_some(path)
}

/// A git command's trimmed standard output, or `None` if git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        // Read-only: never take the index lock while cargo builds.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}
