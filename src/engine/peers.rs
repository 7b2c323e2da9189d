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
//! - An entry is *remote* while another gateway's merge set it (`origin` Some): a merge makes it
//!   remote (taking over a local entry too), a local tell that refreshes it makes it local. At
//!   most [`remote_share`] (half) of each table is remote: a merge beyond it is refused
//!   ([`Refusal::RemoteShare`]) unless the remote entry that ends soonest has expired (then
//!   reclaimed). Each table keeps its remote entries in an index by expiry, so both the
//!   reclaim and the eviction below take one step, never a walk of the table (a merge or a
//!   tell runs under the lock the packet path takes).
//! - A local entry outranks a remote one: when a table is full, a new local entry (a tell, or
//!   one restored from this gateway's state file) evicts the remote entry that ends soonest
//!   (reported as [`Removal::Evicted`], never published). A live local entry is never evicted:
//!   it leaves only by expiry, operator action or a shrinking reconfiguration (which evicts
//!   remote entries first).
//! - At most `per_client` live local entries of each strength carry one client key (an IPv4
//!   address, an IPv6 prefix) as their witness; further ones are refused. The two strengths
//!   count separately, so the weak claims of a real client's start-up (hundreds of pings) never
//!   use up the room for the strong confirmations that follow. The per-client counts have an
//!   entry only for keys with live entries, so they are bounded by the tables. A remote entry
//!   is charged to its origin gateway, not to a client: the client another gateway names is its
//!   claim (absent, or any address), and charging it here would let that gateway use up a real
//!   client's quota. The gateways' charge is the remote share of each table.
//! - Expiry is checked lazily on lookup: an expired entry is treated as absent and removed.
//! - Loopback, unspecified, multicast and broadcast addresses are never admitted (the engine
//!   also keeps out the LAN and `exempt`).

use super::snapshot::{FlowTuple, PeerEntry, Removal, StateChange, Strength};
use crate::time::Timestamp;
use crate::verdict::Reason;
use ipnet::IpNet;
use lru::LruCache;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Peer {
    entry: PeerEntry,
    /// The witness client's key and the entry's strength, counted in `per_client` (None for a
    /// remote entry merged new: charged to its origin).
    owner: Option<(IpNet, Strength)>,
    /// The expiry last written to the store, to avoid a store write on every refresh.
    stored_expires: Option<Timestamp>,
}

impl Peer {
    fn is_remote(&self) -> bool {
        self.entry.origin.is_some()
    }
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
    /// Its table is full of live entries it may not evict.
    Full,
    /// Its witness client has `per_client` live entries already.
    Quota,
    /// A remote entry, and remote entries hold [`remote_share`] of its table already.
    RemoteShare,
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

/// How many entries of a table of `capacity` may be remote (other gateways'): half, so that
/// other gateways' claims never fill the room this gateway's own learning needs.
pub(crate) fn remote_share(capacity: usize) -> usize {
    capacity / 2
}

/// One of the four tables, with the count of its remote entries.
#[derive(Debug)]
struct Table<K: Hash + Eq> {
    entries: LruCache<K, Peer>,
    /// The entries whose `origin` is Some, by expiry, soonest first (so the remote entry to
    /// reclaim or evict is found in one step, never by a walk of the table).
    remote: BTreeSet<(Timestamp, K)>,
}

/// Where an entry sorts among the remote ones: its expiry (none: last).
fn end(peer: &Peer) -> Timestamp {
    peer.entry.expires.unwrap_or(Timestamp::from_micros(u64::MAX))
}

impl<K: Hash + Eq + Ord + Copy> Table<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            remote: BTreeSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn share(&self) -> usize {
        remote_share(self.entries.cap().get())
    }

    /// Adds an entry under a key it does not hold (the caller made room).
    fn push(&mut self, key: K, peer: Peer) {
        debug_assert!(!self.entries.contains(&key) && self.entries.len() < self.entries.cap().get());
        if peer.is_remote() {
            self.remote.insert((end(&peer), key));
        }
        self.entries.push(key, peer);
    }

    fn pop(&mut self, key: &K) -> Option<Peer> {
        let peer = self.entries.pop(key)?;
        if peer.is_remote() {
            self.remote.remove(&(end(&peer), *key));
        }
        Some(peer)
    }

