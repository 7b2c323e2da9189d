//! End-to-end tests on the real kernel: three network namespaces (`lan`, `gw`, `wan`) joined by
//! veth pairs, the repository's `iptables/install.sh` applied in `gw`, the real `ftwall` daemon
//! bound to the NFQUEUE in `gw`, and the FastTrack simulator (`ftwall sim`) sending real packets from `lan` to a responder in `wan`. Addresses come
//! from the documentation ranges.
//!
//! Needs root (and `ip`, `iptables`; `systemd-analyze` for the unit's test). Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn gateway_blocks_fasttrack_and_passes_ordinary_traffic() {
    let _serial = kernel_test_guard();
    assert!(sim_path().exists(), "simulator not built at {}", sim_path().display());
    let mut lab = Lab::new("fte");
    let wan_log = lab.dir.path().join("wan.jsonl");
    let lan_log = lab.dir.path().join("lan.jsonl");
    let udp_endpoints = "198.51.100.20:1214,198.51.100.21:1214,198.51.100.22:1214,198.51.100.23:1214,198.51.100.24:1214,198.51.100.25:53";
    lab.spawn_responder(
        "wan",
        &["--udp", udp_endpoints, "--tcp-ports", "80,443,1214,5555,6666,7777,8888"],
        &wan_log,
    );
    lab.spawn_responder("lan", &["--tcp-ports", "2222"], &lan_log);

    // Warm up ARP before anything is timed (no daemon yet: the queue is bypassed).
    lab.warm_up();

    lab.write_config(&[], false);
    let started = lab.start_and_wait(&[]);
    assert_eq!(started["queue"], QUEUE);
    lab.wait_notified("READY=1", 1, Duration::from_secs(5));
    assert_eq!(lab.notified("READY=1"), 1, "sd_notify READY once the queue is bound");

    // 4. The other client's ordinary traffic passes byte for byte, including TCP on port 1214.
    let http = tcp(&lab, OTHER_CLIENT, "198.51.100.26:80", "plain-http");
    assert_eq!(http["ok"], true, "ordinary HTTP: {http}");
    let dns = lab.dns_echo(&["--bytes", "40"]);
    assert_eq!(dns["echoed"], true, "DNS-like UDP: {dns}");
    let stream = tcp(&lab, OTHER_CLIENT, "198.51.100.26:1214", "stream");
    assert_eq!(stream["ok"], true, "64 KiB TCP stream on port 1214: {stream}");

    // Offload: once a flow is decided the kernel handles it. 60 sequential request/response
    // pairs on one UDP flow reach the daemon only until the flow is judged clean (8 packets).
    let (judged, after) = lab.offload_check("198.51.100.25:53");
    assert!(judged <= 10, "{judged} of 120 packets queued despite offload");
    assert!(after["flows_offloaded"].as_u64().unwrap() >= 3, "{after}");

    // 5. A new inbound connection from wan to lan is blocked.
    let inbound =
        lab.sim("wan", &["tcp", "--to", "192.0.2.11:2222", "--payload", "none", "--timeout-ms", "1500"]);
    assert_eq!(inbound["connected"], false, "inbound connection: {inbound}");
    assert_eq!(received(&lan_log, "tcp_connect", "198.51.100.20"), 0);

    // 1. The ping flood is dropped and answered with forged pongs from each peer.
    let peers: Vec<String> = (20..=24).map(|h| format!("198.51.100.{h}:1214")).collect();
    let flood = lab.ping_flood(LAN_CLIENT, &peers.join(","), 1500);
    assert_eq!(received(&wan_log, "udp_ping", LAN_CLIENT), 0, "a ping reached wan");
    let mut pongs: Vec<String> =
        flood["pongs_from"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    pongs.sort();
    assert_eq!(pongs, peers, "forged pongs from every pinged peer: {flood}");

    // 8. The JSON log names the client, the peer and the reason.
    let identified = lab.wait_log("client_identified", 1, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == LAN_CLIENT
    });
    assert_eq!(identified["reason"], "udp_ping");
    let identified_peer = format!("{}:{}", identified["peer"].as_str().unwrap(), identified["peer_port"]);
    assert!(peers.contains(&identified_peer), "{identified}");
    assert!(identified["locked_until"].as_str().is_some_and(|s| s.ends_with('Z')), "{identified}");
    let dropped = lab.wait_log("packet_dropped", 1, Duration::from_secs(5), |v| {
        is_event(v, "packet_dropped") && v["client"] == LAN_CLIENT && v["peer"] == "198.51.100.20"
    });
    assert_eq!(dropped["reason"], "udp_ping");
    assert_eq!(dropped["dest_port"], 1214, "{dropped}");
    lab.wait_log("peer_identified", 5, Duration::from_secs(5), |v| is_event(v, "peer_identified"));

    // 2. Supernode openers, the Kazaa download and GIVE never reach wan.
    let [opener_client, give_client, shape_client] = TELL_CLIENTS;
    let constant = tcp(&lab, opener_client, "198.51.100.27:5555", "constant-opener");
    assert_eq!(constant["connected"], true, "{constant}");
    assert_eq!(constant["ok"], false, "{constant}");
    // The opener locked this client; port 80 is still allowed, and the request itself is dropped.
    let download = tcp(&lab, opener_client, "198.51.100.28:80", "kazaa-http");
    assert_eq!(download["connected"], true, "{download}");
    assert_eq!(download["ok"], false, "{download}");
    let give = tcp(&lab, give_client, "198.51.100.29:6666", "give");
    assert_eq!(give["connected"], true, "{give}");
    assert_eq!(give["ok"], false, "{give}");
    let random = tcp(&lab, shape_client, "198.51.100.30:1214", "random-opener");
    assert_eq!(random["connected"], true, "{random}");
    assert_eq!(random["ok"], false, "the 6-byte name after a random opener on 1214 must not pass: {random}");
    for kind in ["tcp_opener", "kazaa_http", "give"] {
        for client in TELL_CLIENTS {
            assert_eq!(received(&wan_log, kind, client), 0, "{kind} from {client} reached wan");
        }
    }
    for (client, reason) in [
        (opener_client, "tcp_opener"),
        (opener_client, "http_transfer"),
        (give_client, "give_push"),
        (shape_client, "tcp_handshake"),
    ] {
        lab.wait_log(reason, 1, Duration::from_secs(5), |v| {
            is_event(v, "packet_dropped") && v["client"] == client && v["reason"] == reason
        });
    }
    let after_random_opener = responder_log(&wan_log)
        .iter()
        .filter(|v| v["to"] == "198.51.100.30:1214" && v["kind"] == "tcp_data")
        .count();
    assert_eq!(after_random_opener, 0, "the handshake's name message reached wan");

    // 3. The first client is time-locked: random ports fail, web ports work, until the lock ends.
    let locked = tcp(&lab, LAN_CLIENT, "203.0.113.5:7777", "none");
    assert_eq!(locked["connected"], false, "locked client reached a random port: {locked}");
    let web = tcp(&lab, LAN_CLIENT, "203.0.113.5:80", "plain-http");
    assert_eq!(web["ok"], true, "locked client's web request: {web}");
    lab.wait_log("client_released", 1, Duration::from_secs(LOCK_SECONDS + 10), |v| {
        is_event(v, "client_released") && v["client"] == LAN_CLIENT
    });
    let released = tcp(&lab, LAN_CLIENT, "203.0.113.6:7777", "none");
    assert_eq!(released["connected"], true, "after the lock: {released}");

    // 7. SIGHUP applies a changed configuration and keeps the state; a broken one is refused.
    lab.ping_flood(LAN_CLIENT, "198.51.100.21:1214", 300);
    lab.wait_log("client_identified again", 2, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == LAN_CLIENT
    });
    lab.write_config(&[8888], false);
    lab.signal_daemon("-HUP");
    let reloaded =
        lab.wait_log("config_reloaded", 1, Duration::from_secs(5), |v| is_event(v, "config_reloaded"));
    assert_eq!(reloaded["changed"], "timelock.allow_ports", "the reload names what changed: {reloaded}");
    let reloading = lab.wait_notified("RELOADING=1", 1, Duration::from_secs(5));
    assert!(reloading[0].contains("MONOTONIC_USEC="), "RELOADING=1 with MONOTONIC_USEC: {reloading:?}");
    lab.wait_notified("READY=1", 2, Duration::from_secs(5));
    lab.wait_notified("WATCHDOG=1", 3, Duration::from_secs(5));
    let newly_allowed = tcp(&lab, LAN_CLIENT, "203.0.113.7:8888", "none");
    assert_eq!(newly_allowed["connected"], true, "newly allowed port after reload: {newly_allowed}");
    let still_locked = tcp(&lab, LAN_CLIENT, "203.0.113.7:7777", "none");
    assert_eq!(still_locked["connected"], false, "the lock survived the reload: {still_locked}");
    lab.write_config(&[], true);
    lab.signal_daemon("-HUP");
    let failed = lab
        .wait_log("config_reload_failed", 1, Duration::from_secs(5), |v| is_event(v, "config_reload_failed"));
    assert!(failed["error"].as_str().unwrap().contains("secnds"), "{failed}");
    let old_kept = tcp(&lab, LAN_CLIENT, "203.0.113.8:8888", "none");
    assert_eq!(old_kept["connected"], true, "old configuration kept: {old_kept}");
    // A key bound at start (the queue socket's fail-open) waits for a restart, and says so.
    lab.extra_config = "fail_open = false".into();
    lab.write_config(&[8888], false);
    lab.signal_daemon("-HUP");
    let restart = lab.wait_log("config_restart_required", 1, Duration::from_secs(5), |v| {
        is_event(v, "config_restart_required")
    });
    assert_eq!(restart["keys"], "fail_open", "{restart}");
    lab.extra_config.clear();

    // 6. kill -9: traffic bypasses the queue, except what the kernel sets block; a restart restores peers and locks from the state file.
    lab.write_config(&[], false);
    lab.ping_flood(LAN_CLIENT, "198.51.100.22:1214", 300);
    std::thread::sleep(Duration::from_millis(1800)); // the state save is debounced to 1 s
    let state = std::fs::read_to_string(lab.dir.path().join("state")).expect("state file written");
    assert!(state.contains(LAN_CLIENT) && state.contains("198.51.100.22"), "{state}");
    assert!(lab.dir.path().join("clients").join(LAN_CLIENT).exists(), "client directory entry");
    // SIGUSR1: the counters, with accepts batched and drops verdicted one by one.
    lab.signal_daemon("-USR1");
    let counters = lab.wait_log("counters", 3, Duration::from_secs(5), |v| is_event(v, "counters"));
    assert!(counters["verdict_batches"].as_u64().unwrap() > 0, "accepts were batched: {counters}");
    assert!(
        counters["accepted"].as_u64().unwrap() > 50 && counters["dropped"].as_u64().unwrap() > 10,
        "{counters}"
    );
    assert_eq!(counters["verdict_errors"], 0, "{counters}");
    must("kill", &["-9", &lab.daemon_pid().to_string()]);
    let _ = lab.daemon.take().unwrap().wait();
    let bypass = lab.dns_echo(&[]);
    assert_eq!(bypass["echoed"], true, "ordinary traffic with the daemon dead: {bypass}");
    let unjudged_while_dead = tcp(&lab, OTHER_CLIENT, "203.0.113.9:5555", "none");
    assert_eq!(
        unjudged_while_dead["connected"], true,
        "queue bypass while the daemon is dead: {unjudged_while_dead}"
    );
    // ...but the kernel sets (`kernel_sets = "auto"`) keep the lock in force meanwhile.
    let locked_while_dead = tcp(&lab, LAN_CLIENT, "203.0.113.9:5555", "none");
    assert_eq!(
        locked_while_dead["connected"], false,
        "lock kept while the daemon is dead: {locked_while_dead}"
    );
    lab.start_daemon();
    let restarted =
        lab.wait_log("second daemon_started", 2, Duration::from_secs(10), |v| is_event(v, "daemon_started"));
    assert!(restarted["locks_restored"].as_u64().unwrap() >= 1, "{restarted}");
    assert!(restarted["peers_restored"].as_u64().unwrap() >= 5, "{restarted}");
    let relocked = tcp(&lab, LAN_CLIENT, "203.0.113.9:6666", "none");
    assert_eq!(relocked["connected"], false, "restored lock: {relocked}");
    // The pinged peers are weak (only the client's pings name them): restored, they still
    // block that client's datagrams to the pinged port, and nobody else's traffic.
    let to_suspect =
        lab.sim("lan", &["udp", "--to", "198.51.100.22:1214", "--bind", LAN_CLIENT, "--timeout-ms", "800"]);
    assert_eq!(to_suspect["echoed"], false, "restored weak peer, its client: {to_suspect}");
    let others = tcp(&lab, OTHER_CLIENT, "198.51.100.20:80", "none");
    assert_eq!(others["connected"], true, "restored weak peer, another host: {others}");

    // A clean stop saves the state and exits 0.
    lab.signal_daemon("-TERM");
    let status = lab.daemon.take().unwrap().wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(lab.log().iter().any(|v| is_event(v, "daemon_stopping")));
    assert_eq!(lab.log().iter().filter(|v| is_event(v, "counters")).count(), 4, "three SIGUSR1 and exit");
    assert!(lab.log().iter().any(|v| is_event(v, "state_saved")));
    assert_eq!(lab.wait_notified("STOPPING=1", 1, Duration::from_secs(5)).len(), 1);
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn install_scripts_are_idempotent() {
    let _serial = kernel_test_guard();
    let ns = &format!("ftr-rules-{}", std::process::id());
    let _ = run("ip", &["netns", "del", ns]);
    must("ip", &["netns", "add", ns]);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("iptables");
    let install = scripts.join("install.sh");
    let uninstall = scripts.join("uninstall.sh");
    let in_ns = |script: &Path, args: &[&str]| {
        let mut full = vec!["netns", "exec", ns, script.to_str().unwrap()];
        full.extend_from_slice(args);
        run("ip", &full)
    };
    let rules = |tool: &str| {
        String::from_utf8(run("ip", &["netns", "exec", ns, tool, "-t", "security", "-S"]).stdout).unwrap()
    };
    assert!(in_ns(&install, &["eth1", "3"]).status.success());
    let once = (rules("iptables"), rules("ip6tables"));
    assert!(in_ns(&install, &["eth1", "3"]).status.success());
    assert_eq!((rules("iptables"), rules("ip6tables")), once, "installing twice changes nothing");
    assert!(once.0.contains("-A FORWARD -m comment --comment ftwall-created-table -j FTWALL"), "{}", once.0);
    assert!(once.0.contains("-A FTWALL -i eth1 -p udp -j NFQUEUE --queue-num 3 --queue-bypass"));
    assert!(once.0.contains("-A FTWALL -i eth1 -p tcp -j NFQUEUE --queue-num 3 --queue-bypass"));
    assert!(once.1.contains("-A FTWALL -p ipv6-icmp -j RETURN"));
    assert!(!in_ns(&install, &["eth1", "x"]).status.success(), "bad queue number rejected");
    assert!(in_ns(&uninstall, &[]).status.success());
    assert!(in_ns(&uninstall, &[]).status.success(), "uninstalling twice is fine");
    assert!(!rules("iptables").contains("FTWALL"));
    assert!(!rules("ip6tables").contains("FTWALL"));
    must("ip", &["netns", "del", ns]);
}

