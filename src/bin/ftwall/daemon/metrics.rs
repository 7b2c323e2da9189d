//! Prometheus metrics in the node_exporter textfile-collector format.
//!
//! Every `metrics.interval_seconds` the housekeeping thread renders the counters ([`render`]) and
//! the writer thread writes them with the one atomic-write helper ([`crate::files::write_atomic`]:
//! a temporary file beside the target, whose leading dot and `.tmp` suffix the collector
//! ignores, renamed over it; mode 0640), so the collector never reads a half-written file. Metric names are
//! stable; [`catalogue`] lists every family, and the table in `docs/operating.md` is generated
//! from it.
//!
//! The verdict latency histogram is shared by the queue threads as relaxed atomics: one
//! `fetch_add` per packet, no lock.

use super::health::HealthReport;
use super::queue::KernelCounters;
use ftwall::engine::EngineStats;
use ftwall::Reason;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in nanoseconds (`+Inf` is implicit).
const BOUNDS_NS: [u64; 12] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// Time from a packet's arrival in the daemon (recv returned) to its verdict being sent to
/// the kernel (for batched accepts: the batch message).
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    /// Per-bucket (non-cumulative) counts; the last slot is `+Inf`.
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    pub(crate) fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let slot = BOUNDS_NS.iter().position(|&b| ns <= b).unwrap_or(BOUNDS_NS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (the last is the total) and the sum in nanoseconds.
    fn cumulative(&self) -> (Vec<u64>, u64) {
        let mut total = 0;
        let counts = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        (counts, self.sum_ns.load(Ordering::Relaxed))
    }
}

/// One metric family: what the file declares with `# HELP` and `# TYPE`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Family {
    pub(crate) name: &'static str,
    /// `counter`, `gauge` or `histogram`.
    pub(crate) kind: &'static str,
    pub(crate) help: &'static str,
    /// Label names of its series (empty: one unlabelled series).
    pub(crate) labels: &'static [&'static str],
}

macro_rules! families {
    ($( $konst:ident = $name:literal, $kind:literal, [$($label:literal),*], $help:literal; )*) => {
        $( const $konst: Family = Family { name: $name, kind: $kind, help: $help, labels: &[$($label),*] }; )*
        /// Every family [`render`] writes, in order, except the daemon counters (see
        /// [`catalogue`]).
        const FAMILIES: &[Family] = &[$($konst),*];
    };
}

families! {
    BUILD_INFO = "ftwall_build_info", "gauge", ["version"], "Version of the running ftwall.";
    START_TIME = "ftwall_start_time_seconds", "gauge", [], "Unix time the daemon started.";
    PACKETS = "ftwall_packets_total", "counter", ["verdict"], "Packets judged, by verdict.";
    PACKETS_BY_REASON = "ftwall_packets_by_reason_total", "counter", ["reason", "verdict"],
        "Packets judged, by reason (in monitor mode drop reasons are reported but accepted).";
    LOCKED_CLIENTS = "ftwall_locked_clients", "gauge", [], "Inside clients under a time-lock.";
    SUSPECT_PEERS = "ftwall_suspect_peers", "gauge", [], "Outside peers in the suspect-peer cache.";
    BANS = "ftwall_bans", "gauge", [], "Addresses banned by the operator.";
    FLOWS = "ftwall_flows", "gauge", [], "Flows tracked by the engine.";
    QUEUE_WAITING = "ftwall_queue_waiting", "gauge", ["queue"], "Packets waiting in the kernel queue for a verdict.";
    QUEUE_DROPPED = "ftwall_queue_dropped_total", "counter", ["queue"],
        "Packets the kernel could not queue because the queue was full.";
    QUEUE_USER_DROPPED = "ftwall_queue_user_dropped_total", "counter", ["queue"],
        "Packets the kernel could not deliver because the socket buffer was full.";
    HEALTH = "ftwall_health", "gauge", [],
        "0 judging normally, 1 degraded (packets may pass unjudged or effects are lost), 2 stalled.";
    QUEUE_UNREAD = "ftwall_queue_unread", "gauge", ["queue"],
        "Packets the kernel has queued that the daemon has not received yet.";
    QUEUE_VERDICT_LAG = "ftwall_queue_verdict_lag_microseconds", "gauge", ["queue"],
        "Age of the last packet when the daemon received it.";
    QUEUE_SINCE_VERDICT = "ftwall_queue_since_last_verdict_milliseconds", "gauge", ["queue"],
        "Time since the last verdict on the queue.";
    VERDICT_LATENCY = "ftwall_verdict_latency_seconds", "histogram", ["le"],
        "Time from a packet's arrival in the daemon to its verdict reaching the kernel (batched accepts count until their batch message).";
}

