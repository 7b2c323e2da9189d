//! The control protocol between `ftwall ctl` (the client, `ctl.rs`) and the daemon's control
//! socket (the server, `daemon/control.rs`): what `socat - UNIX-CONNECT:/run/ftwall/control.sock`
//! would speak. Both sides import these types and nothing else from each other.
//!
//! The client sends one request line of at most [`MAX_REQUEST`] bytes ([`Request`]); the daemon
//! answers with one JSON object on one line ([`Answer`]) and closes the connection. Requests:
//! `status`, `clients`, `peers`, `bans`, `exempt`, `release ADDR`, `ban NET [SECONDS|-] [REASON]`
//! (NET: an address or a CIDR network; REASON: the rest of the line), `unban NET`.
//! Answers carry `"ok": true` plus the data, or `"ok": false` and `"error"`. The socket is mode
//! 0600 and the daemon also checks the caller's credentials: root or the daemon's own user.
//!
//! Invariants:
//! - [`Request::parse`] accepts exactly the lines [`Request`]'s `Display` writes (and surrounding
//!   whitespace); [`Answer::decode`] reads back exactly what [`Answer`]'s `Serialize` writes.
//! - The wire is stable: field names and their order are those of earlier releases (scripts
//!   read `ftwall ctl --json`), so an answer's fields are written in a fixed order, and the
//!   daemon's own counters follow the fixed `status` fields at the same level.

use ftwall::config::Mode;
use ipnet::IpNet;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Longest request line the daemon reads.
pub(crate) const MAX_REQUEST: usize = 1024;
/// Longest answer the client reads (a full peer and client listing is far smaller).
pub(crate) const MAX_ANSWER: u64 = 64 << 20;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Counters, state sizes and uptime.
    Status,
    /// Time-locked clients.
    Clients,
    /// Cached suspect peers.
    Peers,
    /// Operator bans.
    Bans,
    /// The `exempt` networks in force.
    Exempt,
    /// End a client's time-lock now, or forget a suspect peer.
    Release(IpAddr),
    /// Ban a network (an address: its /32 or /128), for this many seconds (at least 1) or
    /// until unbanned, with the operator's reason (checked by `check_ban_reason`).
    Ban { net: IpNet, seconds: Option<u64>, reason: Option<String> },
    /// Lift the ban of a network.
    Unban(IpNet),
}

/// Reads a network: CIDR notation, or a bare address (its /32 or /128). Host bits are kept
/// here; the engine drops them.
pub(crate) fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("not an address or a network (such as 198.51.100.0/24): {text:?}"))
}

/// A network as shown to people and scripts: a single address bare (`192.0.2.10`), any other
/// network in CIDR notation (`198.51.100.0/24`).
pub(crate) fn net_text(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// Checks a ban length in seconds: 1 to `MAX_BAN_SECONDS` (365 days).
pub(crate) fn check_ban_seconds(seconds: u64) -> Result<u64, String> {
    if (1..=ftwall::engine::MAX_BAN_SECONDS).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!(
            "a ban lasts 1 second to 365 days ({} seconds), not {seconds} seconds; without a length it lasts until unbanned",
            ftwall::engine::MAX_BAN_SECONDS
        ))
    }
}

impl Request {
    /// Parses one request line (without its newline).
    pub(crate) fn parse(line: &str) -> Result<Self, String> {
        let line = line.trim();
        // `ban` keeps the rest of its line as the reason, spaces and all.
        if let Some(rest) =
            line.strip_prefix("ban").filter(|r| r.starts_with(|c: char| c.is_ascii_whitespace()))
        {
            return Self::parse_ban(rest.trim_start());
        }
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let addr = |w: &str| w.parse::<IpAddr>().map_err(|_| format!("not an IP address: {w:?}"));
        match words.as_slice() {
            ["status"] => Ok(Self::Status),
            ["clients"] => Ok(Self::Clients),
            ["peers"] => Ok(Self::Peers),
            ["bans"] => Ok(Self::Bans),
            ["exempt"] => Ok(Self::Exempt),
            ["release", a] => Ok(Self::Release(addr(a)?)),
            ["unban", n] => Ok(Self::Unban(parse_net(n)?)),
            _ => Err(format!(
                "unknown request {line:?}; expected status, clients, peers, bans, exempt, release ADDR, ban NET [SECONDS|-] [REASON] or unban NET"
            )),
        }
    }

