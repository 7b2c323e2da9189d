//! The catalogue of log events: every structured line the binary writes has an `event` field
//! whose value is one entry of [`ALL`], with the level(s), fields and one-line meaning listed
//! there. The operator reference (`docs/operating.md`'s events table and the `ftwall-events(7)`
//! man page) is generated from this table, so the docs cannot drift from the code.
//!
//! Invariants:
//! - every log call goes through [`log_event!`] with a catalogue constant; no
//!   `event` field is written by hand elsewhere (checked by `tests/docs.rs`);
//! - a line's level is one of its entry's `levels` (the first is the default; other levels are
//!   named at the call site and checked in debug builds);
//! - a line's fields are among its entry's `fields` (checked on every log line the end-to-end
//!   tests read, against `ftwall man --catalogue`).
//!
//! A new log event: one entry here and one `log_event!` call; the docs follow from
//! `ftwall man --markdown` (see `docs/hacking.md`).

use crate::clock::Clock;
use ftwall::Event;
use serde::Serialize;
use std::net::SocketAddr;
use tracing::Level;

/// One log event: its name (the `event` field), levels, fields and meaning.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct LogEvent {
    /// The value of the `event` field.
    pub(crate) name: &'static str,
    /// The levels it is logged at; the first is the default.
    #[serde(serialize_with = "level_names")]
    pub(crate) levels: &'static [Level],
    /// (field, meaning) of every field it may carry, beside `event`, `level` and `message`.
    pub(crate) fields: &'static [(&'static str, &'static str)],
    /// One line: when it is logged and what the operator should make of it.
    pub(crate) meaning: &'static str,
}

fn level_names<S: serde::Serializer>(levels: &&'static [Level], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(levels.iter().map(|l| l.as_str().to_ascii_lowercase()))
}

impl LogEvent {
    /// Whether `level` is one this event may be logged at.
    pub(crate) fn allows(&self, level: Level) -> bool {
        self.levels.contains(&level)
    }
}

/// Logs a catalogue event: `log_event!(NAME, fields..., "message")` at the event's default
/// level, or `log_event!(NAME at WARN, fields..., "message")` at another of its levels. The
/// fields use `tracing`'s syntax (`client = %addr`, `total`, `queues = ?list`).
macro_rules! log_event {
    ($event:ident at $level:ident, $($rest:tt)+) => {{
        debug_assert!(
            $crate::events::$event.allows(::tracing::Level::$level),
            "{} is not catalogued at level {}", $crate::events::$event.name, ::tracing::Level::$level
        );
        ::tracing::event!(::tracing::Level::$level, event = $crate::events::$event.name, $($rest)+)
    }};
    ($event:ident, $($rest:tt)+) => {
        ::tracing::event!($crate::events::$event.levels[0], event = $crate::events::$event.name, $($rest)+)
    };
}

pub(crate) use log_event;

macro_rules! log_events {
    ($( $konst:ident = $name:literal, [$($level:ident),+], $meaning:literal,
        { $($field:literal: $fmeaning:literal),* $(,)? }; )*) => {
        $(
            #[doc = $meaning]
            pub(crate) const $konst: LogEvent = LogEvent {
                name: $name,
                levels: &[$(Level::$level),+],
                fields: &[$(($field, $fmeaning)),*],
                meaning: $meaning,
            };
        )*
        /// Every log event, in the order the reference lists them.
        pub(crate) const ALL: &[LogEvent] = &[$($konst),*];
    };
}

