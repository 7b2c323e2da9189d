//! Log setup and the per-pair rate limit for `packet_dropped` lines.
//!
//! Every ftwall log line carries an `event` field naming it (see the event table in
//! `docs/operating.md`).
//!
//! Logging never blocks the thread that logs: each formatted line goes into a bounded queue
//! ([`LOG_QUEUE_LINES`]) that one thread writes to stderr. When stderr stalls (a full pipe, a
//! slow journald) and the queue is full, lines are discarded and counted
//! ([`lines_discarded`]); the count is reported in `ftwall ctl status`, the metrics and the
//! `counters` event.
//!
//! In text mode every field is written by [`EscapedFields`]: control characters are escaped
//! (`\n`, `\r`, `\t`, `\u{..}`) in every value and in the message, and a value that is empty
//! or holds whitespace, `"`, `\`, `=` or a control character is quoted; string values always
//! are. So no value, whatever it holds (an error message quoting a crafted state file, say), can
//! start a new line or pass for another field. JSON mode escapes by construction.
//!
//! When stderr is the journal (`JOURNAL_STREAM` names stderr's device and inode, as systemd
//! documents), lines carry no timestamp (journald stamps them) and start with the sd-daemon
//! priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which journald strips
//! and stores as the priority, so `journalctl -p warning -u ftwall` works.

use clap::ValueEnum;
use lru::LruCache;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer as FmtWriter;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
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

/// Most log lines waiting for the writer thread.
pub(crate) const LOG_QUEUE_LINES: usize = 8192;

/// Lines discarded because the queue was full.
static DISCARDED: AtomicU64 = AtomicU64::new(0);

