//! Verdicts and the reason codes every verdict carries.
//!
//! Invariant: every packet handed to the engine yields exactly one [`Decision`], whose
//! [`Reason`] says why. Reason names are stable identifiers: they appear in logs, in
//! `ftwall replay --jsonl` output and in metrics, and are documented in `docs/detection.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

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

/// Declares [`Reason`] from one table row per reason: its doc, its stable name, the log message
/// of a packet it decides (what happened, for the operator), the verdict it leads to when
/// enforcing, and `tell` when it is a FastTrack tell seen in the packet itself.
macro_rules! reasons {
    ($( $(#[doc = $doc:literal])* $variant:ident => $name:literal, $message:literal, $verdict:ident $(, $tell:ident)?; )*) => {
        /// Why the engine reached its verdict.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Reason {
            $( $(#[doc = $doc])* #[serde(rename = $name)] $variant, )*
        }

        impl Reason {
            /// Every reason, in declaration order (accept reasons first).
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The stable snake_case name used in logs, JSON and metrics.
            pub const fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $name, )* }
            }

            /// What happened to a packet this reason decided, as the log says it when the engine
            /// enforces: a tell's is "FastTrack ... dropped", a state-based drop's says which
            /// state refused the packet ("new connection refused: client time-locked"). A static
            /// string: the verdict path selects it without allocating.
            pub const fn message(self) -> &'static str {
                match self { $( Self::$variant => $message, )* }
            }

            /// The log message of a packet this reason would have dropped in monitor mode, where
            /// it was accepted: `monitor: would drop (<name>)`.
            pub const fn monitor_message(self) -> &'static str {
                match self { $( Self::$variant => concat!("monitor: would drop (", $name, ")"), )* }
            }

            /// The verdict this reason leads to when the engine enforces (not in monitor mode).
            /// `Malformed` depends on configuration and is reported here as `Accept`.
            pub const fn natural_verdict(self) -> Verdict {
                match self { $( Self::$variant => Verdict::$verdict, )* }
            }

            /// What the reason means: its documentation, on one line (the reference tables
            /// are generated from it).
            pub fn description(self) -> String {
                let doc: &[&str] = match self { $( Self::$variant => &[$($doc),*], )* };
                doc.iter().map(|line| line.trim()).collect::<Vec<_>>().join(" ")
            }

            /// True for reasons that are a FastTrack tell observed in this very packet (as
            /// opposed to state-based drops such as `suspect_peer`).
            pub const fn is_tell(self) -> bool {
                match self { $( Self::$variant => reasons!(@tell $($tell)?), )* }
            }
        }
    };
    (@tell tell) => { true };
    (@tell) => { false };
}

