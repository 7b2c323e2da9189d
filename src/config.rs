//! Configuration: what the operator writes in `ftwall.toml`.
//!
//! Parsing is pure (from a string); reading the file is the shell's job. Every section has
//! defaults, so an empty document is a valid configuration. Unknown keys are errors.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use thiserror::Error;

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
#[serde(default, deny_unknown_fields)]
pub struct PeersConfig {
    /// Maximum number of suspect peers remembered (least recently used evicted first).
    pub capacity: usize,
    /// Seconds a suspect peer is remembered after it was last seen; 0 = until evicted.
    pub expire_seconds: u64,
}

impl Default for PeersConfig {
    fn default() -> Self {
        Self { capacity: 200, expire_seconds: 86_400 }
    }
}

/// Rate limits on forged pongs (`spoof_pongs`). Each limit is a token bucket refilled at its
/// rate per second with a burst of the same size; 0 turns that limit off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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

/// The per-client time-lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimelockConfig {
    /// Lock duration in seconds, re-armed by every tell from the client; 0 disables the lock.
    pub seconds: u64,
    /// Destination ports a locked client may still open TCP connections to (still inspected).
    pub allow_ports: Vec<u16>,
    /// Maximum number of locked clients tracked at once.
    pub capacity: usize,
    /// The old name of the top-level `kernel_sets` switch, still honoured: `false` turns the
    /// kernel sets off, `true` is the default (`kernel_sets = "auto"`). Unset by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_set: Option<bool>,
}

impl Default for TimelockConfig {
    fn default() -> Self {
        Self { seconds: 120, allow_ports: vec![53, 80, 443], capacity: 4096, kernel_set: None }
    }
}

/// Whether the daemon mirrors locked clients, suspect peers and `timelock.allow_ports` into the
/// kernel sets of the installed rules (nft sets or ipsets), which keep them enforced across
/// restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KernelSetsMode {
    /// Use whichever backend's sets exist (warned once if none does).
    #[default]
    Auto,
    /// Do not touch the kernel sets.
    Off,
}

/// The flow table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowsConfig {
    /// Maximum number of flows tracked (least recently used evicted first).
    pub capacity: usize,
    /// A flow idle this many seconds is forgotten and its next packet starts a new flow.
    pub idle_seconds: u64,
    /// Maximum number of flows holding a reassembly buffer (first 2 KiB per direction) at once.
    pub reassembly_capacity: usize,
}

impl Default for FlowsConfig {
    fn default() -> Self {
        Self { capacity: 65_536, idle_seconds: 300, reassembly_capacity: 4096 }
    }
}

/// Log volume controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// At most this many `packet_dropped` lines per (client, peer) pair per interval; the rest
    /// are counted and reported as `suppressed` on the next line for that pair.
    pub drop_burst: u32,
    /// The rate-limit interval in seconds.
    pub drop_interval_seconds: u64,
    /// At most this many `packet_dropped` lines per second over all pairs (daemon only); the
    /// rest are counted in `drop_lines_suppressed`.
    pub drop_max_per_second: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { drop_burst: 5, drop_interval_seconds: 60, drop_max_per_second: 50 }
    }
}

/// Handing decided flows over to the kernel (see `iptables/ftwall.rules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffloadConfig {
    /// Mark decided flows (connmark 0x1 clean, 0x2 FastTrack, mask 0x3) so the kernel handles
    /// the rest of them without queueing.
    pub enabled: bool,
    /// A UDP flow is judged clean after this many datagrams without a tell.
    pub udp_after_packets: u8,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self { enabled: true, udp_after_packets: 8 }
    }
}

/// The control socket of `ftwall ctl` (daemon only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Serve `ftwall ctl` requests.
    pub enabled: bool,
    /// The Unix socket, created with mode 0600; only root and the daemon's own user may use it.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self { enabled: true, socket: PathBuf::from("/run/ftwall/control.sock") }
    }
}

