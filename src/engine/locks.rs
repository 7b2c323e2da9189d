//! Per-client time-locks and their timers.
//!
//! A client (inside host) that shows a FastTrack tell is locked until `now + T`; every further
//! tell re-arms the lock. Each lock remembers the client's FastTrack UDP port and the last
//! outside peer the client pinged. When a lock is half expired and both are known, the engine
//! asks the shell to probe the client once: a ping forged from that peer to the client's port.
//! The client answers a node it pinged itself; its pong crosses the gateway as a tell and re-arms
//! the lock.
//!
//! Only the answer to that probe re-arms a lock by a pong: sent from the probed address and port
//! (the client's FastTrack port the probe went to), to the exact address and port the probe was
//! forged from, after the probe was sent, while the lock is in force, once per probe
//! ([`ClientLocks::take_probe_answer`]). The lock remembers the one probe outstanding, so this
//! costs nothing per client beyond the lock itself.
//!
//! In a cluster, only the gateway that armed a lock probes it: a lock merged from another
//! gateway (`origin` set) yields a [`Due::Probe`] with `by_here` false, [`MERGED_PROBE_LEAD`]
//! before its half expiry, and the engine then only awaits the answer, which the client sends
//! through whichever gateway its route takes.
//!
//! Invariants:
//! - Keyed by the network the lock covers ([`crate::EngineConfig::client_key`]: an IPv4
//!   address, an IPv6 `timelock.ipv6_prefix`), so a host cannot escape its lock by moving to
//!   another address of its prefix. The engine locks only inside hosts (in `lan`, not `exempt`).
//! - Two tables (IPv4, IPv6) of at most `capacity` locks each: churn in one never touches the
//!   other.
//! - A lock is *remote* while its current expiry was set by another gateway (`origin` Some):
//!   a merge makes it remote (taking over a local lock too), a local tell that re-arms it makes
//!   it local again. At most [`remote_share`] (half) of each table is remote: a merge beyond it
//!   is refused ([`LockRefusal::RemoteShare`]). `remote` indexes them by expiry, per family, so
//!   the one to evict is found in one step, never by a walk of the table.
//! - A local lock outranks a remote one: when a table is full, a new local lock (a tell, or one
//!   restored from this gateway's state file) evicts the remote lock that ends soonest,
//!   returned to the caller to report as [`super::snapshot::Removal::Evicted`]; with no remote
//!   lock to evict, it is refused ([`Armed::Refused`]). A live local lock is never evicted:
//!   local locks leave only by expiry, operator release or a shrinking reconfiguration (which
//!   evicts remote locks first).
//! - `timers` holds exactly one `(deadline, key)` entry per lock: its next probe time if a probe
//!   is due for the current arming, otherwise its expiry. So the timer index is bounded by the
//!   lock tables and `poll_timeout` is its first entry.

use super::snapshot::{FlowTuple, GatewayId, LockEntry};
use crate::time::Timestamp;
use crate::verdict::Reason;
use ipnet::IpNet;
use lru::LruCache;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

/// How much earlier than its own half expiry a gateway awaits the answer to the probe another
/// gateway sends for a lock it merged: the two gateways' clocks (NTP) and the merge's delay
/// place the origin's probe a little before or after this gateway's reading of it.
pub(crate) const MERGED_PROBE_LEAD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Lock {
    /// The last address of the locked network seen (the probe's target).
    client: IpAddr,
    until: Timestamp,
    /// When the current arming started (probe time = armed + T/2).
    armed: Timestamp,
    port: Option<u16>,
    /// The last outside peer the client pinged (the probe's forged source).
    peer: Option<SocketAddr>,
    /// No probe is pending for the current arming (sent, or none due).
    probe_sent: bool,
    /// The probe sent for the current arming and not yet answered: the client's address and
    /// port it went to, and the peer it was forged from (see [`ClientLocks::mark_probed`]).
    probed: Option<(SocketAddr, SocketAddr)>,
    /// The deadline currently registered in the timer index.
    deadline: Timestamp,
    /// The expiry last written to the store.
    stored_until: Timestamp,
    reason: Option<Reason>,
    flow: Option<FlowTuple>,
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// The gateway whose tell set the current expiry ([`ClientLocks::merge`]); None for a
    /// tell seen here.
    origin: Option<GatewayId>,
}

