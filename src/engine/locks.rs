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
//! Invariants:
//! - At most `capacity` locked clients (least recently re-armed evicted first, with a release).
//! - `timers` holds exactly one `(deadline, client)` entry per locked client: its next probe time
//!   if a probe is due for the current arming, otherwise its expiry. So the timer index is
//!   bounded by the lock table and `poll_timeout` is its first entry.

use super::snapshot::{GatewayId, LockEntry};
use crate::time::Timestamp;
use lru::LruCache;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Lock {
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
    /// The gateway whose tell set the current expiry ([`ClientLocks::merge`]); None for a
    /// tell seen here.
    origin: Option<GatewayId>,
}

impl Lock {
    /// The client's FastTrack port and the peer to forge the probe from, when both are known.
    fn probe_target(&self) -> Option<(u16, SocketAddr)> {
        self.port.zip(self.peer)
    }

    fn entry(&self, client: IpAddr) -> LockEntry {
        LockEntry { client, until: self.until, port: self.port, peer: self.peer, origin: self.origin }
    }
}

/// What a call to [`ClientLocks::arm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Armed {
    /// The client was not locked before.
    New,
    /// An existing lock was re-armed.
    Rearmed {
        /// Whether the new expiry should be persisted (moved by at least a second).
        persist: bool,
    },
}

/// Something due at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a probe forged from `peer` to the client's FastTrack port `client`.
    Probe {
        /// The client's address and FastTrack UDP port.
        client: SocketAddr,
        /// The outside peer the client last pinged.
        peer: SocketAddr,
    },
    /// The client's lock expired.
    Released(IpAddr),
}

#[derive(Debug)]
pub(crate) struct ClientLocks {
    locks: LruCache<IpAddr, Lock>,
    timers: BTreeSet<(Timestamp, IpAddr)>,
}

