//! The flow table: per-5-tuple state shared by both directions.
//!
//! Invariants:
//! - A flow is keyed by its canonical 5-tuple (lower endpoint first), so both directions find
//!   the same entry; the entry remembers which endpoint is inside and which one spoke first.
//! - At most `flows.capacity` flows (least recently used evicted); a flow idle longer than
//!   `flows.idle_seconds` is forgotten on its next packet and starts afresh.
//! - Reassembly buffers (at most [`REASSEMBLY_LIMIT`] bytes per direction) live in a separate,
//!   smaller LRU: only flows whose first segment looked like an incomplete HTTP header block get
//!   one, so memory is bounded by `flows.reassembly_capacity × 2 × 2 KiB` whatever the input.

use crate::verdict::Reason;
use std::net::IpAddr;

/// How many bytes of each direction are inspected for HTTP tells.
pub(crate) const REASSEMBLY_LIMIT: usize = 2048;

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

/// Per-direction TCP progress. Direction 0 is the initiator's (the sender of the first packet
/// seen, the SYN sender when the handshake was seen), direction 1 the responder's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TcpDirection {
    /// Next expected sequence number, once known.
    pub(crate) next_seq: Option<u32>,
    /// Payload segments seen (saturating).
    pub(crate) payloads: u8,
    /// Length of the first two payload segments.
    pub(crate) first_len: u32,
    pub(crate) second_len: u32,
    /// Bytes of payload inspected for HTTP so far (capped).
    pub(crate) inspected: u32,
    /// No more HTTP inspection needed in this direction.
    pub(crate) http_done: bool,
    /// This direction's stream does not start like HTTP at all.
    pub(crate) not_http: bool,
    /// A reassembly buffer was started for this direction.
    pub(crate) buffering: bool,
}

/// State of one flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub(crate) last_seen: crate::time::Timestamp,
    /// True if the key's `low` endpoint is the inside endpoint.
    pub(crate) inside_is_low: bool,
    /// True if the key's `low` endpoint sent the first packet seen.
    pub(crate) initiator_is_low: bool,
    /// The TCP handshake (initial SYN) was seen, so "first payload" tells are meaningful.
    pub(crate) saw_syn: bool,
    /// Set once a tell classified the flow as FastTrack (or a state rule blocked it).
    pub(crate) blocked: Option<Reason>,
    /// Still looking for tells.
    pub(crate) inspecting: bool,
    /// Id of the last 0x29 pong seen on this flow (for the 0x2A echo).
    pub(crate) nat_pong_id: Option<u32>,
    /// Packets seen (saturating), for UDP offload.
    pub(crate) packets: u8,
    pub(crate) tcp: [TcpDirection; 2],
}

impl Flow {
    pub(crate) fn new(now: crate::time::Timestamp, inside_is_low: bool, initiator_is_low: bool) -> Self {
        Self {
            last_seen: now,
            inside_is_low,
            initiator_is_low,
            saw_syn: false,
            blocked: None,
            inspecting: true,
            nat_pong_id: None,
            packets: 0,
            tcp: [TcpDirection::default(); 2],
        }
    }
}

/// Reassembly buffers of one flow, indexed by direction (0 initiator, 1 responder).
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    pub(crate) bufs: [Vec<u8>; 2],
}

/// `a` comes before `b` in TCP sequence space.
pub(crate) fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
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
    fn sequence_comparison_wraps() {
        assert!(seq_before(1, 2));
        assert!(!seq_before(2, 1));
        assert!(seq_before(u32::MAX, 0));
        assert!(!seq_before(5, 5));
    }
}
