//! IPv4: the checked parse of an IPv4 packet into a [`Packet`], and [`Ipv4Repr`] (emit).
//!
//! Invariants:
//! - `parse` checks the IHL against the buffer and the total length before reading past the
//!   fixed header; bytes beyond the total length are link-layer padding and are ignored.
//! - Only a first fragment (offset 0) is given a transport header; any other offset is
//!   [`Transport::LaterFragment`]. A first fragment with more to come (MF) is
//!   [`Packet::first_fragment`], and its UDP length may exceed the fragment.
//! - A transport header cut off by the capture is malformed over IPv4: an IPv4 header with
//!   options plus a TCP header with options (120 bytes) always fits in the smallest copy range.
//! - [`Ipv4Repr::emit`] writes a 20-byte header (no options) whose checksum verifies.

use super::checksum;
use super::{transport, Malformed, MalformedKind, Packet, Transport, PROTO_TCP};
use pnet_packet::ipv4::Ipv4Packet;
use std::net::{IpAddr, Ipv4Addr};

/// The IPv4 header length without options.
pub const HEADER_LEN: usize = 20;

/// Parses a buffer whose version nibble is 4.
pub(super) fn parse(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    let bad = |kind, addrs, protocol| Err(Malformed { kind, addrs, protocol });
    if buf.len() < HEADER_LEN {
        return bad(MalformedKind::TruncatedIpHeader, None, None);
    }
    // pnet checks only the minimum size (20 bytes, just done); every length it reports is
    // validated below before the buffer is sliced.
    let ip = Ipv4Packet::new(buf).ok_or(Malformed {
        kind: MalformedKind::TruncatedIpHeader,
        addrs: None,
        protocol: None,
    })?;
    let (src, dst) = (IpAddr::V4(ip.get_source()), IpAddr::V4(ip.get_destination()));
    let addrs = Some((src, dst));
    let protocol = ip.get_next_level_protocol().0;
    let header_len = usize::from(ip.get_header_length()) * 4;
    if header_len < HEADER_LEN || header_len > buf.len() {
        return bad(MalformedKind::BadIhl, addrs, Some(protocol));
    }
    let total_len = usize::from(ip.get_total_length());
    if total_len < header_len {
        return bad(MalformedKind::BadTotalLength, addrs, Some(protocol));
    }
    // Bytes beyond the total length are link-layer padding; fewer bytes mean a truncated copy.
    let payload_len = total_len - header_len;
    let payload = &buf[header_len..buf.len().min(total_len)];
    if ip.get_fragment_offset() != 0 {
        return Ok(Packet {
            src,
            dst,
            transport: Transport::LaterFragment { protocol },
            first_fragment: false,
        });
    }
    let first_fragment = ip.get_flags() & 0b001 != 0;
    let transport = match transport(protocol, payload, payload_len, first_fragment) {
        // Only a capture's snap length cuts the headers short, and such a record stays malformed.
        Ok(Transport::Unreachable { .. }) if protocol == PROTO_TCP => Err(MalformedKind::BadTcpHeader),
        Ok(Transport::Unreachable { .. }) => Err(MalformedKind::BadUdpHeader),
        other => other,
    };
    let transport = transport.map_err(|kind| Malformed { kind, addrs, protocol: Some(protocol) })?;
    Ok(Packet { src, dst, transport, first_fragment })
}

