//! The daemon's configuration: the whole `ftwall.toml`, the engine's part included.
//!
//! Each layer owns its configuration: [`DaemonConfig`] holds the shell's own settings (queues,
//! files, sockets, logs, metrics, kernel sets) and embeds the library's [`EngineConfig`], whose
//! keys sit at the top level and in the same tables of the one file (`#[serde(flatten)]`).
//!
//! Invariants:
//! - [`load_config`] is the only way the binary reads a configuration (`run`, `check-config`,
//!   `config`, `ctl`, `replay` and the SIGHUP reload), so a bad file gives the same message,
//!   `FILE:LINE:COL: message`, everywhere;
//! - a key is accepted only if [`EngineConfig::KEYS`] or [`DaemonConfig::KEYS`] names it, and
//!   an error about a key or a value carries its position: each layer's part is deserialised
//!   straight from the spanned document, and the unknown-key check is written by hand
//!   ([`ftwall::config::check_keys`]) because serde's `deny_unknown_fields` does not work
//!   across `flatten`;
//! - old spellings are read and folded into the current keys: `metrics.interval` is
//!   `metrics.interval_seconds`, `timelock.kernel_set = false` is `kernel_sets = "off"`;
//! - every serialised key is in a key table and every table entry is a key (tests), so the
//!   reference page ftwall.toml(5) ([`crate::man`]) lists the whole file.

mod change;
pub(crate) mod commands;

pub(crate) use change::{ConfigChange, QueuesChange};

use anyhow::{anyhow, Context};
use ftwall::config::{check_keys, deserialize_part, parse_document, ConfigError, Key};
use ftwall::EngineConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest `queue_maxlen` (packets the kernel holds for the daemon).
pub(crate) const MAX_QUEUE_MAXLEN: u32 = 1 << 20;
/// Largest explicit `socket_buffer`, in bytes.
pub(crate) const MAX_SOCKET_BUFFER: u32 = 1 << 30;

/// The file used when `--config` is not given.
pub(crate) const DEFAULT_PATH: &str = "/etc/ftwall/ftwall.toml";

/// Whether the daemon mirrors locked clients, suspect peers and `timelock.allow_ports` into the
/// kernel sets of the installed rules (nft sets or ipsets), which keep them enforced across
/// restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KernelSetsMode {
    /// Use whichever backend's sets exist (warned once if none does).
    #[default]
    Auto,
    /// Do not touch the kernel sets.
    Off,
}

/// Log volume controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct LogConfig {
    /// At most this many `packet_dropped` lines per (client, peer) pair per interval; the rest
    /// are counted and reported as `suppressed` on the next line for that pair.
    pub(crate) drop_burst: u32,
    /// The rate-limit interval in seconds.
    pub(crate) drop_interval_seconds: u64,
    /// At most this many `packet_dropped` lines per second over all pairs; the rest are counted
    /// in `drop_lines_suppressed`.
    pub(crate) drop_max_per_second: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { drop_burst: 5, drop_interval_seconds: 60, drop_max_per_second: 50 }
    }
}

/// The control socket of `ftwall ctl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ControlConfig {
    /// Serve `ftwall ctl` requests.
    pub(crate) enabled: bool,
    /// The Unix socket, created with mode 0600; only root and the daemon's own user may use it.
    pub(crate) socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        Self { enabled: true, socket: PathBuf::from("/run/ftwall/control.sock") }
    }
}

/// The Prometheus textfile (node_exporter textfile collector format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct MetricsConfig {
    /// Where to write the metrics (atomically: a temporary file renamed over it); unset: none.
    pub(crate) file: Option<PathBuf>,
    /// Seconds between writes (`interval` is the old name).
    #[serde(alias = "interval")]
    pub(crate) interval_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { file: None, interval_seconds: 15 }
    }
}

/// What a gateway shares with the others of its cluster (`cluster.share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Shared {
    /// Client time-locks.
    Locks,
    /// Operator bans.
    Bans,
    /// Suspect peers.
    Peers,
}

impl Shared {
    /// The name of the kind in the Redis keys (`PREFIX:lock:ADDR`).
    pub(crate) fn key_name(self) -> &'static str {
        match self {
            Self::Locks => "lock",
            Self::Bans => "ban",
            Self::Peers => "peer",
        }
    }
}

