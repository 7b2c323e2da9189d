//! The engine's configuration: the keys of `ftwall.toml` that the verdict engine itself reads.
//!
//! Each layer owns its configuration. [`EngineConfig`] holds what decides verdicts (`mode`,
//! `lan`, `malformed`, `port_1214_blocks`, `spoof_pongs`, `[pongs]`, `[peers]`, `[timelock]`,
//! `[flows]`, `[offload]`); the daemon's own settings (queues, files, sockets, logs, metrics,
//! kernel sets) live in the `ftwall` binary, whose configuration embeds this one, so one file
//! serves both.
//!
//! Invariants:
//! - parsing is pure (from a string); reading the file is the shell's job;
//! - every key has a default, so an empty document is a valid configuration;
//! - unknown keys are errors that carry the key's position: the serde structs here ignore keys
//!   they do not know (the same document also carries the daemon's keys), and [`check_keys`]
//!   rejects any key that no layer's [`Key`] table names;
//! - every key the engine reads is in [`EngineConfig::KEYS`] (a test checks it against the
//!   serialised defaults), which is also the source of the generated reference, ftwall.toml(5).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::ops::Range;
use thiserror::Error;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Whether the engine enforces its verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Drop what the engine decides to drop.
    #[default]
    Enforce,
    /// Decide and log, but accept every packet.
    Monitor,
}

impl Mode {
    /// `"enforce"` or `"monitor"`: its name in the configuration, `ftwall ctl status` and the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Monitor => "monitor",
        }
    }
}

/// What to do with packets whose headers fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MalformedPolicy {
    /// Accept and count them (fail-open).
    #[default]
    Accept,
    /// Drop them (fail-closed).
    Drop,
}

/// The suspect-peer cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeersConfig {
    /// Maximum number of suspect peers remembered, in each of four separate tables (IPv4 and
    /// IPv6, strong and weak evidence): churn in one never evicts from another. A full table
    /// refuses new entries (counted) rather than evicting live ones; an expired least recently
    /// used entry is reclaimed. Entries merged from other gateways (`[cluster]`) hold at most half
    /// of each table, and this gateway's own learning evicts them from a full table.
    pub capacity: usize,
    /// Seconds a strong suspect peer is remembered after it was last seen; 0 = until evicted.
    pub expire_seconds: u64,
    /// Seconds a weak suspect peer (an address only asserted by a third party: a header value,
    /// the destination of a client's ping) is remembered after it was last asserted; 0 = until
    /// evicted. Never longer than `expire_seconds` when that is set.
    pub weak_expire_seconds: u64,
    /// Most suspect peers of each strength that the flows of one inside client (one IPv4
    /// address, one IPv6 `timelock.ipv6_prefix`) may have added and that are still remembered;
    /// further ones are refused and counted.
    pub per_client: usize,
}

impl Default for PeersConfig {
    fn default() -> Self {
        Self { capacity: 200, expire_seconds: 86_400, weak_expire_seconds: 3_600, per_client: 64 }
    }
}

/// Rate limits on forged pongs (`spoof_pongs`). Each limit is a token bucket refilled at its
/// rate per second with a burst of the same size; 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PongsConfig {
    /// Forged pongs per second to one client (burst the same); 0 = no per-client limit. The
    /// per-client buckets are kept for at most `timelock.capacity` clients (least recently used
    /// evicted; an evicted client starts again with a full bucket).
    pub per_client_per_second: u32,
    /// Forged pongs per second to all clients together (burst the same); 0 = no total limit.
    pub max_per_second: u32,
}

impl Default for PongsConfig {
    fn default() -> Self {
        // A real client pings up to ~200 supernodes at once when it starts: one burst of that
        // size per client is answered whole; a flood beyond it is capped.
        Self { per_client_per_second: 200, max_per_second: 1000 }
    }
}

