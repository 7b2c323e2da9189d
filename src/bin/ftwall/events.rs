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
use ftwall::{Event, Proto};
use serde::Serialize;
use std::collections::hash_map::RandomState;
use std::net::SocketAddr;
use std::sync::OnceLock;
use tracing::Level;

/// One log event: its name (the `event` field), levels, fields and meaning.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct LogEvent {
    /// The value of the `event` field.
    pub(crate) name: &'static str,
    /// The levels it is logged at; the first is the default.
    #[serde(serialize_with = "level_names")]
    pub(crate) levels: &'static [Level],
    /// (field, type, meaning) of every field it may carry, beside `event`, `level` and `message`.
    pub(crate) fields: &'static [(&'static str, FieldType, &'static str)],
    /// One line: when it is logged and what the operator should make of it.
    pub(crate) meaning: &'static str,
}

/// The JSON type (and format) of a log field. A field name has one type in every event that
/// carries it (a unit test checks the catalogue; `tests/common/catalogue.rs` checks every line
/// the end-to-end tests read against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FieldType {
    /// A bare IPv4 or IPv6 address as a string (`192.0.2.10`, `2001:db8::1`): never a port, no
    /// brackets.
    Ip,
    /// A TCP/UDP port: an integer 0-65535 (absent when the packet has none).
    Port,
    /// A JSON integer.
    Integer,
    /// A JSON string.
    String,
    /// A JSON boolean.
    Bool,
    /// A JSON object (written through `valuable`: see `counters`' `by_reason`).
    Object,
    /// An RFC 3339 UTC date as a string (`2026-12-02T11:33:42Z`).
    Date,
    /// A network as a string: a single address bare (`192.0.2.10`, `2001:db8::1`), any other
    /// in CIDR notation (`198.51.100.0/24`, `2001:db8::/32`).
    Net,
}

impl FieldType {
    /// Its name in the reference tables and the catalogue.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Port => "port",
            Self::Integer => "integer",
            Self::String => "string",
            Self::Bool => "bool",
            Self::Object => "object",
            Self::Date => "date",
            Self::Net => "net",
        }
    }
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
        { $($field:literal: $ftype:ident $fmeaning:literal),* $(,)? }; )*) => {
        $(
            #[doc = $meaning]
            pub(crate) const $konst: LogEvent = LogEvent {
                name: $name,
                levels: &[$(Level::$level),+],
                fields: &[$(($field, log_events!(@type $ftype), $fmeaning)),*],
                meaning: $meaning,
            };
        )*
        /// Every log event, in the order the reference lists them.
        pub(crate) const ALL: &[LogEvent] = &[$($konst),*];
    };
    (@type ip) => { FieldType::Ip };
    (@type port) => { FieldType::Port };
    (@type integer) => { FieldType::Integer };
    (@type string) => { FieldType::String };
    (@type bool) => { FieldType::Bool };
    (@type object) => { FieldType::Object };
    (@type date) => { FieldType::Date };
    (@type net) => { FieldType::Net };
}

