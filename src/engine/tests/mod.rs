//! Engine behaviour tests over hand-built packets and a virtual clock: the shared helpers here,
//! the tests one file per topic.

use super::*;
use crate::config::{EngineConfig, MalformedPolicy, Mode};
use crate::signatures::tcp::GIFT_OPENER;
use crate::wire::{self, ExtHeader, ExtHeader::Fragment, IpRepr, Ipv6Repr, TcpFlags, TcpRepr, TransportRepr};
use crate::wire::{TransportRepr::Raw, UdpRepr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const CLIENT: &str = "192.0.2.10";
const CLIENT_PORT: u16 = 3531;
const PEER: &str = "198.51.100.20";
const PEER_PORT: u16 = 2345;
const CLIENT6: &str = "2001:db8:1::11";
const PEER6: &str = "2001:db8:2::21";
const KAZAA_PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
const KAZAA_PONG: [u8; 17] =
    [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

/// A KazaaLite download request: the HTTP tell of the TCP and reassembly tests.
const KAZAA_REQUEST: &str = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
Host: 198.51.100.7:1977\r\n\
UserAgent: KazaaClient Oct 28 2002 16:24:35\r\n\
X-Kazaa-Username: alice\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 192.0.2.40:1977\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
Range: bytes=3155006-4459308\r\n\
Connection: close\r\n\r\n";

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn config() -> EngineConfig {
    EngineConfig {
        lan: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/64".parse().unwrap()],
        ..EngineConfig::default()
    }
}

/// An IP packet from `src` to `dst` (IPv6: behind the chain `ext`), built by `wire::emit`.
fn packet(
    src: IpAddr,
    dst: IpAddr,
    ext: &[ExtHeader],
    transport: TransportRepr<'_>,
    payload: &[u8],
) -> Vec<u8> {
    let ip = match IpRepr::new(src, dst).expect("same address family") {
        IpRepr::V6(v6) => IpRepr::V6(Ipv6Repr { ext, ..v6 }),
        v4 => v4,
    };
    wire::emit(&ip, &transport, payload)
}

fn udp(src: (&str, u16), dst: (&str, u16), payload: &[u8]) -> Vec<u8> {
    udp_behind(&[], src, dst, payload)
}

/// A UDP datagram over IPv6 behind the extension headers `ext`.
fn udp_behind(ext: &[ExtHeader], src: (&str, u16), dst: (&str, u16), payload: &[u8]) -> Vec<u8> {
    let udp = TransportRepr::Udp(UdpRepr { src_port: src.1, dst_port: dst.1 });
    packet(ip(src.0), ip(dst.0), ext, udp, payload)
}

fn tcp(src: (&str, u16), dst: (&str, u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = TransportRepr::Tcp(TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags)));
    packet(ip(src.0), ip(dst.0), &[], tcp, payload)
}

/// A TCP connection driver that keeps sequence numbers straight.
struct Conn {
    client: (&'static str, u16),
    server: (&'static str, u16),
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn new(client: (&'static str, u16), server: (&'static str, u16)) -> Self {
        Self { client, server, cseq: 1000, sseq: 50_000 }
    }
    fn syn(&self) -> Vec<u8> {
        tcp(self.client, self.server, self.cseq - 1, SYN, &[])
    }
    fn syn_ack(&self) -> Vec<u8> {
        tcp(self.server, self.client, self.sseq - 1, SYN | ACK, &[])
    }
    fn ack(&self) -> Vec<u8> {
        tcp(self.client, self.server, self.cseq, ACK, &[])
    }
    fn client_data(&mut self, data: &[u8]) -> Vec<u8> {
        let p = tcp(self.client, self.server, self.cseq, PSH_ACK, data);
        self.cseq += data.len() as u32;
        p
    }
    fn server_data(&mut self, data: &[u8]) -> Vec<u8> {
        let p = tcp(self.server, self.client, self.sseq, PSH_ACK, data);
        self.sseq += data.len() as u32;
        p
    }
    /// Runs the three-way handshake, asserting every packet is accepted as clean.
    fn open(&self, e: &mut Engine, now: Timestamp) {
        for p in [self.syn(), self.syn_ack(), self.ack()] {
            assert_eq!(e.handle_packet(now, &p).reason, Reason::Clean);
        }
    }
}

fn events(e: &mut Engine) -> Vec<Event> {
    std::iter::from_fn(|| e.poll_event()).collect()
}

fn actions(e: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

fn judge(e: &mut Engine, now: Timestamp, p: &[u8]) -> (Verdict, Reason) {
    let d = e.handle_packet(now, p);
    (d.verdict, d.reason)
}

mod decisions;
mod fragments;
mod ipv6;
mod operator;
mod quota;
mod reassembly;
mod remote;
mod state;
mod tcp;
mod timelock;
mod trust;
mod udp;
