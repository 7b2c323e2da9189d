//! TCP tells and stream inspection: the opener, the handshake shape, HTTP transfers, GIVE pushes, port 1214.

use super::*;

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
    // The server answered with Kazaa headers after a handshake it completed: strong. The
    // supernode is only named in a header: weak, for this client and that port only.
    let strength = |addr: &str| e.peers().find(|p| p.addr == ip(addr)).map(|p| p.strength);
    assert_eq!(strength("198.51.100.7"), Some(Strength::Strong));
    assert_eq!(strength("203.0.113.50"), Some(Strength::Weak));
    let syn = tcp(("192.0.2.41", 40000), ("203.0.113.50", 3608), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    let syn = tcp(("192.0.2.40", 40001), ("203.0.113.50", 3608), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::SuspectPeer));
    let syn = tcp(("192.0.2.41", 40002), ("198.51.100.7", 80), 1, SYN, &[]);
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
fn a_connection_picked_up_mid_stream_gets_no_stream_inspection() {
    // Its first bytes seen could lie anywhere in the stream (here: in a body quoting a request).
    let mut e = Engine::new(config());
    let quoted = tcp(("192.0.2.40", 50100), ("198.51.100.7", 80), 7777, PSH_ACK, KAZAA_REQUEST.as_bytes());
    assert_eq!(judge(&mut e, at(0), &quoted), (Verdict::Accept, Reason::Clean));
    assert_eq!((e.peer_count(), e.locked_count(), e.reassembly_count()), (0, 0, 0));
    // The connection rules still hold for it: a locked client's mid-stream connection is dropped.
    e.handle_packet(at(1), &udp(("192.0.2.40", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let later = tcp(("192.0.2.40", 50101), ("203.0.113.9", 5000), 1, PSH_ACK, b"data");
    assert_eq!(judge(&mut e, at(2), &later), (Verdict::Drop, Reason::ClientLocked));
}

#[test]
fn a_kazaa_request_kept_alive_behind_an_ordinary_one_is_seen() {
    let mut e = Engine::new(config());
    let mut conn = Conn::new(("192.0.2.40", 50102), ("198.51.100.7", 80));
    conn.open(&mut e, at(0));
    let first = conn.client_data(b"GET /index.html HTTP/1.1\r\nHost: 198.51.100.7\r\n\r\n");
    assert_eq!(judge(&mut e, at(0), &first).1, Reason::Clean);
    let reply = conn.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhi\n");
    let d = e.handle_packet(at(0), &reply);
    assert_eq!((d.reason, d.settled), (Reason::Clean, None), "the budget is not spent: no offload");
    let second = conn.client_data(KAZAA_REQUEST.as_bytes());
    assert_eq!(judge(&mut e, at(0), &second), (Verdict::Drop, Reason::HttpTransfer));
}

/// A SYN the peer never accepted (a short TTL, or sent after the handshake) must not move the
/// stream start once the peer's SYN/ACK acknowledged the real one: the opener is still seen.
#[test]
fn a_bogus_syn_after_the_handshake_does_not_hide_the_opener() {
    let client = (CLIENT, 40_321);
    let server = (PEER, 3_608);
    let isn = 0x1000_0000u32;
    let with_ack = |src: (&str, u16), dst: (&str, u16), seq: u32, ack: u32, flags: u8, payload: &[u8]| {
        let repr = TcpRepr { ack, ..TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags)) };
        packet(ip(src.0), ip(dst.0), &[], TransportRepr::Tcp(repr), payload)
    };
    for bogus_first in [false, true] {
        let mut e = Engine::new(config());
        let bogus = with_ack(client, server, isn.wrapping_add(0x8000_0000), 0, SYN, &[]);
        if bogus_first {
            // A bogus SYN before the real one (it dies before the peer).
            assert_eq!(e.handle_packet(at(1), &bogus).reason, Reason::Clean);
        }
        let syn = with_ack(client, server, isn, 0, SYN, &[]);
        let syn_ack = with_ack(server, client, 7_000, isn.wrapping_add(1), SYN | ACK, &[]);
        let ack = with_ack(client, server, isn.wrapping_add(1), 7_001, ACK, &[]);
        for p in [&syn, &syn_ack, &ack] {
            assert_eq!(e.handle_packet(at(1), p).reason, Reason::Clean);
        }
        // The peer answers a SYN after the handshake with a challenge ACK and keeps the
        // connection: the stream has not moved.
        assert_eq!(e.handle_packet(at(1), &bogus).reason, Reason::Clean);
        let opener = with_ack(client, server, isn.wrapping_add(1), 7_001, PSH_ACK, &GIFT_OPENER);
        assert_eq!(
            e.handle_packet(at(2), &opener).reason,
            Reason::TcpOpener,
            "bogus SYN first: {bogus_first}"
        );
    }
}

/// The same for the responder: once the initiator acknowledged its SYN/ACK, a second SYN/ACK
/// with another sequence number does not move the response stream.
#[test]
fn a_bogus_syn_ack_does_not_hide_a_kazaa_response() {
    let client = (CLIENT, 40_322);
    let server = (PEER, 1_977);
    let (cisn, sisn) = (0x2000_0000u32, 0x7000_0000u32);
    let seg = |src: (&str, u16), dst: (&str, u16), seq: u32, ack: u32, flags: u8, payload: &[u8]| {
        let repr = TcpRepr { ack, ..TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags)) };
        packet(ip(src.0), ip(dst.0), &[], TransportRepr::Tcp(repr), payload)
    };
    let mut e = Engine::new(config());
    let request = b"GET /index.html HTTP/1.1\r\nHost: 198.51.100.20\r\n\r\n";
    for p in [
        seg(client, server, cisn, 0, SYN, &[]),
        seg(server, client, sisn, cisn + 1, SYN | ACK, &[]),
        seg(client, server, cisn + 1, sisn + 1, ACK, &[]),
        seg(client, server, cisn + 1, sisn + 1, PSH_ACK, request),
        // A SYN/ACK the client never takes (a short TTL on the way in).
        seg(server, client, sisn.wrapping_add(0x8000_0000), cisn + 1, SYN | ACK, &[]),
    ] {
        assert_eq!(e.handle_packet(at(1), &p).reason, Reason::Clean);
    }
    let response =
        b"HTTP/1.1 200 OK\r\nServer: KazaaClient Nov 3 2002 20:29:03\r\nContent-Length: 3\r\n\r\nabc";
    let reply = seg(server, client, sisn + 1, cisn + 1 + request.len() as u32, PSH_ACK, response);
    assert_eq!(e.handle_packet(at(2), &reply).reason, Reason::HttpTransfer);
}
