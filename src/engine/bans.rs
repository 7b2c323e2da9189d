//! Operator bans: networks (a single address is a /32 or /128) whose traffic is dropped until
//! the operator lifts the ban (or its optional expiry passes), whatever the packets look like.
//!
//! Bans come only from the operator (`ftwall ctl ban`), never from traffic, so attackers cannot
//! grow this table; it is still capped at [`MAX_BANS`] entries, and a ban beyond the cap is
//! refused rather than evicting an older one (an operator's ban is never dropped silently).
//!
//! The per-packet lookup ([`Bans::covering`]) costs one hash lookup per prefix length in use in
//! the address's family, longest first (at most 33 for IPv4, 129 for IPv6; one when only single
//! addresses are banned), never a scan of the bans.
//!
//! Invariants:
//! - Every key of `bans` is a truncated network (no host bits) and equals its entry's `net`.
//! - `expiries` holds exactly one `(until, net)` entry per ban that has an expiry, so the next
//!   ban deadline is its first entry and the index is bounded by the ban table.
//! - `v4_lengths[l]` / `v6_lengths[l]` count the bans of prefix length `l`, and `v4_in_use` /
//!   `v6_in_use` list exactly the lengths whose count is not zero, longest first.
//! - A stored reason passed [`check_ban_reason`].

use super::snapshot::BanEntry;
use crate::time::Timestamp;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// Most bans held at once.
pub const MAX_BANS: usize = 65_536;

/// Longest timed ban, in seconds (365 days): `ftwall ctl ban` refuses longer ones (a ban
/// without a length lasts until lifted), and a restored timed ban that does not record its
/// length (state files that predate [`BanEntry::seconds`]) ends at most this long after the
/// restore.
pub const MAX_BAN_SECONDS: u64 = 365 * 86_400;

/// Most bans from other gateways held at once: half the table, so another gateway's claims
/// never leave this gateway's operator without room.
pub const MAX_REMOTE_BANS: usize = MAX_BANS / 2;

/// The widest network a ban from another gateway may cover: an IPv4 /16, an IPv6 /32. A wider
/// one is refused (an operator bans it on each gateway): one bad write to the shared store must
/// not cut a site off the Internet.
pub const REMOTE_BAN_WIDEST: (u8, u8) = (16, 32);

/// Longest operator reason of a ban, in bytes.
pub const MAX_BAN_REASON: usize = 200;

/// Why a ban could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BanError {
    /// The table already holds [`MAX_BANS`] bans.
    #[error("the ban table is full ({MAX_BANS} networks)")]
    Full,
    /// The reason is longer than [`MAX_BAN_REASON`] bytes.
    #[error("the reason is longer than {MAX_BAN_REASON} bytes")]
    ReasonTooLong,
    /// The reason holds a control character (a newline, a tab, an escape...).
    #[error("the reason holds a control character")]
    ReasonControl,
}

