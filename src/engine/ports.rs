//! Client FastTrack ports: per inside client, the UDP port its own discovery traffic used.
//!
//! A FastTrack node uses one port for its TCP listen socket, its UDP discovery and its HTTP
//! transfers: its pings and 0x2A echoes leave from it, and pongs arrive at it. So the inside port
//! of a flow that carried a ping, a pong or a 0x2A is the client's FastTrack port, and a later
//! `C0 28` / `C3 28` datagram on that same client port is corroborated by it (see
//! `Engine::session_corroborated`), even to a peer never seen before, with the time-lock
//! disabled or after the lock expired.
//!
//! Invariants:
//! - At most `capacity` clients (the engine passes `timelock.capacity`: the same population as
//!   the locks, one entry per inside host); the least recently learned is evicted first, and
//!   every eviction is counted by the caller (`EngineStats::client_ports_evicted`).
//! - One port per client: the last one learned replaces an older one.
//! - An entry is evidence for `ttl` after it was last learned (`peers.expire_seconds`, the same
//!   memory as the suspect peers: 0 means only eviction forgets), checked on lookup: an expired
//!   entry answers no and is left for the LRU to evict.
//! - Lookups do not refresh an entry: only the client's own pings and pongs do, so a stream of
//!   session datagrams cannot keep a port alive.
//! - Not persisted: a restart forgets the ports (a restored lock keeps its own port).

use crate::time::Timestamp;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: u16,
    expires: Option<Timestamp>,
}

#[derive(Debug)]
pub(crate) struct ClientPorts {
    entries: LruCache<IpAddr, Entry>,
    ttl: Option<Duration>,
}

fn capacity_of(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("non-zero")
}

impl ClientPorts {
    pub(crate) fn new(capacity: usize, expire_seconds: u64) -> Self {
        Self {
            entries: LruCache::new(capacity_of(capacity)),
            ttl: (expire_seconds > 0).then(|| Duration::from_secs(expire_seconds)),
        }
    }

    /// Applies a new capacity and expiry; returns how many entries a shrink evicted.
    pub(crate) fn reconfigure(&mut self, capacity: usize, expire_seconds: u64) -> u64 {
        let capacity = capacity_of(capacity);
        let mut evicted = 0;
        while self.entries.len() > capacity.get() {
            self.entries.pop_lru();
            evicted += 1;
        }
        self.entries.resize(capacity);
        self.ttl = (expire_seconds > 0).then(|| Duration::from_secs(expire_seconds));
        evicted
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remembers `port` as `client`'s FastTrack port at `now`. Returns true when another client's
    /// entry was evicted to make room.
    pub(crate) fn learn(&mut self, client: IpAddr, port: u16, now: Timestamp) -> bool {
        let expires = self.ttl.map(|ttl| now.saturating_add(ttl));
        match self.entries.push(client, Entry { port, expires }) {
            Some((old, _)) => old != client,
            None => false,
        }
    }

    /// Whether `port` is `client`'s FastTrack port at `now`.
    pub(crate) fn is_fasttrack_port(&self, client: IpAddr, port: u16, now: Timestamp) -> bool {
        self.entries.peek(&client).is_some_and(|e| e.port == port && e.expires.is_none_or(|t| now < t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn one_port_per_client_the_last_learned() {
        let mut p = ClientPorts::new(4, 0);
        let t = Timestamp::from_secs(10);
        assert!(!p.is_fasttrack_port(ip(1), 3531, t));
        assert!(!p.learn(ip(1), 3531, t));
        assert!(p.is_fasttrack_port(ip(1), 3531, t));
        assert!(!p.is_fasttrack_port(ip(1), 3532, t), "another port of the same client");
        assert!(!p.is_fasttrack_port(ip(2), 3531, t), "the same port of another client");
        assert!(!p.learn(ip(1), 4000, t), "relearning is no eviction");
        assert!(p.is_fasttrack_port(ip(1), 4000, t));
        assert!(!p.is_fasttrack_port(ip(1), 3531, t));
        assert_eq!(p.len(), 1);
        assert!(p.is_fasttrack_port(ip(1), 4000, Timestamp::from_secs(10_000_000)), "no ttl");
    }

    #[test]
    fn bounded_least_recently_learned_evicted_first() {
        let mut p = ClientPorts::new(3, 0);
        let t = Timestamp::ZERO;
        for i in 1..=3 {
            assert!(!p.learn(ip(i), 1000 + u16::from(i), t));
        }
        p.learn(ip(1), 1001, t); // refreshes client 1: client 2 is now the oldest
        assert!(p.is_fasttrack_port(ip(2), 1002, t), "a lookup does not refresh");
        assert!(p.learn(ip(4), 1004, t), "an eviction is reported");
        assert_eq!(p.len(), 3);
        assert!(!p.is_fasttrack_port(ip(2), 1002, t), "the least recently learned went");
        assert!(p.is_fasttrack_port(ip(1), 1001, t) && p.is_fasttrack_port(ip(3), 1003, t));
        for i in 10..210 {
            p.learn(ip(i), 1, t);
        }
        assert_eq!(p.len(), 3, "a flood of clients cannot grow it");
        assert_eq!(p.reconfigure(1, 0), 2);
        assert_eq!(p.len(), 1);
        assert!(p.is_fasttrack_port(ip(209), 1, t));
    }

    #[test]
    fn entries_expire_after_the_ttl_since_last_learned() {
        let mut p = ClientPorts::new(4, 100);
        p.learn(ip(1), 3531, Timestamp::from_secs(10));
        assert!(p.is_fasttrack_port(ip(1), 3531, Timestamp::from_secs(109)));
        assert!(!p.is_fasttrack_port(ip(1), 3531, Timestamp::from_secs(110)));
        p.learn(ip(1), 3531, Timestamp::from_secs(110));
        assert!(p.is_fasttrack_port(ip(1), 3531, Timestamp::from_secs(209)));
        p.reconfigure(4, 0);
        p.learn(ip(1), 3531, Timestamp::from_secs(300));
        assert!(p.is_fasttrack_port(ip(1), 3531, Timestamp::from_secs(1_000_000)));
    }
}
