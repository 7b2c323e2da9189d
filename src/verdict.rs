//! Verdicts and the reason codes every verdict carries.
//!
//! Invariant: every packet handed to the engine yields exactly one [`Decision`], whose
//! [`Reason`] says why. Reason names are stable identifiers: they appear in logs, in
//! `ftwall replay --jsonl` output and in metrics, and are documented in `docs/detection.md`.

use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Let the packet through.
    Accept,
    /// Discard the packet.
    Drop,
}

impl Verdict {
    /// `"accept"` or `"drop"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Drop => "drop",
        }
    }
}

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// Why the engine reached its verdict.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[$doc])* $variant, )*
        }

        impl Reason {
            /// Every reason, in declaration order (accept reasons first).
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable snake_case name used in logs, JSON and metrics.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }
        }
    };
}

reasons! {
    /// Nothing FastTrack-like was seen.
    Clean => "clean",
    /// The capture record is not an IP packet (replay only).
    NotIp => "not_ip",
    /// IP, but neither TCP nor UDP (ICMP, GRE, ...): not inspected.
    OtherProtocol => "other_protocol",
    /// A non-first IP fragment: it carries no transport header, so it is not inspected.
    LaterFragment => "later_fragment",
    /// The packet's headers are inconsistent or truncated. Accepted unless `malformed = "drop"`.
    Malformed => "malformed",
    /// UDP 0x27 discovery ping of exact FastTrack shape.
    UdpPing => "udp_ping",
    /// UDP 0x28 or 0x29 pong of exact FastTrack shape.
    UdpPong => "udp_pong",
    /// UDP 0x2A datagram echoing the id of a 0x29 pong seen on the same flow.
    UdpPongAck => "udp_pong_ack",
    /// UDP 0xC1/0xC2 datagram that embeds its own destination IPv4 address.
    UdpAddressEcho => "udp_address_echo",
    /// TCP opener sent by giFT-FastTrack and MLDonkey (`FA 00 B6 2B ...`).
    TcpOpener => "tcp_opener",
    /// TCP 12/8(+name)/name handshake shape, corroborated by port 1214, a suspect peer or a locked client.
    TcpHandshake => "tcp_handshake",
    /// HTTP transfer with FastTrack request line or headers (`/.hash=`, `X-Kazaa-*`, `KazaaClient`, ...).
    HttpTransfer => "http_transfer",
    /// `GIVE <id>\r\n` push request.
    GivePush => "give_push",
    /// A later packet of a flow already classified as FastTrack.
    FasttrackFlow => "fasttrack_flow",
    /// A new outbound TCP connection or UDP datagram to a suspect FastTrack peer.
    SuspectPeer => "suspect_peer",
    /// A new outbound TCP connection from a time-locked client to a port outside `timelock.allow_ports`.
    ClientLocked => "client_locked",
    /// A new flow to destination port 1214 while `port_1214_blocks = true`.
    Port1214 => "port_1214",
    /// Traffic to or from an address the operator banned (`ftwall ctl ban`).
    Banned => "banned",
    /// A well-formed packet whose transport header could not be inspected: it lies beyond the
    /// bytes the daemon received (a long IPv6 extension-header chain past the copy range) or
    /// beyond an IPv6 first fragment. The receiver would still get it, so a tell could hide there.
    TransportUnreachable => "transport_unreachable",
}

impl Reason {
    /// The verdict this reason leads to when the engine enforces (not in monitor mode).
    /// `Malformed` depends on configuration and is reported here as `Accept`.
    pub const fn natural_verdict(self) -> Verdict {
        match self {
            Self::Clean | Self::NotIp | Self::OtherProtocol | Self::LaterFragment | Self::Malformed => {
                Verdict::Accept
            }
            _ => Verdict::Drop,
        }
    }

    /// True for reasons that are a FastTrack tell observed in this very packet (as opposed to
    /// state-based drops such as `suspect_peer`).
    pub const fn is_tell(self) -> bool {
        matches!(
            self,
            Self::UdpPing
                | Self::UdpPong
                | Self::UdpPongAck
                | Self::UdpAddressEcho
                | Self::TcpOpener
                | Self::TcpHandshake
                | Self::HttpTransfer
                | Self::GivePush
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transport protocol of a packet, as reported with each decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP or ICMPv6.
    Icmp,
    /// Anything else (or unknown).
    Other,
}

impl Proto {
    /// `"tcp"`, `"udp"`, `"icmp"` or `"other"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmp => "icmp",
            Self::Other => "other",
        }
    }

    /// Maps an IP protocol / IPv6 next-header number.
    pub const fn from_ip_protocol(n: u8) -> Self {
        match n {
            6 => Self::Tcp,
            17 => Self::Udp,
            1 | 58 => Self::Icmp,
            _ => Self::Other,
        }
    }
}

/// Addresses and sizes of the packet a decision is about, for logs and replay output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    /// Transport protocol.
    pub proto: Proto,
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// Source port (TCP/UDP only).
    pub src_port: Option<u16>,
    /// Destination port (TCP/UDP only).
    pub dst_port: Option<u16>,
    /// Transport payload length (from IP/UDP length fields, never the buffer size); for other
    /// protocols, the IP payload length.
    pub payload_len: usize,
}

/// A flow decided for good, which the shell may hand over to the kernel (connmark offload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// Nothing FastTrack-like, and every byte the tells need has been inspected: the rest of
    /// the flow can be accepted without inspection.
    Clean,
    /// Classified as FastTrack (enforce mode only): the rest of the flow can be dropped.
    FastTrack,
}

/// The engine's answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the packet. In monitor mode always `Accept`.
    pub verdict: Verdict,
    /// Why. In monitor mode this is still the reason the packet *would* have been dropped.
    pub reason: Reason,
    /// Addresses of the packet, when its IP header could be read.
    pub packet: Option<PacketSummary>,
    /// Set when this packet's flow is decided for good (only with `offload.enabled`).
    pub settled: Option<Settled>,
}
