//! The shipped rules are a good citizen of the admin's own firewall (issue 14, section 1), on the
//! real kernel, in the end-to-end lab (see `tests/common`) or a throw-away namespace:
//! - the admin's own `FORWARD` rules, appended after `install.sh` ran, still decide: a `REJECT`
//!   for TCP port 25 rejects and a `DROP` for UDP port 5000 drops (IPv4 and IPv6), with the daemon
//!   running and stopped; their counters grow; their mangle rules (MSS clamping) run too;
//! - ftwall's drops stay final: with the admin accepting everything, a FastTrack ping is still
//!   dropped;
//! - a DNAT port forward (WAN -> gateway:8080 -> a LAN host's port 80) works with the rules
//!   loaded and the daemon running, while a direct new connection into the LAN is dropped;
//!   `install.sh --no-inbound-block` lets inbound connections through to the admin's own policy;
//! - `install.sh` says what it adds, and `uninstall.sh` removes exactly that: `iptables-save`,
//!   `ip6tables-save`, `nft list ruleset` and the ipsets are byte for byte as before (also after
//!   installing twice, with and without the inbound block, next to the admin's own rules in every
//!   table ftwall uses, and over an older ftwall's rules in the filter table).
//!
//! Needs root, `ip`, `iptables`, `ipset` and `nft`. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn guard() -> std::sync::MutexGuard<'static, ()> {
    kernel_test_guard_with(&["ipset", "nft"])
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("iptables")
}

