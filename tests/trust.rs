//! What ftwall learns is a claim, on the real kernel: the lab of `tests/common` (`lan`, `gw`,
//! `wan`, the shipped iptables rules and ipsets), the real daemon, and the simulator.
//!
//! - A web response naming the LAN's resolver in `X-Kazaa-SupernodeIP` does not cut DNS to it
//!   for anyone (a header's claim is a weak peer: the fetching client, that port, never an
//!   allowed port).
//! - One ping to an address does not block other hosts' HTTPS (or anything) to it.
//! - An exempt address is never blocked by what ftwall learns: an exempt outside host is never
//!   a suspect peer, an exempt inside host is never locked.
//! - A locked IPv6 client cannot escape to another address of its /64, and (with
//!   `timelock.mac_tie`) a locked IPv4 client cannot escape to IPv6 from the same MAC.
//!
//! Needs root (and `ip`, `iptables`, `ipset`). Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const RESOLVER: &str = "198.51.100.25";

fn lab_with(name: &str, extra_config: &str, header: Option<&str>) -> Lab {
    lab_with_timelock(name, extra_config, "", header)
}

/// [`lab_with`], with extra `[timelock]` keys.
fn lab_with_timelock(name: &str, extra_config: &str, timelock: &str, header: Option<&str>) -> Lab {
    assert!(sim_path().exists(), "simulator not built at {}", sim_path().display());
    let mut lab = Lab::new(name);
    let wan_log = lab.dir.path().join("wan.jsonl");
    // `::` listens on IPv6 and (dual stack) IPv4.
    let mut args = vec![
        "--udp",
        "198.51.100.25:53,198.51.100.20:1214",
        "--tcp-ports",
        "80,443,7777",
        "--tcp-bind",
        "::",
    ];
    if let Some(header) = header {
        args.extend_from_slice(&["--http-header", header]);
    }
    lab.spawn_responder("wan", &args, &wan_log);
    lab.warm_up();
    lab.extra_config = extra_config.to_string();
    lab.write_config(&[], false);
    let config = std::fs::read_to_string(&lab.config_path).unwrap();
    std::fs::write(&lab.config_path, config.replace("[timelock]\n", &format!("[timelock]\n{timelock}")))
        .unwrap();
    lab.start_and_wait(&[]);
    lab
}

