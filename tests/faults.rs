//! Faults and privilege, on the real kernel (same harness as `e2e.rs`): SIGKILL during state
//! writes, a full disk, a read-only state directory, queue overflow with fail-open on and off,
//! and the daemon as an unprivileged user holding only the capabilities it needs.
//!
//! Needs root. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PEERS_PER_FLOOD: u16 = 150;

/// `n` distinct peers in 198.51.100.0/24 (on the `wan` veth) and 203.0.113.0/24 (unrouted beyond
/// `gw`, which is fine: the pings are dropped there).
fn peers(round: u16) -> String {
    (0..PEERS_PER_FLOOD)
        .map(|i| format!("203.0.113.{}:{}", 10 + i % 200, 2000 + round * 200 + i))
        .collect::<Vec<_>>()
        .join(",")
}

fn flood(lab: &Lab, round: u16) -> serde_json::Value {
    lab.ping_flood(LAN_CLIENT, &peers(round), 400)
}

/// A tmpfs mounted for the duration of a test.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        must(
            "mount",
            // 0750: the daemon refuses a directory others can write (the directory rule).
            &["-t", "tmpfs", "-o", &format!("size={size},mode=0750"), "tmpfs", dir.to_str().unwrap()],
        );
        Self(dir.to_path_buf())
    }

    fn remount(&self, options: &str) {
        must("mount", &["-o", &format!("remount,{options}"), self.0.to_str().unwrap()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn sigkill_during_state_writes_always_leaves_a_valid_state_file() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftf");
    lab.write_config(&[], false);
    let state = lab.dir.path().join("state");
    let mut file_after_kill = Vec::new();
    for round in 0..6u16 {
        lab.start_and_wait(&[]);
        flood(&lab, round);
        // Saves are debounced to one a second while state changes: kill at varying points.
        std::thread::sleep(Duration::from_millis(500 + 250 * u64::from(round)));
        must("kill", &["-9", &lab.daemon_pid().to_string()]);
        let _ = lab.daemon.take().unwrap().wait();
        match std::fs::read(&state) {
            Ok(bytes) => {
                let snapshot = ftwall::state::decode(&bytes)
                    .unwrap_or_else(|e| panic!("round {round}: state file invalid after SIGKILL: {e}"));
                assert!(!snapshot.peers.is_empty(), "round {round}");
                file_after_kill.push(true);
            }
            Err(_) => file_after_kill.push(false),
        }
    }
    let valid = file_after_kill.iter().filter(|&&v| v).count();
    assert!(valid >= 3, "the state file was written and valid after {valid} of 6 kills");
    // Every restart after a kill that left a file restored its state.
    lab.start_and_wait(&[]);
    let restored: Vec<u64> = lab
        .log()
        .iter()
        .filter(|v| v["event"] == "daemon_started")
        .map(|v| v["peers_restored"].as_u64().unwrap())
        .collect();
    for (round, &had_file) in file_after_kill.iter().enumerate() {
        if had_file {
            assert!(
                restored[round + 1] > 0,
                "start {} after kill {round} restored nothing: {restored:?}",
                round + 1
            );
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn full_disk_and_read_only_state_directory_keep_the_daemon_and_its_state() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftf");
    let mount = Tmpfs::mount(&lab.dir.path().join("statefs"), "8k");
    lab.state_dir = mount.0.clone();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);

    // 64 peers (one client's quota of the 150 it pings) do not fit in 8 KiB: the save fails, is
    // logged, and the daemon keeps judging.
    let first = flood(&lab, 0);
    assert_eq!(first["pongs"], PEERS_PER_FLOOD, "forged pongs while the disk is full: {first}");
    let failed =
        lab.wait_log("state_save_failed", 1, Duration::from_secs(5), |v| v["event"] == "state_save_failed");
    assert!(failed["error"].as_str().unwrap().contains("space"), "{failed}");

    // Room again: the retry saves the whole in-memory state.
    mount.remount("size=4m");
    lab.wait_log("state_saved", 1, Duration::from_secs(5), |v| v["event"] == "state_saved");
    let snapshot = ftwall::state::decode(&std::fs::read(mount.0.join("state")).unwrap()).unwrap();
    // One client's pings name at most `peers.per_client` (64) live weak peers.
    assert_eq!(snapshot.peers.len(), 64, "{} peers saved", snapshot.peers.len());
    let before = std::fs::read(mount.0.join("state")).unwrap();

    // Read-only: saves fail and are logged, the file is left as it was, traffic is still judged.
    mount.remount("ro");
    let second = flood(&lab, 1);
    assert_eq!(second["pongs"], PEERS_PER_FLOOD, "{second}");
    lab.wait_log("second state_save_failed", 2, Duration::from_secs(5), |v| {
        v["event"] == "state_save_failed"
    });
    assert_eq!(std::fs::read(mount.0.join("state")).unwrap(), before, "old state file untouched");
    lab.signal_daemon("-TERM");
    let status = lab.daemon.take().unwrap().wait().unwrap();
    assert!(status.success(), "clean exit even when the final save fails: {status}");
    drop(mount);
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn queue_overflow_with_fail_open_on_and_off() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftf");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.25:53"], &wan_log);
    let burst = |lab: &Lab| lab.dns_echo(&["--count", "40", "--timeout-ms", "1500"]);
    lab.warm_up();

    // fail_open = true: with the daemon stopped and a 4-packet queue, the kernel lets the rest through.
    lab.extra_config = "fail_open = true\nqueue_maxlen = 4".into();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);
    lab.signal_daemon("-STOP");
    let open = burst(&lab);
    lab.signal_daemon("-CONT");
    assert!(open["echoes"].as_u64().unwrap() >= 36, "fail-open burst: {open}");
    assert_eq!(lab.dns_echo(&[])["echoed"], true, "no hang after the stall");
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());

    // fail_open = false: beyond the queue the kernel drops, counts, and the daemon logs it.
    lab.extra_config = "fail_open = false\nqueue_maxlen = 4".into();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);
    lab.signal_daemon("-STOP");
    let closed = burst(&lab);
    lab.signal_daemon("-CONT");
    assert!(closed["echoes"].as_u64().unwrap() <= 4, "fail-closed burst: {closed}");
    let overflow = lab.wait_log("queue_overflow", 1, Duration::from_secs(10), |v| {
        v["event"] == "queue_overflow" && v["queue_dropped"].as_u64().is_some_and(|n| n >= 30)
    });
    assert_eq!(overflow["fail_open"], false);
    assert_eq!(lab.dns_echo(&[])["echoed"], true, "no hang after the stall");
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn socket_buffer_overflow_is_counted_logged_and_survived() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftf");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.25:53"], &wan_log);
    lab.warm_up();
    // A deep queue but a tiny socket buffer: the netlink socket overflows first (ENOBUFS).
    lab.extra_config = "fail_open = true\nqueue_maxlen = 1024\nsocket_buffer = 4096".into();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);
    lab.signal_daemon("-STOP");
    let burst = lab.dns_echo(&["--count", "60", "--bytes", "1000", "--timeout-ms", "1000"]);
    lab.signal_daemon("-CONT");
    let overflow = lab.wait_log("queue_overflow", 1, Duration::from_secs(5), |v| {
        v["event"] == "queue_overflow" && v["socket_overflows"].as_u64().is_some_and(|n| n >= 1)
    });
    assert_eq!(overflow["fail_open"], true);
    assert!(burst["echoes"].as_u64().unwrap() > 0, "fail-open let overflowing packets through: {burst}");
    assert_eq!(lab.dns_echo(&[])["echoed"], true, "the loop survived ENOBUFS");
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());
}