/// Runs `args` in namespace `ns`; must succeed; returns stdout.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    let out = run("ip", &full);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Packets counted by the rule of `table`'s `chain` whose listing contains all of `needles`.
fn rule_packets(ns: &str, tool: &str, table: &str, chain: &str, needles: &[&str]) -> u64 {
    let listing = in_ns(ns, &[tool, "-t", table, "-L", chain, "-v", "-n", "-x"]);
    let line = listing
        .lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no rule with {needles:?} in {table} {chain}:\n{listing}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn udp(lab: &Lab, ns: &str, from: &str, to: &str) -> bool {
    lab.sim(ns, &["udp", "--to", to, "--bind", from, "--timeout-ms", "800"])["echoed"] == true
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn the_admins_rules_after_the_jump_still_decide() {
    let _serial = guard();
    let mut lab = Lab::new("ftcp");
    let (gw, lan_if) = (lab.ns("gw"), format!("{}g0", lab.prefix));
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder(
        "wan",
        &[
            "--udp",
            "198.51.100.25:53,198.51.100.25:5000,198.51.100.20:1214,[2001:db8:2::25]:53,[2001:db8:2::25]:5000",
            "--tcp-ports",
            "25,80",
        ],
        &wan_log,
    );
    lab.warm_up();
    // The admin's own rules, appended after install.sh ran, as a newcomer would.
    for tool in ["iptables", "ip6tables"] {
        in_ns(&gw, &[tool, "-A", "FORWARD", "-i", &lan_if, "-p", "udp", "--dport", "5000", "-j", "DROP"]);
    }
    in_ns(&gw, &["iptables", "-A", "FORWARD", "-i", &lan_if, "-p", "tcp", "--dport", "25", "-j", "REJECT"]);
    let mss = ["-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--clamp-mss-to-pmtu"];
    in_ns(&gw, &[&["iptables", "-t", "mangle", "-A", "FORWARD"][..], &mss].concat());
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);

    let client = OTHER_CLIENT;
    let check = |lab: &Lab, when: &str| {
        let smtp = tcp(lab, client, "198.51.100.26:25", "plain-http");
        assert_eq!(smtp["connected"], false, "{when}: the admin's REJECT for port 25: {smtp}");
        assert!(smtp["error"].as_str().unwrap().contains("refused"), "{when}: rejected, not dropped: {smtp}");
        let web = tcp(lab, client, "198.51.100.26:80", "plain-http");
        assert_eq!(web["ok"], true, "{when}: TCP port 80 passes: {web}");
        assert!(!udp(lab, "lan", client, "198.51.100.25:5000"), "{when}: the admin's DROP for UDP 5000");
        assert!(udp(lab, "lan", client, "198.51.100.25:53"), "{when}: UDP 53 passes");
        assert!(!udp(lab, "lan", OTHER_CLIENT6, "[2001:db8:2::25]:5000"), "{when}: IPv6 DROP for UDP 5000");
        assert!(udp(lab, "lan", OTHER_CLIENT6, "[2001:db8:2::25]:53"), "{when}: IPv6 UDP 53 passes");
    };
    let admin_counts = |lab: &Lab| {
        let gw = lab.ns("gw");
        [
            rule_packets(&gw, "iptables", "filter", "FORWARD", &["REJECT", "dpt:25"]),
            rule_packets(&gw, "iptables", "filter", "FORWARD", &["DROP", "dpt:5000"]),
            rule_packets(&gw, "ip6tables", "filter", "FORWARD", &["DROP", "dpt:5000"]),
            rule_packets(&gw, "iptables", "mangle", "FORWARD", &["TCPMSS"]),
        ]
    };

    // Daemon running: it judges the traffic its rules queue, and the admin's rules still decide.
    let judged_before = lab.ctl(&["status"])["status"]["packets"].as_u64().unwrap();
    check(&lab, "daemon running");
    let judged = lab.ctl(&["status"])["status"]["packets"].as_u64().unwrap() - judged_before;
    assert!(judged > 0, "the daemon judged nothing");
    let running = admin_counts(&lab);
    assert!(running.iter().all(|&n| n > 0), "an admin rule saw no packet: {running:?}");

    // ftwall's drops stay final: with the admin accepting everything at the top of FORWARD, a
    // FastTrack ping is still dropped (and answered by ftwall's forged pong).
    in_ns(&gw, &["iptables", "-I", "FORWARD", "1", "-j", "ACCEPT"]);
    let flood = lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 600);
    assert_eq!(flood["pongs"], 1, "the forged pong: {flood}");
    assert_eq!(received(&wan_log, "udp_ping", LAN_CLIENT), 0, "the ping got through the admin's ACCEPT");
    in_ns(&gw, &["iptables", "-D", "FORWARD", "1"]);

    // Daemon stopped: the queue is bypassed, and the admin's rules still decide.
    lab.signal_daemon("-TERM");
    assert!(lab.daemon.take().unwrap().wait().unwrap().success());
    check(&lab, "daemon stopped");
    let stopped = admin_counts(&lab);
    assert!(stopped.iter().zip(running).all(|(&after, before)| after > before), "{running:?} -> {stopped:?}");
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn port_forwards_pass_and_the_inbound_block_can_be_turned_off() {
    let _serial = guard();
    let mut lab = Lab::new("ftpf");
    let (gw, wan_if) = (lab.ns("gw"), format!("{}g1", lab.prefix));
    let wan_log = lab.dir.path().join("wan.jsonl");
    let lan_log = lab.dir.path().join("lan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.25:53"], &wan_log);
    lab.spawn_responder(
        "lan",
        &["--udp", "192.0.2.11:5353,[2001:db8:1::11]:5353", "--tcp-ports", "80"],
        &lan_log,
    );
    lab.warm_up();
    // The admin's port forward: the gateway's WAN address, port 8080, to a LAN web server.
    in_ns(
        &gw,
        &[
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-i",
            &wan_if,
            "-d",
            "198.51.100.1",
            "-p",
            "tcp",
            "--dport",
            "8080",
            "-j",
            "DNAT",
            "--to-destination",
            "192.0.2.11:80",
        ],
    );
    lab.write_config(&[], false);
    lab.start_and_wait(&[]);
    let inbound_tcp = |lab: &Lab, to: &str| {
        lab.sim("wan", &["tcp", "--to", to, "--payload", "plain-http", "--timeout-ms", "1500"])
    };

    // The inbound block (the default) exempts the port forward, and only it.
    let forwarded = inbound_tcp(&lab, "198.51.100.1:8080");
    assert_eq!(forwarded["ok"], true, "the port forward, through the rules and the daemon: {forwarded}");
    assert_eq!(inbound_tcp(&lab, "192.0.2.11:80")["connected"], false, "a direct connection into the LAN");
    assert!(!udp(&lab, "wan", "198.51.100.30", "192.0.2.11:5353"), "inbound UDP");
    assert!(!udp(&lab, "wan", "2001:db8:2::20", "[2001:db8:1::11]:5353"), "inbound IPv6 UDP");

    // --no-inbound-block: inbound connections are the admin's policy's business.
    let install = scripts().join("install.sh");
    let queue = QUEUE.to_string();
    let printed =
        in_ns(&gw, &[install.to_str().unwrap(), "--no-inbound-block", &format!("{}g0", lab.prefix), &queue]);
    assert!(printed.contains("inbound block: off"), "{printed}");
    assert_eq!(inbound_tcp(&lab, "192.0.2.11:80")["ok"], true, "a direct connection, no block");
    assert!(udp(&lab, "wan", "198.51.100.31", "192.0.2.11:5353"), "inbound UDP, no block");
    assert!(udp(&lab, "wan", "2001:db8:2::21", "[2001:db8:1::11]:5353"), "inbound IPv6 UDP, no block");
    assert_eq!(inbound_tcp(&lab, "198.51.100.1:8080")["ok"], true, "the port forward, no block");
    // The admin's own policy for inbound decides now.
    for tool in ["iptables", "ip6tables"] {
        in_ns(
            &gw,
            &[
                tool,
                "-A",
                "FORWARD",
                "-p",
                "udp",
                "--dport",
                "5353",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ],
        );
    }
    assert!(!udp(&lab, "wan", "198.51.100.32", "192.0.2.11:5353"), "the admin's inbound DROP");
    assert!(!udp(&lab, "wan", "2001:db8:2::22", "[2001:db8:1::11]:5353"), "the admin's inbound IPv6 DROP");

    // Back to the default, by installing again.
    let printed = in_ns(&gw, &[install.to_str().unwrap(), &format!("{}g0", lab.prefix), &queue]);
    assert!(printed.contains("inbound block: on"), "{printed}");
    assert_eq!(inbound_tcp(&lab, "192.0.2.11:80")["connected"], false, "the block is back");
    assert_eq!(inbound_tcp(&lab, "198.51.100.1:8080")["ok"], true, "the port forward still passes");
}