/// The per-client time-lock. (The daemon also reads the old `timelock.kernel_set` switch from
/// this table; it is the daemon's key, not the engine's.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimelockConfig {
    /// Lock duration in seconds, re-armed by every tell from the client; 0 disables the lock.
    pub seconds: u64,
    /// Destination ports a locked client may still open TCP connections to (still inspected).
    pub allow_ports: Vec<u16>,
    /// Maximum number of locked clients tracked at once, in each of two separate tables (IPv4
    /// addresses, IPv6 prefixes). A full table refuses new locks (counted) rather than
    /// evicting live ones. Locks merged from other gateways (`[cluster]`) hold at most half of
    /// each table, and this gateway's own tells evict them from a full table.
    pub capacity: usize,
    /// IPv6 clients are locked by prefix of this length (a LAN host picks any address of its
    /// /64); IPv4 clients by address.
    pub ipv6_prefix: u8,
    /// Tie a lock to the source hardware address of the packet that armed it (when the shell
    /// passes one, [`crate::engine::PacketMeta`]): a new connection from any address sent with
    /// that MAC is held by the lock too (an IPv4 client escaping to IPv6, say). Off by default:
    /// every host behind a router, bridge or NAT on the LAN side shares the router's MAC, and a
    /// MAC is the sender's claim (it can change its own).
    pub mac_tie: bool,
}

impl Default for TimelockConfig {
    fn default() -> Self {
        Self { seconds: 120, allow_ports: vec![53, 80, 443], capacity: 4096, ipv6_prefix: 64, mac_tie: false }
    }
}

/// The flow table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowsConfig {
    /// Maximum number of flows tracked (least recently used evicted first).
    pub capacity: usize,
    /// A flow idle this many seconds is forgotten and its next packet starts a new flow.
    pub idle_seconds: u64,
    /// Maximum number of flows holding a TCP reassembly window (2 KiB per direction) at once.
    pub reassembly_capacity: usize,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self { capacity: 65_536, idle_seconds: 300, reassembly_capacity: 4096 }
    }
}

/// Handing decided flows over to the kernel (see `iptables/ftwall.rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OffloadConfig {
    /// Report decided flows ([`crate::Decision::settled`]) so the shell marks them (connmark
    /// 0x1 clean, 0x2 FastTrack, mask 0x3) and the kernel handles the rest without queueing.
    pub enabled: bool,
    /// A UDP flow is judged clean after this many datagrams without a tell.
    pub udp_after_packets: u8,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self { enabled: true, udp_after_packets: 8 }
    }
}

/// What the engine reads: the verdict-deciding part of `ftwall.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// `enforce` (default) or `monitor`.
    pub mode: Mode,
    /// The inside networks (see "Direction" in [`crate::engine`]).
    pub lan: Vec<IpNet>,
    /// The operator's allow list: addresses never locked as clients, never suspect as peers,
    /// and never blocked by learned state (a tell still drops its own flow; operator bans still
    /// apply). Each entry is a CIDR or a bare address (a /32 or /128).
    #[serde(deserialize_with = "networks_or_addresses")]
    pub exempt: Vec<IpNet>,
    /// `accept` (default) or `drop` packets whose headers fail validation.
    pub malformed: MalformedPolicy,
    /// Drop every new TCP/UDP flow to destination port 1214 (the old, false-positive-prone rule).
    pub port_1214_blocks: bool,
    /// When a ping from a client in `lan` to a peer outside it is dropped, ask the shell to send
    /// the client a forged pong from the peer (rate-limited by `pongs`).
    pub spoof_pongs: bool,
    /// Rate limits on forged pongs.
    pub pongs: PongsConfig,
    /// Suspect peers.
    pub peers: PeersConfig,
    /// Client time-lock.
    pub timelock: TimelockConfig,
    /// Flow table.
    pub flows: FlowsConfig,
    /// Connmark offload of decided flows.
    pub offload: OffloadConfig,
}

/// Default inside networks: RFC 1918, carrier-grade NAT, IPv6 unique local.
pub const DEFAULT_LAN: [&str; 5] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            lan: DEFAULT_LAN.iter().map(|s| s.parse().expect("valid default CIDR")).collect(),
            exempt: Vec::new(),
            malformed: MalformedPolicy::Accept,
            port_1214_blocks: false,
            spoof_pongs: true,
            pongs: PongsConfig::default(),
            peers: PeersConfig::default(),
            timelock: TimelockConfig::default(),
            flows: FlowsConfig::default(),
            offload: OffloadConfig::default(),
        }
    }
}

/// One key of the configuration file: its dotted name, its other spellings and what it does.
/// Each layer lists its own keys; [`check_keys`] accepts exactly the keys the lists name, and
/// the binary renders them (with the defaults) as the reference page ftwall.toml(5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Dotted name, `table.key` for keys in a table.
    pub name: &'static str,
    /// Other accepted spellings, dotted the same way.
    pub aliases: &'static [&'static str],
    /// What the key does, in one line.
    pub meaning: &'static str,
}