/// Every family the metrics file can hold: [`FAMILIES`] plus one counter per daemon counter.
pub(crate) fn catalogue() -> Vec<Family> {
    let mut all = FAMILIES.to_vec();
    let engine = super::counters::ENGINE_CATALOGUE.iter().map(|&(key, name, help, _)| (key, name, help));
    let counters = super::counters::CATALOGUE.iter().copied().chain(engine);
    all.extend(counters.map(|(_, name, help)| Family { name, kind: "counter", help, labels: &[] }));
    all
}

/// The metrics table of `docs/operating.md` (Markdown).
pub(crate) fn markdown() -> String {
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for f in catalogue() {
        let labels: Vec<String> = f.labels.iter().map(|l| format!("`{l}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.name,
            f.kind,
            if labels.is_empty() { "none".into() } else { labels.join(", ") },
            f.help
        ));
    }
    out
}

/// Everything one metrics file reports.
pub(crate) struct MetricsInput<'a> {
    pub(crate) version: &'a str,
    pub(crate) start_time_seconds: u64,
    pub(crate) stats: &'a EngineStats,
    pub(crate) locked_clients: usize,
    pub(crate) suspect_peers: usize,
    pub(crate) bans: usize,
    pub(crate) flows: usize,
    /// (name, help, value) of the shell's own counters.
    pub(crate) counters: Vec<(&'static str, &'static str, u64)>,
    /// Kernel counters per queue number (None: /proc unreadable for this queue).
    pub(crate) kernel: Vec<(u16, Option<KernelCounters>)>,
    pub(crate) latency: &'a LatencyHistogram,
    pub(crate) health: &'a HealthReport,
}

fn family(out: &mut String, f: &Family) {
    let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
}