#[test]
#[ignore = "needs systemd-analyze: cargo test -- --include-ignored"]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/ftwall.service"))
        .unwrap();
    for required in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WatchdogSec=",
        "StateDirectory=ftwall",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW",
        "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW",
        "User=ftwall",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_NETLINK AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(
            unit.lines()
                .any(|l| l.trim() == required || (required.ends_with('=') && l.starts_with(required))),
            "missing {required}"
        );
    }
    for forbidden in ["PrivateNetwork=", "PrivateUsers="] {
        assert!(!unit.lines().any(|l| l.trim_start().starts_with(forbidden)), "{forbidden} must not be set");
    }
    let have_analyze = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(have_analyze, "this test cannot run here: systemd-analyze is not installed");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("ftwall.service");
    let mut f = File::create(&copy).unwrap();
    f.write_all(unit.replace("/usr/sbin/ftwall", env!("CARGO_BIN_EXE_ftwall")).as_bytes()).unwrap();
    drop(f);
    let out = run("systemd-analyze", &["verify", copy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn two_queues_share_one_engine() {
    let _serial = kernel_test_guard();
    let mut lab = Lab::new("ftq");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.20:1214,198.51.100.21:1214,198.51.100.22:1214,198.51.100.23:1214,198.51.100.24:1214,198.51.100.25:53", "--tcp-ports", "80,7777"], &wan_log);
    lab.warm_up();
    // Balance over queues 7 and 8 (the installer replaces the single-queue rules).
    let install = Path::new(env!("CARGO_MANIFEST_DIR")).join("iptables/install.sh");
    must(
        "ip",
        &["netns", "exec", &lab.ns("gw"), install.to_str().unwrap(), &format!("{}g0", lab.prefix), "7:8"],
    );
    lab.extra_config = "queues = 2".into();
    lab.write_config(&[], false);
    let started = lab.start_and_wait(&[]);
    assert_eq!(started["queues"], 2, "{started}");

    // Pings from five clients to five peers: spread over both queues by address pair.
    let clients = [LAN_CLIENT, OTHER_CLIENT, TELL_CLIENTS[0], TELL_CLIENTS[1], TELL_CLIENTS[2]];
    for (i, client) in clients.iter().enumerate() {
        let peer = format!("198.51.100.{}:1214", 20 + i);
        let flood = lab.ping_flood(client, &peer, 600);
        assert_eq!(flood["pongs"], 1, "forged pong for {client}: {flood}");
        assert_eq!(received(&wan_log, "udp_ping", client), 0, "ping from {client} reached wan");
    }
    let proc_file = Command::new("ip")
        .args(["netns", "exec", &lab.ns("gw"), "cat", "/proc/net/netfilter/nfnetlink_queue"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&proc_file.stdout);
    let packets_seen = |queue: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(queue))
            .and_then(|l| l.split_whitespace().nth(7)?.parse::<u64>().ok())
    };
    assert!(packets_seen("7").is_some_and(|n| n > 0), "queue 7 idle:\n{text}");
    assert!(packets_seen("8").is_some_and(|n| n > 0), "queue 8 idle:\n{text}");

    // Every client is locked in the one shared engine, whichever queue its next packets use.
    for client in clients {
        let locked = tcp(&lab, client, "203.0.113.5:7777", "none");
        assert_eq!(locked["connected"], false, "{client} not locked: {locked}");
    }
    let web = tcp(&lab, OTHER_CLIENT, "203.0.113.6:80", "plain-http");
    assert_eq!(web["ok"], true, "{web}");
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());
    let stopped = lab.log().iter().filter(|v| is_event(v, "daemon_stopping")).count();
    assert_eq!(stopped, 1);
}