/// Several gateways, one memory: locks, bans and suspect peers shared through Redis
/// (`daemon/cluster.rs`, docs/cluster.md). Every key is bound at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ClusterConfig {
    /// Share state with the other gateways.
    pub(crate) enabled: bool,
    /// The Redis server: `redis://HOST:PORT/DB` or `rediss://` (TLS); no credentials here.
    pub(crate) url: String,
    /// This gateway's name in the cluster (default: the host name).
    pub(crate) node_id: Option<String>,
    /// The prefix of every key and of the channel (one per site).
    pub(crate) prefix: String,
    /// What is shared.
    pub(crate) share: Vec<Shared>,
    /// A file (mode 0600 or 0400, owned by root or the daemon's user) holding `USER PASSWORD`
    /// or `PASSWORD` on its first line: the Redis ACL credentials.
    pub(crate) password_file: Option<PathBuf>,
    /// Changes waiting to be published, at most (more are counted and repaired by a resync).
    pub(crate) outbox: usize,
    /// Connect, read and write timeout of every Redis call, in milliseconds.
    pub(crate) timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            url: "redis://127.0.0.1:6379".into(),
            node_id: None,
            prefix: "ftwall".into(),
            share: vec![Shared::Locks, Shared::Bans, Shared::Peers],
            password_file: None,
            outbox: 8192,
            timeout_ms: 1000,
        }
    }
}

/// The daemon's keys in the engine's `[timelock]` table: only the old `kernel_set` switch,
/// read and folded into [`DaemonConfig::kernel_sets`], never written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
struct OldTimelockKeys {
    kernel_set: Option<bool>,
}

/// The whole configuration file: the engine's part and the daemon's own settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DaemonConfig {
    /// What the engine reads (top-level keys and the engine's tables).
    #[serde(flatten)]
    pub(crate) engine: EngineConfig,
    /// Mirror what ftwall knows into the kernel sets (runs `nft` or `ipset`).
    pub(crate) kernel_sets: KernelSetsMode,
    /// First NFQUEUE number the daemon binds (changing it needs a restart).
    pub(crate) queue: u16,
    /// Number of queues (`queue` .. `queue + queues - 1`), one thread each, sharing one engine;
    /// pair with `--queue-balance` rules (`iptables/install.sh LAN_IF FIRST:LAST`).
    pub(crate) queues: u16,
    /// Let the kernel accept packets when the queue or the socket buffer is full.
    pub(crate) fail_open: bool,
    /// Kernel queue length.
    pub(crate) queue_maxlen: u32,
    /// Bytes of each packet copied to the daemon: headers plus the first 2 KiB of payload.
    pub(crate) copy_range: u16,
    /// Accept verdicts sent as one batch message at most (1: one verdict per packet). A batch
    /// is also flushed before any drop and whenever no more packets are waiting.
    pub(crate) verdict_batch: u32,
    /// After each packet, keep polling the queue without sleeping for this many microseconds
    /// (0: off). Saves the thread wake-up on the next packet at the price of CPU time.
    pub(crate) busy_poll_us: u32,
    /// Receive buffer of the queue socket in bytes; 0 sizes it for `queue_maxlen` packets of
    /// `copy_range` bytes.
    pub(crate) socket_buffer: u32,
    /// Where suspect peers and locked clients are kept across restarts.
    pub(crate) state_file: PathBuf,
    /// Optional directory with one file per locked client, named by its address.
    pub(crate) client_dir: Option<PathBuf>,
    /// Log rate limits.
    pub(crate) log: LogConfig,
    /// The `ftwall ctl` control socket.
    pub(crate) control: ControlConfig,
    /// The Prometheus textfile.
    pub(crate) metrics: MetricsConfig,
    /// The gateway's inside interfaces. When set, a forged pong is sent only for a ping that
    /// arrived on one of them; empty: not checked (the shipped rules queue outbound packets
    /// from the LAN interface only).
    pub(crate) lan_interfaces: Vec<String>,
    /// Shared state with other gateways through Redis.
    pub(crate) cluster: ClusterConfig,
    /// `timelock.kernel_set`, the old spelling of `kernel_sets` (folded in by [`parse`]).
    #[serde(rename = "timelock", skip_serializing)]
    old_timelock: OldTimelockKeys,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            kernel_sets: KernelSetsMode::Auto,
            queue: 0,
            queues: 1,
            fail_open: true,
            queue_maxlen: 4096,
            // Headers and the first 2 KiB of payload: every tell fits.
            copy_range: 2304,
            verdict_batch: 64,
            busy_poll_us: 0,
            socket_buffer: 0,
            state_file: PathBuf::from("/var/lib/ftwall/state"),
            client_dir: None,
            log: LogConfig::default(),
            control: ControlConfig::default(),
            metrics: MetricsConfig::default(),
            lan_interfaces: Vec::new(),
            cluster: ClusterConfig::default(),
            old_timelock: OldTimelockKeys::default(),
        }
    }
}

