//! Operations on the real kernel: `ftwall ctl` against the running daemon (status, clients,
//! peers, release, bans of networks with a reason and a length, unban, persistence across a
//! restart, the exempt list after a reload, access control) and the Prometheus textfile. Same
//! three-namespace lab as `e2e.rs`; needs root. Every test here is `#[ignore]`d, so plain
//! `cargo test` lists it as ignored; `cargo test -- --include-ignored` (the README's test
//! command, and CI's) runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// The value of the first sample of `series` (exact name and labels) in a metrics file.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn addresses(answer: &Value, list: &str, key: &str) -> Vec<String> {
    answer[list].as_array().unwrap().iter().map(|v| v[key].as_str().unwrap().to_string()).collect()
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn ctl_inspects_and_changes_the_running_daemon_and_metrics_are_written() {
    let _serial = kernel_test_guard();
    assert!(sim_path().exists(), "simulator not built at {}", sim_path().display());
    let mut lab = Lab::new("ftc");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder(
        "wan",
        &["--udp", "198.51.100.20:1214,198.51.100.25:53", "--tcp-ports", "80,5555"],
        &wan_log,
    );
    lab.warm_up();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);

    // The socket is root-only.
    let socket = lab.control_socket();
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");

    // A FastTrack client locks itself and reveals its peer.
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 800);
    let clients = lab.ctl(&["clients"]);
    assert_eq!(addresses(&clients, "clients", "client"), vec![LAN_CLIENT]);
    let remaining = clients["clients"][0]["remaining_seconds"].as_u64().unwrap();
    assert!(remaining <= LOCK_SECONDS, "{clients}");
    assert_eq!(clients["clients"][0]["port"], 3531);
    let peers = lab.ctl(&["peers"]);
    assert_eq!(addresses(&peers, "peers", "peer"), vec!["198.51.100.20"]);
    let status = lab.ctl(&["status"]);
    assert_eq!(status["status"]["locked_clients"], 1, "{status}");
    assert!(status["status"]["reasons"]["udp_ping"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["status"]["mode"], "enforce");

    // Text output for people: status in a fixed order, version first.
    let status_text = String::from_utf8(lab.ctl_as(&[], &["status"]).stdout).unwrap();
    let keys: Vec<&str> = status_text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(keys[..3], ["version", "pid", "uptime_seconds"], "{status_text}");
    assert!(status_text.contains("udp_ping="), "{status_text}");
    let text = lab.ctl_as(&[], &["clients"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.starts_with("CLIENT") && text.contains(LAN_CLIENT) && text.contains("(1 client)"), "{text}");

    // Locked: a new connection to an ordinary port is refused; released: it passes.
    assert_eq!(tcp(&lab, LAN_CLIENT, "198.51.100.26:5555", "plain-http")["connected"], false);
    let released = lab.ctl(&["release", LAN_CLIENT]);
    assert_eq!(released["client_released"], true, "{released}");
    assert_eq!(released["saved"], true);
    assert!(lab.ctl(&["clients"])["clients"].as_array().unwrap().is_empty());
    let after = tcp(&lab, LAN_CLIENT, "198.51.100.26:5555", "plain-http");
    assert_eq!(after["ok"], true, "released client: {after}");
    // Releasing a suspect peer forgets it; releasing an unknown address is an error.
    assert_eq!(lab.ctl(&["release", "198.51.100.20"])["peer_forgotten"], true);
    let unknown = lab.ctl_as(&[], &["release", "198.51.100.99"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("neither a locked client nor a suspect peer"));

    // A ban of a network, for a minute and with a reason, drops every outside address in it,
    // survives a restart, and unban of the network lifts it.
    let reason = "abuse report #12";
    assert_eq!(lab.dns_echo(&[])["echoed"], true);
    let banned = lab.ctl(&["ban", "198.51.100.0/24", "--for", "1m", "--reason", reason]);
    assert_eq!(banned["saved"], true, "{banned}");
    assert!(banned["message"].as_str().unwrap().starts_with("198.51.100.0/24: banned until "), "{banned}");
    assert_eq!(
        lab.dns_echo(&["--timeout-ms", "500"])["echoed"],
        false,
        "an address in the banned network answered"
    );
    let logged = lab.wait_log("operator_ban", 1, Duration::from_secs(5), |v| is_event(v, "operator_ban"));
    assert_eq!(
        (logged["network"].as_str(), logged["reason"].as_str()),
        (Some("198.51.100.0/24"), Some(reason))
    );
    let state = std::fs::read_to_string(lab.state_dir.join("state")).unwrap();
    assert!(
        state.contains("\"bans\"") && state.contains("198.51.100.0/24") && state.contains(reason),
        "{state}"
    );
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());
    assert!(!socket.exists(), "socket removed on exit");
    lab.start_and_wait(&[]);
    let bans = lab.ctl(&["bans"]);
    assert_eq!(addresses(&bans, "bans", "addr"), vec!["198.51.100.0/24"]);
    assert_eq!(bans["bans"][0]["reason"], reason, "{bans}");
    assert_eq!(bans["bans"][0]["by_uid"], 0, "{bans}");
    assert!(bans["bans"][0]["remaining_seconds"].as_u64().is_some_and(|s| (1..=60).contains(&s)), "{bans}");
    let text = String::from_utf8(lab.ctl_as(&[], &["bans"]).stdout).unwrap();
    assert!(text.starts_with("NETWORK") && text.contains("198.51.100.0/24"), "{text}");
    assert!(text.contains(&format!("why:   {reason}")) && text.contains("uid 0"), "{text}");
    assert!(text.lines().all(|l| l.len() <= 80), "{text}");
    assert_eq!(lab.dns_echo(&["--timeout-ms", "500"])["echoed"], false, "ban lost in the restart");
    let dropped = lab.wait_log("banned drop", 1, Duration::from_secs(5), |v| {
        is_event(v, "packet_dropped") && v["reason"] == "banned"
    });
    assert_eq!(dropped["peer"], "198.51.100.25");
    assert_eq!(dropped["message"], "packet dropped: address banned by the operator");
    // An address inside the network is not a ban of its own.
    let inside = lab.ctl_as(&[], &["unban", "198.51.100.25"]);
    assert!(!inside.status.success(), "unban of an address in the network");
    let error = String::from_utf8_lossy(&inside.stderr);
    assert!(error.contains("it is in the banned network 198.51.100.0/24"), "{error}");
    lab.ctl(&["unban", "198.51.100.0/24"]);
    let lifted = lab.wait_log("operator_unban", 1, Duration::from_secs(5), |v| is_event(v, "operator_unban"));
    assert_eq!(
        (lifted["network"].as_str(), lifted["reason"].as_str()),
        (Some("198.51.100.0/24"), Some(reason))
    );
    assert_eq!(lab.dns_echo(&[])["echoed"], true, "unbanned");
    assert!(!lab.ctl_as(&[], &["unban", "198.51.100.0/24"]).status.success(), "second unban is an error");
    // A timed ban of an inside client keeps its allowed ports.
    let timed = lab.ctl(&["ban", OTHER_CLIENT, "--seconds", "30"]);
    assert!(timed["until"].as_str().unwrap().ends_with('Z'), "{timed}");
    assert_eq!(tcp(&lab, OTHER_CLIENT, "198.51.100.26:80", "plain-http")["ok"], true, "allowed port");
    assert_eq!(
        tcp(&lab, OTHER_CLIENT, "198.51.100.26:5555", "plain-http")["connected"],
        false,
        "banned client"
    );
    lab.ctl(&["unban", OTHER_CLIENT]);

    // The exempt list in force, as the daemon holds it: empty, then what a reload brought.
    assert_eq!(lab.ctl(&["exempt"])["exempt"], serde_json::json!([]));
    lab.extra_config = "exempt = [\"203.0.113.0/24\", \"192.0.2.53/32\"]".into();
    lab.write_config(&[], false);
    lab.signal_daemon("-HUP");
    lab.wait_log("config_reloaded", 1, Duration::from_secs(5), |v| is_event(v, "config_reloaded"));
    assert_eq!(lab.ctl(&["exempt"])["exempt"], serde_json::json!(["203.0.113.0/24", "192.0.2.53"]));
    let text = String::from_utf8(lab.ctl_as(&[], &["exempt"]).stdout).unwrap();
    assert_eq!(text, "NETWORK\n203.0.113.0/24\n192.0.2.53\n(2 exempt networks)\n");

    // Other users are refused even if the socket's mode is loosened (SO_PEERCRED check), and
    // with the normal mode they cannot even connect.
    let nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
    let refused = lab.ctl_as(&nobody, &["status"]);
    assert!(!refused.status.success());
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = lab.ctl_as(&nobody, &["status"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot reach the daemon"), "{refused:?}");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let refused = lab.ctl_as(&nobody, &["--json", "status"]);
    assert!(!refused.status.success());
    let answer: Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&refused.stderr)));
    assert!(answer["error"].as_str().unwrap().contains("permission denied"), "{answer}");
    lab.wait_log("control_refused", 1, Duration::from_secs(5), |v| is_event(v, "control_refused"));

    // Metrics: the textfile is rewritten every second and adds up.
    let path = lab.state_dir.join("ftwall.prom");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let banned_drops =
            sample(&text, "ftwall_packets_by_reason_total{reason=\"banned\",verdict=\"drop\"}");
        // Written after the last unban: banned drops counted, no ban left.
        if banned_drops.unwrap_or(0.0) > 0.0 && sample(&text, "ftwall_bans") == Some(0.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics never showed the banned drops:\n{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let accepted = sample(&text, "ftwall_packets_total{verdict=\"accept\"}").unwrap();
    let dropped = sample(&text, "ftwall_packets_total{verdict=\"drop\"}").unwrap();
    assert!(accepted > 0.0 && dropped > 0.0, "{text}");
    let by_reason: f64 = text
        .lines()
        .filter(|l| l.starts_with("ftwall_packets_by_reason_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(by_reason, accepted + dropped, "per-reason counts add up");
    let count = sample(&text, "ftwall_verdict_latency_seconds_count").unwrap();
    assert_eq!(sample(&text, "ftwall_verdict_latency_seconds_bucket{le=\"+Inf\"}"), Some(count));
    assert!(count > 0.0 && count <= accepted + dropped, "{text}");
    assert_eq!(
        sample(&text, &format!("ftwall_queue_dropped_total{{queue=\"{QUEUE}\"}}")),
        Some(0.0),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&lab.state_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary metrics files left: {leftovers:?}");
    // Every series the shipped Grafana dashboard queries is in the real file.
    let missing: Vec<String> = common::dashboard::series()
        .into_iter()
        .filter(|s| {
            !text.lines().any(|l| l.strip_prefix(s.as_str()).is_some_and(|r| r.starts_with([' ', '{'])))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series missing from the metrics file: {missing:?}\n{text}"
    );
}

/// Under systemd with stderr on the journal (`JOURNAL_STREAM` names stderr's device and inode),
/// log lines carry the sd-daemon priority prefix and no timestamp of their own; with stderr
/// elsewhere they keep their timestamp and no prefix.
#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn journal_output_has_priorities_and_no_timestamps() {
    use std::os::unix::fs::MetadataExt;
    let _serial = kernel_test_guard();
    let ns = format!("ftj-{}", std::process::id());
    must("ip", &["netns", "add", &ns]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ftwall.toml");
    std::fs::write(
        &config,
        format!(
            "queue = 3\nstate_file = \"{d}/state\"\n[control]\nsocket = \"{d}/control.sock\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let run_daemon = |log: &std::path::Path, journal: bool| -> String {
        let file = std::fs::File::create(log).unwrap();
        let meta = file.metadata().unwrap();
        let stream = if journal { format!("{}:{}", meta.dev(), meta.ino()) } else { "1:1".to_string() };
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, env!("CARGO_BIN_EXE_ftwall"), "run", "--config"])
            .arg(&config)
            .env("JOURNAL_STREAM", stream)
            .stderr(file)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(log).unwrap().contains("daemon_started") {
            assert!(
                Instant::now() < deadline,
                "daemon did not start: {}",
                std::fs::read_to_string(log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        must("kill", &["-TERM", &child.id().to_string()]);
        assert!(child.wait().unwrap().success());
        std::fs::read_to_string(log).unwrap()
    };
    let journal = run_daemon(&dir.path().join("journal.log"), true);
    let plain = run_daemon(&dir.path().join("plain.log"), false);
    let _ = run("ip", &["netns", "del", &ns]);

    // The journal gets JSON (the default there) behind a priority, without timestamps.
    let lines: Vec<&str> = journal.lines().collect();
    assert!(lines.len() >= 3, "{journal}");
    for line in &lines {
        let (prefix, json) = line.split_at(3);
        assert!(["<3>", "<4>", "<6>", "<7>"].contains(&prefix), "{line}");
        let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("timestamp").is_none(), "{line}");
        assert!(v["event"].is_string(), "{line}");
        let want = match v["level"].as_str().unwrap() {
            "ERROR" => "<3>",
            "WARN" => "<4>",
            "INFO" => "<6>",
            _ => "<7>",
        };
        assert_eq!(prefix, want, "{line}");
    }
    assert!(lines.iter().any(|l| l.starts_with("<6>") && l.contains("\"daemon_started\"")), "{journal}");
    // Elsewhere: text (the default off the journal) with a timestamp and no prefix.
    let first = plain.lines().next().unwrap();
    assert!(!first.starts_with('<') && first.starts_with("20"), "{plain}");
    assert!(plain.contains("daemon_started"), "{plain}");
}
