//! The daemon's own counters (beside the engine's packet counts), shared by every thread as
//! relaxed atomics, and the one table that names them for `ftwall ctl status`, the metrics file
//! and the `counters` event.
//!
//! Invariant: every counter appears exactly once in [`Counters::table`], with its status key,
//! metric name and help text, so the three views cannot drift apart.

use crate::events::log_event;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $field:ident, $metric:literal, $help:literal; )*) => {
        /// See the module documentation.
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $( pub(crate) $field: AtomicU64, )*
        }

        /// (status key, metric name, help) of every counter, in table order.
        pub(crate) const CATALOGUE: &[(&str, &str, &str)] = &[$( (stringify!($field), $metric, $help), )*];

        impl Counters {
            /// (status key, metric name, help, value) of every counter.
            pub(crate) fn table(&self) -> Vec<(&'static str, &'static str, &'static str, u64)> {
                vec![$( (stringify!($field), $metric, $help, self.$field.load(Ordering::Relaxed)), )*]
            }

            /// Logs the `counters` event: the engine's figures given, then every counter as a
            /// field of its own.
            pub(crate) fn log(&self, engine: &EngineFigures<'_>) {
                log_event!(
                    COUNTERS,
                    packets = engine.packets,
                    accepted = engine.accepted,
                    dropped = engine.dropped,
                    by_reason = tracing::field::valuable(engine.by_reason),
                    locked_clients = engine.locked_clients,
                    suspect_peers = engine.suspect_peers,
                    flows = engine.flows,
                    health = engine.health,
                    $( $field = self.$field.load(Ordering::Relaxed), )*
                    "counters"
                );
            }
        }
    };
}

/// The engine's figures in the `counters` event.
pub(crate) struct EngineFigures<'a> {
    pub(crate) packets: u64,
    pub(crate) accepted: u64,
    pub(crate) dropped: u64,
    /// Packets per reason code (reasons with none left out): a JSON object in the JSON log.
    pub(crate) by_reason: &'a std::collections::BTreeMap<&'static str, u64>,
    pub(crate) locked_clients: usize,
    pub(crate) suspect_peers: usize,
    pub(crate) flows: usize,
    pub(crate) health: &'a str,
}