/// What the writer thread receives: a line, or a request to confirm all earlier lines are out.
enum LogItem {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

/// The sending end of the queue (set once by [`init`]).
static QUEUE: OnceLock<SyncSender<LogItem>> = OnceLock::new();

/// Copies the number of lines discarded since start (stderr could not keep up) into `counter`.
pub(crate) fn count_discarded(counter: &AtomicU64) {
    counter.store(DISCARDED.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Waits (at most `timeout`) until every line logged so far has been written (at exit).
pub(crate) fn flush(timeout: Duration) {
    let Some(queue) = QUEUE.get() else { return };
    let (done, wait) = sync_channel(1);
    if queue.try_send(LogItem::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(timeout);
    }
}

fn writer_thread(lines: Receiver<LogItem>) {
    let stderr = std::io::stderr();
    for item in lines {
        match item {
            // Nothing to do about a failed write to stderr: the line is lost.
            LogItem::Line(line) => drop(stderr.lock().write_all(&line)),
            LogItem::Flush(done) => drop(done.try_send(())),
        }
    }
}

/// Queues one line without waiting.
fn enqueue(line: Vec<u8>) {
    let Some(queue) = QUEUE.get() else {
        // Before init (never in practice): write directly.
        let _ = std::io::stderr().lock().write_all(&line);
        return;
    };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(LogItem::Line(line)) {
        DISCARDED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `MakeWriter` of every format: each event becomes one queued line, behind the sd-daemon
/// priority prefix when stderr is the journal.
struct QueuedWriter {
    journal: bool,
}

/// One event's writer (see [`QueuedWriter`]).
struct QueuedLine(&'static [u8]);

impl Write for QueuedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut line = Vec::with_capacity(self.0.len() + buf.len());
        line.extend_from_slice(self.0);
        line.extend_from_slice(buf);
        enqueue(line);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for QueuedWriter {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> Self::Writer {
        QueuedLine(if self.journal { b"<6>" } else { b"" })
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        QueuedLine(if self.journal { priority_prefix(meta.level()) } else { b"" })
    }
}

/// Guards the one-time start of the writer thread.
static STARTED: Mutex<bool> = Mutex::new(false);

fn start_writer() {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if *started {
        return;
    }
    let (tx, rx) = sync_channel(LOG_QUEUE_LINES);
    if QUEUE.set(tx).is_ok()
        && std::thread::Builder::new().name("ftwall-log".into()).spawn(move || writer_thread(rx)).is_ok()
    {
        *started = true;
    }
}

/// Installs the global subscriber. Default format: JSON when stderr is the journal, text
/// otherwise.
pub(crate) fn init(format: Option<LogFormat>, level: &str) -> anyhow::Result<()> {
    let journal = stderr_is_journal();
    let format = format.unwrap_or(if journal { LogFormat::Json } else { LogFormat::Text });
    let filter =
        EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    start_writer();
    let writer = QueuedWriter { journal };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false);
    let result = match (format, journal) {
        (LogFormat::Json, true) => {
            builder.with_writer(writer).without_time().json().flatten_event(true).try_init()
        }
        (LogFormat::Json, false) => builder.with_writer(writer).json().flatten_event(true).try_init(),
        (LogFormat::Text, true) => {
            builder.fmt_fields(EscapedFields).with_writer(writer).without_time().with_level(false).try_init()
        }
        (LogFormat::Text, false) => builder.fmt_fields(EscapedFields).with_writer(writer).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// The text format's field formatter (see the module documentation).
struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: FmtWriter<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor { writer, result: Ok(()), first: true };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: FmtWriter<'writer>,
    result: fmt::Result,
    first: bool,
}

impl EscapingVisitor<'_> {
    fn field(&mut self, field: &Field, text: &str, always_quote: bool) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::take(&mut self.first) { "" } else { " " };
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{}", escape_text(text, false))
        } else {
            let quote = always_quote || needs_quotes(text);
            write!(self.writer, "{separator}{}={}", field.name(), escape_text(text, quote))
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"), false);
    }
}

/// Whether a value must be quoted to stay one field.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '='))
}

/// `text` with control characters escaped; with `quoted`, also `"` and `\`, inside quotes.
fn escape_text(text: &str, quoted: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    if quoted {
        out.push('"');
    }
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' | '\\' if quoted => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// Per (client, peer) limit: at most `burst` lines per `interval`; the rest are counted and the
/// count is reported on the pair's next line (or by [`DropLimiter::flush`]). Over all pairs,
/// at most `max_per_second` lines per second: when many pairs churn (more than the pair table
/// holds), the global limit still caps the volume; lines it refuses are only counted.
pub(crate) struct DropLimiter {
    pairs: LruCache<(IpAddr, IpAddr), Window>,
    burst: u32,
    interval: Duration,
    max_per_second: u32,
    /// The current one-second window of the global limit: (start, lines logged).
    global: (ftwall::Timestamp, u32),
}

/// What [`DropLimiter::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Log it; the pair's earlier suppressed drops are reported with it.
    Log(u64),
    /// Over the pair's budget: counted for the pair's next line.
    PairLimited,
    /// Over the global budget: only counted in `drop_lines_suppressed`.
    GlobalLimited,
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
    pub(crate) fn new(burst: u32, interval_seconds: u64, max_per_second: u32) -> Self {
        Self {
            pairs: LruCache::new(NonZeroUsize::new(MAX_PAIRS).expect("non-zero")),
            burst,
            interval: Duration::from_secs(interval_seconds.max(1)),
            max_per_second,
            global: (ftwall::Timestamp::ZERO, 0),
        }
    }

    pub(crate) fn reconfigure(&mut self, burst: u32, interval_seconds: u64, max_per_second: u32) {
        self.burst = burst;
        self.interval = Duration::from_secs(interval_seconds.max(1));
        self.max_per_second = max_per_second;
    }

    /// Whether to log this drop now (see [`Admit`]).
    pub(crate) fn admit(&mut self, client: IpAddr, peer: IpAddr, now: ftwall::Timestamp) -> Admit {
        let window =
            self.pairs.get_or_insert_mut((client, peer), || Window { start: now, logged: 0, suppressed: 0 });
        if now.saturating_since(window.start) >= self.interval {
            window.start = now;
            window.logged = 0;
        }
        if window.logged >= self.burst {
            window.suppressed += 1;
            return Admit::PairLimited;
        }
        if now.saturating_since(self.global.0) >= Duration::from_secs(1) {
            self.global = (now, 0);
        }
        if self.global.1 >= self.max_per_second {
            return Admit::GlobalLimited;
        }
        self.global.1 += 1;
        window.logged += 1;
        Admit::Log(std::mem::take(&mut window.suppressed))
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
        let mut l = DropLimiter::new(2, 60, 100);
        let (c, p, q) =
            ("192.0.2.10".parse().unwrap(), "198.51.100.1".parse().unwrap(), "198.51.100.2".parse().unwrap());
        let t = Timestamp::from_secs;
        assert_eq!(l.admit(c, p, t(0)), Admit::Log(0));
        assert_eq!(l.admit(c, p, t(1)), Admit::Log(0));
        assert_eq!(l.admit(c, p, t(2)), Admit::PairLimited);
        assert_eq!(l.admit(c, p, t(3)), Admit::PairLimited);
        assert_eq!(l.admit(c, q, t(3)), Admit::Log(0), "another pair has its own budget");
        assert!(l.flush(t(30)).is_empty());
        assert_eq!(l.admit(c, p, t(61)), Admit::Log(2), "the next window reports what was suppressed");
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
    fn churning_pairs_hit_the_global_limit() {
        // 24,000 pings over 12,000 pairs (more than the pair table holds) in 12 s: at most
        // max_per_second lines a second, whatever the pair table forgets.
        let mut l = DropLimiter::new(5, 60, 50);
        let client: IpAddr = "192.0.2.10".parse().unwrap();
        let mut logged = 0;
        for i in 0..24_000u32 {
            let peer = IpAddr::from((0xC633_6400u32 + i % 12_000).to_be_bytes());
            let now = Timestamp::from_micros(u64::from(i) * 500);
            if matches!(l.admit(client, peer, now), Admit::Log(_)) {
                logged += 1;
            }
        }
        assert!(logged <= 12 * 50 + 50, "{logged} lines");
        assert!(logged >= 11 * 50, "{logged} lines");
    }

    #[test]
    fn text_fields_are_escaped_and_quoted() {
        assert_eq!(escape_text("192.0.2.1", needs_quotes("192.0.2.1")), "192.0.2.1");
        let forged = "unknown field `a\n2026-12-02T00:00:00Z INFO released event=\"x\"`";
        let escaped = escape_text(forged, needs_quotes(forged));
        assert!(!escaped.contains('\n'), "{escaped}");
        assert_eq!(escaped, r#""unknown field `a\n2026-12-02T00:00:00Z INFO released event=\"x\"`""#);
        assert_eq!(escape_text("", needs_quotes("")), r#""""#);
        assert_eq!(escape_text("a\u{1b}[31m", false), "a\\u{1b}[31m");
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = DropLimiter::new(1, 60, 1000);
        for i in 0..20_000u32 {
            let peer = IpAddr::from(i.to_be_bytes());
            l.admit("192.0.2.10".parse().unwrap(), peer, Timestamp::ZERO);
        }
        assert_eq!(l.pairs.len(), MAX_PAIRS);
    }
}
