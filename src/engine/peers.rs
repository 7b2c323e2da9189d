//! The suspect-peer cache: outside addresses learned from FastTrack tells, with the evidence
//! for each.
//!
//! The trust model (README, "What ftwall learns, and how far it trusts it"):
//! - A **strong** peer spoke FastTrack itself on a flow whose source is verified. It is keyed by
//!   address and blocks every LAN host's new flows to it, on every port (a FastTrack node uses
//!   one port for everything, and a blocked client retries on whatever port it has cached).
//! - A **weak** peer was only asserted by a third party: named in a header, or the destination
//!   of a client's ping or request. It is keyed by (its witness client, address, port), and
//!   blocks only that client's new flows to that address and port (the engine also exempts
//!   `timelock.allow_ports`). A weak assertion never creates, refreshes or widens a strong
//!   entry; the address speaking FastTrack itself later does (that is the corroboration).
//!
//! Invariants:
//! - Four tables (IPv4 strong, IPv6 strong, IPv4 weak, IPv6 weak), each of at most `capacity`
//!   entries: churn in one never evicts from another. A full table refuses a new entry
//!   ([`Learned::Refused`]) unless its least recently used entry has expired (then reclaimed).
//!   Live entries leave only by expiry, operator action or a shrinking reconfiguration.
//! - At most `per_client` live entries of each strength carry one client key (an IPv4 address,
//!   an IPv6 prefix) as their witness; further ones are refused. The two strengths count
//!   separately, so the weak claims of a real client's start-up (hundreds of pings) never use up
//!   the room for the strong confirmations that follow. The per-client counts have an entry
//!   only for keys with live entries, so they are bounded by the tables.
//! - Expiry is checked lazily on lookup: an expired entry is treated as absent and removed.
//! - Loopback, unspecified, multicast and broadcast addresses are never admitted (the engine
//!   also keeps out the LAN and `exempt`).

use super::snapshot::{FlowTuple, PeerEntry, Removal, StateChange, Strength};
use crate::time::Timestamp;
use crate::verdict::Reason;
use ipnet::IpNet;
use lru::LruCache;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Peer {
    entry: PeerEntry,
    /// The witness client's key and the entry's strength, counted in `per_client`.
    owner: Option<(IpNet, Strength)>,
    /// The expiry last written to the store, to avoid a store write on every refresh.
    stored_expires: Option<Timestamp>,
}

/// What a tell says about an outside address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) addr: IpAddr,
    pub(crate) port: Option<u16>,
    pub(crate) strength: Strength,
    /// The inside client whose flow carried the tell, and its key.
    pub(crate) client: Option<(IpAddr, IpNet)>,
    pub(crate) reason: Reason,
    pub(crate) flow: Option<FlowTuple>,
}

/// Why a claim was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its table is full of live entries.
    Full,
    /// Its witness client has `per_client` live entries already.
    Quota,
}

/// What [`PeerCache::merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Merged {
    /// Not admissible, expired, not later than the entry held here, a weak entry without the
    /// client and port it is scoped to, or a weak entry for a live strong peer.
    Ignored,
    /// Taken: the entry as now held.
    Taken(Box<PeerEntry>),
    /// Not admitted.
    Refused(Refusal),
}

/// What [`PeerCache::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Learned {
    /// The address was not admissible, a weak claim lacks a client or port, or a weak claim
    /// names an address that is already a strong peer.
    Ignored,
    /// A new suspect peer.
    New,
    /// An existing peer was refreshed.
    Refreshed,
    /// Not admitted.
    Refused(Refusal),
}

type WeakKey = (IpNet, IpAddr, u16);