/// The metrics file's text.
pub(crate) fn render(m: &MetricsInput<'_>) -> String {
    let mut out = String::with_capacity(4096);
    family(&mut out, &BUILD_INFO);
    let _ = writeln!(out, "ftwall_build_info{{version=\"{}\"}} 1", m.version.replace(['\\', '"', '\n'], "_"));
    family(&mut out, &START_TIME);
    let _ = writeln!(out, "ftwall_start_time_seconds {}", m.start_time_seconds);

    family(&mut out, &PACKETS);
    let _ = writeln!(out, "ftwall_packets_total{{verdict=\"accept\"}} {}", m.stats.accepted);
    let _ = writeln!(out, "ftwall_packets_total{{verdict=\"drop\"}} {}", m.stats.dropped);
    family(&mut out, &PACKETS_BY_REASON);
    for (reason, n) in m.stats.by_reason() {
        let verdict = Reason::natural_verdict(reason).as_str();
        let _ =
            writeln!(out, "ftwall_packets_by_reason_total{{reason=\"{reason}\",verdict=\"{verdict}\"}} {n}");
    }

    for (f, value) in [
        (LOCKED_CLIENTS, m.locked_clients),
        (SUSPECT_PEERS, m.suspect_peers),
        (BANS, m.bans),
        (FLOWS, m.flows),
    ] {
        family(&mut out, &f);
        let _ = writeln!(out, "{} {value}", f.name);
    }
    for &(name, help, value) in &m.counters {
        family(&mut out, &Family { name, kind: "counter", help, labels: &[] });
        let _ = writeln!(out, "{name} {value}");
    }

    let kernel: Vec<(u16, KernelCounters)> = m.kernel.iter().filter_map(|&(q, k)| Some((q, k?))).collect();
    if !kernel.is_empty() {
        for (f, get) in [
            (QUEUE_WAITING, (|k: &KernelCounters| k.queue_total) as fn(&KernelCounters) -> u64),
            (QUEUE_DROPPED, |k| k.queue_dropped),
            (QUEUE_USER_DROPPED, |k| k.user_dropped),
        ] {
            family(&mut out, &f);
            for (queue, k) in &kernel {
                let _ = writeln!(out, "{}{{queue=\"{queue}\"}} {}", f.name, get(k));
            }
        }
    }

    family(&mut out, &HEALTH);
    let _ = writeln!(out, "ftwall_health {}", m.health.state.level());
    for (f, get) in [
        (
            QUEUE_UNREAD,
            (|q: &super::health::QueueHealth| q.unread) as fn(&super::health::QueueHealth) -> Option<u64>,
        ),
        (QUEUE_VERDICT_LAG, |q| q.verdict_lag_us),
        (QUEUE_SINCE_VERDICT, |q| q.since_last_verdict_ms),
    ] {
        let rows: Vec<_> = m.health.queues.iter().filter_map(|q| Some((q.queue, get(q)?))).collect();
        if !rows.is_empty() {
            family(&mut out, &f);
            for (queue, value) in rows {
                let _ = writeln!(out, "{}{{queue=\"{queue}\"}} {value}", f.name);
            }
        }
    }

    let name = VERDICT_LATENCY.name;
    family(&mut out, &VERDICT_LATENCY);
    let (cumulative, sum_ns) = m.latency.cumulative();
    for (bound, count) in BOUNDS_NS.iter().zip(&cumulative) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {count}", *bound as f64 / 1e9);
    }
    let total = *cumulative.last().unwrap_or(&0);
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {}", sum_ns as f64 / 1e9);
    let _ = writeln!(out, "{name}_count {total}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (EngineStats, LatencyHistogram) {
        let mut engine = ftwall::Engine::new(ftwall::EngineConfig::default());
        engine.handle_packet(ftwall::Timestamp::ZERO, b"\x45garbage");
        let latency = LatencyHistogram::default();
        latency.record(Duration::from_nanos(800));
        latency.record(Duration::from_micros(7));
        latency.record(Duration::from_secs(1));
        (engine.stats().clone(), latency)
    }

    #[test]
    fn renders_valid_exposition_text() {
        let (stats, latency) = sample();
        let text = render(&MetricsInput {
            version: "0.1.0 (git abc)",
            start_time_seconds: 1_795_000_000,
            stats: &stats,
            locked_clients: 2,
            suspect_peers: 3,
            bans: 1,
            flows: 4,
            counters: vec![("ftwall_flows_offloaded_total", "Flows handed to the kernel.", 9)],
            kernel: vec![
                (
                    0,
                    Some(KernelCounters {
                        queue_total: 1,
                        queue_dropped: 2,
                        user_dropped: 3,
                        id_sequence: 9,
                    }),
                ),
                (1, None),
            ],
            latency: &latency,
            health: &HealthReport {
                queues: vec![super::super::health::QueueHealth {
                    queue: 0,
                    received: 5,
                    waiting: Some(1),
                    occupancy_percent: Some(0),
                    unread: Some(0),
                    since_last_verdict_ms: Some(12),
                    verdict_lag_us: Some(40),
                }],
                ..HealthReport::default()
            },
        });
        // Every sample belongs to a family declared just before with HELP and TYPE.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            let family = declared.last().unwrap();
            assert!(
                name == family || name.strip_prefix(family.as_str()).is_some_and(|s| s.starts_with('_')),
                "{line}"
            );
        }
        assert!(text.contains("ftwall_packets_by_reason_total{reason=\"malformed\",verdict=\"accept\"} 1\n"));
        assert!(text.contains("ftwall_packets_by_reason_total{reason=\"banned\",verdict=\"drop\"} 0\n"));
        assert!(text.contains("ftwall_packets_total{verdict=\"accept\"} 1\n"));
        assert!(text.contains("ftwall_locked_clients 2\n"));
        assert!(text.contains("ftwall_queue_user_dropped_total{queue=\"0\"} 3\n"));
        assert!(text.contains("ftwall_queue_since_last_verdict_milliseconds{queue=\"0\"} 12\n"));
        assert!(!text.contains("queue=\"1\""), "an unreadable queue is left out");
        assert!(text.contains("ftwall_verdict_latency_seconds_bucket{le=\"0.000001\"} 1\n"));
        assert!(text.contains("ftwall_verdict_latency_seconds_bucket{le=\"0.00001\"} 2\n"));
        assert!(text.contains("ftwall_verdict_latency_seconds_bucket{le=\"0.1\"} 2\n"));
        assert!(text.contains("ftwall_verdict_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("ftwall_verdict_latency_seconds_count 3\n"));
        assert!(text.contains("ftwall_build_info{version=\"0.1.0 (git abc)\"} 1\n"));
        // Every declared family is catalogued, and every catalogued one (but the counters the
        // sample leaves out) is declared.
        let catalogue: Vec<&str> = catalogue().iter().map(|f| f.name).collect();
        for name in &declared {
            assert!(catalogue.contains(&name.as_str()), "{name} not in the catalogue");
        }
        for f in FAMILIES {
            assert!(declared.iter().any(|d| d == f.name), "{} never rendered", f.name);
        }
    }

    #[test]
    fn markdown_lists_every_family_and_counter() {
        let md = markdown();
        let counters =
            super::super::counters::CATALOGUE.len() + super::super::counters::ENGINE_CATALOGUE.len();
        assert_eq!(md.lines().count(), 2 + FAMILIES.len() + counters);
        assert!(md.contains("| `ftwall_spoofed_pongs_total` | counter | none |"));
        assert!(md.contains("| `ftwall_queue_waiting` | gauge | `queue` |"));
    }
}
