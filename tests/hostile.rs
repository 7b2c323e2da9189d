//! Hostile traffic through the engine: floods of spoofed sources, fake pings to a million
//! peers, half-open TCP, giant and fragmented packets. State must stay within its configured
//! bounds, every packet must get exactly one verdict, and a locked client's FastTrack session
//! must stay blocked however much state the attacker churns.

use ftwall::wire::{self, IpRepr, Ipv4Repr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
use ftwall::{Engine, EngineConfig, Reason, Timestamp, Verdict};
use std::net::{IpAddr, Ipv4Addr};

const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
const PONG: [u8; 17] =
    [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];

fn ip(src: Ipv4Addr, dst: Ipv4Addr) -> IpRepr<'static> {
    IpRepr::V4(Ipv4Repr::new(src, dst))
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    wire::emit(&ip(src.0, dst.0), &TransportRepr::Udp(UdpRepr { src_port: src.1, dst_port: dst.1 }), payload)
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags));
    wire::emit(&ip(src.0, dst.0), &TransportRepr::Tcp(tcp), payload)
}

/// Deterministic pseudo-random addresses.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 27)
}

fn small_config() -> EngineConfig {
    let mut c = EngineConfig { lan: vec!["192.0.2.0/24".parse().unwrap()], ..EngineConfig::default() };
    c.flows.capacity = 4096;
    c.flows.reassembly_capacity = 64;
    c
}

fn drain(e: &mut Engine) {
    while e.poll_event().is_some() {}
    while e.poll_action().is_some() {}
}

#[test]
fn spoofed_source_flood_keeps_state_bounded() {
    let mut e = Engine::new(small_config());
    let n = 300_000u64;
    for i in 0..n {
        let r = mix(i);
        let src = Ipv4Addr::from((r >> 32) as u32);
        let dst = Ipv4Addr::from(r as u32);
        let packet = if i % 2 == 0 {
            udp((src, r as u16), (dst, (r >> 16) as u16), b"junk")
        } else {
            tcp((src, r as u16), (dst, (r >> 16) as u16), r as u32, 0x18, b"GET / HTTP/1.1\r\nHost: x")
        };
        e.handle_packet(Timestamp::from_micros(i), &packet);
        drain(&mut e);
    }
    assert!(e.flow_count() <= 4096, "flows {}", e.flow_count());
    assert_eq!((e.peer_count(), e.locked_count()), (0, 0), "junk teaches nothing");
    assert_eq!(e.stats().packets, n);
    assert_eq!(e.stats().dropped, 0);
}

#[test]
fn fake_pings_to_a_million_peers_stay_bounded_and_dropped() {
    let mut e = Engine::new(small_config());
    let client = Ipv4Addr::new(192, 0, 2, 10);
    let n = 1_000_000u64;
    for i in 0..n {
        let peer = Ipv4Addr::from(0xC633_0000 | (mix(i) as u32 & 0xFFFF)); // 198.51.x.y
        let d = e.handle_packet(Timestamp::from_micros(i), &udp((client, 3531), (peer, 1214), &PING));
        assert_eq!(d.verdict, Verdict::Drop);
        drain(&mut e);
    }
    assert!(e.flow_count() <= 4096);
    assert!(e.peer_count() <= 200);
    assert_eq!(e.locked_count(), 1);
    assert_eq!(e.stats().count(Reason::UdpPing), n);
}

#[test]
fn half_open_tcp_flood_is_bounded() {
    let mut e = Engine::new(small_config());
    for i in 0..200_000u64 {
        let r = mix(i);
        let src = Ipv4Addr::new(192, 0, 2, (r % 250) as u8 + 1);
        let dst = Ipv4Addr::from(r as u32 | 0x0100_0000);
        e.handle_packet(
            Timestamp::from_micros(i),
            &tcp((src, (r >> 40) as u16), (dst, 80), r as u32, 0x02, &[]),
        );
    }
    assert!(e.flow_count() <= 4096);
    assert_eq!(e.stats().dropped, 0);
}

#[test]
fn reassembly_buffers_are_bounded_by_their_own_cap() {
    let mut e = Engine::new(small_config());
    // Many connections that each start an HTTP header block and never finish it.
    for i in 0..20_000u32 {
        let src = (Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1), 10_000 + (i / 250) as u16);
        let dst = (Ipv4Addr::new(203, 0, 113, 1), 80);
        e.handle_packet(Timestamp::from_micros(u64::from(i)), &tcp(src, dst, 1, 0x02, &[]));
        let d = e.handle_packet(
            Timestamp::from_micros(u64::from(i)),
            &tcp(src, dst, 2, 0x18, b"GET /x HTTP/1.1\r\nHost: a"),
        );
        assert_eq!(d.reason, Reason::Clean);
    }
    assert!(e.flow_count() <= 4096);
    assert_eq!(
        e.reassembly_count(),
        64,
        "capped at flows.reassembly_capacity; evicted buffers end inspection"
    );
    assert_eq!(e.stats().reassembly_evicted, 20_000 - 64, "every eviction is counted");
    assert_eq!(e.stats().packets, 40_000);
}

