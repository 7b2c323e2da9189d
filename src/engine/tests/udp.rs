//! UDP tells: pings, pongs, echoes, session datagrams, decoys, and the forged pongs with their limits.

use super::*;

#[test]
fn ping_is_dropped_identifies_client_and_peer_and_spoofs_a_pong() {
    let mut e = Engine::new(config());
    let d = e.handle_packet(at(100), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::UdpPing));
    let summary = d.packet.unwrap();
    assert_eq!((summary.proto, summary.payload_len, summary.dst_port), (Proto::Udp, 12, Some(PEER_PORT)));

    let ev = events(&mut e);
    let client_sock = SocketAddr::new(ip(CLIENT), CLIENT_PORT);
    let peer_sock = SocketAddr::new(ip(PEER), PEER_PORT);
    assert!(ev.contains(&Event::FlowClassified {
        proto: Proto::Udp,
        client: client_sock,
        peer: peer_sock,
        reason: Reason::UdpPing
    }));
    assert!(ev.contains(&Event::PeerIdentified {
        peer: ip(PEER),
        port: Some(PEER_PORT),
        client: Some(ip(CLIENT)),
        reason: Reason::UdpPing,
        strength: Strength::Weak,
    }));
    assert!(ev.contains(&Event::ClientIdentified {
        client: ip(CLIENT),
        peer: peer_sock,
        reason: Reason::UdpPing,
        locked_until: Some(at(220))
    }));

    let acts = actions(&mut e);
    let spoof = acts.iter().find_map(|a| match a {
        Action::SendSpoofedPong { from, to, payload } => Some((*from, *to, payload.clone())),
        _ => None,
    });
    let (from, to, payload) = spoof.expect("a spoofed pong");
    assert_eq!((from, to), (peer_sock, client_sock));
    assert_eq!(signatures::udp::pong(&payload), Some(Network::Kazaa));
    let flow = Some(FlowTuple { proto: Proto::Udp, client: client_sock, peer: peer_sock });
    // The ping names its destination: a weak peer, scoped to this client, for an hour.
    assert!(acts.contains(&Action::StateChanged(StateChange::Peer(PeerEntry {
        client: Some(ip(CLIENT)),
        reason: Some(Reason::UdpPing),
        flow,
        first_seen: at(100),
        last_seen: at(100),
        ..PeerEntry::new(ip(PEER), Some(PEER_PORT), Some(at(100 + 3_600)), Strength::Weak)
    }))));
    assert!(acts.contains(&Action::StateChanged(StateChange::Lock(LockEntry {
        reason: Some(Reason::UdpPing),
        flow,
        first_seen: at(100),
        last_seen: at(100),
        ..LockEntry::new(ip(CLIENT), at(220), Some(CLIENT_PORT), Some(peer_sock))
    }))));

    // The pong coming back on the same flow is a tell too; a second ping re-arms silently.
    let pong = udp((PEER, PEER_PORT), (CLIENT, CLIENT_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(101), &pong), (Verdict::Drop, Reason::UdpPong));
    let ping2 = udp((CLIENT, CLIENT_PORT), ("203.0.113.5", 4000), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(102), &ping2), (Verdict::Drop, Reason::UdpPing));
    let ev = events(&mut e);
    assert!(
        !ev.iter().any(|x| matches!(x, Event::ClientIdentified { .. })),
        "no second identification: {ev:?}"
    );
    assert_eq!(e.locked_clients().next().unwrap().until, at(222));
    // PEER weak (pinged) and strong (its pong answered the ping), 203.0.113.5 weak.
    assert_eq!(e.peer_count(), 3);
    assert_eq!(e.peer_count_of(Strength::Strong), 1);
}

