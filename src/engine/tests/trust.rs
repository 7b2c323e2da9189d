//! The trust model of learned facts (strong and weak suspect peers, exempt addresses, quotas)
//! and the bounds of the lock tables (inside hosts only, IPv6 by prefix, per-family tables).

use super::*;
use crate::config::{PeersConfig, TimelockConfig};
use crate::engine::PacketMeta;

const RESOLVER: &str = "198.51.100.53";
const WEB: (&str, u16) = ("198.51.100.80", 80);
const OTHER6: &str = "2001:db8:1::99";

/// A web page whose response names `named` in `X-Kazaa-SupernodeIP`, fetched by `client`.
fn fetch_poisoned_page(e: &mut Engine, now: Timestamp, client: (&'static str, u16), named: &str) {
    fetch_poisoned_page_from(e, now, client, WEB, named);
}

fn fetch_poisoned_page_from(
    e: &mut Engine,
    now: Timestamp,
    client: (&'static str, u16),
    web: (&'static str, u16),
    named: &str,
) {
    let mut conn = Conn::new(client, web);
    conn.open(e, now);
    let request = conn.client_data(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n");
    assert_eq!(judge(e, now, &request), (Verdict::Accept, Reason::Clean));
    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Kazaa-SupernodeIP: {named}\r\n\r\n");
    let response = conn.server_data(response.as_bytes());
    assert_eq!(judge(e, now, &response), (Verdict::Drop, Reason::HttpTransfer));
}

#[test]
fn a_web_response_naming_the_resolver_does_not_cut_dns_to_it_for_anyone() {
    let mut e = Engine::new(config());
    fetch_poisoned_page(&mut e, at(0), (CLIENT, 40000), &format!("{RESOLVER}:53"));
    // The server spoke the header itself (strong); the resolver is only named (weak).
    let strength = |e: &Engine, addr: &str| e.peers().find(|p| p.addr == ip(addr)).map(|p| p.strength);
    assert_eq!(strength(&e, WEB.0), Some(Strength::Strong));
    assert_eq!(strength(&e, RESOLVER), Some(Strength::Weak));
    for host in [CLIENT, "192.0.2.11"] {
        let dns = udp((host, 41000), (RESOLVER, 53), b"\x12\x34\x01\x00\x00\x01");
        assert_eq!(judge(&mut e, at(1), &dns), (Verdict::Accept, Reason::Clean), "{host}: DNS over UDP");
        let syn = tcp((host, 41001), (RESOLVER, 53), 1, SYN, &[]);
        assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean), "{host}: DNS over TCP");
        let syn = tcp((host, 41002), (RESOLVER, 443), 1, SYN, &[]);
        assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean), "{host}: HTTPS");
    }
    // Even on a port outside allow_ports, a named address blocks only the client that fetched
    // the page, and only that port.
    fetch_poisoned_page_from(
        &mut e,
        at(2),
        (CLIENT, 40001),
        ("198.51.100.81", 80),
        &format!("{RESOLVER}:5353"),
    );
    let other = udp(("192.0.2.11", 41003), (RESOLVER, 5353), b"x");
    assert_eq!(judge(&mut e, at(3), &other), (Verdict::Accept, Reason::Clean));
    let own = udp((CLIENT, 41004), (RESOLVER, 5353), b"x");
    assert_eq!(judge(&mut e, at(3), &own), (Verdict::Drop, Reason::SuspectPeer));
}

#[test]
fn one_ping_or_a_spoofed_pong_does_not_block_other_hosts_https() {
    let mut e = Engine::new(config());
    let x = "203.0.113.44";
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (x, 443), &KAZAA_PING));
    // An unsolicited inbound pong "from" X: its source address is not verified.
    let spoofed = udp((x, 1214), ("192.0.2.12", 3531), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(0), &spoofed), (Verdict::Drop, Reason::UdpPong));
    assert!(e.peers().all(|p| p.strength == Strength::Weak), "{:?}", e.peers().collect::<Vec<_>>());
    for host in ["192.0.2.11", "192.0.2.13"] {
        let syn = tcp((host, 41000), (x, 443), 1, SYN, &[]);
        assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean), "{host}");
        let quic = udp((host, 41001), (x, 443), b"\xc3quic");
        assert_eq!(judge(&mut e, at(1), &quic), (Verdict::Accept, Reason::Clean), "{host}");
    }
    // 443 is an allowed port: not even the pinging client loses HTTPS to X.
    let syn = tcp((CLIENT, 41002), (x, 443), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
}