reasons! {
    /// Nothing FastTrack-like was seen.
    Clean => "clean", "accepted: nothing FastTrack-like seen", Accept;
    /// IP, but neither TCP nor UDP (ICMP, GRE, ...): not inspected.
    OtherProtocol => "other_protocol", "accepted: neither TCP nor UDP, not inspected", Accept;
    /// A non-first IP fragment: it carries no transport header, so it is not inspected.
    LaterFragment => "later_fragment", "accepted: a later IP fragment, not inspected", Accept;
    /// The first IP fragment of a TCP segment or UDP datagram that continues in later
    /// fragments: its payload is incomplete, so no tell is judged on it and it opens no flow
    /// (a UDP datagram wholly inside the first fragment is judged as usual). The shipped rules
    /// need conntrack, whose defragmentation hands the daemon whole datagrams: a count here
    /// means fragments reach the queue without the kernel's reassembly.
    FirstFragment => "first_fragment", "accepted: a first IP fragment, its payload continues in later fragments, not inspected", Accept;
    /// The packet's headers are inconsistent or truncated (e.g. an IPv6 extension-header chain
    /// that overruns the packet's own length: the receiver cannot parse it either). Accepted
    /// unless `malformed = "drop"`.
    Malformed => "malformed", "malformed headers: accepted unless malformed = \"drop\"", Accept;
    /// UDP 0x27 discovery ping of exact FastTrack shape.
    UdpPing => "udp_ping", "FastTrack UDP ping dropped", Drop, tell;
    /// UDP 0x28 or 0x29 pong of exact FastTrack shape.
    UdpPong => "udp_pong", "FastTrack UDP pong dropped", Drop, tell;
    /// UDP 0x2A datagram echoing the id of a 0x29 pong seen on the same flow.
    UdpPongAck => "udp_pong_ack", "FastTrack UDP pong acknowledgement dropped", Drop, tell;
    /// UDP 0xC1/0xC2 datagram that embeds its own destination IPv4 address.
    UdpAddressEcho => "udp_address_echo", "FastTrack UDP address echo dropped", Drop, tell;
    /// UDP `C0 28` / `C3 28` datagram, corroborated by the client's FastTrack port, a locked
    /// client, a suspect peer or peer port 1214 (never on its own).
    UdpSession => "udp_session", "FastTrack UDP session datagram dropped", Drop, tell;
    /// TCP opener sent by giFT-FastTrack and MLDonkey (`FA 00 B6 2B ...`).
    TcpOpener => "tcp_opener", "FastTrack TCP opener dropped", Drop, tell;
    /// TCP 12/8(+name)/name handshake shape, corroborated by port 1214, a suspect peer or a locked client.
    TcpHandshake => "tcp_handshake", "FastTrack TCP handshake dropped", Drop, tell;
    /// HTTP transfer with FastTrack request line or headers (`/.hash=`, `X-Kazaa-*`, `KazaaClient`, ...).
    HttpTransfer => "http_transfer", "FastTrack HTTP transfer dropped", Drop, tell;
    /// `GIVE <id>\r\n` push request.
    GivePush => "give_push", "FastTrack GIVE push request dropped", Drop, tell;
    /// A later packet of a flow already classified as FastTrack.
    FasttrackFlow => "fasttrack_flow", "packet dropped: its flow was classified as FastTrack", Drop;
    /// A new outbound TCP connection or UDP datagram to a suspect FastTrack peer: a strong one
    /// (it spoke FastTrack itself; any inside host, any port), or a weak one this client named
    /// (that address and port only, never `timelock.allow_ports`).
    SuspectPeer => "suspect_peer", "new connection refused: peer is a suspect FastTrack node", Drop;
    /// A new outbound TCP connection from a time-locked client to a port outside `timelock.allow_ports`.
    ClientLocked => "client_locked", "new connection refused: client time-locked", Drop;
    /// A new flow to destination port 1214 while `port_1214_blocks = true`.
    Port1214 => "port_1214", "new connection refused: destination port 1214", Drop;
    /// TCP/UDP to or from an address in a network the operator banned (`ftwall ctl ban`; a single
    /// address is a /32 or /128); a banned inside address keeps `timelock.allow_ports`.
    Banned => "banned", "packet dropped: address banned by the operator", Drop;
    /// A well-formed packet whose transport header could not be inspected: it lies beyond the
    /// bytes the daemon received (a long IPv6 extension-header chain past the copy range) or
    /// beyond an IPv6 first fragment. The receiver would still get it, so a tell could hide there.
    TransportUnreachable => "transport_unreachable", "packet dropped: transport header beyond inspection reach", Drop;
    /// A TCP packet that needed a new flow entry when its source (the inside host, or the
    /// outside /24 or /64, that sent it) already held its quota of the flow table (a quarter of
    /// `flows.capacity`), and that no rule needing no flow state (a suspect peer, a locked
    /// client, port 1214) judged; or a TCP segment that needed a reassembly window while its
    /// flow's source held a quarter of `flows.reassembly_capacity`. Dropped, since its stream
    /// could not be inspected (TCP sends it again). UDP datagrams refused an entry are judged
    /// without one instead. Counted in `ftwall_flow_quota_refused_total` and
    /// `ftwall_reassembly_quota_refused_total`.
    FlowQuota => "flow_quota", "packet dropped: its source holds its share of the flow table", Drop;
}