log_events! {
    // Life cycle.
    DAEMON_STARTED = "daemon_started", [INFO], "The daemon bound its queues and judges packets.", {
        "queue": integer "first queue number", "queues": integer "number of queues",
        "mode": string "enforce or monitor (as in the configuration and ftwall ctl status)",
        "fail_open": bool "whether the kernel accepts packets when the queue is full",
        "peers_restored": integer "suspect peers loaded from the state file",
        "locks_restored": integer "time-locks loaded from the state file",
        "expiries_clamped": integer "restored expiries shortened to their configured maximum (a clock step or an edited file)",
        "bound_ms": integer "milliseconds from start to queues bound", "state_file": string "the state file",
        "config": string "the configuration file, or (defaults)",
    };
    DAEMON_STOPPING = "daemon_stopping", [INFO], "SIGTERM/SIGINT: saving state, then releasing the queues.", {};
    QUEUE_RELEASED = "queue_released", [INFO],
        "The queues were released at shutdown, after the final save: packets now pass per the rules' bypass.",
        { "queue": integer "first queue number", "queues": integer "number of queues" };
    DAEMON_STOPPED = "daemon_stopped", [INFO], "The daemon exits.", {
        "released_ms": integer "time from releasing the queues to exit: the part of a restart's unjudged window this process owns",
    };
    CONFIG_RELOADED = "config_reloaded", [INFO], "SIGHUP: the new configuration is in force; state kept.", {
        "changed": string "the dotted keys the file changed, comma-separated; empty if none (restart-only ones wait, see config_restart_required)",
        "peers": integer "suspect peers", "locks": integer "time-locks",
    };
    CONFIG_RELOAD_FAILED = "config_reload_failed", [ERROR], "SIGHUP: the new configuration was rejected; the old one stays.", {
        "error": string "why, with file:line:column",
    };
    CONFIG_RESTART_REQUIRED = "config_restart_required", [WARN],
        "A reload changed keys that only a restart applies (the queues and their socket options, busy_poll_us, the control socket); their old values stay in force.", {
        "keys": string "the keys that wait for a restart (comma-separated)", "old_queue": integer "queue in force",
        "new_queue": integer "queue in the file", "old_queues": integer "queues in force", "new_queues": integer "queues in the file",
    };
    CLOCK_STEP = "clock_step", [WARN],
        "The wall clock was stepped (by more than 2 s between two housekeeping ticks). Expiries run on the monotonic clock and do not move; only the dates shown for them do.", {
        "step_ms": integer "how far the wall clock moved against the monotonic clock (negative: back)",
        "wall_before": date "wall time at the previous tick", "wall_now": date "wall time now",
    };
    LAN_INTERFACE_MISSING = "lan_interface_missing", [WARN],
        "A lan_interfaces entry does not exist; no forged pong leaves through it.", { "interface": string "its name" };

    // Detection.
    CLIENT_IDENTIFIED = "client_identified", [INFO], "An inside client was seen using FastTrack and is time-locked.", {
        "client": ip "inside address", "peer": ip "the outside address it talked to", "peer_port": port "the peer's port",
        "reason": string "the tell (a reason code)",
        "locked_until": date "end of the time-lock (absent when the time-lock is disabled)",
    };
    PEER_IDENTIFIED = "peer_identified", [INFO], "An outside host entered the suspect-peer cache.", {
        "peer": ip "outside address", "peer_port": port "the port it was seen on (absent if none)",
        "client": ip "the inside client it talked to (absent if none)", "reason": string "the tell",
        "strength": string "strong (it spoke FastTrack itself: blocked for every host) or weak (only named: blocked for that client and port)",
    };
    LEARNING_REFUSED = "learning_refused", [WARN],
        "A suspect peer or a lock was not admitted because a bound was reached (logged at the 1st, 2nd, 4th, 8th... refusal of each kind; every one is counted).", {
        "kind": string "peer_table_full, peer_quota, lock_table_full, or for an entry from another gateway peer_remote_share or lock_remote_share", "addr": ip "the peer, or the client for a lock",
        "client": ip "the inside client whose flow it came from (absent if none)", "total": integer "refusals of this kind so far",
    };
    PACKET_DROPPED = "packet_dropped", [INFO],
        "A packet was dropped, or would have been (monitor mode: verdict accept, message \"monitor: would drop (REASON)\"); the message says what happened (a message per reason: see Reason codes). Rate-limited per pair by log.drop_burst / log.drop_interval_seconds and globally by log.drop_max_per_second.", {
        "client": ip "inside end of the flow", "peer": ip "outside end of the flow", "reason": string "the reason code",
        "verdict": string "drop, or accept in monitor mode: what was done to the packet",
        "proto": string "TCP, UDP, ICMP or OTHER (as eve.json writes it)",
        "src_ip": ip "packet source", "src_port": port "packet source port (absent without one)",
        "dest_ip": ip "packet destination", "dest_port": port "packet destination port (absent without one)",
        "flow_id": integer "the flow, the same for both directions (see Flow ids)",
        "suppressed": integer "drops of this pair not logged since the last line",
    };
    DROPS_SUPPRESSED = "drops_suppressed", [INFO],
        "A pair's packet_dropped lines were rate-limited: how many were not logged in its last window.", {
        "client": ip "inside end", "peer": ip "outside end", "suppressed": integer "drops not logged",
    };
    CLIENT_RELEASED = "client_released", [INFO], "A time-lock ended.", { "client": ip "inside address" };
    FLOW_CLASSIFIED = "flow_classified", [DEBUG], "A flow was classified as FastTrack.", {
        "proto": string "TCP or UDP", "client": ip "inside end", "peer": ip "outside end", "reason": string "the tell",
        "src_ip": ip "inside end (the flow's source)", "src_port": port "inside port",
        "dest_ip": ip "outside end", "dest_port": port "outside port",
        "flow_id": integer "the flow (as in packet_dropped)",
    };
    ENGINE_EVENT = "engine_event", [DEBUG], "An engine event this build has no catalogue entry for (a newer library).", {
        "detail": string "the event, debug-formatted",
    };
    PROBE_SENT = "probe_sent", [DEBUG], "A half-expiry probe was forged to a locked client.", {
        "client": ip "inside address", "client_port": port "its FastTrack port",
    };

    // Operator actions.
    OPERATOR_RELEASE = "operator_release", [INFO], "ftwall ctl release: a lock or suspect peer was forgotten.", {
        "addr": ip "the address", "client_released": bool "a lock was lifted", "peer_forgotten": bool "a suspect peer was dropped",
        "uid": integer "the caller",
    };
    OPERATOR_BAN = "operator_ban", [INFO], "ftwall ctl ban.", {
        "network": net "the banned network", "until": date "end of the ban (absent: until unbanned)",
        "reason": string "the operator's reason (absent: none given)",
        "inside": bool "whether the network is in lan", "uid": integer "the caller",
    };
    OPERATOR_UNBAN = "operator_unban", [INFO], "ftwall ctl unban.", {
        "network": net "the network no longer banned", "reason": string "the ban's reason (absent: none given)",
        "uid": integer "the caller",
    };
    BAN_EXPIRED = "ban_expired", [INFO], "A timed operator ban ended.", {
        "network": net "the network no longer banned", "reason": string "the ban's reason (absent: none given)",
    };

    // Cluster (Redis).
    CLUSTER_CONNECTED = "cluster_connected", [INFO], "The first connection to Redis is up and the prefix was read: state is shared with the other gateways.", {
        "url": string "the Redis URL", "node_id": string "this gateway's name", "gateways": integer "other gateways heard from so far",
    };
    CLUSTER_UNAVAILABLE = "cluster_unavailable", [WARN], "Redis cannot be reached or a call failed (a write Redis answers with a refusal is cluster_refused instead): this gateway keeps judging with what it knows and retries with backoff; logged once until cluster_recovered.", {
        "url": string "the Redis URL", "error": string "why",
    };
    CLUSTER_RECOVERED = "cluster_recovered", [INFO], "Redis is reachable again (the prefix was read again and this gateway's own entries written back), or accepts writes again after cluster_refused (the entries written back).", {
        "url": string "the Redis URL", "gateways": integer "other gateways heard from so far",
    };
    CLUSTER_REFUSED = "cluster_refused", [WARN], "Redis answered this gateway's writes with an error (full: OOM under maxmemory with noeviction; NOPERM; READONLY): not an outage, the connection is kept (READONLY: reconnected), messages and reads still flow, the write-back is retried with backoff; logged when it starts, then at most every 60 s, until cluster_recovered; counted in cluster_writes_refused.", {
        "url": string "the Redis URL", "code": string "the server's error code (OOM, NOPERM, READONLY...)", "error": string "the server's words", "total": integer "refused calls so far",
    };
    CLUSTER_BAN = "cluster_ban", [INFO], "A ban from another gateway was taken here (or changed), or one that gateway's operator lifted was lifted here.", {
        "network": net "the network", "gateway": string "the gateway it came from", "action": string "ban or unban", "reason": string "the ban's reason (absent: none given)",
    };
    CLUSTER_BAN_REFUSED = "cluster_ban_refused", [WARN], "A ban from another gateway was refused: wider than an IPv4 /16 or IPv6 /32, holding a whole lan network, overlapping an exempt network, or beyond half the ban table. Logged at the 1st, 2nd, 4th... refusal; counted in remote_bans_refused.", {
        "network": net "the network", "gateway": string "the gateway it came from", "why": string "too_wide, covers_lan, exempt or full", "total": integer "refusals so far",
    };
    CLUSTER_CLOCK_SKEW = "cluster_clock_skew", [WARN], "A change from another gateway was sent, by its clock, more than 5 s before or after this gateway's clock says now: entries cross as wall-clock dates, so they arrive shortened, lengthened or already expired. Put the gateways on NTP. At most every 60 s; counted in cluster_clock_skewed.", {
        "gateway": string "the other gateway", "skew_ms": integer "this clock minus the sender's send date, in ms (negative: the sender runs ahead)",
    };
    CLUSTER_DUPLICATE_NODE = "cluster_duplicate_node", [ERROR], "Another process publishes under this gateway's cluster.node_id (a configuration copied with its name): each ignores the other's changes as its own, so nothing is shared between them. Give every gateway its own node_id. At most every 60 s; counted in cluster_duplicate_node.", {
        "node_id": string "the name both use",
    };
    CLUSTER_GARBAGE = "cluster_garbage", [WARN], "A value or message from Redis was ignored (another type than a string, oversized, unparsable or inconsistent); rate-limited, counted in cluster_garbage.", {
        "key": string "the key or channel", "reason": string "what is wrong with it", "total": integer "values ignored so far",
    };

    // Control socket.
    CONTROL_LISTENING = "control_listening", [INFO], "The ftwall ctl socket is ready.", { "socket": string "its path" };
    CONTROL_UNAVAILABLE = "control_unavailable", [WARN], "The control socket could not be opened; the daemon runs on without ftwall ctl.", {
        "socket": string "its path", "error": string "why",
    };
    CONTROL_REFUSED = "control_refused", [WARN], "A caller that is neither root nor the daemon's user was refused.", { "uid": integer "the caller" };
    CONTROL_ERROR = "control_error", [WARN, DEBUG], "accept() on the control socket failed (warn), or one request failed (debug).", {
        "error": string "why",
    };

    // The queue and the kernel.
    QUEUE_OVERFLOW = "queue_overflow", [WARN],
        "The kernel could not queue or deliver every packet: accepted unjudged if fail_open, else dropped.", {
        "socket_overflows": integer "ENOBUFS on the queue socket (total)",
        "queue_dropped": integer "packets dropped by a full queue since the last line",
        "user_dropped": integer "packets the socket could not take since the last line", "queue_total": integer "packets waiting",
        "fail_open": bool "whether they were accepted",
    };
    QUEUE_ERROR = "queue_error", [WARN], "Netlink error receiving from the queue (at most every 10 s).", {
        "error": string "why", "total": integer "errors so far",
    };
    VERDICT_ERROR = "verdict_error", [WARN], "The kernel refused a verdict (at most every 10 s).", {
        "error": string "why", "total": integer "errors so far",
    };
    QUEUE_UNBIND_FAILED = "queue_unbind_failed", [DEBUG],
        "Unbinding a queue at shutdown failed (the kernel releases it when the socket closes anyway).", {
        "queue": integer "queue number", "error": string "why",
    };
    NOTIFY_FAILED = "notify_failed", [DEBUG], "A systemd notification (READY, WATCHDOG, STATUS...) could not be sent.", {
        "error": string "why",
    };
    QUEUE_OPTION_UNSUPPORTED = "queue_option_unsupported", [WARN], "The kernel refused a queue option (e.g. fail-open).", {
        "queue": integer "queue number", "detail": string "which option and why",
    };
    OFFLOAD_RULES_MISSING = "offload_rules_missing", [ERROR],
        "A packet came back carrying ftwall's offload mark: the rules that consume it are missing. Offload is off until restart; nothing loops.", {
        "mark": string "the mark (hexadecimal)", "packet_id": integer "the queue's packet id",
    };
    HEALTH_CHANGED = "health_changed", [WARN, INFO], "The health state changed (warn when it worsens, info when back to ok).", {
        "state": string "ok, degraded or stalled", "previous": string "the state before",
        "reasons": string "why, separated by \"; \" (see Health)",
    };

    // Side effects.
    SPOOF_UNAVAILABLE = "spoof_unavailable", [WARN], "Forged pongs are off for an address family (no CAP_NET_RAW).", {
        "detail": string "why",
    };
    SPOOF_ERROR = "spoof_error", [WARN], "A forged pong or probe was not sent (counted, never retried; at most every 10 s).", {
        "error": string "why", "dest_ip": ip "its destination", "dest_port": port "its destination port",
        "total": integer "errors so far",
    };
    KERNEL_SET_ENABLED = "kernel_set_enabled", [INFO], "Locks, suspect peers and allowed ports are mirrored into the kernel sets.", {
        "backend": string "nft or ipset", "locks": integer "locks mirrored", "peers": integer "peers mirrored",
    };
    KERNEL_SET_FAILED = "kernel_set_failed", [WARN], "nft or ipset could not update the kernel sets (at most every 60 s).", {
        "failed": integer "updates that failed", "total": integer "failures so far",
    };
    KERNEL_SETS_UNAVAILABLE = "kernel_sets_unavailable", [WARN],
        "kernel_sets = \"auto\" found neither the nft sets nor the ipsets (once per process).", {};
    CLIENT_DIR_ERROR = "client_dir_error", [WARN], "The client directory could not be created or updated.", {
        "dir": string "the directory", "error": string "why",
    };

    // Files.
    STATE_SAVED = "state_saved", [DEBUG], "The state file was written (routine: after every change, at most every save interval).", {
        "file": string "its path", "peers": integer "suspect peers", "locks": integer "time-locks", "bans": integer "operator bans",
    };
    STATE_SAVE_FAILED = "state_save_failed", [ERROR], "The state file could not be written (retried; at most every 60 s).", {
        "file": string "its path", "error": string "why",
    };
    STATE_CORRUPT = "state_corrupt", [ERROR], "The state file was unusable at start; the daemon starts empty.", {
        "file": string "its path", "moved_to": string "where the bad file was moved", "error": string "why",
    };
    STATE_DIR_UNAVAILABLE = "state_dir_unavailable", [WARN], "The state directory does not exist; nothing is saved until it does.", {
        "dir": string "the directory", "error": string "why",
    };
    METRICS_WRITE_FAILED = "metrics_write_failed", [WARN], "The metrics file could not be written (at most every 5 minutes).", {
        "file": string "its path", "error": string "why",
    };
    COUNTERS = "counters", [INFO],
        "Summary on SIGUSR1 and at exit: the engine's figures and every daemon counter of ftwall ctl status as a field of its own.", {
        "packets": integer "packets judged", "accepted": integer "accepted", "dropped": integer "dropped",
        "by_reason": object "packets per reason code, e.g. {\"clean\": 9, \"udp_ping\": 1} (reasons with none left out; as reasons in ftwall ctl status --json)",
        "locked_clients": integer "time-locked clients", "suspect_peers": integer "suspect peers", "flows": integer "tracked flows",
        "health": string "ok, degraded or stalled", "*": integer "every daemon counter (see the metrics)",
    };
}

