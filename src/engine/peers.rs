//! The suspect-peer cache: outside addresses seen speaking FastTrack.
//!
//! Invariants:
//! - At most `capacity` entries (least recently used evicted first); memory never grows with input.
//! - Keyed by IP: FastTrack nodes use one port for everything, but a blocked client retries on
//!   whatever port it has cached, so a peer is blocked on every port. The port is remembered for
//!   logs and the state file.
//! - Expiry is checked lazily on lookup: an expired entry is treated as absent and removed.
//! - LAN, loopback, unspecified, multicast and broadcast addresses are never admitted.

use super::snapshot::{GatewayId, PeerEntry, StateChange};
use crate::time::Timestamp;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Peer {
    port: Option<u16>,
    expires: Option<Timestamp>,
    /// The expiry last written to the store, to avoid a store write on every refresh.
    stored_expires: Option<Timestamp>,
    /// The gateway that taught it ([`PeerCache::merge`]); None once seen here.
    origin: Option<GatewayId>,
}

impl Peer {
    fn entry(&self, addr: IpAddr) -> PeerEntry {
        PeerEntry { addr, port: self.port, expires: self.expires, origin: self.origin }
    }
}

/// What [`PeerCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// The address was not admissible (or is the LAN).
    Ignored,
    /// A new suspect peer.
    New,
    /// An existing peer was refreshed.
    Refreshed,
}

#[derive(Debug)]
pub(crate) struct PeerCache {
    entries: LruCache<IpAddr, Peer>,
    ttl: Option<Duration>,
}

/// True for addresses that can be an outside FastTrack peer at all.
pub(crate) fn admissible(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()),
    }
}