    /// `NET [SECONDS|-] [REASON]`, already trimmed.
    fn parse_ban(args: &str) -> Result<Self, String> {
        let split = |s: &str| -> (String, String) {
            match s.split_once(|c: char| c.is_ascii_whitespace()) {
                Some((word, rest)) => (word.to_string(), rest.trim().to_string()),
                None => (s.to_string(), String::new()),
            }
        };
        let (net, rest) = split(args);
        let net = parse_net(&net)?;
        let (length, reason) = split(&rest);
        let seconds = match length.as_str() {
            "" | "-" => None,
            s => Some(check_ban_seconds(s.parse::<u64>().map_err(|_| format!("bad seconds: {s:?}"))?)?),
        };
        let reason = (!reason.is_empty()).then_some(reason);
        if let Some(r) = &reason {
            ftwall::engine::check_ban_reason(r).map_err(|e| e.to_string())?;
        }
        Ok(Self::Ban { net, seconds, reason })
    }
}

/// The request line, without its newline.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status => f.write_str("status"),
            Self::Clients => f.write_str("clients"),
            Self::Peers => f.write_str("peers"),
            Self::Bans => f.write_str("bans"),
            Self::Exempt => f.write_str("exempt"),
            Self::Release(a) => write!(f, "release {a}"),
            Self::Ban { net, seconds, reason } => {
                write!(f, "ban {}", net_text(*net))?;
                match (seconds, reason) {
                    (None, None) => Ok(()),
                    (Some(s), None) => write!(f, " {s}"),
                    (None, Some(r)) => write!(f, " - {r}"),
                    (Some(s), Some(r)) => write!(f, " {s} {r}"),
                }
            }
            Self::Unban(n) => write!(f, "unban {}", net_text(*n)),
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `{"ok": true, "status": {...}}`
    Status(Box<Status>),
    /// `{"ok": true, "clients": [...]}`
    Clients(Vec<LockedClient>),
    /// `{"ok": true, "peers": [...]}`
    Peers(Vec<SuspectPeer>),
    /// `{"ok": true, "bans": [...]}`
    Bans(Vec<Ban>),
    /// `{"ok": true, "exempt": ["192.0.2.53", "203.0.113.0/24", ...]}`
    Exempt(Vec<String>),
    /// An operator change was made: `{"message": ..., <the change's fields>, "ok": true, "saved": ...}`.
    Done(Done),
    /// `{"ok": false, "error": ...}`
    Failed(String),
}

/// An operator change the daemon made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    /// One line for the operator, such as `192.0.2.10: ban lifted`.
    pub(crate) message: String,
    pub(crate) change: Change,
    /// The state file was written before the answer was sent.
    pub(crate) saved: bool,
}

/// What an operator change did, per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// `release`: `"client_released"`, `"peer_forgotten"`.
    Released { client_released: bool, peer_forgotten: bool },
    /// `ban`: `"until"` (RFC 3339, or null: until unbanned).
    Banned { until: Option<String> },
    /// `unban`: no further fields.
    Unbanned,
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self {
            Self::Status(status) => {
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("status", status)?;
            }
            Self::Clients(clients) => {
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("clients", clients)?;
            }
            Self::Peers(peers) => {
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("peers", peers)?;
            }
            Self::Bans(bans) => {
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("bans", bans)?;
            }
            Self::Exempt(networks) => {
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("exempt", networks)?;
            }
            Self::Done(done) => {
                map.serialize_entry("message", &done.message)?;
                match &done.change {
                    Change::Released { client_released, peer_forgotten } => {
                        map.serialize_entry("client_released", client_released)?;
                        map.serialize_entry("peer_forgotten", peer_forgotten)?;
                    }
                    Change::Banned { until } => map.serialize_entry("until", until)?,
                    Change::Unbanned => {}
                }
                map.serialize_entry("ok", &true)?;
                map.serialize_entry("saved", &done.saved)?;
            }
            Self::Failed(error) => {
                map.serialize_entry("ok", &false)?;
                map.serialize_entry("error", error)?;
            }
        }
        map.end()
    }
}