impl DaemonConfig {
    /// The daemon's own keys, in the order of the shipped `ftwall.toml`.
    pub(crate) const KEYS: &'static [Key] = &[
        Key { name: "kernel_sets", aliases: &[], meaning: "Mirror locked clients, suspect peers and timelock.allow_ports into the kernel sets of the installed rules (ipsets ftwall_* or nft sets ft_*, whichever exist; runs ipset or nft), so they hold across restarts: \"auto\", or \"off\" to never touch them." },
        Key { name: "queue", aliases: &[], meaning: "First NFQUEUE number; must match the rules (restart to change)." },
        Key { name: "queues", aliases: &[], meaning: "Number of queues, queue .. queue+queues-1, one thread each, sharing one engine; install the rules with install.sh LAN_IF FIRST:LAST (restart to change)." },
        Key { name: "fail_open", aliases: &[], meaning: "Let the kernel accept packets when the queue or the socket buffer is full; false: they are dropped." },
        Key { name: "queue_maxlen", aliases: &[], meaning: "Kernel queue length, in packets; 1 to 1048576." },
        Key { name: "copy_range", aliases: &[], meaning: "Bytes copied per packet: headers plus the first 2 KiB of payload." },
        Key { name: "verdict_batch", aliases: &[], meaning: "Accept verdicts sent in batches of up to this many packets (1: one verdict per packet)." },
        Key { name: "socket_buffer", aliases: &[], meaning: "Receive buffer of the queue socket in bytes, at most 1 GiB; 0 sizes it for queue_maxlen packets." },
        Key { name: "busy_poll_us", aliases: &[], meaning: "After each packet, keep polling the queue this many microseconds instead of sleeping (0: off)." },
        Key { name: "state_file", aliases: &[], meaning: "Where suspect peers, locked clients and bans survive restarts (written atomically, mode 0640); its directory must be owned by root or the daemon's user and not writable by group or others." },
        Key { name: "client_dir", aliases: &[], meaning: "Optional directory (created 0750) with one file per locked client, named by its address; same directory rule as state_file." },
        Key { name: "lan_interfaces", aliases: &[], meaning: "The gateway's inside interfaces; when set, a forged pong is sent only for a ping that arrived on one of them." },
        Key { name: "timelock.kernel_set", aliases: &[], meaning: "The old switch for the kernel sets, still honoured: false is kernel_sets = \"off\"." },
        Key { name: "log.drop_burst", aliases: &[], meaning: "At most this many packet_dropped lines per (client, peer) pair per drop_interval_seconds." },
        Key { name: "log.drop_interval_seconds", aliases: &[], meaning: "The per-pair rate-limit interval of packet_dropped lines, in seconds." },
        Key { name: "log.drop_max_per_second", aliases: &[], meaning: "At most this many packet_dropped lines per second over all pairs; the rest are counted in drop_lines_suppressed." },
        Key { name: "control.enabled", aliases: &[], meaning: "Serve ftwall ctl requests on the control socket." },
        Key { name: "control.socket", aliases: &[], meaning: "The control socket (mode 0600: root and the daemon's user)." },
        Key { name: "metrics.file", aliases: &[], meaning: "Prometheus textfile (mode 0640), rewritten atomically every interval_seconds; unset: none; same directory rule as state_file." },
        Key { name: "metrics.interval_seconds", aliases: &["metrics.interval"], meaning: "Seconds between metrics writes." },
        Key { name: "cluster.enabled", aliases: &[], meaning: "Share locks, bans and suspect peers with the other gateways of the site through Redis (docs/cluster.md); restart to change any cluster key." },
        Key { name: "cluster.url", aliases: &[], meaning: "The Redis server, redis://HOST:PORT/DB or rediss://HOST:PORT/DB (TLS); never credentials (see password_file)." },
        Key { name: "cluster.node_id", aliases: &[], meaning: "This gateway's name in the cluster, 1-64 of A-Z a-z 0-9 . _ -; unset: the host name." },
        Key { name: "cluster.prefix", aliases: &[], meaning: "Prefix of the Redis keys and channel, one per site (the ACL grants exactly PREFIX:*)." },
        Key { name: "cluster.share", aliases: &[], meaning: "What is shared: any of \"locks\", \"bans\", \"peers\"." },
        Key { name: "cluster.password_file", aliases: &[], meaning: "File with the Redis ACL credentials, USER PASSWORD (or PASSWORD) on its first line; refused unless owned by root or the daemon's user and unreadable by group and others." },
        Key { name: "cluster.outbox", aliases: &[], meaning: "Changes waiting to be published, at most; more are counted (cluster_outbox_overflows) and repaired by a resync." },
        Key { name: "cluster.timeout_ms", aliases: &[], meaning: "Connect, read and write timeout of every Redis call, in milliseconds (the packet path never waits on Redis)." },
    ];

    /// The keys of both layers.
    pub(crate) fn all_keys() -> impl Iterator<Item = &'static Key> {
        EngineConfig::KEYS.iter().chain(Self::KEYS)
    }

    /// True if the daemon mirrors its state into the kernel sets.
    pub(crate) fn kernel_sets_enabled(&self) -> bool {
        self.kernel_sets == KernelSetsMode::Auto
    }

    /// Renders the configuration as TOML (the engine's keys and the daemon's, one file).
    pub(crate) fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("configuration always serialises")
    }

    /// Parses a document: the unknown-key check, then each layer's part, then the old
    /// spellings, then each layer's validation.
    pub(crate) fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let document = parse_document(text)?;
        check_keys(document.get_ref(), &[EngineConfig::KEYS, Self::KEYS])?;
        // The engine's part first, straight from the document, so its errors keep their
        // position. The daemon's pass re-reads the same keys through `flatten` (without
        // positions, but they were just read without error) and is given this result.
        let engine: EngineConfig = deserialize_part(&document, text)?;
        let mut config: Self = deserialize_part(&document, text)?;
        config.engine = engine;
        if let Some(old) = config.old_timelock.kernel_set.take() {
            if old && config.kernel_sets == KernelSetsMode::Off {
                return Err(ConfigError::Invalid {
                    key: "timelock.kernel_set",
                    problem: "`true` contradicts `kernel_sets = \"off\"`; drop the old key".into(),
                });
            }
            if !old {
                config.kernel_sets = KernelSetsMode::Off;
            }
        }
        config.engine.validate()?;
        config.validate()?;
        Ok(config)
    }

    /// The directories ftwall writes files into, with the key that names each: the state
    /// file's, the client directory itself, the metrics file's.
    pub(crate) fn file_directories(&self) -> Vec<(&'static str, PathBuf)> {
        let mut dirs = vec![("state_file", crate::files::parent(&self.state_file).to_path_buf())];
        if let Some(dir) = &self.client_dir {
            dirs.push(("client_dir", dir.clone()));
        }
        if let Some(file) = &self.metrics.file {
            dirs.push(("metrics.file", crate::files::parent(file).to_path_buf()));
        }
        dirs
    }

    /// The directory rule ([`crate::files::check_dir`]) for every directory ftwall writes into,
    /// for a daemon running as `uid`: the first directory that breaks it, as an error naming
    /// the key.
    pub(crate) fn check_directories(&self, uid: u32) -> anyhow::Result<()> {
        for (key, dir) in self.file_directories() {
            crate::files::check_dir(&dir, uid).map_err(|problem| {
                anyhow!(
                    "{key}: refusing to write in {}: {problem}; ftwall's files must be in a directory \
                     that only root or the daemon's user can write (docs/operating.md, \"Files and directories\")",
                    dir.display()
                )
            })?;
        }
        Ok(())
    }

    /// Checks the daemon's value ranges (the engine checks its own).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, problem: &str| Err(ConfigError::Invalid { key, problem: problem.into() });
        if self.metrics.interval_seconds == 0 || self.metrics.interval_seconds > 86_400 {
            return invalid("metrics.interval_seconds", "must be between 1 and 86400");
        }
        if !(1..=64).contains(&self.queues) || u32::from(self.queue) + u32::from(self.queues) > 65_536 {
            return invalid("queues", "between 1 and 64 queues, numbered within 0-65535");
        }
        if !(1..=MAX_QUEUE_MAXLEN).contains(&self.queue_maxlen) {
            return invalid("queue_maxlen", "must be between 1 and 1048576");
        }
        if self.socket_buffer > MAX_SOCKET_BUFFER {
            return invalid("socket_buffer", "at most 1073741824 bytes (1 GiB; 0 sizes it for queue_maxlen)");
        }
        if self.copy_range < 128 {
            return invalid("copy_range", "at least 128 bytes are needed to see the headers");
        }
        if self.busy_poll_us > 10_000 {
            return invalid("busy_poll_us", "at most 10000");
        }
        if !(1..=1024).contains(&self.verdict_batch) {
            return invalid("verdict_batch", "must be between 1 and 1024");
        }
        if self.log.drop_interval_seconds == 0 {
            return invalid("log.drop_interval_seconds", "must be at least 1");
        }
        if self.log.drop_max_per_second == 0 {
            return invalid("log.drop_max_per_second", "must be at least 1");
        }
        let cluster = &self.cluster;
        if !(cluster.url.starts_with("redis://") || cluster.url.starts_with("rediss://")) {
            return invalid("cluster.url", "must start with redis:// or rediss://");
        }
        if cluster
            .url
            .split_once("://")
            .is_some_and(|(_, rest)| rest.split('/').next().is_some_and(|h| h.contains('@')))
        {
            return invalid("cluster.url", "credentials go in cluster.password_file, never in the URL");
        }
        if let Some(id) = &cluster.node_id {
            if ftwall::engine::GatewayId::new(id).is_err() {
                return invalid("cluster.node_id", "1 to 64 of A-Z a-z 0-9 . _ -");
            }
        }
        if cluster.prefix.is_empty()
            || cluster.prefix.len() > 64
            || !cluster.prefix.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return invalid("cluster.prefix", "1 to 64 of A-Z a-z 0-9 . _ -");
        }
        if !(1..=1_048_576).contains(&cluster.outbox) {
            return invalid("cluster.outbox", "must be between 1 and 1048576");
        }
        if !(10..=60_000).contains(&cluster.timeout_ms) {
            return invalid("cluster.timeout_ms", "must be between 10 and 60000");
        }
        if let Some(bad) =
            self.lan_interfaces.iter().find(|n| n.is_empty() || n.len() > 15 || n.contains(['/', '\0']))
        {
            return Err(ConfigError::Invalid {
                key: "lan_interfaces",
                problem: format!("{bad:?} is not an interface name (1-15 characters, no '/')"),
            });
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses `text` (read from `path`) into a validated configuration; errors read
/// `PATH:LINE:COL: message` (or `PATH: message` when the error has no position).
pub(crate) fn parse(path: &Path, text: &str) -> anyhow::Result<DaemonConfig> {
    DaemonConfig::from_toml_str(text).map_err(|err| match err.span() {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            anyhow!("{}:{line}:{col}: {}", path.display(), err.message())
        }
        None => anyhow!("{}: {}", path.display(), err.message()),
    })
}

/// Which file to load: the one given, else the default path if it exists, else none (defaults).
fn resolve(path: Option<&Path>) -> Option<PathBuf> {
    match path {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// Loads the configuration: the given file (which must exist), else the default file if
/// present, else the defaults. Returns the file it read.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<(DaemonConfig, Option<PathBuf>)> {
    match resolve(path) {
        Some(file) => {
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Ok((parse(&file, &text)?, Some(file)))
        }
        None => Ok((DaemonConfig::default(), None)),
    }
}

#[cfg(test)]
mod tests;