#[test]
fn an_exempt_address_is_never_blocked_by_learned_state() {
    let exempt = vec!["198.51.100.53/32".parse().unwrap(), "192.0.2.99/32".parse().unwrap()];
    let mut e = Engine::new(EngineConfig { exempt, ..config() });
    // A client pings the exempt resolver and the resolver answers: the tells still drop their
    // own datagrams, but the resolver is never a suspect peer.
    let ping = udp((CLIENT, CLIENT_PORT), (RESOLVER, 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &ping), (Verdict::Drop, Reason::UdpPing));
    let pong = udp((RESOLVER, 1214), (CLIENT, CLIENT_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(0), &pong), (Verdict::Drop, Reason::UdpPong));
    fetch_poisoned_page(&mut e, at(0), (CLIENT, 40000), &format!("{RESOLVER}:1214"));
    assert!(e.peers().all(|p| p.addr != ip(RESOLVER)), "{:?}", e.peers().collect::<Vec<_>>());
    for host in [CLIENT, "192.0.2.11"] {
        let syn = tcp((host, 41000), (RESOLVER, 1214), 1, SYN, &[]);
        let expected = if host == CLIENT { Reason::ClientLocked } else { Reason::Clean };
        assert_eq!(judge(&mut e, at(1), &syn).1, expected, "{host}");
        let dns = udp((host, 41001), (RESOLVER, 53), b"q");
        assert_eq!(judge(&mut e, at(1), &dns), (Verdict::Accept, Reason::Clean), "{host}");
    }
    // An exempt inside host speaking FastTrack: its ping is dropped, it is never locked.
    let before = e.stats().locks_refused_not_inside;
    let ping = udp(("192.0.2.99", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(2), &ping), (Verdict::Drop, Reason::UdpPing));
    assert!(e.locked_clients().all(|l| l.client != ip("192.0.2.99")));
    assert_eq!(e.stats().locks_refused_not_inside, before + 1);
    let syn = tcp(("192.0.2.99", 41002), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(2), &syn), (Verdict::Accept, Reason::Clean));
    // Exempting an address at a reload forgets what was learned about it.
    e.handle_packet(at(2), &udp(("192.0.2.12", 3000), ("203.0.113.60", 1214), &KAZAA_PING));
    assert!(e.peers().any(|p| p.addr == ip("203.0.113.60")));
    assert!(e.locked_clients().any(|l| l.client == ip("192.0.2.12")));
    let mut reloaded = e.config().clone();
    reloaded
        .exempt
        .extend(["203.0.113.60/32".parse::<ipnet::IpNet>().unwrap(), "192.0.2.12/32".parse().unwrap()]);
    actions(&mut e);
    e.set_config(reloaded);
    assert!(e.peers().all(|p| p.addr != ip("203.0.113.60")));
    assert!(e.locked_clients().all(|l| l.client != ip("192.0.2.12")));
    let removed = actions(&mut e);
    assert!(removed.iter().any(
        |a| matches!(a, Action::StateChanged(StateChange::PeerRemoved(p, Removal::Operator)) if p.addr == ip("203.0.113.60"))
    ));
    assert!(removed.contains(&Action::StateChanged(StateChange::LockRemoved(
        ip("192.0.2.12").into(),
        Removal::Operator
    ))));
    // Operator bans still apply to exempt addresses.
    e.ban(at(3), ip(RESOLVER), None, None, None).unwrap();
    let dns = udp(("192.0.2.11", 41003), (RESOLVER, 53), b"q");
    assert_eq!(judge(&mut e, at(3), &dns), (Verdict::Drop, Reason::Banned));
}