impl Lock {
    /// The client's FastTrack port and the peer to forge the probe from, when both are known.
    fn probe_target(&self) -> Option<(u16, SocketAddr)> {
        self.port.zip(self.peer)
    }

    fn entry(&self, key: IpNet) -> LockEntry {
        LockEntry {
            client: self.client,
            network: (key != IpNet::from(self.client)).then_some(key),
            until: self.until,
            port: self.port,
            peer: self.peer,
            reason: self.reason,
            flow: self.flow,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            origin: self.origin,
        }
    }
}

/// What a call to [`ClientLocks::arm`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Armed {
    /// The client was not locked before. `evicted`: the remote lock dropped to make room.
    New {
        /// The remote lock evicted for this one, if the table was full.
        evicted: Option<Box<LockEntry>>,
    },
    /// An existing lock was re-armed.
    Rearmed {
        /// Whether the new expiry should be persisted (moved by at least a second).
        persist: bool,
    },
    /// The client's table is full of live local locks: not locked.
    Refused,
}

/// Why a lock was not placed ([`ClientLocks::merge`], [`ClientLocks::restore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockRefusal {
    /// Expired at arrival, or not later than the lock held (nothing to do).
    Stale,
    /// Its table is full of live locks that it may not evict.
    Full,
    /// A remote lock, and remote locks hold [`remote_share`] of its table already.
    RemoteShare,
}

/// How many locks of a table of `capacity` may be remote (another gateway's): half, so that
/// other gateways' claims never fill the room this gateway's own learning needs.
pub(crate) fn remote_share(capacity: usize) -> usize {
    capacity / 2
}

/// Something due at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The half-expiry probe of a lock: forged from `peer` to the client's FastTrack port
    /// `client`. Sent by the gateway that armed the lock (`by_here`); a lock merged from another
    /// gateway is probed by that gateway, and here only its answer is awaited (the client
    /// answers through whichever gateway its route takes).
    Probe {
        /// The client's address and FastTrack UDP port.
        client: SocketAddr,
        /// The outside peer the client last pinged.
        peer: SocketAddr,
        /// This gateway armed the lock and sends the probe.
        by_here: bool,
    },
    /// The client's lock expired.
    Released(LockEntry),
}

/// What a tell says about the client it locks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arming {
    pub(crate) client: IpAddr,
    pub(crate) key: IpNet,
    pub(crate) port: Option<u16>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) reason: Option<Reason>,
    pub(crate) flow: Option<FlowTuple>,
}

#[derive(Debug)]
pub(crate) struct ClientLocks {
    /// By family: 0 IPv4, 1 IPv6.
    locks: [LruCache<IpNet, Lock>; 2],
    /// By family: the locks whose `origin` is Some, by expiry, soonest first (so the one to
    /// evict is found in one step, never by a walk of the table).
    remote: [BTreeSet<(Timestamp, IpNet)>; 2],
    timers: BTreeSet<(Timestamp, IpNet)>,
}

fn family(key: &IpNet) -> usize {
    usize::from(matches!(key, IpNet::V6(_)))
}

fn table(capacity: usize) -> LruCache<IpNet, Lock> {
    LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero"))
}