fn setpriv(caps: &str) -> Vec<String> {
    vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps=-all{caps}"),
        format!("--ambient-caps=-all{caps}"),
        format!("--bounding-set=-all{caps}"),
        "--".into(),
    ]
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn runs_unprivileged_with_only_its_capabilities_and_fails_clearly_without() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftf");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.20:1214"], &wan_log);
    // The unprivileged user needs to read the config and write its state directory.
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state_dir = lab.dir.path().join("state-nobody");
    std::fs::create_dir(&state_dir).unwrap();
    // Its own directory (the directory rule refuses one that others can write).
    std::os::unix::fs::chown(&state_dir, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    lab.state_dir = state_dir.clone();
    lab.write_config(&[], false);

    // No capabilities: a clear error and exit code 1.
    let mut args: Vec<String> = vec!["netns".into(), "exec".into(), lab.ns("gw")];
    args.extend(setpriv(""));
    args.extend([env!("CARGO_BIN_EXE_ftwall").to_string(), "run".into(), "--config".into()]);
    args.push(lab.config_path.display().to_string());
    let out = Command::new("ip").args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");

    // CAP_NET_ADMIN alone: runs, without forged pongs (warned once).
    let wrapper = setpriv(",+net_admin");
    lab.start_and_wait(&wrapper.iter().map(String::as_str).collect::<Vec<_>>());
    lab.wait_log("spoof_unavailable", 1, Duration::from_secs(5), |v| v["event"] == "spoof_unavailable");
    let no_raw = lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 800);
    assert_eq!(no_raw["pongs"], 0, "no forged pong without CAP_NET_RAW: {no_raw}");
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());

    // CAP_NET_ADMIN + CAP_NET_RAW as uid 65534: the full service.
    let wrapper = setpriv(",+net_admin,+net_raw");
    lab.start_and_wait(&wrapper.iter().map(String::as_str).collect::<Vec<_>>());
    let flood = lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 1500);
    assert_eq!(flood["pongs"], 1, "forged pong as an unprivileged user: {flood}");
    assert_eq!(received(&wan_log, "udp_ping", LAN_CLIENT), 0, "the ping was dropped");
    lab.wait_log("state_saved", 1, Duration::from_secs(5), |v| v["event"] == "state_saved");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(state_dir.join("state")).unwrap().uid(),
        65534,
        "state written by the unprivileged user"
    );
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());
}
