//! Never-panic property tests: arbitrary bytes through the parser, every signature and the
//! engine, plus structured-but-inconsistent IPv4/IPv6 headers.

use ftwall::signatures::{http, push, tcp, udp};
use ftwall::wire::{self, IpRepr, Ipv4Repr, Ipv6Repr, TransportRepr};
use ftwall::{Engine, EngineConfig, Timestamp};
use proptest::prelude::*;

fn check_invariants(buf: &[u8]) {
    if let Ok(packet) = wire::parse(buf) {
        let range = buf.as_ptr_range();
        let inside = |s: &[u8]| s.is_empty() || (range.contains(&s.as_ptr()) && s.len() <= buf.len());
        match packet.transport {
            wire::Transport::Tcp(s) => assert!(inside(s.payload) && s.payload.len() <= s.payload_len),
            wire::Transport::Udp(d) => assert!(inside(d.payload) && d.payload.len() <= d.payload_len),
            _ => {}
        }
    }
}

prop_compose! {
    /// An IPv4 or IPv6 header with random, often inconsistent, length fields, and a random tail.
    fn structured_packet()(
        v6 in any::<bool>(),
        ihl in 0u8..16,
        total in any::<u16>(),
        frag in any::<u16>(),
        proto in prop_oneof![Just(6u8), Just(17u8), Just(0u8), Just(44u8), Just(60u8), any::<u8>()],
        tail in proptest::collection::vec(any::<u8>(), 0..120),
    ) -> Vec<u8> {
        // A well-formed header from the emitter, then its length and fragment fields made to lie.
        let ip = if v6 {
            IpRepr::V6(Ipv6Repr::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap()))
        } else {
            IpRepr::V4(Ipv4Repr::new([192, 0, 2, 1].into(), [198, 51, 100, 2].into()))
        };
        let mut p = wire::emit(&ip, &TransportRepr::Raw { protocol: proto }, &tail);
        if v6 {
            p[4..6].copy_from_slice(&total.to_be_bytes());
        } else {
            p[0] = 0x40 | ihl;
            p[2..4].copy_from_slice(&total.to_be_bytes());
            p[6..8].copy_from_slice(&frag.to_be_bytes());
        }
        p
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        check_invariants(&buf);
        let _ = udp::ping(&buf);
        let _ = udp::pong(&buf);
        let _ = udp::nat_pong(&buf);
        let _ = udp::pong_ack(&buf);
        let _ = udp::address_echo(&buf, "198.51.100.1".parse().unwrap());
        let _ = udp::session_datagram(&buf);
        let _ = tcp::constant_opener(&buf);
        let _ = push::give(&buf);
        let _ = http::scan(&buf);
    }

    #[test]
    fn structured_headers_never_panic(buf in structured_packet()) {
        check_invariants(&buf);
    }

    #[test]
    fn packet_sequences_through_the_engine_never_panic(
        packets in proptest::collection::vec((structured_packet(), 0u64..5_000_000), 1..40)
    ) {
        let mut engine = Engine::new(EngineConfig::default());
        let mut now = 0u64;
        for (packet, step) in &packets {
            now += step;
            let t = Timestamp::from_micros(now);
            engine.drive(t);
            engine.handle_packet(t, packet);
            while engine.poll_event().is_some() {}
            while engine.poll_action().is_some() {}
        }
        let stats = engine.stats();
        prop_assert_eq!(stats.packets, packets.len() as u64);
        prop_assert_eq!(stats.accepted + stats.dropped, stats.packets);
    }
}
