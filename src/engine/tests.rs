//! Engine behaviour tests over hand-built packets and a virtual clock.

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
const KAZAA_PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
const KAZAA_PONG: [u8; 17] =
    [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;

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

#[test]
fn timelock_locks_rearms_probes_and_expires() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    events(&mut e);
    actions(&mut e);
    assert_eq!(e.poll_timeout(), Some(at(60)), "half-expiry probe scheduled");

    // Locked: new TCP to a random port is dropped, to an allowed port accepted.
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &syn), (Verdict::Drop, Reason::ClientLocked));
    let syn80 = tcp((CLIENT, 41001), ("203.0.113.77", 80), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &syn80), (Verdict::Accept, Reason::Clean));
    // Non-SYN packets of existing flows are not affected by the lock.
    let data = tcp((CLIENT, 41001), ("203.0.113.77", 80), 2, PSH_ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(judge(&mut e, at(30), &data), (Verdict::Accept, Reason::Clean));
    // Another client is not locked.
    let other = tcp(("192.0.2.11", 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &other), (Verdict::Accept, Reason::Clean));

    // Half-expiry: a ping forged from the pinged peer to the client's FastTrack port.
    e.handle_timeout(at(59));
    assert!(actions(&mut e).is_empty(), "nothing due before 60 s");
    e.handle_timeout(at(60));
    let acts = actions(&mut e);
    let probe = acts.iter().find_map(|a| match a {
        Action::SendProbe { from, to, payload } => Some((*from, *to, payload.clone())),
        _ => None,
    });
    let (from, to, payload) = probe.expect("probe");
    assert_eq!((from, to), (SocketAddr::new(ip(PEER), PEER_PORT), SocketAddr::new(ip(CLIENT), CLIENT_PORT)));
    assert_eq!(signatures::udp::ping(&payload), Some(Network::Kazaa));

    // The client answers the probe with a pong to that peer, through the gateway: a tell that
    // re-arms the lock from 70 s, dropped.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(70), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.stats().probe_answers, 1);
    assert_eq!(e.locked_clients().next().unwrap().until, at(190));
    assert_eq!(e.poll_timeout(), Some(at(130)));
    assert_eq!(judge(&mut e, at(70), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.stats().probe_answers, 1, "one answer per probe");

    // No more tells: probe at 130 unanswered, release at 190.
    e.handle_timeout(at(130));
    assert!(actions(&mut e).iter().any(|a| matches!(a, Action::SendProbe { .. })));
    e.handle_timeout(at(189));
    assert!(events(&mut e).is_empty());
    assert_eq!(judge(&mut e, at(189), &syn), (Verdict::Drop, Reason::ClientLocked));
    e.handle_timeout(at(190));
    assert_eq!(events(&mut e), vec![Event::ClientReleased { client: ip(CLIENT) }]);
    assert!(actions(&mut e).contains(&Action::StateChanged(StateChange::LockRemoved(ip(CLIENT)))));
    assert_eq!(e.poll_timeout(), None);
    let syn_later = tcp((CLIENT, 41002), ("203.0.113.78", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(191), &syn_later), (Verdict::Accept, Reason::Clean));
}

#[test]
fn every_tell_rearms_the_lock() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(100), &udp((CLIENT, CLIENT_PORT), ("203.0.113.3", 999), &KAZAA_PING));
    e.handle_timeout(at(150));
    assert_eq!(e.locked_count(), 1, "re-armed at 100, so still locked at 150");
    let mut conn = Conn::new((CLIENT, 42000), ("203.0.113.4", 443));
    conn.open(&mut e, at(200));
    let opener = conn.client_data(&GIFT_OPENER);
    assert_eq!(judge(&mut e, at(200), &opener), (Verdict::Drop, Reason::TcpOpener));
    assert_eq!(e.locked_clients().next().unwrap().until, at(320));
}

#[test]
fn timelock_disabled() {
    let mut c = config();
    c.timelock.seconds = 0;
    let mut e = Engine::new(c);
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(e.locked_count(), 0);
    assert_eq!(e.poll_timeout(), None);
    let ev = events(&mut e);
    assert!(ev.contains(&Event::ClientIdentified {
        client: ip(CLIENT),
        peer: SocketAddr::new(ip(PEER), PEER_PORT),
        reason: Reason::UdpPing,
        locked_until: None
    }));
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    // The peer is still blocked.
    let syn = tcp((CLIENT, 41000), (PEER, 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::SuspectPeer));
}

