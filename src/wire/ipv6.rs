//! IPv6: the checked parse of an IPv6 packet and its extension-header chain into a [`Packet`],
//! and [`Ipv6Repr`] / [`ExtHeader`] (emit).
//!
//! Invariants (the chain walk itself is described in the [module doc](super)):
//! - `parse` reads a header only after checking that its bytes are within both the claimed
//!   length and the bytes captured; the walk ends within `payload length / 8` steps because each
//!   extension header is at least 8 bytes.
//! - [`Ipv6Repr::emit`] writes the fixed header and the chain in order, each header naming the
//!   next and the last naming the upper-layer protocol; the payload length covers the chain and
//!   the upper layer. It does not check the chain's order (tests emit invalid chains on purpose).

use super::{transport, Malformed, MalformedKind, Packet, Transport};
use pnet_packet::ipv6::Ipv6Packet;
use std::net::{IpAddr, Ipv6Addr};

/// The fixed IPv6 header length.
pub const HEADER_LEN: usize = 40;

/// Hop-by-hop options.
pub const HOP_BY_HOP: u8 = 0;
/// Routing header.
pub const ROUTING: u8 = 43;
/// Fragment header.
pub const FRAGMENT: u8 = 44;
/// Authentication header.
pub const AUTHENTICATION: u8 = 51;
/// Destination options.
pub const DESTINATION_OPTIONS: u8 = 60;

