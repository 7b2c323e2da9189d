//! Log setup and the per-pair rate limit for `packet_dropped` lines.
//!
//! Every ftwall log line carries an `event` field naming it (see the README's log schema).
//!
//! When stderr is the journal (`JOURNAL_STREAM` names stderr's device and inode, as systemd
//! documents), lines carry no timestamp (journald stamps them) and start with the sd-daemon
//! priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which journald strips
//! and stores as the priority, so `journalctl -p warning -u ftwall` works.

use clap::ValueEnum;
use lru::LruCache;
use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Whether `journal_stream` (the value of `JOURNAL_STREAM`, "device:inode") names the file
/// whose device and inode are given.
fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream.split_once(':').is_some_and(|(d, i)| d.parse() == Ok(dev) && i.parse() == Ok(ino))
}

/// True when stderr is connected to the journal (not merely started by systemd: a unit with
/// `StandardError=file:` keeps the timestamps).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned().map(std::fs::File::from) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    stderr.metadata().is_ok_and(|m| names_stream(&value.to_string_lossy(), m.dev(), m.ino()))
}

/// The sd-daemon priority prefix for a level.
fn priority_prefix(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

/// Writes each formatted event to stderr behind its priority prefix, in one write.
struct JournalWriter;

/// One event's writer (see [`JournalWriter`]).
struct PrefixedStderr(&'static [u8]);

impl Write for PrefixedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = Vec::with_capacity(self.0.len() + buf.len());
        line.extend_from_slice(self.0);
        line.extend_from_slice(buf);
        std::io::stderr().lock().write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for JournalWriter {
    type Writer = PrefixedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        PrefixedStderr(b"<6>")
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        PrefixedStderr(priority_prefix(meta.level()))
    }
}

/// Installs the global subscriber. Default format: JSON when stderr is the journal, text
/// otherwise.
pub(crate) fn init(format: Option<LogFormat>, level: &str) -> anyhow::Result<()> {
    let journal = stderr_is_journal();
    let format = format.unwrap_or(if journal { LogFormat::Json } else { LogFormat::Text });
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false);
    let result = match (format, journal) {
        (LogFormat::Json, true) => {
            builder.with_writer(JournalWriter).without_time().json().flatten_event(true).try_init()
        }
        (LogFormat::Json, false) => {
            builder.with_writer(std::io::stderr).json().flatten_event(true).try_init()
        }
        (LogFormat::Text, true) => {
            builder.with_writer(JournalWriter).without_time().with_level(false).try_init()
        }
        (LogFormat::Text, false) => builder.with_writer(std::io::stderr).try_init(),
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
    fn journal_detection_and_priorities() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("garbage", 8, 12345));
        assert_eq!(priority_prefix(&Level::ERROR), b"<3>");
        assert_eq!(priority_prefix(&Level::WARN), b"<4>");
        assert_eq!(priority_prefix(&Level::INFO), b"<6>");
        assert_eq!(priority_prefix(&Level::DEBUG), b"<7>");
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
