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
//! - Every entry is charged to the [`Source`] of its first packet's sender ([`Flow::charged_low`]
//!   says which end): an inside host (in `lan`) by its address, an outside sender by its /24
//!   (IPv4) or /64 (IPv6). [`SourceQuota`] counts the entries charged to each source, exactly
//!   (an entry is uncharged when it is evicted, replaced or the table is resized), and refuses a
//!   new entry to a source that holds [`SourceQuota::limit`] (a quarter of the capacity): one
//!   source's churn can fill at most a quarter of the table, so it evicts no other source's
//!   flow while the others hold fewer than three quarters. The counts hold at most one entry
//!   per source with a flow, so at most `flows.capacity` entries.
//! - [`FlowTable`] keeps the recency order (an LRU of keys) apart from the entries (a slab of
//!   slots): a packet's flow is found with one hash lookup and written back to its slot with
//!   none. A slot is in use by exactly one key of the order, or on the free list; the slab
//!   holds at most as many slots as the table ever held entries (its largest capacity).

use super::stream::TcpStream;
use crate::verdict::Reason;
use crate::wire::TcpFlags;
use hashbrown::HashMap;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;

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
        // The same order as `Endpoint`'s `Ord` (address, then port; an IPv4 address orders as
        // its big-endian bits), without matching the address family twice.
        let src_is_low = match (src.ip, dst.ip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (s.to_bits(), src.port) <= (d.to_bits(), dst.port),
            _ => src <= dst,
        };
        if src_is_low {
            (Self { protocol, low: src, high: dst }, true)
        } else {
            (Self { protocol, low: dst, high: src }, false)
        }
    }
}

/// Who a flow entry is charged to (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// An inside host, by its address.
    Host(IpAddr),
    /// An outside IPv4 /24 (its first three octets).
    Net4([u8; 3]),
    /// An outside IPv6 /64 (its first eight octets).
    Net6([u8; 8]),
}

impl Source {
    /// The source of a sender at `ip`, inside (`in_lan`) or not.
    pub(crate) fn of(ip: IpAddr, in_lan: bool) -> Self {
        match ip {
            _ if in_lan => Self::Host(ip),
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self::Net4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Self::Net6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        }
    }
}

/// Flow entries charged to each source, and the most one source may hold.
#[derive(Debug)]
pub(crate) struct SourceQuota {
    held: HashMap<Source, u32>,
    limit: u32,
}

impl SourceQuota {
    /// The quota for a flow table of `capacity` entries: a quarter of it (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self { held: HashMap::new(), limit: Self::limit_for(capacity) }
    }

    fn limit_for(capacity: usize) -> u32 {
        u32::try_from(capacity / 4).unwrap_or(u32::MAX).max(1)
    }

    /// The most entries one source may hold.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Whether `source` may have one more entry.
    pub(crate) fn allows(&self, source: Source) -> bool {
        self.held.get(&source).copied().unwrap_or(0) < self.limit
    }

    /// One more entry for `source`.
    pub(crate) fn charge(&mut self, source: Source) {
        *self.held.entry(source).or_insert(0) += 1;
    }

    /// One more entry for `source` if it is below its quota (one hash lookup); whether it was.
    pub(crate) fn try_charge(&mut self, source: Source) -> bool {
        let held = self.held.entry(source).or_insert(0);
        if *held < self.limit {
            *held += 1;
            true
        } else {
            false
        }
    }

    /// One entry fewer for `source` (one hash probe).
    pub(crate) fn release(&mut self, source: Source) {
        if let hashbrown::hash_map::EntryRef::Occupied(mut held) = self.held.entry_ref(&source) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
    }

    /// Starts again from `sources` (one per entry), for a table of `capacity` entries.
    pub(crate) fn recount(&mut self, capacity: usize, sources: impl Iterator<Item = Source>) {
        self.limit = Self::limit_for(capacity);
        self.held.clear();
        for source in sources {
            self.charge(source);
        }
    }

    /// Entries charged to `source`.
    #[cfg(test)]
    pub(crate) fn held(&self, source: Source) -> u32 {
        self.held.get(&source).copied().unwrap_or(0)
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
    /// The entry is charged to the key's `low` endpoint (the sender of its first packet).
    pub(crate) charged_low: bool,
    /// That endpoint is in `lan` (as configured when the entry was made or last reloaded).
    pub(crate) charged_in_lan: bool,
    /// TCP progress (unused for UDP flows).
    pub(crate) tcp: TcpStream,
}

