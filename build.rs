//! Embeds git information in `ftwall --version`: `FTWALL_VERSION` is e.g.
//! `0.1.0 (git 14587f7, 2026-11-23)`, or `0.1.0 (git unknown)` when git or the repository is
//! missing (a build from a crate tarball). Dependency-free on purpose.
//!
//! It reruns when HEAD moves (HEAD, the ref it points to, packed-refs), not on every build: a change
//! of FTWALL_VERSION recompiles every target of the package. So `-dirty` tells the state at the last
//! commit or checkout that this target directory saw, not of later edits.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let pkg_version = std::env::var("CARGO_PKG_VERSION").expect("CARGO_PKG_VERSION");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FTWALL_GIT_VERSION");

    // Packagers building from a tarball may supply the description themselves.
    let git = match std::env::var("FTWALL_GIT_VERSION") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => git_info(&manifest_dir).unwrap_or_else(|| "git unknown".to_string()),
    };
    println!("cargo:rustc-env=FTWALL_VERSION={pkg_version} ({git})");
}

/// `git <hash-or-describe>, <commit date>`, or None when this crate is not the top of a git work tree.
fn git_info(manifest_dir: &Path) -> Option<String> {
    // Only our own repository: a crate unpacked inside some other repository must not borrow its hash.
    let top = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(manifest_dir).ok()? {
        return None;
    }
    watch_git_files(manifest_dir);
    let describe = git(manifest_dir, &["describe", "--always", "--dirty", "--tags"])
        .or_else(|| git(manifest_dir, &["rev-parse", "--short", "HEAD"]))?;
    Some(match git(manifest_dir, &["log", "-1", "--date=short", "--format=%cd"]) {
        Some(date) => format!("git {describe}, {date}"),
        None => format!("git {describe}"),
    })
}

/// Rerun when HEAD, the branch it points to or packed-refs change (not the index, which `git status`
/// rewrites often). Paths come from git
/// because `.git` may be a file (worktrees, submodules) rather than a directory.
fn watch_git_files(dir: &Path) {
    // `--git-path` answers relative to `dir` (or absolute); a path that does not exist is skipped,
    // since cargo would take it as changed on every build.
    let watch = |what: &str| {
        if let Some(p) = git(dir, &["rev-parse", "--git-path", what]).map(|p| dir.join(p)) {
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    };
    for what in ["HEAD", "packed-refs"] {
        watch(what);
    }
    if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&head_ref);
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}