/// Checks an operator's ban reason: at most [`MAX_BAN_REASON`] bytes, no control character (so
/// it is one line in every table and log format).
pub fn check_ban_reason(reason: &str) -> Result<(), BanError> {
    if reason.len() > MAX_BAN_REASON {
        Err(BanError::ReasonTooLong)
    } else if reason.chars().any(char::is_control) {
        Err(BanError::ReasonControl)
    } else {
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Bans {
    bans: HashMap<IpNet, BanEntry>,
    expiries: BTreeSet<(Timestamp, IpNet)>,
    v4_lengths: [u32; 33],
    v6_lengths: [u32; 129],
    v4_in_use: Vec<u8>,
    v6_in_use: Vec<u8>,
    /// Bans whose origin is another gateway.
    remote: usize,
}

impl Default for Bans {
    fn default() -> Self {
        Self {
            bans: HashMap::new(),
            expiries: BTreeSet::new(),
            v4_lengths: [0; 33],
            v6_lengths: [0; 129],
            v4_in_use: Vec::new(),
            v6_in_use: Vec::new(),
            remote: 0,
        }
    }
}

impl Bans {
    pub(crate) fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.bans.len()
    }

    /// Bans whose origin is another gateway.
    pub(crate) fn remote(&self) -> usize {
        self.remote
    }

    /// True if `addr` is in a network banned at `now`.
    pub(crate) fn is_banned(&self, addr: IpAddr, now: Timestamp) -> bool {
        self.covering(addr, now).is_some()
    }

    /// The most specific ban in force at `now` whose network holds `addr` (a lapsed ban that
    /// the next timeout will remove is passed over for a shorter prefix).
    pub(crate) fn covering(&self, addr: IpAddr, now: Timestamp) -> Option<&BanEntry> {
        let live = |net: IpNet| self.bans.get(&net).filter(|ban| ban.until.is_none_or(|u| u > now));
        match addr {
            IpAddr::V4(a) => self.v4_in_use.iter().find_map(|&len| {
                live(IpNet::V4(Ipv4Net::new(a, len).expect("a stored IPv4 prefix length").trunc()))
            }),
            IpAddr::V6(a) => self.v6_in_use.iter().find_map(|&len| {
                live(IpNet::V6(Ipv6Net::new(a, len).expect("a stored IPv6 prefix length").trunc()))
            }),
        }
    }

    /// Adds `ban` (its `until` None: until lifted; its network truncated to its prefix),
    /// replacing an existing ban of the same network.
    pub(crate) fn insert(&mut self, mut ban: BanEntry) -> Result<BanEntry, BanError> {
        if let Some(reason) = &ban.reason {
            check_ban_reason(reason)?;
        }
        let net = ban.net.trunc();
        ban.net = net;
        match self.bans.get(&net) {
            Some(old) => {
                if let Some(until) = old.until {
                    self.expiries.remove(&(until, net));
                }
                self.remote -= usize::from(old.origin.is_some());
            }
            None if self.bans.len() >= MAX_BANS => return Err(BanError::Full),
            None => self.count_length(net, true),
        }
        self.remote += usize::from(ban.origin.is_some());
        if let Some(until) = ban.until {
            self.expiries.insert((until, net));
        }
        self.bans.insert(net, ban.clone());
        Ok(ban)
    }

    /// The ban of exactly `net` (truncated to its prefix), if any.
    pub(crate) fn get(&self, net: IpNet) -> Option<&BanEntry> {
        self.bans.get(&net.trunc())
    }

    /// Lifts the ban of exactly `net` (truncated to its prefix); returns it if there was one.
    pub(crate) fn remove(&mut self, net: IpNet) -> Option<BanEntry> {
        let net = net.trunc();
        let ban = self.bans.remove(&net)?;
        if let Some(until) = ban.until {
            self.expiries.remove(&(until, net));
        }
        self.count_length(net, false);
        self.remote -= usize::from(ban.origin.is_some());
        Some(ban)
    }

    /// Keeps the per-length counts and the lengths in use (see the invariants) for one ban of
    /// `net` added or removed.
    fn count_length(&mut self, net: IpNet, added: bool) {
        let len = net.prefix_len();
        let (count, in_use) = match net {
            IpNet::V4(_) => (&mut self.v4_lengths[usize::from(len)], &mut self.v4_in_use),
            IpNet::V6(_) => (&mut self.v6_lengths[usize::from(len)], &mut self.v6_in_use),
        };
        if added {
            *count += 1;
            if *count == 1 {
                in_use.push(len);
                in_use.sort_unstable_by(|a, b| b.cmp(a));
            }
        } else {
            *count -= 1;
            if *count == 0 {
                in_use.retain(|&l| l != len);
            }
        }
    }

    /// The earliest expiry, if any ban has one.
    pub(crate) fn next_deadline(&self) -> Option<Timestamp> {
        self.expiries.first().map(|&(t, _)| t)
    }

    /// Removes and returns one ban whose expiry is at or before `now`.
    pub(crate) fn pop_expired(&mut self, now: Timestamp) -> Option<BanEntry> {
        let &(_, net) = self.expiries.first().filter(|&&(t, _)| t <= now)?;
        self.remove(net)
    }

    /// Every ban, ordered by network (stable output for `ftwall ctl`).
    pub(crate) fn entries(&self) -> Vec<BanEntry> {
        self.entries_where(|_| true)
    }

    /// The bans `keep` selects, ordered by network.
    pub(crate) fn entries_where(&self, keep: impl Fn(&BanEntry) -> bool) -> Vec<BanEntry> {
        let mut entries: Vec<BanEntry> = self.bans.values().filter(|b| keep(b)).cloned().collect();
        entries.sort_by_key(|e| e.net);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ban(network: &str, until: Option<Timestamp>) -> BanEntry {
        let net = network.parse().unwrap_or_else(|_| IpNet::from(ip(network)));
        BanEntry::new(net, until, until.map(Timestamp::as_secs))
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
        assert_eq!(bans.pop_expired(t(20)).map(|b| b.net), Some(net("192.0.2.10/32")));
        assert_eq!(bans.next_deadline(), None);
        assert_eq!(bans.len(), 1);
        assert!(bans.remove(net("198.51.100.7/32")).is_some());
        assert!(bans.remove(net("198.51.100.7/32")).is_none());
        assert!(bans.is_empty());
        assert!(bans.v4_in_use.is_empty());
    }

    #[test]
    fn networks_match_every_address_inside_and_nothing_outside() {
        let mut bans = Bans::default();
        let now = Timestamp::from_secs(1);
        // Host bits are dropped: the ban is of the network.
        let stored = bans.insert(ban("198.51.100.77/24", None)).unwrap();
        assert_eq!(stored.net, net("198.51.100.0/24"));
        bans.insert(ban("2001:db8:5::/48", None)).unwrap();
        for inside in
            ["198.51.100.0", "198.51.100.1", "198.51.100.255", "2001:db8:5::1", "2001:db8:5:ffff::9"]
        {
            assert!(bans.is_banned(ip(inside), now), "{inside}");
        }
        for outside in
            ["198.51.101.0", "198.51.99.255", "203.0.113.1", "2001:db8:6::1", "::ffff:198.51.100.1"]
        {
            assert!(!bans.is_banned(ip(outside), now), "{outside}");
        }
        // Unban takes the network in any spelling of it, not an address inside it.
        assert!(bans.remove(net("198.51.100.1/32")).is_none());
        assert!(bans.remove(net("198.51.100.9/24")).is_some());
        assert!(!bans.is_banned(ip("198.51.100.1"), now));
    }

    #[test]
    fn the_most_specific_ban_in_force_answers() {
        let mut bans = Bans::default();
        let t = Timestamp::from_secs;
        let mut wide = ban("198.51.100.0/24", None);
        wide.reason = Some("abuse report #12".into());
        bans.insert(wide).unwrap();
        let mut narrow = ban("198.51.100.128/25", Some(t(50)));
        narrow.reason = Some("scanner".into());
        bans.insert(narrow).unwrap();
        bans.insert(ban("198.51.100.200", Some(t(10)))).unwrap();
        assert_eq!(bans.v4_in_use, vec![32, 25, 24]);
        let reason = |a: &str, now| bans.covering(ip(a), t(now)).and_then(|b| b.reason.clone());
        assert_eq!(bans.covering(ip("198.51.100.200"), t(5)).map(|b| b.net), Some(net("198.51.100.200/32")));
        // The lapsed /32 (not yet popped) gives way to the /25, the lapsed /25 to the /24.
        assert_eq!(reason("198.51.100.200", 10).as_deref(), Some("scanner"));
        assert_eq!(reason("198.51.100.200", 50).as_deref(), Some("abuse report #12"));
        assert_eq!(reason("198.51.100.5", 5).as_deref(), Some("abuse report #12"));
        // Expiry removes only the lapsed ban, and its prefix length once no ban uses it.
        assert_eq!(bans.pop_expired(t(60)).map(|b| b.net), Some(net("198.51.100.200/32")));
        assert_eq!(bans.pop_expired(t(60)).map(|b| b.net), Some(net("198.51.100.128/25")));
        assert_eq!(bans.pop_expired(t(60)), None);
        assert_eq!(bans.v4_in_use, vec![24]);
        assert!(bans.is_banned(ip("198.51.100.200"), t(60)));
    }

    #[test]
    fn reasons_are_bounded_single_lines() {
        assert_eq!(check_ban_reason("abuse report #12 (ticket ABC-1)"), Ok(()));
        assert_eq!(check_ban_reason(&"é".repeat(100)), Ok(()));
        assert_eq!(check_ban_reason(&"x".repeat(MAX_BAN_REASON + 1)), Err(BanError::ReasonTooLong));
        for bad in ["two\nlines", "tab\there", "esc\u{1b}[31m", "nul\0", "del\u{7f}"] {
            assert_eq!(check_ban_reason(bad), Err(BanError::ReasonControl), "{bad:?}");
        }
        let mut bans = Bans::default();
        let mut bad = ban("192.0.2.1", None);
        bad.reason = Some("forged\nline".into());
        assert_eq!(bans.insert(bad), Err(BanError::ReasonControl));
        assert!(bans.is_empty());
    }

    #[test]
    fn full_table_refuses_new_bans_but_updates_old_ones() {
        let mut bans = Bans::default();
        for i in 0..MAX_BANS as u32 {
            let addr = IpAddr::from(std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i)));
            bans.insert(BanEntry::new(IpNet::from(addr), None, None)).unwrap();
        }
        assert_eq!(bans.insert(ban("198.51.100.7", None)), Err(BanError::Full));
        assert_eq!(bans.insert(ban("198.51.100.0/24", None)), Err(BanError::Full));
        assert!(bans.insert(ban("2001:db8::1", Some(Timestamp::from_secs(5)))).is_ok());
        assert_eq!(bans.len(), MAX_BANS);
        assert_eq!(bans.entries()[0].net, net("2001:db8::/128"));
        assert_eq!(bans.v6_in_use, vec![128]);
    }
}