    /// The key of the remote entry that ends soonest, if `pick` accepts it (one step: if the
    /// soonest has not expired, none has).
    fn soonest_remote(&self, pick: impl Fn(&Peer) -> bool) -> Option<K> {
        let &(_, key) = self.remote.first()?;
        self.entries.peek(&key).filter(|p| pick(p)).map(|_| key)
    }

    /// Shrinks to `capacity`: evicts remote entries first (least recently used first), down to
    /// the new remote share and as far as the new capacity needs, then local ones.
    fn shrink(&mut self, capacity: NonZeroUsize, removed: &mut Vec<Peer>) {
        let over = self.len().saturating_sub(capacity.get());
        let remote_over = self.remote.len().saturating_sub(remote_share(capacity.get()));
        let victims: Vec<K> = self.remote.iter().take(over.max(remote_over)).map(|&(_, k)| k).collect();
        removed.extend(victims.iter().filter_map(|k| self.pop(k)));
        while self.len() > capacity.get() {
            let Some((&key, _)) = self.entries.peek_lru() else { break };
            removed.extend(self.pop(&key));
        }
        self.entries.resize(capacity);
    }

    /// Test-only: recounts the remote entries and checks the share.
    #[cfg(test)]
    fn check_invariants(&self) {
        let remote = self.entries.iter().filter(|(_, p)| p.is_remote()).count();
        assert_eq!(self.remote.len(), remote, "remote entries");
        assert!(self
            .remote
            .iter()
            .all(|(at, k)| self.entries.peek(k).is_some_and(|p| p.is_remote() && end(p) == *at)));
        assert!(remote <= self.share(), "{remote} remote entries over the share");
    }
}

