//! The shell's clocks (the library never reads a clock), and the one place where the engine's
//! time becomes a date.
//!
//! - **Engine time** ([`now`]) is `CLOCK_BOOTTIME`, in microseconds since boot: monotonic, never
//!   stepped by NTP, `date -s` or an RTC fix, and it keeps counting while the machine is
//!   suspended (so a lock still ends about when its date said, which `CLOCK_MONOTONIC`, stopped
//!   during suspend, would not do). Every expiry the engine keeps (locks, suspect peers, bans,
//!   probes) is on this clock, so stepping the wall clock neither extends nor ends any of them.
//! - **Wall time** (µs since the Unix epoch) is read only to show or write a date: `ftwall ctl`,
//!   log lines that carry an expiry, the client directory's `locked_until=`, and the state file
//!   (whose expiries must mean something after a reboot, when boot time starts again at zero).
//! - [`Clock`] is a pair of readings of both, taken together; [`Clock::wall_time_of`] and
//!   [`Clock::engine_time_of`] convert an engine time to a date and back (the offset between the
//!   two clocks at the moment of the reading), [`Clock::snapshot_to_wall`] and
//!   [`Clock::snapshot_to_engine`] a whole state snapshot (through
//!   `Snapshot::map_timestamps`). Nothing else in the binary converts.
//!
//! A wall-clock step shows as a change of [`Clock::offset_micros`] between two readings (the
//! housekeeping logs it as `clock_step`). It changes no expiry: only the dates shown for them
//! move with the new wall clock.
//!
//! A leaf: it imports nothing from the binary.

use ftwall::engine::Snapshot;
use ftwall::Timestamp;
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as an engine timestamp: `CLOCK_BOOTTIME` in microseconds (see the module documentation).
pub(crate) fn now() -> Timestamp {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the kernel to write; CLOCK_BOOTTIME exists on every
    // Linux since 2.6.39, and the call cannot fail with a valid clock id and pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
    let micros = u64::try_from(ts.tv_sec).unwrap_or(0).saturating_mul(1_000_000)
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000;
    Timestamp::from_micros(micros)
}

/// The wall clock, as µs since the Unix epoch (0 if it is set before 1970).
pub(crate) fn wall_now() -> Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// One reading of both clocks, taken together: converts between engine time and wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clock {
    engine: Timestamp,
    wall: Timestamp,
}

impl Clock {
    /// Reads both clocks now.
    pub(crate) fn read() -> Self {
        Self { engine: now(), wall: wall_now() }
    }

    /// A reading made of these two values (tests).
    #[cfg(test)]
    pub(crate) fn at(engine: Timestamp, wall: Timestamp) -> Self {
        Self { engine, wall }
    }

    /// The engine time of the reading.
    pub(crate) fn engine(&self) -> Timestamp {
        self.engine
    }

    /// The wall time of the reading (µs since the Unix epoch).
    pub(crate) fn wall(&self) -> Timestamp {
        self.wall
    }

    /// Wall minus engine time, in µs: constant while nobody steps the wall clock (NTP's slewing
    /// moves it by at most 500 µs a second).
    pub(crate) fn offset_micros(&self) -> i128 {
        i128::from(self.wall.as_micros()) - i128::from(self.engine.as_micros())
    }

    /// The wall time of engine time `t`, by this reading's offset (saturating at the epoch and
    /// at the far future).
    pub(crate) fn wall_time_of(&self, t: Timestamp) -> Timestamp {
        shift(t, self.offset_micros())
    }

    /// The engine time of wall time `wall`, by this reading's offset (a date before boot
    /// becomes engine time zero, which is always in the past).
    pub(crate) fn engine_time_of(&self, wall: Timestamp) -> Timestamp {
        shift(wall, -self.offset_micros())
    }

    /// RFC 3339 UTC text of engine time `t`, e.g. `2026-11-23T04:16:54Z`.
    pub(crate) fn rfc3339(&self, t: Timestamp) -> String {
        rfc3339(self.wall_time_of(t).as_secs())
    }

    /// `snapshot` (engine time) with every time as a wall-clock date, for the state file.
    pub(crate) fn snapshot_to_wall(&self, snapshot: &Snapshot) -> Snapshot {
        snapshot.map_timestamps(|t| self.wall_time_of(t))
    }

    /// `snapshot` read from the state file (wall-clock dates) with every time on the engine's
    /// clock. The engine's restore then clamps each expiry to what the configuration allows.
    pub(crate) fn snapshot_to_engine(&self, snapshot: &Snapshot) -> Snapshot {
        snapshot.map_timestamps(|t| self.engine_time_of(t))
    }
}