log_events! {
    // Life cycle.
    DAEMON_STARTED = "daemon_started", [INFO], "The daemon bound its queues and judges packets.", {
        "queue": "first queue number", "queues": "number of queues", "mode": "enforce or monitor",
        "fail_open": "whether the kernel accepts packets when the queue is full",
        "peers_restored": "suspect peers loaded from the state file",
        "locks_restored": "time-locks loaded from the state file",
        "expiries_clamped": "restored expiries shortened to their configured maximum (a clock step or an edited file)",
        "bound_ms": "milliseconds from start to queues bound", "state_file": "the state file",
        "config": "the configuration file, or (defaults)",
    };
    DAEMON_STOPPING = "daemon_stopping", [INFO], "SIGTERM/SIGINT: saving state, then releasing the queues.", {};
    QUEUE_RELEASED = "queue_released", [INFO],
        "The first queue was released at shutdown, after the final save: packets now pass per the rules' bypass.",
        { "queues": "the queue numbers" };
    DAEMON_STOPPED = "daemon_stopped", [INFO], "The daemon exits.", {
        "released_ms": "time from releasing the queues to exit: the part of a restart's unjudged window this process owns",
    };
    CONFIG_RELOADED = "config_reloaded", [INFO], "SIGHUP: the new configuration is in force; state kept.", {
        "changed": "the dotted keys the file changed (comma-separated; restart-only ones wait, see config_restart_required)",
        "peers": "suspect peers", "locks": "time-locks",
    };
    CONFIG_RELOAD_FAILED = "config_reload_failed", [ERROR], "SIGHUP: the new configuration was rejected; the old one stays.", {
        "error": "why, with file:line:column",
    };
    CONFIG_RESTART_REQUIRED = "config_restart_required", [WARN],
        "A reload changed keys that only a restart applies (the queues and their socket options, busy_poll_us, the control socket); their old values stay in force.", {
        "keys": "the keys that wait for a restart (comma-separated)", "old_queue": "queue in force", "new_queue": "queue in the file",
        "old_queues": "queues in force", "new_queues": "queues in the file",
    };
    CLOCK_STEP = "clock_step", [WARN],
        "The wall clock was stepped (by more than 2 s between two housekeeping ticks). Expiries run on the monotonic clock and do not move; only the dates shown for them do.", {
        "step_ms": "how far the wall clock moved against the monotonic clock (negative: back)",
        "wall_before": "RFC 3339 wall time at the previous tick", "wall_now": "RFC 3339 wall time now",
    };
    LAN_INTERFACE_MISSING = "lan_interface_missing", [WARN],
        "A lan_interfaces entry does not exist; no forged pong leaves through it.", { "interface": "its name" };

    // Detection.
    CLIENT_IDENTIFIED = "client_identified", [INFO], "An inside client was seen using FastTrack and is time-locked.", {
        "client": "inside address", "peer": "ip:port it talked to", "reason": "the tell (a reason code)",
        "locked_until": "RFC 3339 UTC end of the time-lock",
    };
    PEER_IDENTIFIED = "peer_identified", [INFO], "An outside host entered the suspect-peer cache.", {
        "peer": "ip:port (or ip)", "client": "the inside client it talked to, or -", "reason": "the tell",
    };
    PACKET_DROPPED = "packet_dropped", [INFO],
        "A packet was dropped (or would be, in monitor mode); rate-limited per pair by log.drop_burst / log.drop_interval_seconds and globally by log.drop_max_per_second.", {
        "client": "inside end of the flow", "peer": "outside end (ip:port)", "reason": "the reason code",
        "proto": "tcp or udp", "src": "packet source", "dst": "packet destination",
        "enforced": "false in monitor mode", "suppressed": "drops of this pair not logged since the last line",
    };
    CLIENT_RELEASED = "client_released", [INFO], "A time-lock ended.", { "client": "inside address" };
    FLOW_CLASSIFIED = "flow_classified", [DEBUG], "A flow was classified as FastTrack.", {
        "proto": "tcp or udp", "client": "inside end", "peer": "outside end", "reason": "the tell",
    };
    ENGINE_EVENT = "engine_event", [DEBUG], "An engine event this build has no catalogue entry for (a newer library).", {
        "detail": "the event, debug-formatted",
    };
    PROBE_SENT = "probe_sent", [DEBUG], "A half-expiry probe was forged to a locked client.", { "client": "inside address" };

    // Operator actions.
    OPERATOR_RELEASE = "operator_release", [INFO], "ftwall ctl release: a lock or suspect peer was forgotten.", {
        "addr": "the address", "client_released": "a lock was lifted", "peer_forgotten": "a suspect peer was dropped",
        "uid": "the caller",
    };
    OPERATOR_BAN = "operator_ban", [INFO], "ftwall ctl ban.", {
        "addr": "the address", "until": "RFC 3339, or until unbanned", "inside": "whether addr is in lan",
        "uid": "the caller",
    };
    OPERATOR_UNBAN = "operator_unban", [INFO], "ftwall ctl unban.", { "addr": "the address", "uid": "the caller" };
    BAN_EXPIRED = "ban_expired", [INFO], "A timed operator ban ended.", { "addr": "the address" };

    // Cluster (Redis).
    CLUSTER_CONNECTED = "cluster_connected", [INFO], "The first connection to Redis is up and the prefix was read: state is shared with the other gateways.", {
        "url": "the Redis URL", "node_id": "this gateway's name", "gateways": "other gateways heard from so far",
    };
    CLUSTER_UNAVAILABLE = "cluster_unavailable", [WARN], "Redis cannot be reached or failed a call: this gateway keeps judging with what it knows and retries with backoff; logged once until cluster_recovered.", {
        "url": "the Redis URL", "error": "why",
    };
    CLUSTER_RECOVERED = "cluster_recovered", [INFO], "Redis is reachable again: the prefix was read again and this gateway's own entries written back.", {
        "url": "the Redis URL", "gateways": "other gateways heard from so far",
    };
    CLUSTER_GARBAGE = "cluster_garbage", [WARN], "A value or message from Redis was ignored (another type than a string, oversized, unparsable or inconsistent); rate-limited, counted in cluster_garbage.", {
        "key": "the key or channel", "reason": "what is wrong with it", "total": "values ignored so far",
    };

    // Control socket.
    CONTROL_LISTENING = "control_listening", [INFO], "The ftwall ctl socket is ready.", { "socket": "its path" };
    CONTROL_UNAVAILABLE = "control_unavailable", [WARN], "The control socket could not be opened; the daemon runs on without ftwall ctl.", {
        "socket": "its path", "error": "why",
    };
    CONTROL_REFUSED = "control_refused", [WARN], "A caller that is neither root nor the daemon's user was refused.", { "uid": "the caller" };
    CONTROL_ERROR = "control_error", [WARN, DEBUG], "accept() on the control socket failed (warn), or one request failed (debug).", {
        "error": "why",
    };

    // The queue and the kernel.
    QUEUE_OVERFLOW = "queue_overflow", [WARN],
        "The kernel could not queue or deliver every packet: accepted unjudged if fail_open, else dropped.", {
        "socket_overflows": "ENOBUFS on the queue socket (total)", "queue_dropped": "packets dropped by a full queue since the last line",
        "user_dropped": "packets the socket could not take since the last line", "queue_total": "packets waiting",
        "fail_open": "whether they were accepted",
    };
    QUEUE_ERROR = "queue_error", [WARN], "Netlink error receiving from the queue (at most every 10 s).", { "error": "why", "total": "errors so far" };
    VERDICT_ERROR = "verdict_error", [WARN], "The kernel refused a verdict (at most every 10 s).", { "error": "why", "total": "errors so far" };
    QUEUE_UNBIND_FAILED = "queue_unbind_failed", [DEBUG],
        "Unbinding a queue at shutdown failed (the kernel releases it when the socket closes anyway).", {
        "queue": "queue number", "error": "why",
    };
    NOTIFY_FAILED = "notify_failed", [DEBUG], "A systemd notification (READY, WATCHDOG, STATUS...) could not be sent.", {
        "error": "why",
    };
    QUEUE_OPTION_UNSUPPORTED = "queue_option_unsupported", [WARN], "The kernel refused a queue option (e.g. fail-open).", {
        "queue": "queue number", "detail": "which option and why",
    };
    OFFLOAD_RULES_MISSING = "offload_rules_missing", [ERROR],
        "A packet came back carrying ftwall's offload mark: the rules that consume it are missing. Offload is off until restart; nothing loops.", {
        "mark": "the mark", "packet_id": "the queue's packet id",
    };
    HEALTH_CHANGED = "health_changed", [WARN, INFO], "The health state changed (warn when it worsens, info when back to ok).", {
        "state": "ok, degraded or stalled", "previous": "the state before", "reasons": "why (see Health)",
    };

    // Side effects.
    SPOOF_UNAVAILABLE = "spoof_unavailable", [WARN], "Forged pongs are off for an address family (no CAP_NET_RAW).", { "detail": "why" };
    SPOOF_ERROR = "spoof_error", [WARN], "A forged pong or probe was not sent (counted, never retried; at most every 10 s).", {
        "error": "why", "to": "its destination", "total": "errors so far",
    };
    KERNEL_SET_ENABLED = "kernel_set_enabled", [INFO], "Locks, suspect peers and allowed ports are mirrored into the kernel sets.", {
        "backend": "nft or ipset", "locks": "locks mirrored", "peers": "peers mirrored",
    };
    KERNEL_SET_FAILED = "kernel_set_failed", [WARN], "nft or ipset could not update the kernel sets (at most every 60 s).", {
        "failed": "updates that failed", "total": "failures so far",
    };
    KERNEL_SETS_UNAVAILABLE = "kernel_sets_unavailable", [WARN],
        "kernel_sets = \"auto\" found neither the nft sets nor the ipsets (once per process).", {};
    CLIENT_DIR_ERROR = "client_dir_error", [WARN], "The client directory could not be created or updated.", {
        "dir": "the directory", "error": "why",
    };

    // Files.
    STATE_SAVED = "state_saved", [INFO], "The state file was written.", {
        "file": "its path", "peers": "suspect peers", "locks": "time-locks", "bans": "operator bans",
    };
    STATE_SAVE_FAILED = "state_save_failed", [ERROR], "The state file could not be written (retried; at most every 60 s).", {
        "file": "its path", "error": "why",
    };
    STATE_CORRUPT = "state_corrupt", [ERROR], "The state file was unusable at start; the daemon starts empty.", {
        "file": "its path", "moved_to": "where the bad file was moved", "reason": "why",
    };
    STATE_DIR_UNAVAILABLE = "state_dir_unavailable", [WARN], "The state directory does not exist; nothing is saved until it does.", {
        "dir": "the directory", "error": "why",
    };
    METRICS_WRITE_FAILED = "metrics_write_failed", [WARN], "The metrics file could not be written (at most every 5 minutes).", {
        "file": "its path", "error": "why",
    };
    COUNTERS = "counters", [INFO],
        "Periodic summary: the engine's figures and every daemon counter of ftwall ctl status as a field of its own.", {
        "packets": "packets judged", "accepted": "accepted", "dropped": "dropped", "by_reason": "reason=count list",
        "locked_clients": "time-locked clients", "suspect_peers": "suspect peers", "flows": "tracked flows",
        "health": "ok, degraded or stalled", "*": "every daemon counter (see the metrics)",
    };
}

