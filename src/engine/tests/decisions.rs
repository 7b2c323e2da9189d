//! What a decision carries: settling for offload, inside/outside ends, blocked, monitor mode, malformed.

use super::*;

#[test]
fn monitor_mode_accepts_but_keeps_reasons_and_sends_nothing() {
    let mut c = config();
    c.mode = Mode::Monitor;
    let mut e = Engine::new(c);
    let d = e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!((d.verdict, d.reason), (Verdict::Accept, Reason::UdpPing));
    assert!(!actions(&mut e).iter().any(|a| matches!(a, Action::SendSpoofedPong { .. })));
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::ClientLocked));
    assert_eq!(e.stats().dropped, 0);
    assert_eq!(e.stats().count(Reason::ClientLocked), 1);
}

#[test]
fn malformed_packets_follow_the_policy() {
    let bogus_ihl = [0x4F, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 10, 198, 51, 100, 20];
    let mut e = Engine::new(config());
    let d = e.handle_packet(at(0), &bogus_ihl);
    assert_eq!((d.verdict, d.reason), (Verdict::Accept, Reason::Malformed));
    assert_eq!(e.handle_packet(at(0), &[]).reason, Reason::Malformed);
    let mut c = config();
    c.malformed = MalformedPolicy::Drop;
    let mut e = Engine::new(c);
    assert_eq!(judge(&mut e, at(0), &bogus_ihl), (Verdict::Drop, Reason::Malformed));
}