/// Logs one engine [`Event`] as its catalogue event: the one place engine events become log
/// lines. Addresses are bare IPs (`client`, `peer`) with ports in fields of their own.
pub(crate) fn engine_event(event: Event) {
    match event {
        Event::ClientIdentified { client, peer, reason, locked_until } => {
            log_event!(
                CLIENT_IDENTIFIED,
                client = %client,
                peer = %peer.ip(),
                peer_port = peer.port(),
                reason = reason.as_str(),
                locked_until = locked_until.map(|t| tracing::field::display(Clock::read().rfc3339(t))),
                "FastTrack client identified"
            )
        }
        Event::PeerIdentified { peer, port, client, reason, strength } => {
            log_event!(
                PEER_IDENTIFIED,
                peer = %peer,
                peer_port = port,
                client = client.map(tracing::field::display),
                reason = reason.as_str(),
                strength = strength.as_str(),
                "FastTrack peer identified"
            )
        }
        Event::Refused { kind, addr, client, total } => {
            log_event!(
                LEARNING_REFUSED,
                kind = kind.as_str(),
                addr = %addr,
                client = client.map(tracing::field::display),
                total = total,
                "not learned: a bound was reached"
            )
        }
        Event::ClientReleased { client } => {
            log_event!(CLIENT_RELEASED, client = %client, "time-lock ended")
        }
        Event::RemoteBan { net, origin, lifted, reason } => {
            log_event!(
                CLUSTER_BAN,
                network = %crate::protocol::net_text(net),
                gateway = %origin,
                action = if lifted { "unban" } else { "ban" },
                reason = reason.as_deref(),
                "ban from another gateway"
            )
        }
        Event::RemoteBanRefused { net, origin, why, total } => {
            log_event!(
                CLUSTER_BAN_REFUSED,
                network = %crate::protocol::net_text(net),
                gateway = %origin,
                why = why.as_str(),
                total = total,
                "ban from another gateway refused"
            )
        }
        Event::BanExpired { net, reason } => {
            log_event!(BAN_EXPIRED, network = %crate::protocol::net_text(net), reason = reason.as_deref(), "operator ban expired")
        }
        Event::FlowClassified { proto, client, peer, reason } => {
            log_event!(
                FLOW_CLASSIFIED,
                proto = eve_proto(proto),
                client = %client.ip(),
                peer = %peer.ip(),
                src_ip = %client.ip(),
                src_port = client.port(),
                dest_ip = %peer.ip(),
                dest_port = peer.port(),
                flow_id = flow_id(proto, client, peer),
                reason = reason.as_str(),
                "flow classified as FastTrack"
            )
        }
        // An event this build does not know how to render yet (`Event` is non-exhaustive).
        other => {
            log_event!(ENGINE_EVENT, detail = %format!("{other:?}"), "engine event this build does not render")
        }
    }
}

