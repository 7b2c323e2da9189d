//! Writes the synthetic FastTrack captures used by the golden replay test, built byte by byte
//! from the wire formats (fasttrack-wire.md), together with the verdict each frame must get.
//!
//! ```sh
//! cargo run --example gen_fixtures -- tests/fixtures
//! ```
//!
//! Every `<name>.pcap[ng]` gets a `<name>.expected.jsonl` with one `{"frame","verdict","reason"}`
//! line per frame. The expectations are the generator's own knowledge of the scenario, never
//! the engine's output. Inside hosts are in 192.0.2.0/24 and 2001:db8:1::/64; outside peers in
//! 198.51.100.0/24, 203.0.113.0/24 and 2001:db8:2::/64. Replay with
//! `--lan 192.0.2.0/24 --lan 2001:db8:1::/64`. Output is deterministic (seeded PRNG, fixed clock).

#![allow(dead_code)]

use ftwall::signatures::{tcp::GIFT_OPENER, udp, Network};
use ftwall::wire::{self, ExtHeader, IpRepr, Ipv4Repr, Ipv6Repr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// splitmix64: tiny, deterministic, good enough for ports and ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn port(&mut self) -> u16 {
        1025 + (self.next() % 64_000) as u16
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// How frames are wrapped in the capture file.
#[derive(Clone, Copy)]
enum Link {
    Ethernet,
    EthernetVlan,
    RawIp,
    LinuxSll,
    PcapNgEthernet,
}

type Addr = (&'static str, u16);

fn addr(a: Addr) -> IpAddr {
    a.0.parse().expect("valid address")
}

/// An IP packet from `src` to `dst` (IPv4: identification 0x1234, DF, TTL 64; IPv6: the chain
/// `ext`), every length and checksum filled in by `wire::emit`.
fn packet(src: Addr, dst: Addr, ext: &[ExtHeader], transport: TransportRepr<'_>, payload: &[u8]) -> Vec<u8> {
    let ip = match IpRepr::new(addr(src), addr(dst)).expect("same address family") {
        IpRepr::V4(v4) => IpRepr::V4(Ipv4Repr { ident: 0x1234, ..v4 }),
        IpRepr::V6(v6) => IpRepr::V6(Ipv6Repr { ext, ..v6 }),
    };
    wire::emit(&ip, &transport, payload)
}

fn udp_l4(src: Addr, dst: Addr) -> TransportRepr<'static> {
    TransportRepr::Udp(UdpRepr { src_port: src.1, dst_port: dst.1 })
}

fn udp_packet(src: Addr, dst: Addr, payload: &[u8]) -> Vec<u8> {
    packet(src, dst, &[], udp_l4(src, dst), payload)
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

fn tcp_packet(src: Addr, dst: Addr, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let tcp = TcpRepr { ack, window: 0xFAF0, ..TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags)) };
    packet(src, dst, &[], TransportRepr::Tcp(tcp), payload)
}

/// One capture being built: frames (L3) with their expected verdicts.
struct Capture {
    name: &'static str,
    link: Link,
    clock: u64,
    frames: Vec<(u64, Vec<u8>)>,
    expected: Vec<(&'static str, &'static str)>,
}

impl Capture {
    fn new(name: &'static str, link: Link) -> Self {
        Self { name, link, clock: 1_700_000_000_000_000, frames: Vec::new(), expected: Vec::new() }
    }

    /// Advances the capture clock.
    fn wait(&mut self, micros: u64) {
        self.clock += micros;
    }

    fn push(&mut self, packet: Vec<u8>, reason: &'static str) {
        self.clock += 250;
        let verdict =
            if matches!(reason, "clean" | "not_ip" | "other_protocol" | "later_fragment" | "malformed") {
                "accept"
            } else {
                "drop"
            };
        self.frames.push((self.clock, packet));
        self.expected.push((verdict, reason));
    }

