//! Checked views of the packets NFQUEUE delivers (IP header first).
//!
//! [`parse`] validates every length by hand before any `pnet_packet` accessor is used, because
//! pnet only checks a minimum buffer size (it accepts a bogus IHL, for instance).
//!
//! Invariants, relied on by the engine:
//! - `parse` never panics, whatever the input (a property test checks this).
//! - Payload lengths come from the IP total length / IPv6 payload length and the UDP length
//!   field, never from the buffer size, so Ethernet padding never becomes payload.
//! - A returned payload slice may be *shorter* than the length announced by the headers only when
//!   the buffer was truncated (NFQUEUE copy range), or for the UDP datagram of an IPv6 first
//!   fragment (the rest is in later fragments); `payload_len` keeps the announced length.
//! - Only first fragments (offset 0) carry a transport header; later fragments are reported as
//!   [`Transport::LaterFragment`].
//!
//! ## IPv6 extension headers
//! The chain is walked as far as a receiving Linux kernel would walk it to deliver the packet,
//! bounded by the payload length, not by a count of headers (each header is at least 8 bytes):
//! - hop-by-hop options (0) only right after the fixed header (elsewhere: malformed, and the
//!   receiver discards the packet too); routing (43) and destination options (60), length in
//!   8-octet units; AH (51), length in 4-octet units;
//! - a fragment header (44) with offset 0 continues the walk (a first fragment); any other offset
//!   is a [`Transport::LaterFragment`];
//! - TCP and UDP are parsed; ESP (50), No Next Header (59), ICMPv6 and any other value end the
//!   walk as [`Transport::Other`]: there is no transport header to judge.
//!
//! Where the walk stops decides the outcome:
//! - a header that overruns the payload length is a broken chain: [`MalformedKind::BadExtensionHeaders`]
//!   (the `malformed` policy applies; the receiver cannot parse it either);
//! - a header within the payload length but beyond the bytes captured (NFQUEUE copies only
//!   `copy_range` bytes), or, in a first fragment, beyond the fragment (RFC 7112 forbids such
//!   first fragments, and the transport header could follow in the next one), is
//!   [`Transport::Unreachable`]: well-formed as far as it goes, but not inspectable.

use std::fmt;
use std::net::IpAddr;

/// TCP flag bits as found in byte 13 of the TCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;

    /// True if every bit of `mask` is set.
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// A connection-opening segment: SYN without ACK.
    pub const fn is_initial_syn(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK)
    }
}

/// A validated TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Payload bytes present in the buffer (may be shorter than `payload_len` if truncated).
    pub payload: &'a [u8],
    /// Payload length announced by the IP header minus the TCP header.
    pub payload_len: usize,
}

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

/// The transport part of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(TcpSegment<'a>),
    /// UDP.
    Udp(UdpDatagram<'a>),
    /// A non-first fragment; carries the upper-layer protocol number.
    LaterFragment {
        /// IP protocol / final IPv6 next-header.
        protocol: u8,
    },
    /// IPv6 only: the transport header lies beyond the bytes received (NFQUEUE's copy range cut
    /// the packet short, after a long extension-header chain), or, in a first fragment,
    /// beyond the fragment. The packet is well-formed as far as it could be read, and the
    /// receiver would still get its transport header: the engine drops it
    /// (`transport_unreachable`) rather than let an uninspected tell through.
    Unreachable {
        /// The IP protocol / IPv6 next-header value at which the walk stopped (an extension
        /// header or the transport protocol).
        protocol: u8,
    },
    /// Any other upper-layer protocol (ICMP, GRE, ESP, No Next Header, ...), not inspected.
    Other {
        /// IP protocol / final IPv6 next-header.
        protocol: u8,
        /// IP payload length (after all IPv6 extension headers).
        payload_len: usize,
    },
}

/// A validated IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport part.
    pub transport: Transport<'a>,
}