/// Runs a command in the lab's gateway namespace; returns its stdout.
fn in_gw(lab: &Lab, args: &[&str]) -> String {
    let gw = lab.ns("gw");
    let mut full = vec!["netns", "exec", gw.as_str()];
    full.extend_from_slice(args);
    let out = run("ip", &full);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dns(lab: &Lab, from: &str) -> bool {
    let to = format!("{RESOLVER}:53");
    lab.sim("lan", &["udp", "--to", &to, "--bind", from, "--timeout-ms", "800"])["echoed"] == true
}

fn connects(lab: &Lab, from: &str, to: &str) -> bool {
    tcp(lab, from, to, "none")["connected"] == true
}

fn peers(lab: &Lab) -> Vec<Value> {
    lab.ctl(&["peers"])["peers"].as_array().cloned().unwrap_or_default()
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn a_web_page_naming_the_resolver_does_not_cut_dns_to_it_for_anyone() {
    let _serial = kernel_test_guard_with(&["ipset"]);
    let header = format!("X-Kazaa-SupernodeIP: {RESOLVER}:53");
    let lab = lab_with("ftp", "", Some(&header));
    assert!(dns(&lab, LAN_CLIENT) && dns(&lab, OTHER_CLIENT), "DNS before");
    // LAN_CLIENT opens a web page whose response names the resolver.
    let page = tcp(&lab, LAN_CLIENT, "198.51.100.20:80", "plain-http");
    assert_eq!(page["connected"], true, "{page}");
    let named = lab.wait_log("the resolver named", 1, Duration::from_secs(5), |v| {
        is_event(v, "peer_identified") && v["peer"] == RESOLVER && v["peer_port"] == 53
    });
    assert_eq!(named["strength"], "weak", "{named}");
    // DNS to the resolver still works for everyone, the fetching client included, and so does
    // another host's HTTPS to it.
    for host in [LAN_CLIENT, OTHER_CLIENT] {
        assert!(dns(&lab, host), "{host}: DNS to the resolver after the page");
    }
    assert!(connects(&lab, OTHER_CLIENT, &format!("{RESOLVER}:443")), "another host's HTTPS");
    // ctl peers says why and since when.
    let resolver = peers(&lab).into_iter().find(|p| p["peer"] == RESOLVER).expect("the resolver is listed");
    assert_eq!(resolver["strength"], "weak", "{resolver}");
    assert_eq!(resolver["client"], LAN_CLIENT, "{resolver}");
    assert_eq!(resolver["reason"], "http_transfer", "{resolver}");
    assert!(resolver["flow"].as_str().unwrap().ends_with("> 198.51.100.20:80"), "{resolver}");
    assert!(resolver["first_seen"].is_string(), "{resolver}");
    // Nothing all-client about it in the kernel either.
    let strong = in_gw(&lab, &["ipset", "list", "ftwall_peers"]);
    assert!(!strong.contains(RESOLVER), "{strong}");
    lab.teardown_namespaces();
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn one_ping_to_an_address_does_not_block_other_hosts_https_to_it() {
    let _serial = kernel_test_guard_with(&["ipset"]);
    let lab = lab_with("ftq", "", None);
    assert!(connects(&lab, OTHER_CLIENT, &format!("{RESOLVER}:443")), "HTTPS before");
    lab.ping_flood(LAN_CLIENT, &format!("{RESOLVER}:53"), 300);
    let wan_log = lab.dir.path().join("wan.jsonl");
    assert_eq!(received(&wan_log, "udp_ping", LAN_CLIENT), 0, "the ping is dropped");
    lab.wait_log("the pinged address", 1, Duration::from_secs(5), |v| is_event(v, "peer_identified"));
    assert!(connects(&lab, OTHER_CLIENT, &format!("{RESOLVER}:443")), "another host's HTTPS");
    assert!(connects(&lab, OTHER_CLIENT, &format!("{RESOLVER}:7777")), "another host, another port");
    assert!(dns(&lab, OTHER_CLIENT), "another host's DNS");
    assert!(dns(&lab, LAN_CLIENT), "the pinging client's DNS (an allowed port)");
    lab.teardown_namespaces();
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn an_exempt_address_is_never_blocked() {
    let _serial = kernel_test_guard_with(&["ipset"]);
    let exempt = format!("exempt = [\"{RESOLVER}/32\", \"{OTHER_CLIENT}/32\"]");
    let header = format!("X-Kazaa-SupernodeIP: {RESOLVER}:7777");
    let lab = lab_with("ftx", &exempt, Some(&header));
    // The resolver is pinged and named in a header, by LAN_CLIENT: never a suspect peer.
    lab.ping_flood(LAN_CLIENT, &format!("{RESOLVER}:7777"), 300);
    tcp(&lab, LAN_CLIENT, "198.51.100.20:80", "plain-http");
    lab.wait_log("the web server", 1, Duration::from_secs(5), |v| {
        is_event(v, "peer_identified") && v["peer"] == "198.51.100.20" && v["peer_port"] == 80
    });
    assert!(peers(&lab).iter().all(|p| p["peer"] != RESOLVER), "{:?}", peers(&lab));
    assert!(connects(&lab, OTHER_CLIENT, &format!("{RESOLVER}:7777")), "to the exempt address");
    // The exempt inside host speaks FastTrack: its ping is dropped, it is never locked, and its
    // other connections pass.
    lab.ping_flood(OTHER_CLIENT, "198.51.100.20:1214", 300);
    let wan_log = lab.dir.path().join("wan.jsonl");
    assert_eq!(received(&wan_log, "udp_ping", OTHER_CLIENT), 0, "its ping is still dropped");
    let clients = lab.ctl(&["clients"]);
    let locked: Vec<&Value> = clients["clients"].as_array().unwrap().iter().collect();
    assert!(locked.iter().all(|c| c["client"] != OTHER_CLIENT), "{clients}");
    assert!(locked.iter().any(|c| c["client"] == LAN_CLIENT), "the other client is locked: {clients}");
    assert!(connects(&lab, OTHER_CLIENT, "198.51.100.21:7777"), "the exempt host is not locked");
    let set = in_gw(&lab, &["ipset", "list", "ftwall_clients"]);
    assert!(!set.contains(OTHER_CLIENT), "{set}");
    lab.teardown_namespaces();
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn a_locked_ipv6_client_cannot_escape_to_another_address_of_its_prefix() {
    let _serial = kernel_test_guard_with(&["ipset"]);
    let lab = lab_with("ft6", "", None);
    // Warm up neighbour discovery through the gateway before anything is judged.
    let warm = (0..5).any(|_| connects(&lab, TELL_CLIENT6, "[2001:db8:2::26]:443"));
    assert!(warm, "IPv6 forwarding through the gateway does not work");
    // TELL_CLIENT6 opens a Kazaa download: locked by its /64.
    let kazaa = tcp(&lab, TELL_CLIENT6, "[2001:db8:2::20]:7777", "kazaa-http");
    assert_eq!(kazaa["connected"], true, "{kazaa}");
    let identified = lab.wait_log("the IPv6 client", 1, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == TELL_CLIENT6
    });
    assert_eq!(identified["reason"], "http_transfer", "{identified}");
    let clients = lab.ctl(&["clients"]);
    assert_eq!(clients["clients"][0]["network"], "2001:db8:1::/64", "{clients}");
    // Another address of the same /64 (the lab's other IPv6 clients) is held by the same lock.
    for other in [LAN_CLIENT6, OTHER_CLIENT6] {
        assert!(!connects(&lab, other, "[2001:db8:2::21]:7777"), "{other} escaped the /64 lock");
        assert!(connects(&lab, other, "[2001:db8:2::21]:443"), "{other}: allowed ports still pass");
    }
    // The kernel holds the prefix too.
    let set = in_gw(&lab, &["ipset", "list", "ftwall_clients6"]);
    assert!(set.contains("2001:db8:1::/64"), "{set}");
    lab.teardown_namespaces();
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn with_mac_tie_a_locked_ipv4_client_cannot_escape_to_ipv6() {
    let _serial = kernel_test_guard_with(&["ipset"]);
    let lab = lab_with_timelock("ftm", "", "mac_tie = true\n", None);
    let warm = (0..5).any(|_| connects(&lab, LAN_CLIENT6, "[2001:db8:2::26]:443"));
    assert!(warm, "IPv6 forwarding through the gateway does not work");
    assert!(connects(&lab, LAN_CLIENT6, "[2001:db8:2::21]:7777"), "IPv6 before the lock");
    lab.ping_flood(LAN_CLIENT, "198.51.100.20:1214", 300);
    lab.wait_log("the IPv4 client", 1, Duration::from_secs(5), |v| {
        is_event(v, "client_identified") && v["client"] == LAN_CLIENT
    });
    // The lab's LAN hosts are addresses of one interface: one MAC, so the IPv4 lock holds
    // every new connection sent from it, over IPv6 too (and would hold a whole LAN behind a
    // router the same way: why mac_tie is off by default).
    assert!(!connects(&lab, LAN_CLIENT6, "[2001:db8:2::21]:7777"), "escaped to IPv6");
    assert!(connects(&lab, LAN_CLIENT6, "[2001:db8:2::21]:443"), "allowed ports still pass");
}