/// A network namespace of its own (unique name), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("ftwall-compose-{}-{tag}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        Self(name)
    }

    fn sh(&self, script: &str, args: &[&str]) -> String {
        let path = scripts().join(script);
        in_ns(&self.0, &[&["sh", path.to_str().unwrap()][..], args].concat())
    }

    /// Everything install.sh could touch, as the tools print it (minus their `#` comment lines,
    /// which carry a timestamp).
    fn ruleset(&self) -> String {
        let mut all = String::new();
        for tool in ["iptables-save", "ip6tables-save"] {
            let saved = in_ns(&self.0, &[tool]);
            all.extend(saved.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")));
        }
        all + &in_ns(&self.0, &["nft", "list", "ruleset"]) + &in_ns(&self.0, &["ipset", "list", "-n"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn install_then_uninstall_leaves_the_ruleset_byte_identical() {
    let _serial = guard();
    let ns = Netns::new("bytes");
    let admin = |args: &[&str]| in_ns(&ns.0, args);
    // The admin's own firewall: rules in filter, nat and mangle (v4 and v6), a set of theirs.
    admin(&["iptables", "-A", "FORWARD", "-p", "tcp", "--dport", "25", "-j", "REJECT"]);
    admin(&["iptables", "-P", "FORWARD", "DROP"]);
    admin(&["ip6tables", "-A", "FORWARD", "-p", "udp", "--dport", "5000", "-j", "DROP"]);
    admin(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "--dport",
        "8080",
        "-j",
        "DNAT",
        "--to-destination",
        "192.0.2.11:80",
    ]);
    admin(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "FORWARD",
        "-p",
        "tcp",
        "--tcp-flags",
        "SYN,RST",
        "SYN",
        "-j",
        "TCPMSS",
        "--clamp-mss-to-pmtu",
    ]);
    admin(&["ipset", "create", "theirs", "hash:ip"]);

    let cycle = |ns: &Netns, what: &str| {
        let before = ns.ruleset();
        let added = ns.sh("install.sh", &["eth1", "3"]);
        for line in [
            "iptables: table security: chain FTWALL",
            "ip6tables: table security: chain FTWALL",
            "`-A FORWARD -m comment --comment",
            "ipsets (kept if present): ftwall_clients ftwall_clients6 ftwall_peers ftwall_peers6 ftwall_weak_peers ftwall_weak_peers6 ftwall_allow_ports",
            "inbound block: on",
            "ftwall rules installed (iptables)",
        ] {
            assert!(added.contains(line), "{what}: install.sh does not say `{line}`:\n{added}");
        }
        let installed = ns.ruleset();
        assert_ne!(installed, before);
        assert_eq!(ns.sh("install.sh", &["eth1", "3"]), added, "{what}: a re-install says the same");
        assert_eq!(ns.ruleset(), installed, "{what}: installing twice changes nothing");
        let open = ns.sh("install.sh", &["--no-inbound-block", "eth1", "3"]);
        assert!(open.contains("inbound block: off"), "{open}");
        assert!(!ns.ruleset().contains("--ctstate DNAT"), "{what}: the inbound block left out");
        let removed = ns.sh("uninstall.sh", &[]);
        for line in
            ["iptables: table security: chain FTWALL", "ipset ftwall_allow_ports", "ftwall rules removed"]
        {
            assert!(removed.contains(line), "{what}: uninstall.sh does not say `{line}`:\n{removed}");
        }
        assert_eq!(ns.ruleset(), before, "{what}: install/uninstall changed the ruleset");
        assert!(ns.sh("uninstall.sh", &[]).contains("nothing of ftwall's was installed"));
        assert_eq!(ns.ruleset(), before, "{what}: a second uninstall changed the ruleset");
    };
    // 1. No security table before: install.sh creates it, uninstall.sh removes it again.
    assert!(!ns.ruleset().contains("*security"));
    cycle(&ns, "without a security table");
    // 2. The admin's own rule in the security table: it and the table stay.
    admin(&["iptables", "-t", "security", "-A", "FORWARD", "-p", "icmp", "-j", "ACCEPT"]);
    cycle(&ns, "beside the admin's security rule");

    // 3. An older ftwall's rules in the filter table (its jump at the top of FORWARD) are
    // replaced, and not put back by uninstall.sh.
    let before = ns.ruleset();
    admin(&["iptables", "-N", "FTWALL"]);
    admin(&["iptables", "-A", "FTWALL", "-p", "udp", "-j", "NFQUEUE", "--queue-num", "3", "--queue-bypass"]);
    admin(&["iptables", "-I", "FORWARD", "1", "-j", "FTWALL"]);
    let added = ns.sh("install.sh", &["eth1", "3"]);
    assert!(added.contains("replaced: iptables: table filter: chain FTWALL"), "{added}");
    assert!(!in_ns(&ns.0, &["iptables", "-t", "filter", "-S"]).contains("FTWALL"));
    ns.sh("uninstall.sh", &[]);
    assert_eq!(ns.ruleset(), before, "an older ftwall's rules were left");
}