#[test]
fn one_client_cannot_fill_the_peer_cache() {
    let peers = PeersConfig { per_client: 3, ..PeersConfig::default() };
    let mut e = Engine::new(EngineConfig { peers, ..config() });
    for i in 0..10u16 {
        let ping = udp((CLIENT, CLIENT_PORT), (&format!("203.0.113.{}", 10 + i), 1214), &KAZAA_PING);
        assert_eq!(judge(&mut e, at(0), &ping), (Verdict::Drop, Reason::UdpPing), "still a tell");
    }
    assert_eq!(e.peer_count(), 3);
    assert_eq!(e.stats().peers_refused_quota, 7);
    let refusals: Vec<u64> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Refused { kind: RefusedKind::PeerQuota, client, total, .. } => {
                assert_eq!(client, Some(ip(CLIENT)));
                Some(total)
            }
            _ => None,
        })
        .collect();
    assert_eq!(refusals, vec![1, 2, 4], "logged at powers of two");
    // Another client still has its own quota.
    let ping = udp(("192.0.2.11", CLIENT_PORT), ("203.0.113.99", 1214), &KAZAA_PING);
    judge(&mut e, at(0), &ping);
    assert_eq!(e.peer_count(), 4);
}

#[test]
fn only_inside_hosts_are_locked() {
    let mut e = Engine::new(config());
    // A ping between two outside addresses (a spoofed source, say): judged, never locked.
    let ping = udp(("203.0.113.77", 4444), ("198.51.100.21", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &ping), (Verdict::Drop, Reason::UdpPing));
    assert_eq!(e.locked_count(), 0);
    assert_eq!(e.stats().locks_refused_not_inside, 1);
    // A restored lock of an outside address is not loaded either.
    let snapshot = Snapshot {
        locks: vec![LockEntry::new(ip("203.0.113.77"), at(100), None, None)],
        ..Snapshot::default()
    };
    e.restore(at(0), &snapshot);
    assert_eq!(e.locked_count(), 0);
}

#[test]
fn a_locked_ipv6_client_cannot_escape_to_another_address_of_its_prefix() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT6, CLIENT_PORT), (PEER6, PEER_PORT), &KAZAA_PING));
    let lock = e.locked_clients().next().unwrap();
    assert_eq!(lock.network, Some("2001:db8:1::/64".parse().unwrap()));
    for escape in ["2001:db8:1::99", "2001:db8:1::abcd:1"] {
        let syn = tcp((escape, 41000), ("2001:db8:2::77", 6000), 1, SYN, &[]);
        assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::ClientLocked), "{escape}");
    }
    // The operator releases the lock by any address of the prefix.
    assert!(e.release_client(ip("2001:db8:1::99")));
    let released = actions(&mut e);
    assert!(released.contains(&Action::StateChanged(StateChange::LockRemoved(
        "2001:db8:1::/64".parse().unwrap(),
        Removal::Operator
    ))));
    // A /128 keying keeps the old behaviour, for an operator who wants it.
    let timelock = TimelockConfig { ipv6_prefix: 128, ..TimelockConfig::default() };
    let mut e = Engine::new(EngineConfig { timelock, ..config() });
    e.handle_packet(at(0), &udp((CLIENT6, CLIENT_PORT), (PEER6, PEER_PORT), &KAZAA_PING));
    let syn = tcp(("2001:db8:1::99", 41000), ("2001:db8:2::77", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
}

#[test]
fn ipv6_churn_evicts_neither_ipv4_locks_nor_peers() {
    let lan = vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
    let timelock = TimelockConfig { capacity: 64, ..TimelockConfig::default() };
    let peers = PeersConfig { capacity: 64, ..PeersConfig::default() };
    let mut e = Engine::new(EngineConfig { lan, timelock, peers, ..config() });
    // An IPv4 client locked, with a strong peer (its pong answered the ping).
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(0), &udp((PEER, PEER_PORT), (CLIENT, CLIENT_PORT), &KAZAA_PONG));
    // 4,200 IPv6 pings from one /64 (any address of it) and then from 4,200 /64s.
    for i in 0..4200u16 {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, i).to_string();
        let dst = Ipv6Addr::new(0x2001, 0xdb9, 2, 0, 0, 0, 1, i).to_string();
        e.handle_packet(at(1), &udp((&src, 3531), (&dst, 1214), &KAZAA_PING));
    }
    let v6_locks = e.locked_clients().filter(|l| l.client.is_ipv6()).count();
    assert_eq!(v6_locks, 1, "one /64, one lock");
    for i in 0..4200u16 {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 2 + i, 0, 0, 0, 0, 1).to_string();
        e.handle_packet(at(2), &udp((&src, 3531), ("2001:db9:2::1", 1214), &KAZAA_PING));
    }
    assert!(e.stats().locks_refused_full > 0 && e.stats().peers_refused_full > 0);
    let syn = tcp((CLIENT, 41000), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(3), &syn), (Verdict::Drop, Reason::ClientLocked), "the IPv4 lock holds");
    let syn = tcp(("192.0.2.11", 41001), (PEER, 80), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(3), &syn), (Verdict::Drop, Reason::SuspectPeer), "the strong peer holds");
    assert!(e.locked_count() <= 64 + 64 && e.peer_count() <= 4 * 64);
}

