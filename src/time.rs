//! Engine time.
//!
//! The core never reads a clock: every entry point takes a [`Timestamp`], microseconds since an
//! epoch the driver chooses, and every expiry the engine keeps (locks, probes, suspect peers,
//! bans, flows) is a `Timestamp` on that same clock.
//!
//! - The live daemon passes a **monotonic** clock with an arbitrary epoch (`CLOCK_BOOTTIME`:
//!   microseconds since boot, counting through suspend), never the wall clock, so stepping the
//!   wall clock neither extends nor ends anything. It converts to wall-clock dates only to show
//!   or write them (logs, `ftwall ctl`, the client directory, the state file), in one place
//!   (`src/bin/ftwall/clock.rs`), and converts a state file's dates back before
//!   [`crate::Engine::restore`], which clamps every restored expiry to its configured maximum.
//! - `ftwall replay` passes each record's capture time (microseconds since the Unix epoch).
//!
//! The engine only needs the value to be non-decreasing in practice; a step backwards is
//! tolerated (nothing expires early, nothing panics).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the caller: boot in the daemon
/// (`CLOCK_BOOTTIME`), the Unix epoch in capture files and in the daemon's state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Self = Self(0);

    /// Builds a timestamp from microseconds since the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// Builds a timestamp from whole seconds since the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)))
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(t.saturating_add(Duration::from_millis(1500)).as_micros(), 11_500_000);
        assert_eq!(
            Timestamp::from_micros(u64::MAX).saturating_add(Duration::from_secs(1)).as_micros(),
            u64::MAX
        );
        assert_eq!(Timestamp::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(t.saturating_since(Timestamp::from_secs(4)), Duration::from_secs(6));
        assert_eq!(t.to_string(), "10.000000");
    }
}