/// The same gateway over IPv6 (ftwall6.rules, raw IPv6 forged pongs, IPv6 offload): FastTrack
/// pings and the supernode opener are blocked, ordinary UDP passes, and a clean flow is handed
/// to the kernel after its first packets.
#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn ipv6_gateway_blocks_fasttrack_and_offloads_clean_flows() {
    let _serial = kernel_test_guard();
    assert!(sim_path().exists(), "simulator not built at {}", sim_path().display());
    let mut lab = Lab::new("ft6");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder(
        "wan",
        &["--udp", "[2001:db8:2::20]:1214,[2001:db8:2::25]:53", "--tcp-ports", "80,5555", "--tcp-bind", "::"],
        &wan_log,
    );
    let echo = |lab: &Lab, extra: &[&str]| {
        let mut args = vec!["udp", "--to", "[2001:db8:2::25]:53", "--bind", OTHER_CLIENT6];
        args.extend_from_slice(extra);
        lab.sim("lan", &args)
    };
    // Neighbour discovery takes a moment the first time: warm up every address pair the test
    // uses, with the queue still unbound (the rules bypass it).
    assert!(
        (0..10).any(|_| echo(&lab, &["--timeout-ms", "1000"])["echoed"] == true),
        "plain IPv6 forwarding fails"
    );
    // Each address's duplicate address detection and first neighbour solicitation can take
    // seconds on a loaded machine: try a few times before calling the path broken.
    for client in [LAN_CLIENT6, TELL_CLIENT6] {
        let udp = ["udp", "--to", "[2001:db8:2::25]:53", "--bind", client, "--timeout-ms", "2000"];
        let warm = (0..5).map(|_| lab.sim("lan", &udp)).find(|w| w["echoed"] == true);
        assert!(warm.is_some(), "IPv6 UDP from {client} never echoed");
    }
    for to in ["[2001:db8:2::20]:5555", "[2001:db8:2::21]:5555", "[2001:db8:2::26]:80"] {
        let tcp = ["tcp", "--bind", OTHER_CLIENT6, "--to", to, "--payload", "none", "--timeout-ms", "2000"];
        let warm = (0..5).map(|_| lab.sim("lan", &tcp)).find(|w| w["connected"] == true);
        assert!(warm.is_some(), "IPv6 TCP to {to} never connected");
    }
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);

    assert_eq!(echo(&lab, &[])["echoed"], true, "ordinary IPv6 UDP");
    let web = lab.sim(
        "lan",
        &["tcp", "--bind", OTHER_CLIENT6, "--to", "[2001:db8:2::26]:80", "--payload", "plain-http"],
    );
    assert_eq!(web["ok"], true, "ordinary IPv6 HTTP: {web}");

    // Offload over IPv6: 60 request/response pairs, at most the first few packets queued.
    let (judged, _) = lab.offload_check("[2001:db8:2::25]:53");
    assert!(judged <= 10, "{judged} of 120 IPv6 packets queued despite offload");

    // Pings are dropped and answered with forged IPv6 pongs.
    let flood = lab.ping_flood(LAN_CLIENT6, "[2001:db8:2::20]:1214", 1500);
    assert_eq!(received(&wan_log, "udp_ping", LAN_CLIENT6), 0, "an IPv6 ping reached wan: {flood}");
    assert_eq!(
        flood["pongs_from"],
        serde_json::json!(["[2001:db8:2::20]:1214"]),
        "forged IPv6 pong: {flood}"
    );
    let identified = lab.wait_log("client_identified", 1, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == LAN_CLIENT6
    });
    assert_eq!(identified["reason"], "udp_ping");

    // Another address of the same /64 is held by the same lock (IPv6 clients are locked by
    // prefix)...
    let escape = lab
        .sim("lan", &["tcp", "--bind", TELL_CLIENT6, "--to", "[2001:db8:2::21]:5555", "--payload", "none"]);
    assert_eq!(escape["connected"], false, "another address of the locked /64: {escape}");
    // ...and its supernode opener to another peer, on an allowed port, is cut.
    let opener = lab.sim(
        "lan",
        &["tcp", "--bind", TELL_CLIENT6, "--to", "[2001:db8:2::21]:80", "--payload", "constant-opener"],
    );
    assert_eq!(opener["connected"], true, "{opener}");
    assert_eq!(opener["ok"], false, "IPv6 opener got through: {opener}");
    assert_eq!(received(&wan_log, "tcp_opener", TELL_CLIENT6), 0);
}

