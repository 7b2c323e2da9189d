//! `ftwall lab` on the real kernel: it must build its namespaces, show every scenario with the
//! expected outcome, and leave nothing behind. Needs root; fails under `CI=true` instead of
//! skipping.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn lab_namespaces() -> Vec<String> {
    let out = run("ip", &["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("ftlab-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn lab_blocks_every_fasttrack_scenario_passes_the_rest_and_cleans_up() {
    let Some(_serial) = kernel_test_guard() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_ftwall")).args(["lab", "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["ok"], true);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 9);
    for s in scenarios {
        assert_eq!(s["ok"], true, "{s}");
    }
    let blocked = scenarios.iter().filter(|s| s["observed"] == "blocked").count();
    assert_eq!(blocked, 5, "{report:#}");
    // Each FastTrack tell was seen and logged by the daemon, not just some blanket rule.
    for reason in ["udp_ping", "http_transfer", "tcp_opener", "give_push", "client_locked"] {
        assert!(report["drops_by_reason"][reason].as_u64().unwrap_or(0) >= 1, "{reason}: {report:#}");
    }
    let locked = report["locked_clients"].as_array().unwrap();
    assert!(locked.iter().any(|c| c == "192.0.2.10"), "{report:#}");
    assert!(!locked.iter().any(|c| c == "192.0.2.11"), "the ordinary client was locked: {report:#}");
    assert!(lab_namespaces().is_empty(), "left behind: {:?}", lab_namespaces());
}

#[test]
fn lab_refuses_to_run_without_root() {
    let Some(_serial) = kernel_test_guard() else { return };
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", env!("CARGO_BIN_EXE_ftwall"), "lab"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
    assert!(lab_namespaces().is_empty());
}