#[test]
fn constant_opener_classifies_the_whole_flow() {
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 42000), ("203.0.113.4", 3000));
    conn.open(&mut e, at(0));
    let opener = conn.client_data(&GIFT_OPENER);
    assert_eq!(judge(&mut e, at(0), &opener), (Verdict::Drop, Reason::TcpOpener));
    let reply = conn
        .server_data(&[0x7D, 0x95, 0x50, 0xBA, 0x52, 0x11, 0xA0, 0xC5, 0xA2, 0xD0, 0x44, 0x72, 0x14, 0x2E]);
    assert_eq!(judge(&mut e, at(0), &reply), (Verdict::Drop, Reason::FasttrackFlow));
    let name = conn.client_data(&[0xC4, 0x04, 0xDF, 0x84, 0x98, 0x83]);
    assert_eq!(judge(&mut e, at(0), &name), (Verdict::Drop, Reason::FasttrackFlow));
    // A retransmitted opener is still dropped (flow classified).
    let again = tcp((CLIENT, 42000), ("203.0.113.4", 3000), 1000, PSH_ACK, &GIFT_OPENER);
    assert_eq!(judge(&mut e, at(1), &again).0, Verdict::Drop);
}

fn shape_session(e: &mut Engine, now: Timestamp, conn: &mut Conn, split_reply: bool) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let opener = conn.client_data(&[0x35, 0x3B, 0xD2, 0xBE, 1, 2, 3, 4, 5, 6, 7, 8]);
    reasons.push(e.handle_packet(now, &opener).reason);
    let reply: [u8; 14] =
        [0x7D, 0x95, 0x50, 0xBA, 0x52, 0x11, 0xA0, 0xC5, 0xA2, 0xD0, 0x44, 0x72, 0x14, 0x2E];
    if split_reply {
        let p = conn.server_data(&reply[..8]);
        reasons.push(e.handle_packet(now, &p).reason);
        let p = conn.server_data(&reply[8..]);
        reasons.push(e.handle_packet(now, &p).reason);
    } else {
        let p = conn.server_data(&reply);
        reasons.push(e.handle_packet(now, &p).reason);
    }
    let name = conn.client_data(&[0xC4, 0x04, 0xDF, 0x84, 0x98, 0x83]);
    reasons.push(e.handle_packet(now, &name).reason);
    let more = conn.server_data(&[0x42; 300]);
    reasons.push(e.handle_packet(now, &more).reason);
    reasons
}

#[test]
fn handshake_shape_needs_corroboration() {
    use Reason::*;
    // Port 1214 corroborates.
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 42000), ("203.0.113.4", 1214));
    conn.open(&mut e, at(0));
    assert_eq!(
        shape_session(&mut e, at(0), &mut conn, false),
        vec![Clean, Clean, TcpHandshake, FasttrackFlow]
    );
    assert_eq!(e.locked_count(), 1);

    // A random port with nothing else: only a hint, accepted.
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 42001), ("203.0.113.4", 3456));
    conn.open(&mut e, at(0));
    assert_eq!(shape_session(&mut e, at(0), &mut conn, false), vec![Clean, Clean, Clean, Clean]);
    assert_eq!(e.locked_count(), 0);

    // A locked client on an allowed port: corroborated (reply split 8 + 6).
    e.handle_packet(at(1), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let mut conn = Conn::new((CLIENT, 42002), ("203.0.113.5", 443));
    conn.open(&mut e, at(2));
    assert_eq!(
        shape_session(&mut e, at(2), &mut conn, true),
        vec![Clean, Clean, Clean, TcpHandshake, FasttrackFlow]
    );
}

const KAZAA_REQUEST: &str = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
Host: 198.51.100.7:1977\r\n\
UserAgent: KazaaClient Oct 28 2002 16:24:35\r\n\
X-Kazaa-Username: alice\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 192.0.2.40:1977\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
Range: bytes=3155006-4459308\r\n\
Connection: close\r\n\r\n";

