//! The mixed workload shared by `engine.rs` (criterion) and `instructions.rs` (callgrind).

use ftwall::wire::{self, IpRepr, Ipv4Repr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
use std::net::Ipv4Addr;

fn ip(src: Ipv4Addr, dst: Ipv4Addr) -> IpRepr<'static> {
    IpRepr::V4(Ipv4Repr::new(src, dst))
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    wire::emit(&ip(src, dst), &TransportRepr::Udp(UdpRepr { src_port: sport, dst_port: dport }), payload)
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = TcpRepr::new(sport, dport, seq, TcpFlags(flags));
    wire::emit(&ip(src, dst), &TransportRepr::Tcp(tcp), payload)
}

/// About 100k packets: 85 % bulk TCP data of established flows, the rest handshakes, HTTP
/// requests, DNS, and 2 % FastTrack.
pub(crate) fn workload() -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let ping = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
    let data = vec![0x5Au8; 1400];
    for flow in 0..2_000u32 {
        let client = Ipv4Addr::new(192, 168, (flow >> 8) as u8, flow as u8);
        let server = Ipv4Addr::new(203, 0, 113, (flow % 250) as u8 + 1);
        let sport = 40_000 + (flow % 20_000) as u16;
        let mut seq = 1000u32;
        packets.push(tcp(client, sport, server, 80, seq - 1, 0x02, &[]));
        packets.push(tcp(server, 80, client, sport, 9, 0x12, &[]));
        packets.push(tcp(client, sport, server, 80, seq, 0x10, &[]));
        let req = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: bench\r\n\r\n";
        packets.push(tcp(client, sport, server, 80, seq, 0x18, req));
        seq += req.len() as u32;
        let mut sseq = 10u32;
        for _ in 0..42 {
            packets.push(tcp(server, 80, client, sport, sseq, 0x10, &data));
            sseq += data.len() as u32;
        }
        packets.push(tcp(client, sport, server, 80, seq, 0x10, &[]));
        packets.push(udp(client, sport, Ipv4Addr::new(198, 51, 100, 53), 53, b"\x12\x34\x01\x00\x00\x01www"));
        if flow % 2 == 0 {
            packets.push(udp(client, 3531, Ipv4Addr::new(198, 51, 100, (flow % 200) as u8), 1214, &ping));
        }
    }
    packets
}
