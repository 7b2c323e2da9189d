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

/// Parses an L3 buffer (IPv4 or IPv6 header first).
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    let _ = buf;
    unimplemented!("wire::parse is being written")
}