#[test]
fn http_request_split_across_segments_is_seen_and_teaches_peers() {
    let mut e = Engine::new(config());
    let client = ("192.0.2.40", 50000);
    let mut conn = Conn::new(client, ("198.51.100.7", 1977));
    conn.open(&mut e, at(0));
    let (a, b) = KAZAA_REQUEST.as_bytes().split_at(8);
    let first = conn.client_data(a);
    assert_eq!(judge(&mut e, at(0), &first), (Verdict::Accept, Reason::Clean));
    let second = conn.client_data(b);
    assert_eq!(judge(&mut e, at(0), &second), (Verdict::Drop, Reason::HttpTransfer));
    let response =
        conn.server_data(b"HTTP/1.1 206 Partial Content\r\nServer: KazaaClient Nov  3 2002 20:29:03\r\n\r\n");
    assert_eq!(judge(&mut e, at(0), &response), (Verdict::Drop, Reason::HttpTransfer));
    let body = conn.server_data(&[0u8; 1000]);
    assert_eq!(judge(&mut e, at(0), &body), (Verdict::Drop, Reason::FasttrackFlow));
    // The supernode named in the header is now a suspect peer; the client's own X-Kazaa-IP gave
    // its FastTrack port for probes and is not a peer.
    let peers: Vec<IpAddr> = e.peers().map(|p| p.addr).collect();
    assert!(peers.contains(&ip("203.0.113.50")) && peers.contains(&ip("198.51.100.7")), "{peers:?}");
    assert!(!peers.contains(&ip("192.0.2.40")));
    assert_eq!(e.locked_clients().next().unwrap().port, Some(1977));
    let syn = tcp(("192.0.2.41", 40000), ("203.0.113.50", 3608), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::SuspectPeer));
}

#[test]
fn ordinary_http_and_text_protocols_pass() {
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 50001), ("203.0.113.80", 80));
    conn.open(&mut e, at(0));
    let req = conn.client_data(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.0\r\n\r\n");
    assert_eq!(judge(&mut e, at(0), &req).1, Reason::Clean);
    let resp = conn.server_data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\nX-Kazaa-Username: this is only body text",
    );
    assert_eq!(judge(&mut e, at(0), &resp).1, Reason::Clean);

    let mut conn = Conn::new((CLIENT, 50002), ("203.0.113.81", 4000));
    conn.open(&mut e, at(0));
    let give_me = conn.client_data(b"GIVE me\r\n");
    assert_eq!(judge(&mut e, at(0), &give_me).1, Reason::Clean);

    let mut conn = Conn::new((CLIENT, 50003), ("203.0.113.82", 1214));
    conn.open(&mut e, at(0));
    let gnutella = conn.client_data(b"GNUTELLA CONNECT/0.6\r\nUser-Agent: LimeWire\r\n\r\n");
    assert_eq!(judge(&mut e, at(0), &gnutella).1, Reason::Clean);
    assert_eq!((e.peer_count(), e.locked_count()), (0, 0));
}

#[test]
fn give_push_is_a_tell() {
    let mut e = Engine::new(config());
    let mut conn = Conn::new(("192.0.2.50", 50004), ("198.51.100.60", 2999));
    conn.open(&mut e, at(0));
    let give = conn.client_data(b"GIVE 4253679545\r\n");
    assert_eq!(judge(&mut e, at(0), &give), (Verdict::Drop, Reason::GivePush));
}

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
fn port_1214_is_only_a_hint_unless_configured() {
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 1214), 1, SYN, &[]);
    let dgram = udp((CLIENT, 41000), ("203.0.113.78", 1214), b"ordinary");
    let mut e = Engine::new(config());
    assert_eq!(judge(&mut e, at(0), &syn).1, Reason::Clean);
    assert_eq!(judge(&mut e, at(0), &dgram).1, Reason::Clean);
    let mut c = config();
    c.port_1214_blocks = true;
    let mut e = Engine::new(c);
    assert_eq!(judge(&mut e, at(0), &syn), (Verdict::Drop, Reason::Port1214));
    assert_eq!(judge(&mut e, at(0), &dgram), (Verdict::Drop, Reason::Port1214));
    assert_eq!(judge(&mut e, at(1), &dgram), (Verdict::Drop, Reason::Port1214), "the whole flow");
    // Ephemeral source port 1214 is not "to port 1214".
    let syn = tcp((CLIENT, 1214), ("203.0.113.79", 80), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(0), &syn).1, Reason::Clean);
}

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
fn state_is_bounded_under_a_flood_of_distinct_flows() {
    let mut c = config();
    c.flows.capacity = 1000;
    c.peers.capacity = 50;
    c.timelock.capacity = 20;
    let mut e = Engine::new(c);
    for i in 0..20_000u32 {
        let [a, b, x, y] = i.to_be_bytes();
        let _ = (a, b);
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, y));
        let dst = IpAddr::V4(Ipv4Addr::new(203, 0, x, y));
        let udp = TransportRepr::Udp(UdpRepr { src_port: 0x1000, dst_port: 1214 });
        let pkt = packet(src, dst, &[], udp, &KAZAA_PING);
        assert_eq!(e.handle_packet(Timestamp::from_micros(u64::from(i)), &pkt).reason, Reason::UdpPing);
        while e.poll_event().is_some() {}
        while e.poll_action().is_some() {}
    }
    assert!(e.flow_count() <= 1000);
    assert!(e.peer_count() <= 50);
    assert!(e.locked_count() <= 20);
    assert_eq!(e.stats().packets, 20_000);
}