/// The `proto` field, as Suricata's eve.json writes it: `TCP`, `UDP`, `ICMP`, or `OTHER`.
pub(crate) const fn eve_proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "TCP",
        Proto::Udp => "UDP",
        Proto::Icmp => "ICMP",
        Proto::Other => "OTHER",
    }
}

/// The `flow_id` of the flow whose inside end is `inside` and outside end `outside`: a SipHash
/// of (protocol, inside, outside) under a key drawn at random once per process (std's
/// `RandomState`), cut to 53 bits so that every JSON reader (jq, JavaScript) holds it exactly.
/// The same for both directions of a flow (the engine's flow ends do not depend on the packet's
/// direction), stable for the life of the process, and not guessable from outside, so no
/// outsider can aim traffic at a chosen id. A different process gives different ids. Computed
/// only for a line that is logged: no allocation, no lock beyond the one-time key.
pub(crate) fn flow_id(proto: Proto, inside: SocketAddr, outside: SocketAddr) -> u64 {
    use std::hash::BuildHasher;
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one((proto, inside, outside)) & FLOW_ID_MASK
}

/// `flow_id` keeps the low 53 bits (2^53 - 1 is the largest integer a JSON double holds exactly).
const FLOW_ID_MASK: u64 = (1 << 53) - 1;