    fn udp(&mut self, src: Addr, dst: Addr, payload: &[u8], reason: &'static str) {
        self.push(udp_packet(src, dst, payload), reason);
    }

    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let ext = if matches!(self.link, Link::PcapNgEthernet) { "pcapng" } else { "pcap" };
        let path = dir.join(format!("{}.{ext}", self.name));
        let file = File::create(&path)?;
        match self.link {
            Link::PcapNgEthernet => {
                let mut w = PcapNgWriter::new(file).map_err(std::io::Error::other)?;
                let idb = InterfaceDescriptionBlock {
                    linktype: DataLink::ETHERNET,
                    snaplen: 65535,
                    options: vec![InterfaceDescriptionOption::IfTsResol(9)],
                };
                w.write_pcapng_block(idb).map_err(std::io::Error::other)?;
                for (ts, l3) in &self.frames {
                    let frame = frame(Link::Ethernet, l3);
                    let epb = EnhancedPacketBlock {
                        interface_id: 0,
                        timestamp: Duration::from_micros(*ts),
                        original_len: frame.len() as u32,
                        data: Cow::Borrowed(&frame),
                        options: vec![],
                    };
                    w.write_pcapng_block(epb).map_err(std::io::Error::other)?;
                }
            }
            link => {
                let datalink = match link {
                    Link::RawIp => DataLink::RAW,
                    Link::LinuxSll => DataLink::LINUX_SLL,
                    _ => DataLink::ETHERNET,
                };
                let header = PcapHeader { datalink, ..PcapHeader::default() };
                let mut w = PcapWriter::with_header(file, header).map_err(std::io::Error::other)?;
                for (ts, l3) in &self.frames {
                    let frame = frame(link, l3);
                    let packet = PcapPacket::new(Duration::from_micros(*ts), frame.len() as u32, &frame);
                    w.write_packet(&packet).map_err(std::io::Error::other)?;
                }
            }
        }
        let mut expected = File::create(dir.join(format!("{}.expected.jsonl", self.name)))?;
        for (i, (verdict, reason)) in self.expected.iter().enumerate() {
            writeln!(expected, "{{\"frame\":{},\"verdict\":\"{verdict}\",\"reason\":\"{reason}\"}}", i + 1)?;
        }
        Ok(())
    }
}

fn ethertype(l3: &[u8]) -> u16 {
    if l3[0] >> 4 == 6 {
        0x86DD
    } else {
        0x0800
    }
}

/// Wraps an L3 packet for the link type, padding short Ethernet frames to 60 bytes.
fn frame(link: Link, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(l3.len() + 20);
    match link {
        Link::RawIp => return l3.to_vec(),
        Link::LinuxSll => {
            f.extend_from_slice(&[0, 4, 0, 1, 0, 6, 0x02, 0, 0, 0, 0, 0x0A, 0, 0]);
            f.extend_from_slice(&ethertype(l3).to_be_bytes());
        }
        Link::Ethernet | Link::PcapNgEthernet | Link::EthernetVlan => {
            f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02]);
            if matches!(link, Link::EthernetVlan) {
                f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            }
            f.extend_from_slice(&ethertype(l3).to_be_bytes());
        }
    }
    f.extend_from_slice(l3);
    if !matches!(link, Link::LinuxSll) && f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// A TCP connection that keeps sequence numbers straight.
struct Conn {
    client: Addr,
    server: Addr,
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn new(rng: &mut Rng, client: Addr, server: Addr) -> Self {
        Self { client, server, cseq: rng.next() as u32, sseq: rng.next() as u32 }
    }

    fn syn(&self, cap: &mut Capture, reason: &'static str) {
        cap.push(tcp_packet(self.client, self.server, self.cseq, 0, SYN, &[]), reason);
    }