/// Logs one engine [`Event`] as its catalogue event: the one place engine events become log
/// lines.
pub(crate) fn engine_event(event: Event) {
    match event {
        Event::ClientIdentified { client, peer, reason, locked_until } => {
            log_event!(
                CLIENT_IDENTIFIED,
                client = %client,
                peer = %peer,
                reason = reason.as_str(),
                locked_until = %locked_until.map_or("none (time-lock disabled)".to_string(), |t| Clock::read().rfc3339(t)),
                "FastTrack client identified"
            )
        }
        Event::PeerIdentified { peer, port, client, reason } => {
            log_event!(
                PEER_IDENTIFIED,
                peer = %port.map_or(peer.to_string(), |p| SocketAddr::new(peer, p).to_string()),
                client = %client.map_or("-".to_string(), |c| c.to_string()),
                reason = reason.as_str(),
                "FastTrack peer identified"
            )
        }
        Event::ClientReleased { client } => {
            log_event!(CLIENT_RELEASED, client = %client, "time-lock ended")
        }
        Event::BanExpired { addr } => {
            log_event!(BAN_EXPIRED, addr = %addr, "operator ban expired")
        }
        Event::FlowClassified { proto, client, peer, reason } => {
            log_event!(
                FLOW_CLASSIFIED,
                proto = proto.as_str(),
                client = %client,
                peer = %peer,
                reason = reason.as_str(),
                "flow classified as FastTrack"
            )
        }
        // An event this build does not know how to render yet (`Event` is non-exhaustive).
        other => log_event!(ENGINE_EVENT, detail = ?other, "engine event this build does not render"),
    }
}