/// Parses a buffer whose version nibble is 6.
pub(super) fn parse(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    if buf.len() < HEADER_LEN {
        return Err(Malformed { kind: MalformedKind::TruncatedIpHeader, addrs: None, protocol: None });
    }
    // pnet checks only the fixed header's size (just done); the payload length it reports is
    // validated against the buffer below, and the extension chain is walked by hand.
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
    let claimed = HEADER_LEN + announced;
    let end = buf.len().min(claimed);
    let mut offset = HEADER_LEN;
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
            HOP_BY_HOP if offset != HEADER_LEN => {
                return Err(bad(MalformedKind::BadExtensionHeaders, Some(next)))
            }
            // Hop-by-hop, routing, destination options (length in 8-octet units beyond the
            // first 8) and AH (length in 4-octet units beyond the first 8).
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | AUTHENTICATION => {
                if let Err(stop) = reach(offset, 2, next, fragmented) {
                    break stop;
                }
                let (nh, len) = (buf[offset], usize::from(buf[offset + 1]));
                let size = if next == AUTHENTICATION { (len + 2) * 4 } else { (len + 1) * 8 };
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
            FRAGMENT => {
                if let Err(stop) = reach(offset, 8, next, fragmented) {
                    break stop;
                }
                let frag = &buf[offset..offset + 8];
                let nh = frag[0];
                let fragment_offset = u16::from_be_bytes([frag[2], frag[3]]) >> 3;
                if fragment_offset != 0 {
                    let transport = Transport::LaterFragment { protocol: nh };
                    return Ok(Packet { src, dst, transport, first_fragment: false });
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
    Ok(Packet { src, dst, transport: transport?, first_fragment: fragmented })
}

/// One IPv6 extension header to emit. Option areas are filled with padding options (Pad1/PadN),
/// routing and authentication bodies with zeros (routing type 0, segments left 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtHeader {
    /// Hop-by-hop options (0), `len` 8-octet units beyond the first 8.
    HopByHop {
        /// Header length field.
        len: u8,
    },
    /// Routing header (43), `len` 8-octet units beyond the first 8.
    Routing {
        /// Header length field.
        len: u8,
    },
    /// Destination options (60), `len` 8-octet units beyond the first 8.
    DestinationOptions {
        /// Header length field.
        len: u8,
    },
    /// Authentication header (51), `len` 4-octet units beyond the first 8.
    Authentication {
        /// Payload length field.
        len: u8,
    },
    /// Fragment header (44): 8 bytes.
    Fragment {
        /// Fragment offset in 8-octet units (13 bits).
        offset: u16,
        /// The M (more fragments) flag.
        more: bool,
        /// Identification.
        ident: u32,
    },
}

impl ExtHeader {
    /// `n` destination-options headers of 8 bytes each.
    pub fn destination_options(n: usize) -> Vec<Self> {
        vec![Self::DestinationOptions { len: 0 }; n]
    }

    /// The next-header value that names this header.
    pub const fn protocol(&self) -> u8 {
        match self {
            Self::HopByHop { .. } => HOP_BY_HOP,
            Self::Routing { .. } => ROUTING,
            Self::DestinationOptions { .. } => DESTINATION_OPTIONS,
            Self::Authentication { .. } => AUTHENTICATION,
            Self::Fragment { .. } => FRAGMENT,
        }
    }

    /// Length in bytes.
    pub const fn header_len(&self) -> usize {
        match *self {
            Self::HopByHop { len } | Self::Routing { len } | Self::DestinationOptions { len } => {
                (len as usize + 1) * 8
            }
            Self::Authentication { len } => (len as usize + 2) * 4,
            Self::Fragment { .. } => 8,
        }
    }

    /// Writes the header, naming `next` as the following header, into `buf[..self.header_len()]`.
    ///
    /// # Panics
    /// If `buf` is too short or a fragment offset wider than 13 bits.
    pub fn emit(&self, buf: &mut [u8], next: u8) {
        let header = &mut buf[..self.header_len()];
        header.fill(0);
        header[0] = next;
        match *self {
            Self::HopByHop { len } | Self::DestinationOptions { len } => {
                header[1] = len;
                pad_options(&mut header[2..]);
            }
            Self::Routing { len } | Self::Authentication { len } => header[1] = len,
            Self::Fragment { offset, more, ident } => {
                assert!(offset <= 0x1FFF, "IPv6 fragment offset is 13 bits");
                header[2..4].copy_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
                header[4..8].copy_from_slice(&ident.to_be_bytes());
            }
        }
    }
}

/// Fills an option area with PadN options (Pad1 for a single byte left).
fn pad_options(mut area: &mut [u8]) {
    while !area.is_empty() {
        if area.len() == 1 {
            area[0] = 0;
            return;
        }
        let n = (area.len() - 2).min(255);
        area[0] = 1;
        area[1] = n as u8;
        area[2..2 + n].fill(0);
        area = &mut area[2 + n..];
    }
}

/// The IPv6 header fields to emit, with an extension-header chain. Version, payload length and
/// next headers are computed; traffic class and flow label are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr<'a> {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Hop limit.
    pub hop_limit: u8,
    /// Extension headers, in order, between the fixed header and the upper layer.
    pub ext: &'a [ExtHeader],
}

impl Ipv6Repr<'_> {
    /// No extension headers, hop limit 64.
    pub const fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        Self { src, dst, hop_limit: 64, ext: &[] }
    }

    /// The fixed header plus the extension headers.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.ext.iter().map(ExtHeader::header_len).sum::<usize>()
    }

    /// Writes the fixed header and the chain, the last header naming `protocol` and the upper
    /// layer being `payload_len` bytes long, into `buf[..self.header_len()]`.
    ///
    /// # Panics
    /// If `buf` is too short or the chain plus payload longer than 65,535 bytes.
    pub fn emit(&self, buf: &mut [u8], protocol: u8, payload_len: usize) {
        let header_len = self.header_len();
        let len = u16::try_from(header_len - HEADER_LEN + payload_len)
            .expect("an IPv6 payload fits in 65,535 bytes");
        let first = self.ext.first().map_or(protocol, ExtHeader::protocol);
        let fixed = &mut buf[..HEADER_LEN];
        fixed[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        fixed[4..6].copy_from_slice(&len.to_be_bytes());
        fixed[6] = first;
        fixed[7] = self.hop_limit;
        fixed[8..24].copy_from_slice(&self.src.octets());
        fixed[24..40].copy_from_slice(&self.dst.octets());
        let mut offset = HEADER_LEN;
        for (i, ext) in self.ext.iter().enumerate() {
            let next = self.ext.get(i + 1).map_or(protocol, ExtHeader::protocol);
            ext.emit(&mut buf[offset..], next);
            offset += ext.header_len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit, parse, IpRepr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
    use proptest::prelude::*;

    const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
    const UDP: TransportRepr<'static> = TransportRepr::Udp(UdpRepr { src_port: 3531, dst_port: 1214 });

    fn repr(ext: &[ExtHeader]) -> Ipv6Repr<'_> {
        Ipv6Repr {
            ext,
            ..Ipv6Repr::new("2001:db8:1::10".parse().unwrap(), "2001:db8:2::20".parse().unwrap())
        }
    }

    /// An IPv6 packet with the chain `ext` before `transport` and `payload`.
    fn v6(ext: &[ExtHeader], transport: TransportRepr<'_>, payload: &[u8]) -> Vec<u8> {
        emit(&IpRepr::V6(repr(ext)), &transport, payload)
    }

    /// An IPv6 packet whose bytes after the fixed header are `raw`, the fixed header naming `next`.
    fn raw(next: u8, raw: &[u8]) -> Vec<u8> {
        v6(&[], TransportRepr::Raw { protocol: next }, raw)
    }

    fn v6_udp_behind(n: usize, payload: &[u8]) -> Vec<u8> {
        v6(&ExtHeader::destination_options(n), UDP, payload)
    }

    fn with_payload_len(mut packet: Vec<u8>, len: u16) -> Vec<u8> {
        packet[4..6].copy_from_slice(&len.to_be_bytes());
        packet
    }

    fn kind(buf: &[u8]) -> MalformedKind {
        parse(buf).unwrap_err().kind
    }

    /// Reads the fixed header and the chain back from the bytes: the repr, the upper-layer
    /// protocol and its length.
    fn read_back(p: &[u8], ext: &mut Vec<ExtHeader>) -> (Ipv6Addr, Ipv6Addr, u8, u8, usize) {
        let octets = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&p[at..at + 16]).unwrap());
        let (mut next, mut offset) = (p[6], HEADER_LEN);
        loop {
            let h = &p[offset..];
            let header = match next {
                HOP_BY_HOP => ExtHeader::HopByHop { len: h[1] },
                ROUTING => ExtHeader::Routing { len: h[1] },
                DESTINATION_OPTIONS => ExtHeader::DestinationOptions { len: h[1] },
                AUTHENTICATION => ExtHeader::Authentication { len: h[1] },
                FRAGMENT => {
                    let word = u16::from_be_bytes([h[2], h[3]]);
                    let ident = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                    ExtHeader::Fragment { offset: word >> 3, more: word & 1 == 1, ident }
                }
                _ => break,
            };
            ext.push(header);
            next = h[0];
            offset += header.header_len();
        }
        let len = usize::from(u16::from_be_bytes([p[4], p[5]])) + HEADER_LEN - offset;
        (octets(8), octets(24), p[7], next, len)
    }

    #[test]
    fn known_bytes() {
        // hop-by-hop -> routing -> AH (16 bytes) -> fragment -> UDP, byte by byte.
        let ext = [
            ExtHeader::HopByHop { len: 0 },
            ExtHeader::Routing { len: 0 },
            ExtHeader::Authentication { len: 2 },
            ExtHeader::Fragment { offset: 2, more: true, ident: 7 },
        ];
        let p = v6(&ext, TransportRepr::Raw { protocol: 17 }, &[]);
        let mut expected = vec![0x60, 0, 0, 0, 0, 40, 0, 64];
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20]);
        expected.extend_from_slice(&[43, 0, 1, 4, 0, 0, 0, 0, 51, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[44, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[17, 0, 0x00, 0x11, 0, 0, 0, 7]);
        assert_eq!(p, expected);
        // Option areas longer than one PadN: PadN 255, then PadN or Pad1 for the rest.
        let mut area = [0xEE; 262];
        pad_options(&mut area);
        assert_eq!((area[0], area[1], area[257], area[258], area[259]), (1, 255, 1, 3, 0));
        let mut area = [0xEE; 258];
        pad_options(&mut area);
        assert_eq!((area[256], area[257]), (0, 0), "a Pad1 last");
        let mut p = v6(&[ExtHeader::DestinationOptions { len: 40 }], UDP, b"x");
        assert!(matches!(parse(&p).unwrap().transport, Transport::Udp(d) if d.payload == b"x"));
        p[40 + 2] = 0xEE;
        assert!(parse(&p).is_ok(), "the option contents are never read");
    }

    #[test]
    fn extension_headers() {
        // hop-by-hop (8) -> destination options (8) -> fragment (offset 0) -> UDP
        let ext = [
            ExtHeader::HopByHop { len: 0 },
            ExtHeader::DestinationOptions { len: 0 },
            ExtHeader::Fragment { offset: 0, more: true, ident: 7 },
        ];
        let frame = v6(&ext, UDP, b"ping");
        let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("udp") };
        assert_eq!(d.payload, b"ping");
        let later = [ExtHeader::Fragment { offset: 1, more: true, ident: 7 }];
        assert_eq!(
            parse(&v6(&later, UDP, b"ping")).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        assert_eq!(kind(&raw(0, &[60, 4, 0, 0])), MalformedKind::BadExtensionHeaders, "overrun");
        let mut padded = v6(&[], UDP, b"ping");
        padded.extend_from_slice(&[0; 6]);
        let Transport::Udp(d) = parse(&padded).unwrap().transport else { panic!("udp") };
        assert_eq!(d.payload_len, 4, "padding ignored");
        assert_eq!(kind(&with_payload_len(v6(&[], UDP, b"ping"), 0)), MalformedKind::BadTotalLength, "jumbo");
        assert_eq!(kind(&v6(&[], UDP, b"ping")[..39]), MalformedKind::TruncatedIpHeader);
    }

    #[test]
    fn chains_are_walked_to_the_end_not_counted() {
        for n in [0, 1, 8, 9, 12, 24, 200] {
            let frame = v6_udp_behind(n, &PING);
            let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("{n}: udp") };
            assert_eq!((d.dst_port, d.payload), (1214, &PING[..]), "{n} headers");
        }
        // Routing, AH (length in 4-octet units: 2 -> 16 bytes) and hop-by-hop first.
        let ext = [
            ExtHeader::HopByHop { len: 0 },
            ExtHeader::Routing { len: 0 },
            ExtHeader::Authentication { len: 2 },
        ];
        assert!(
            matches!(parse(&v6(&ext, UDP, b"x")).unwrap().transport, Transport::Udp(d) if d.payload == b"x")
        );
        // Hop-by-hop anywhere but first is discarded by the receiver: malformed.
        let ext = [ExtHeader::DestinationOptions { len: 0 }, ExtHeader::HopByHop { len: 0 }];
        assert_eq!(kind(&v6(&ext, UDP, b"x")), MalformedKind::BadExtensionHeaders);
    }

    #[test]
    fn chain_beyond_the_capture_is_unreachable_beyond_the_length_malformed() {
        let frame = v6_udp_behind(24, b"ping");
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
        let overrun = with_payload_len(frame, 24 * 8 - 4);
        assert_eq!(kind(&overrun), MalformedKind::BadExtensionHeaders);
        // Cut short, the overrun cannot be seen: what was captured is a well-formed prefix.
        assert_eq!(parse(&overrun[..100]).unwrap().transport, Transport::Unreachable { protocol: 60 });
        let short_l4 = with_payload_len(v6_udp_behind(2, b"ping"), 16 + 4);
        assert_eq!(kind(&short_l4), MalformedKind::BadUdpHeader, "UDP header beyond the payload length");
        // The same for TCP: header cut by the capture vs. longer than the payload.
        let tcp = TcpRepr { options: &[1; 12], ..TcpRepr::new(40000, 80, 1000, TcpFlags(0x18)) };
        let tcp = v6(&[], TransportRepr::Tcp(tcp), b"data");
        assert_eq!(parse(&tcp[..40 + 24]).unwrap().transport, Transport::Unreachable { protocol: 6 });
        assert_eq!(parse(&tcp[..40 + 10]).unwrap().transport, Transport::Unreachable { protocol: 6 });
        assert!(matches!(parse(&tcp).unwrap().transport, Transport::Tcp(_)));
    }

    #[test]
    fn no_transport_to_judge() {
        for next in [50u8, 59, 58, 135, 253] {
            let frame =
                v6(&ExtHeader::destination_options(3), TransportRepr::Raw { protocol: next }, &[0xAA; 16]);
            assert_eq!(
                parse(&frame).unwrap().transport,
                Transport::Other { protocol: next, payload_len: 16 },
                "next header {next}"
            );
        }
    }

    #[test]
    fn fragments() {
        // First fragment (offset 0, M set) holding the whole ping: parsed.
        let first = [ExtHeader::Fragment { offset: 0, more: true, ident: 9 }];
        let frame = v6(&first, UDP, &PING);
        assert!(matches!(parse(&frame).unwrap().transport, Transport::Udp(d) if d.payload == PING));
        // First fragment of a longer datagram: the UDP length exceeds the fragment.
        let mut frame = v6(&first, UDP, &PING);
        frame[48 + 4..48 + 6].copy_from_slice(&(8u16 + 600).to_be_bytes());
        let Transport::Udp(d) = parse(&frame).unwrap().transport else { panic!("udp") };
        assert_eq!((d.payload, d.payload_len), (&PING[..], 600));
        // Later fragment.
        let later = ExtHeader::Fragment { offset: 2, more: true, ident: 9 };
        let ping = TransportRepr::Raw { protocol: 17 };
        assert_eq!(
            parse(&v6(&[later], ping, &PING)).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        // A later fragment behind destination options.
        let mut ext = ExtHeader::destination_options(2);
        ext.push(later);
        assert_eq!(
            parse(&v6(&ext, ping, &PING)).unwrap().transport,
            Transport::LaterFragment { protocol: 17 }
        );
        // A first fragment whose chain goes on in the next fragment (RFC 7112): out of reach.
        let frame = v6(&first, TransportRepr::Raw { protocol: 60 }, &[17, 3, 1, 4, 0, 0]);
        assert_eq!(parse(&frame).unwrap().transport, Transport::Unreachable { protocol: 60 });
        // A first fragment cut inside the UDP header.
        let frame = v6(&first, TransportRepr::Raw { protocol: 17 }, &[0x0D, 0xCB, 0x04, 0xBE]);
        assert_eq!(parse(&frame).unwrap().transport, Transport::Unreachable { protocol: 17 });
    }

    fn ext_header() -> impl Strategy<Value = ExtHeader> {
        prop_oneof![
            (0u8..4).prop_map(|len| ExtHeader::Routing { len }),
            (0u8..40).prop_map(|len| ExtHeader::DestinationOptions { len }),
            (0u8..4).prop_map(|n| ExtHeader::Authentication { len: n * 2 }),
            (any::<bool>(), any::<u32>()).prop_map(|(more, ident)| ExtHeader::Fragment {
                offset: 0,
                more,
                ident
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(
            (src, dst, hop_limit) in any::<([u8; 16], [u8; 16], u8)>(),
            hop_by_hop in proptest::option::of(0u8..4),
            chain in proptest::collection::vec(ext_header(), 0..12),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let ext: Vec<ExtHeader> =
                hop_by_hop.map(|len| ExtHeader::HopByHop { len }).into_iter().chain(chain).collect();
            let ip = Ipv6Repr { src: src.into(), dst: dst.into(), hop_limit, ext: &ext };
            let p = emit(&IpRepr::V6(ip), &UDP, &payload);
            let mut read = Vec::new();
            prop_assert_eq!(read_back(&p, &mut read), (ip.src, ip.dst, hop_limit, 17, 8 + payload.len()));
            prop_assert_eq!(&read, &ext);
            let parsed = parse(&p).unwrap();
            prop_assert_eq!((parsed.src, parsed.dst), (IpAddr::V6(ip.src), IpAddr::V6(ip.dst)));
            let Transport::Udp(d) = parsed.transport else { panic!("udp: {parsed:?}") };
            prop_assert_eq!((d.src_port, d.dst_port, d.payload), (3531, 1214, &payload[..]));
        }
    }
}