counters! {
    flows_offloaded, "ftwall_flows_offloaded_total", "Flows handed to the kernel by a mark (clean or FastTrack).";
    verdict_batches, "ftwall_verdict_batches_total", "Batch accept messages sent.";
    verdict_errors, "ftwall_verdict_errors_total", "Verdicts the kernel refused.";
    socket_overflows, "ftwall_socket_overflows_total", "ENOBUFS on the queue socket: packets the kernel could not deliver.";
    queue_errors, "ftwall_queue_errors_total", "Netlink errors reading the queue.";
    marked_returns, "ftwall_marked_returns_total", "Packets that came back to the daemon already carrying its offload mark (rules missing).";
    spoofed_pongs, "ftwall_spoofed_pongs_total", "Forged pongs sent to pinging clients.";
    spoof_errors, "ftwall_spoof_errors_total", "Forged pongs or probes not sent (socket busy or error).";
    pongs_wrong_interface, "ftwall_pongs_wrong_interface_total", "Forged pongs refused because the ping did not arrive on a LAN interface.";
    probes_sent, "ftwall_probes_sent_total", "Half-expiry probes sent to locked clients.";
    effects_discarded, "ftwall_effects_discarded_total", "Side effects (pongs, probes, mirror updates) discarded because their queue was full.";
    mirror_resyncs, "ftwall_mirror_resyncs_total", "Full resyncs of the lock mirrors after discarded updates.";
    client_dir_errors, "ftwall_client_dir_errors_total", "Failed updates of the client directory.";
    kernel_set_errors, "ftwall_kernel_set_errors_total", "Failed updates of the kernel sets.";
    state_saves, "ftwall_state_saves_total", "State file saves.";
    state_save_errors, "ftwall_state_save_errors_total", "Failed state file saves.";
    metrics_writes_skipped, "ftwall_metrics_writes_skipped_total", "Metrics writes skipped because the writer was still busy.";
    log_lines_discarded, "ftwall_log_lines_discarded_total", "Log lines discarded because stderr could not keep up.";
    drop_lines_suppressed, "ftwall_drop_lines_suppressed_total", "packet_dropped lines suppressed by the global log limit.";
    cluster_events_out, "ftwall_cluster_events_out_total", "Changes published to the other gateways (cluster).";
    cluster_events_in, "ftwall_cluster_events_in_total", "Changes from other gateways merged into the engine (resyncs included).";
    cluster_resyncs, "ftwall_cluster_resyncs_total", "Full reads of the cluster prefix (every Redis (re)connect).";
    cluster_errors, "ftwall_cluster_errors_total", "Failed Redis calls (connect, publish, read); each is retried with backoff.";
    cluster_writes_refused, "ftwall_cluster_writes_refused_total", "Redis calls of the publisher that Redis answered with an error (full: OOM; NOPERM; READONLY); also counted in cluster_errors.";
    cluster_garbage, "ftwall_cluster_garbage_total", "Values or messages from Redis that were ignored (wrong type, oversized, unparsable, inconsistent).";
    cluster_outbox_overflows, "ftwall_cluster_outbox_overflows_total", "Local changes not queued for publishing because the cluster outbox was full (repaired by a resync).";
    cluster_lag_us, "ftwall_cluster_lag_microseconds_total", "Sum of the propagation times (publishing gateway's clock to this one's: needs NTP) of the changes received by message, in µs.";
    cluster_clock_skewed, "ftwall_cluster_clock_skewed_total", "Changes from other gateways whose send date was more than 5 s from this gateway's clock (logged as cluster_clock_skew, at most every 60 s; not counted in the lag).";
    cluster_duplicate_node, "ftwall_cluster_duplicate_node_total", "Messages from another process publishing under this gateway's cluster.node_id (two gateways configured with one name ignore each other's changes).";
    cluster_echoes, "ftwall_cluster_echoes_total", "This gateway's own messages received back from Redis's channel (and ignored).";
    cluster_echo_us, "ftwall_cluster_echo_microseconds_total", "Sum of the times from publishing a change to receiving it back on the channel, on this gateway's own clock, in µs; over the rate of cluster_echoes, the mean time a change takes through Redis, with no clock comparison between gateways.";
}

