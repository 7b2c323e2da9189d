//! The JSON log as an admin and a SIEM read it, on the real kernel: a real daemon in the lab
//! (`tests/common`) sees a FastTrack ping, a time-locked client's new connection, a banned
//! address and, after a reload into monitor mode, a ping it only watches; then `jq` (as the
//! operator's guide shows it) selects the `packet_dropped` lines by their eve.json fields and
//! the test checks what they say. Needs root and `jq` (`.ci/run` installs it). Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// `jq -c FILTER FILE`, which must succeed: one JSON value per output line.
fn jq(filter: &str, file: &std::path::Path) -> Vec<Value> {
    let out = Command::new("jq").arg("-c").arg(filter).arg(file).output().expect("running jq");
    assert!(out.status.success(), "jq {filter}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn jq_answers_who_was_blocked_why_and_what_was_done() {
    let _serial = kernel_test_guard_with(&["jq"]);
    let mut lab = Lab::new("ftj");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.25:53", "--tcp-ports", "80"], &wan_log);
    lab.warm_up();
    // The daemon judges the locked client's connection itself: with the kernel sets mirrored
    // (the default), the kernel drops it before the queue and the log never sees it.
    lab.extra_config = "kernel_sets = \"off\"".into();
    lab.write_config(&[], false);
    let started = lab.start_and_wait(&[]);
    assert_eq!(started["mode"], "enforce", "{started}");

    // A FastTrack ping (it locks the client), then the locked client's new connection to an
    // ordinary port, then an operator ban of the DNS server another client uses.
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 800);
    let locked = tcp(&lab, LAN_CLIENT, "203.0.113.5:7777", "none");
    assert_eq!(locked["connected"], false, "{locked}");
    lab.ctl(&["ban", "198.51.100.25"]);
    assert_eq!(lab.dns_echo(&["--timeout-ms", "500"])["echoed"], false, "banned server answered");

    // Monitor mode: a reload, then another client's ping is watched, not dropped.
    lab.extra_config.push_str("\nmode = \"monitor\"");
    lab.write_config(&[], false);
    lab.signal_daemon("-HUP");
    let reloaded =
        lab.wait_log("config_reloaded", 1, Duration::from_secs(5), |v| is_event(v, "config_reloaded"));
    assert_eq!(reloaded["changed"], "mode", "{reloaded}");
    let watched = TELL_CLIENTS[0];
    lab.ping_flood(watched, "198.51.100.21:1214", 800);
    lab.wait_log("monitor drop", 1, Duration::from_secs(5), |v| {
        is_event(v, "packet_dropped") && v["client"] == watched
    });
    lab.signal_daemon("-USR1");
    lab.wait_log("counters", 1, Duration::from_secs(5), |v| is_event(v, "counters"));
    // Every line read so far matches the catalogue, field types included (Lab::log panics
    // otherwise).
    assert!(!lab.log().is_empty());

    let drops = jq(
        "select(.event == \"packet_dropped\") \
         | {src_ip, src_port, dest_ip, dest_port, proto, reason, verdict, message, flow_id}",
        &lab.log_path,
    );
    let first = |reason: &str, src: &str| {
        drops
            .iter()
            .find(|d| d["reason"] == reason && d["src_ip"] == src)
            .unwrap_or_else(|| panic!("no {reason} drop from {src}: {drops:#?}"))
            .clone()
    };
    let without_flow_id = |mut d: Value| {
        assert!(d["flow_id"].as_u64().is_some_and(|id| id < 1 << 53), "flow_id: {d}");
        d.as_object_mut().unwrap().remove("flow_id");
        d
    };
    let ping = first("udp_ping", LAN_CLIENT);
    assert_eq!(
        without_flow_id(ping.clone()),
        json!({"src_ip": LAN_CLIENT, "src_port": 3531, "dest_ip": "198.51.100.20", "dest_port": 1214,
            "proto": "UDP", "reason": "udp_ping", "verdict": "drop", "message": "FastTrack UDP ping dropped"})
    );
    let refused = first("client_locked", LAN_CLIENT);
    assert_eq!(refused["dest_ip"], "203.0.113.5");
    assert_eq!(refused["dest_port"], 7777);
    assert!(refused["src_port"].as_u64().is_some_and(|p| p > 0), "{refused}");
    assert_eq!(
        [&refused["proto"], &refused["verdict"], &refused["message"]],
        [&json!("TCP"), &json!("drop"), &json!("new connection refused: client time-locked")]
    );
    let banned = first("banned", OTHER_CLIENT);
    assert_eq!(
        [&banned["dest_ip"], &banned["dest_port"], &banned["proto"], &banned["message"]],
        [
            &json!("198.51.100.25"),
            &json!(53),
            &json!("UDP"),
            &json!("packet dropped: address banned by the operator")
        ]
    );
    let monitored = first("udp_ping", watched);
    assert_eq!(
        [&monitored["verdict"], &monitored["message"], &monitored["dest_ip"]],
        [&json!("accept"), &json!("monitor: would drop (udp_ping)"), &json!("198.51.100.21")]
    );
    // One flow, one id: the ping flow's classification (debug) names the drop's flow_id; other
    // flows have other ids.
    let classified = jq(
        &format!(
            "select(.event == \"flow_classified\" and .src_ip == \"{LAN_CLIENT}\" and .dest_port == 1214) | .flow_id"
        ),
        &lab.log_path,
    );
    assert_eq!(classified.first(), Some(&ping["flow_id"]), "{classified:?}");
    assert_ne!(ping["flow_id"], refused["flow_id"]);
    assert_ne!(ping["flow_id"], monitored["flow_id"]);

    // "Who is blocked, and why": the docs' one-liner, and the counters' by_reason object.
    let who = jq(
        "select(.event == \"packet_dropped\" and .verdict == \"drop\") | \"\\(.client) \\(.reason)\"",
        &lab.log_path,
    );
    for expected in [
        format!("{LAN_CLIENT} udp_ping"),
        format!("{LAN_CLIENT} client_locked"),
        format!("{OTHER_CLIENT} banned"),
    ] {
        assert!(who.contains(&json!(expected)), "{expected} not in {who:?}");
    }
    let by_reason = jq("select(.event == \"counters\") | .by_reason", &lab.log_path);
    assert!(by_reason[0]["udp_ping"].as_u64().is_some_and(|n| n >= 2), "{by_reason:?}");
    assert!(by_reason[0]["banned"].as_u64().is_some_and(|n| n >= 1), "{by_reason:?}");
    let modes = jq("select(.mode) | .mode", &lab.log_path);
    assert_eq!(modes, [json!("enforce")], "mode is lowercase, as in the configuration");
}