/// The events table of `docs/operating.md` (Markdown).
pub(crate) fn markdown() -> String {
    let mut out = String::from("| event | level | meaning | fields |\n|---|---|---|---|\n");
    for e in ALL {
        let levels: Vec<String> = e.levels.iter().map(|l| l.as_str().to_ascii_lowercase()).collect();
        let fields: Vec<String> =
            e.fields.iter().map(|(f, t, m)| format!("`{f}` ({}: {m})", t.as_str())).collect();
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
        for (f, t, m) in e.fields {
            out.push_str(&format!(".br\n\\fI{}\\fR ({}): {}\n", roff_escape(f), t.as_str(), roff_escape(m)));
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

/// Captures what `f` logs (at debug and above), as JSON lines, through the daemon's JSON
/// formatter settings (for unit tests).
#[cfg(test)]
pub(crate) fn captured(f: impl FnOnce()) -> Vec<serde_json::Value> {
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
            assert!(e.fields.iter().all(|(f, _, m)| !f.is_empty() && !m.is_empty()), "{}", e.name);
        }
    }

    #[test]
    fn a_field_name_has_one_type_in_every_event() {
        let mut seen: std::collections::BTreeMap<&str, (FieldType, &str)> = Default::default();
        for e in ALL {
            for &(field, ty, _) in e.fields {
                let (first, first_event) = *seen.entry(field).or_insert((ty, e.name));
                assert_eq!(ty, first, "{field} is {ty:?} in {} but {first:?} in {first_event}", e.name);
            }
        }
        assert_eq!(seen["client"].0, FieldType::Ip);
        assert_eq!(seen["src_port"].0, FieldType::Port);
        assert_eq!(seen["by_reason"].0, FieldType::Object);
    }

    #[test]
    fn routine_events_are_logged_at_debug() {
        assert_eq!(STATE_SAVED.levels, &[Level::DEBUG]);
        assert_eq!(FLOW_CLASSIFIED.levels, &[Level::DEBUG]);
        assert_eq!(PROBE_SENT.levels, &[Level::DEBUG]);
    }

    #[test]
    fn flow_ids_are_per_flow_and_fit_a_json_number() {
        let inside: SocketAddr = "192.0.2.10:3000".parse().unwrap();
        let outside: SocketAddr = "198.51.100.20:1214".parse().unwrap();
        let other: SocketAddr = "198.51.100.20:1215".parse().unwrap();
        let id = flow_id(Proto::Udp, inside, outside);
        assert_eq!(id, flow_id(Proto::Udp, inside, outside), "stable within the process");
        assert_ne!(id, flow_id(Proto::Tcp, inside, outside), "the protocol is part of the flow");
        assert_ne!(id, flow_id(Proto::Udp, inside, other), "so are the ports");
        assert_ne!(id, flow_id(Proto::Udp, outside, inside), "and which end is inside");
        for port in 0..1000 {
            assert!(flow_id(Proto::Udp, inside, SocketAddr::new(outside.ip(), port)) <= FLOW_ID_MASK);
        }
        assert_eq!(FLOW_ID_MASK, 9_007_199_254_740_991);
    }

    #[test]
    fn engine_events_carry_bare_addresses_and_separate_ports() {
        let client: std::net::IpAddr = [192, 0, 2, 10].into();
        let peer: SocketAddr = "198.51.100.20:1214".parse().unwrap();
        let lines = captured(|| {
            engine_event(Event::ClientIdentified {
                client,
                peer,
                reason: ftwall::Reason::UdpPing,
                locked_until: None,
            });
            engine_event(Event::PeerIdentified {
                peer: peer.ip(),
                port: None,
                client: None,
                reason: ftwall::Reason::UdpPing,
                strength: ftwall::engine::Strength::Strong,
            });
            engine_event(Event::FlowClassified {
                proto: Proto::Udp,
                client: SocketAddr::new(client, 3000),
                peer,
                reason: ftwall::Reason::UdpPing,
            });
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0]["peer"], "198.51.100.20");
        assert_eq!(lines[0]["peer_port"], 1214);
        assert!(lines[0].get("locked_until").is_none(), "no lock, no date: {}", lines[0]);
        assert!(lines[1].get("client").is_none() && lines[1].get("peer_port").is_none(), "{}", lines[1]);
        let flow = &lines[2];
        assert_eq!(
            (flow["client"].as_str(), flow["src_ip"].as_str(), flow["src_port"].as_u64()),
            (Some("192.0.2.10"), Some("192.0.2.10"), Some(3000))
        );
        assert_eq!(
            (flow["dest_ip"].as_str(), flow["dest_port"].as_u64(), flow["proto"].as_str()),
            (Some("198.51.100.20"), Some(1214), Some("UDP"))
        );
        assert_eq!(flow["flow_id"], flow_id(Proto::Udp, SocketAddr::new(client, 3000), peer));
        for line in &lines {
            let event = ALL.iter().find(|e| line["event"] == e.name).unwrap();
            for key in line.as_object().unwrap().keys() {
                assert!(
                    ["event", "level", "message", "timestamp", "target"].contains(&key.as_str())
                        || event.fields.iter().any(|(f, _, _)| f == key),
                    "{key} in {line}"
                );
            }
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