#[test]
fn a_ping_alone_makes_a_weak_peer_that_blocks_only_its_client_on_the_pinged_port() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(e.peers().next().map(|p| p.strength), Some(Strength::Weak));
    // One ping to PEER does not block other hosts' DNS or HTTPS to it, nor their FastTrack
    // port (no independent evidence)...
    let other = ("192.0.2.11", 40000);
    assert_eq!(judge(&mut e, at(1), &udp(other, (PEER, 53), b"hello")), (Verdict::Accept, Reason::Clean));
    let syn = tcp(other, (PEER, 443), 7, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    let syn = tcp(other, (PEER, PEER_PORT), 7, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    // ...nor the pinging client's own allowed ports; it blocks that client's flows to the
    // pinged address and port.
    let syn = tcp((CLIENT, 41000), (PEER, 443), 7, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    let own = udp((CLIENT, 41001), (PEER, PEER_PORT), b"hello");
    assert_eq!(judge(&mut e, at(1), &own), (Verdict::Drop, Reason::SuspectPeer));
    // The peer answering the ping with a pong on the same flow is the address itself speaking
    // FastTrack: strong, and from then on every host's flows to it are blocked.
    let pong = udp((PEER, PEER_PORT), (CLIENT, CLIENT_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(1), &pong), (Verdict::Drop, Reason::UdpPong));
    assert!(e.peers().any(|p| p.addr == ip(PEER) && p.strength == Strength::Strong));
    let other = ("192.0.2.11", 40001);
    assert_eq!(judge(&mut e, at(1), &udp(other, (PEER, 53), b"hello")), (Verdict::Drop, Reason::SuspectPeer));
    let syn = tcp(other, (PEER, 80), 7, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::SuspectPeer));
    // Ordinary traffic of that host to somewhere else passes.
    let syn = tcp(other, ("203.0.113.80", 443), 7, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    // Inbound from the suspect peer on a new flow is not dropped by the peer rule (only outbound is).
    let inbound = udp((PEER, 9999), ("192.0.2.11", 5000), b"x");
    assert_eq!(judge(&mut e, at(1), &inbound), (Verdict::Accept, Reason::Clean));
}

#[test]
fn nat_pong_and_its_echo() {
    let mut e = Engine::new(config());
    let nat_pong = [0x29, 0, 0, 0, 0xA9, 0x01, 0x00, 0x00, 0x00, 0xDC, 0x93, 0xF0, 0x6B];
    let echo = [0x2A, 0xDC, 0x93, 0xF0, 0x6B];
    // An echo with no 0x29 before it is not a tell.
    let lone = udp((CLIENT, CLIENT_PORT), ("203.0.113.9", 1000), &echo);
    assert_eq!(judge(&mut e, at(0), &lone), (Verdict::Accept, Reason::Clean));
    let p = udp(("203.0.113.7", 1214), (CLIENT, CLIENT_PORT), &nat_pong);
    assert_eq!(judge(&mut e, at(0), &p), (Verdict::Drop, Reason::UdpPong));
    let p = udp((CLIENT, CLIENT_PORT), ("203.0.113.7", 1214), &echo);
    assert_eq!(judge(&mut e, at(0), &p), (Verdict::Drop, Reason::UdpPongAck));
}

#[test]
fn address_echo_needs_the_destination_inside() {
    let mut e = Engine::new(config());
    let good = [0xC1, 0x88, 0x9D, 198, 51, 100, 23];
    let p = udp((CLIENT, CLIENT_PORT), ("198.51.100.23", 1500), &good);
    assert_eq!(judge(&mut e, at(0), &p), (Verdict::Drop, Reason::UdpAddressEcho));
    let p = udp((CLIENT, CLIENT_PORT), ("198.51.100.24", 1500), &good);
    assert_eq!(judge(&mut e, at(0), &p), (Verdict::Accept, Reason::Clean));
}

/// A `C0 28 …` session datagram of a common captured length (413 bytes).
fn c0_session() -> Vec<u8> {
    let mut c0 = vec![0xC0, 0x28, 0x7D, 0x4E, 0xFC, 0x99, 0x88, 0x9D];
    c0.resize(413, 0x6B);
    c0
}

/// A `C3 28 …` session datagram (896 bytes), embedding 192.0.2.10 as captured ones do.
fn c3_session() -> Vec<u8> {
    let mut c3 = vec![0xC3, 0x28, 0x8B, 0x79, 0x6D, 0x50, 0x00, 0x0D, 192, 0, 2, 10];
    c3.resize(896, 0x3C);
    c3
}

/// A configuration without time-lock, so only the other kinds of evidence can corroborate.
fn no_timelock() -> EngineConfig {
    let mut c = config();
    c.timelock.seconds = 0;
    c
}

#[test]
fn session_datagrams_are_never_a_tell_on_their_own() {
    let mut e = Engine::new(config());
    for (i, payload) in [c0_session(), c3_session()].into_iter().enumerate() {
        let port = 7000 + i as u16;
        // From a client nobody has seen, to a peer never seen, both ways, on ports other than 1214.
        let out = udp((CLIENT, CLIENT_PORT), ("203.0.113.60", port), &payload);
        assert_eq!(judge(&mut e, at(0), &out), (Verdict::Accept, Reason::Clean));
        let back = udp(("203.0.113.60", port), (CLIENT, CLIENT_PORT), &payload);
        assert_eq!(judge(&mut e, at(0), &back), (Verdict::Accept, Reason::Clean));
        // The inside end on 1214 is no corroboration (an ephemeral port of older Windows).
        let from_1214 = udp((CLIENT, 1214), ("203.0.113.61", port), &payload);
        assert_eq!(judge(&mut e, at(0), &from_1214), (Verdict::Accept, Reason::Clean));
    }
    assert_eq!((e.locked_count(), e.peer_count(), e.stats().dropped), (0, 0, 0));
    assert!(events(&mut e).is_empty());
}

#[test]
fn session_datagrams_on_classified_flows_rearm_the_lock() {
    let mut e = Engine::new(config());
    e.handle_packet(at(10), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let on_flow = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &c0_session());
    assert_eq!(judge(&mut e, at(50), &on_flow), (Verdict::Drop, Reason::FasttrackFlow));
    assert_eq!(e.locked_clients().next().unwrap().until, at(170), "re-armed by the C0 datagram");
    let back = udp((PEER, PEER_PORT), (CLIENT, CLIENT_PORT), &c3_session());
    assert_eq!(judge(&mut e, at(60), &back), (Verdict::Drop, Reason::FasttrackFlow));
    assert_eq!(e.locked_clients().next().unwrap().until, at(180));
}

#[test]
fn the_clients_fasttrack_port_corroborates_with_no_lock_at_all() {
    let mut e = Engine::new(no_timelock());
    // The client's pings leave from its FastTrack port: the port is learned, though the lock is off.
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!((e.locked_count(), e.client_ports.len()), (0, 1));
    events(&mut e);
    // A session datagram from that port to a peer never seen is a tell: flow classified, peer learned.
    let fresh = ("203.0.113.70", 4811);
    let c0 = udp((CLIENT, CLIENT_PORT), fresh, &c0_session());
    assert_eq!(judge(&mut e, at(1), &c0), (Verdict::Drop, Reason::UdpSession));
    let ev = events(&mut e);
    let (client, peer) = (SocketAddr::new(ip(CLIENT), CLIENT_PORT), SocketAddr::new(ip(fresh.0), fresh.1));
    assert!(ev.contains(&Event::FlowClassified {
        proto: Proto::Udp,
        client,
        peer,
        reason: Reason::UdpSession
    }));
    assert!(ev.contains(&Event::PeerIdentified {
        peer: ip(fresh.0),
        port: Some(fresh.1),
        client: Some(ip(CLIENT)),
        reason: Reason::UdpSession,
        strength: Strength::Weak,
    }));
    // Its answer is a later packet of the classified flow.
    let back = udp(fresh, (CLIENT, CLIENT_PORT), &c0_session());
    assert_eq!(judge(&mut e, at(1), &back), (Verdict::Drop, Reason::FasttrackFlow));
    // An inbound session datagram at the FastTrack port, on a flow the client opened with
    // something else, is corroborated the same way (C3 28 too).
    let other = ("203.0.113.71", 5000);
    assert_eq!(
        judge(&mut e, at(2), &udp((CLIENT, CLIENT_PORT), other, b"hi")),
        (Verdict::Accept, Reason::Clean)
    );
    let c3 = udp(other, (CLIENT, CLIENT_PORT), &c3_session());
    assert_eq!(judge(&mut e, at(2), &c3), (Verdict::Drop, Reason::UdpSession));

    // Not from another port of the same client, nor from the same port of another client.
    let other_port = udp((CLIENT, CLIENT_PORT + 1), ("203.0.113.72", 4811), &c0_session());
    assert_eq!(judge(&mut e, at(3), &other_port), (Verdict::Accept, Reason::Clean));
    let other_client = udp(("192.0.2.11", CLIENT_PORT), ("203.0.113.72", 4811), &c0_session());
    assert_eq!(judge(&mut e, at(3), &other_client), (Verdict::Accept, Reason::Clean));
    // Pongs arriving at the port teach it as well (a 0x29 pong here), and the memory outlives
    // a lock: it lasts peers.expire_seconds (a day by default) from the last discovery datagram.
    let nat_pong = [0x29, 0, 0, 0, 0xA9, 0x01, 0x00, 0x00, 0x00, 0xDC, 0x93, 0xF0, 0x6B];
    e.handle_packet(at(4), &udp(("203.0.113.7", 1214), ("192.0.2.12", 4000), &nat_pong));
    let c0 = udp(("192.0.2.12", 4000), ("203.0.113.73", 999), &c0_session());
    assert_eq!(judge(&mut e, at(86_403), &c0), (Verdict::Drop, Reason::UdpSession));
    let c0 = udp(("192.0.2.12", 4000), ("203.0.113.74", 999), &c0_session());
    assert_eq!(judge(&mut e, at(86_404), &c0), (Verdict::Accept, Reason::Clean), "forgotten after a day");
}

#[test]
fn the_port_is_learned_from_discovery_only() {
    let mut e = Engine::new(no_timelock());
    // A 0xC1 address echo and a corroborated session datagram teach no port.
    let c1 = [0xC1, 0x88, 0x9D, 198, 51, 100, 23];
    e.handle_packet(at(0), &udp((CLIENT, 5555), ("198.51.100.23", 1500), &c1));
    e.handle_packet(at(0), &udp(("192.0.2.11", 6666), ("203.0.113.80", 1214), &c0_session()));
    assert_eq!(e.client_ports.len(), 0);
    let c0 = udp((CLIENT, 5555), ("203.0.113.81", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(1), &c0), (Verdict::Accept, Reason::Clean));
    let c0 = udp(("192.0.2.11", 6666), ("203.0.113.81", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(1), &c0), (Verdict::Accept, Reason::Clean));
}

#[test]
fn a_locked_client_corroborates_on_its_port_or_any_port_when_unknown() {
    let mut e = Engine::new(config());
    // Locked by a TCP tell only: the lock knows no FastTrack port.
    let mut conn = Conn::new((CLIENT, 40_001), ("203.0.113.90", 8080));
    conn.open(&mut e, at(0));
    assert_eq!(e.handle_packet(at(0), &conn.client_data(&GIFT_OPENER)).reason, Reason::TcpOpener);
    assert_eq!(e.locked_clients().next().unwrap().port, None);
    let c0 = udp((CLIENT, 3777), ("203.0.113.91", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(1), &c0), (Verdict::Drop, Reason::UdpSession));
    // The tell gives the lock its port; from then on another port of the client is another program.
    assert_eq!(e.locked_clients().next().unwrap().port, Some(3777));
    let elsewhere = udp((CLIENT, 3778), ("203.0.113.92", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(2), &elsewhere), (Verdict::Accept, Reason::Clean));
    let again = udp((CLIENT, 3777), ("203.0.113.92", 4001), &c0_session());
    assert_eq!(judge(&mut e, at(2), &again), (Verdict::Drop, Reason::UdpSession));
    assert!(e.peers().any(|p| p.addr == ip("203.0.113.92")), "the new peer is learned");
    // Once the lock expires (and no discovery taught the port), the same datagram passes.
    e.drive(at(200));
    let late = udp((CLIENT, 3777), ("203.0.113.93", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(200), &late), (Verdict::Accept, Reason::Clean));
    // A locked client elsewhere corroborates nothing for this one.
    let other = udp(("192.0.2.11", 3777), ("203.0.113.94", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(200), &other), (Verdict::Accept, Reason::Clean));
}

#[test]
fn a_suspect_peer_corroborates_in_both_directions_and_locks_the_client() {
    let mut e = Engine::new(config());
    // Another client's ping, answered by PEER, makes PEER a strong suspect.
    e.handle_packet(at(0), &udp(("192.0.2.11", 3000), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(0), &udp((PEER, PEER_PORT), ("192.0.2.11", 3000), &KAZAA_PONG));
    // Outbound, a session datagram to it is a tell (no longer only `suspect_peer`), and locks
    // the sender, whatever its port.
    let out = udp((CLIENT, 50_000), (PEER, 6000), &c0_session());
    assert_eq!(judge(&mut e, at(1), &out), (Verdict::Drop, Reason::UdpSession));
    assert!(e.locked_clients().any(|l| l.client == ip(CLIENT) && l.port == Some(50_000)));
    // Inbound from it, on a flow opened by something else, where `suspect_peer` never applied.
    let host = ("192.0.2.12", 41_000);
    e.set_config(no_timelock());
    assert_eq!(judge(&mut e, at(2), &udp(host, (PEER, 7000), b"x")), (Verdict::Drop, Reason::SuspectPeer));
    let inbound = udp((PEER, 7000), host, &c3_session());
    assert_eq!(judge(&mut e, at(2), &inbound), (Verdict::Drop, Reason::UdpSession));
    // Other datagrams from it still pass inbound (the peer rule is outbound only).
    let plain = udp((PEER, 7002), ("192.0.2.13", 41_000), b"x");
    assert_eq!(judge(&mut e, at(2), &plain), (Verdict::Accept, Reason::Clean));
}

#[test]
fn the_outside_port_1214_corroborates() {
    let mut e = Engine::new(config());
    let out = udp((CLIENT, 50_000), ("203.0.113.100", 1214), &c0_session());
    assert_eq!(judge(&mut e, at(0), &out), (Verdict::Drop, Reason::UdpSession));
    assert_eq!((e.locked_count(), e.peer_count()), (1, 1));
    // Inbound from an outside 1214 on a flow the host opened otherwise.
    let host = ("192.0.2.12", 41_000);
    judge(&mut e, at(1), &udp(host, ("203.0.113.101", 1214), b"x"));
    let inbound = udp(("203.0.113.101", 1214), host, &c3_session());
    assert_eq!(judge(&mut e, at(1), &inbound), (Verdict::Drop, Reason::UdpSession));
    // IPv6 the same way.
    let v6 = udp((CLIENT6, 50_000), (PEER6, 1214), &c0_session());
    assert_eq!(judge(&mut e, at(2), &v6), (Verdict::Drop, Reason::UdpSession));
    // A client whose lock knows its FastTrack port (from a ping): a session tell from another
    // port (corroborated by 1214) does not move it, so that port corroborates nothing after.
    let host = ("192.0.2.14", 3531);
    e.handle_packet(at(2), &udp(host, (PEER, PEER_PORT), &KAZAA_PING));
    let to_1214 = udp(("192.0.2.14", 50_002), ("203.0.113.103", 1214), &c0_session());
    assert_eq!(judge(&mut e, at(2), &to_1214), (Verdict::Drop, Reason::UdpSession));
    assert_eq!(e.locks.entry(ip(host.0).into()).unwrap().port, Some(3531));
    let next = udp(("192.0.2.14", 50_002), ("203.0.113.104", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(2), &next), (Verdict::Accept, Reason::Clean));
    // A truncated capture of the datagram is no tell (the shape needs the whole datagram).
    let mut cut = udp((CLIENT, 50_001), ("203.0.113.102", 1214), &c0_session());
    cut.truncate(40);
    assert_eq!(judge(&mut e, at(3), &cut), (Verdict::Accept, Reason::Clean));
}

#[test]
fn client_ports_are_bounded_and_evictions_counted() {
    let mut c = no_timelock();
    c.timelock.capacity = 2;
    let mut e = Engine::new(c);
    for (i, client) in ["192.0.2.1", "192.0.2.2", "192.0.2.3"].into_iter().enumerate() {
        e.handle_packet(at(i as u64), &udp((client, 3000), (PEER, PEER_PORT + i as u16), &KAZAA_PING));
    }
    assert_eq!((e.client_ports.len(), e.stats().client_ports_evicted), (2, 1));
    // Peers are suspects now: send the session datagrams to fresh peers on ports other than 1214.
    let c0 = |client| udp((client, 3000), ("203.0.113.110", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(5), &c0("192.0.2.1")), (Verdict::Accept, Reason::Clean), "evicted");
    let c0 = |client| udp((client, 3000), ("203.0.113.111", 4000), &c0_session());
    assert_eq!(judge(&mut e, at(5), &c0("192.0.2.3")), (Verdict::Drop, Reason::UdpSession));
    let mut c = no_timelock();
    c.timelock.capacity = 1;
    e.set_config(c);
    assert_eq!((e.client_ports.len(), e.stats().client_ports_evicted), (1, 2));
}

#[test]
fn skype_and_gtp_decoys_pass() {
    let mut e = Engine::new(config());
    let mut skype27 = vec![0x27, 0x4C, 0x02, 0xF6];
    skype27.resize(18, 0x11);
    let mut skype_c0 = vec![0xC0, 0x9A, 0x02, 0x51];
    skype_c0.resize(18, 0x22);
    let mut gtp = vec![0x27, 0, 0, 0, 0x02, 0x59, 0, 0, 0xC8, 0];
    gtp.resize(39, 0);
    for payload in [skype27, skype_c0, gtp] {
        let p = udp((CLIENT, 40000), ("203.0.113.1", 33000), &payload);
        assert_eq!(judge(&mut e, at(0), &p), (Verdict::Accept, Reason::Clean));
    }
    assert_eq!((e.peer_count(), e.locked_count()), (0, 0));
}

fn pongs(e: &mut Engine) -> Vec<(SocketAddr, SocketAddr)> {
    actions(e)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendSpoofedPong { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

#[test]
fn pongs_are_forged_only_for_lan_clients_pinging_outside() {
    let mut e = Engine::new(config());
    // A ping with a spoofed outside source: dropped, but the gateway sends nothing anywhere.
    let spoofed = udp(("203.0.113.77", 4444), ("198.51.100.21", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &spoofed), (Verdict::Drop, Reason::UdpPing));
    assert_eq!(pongs(&mut e), vec![]);
    assert_eq!(e.stats().pongs_refused_not_lan, 1);
    // A ping between two LAN hosts: no pong either.
    let inside = udp((CLIENT, CLIENT_PORT), ("192.0.2.99", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &inside), (Verdict::Drop, Reason::UdpPing));
    assert_eq!(pongs(&mut e), vec![]);
    assert_eq!(e.stats().pongs_refused_not_lan, 2);
    // A LAN client pinging an outside peer: exactly one pong, from the peer to the client.
    let ping = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &ping), (Verdict::Drop, Reason::UdpPing));
    let client = SocketAddr::new(ip(CLIENT), CLIENT_PORT);
    assert_eq!(pongs(&mut e), vec![(SocketAddr::new(ip(PEER), PEER_PORT), client)]);
    // An inbound ping (outside to inside) is not answered.
    let inbound = udp((PEER, PEER_PORT), ("192.0.2.12", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &inbound), (Verdict::Drop, Reason::UdpPing));
    assert_eq!(pongs(&mut e), vec![]);
    assert_eq!((e.stats().pongs_refused_not_lan, e.stats().pongs_rate_limited), (2, 0));
    // IPv6 the same way.
    let ping6 = udp((CLIENT6, CLIENT_PORT), (PEER6, 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &ping6), (Verdict::Drop, Reason::UdpPing));
    assert_eq!(pongs(&mut e).len(), 1);
}

#[test]
fn pongs_are_rate_limited_per_client_and_in_total() {
    let mut c = config();
    c.pongs = crate::config::PongsConfig { per_client_per_second: 5, max_per_second: 200 };
    let mut e = Engine::new(c);
    let ping_to = |client: &'static str, i: u16| udp((client, CLIENT_PORT), (PEER, 2000 + i), &KAZAA_PING);
    // A burst of 20 pings at one instant: the per-client burst (5) gets pongs.
    for i in 0..20 {
        e.handle_packet(at(10), &ping_to(CLIENT, i));
    }
    assert_eq!(pongs(&mut e).len(), 5);
    assert_eq!(e.stats().pongs_rate_limited, 15);
    assert_eq!(e.stats().count(Reason::UdpPing), 20, "every ping is still dropped");
    // 200 ms later one more token; a second later the whole burst again.
    e.handle_packet(Timestamp::from_micros(10_200_000), &ping_to(CLIENT, 100));
    e.handle_packet(Timestamp::from_micros(10_200_000), &ping_to(CLIENT, 101));
    assert_eq!(pongs(&mut e).len(), 1);
    for i in 0..10 {
        e.handle_packet(at(12), &ping_to(CLIENT, 200 + i));
    }
    assert_eq!(pongs(&mut e).len(), 5);
    assert_eq!(e.stats().pongs_rate_limited, 15 + 1 + 5);

    // The total: 3 per second over all clients, no per-client limit.
    let mut c = config();
    c.pongs = crate::config::PongsConfig { per_client_per_second: 0, max_per_second: 3 };
    let mut e = Engine::new(c);
    for (i, client) in
        ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"].into_iter().enumerate()
    {
        e.handle_packet(at(0), &ping_to(client, i as u16));
    }
    assert_eq!(pongs(&mut e).len(), 3);
    assert_eq!(e.stats().pongs_rate_limited, 2);
    e.handle_packet(at(1), &ping_to("192.0.2.4", 50));
    assert_eq!(pongs(&mut e).len(), 1, "allowed again after time passes");

    // 0 turns both limits off; reloading applies new limits to the running engine.
    let mut c = config();
    c.pongs = crate::config::PongsConfig { per_client_per_second: 0, max_per_second: 0 };
    e.set_config(c);
    for i in 0..50 {
        e.handle_packet(at(1), &ping_to(CLIENT, 300 + i));
    }
    assert_eq!(pongs(&mut e).len(), 50);
}
