//! UDP: the checked datagram view [`UdpDatagram`] (parse) and [`UdpRepr`] (emit).
//!
//! Invariants:
//! - `parse` takes the payload length from the UDP length field, never from the buffer size, so
//!   link-layer padding never becomes payload; a UDP length below 8, or beyond the IP payload
//!   outside a first fragment, is [`MalformedKind::BadUdpHeader`].
//! - A header that fits in the announced IP payload but not in the bytes present is out of reach
//!   ([`Transport::Unreachable`]).
//! - [`UdpRepr::emit`] writes a length covering header and payload and a checksum that verifies
//!   under the IP pseudo-header; a computed checksum of 0 is sent as 0xFFFF (RFC 768).

use super::checksum;
use super::{IpRepr, MalformedKind, Transport, PROTO_UDP};
use pnet_packet::udp::UdpPacket;

/// The UDP header length.
pub const HEADER_LEN: usize = 8;

/// A validated UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload bytes present in the buffer (may be shorter than `payload_len` if truncated).
    pub payload: &'a [u8],
    /// Payload length from the UDP length field (minus 8).
    pub payload_len: usize,
}

/// Parses a UDP header. `payload` holds the IP payload bytes present, `announced` the IP payload
/// length from the headers. `first_fragment`: the packet is the first fragment of a larger
/// datagram, so a UDP length beyond `announced` is not an error (the rest of the datagram is in
/// later fragments; `payload_len` keeps the UDP length).
pub(super) fn parse(
    payload: &[u8],
    announced: usize,
    first_fragment: bool,
) -> Result<Transport<'_>, MalformedKind> {
    if announced < HEADER_LEN {
        return Err(MalformedKind::BadUdpHeader);
    }
    if payload.len() < HEADER_LEN {
        return Ok(Transport::Unreachable { protocol: PROTO_UDP });
    }
    // pnet checks only the 8-byte header size (just done); its length field is validated here.
    let udp = UdpPacket::new(payload).ok_or(MalformedKind::BadUdpHeader)?;
    let udp_len = usize::from(udp.get_length());
    if udp_len < HEADER_LEN || (udp_len > announced && !first_fragment) {
        return Err(MalformedKind::BadUdpHeader);
    }
    let present = payload.len().min(udp_len).min(announced);
    Ok(Transport::Udp(UdpDatagram {
        src_port: udp.get_source(),
        dst_port: udp.get_destination(),
        payload: &payload[HEADER_LEN..present],
        payload_len: udp_len - HEADER_LEN,
    }))
}

