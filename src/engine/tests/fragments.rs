//! IP fragments: the engine does not reassemble them (the kernel's conntrack does, before the
//! queue, under the shipped rules); a first fragment whose TCP segment or UDP datagram goes on
//! in later fragments is `first_fragment`, never `malformed` nor judged `clean` on a part.

use super::*;
use crate::wire::Ipv4Repr;

/// `whole` (an IP packet) cut to its first `keep` bytes of IP payload, as the first fragment of
/// its datagram: the length field says so, and (IPv4) the header checksum is made right again.
fn cut_first_fragment(mut whole: Vec<u8>, keep: usize) -> Vec<u8> {
    if whole[0] >> 4 == 4 {
        let len = 20 + keep;
        whole.truncate(len);
        whole[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        whole[10..12].fill(0);
        let sum = wire::checksum::checksum(&[&whole[..20]]);
        whole[10..12].copy_from_slice(&sum.to_be_bytes());
    } else {
        // Behind one 8-byte fragment header.
        whole.truncate(40 + 8 + keep);
        whole[4..6].copy_from_slice(&((8 + keep) as u16).to_be_bytes());
    }
    whole
}

fn v4_first_fragment(
    src: (&str, u16),
    dst: (&str, u16),
    transport: TransportRepr<'_>,
    payload: &[u8],
) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (ip(src.0), ip(dst.0)) else { panic!("IPv4") };
    let repr = IpRepr::V4(Ipv4Repr { dont_fragment: false, more_fragments: true, ..Ipv4Repr::new(s, d) });
    wire::emit(&repr, &transport, payload)
}

#[test]
fn a_ping_cut_by_fragmentation_is_a_first_fragment() {
    let mut e = Engine::new(config());
    let udp_repr = TransportRepr::Udp(UdpRepr { src_port: CLIENT_PORT, dst_port: 1214 });
    // IPv4: the UDP header and 8 of the ping's 12 bytes; the UDP length says 20.
    let whole = v4_first_fragment((CLIENT, CLIENT_PORT), (PEER, 1214), udp_repr, &KAZAA_PING);
    let first = cut_first_fragment(whole, 16);
    assert_eq!(judge(&mut e, at(0), &first), (Verdict::Accept, Reason::FirstFragment), "not malformed");
    // IPv6 likewise (before: judged clean on its first 8 bytes).
    let frag = [Fragment { offset: 0, more: true, ident: 9 }];
    let whole = udp_behind(&frag, (CLIENT6, CLIENT_PORT), (PEER6, 1214), &KAZAA_PING);
    let first = cut_first_fragment(whole, 16);
    assert_eq!(judge(&mut e, at(0), &first), (Verdict::Accept, Reason::FirstFragment));
    // Neither made a flow or taught anything.
    assert_eq!((e.flow_count(), e.locked_count(), e.peer_count()), (0, 0, 0));
    assert_eq!(e.stats().count(Reason::FirstFragment), 2);
    // A datagram wholly inside a first fragment is judged as usual.
    let inside = v4_first_fragment((CLIENT, CLIENT_PORT), (PEER, 1214), udp_repr, &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &inside), (Verdict::Drop, Reason::UdpPing));
    // And an atomic fragment (offset 0, no more to come) is a whole datagram.
    let atomic = udp_behind(
        &[Fragment { offset: 0, more: false, ident: 10 }],
        (CLIENT6, 4000),
        (PEER6, 1214),
        &KAZAA_PING,
    );
    assert_eq!(judge(&mut e, at(0), &atomic), (Verdict::Drop, Reason::UdpPing));
}

#[test]
fn a_tcp_segment_in_a_first_fragment_is_not_fed_to_the_stream() {
    let mut e = Engine::new(config());
    let conn = Conn::new((CLIENT, 40_000), (PEER, 80));
    conn.open(&mut e, at(0));
    // The opener's segment, fragmented after 8 bytes of its payload: the stream does not take
    // a part it would have to treat as the whole segment.
    let tcp_repr = TransportRepr::Tcp(TcpRepr::new(40_000, 80, conn.cseq, TcpFlags(PSH_ACK)));
    let whole = v4_first_fragment((CLIENT, 40_000), (PEER, 80), tcp_repr, &GIFT_OPENER);
    let first = cut_first_fragment(whole, 28);
    assert_eq!(judge(&mut e, at(1), &first), (Verdict::Accept, Reason::FirstFragment));
    // The whole segment (as the kernel's reassembly hands it over) is then judged whole.
    let mut conn = conn;
    let opener = conn.client_data(&GIFT_OPENER);
    assert_eq!(judge(&mut e, at(1), &opener), (Verdict::Drop, Reason::TcpOpener));
}