#[derive(Debug)]
pub(crate) struct PeerCache {
    /// By family: 0 IPv4, 1 IPv6.
    strong: [LruCache<IpAddr, Peer>; 2],
    weak: [LruCache<WeakKey, Peer>; 2],
    /// Live entries per (witness client key, strength).
    per_client: HashMap<(IpNet, Strength), usize>,
    quota: usize,
    ttl: Option<Duration>,
    weak_ttl: Option<Duration>,
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

fn family(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

fn ttl_of(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn lru<K: Hash + Eq, V>(capacity: usize) -> LruCache<K, V> {
    LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero"))
}

fn expired(peer: &Peer, now: Timestamp) -> bool {
    peer.entry.expires.is_some_and(|e| e <= now)
}

/// Settings of the cache (from `[peers]`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerLimits {
    pub(crate) capacity: usize,
    pub(crate) expire_seconds: u64,
    pub(crate) weak_expire_seconds: u64,
    pub(crate) per_client: usize,
}

impl PeerCache {
    pub(crate) fn new(limits: PeerLimits) -> Self {
        Self {
            strong: [lru(limits.capacity), lru(limits.capacity)],
            weak: [lru(limits.capacity), lru(limits.capacity)],
            per_client: HashMap::new(),
            quota: limits.per_client.max(1),
            ttl: ttl_of(limits.expire_seconds),
            weak_ttl: ttl_of(limits.weak_expire_seconds),
        }
    }

    fn disown(&mut self, owner: Option<(IpNet, Strength)>) {
        if let Some(owner) = owner {
            if let Some(n) = self.per_client.get_mut(&owner) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_client.remove(&owner);
                }
            }
        }
    }

    pub(crate) fn reconfigure(&mut self, limits: PeerLimits, store: &mut impl FnMut(StateChange)) {
        let capacity = NonZeroUsize::new(limits.capacity.max(1)).expect("non-zero");
        let mut removed = Vec::new();
        for table in &mut self.strong {
            while table.len() > capacity.get() {
                removed.extend(table.pop_lru().map(|(_, p)| p));
            }
            table.resize(capacity);
        }
        for table in &mut self.weak {
            while table.len() > capacity.get() {
                removed.extend(table.pop_lru().map(|(_, p)| p));
            }
            table.resize(capacity);
        }
        for peer in removed {
            self.disown(peer.owner);
            store(StateChange::PeerRemoved(peer.entry, Removal::Evicted));
        }
        self.quota = limits.per_client.max(1);
        self.ttl = ttl_of(limits.expire_seconds);
        self.weak_ttl = ttl_of(limits.weak_expire_seconds);
    }

    pub(crate) fn len(&self) -> usize {
        self.strong.iter().map(LruCache::len).sum::<usize>()
            + self.weak.iter().map(LruCache::len).sum::<usize>()
    }

    /// Number of live-or-lazily-expired entries of one strength.
    pub(crate) fn count(&self, strength: Strength) -> usize {
        match strength {
            Strength::Strong => self.strong.iter().map(LruCache::len).sum(),
            Strength::Weak => self.weak.iter().map(LruCache::len).sum(),
        }
    }