impl Flow {
    /// A flow first seen at `now`; `initiator_is_low`: the key's `low` endpoint sent its first
    /// packet.
    pub(crate) fn new(now: crate::time::Timestamp, inside_is_low: bool, initiator_is_low: bool) -> Self {
        Self {
            charged_in_lan: false,
            last_seen: now,
            inside_is_low,
            blocked: None,
            nat_pong_id: None,
            packets: 0,
            inside_pinged: false,
            charged_low: initiator_is_low,
            tcp: TcpStream::new(initiator_is_low),
        }
    }

    /// Whether a segment with `flags` opens a fresh connection on this flow's 5-tuple: an
    /// initial SYN on a flow that already carried data and that no rule blocked.
    pub(crate) fn reused_by(&self, flags: TcpFlags) -> bool {
        flags.is_initial_syn() && self.blocked.is_none() && self.tcp.carried_data()
    }

    /// The endpoint of `key` the entry is charged to.
    pub(crate) fn charged(&self, key: &FlowKey) -> Endpoint {
        if self.charged_low {
            key.low
        } else {
            key.high
        }
    }

    /// The source the entry of `key` is charged to.
    pub(crate) fn source(&self, key: &FlowKey) -> Source {
        Source::of(self.charged(key).ip, self.charged_in_lan)
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

/// The flow table: at most `capacity` flows, least recently used evicted (see the module
/// documentation for its layout).
#[derive(Debug)]
pub(crate) struct FlowTable {
    /// Each key's slot, most recently used first.
    order: LruCache<FlowKey, usize>,
    /// The entries; a slot not in `order` is in `free`.
    slots: Vec<Flow>,
    free: Vec<usize>,
}

impl FlowTable {
    pub(crate) fn new(capacity: NonZeroUsize) -> Self {
        Self { order: LruCache::new(capacity), slots: Vec::new(), free: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// The slot of `key`'s entry, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &FlowKey) -> Option<usize> {
        self.order.get(key).copied()
    }

    /// The entry in `slot` (from [`FlowTable::get`] or [`FlowTable::push`], valid until the
    /// table next changes).
    pub(crate) fn slot(&self, slot: usize) -> &Flow {
        &self.slots[slot]
    }

    /// [`FlowTable::slot`], to change.
    pub(crate) fn slot_mut(&mut self, slot: usize) -> &mut Flow {
        &mut self.slots[slot]
    }

    /// `key`'s entry, leaving the order as it is.
    pub(crate) fn peek(&self, key: &FlowKey) -> Option<&Flow> {
        self.order.peek(key).map(|&slot| &self.slots[slot])
    }

    /// Removes `key`'s entry.
    pub(crate) fn pop(&mut self, key: &FlowKey) -> Option<Flow> {
        let slot = self.order.pop(key)?;
        self.free.push(slot);
        Some(self.slots[slot])
    }

    /// Adds `flow` under `key` as the most recently used entry; returns its slot and the entry
    /// that made room for it (the least recently used one when the table was full, or the one
    /// `key` had), as [`LruCache::push`] does.
    pub(crate) fn push(&mut self, key: FlowKey, flow: Flow) -> (usize, Option<(FlowKey, Flow)>) {
        if let Some(&slot) = self.order.get(&key) {
            let old = std::mem::replace(&mut self.slots[slot], flow);
            return (slot, Some((key, old)));
        }
        if self.order.len() >= self.order.cap().get() {
            // Full: the new entry takes the least recently used one's slot, and `LruCache::push`
            // reuses its node (no free and allocation per new flow, one hash probe fewer).
            if let Some((_, &slot)) = self.order.peek_lru() {
                let old = std::mem::replace(&mut self.slots[slot], flow);
                let evicted = self.order.push(key, slot).map(|(evicted, _)| (evicted, old));
                return (slot, evicted);
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = flow;
                slot
            }
            None => {
                self.slots.push(flow);
                self.slots.len() - 1
            }
        };
        self.order.put(key, slot);
        (slot, None)
    }

    /// The least recently used entry.
    pub(crate) fn peek_lru(&self) -> Option<(&FlowKey, &Flow)> {
        self.order.peek_lru().map(|(key, &slot)| (key, &self.slots[slot]))
    }

    /// Removes the least recently used entry.
    pub(crate) fn pop_lru(&mut self) -> Option<(FlowKey, Flow)> {
        let (key, slot) = self.order.pop_lru()?;
        self.free.push(slot);
        Some((key, self.slots[slot]))
    }

    /// A new capacity; the least recently used entries beyond it are dropped, as
    /// [`LruCache::resize`] does.
    pub(crate) fn resize(&mut self, capacity: NonZeroUsize) {
        while self.order.len() > capacity.get() {
            self.pop_lru();
        }
        self.order.resize(capacity);
    }

    /// Every entry, most recently used first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&FlowKey, &Flow)> + '_ {
        self.order.iter().map(|(key, &slot)| (key, &self.slots[slot]))
    }

    /// Calls `f` on every entry.
    pub(crate) fn for_each_mut(&mut self, mut f: impl FnMut(&FlowKey, &mut Flow)) {
        for (key, &slot) in self.order.iter() {
            f(key, &mut self.slots[slot]);
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
    fn keys_order_endpoints_as_their_ord_does() {
        let ips = [
            "0.0.0.0",
            "192.0.2.10",
            "192.0.2.9",
            "198.51.100.200",
            "203.0.113.1",
            "255.255.255.255",
            "2001:db8::1",
            "::",
        ];
        let endpoints: Vec<Endpoint> = ips
            .iter()
            .flat_map(|ip| [0u16, 53, 1214, 65535].map(|port| Endpoint { ip: ip.parse().unwrap(), port }))
            .collect();
        for &a in &endpoints {
            for &b in &endpoints {
                let (key, a_low) = FlowKey::of(TCP, a, b);
                assert_eq!(a_low, a <= b, "{a:?} {b:?}");
                assert_eq!((key.low, key.high), if a <= b { (a, b) } else { (b, a) });
            }
        }
    }

    #[test]
    fn the_flow_table_evicts_the_least_recently_used_and_reuses_its_slots() {
        let key = |port| {
            FlowKey::of(
                UDP,
                Endpoint { ip: "192.0.2.1".parse().unwrap(), port },
                Endpoint { ip: "198.51.100.1".parse().unwrap(), port: 53 },
            )
            .0
        };
        let flow = |micros| Flow::new(crate::time::Timestamp::from_micros(micros), true, true);
        let mut table = FlowTable::new(NonZeroUsize::new(2).unwrap());
        let (a, _) = table.push(key(1), flow(1));
        let (b, _) = table.push(key(2), flow(2));
        assert_ne!(a, b);
        assert_eq!(table.get(&key(1)), Some(a), "key 1 is now the most recently used");
        let (c, evicted) = table.push(key(3), flow(3));
        let (evicted_key, evicted_flow) = evicted.expect("full: the least recently used goes");
        assert_eq!(evicted_key, key(2));
        assert_eq!(evicted_flow.last_seen, crate::time::Timestamp::from_micros(2));
        assert_eq!(c, b, "its slot is reused");
        table.slot_mut(c).packets = 7;
        assert_eq!(table.peek(&key(3)).map(|f| f.packets), Some(7), "a slot write is the entry");
        assert_eq!(table.pop(&key(1)).map(|f| f.last_seen), Some(crate::time::Timestamp::from_micros(1)));
        assert_eq!(table.len(), 1);
        table.resize(NonZeroUsize::new(1).unwrap());
        for port in 10..100 {
            table.push(key(port), flow(u64::from(port)));
            table.resize(NonZeroUsize::new(1 + usize::from(port % 2)).unwrap());
        }
        assert!(table.len() <= 2);
        assert!(table.slots.len() <= 2, "the slab holds no more slots than the table held entries");
        let held: Vec<u16> = table.iter().map(|(k, _)| k.low.port).collect();
        assert_eq!(held, [99], "the latest entry survived the shrink");
        assert_eq!(table.peek_lru().map(|(k, _)| k.low.port), Some(99));
    }

    #[test]
    fn port_reuse_restarts_only_unblocked_flows_that_carried_data() {
        let syn = TcpFlags(TcpFlags::SYN);
        let mut flow = Flow::new(crate::time::Timestamp::ZERO, true, true);
        assert!(!flow.reused_by(syn), "nothing carried yet");
        let mut pool = super::super::stream::Reassembly::new(1);
        flow.tcp.on_segment(
            true,
            TcpFlags(TcpFlags::ACK),
            1,
            &[0; 10],
            10,
            &mut pool,
            &1u8,
            Source::Net4([0; 3]),
            &mut 0,
        );
        assert!(flow.reused_by(syn));
        assert!(!flow.reused_by(TcpFlags(TcpFlags::SYN | TcpFlags::ACK)), "not an initial SYN");
        flow.blocked = Some(Reason::SuspectPeer);
        assert!(!flow.reused_by(syn), "a blocked flow stays blocked");
    }
}
