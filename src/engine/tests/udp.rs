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
        reason: Reason::UdpPing
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
    assert!(acts.contains(&Action::StateChanged(StateChange::Peer(PeerEntry {
        addr: ip(PEER),
        port: Some(PEER_PORT),
        expires: Some(at(100 + 86_400))
    }))));
    assert!(acts.contains(&Action::StateChanged(StateChange::Lock(LockEntry {
        client: ip(CLIENT),
        until: at(220),
        port: Some(CLIENT_PORT),
        peer: Some(peer_sock),
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
    assert_eq!(e.peer_count(), 2);
}

#[test]
fn outbound_traffic_to_suspect_peers_is_dropped_but_other_clients_elsewhere_pass() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    // Another inside host: UDP and a SYN to the suspect peer (any port) are dropped.
    let other = ("192.0.2.11", 40000);
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

#[test]
fn session_datagrams_count_only_on_classified_flows() {
    let mut e = Engine::new(config());
    let mut c0 = vec![0xC0, 0x28];
    c0.extend_from_slice(&[0x7D; 411]);
    let elsewhere = udp((CLIENT, CLIENT_PORT), ("203.0.113.60", 7000), &c0);
    assert_eq!(judge(&mut e, at(0), &elsewhere), (Verdict::Accept, Reason::Clean));
    assert_eq!(e.locked_count(), 0);
    e.handle_packet(at(10), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let on_flow = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &c0);
    assert_eq!(judge(&mut e, at(50), &on_flow), (Verdict::Drop, Reason::FasttrackFlow));
    assert_eq!(e.locked_clients().next().unwrap().until, at(170), "re-armed by the C0 datagram");
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