/// The events table of `docs/operating.md` (Markdown).
pub(crate) fn markdown() -> String {
    let mut out = String::from("| event | level | meaning | fields |\n|---|---|---|---|\n");
    for e in ALL {
        let levels: Vec<String> = e.levels.iter().map(|l| l.as_str().to_ascii_lowercase()).collect();
        let fields: Vec<String> = e.fields.iter().map(|(f, m)| format!("`{f}` ({m})")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            e.name,
            levels.join(" / "),
            e.meaning.replace('|', "\\|"),
            if fields.is_empty() { "none".to_string() } else { fields.join(", ").replace('|', "\\|") }
        ));
    }
    out
}

/// The body of `ftwall-events(7)` (roff): one tagged paragraph per event.
pub(crate) fn roff() -> String {
    let mut out = String::new();
    for e in ALL {
        let levels: Vec<String> = e.levels.iter().map(|l| l.as_str().to_ascii_lowercase()).collect();
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR ({})\n{}\n",
            e.name,
            levels.join(", "),
            roff_escape(e.meaning)
        ));
        for (f, m) in e.fields {
            out.push_str(&format!(".br\n\\fI{}\\fR: {}\n", roff_escape(f), roff_escape(m)));
        }
    }
    out
}

/// Escapes roff's specials in running text.
pub(crate) fn roff_escape(text: &str) -> String {
    let mut s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        s.insert_str(0, "\\&");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_documented() {
        let mut names: Vec<&str> = ALL.iter().map(|e| e.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate event names");
        for e in ALL {
            assert!(e.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", e.name);
            assert!(!e.meaning.is_empty() && !e.levels.is_empty(), "{}", e.name);
            assert!(e.fields.iter().all(|(f, m)| !f.is_empty() && !m.is_empty()), "{}", e.name);
        }
    }

    #[test]
    fn markdown_has_one_row_per_event() {
        let md = markdown();
        assert_eq!(md.lines().count(), ALL.len() + 2);
        assert!(md.contains("| `health_changed` | warn / info |"));
    }

    #[test]
    fn roff_escapes_dashes_and_leading_dots() {
        assert_eq!(roff_escape("fail-open"), "fail\\-open");
        assert_eq!(roff_escape(".x"), "\\&.x");
        assert!(roff().contains(".TP\n\\fBdaemon_started\\fR (info)"));
    }

    /// Captures what `f` logs, as JSON lines.
    fn captured(f: impl FnOnce()) -> Vec<serde_json::Value> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::DEBUG)
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn the_macro_logs_the_name_at_the_default_or_a_named_level() {
        let lines = captured(|| {
            let client: std::net::IpAddr = [192, 0, 2, 1].into();
            log_event!(CLIENT_RELEASED, client = %client, "time-lock ended");
            log_event!(CONTROL_ERROR at DEBUG, error = %"bad request", "control request failed");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["event"], "client_released");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["client"], "192.0.2.1");
        assert_eq!(lines[1]["event"], "control_error");
        assert_eq!(lines[1]["level"], "DEBUG");
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not catalogued at level")]
    fn an_uncatalogued_level_is_caught_in_debug_builds() {
        log_event!(CLIENT_RELEASED at ERROR, "wrong level");
    }

    #[test]
    fn levels_serialise_lowercase() {
        let json = serde_json::to_value(HEALTH_CHANGED).unwrap();
        assert_eq!(json["levels"], serde_json::json!(["warn", "info"]));
        assert!(HEALTH_CHANGED.allows(Level::INFO) && !HEALTH_CHANGED.allows(Level::DEBUG));
    }
}