impl Key {
    const fn new(name: &'static str, meaning: &'static str) -> Self {
        Self { name, aliases: &[], meaning }
    }

    /// True if `dotted` names this key (or one of its aliases).
    pub fn is(&self, dotted: &str) -> bool {
        self.name == dotted || self.aliases.contains(&dotted)
    }
}

/// A configuration that could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// TOML syntax error or wrong type; the error carries its span.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A key no layer knows.
    #[error("unknown field `{key}`, expected one of {expected}")]
    UnknownKey {
        /// The key as written (the last part of a dotted name).
        key: String,
        /// The keys accepted where it stands, as a list of `name`s.
        expected: String,
        /// Byte range of the key in the document.
        span: Range<usize>,
    },
    /// A value is out of range.
    #[error("invalid value for `{key}`: {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl ConfigError {
    /// Byte range in the document the error is about, when known.
    pub fn span(&self) -> Option<Range<usize>> {
        match self {
            Self::Parse(e) => e.span(),
            Self::UnknownKey { span, .. } => Some(span.clone()),
            Self::Invalid { .. } => None,
        }
    }

    /// The message without position (the caller formats the position from [`Self::span`]).
    pub fn message(&self) -> String {
        match self {
            Self::Parse(e) => e.message().trim_end().to_string(),
            other => other.to_string(),
        }
    }
}

/// Parses a TOML document, keeping the position of every key and value.
pub fn parse_document(text: &str) -> Result<Spanned<DeTable<'_>>, ConfigError> {
    Ok(DeTable::parse(text)?)
}

/// Deserialises one layer's part of a parsed document. Errors name the span and, for display,
/// quote the document.
pub fn deserialize_part<'de, T: Deserialize<'de>>(
    document: &Spanned<DeTable<'de>>,
    text: &str,
) -> Result<T, ConfigError> {
    T::deserialize(toml::de::Deserializer::from(document.clone())).map_err(|mut e| {
        e.set_input(Some(text));
        ConfigError::Parse(e)
    })
}

/// Rejects every key of `document` that none of `layers` names: a top-level key is known if it
/// is a key or the table of keys (`timelock` for `timelock.seconds`); inside a known table,
/// each key must be one of the table's. A known key whose value has the wrong shape (a table
/// where a number is expected) is left to the deserialiser, which reports the type.
pub fn check_keys(document: &DeTable<'_>, layers: &[&[Key]]) -> Result<(), ConfigError> {
    let keys = || layers.iter().flat_map(|l| l.iter());
    let names = |prefix: &str| -> String {
        let mut seen: Vec<&str> = Vec::new();
        for key in keys() {
            for name in std::iter::once(&key.name).chain(key.aliases) {
                let local = match prefix {
                    "" => name.split('.').next().unwrap_or(name),
                    p => match name.strip_prefix(p).and_then(|n| n.strip_prefix('.')) {
                        Some(local) => local,
                        None => continue,
                    },
                };
                if !seen.contains(&local) {
                    seen.push(local);
                }
            }
        }
        seen.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
    };
    let unknown = |key: &Spanned<toml::de::DeString<'_>>, prefix: &str| ConfigError::UnknownKey {
        key: key.get_ref().to_string(),
        expected: names(prefix),
        span: key.span(),
    };
    for (key, value) in document.iter() {
        let name: &str = key.get_ref();
        if keys().any(|k| k.is(name)) {
            continue;
        }
        let table_prefix = format!("{name}.");
        if !keys().any(|k| std::iter::once(&k.name).chain(k.aliases).any(|n| n.starts_with(&table_prefix))) {
            return Err(unknown(key, ""));
        }
        if let DeValue::Table(table) = value.get_ref() {
            for (inner, _) in table.iter() {
                let dotted = format!("{name}.{}", inner.get_ref());
                if !keys().any(|k| k.is(&dotted)) {
                    return Err(unknown(inner, name));
                }
            }
        }
    }
    Ok(())
}

/// Largest `peers.capacity`. Every capacity has a documented maximum because [`crate::Engine::new`]
/// sizes its tables up front: a value that parses but cannot be allocated would abort the daemon
/// at start (and `check-config` builds an engine to prove the file starts). The maxima are far
/// above what a gateway needs; an engine with every capacity at its maximum starts in 27 MiB
/// (tables are sized up front, filled as traffic comes).
pub const MAX_PEERS: usize = 1 << 20;
/// Largest `timelock.capacity` (see [`MAX_PEERS`]).
pub const MAX_LOCKED_CLIENTS: usize = 1 << 20;
/// Largest `flows.capacity` (see [`MAX_PEERS`]).
pub const MAX_FLOWS: usize = 1 << 22;
/// Largest `flows.reassembly_capacity` (see [`MAX_PEERS`]); each window holds up to 2 KiB per
/// direction, so this many is at most 1 GiB of buffers at full load.
pub const MAX_REASSEMBLY_FLOWS: usize = 1 << 18;