#[test]
fn undrained_queues_are_capped() {
    let mut e = Engine::new(config());
    for i in 0..(QUEUE_LIMIT as u32 / 2 + 10) {
        let [_, _, x, y] = i.to_be_bytes();
        let pkt = udp((CLIENT, CLIENT_PORT), (&format!("198.51.{x}.{y}"), 1214), &KAZAA_PING);
        e.handle_packet(at(1), &pkt);
    }
    assert!(e.events.len() <= QUEUE_LIMIT && e.actions.len() <= QUEUE_LIMIT);
    assert!(e.stats().events_discarded > 0 || e.stats().actions_discarded > 0);
}

#[test]
fn snapshot_restore_and_reload_keep_state() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let snap = e.snapshot();
    let peer = Some(SocketAddr::new(ip(PEER), PEER_PORT));
    assert_eq!(
        snap.locks,
        vec![LockEntry { client: ip(CLIENT), until: at(120), port: Some(CLIENT_PORT), peer }]
    );
    assert_eq!(snap.peers.len(), 1);

    let mut restored = Engine::new(config());
    restored.restore(at(10), &snap);
    let syn = tcp((CLIENT, 41000), (PEER, 80), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(11), &syn), (Verdict::Drop, Reason::SuspectPeer));
    let syn = tcp((CLIENT, 41001), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(11), &syn), (Verdict::Drop, Reason::ClientLocked));
    assert_eq!(restored.poll_timeout(), Some(at(60)));

    // Expired entries are not restored.
    let mut late = Engine::new(config());
    late.restore(at(121), &snap);
    assert_eq!(late.locked_count(), 0);
    assert_eq!(late.peer_count(), 1, "peers expire after a day");

    // Reload: new allow list applies, lock and peers stay.
    let mut c = config();
    c.timelock.allow_ports.push(6000);
    restored.set_config(c);
    let syn = tcp((CLIENT, 41002), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(12), &syn), (Verdict::Accept, Reason::Clean));
    assert_eq!((restored.locked_count(), restored.peer_count()), (1, 1));
    assert!(restored.release_client(ip(CLIENT)));
    assert!(restored.forget_peer(ip(PEER)));
    assert_eq!((restored.locked_count(), restored.peer_count()), (0, 0));
}

#[test]
fn lan_addresses_never_become_peers() {
    let mut e = Engine::new(config());
    // Both endpoints inside: the sender is treated as the client, the other is not a peer.
    let p = udp((CLIENT, CLIENT_PORT), ("192.0.2.77", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &p).1, Reason::UdpPing);
    assert_eq!(e.peer_count(), 0);
}

#[test]
fn stats_add_up() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(0), &udp((CLIENT, 5000), ("203.0.113.1", 53), b"dns"));
    e.handle_packet(at(0), &[0x45]);
    let s = e.stats();
    assert_eq!((s.packets, s.accepted, s.dropped), (3, 2, 1));
    assert_eq!(s.by_reason().map(|(_, n)| n).sum::<u64>(), 3);
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
    let hello = conn.client_data(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0]);
    assert_eq!(e.handle_packet(at(0), &hello).settled, Some(Settled::Clean), "not HTTP, no shape: done");

    // An HTTP request: the server's response headers must be seen first.
    let mut web = Conn::new((CLIENT, 50012), ("203.0.113.92", 80));
    web.open(&mut e, at(0));
    let req = web.client_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(e.handle_packet(at(0), &req).settled, None, "the response may still carry Kazaa headers");
    let resp = web.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(e.handle_packet(at(0), &resp).settled, Some(Settled::Clean));

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
    e.ban(ip(a.0), None).unwrap();
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