impl ClientLocks {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            locks: LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            timers: BTreeSet::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.locks.len()
    }

    /// Shrinks or grows the table; returns clients released by shrinking.
    pub(crate) fn resize(&mut self, capacity: usize) -> Vec<IpAddr> {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        let mut released = Vec::new();
        while self.locks.len() > capacity.get() {
            if let Some((ip, lock)) = self.locks.pop_lru() {
                self.timers.remove(&(lock.deadline, ip));
                released.push(ip);
            }
        }
        self.locks.resize(capacity);
        released
    }

    /// True if `client` is locked at `now`.
    pub(crate) fn is_locked(&self, client: IpAddr, now: Timestamp) -> bool {
        self.locks.peek(&client).is_some_and(|l| l.until > now)
    }

    /// True if `client` is locked at `now` and `port` may be its FastTrack port: the lock's port,
    /// or any port when the lock knows none (a client locked by TCP tells only). A FastTrack
    /// node uses one port for everything, so another port of a client whose port is known is
    /// some other program.
    pub(crate) fn is_locked_on(&self, client: IpAddr, port: u16, now: Timestamp) -> bool {
        self.locks.peek(&client).is_some_and(|l| l.until > now && l.port.is_none_or(|p| p == port))
    }

    /// Locks or re-arms `client` for `period`. `port` is its FastTrack UDP port when known,
    /// `peer` the outside peer it just pinged (the caller checked it is a probe target).
    /// Returns what happened and, if the table was full, the client evicted to make room.
    pub(crate) fn arm(
        &mut self,
        client: IpAddr,
        port: Option<u16>,
        peer: Option<SocketAddr>,
        now: Timestamp,
        period: Duration,
    ) -> (Armed, Option<IpAddr>) {
        let until = now.saturating_add(period);
        let probe_at = now.saturating_add(period / 2);
        if let Some(lock) = self.locks.get_mut(&client) {
            if until <= lock.until {
                // A tell with an older timestamp (clock step): keep the later expiry.
                if port.is_some() && lock.port.is_none() {
                    lock.port = port;
                }
                if peer.is_some() {
                    lock.peer = peer;
                }
                return (Armed::Rearmed { persist: false }, None);
            }
            self.timers.remove(&(lock.deadline, client));
            lock.until = until;
            lock.origin = None;
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
            self.timers.insert((lock.deadline, client));
            let persist = until.saturating_since(lock.stored_until) >= Duration::from_secs(1);
            if persist {
                lock.stored_until = until;
            }
            return (Armed::Rearmed { persist }, None);
        }
        let deadline = if port.is_some() && peer.is_some() { probe_at } else { until };
        let lock = Lock {
            until,
            armed: now,
            port,
            peer,
            probe_sent: false,
            probed: None,
            deadline,
            stored_until: until,
            origin: None,
        };
        let evicted = self.locks.push(client, lock).map(|(ip, old)| {
            self.timers.remove(&(old.deadline, ip));
            ip
        });
        self.timers.insert((deadline, client));
        (Armed::New, evicted.filter(|&ip| ip != client))
    }

    /// Releases `client` now (operator action); returns whether it was locked.
    pub(crate) fn release(&mut self, client: IpAddr) -> bool {
        match self.locks.pop(&client) {
            Some(lock) => {
                self.timers.remove(&(lock.deadline, client));
                true
            }
            None => false,
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Pops the next thing due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<Due> {
        let &(deadline, client) = self.timers.first()?;
        if deadline > now {
            return None;
        }
        self.timers.remove(&(deadline, client));
        let Some(lock) = self.locks.peek_mut(&client) else {
            return self.pop_due(now);
        };
        if lock.until <= now {
            self.locks.pop(&client);
            return Some(Due::Released(client));
        }
        match lock.probe_target() {
            Some((port, peer)) if !lock.probe_sent => {
                lock.probe_sent = true;
                lock.deadline = lock.until;
                self.timers.insert((lock.until, client));
                Some(Due::Probe { client: SocketAddr::new(client, port), peer })
            }
            _ => {
                // Not expired yet (should not happen): reschedule at the expiry.
                lock.deadline = lock.until;
                self.timers.insert((lock.until, client));
                self.pop_due(now)
            }
        }
    }

    /// Records that the probe [`ClientLocks::pop_due`] returned was sent: to `client` (address
    /// and FastTrack port), forged from `peer`.
    pub(crate) fn mark_probed(&mut self, client: SocketAddr, peer: SocketAddr) {
        if let Some(lock) = self.locks.peek_mut(&client.ip()) {
            lock.probed = Some((client, peer));
        }
    }

    /// Whether a datagram sent from `from` to `to` at `now` answers the probe outstanding for
    /// `from`'s lock: the lock is in force, a probe was sent for its current arming and not yet
    /// answered, `from` is the exact address and port the probe went to and `to` the exact
    /// address and port it was forged from. A match consumes the probe (one answer per probe).
    pub(crate) fn take_probe_answer(&mut self, from: SocketAddr, to: SocketAddr, now: Timestamp) -> bool {
        let Some(lock) = self.locks.peek_mut(&from.ip()) else { return false };
        let answers = lock.until > now && lock.probed == Some((from, to));
        if answers {
            lock.probed = None;
        }
        answers
    }

    /// The lock of `client`, if any.
    pub(crate) fn entry(&self, client: IpAddr) -> Option<LockEntry> {
        self.locks.peek(&client).map(|l| l.entry(client))
    }

    /// Locked clients, least recently armed first.
    pub(crate) fn entries(&self) -> impl Iterator<Item = LockEntry> + '_ {
        self.locks.iter().rev().map(|(&client, l)| l.entry(client))
    }

    /// Merges a lock another gateway set (the caller checked the client is in `lan` and
    /// clamped the expiry): taken if not expired at `now` and later than the lock held here (an
    /// equal expiry is settled by the origin, so the result does not depend on the order of
    /// merges, and merging the same entry twice changes nothing). The port and peer known here
    /// are kept when the entry has none. Returns the lock as now held if it was taken, and the
    /// client evicted to make room, if any.
    pub(crate) fn merge(
        &mut self,
        entry: LockEntry,
        now: Timestamp,
        period: Duration,
    ) -> (Option<LockEntry>, Option<IpAddr>) {
        if entry.until <= now {
            return (None, None);
        }
        let old = self.locks.peek(&entry.client).copied();
        if let Some(old) = old {
            if (entry.until, entry.origin) <= (old.until, old.origin) {
                return (None, None);
            }
        }
        let entry = LockEntry {
            port: entry.port.or(old.and_then(|o| o.port)),
            peer: entry.peer.or(old.and_then(|o| o.peer)),
            ..entry
        };
        let evicted = self.restore(entry, now, period);
        (self.entry(entry.client), evicted)
    }

    /// Loads a persisted lock (skipped if expired at `now`). `period` is the configured lock time,
    /// used to place the half-expiry probe. Returns the client evicted to make room, if any.
    pub(crate) fn restore(&mut self, entry: LockEntry, now: Timestamp, period: Duration) -> Option<IpAddr> {
        if entry.until <= now {
            return None;
        }
        let armed = Timestamp::from_micros(entry.until.as_micros().saturating_sub(period.as_micros() as u64));
        let probe_at = armed.saturating_add(period / 2).max(now);
        let probe = entry.port.is_some() && entry.peer.is_some();
        let deadline = if probe && probe_at < entry.until { probe_at } else { entry.until };
        if let Some(old) = self.locks.peek(&entry.client) {
            self.timers.remove(&(old.deadline, entry.client));
        }
        let lock = Lock {
            until: entry.until,
            armed,
            port: entry.port,
            peer: entry.peer,
            probe_sent: deadline == entry.until,
            probed: None,
            deadline,
            stored_until: entry.until,
            origin: entry.origin,
        };
        let mut evicted = None;
        if let Some((ip, old)) = self.locks.push(entry.client, lock) {
            if ip != entry.client {
                self.timers.remove(&(old.deadline, ip));
                evicted = Some(ip);
            }
        }
        self.timers.insert((deadline, entry.client));
        evicted
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

    #[test]
    fn locked_on_the_locks_port_or_any_port_when_it_knows_none() {
        let mut locks = ClientLocks::new(8);
        let (c, tcp_only) = (ip("192.0.2.10"), ip("192.0.2.11"));
        locks.arm(c, Some(3531), None, at(0), T);
        locks.arm(tcp_only, None, None, at(0), T);
        assert!(locks.is_locked_on(c, 3531, at(119)));
        assert!(!locks.is_locked_on(c, 3532, at(1)), "another program of the same host");
        assert!(!locks.is_locked_on(c, 3531, at(120)), "expired");
        assert!(locks.is_locked_on(tcp_only, 3532, at(1)) && locks.is_locked_on(tcp_only, 53, at(1)));
        assert!(!locks.is_locked_on(ip("192.0.2.12"), 3531, at(1)), "not locked");
        locks.arm(tcp_only, Some(4000), None, at(2), T);
        assert!(!locks.is_locked_on(tcp_only, 3532, at(3)), "the port once known");
    }

    #[test]
    fn lock_probe_and_expiry() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        let peer = sock("198.51.100.20:1214");
        assert_eq!(locks.arm(c, Some(3531), Some(peer), at(0), T), (Armed::New, None));
        assert!(locks.is_locked(c, at(119)));
        assert!(!locks.is_locked(c, at(120)));
        assert_eq!(locks.next_deadline(), Some(at(60)));
        assert_eq!(locks.pop_due(at(59)), None);
        assert_eq!(locks.pop_due(at(60)), Some(Due::Probe { client: SocketAddr::new(c, 3531), peer }));
        let probed = SocketAddr::new(c, 3531);
        assert!(!locks.take_probe_answer(probed, peer, at(61)), "not sent yet");
        locks.mark_probed(probed, peer);
        assert!(!locks.take_probe_answer(probed, sock("198.51.100.21:1214"), at(61)), "another peer");
        assert!(!locks.take_probe_answer(probed, sock("198.51.100.20:1215"), at(61)), "another peer port");
        assert!(!locks.take_probe_answer(SocketAddr::new(c, 3532), peer, at(61)), "another client port");
        assert!(locks.take_probe_answer(probed, peer, at(61)));
        assert!(!locks.take_probe_answer(probed, peer, at(62)), "one answer per probe");
        assert_eq!(locks.next_deadline(), Some(at(120)));
        assert_eq!(locks.pop_due(at(119)), None);
        assert_eq!(locks.pop_due(at(120)), Some(Due::Released(c)));
        assert_eq!(locks.len(), 0);
        assert_eq!(locks.next_deadline(), None);
    }

    #[test]
    fn rearm_moves_both_deadlines() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        locks.arm(c, None, None, at(0), T);
        assert_eq!(locks.next_deadline(), Some(at(120)), "no port: no probe");
        assert_eq!(locks.arm(c, None, None, at(100), T), (Armed::Rearmed { persist: true }, None));
        assert_eq!(locks.next_deadline(), Some(at(220)));
        assert_eq!(locks.arm(c, None, None, at(100), T), (Armed::Rearmed { persist: false }, None));
        assert_eq!(locks.pop_due(at(219)), None);
        assert_eq!(locks.pop_due(at(220)), Some(Due::Released(c)));
    }

    #[test]
    fn eviction_keeps_timers_consistent() {
        let mut locks = ClientLocks::new(2);
        locks.arm(ip("192.0.2.1"), None, None, at(0), T);
        locks.arm(ip("192.0.2.2"), None, None, at(1), T);
        let (armed, evicted) = locks.arm(ip("192.0.2.3"), None, None, at(2), T);
        assert_eq!((armed, evicted), (Armed::New, Some(ip("192.0.2.1"))));
        assert_eq!(locks.timers.len(), 2);
        assert_eq!(locks.next_deadline(), Some(at(121)));
        assert!(locks.release(ip("192.0.2.2")));
        assert_eq!(locks.timers.len(), 1);
        assert_eq!(locks.resize(1), Vec::<IpAddr>::new());
    }

    #[test]
    fn a_port_without_a_peer_gets_no_probe_until_a_ping_names_one() {
        let mut locks = ClientLocks::new(8);
        let c = ip("192.0.2.10");
        locks.arm(c, Some(3531), None, at(0), T);
        assert_eq!(locks.next_deadline(), Some(at(120)), "TCP-locked: no probe");
        let peer = sock("198.51.100.20:2345");
        locks.arm(c, Some(3531), Some(peer), at(10), T);
        assert_eq!(locks.next_deadline(), Some(at(70)));
        // A later tell without a peer keeps the one known.
        locks.arm(c, None, None, at(20), T);
        assert_eq!(locks.entry(c).unwrap().peer, Some(peer));
        assert_eq!(locks.pop_due(at(80)), Some(Due::Probe { client: SocketAddr::new(c, 3531), peer }));
    }

    #[test]
    fn merge_keeps_the_later_expiry_whatever_the_order() {
        let a = GatewayId::new("gw-a").unwrap();
        let peer = sock("198.51.100.20:1214");
        let entry = |until, origin| LockEntry {
            client: ip("192.0.2.5"),
            until: at(until),
            port: None,
            peer: None,
            origin,
        };
        let now = at(10);
        let mut one = ClientLocks::new(8);
        let mut two = ClientLocks::new(8);
        // A local lock with a port and peer, then a later remote expiry: the remote one wins
        // and the local port and peer are kept for probes.
        one.arm(ip("192.0.2.5"), Some(1214), Some(peer), now, T);
        let (taken, evicted) = one.merge(entry(200, Some(a)), now, T);
        assert_eq!(evicted, None);
        assert_eq!(taken, Some(LockEntry { port: Some(1214), peer: Some(peer), ..entry(200, Some(a)) }));
        assert_eq!(one.merge(entry(200, Some(a)), now, T), (None, None), "idempotent");
        assert_eq!(one.merge(entry(100, Some(a)), now, T), (None, None), "an earlier expiry never shortens");
        // The other order ends in the same expiry and origin.
        two.merge(entry(200, Some(a)), now, T);
        two.merge(entry(100, None), now, T);
        assert_eq!(two.entry(ip("192.0.2.5")).map(|e| (e.until, e.origin)), Some((at(200), Some(a))));
        assert_eq!(two.merge(entry(5, Some(a)), now, T), (None, None), "expired on arrival");
        // A local tell that extends it makes it ours again.
        one.arm(ip("192.0.2.5"), None, None, at(150), T);
        assert_eq!(one.entry(ip("192.0.2.5")).map(|e| e.origin), Some(None));
    }

    #[test]
    fn restore_places_probe_and_skips_expired() {
        let mut locks = ClientLocks::new(8);
        let peer = sock("198.51.100.20:1214");
        let entry = |client, until, peer| LockEntry {
            client: ip(client),
            until: at(until),
            port: Some(1214),
            peer,
            origin: None,
        };
        locks.restore(entry("192.0.2.5", 100, Some(peer)), at(100), T);
        assert_eq!(locks.len(), 0);
        // Armed at 50 (until 170): probe due at 110.
        locks.restore(entry("192.0.2.6", 170, Some(peer)), at(100), T);
        assert_eq!(locks.next_deadline(), Some(at(110)));
        assert_eq!(locks.pop_due(at(110)), Some(Due::Probe { client: sock("192.0.2.6:1214"), peer }));
        assert_eq!(locks.pop_due(at(170)), Some(Due::Released(ip("192.0.2.6"))));
        // From an older state file (no peer): no probe, only the expiry.
        locks.restore(entry("192.0.2.7", 170, None), at(100), T);
        assert_eq!(locks.next_deadline(), Some(at(170)));
        assert_eq!(locks.pop_due(at(170)), Some(Due::Released(ip("192.0.2.7"))));
    }
}