impl Reason {
    /// Every reason in the order the engine tries them for one packet (the engine module's
    /// "decision order"): the first that applies is the packet's reason. The reference table
    /// lists them in this order.
    pub const DECISION_ORDER: &'static [Self] = &[
        Self::Malformed,
        Self::Banned,
        Self::LaterFragment,
        Self::FirstFragment,
        Self::TransportUnreachable,
        Self::OtherProtocol,
        Self::UdpPing,
        Self::UdpPong,
        Self::UdpPongAck,
        Self::UdpAddressEcho,
        Self::UdpSession,
        Self::TcpOpener,
        Self::TcpHandshake,
        Self::HttpTransfer,
        Self::GivePush,
        Self::FasttrackFlow,
        Self::SuspectPeer,
        Self::ClientLocked,
        Self::Port1214,
        Self::FlowQuota,
        Self::Clean,
    ];
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transport protocol of a packet, as reported with each decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// The two ends of the flow a packet belongs to, as the engine sees them (see "Direction" in
/// [`crate::engine`]): the inside end is the client, the outside end the peer. For a packet of
/// a tracked TCP/UDP flow they are the flow's ends, whichever way the packet travels; for any
/// other packet the same rule is applied to the packet alone. Ports are 0 when the packet has
/// none (ICMP, fragments, unreadable transport headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowEnds {
    /// The inside end (the client).
    pub inside: SocketAddr,
    /// The outside end (the peer).
    pub outside: SocketAddr,
}

/// The engine's answer for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the packet. In monitor mode always `Accept`.
    pub verdict: Verdict,
    /// Why. In monitor mode this is still the reason the packet *would* have been dropped.
    pub reason: Reason,
    /// True when the engine blocks the packet for its reason (the drop the daemon logs as
    /// `packet_dropped`): the verdict is `Drop` in enforce mode and `Accept` in monitor mode.
    /// False for `malformed`, whose drop (`malformed = "drop"`) is a policy, not a finding.
    pub blocked: bool,
    /// Addresses of the packet, when its IP header could be read.
    pub packet: Option<PacketSummary>,
    /// The inside and outside ends of the packet's flow, when its IP header could be read.
    pub ends: Option<FlowEnds>,
    /// Set when this packet's flow is decided for good (only with `offload.enabled`).
    pub settled: Option<Settled>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_order_lists_every_reason_once() {
        let mut order: Vec<Reason> = Reason::DECISION_ORDER.to_vec();
        order.sort();
        let mut all = Reason::ALL.to_vec();
        all.sort();
        assert_eq!(order, all);
        assert_eq!(Reason::Clean.description(), "Nothing FastTrack-like was seen.");
        assert!(Reason::TransportUnreachable.description().contains("copy range) or beyond an IPv6"));
    }

    #[test]
    fn the_reason_table_is_consistent() {
        let accepts = Reason::ALL.iter().take_while(|r| r.natural_verdict() == Verdict::Accept).count();
        assert!(
            Reason::ALL[accepts..].iter().all(|r| r.natural_verdict() == Verdict::Drop),
            "accept reasons come first"
        );
        let tells: Vec<&str> = Reason::ALL.iter().filter(|r| r.is_tell()).map(|r| r.as_str()).collect();
        assert_eq!(
            tells,
            [
                "udp_ping",
                "udp_pong",
                "udp_pong_ack",
                "udp_address_echo",
                "udp_session",
                "tcp_opener",
                "tcp_handshake",
                "http_transfer",
                "give_push"
            ]
        );
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in declaration order");
            assert!(r.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str(), "serde and as_str agree");
        }
    }

    #[test]
    fn every_reason_has_its_own_message_saying_what_happened() {
        let mut messages: Vec<&str> = Reason::ALL.iter().map(|r| r.message()).collect();
        messages.sort_unstable();
        messages.dedup();
        assert_eq!(messages.len(), Reason::ALL.len(), "messages are unique");
        for r in Reason::ALL {
            let m = r.message();
            if r.is_tell() {
                assert!(m.starts_with("FastTrack ") && m.ends_with(" dropped"), "{r}: {m}");
            } else {
                assert!(!m.starts_with("FastTrack"), "{r} is no tell: {m}");
            }
            if r.natural_verdict() == Verdict::Accept {
                assert!(m.contains("accepted"), "{r}: {m}");
            }
            assert_eq!(r.monitor_message(), format!("monitor: would drop ({r})"));
        }
        assert_eq!(Reason::ClientLocked.message(), "new connection refused: client time-locked");
        assert_eq!(Reason::Banned.message(), "packet dropped: address banned by the operator");
        assert_eq!(Reason::SuspectPeer.message(), "new connection refused: peer is a suspect FastTrack node");
        assert_eq!(Reason::UdpPing.message(), "FastTrack UDP ping dropped");
    }
}