/// The IPv4 header fields to emit. Version, IHL (5: no options), total length, protocol and
/// header checksum are computed; TOS is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Identification.
    pub ident: u16,
    /// The DF flag.
    pub dont_fragment: bool,
    /// The MF flag.
    pub more_fragments: bool,
    /// Fragment offset, in 8-octet units (13 bits).
    pub fragment_offset: u16,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// An unfragmented packet: identification 0, DF set, TTL 64.
    pub const fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Self {
        Self { src, dst, ident: 0, dont_fragment: true, more_fragments: false, fragment_offset: 0, ttl: 64 }
    }

    /// Writes the header for `protocol` and `payload_len` bytes of payload into `buf[..20]`.
    ///
    /// # Panics
    /// If `buf` is shorter than 20 bytes, the packet longer than 65,535 bytes or the fragment
    /// offset wider than 13 bits.
    pub fn emit(&self, buf: &mut [u8], protocol: u8, payload_len: usize) {
        assert!(self.fragment_offset <= 0x1FFF, "IPv4 fragment offset is 13 bits");
        let total = u16::try_from(HEADER_LEN + payload_len).expect("an IPv4 packet fits in 65,535 bytes");
        let flags = u16::from(self.dont_fragment) << 14 | u16::from(self.more_fragments) << 13;
        let header = &mut buf[..HEADER_LEN];
        header[0] = 0x45;
        header[1] = 0;
        header[2..4].copy_from_slice(&total.to_be_bytes());
        header[4..6].copy_from_slice(&self.ident.to_be_bytes());
        header[6..8].copy_from_slice(&(flags | self.fragment_offset).to_be_bytes());
        header[8] = self.ttl;
        header[9] = protocol;
        header[10..12].fill(0);
        header[12..16].copy_from_slice(&self.src.octets());
        header[16..20].copy_from_slice(&self.dst.octets());
        let sum = checksum::checksum(&[header]);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit, parse, IpRepr, TcpFlags, TcpRepr, TransportRepr, UdpRepr, PROTO_UDP};
    use proptest::prelude::*;

    const SRC4: [u8; 4] = [192, 0, 2, 10];
    const DST4: [u8; 4] = [198, 51, 100, 20];

    fn repr() -> Ipv4Repr {
        Ipv4Repr::new(SRC4.into(), DST4.into())
    }

    fn udp_in(ip: Ipv4Repr, payload: &[u8]) -> Vec<u8> {
        emit(&IpRepr::V4(ip), &TransportRepr::Udp(UdpRepr { src_port: 3531, dst_port: 1214 }), payload)
    }

    /// `packet` with IHL and total length forced.
    fn with_lengths(mut packet: Vec<u8>, ihl: u8, total: u16) -> Vec<u8> {
        packet[0] = 0x40 | ihl;
        packet[2..4].copy_from_slice(&total.to_be_bytes());
        packet
    }

    /// `packet` with `options` inserted after the fixed header, IHL and total length adjusted.
    fn with_options(packet: &[u8], options: &[u8]) -> Vec<u8> {
        let total = (packet.len() + options.len()) as u16;
        let mut p = [&packet[..20], options, &packet[20..]].concat();
        p = with_lengths(p, 5 + options.len() as u8 / 4, total);
        p
    }

    fn kind(buf: &[u8]) -> MalformedKind {
        parse(buf).unwrap_err().kind
    }

    /// Reads every header field back from the bytes (`parse` exposes only the addresses).
    fn read_back(h: &[u8]) -> (Ipv4Repr, u8, usize) {
        let flags_offset = u16::from_be_bytes([h[6], h[7]]);
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
            dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
            ident: u16::from_be_bytes([h[4], h[5]]),
            dont_fragment: flags_offset & 0x4000 != 0,
            more_fragments: flags_offset & 0x2000 != 0,
            fragment_offset: flags_offset & 0x1FFF,
            ttl: h[8],
        };
        (repr, h[9], usize::from(u16::from_be_bytes([h[2], h[3]])) - 20)
    }

    #[test]
    fn emit_parses_back() {
        let ip = Ipv4Repr { ident: 0x1234, ttl: 3, ..repr() };
        let p = udp_in(ip, b"abc");
        assert_eq!(checksum::checksum(&[&p[..20]]), 0, "header checksum verifies");
        assert_eq!(read_back(&p), (ip, PROTO_UDP, 11));
        let parsed = parse(&p).unwrap();
        assert_eq!((parsed.src, parsed.dst), (IpAddr::from(SRC4), IpAddr::from(DST4)));
        assert!(matches!(parsed.transport, Transport::Udp(d) if d.payload == b"abc"));
    }

    #[test]
    fn known_header_checksum() {
        // The classic example header (Wikipedia, "Internet checksum"): checksum 0xB861.
        let ip = Ipv4Repr::new(Ipv4Addr::new(192, 168, 0, 1), Ipv4Addr::new(192, 168, 0, 199));
        let mut h = [0u8; 20];
        ip.emit(&mut h, 17, 0x73 - 20);
        let expected =
            [0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0xB8, 0x61, 192, 168, 0, 1, 192, 168, 0, 199];
        assert_eq!(h, expected);
    }

    #[test]
    fn tcp_with_ip_options() {
        let tcp = TcpRepr { options: &[1; 12], ..TcpRepr::new(40000, 80, 1000, TcpFlags(0x18)) };
        let packet = emit(&IpRepr::V4(repr()), &TransportRepr::Tcp(tcp), b"hello");
        let frame = with_options(&packet, &[1, 1, 1, 0]);
        let Transport::Tcp(s) = parse(&frame).unwrap().transport else { panic!("tcp") };
        assert_eq!(
            (s.src_port, s.dst_port, s.seq, s.payload, s.payload_len),
            (40000, 80, 1000, &b"hello"[..], 5)
        );
        assert!(s.flags.has(TcpFlags::ACK | TcpFlags::PSH) && !s.flags.is_initial_syn());
    }

    #[test]
    fn header_lengths_are_validated() {
        let p = udp_in(repr(), b"x");
        assert_eq!(kind(&with_lengths(p.clone(), 15, 29)), MalformedKind::BadIhl, "IHL 15 beyond the buffer");
        assert_eq!(kind(&with_lengths(p.clone(), 4, 29)), MalformedKind::BadIhl);
        assert_eq!(kind(&with_lengths(p.clone(), 5, 19)), MalformedKind::BadTotalLength);
        assert_eq!(kind(&p[..19]), MalformedKind::TruncatedIpHeader);
        assert_eq!(kind(&[]), MalformedKind::BadVersion);
        assert_eq!(kind(&[0x50; 40]), MalformedKind::BadVersion);
        let err = parse(&with_lengths(p, 15, 29)).unwrap_err();
        assert_eq!(err.addrs, Some((IpAddr::from(SRC4), IpAddr::from(DST4))));
    }

    #[test]
    fn tcp_header_cut_by_the_capture_is_malformed() {
        let p = emit(&IpRepr::V4(repr()), &TransportRepr::Tcp(TcpRepr::new(1, 2, 3, TcpFlags(0x10))), b"");
        assert_eq!(kind(&p[..30]), MalformedKind::BadTcpHeader);
    }

    #[test]
    fn fragments() {
        let later = udp_in(Ipv4Repr { dont_fragment: false, fragment_offset: 0x10, ..repr() }, b"abc");
        assert_eq!(parse(&later).unwrap().transport, Transport::LaterFragment { protocol: 17 });
        let first = udp_in(Ipv4Repr { dont_fragment: false, more_fragments: true, ..repr() }, b"abc");
        assert!(matches!(parse(&first).unwrap().transport, Transport::Udp(_)));
        let other = emit(&IpRepr::V4(repr()), &TransportRepr::Raw { protocol: 1 }, &[8, 0, 0, 0]);
        assert_eq!(parse(&other).unwrap().transport, Transport::Other { protocol: 1, payload_len: 4 });
    }

    proptest! {
        #[test]
        fn round_trips(
            (src, dst, ident, ttl, protocol) in any::<([u8; 4], [u8; 4], u16, u8, u8)>(),
            (dont_fragment, more_fragments, fragment_offset) in (any::<bool>(), any::<bool>(), 0u16..0x2000),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let ip = Ipv4Repr { src: src.into(), dst: dst.into(), ident, dont_fragment, more_fragments, fragment_offset, ttl };
            let p = emit(&IpRepr::V4(ip), &TransportRepr::Raw { protocol }, &payload);
            prop_assert_eq!(checksum::checksum(&[&p[..20]]), 0);
            prop_assert_eq!(read_back(&p), (ip, protocol, payload.len()));
            prop_assert_eq!(&p[20..], &payload[..]);
            // `parse` sees the same addresses whatever the transport bytes say.
            let (src, dst) = match parse(&p) {
                Ok(packet) => (packet.src, packet.dst),
                Err(bad) => bad.addrs.expect("the fixed header is readable"),
            };
            prop_assert_eq!((src, dst), (IpAddr::V4(ip.src), IpAddr::V4(ip.dst)));
        }
    }
}
