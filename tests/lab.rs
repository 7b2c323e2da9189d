//! `ftwall lab` on the real kernel: the demo must build its namespaces, show every scenario with
//! the expected outcome, and leave nothing behind; `ftwall lab up` must build the topology the
//! other real-kernel tests use (they call it through `tests/common/mod.rs`) and `ftwall lab down`
//! must remove it, twice without complaint. Needs root (but for the prefix check). Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

/// The namespaces whose name starts with `prefix-`.
fn lab_namespaces(prefix: &str) -> Vec<String> {
    let out = run("ip", &["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect()
}

fn ftwall(args: &[&str]) -> std::process::Output {
    run(env!("CARGO_BIN_EXE_ftwall"), args)
}

/// Runs `ftwall lab down` on drop, so that a failing test leaves no lab (nor its processes).
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = ftwall(&["lab", "down", "--prefix", &self.0]);
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn lab_blocks_every_fasttrack_scenario_passes_the_rest_and_cleans_up() {
    let _serial = kernel_test_guard();
    let prefix = unique_prefix("ftd");
    let out = ftwall(&["lab", "--json", "--prefix", &prefix]);
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
    assert!(lab_namespaces(&prefix).is_empty(), "left behind: {:?}", lab_namespaces(&prefix));
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn lab_up_builds_the_topology_and_lab_down_removes_it_idempotently() {
    let _serial = kernel_test_guard();
    let prefix = unique_prefix("ftu");
    let _down = Down(prefix.clone());
    let up = ftwall(&["lab", "up", "--prefix", &prefix, "--queue", "5:6", "--json"]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let built: Value = serde_json::from_slice(&up.stdout).unwrap();
    assert_eq!(built["rules"], "iptables");
    assert_eq!(built["queue"], "5:6");
    let mut names = lab_namespaces(&prefix);
    names.sort();
    let mut want = ["lan", "gw", "wan"].map(|r| format!("{prefix}-{r}")).to_vec();
    want.sort();
    assert_eq!(names, want);
    let gw = format!("{prefix}-gw");
    let in_gw = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &gw];
        all.extend_from_slice(args);
        String::from_utf8(run("ip", &all).stdout).unwrap()
    };
    // The shipped rules, as install.sh applies them: the LAN side is PREFIXg0.
    let chain = in_gw(&["iptables", "-t", "security", "-S", "FTWALL"]);
    let queue_rule = format!("-A FTWALL -i {prefix}g0 -p udp -j NFQUEUE --queue-balance 5:6 --queue-bypass");
    assert!(chain.contains(&queue_rule), "{chain}");
    let jump = "-A FORWARD -m comment --comment ftwall-created-table -j FTWALL";
    assert!(in_gw(&["iptables", "-t", "security", "-S", "FORWARD"]).contains(jump));
    assert!(in_gw(&["ip6tables", "-t", "security", "-S", "FORWARD"]).contains(jump));
    assert_eq!(in_gw(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(), "1");
    // Addresses and routes: an ordinary client in lan reaches hosts on wan and beyond it, in both
    // families (the queue rules bypass the queue while no daemon is bound to it).
    let (lan, wan) = (format!("{prefix}-lan"), format!("{prefix}-wan"));
    let targets = "198.51.100.39:7,203.0.113.9:7,[2001:db8:2::26]:7";
    let mut responder = Command::new("ip")
        .args(["netns", "exec", &wan, env!("CARGO_BIN_EXE_ftwall"), "sim", "responder", "--udp", targets])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(responder.stdout.take().unwrap()), &mut ready)
        .unwrap();
    assert!(ready.contains("ready"), "{ready}");
    let echo = |to: &str| {
        let out = run("ip", &["netns", "exec", &lan, env!("CARGO_BIN_EXE_ftwall"), "sim", "udp", "--to", to]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default()
    };
    let unreachable: Vec<&str> =
        targets.split(',').filter(|to| !(0..5).any(|_| echo(to)["echoed"] == true)).collect();
    let _ = responder.kill();
    let _ = responder.wait();
    assert!(unreachable.is_empty(), "no echo from {unreachable:?}");

    // Up again: the old lab is replaced, not duplicated; --rules none leaves no chain.
    let again = ftwall(&["lab", "up", "--prefix", &prefix, "--rules", "none"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(!in_gw(&["iptables-save"]).contains("FTWALL"));
    assert_eq!(lab_namespaces(&prefix).len(), 3);

    // Down kills what still runs inside, and a second down has nothing to do.
    let mut sleeper = Command::new("ip").args(["netns", "exec", &lan, "sleep", "60"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let down = ftwall(&["lab", "down", "--prefix", &prefix]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(String::from_utf8_lossy(&down.stdout).contains("3 namespace(s) removed"));
    assert!(!sleeper.wait().unwrap().success(), "the process in the lab was not killed");
    assert!(lab_namespaces(&prefix).is_empty());
    let twice = ftwall(&["lab", "down", "--prefix", &prefix]);
    assert!(twice.status.success(), "{}", String::from_utf8_lossy(&twice.stderr));
    assert!(String::from_utf8_lossy(&twice.stdout).contains("0 namespace(s) removed"));
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn lab_up_fails_cleanly_and_leaves_nothing() {
    let _serial = kernel_test_guard();
    let prefix = unique_prefix("ftx");
    // install.sh rejects the queue after the namespaces exist: up must remove them again.
    let up = ftwall(&["lab", "up", "--prefix", &prefix, "--queue", "x"]);
    assert!(!up.status.success());
    assert!(String::from_utf8_lossy(&up.stderr).contains("bad queue number"), "{up:?}");
    assert!(lab_namespaces(&prefix).is_empty(), "left behind: {:?}", lab_namespaces(&prefix));
}

#[test]
fn lab_rejects_a_prefix_that_would_not_fit_an_interface_name() {
    for prefix in ["a-b", "fourteen_chars", ""] {
        let out = ftwall(&["lab", "up", "--prefix", prefix]);
        assert!(!out.status.success(), "{prefix:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("lab prefix"), "{out:?}");
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn lab_refuses_to_run_without_root() {
    let _serial = kernel_test_guard();
    for args in [&["lab"][..], &["lab", "up", "--prefix", "ftnr"], &["lab", "down", "--prefix", "ftnr"]] {
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", env!("CARGO_BIN_EXE_ftwall")])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"), "{args:?}: {out:?}");
    }
    assert!(lab_namespaces("ftlab").is_empty());
    assert!(lab_namespaces("ftnr").is_empty());
}
