//! TCP: the checked segment view [`TcpSegment`] (parse) and [`TcpRepr`] (emit).
//!
//! Invariants:
//! - `parse` reads only bytes whose presence it checked first, and returns a payload slice of
//!   the bytes present (possibly fewer than `payload_len`, the length the IP header announced).
//! - A header that fits in the announced length but not in the bytes present is out of reach
//!   ([`Transport::Unreachable`]); one that does not fit in the announced length, or a data
//!   offset below 5, is [`MalformedKind::BadTcpHeader`].
//! - [`TcpRepr::emit`] writes a header whose data offset covers its options and whose checksum
//!   verifies under the IP pseudo-header of the packet it is emitted in.

use super::checksum;
use super::{IpRepr, MalformedKind, Transport, PROTO_TCP};
use pnet_packet::tcp::TcpPacket;

/// The fixed TCP header length (data offset 5).
pub const HEADER_LEN: usize = 20;

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
    /// Acknowledgment number (meaningful when the ACK flag is set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Payload bytes present in the buffer (may be shorter than `payload_len` if truncated).
    pub payload: &'a [u8],
    /// Payload length announced by the IP header minus the TCP header.
    pub payload_len: usize,
}

/// Parses a TCP header. `payload` holds the IP payload bytes present, `announced` the IP payload
/// length from the headers.
pub(super) fn parse(payload: &[u8], announced: usize) -> Result<Transport<'_>, MalformedKind> {
    if announced < HEADER_LEN {
        return Err(MalformedKind::BadTcpHeader);
    }
    if payload.len() < HEADER_LEN {
        return Ok(Transport::Unreachable { protocol: PROTO_TCP });
    }
    // pnet checks only the minimum header size (just done); the data offset is validated here.
    let tcp = TcpPacket::new(payload).ok_or(MalformedKind::BadTcpHeader)?;
    let header_len = usize::from(tcp.get_data_offset()) * 4;
    if header_len < HEADER_LEN || header_len > announced {
        return Err(MalformedKind::BadTcpHeader);
    }
    if header_len > payload.len() {
        return Ok(Transport::Unreachable { protocol: PROTO_TCP });
    }
    Ok(Transport::Tcp(TcpSegment {
        src_port: tcp.get_source(),
        dst_port: tcp.get_destination(),
        seq: tcp.get_sequence(),
        ack: tcp.get_acknowledgement(),
        // CWR … FIN, byte 13 on the wire.
        flags: TcpFlags(tcp.get_flags()),
        payload: &payload[header_len..],
        payload_len: announced - header_len,
    }))
}

/// The TCP header fields to emit. The checksum and data offset are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (written whether or not ACK is set).
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Receive window.
    pub window: u16,
    /// Raw option bytes, a multiple of 4 long and at most 40.
    pub options: &'a [u8],
}