impl ClientLocks {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            locks: [table(capacity), table(capacity)],
            remote: [BTreeSet::new(), BTreeSet::new()],
            timers: BTreeSet::new(),
        }
    }

    /// Removes `key`'s lock from its table and the timer index, keeping `remote` exact.
    fn remove(&mut self, key: IpNet) -> Option<Lock> {
        let fam = family(&key);
        let lock = self.locks[fam].pop(&key)?;
        self.timers.remove(&(lock.deadline, key));
        if lock.origin.is_some() {
            self.remote[fam].remove(&(lock.until, key));
        }
        Some(lock)
    }

    /// Evicts the remote lock of family `fam` that ends soonest, if there is one (one step).
    fn evict_remote(&mut self, fam: usize) -> Option<LockEntry> {
        let &(_, key) = self.remote[fam].first()?;
        self.remove(key).map(|lock| lock.entry(key))
    }

    /// Test-only: recounts the remote locks and the timers, and checks the invariants.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for (fam, locks) in self.locks.iter().enumerate() {
            let remote = locks.iter().filter(|(_, l)| l.origin.is_some()).count();
            assert_eq!(self.remote[fam].len(), remote, "remote locks of family {fam}");
            assert!(self.remote[fam]
                .iter()
                .all(|(until, k)| locks.peek(k).is_some_and(|l| l.origin.is_some() && l.until == *until)));
            assert!(remote <= remote_share(locks.cap().get()), "{remote} remote locks of family {fam}");
        }
        let timers: BTreeSet<_> =
            self.locks.iter().flat_map(|t| t.iter().map(|(&k, l)| (l.deadline, k))).collect();
        assert_eq!(self.timers, timers);
    }

    pub(crate) fn len(&self) -> usize {
        self.locks.iter().map(LruCache::len).sum()
    }

    fn peek(&self, key: &IpNet) -> Option<&Lock> {
        self.locks[family(key)].peek(key)
    }

    /// Shrinks or grows the tables; returns the locks evicted by shrinking: remote ones first
    /// (those that end soonest first), down to the new [`remote_share`] and as far as the new
    /// capacity needs, then local ones.
    pub(crate) fn resize(&mut self, capacity: usize) -> Vec<LockEntry> {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        let mut released = Vec::new();
        for fam in 0..2 {
            let over = self.locks[fam].len().saturating_sub(capacity.get());
            let remote_over = self.remote[fam].len().saturating_sub(remote_share(capacity.get()));
            let victims: Vec<IpNet> =
                self.remote[fam].iter().take(over.max(remote_over)).map(|&(_, k)| k).collect();
            for key in victims {
                released.extend(self.remove(key).map(|lock| lock.entry(key)));
            }
            while self.locks[fam].len() > capacity.get() {
                let Some((&key, _)) = self.locks[fam].peek_lru() else { break };
                released.extend(self.remove(key).map(|lock| lock.entry(key)));
            }
            self.locks[fam].resize(capacity);
        }
        released
    }

    /// True if the network `key` is locked at `now`.
    pub(crate) fn is_locked(&self, key: IpNet, now: Timestamp) -> bool {
        self.peek(&key).is_some_and(|l| l.until > now)
    }

    /// True if `key` is locked at `now` and `port` may be its FastTrack port: the lock's port,
    /// or any port when the lock knows none (a client locked by TCP tells only). A FastTrack
    /// node uses one port for everything, so another port of a client whose port is known is
    /// some other program.
    pub(crate) fn is_locked_on(&self, key: IpNet, port: u16, now: Timestamp) -> bool {
        self.peek(&key).is_some_and(|l| l.until > now && l.port.is_none_or(|p| p == port))
    }

    /// Locks or re-arms the network of `arming.client` for `period`. `port` is its FastTrack
    /// UDP port when known, `peer` the outside peer it just pinged (the caller checked it is a
    /// probe target).
    pub(crate) fn arm(&mut self, arming: Arming, now: Timestamp, period: Duration) -> Armed {
        let Arming { client, key, port, peer, reason, flow } = arming;
        let until = now.saturating_add(period);
        let probe_at = now.saturating_add(period / 2);
        let fam = family(&key);
        let locks = &mut self.locks[fam];
        if let Some(lock) = locks.get_mut(&key) {
            lock.client = client;
            lock.last_seen = lock.last_seen.max(now);
            if until <= lock.until {
                // A tell with an older timestamp (clock step): keep the later expiry.
                if port.is_some() && lock.port.is_none() {
                    lock.port = port;
                }
                if peer.is_some() {
                    lock.peer = peer;
                }
                return Armed::Rearmed { persist: false };
            }
            self.timers.remove(&(lock.deadline, key));
            // Seen here: the lock is ours now (and published as ours, however little the
            // expiry moved).
            let was_remote = lock.origin.take().is_some();
            if was_remote {
                self.remote[fam].remove(&(lock.until, key));
            }
            lock.until = until;
            lock.armed = now;
            lock.probe_sent = false;
            lock.probed = None;
            if port.is_some() {
                lock.port = port;
            }
            if peer.is_some() {
                lock.peer = peer;
            }
            lock.deadline = if lock.probe_target().is_some() { probe_at } else { until };
            self.timers.insert((lock.deadline, key));
            let persist = was_remote || until.saturating_since(lock.stored_until) >= Duration::from_secs(1);
            if persist {
                lock.stored_until = until;
            }
            return Armed::Rearmed { persist };
        }
        let mut evicted = None;
        if locks.len() >= locks.cap().get() {
            evicted = self.evict_remote(fam).map(Box::new);
            if evicted.is_none() {
                return Armed::Refused;
            }
        }
        let deadline = if port.is_some() && peer.is_some() { probe_at } else { until };
        let lock = Lock {
            client,
            until,
            armed: now,
            port,
            peer,
            probe_sent: false,
            probed: None,
            deadline,
            stored_until: until,
            reason,
            flow,
            first_seen: now,
            last_seen: now,
            origin: None,
        };
        self.locks[fam].push(key, lock);
        self.timers.insert((deadline, key));
        Armed::New { evicted }
    }

    /// Releases the lock of `key` now (operator action); returns it if there was one.
    pub(crate) fn release(&mut self, key: IpNet) -> Option<LockEntry> {
        self.remove(key).map(|lock| lock.entry(key))
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Pops the next thing due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<Due> {
        let &(deadline, key) = self.timers.first()?;
        if deadline > now {
            return None;
        }
        self.timers.remove(&(deadline, key));
        let locks = &mut self.locks[family(&key)];
        let Some(lock) = locks.peek_mut(&key) else {
            return self.pop_due(now);
        };
        if lock.until <= now {
            let entry = lock.entry(key);
            let lock = locks.pop(&key).expect("peeked");
            if lock.origin.is_some() {
                self.remote[family(&key)].remove(&(lock.until, key));
            }
            return Some(Due::Released(entry));
        }
        match lock.probe_target() {
            Some((port, peer)) if !lock.probe_sent => {
                lock.probe_sent = true;
                lock.deadline = lock.until;
                let client = lock.client;
                self.timers.insert((lock.until, key));
                Some(Due::Probe {
                    client: SocketAddr::new(client, port),
                    peer,
                    by_here: lock.origin.is_none(),
                })
            }
            _ => {
                // Not expired yet (should not happen): reschedule at the expiry.
                lock.deadline = lock.until;
                self.timers.insert((lock.until, key));
                self.pop_due(now)
            }
        }
    }

    /// Records that the probe [`ClientLocks::pop_due`] returned for `key` was sent: to `client`
    /// (address and FastTrack port), forged from `peer`.
    pub(crate) fn mark_probed(&mut self, key: IpNet, client: SocketAddr, peer: SocketAddr) {
        if let Some(lock) = self.locks[family(&key)].peek_mut(&key) {
            lock.probed = Some((client, peer));
        }
    }

    /// Whether a datagram sent from `from` to `to` at `now` answers the probe outstanding for
    /// `key`, `from`'s lock: the lock is in force, a probe was sent for its current arming and
    /// not yet answered, `from` is the exact address and port the probe went to and `to` the
    /// exact address and port it was forged from. A match consumes the probe (one answer per
    /// probe).
    pub(crate) fn take_probe_answer(
        &mut self,
        key: IpNet,
        from: SocketAddr,
        to: SocketAddr,
        now: Timestamp,
    ) -> bool {
        let Some(lock) = self.locks[family(&key)].peek_mut(&key) else { return false };
        let answers = lock.until > now && lock.probed == Some((from, to));
        if answers {
            lock.probed = None;
        }
        answers
    }

    /// The lock of `key`, if any.
    pub(crate) fn entry(&self, key: IpNet) -> Option<LockEntry> {
        self.peek(&key).map(|l| l.entry(key))
    }

    /// Locked clients: IPv4 then IPv6, each least recently armed first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = LockEntry> + '_ {
        self.locks.iter().flat_map(|t| t.iter().rev().map(|(&key, l)| l.entry(key)))
    }

    /// Merges a lock another gateway set under `key` (the caller checked the client is an
    /// inside host, keyed it and clamped the expiry): taken if not expired at `now` and later
    /// than the lock held here (an equal expiry is settled by the origin, so the result does not
    /// depend on the order of merges, and merging the same entry twice changes nothing). The
    /// port, peer and provenance known here are kept when the entry has none. A full table
    /// refuses a new lock, and a merged lock (`entry.origin` Some) counts against the
    /// [`remote_share`] (taking over a local lock too). Returns the lock as now held if it was
    /// taken.
    pub(crate) fn merge(
        &mut self,
        entry: LockEntry,
        key: IpNet,
        now: Timestamp,
        period: Duration,
    ) -> Result<Option<LockEntry>, LockRefusal> {
        if entry.until <= now {
            return Ok(None);
        }
        let old = self.peek(&key).copied();
        if let Some(old) = old {
            if (entry.until, entry.origin) <= (old.until, old.origin) {
                return Ok(None);
            }
        }
        let entry = LockEntry {
            port: entry.port.or(old.and_then(|o| o.port)),
            peer: entry.peer.or(old.and_then(|o| o.peer)),
            reason: entry.reason.or(old.and_then(|o| o.reason)),
            flow: entry.flow.or(old.and_then(|o| o.flow)),
            first_seen: old.map_or(entry.first_seen, |o| o.first_seen),
            last_seen: entry.last_seen.max(old.map_or(Timestamp::ZERO, |o| o.last_seen)),
            ..entry
        };
        match self.restore(entry, key, now, period) {
            // A merged lock is remote: it never evicts.
            Ok(_) => Ok(self.entry(key)),
            Err(LockRefusal::Stale) => Ok(None),
            Err(refusal) => Err(refusal),
        }
    }

    /// Loads a lock under `key`, persisted or merged (refused if expired at `now`; a remote one,
    /// `origin` Some, if remote locks hold their [`remote_share`]; if its table is full, unless a
    /// local lock can evict a remote one). `period` is the configured lock time, used to place
    /// the half-expiry probe. Returns the remote lock evicted for it, if any.
    pub(crate) fn restore(
        &mut self,
        entry: LockEntry,
        key: IpNet,
        now: Timestamp,
        period: Duration,
    ) -> Result<Option<LockEntry>, LockRefusal> {
        if entry.until <= now {
            return Err(LockRefusal::Stale);
        }
        let armed = Timestamp::from_micros(entry.until.as_micros().saturating_sub(period.as_micros() as u64));
        let mut probe_at = armed.saturating_add(period / 2);
        if entry.origin.is_some() {
            // The origin sends the probe at its own half expiry, read on its own clock: await the
            // answer from a little before ours.
            probe_at = Timestamp::from_micros(
                probe_at.as_micros().saturating_sub(MERGED_PROBE_LEAD.as_micros() as u64),
            );
        }
        let probe_at = probe_at.max(now);
        let probe = entry.port.is_some() && entry.peer.is_some();
        let deadline = if probe && probe_at < entry.until { probe_at } else { entry.until };
        let fam = family(&key);
        let remote = entry.origin.is_some();
        let share = remote_share(self.locks[fam].cap().get());
        let mut evicted = None;
        match self.locks[fam].peek(&key) {
            Some(old) => {
                if remote && old.origin.is_none() && self.remote[fam].len() >= share {
                    return Err(LockRefusal::RemoteShare);
                }
                self.remove(key);
            }
            None if remote && self.remote[fam].len() >= share => return Err(LockRefusal::RemoteShare),
            None if self.locks[fam].len() >= self.locks[fam].cap().get() => {
                if remote {
                    return Err(LockRefusal::Full);
                }
                evicted = Some(self.evict_remote(fam).ok_or(LockRefusal::Full)?);
            }
            None => {}
        }
        let lock = Lock {
            client: entry.client,
            until: entry.until,
            armed,
            port: entry.port,
            peer: entry.peer,
            probe_sent: deadline == entry.until,
            probed: None,
            deadline,
            stored_until: entry.until,
            reason: entry.reason,
            flow: entry.flow,
            first_seen: entry.first_seen,
            last_seen: entry.last_seen,
            origin: entry.origin,
        };
        self.locks[fam].push(key, lock);
        if remote {
            self.remote[fam].insert((entry.until, key));
        }
        self.timers.insert((deadline, key));
        Ok(evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(120);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn net(ip: IpAddr) -> IpNet {
        IpNet::from(ip)
    }

    fn arming(client: IpAddr, port: Option<u16>, peer: Option<SocketAddr>) -> Arming {
        Arming { client, key: net(client), port, peer, reason: None, flow: None }
    }

    #[test]
    fn locked_on_the_locks_port_or_any_port_when_it_knows_none() {
        let mut locks = ClientLocks::new(8);
        let (c, tcp_only) = (ip("192.0.2.10"), ip("192.0.2.11"));
        locks.arm(arming(c, Some(3531), None), at(0), T);
        locks.arm(arming(tcp_only, None, None), at(0), T);
        assert!(locks.is_locked_on(net(c), 3531, at(119)));
        assert!(!locks.is_locked_on(net(c), 3532, at(1)), "another program of the same host");
        assert!(!locks.is_locked_on(net(c), 3531, at(120)), "expired");
        assert!(
            locks.is_locked_on(net(tcp_only), 3532, at(1)) && locks.is_locked_on(net(tcp_only), 53, at(1))
        );
        assert!(!locks.is_locked_on(net(ip("192.0.2.12")), 3531, at(1)), "not locked");
        locks.arm(arming(tcp_only, Some(4000), None), at(2), T);
        assert!(!locks.is_locked_on(net(tcp_only), 3532, at(3)), "the port once known");
    }

    #[test]
    fn lock_probe_and_expiry() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        let peer = sock("198.51.100.20:1214");
        assert_eq!(locks.arm(arming(c, Some(3531), Some(peer)), at(0), T), Armed::New { evicted: None });
        assert!(locks.is_locked(net(c), at(119)));
        assert!(!locks.is_locked(net(c), at(120)));
        assert_eq!(locks.next_deadline(), Some(at(60)));
        assert_eq!(locks.pop_due(at(59)), None);
        assert_eq!(
            locks.pop_due(at(60)),
            Some(Due::Probe { client: SocketAddr::new(c, 3531), peer, by_here: true })
        );
        let probed = SocketAddr::new(c, 3531);
        assert!(!locks.take_probe_answer(net(c), probed, peer, at(61)), "not sent yet");
        locks.mark_probed(net(c), probed, peer);
        assert!(!locks.take_probe_answer(net(c), probed, sock("198.51.100.21:1214"), at(61)), "another peer");
        assert!(
            !locks.take_probe_answer(net(c), probed, sock("198.51.100.20:1215"), at(61)),
            "another peer port"
        );
        assert!(
            !locks.take_probe_answer(net(c), SocketAddr::new(c, 3532), peer, at(61)),
            "another client port"
        );
        assert!(locks.take_probe_answer(net(c), probed, peer, at(61)));
        assert!(!locks.take_probe_answer(net(c), probed, peer, at(62)), "one answer per probe");
        assert_eq!(locks.next_deadline(), Some(at(120)));
        assert_eq!(locks.pop_due(at(119)), None);
        assert!(matches!(locks.pop_due(at(120)), Some(Due::Released(l)) if l.client == c));
        assert_eq!(locks.len(), 0);
        assert_eq!(locks.next_deadline(), None);
    }

    #[test]
    fn rearm_moves_both_deadlines() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        locks.arm(arming(c, None, None), at(0), T);
        assert_eq!(locks.next_deadline(), Some(at(120)), "no port: no probe");
        assert_eq!(locks.arm(arming(c, None, None), at(100), T), Armed::Rearmed { persist: true });
        assert_eq!(locks.next_deadline(), Some(at(220)));
        assert_eq!(locks.arm(arming(c, None, None), at(100), T), Armed::Rearmed { persist: false });
        assert_eq!(locks.pop_due(at(219)), None);
        assert!(matches!(locks.pop_due(at(220)), Some(Due::Released(l)) if l.client == c));
    }

    #[test]
    fn a_full_table_refuses_and_keeps_timers_consistent() {
        let mut locks = ClientLocks::new(2);
        locks.arm(arming(ip("192.0.2.1"), None, None), at(0), T);
        locks.arm(arming(ip("192.0.2.2"), None, None), at(1), T);
        assert_eq!(locks.arm(arming(ip("192.0.2.3"), None, None), at(2), T), Armed::Refused);
        assert!(locks.is_locked(net(ip("192.0.2.1")), at(2)), "a live lock is never evicted");
        assert!(!locks.is_locked(net(ip("192.0.2.3")), at(2)));
        assert_eq!(locks.timers.len(), 2);
        assert_eq!(locks.next_deadline(), Some(at(120)));
        assert!(locks.release(net(ip("192.0.2.2"))).is_some());
        assert_eq!(locks.timers.len(), 1);
        assert!(locks.resize(1).is_empty());
    }

    #[test]
    fn ipv6_locks_have_their_own_table_and_cover_their_prefix() {
        let mut locks = ClientLocks::new(2);
        let v4 = ip("192.0.2.10");
        locks.arm(arming(v4, None, None), at(0), T);
        let prefix: IpNet = "2001:db8:1::/64".parse().unwrap();
        for i in 0..100u16 {
            let addr = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, i, 0, 0, 0, 1));
            let key = IpNet::new(addr, 64).unwrap().trunc();
            locks.arm(Arming { key, ..arming(addr, None, None) }, at(1), T);
        }
        assert!(locks.is_locked(net(v4), at(1)), "IPv6 churn never touches the IPv4 table");
        assert!(locks.is_locked(prefix, at(1)), "the first prefixes keep their locks");
        assert_eq!(locks.len(), 3);
    }

    #[test]
    fn a_port_without_a_peer_gets_no_probe_until_a_ping_names_one() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        locks.arm(arming(c, Some(3531), None), at(0), T);
        assert_eq!(locks.next_deadline(), Some(at(120)), "TCP-locked: no probe");
        let peer = sock("198.51.100.20:2345");
        locks.arm(arming(c, Some(3531), Some(peer)), at(10), T);
        assert_eq!(locks.next_deadline(), Some(at(70)));
        // A later tell without a peer keeps the one known.
        locks.arm(arming(c, None, None), at(20), T);
        assert_eq!(locks.entry(net(c)).unwrap().peer, Some(peer));
        assert_eq!(
            locks.pop_due(at(80)),
            Some(Due::Probe { client: SocketAddr::new(c, 3531), peer, by_here: true })
        );
    }

    #[test]
    fn merge_keeps_the_later_expiry_whatever_the_order_and_refuses_when_full() {
        let a = GatewayId::new("gw-a").unwrap();
        let peer = sock("198.51.100.20:1214");
        let c = ip("192.0.2.5");
        let entry = |until, origin| LockEntry { origin, ..LockEntry::new(c, at(until), None, None) };
        let now = at(10);
        let mut one = ClientLocks::new(8);
        let mut two = ClientLocks::new(8);
        // A local lock with a port and peer, then a later remote expiry: the remote one wins
        // and the local port and peer are kept for probes.
        one.arm(arming(c, Some(1214), Some(peer)), now, T);
        let taken = one.merge(entry(200, Some(a)), net(c), now, T).unwrap().unwrap();
        assert_eq!(
            (taken.until, taken.origin, taken.port, taken.peer),
            (at(200), Some(a), Some(1214), Some(peer))
        );
        assert_eq!(one.merge(entry(200, Some(a)), net(c), now, T), Ok(None), "idempotent");
        assert_eq!(
            one.merge(entry(100, Some(a)), net(c), now, T),
            Ok(None),
            "an earlier expiry never shortens"
        );
        // The other order ends in the same expiry and origin.
        two.merge(entry(200, Some(a)), net(c), now, T).unwrap();
        two.merge(entry(100, None), net(c), now, T).unwrap();
        assert_eq!(two.entry(net(c)).map(|e| (e.until, e.origin)), Some((at(200), Some(a))));
        assert_eq!(two.merge(entry(5, Some(a)), net(c), now, T), Ok(None), "expired on arrival");
        // A local tell that extends it makes it ours again.
        one.arm(arming(c, None, None), at(150), T);
        assert_eq!(one.entry(net(c)).map(|e| e.origin), Some(None));
        // A full table refuses a remote lock rather than evicting a live one.
        let mut full = ClientLocks::new(2);
        full.arm(arming(ip("192.0.2.6"), None, None), now, T);
        full.arm(arming(ip("192.0.2.7"), None, None), now, T);
        assert_eq!(full.merge(entry(100, Some(a)), net(c), now, T), Err(LockRefusal::Full));
        assert!(full.is_locked(net(ip("192.0.2.6")), now));
        assert!(!full.is_locked(net(c), now));
        full.check_invariants();
    }

    #[test]
    fn restore_places_probe_and_skips_expired() {
        let mut locks = ClientLocks::new(8);
        let peer = sock("198.51.100.20:1214");
        let entry = |client, until, peer| LockEntry::new(ip(client), at(until), Some(1214), peer);
        let expired = locks.restore(entry("192.0.2.5", 100, Some(peer)), net(ip("192.0.2.5")), at(100), T);
        assert_eq!(expired, Err(LockRefusal::Stale));
        assert_eq!(locks.len(), 0);
        // Armed at 50 (until 170): probe due at 110.
        assert_eq!(
            locks.restore(entry("192.0.2.6", 170, Some(peer)), net(ip("192.0.2.6")), at(100), T),
            Ok(None)
        );
        assert_eq!(locks.next_deadline(), Some(at(110)));
        assert_eq!(
            locks.pop_due(at(110)),
            Some(Due::Probe { client: sock("192.0.2.6:1214"), peer, by_here: true })
        );
        assert!(matches!(locks.pop_due(at(170)), Some(Due::Released(l)) if l.client == ip("192.0.2.6")));
        // From an older state file (no peer): no probe, only the expiry.
        assert_eq!(locks.restore(entry("192.0.2.7", 170, None), net(ip("192.0.2.7")), at(100), T), Ok(None));
        assert_eq!(locks.next_deadline(), Some(at(170)));
        assert!(matches!(locks.pop_due(at(170)), Some(Due::Released(l)) if l.client == ip("192.0.2.7")));
    }
}