/// Every field an answer may carry; which ones must be there depends on the request.
#[derive(Deserialize)]
struct AnswerFields {
    ok: bool,
    error: Option<String>,
    status: Option<Box<Status>>,
    clients: Option<Vec<LockedClient>>,
    peers: Option<Vec<SuspectPeer>>,
    bans: Option<Vec<Ban>>,
    exempt: Option<Vec<String>>,
    message: Option<String>,
    client_released: Option<bool>,
    peer_forgotten: Option<bool>,
    until: Option<String>,
    saved: Option<bool>,
}

impl Answer {
    /// The answer line, without its newline.
    pub(crate) fn encode(&self) -> String {
        serde_json::to_string(self).expect("answers are plain data and always serialise")
    }

    /// Reads the daemon's answer to `request` (one line, without its newline).
    pub(crate) fn decode(request: &Request, line: &str) -> Result<Self, String> {
        let f: AnswerFields = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if !f.ok {
            return Ok(Self::Failed(f.error.unwrap_or_else(|| "request failed".into())));
        }
        fn need<T>(field: Option<T>, name: &str) -> Result<T, String> {
            field.ok_or_else(|| format!("the answer has no {name:?}"))
        }
        let done = |change| -> Result<Self, String> {
            Ok(Self::Done(Done {
                message: need(f.message.clone(), "message")?,
                change,
                saved: need(f.saved, "saved")?,
            }))
        };
        match request {
            Request::Status => Ok(Self::Status(need(f.status, "status")?)),
            Request::Clients => Ok(Self::Clients(need(f.clients, "clients")?)),
            Request::Peers => Ok(Self::Peers(need(f.peers, "peers")?)),
            Request::Bans => Ok(Self::Bans(need(f.bans, "bans")?)),
            Request::Exempt => Ok(Self::Exempt(need(f.exempt, "exempt")?)),
            Request::Release(_) => done(Change::Released {
                client_released: need(f.client_released, "client_released")?,
                peer_forgotten: need(f.peer_forgotten, "peer_forgotten")?,
            }),
            Request::Ban { .. } => done(Change::Banned { until: f.until }),
            Request::Unban(_) => done(Change::Unbanned),
        }
    }
}

/// `status`: the daemon at a glance. Fields in wire order; the daemon's own counters follow at
/// the same level (`flows_offloaded`, `spoofed_pongs`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Status {
    pub(crate) version: String,
    pub(crate) pid: u32,
    pub(crate) uptime_seconds: u64,
    /// RFC 3339.
    pub(crate) started_at: String,
    pub(crate) mode: Mode,
    pub(crate) health: HealthReport,
    /// `on`, `off`, or why it was turned off.
    pub(crate) offload: String,
    pub(crate) queues: Vec<u16>,
    /// The configuration file, or `(defaults)`.
    pub(crate) config: String,
    pub(crate) state_file: String,
    pub(crate) packets: u64,
    pub(crate) accepted: u64,
    pub(crate) dropped: u64,
    /// Packets per reason code, the reasons seen so far only.
    pub(crate) reasons: Counts,
    pub(crate) locked_clients: usize,
    pub(crate) suspect_peers: usize,
    pub(crate) bans: usize,
    pub(crate) flows: usize,
    /// The cluster (`cluster.enabled`), absent when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cluster: Option<ClusterStatus>,
    /// The daemon's counters, each a field of its own.
    #[serde(flatten)]
    pub(crate) counters: Counts,
}

/// What `status` shows under `cluster` (computed by `daemon/cluster.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterStatus {
    /// This gateway's name in the cluster.
    pub(crate) node_id: String,
    /// Both Redis connections (publisher and subscriber) are up.
    pub(crate) connected: bool,
    /// The other gateways heard from, by name.
    pub(crate) gateways_seen: Vec<String>,
    /// When the last full resync ended (RFC 3339).
    pub(crate) last_sync: Option<String>,
    /// Local changes waiting to be published.
    pub(crate) outbox_depth: usize,
    /// Propagation time of the last change received from another gateway, in µs (its wall
    /// clock to this one's: meaningful with NTP).
    pub(crate) last_lag_us: Option<u64>,
    /// Time from publishing this gateway's last change to receiving it back from Redis, in µs
    /// (one clock).
    #[serde(default)]
    pub(crate) last_echo_us: Option<u64>,
    /// Redis refuses this gateway's writes (full, read-only, not permitted): the server's last
    /// words; absent while writes are accepted. `connected` stays true: Redis answers.
    #[serde(default)]
    pub(crate) writes_refused: Option<String>,
}