#[test]
fn peers_of_older_state_files_load_as_weak_and_block_nothing_they_cannot_scope() {
    let old: Snapshot =
        serde_json::from_str(r#"{"peers":[{"addr":"198.51.100.53","port":53,"expires":null}],"locks":[]}"#)
            .unwrap();
    assert_eq!(old.peers[0].strength, Strength::Weak);
    let mut e = Engine::new(config());
    e.restore(at(0), &old);
    assert_eq!(e.peer_count(), 0, "no witness client to scope it to");
    let dns = udp((CLIENT, 41000), (RESOLVER, 53), b"q");
    assert_eq!(judge(&mut e, at(1), &dns), (Verdict::Accept, Reason::Clean));
}

#[test]
fn with_mac_tie_a_lock_holds_for_the_same_lan_mac_on_ipv6() {
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
    const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
    let from = |mac| PacketMeta { src_mac: Some(mac) };
    for tie in [false, true] {
        let timelock = TimelockConfig { mac_tie: tie, ..TimelockConfig::default() };
        let mut e = Engine::new(EngineConfig { timelock, ..config() });
        // The IPv4 client is locked by a ping sent from its MAC.
        let ping = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
        assert_eq!(e.handle_packet_with(at(0), &ping, from(MAC)).reason, Reason::UdpPing);
        // It moves to IPv6 (another address family, another key).
        let syn = tcp((CLIENT6, 41000), ("2001:db8:2::77", 6000), 1, SYN, &[]);
        let d = e.handle_packet_with(at(1), &syn, from(MAC));
        let expected = if tie { Reason::ClientLocked } else { Reason::Clean };
        assert_eq!(d.reason, expected, "mac_tie = {tie}");
        // Another host's MAC is not held, nor are packets the shell gave no MAC for.
        let syn = tcp((OTHER6, 41001), ("2001:db8:2::77", 6000), 1, SYN, &[]);
        assert_eq!(e.handle_packet_with(at(1), &syn, from(OTHER_MAC)).reason, Reason::Clean);
        let syn = tcp((OTHER6, 41002), ("2001:db8:2::77", 6000), 1, SYN, &[]);
        assert_eq!(e.handle_packet(at(1), &syn).reason, Reason::Clean);
        // A tell from the outside end (its MAC is the upstream router's) ties nothing.
        let pong = udp(("203.0.113.5", 1214), ("192.0.2.30", 3531), &KAZAA_PONG);
        e.handle_packet_with(at(2), &pong, from(OTHER_MAC));
        let syn = tcp((OTHER6, 41003), ("2001:db8:2::77", 6000), 1, SYN, &[]);
        assert_eq!(e.handle_packet_with(at(2), &syn, from(OTHER_MAC)).reason, Reason::Clean);
    }
}
