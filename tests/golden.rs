//! Golden replay: every synthetic FastTrack capture in `tests/fixtures/` must replay to exactly
//! the verdicts its generator (`tests/fixtures/gen_fixtures.rs`) wrote down for it, and to the
//! per-flow summary (`ftwall replay --flows`) committed beside it as `<name>.flows.jsonl`.
//!
//! The flows files are replay's output, reviewed when committed, and rewritten by one command
//! when the verdicts change (after regenerating the captures):
//! `FTWALL_BLESS_FLOWS=1 cargo test --test golden flows`. The test also re-derives every flow
//! from the per-record output (`--jsonl`), so a blessed file cannot disagree with the verdicts.

#[allow(unreachable_pub)] // the generator's items are `pub` for its own binary too
#[path = "fixtures/gen_fixtures.rs"]
mod gen_fixtures;

use serde_json::Value;
use std::collections::BTreeMap;
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

/// `ftwall replay` of a fixture, in the fixtures directory so that file names print bare; its
/// stdout.
fn replay(file: &Path, mode: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .current_dir(fixtures_dir())
        .args(["replay", "--lan", "192.0.2.0/24", "--lan", "2001:db8:1::/64", mode])
        .arg(file.file_name().unwrap())
        .output()
        .expect("run ftwall replay");
    assert!(
        out.status.success(),
        "replay of {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn replay_jsonl(file: &Path) -> Vec<Value> {
    replay(file, "--jsonl").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn fixtures_replay_to_their_expected_verdicts() {
    let files = captures();
    assert!(files.len() >= 11, "expected the generated fixtures, found {files:?}");
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
    assert_eq!(compared, 24);
}

/// What a flow summary says, or what the records of one flow add up to, keyed by protocol and the
/// two ends in either order (the engine may orient one five-tuple both ways: such flows add up).
#[derive(Debug, Default, PartialEq)]
struct Tally {
    packets: u64,
    bytes: u64,
    accepted: u64,
    dropped: u64,
    /// Frame and reason of the first drop.
    first_drop: Option<(u64, String)>,
}

type Key = (String, String, String);

fn key(proto: &Value, a: &Value, b: &Value) -> Key {
    let (a, b) = (a.as_str().unwrap().to_string(), b.as_str().unwrap().to_string());
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (proto.as_str().unwrap().to_string(), lo, hi)
}

fn tally_records(records: &[Value]) -> BTreeMap<Key, Tally> {
    let mut flows: BTreeMap<Key, Tally> = BTreeMap::new();
    for r in records.iter().filter(|r| !r["src"].is_null()) {
        let t = flows.entry(key(&r["proto"], &r["src"], &r["dst"])).or_default();
        t.packets += 1;
        t.bytes += r["payload_len"].as_u64().unwrap();
        if r["verdict"] == "drop" {
            t.dropped += 1;
            let frame = r["frame"].as_u64().unwrap();
            t.first_drop.get_or_insert((frame, r["reason"].as_str().unwrap().to_string()));
        } else {
            t.accepted += 1;
        }
    }
    flows
}

fn tally_flows(flows: &[Value]) -> BTreeMap<Key, Tally> {
    let mut sums: BTreeMap<Key, Tally> = BTreeMap::new();
    for f in flows {
        let t = sums.entry(key(&f["proto"], &f["inside"], &f["outside"])).or_default();
        let n = |k: &str| f[k].as_u64().unwrap();
        t.packets += n("packets_out") + n("packets_in");
        t.bytes += n("bytes_out") + n("bytes_in");
        t.accepted += n("accepted");
        t.dropped += n("dropped");
        if !f["first_drop"].is_null() {
            let d = &f["first_drop"];
            let this = (d["frame"].as_u64().unwrap(), d["reason"].as_str().unwrap().to_string());
            if t.first_drop.as_ref().is_none_or(|(frame, _)| this.0 < *frame) {
                t.first_drop = Some(this);
            }
        }
    }
    sums
}

/// The payload bytes accepted each way before the first drop, from the records of a flow with
/// one orientation, `inside` being its inside end.
fn leaked(records: &[Value], k: &Key, inside: &str, first_drop: u64) -> (u64, u64) {
    let mut leak = (0, 0);
    for r in records.iter().filter(|r| !r["src"].is_null() && key(&r["proto"], &r["src"], &r["dst"]) == *k) {
        if r["frame"].as_u64().unwrap() < first_drop && r["verdict"] == "accept" {
            let len = r["payload_len"].as_u64().unwrap();
            if r["src"] == inside {
                leak.0 += len;
            } else {
                leak.1 += len;
            }
        }
    }
    leak
}

#[test]
fn fixtures_replay_to_their_expected_flows() {
    let bless = std::env::var_os("FTWALL_BLESS_FLOWS").is_some();
    let mut failures = Vec::new();
    let mut leaks = 0;
    for file in captures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let got = replay(&file, "--flows");
        let flows: Vec<Value> = got.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let records = replay_jsonl(&file);

        // The summaries add up to the records, flow by flow.
        let from_records = tally_records(&records);
        assert_eq!(tally_flows(&flows), from_records, "{name}: flows disagree with the records");
        for f in flows.iter().filter(|f| !f["first_drop"].is_null()) {
            let k = key(&f["proto"], &f["inside"], &f["outside"]);
            if flows.iter().filter(|g| key(&g["proto"], &g["inside"], &g["outside"]) == k).count() == 1 {
                let d = &f["first_drop"];
                let want = leaked(&records, &k, f["inside"].as_str().unwrap(), d["frame"].as_u64().unwrap());
                assert_eq!(
                    (d["leaked_out"].as_u64().unwrap(), d["leaked_in"].as_u64().unwrap()),
                    want,
                    "{name}: {f}"
                );
                assert_eq!(d["file"], name.as_str());
                leaks += 1;
            }
        }

        let expected_path = file.with_extension("flows.jsonl");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (FTWALL_BLESS_FLOWS=1 writes it)", expected_path.display()));
        if got != expected {
            failures.push(format!("{name}: --flows output differs from {}", expected_path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nreview, then rewrite with `FTWALL_BLESS_FLOWS=1 cargo test --test golden flows`",
        failures.join("\n")
    );
    assert!(leaks > 200, "the leak before the first drop is checked on the fixtures' flows ({leaks})");
}
