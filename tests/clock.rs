//! Wall-clock steps on the real kernel: the real daemon runs under libfaketime with
//! `FAKETIME_DONT_FAKE_MONOTONIC=1`, so only its wall clock (`CLOCK_REALTIME`) moves while
//! `CLOCK_BOOTTIME`, on which it runs every expiry, does not. The test steps the wall clock a
//! day back and then two days forward while a client is time-locked, an outside address banned
//! and a peer suspect, and checks that nothing is extended by the backward step and nothing
//! released by the forward one, and that each step is logged as `clock_step`.
//!
//! Needs root, the lab's tools and libfaketime (Debian's `libfaketime`, which `.ci/run`
//! installs). Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The multi-threaded libfaketime, wherever Debian put it for this architecture.
fn libfaketime() -> PathBuf {
    let lib = std::fs::read_dir("/usr/lib").into_iter().flatten().filter_map(Result::ok).find_map(|entry| {
        let candidate = entry.path().join("faketime/libfaketimeMT.so.1");
        candidate.exists().then_some(candidate)
    });
    lib.unwrap_or_else(|| {
        panic!("this test cannot run here: libfaketime is not installed (apt-get install libfaketime)")
    })
}

/// Sets the faked wall clock's offset from the real one (libfaketime syntax: `+0`, `-1d`, `+2d`).
fn set_wall_offset(file: &std::path::Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).unwrap();
}

fn locked_client(lab: &Lab, client: &str) -> Option<Value> {
    let clients = lab.ctl(&["clients"]);
    clients["clients"].as_array().unwrap().iter().find(|c| c["client"] == client).cloned()
}

fn listed(lab: &Lab, what: &str, key: &str, addr: &str) -> bool {
    lab.ctl(&[what])[what].as_array().unwrap().iter().any(|v| v[key] == addr)
}

/// Locks `LAN_CLIENT` with a ping to the suspect peer and waits for the lock.
fn lock_client(lab: &Lab, n: usize) {
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 300);
    lab.wait_log("client_identified", n, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == LAN_CLIENT
    });
}

/// Waits for the `n`-th `clock_step` line and returns its step in milliseconds.
fn wait_step(lab: &Lab, n: usize) -> i64 {
    let step = lab.wait_log("clock_step", n, Duration::from_secs(10), |v| is_event(v, "clock_step"));
    step["step_ms"].as_i64().unwrap_or_else(|| panic!("{step}"))
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn wall_clock_steps_neither_extend_nor_end_locks_bans_or_peers() {
    let _serial = kernel_test_guard_with(&[]);
    let faketime = libfaketime();
    let mut lab = Lab::new("ftc");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder(
        "wan",
        &["--udp", "198.51.100.20:1214,198.51.100.25:53", "--tcp-ports", "7777"],
        &wan_log,
    );
    lab.warm_up();
    lab.write_config(&[], false);
    let offset_file = lab.dir.path().join("faketime");
    set_wall_offset(&offset_file, "+0");
    let preload = format!("LD_PRELOAD={}", faketime.display());
    let offset = format!("FAKETIME_TIMESTAMP_FILE={}", offset_file.display());
    lab.start_and_wait(&[
        "env",
        &preload,
        &offset,
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
        "FAKETIME_CACHE_DURATION=1",
    ]);
    let refused = |lab: &Lab| tcp(lab, LAN_CLIENT, "203.0.113.5:7777", "none")["connected"] == false;
    let dns_banned = |lab: &Lab| lab.dns_echo(&["--timeout-ms", "500"])["echoed"] == false;

    // A lock of LOCK_SECONDS, a 15-second ban of the DNS responder, a suspect peer.
    lock_client(&lab, 1);
    let locked_at = Instant::now();
    lab.ctl(&["ban", "198.51.100.25", "--seconds", "15"]);
    let banned_at = Instant::now();
    assert!(refused(&lab) && dns_banned(&lab), "lock and ban in force");

    // The wall clock goes back a day: logged, and no expiry moves.
    set_wall_offset(&offset_file, "-1d");
    let step = wait_step(&lab, 1);
    assert!((-86_410_000..=-86_390_000).contains(&step), "step_ms {step}");
    let client = locked_client(&lab, LAN_CLIENT).expect("still locked");
    let remaining = client["remaining_seconds"].as_u64().unwrap();
    assert!(remaining <= LOCK_SECONDS, "a backward step extended the lock: {client}");
    lab.wait_log("client_released", 1, Duration::from_secs(LOCK_SECONDS + 5), |v| {
        is_event(v, "client_released") && v["client"] == LAN_CLIENT
    });
    assert!(
        locked_at.elapsed() < Duration::from_secs(LOCK_SECONDS + 5),
        "released after {:?}",
        locked_at.elapsed()
    );
    assert!(!refused(&lab), "the client is free once its lock ended");
    lab.wait_log("ban_expired", 1, Duration::from_secs(20), |v| is_event(v, "ban_expired"));
    assert!(banned_at.elapsed() < Duration::from_secs(20), "ban lasted {:?}", banned_at.elapsed());
    assert!(!dns_banned(&lab), "the ban ended on time");

    // Locked and banned again; the wall clock jumps three days forward (to two days ahead).
    lock_client(&lab, 2);
    let locked_at = Instant::now();
    lab.ctl(&["ban", "198.51.100.25", "--seconds", "60"]);
    set_wall_offset(&offset_file, "+2d");
    let step = wait_step(&lab, 2);
    assert!((3 * 86_400_000 - 10_000..=3 * 86_400_000 + 10_000).contains(&step), "step_ms {step}");
    // Nothing was released: lock, ban and suspect peer all still hold.
    assert!(locked_at.elapsed() < Duration::from_secs(LOCK_SECONDS - 2), "test too slow to tell");
    let client = locked_client(&lab, LAN_CLIENT).expect("a forward step released the lock");
    assert!(client["remaining_seconds"].as_u64().unwrap() <= LOCK_SECONDS, "{client}");
    assert!(refused(&lab), "a forward step released the client");
    assert!(dns_banned(&lab), "a forward step lifted the ban");
    assert!(listed(&lab, "bans", "addr", "198.51.100.25"));
    assert!(listed(&lab, "peers", "peer", "198.51.100.20"), "a forward step forgot the suspect peer");
    let expired = lab.log().iter().filter(|v| is_event(v, "ban_expired")).count();
    assert_eq!(expired, 1, "the second ban expired at the step");
    // The lock still ends on the monotonic clock, LOCK_SECONDS after it was armed.
    lab.wait_log("client_released", 2, Duration::from_secs(LOCK_SECONDS + 5), |v| {
        is_event(v, "client_released") && v["client"] == LAN_CLIENT
    });
    assert!(locked_at.elapsed() < Duration::from_secs(LOCK_SECONDS + 5));
    // The state file holds wall-clock dates: the (faked) wall is two days ahead, so the ban's
    // date is at least a day after the real now.
    lab.signal_daemon("-TERM");
    let _ = lab.daemon.take().map(|mut d| d.wait());
    let state: Value = serde_json::from_slice(&std::fs::read(lab.state_dir.join("state")).unwrap()).unwrap();
    let real_now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let saved_at = state["saved_at"].as_u64().unwrap();
    assert!(saved_at > real_now + 86_400_000_000, "saved_at is the wall clock's: {state}");
    let until = state["bans"][0]["until"].as_u64().unwrap();
    assert!(until > saved_at && until <= saved_at + 60_000_000, "{state}");
    assert_eq!(state["bans"][0]["seconds"], 60, "{state}");
}
