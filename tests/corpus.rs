//! False positives: every capture of ordinary traffic in the shared corpus (500+ nDPI regression
//! captures, none of them FastTrack) must replay with zero drops under the default configuration.
//!
//! The corpus directory is `$FTWALL_CORPUS`, by default `../shared/corpus/ndpi` (beside the
//! repository); a relative path is taken from the repository root. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default corpus, relative to the repository root.
const DEFAULT_CORPUS: &str = "../shared/corpus/ndpi";

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("FTWALL_CORPUS").filter(|d| !d.is_empty());
    // Joining an absolute path replaces the base.
    Path::new(env!("CARGO_MANIFEST_DIR")).join(dir.as_deref().unwrap_or(DEFAULT_CORPUS.as_ref()))
}

#[test]
#[ignore = "needs the shared false-positive corpus (FTWALL_CORPUS): cargo test -- --include-ignored"]
fn ordinary_traffic_corpus_has_zero_drops() {
    let dir = corpus_dir();
    assert!(
        dir.is_dir(),
        "no false-positive corpus at {} (set FTWALL_CORPUS to the directory of ordinary-traffic captures)",
        dir.display()
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() > 500, "corpus looks incomplete: {} files", files.len());

    let out = Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .args(["replay", "--jsonl"])
        .args(&files)
        .output()
        .expect("run ftwall replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Exit 2 means some files could not be read (unsupported link types, corrupt fuzz files);
    // they must be named, and must be a small minority.
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("at byte offset")).collect();
    match out.status.code() {
        Some(0) => assert!(failed.is_empty()),
        Some(2) => assert!(!failed.is_empty(), "exit 2 without naming a file:\n{stderr}"),
        other => panic!("replay exited with {other:?}:\n{stderr}"),
    }
    assert!(failed.len() * 50 < files.len(), "too many unreadable files:\n{}", failed.join("\n"));

    let mut records = 0usize;
    let mut drops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        records += 1;
        if v["verdict"] != "accept" {
            drops.entry(v["file"].as_str().unwrap().to_string()).or_default().push(format!(
                "frame {} {} {} {} -> {}",
                v["frame"], v["reason"], v["proto"], v["src"], v["dst"]
            ));
        }
    }
    eprintln!(
        "corpus: {} files ({} unreadable), {records} records, {} with drops",
        files.len(),
        failed.len(),
        drops.len()
    );
    assert!(records > 100_000, "only {records} records replayed");
    assert!(drops.is_empty(), "false positives in the ordinary-traffic corpus:\n{drops:#?}");
}