/// Named counts in a fixed order; a JSON object on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Counts(pub(crate) Vec<(String, u64)>);

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(name, n)| (name, n)))
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = Counts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of counts")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counts, A::Error> {
                let mut counts = Vec::new();
                while let Some(entry) = map.next_entry::<String, u64>()? {
                    counts.push(entry);
                }
                Ok(Counts(counts))
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
}

/// What `status` shows under `health` (computed by `daemon/health.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HealthReport {
    pub(crate) state: HealthState,
    pub(crate) reasons: Vec<String>,
    pub(crate) queues: Vec<QueueHealth>,
}

impl Default for HealthReport {
    fn default() -> Self {
        Self { state: HealthState::Ok, reasons: Vec::new(), queues: Vec::new() }
    }
}

/// Overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HealthState {
    Ok,
    Degraded,
    Stalled,
}

impl HealthState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Degraded => "degraded",
            Self::Stalled => "stalled",
        }
    }

    /// The metric value: 0 ok, 1 degraded, 2 stalled.
    pub(crate) fn level(self) -> u8 {
        self as u8
    }
}

/// One queue as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueHealth {
    pub(crate) queue: u16,
    /// Packets received by the daemon since start.
    pub(crate) received: u64,
    /// Packets waiting in the kernel queue (None: `/proc` unreadable).
    pub(crate) waiting: Option<u64>,
    /// `waiting` as a share of `queue_maxlen`, in percent.
    pub(crate) occupancy_percent: Option<u64>,
    /// Packets the kernel has numbered that the daemon has not received yet.
    pub(crate) unread: Option<u64>,
    /// Milliseconds since the last verdict on this queue (None: none yet).
    pub(crate) since_last_verdict_ms: Option<u64>,
    /// Age of the last packet when the daemon received it, in microseconds (None: unknown).
    pub(crate) verdict_lag_us: Option<u64>,
}

/// Why and since when something was learned: shared by the rows of `clients` and `peers`.
/// Every field is omitted when unknown (entries restored from older state files), so older
/// answers read the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Provenance {
    /// The tell (a reason code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The flow it was seen on: `proto inside > outside`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flow: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first_seen: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_seen: Option<String>,
}

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LockedClient {
    /// The last address of the client seen.
    pub(crate) client: IpAddr,
    /// RFC 3339.
    pub(crate) locked_until: String,
    pub(crate) remaining_seconds: u64,
    /// The client's FastTrack UDP port, when known.
    pub(crate) port: Option<u16>,
    /// The network the lock covers when it is more than `client` (an IPv6 prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<String>,
    /// The gateway of the cluster it was learned from (absent: learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<String>,
    #[serde(flatten)]
    pub(crate) why: Provenance,
}

/// One row of `peers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SuspectPeer {
    pub(crate) peer: IpAddr,
    pub(crate) port: Option<u16>,
    /// RFC 3339 (null: forgotten only by eviction).
    pub(crate) expires: Option<String>,
    /// `strong` (blocks every host, every port) or `weak` (blocks `client` to `port` only);
    /// omitted by daemons that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) strength: Option<String>,
    /// The inside client whose flow revealed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client: Option<IpAddr>,
    /// The gateway of the cluster it was learned from (absent: learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<String>,
    #[serde(flatten)]
    pub(crate) why: Provenance,
}