impl PeerCache {
    pub(crate) fn new(capacity: usize, expire_seconds: u64) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            ttl: (expire_seconds > 0).then(|| Duration::from_secs(expire_seconds)),
        }
    }

    pub(crate) fn reconfigure(
        &mut self,
        capacity: usize,
        expire_seconds: u64,
        store: &mut impl FnMut(StateChange),
    ) {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        while self.entries.len() > capacity.get() {
            if let Some((ip, _)) = self.entries.pop_lru() {
                store(StateChange::PeerRemoved(ip));
            }
        }
        self.entries.resize(capacity);
        self.ttl = (expire_seconds > 0).then(|| Duration::from_secs(expire_seconds));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if `ip` is a live suspect peer at `now` (refreshes its recency, not its expiry).
    pub(crate) fn is_suspect(
        &mut self,
        ip: IpAddr,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> bool {
        match self.entries.get(&ip) {
            None => false,
            Some(peer) if peer.expires.is_some_and(|e| e <= now) => {
                self.entries.pop(&ip);
                store(StateChange::PeerRemoved(ip));
                false
            }
            Some(_) => true,
        }
    }

    /// Adds or refreshes a suspect peer.
    pub(crate) fn learn(
        &mut self,
        ip: IpAddr,
        port: Option<u16>,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> Learned {
        if !admissible(ip) {
            return Learned::Ignored;
        }
        let expires = self.ttl.map(|ttl| now.saturating_add(ttl));
        if let Some(peer) = self.entries.get_mut(&ip) {
            let was_expired = peer.expires.is_some_and(|e| e <= now);
            let port_changed = port.is_some() && port != peer.port;
            if port.is_some() {
                peer.port = port;
            }
            peer.expires = expires;
            let taught = peer.origin.take().is_some();
            // Persist a refresh only when it moves the stored expiry by a tenth of the TTL or more.
            let stale = match (peer.stored_expires, expires, self.ttl) {
                (Some(stored), Some(new), Some(ttl)) => new.saturating_since(stored) >= ttl / 10,
                _ => false,
            };
            if port_changed || stale || was_expired || taught {
                peer.stored_expires = expires;
                store(StateChange::Peer(peer.entry(ip)));
            }
            return if was_expired { Learned::New } else { Learned::Refreshed };
        }
        let peer = Peer { port, expires, stored_expires: expires, origin: None };
        if let Some((evicted, _)) = self.entries.push(ip, peer) {
            if evicted != ip {
                store(StateChange::PeerRemoved(evicted));
            }
        }
        store(StateChange::Peer(peer.entry(ip)));
        Learned::New
    }

    /// Removes a peer; returns whether it was present.
    pub(crate) fn remove(&mut self, ip: IpAddr) -> bool {
        self.entries.pop(&ip).is_some()
    }

    /// Live entries, least recently used first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = PeerEntry> + '_ {
        self.entries.iter().rev().map(|(&addr, p)| p.entry(addr))
    }

    /// Loads a persisted entry (skipped if expired at `now` or inadmissible).
    pub(crate) fn restore(&mut self, entry: PeerEntry, now: Timestamp) {
        if !admissible(entry.addr) || entry.expires.is_some_and(|e| e <= now) {
            return;
        }
        let peer = Peer {
            port: entry.port,
            expires: entry.expires,
            stored_expires: entry.expires,
            origin: entry.origin,
        };
        self.entries.push(entry.addr, peer);
    }

    /// Merges an entry another gateway learned (the caller checked it is outside `lan` and
    /// clamped its expiry): kept if it is admissible, not expired at `now` and expires later
    /// than what is known here (no expiry is the latest; an equal expiry is settled by the
    /// origin, so the result does not depend on the order of merges, and merging the same
    /// entry twice changes nothing). Returns the entry as now held, if it was taken, and
    /// reports through `store` a peer evicted to make room.
    pub(crate) fn merge(
        &mut self,
        entry: PeerEntry,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> Option<PeerEntry> {
        if !admissible(entry.addr) || entry.expires.is_some_and(|e| e <= now) {
            return None;
        }
        let latest = |expires: Option<Timestamp>| expires.unwrap_or(Timestamp::from_micros(u64::MAX));
        let old = self.entries.peek(&entry.addr).copied();
        if let Some(old) = old {
            if (latest(entry.expires), entry.origin) <= (latest(old.expires), old.origin) {
                return None;
            }
        }
        let port = entry.port.or(old.and_then(|o| o.port));
        let peer = Peer { port, expires: entry.expires, stored_expires: entry.expires, origin: entry.origin };
        if let Some((evicted, _)) = self.entries.push(entry.addr, peer) {
            if evicted != entry.addr {
                store(StateChange::PeerRemoved(evicted));
            }
        }
        Some(peer.entry(entry.addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn capacity_bounds_and_eviction_is_reported() {
        let mut cache = PeerCache::new(2, 0);
        let mut records = Vec::new();
        let mut store = |r| records.push(r);
        let now = Timestamp::from_secs(1);
        assert_eq!(cache.learn(ip("198.51.100.1"), Some(1214), now, &mut store), Learned::New);
        assert_eq!(cache.learn(ip("198.51.100.2"), None, now, &mut store), Learned::New);
        assert_eq!(cache.learn(ip("198.51.100.1"), Some(1214), now, &mut store), Learned::Refreshed);
        assert_eq!(cache.learn(ip("198.51.100.3"), None, now, &mut store), Learned::New);
        assert_eq!(cache.len(), 2);
        assert!(records.contains(&StateChange::PeerRemoved(ip("198.51.100.2"))));
        let mut store = |_| {};
        assert!(cache.is_suspect(ip("198.51.100.1"), now, &mut store));
        assert!(!cache.is_suspect(ip("198.51.100.2"), now, &mut store));
    }

    #[test]
    fn expiry_is_lazy_and_refresh_extends() {
        let mut cache = PeerCache::new(10, 60);
        let mut store = |_| {};
        cache.learn(ip("203.0.113.9"), Some(3000), Timestamp::from_secs(0), &mut store);
        assert!(cache.is_suspect(ip("203.0.113.9"), Timestamp::from_secs(59), &mut store));
        cache.learn(ip("203.0.113.9"), None, Timestamp::from_secs(30), &mut store);
        assert!(cache.is_suspect(ip("203.0.113.9"), Timestamp::from_secs(89), &mut store));
        assert!(!cache.is_suspect(ip("203.0.113.9"), Timestamp::from_secs(90), &mut store));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn merge_keeps_the_later_expiry_whatever_the_order() {
        let a = GatewayId::new("gw-a").unwrap();
        let b = GatewayId::new("gw-b").unwrap();
        let entry =
            |expires, origin| PeerEntry { addr: ip("198.51.100.9"), port: Some(1214), expires, origin };
        let early = entry(Some(Timestamp::from_secs(50)), Some(a));
        let late = entry(Some(Timestamp::from_secs(90)), Some(b));
        let now = Timestamp::from_secs(10);
        let mut store = |_| {};
        let mut one = PeerCache::new(10, 100);
        let mut two = PeerCache::new(10, 100);
        assert!(one.merge(early, now, &mut store).is_some());
        assert!(one.merge(late, now, &mut store).is_some());
        assert!(two.merge(late, now, &mut store).is_some());
        assert_eq!(two.merge(early, now, &mut store), None, "an earlier expiry never shortens");
        assert_eq!(two.merge(late, now, &mut store), None, "merging twice changes nothing");
        assert_eq!(one.entries().collect::<Vec<_>>(), vec![late]);
        assert_eq!(two.entries().collect::<Vec<_>>(), vec![late]);
        // Seen here again: the peer is ours now (no origin) and is stored.
        let mut stored = Vec::new();
        one.learn(ip("198.51.100.9"), Some(1214), Timestamp::from_secs(20), &mut |c| stored.push(c));
        assert!(matches!(stored.as_slice(), [StateChange::Peer(PeerEntry { origin: None, .. })]));
        assert_eq!(one.merge(entry(Some(Timestamp::from_secs(5)), Some(a)), now, &mut store), None);
        assert_eq!(one.merge(entry(None, None), now, &mut store).map(|e| e.expires), Some(None));
        assert_eq!(one.merge(entry(None, Some(a)), now, &mut store).map(|e| e.origin), Some(Some(a)));
    }

    #[test]
    fn inadmissible_addresses_are_ignored() {
        let mut cache = PeerCache::new(10, 0);
        let mut store = |_| {};
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "::", "::1", "ff02::1"] {
            assert_eq!(cache.learn(ip(bad), None, Timestamp::ZERO, &mut store), Learned::Ignored, "{bad}");
        }
        assert_eq!(cache.len(), 0);
    }
}