impl EngineConfig {
    /// The keys of this layer, in the order of the shipped `ftwall.toml`.
    pub const KEYS: &'static [Key] = &[
        Key::new("mode", "\"enforce\" drops what the engine decides to drop; \"monitor\" decides and logs but accepts every packet."),
        Key::new("lan", "The inside networks: a flow's inside end (the client) is the one in them; outside hosts are peers."),
        Key::new("exempt", "Never locked, never a suspect peer, never blocked by learned state (CIDRs or addresses, inside or outside; a tell still drops its own flow, operator bans still apply)."),
        Key::new("malformed", "Packets whose headers fail validation: \"accept\" (and count them) or \"drop\" (fail closed)."),
        Key::new("port_1214_blocks", "Drop every new flow to port 1214 (the old, false-positive-prone rule); off, 1214 only corroborates."),
        Key::new("spoof_pongs", "Answer a dropped ping from a client in lan with a forged pong from the pinged peer (needs CAP_NET_RAW)."),
        Key::new("pongs.per_client_per_second", "Forged pongs per second to one client, burst the same (0: no per-client limit); buckets are kept for up to timelock.capacity clients."),
        Key::new("pongs.max_per_second", "Forged pongs per second to all clients together, burst the same (0: no total limit)."),
        Key::new("peers.capacity", "Suspect peers remembered at once, per table (IPv4, IPv6) x (strong, weak); a full table refuses new ones (counted) and never evicts a live one of this gateway's; other gateways' entries hold at most half of it and are evicted for this gateway's own; 1 to 1048576."),
        Key::new("peers.expire_seconds", "Forget a strong suspect peer (one that spoke FastTrack itself) this many seconds after it was last seen (0: only by eviction)."),
        Key::new("peers.weak_expire_seconds", "Forget a weak suspect peer (an address a header or a client's ping named) this many seconds after it was last named (0: only by eviction; at most expire_seconds)."),
        Key::new("peers.per_client", "Most live suspect peers of each strength one inside client's flows may have added (an IPv6 client is its timelock.ipv6_prefix); more are refused and counted."),
        Key::new("timelock.seconds", "Lock a client this long after its last FastTrack tell (0: no time-lock)."),
        Key::new("timelock.allow_ports", "While locked, new outbound TCP connections are dropped except to these ports (still inspected)."),
        Key::new("timelock.capacity", "Locked clients tracked at once, per family (IPv4 addresses, IPv6 prefixes); a full table refuses new locks (counted) rather than evicting live ones of this gateway's; other gateways' locks hold at most half of it and are evicted for this gateway's own; 1 to 1048576."),
        Key::new("timelock.ipv6_prefix", "Lock IPv6 clients by prefix of this length (a host picks any address of its /64); 1 to 128."),
        Key::new("timelock.mac_tie", "A lock also holds new connections sent with the LAN hardware address of the packet that armed it (ties a host's IPv4 and IPv6); only where each inside host is its own MAC (no router, bridge or NAT on the LAN side)."),
        Key::new("flows.capacity", "Flows tracked at once (least recently used evicted first); 1 to 4194304."),
        Key::new("flows.idle_seconds", "A flow idle this long is forgotten; its next packet starts a new flow."),
        Key::new("flows.reassembly_capacity", "Flows that may hold a TCP reassembly window (2 KiB per direction) while a tell waits for split, reordered or lost bytes; evictions are counted in ftwall_reassembly_evicted_total; 1 to 262144."),
        Key::new("offload.enabled", "Mark decided flows (connmark 0x1 clean, 0x2 FastTrack, mask 0x3) so the kernel handles the rest without queueing; a time-locked client's new connections are new conntrack entries and still reach the daemon."),
        Key::new("offload.udp_after_packets", "A UDP flow is judged clean after this many datagrams without a tell."),
    ];

    /// Parses and validates a document holding engine keys only (any other key is an error).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let document = parse_document(text)?;
        check_keys(document.get_ref(), &[Self::KEYS])?;
        let config: Self = deserialize_part(&document, text)?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as TOML.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("configuration always serialises")
    }

    /// Checks value ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = |key: &'static str, v: u64| {
            if v == 0 {
                Err(ConfigError::Invalid { key, problem: "must be at least 1".into() })
            } else {
                Ok(())
            }
        };
        for (key, value, max) in [
            ("peers.capacity", self.peers.capacity, MAX_PEERS),
            ("timelock.capacity", self.timelock.capacity, MAX_LOCKED_CLIENTS),
            ("flows.capacity", self.flows.capacity, MAX_FLOWS),
            ("flows.reassembly_capacity", self.flows.reassembly_capacity, MAX_REASSEMBLY_FLOWS),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError::Invalid { key, problem: format!("must be between 1 and {max}") });
            }
        }
        at_least_one("peers.per_client", self.peers.per_client as u64)?;
        if self.peers.expire_seconds > 0
            && (self.peers.weak_expire_seconds == 0
                || self.peers.weak_expire_seconds > self.peers.expire_seconds)
        {
            return Err(ConfigError::Invalid {
                key: "peers.weak_expire_seconds",
                problem: "at most peers.expire_seconds (weak evidence never outlives strong)".into(),
            });
        }
        if !(1..=128).contains(&self.timelock.ipv6_prefix) {
            return Err(ConfigError::Invalid { key: "timelock.ipv6_prefix", problem: "1 to 128".into() });
        }
        at_least_one("flows.idle_seconds", self.flows.idle_seconds)?;
        at_least_one("offload.udp_after_packets", u64::from(self.offload.udp_after_packets))?;
        for (key, rate) in [
            ("pongs.per_client_per_second", self.pongs.per_client_per_second),
            ("pongs.max_per_second", self.pongs.max_per_second),
        ] {
            if rate > 1_000_000 {
                return Err(ConfigError::Invalid { key, problem: "at most 1000000 (0 = no limit)".into() });
            }
        }
        if self.timelock.seconds > 365 * 86_400 {
            return Err(ConfigError::Invalid { key: "timelock.seconds", problem: "at most one year".into() });
        }
        Ok(())
    }

    /// True if `ip` belongs to one of the `lan` networks.
    pub fn is_lan(&self, ip: IpAddr) -> bool {
        self.lan.iter().any(|net| net.contains(&ip))
    }

    /// True if `ip` is on the operator's allow list (`exempt`).
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        !self.exempt.is_empty() && self.exempt.iter().any(|net| net.contains(&ip))
    }

    /// The network a lock on client `ip` covers: the address itself (IPv4), or its
    /// `timelock.ipv6_prefix` (IPv6).
    pub fn client_key(&self, ip: IpAddr) -> IpNet {
        let len = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => self.timelock.ipv6_prefix.clamp(1, 128),
        };
        IpNet::new(ip, len).map(|n| n.trunc()).unwrap_or_else(|_| IpNet::from(ip))
    }
}

