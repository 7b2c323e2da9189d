//! Golden replay: every synthetic FastTrack capture in `tests/fixtures/` must replay to exactly
//! the verdicts its generator (`tests/fixtures/gen_fixtures.rs`) wrote down for it.

#[allow(unreachable_pub)] // the generator's items are `pub` for its own binary too
#[path = "fixtures/gen_fixtures.rs"]
mod gen_fixtures;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures exists")
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
        .collect();
    files.sort();
    files
}

fn replay_jsonl(file: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .args(["replay", "--lan", "192.0.2.0/24", "--lan", "2001:db8:1::/64", "--jsonl"])
        .arg(file)
        .output()
        .expect("run ftwall replay");
    assert!(
        out.status.success(),
        "replay of {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn fixtures_replay_to_their_expected_verdicts() {
    let files = captures();
    assert!(files.len() >= 7, "expected the generated fixtures, found {files:?}");
    let mut failures = Vec::new();
    let mut drops = 0;
    for file in &files {
        let expected_path = file.with_extension("expected.jsonl");
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let got = replay_jsonl(file);
        if got.len() != expected.len() {
            failures.push(format!("{}: {} records, expected {}", file.display(), got.len(), expected.len()));
            continue;
        }
        for (e, g) in expected.iter().zip(&got) {
            assert_eq!(e["frame"], g["frame"]);
            if e["verdict"] != g["verdict"] || e["reason"] != g["reason"] {
                failures.push(format!(
                    "{} frame {}: expected {} {}, got {} {} ({} -> {})",
                    file.file_name().unwrap().to_string_lossy(),
                    e["frame"],
                    e["verdict"],
                    e["reason"],
                    g["verdict"],
                    g["reason"],
                    g["src"],
                    g["dst"]
                ));
            }
            drops += usize::from(g["verdict"] == "drop");
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(drops > 200, "the fixtures exercise the drop paths ({drops} drops)");
}

#[test]
fn every_tell_and_decoy_is_covered() {
    let mut reasons = std::collections::BTreeSet::new();
    for file in captures() {
        for line in std::fs::read_to_string(file.with_extension("expected.jsonl")).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            reasons.insert(v["reason"].as_str().unwrap().to_string());
        }
    }
    for reason in [
        "udp_ping",
        "udp_pong",
        "udp_pong_ack",
        "udp_address_echo",
        "udp_session",
        "tcp_opener",
        "tcp_handshake",
        "http_transfer",
        "give_push",
        "fasttrack_flow",
        "suspect_peer",
        "client_locked",
        "clean",
    ] {
        assert!(reasons.contains(reason), "no fixture frame expects {reason}");
    }
}

#[test]
fn generator_is_deterministic_and_fixtures_are_current() {
    let dir = tempfile::tempdir().unwrap();
    gen_fixtures::write_all(dir.path()).unwrap();
    let mut compared = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let fresh = entry.unwrap().path();
        let committed = fixtures_dir().join(fresh.file_name().unwrap());
        let a = std::fs::read(&fresh).unwrap();
        let b = std::fs::read(&committed).unwrap_or_else(|e| panic!("{}: {e}", committed.display()));
        assert!(
            a == b,
            "{} differs from the generator's output: run `cargo run --example gen_fixtures -- tests/fixtures`",
            committed.display()
        );
        compared += 1;
    }
    assert_eq!(compared, 18);
}