/// The UDP header fields to emit. Length and checksum are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Writes the header and `payload` into `buf[..8 + payload.len()]`, with the checksum under
    /// `ip`'s pseudo-header.
    ///
    /// # Panics
    /// If `buf` is too short or the datagram longer than 65,535 bytes.
    pub fn emit(&self, buf: &mut [u8], ip: &IpRepr<'_>, payload: &[u8]) {
        let len = HEADER_LEN + payload.len();
        let datagram = &mut buf[..len];
        let len = u16::try_from(len).expect("a UDP datagram fits in 65,535 bytes");
        datagram[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        datagram[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        datagram[4..6].copy_from_slice(&len.to_be_bytes());
        datagram[6..8].fill(0);
        datagram[HEADER_LEN..].copy_from_slice(payload);
        let sum = checksum::segment(ip.pseudo_header(PROTO_UDP, datagram.len()), datagram);
        let sum = if sum == 0 { 0xFFFF } else { sum };
        datagram[6..8].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit, parse, Ipv4Repr, TransportRepr};
    use proptest::prelude::*;
    use std::net::IpAddr;

    const SRC4: [u8; 4] = [192, 0, 2, 10];
    const DST4: [u8; 4] = [198, 51, 100, 20];

    fn ip() -> IpRepr<'static> {
        IpRepr::V4(Ipv4Repr::new(SRC4.into(), DST4.into()))
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        emit(&ip(), &TransportRepr::Udp(UdpRepr { src_port: 3531, dst_port: 1214 }), payload)
    }

    /// `udp(payload)` with its UDP length field forced to `len`.
    fn with_udp_len(payload: &[u8], len: u16) -> Vec<u8> {
        let mut p = udp(payload);
        p[24..26].copy_from_slice(&len.to_be_bytes());
        p
    }

    fn kind(buf: &[u8]) -> MalformedKind {
        parse(buf).unwrap_err().kind
    }

    fn round_trip(ip: &IpRepr<'_>, repr: UdpRepr, payload: &[u8]) {
        let packet = emit(ip, &TransportRepr::Udp(repr), payload);
        let l4 = &packet[ip.header_len()..];
        assert_eq!(checksum::segment(ip.pseudo_header(PROTO_UDP, l4.len()), l4), 0, "checksum verifies");
        let parsed = parse(&packet).unwrap();
        assert_eq!((parsed.src, parsed.dst), (ip.src(), ip.dst()));
        let Transport::Udp(d) = parsed.transport else { panic!("udp: {parsed:?}") };
        assert_eq!(UdpRepr { src_port: d.src_port, dst_port: d.dst_port }, repr);
        assert_eq!((d.payload, d.payload_len), (payload, payload.len()));
    }

    #[test]
    fn emit_parses_back_over_both_families() {
        let repr = UdpRepr { src_port: 1214, dst_port: 3531 };
        round_trip(&ip(), repr, b"pong");
        round_trip(&ip(), repr, b"");
        let v6 = IpRepr::new("2001:db8:2::20".parse().unwrap(), "2001:db8:1::10".parse().unwrap()).unwrap();
        round_trip(&v6, repr, b"abc");
    }

    #[test]
    fn known_checksum() {
        // The forged pong of the spoofer's former test: 198.51.100.20:1214 -> 192.0.2.10:3531.
        let payload = [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];
        let ip = IpRepr::V4(Ipv4Repr::new(DST4.into(), SRC4.into()));
        let p = emit(&ip, &TransportRepr::Udp(UdpRepr { src_port: 1214, dst_port: 3531 }), &payload);
        assert_eq!(p.len(), 20 + 8 + 17);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 25]);
        assert_eq!(checksum::checksum(&[&pseudo, &p[20..]]), 0, "UDP checksum verifies");
    }

    #[test]
    fn a_zero_checksum_is_sent_as_all_ones() {
        // Find a payload whose checksum computes to 0: the field then holds 0xFFFF.
        let ip = ip();
        let (payload, p) = (0..=0xFFFFu16)
            .map(|w| {
                let payload = w.to_be_bytes();
                (payload, emit(&ip, &TransportRepr::Udp(UdpRepr { src_port: 1, dst_port: 2 }), &payload))
            })
            .find(|(_, p)| p[26..28] == [0xFF, 0xFF])
            .expect("some payload sums to zero");
        let l4 = &p[20..];
        assert_eq!(checksum::segment(ip.pseudo_header(PROTO_UDP, l4.len()), l4), 0, "{payload:?}");
    }

    #[test]
    fn ipv4_udp_and_ethernet_padding() {
        let payload = [0x28u8; 17];
        let mut frame = udp(&payload);
        frame.extend_from_slice(&[0, 0, 0, 0, 0]); // link-layer padding
        let p = parse(&frame).unwrap();
        assert_eq!(p.src, IpAddr::from(SRC4));
        let Transport::Udp(d) = p.transport else { panic!("udp") };
        assert_eq!((d.src_port, d.dst_port, d.payload_len, d.payload.len()), (3531, 1214, 17, 17));
    }

    #[test]
    fn truncated_copies_keep_announced_lengths() {
        let frame = udp(&[7u8; 100]);
        let Transport::Udp(d) = parse(&frame[..60]).unwrap().transport else { panic!("udp") };
        assert_eq!((d.payload.len(), d.payload_len), (32, 100));
        // IPv4 headers always fit in the copy range: a header cut short is a capture artefact.
        assert_eq!(kind(&frame[..25]), MalformedKind::BadUdpHeader);
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(kind(&with_udp_len(b"abc", 7)), MalformedKind::BadUdpHeader, "shorter than 8");
        assert_eq!(kind(&with_udp_len(b"abc", 12)), MalformedKind::BadUdpHeader, "beyond the IP payload");
        // A UDP length shorter than the IP payload: the rest is padding.
        let frame = with_udp_len(b"abcdef", 10);
        let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("udp") };
        assert_eq!(d.payload, b"ab");
    }

    proptest! {
        #[test]
        fn round_trips(
            v6 in any::<bool>(),
            (src_port, dst_port) in any::<(u16, u16)>(),
            payload in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let ip = if v6 {
                IpRepr::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap()).unwrap()
            } else {
                ip()
            };
            round_trip(&ip, UdpRepr { src_port, dst_port }, &payload);
        }
    }
}