#[test]
fn giant_and_fragmented_packets() {
    let mut e = Engine::new(small_config());
    let client = (Ipv4Addr::new(192, 0, 2, 20), 40_000);
    let server = (Ipv4Addr::new(198, 51, 100, 7), 1977);
    // A 64 KiB GSO super-segment whose first bytes are a Kazaa request.
    let mut giant =
        b"GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\nX-Kazaa-Network: KaZaA\r\n\r\n"
            .to_vec();
    giant.resize(65_000, b'x');
    e.handle_packet(Timestamp::ZERO, &tcp(client, server, 0, 0x02, &[]));
    let d = e.handle_packet(Timestamp::ZERO, &tcp(client, server, 1, 0x18, &giant));
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::HttpTransfer));
    // A first fragment carrying a complete ping header is judged; later fragments pass untouched.
    let unfragmented =
        Ipv4Repr { dont_fragment: false, ..Ipv4Repr::new([192, 0, 2, 21].into(), [198, 51, 100, 8].into()) };
    let first = IpRepr::V4(Ipv4Repr { more_fragments: true, ..unfragmented });
    let first = wire::emit(&first, &TransportRepr::Udp(UdpRepr { src_port: 3531, dst_port: 1214 }), &PING);
    assert_eq!(e.handle_packet(Timestamp::ZERO, &first).reason, Reason::UdpPing);
    let later = IpRepr::V4(Ipv4Repr { fragment_offset: 3, ..unfragmented });
    let later = wire::emit(&later, &TransportRepr::Raw { protocol: 17 }, &[0u8; 1400]);
    assert_eq!(e.handle_packet(Timestamp::ZERO, &later).reason, Reason::LaterFragment);
    // Truncated and oversized-length headers are malformed, never a panic.
    let mut lying = tcp(client, server, 2, 0x18, b"data");
    lying[2] = 0xFF;
    lying[3] = 0xFF;
    assert_eq!(e.handle_packet(Timestamp::ZERO, &lying[..30]).reason, Reason::Malformed);
}

#[test]
fn a_locked_clients_session_stays_blocked_when_a_flood_evicts_its_flow_and_peer() {
    let mut e = Engine::new(small_config());
    let client = Ipv4Addr::new(192, 0, 2, 10);
    let supernode = (Ipv4Addr::new(203, 0, 113, 9), 3000);
    // The client pings its supernode and opens the (constant-opener) session.
    e.handle_packet(Timestamp::ZERO, &udp((client, 3531), supernode, &PING));
    let opener = [0xFA, 0x00, 0xB6, 0x2B, 0xFA, 0xCB, 0x12, 0x38, 0x32, 0x09, 0xD2, 0x32];
    e.handle_packet(Timestamp::ZERO, &tcp((client, 40_000), supernode, 9, 0x02, &[]));
    let d = e.handle_packet(Timestamp::ZERO, &tcp((client, 40_000), supernode, 10, 0x18, &opener));
    assert_eq!(d.verdict, Verdict::Drop);
    // An attacker inside spoofs a hundred LAN addresses (one source alone holds at most a
    // quarter of the flow table) and pings 100,000 fake peers: flows and peers churn.
    for i in 0..100_000u64 {
        let attacker = Ipv4Addr::new(192, 0, 2, 100 + (i % 100) as u8);
        let peer = Ipv4Addr::from(0xC633_0000 | (mix(i) as u32 & 0xFFFF));
        e.handle_packet(Timestamp::from_micros(1 + i), &udp((attacker, 1000), (peer, 1214), &PING));
        drain(&mut e);
    }
    // Each attacking address's flows hold at most `peers.per_client` peers, a full table refuses
    // the rest: the flood is refused, counted, and evicts nothing (before, it pushed the
    // supernode out of the cache).
    let peers: Vec<IpAddr> = e.peers().map(|p| p.addr).collect();
    assert!(peers.contains(&IpAddr::V4(supernode.0)), "the flood evicted the supernode: {peers:?}");
    for i in 0..100u8 {
        let attacker = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100 + i));
        assert!(e.peers().filter(|p| p.client == Some(attacker)).count() <= 64, "{attacker}");
    }
    let stats = e.stats();
    assert!(stats.peers_refused_quota + stats.peers_refused_full > 90_000, "{stats:?}");
    // The session's next segment arrives on a forgotten flow: the client's own claim about its
    // supernode (a weak peer on that port) still stops it, in both directions.
    let t = Timestamp::from_secs(1);
    let d = e.handle_packet(t, &tcp((client, 40_000), supernode, 22, 0x18, &[0x50]));
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::SuspectPeer));
    let d = e.handle_packet(t, &tcp(supernode, (client, 40_000), 77, 0x18, &[0x52]));
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::SuspectPeer), "both directions");
    // And its lock stops its new connections to random ports elsewhere.
    let d = e.handle_packet(t, &tcp((client, 40_001), (Ipv4Addr::new(203, 0, 113, 10), 5000), 1, 0x02, &[]));
    assert_eq!(d.reason, Reason::ClientLocked);
}

#[test]
fn a_restarted_daemon_cuts_sessions_to_restored_suspect_peers() {
    let mut first = Engine::new(small_config());
    let client = Ipv4Addr::new(192, 0, 2, 10);
    let peer = (Ipv4Addr::new(198, 51, 100, 20), 1214);
    first.handle_packet(Timestamp::ZERO, &udp((client, 3531), peer, &PING));
    // The peer answers on the same flow: it speaks FastTrack itself (a strong peer).
    first.handle_packet(Timestamp::ZERO, &udp(peer, (client, 3531), &PONG));
    let mut second = Engine::new(small_config());
    second.restore(Timestamp::from_secs(1), &first.snapshot());
    // Another inside host's already-open connection to the suspect peer (no SYN seen).
    let other = (Ipv4Addr::new(192, 0, 2, 11), 50_000);
    let d = second.handle_packet(Timestamp::from_secs(1), &tcp(other, (peer.0, 80), 5, 0x18, b"more data"));
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::SuspectPeer));
    // An ordinary mid-stream connection elsewhere is untouched.
    let d = second.handle_packet(
        Timestamp::from_secs(1),
        &tcp(other, (Ipv4Addr::new(203, 0, 113, 80), 443), 5, 0x18, b"tls"),
    );
    assert_eq!(d.reason, Reason::Clean);
}
