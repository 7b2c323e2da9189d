//! Never-panic property tests: arbitrary bytes through the parser, every signature and the
//! engine, plus structured-but-inconsistent IPv4/IPv6 headers.

use ftwall::signatures::{http, push, tcp, udp};
use ftwall::{wire, Engine, EngineConfig, Timestamp};
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
        let mut p = if v6 {
            let [l0, l1] = total.to_be_bytes();
            let mut h = vec![0x60, 0, 0, 0, l0, l1, proto, 64];
            h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            h
        } else {
            let [t0, t1] = total.to_be_bytes();
            let [f0, f1] = frag.to_be_bytes();
            vec![0x40 | ihl, 0, t0, t1, 0, 0, f0, f1, 64, proto, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2]
        };
        p.extend_from_slice(&tail);
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