#[derive(Debug)]
pub(crate) struct PeerCache {
    /// By family: 0 IPv4, 1 IPv6.
    strong: [Table<IpAddr>; 2],
    weak: [Table<WeakKey>; 2],
    /// Live local entries per (witness client key, strength).
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

fn expired(peer: &Peer, now: Timestamp) -> bool {
    peer.entry.expires.is_some_and(|e| e <= now)
}

/// Whether one more entry may carry `owner` (None: charged to no client).
fn quota_allows(
    per_client: &HashMap<(IpNet, Strength), usize>,
    quota: usize,
    owner: Option<(IpNet, Strength)>,
) -> bool {
    owner.is_none_or(|o| per_client.get(&o).copied().unwrap_or(0) < quota)
}

/// Puts one more entry of `owner` on the per-client counts.
fn own(per_client: &mut HashMap<(IpNet, Strength), usize>, owner: Option<(IpNet, Strength)>) {
    if let Some(owner) = owner {
        *per_client.entry(owner).or_insert(0) += 1;
    }
}

/// Takes one entry of `owner` off the per-client counts.
fn disown(per_client: &mut HashMap<(IpNet, Strength), usize>, owner: Option<(IpNet, Strength)>) {
    if let Some(owner) = owner {
        if let Some(n) = per_client.get_mut(&owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_client.remove(&owner);
            }
        }
    }
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
            strong: [Table::new(limits.capacity), Table::new(limits.capacity)],
            weak: [Table::new(limits.capacity), Table::new(limits.capacity)],
            per_client: HashMap::new(),
            quota: limits.per_client.max(1),
            ttl: ttl_of(limits.expire_seconds),
            weak_ttl: ttl_of(limits.weak_expire_seconds),
        }
    }

    /// Test-only: recounts the remote entries of every table and the per-client counts.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.strong.iter().for_each(Table::check_invariants);
        self.weak.iter().for_each(Table::check_invariants);
        let mut owners: HashMap<(IpNet, Strength), usize> = HashMap::new();
        let strong = self.strong.iter().flat_map(|t| t.entries.iter().map(|(_, p)| p));
        let weak = self.weak.iter().flat_map(|t| t.entries.iter().map(|(_, p)| p));
        for owner in strong.chain(weak).filter_map(|p| p.owner) {
            *owners.entry(owner).or_insert(0) += 1;
        }
        assert_eq!(self.per_client, owners, "per-client counts");
    }

    pub(crate) fn reconfigure(&mut self, limits: PeerLimits, store: &mut impl FnMut(StateChange)) {
        let capacity = NonZeroUsize::new(limits.capacity.max(1)).expect("non-zero");
        let mut removed = Vec::new();
        for table in &mut self.strong {
            table.shrink(capacity, &mut removed);
        }
        for table in &mut self.weak {
            table.shrink(capacity, &mut removed);
        }
        for peer in removed {
            disown(&mut self.per_client, peer.owner);
            store(StateChange::PeerRemoved(peer.entry, Removal::Evicted));
        }
        self.quota = limits.per_client.max(1);
        self.ttl = ttl_of(limits.expire_seconds);
        self.weak_ttl = ttl_of(limits.weak_expire_seconds);
    }

    pub(crate) fn len(&self) -> usize {
        self.strong.iter().map(Table::len).sum::<usize>() + self.weak.iter().map(Table::len).sum::<usize>()
    }

    /// Number of live-or-lazily-expired entries of one strength.
    pub(crate) fn count(&self, strength: Strength) -> usize {
        match strength {
            Strength::Strong => self.strong.iter().map(Table::len).sum(),
            Strength::Weak => self.weak.iter().map(Table::len).sum(),
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
        match table.entries.get(&ip) {
            None => false,
            Some(peer) if expired(peer, now) => {
                let peer = table.pop(&ip).expect("present");
                disown(&mut self.per_client, peer.owner);
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
        match table.entries.get(&key) {
            None => false,
            Some(peer) if expired(peer, now) => {
                let peer = table.pop(&key).expect("present");
                disown(&mut self.per_client, peer.owner);
                store(StateChange::PeerRemoved(peer.entry, Removal::Expired));
                false
            }
            Some(_) => true,
        }
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
                let table = &mut self.strong[family(claim.addr)];
                let held = Held { key: &claim.addr, owner, port: claim.port, expires, ttl };
                learn_in(table, &mut self.per_client, self.quota, held, fresh(expires), now, store)
            }
            Strength::Weak => {
                let (Some((owner_key, _)), Some(port)) = (owner, claim.port) else { return Learned::Ignored };
                if self.strong[family(claim.addr)].entries.peek(&claim.addr).is_some_and(|p| !expired(p, now))
                {
                    return Learned::Ignored;
                }
                let expires = self.weak_ttl.map(|ttl| now.saturating_add(ttl));
                let ttl = self.weak_ttl;
                let key = (owner_key, claim.addr, port);
                let table = &mut self.weak[family(claim.addr)];
                let held = Held { key: &key, owner, port: None, expires, ttl };
                learn_in(table, &mut self.per_client, self.quota, held, fresh(expires), now, store)
            }
        }
    }

    /// Removes every entry (strong and weak) for `ip`; returns them.
    pub(crate) fn remove(&mut self, ip: IpAddr) -> Vec<PeerEntry> {
        let mut removed = Vec::new();
        if let Some(peer) = self.strong[family(ip)].pop(&ip) {
            removed.push(peer);
        }
        let table = &mut self.weak[family(ip)];
        let keys: Vec<WeakKey> = table.entries.iter().filter(|(k, _)| k.1 == ip).map(|(k, _)| *k).collect();
        removed.extend(keys.iter().filter_map(|k| table.pop(k)));
        for peer in &removed {
            disown(&mut self.per_client, peer.owner);
        }
        removed.into_iter().map(|p| p.entry).collect()
    }

    /// Live entries: strong then weak, IPv4 then IPv6, each least recently used first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = PeerEntry> + '_ {
        let strong = self.strong.iter().flat_map(|t| t.entries.iter().rev().map(|(_, p)| p.entry));
        let weak = self.weak.iter().flat_map(|t| t.entries.iter().rev().map(|(_, p)| p.entry));
        strong.chain(weak)
    }

    /// Loads a persisted entry (skipped if expired at `now`, inadmissible, refused by the
    /// bounds, or weak without the client and port it would be scoped to). `key` maps the
    /// witness client to its key. A local entry (no `origin`) evicts a remote one from a full
    /// table, as a local tell does: `store` sees the eviction. A remote one passes the remote
    /// share and is charged to its origin, as when it was merged.
    pub(crate) fn restore(
        &mut self,
        entry: PeerEntry,
        now: Timestamp,
        key: impl Fn(IpAddr) -> IpNet,
        store: &mut impl FnMut(StateChange),
    ) {
        if !admissible(entry.addr) || entry.expires.is_some_and(|e| e <= now) {
            return;
        }
        let remote = entry.origin.is_some();
        let owner = entry.client.filter(|_| !remote).map(|c| (key(c), entry.strength));
        if !quota_allows(&self.per_client, self.quota, owner) {
            return;
        }
        let peer = Peer { entry, owner, stored_expires: entry.expires };
        match (entry.strength, entry.client, entry.port) {
            (Strength::Strong, _, _) => {
                let table = &mut self.strong[family(entry.addr)];
                if table.entries.contains(&entry.addr)
                    || make_room(table, now, &mut self.per_client, remote, store).is_some()
                {
                    return;
                }
                table.push(entry.addr, peer);
            }
            (Strength::Weak, Some(client), Some(port)) => {
                let weak_key = (key(client), entry.addr, port);
                let table = &mut self.weak[family(entry.addr)];
                if table.entries.contains(&weak_key)
                    || make_room(table, now, &mut self.per_client, remote, store).is_some()
                {
                    return;
                }
                table.push(weak_key, peer);
            }
            (Strength::Weak, _, _) => return,
        }
        own(&mut self.per_client, owner);
    }

    /// Merges an entry another gateway learned (the caller checked it is outside `lan` and not
    /// exempt, and clamped its expiry to what a local tell of its strength could give). It
    /// keeps its strength: a weak entry stays scoped to its witness client (keyed by `key`) and
    /// port and adds nothing to a live strong peer. A new entry is charged to its origin, not to
    /// a client: it passes the remote share of its table (never evicting), and a full table
    /// refuses it. An entry held here is replaced only by a later expiry (no expiry is the
    /// latest; an equal expiry is settled by the origin, so the result does not depend on the
    /// order of merges, and merging the same entry twice changes nothing); it keeps its witness
    /// and first sighting, and taking over a local entry makes it remote (so it passes the
    /// remote share too).
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
        debug_assert!(entry.origin.is_some(), "a merged entry has an origin");
        let fam = family(entry.addr);
        match entry.strength {
            Strength::Strong => {
                let table = &mut self.strong[fam];
                let share = table.share();
                if let Some(peer) = table.entries.get_mut(&entry.addr) {
                    return merge_held(
                        peer,
                        &mut table.remote,
                        &mut self.per_client,
                        entry.addr,
                        share,
                        entry,
                        now,
                    );
                }
                if let Some(refusal) = make_room(table, now, &mut self.per_client, true, store) {
                    return Merged::Refused(refusal);
                }
                table.push(entry.addr, Peer { entry, owner: None, stored_expires: entry.expires });
            }
            Strength::Weak => {
                let (Some(client), Some(port)) = (entry.client, entry.port) else { return Merged::Ignored };
                if self.strong[fam].entries.peek(&entry.addr).is_some_and(|p| !expired(p, now)) {
                    return Merged::Ignored;
                }
                let weak_key = (key(client), entry.addr, port);
                let table = &mut self.weak[fam];
                let share = table.share();
                if let Some(peer) = table.entries.get_mut(&weak_key) {
                    return merge_held(
                        peer,
                        &mut table.remote,
                        &mut self.per_client,
                        weak_key,
                        share,
                        entry,
                        now,
                    );
                }
                if let Some(refusal) = make_room(table, now, &mut self.per_client, true, store) {
                    return Merged::Refused(refusal);
                }
                table.push(weak_key, Peer { entry, owner: None, stored_expires: entry.expires });
            }
        }
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
        disown(&mut self.per_client, peer.owner);
        Some(peer.entry)
    }
}