/// One engine counter beside the packet counts: status key, metric name, help, and how to read
/// it from [`EngineStats`](ftwall::engine::EngineStats).
pub(crate) type EngineCounter =
    (&'static str, &'static str, &'static str, fn(&ftwall::engine::EngineStats) -> u64);

/// The engine's own counters that sit beside the packet counts, each with its reader, so a name
/// can never be paired with another counter's value.
pub(crate) const ENGINE_CATALOGUE: &[EngineCounter] = &[
    ("events_discarded", "ftwall_events_discarded_total", "Engine events discarded undrained.", |s| {
        s.events_discarded
    }),
    ("actions_discarded", "ftwall_actions_discarded_total", "Engine actions discarded undrained.", |s| {
        s.actions_discarded
    }),
    (
        "pongs_refused_not_lan",
        "ftwall_pongs_refused_not_lan_total",
        "Forged pongs refused: the pinging client is not in lan, or the pinged peer is.",
        |s| s.pongs_refused_not_lan,
    ),
    (
        "pongs_rate_limited",
        "ftwall_pongs_rate_limited_total",
        "Forged pongs refused by the pongs rate limits.",
        |s| s.pongs_rate_limited,
    ),
    ("probe_answers", "ftwall_probe_answers_total", "Half-expiry probes a locked client answered.", |s| {
        s.probe_answers
    }),
    (
        "pongs_unsolicited",
        "ftwall_pongs_unsolicited_total",
        "Pongs from a locked client that answered no probe (forged or stray): dropped, the lock not re-armed.",
        |s| s.pongs_unsolicited,
    ),
    (
        "reassembly_evicted",
        "ftwall_reassembly_evicted_total",
        "TCP reassembly windows evicted from the full pool (flows.reassembly_capacity); the evicted direction is no longer inspected.",
        |s| s.reassembly_evicted,
    ),
    (
        "client_ports_evicted",
        "ftwall_client_ports_evicted_total",
        "Clients' remembered FastTrack UDP ports evicted for another client's (table full).",
        |s| s.client_ports_evicted,
    ),
    (
        "peers_refused_full",
        "ftwall_peers_refused_full_total",
        "Suspect peers not learned because their table (per family and strength, peers.capacity) was full of live entries.",
        |s| s.peers_refused_full,
    ),
    (
        "peers_refused_quota",
        "ftwall_peers_refused_quota_total",
        "Suspect peers not learned because the client whose flow named them had peers.per_client live ones.",
        |s| s.peers_refused_quota,
    ),
    (
        "locks_refused_full",
        "ftwall_locks_refused_full_total",
        "Locks not armed because their table (per family, timelock.capacity) was full of live locks.",
        |s| s.locks_refused_full,
    ),
    (
        "peers_refused_remote",
        "ftwall_peers_refused_remote_total",
        "Suspect peers from other gateways not merged because other gateways' entries held half of their table (per family and strength) already.",
        |s| s.peers_refused_remote,
    ),
    (
        "locks_refused_remote",
        "ftwall_locks_refused_remote_total",
        "Locks from other gateways not merged because other gateways' locks held half of their table (per family) already.",
        |s| s.locks_refused_remote,
    ),
    (
        "remote_bans_refused",
        "ftwall_remote_bans_refused_total",
        "Bans from other gateways refused: wider than an IPv4 /16 or IPv6 /32, covering a whole lan network or an exempt address, or beyond half the ban table.",
        |s| s.remote_bans_refused,
    ),
    (
        "locks_refused_not_inside",
        "ftwall_locks_refused_not_inside_total",
        "Tells whose client was not locked because it is not in lan, or is exempt.",
        |s| s.locks_refused_not_inside,
    ),
    (
        "stream_segments_ignored",
        "ftwall_stream_segments_ignored_total",
        "TCP segments ignored because they started more than 64 KiB beyond their direction's gap-free stream prefix (never stored, no influence on a verdict).",
        |s| s.stream_segments_ignored,
    ),
    (
        "flow_quota_refused",
        "ftwall_flow_quota_refused_total",
        "Packets refused a new flow entry because their source already holds its quota (a quarter of flows.capacity): TCP ones dropped (flow_quota), UDP ones judged without flow state.",
        |s| s.flow_quota_refused,
    ),
    (
        "reassembly_quota_refused",
        "ftwall_reassembly_quota_refused_total",
        "TCP segments dropped because they needed a reassembly window while their source held a quarter of flows.reassembly_capacity (the sender retransmits).",
        |s| s.reassembly_quota_refused,
    ),
];

/// The engine's own counters: (status key, metric, help, value), in [`ENGINE_CATALOGUE`] order.
pub(crate) fn engine_counters(
    s: &ftwall::engine::EngineStats,
) -> Vec<(&'static str, &'static str, &'static str, u64)> {
    ENGINE_CATALOGUE.iter().map(|&(key, metric, help, read)| (key, metric, help, read(s))).collect()
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value of `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_line_has_numbers_and_by_reason_as_an_object() {
        let c = Counters::default();
        c.spoofed_pongs.store(3, Ordering::Relaxed);
        let by_reason = [("clean", 9), ("udp_ping", 1)].into_iter().collect();
        let lines = crate::events::captured(|| {
            c.log(&EngineFigures {
                packets: 10,
                accepted: 9,
                dropped: 1,
                by_reason: &by_reason,
                locked_clients: 1,
                suspect_peers: 2,
                flows: 3,
                health: "ok",
            })
        });
        assert_eq!(lines[0]["by_reason"], serde_json::json!({"clean": 9, "udp_ping": 1}), "{}", lines[0]);
        assert_eq!((lines[0]["packets"].as_u64(), lines[0]["spoofed_pongs"].as_u64()), (Some(10), Some(3)));
    }

    #[test]
    fn table_names_every_counter_once_with_metric_names() {
        let c = Counters::default();
        Counters::bump(&c.spoofed_pongs);
        let table = c.table();
        let mut keys: Vec<_> = table.iter().map(|r| r.0).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), table.len());
        assert!(table.iter().all(|r| r.1.starts_with("ftwall_") && r.1.ends_with("_total")));
        assert_eq!(table.iter().find(|r| r.0 == "spoofed_pongs").map(|r| r.3), Some(1));
    }
}