/// What was wrong with a packet that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedKind {
    /// Empty buffer or version nibble not 4 or 6.
    BadVersion,
    /// Buffer shorter than the fixed IP header.
    TruncatedIpHeader,
    /// IPv4 IHL < 5 or beyond the buffer / total length.
    BadIhl,
    /// IPv4 total length < header length, or IPv6 payload length inconsistent.
    BadTotalLength,
    /// IPv6 extension header overrunning the payload length, or hop-by-hop options not first.
    BadExtensionHeaders,
    /// TCP header longer than the IP payload, or data offset < 5 / beyond the segment; over IPv4
    /// also a TCP header cut off by the capture (over IPv6 that is [`Transport::Unreachable`]).
    BadTcpHeader,
    /// UDP header longer than the IP payload, or UDP length < 8 or beyond the IP payload; over
    /// IPv4 also a UDP header cut off by the capture (over IPv6: [`Transport::Unreachable`]).
    BadUdpHeader,
}

/// A packet that failed validation, with whatever could still be read, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed {
    /// What was wrong.
    pub kind: MalformedKind,
    /// Source and destination, when the fixed IP header was readable.
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// Upper-layer protocol number, when known.
    pub protocol: Option<u8>,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed packet: {:?}", self.kind)
    }
}

impl std::error::Error for Malformed {}

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Parses an L3 buffer (IPv4 or IPv6 header first).
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    match buf.first().map(|b| b >> 4) {
        Some(4) => parse_ipv4(buf),
        Some(6) => parse_ipv6(buf),
        _ => Err(Malformed { kind: MalformedKind::BadVersion, addrs: None, protocol: None }),
    }
}

fn parse_ipv4(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    use pnet_packet::ipv4::Ipv4Packet;
    let bad = |kind, addrs, protocol| Err(Malformed { kind, addrs, protocol });
    if buf.len() < 20 {
        return bad(MalformedKind::TruncatedIpHeader, None, None);
    }
    let ip = Ipv4Packet::new(buf).ok_or(Malformed {
        kind: MalformedKind::TruncatedIpHeader,
        addrs: None,
        protocol: None,
    })?;
    let (src, dst) = (IpAddr::V4(ip.get_source()), IpAddr::V4(ip.get_destination()));
    let addrs = Some((src, dst));
    let protocol = ip.get_next_level_protocol().0;
    let header_len = usize::from(ip.get_header_length()) * 4;
    if header_len < 20 || header_len > buf.len() {
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
        return Ok(Packet { src, dst, transport: Transport::LaterFragment { protocol } });
    }
    let transport = match transport(protocol, payload, payload_len, false) {
        // An IPv4 header with options plus a TCP header with options (120 bytes) always fits in
        // the smallest copy range (128 bytes): only a capture's snap length cuts them short, and
        // such a record stays malformed.
        Ok(Transport::Unreachable { .. }) if protocol == PROTO_TCP => Err(MalformedKind::BadTcpHeader),
        Ok(Transport::Unreachable { .. }) => Err(MalformedKind::BadUdpHeader),
        other => other,
    };
    let transport = transport.map_err(|kind| Malformed { kind, addrs, protocol: Some(protocol) })?;
    Ok(Packet { src, dst, transport })
}

