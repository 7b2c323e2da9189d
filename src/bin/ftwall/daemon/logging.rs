//! Log setup and the per-pair rate limit for `packet_dropped` lines.
//!
//! Every ftwall log line carries an `event` field naming it (see the README's log schema).

use clap::ValueEnum;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// True when started by systemd (journald adds its own timestamps).
fn under_systemd() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some() || std::env::var_os("INVOCATION_ID").is_some()
}

/// Installs the global subscriber. Default format: JSON under systemd, text otherwise.
pub(crate) fn init(format: Option<LogFormat>, level: &str) -> anyhow::Result<()> {
    let systemd = under_systemd();
    let format = format.unwrap_or(if systemd { LogFormat::Json } else { LogFormat::Text });
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    let result = match (format, systemd) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Text, false) => builder.with_ansi(false).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Per (client, peer) limit: at most `burst` lines per `interval`; the rest are counted and the
/// count is reported on the pair's next line (or by [`DropLimiter::flush`]).
pub(crate) struct DropLimiter {
    pairs: LruCache<(IpAddr, IpAddr), Window>,
    burst: u32,
    interval: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: ftwall::Timestamp,
    logged: u32,
    suppressed: u64,
}

/// Bound on the number of pairs tracked (memory stays flat under a flood).
const MAX_PAIRS: usize = 4096;

impl DropLimiter {
    pub(crate) fn new(burst: u32, interval_seconds: u64) -> Self {
        Self {
            pairs: LruCache::new(NonZeroUsize::new(MAX_PAIRS).expect("non-zero")),
            burst,
            interval: Duration::from_secs(interval_seconds.max(1)),
        }
    }

    pub(crate) fn reconfigure(&mut self, burst: u32, interval_seconds: u64) {
        self.burst = burst;
        self.interval = Duration::from_secs(interval_seconds.max(1));
    }

    /// Whether to log this drop now; if so, how many earlier drops of the pair were suppressed.
    pub(crate) fn admit(&mut self, client: IpAddr, peer: IpAddr, now: ftwall::Timestamp) -> Option<u64> {
        let window =
            self.pairs.get_or_insert_mut((client, peer), || Window { start: now, logged: 0, suppressed: 0 });
        if now.saturating_since(window.start) >= self.interval {
            window.start = now;
            window.logged = 0;
        }
        if window.logged < self.burst {
            window.logged += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }

    /// Pairs whose window ended with suppressed drops: (client, peer, count). They are reset.
    pub(crate) fn flush(&mut self, now: ftwall::Timestamp) -> Vec<(IpAddr, IpAddr, u64)> {
        let mut out = Vec::new();
        for (&(client, peer), window) in self.pairs.iter_mut() {
            if window.suppressed > 0 && now.saturating_since(window.start) >= self.interval {
                out.push((client, peer, std::mem::take(&mut window.suppressed)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::Timestamp;

    #[test]
    fn limits_per_pair_and_reports_suppressed() {
        let mut l = DropLimiter::new(2, 60);
        let (c, p, q) =
            ("192.0.2.10".parse().unwrap(), "198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
        let t = Timestamp::from_secs;
        assert_eq!(l.admit(c, p, t(0)), Some(0));
        assert_eq!(l.admit(c, p, t(1)), Some(0));
        assert_eq!(l.admit(c, p, t(2)), None);
        assert_eq!(l.admit(c, p, t(3)), None);
        assert_eq!(l.admit(c, q, t(3)), Some(0), "another pair has its own budget");
        assert!(l.flush(t(30)).is_empty());
        assert_eq!(l.admit(c, p, t(61)), Some(2), "the next window reports what was suppressed");
        for s in 62..70 {
            l.admit(c, p, t(s));
        }
        assert_eq!(l.flush(t(200)), vec![(c, p, 7)]);
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = DropLimiter::new(1, 60);
        for i in 0..20_000u32 {
            let peer = IpAddr::from(i.to_be_bytes());
            l.admit("192.0.2.10".parse().unwrap(), peer, Timestamp::ZERO);
        }
        assert_eq!(l.pairs.len(), MAX_PAIRS);
    }
}