/// The Prometheus textfile (node_exporter textfile collector format; daemon only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to write the metrics (atomically: a temporary file renamed over it); unset: none.
    pub file: Option<PathBuf>,
    /// Seconds between writes (`interval` is accepted as another name).
    #[serde(alias = "interval")]
    pub interval_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { file: None, interval_seconds: 15 }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `enforce` (default) or `monitor`.
    pub mode: Mode,
    /// The inside networks. Outbound = LAN source to non-LAN destination.
    pub lan: Vec<IpNet>,
    /// `accept` (default) or `drop` packets whose headers fail validation.
    pub malformed: MalformedPolicy,
    /// Drop every new TCP/UDP flow to destination port 1214 (the old, false-positive-prone rule).
    pub port_1214_blocks: bool,
    /// When a ping from a client in `lan` to a peer outside it is dropped, ask the shell to send
    /// the client a forged pong from the peer (rate-limited by `pongs`).
    pub spoof_pongs: bool,
    /// Rate limits on forged pongs.
    pub pongs: PongsConfig,
    /// Mirror what ftwall knows into the kernel sets (daemon only; runs `nft` or `ipset`).
    pub kernel_sets: KernelSetsMode,
    /// Suspect peers.
    pub peers: PeersConfig,
    /// Client time-lock.
    pub timelock: TimelockConfig,
    /// Flow table.
    pub flows: FlowsConfig,
    /// First NFQUEUE number the daemon binds (daemon only; changing it needs a restart).
    pub queue: u16,
    /// Number of queues (`queue` .. `queue + queues - 1`), one thread each, sharing one engine;
    /// pair with `--queue-balance` rules (`iptables/install.sh LAN_IF FIRST:LAST`).
    pub queues: u16,
    /// Let the kernel accept packets when the queue or the socket buffer is full (daemon only).
    pub fail_open: bool,
    /// Kernel queue length (daemon only).
    pub queue_maxlen: u32,
    /// Bytes of each packet copied to the daemon: headers plus the first 2 KiB of payload.
    pub copy_range: u16,
    /// Accept verdicts sent as one batch message at most (1: one verdict per packet). A batch
    /// is also flushed before any drop and whenever no more packets are waiting (daemon only).
    pub verdict_batch: u32,
    /// After each packet, keep polling the queue without sleeping for this many microseconds
    /// (0: off). Saves the thread wake-up on the next packet at the price of CPU time.
    pub busy_poll_us: u32,
    /// Receive buffer of the queue socket in bytes; 0 sizes it for `queue_maxlen` packets of
    /// `copy_range` bytes (daemon only).
    pub socket_buffer: u32,
    /// Where suspect peers and locked clients are kept across restarts (daemon only).
    pub state_file: PathBuf,
    /// Optional directory with one file per locked client, named by its address (daemon only).
    pub client_dir: Option<PathBuf>,
    /// Log rate limits.
    pub log: LogConfig,
    /// Connmark offload of decided flows.
    pub offload: OffloadConfig,
    /// The `ftwall ctl` control socket.
    pub control: ControlConfig,
    /// The Prometheus textfile.
    pub metrics: MetricsConfig,
    /// The gateway's inside interfaces (daemon only). When set, a forged pong is sent only for a
    /// ping that arrived on one of them; empty: not checked (the shipped rules queue outbound
    /// packets from the LAN interface only).
    pub lan_interfaces: Vec<String>,
}