#[test]
fn flows_settle_only_when_decided() {
    use crate::verdict::Settled;
    let mut e = Engine::new(config());
    // A TLS connection: clean once both directions' first payloads were inspected.
    let mut conn = Conn::new((CLIENT, 50010), ("203.0.113.90", 443));
    for p in [conn.syn(), conn.syn_ack(), conn.ack()] {
        assert_eq!(e.handle_packet(at(0), &p).settled, None, "nothing inspected yet");
    }
    let hello =
        conn.client_data(&[0x16, 0x03, 0x01, 0x00, 0x0F, 1, 0, 0, 0x0B, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(e.handle_packet(at(0), &hello).settled, Some(Settled::Clean), "not HTTP, no shape: done");
    // A first message shorter than 12 bytes may still grow into the shape's: until the reply.
    let mut short = Conn::new((CLIENT, 50013), ("203.0.113.93", 443));
    short.open(&mut e, at(0));
    let p = short.client_data(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0]);
    assert_eq!(e.handle_packet(at(0), &p).settled, None);
    let p = short.server_data(&[0x16, 0x03, 0x03, 0x00, 0x05, 2, 0, 0, 1, 0]);
    assert_eq!(e.handle_packet(at(0), &p).settled, Some(Settled::Clean));

    // An HTTP request: the server's response headers must be seen first.
    let mut web = Conn::new((CLIENT, 50012), ("203.0.113.92", 80));
    web.open(&mut e, at(0));
    let req = web.client_data(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(e.handle_packet(at(0), &req).settled, None, "the response may still carry Kazaa headers");
    let resp = web.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(e.handle_packet(at(0), &resp).settled, Some(Settled::Clean));
    // A kept-alive connection: later requests may still tell, up to the budget.
    let mut kept = Conn::new((CLIENT, 50014), ("203.0.113.94", 80));
    kept.open(&mut e, at(0));
    let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for k in 0..stream::MAX_MESSAGES {
        let p = kept.client_data(req);
        let expect = (k + 1 == stream::MAX_MESSAGES).then_some(Settled::Clean);
        if k == 0 {
            assert_eq!(e.handle_packet(at(0), &p).settled, None);
            let resp = kept.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(e.handle_packet(at(0), &resp).settled, None, "request {k}");
        } else {
            assert_eq!(e.handle_packet(at(0), &p).settled, expect, "request {k}");
        }
    }

    // A client whose first payload is 12 bytes may still complete the handshake shape: not yet.
    let mut shaped = Conn::new((CLIENT, 50011), ("203.0.113.91", 3000));
    shaped.open(&mut e, at(0));
    let p = shaped.client_data(&[7u8; 12]);
    assert_eq!(e.handle_packet(at(0), &p).settled, None);
    let p = shaped.server_data(&[9u8; 40]);
    assert_eq!(e.handle_packet(at(0), &p).settled, None, "client's second payload still pending");
    let p = shaped.client_data(&[1u8; 100]);
    assert_eq!(e.handle_packet(at(0), &p).settled, Some(Settled::Clean));

    // FastTrack flows settle as FastTrack at their tell.
    let d = e.handle_packet(at(1), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(d.settled, Some(Settled::FastTrack));

    // UDP: clean after offload.udp_after_packets datagrams.
    let dns = udp(("192.0.2.11", 5353), ("203.0.113.53", 53), b"query");
    for i in 1..=8 {
        let expect = if i < 8 { None } else { Some(Settled::Clean) };
        assert_eq!(e.handle_packet(at(2), &dns).settled, expect, "datagram {i}");
    }
}

#[test]
fn nothing_settles_without_offload_and_fasttrack_never_in_monitor_mode() {
    use crate::verdict::Settled;
    let mut c = config();
    c.offload.enabled = false;
    let mut e = Engine::new(c);
    let d = e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(d.settled, None);
    let mut c = config();
    c.mode = Mode::Monitor;
    let mut e = Engine::new(c);
    let d = e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(d.settled, None, "monitor mode never hands a drop to the kernel");
    let dns = udp(("192.0.2.11", 5353), ("203.0.113.53", 53), b"query");
    let last = (0..8).map(|_| e.handle_packet(at(0), &dns).settled).last().unwrap();
    assert_eq!(last, Some(Settled::Clean), "clean offload is fine in monitor mode");
}

#[test]
fn decisions_carry_the_flows_inside_and_outside_ends() {
    let sock = |s: &str, port: u16| SocketAddr::new(ip(s), port);
    let mut e = Engine::new(config());
    // Neither end in `lan`: the first sender is inside, for the replies too.
    let (a, b) = (("203.0.113.5", 4000), ("198.51.100.30", 1214));
    let ping = e.handle_packet(at(0), &udp(a, b, &KAZAA_PING));
    let ends = FlowEnds { inside: sock(a.0, a.1), outside: sock(b.0, b.1) };
    assert_eq!(ping.ends, Some(ends));
    let pong = e.handle_packet(at(1), &udp(b, a, &KAZAA_PONG));
    assert_eq!((pong.reason, pong.blocked), (Reason::UdpPong, true));
    assert_eq!(pong.ends, Some(ends), "the reply's receiver is the client");
    // A banned packet is judged before any flow lookup; its flow's ends still come from the table.
    e.ban(at(1), ip(a.0), None, None, None).unwrap();
    let banned = e.handle_packet(at(1), &udp(b, a, b"data"));
    assert_eq!((banned.reason, banned.ends), (Reason::Banned, Some(ends)));
    e.unban(ip(a.0));
    // A flow opened from outside towards `lan`: the LAN end is inside.
    let syn = e.handle_packet(at(2), &tcp((PEER, PEER_PORT), (CLIENT, 80), 7, SYN, &[]));
    let ends = FlowEnds { inside: sock(CLIENT, 80), outside: sock(PEER, PEER_PORT) };
    assert_eq!((syn.ends, syn.blocked), (Some(ends), false));
    let reply = e.handle_packet(at(2), &tcp((CLIENT, 80), (PEER, PEER_PORT), 9, SYN | ACK, &[]));
    assert_eq!(reply.ends, Some(ends));
    // Without a flow (ICMP) the same rule applies to the packet alone; ports are 0.
    let icmp = e.handle_packet(
        at(3),
        &packet(ip(PEER), ip(CLIENT), &[], TransportRepr::Raw { protocol: 1 }, &[8, 0, 0, 0, 0, 0, 0, 0]),
    );
    assert_eq!(icmp.ends, Some(FlowEnds { inside: sock(CLIENT, 0), outside: sock(PEER, 0) }));
    assert!(!icmp.blocked);
    // Unreadable IP header: no addresses, no ends.
    let junk = e.handle_packet(at(3), &[0x45, 0, 0]);
    assert_eq!((junk.packet, junk.ends), (None, None));
}

#[test]
fn blocked_reports_the_drop_whatever_the_mode() {
    let ping = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    let mut monitor = Engine::new(EngineConfig { mode: Mode::Monitor, ..config() });
    let d = monitor.handle_packet(at(0), &ping);
    assert_eq!((d.verdict, d.reason, d.blocked), (Verdict::Accept, Reason::UdpPing, true));
    let mut enforce = Engine::new(config());
    let d = enforce.handle_packet(at(0), &ping);
    assert_eq!((d.verdict, d.blocked), (Verdict::Drop, true));
    // A malformed drop is the policy's, not a finding.
    let mut strict = Engine::new(EngineConfig { malformed: MalformedPolicy::Drop, ..config() });
    let bogus_ihl = [0x4F, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 192, 0, 2, 10, 198, 51, 100, 20];
    let d = strict.handle_packet(at(0), &bogus_ihl);
    assert_eq!((d.verdict, d.reason, d.blocked), (Verdict::Drop, Reason::Malformed, false));
}