/// Sends one UDP datagram with a FastTrack 0x28 pong from `from` (ip:port, an address of the
/// `lan` namespace) to `to`, from a real socket in `lan`.
fn send_pong(lab: &Lab, from: &str, to: &str) {
    let (from_ip, from_port) = from.rsplit_once(':').unwrap();
    let (to_ip, to_port) = to.rsplit_once(':').unwrap();
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('{from_ip}', {from_port}))\n\
         s.sendto(bytes.fromhex('28000000a9000f59d94efa4b615a614100'), ('{to_ip}', {to_port}))\n"
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("lan"), "python3", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "pong {from} -> {to}: {}", String::from_utf8_lossy(&out.stderr));
}

fn status_counter(lab: &Lab, key: &str) -> u64 {
    let status = lab.ctl(&["status"]);
    status["status"][key].as_u64().unwrap_or_else(|| panic!("no {key}: {status}"))
}

/// Waits until the daemon has sent `n` half-expiry probes.
fn wait_probes(lab: &Lab, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(LOCK_SECONDS);
    while status_counter(lab, "probes_sent") < n {
        assert!(std::time::Instant::now() < deadline, "no probe sent");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn only_the_clients_own_answer_to_a_probe_rearms_its_lock() {
    let _serial = kernel_test_guard_with(&["python3"]);
    let mut lab = Lab::new("ftx");
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.20:1214,198.51.100.25:53"], &wan_log);
    lab.warm_up();
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);
    let released = |v: &serde_json::Value| is_event(v, "client_released") && v["client"] == LAN_CLIENT;
    let remaining = |lab: &Lab| {
        let clients = lab.ctl(&["clients"]);
        clients["clients"].as_array().unwrap().iter().find(|c| c["client"] == LAN_CLIENT).cloned()
    };

    // Locked by a ping from its FastTrack port 3531 to 198.51.100.20:1214, the peer the probe
    // is then forged from.
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 300);
    let locked_at = std::time::Instant::now();
    assert!(remaining(&lab).is_some(), "locked");
    wait_probes(&lab, 1);
    // Forged answers, twice a second until the lock must have ended: from another port of the
    // client's address, to another port of the peer, to another outside host. None re-arms; the
    // client is released LOCK_SECONDS after the ping.
    while lab.log().iter().all(|v| !released(v)) {
        assert!(locked_at.elapsed() < Duration::from_secs(LOCK_SECONDS + 3), "forged answers kept the lock");
        send_pong(&lab, "192.0.2.10:4000", "198.51.100.20:1214");
        send_pong(&lab, "192.0.2.10:3531", "198.51.100.20:1215");
        send_pong(&lab, "192.0.2.10:3531", "198.51.100.21:1214");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(locked_at.elapsed() >= Duration::from_secs(LOCK_SECONDS - 1), "released early");
    assert!(status_counter(&lab, "pongs_unsolicited") >= 3, "forged answers counted");
    assert_eq!(status_counter(&lab, "probe_answers"), 0);
    // None of the forged pongs reached the outside.
    assert_eq!(received(&wan_log, "udp_pong", LAN_CLIENT), 0);

    // The exact answer, from the probed port to the probe's forged source, re-arms the lock.
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 300);
    wait_probes(&lab, 2);
    let before = remaining(&lab).expect("locked")["remaining_seconds"].as_u64().unwrap();
    assert!(before <= LOCK_SECONDS / 2, "{before}");
    send_pong(&lab, "192.0.2.10:3531", "198.51.100.20:1214");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while status_counter(&lab, "probe_answers") < 1 {
        assert!(std::time::Instant::now() < deadline, "the answer was not seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = remaining(&lab).expect("still locked")["remaining_seconds"].as_u64().unwrap();
    assert!(after > before + 2, "re-armed: {before} s left before the answer, {after} s after");
}
