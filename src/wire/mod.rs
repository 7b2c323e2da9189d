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
//!   the buffer was truncated (NFQUEUE copy range); `payload_len` keeps the announced length.
//! - Only first fragments (offset 0) carry a transport header; later fragments are reported as
//!   [`Transport::LaterFragment`].

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
    /// Any other upper-layer protocol (ICMP, GRE, ...), not inspected.
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
    /// IPv6 extension header chain truncated, too long, or malformed.
    BadExtensionHeaders,
    /// TCP header truncated or data offset < 5 / beyond the segment.
    BadTcpHeader,
    /// UDP header truncated, or UDP length < 8 or beyond the IP payload.
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

/// Most IPv6 extension headers walked before giving up.
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

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
    let transport = transport(protocol, payload, payload_len).map_err(|kind| Malformed {
        kind,
        addrs,
        protocol: Some(protocol),
    })?;
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
    let end = buf.len().min(40 + announced);
    let mut offset = 40;
    for _ in 0..=MAX_IPV6_EXTENSION_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options: next header, length in 8-octet units.
            0 | 43 | 60 => {
                let header = buf.get(offset..offset + 2).filter(|_| offset + 2 <= end);
                let Some(&[nh, len]) = header else {
                    return Err(bad(MalformedKind::BadExtensionHeaders, Some(next)));
                };
                let size = (usize::from(len) + 1) * 8;
                if offset + size > end || offset + size > 40 + announced {
                    return Err(bad(MalformedKind::BadExtensionHeaders, Some(next)));
                }
                next = nh;
                offset += size;
            }
            // Fragment header: 8 bytes, offset in the upper 13 bits of bytes 2..4.
            44 => {
                let Some(frag) = buf.get(offset..offset + 8).filter(|_| offset + 8 <= end) else {
                    return Err(bad(MalformedKind::BadExtensionHeaders, Some(next)));
                };
                let nh = frag[0];
                let fragment_offset = u16::from_be_bytes([frag[2], frag[3]]) >> 3;
                offset += 8;
                if fragment_offset != 0 {
                    return Ok(Packet { src, dst, transport: Transport::LaterFragment { protocol: nh } });
                }
                next = nh;
            }
            protocol => {
                let payload_len = (40 + announced).saturating_sub(offset);
                let payload = &buf[offset.min(end)..end];
                let transport =
                    transport(protocol, payload, payload_len).map_err(|kind| bad(kind, Some(protocol)))?;
                return Ok(Packet { src, dst, transport });
            }
        }
    }
    Err(bad(MalformedKind::BadExtensionHeaders, Some(next)))
}

/// Parses the transport header. `payload` holds the bytes present (possibly truncated),
/// `announced` the IP payload length from the headers.
fn transport(protocol: u8, payload: &[u8], announced: usize) -> Result<Transport<'_>, MalformedKind> {
    match protocol {
        PROTO_TCP => {
            use pnet_packet::tcp::TcpPacket;
            if payload.len() < 20 || announced < 20 {
                return Err(MalformedKind::BadTcpHeader);
            }
            let tcp = TcpPacket::new(payload).ok_or(MalformedKind::BadTcpHeader)?;
            let header_len = usize::from(tcp.get_data_offset()) * 4;
            if header_len < 20 || header_len > payload.len() || header_len > announced {
                return Err(MalformedKind::BadTcpHeader);
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
            if payload.len() < 8 || announced < 8 {
                return Err(MalformedKind::BadUdpHeader);
            }
            let udp = UdpPacket::new(payload).ok_or(MalformedKind::BadUdpHeader)?;
            let udp_len = usize::from(udp.get_length());
            if udp_len < 8 || udp_len > announced {
                return Err(MalformedKind::BadUdpHeader);
            }
            Ok(Transport::Udp(UdpDatagram {
                src_port: udp.get_source(),
                dst_port: udp.get_destination(),
                payload: &payload[8..payload.len().min(udp_len)],
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
        assert_eq!(kind(&ipv6(0, &[60, 4, 0, 0], &[])), MalformedKind::BadExtensionHeaders, "truncated");
        let chain: Vec<u8> = (0..10).flat_map(|_| [60u8, 0, 1, 4, 0, 0, 0, 0]).collect();
        assert_eq!(kind(&ipv6(60, &chain, &l4)), MalformedKind::BadExtensionHeaders, "too many");
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
}