/// Merges a remote entry into one held here, under `key` (see [`PeerCache::merge`]); `remote`
/// is the remote order of its table, `share` the most remote entries it may hold.
fn merge_held<K: Ord + Copy>(
    peer: &mut Peer,
    remote: &mut BTreeSet<(Timestamp, K)>,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    key: K,
    share: usize,
    entry: PeerEntry,
    now: Timestamp,
) -> Merged {
    let latest = |expires: Option<Timestamp>| expires.unwrap_or(Timestamp::from_micros(u64::MAX));
    let held = &peer.entry;
    if !expired(peer, now) && (latest(entry.expires), entry.origin) <= (latest(held.expires), held.origin) {
        return Merged::Ignored;
    }
    let takes_over = !peer.is_remote();
    if takes_over && remote.len() >= share {
        return Merged::Refused(Refusal::RemoteShare);
    }
    let was_at = end(peer);
    if takes_over {
        // Another gateway's now: no longer counted against this gateway's client.
        disown(per_client, peer.owner.take());
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
    // Remote now (taken over) or still, at its new expiry.
    if !takes_over {
        remote.remove(&(was_at, key));
    }
    remote.insert((end(peer), key));
    Merged::Taken(Box::new(peer.entry))
}

/// What a local tell says about an entry it may find held: its key, the client it is charged
/// to, its port (None: unchanged) and the expiry it gives.
struct Held<'a, K> {
    key: &'a K,
    owner: Option<(IpNet, Strength)>,
    port: Option<u16>,
    expires: Option<Timestamp>,
    ttl: Option<Duration>,
}

