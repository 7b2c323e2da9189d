//! Operator bans: addresses whose traffic is dropped until the operator lifts the ban (or its
//! optional expiry passes), whatever the packets look like.
//!
//! Bans come only from the operator (`ftwall ctl ban`), never from traffic, so attackers cannot
//! grow this table; it is still capped at [`MAX_BANS`] entries, and a ban beyond the cap is
//! refused rather than evicting an older one (an operator's ban is never dropped silently).
//!
//! Invariants:
//! - `expiries` holds exactly one `(until, addr)` entry per ban that has an expiry, so the next
//!   ban deadline is its first entry and the index is bounded by the ban table.

use super::snapshot::BanEntry;
use crate::time::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// Most bans held at once.
pub const MAX_BANS: usize = 65_536;

/// Longest timed ban, in seconds (365 days): `ftwall ctl ban` refuses longer ones (a ban
/// without a length lasts until lifted), and a restored timed ban that does not record its
/// length (state files that predate [`BanEntry::seconds`]) ends at most this long after the
/// restore.
pub const MAX_BAN_SECONDS: u64 = 365 * 86_400;

#[derive(Debug, Default)]
pub(crate) struct Bans {
    bans: HashMap<IpAddr, BanEntry>,
    expiries: BTreeSet<(Timestamp, IpAddr)>,
}

/// Why a ban could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BanError {
    /// The table already holds [`MAX_BANS`] bans.
    #[error("the ban table is full ({MAX_BANS} addresses)")]
    Full,
}

impl Bans {
    pub(crate) fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    /// True if `addr` is banned at `now`.
    pub(crate) fn is_banned(&self, addr: IpAddr, now: Timestamp) -> bool {
        self.bans.get(&addr).is_some_and(|ban| ban.until.is_none_or(|u| u > now))
    }

    /// Adds `ban` (its `until` None: until lifted), replacing an existing ban of its address.
    pub(crate) fn insert(&mut self, ban: BanEntry) -> Result<(), BanError> {
        let addr = ban.addr;
        match self.bans.get(&addr) {
            Some(old) => {
                if let Some(until) = old.until {
                    self.expiries.remove(&(until, addr));
                }
            }
            None if self.bans.len() >= MAX_BANS => return Err(BanError::Full),
            None => {}
        }
        self.bans.insert(addr, ban);
        if let Some(until) = ban.until {
            self.expiries.insert((until, addr));
        }
        Ok(())
    }

    /// The ban of `addr`, if any.
    pub(crate) fn get(&self, addr: IpAddr) -> Option<BanEntry> {
        self.bans.get(&addr).copied()
    }

    /// Lifts the ban of `addr`; returns whether there was one.
    pub(crate) fn remove(&mut self, addr: IpAddr) -> bool {
        match self.bans.remove(&addr) {
            Some(ban) => {
                if let Some(until) = ban.until {
                    self.expiries.remove(&(until, addr));
                }
                true
            }
            None => false,
        }
    }

    /// The earliest expiry, if any ban has one.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.expiries.first().map(|&(t, _)| t)
    }

    /// Removes and returns one ban whose expiry is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Timestamp) -> Option<IpAddr> {
        let &(until, addr) = self.expiries.first().filter(|&&(t, _)| t <= now)?;
        self.expiries.remove(&(until, addr));
        self.bans.remove(&addr);
        Some(addr)
    }

    /// Every ban, ordered by address (stable output for `ftwall ctl`).
    pub(crate) fn entries(&self) -> Vec<BanEntry> {
        let mut entries: Vec<BanEntry> = self.bans.values().copied().collect();
        entries.sort_by_key(|e| e.addr);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ban(addr: &str, until: Option<Timestamp>) -> BanEntry {
        BanEntry { addr: ip(addr), until, seconds: until.map(Timestamp::as_secs), origin: None }
    }

    #[test]
    fn ban_expire_and_lift() {
        let mut bans = Bans::default();
        let t = Timestamp::from_secs;
        bans.insert(ban("198.51.100.7", None)).unwrap();
        bans.insert(ban("192.0.2.10", Some(t(10)))).unwrap();
        assert!(bans.is_banned(ip("198.51.100.7"), t(1_000_000)));
        assert!(bans.is_banned(ip("192.0.2.10"), t(9)));
        assert!(!bans.is_banned(ip("192.0.2.10"), t(10)));
        assert_eq!(bans.next_deadline(), Some(t(10)));
        // Re-banning replaces the expiry and its index entry.
        bans.insert(ban("192.0.2.10", Some(t(20)))).unwrap();
        assert_eq!(bans.next_deadline(), Some(t(20)));
        assert_eq!(bans.pop_expired(t(19)), None);
        assert_eq!(bans.pop_expired(t(20)), Some(ip("192.0.2.10")));
        assert_eq!(bans.next_deadline(), None);
        assert_eq!(bans.len(), 1);
        assert!(bans.remove(ip("198.51.100.7")));
        assert!(!bans.remove(ip("198.51.100.7")));
        assert!(bans.is_empty());
    }

    #[test]
    fn full_table_refuses_new_bans_but_updates_old_ones() {
        let mut bans = Bans::default();
        for i in 0..MAX_BANS as u32 {
            let addr = IpAddr::from(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)));
            bans.insert(BanEntry { addr, until: None, seconds: None, origin: None }).unwrap();
        }
        assert_eq!(bans.insert(ban("198.51.100.7", None)), Err(BanError::Full));
        assert_eq!(bans.insert(ban("2001:db8::1", Some(Timestamp::from_secs(5)))), Ok(()));
        assert_eq!(bans.len(), MAX_BANS);
        assert_eq!(bans.entries()[0].addr, ip("2001:db8::"));
    }
}