#[test]
fn operator_bans_drop_outside_addresses_fully_and_inside_ones_outside_allow_ports() {
    let mut e = Engine::new(config());
    let outside = ("198.51.100.66", 443);
    e.ban(ip(outside.0), None).unwrap();
    e.ban(ip(CLIENT), Some(at(100))).unwrap();
    assert_eq!(e.ban_count(), 2);
    // An outside ban covers every port, in both directions.
    assert_eq!(
        judge(&mut e, at(1), &tcp(("192.0.2.11", 40000), outside, 1, SYN, &[])),
        (Verdict::Drop, Reason::Banned)
    );
    assert_eq!(
        judge(&mut e, at(1), &udp(outside, ("192.0.2.11", 53), b"x")),
        (Verdict::Drop, Reason::Banned)
    );
    // A banned inside client keeps DNS and web, loses the rest.
    assert_eq!(
        judge(&mut e, at(2), &tcp((CLIENT, 40001), (PEER, 80), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(
        judge(&mut e, at(2), &udp((PEER, 53), (CLIENT, 5353), b"answer")),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(
        judge(&mut e, at(2), &tcp((CLIENT, 40002), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Drop, Reason::Banned)
    );
    assert_eq!(e.stats().count(Reason::Banned), 3);
    // Persisted, and restored by a fresh engine.
    let acts = actions(&mut e);
    assert!(acts.contains(&Action::StateChanged(StateChange::Ban(BanEntry {
        addr: ip(CLIENT),
        until: Some(at(100))
    }))));
    let snapshot = e.snapshot();
    assert_eq!(snapshot.bans.len(), 2);
    let mut restored = Engine::new(config());
    restored.restore(at(3), &snapshot);
    assert_eq!(restored.bans(), e.bans());
    // Expiry goes through the timer: event and state change.
    assert_eq!(e.poll_timeout(), Some(at(100)));
    e.handle_timeout(at(100));
    assert_eq!(events(&mut e), vec![Event::BanExpired { addr: ip(CLIENT) }]);
    assert!(actions(&mut e).contains(&Action::StateChanged(StateChange::BanRemoved(ip(CLIENT)))));
    assert_eq!(
        judge(&mut e, at(101), &tcp((CLIENT, 40003), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // An expired ban is not restored; unban lifts the other.
    let mut late = Engine::new(config());
    late.restore(at(200), &snapshot);
    assert_eq!(late.ban_count(), 1);
    assert!(e.unban(ip(outside.0)));
    assert!(!e.unban(ip(outside.0)));
    assert_eq!(
        judge(&mut e, at(102), &tcp(("192.0.2.11", 40004), outside, 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn monitor_mode_reports_bans_without_dropping() {
    let mut e = Engine::new(EngineConfig { mode: Mode::Monitor, ..config() });
    e.ban(ip(PEER), None).unwrap();
    assert_eq!(
        judge(&mut e, at(1), &tcp((CLIENT, 40000), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Banned)
    );
}

#[test]
fn locked_clients_at_leaves_out_expired_locks_not_yet_removed() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let until = e.locked_clients().next().unwrap().until;
    assert_eq!(e.locked_clients_at(at(1)).count(), 1);
    // Past the expiry but before handle_timeout: still listed, no longer in force.
    assert_eq!(e.locked_clients().count(), 1);
    assert_eq!(e.locked_clients_at(until).count(), 0);
}

const CLIENT6: &str = "2001:db8:1::11";
const PEER6: &str = "2001:db8:2::21";

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

fn probes(e: &mut Engine) -> Vec<(SocketAddr, SocketAddr)> {
    actions(e)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendProbe { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

#[test]
fn probe_is_forged_from_the_last_pinged_peer_and_its_answer_rearms_the_lock() {
    let mut e = Engine::new(config());
    let client = SocketAddr::new(ip(CLIENT), CLIENT_PORT);
    // The client pings two peers; the lock remembers the last one.
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), ("203.0.113.5", 4000), &KAZAA_PING));
    e.handle_packet(at(10), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let peer = SocketAddr::new(ip(PEER), PEER_PORT);
    assert_eq!(e.locked_clients().next().unwrap().peer, Some(peer));
    actions(&mut e);
    assert_eq!(e.poll_timeout(), Some(at(70)));
    e.handle_timeout(at(70));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
    // The forged ping is the daemon's own packet and never crosses the queue; the client's pong
    // to the peer does: judged a tell from inside, dropped, and the lock moves.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    let d = e.handle_packet(at(75), &answer);
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.locked_clients().next().unwrap().until, at(195));
    assert_eq!(e.stats().probe_answers, 1);
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::StateChanged(StateChange::Lock(l)) if l.until == at(195))));
    // The next probe half-way through the new arming, from the same peer.
    assert_eq!(e.poll_timeout(), Some(at(135)));
    e.handle_timeout(at(135));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
}

#[test]
fn no_probe_without_a_pinged_outside_peer() {
    // Locked by a TCP tell: no peer to forge from, so no probe; the lock just expires.
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 41000), (PEER, 2999));
    conn.open(&mut e, at(0));
    assert_eq!(judge(&mut e, at(0), &conn.client_data(&GIFT_OPENER)).1, Reason::TcpOpener);
    assert_eq!(e.locked_clients().next().unwrap().peer, None);
    assert_eq!(e.poll_timeout(), Some(at(120)));
    e.handle_timeout(at(60));
    e.handle_timeout(at(120));
    assert_eq!(probes(&mut e), vec![]);
    assert_eq!(e.locked_count(), 0);

    // A ping between LAN hosts, or from a client outside `lan`: no probe target.
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), ("192.0.2.77", 1214), &KAZAA_PING));
    e.handle_packet(at(0), &udp(("203.0.113.77", 4444), ("198.51.100.21", 1214), &KAZAA_PING));
    assert!(e.locked_clients().all(|l| l.peer.is_none()));
    e.handle_timeout(at(60));
    assert_eq!(probes(&mut e), vec![]);

    // A lock from an older state file (no peer) gets no probe; a planted peer inside `lan` or a
    // client outside it neither.
    let snapshot = Snapshot {
        locks: vec![
            LockEntry { client: ip(CLIENT), until: at(100), port: Some(CLIENT_PORT), peer: None },
            LockEntry {
                client: ip("192.0.2.11"),
                until: at(100),
                port: Some(CLIENT_PORT),
                peer: Some(SocketAddr::new(ip("192.0.2.12"), 1214)),
            },
            LockEntry {
                client: ip("203.0.113.9"),
                until: at(100),
                port: Some(CLIENT_PORT),
                peer: Some(SocketAddr::new(ip(PEER), PEER_PORT)),
            },
        ],
        ..Snapshot::default()
    };
    let old: Snapshot = serde_json::from_str(
        r#"{"peers":[],"locks":[{"client":"192.0.2.10","until":100000000,"port":3531}]}"#,
    )
    .unwrap();
    assert_eq!(old.locks, snapshot.locks[..1]);
    let mut e = Engine::new(config());
    e.restore(at(0), &snapshot);
    for t in [40, 60, 80, 100] {
        e.handle_timeout(at(t));
    }
    assert_eq!(probes(&mut e), vec![]);

    // Monitor mode and spoof_pongs = false send no forged packets, probes included.
    for c in
        [EngineConfig { mode: Mode::Monitor, ..config() }, EngineConfig { spoof_pongs: false, ..config() }]
    {
        let mut e = Engine::new(c);
        e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
        e.handle_timeout(at(60));
        assert_eq!(probes(&mut e), vec![]);
    }
}

#[test]
fn drive_runs_timers_only_when_due() {
    let mut e = Engine::new(config());
    assert!(!e.drive(at(0)), "no timer pending");
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    events(&mut e);
    actions(&mut e);
    assert!(!e.drive(at(59)));
    assert!(actions(&mut e).is_empty());
    assert!(e.drive(at(60)), "the half-expiry probe");
    assert!(actions(&mut e).iter().any(|a| matches!(a, Action::SendProbe { .. })));
    assert!(!e.drive(at(60)), "a spurious call does nothing");
    assert_eq!(e.poll_timeout(), Some(at(120)));
    assert!(e.drive(at(500)), "a late call runs what is overdue");
    assert_eq!(events(&mut e), vec![Event::ClientReleased { client: ip(CLIENT) }]);
}