/// The dotted names of every key a serialised configuration holds (tables one level deep).
#[cfg(test)]
fn serialized_keys(toml_text: &str) -> Vec<String> {
    let table: toml::Table = toml::from_str(toml_text).expect("a serialised configuration parses");
    let mut keys = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(t) => keys.extend(t.keys().map(|k| format!("{key}.{k}"))),
            _ => keys.push(key.clone()),
        }
    }
    keys
}

/// A list of networks where a bare address stands for its host route (`192.0.2.53` is
/// `192.0.2.53/32`).
fn networks_or_addresses<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<IpNet>().or_else(|_| text.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                serde::de::Error::custom(format!("{text:?} is neither a network (CIDR) nor an address"))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_defaults() {
        let c = EngineConfig::from_toml_str("").unwrap();
        assert_eq!(c, EngineConfig::default());
        assert_eq!(c.peers.capacity, 200);
        assert_eq!(c.timelock.seconds, 120);
        assert_eq!(c.timelock.allow_ports, vec![53, 80, 443]);
        assert!(c.is_lan("192.168.1.5".parse().unwrap()));
        assert!(c.is_lan("100.64.0.1".parse().unwrap()));
        assert!(c.is_lan("fd00::1".parse().unwrap()));
        assert!(!c.is_lan("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let text = "mode = \"monitor\"\n[timelock]\nsecond = 5\n";
        let err = EngineConfig::from_toml_str(text).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`second`") && message.contains("`seconds`"), "{message}");
        assert_eq!(&text[err.span().unwrap()], "second");
        let err = EngineConfig::from_toml_str("mode = \"monitor\"\nmodes = 1\n").unwrap_err();
        assert!(err.to_string().starts_with("unknown field `modes`, expected one of `mode`, `lan`"), "{err}");
        assert_eq!(err.span(), Some(17..22));
        // The daemon's keys are not the engine's.
        assert!(EngineConfig::from_toml_str("queue = 1\n").is_err());
        // A known key with the wrong shape is a type error, not an unknown key.
        let err = EngineConfig::from_toml_str("[mode]\nx = 1\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
    }

    #[test]
    fn type_errors_keep_their_position() {
        let text = "[peers]\ncapacity = \"many\"\n";
        let err = EngineConfig::from_toml_str(text).unwrap_err();
        assert_eq!(&text[err.span().unwrap()], "\"many\"");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn values_are_validated() {
        assert!(EngineConfig::from_toml_str("[peers]\ncapacity = 0\n").is_err());
        // Every capacity has a maximum (the engine sizes its tables up front): the largest
        // accepted value builds an engine, one more is refused.
        for (table, key, max) in [
            ("peers", "capacity", MAX_PEERS),
            ("timelock", "capacity", MAX_LOCKED_CLIENTS),
            ("flows", "capacity", MAX_FLOWS),
            ("flows", "reassembly_capacity", MAX_REASSEMBLY_FLOWS),
        ] {
            let err = EngineConfig::from_toml_str(&format!("[{table}]\n{key} = {}\n", max + 1)).unwrap_err();
            assert!(err.to_string().contains(&format!("between 1 and {max}")), "{err}");
            assert!(EngineConfig::from_toml_str(&format!("[{table}]\n{key} = 1000000000\n")).is_err());
            let config = EngineConfig::from_toml_str(&format!("[{table}]\n{key} = {max}\n")).unwrap();
            drop(crate::Engine::new(config));
        }
        assert!(EngineConfig::from_toml_str("[pongs]\nmax_per_second = 1000001\n").is_err());
        assert!(EngineConfig::from_toml_str("[pongs]\nper_client_per_second = -1\n").is_err());
        let p =
            EngineConfig::from_toml_str("[pongs]\nper_client_per_second = 0\nmax_per_second = 0\n").unwrap();
        assert_eq!((p.pongs.per_client_per_second, p.pongs.max_per_second), (0, 0));
        assert_eq!(
            EngineConfig::default().pongs,
            PongsConfig { per_client_per_second: 200, max_per_second: 1000 }
        );
        assert!(EngineConfig::from_toml_str("lan = [\"not a cidr\"]\n").is_err());
        assert!(EngineConfig::from_toml_str("mode = \"sometimes\"\n").is_err());
        let c = EngineConfig::from_toml_str(
            "mode = \"monitor\"\nlan = [\"192.0.2.0/24\"]\n[timelock]\nseconds = 0\n",
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Monitor);
        for mode in [Mode::Enforce, Mode::Monitor] {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str(), "the log says what the file says");
        }
        assert_eq!(c.timelock.seconds, 0);
        assert!(c.is_lan("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn every_serialised_key_is_in_the_key_table_and_back() {
        let mut serialised = serialized_keys(&EngineConfig::default().to_toml_string());
        let mut listed: Vec<String> = EngineConfig::KEYS.iter().map(|k| k.name.to_string()).collect();
        serialised.sort();
        listed.sort();
        assert_eq!(serialised, listed);
    }

    #[test]
    fn round_trips_through_toml() {
        let c = EngineConfig {
            mode: Mode::Monitor,
            lan: vec!["192.0.2.0/24".parse().unwrap()],
            ..EngineConfig::default()
        };
        assert_eq!(EngineConfig::from_toml_str(&c.to_toml_string()).unwrap(), c);
    }

    #[test]
    fn exempt_takes_networks_and_bare_addresses() {
        let config: EngineConfig =
            toml::from_str("exempt = [\"192.0.2.53\", \"198.51.100.0/24\", \"2001:db8::1\"]").unwrap();
        assert!(config.is_exempt("192.0.2.53".parse().unwrap()));
        assert!(!config.is_exempt("192.0.2.54".parse().unwrap()));
        assert!(config.is_exempt("198.51.100.77".parse().unwrap()));
        assert!(config.is_exempt("2001:db8::1".parse().unwrap()));
        assert!(toml::from_str::<EngineConfig>("exempt = [\"not-an-address\"]").is_err());
    }
}