    /// True if `ip` is a live strong suspect peer at `now` (refreshes its recency, not its
    /// expiry).
    pub(crate) fn is_strong(
        &mut self,
        ip: IpAddr,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> bool {
        let table = &mut self.strong[family(ip)];
        match table.get(&ip) {
            None => false,
            Some(peer) if expired(peer, now) => {
                let peer = *peer;
                table.pop(&ip);
                self.disown(peer.owner);
                store(StateChange::PeerRemoved(peer.entry, Removal::Expired));
                false
            }
            Some(_) => true,
        }
    }

    /// True if `ip:port` is a live weak suspect peer for the client `client` at `now`.
    pub(crate) fn is_weak_for(
        &mut self,
        client: IpNet,
        ip: IpAddr,
        port: u16,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> bool {
        let key = (client, ip, port);
        let table = &mut self.weak[family(ip)];
        match table.get(&key) {
            None => false,
            Some(peer) if expired(peer, now) => {
                let peer = *peer;
                table.pop(&key);
                self.disown(peer.owner);
                store(StateChange::PeerRemoved(peer.entry, Removal::Expired));
                false
            }
            Some(_) => true,
        }
    }

    /// Whether one more entry may carry `owner`.
    fn quota_allows(&self, owner: Option<(IpNet, Strength)>) -> bool {
        owner.is_none_or(|o| self.per_client.get(&o).copied().unwrap_or(0) < self.quota)
    }

    /// Adds or refreshes a suspect peer from `claim`.
    pub(crate) fn learn(
        &mut self,
        claim: Claim,
        now: Timestamp,
        store: &mut impl FnMut(StateChange),
    ) -> Learned {
        if !admissible(claim.addr) {
            return Learned::Ignored;
        }
        let owner = claim.client.map(|(_, key)| (key, claim.strength));
        let fresh = |expires| PeerEntry {
            addr: claim.addr,
            port: claim.port,
            expires,
            strength: claim.strength,
            client: claim.client.map(|(ip, _)| ip),
            reason: Some(claim.reason),
            flow: claim.flow,
            first_seen: now,
            last_seen: now,
            origin: None,
        };
        match claim.strength {
            Strength::Strong => {
                let expires = self.ttl.map(|ttl| now.saturating_add(ttl));
                let ttl = self.ttl;
                if let Some(peer) = self.strong[family(claim.addr)].get_mut(&claim.addr) {
                    return refresh(peer, claim.port, expires, ttl, now, store);
                }
                if !self.quota_allows(owner) {
                    return Learned::Refused(Refusal::Quota);
                }
                let table = &mut self.strong[family(claim.addr)];
                if let Some(refusal) = make_room(table, now, &mut self.per_client, store) {
                    return Learned::Refused(refusal);
                }
                let entry = fresh(expires);
                table.push(claim.addr, Peer { entry, owner, stored_expires: expires });
                self.own(owner);
                store(StateChange::Peer(entry));
                Learned::New
            }
            Strength::Weak => {
                let (Some((owner_key, _)), Some(port)) = (owner, claim.port) else { return Learned::Ignored };
                if self.strong[family(claim.addr)].peek(&claim.addr).is_some_and(|p| !expired(p, now)) {
                    return Learned::Ignored;
                }
                let expires = self.weak_ttl.map(|ttl| now.saturating_add(ttl));
                let ttl = self.weak_ttl;
                let key = (owner_key, claim.addr, port);
                if let Some(peer) = self.weak[family(claim.addr)].get_mut(&key) {
                    return refresh(peer, None, expires, ttl, now, store);
                }
                if !self.quota_allows(owner) {
                    return Learned::Refused(Refusal::Quota);
                }
                let table = &mut self.weak[family(claim.addr)];
                if let Some(refusal) = make_room(table, now, &mut self.per_client, store) {
                    return Learned::Refused(refusal);
                }
                let entry = fresh(expires);
                table.push(key, Peer { entry, owner, stored_expires: expires });
                self.own(owner);
                store(StateChange::Peer(entry));
                Learned::New
            }
        }
    }

    fn own(&mut self, owner: Option<(IpNet, Strength)>) {
        if let Some(owner) = owner {
            *self.per_client.entry(owner).or_insert(0) += 1;
        }
    }

    /// Removes every entry (strong and weak) for `ip`; returns them.
    pub(crate) fn remove(&mut self, ip: IpAddr) -> Vec<PeerEntry> {
        let mut removed = Vec::new();
        if let Some(peer) = self.strong[family(ip)].pop(&ip) {
            removed.push(peer);
        }
        let table = &mut self.weak[family(ip)];
        let keys: Vec<WeakKey> = table.iter().filter(|(k, _)| k.1 == ip).map(|(k, _)| *k).collect();
        removed.extend(keys.iter().filter_map(|k| table.pop(k)));
        for peer in &removed {
            self.disown(peer.owner);
        }
        removed.into_iter().map(|p| p.entry).collect()
    }

    /// Live entries: strong then weak, IPv4 then IPv6, each least recently used first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = PeerEntry> + '_ {
        let strong = self.strong.iter().flat_map(|t| t.iter().rev().map(|(_, p)| p.entry));
        let weak = self.weak.iter().flat_map(|t| t.iter().rev().map(|(_, p)| p.entry));
        strong.chain(weak)
    }

    /// Loads a persisted entry (skipped if expired at `now`, inadmissible, refused by the
    /// bounds, or weak without the client and port it would be scoped to). `key` maps the
    /// witness client to its key.
    pub(crate) fn restore(&mut self, entry: PeerEntry, now: Timestamp, key: impl Fn(IpAddr) -> IpNet) {
        if !admissible(entry.addr) || entry.expires.is_some_and(|e| e <= now) {
            return;
        }
        let owner = entry.client.map(|c| (key(c), entry.strength));
        if !self.quota_allows(owner) {
            return;
        }
        let peer = Peer { entry, owner, stored_expires: entry.expires };
        let mut ignore = |_| {};
        match (entry.strength, owner, entry.port) {
            (Strength::Strong, _, _) => {
                let table = &mut self.strong[family(entry.addr)];
                if table.contains(&entry.addr)
                    || make_room(table, now, &mut self.per_client, &mut ignore).is_some()
                {
                    return;
                }
                table.push(entry.addr, peer);
            }
            (Strength::Weak, Some((owner_key, _)), Some(port)) => {
                let key = (owner_key, entry.addr, port);
                let table = &mut self.weak[family(entry.addr)];
                if table.contains(&key) || make_room(table, now, &mut self.per_client, &mut ignore).is_some()
                {
                    return;
                }
                table.push(key, peer);
            }
            (Strength::Weak, _, _) => return,
        }
        self.own(owner);
    }

    /// Merges an entry another gateway learned (the caller checked it is outside `lan` and not
    /// exempt, and clamped its expiry to what a local tell of its strength could give). It
    /// keeps its strength: a weak entry stays scoped to its witness client (keyed by `key`) and
    /// port and adds nothing to a live strong peer. A new entry passes the same admission as a
    /// local one (per-client quota, a full table refuses). An entry held here is replaced only
    /// by a later expiry (no expiry is the latest; an equal expiry is settled by the origin, so
    /// the result does not depend on the order of merges, and merging the same entry twice
    /// changes nothing); it keeps its witness and first sighting.
    pub(crate) fn merge(
        &mut self,
        entry: PeerEntry,
        now: Timestamp,
        key: impl Fn(IpAddr) -> IpNet,
        store: &mut impl FnMut(StateChange),
    ) -> Merged {
        if !admissible(entry.addr) || entry.expires.is_some_and(|e| e <= now) {
            return Merged::Ignored;
        }
        let owner = entry.client.map(|c| (key(c), entry.strength));
        let fam = family(entry.addr);
        match entry.strength {
            Strength::Strong => {
                if let Some(peer) = self.strong[fam].get_mut(&entry.addr) {
                    return merge_held(peer, entry, now);
                }
                if !self.quota_allows(owner) {
                    return Merged::Refused(Refusal::Quota);
                }
                let table = &mut self.strong[fam];
                if let Some(refusal) = make_room(table, now, &mut self.per_client, store) {
                    return Merged::Refused(refusal);
                }
                table.push(entry.addr, Peer { entry, owner, stored_expires: entry.expires });
            }
            Strength::Weak => {
                let (Some((owner_key, _)), Some(port)) = (owner, entry.port) else { return Merged::Ignored };
                if self.strong[fam].peek(&entry.addr).is_some_and(|p| !expired(p, now)) {
                    return Merged::Ignored;
                }
                let weak_key = (owner_key, entry.addr, port);
                if let Some(peer) = self.weak[fam].get_mut(&weak_key) {
                    return merge_held(peer, entry, now);
                }
                if !self.quota_allows(owner) {
                    return Merged::Refused(Refusal::Quota);
                }
                let table = &mut self.weak[fam];
                if let Some(refusal) = make_room(table, now, &mut self.per_client, store) {
                    return Merged::Refused(refusal);
                }
                table.push(weak_key, Peer { entry, owner, stored_expires: entry.expires });
            }
        }
        self.own(owner);
        Merged::Taken(Box::new(entry))
    }

    /// Removes the one entry `entry` names (its strength, address, and for a weak one its
    /// witness client, keyed by `key`, and port); returns it if there was one.
    pub(crate) fn remove_entry(
        &mut self,
        entry: &PeerEntry,
        key: impl Fn(IpAddr) -> IpNet,
    ) -> Option<PeerEntry> {
        let fam = family(entry.addr);
        let peer = match entry.strength {
            Strength::Strong => self.strong[fam].pop(&entry.addr)?,
            Strength::Weak => {
                let weak_key = (key(entry.client?), entry.addr, entry.port?);
                self.weak[fam].pop(&weak_key)?
            }
        };
        self.disown(peer.owner);
        Some(peer.entry)
    }
}

/// Merges a remote entry into one held here (see [`PeerCache::merge`]).
fn merge_held(peer: &mut Peer, entry: PeerEntry, now: Timestamp) -> Merged {
    let latest = |expires: Option<Timestamp>| expires.unwrap_or(Timestamp::from_micros(u64::MAX));
    let held = &peer.entry;
    if !expired(peer, now) && (latest(entry.expires), entry.origin) <= (latest(held.expires), held.origin) {
        return Merged::Ignored;
    }
    peer.entry = PeerEntry {
        port: entry.port.or(held.port),
        client: held.client,
        reason: held.reason.or(entry.reason),
        flow: held.flow.or(entry.flow),
        first_seen: if expired(peer, now) { entry.first_seen } else { held.first_seen },
        last_seen: held.last_seen.max(entry.last_seen),
        ..entry
    };
    peer.stored_expires = peer.entry.expires;
    Merged::Taken(Box::new(peer.entry))
}

/// Refreshes a live or expired entry; the store sees it when the expiry moved by a tenth of
/// the TTL or more, the port changed, or it had expired.
fn refresh(
    peer: &mut Peer,
    port: Option<u16>,
    expires: Option<Timestamp>,
    ttl: Option<Duration>,
    now: Timestamp,
    store: &mut impl FnMut(StateChange),
) -> Learned {
    let was_expired = expired(peer, now);
    // Seen here again: the entry is ours now (published as this gateway's).
    let was_remote = peer.entry.origin.take().is_some();
    let port_changed = port.is_some() && port != peer.entry.port;
    if port.is_some() {
        peer.entry.port = port;
    }
    peer.entry.expires = expires;
    peer.entry.last_seen = peer.entry.last_seen.max(now);
    if was_expired {
        peer.entry.first_seen = now;
    }
    let stale = match (peer.stored_expires, expires, ttl) {
        (Some(stored), Some(new), Some(ttl)) => new.saturating_since(stored) >= ttl / 10,
        _ => false,
    };
    if port_changed || stale || was_expired || was_remote {
        peer.stored_expires = expires;
        store(StateChange::Peer(peer.entry));
    }
    if was_expired {
        Learned::New
    } else {
        Learned::Refreshed
    }
}

/// Makes room for one entry in a full `table` by reclaiming its least recently used entry if
/// that one has expired; otherwise the table refuses (live entries are never evicted).
fn make_room<K: Hash + Eq + Copy>(
    table: &mut LruCache<K, Peer>,
    now: Timestamp,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    store: &mut impl FnMut(StateChange),
) -> Option<Refusal> {
    if table.len() < table.cap().get() {
        return None;
    }
    match table.peek_lru() {
        Some((_, peer)) if expired(peer, now) => {
            let (_, peer) = table.pop_lru().expect("peeked");
            if let Some(owner) = peer.owner {
                if let Some(n) = per_client.get_mut(&owner) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        per_client.remove(&owner);
                    }
                }
            }
            store(StateChange::PeerRemoved(peer.entry, Removal::Expired));
            None
        }
        _ => Some(Refusal::Full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Reason;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits(capacity: usize, expire_seconds: u64) -> PeerLimits {
        PeerLimits { capacity, expire_seconds, weak_expire_seconds: expire_seconds, per_client: 1000 }
    }

    fn strong(addr: &str, port: Option<u16>) -> Claim {
        Claim {
            addr: ip(addr),
            port,
            strength: Strength::Strong,
            client: None,
            reason: Reason::UdpPong,
            flow: None,
        }
    }

    fn weak(client: &str, addr: &str, port: u16) -> Claim {
        let c = ip(client);
        Claim {
            addr: ip(addr),
            port: Some(port),
            strength: Strength::Weak,
            client: Some((c, IpNet::from(c))),
            reason: Reason::UdpPing,
            flow: None,
        }
    }

    #[test]
    fn a_full_table_refuses_rather_than_evicting_a_live_entry() {
        let mut cache = PeerCache::new(limits(2, 60));
        let mut records = Vec::new();
        let mut store = |r| records.push(r);
        let now = Timestamp::from_secs(1);
        assert_eq!(cache.learn(strong("198.51.100.1", Some(1214)), now, &mut store), Learned::New);
        assert_eq!(cache.learn(strong("198.51.100.2", None), now, &mut store), Learned::New);
        assert_eq!(cache.learn(strong("198.51.100.1", Some(1214)), now, &mut store), Learned::Refreshed);
        assert_eq!(
            cache.learn(strong("198.51.100.3", None), now, &mut store),
            Learned::Refused(Refusal::Full)
        );
        // IPv6 and weak entries have tables of their own.
        assert_eq!(cache.learn(strong("2001:db8:2::1", None), now, &mut store), Learned::New);
        assert_eq!(cache.learn(weak("192.0.2.10", "198.51.100.3", 53), now, &mut store), Learned::New);
        let mut store = |_| {};
        assert!(cache.is_strong(ip("198.51.100.1"), now, &mut store));
        assert!(cache.is_strong(ip("198.51.100.2"), now, &mut store));
        assert!(!cache.is_strong(ip("198.51.100.3"), now, &mut store));
        // Once the least recently used entry has expired, it is reclaimed for a new one.
        let later = Timestamp::from_secs(62);
        assert_eq!(cache.learn(strong("198.51.100.3", None), later, &mut store), Learned::New);
    }

    #[test]
    fn expiry_is_lazy_and_refresh_extends() {
        let mut cache = PeerCache::new(limits(10, 60));
        let mut store = |_| {};
        cache.learn(strong("203.0.113.9", Some(3000)), Timestamp::from_secs(0), &mut store);
        assert!(cache.is_strong(ip("203.0.113.9"), Timestamp::from_secs(59), &mut store));
        cache.learn(strong("203.0.113.9", None), Timestamp::from_secs(30), &mut store);
        assert!(cache.is_strong(ip("203.0.113.9"), Timestamp::from_secs(89), &mut store));
        assert!(!cache.is_strong(ip("203.0.113.9"), Timestamp::from_secs(90), &mut store));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_weak_entry_is_scoped_to_its_client_and_port_and_never_makes_a_strong_one() {
        let mut cache = PeerCache::new(limits(10, 60));
        let mut store = |_| {};
        let now = Timestamp::from_secs(1);
        let client = IpNet::from(ip("192.0.2.10"));
        let other = IpNet::from(ip("192.0.2.11"));
        assert_eq!(cache.learn(weak("192.0.2.10", "198.51.100.9", 1214), now, &mut store), Learned::New);
        assert!(cache.is_weak_for(client, ip("198.51.100.9"), 1214, now, &mut store));
        assert!(!cache.is_weak_for(client, ip("198.51.100.9"), 443, now, &mut store), "another port");
        assert!(!cache.is_weak_for(other, ip("198.51.100.9"), 1214, now, &mut store), "another client");
        assert!(!cache.is_strong(ip("198.51.100.9"), now, &mut store));
        // A strong claim takes over; a weak one then adds nothing.
        assert_eq!(cache.learn(strong("198.51.100.9", Some(1214)), now, &mut store), Learned::New);
        assert_eq!(cache.learn(weak("192.0.2.11", "198.51.100.9", 1214), now, &mut store), Learned::Ignored);
        assert_eq!(cache.remove(ip("198.51.100.9")).len(), 2, "the strong and the weak entry");
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn one_client_cannot_add_more_than_its_quota() {
        let mut cache = PeerCache::new(PeerLimits { per_client: 2, ..limits(10, 60) });
        let mut store = |_| {};
        let now = Timestamp::from_secs(1);
        assert_eq!(cache.learn(weak("192.0.2.10", "198.51.100.1", 1), now, &mut store), Learned::New);
        assert_eq!(cache.learn(weak("192.0.2.10", "198.51.100.2", 1), now, &mut store), Learned::New);
        assert_eq!(
            cache.learn(weak("192.0.2.10", "198.51.100.3", 1), now, &mut store),
            Learned::Refused(Refusal::Quota)
        );
        assert_eq!(cache.learn(weak("192.0.2.11", "198.51.100.3", 1), now, &mut store), Learned::New);
        // Forgetting one gives the client room again.
        cache.remove(ip("198.51.100.1"));
        assert_eq!(cache.learn(weak("192.0.2.10", "198.51.100.3", 1), now, &mut store), Learned::New);
    }

    #[test]
    fn inadmissible_addresses_are_ignored() {
        let mut cache = PeerCache::new(limits(10, 0));
        let mut store = |_| {};
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "::", "::1", "ff02::1"] {
            assert_eq!(
                cache.learn(strong(bad, None), Timestamp::ZERO, &mut store),
                Learned::Ignored,
                "{bad}"
            );
        }
        assert_eq!(cache.len(), 0);
    }
}