/// Default inside networks: RFC 1918, carrier-grade NAT, IPv6 unique local.
pub const DEFAULT_LAN: [&str; 5] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            lan: DEFAULT_LAN.iter().map(|s| s.parse().expect("valid default CIDR")).collect(),
            malformed: MalformedPolicy::Accept,
            port_1214_blocks: false,
            spoof_pongs: true,
            pongs: PongsConfig::default(),
            kernel_sets: KernelSetsMode::Auto,
            peers: PeersConfig::default(),
            timelock: TimelockConfig::default(),
            flows: FlowsConfig::default(),
            queue: 0,
            queues: 1,
            fail_open: true,
            queue_maxlen: 4096,
            copy_range: 2304,
            verdict_batch: 64,
            socket_buffer: 0,
            busy_poll_us: 0,
            state_file: PathBuf::from("/var/lib/ftwall/state"),
            client_dir: None,
            log: LogConfig::default(),
            offload: OffloadConfig::default(),
            control: ControlConfig::default(),
            metrics: MetricsConfig::default(),
            lan_interfaces: Vec::new(),
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// TOML syntax error, unknown key or wrong type; the message carries line and column.
    #[error("{0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid value for `{key}`: {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the configuration as TOML.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("configuration always serialises")
    }

    /// Checks value ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |key: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid { key, problem: "must be at least 1".into() })
            } else {
                Ok(())
            }
        };
        positive("peers.capacity", self.peers.capacity)?;
        if self.metrics.interval_seconds == 0 || self.metrics.interval_seconds > 86_400 {
            return Err(ConfigError::Invalid {
                key: "metrics.interval_seconds",
                problem: "must be between 1 and 86400".into(),
            });
        }
        positive("timelock.capacity", self.timelock.capacity)?;
        positive("flows.capacity", self.flows.capacity)?;
        positive("flows.reassembly_capacity", self.flows.reassembly_capacity)?;
        if self.flows.idle_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "flows.idle_seconds",
                problem: "must be at least 1".into(),
            });
        }
        if !(1..=64).contains(&self.queues) || u32::from(self.queue) + u32::from(self.queues) > 65_536 {
            return Err(ConfigError::Invalid {
                key: "queues",
                problem: "between 1 and 64 queues, numbered within 0-65535".into(),
            });
        }
        if self.queue_maxlen == 0 {
            return Err(ConfigError::Invalid { key: "queue_maxlen", problem: "must be at least 1".into() });
        }
        if self.copy_range < 128 {
            return Err(ConfigError::Invalid {
                key: "copy_range",
                problem: "at least 128 bytes are needed to see the headers".into(),
            });
        }
        if self.busy_poll_us > 10_000 {
            return Err(ConfigError::Invalid { key: "busy_poll_us", problem: "at most 10000".into() });
        }
        if !(1..=1024).contains(&self.verdict_batch) {
            return Err(ConfigError::Invalid {
                key: "verdict_batch",
                problem: "must be between 1 and 1024".into(),
            });
        }
        if self.offload.udp_after_packets == 0 {
            return Err(ConfigError::Invalid {
                key: "offload.udp_after_packets",
                problem: "must be at least 1".into(),
            });
        }
        if self.log.drop_interval_seconds == 0 {
            return Err(ConfigError::Invalid {
                key: "log.drop_interval_seconds",
                problem: "must be at least 1".into(),
            });
        }
        if self.log.drop_max_per_second == 0 {
            return Err(ConfigError::Invalid {
                key: "log.drop_max_per_second",
                problem: "must be at least 1".into(),
            });
        }
        if let Some(bad) =
            self.lan_interfaces.iter().find(|n| n.is_empty() || n.len() > 15 || n.contains(['/', '\0']))
        {
            return Err(ConfigError::Invalid {
                key: "lan_interfaces",
                problem: format!("{bad:?} is not an interface name (1-15 characters, no '/')"),
            });
        }
        for (key, rate) in [
            ("pongs.per_client_per_second", self.pongs.per_client_per_second),
            ("pongs.max_per_second", self.pongs.max_per_second),
        ] {
            if rate > 1_000_000 {
                return Err(ConfigError::Invalid { key, problem: "at most 1000000 (0 = no limit)".into() });
            }
        }
        if self.kernel_sets == KernelSetsMode::Off && self.timelock.kernel_set == Some(true) {
            return Err(ConfigError::Invalid {
                key: "timelock.kernel_set",
                problem: "`true` contradicts `kernel_sets = \"off\"`; drop the old key".into(),
            });
        }
        if self.timelock.seconds > 365 * 86_400 {
            return Err(ConfigError::Invalid { key: "timelock.seconds", problem: "at most one year".into() });
        }
        Ok(())
    }

    /// True if the daemon mirrors its state into the kernel sets: `kernel_sets = "auto"` and
    /// the old `timelock.kernel_set` not `false`.
    pub fn kernel_sets_enabled(&self) -> bool {
        self.kernel_sets == KernelSetsMode::Auto && self.timelock.kernel_set != Some(false)
    }

    /// True if `ip` belongs to one of the `lan` networks.
    pub fn is_lan(&self, ip: IpAddr) -> bool {
        self.lan.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_defaults() {
        let c = Config::from_toml_str("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.peers.capacity, 200);
        assert_eq!(c.timelock.seconds, 120);
        assert_eq!(c.timelock.allow_ports, vec![53, 80, 443]);
        assert!(c.is_lan("192.168.1.5".parse().unwrap()));
        assert!(c.is_lan("100.64.0.1".parse().unwrap()));
        assert!(c.is_lan("fd00::1".parse().unwrap()));
        assert!(!c.is_lan("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn metrics_interval_has_two_names_and_a_range() {
        let a = Config::from_toml_str("[metrics]\ninterval = 30\n").unwrap();
        let b = Config::from_toml_str("[metrics]\ninterval_seconds = 30\n").unwrap();
        assert_eq!(a.metrics.interval_seconds, 30);
        assert_eq!(a, b);
        assert!(Config::from_toml_str("[metrics]\ninterval = 0\n").is_err());
        assert!(Config::from_toml_str("busy_poll_us = 10001\n").is_err());
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let err = Config::from_toml_str("mode = \"monitor\"\n[timelock]\nsecond = 5\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("second"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn values_are_validated() {
        assert!(Config::from_toml_str("[peers]\ncapacity = 0\n").is_err());
        assert!(Config::from_toml_str("[pongs]\nmax_per_second = 1000001\n").is_err());
        assert!(Config::from_toml_str("[pongs]\nper_client_per_second = -1\n").is_err());
        let p = Config::from_toml_str("[pongs]\nper_client_per_second = 0\nmax_per_second = 0\n").unwrap();
        assert_eq!((p.pongs.per_client_per_second, p.pongs.max_per_second), (0, 0));
        assert_eq!(Config::default().pongs, PongsConfig { per_client_per_second: 200, max_per_second: 1000 });
        assert!(Config::from_toml_str("lan = [\"not a cidr\"]\n").is_err());
        assert!(Config::from_toml_str("mode = \"sometimes\"\n").is_err());
        let c =
            Config::from_toml_str("mode = \"monitor\"\nlan = [\"192.0.2.0/24\"]\n[timelock]\nseconds = 0\n")
                .unwrap();
        assert_eq!(c.mode, Mode::Monitor);
        assert_eq!(c.timelock.seconds, 0);
        assert!(c.is_lan("192.0.2.10".parse().unwrap()));
    }

    #[test]
    fn kernel_sets_default_on_and_the_old_key_still_works() {
        assert!(Config::default().kernel_sets_enabled());
        let off = Config::from_toml_str("kernel_sets = \"off\"\n").unwrap();
        assert!(!off.kernel_sets_enabled());
        let old_off = Config::from_toml_str("[timelock]\nkernel_set = false\n").unwrap();
        assert!(!old_off.kernel_sets_enabled());
        let old_on = Config::from_toml_str("[timelock]\nkernel_set = true\n").unwrap();
        assert!(old_on.kernel_sets_enabled());
        assert_eq!(Config::from_toml_str(&old_on.to_toml_string()).unwrap(), old_on);
        let both = Config::from_toml_str("kernel_sets = \"off\"\n[timelock]\nkernel_set = true\n");
        assert!(both.unwrap_err().to_string().contains("timelock.kernel_set"));
        assert!(Config::from_toml_str("kernel_sets = \"nft\"\n").is_err());
    }

    #[test]
    fn shipped_example_is_valid_and_equals_the_defaults() {
        let example = Config::from_toml_str(include_str!("../examples/ftwall.toml")).unwrap();
        assert_eq!(example, Config::default());
    }

    #[test]
    fn round_trips_through_toml() {
        let c = Config::default();
        assert_eq!(Config::from_toml_str(&c.to_toml_string()).unwrap(), c);
    }
}
