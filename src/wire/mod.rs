//! The packets NFQUEUE delivers (IP header first): [`parse`] into checked views, and [`emit`]
//! from header representations, one file per header (smoltcp's shape).
//!
//! - [`ipv4`], [`ipv6`] (with the extension-header chain), [`tcp`] and [`udp`]: each holds the
//!   parse of its header and its `*Repr` with `emit`.
//! - [`checksum`]: the Internet checksum and the pseudo-headers.
//! - [`link`]: link-layer decoding of capture records (pcap link types) down to the IP packet.
//!
//! [`parse`] reads header fields only at offsets it has checked to be within the buffer and the
//! lengths the headers announce. [`emit`] fills in every length, next-header and checksum field,
//! so `parse(&emit(..))` gives back the fields it was given (each header's tests check it).
//!
//! Invariants of [`parse`], relied on by the engine:
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

pub mod checksum;
pub mod ipv4;
pub mod ipv6;
pub mod link;
pub mod tcp;
pub mod udp;

pub use ipv4::Ipv4Repr;
pub use ipv6::{ExtHeader, Ipv6Repr};
pub use tcp::{TcpFlags, TcpRepr, TcpSegment};
pub use udp::{UdpDatagram, UdpRepr};

use std::fmt;
use std::net::IpAddr;

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
    /// The packet is the first fragment of a datagram that continues in later fragments (IPv4:
    /// MF set at offset 0; IPv6: a fragment header with M set at offset 0): its transport
    /// payload is incomplete whatever its headers say.
    pub first_fragment: bool,
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

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadVersion => "empty buffer or IP version not 4 or 6",
            Self::TruncatedIpHeader => "buffer shorter than the fixed IP header",
            Self::BadIhl => "IPv4 header length below 20 bytes or beyond the buffer",
            Self::BadTotalLength => "IP total or payload length inconsistent with the header",
            Self::BadExtensionHeaders => {
                "IPv6 extension header beyond the payload length, or hop-by-hop options not first"
            }
            Self::BadTcpHeader => {
                "TCP data offset below 20 bytes, or TCP header beyond the IP payload or the bytes captured"
            }
            Self::BadUdpHeader => {
                "UDP length below 8 bytes or beyond the IP payload, or UDP header beyond the bytes captured"
            }
        })
    }
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
        write!(f, "malformed packet: {}", self.kind)
    }
}

impl std::error::Error for Malformed {}

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Parses an L3 buffer (IPv4 or IPv6 header first).
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, Malformed> {
    match buf.first().map(|b| b >> 4) {
        Some(4) => ipv4::parse(buf),
        Some(6) => ipv6::parse(buf),
        _ => Err(Malformed { kind: MalformedKind::BadVersion, addrs: None, protocol: None }),
    }
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
        PROTO_TCP => tcp::parse(payload, announced),
        PROTO_UDP => udp::parse(payload, announced, first_fragment),
        protocol => Ok(Transport::Other { protocol, payload_len: announced }),
    }
}

/// The IP layer of a packet to [`emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRepr<'a> {
    /// IPv4.
    V4(Ipv4Repr),
    /// IPv6, with its extension-header chain.
    V6(Ipv6Repr<'a>),
}

impl IpRepr<'_> {
    /// Default header fields from `src` to `dst` ([`Ipv4Repr::new`], [`Ipv6Repr::new`]); `None`
    /// if the address families differ.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(Self::V4(Ipv4Repr::new(s, d))),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(Self::V6(Ipv6Repr::new(s, d))),
            _ => None,
        }
    }

    /// Source address.
    pub fn src(&self) -> IpAddr {
        match self {
            Self::V4(ip) => IpAddr::V4(ip.src),
            Self::V6(ip) => IpAddr::V6(ip.src),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            Self::V4(ip) => IpAddr::V4(ip.dst),
            Self::V6(ip) => IpAddr::V6(ip.dst),
        }
    }

    /// Length of the IP header(s), IPv6 extension headers included.
    pub fn header_len(&self) -> usize {
        match self {
            Self::V4(_) => ipv4::HEADER_LEN,
            Self::V6(ip) => ip.header_len(),
        }
    }

    /// Writes the IP header(s) for `protocol` and an upper layer of `payload_len` bytes into
    /// `buf[..self.header_len()]`. Panics as [`Ipv4Repr::emit`] and [`Ipv6Repr::emit`] do.
    pub fn emit(&self, buf: &mut [u8], protocol: u8, payload_len: usize) {
        match self {
            Self::V4(ip) => ip.emit(buf, protocol, payload_len),
            Self::V6(ip) => ip.emit(buf, protocol, payload_len),
        }
    }

    /// The partial sum of the pseudo-header over which TCP and UDP checksums are computed, for an
    /// upper layer (transport header and payload) of `len` bytes: at most 65,535, which
    /// [`IpRepr::emit`] enforces.
    pub fn pseudo_header(&self, protocol: u8, len: usize) -> u32 {
        match self {
            Self::V4(ip) => checksum::pseudo_header_v4(ip.src, ip.dst, protocol, len as u16),
            Self::V6(ip) => checksum::pseudo_header_v6(ip.src, ip.dst, protocol, len as u32),
        }
    }
}