fn parse_ipv6(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    use pnet_packet::ipv6::Ipv6Packet;
    if buf.len() < 40 {
        return Err(Malformed { kind: MalformedKind::TruncatedIpHeader, addrs: None, protocol: None });
    }
    let ip = Ipv6Packet::new(buf).ok_or(Malformed {
        kind: MalformedKind::TruncatedIpHeader,
        addrs: None,
        protocol: None,
    })?;
    let (src, dst) = (IpAddr::V6(ip.get_source()), IpAddr::V6(ip.get_destination()));
    let addrs = Some((src, dst));
    let announced = usize::from(ip.get_payload_length());
    let mut next = ip.get_next_header().0;
    let bad = |kind, protocol| Malformed { kind, addrs, protocol };
    if announced == 0 {
        // Zero means a jumbogram (hop-by-hop option), which never crosses an Ethernet gateway.
        return Err(bad(MalformedKind::BadTotalLength, Some(next)));
    }
    // `claimed` ends the packet as its header says; `end` ends the bytes captured (NFQUEUE's
    // copy range may cut the packet short; link-layer padding beyond `claimed` is ignored).
    let claimed = 40 + announced;
    let end = buf.len().min(claimed);
    let mut offset = 40;
    // Inside a first fragment with more to come: the rest of the datagram is in later fragments.
    let mut fragmented = false;
    // A header that needs `size` bytes from `offset`: beyond the claimed length the chain is
    // broken (malformed), unless this is a first fragment whose chain goes on in the next one;
    // within the claimed length but beyond the captured bytes, the transport header is out of
    // reach.
    let reach = |offset: usize, size: usize, protocol: u8, fragmented: bool| {
        if offset + size > claimed {
            if fragmented {
                Err(Ok(Transport::Unreachable { protocol }))
            } else {
                Err(Err(bad(MalformedKind::BadExtensionHeaders, Some(protocol))))
            }
        } else if offset + size > end {
            Err(Ok(Transport::Unreachable { protocol }))
        } else {
            Ok(())
        }
    };
    // Each extension header is at least 8 bytes long, so the walk ends within `claimed / 8` steps.
    let transport = loop {
        match next {
            // Hop-by-hop options are only valid right after the fixed header; elsewhere the
            // receiver discards the packet.
            0 if offset != 40 => return Err(bad(MalformedKind::BadExtensionHeaders, Some(next))),
            // Hop-by-hop, routing, destination options (length in 8-octet units beyond the
            // first 8) and AH (length in 4-octet units beyond the first 8).
            0 | 43 | 60 | 51 => {
                if let Err(stop) = reach(offset, 2, next, fragmented) {
                    break stop;
                }
                let (nh, len) = (buf[offset], usize::from(buf[offset + 1]));
                let size = if next == 51 { (len + 2) * 4 } else { (len + 1) * 8 };
                if offset + size > claimed {
                    if fragmented {
                        break Ok(Transport::Unreachable { protocol: next });
                    }
                    return Err(bad(MalformedKind::BadExtensionHeaders, Some(next)));
                }
                next = nh;
                offset += size;
            }
            // Fragment header: 8 bytes, offset in the upper 13 bits of bytes 2..4, M flag in bit 0.
            44 => {
                if let Err(stop) = reach(offset, 8, next, fragmented) {
                    break stop;
                }
                let frag = &buf[offset..offset + 8];
                let nh = frag[0];
                let fragment_offset = u16::from_be_bytes([frag[2], frag[3]]) >> 3;
                if fragment_offset != 0 {
                    return Ok(Packet { src, dst, transport: Transport::LaterFragment { protocol: nh } });
                }
                fragmented |= frag[3] & 1 == 1;
                offset += 8;
                next = nh;
            }
            protocol => {
                let payload = &buf[offset.min(end)..end];
                break match transport(protocol, payload, claimed - offset, fragmented) {
                    Err(_) if fragmented => Ok(Transport::Unreachable { protocol }),
                    other => other.map_err(|kind| bad(kind, Some(protocol))),
                };
            }
        }
    };
    Ok(Packet { src, dst, transport: transport? })
}

