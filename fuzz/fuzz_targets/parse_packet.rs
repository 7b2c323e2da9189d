//! Arbitrary bytes through the packet parser, every signature and the link-layer decoder.
#![no_main]

use ftwall::signatures::{http, push, tcp, udp};
use ftwall::wire::{self, link};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = wire::parse(data) {
        let (payload, announced) = match packet.transport {
            wire::Transport::Tcp(s) => (s.payload, s.payload_len),
            wire::Transport::Udp(d) => (d.payload, d.payload_len),
            _ => (&[][..], 0),
        };
        assert!(payload.len() <= announced);
        let _ = udp::address_echo(payload, packet.dst);
    }
    let _ = udp::ping(data);
    let _ = udp::pong(data);
    let _ = udp::nat_pong(data);
    let _ = udp::pong_ack(data);
    let _ = udp::session_datagram(data);
    let _ = tcp::constant_opener(data);
    let _ = push::give(data);
    let _ = http::scan(data);
    if let Some((&link, frame)) = data.split_first() {
        let link_type = [0u32, 1, 9, 101, 104, 108, 113, 228, 229, 276][usize::from(link) % 10];
        if let Ok(l3) = link::l3_payload(link_type, frame) {
            let _ = wire::parse(l3);
        }
    }
});