/// A local tell about `held.key`, if `table` holds it: refreshes it. A remote entry becomes
/// local and is charged to the tell's client as a new local entry would be; beyond the
/// client's quota it is refused and left as it is (still blocking, still the other gateway's).
/// None: not held.
fn refresh_held<K: Hash + Eq + Ord + Copy>(
    table: &mut Table<K>,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    quota: usize,
    held: Held<'_, K>,
    now: Timestamp,
    store: &mut impl FnMut(StateChange),
) -> Option<Learned> {
    let peer = table.entries.get_mut(held.key)?;
    if peer.is_remote() {
        if !quota_allows(per_client, quota, held.owner) {
            return Some(Learned::Refused(Refusal::Quota));
        }
        own(per_client, held.owner);
        peer.owner = held.owner;
    }
    Some(refresh(peer, &mut table.remote, held.key, held.port, held.expires, held.ttl, now, store))
}

/// A local tell about `held.key` in `table`: refreshes the entry held ([`refresh_held`]), or
/// adds `fresh` as a new local entry charged to `held.owner`: refused beyond the client's
/// quota, or when [`make_room`] finds no room.
fn learn_in<K: Hash + Eq + Ord + Copy>(
    table: &mut Table<K>,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    quota: usize,
    held: Held<'_, K>,
    fresh: PeerEntry,
    now: Timestamp,
    store: &mut impl FnMut(StateChange),
) -> Learned {
    let (key, owner, expires) = (*held.key, held.owner, held.expires);
    if let Some(learned) = refresh_held(table, per_client, quota, held, now, store) {
        return learned;
    }
    if !quota_allows(per_client, quota, owner) {
        return Learned::Refused(Refusal::Quota);
    }
    if let Some(refusal) = make_room(table, now, per_client, false, store) {
        return Learned::Refused(refusal);
    }
    table.push(key, Peer { entry: fresh, owner, stored_expires: expires });
    own(per_client, owner);
    store(StateChange::Peer(fresh));
    Learned::New
}