impl TcpRepr<'_> {
    /// A segment with acknowledgment number 0, window 65535 and no options.
    pub const fn new(src_port: u16, dst_port: u16, seq: u32, flags: TcpFlags) -> Self {
        Self { src_port, dst_port, seq, ack: 0, flags, window: 0xFFFF, options: &[] }
    }

    /// Header length including options.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Writes the header and `payload` into `buf[..header_len() + payload.len()]`, with the
    /// checksum under `ip`'s pseudo-header.
    ///
    /// # Panics
    /// If `buf` is too short, or the options are not a multiple of 4 bytes up to 40.
    pub fn emit(&self, buf: &mut [u8], ip: &IpRepr<'_>, payload: &[u8]) {
        assert!(self.options.len() % 4 == 0 && self.options.len() <= 40, "TCP options: 4n bytes, n <= 10");
        let header_len = self.header_len();
        let segment = &mut buf[..header_len + payload.len()];
        segment[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        segment[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        segment[4..8].copy_from_slice(&self.seq.to_be_bytes());
        segment[8..12].copy_from_slice(&self.ack.to_be_bytes());
        segment[12] = ((header_len / 4) as u8) << 4;
        segment[13] = self.flags.0;
        segment[14..16].copy_from_slice(&self.window.to_be_bytes());
        segment[16..20].fill(0); // checksum, urgent pointer
        segment[HEADER_LEN..header_len].copy_from_slice(self.options);
        segment[header_len..].copy_from_slice(payload);
        let sum = checksum::segment(ip.pseudo_header(PROTO_TCP, segment.len()), segment);
        segment[16..18].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{emit, parse, IpRepr, Ipv4Repr, TransportRepr};
    use proptest::prelude::*;

    fn ip() -> IpRepr<'static> {
        IpRepr::new("192.0.2.10".parse().unwrap(), "198.51.100.20".parse().unwrap()).unwrap()
    }

    /// A TCP packet over `ip()` whose data offset is then forced to `data_offset`.
    fn with_data_offset(data_offset: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = emit(&ip(), &TransportRepr::Tcp(TcpRepr::new(40000, 80, 1000, TcpFlags(0x02))), payload);
        p[20 + 12] = data_offset << 4;
        p
    }

    fn kind(buf: &[u8]) -> MalformedKind {
        parse(buf).unwrap_err().kind
    }

    /// Reads every header field back (the ones `parse` does not expose from the bytes).
    fn read_back<'a>(segment: TcpSegment<'a>, raw: &'a [u8]) -> TcpRepr<'a> {
        let header_len = usize::from(raw[12] >> 4) * 4;
        TcpRepr {
            src_port: segment.src_port,
            dst_port: segment.dst_port,
            seq: segment.seq,
            ack: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            flags: segment.flags,
            window: u16::from_be_bytes([raw[14], raw[15]]),
            options: &raw[HEADER_LEN..header_len],
        }
    }

    fn round_trip(ip: &IpRepr<'_>, repr: &TcpRepr<'_>, payload: &[u8]) {
        let packet = emit(ip, &TransportRepr::Tcp(*repr), payload);
        let l4 = &packet[ip.header_len()..];
        assert_eq!(checksum::segment(ip.pseudo_header(PROTO_TCP, l4.len()), l4), 0, "checksum verifies");
        let parsed = parse(&packet).unwrap();
        assert_eq!((parsed.src, parsed.dst), (ip.src(), ip.dst()));
        let Transport::Tcp(s) = parsed.transport else { panic!("tcp: {parsed:?}") };
        assert_eq!((s.payload, s.payload_len), (payload, payload.len()));
        assert_eq!(read_back(s, l4), *repr);
    }

    #[test]
    fn emit_parses_back_with_options_over_both_families() {
        let repr = TcpRepr { ack: 77, window: 0xFAF0, ..TcpRepr::new(40000, 80, 1000, TcpFlags(0x18)) };
        round_trip(&ip(), &repr, b"hello");
        round_trip(&ip(), &TcpRepr { options: &[2, 4, 5, 0xB4, 1, 1, 4, 2], ..repr }, b"hello");
        let v6 = IpRepr::new("2001:db8:1::10".parse().unwrap(), "2001:db8:2::20".parse().unwrap()).unwrap();
        round_trip(&v6, &repr, b"odd");
        round_trip(&v6, &TcpRepr::new(1, 2, 3, TcpFlags(0x02)), &[]);
    }

    #[test]
    fn known_checksum() {
        // An IPv4 SYN, its checksum summed word by word here, independently of `checksum`.
        let ip = IpRepr::V4(Ipv4Repr::new([10, 0, 0, 1].into(), [10, 0, 0, 2].into()));
        let repr = TcpRepr { window: 64240, ..TcpRepr::new(0xC350, 80, 0x1234_5678, TcpFlags(0x02)) };
        let p = emit(&ip, &TransportRepr::Tcp(repr), &[]);
        let mut sum = 0u32;
        for w in [0x0A00, 0x0001, 0x0A00, 0x0002, 0x0006, 20] {
            sum += w;
        }
        for w in [0xC350, 80, 0x1234, 0x5678, 0, 0, 0x5002, 64240, 0, 0] {
            sum += w;
        }
        let expected = !(((sum & 0xFFFF) + (sum >> 16)) as u16);
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), expected);
    }

    #[test]
    fn headers_are_validated() {
        assert_eq!(kind(&with_data_offset(4, b"")), MalformedKind::BadTcpHeader, "data offset < 5");
        assert_eq!(kind(&with_data_offset(15, b"")), MalformedKind::BadTcpHeader, "beyond the segment");
        let mut short = emit(&ip(), &TransportRepr::Raw { protocol: PROTO_TCP }, &[0; 19]);
        assert_eq!(kind(&short), MalformedKind::BadTcpHeader, "shorter than 20 bytes");
        short.truncate(20);
        assert_eq!(kind(&short), MalformedKind::BadTcpHeader);
    }

    proptest! {
        #[test]
        fn round_trips(
            v6 in any::<bool>(),
            (src_port, dst_port, seq, ack, flags, window) in any::<(u16, u16, u32, u32, u8, u16)>(),
            options in proptest::collection::vec(any::<u8>(), 0..=10).prop_map(|w| {
                w.iter().flat_map(|b| [*b; 4]).collect::<Vec<u8>>()
            }),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let ip = if v6 {
                IpRepr::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap()).unwrap()
            } else {
                ip()
            };
            let repr = TcpRepr { src_port, dst_port, seq, ack, flags: TcpFlags(flags), window, options: &options };
            round_trip(&ip, &repr, &payload);
        }
    }
}
