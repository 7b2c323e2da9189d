//! IPv6: pings and locks, extension-header chains, truncated captures, ESP/no-next-header, fragments.

use super::*;

#[test]
fn ipv6_ping_and_lock() {
    let mut e = Engine::new(config());
    let c = ("2001:db8:1::10", 3531);
    let p = ("2001:db8:2::20", 1214);
    assert_eq!(judge(&mut e, at(0), &udp(c, p, &KAZAA_PING)), (Verdict::Drop, Reason::UdpPing));
    let syn = tcp(("2001:db8:1::10", 40000), ("2001:db8:2::30", 5555), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::ClientLocked));
    assert_eq!(e.peers().next().unwrap().addr, IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x20)));
}

#[test]
fn ipv6_pings_behind_any_number_of_destination_options_are_seen() {
    for n in [0, 8, 9, 12, 24] {
        let mut e = Engine::new(config());
        let p = udp_behind(
            &ExtHeader::destination_options(n),
            (CLIENT6, CLIENT_PORT),
            (PEER6, 1214),
            &KAZAA_PING,
        );
        assert_eq!(judge(&mut e, at(0), &p), (Verdict::Drop, Reason::UdpPing), "{n} headers");
        assert_eq!(e.locked_count(), 1, "{n} headers: client locked");
    }
}

#[test]
fn ipv6_transport_beyond_the_capture_is_dropped_not_accepted() {
    let mut e = Engine::new(config());
    // 300 headers: 2,400 bytes of chain, more than the daemon's default copy_range of 2,304.
    let full =
        udp_behind(&ExtHeader::destination_options(300), (CLIENT6, CLIENT_PORT), (PEER6, 1214), &KAZAA_PING);
    let captured = &full[..2304];
    let d = e.handle_packet(at(0), captured);
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::TransportUnreachable));
    assert_eq!(d.settled, None);
    assert_eq!(d.packet.map(|s| (s.src, s.dst)), Some((ip(CLIENT6), ip(PEER6))));
    assert_eq!(e.stats().count(Reason::TransportUnreachable), 1);
    // The whole packet is judged by its contents; a chain that overruns its own length is
    // malformed (the receiver cannot parse it either) and keeps the `malformed` policy.
    assert_eq!(judge(&mut e, at(1), &full), (Verdict::Drop, Reason::UdpPing));
    let mut overrun = full.clone();
    overrun[4..6].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(judge(&mut e, at(2), &overrun), (Verdict::Accept, Reason::Malformed));
    let mut strict = Engine::new(EngineConfig { malformed: MalformedPolicy::Drop, ..config() });
    assert_eq!(judge(&mut strict, at(2), &overrun), (Verdict::Drop, Reason::Malformed));
    // Monitor mode reports it and accepts.
    let mut monitor = Engine::new(EngineConfig { mode: Mode::Monitor, ..config() });
    assert_eq!(judge(&mut monitor, at(0), captured), (Verdict::Accept, Reason::TransportUnreachable));
}

#[test]
fn ipv6_esp_and_no_next_header_are_other_protocols() {
    let mut e = Engine::new(config());
    let ping = udp((CLIENT6, CLIENT_PORT), (PEER6, 1214), &KAZAA_PING);
    for last in [50u8, 59] {
        // The bytes after the chain (a UDP ping) are not a transport header to judge.
        let p = packet(
            ip(CLIENT6),
            ip(PEER6),
            &ExtHeader::destination_options(2),
            Raw { protocol: last },
            &ping[40..],
        );
        assert_eq!(judge(&mut e, at(0), &p), (Verdict::Accept, Reason::OtherProtocol), "next header {last}");
    }
    assert_eq!(e.locked_count(), 0);
}

#[test]
fn ipv6_fragments_first_is_judged_later_is_not() {
    let mut e = Engine::new(config());
    let (client, peer) = ((CLIENT6, CLIENT_PORT), (PEER6, 1214));
    let first = udp_behind(&[Fragment { offset: 0, more: false, ident: 1 }], client, peer, &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &first), (Verdict::Drop, Reason::UdpPing));
    let later = udp_behind(&[Fragment { offset: 2, more: true, ident: 2 }], client, peer, &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &later), (Verdict::Accept, Reason::LaterFragment));
    // A first fragment whose chain continues in the next fragment (a destination-options header
    // of 40 bytes, 8 of them here): dropped.
    let first_of_chain = [Fragment { offset: 0, more: true, ident: 3 }];
    let cut =
        packet(ip(CLIENT6), ip(PEER6), &first_of_chain, Raw { protocol: 60 }, &[17, 4, 1, 2, 0, 0, 0, 0]);
    assert_eq!(judge(&mut e, at(0), &cut), (Verdict::Drop, Reason::TransportUnreachable));
}