/// Refreshes a live or expired entry, under `key`, from a local tell (`remote` is the remote
/// order of its table: the entry is local now); the store sees it when the expiry moved by a
/// tenth of the TTL or more, the port changed, it had expired, or it was remote.
#[allow(clippy::too_many_arguments)]
fn refresh<K: Ord + Copy>(
    peer: &mut Peer,
    remote: &mut BTreeSet<(Timestamp, K)>,
    key: &K,
    port: Option<u16>,
    expires: Option<Timestamp>,
    ttl: Option<Duration>,
    now: Timestamp,
    store: &mut impl FnMut(StateChange),
) -> Learned {
    let was_expired = expired(peer, now);
    // Seen here again: the entry is ours now (published as this gateway's).
    let was_remote = peer.entry.origin.take().is_some();
    if was_remote {
        remote.remove(&(end(peer), *key));
    }
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

/// Removes `key`'s entry from `table`, reporting it to `store` as removed for `why`.
fn drop_entry<K: Hash + Eq + Ord + Copy>(
    table: &mut Table<K>,
    key: &K,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    why: Removal,
    store: &mut impl FnMut(StateChange),
) {
    if let Some(peer) = table.pop(key) {
        disown(per_client, peer.owner);
        store(StateChange::PeerRemoved(peer.entry, why));
    }
}

/// Makes room in `table` for one new entry, remote (another gateway's) or local:
/// - a remote entry when remote entries hold the table's share: the remote entry that ends
///   soonest is reclaimed if it has expired, otherwise [`Refusal::RemoteShare`];
/// - a full table: its least recently used entry is reclaimed if it has expired; otherwise a
///   local entry evicts the remote entry that ends soonest ([`Removal::Evicted`]), and a
///   remote entry, or a local one with no remote entry to evict, is refused
///   ([`Refusal::Full`]: live local entries are never evicted).
fn make_room<K: Hash + Eq + Ord + Copy>(
    table: &mut Table<K>,
    now: Timestamp,
    per_client: &mut HashMap<(IpNet, Strength), usize>,
    remote: bool,
    store: &mut impl FnMut(StateChange),
) -> Option<Refusal> {
    if remote && table.remote.len() >= table.share() {
        let Some(key) = table.soonest_remote(|p| expired(p, now)) else { return Some(Refusal::RemoteShare) };
        drop_entry(table, &key, per_client, Removal::Expired, store);
    }
    if table.len() < table.entries.cap().get() {
        return None;
    }
    if let Some((&key, peer)) = table.entries.peek_lru() {
        if expired(peer, now) {
            drop_entry(table, &key, per_client, Removal::Expired, store);
            return None;
        }
    }
    if remote {
        return Some(Refusal::Full);
    }
    let Some(key) = table.soonest_remote(|_| true) else { return Some(Refusal::Full) };
    let why = if table.entries.peek(&key).is_some_and(|p| expired(p, now)) {
        Removal::Expired
    } else {
        Removal::Evicted
    };
    drop_entry(table, &key, per_client, why, store);
    None
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

    fn remote(addr: &str, client: Option<&str>, strength: Strength, expires: u64) -> PeerEntry {
        let gateway = crate::engine::snapshot::GatewayId::new("gw-a").unwrap();
        PeerEntry {
            client: client.map(ip),
            origin: Some(gateway),
            ..PeerEntry::new(ip(addr), Some(1214), Some(Timestamp::from_secs(expires)), strength)
        }
    }

    /// The per-client quota counts what this gateway learned, through every change of hands:
    /// a remote takeover frees the client's slot, a local tell taking over a remote entry
    /// takes one (and is refused, leaving the entry as it is, beyond the quota).
    #[test]
    fn the_per_client_quota_follows_an_entry_changing_hands() {
        let mut cache = PeerCache::new(PeerLimits { per_client: 1, ..limits(8, 60) });
        let mut store = |_| {};
        let now = Timestamp::from_secs(1);
        let key = |c: IpAddr| IpNet::from(c);
        let client = "192.0.2.10";
        let owned =
            |cache: &PeerCache| cache.per_client.get(&(IpNet::from(ip(client)), Strength::Weak)).copied();
        assert_eq!(cache.learn(weak(client, "198.51.100.1", 1214), now, &mut store), Learned::New);
        assert_eq!(
            cache.learn(weak(client, "198.51.100.2", 1214), now, &mut store),
            Learned::Refused(Refusal::Quota)
        );
        // Another gateway takes the entry over (a later expiry): no longer this client's.
        let over = remote("198.51.100.1", Some(client), Strength::Weak, 500);
        assert!(matches!(cache.merge(over, now, key, &mut store), Merged::Taken(_)));
        assert_eq!(owned(&cache), None);
        assert_eq!(cache.learn(weak(client, "198.51.100.2", 1214), now, &mut store), Learned::New);
        assert_eq!(owned(&cache), Some(1));
        // At its quota, the client's tell about the remote entry is refused; it stays remote.
        assert_eq!(
            cache.learn(weak(client, "198.51.100.1", 1214), now, &mut store),
            Learned::Refused(Refusal::Quota)
        );
        assert!(cache.entries().any(|e| e.addr == ip("198.51.100.1") && e.origin.is_some()));
        // With room, the tell takes it over and is charged for it.
        assert_eq!(cache.remove(ip("198.51.100.2")).len(), 1);
        assert_eq!(owned(&cache), None);
        assert_eq!(cache.learn(weak(client, "198.51.100.1", 1214), now, &mut store), Learned::Refreshed);
        assert!(cache.entries().any(|e| e.addr == ip("198.51.100.1") && e.origin.is_none()));
        assert_eq!(owned(&cache), Some(1));
        cache.check_invariants();
    }

    #[test]
    fn the_remote_count_follows_every_change_of_hands_and_every_removal() {
        let mut cache = PeerCache::new(limits(4, 60));
        let mut removed = Vec::new();
        let mut store = |r| removed.push(r);
        let now = Timestamp::from_secs(1);
        let key = |c: IpAddr| IpNet::from(c);
        let merge = |cache: &mut PeerCache, e, store: &mut dyn FnMut(StateChange)| {
            cache.merge(e, now, key, &mut |r| store(r))
        };
        assert!(matches!(
            merge(&mut cache, remote("198.51.100.1", None, Strength::Strong, 50), &mut store),
            Merged::Taken(_)
        ));
        assert!(matches!(
            merge(&mut cache, remote("198.51.100.2", None, Strength::Strong, 50), &mut store),
            Merged::Taken(_)
        ));
        assert_eq!(
            merge(&mut cache, remote("198.51.100.3", None, Strength::Strong, 50), &mut store),
            Merged::Refused(Refusal::RemoteShare)
        );
        cache.check_invariants();
        // Seen here: local, and the share has room again.
        assert_eq!(cache.learn(strong("198.51.100.1", None), now, &mut store), Learned::Refreshed);
        assert!(matches!(
            merge(&mut cache, remote("198.51.100.3", None, Strength::Strong, 50), &mut store),
            Merged::Taken(_)
        ));
        cache.check_invariants();
        // A later remote expiry over the local entry would make it remote: refused at the share.
        assert_eq!(
            merge(&mut cache, remote("198.51.100.1", None, Strength::Strong, 100), &mut store),
            Merged::Refused(Refusal::RemoteShare)
        );
        assert_eq!(cache.remove(ip("198.51.100.2")).len(), 1);
        assert!(matches!(
            merge(&mut cache, remote("198.51.100.1", None, Strength::Strong, 100), &mut store),
            Merged::Taken(_)
        ));
        cache.check_invariants();
        // Lazy expiry, then the reclaim of an expired remote entry at the share.
        assert!(!cache.is_strong(ip("198.51.100.3"), Timestamp::from_secs(50), &mut store));
        cache.check_invariants();
        assert!(matches!(
            merge(&mut cache, remote("198.51.100.4", None, Strength::Strong, 70), &mut store),
            Merged::Taken(_)
        ));
        let later = Timestamp::from_secs(80);
        let weak = remote("198.51.100.9", Some("192.0.2.10"), Strength::Weak, 200);
        assert!(matches!(cache.merge(weak, later, key, &mut store), Merged::Taken(_)));
        let fresh = remote("198.51.100.5", None, Strength::Strong, 200);
        assert!(
            matches!(cache.merge(fresh, later, key, &mut store), Merged::Taken(_)),
            "198.51.100.4 reclaimed"
        );
        cache.check_invariants();
        // A shrinking reload evicts remote entries first.
        cache.learn(strong("198.51.100.6", None), later, &mut store);
        cache.reconfigure(limits(2, 60), &mut store);
        let kept: Vec<_> = cache.entries().filter(|e| e.strength == Strength::Strong).collect();
        assert_eq!(kept.iter().filter(|e| e.origin.is_some()).count(), 1);
        assert!(kept.iter().any(|e| e.addr == ip("198.51.100.6")), "the local entry stays");
        cache.check_invariants();
        assert!(cache.remove_entry(&weak, key).is_some());
        cache.check_invariants();
    }
}
