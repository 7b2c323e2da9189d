//! The flow table: per-5-tuple state shared by both directions.
//!
//! Invariants:
//! - A flow is keyed by its canonical 5-tuple (lower endpoint first), so both directions find
//!   the same entry; the entry remembers which endpoint is inside and which one spoke first.
//! - At most `flows.capacity` flows (least recently used evicted); a flow idle longer than
//!   `flows.idle_seconds` is forgotten on its next packet and starts afresh.
//! - A TCP flow's stream progress is a fixed-size [`TcpStream`] inside the entry; the bytes it
//!   reassembles live in a separate, smaller LRU ([`super::stream::Reassembly`], at most
//!   `flows.reassembly_capacity` flows), so memory does not grow with the input (see
//!   [`super::stream`]).
//! - A fresh TCP connection on a 5-tuple that already carried data (port reuse) restarts the
//!   entry, unless a rule blocked the flow: a blocked flow stays blocked.

use super::stream::TcpStream;
use crate::verdict::Reason;
use crate::wire::TcpFlags;
use std::net::IpAddr;

/// Transport protocol numbers used in flow keys.
pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// One endpoint of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Endpoint {
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
}

/// A canonical 5-tuple: `low <= high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub(crate) protocol: u8,
    pub(crate) low: Endpoint,
    pub(crate) high: Endpoint,
}

impl FlowKey {
    /// The key of the packet `src -> dst`, and whether `src` is the key's `low` endpoint.
    pub(crate) fn of(protocol: u8, src: Endpoint, dst: Endpoint) -> (Self, bool) {
        if src <= dst {
            (Self { protocol, low: src, high: dst }, true)
        } else {
            (Self { protocol, low: dst, high: src }, false)
        }
    }
}

/// State of one flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub(crate) last_seen: crate::time::Timestamp,
    /// True if the key's `low` endpoint is the inside endpoint.
    pub(crate) inside_is_low: bool,
    /// Set once a tell classified the flow as FastTrack (or a state rule blocked it).
    pub(crate) blocked: Option<Reason>,
    /// Id of the last 0x29 pong seen on this flow (for the 0x2A echo).
    pub(crate) nat_pong_id: Option<u32>,
    /// Packets seen (saturating), for UDP offload.
    pub(crate) packets: u8,
    /// The inside end sent a FastTrack ping on this UDP flow: a pong from the outside end then
    /// answers it (evidence that the outside address itself speaks FastTrack).
    pub(crate) inside_pinged: bool,
    /// TCP progress (unused for UDP flows).
    pub(crate) tcp: TcpStream,
}

impl Flow {
    /// A flow first seen at `now`; `initiator_is_low`: the key's `low` endpoint sent its first
    /// packet.
    pub(crate) fn new(now: crate::time::Timestamp, inside_is_low: bool, initiator_is_low: bool) -> Self {
        Self {
            last_seen: now,
            inside_is_low,
            blocked: None,
            nat_pong_id: None,
            packets: 0,
            inside_pinged: false,
            tcp: TcpStream::new(initiator_is_low),
        }
    }

    /// Whether a segment with `flags` opens a fresh connection on this flow's 5-tuple: an
    /// initial SYN on a flow that already carried data and that no rule blocked.
    pub(crate) fn reused_by(&self, flags: TcpFlags) -> bool {
        flags.is_initial_syn() && self.blocked.is_none() && self.tcp.carried_data()
    }

    /// The endpoint of `key` that answered the connection.
    pub(crate) fn responder(&self, key: &FlowKey) -> Endpoint {
        if self.tcp.initiator_is_low() {
            key.high
        } else {
            key.low
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_direction_independent() {
        let a = Endpoint { ip: "192.0.2.10".parse().unwrap(), port: 3531 };
        let b = Endpoint { ip: "198.51.100.20".parse().unwrap(), port: 1214 };
        let (k1, a_low) = FlowKey::of(UDP, a, b);
        let (k2, b_low) = FlowKey::of(UDP, b, a);
        assert_eq!(k1, k2);
        assert!(a_low && !b_low);
    }

    #[test]
    fn port_reuse_restarts_only_unblocked_flows_that_carried_data() {
        let syn = TcpFlags(TcpFlags::SYN);
        let mut flow = Flow::new(crate::time::Timestamp::ZERO, true, true);
        assert!(!flow.reused_by(syn), "nothing carried yet");
        let mut pool = super::super::stream::Reassembly::new(1);
        flow.tcp.on_segment(true, TcpFlags(TcpFlags::ACK), 1, &[0; 10], 10, &mut pool, &1u8, &mut 0);
        assert!(flow.reused_by(syn));
        assert!(!flow.reused_by(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)), "not an initial SYN");
        flow.blocked = Some(Reason::SuspectPeer);
        assert!(!flow.reused_by(syn), "a blocked flow stays blocked");
    }
}