fn shift(t: Timestamp, by: i128) -> Timestamp {
    let shifted = (i128::from(t.as_micros()) + by).clamp(0, i128::from(u64::MAX));
    Timestamp::from_micros(u64::try_from(shifted).unwrap_or(u64::MAX))
}

/// RFC 3339 UTC date-time for Unix seconds, e.g. `2026-11-23T04:16:54Z` (humantime). Seconds
/// past the end of year 9999, which RFC 3339 cannot write, print as its last second.
pub(crate) fn rfc3339(secs: u64) -> String {
    const LAST_SECOND_OF_9999: u64 = 253_402_300_799;
    let time = UNIX_EPOCH + std::time::Duration::from_secs(secs.min(LAST_SECOND_OF_9999));
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::engine::{BanEntry, LockEntry, PeerEntry, Strength};

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_321_014), "2026-11-22T04:16:54Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn engine_time_is_boot_time_and_moves_forward() {
        let a = now();
        let b = now();
        assert!(b >= a);
        // Since boot, not since 1970: far below any wall-clock value of this century.
        assert!(a.as_secs() < 1_000_000_000, "{a}");
        assert!(Clock::read().offset_micros() > 0);
    }

    #[test]
    fn converts_both_ways_by_the_readings_offset() {
        let s = Timestamp::from_secs;
        // Booted 1,800,000,000 - 500 s after the epoch; engine time 500 s.
        let clock = Clock::at(s(500), s(1_800_000_000));
        assert_eq!(clock.wall_time_of(s(620)), s(1_800_000_120));
        assert_eq!(clock.engine_time_of(s(1_800_000_120)), s(620));
        assert_eq!(clock.rfc3339(s(500)), rfc3339(1_800_000_000));
        // A date from before this boot is engine time zero (in the past), never a wrap.
        assert_eq!(clock.engine_time_of(s(1_700_000_000)), Timestamp::ZERO);
        assert_eq!(clock.wall_time_of(Timestamp::from_micros(u64::MAX)), Timestamp::from_micros(u64::MAX));
        // A wall clock set before the epoch+boot (offset negative) still converts.
        let odd = Clock::at(s(1000), s(10));
        assert_eq!(odd.wall_time_of(s(1000)), s(10));
        assert_eq!(odd.wall_time_of(s(5)), Timestamp::ZERO);
        assert_eq!(odd.engine_time_of(s(10)), s(1000));
    }

    #[test]
    fn a_snapshot_round_trips_through_the_wall_clock() {
        let s = Timestamp::from_secs;
        let snapshot = Snapshot {
            peers: vec![
                PeerEntry {
                    first_seen: s(450),
                    last_seen: s(490),
                    ..PeerEntry::new(
                        "198.51.100.20".parse().unwrap(),
                        Some(1214),
                        Some(s(900)),
                        Strength::Strong,
                    )
                },
                PeerEntry::new("198.51.100.21".parse().unwrap(), None, None, Strength::Strong),
            ],
            locks: vec![LockEntry::new(
                "192.0.2.10".parse().unwrap(),
                s(619),
                Some(3531),
                Some("198.51.100.20:1214".parse().unwrap()),
            )],
            bans: vec![BanEntry {
                reason: Some("abuse".into()),
                since: s(499),
                ..BanEntry::new("203.0.113.0/24".parse().unwrap(), Some(s(560)), Some(60))
            }],
        };
        let saved = Clock::at(s(500), s(1_800_000_000));
        let file = saved.snapshot_to_wall(&snapshot);
        assert_eq!(file.locks[0].until, s(1_800_000_119));
        assert_eq!(file.peers[0].expires, Some(s(1_800_000_400)));
        assert_eq!(file.peers[1].expires, None);
        assert_eq!((file.peers[0].first_seen, file.peers[0].last_seen), (s(1_799_999_950), s(1_799_999_990)));
        assert_eq!(file.peers[1].first_seen, Timestamp::ZERO, "unknown stays unknown");
        assert_eq!(file.bans[0].until, Some(s(1_800_000_060)));
        assert_eq!(file.bans[0].since, s(1_799_999_999));
        assert_eq!((file.bans[0].seconds, file.locks[0].port), (Some(60), Some(3531)), "not times");
        // After a reboot: engine time 20 s at wall 1,800,000,100 s; the lock has 19 s left.
        let restored = Clock::at(s(20), s(1_800_000_100)).snapshot_to_engine(&file);
        assert_eq!(restored.locks[0].until, s(39));
        assert_eq!(restored.bans[0].until, Some(Timestamp::ZERO), "the ban ended before the restore");
        assert_eq!(saved.snapshot_to_engine(&file), snapshot);
    }
}