    /// SYN, SYN-ACK, ACK with the given reasons.
    fn handshake(&mut self, cap: &mut Capture, reasons: [&'static str; 3]) {
        self.syn(cap, reasons[0]);
        self.cseq = self.cseq.wrapping_add(1);
        cap.push(tcp_packet(self.server, self.client, self.sseq, self.cseq, SYN | ACK, &[]), reasons[1]);
        self.sseq = self.sseq.wrapping_add(1);
        cap.push(tcp_packet(self.client, self.server, self.cseq, self.sseq, ACK, &[]), reasons[2]);
    }

    fn client(&mut self, cap: &mut Capture, data: &[u8], reason: &'static str) {
        cap.push(tcp_packet(self.client, self.server, self.cseq, self.sseq, PSH | ACK, data), reason);
        self.cseq = self.cseq.wrapping_add(data.len() as u32);
    }

    fn server(&mut self, cap: &mut Capture, data: &[u8], reason: &'static str) {
        cap.push(tcp_packet(self.server, self.client, self.sseq, self.cseq, PSH | ACK, data), reason);
        self.sseq = self.sseq.wrapping_add(data.len() as u32);
    }

    /// FIN from each side and the last ACK.
    fn close(&mut self, cap: &mut Capture, reason: &'static str) {
        cap.push(tcp_packet(self.client, self.server, self.cseq, self.sseq, FIN | ACK, &[]), reason);
        self.cseq = self.cseq.wrapping_add(1);
        cap.push(tcp_packet(self.server, self.client, self.sseq, self.cseq, FIN | ACK, &[]), reason);
        self.sseq = self.sseq.wrapping_add(1);
        cap.push(tcp_packet(self.client, self.server, self.cseq, self.sseq, ACK, &[]), reason);
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// An outside address: 198.51.100.x for even i, 203.0.113.x for odd i (x in 1..=250).
fn peer_ip(i: usize) -> &'static str {
    let net = if i % 2 == 0 { "198.51.100" } else { "203.0.113" };
    leak(format!("{net}.{}", 1 + (i / 2) % 250))
}

const KAZAA_REQUEST: &str = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
Host: 198.51.100.7:1977\r\n\
UserAgent: KazaaClient Oct 28 2002 16:24:35\r\n\
X-Kazaa-Username: alice\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 192.0.2.40:1214\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
Range: bytes=3155006-4459308\r\n\
Connection: close\r\n\
X-Kazaa-XferId: 14982743\r\n\
X-Kazaa-XferUid: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n\r\n";

const KAZAA_RESPONSE: &str = "HTTP/1.1 206 Partial Content\r\n\
Content-Range: bytes 3155006-4459308/4459309\r\n\
Content-Length: 1304303\r\n\
Content-Type: audio/mpeg\r\n\
Server: KazaaClient Nov  3 2002 20:29:03\r\n\
X-Kazaa-Username: bob\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 198.51.100.7:1977\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
X-KazaaTag: 3==ASNFZ4mrze8BI0VniavN7wEjRWc=\r\n\r\n";

/// A client starting up: 200 pings, pongs of both kinds, 0x2A echoes, C0-C3, then TCP.
fn startup(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("startup", Link::Ethernet);
    let client: Addr = ("192.0.2.10", 3531);
    let ping = udp::build_ping(Network::Kazaa, 0x29);
    let peers: Vec<Addr> = (0..200).map(|i| (peer_ip(i), rng.port())).collect();
    for &peer in &peers {
        cap.udp(client, peer, &ping, "udp_ping");
    }
    cap.wait(50_000);
    for &peer in peers.iter().step_by(10) {
        let mut pong = udp::build_pong(Network::Kazaa);
        pong[6..11].copy_from_slice(&rng.bytes(5));
        cap.udp(peer, client, &pong, "udp_pong");
    }
    // 0x29 pongs (flag 0 and flag 1) and the client's 0x2A echoes.
    for (k, &peer) in peers.iter().skip(1).step_by(40).take(3).enumerate() {
        let id = rng.bytes(4);
        let mut nat = vec![0x29, 0, 0, 0, 0xA9];
        if k % 2 == 0 {
            nat.extend_from_slice(&[0x01, 0x00, 0, 0]);
            nat.extend_from_slice(&id);
        } else {
            nat.extend_from_slice(&[0x02, 0x01, 0, 0]);
            nat.extend_from_slice(&id);
            nat.extend_from_slice(&[192, 0, 2, 10, 0x0D, 0xCB, 0, 0]);
        }
        cap.udp(peer, client, &nat, "udp_pong");
        let mut echo = vec![0x2A];
        echo.extend_from_slice(&id);
        cap.udp(client, peer, &echo, "udp_pong_ack");
    }
    // C1 / C2 embedding the destination, and C0 28 / C3 28 on already-classified flows.
    let ip_octets = |a: Addr| match addr(a) {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(_) => unreachable!(),
    };
    let c1_peer = peers[5];
    let mut c1 = vec![0xC1, 0x88, 0x9D];
    c1.extend_from_slice(&ip_octets(c1_peer));
    cap.udp(client, c1_peer, &c1, "udp_address_echo");
    let c2_peer = peers[7];
    let mut c2 = vec![0xC2, 0x00, 0x0D];
    c2.extend_from_slice(&ip_octets(c2_peer));
    c2.extend_from_slice(&[0x8B, 0x79, 0x6D, 0x50]);
    cap.udp(client, c2_peer, &c2, "udp_address_echo");
    let mut c0 = vec![0xC0, 0x28];
    c0.extend_from_slice(&rng.bytes(411));
    cap.udp(client, peers[10], &c0, "fasttrack_flow");
    let mut c3 = vec![0xC3, 0x28, 0x8B, 0x79, 0x6D, 0x50, 0x00, 0x0D, 192, 0, 2, 10];
    c3.extend_from_slice(&rng.bytes(405));
    cap.udp(peers[10], client, &c3, "fasttrack_flow");
    // TCP to a ponged peer's port, to a brand-new address, and to an allowed port.
    Conn::new(rng, ("192.0.2.10", 40001), peers[0]).syn(&mut cap, "suspect_peer");
    {
        let port = rng.port();
        Conn::new(rng, ("192.0.2.10", 40002), ("203.0.113.251", port))
    }
    .syn(&mut cap, "client_locked");
    let mut web = Conn::new(rng, ("192.0.2.10", 40003), ("203.0.113.252", 443));
    web.handshake(&mut cap, ["clean"; 3]);
    // Ordinary bytes to a pinged peer: still the suspect peer.
    cap.udp(("192.0.2.10", 40004), (peers[20].0, 53), b"\x12\x34\x01\x00\x00\x01\x00\x00", "suspect_peer");
    cap
}

/// giFT / MLDonkey: the constant opener.
fn supernode_constant(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("supernode_constant", Link::EthernetVlan);
    let mut conn = {
        let port = rng.port();
        Conn::new(rng, ("192.0.2.20", 41000), ("203.0.113.20", port))
    };
    conn.handshake(&mut cap, ["clean"; 3]);
    conn.client(&mut cap, &GIFT_OPENER, "tcp_opener");
    let mut reply = vec![0x7D, 0x95, 0x50, 0xBA, 0x52, 0x11, 0xA0, 0xC5];
    reply.extend_from_slice(&[0xA2, 0xD0, 0x44, 0x72, 0x14, 0x2E]);
    conn.server(&mut cap, &reply, "fasttrack_flow");
    conn.client(&mut cap, &[0xC4, 0x04, 0xDF, 0x84, 0x98, 0x83], "fasttrack_flow");
    conn.server(&mut cap, &rng.bytes(1448), "fasttrack_flow");
    conn.client(&mut cap, &rng.bytes(19), "fasttrack_flow");
    conn.close(&mut cap, "fasttrack_flow");
    {
        let port = rng.port();
        Conn::new(rng, ("192.0.2.20", 41001), ("203.0.113.21", port))
    }
    .syn(&mut cap, "client_locked");
    let mut web = Conn::new(rng, ("192.0.2.20", 41002), ("203.0.113.22", 80));
    web.handshake(&mut cap, ["clean"; 3]);
    web.client(&mut cap, b"GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "clean");
    cap
}

fn real_kazaa_opener(rng: &mut Rng) -> Vec<u8> {
    // Real Kazaa: rand, seed, encoded enc type; random-looking.
    rng.bytes(12)
}

/// Real Kazaa's random opener on port 1214: the shape, corroborated by the port.
fn supernode_shape_1214(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("supernode_shape_1214", Link::RawIp);
    let mut conn = Conn::new(rng, ("192.0.2.30", 42000), ("198.51.100.30", 1214));
    conn.handshake(&mut cap, ["clean"; 3]);
    conn.client(&mut cap, &real_kazaa_opener(rng), "clean");
    conn.server(&mut cap, &rng.bytes(14), "clean");
    conn.client(&mut cap, &rng.bytes(6), "tcp_handshake");
    conn.server(&mut cap, &rng.bytes(1448), "fasttrack_flow");
    conn.client(&mut cap, &rng.bytes(19), "fasttrack_flow");
    conn.close(&mut cap, "fasttrack_flow");
    cap
}

/// The same shape on a random port: only a hint, until the client is locked.
fn supernode_shape_random(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("supernode_shape_random", Link::LinuxSll);
    let client = "192.0.2.31";
    let port = rng.port();
    let mut conn = Conn::new(rng, (client, 43000), ("198.51.100.31", port));
    conn.handshake(&mut cap, ["clean"; 3]);
    conn.client(&mut cap, &real_kazaa_opener(rng), "clean");
    conn.server(&mut cap, &rng.bytes(14), "clean");
    conn.client(&mut cap, &rng.bytes(6), "clean");
    conn.server(&mut cap, &rng.bytes(1448), "clean");
    conn.close(&mut cap, "clean");
    // A ping locks the client; its next shaped session on an allowed port is dropped.
    cap.udp((client, 2020), ("203.0.113.31", rng.port()), &udp::build_ping(Network::Kazaa, 0xA9), "udp_ping");
    let mut conn = Conn::new(rng, (client, 43001), ("198.51.100.32", 443));
    conn.handshake(&mut cap, ["clean"; 3]);
    conn.client(&mut cap, &real_kazaa_opener(rng), "clean");
    conn.server(&mut cap, &rng.bytes(8), "clean");
    conn.server(&mut cap, &rng.bytes(6), "clean");
    conn.client(&mut cap, &rng.bytes(6), "tcp_handshake");
    conn.server(&mut cap, &rng.bytes(1448), "fasttrack_flow");
    cap
}

/// A download with the request split inside the request line.
fn http_split(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("http_split", Link::PcapNgEthernet);
    let mut conn = Conn::new(rng, ("192.0.2.40", 44000), ("198.51.100.7", 1977));
    conn.handshake(&mut cap, ["clean"; 3]);
    let (a, b) = KAZAA_REQUEST.as_bytes().split_at(20);
    conn.client(&mut cap, a, "clean");
    conn.client(&mut cap, b, "http_transfer");
    conn.server(&mut cap, KAZAA_RESPONSE.as_bytes(), "http_transfer");
    conn.server(&mut cap, &rng.bytes(1448), "fasttrack_flow");
    conn.client(&mut cap, &[], "fasttrack_flow");
    // Another inside host reaching the supernode named in X-Kazaa-SupernodeIP.
    Conn::new(rng, ("192.0.2.41", 44001), ("203.0.113.50", 3608)).syn(&mut cap, "suspect_peer");
    cap
}

/// A firewalled uploader's push, then the reversed HTTP request.
fn give(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("give", Link::Ethernet);
    let mut conn = {
        let port = rng.port();
        Conn::new(rng, ("192.0.2.50", 45000), ("198.51.100.60", port))
    };
    conn.handshake(&mut cap, ["clean"; 3]);
    conn.client(&mut cap, b"GIVE 4253679545\r\n", "give_push");
    let request =
        "GET /.hash=89abcdef0123456789abcdef0123456789abcdef HTTP/1.1\r\nX-Kazaa-Username: carol\r\n\r\n";
    conn.server(&mut cap, request.as_bytes(), "http_transfer");
    conn.client(&mut cap, &rng.bytes(1448), "fasttrack_flow");
    cap
}

/// Ordinary traffic that a sloppy detector would drop. Everything must pass.
fn decoys(rng: &mut Rng) -> Capture {
    let mut cap = Capture::new("decoys", Link::PcapNgEthernet);
    let host: Addr = ("192.0.2.60", 46000);
    let mut skype27 = vec![0x27, 0x4C, 0x02, 0xF6];
    skype27.extend_from_slice(&rng.bytes(14));
    cap.udp(host, ("203.0.113.60", 33333), &skype27, "clean");
    let mut skype_c0 = vec![0xC0, 0x9A, 0x02, 0x51];
    skype_c0.extend_from_slice(&rng.bytes(14));
    cap.udp(host, ("203.0.113.60", 33333), &skype_c0, "clean");
    let mut gtp = vec![0x27, 0, 0, 0, 0x02, 0x59, 0, 0, 0xC8, 0];
    gtp.extend_from_slice(&rng.bytes(29));
    cap.udp(("192.0.2.61", 2152), ("203.0.113.61", 2152), &gtp, "clean");
    let mut unknown_name = vec![0x27, 0, 0, 0, 0x29, 0x80];
    unknown_name.extend_from_slice(b"eDonkey\0");
    cap.udp(("192.0.2.62", 5000), ("203.0.113.62", 5000), &unknown_name, "clean");
    cap.udp(("192.0.2.63", 5001), ("203.0.113.63", 5001), &[0x2A, 1, 2, 3, 4], "clean");
    cap.udp(("192.0.2.64", 5002), ("203.0.113.64", 5002), &[0xC1, 0x88, 0x9D, 198, 51, 100, 99], "clean");
    // Ordinary HTTP.
    let mut web = Conn::new(rng, ("192.0.2.65", 46001), ("203.0.113.65", 80));
    web.handshake(&mut cap, ["clean"; 3]);
    web.client(
        &mut cap,
        b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n",
        "clean",
    );
    web.server(
        &mut cap,
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 60\r\n\r\n<p>X-Kazaa-Username: a page about Kazaa headers</p>\r\n</html>",
        "clean",
    );
    web.close(&mut cap, "clean");
    // A MUD-like line protocol.
    let mut mud = Conn::new(rng, ("192.0.2.66", 46002), ("203.0.113.66", 4000));
    mud.handshake(&mut cap, ["clean"; 3]);
    mud.client(&mut cap, b"GIVE me\r\n", "clean");
    mud.server(&mut cap, b"You give nothing.\r\n", "clean");
    // DNS for kazaa.com.
    let query =
        b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x05kazaa\x03com\x00\x00\x01\x00\x01";
    cap.udp(("192.0.2.67", 53000), ("198.51.100.53", 53), query, "clean");
    let mut answer = query.to_vec();
    answer[2] = 0x81;
    answer[3] = 0x80;
    answer[7] = 1;
    answer.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xcb\x00\x71\x07");
    cap.udp(("198.51.100.53", 53), ("192.0.2.67", 53000), &answer, "clean");
    // Ephemeral source port 1214 to a web server.
    let mut eph = Conn::new(rng, ("192.0.2.68", 1214), ("203.0.113.68", 80));
    eph.handshake(&mut cap, ["clean"; 3]);
    eph.client(&mut cap, b"GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n", "clean");
    eph.server(&mut cap, b"HTTP/1.1 304 Not Modified\r\n\r\n", "clean");
    // Gnutella on 1214.
    let mut gnutella = Conn::new(rng, ("192.0.2.69", 46003), ("203.0.113.69", 1214));
    gnutella.handshake(&mut cap, ["clean"; 3]);
    gnutella.client(&mut cap, b"GNUTELLA CONNECT/0.6\r\nUser-Agent: LimeWire/4.18\r\n\r\n", "clean");
    gnutella.server(&mut cap, b"GNUTELLA/0.6 200 OK\r\n\r\n", "clean");
    // A random 12-byte first payload on 1214 answered with 40 bytes: not the handshake shape.
    let mut odd = Conn::new(rng, ("192.0.2.70", 46004), ("203.0.113.70", 1214));
    odd.handshake(&mut cap, ["clean"; 3]);
    odd.client(&mut cap, &rng.bytes(12), "clean");
    odd.server(&mut cap, &rng.bytes(40), "clean");
    odd.client(&mut cap, &rng.bytes(6), "clean");
    // IPv6 ordinary traffic.
    cap.udp(("2001:db8:1::10", 47000), ("2001:db8:2::20", 53), query, "clean");
    let mut v6 = Conn::new(rng, ("2001:db8:1::10", 47001), ("2001:db8:2::20", 443));
    v6.handshake(&mut cap, ["clean"; 3]);
    v6.client(&mut cap, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0], "clean");
    cap
}

/// IPv6 pings behind long extension-header chains (review F9): every one is seen, whatever the
/// number of headers; a chain cut by the copy range is dropped; ESP and later fragments pass.
fn ipv6_ext() -> Capture {
    let mut cap = Capture::new("ipv6_ext", Link::Ethernet);
    let client = ("2001:db8:1::11", 3531);
    let ping = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
    let dest_opts = ExtHeader::destination_options;
    for (i, n) in [0usize, 8, 9, 12, 24].into_iter().enumerate() {
        let peer = (leak(format!("2001:db8:2::{}", 0x21 + i)), 1214);
        cap.push(packet(client, peer, &dest_opts(n), udp_l4(client, peer), &ping), "udp_ping");
    }
    // 300 headers (2,400 bytes) seen through the default copy range of 2,304 bytes.
    let peer = ("2001:db8:2::30", 1214);
    let mut cut = packet(client, peer, &dest_opts(300), udp_l4(client, peer), &ping);
    cut.truncate(2304);
    cap.push(cut, "transport_unreachable");
    // A chain that overruns the packet's own length: malformed (accepted by default).
    let mut overrun = packet(client, peer, &dest_opts(4), udp_l4(client, peer), &ping);
    overrun[4..6].copy_from_slice(&20u16.to_be_bytes());
    overrun.truncate(60);
    cap.push(overrun, "malformed");
    // ESP and No Next Header behind destination options: nothing to judge (the bytes behind
    // the chain are a UDP datagram's).
    let other = ("2001:db8:1::12", 40000);
    for (port, payload, n, next) in [(4500, &[0xAA; 24][..], 2, 50), (4501, &[0; 8][..], 1, 59)] {
        let dst = ("2001:db8:2::31", port);
        let datagram = &udp_packet(other, dst, payload)[40..];
        cap.push(
            packet(other, dst, &dest_opts(n), TransportRepr::Raw { protocol: next }, datagram),
            "other_protocol",
        );
    }
    // Fragments: the first carries the ping, a later one carries no transport header.
    let (src, dst) = (("2001:db8:1::13", 3531), ("2001:db8:2::32", 1214));
    let first = ExtHeader::Fragment { offset: 0, more: true, ident: 7 };
    cap.push(packet(src, dst, &[first], udp_l4(src, dst), &ping), "udp_ping");
    let later = ExtHeader::Fragment { offset: 2, more: false, ident: 7 };
    cap.push(packet(src, dst, &[later], udp_l4(src, dst), &ping), "later_fragment");
    cap
}

/// Writes every fixture into `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x0F7A_11F7);
    let captures = [
        startup(&mut rng),
        supernode_constant(&mut rng),
        supernode_shape_1214(&mut rng),
        supernode_shape_random(&mut rng),
        http_split(&mut rng),
        give(&mut rng),
        decoys(&mut rng),
        ipv6_ext(),
    ];
    for cap in &captures {
        cap.write(dir)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "tests/fixtures".to_string());
    write_all(Path::new(&dir))?;
    println!("fixtures written to {dir}");
    Ok(())
}