/// One row of `bans`. The fields after `until` are omitted when unknown (bans from older state
/// files, older daemons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ban {
    /// The banned network: a single address bare, any other in CIDR notation ([`net_text`]).
    pub(crate) addr: String,
    /// RFC 3339 (null: until unbanned).
    pub(crate) until: Option<String>,
    /// Seconds until it ends (absent: until unbanned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remaining_seconds: Option<u64>,
    /// The operator's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The uid of the operator who banned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by_uid: Option<u32>,
    /// When it was banned, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<String>,
    /// The gateway of the cluster it was learned from (absent: learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A status with every field set, and its line as earlier releases wrote it.
    pub(crate) fn sample_status() -> (Status, &'static str) {
        let status = Status {
            version: "0.1.0 (v0.1.0-5-gabc, 2026-12-01)".into(),
            pid: 4242,
            uptime_seconds: 75,
            started_at: "2026-12-02T06:00:00Z".into(),
            mode: Mode::Enforce,
            health: HealthReport {
                state: HealthState::Degraded,
                reasons: vec!["queue 0: kernel dropped 3 packets".into()],
                queues: vec![QueueHealth {
                    queue: 0,
                    received: 10,
                    waiting: Some(0),
                    occupancy_percent: Some(0),
                    unread: Some(0),
                    since_last_verdict_ms: Some(12),
                    verdict_lag_us: None,
                }],
            },
            offload: "on".into(),
            queues: vec![0, 1],
            config: "/etc/ftwall/ftwall.toml".into(),
            state_file: "/var/lib/ftwall/state.json".into(),
            packets: 10,
            accepted: 7,
            dropped: 3,
            reasons: Counts(vec![("udp_ping".into(), 2), ("tcp_opener".into(), 1)]),
            locked_clients: 1,
            suspect_peers: 2,
            bans: 0,
            flows: 5,
            cluster: None,
            counters: Counts(vec![("flows_offloaded".into(), 1), ("spoofed_pongs".into(), 2)]),
        };
        let line = r#"{"ok":true,"status":{"version":"0.1.0 (v0.1.0-5-gabc, 2026-12-01)","pid":4242,"uptime_seconds":75,"started_at":"2026-12-02T06:00:00Z","mode":"enforce","health":{"state":"degraded","reasons":["queue 0: kernel dropped 3 packets"],"queues":[{"queue":0,"received":10,"waiting":0,"occupancy_percent":0,"unread":0,"since_last_verdict_ms":12,"verdict_lag_us":null}]},"offload":"on","queues":[0,1],"config":"/etc/ftwall/ftwall.toml","state_file":"/var/lib/ftwall/state.json","packets":10,"accepted":7,"dropped":3,"reasons":{"udp_ping":2,"tcp_opener":1},"locked_clients":1,"suspect_peers":2,"bans":0,"flows":5,"flows_offloaded":1,"spoofed_pongs":2}}"#;
        (status, line)
    }

    #[test]
    fn request_lines_round_trip_and_reject_garbage() {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let ban = |net: &str, seconds, reason: Option<&str>| Request::Ban {
            net: parse_net(net).unwrap(),
            seconds,
            reason: reason.map(String::from),
        };
        for r in [
            Request::Status,
            Request::Clients,
            Request::Peers,
            Request::Bans,
            Request::Exempt,
            Request::Release(a),
            ban("192.0.2.10", None, None),
            ban("2001:db8::1", Some(60), None),
            ban("2001:db8::1", Some(31_536_000), None),
            ban("198.51.100.0/24", Some(1800), Some("abuse report #12")),
            ban("198.51.100.0/24", None, Some("42  is   the answer")),
            Request::Unban(IpNet::from(a)),
            Request::Unban(parse_net("2001:db8::/32").unwrap()),
        ] {
            assert_eq!(Request::parse(&r.to_string()), Ok(r.clone()));
        }
        assert_eq!(Request::parse("  status  "), Ok(Request::Status));
        assert_eq!(Request::parse("ban 192.0.2.1 30\r"), Ok(ban("192.0.2.1/32", Some(30), None)));
        // An older client's lines still read the same.
        assert_eq!(Request::parse("ban 192.0.2.10").unwrap().to_string(), "ban 192.0.2.10");
        assert_eq!(Request::parse("unban 192.0.2.10"), Ok(Request::Unban(IpNet::from(a))));
        assert_eq!(
            Request::parse("ban 198.51.100.0/24 - abuse report #12 "),
            Ok(ban("198.51.100.0/24", None, Some("abuse report #12")))
        );
        let long = "x".repeat(ftwall::engine::MAX_BAN_REASON + 1);
        for bad in [
            "",
            "stat",
            "ban",
            "bans x",
            "ban nowhere",
            "ban 192.0.2.1 0",
            "ban 192.0.2.1 -5",
            "ban 192.0.2.1 31536001",
            "ban 192.0.2.1 1h",
            "ban 198.51.100.0/33",
            "ban 198.51.100.0/24 60 bell\u{7}",
            &format!("ban 198.51.100.0/24 60 {long}"),
            "unban 198.51.100.0/24 x",
            "exempt x",
            "release 1 2",
            "status x",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Every kind of answer, the request it answers, and its line exactly as earlier releases
    /// wrote it (field names and order).
    fn answers() -> Vec<(Request, Answer, &'static str)> {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let net = |n: &str| parse_net(n).unwrap();
        let ban = |n: &str, seconds| Request::Ban { net: net(n), seconds, reason: None };
        let (status, status_line) = sample_status();
        vec![
            (Request::Status, Answer::Status(Box::new(status)), status_line),
            (
                Request::Clients,
                Answer::Clients(vec![LockedClient {
                    client: a,
                    locked_until: "2026-12-02T06:02:00Z".into(),
                    remaining_seconds: 100,
                    port: Some(3531),
                    network: None,
                    gateway: None,
                    why: Provenance::default(),
                }]),
                r#"{"ok":true,"clients":[{"client":"192.0.2.10","locked_until":"2026-12-02T06:02:00Z","remaining_seconds":100,"port":3531}]}"#,
            ),
            (
                Request::Clients,
                Answer::Clients(vec![LockedClient {
                    client: "2001:db8:1::10".parse().unwrap(),
                    locked_until: "2026-12-02T06:02:00Z".into(),
                    remaining_seconds: 100,
                    port: None,
                    network: Some("2001:db8:1::/64".into()),
                    gateway: Some("gw-a".into()),
                    why: Provenance {
                        reason: Some("tcp_opener".into()),
                        flow: Some("tcp [2001:db8:1::10]:40000 > [2001:db8:2::20]:1214".into()),
                        first_seen: Some("2026-12-02T06:00:00Z".into()),
                        last_seen: Some("2026-12-02T06:00:05Z".into()),
                    },
                }]),
                r#"{"ok":true,"clients":[{"client":"2001:db8:1::10","locked_until":"2026-12-02T06:02:00Z","remaining_seconds":100,"port":null,"network":"2001:db8:1::/64","gateway":"gw-a","reason":"tcp_opener","flow":"tcp [2001:db8:1::10]:40000 > [2001:db8:2::20]:1214","first_seen":"2026-12-02T06:00:00Z","last_seen":"2026-12-02T06:00:05Z"}]}"#,
            ),
            (
                Request::Peers,
                Answer::Peers(vec![
                    SuspectPeer {
                        peer: "198.51.100.20".parse().unwrap(),
                        port: Some(1214),
                        expires: Some("2026-12-02T07:00:00Z".into()),
                        strength: Some("weak".into()),
                        client: Some(a),
                        gateway: Some("gw-b".into()),
                        why: Provenance {
                            reason: Some("udp_ping".into()),
                            flow: Some("udp 192.0.2.10:3531 > 198.51.100.20:1214".into()),
                            first_seen: Some("2026-12-02T06:00:00Z".into()),
                            last_seen: Some("2026-12-02T06:00:00Z".into()),
                        },
                    },
                    SuspectPeer {
                        peer: "2001:db8:2::20".parse().unwrap(),
                        port: None,
                        expires: None,
                        strength: None,
                        client: None,
                        gateway: None,
                        why: Provenance::default(),
                    },
                ]),
                r#"{"ok":true,"peers":[{"peer":"198.51.100.20","port":1214,"expires":"2026-12-02T07:00:00Z","strength":"weak","client":"192.0.2.10","gateway":"gw-b","reason":"udp_ping","flow":"udp 192.0.2.10:3531 > 198.51.100.20:1214","first_seen":"2026-12-02T06:00:00Z","last_seen":"2026-12-02T06:00:00Z"},{"peer":"2001:db8:2::20","port":null,"expires":null}]}"#,
            ),
            (Request::Bans, Answer::Bans(vec![]), r#"{"ok":true,"bans":[]}"#),
            (
                Request::Bans,
                Answer::Bans(vec![Ban {
                    addr: "192.0.2.10".into(),
                    until: None,
                    remaining_seconds: None,
                    reason: None,
                    by_uid: None,
                    since: None,
                    gateway: None,
                }]),
                r#"{"ok":true,"bans":[{"addr":"192.0.2.10","until":null}]}"#,
            ),
            (
                Request::Bans,
                Answer::Bans(vec![Ban {
                    addr: "198.51.100.0/24".into(),
                    until: Some("2026-12-02T06:30:00Z".into()),
                    remaining_seconds: Some(1800),
                    reason: Some("abuse report #12".into()),
                    by_uid: Some(0),
                    since: Some("2026-12-02T06:00:00Z".into()),
                    gateway: Some("gw-a".into()),
                }]),
                r#"{"ok":true,"bans":[{"addr":"198.51.100.0/24","until":"2026-12-02T06:30:00Z","remaining_seconds":1800,"reason":"abuse report #12","by_uid":0,"since":"2026-12-02T06:00:00Z","gateway":"gw-a"}]}"#,
            ),
            (
                Request::Exempt,
                Answer::Exempt(vec!["192.0.2.53".into(), "203.0.113.0/24".into()]),
                r#"{"ok":true,"exempt":["192.0.2.53","203.0.113.0/24"]}"#,
            ),
            (
                Request::Release(a),
                Answer::Done(Done {
                    message: "192.0.2.10: time-lock ended".into(),
                    change: Change::Released { client_released: true, peer_forgotten: false },
                    saved: true,
                }),
                r#"{"message":"192.0.2.10: time-lock ended","client_released":true,"peer_forgotten":false,"ok":true,"saved":true}"#,
            ),
            (
                ban("192.0.2.10", None),
                Answer::Done(Done {
                    message: "192.0.2.10: banned until unbanned".into(),
                    change: Change::Banned { until: None },
                    saved: true,
                }),
                r#"{"message":"192.0.2.10: banned until unbanned","until":null,"ok":true,"saved":true}"#,
            ),
            (
                ban("192.0.2.10", Some(30)),
                Answer::Done(Done {
                    message: "192.0.2.10: banned until 2026-12-02T06:00:30Z".into(),
                    change: Change::Banned { until: Some("2026-12-02T06:00:30Z".into()) },
                    saved: false,
                }),
                r#"{"message":"192.0.2.10: banned until 2026-12-02T06:00:30Z","until":"2026-12-02T06:00:30Z","ok":true,"saved":false}"#,
            ),
            (
                Request::Unban(net("192.0.2.10")),
                Answer::Done(Done {
                    message: "192.0.2.10: ban lifted".into(),
                    change: Change::Unbanned,
                    saved: true,
                }),
                r#"{"message":"192.0.2.10: ban lifted","ok":true,"saved":true}"#,
            ),
            (
                Request::Unban(net("192.0.2.10")),
                Answer::Failed("192.0.2.10 is not banned".into()),
                r#"{"ok":false,"error":"192.0.2.10 is not banned"}"#,
            ),
        ]
    }

    #[test]
    fn answers_keep_the_wire_format_and_round_trip() {
        for (request, answer, line) in answers() {
            assert_eq!(answer.encode(), line, "{request}");
            assert_eq!(Answer::decode(&request, line), Ok(answer), "{request}");
        }
    }

    #[test]
    fn decoding_needs_the_fields_of_the_request_and_reads_failures_for_any() {
        let clients = r#"{"ok":true,"clients":[]}"#;
        assert_eq!(Answer::decode(&Request::Clients, clients), Ok(Answer::Clients(vec![])));
        assert!(Answer::decode(&Request::Peers, clients).unwrap_err().contains("\"peers\""));
        assert!(Answer::decode(&Request::Unban(parse_net("192.0.2.1").unwrap()), clients).is_err());
        let refused = r#"{"ok":false,"error":"permission denied"}"#;
        assert_eq!(Answer::decode(&Request::Status, refused), Ok(Answer::Failed("permission denied".into())));
        assert_eq!(
            Answer::decode(&Request::Bans, r#"{"ok":false}"#),
            Ok(Answer::Failed("request failed".into()))
        );
        assert!(Answer::decode(&Request::Status, "not json").is_err());
        // A counter that is not a count is refused, not silently dropped.
        let (_, line) = sample_status();
        let bad = line.replace(r#""spoofed_pongs":2"#, r#""spoofed_pongs":"two""#);
        assert!(Answer::decode(&Request::Status, &bad).is_err());
    }
}