/// Parses the transport header. `payload` holds the bytes present (possibly truncated),
/// `announced` the IP payload length from the headers. `first_fragment`: the packet is the first
/// fragment of a larger datagram, so a UDP length beyond `announced` is not an error (the rest
/// of the datagram is in later fragments; `payload_len` keeps the UDP length).
///
/// A header that fits in `announced` but not in the bytes present is out of reach:
/// [`Transport::Unreachable`]. A header that does not even fit in `announced` is malformed.
fn transport(
    protocol: u8,
    payload: &[u8],
    announced: usize,
    first_fragment: bool,
) -> Result<Transport<'_>, MalformedKind> {
    match protocol {
        PROTO_TCP => {
            use pnet_packet::tcp::TcpPacket;
            if announced < 20 {
                return Err(MalformedKind::BadTcpHeader);
            }
            if payload.len() < 20 {
                return Ok(Transport::Unreachable { protocol });
            }
            let tcp = TcpPacket::new(payload).ok_or(MalformedKind::BadTcpHeader)?;
            let header_len = usize::from(tcp.get_data_offset()) * 4;
            if header_len < 20 || header_len > announced {
                return Err(MalformedKind::BadTcpHeader);
            }
            if header_len > payload.len() {
                return Ok(Transport::Unreachable { protocol });
            }
            Ok(Transport::Tcp(TcpSegment {
                src_port: tcp.get_source(),
                dst_port: tcp.get_destination(),
                seq: tcp.get_sequence(),
                flags: TcpFlags(payload[13]),
                payload: &payload[header_len..],
                payload_len: announced - header_len,
            }))
        }
        PROTO_UDP => {
            use pnet_packet::udp::UdpPacket;
            if announced < 8 {
                return Err(MalformedKind::BadUdpHeader);
            }
            if payload.len() < 8 {
                return Ok(Transport::Unreachable { protocol });
            }
            let udp = UdpPacket::new(payload).ok_or(MalformedKind::BadUdpHeader)?;
            let udp_len = usize::from(udp.get_length());
            if udp_len < 8 || (udp_len > announced && !first_fragment) {
                return Err(MalformedKind::BadUdpHeader);
            }
            let present = payload.len().min(udp_len).min(announced);
            Ok(Transport::Udp(UdpDatagram {
                src_port: udp.get_source(),
                dst_port: udp.get_destination(),
                payload: &payload[8..present],
                payload_len: udp_len - 8,
            }))
        }
        protocol => Ok(Transport::Other { protocol, payload_len: announced }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC4: [u8; 4] = [192, 0, 2, 10];
    const DST4: [u8; 4] = [198, 51, 100, 20];

    fn ipv4_with(ihl: u8, total: u16, frag: u16, protocol: u8, options: &[u8], l4: &[u8]) -> Vec<u8> {
        let [t0, t1] = total.to_be_bytes();
        let [f0, f1] = frag.to_be_bytes();
        let mut p = vec![0x40 | ihl, 0, t0, t1, 0, 1, f0, f1, 64, protocol, 0, 0];
        p.extend_from_slice(&SRC4);
        p.extend_from_slice(&DST4);
        p.extend_from_slice(options);
        p.extend_from_slice(l4);
        p
    }

    fn ipv4(protocol: u8, l4: &[u8]) -> Vec<u8> {
        ipv4_with(5, (20 + l4.len()) as u16, 0, protocol, &[], l4)
    }

    fn udp_header(len: u16) -> Vec<u8> {
        let [l0, l1] = len.to_be_bytes();
        vec![0x0D, 0xCB, 0x04, 0xBE, l0, l1, 0, 0]
    }

    fn udp_l4(payload: &[u8]) -> Vec<u8> {
        let mut l4 = udp_header(8 + payload.len() as u16);
        l4.extend_from_slice(payload);
        l4
    }

    fn tcp_l4(data_offset: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut l4 = vec![
            0x9C,
            0x40,
            0x00,
            0x50,
            0,
            0,
            0x03,
            0xE8,
            0,
            0,
            0,
            0,
            data_offset << 4,
            flags,
            0xFF,
            0xFF,
            0,
            0,
            0,
            0,
        ];
        l4.resize(usize::from(data_offset.max(5)) * 4, 1);
        l4.extend_from_slice(payload);
        l4
    }

    fn ipv6(next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let len = (ext.len() + l4.len()) as u16;
        let [l0, l1] = len.to_be_bytes();
        let mut p = vec![0x60, 0, 0, 0, l0, l1, next, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20]);
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    fn kind(buf: &[u8]) -> MalformedKind {
        parse(buf).unwrap_err().kind
    }

    #[test]
    fn ipv4_udp_and_ethernet_padding() {
        let payload = [0x28u8; 17];
        let mut frame = ipv4(17, &udp_l4(&payload));
        frame.extend_from_slice(&[0, 0, 0, 0, 0]); // link-layer padding
        let p = parse(&frame).unwrap();
        assert_eq!(p.src, IpAddr::from(SRC4));
        let Transport::Udp(d) = p.transport else { panic!("udp") };
        assert_eq!((d.src_port, d.dst_port, d.payload_len, d.payload.len()), (3531, 1214, 17, 17));
    }

    #[test]
    fn ipv4_tcp_with_options() {
        let l4 = tcp_l4(8, 0x18, b"hello");
        let frame = ipv4_with(6, (24 + l4.len()) as u16, 0, 6, &[1, 1, 1, 0], &l4);
        let Transport::Tcp(s) = parse(&frame).unwrap().transport else { panic!("tcp") };
        assert_eq!(
            (s.src_port, s.dst_port, s.seq, s.payload, s.payload_len),
            (40000, 80, 1000, &b"hello"[..], 5)
        );
        assert!(s.flags.has(TcpFlags::ACK | TcpFlags::PSH) && !s.flags.is_initial_syn());
    }

    #[test]
    fn ipv4_header_lengths_are_validated() {
        let l4 = udp_l4(b"x");
        assert_eq!(
            kind(&ipv4_with(15, 29, 0, 17, &[], &l4)),
            MalformedKind::BadIhl,
            "IHL 15 beyond the buffer"
        );
        assert_eq!(kind(&ipv4_with(4, 29, 0, 17, &[], &l4)), MalformedKind::BadIhl);
        assert_eq!(kind(&ipv4_with(5, 19, 0, 17, &[], &l4)), MalformedKind::BadTotalLength);
        assert_eq!(kind(&ipv4(17, &udp_l4(b"x"))[..19]), MalformedKind::TruncatedIpHeader);
        assert_eq!(kind(&[]), MalformedKind::BadVersion);
        assert_eq!(kind(&[0x50; 40]), MalformedKind::BadVersion);
        let err = parse(&ipv4_with(15, 29, 0, 17, &[], &l4)).unwrap_err();
        assert_eq!(err.addrs, Some((IpAddr::from(SRC4), IpAddr::from(DST4))));
    }

    #[test]
    fn truncated_copies_keep_announced_lengths() {
        let payload = [7u8; 100];
        let frame = ipv4(17, &udp_l4(&payload));
        let Transport::Udp(d) = parse(&frame[..60]).unwrap().transport else { panic!("udp") };
        assert_eq!((d.payload.len(), d.payload_len), (32, 100));
        // IPv4 headers always fit in the copy range: a header cut short is a capture artefact.
        assert_eq!(kind(&frame[..25]), MalformedKind::BadUdpHeader);
        assert_eq!(kind(&ipv4(6, &tcp_l4(5, 0x10, b""))[..30]), MalformedKind::BadTcpHeader);
    }

    #[test]
    fn fragments() {
        let l4 = udp_l4(b"abc");
        let later = ipv4_with(5, 31, 0x0010, 17, &[], &l4);
        assert_eq!(parse(&later).unwrap().transport, Transport::LaterFragment { protocol: 17 });
        let first = ipv4_with(5, 31, 0x2000, 17, &[], &l4);
        assert!(matches!(parse(&first).unwrap().transport, Transport::Udp(_)));
    }

    #[test]
    fn transport_headers_are_validated() {
        assert_eq!(kind(&ipv4(6, &tcp_l4(4, 0x02, b""))), MalformedKind::BadTcpHeader);
        let mut l4 = tcp_l4(5, 0x02, b"");
        l4[12] = 15 << 4;
        assert_eq!(kind(&ipv4(6, &l4)), MalformedKind::BadTcpHeader, "data offset beyond the segment");
        assert_eq!(kind(&ipv4(6, &[0; 19])), MalformedKind::BadTcpHeader);
        let mut short = udp_l4(b"abc");
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(kind(&ipv4(17, &short)), MalformedKind::BadUdpHeader);
        let mut long = udp_l4(b"abc");
        long[4..6].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(kind(&ipv4(17, &long)), MalformedKind::BadUdpHeader);
        // A UDP length shorter than the IP payload: the rest is padding.
        let mut padded = udp_l4(b"abcdef");
        padded[4..6].copy_from_slice(&10u16.to_be_bytes());
        let frame = ipv4(17, &padded);
        let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("udp") };
        assert_eq!(d.payload, b"ab");
        assert_eq!(
            parse(&ipv4(1, &[8, 0, 0, 0])).unwrap().transport,
            Transport::Other { protocol: 1, payload_len: 4 }
        );
    }

    #[test]
    fn ipv6_extension_headers() {
        let l4 = udp_l4(b"ping");
        // hop-by-hop (8) -> destination options (8) -> fragment (offset 0) -> UDP
        let ext = [60, 0, 1, 4, 0, 0, 0, 0, 44, 0, 1, 4, 0, 0, 0, 0, 17, 0, 0, 1, 0, 0, 0, 7];
        let frame = ipv6(0, &ext, &l4);
        let p = parse(&frame).unwrap();
        let Transport::Udp(d) = p.transport else { panic!("udp") };
        assert_eq!(d.payload, b"ping");
        let later = [17, 0, 0x00, 0x09, 0, 0, 0, 7];
        assert_eq!(
            parse(&ipv6(44, &later, &l4)).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        assert_eq!(kind(&ipv6(0, &[60, 4, 0, 0], &[])), MalformedKind::BadExtensionHeaders, "overrun");
        let mut v6 = ipv6(17, &[], &l4);
        v6.extend_from_slice(&[0; 6]);
        let Transport::Udp(d) = parse(&v6).unwrap().transport else { panic!("udp") };
        assert_eq!(d.payload_len, 4, "padding ignored");
        let mut jumbo = ipv6(17, &[], &l4);
        jumbo[4] = 0;
        jumbo[5] = 0;
        assert_eq!(kind(&jumbo), MalformedKind::BadTotalLength);
        assert_eq!(kind(&ipv6(17, &[], &l4)[..39]), MalformedKind::TruncatedIpHeader);
    }

    /// `n` destination-options headers (8 bytes each, PadN) in front of `l4` (`last` next header).
    fn dest_opts(n: usize, last: u8) -> Vec<u8> {
        (0..n).flat_map(|i| [if i + 1 == n { last } else { 60 }, 0, 1, 4, 0, 0, 0, 0]).collect()
    }

    fn v6_udp_behind(n: usize, l4: &[u8]) -> Vec<u8> {
        if n == 0 {
            ipv6(17, &[], l4)
        } else {
            ipv6(60, &dest_opts(n, 17), l4)
        }
    }

    #[test]
    fn ipv6_chains_are_walked_to_the_end_not_counted() {
        let ping = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
        for n in [0, 1, 8, 9, 12, 24, 200] {
            let frame = v6_udp_behind(n, &udp_l4(&ping));
            let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("{n}: udp") };
            assert_eq!((d.dst_port, d.payload), (1214, &ping[..]), "{n} headers");
        }
        // Routing, AH (length in 4-octet units: 2 -> 16 bytes) and hop-by-hop first.
        let mut ext = vec![43, 0, 1, 4, 0, 0, 0, 0, 51, 0, 0, 0, 0, 0, 0, 0, 17, 2, 0, 0];
        ext.extend_from_slice(&[0; 12]);
        let frame = ipv6(0, &ext, &udp_l4(b"x"));
        assert!(matches!(parse(&frame).unwrap().transport, Transport::Udp(d) if d.payload == b"x"));
        // Hop-by-hop anywhere but first is discarded by the receiver: malformed.
        let frame = ipv6(60, &[0, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0], &udp_l4(b"x"));
        assert_eq!(kind(&frame), MalformedKind::BadExtensionHeaders);
    }

    #[test]
    fn ipv6_chain_beyond_the_capture_is_unreachable_beyond_the_length_malformed() {
        let l4 = udp_l4(b"ping");
        let frame = v6_udp_behind(24, &l4);
        assert_eq!(frame.len(), 40 + 24 * 8 + 12);
        // Cut inside the chain, at its end, inside the UDP header: all out of reach.
        for cut in [41, 100, 40 + 24 * 8, 40 + 24 * 8 + 7] {
            let p = parse(&frame[..cut]).unwrap();
            assert!(matches!(p.transport, Transport::Unreachable { .. }), "cut at {cut}: {p:?}");
        }
        assert_eq!(parse(&frame[..100]).unwrap().transport, Transport::Unreachable { protocol: 60 });
        assert_eq!(parse(&frame[..40 + 24 * 8]).unwrap().transport, Transport::Unreachable { protocol: 17 });
        // The UDP header captured, its payload cut: an ordinary truncated datagram.
        let Transport::Udp(d) = parse(&frame[..40 + 24 * 8 + 9]).unwrap().transport else { panic!("udp") };
        assert_eq!((d.payload, d.payload_len), (&b"p"[..], 4));
        // A chain overrunning the announced length is broken, whatever was captured.
        let mut overrun = frame.clone();
        overrun[4..6].copy_from_slice(&((24 * 8 - 4) as u16).to_be_bytes());
        assert_eq!(kind(&overrun), MalformedKind::BadExtensionHeaders);
        // Cut short, the overrun cannot be seen: what was captured is a well-formed prefix.
        assert_eq!(parse(&overrun[..100]).unwrap().transport, Transport::Unreachable { protocol: 60 });
        let mut short_l4 = v6_udp_behind(2, &l4);
        short_l4[4..6].copy_from_slice(&(16 + 4u16).to_be_bytes());
        assert_eq!(kind(&short_l4), MalformedKind::BadUdpHeader, "UDP header beyond the payload length");
        // The same for TCP: header cut by the capture vs. longer than the payload.
        let tcp = ipv6(6, &[], &tcp_l4(8, 0x18, b"data"));
        assert_eq!(parse(&tcp[..40 + 24]).unwrap().transport, Transport::Unreachable { protocol: 6 });
        assert_eq!(parse(&tcp[..40 + 10]).unwrap().transport, Transport::Unreachable { protocol: 6 });
        assert!(matches!(parse(&tcp).unwrap().transport, Transport::Tcp(_)));
    }

    #[test]
    fn ipv6_no_transport_to_judge() {
        for (next, proto) in [(50u8, 50u8), (59, 59), (58, 58), (135, 135), (253, 253)] {
            let frame = ipv6(60, &dest_opts(3, next), &[0xAA; 16]);
            assert_eq!(
                parse(&frame).unwrap().transport,
                Transport::Other { protocol: proto, payload_len: 16 },
                "next header {next}"
            );
        }
    }

    #[test]
    fn ipv6_fragments() {
        let ping = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
        // First fragment (offset 0, M set) holding the whole ping: parsed.
        let first = [17, 0, 0x00, 0x01, 0, 0, 0, 9];
        let frame = ipv6(44, &first, &udp_l4(&ping));
        assert!(matches!(parse(&frame).unwrap().transport, Transport::Udp(d) if d.payload == ping));
        // First fragment of a longer datagram: the UDP length exceeds the fragment.
        let mut l4 = udp_header(8 + 600);
        l4.extend_from_slice(&ping);
        let frame = ipv6(44, &first, &l4);
        let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("udp") };
        assert_eq!((d.payload, d.payload_len), (&ping[..], 600));
        // Later fragment.
        let later = [17, 0, 0x00, 0x11, 0, 0, 0, 9];
        assert_eq!(
            parse(&ipv6(44, &later, &ping)).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        // A later fragment behind destination options.
        let mut ext = dest_opts(2, 44);
        ext.extend_from_slice(&later);
        assert_eq!(
            parse(&ipv6(60, &ext, &ping)).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        // A first fragment whose chain goes on in the next fragment (RFC 7112): out of reach.
        let mut ext = vec![60, 0, 0x00, 0x01, 0, 0, 0, 9];
        ext.extend_from_slice(&[17, 3, 1, 4, 0, 0]);
        assert_eq!(parse(&ipv6(44, &ext, &[])).unwrap().transport, Transport::Unreachable { protocol: 60 });
        // A first fragment cut inside the UDP header.
        let frame = ipv6(44, &first, &udp_l4(&ping)[..4]);
        assert_eq!(parse(&frame).unwrap().transport, Transport::Unreachable { protocol: 17 });
    }
}