/// The transport layer of a packet to [`emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportRepr<'a> {
    /// A UDP header; the payload follows it.
    Udp(UdpRepr),
    /// A TCP header; the payload follows it.
    Tcp(TcpRepr<'a>),
    /// No header: the payload is the whole upper layer, named `protocol` (ICMP, ESP, the bytes
    /// of a later fragment, or a hand-made header).
    Raw {
        /// IP protocol / IPv6 next-header value.
        protocol: u8,
    },
}

impl TransportRepr<'_> {
    /// The IP protocol number.
    pub fn protocol(&self) -> u8 {
        match self {
            Self::Udp(_) => PROTO_UDP,
            Self::Tcp(_) => PROTO_TCP,
            Self::Raw { protocol } => *protocol,
        }
    }

    /// Length of the transport header.
    pub fn header_len(&self) -> usize {
        match self {
            Self::Udp(_) => udp::HEADER_LEN,
            Self::Tcp(tcp) => tcp.header_len(),
            Self::Raw { .. } => 0,
        }
    }
}

/// Appends a whole packet to `out`: IP header(s), transport header and `payload`, with every
/// length, next-header and checksum field filled in.
///
/// # Panics
/// If the packet does not fit in the IP length fields (65,535 bytes) or a repr is invalid (see
/// the `emit` of each header).
pub fn emit_into(out: &mut Vec<u8>, ip: &IpRepr<'_>, transport: &TransportRepr<'_>, payload: &[u8]) {
    let start = out.len();
    let (ip_len, l4_len) = (ip.header_len(), transport.header_len() + payload.len());
    out.resize(start + ip_len + l4_len, 0);
    let (header, upper) = out[start..].split_at_mut(ip_len);
    ip.emit(header, transport.protocol(), l4_len);
    match transport {
        TransportRepr::Udp(udp) => udp.emit(upper, ip, payload),
        TransportRepr::Tcp(tcp) => tcp.emit(upper, ip, payload),
        TransportRepr::Raw { .. } => upper.copy_from_slice(payload),
    }
}

/// A whole packet: see [`emit_into`].
pub fn emit(ip: &IpRepr<'_>, transport: &TransportRepr<'_>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ip.header_len() + transport.header_len() + payload.len());
    emit_into(&mut out, ip, transport, payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_malformed_kind_has_its_own_message() {
        let kinds = [
            MalformedKind::BadVersion,
            MalformedKind::TruncatedIpHeader,
            MalformedKind::BadIhl,
            MalformedKind::BadTotalLength,
            MalformedKind::BadExtensionHeaders,
            MalformedKind::BadTcpHeader,
            MalformedKind::BadUdpHeader,
        ];
        let messages: std::collections::BTreeSet<String> = kinds.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), kinds.len());
        let bad = parse(&[0x45, 0, 0]).unwrap_err();
        assert_eq!(bad.to_string(), "malformed packet: buffer shorter than the fixed IP header");
    }

    #[test]
    fn emit_into_appends_and_matches_emit() {
        let ip = IpRepr::new("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()).unwrap();
        let udp = TransportRepr::Udp(UdpRepr { src_port: 1, dst_port: 2 });
        let mut out = vec![0xAB];
        emit_into(&mut out, &ip, &udp, b"xyz");
        assert_eq!(out[0], 0xAB);
        assert_eq!(out[1..], emit(&ip, &udp, b"xyz")[..]);
        assert!(IpRepr::new("192.0.2.1".parse().unwrap(), "::1".parse().unwrap()).is_none());
    }
}
