//! Mirrors what ftwall knows into the kernel sets of the installed rules, so that the kernel
//! keeps enforcing it while the daemon restarts, crashes or is stopped (`kernel_sets = "auto"`,
//! the default): time-locked clients, suspect peers, and `timelock.allow_ports`.
//!
//! The kernel holds each fact with the daemon's scope, never wider:
//! - a lock is the network it covers (an IPv4 address, an IPv6 prefix: `ft_clients6` is an
//!   interval set, `ftwall_clients6` a `hash:net`);
//! - a strong suspect peer is its address (every LAN host, every port);
//! - a weak suspect peer is the triple (witness client address, peer address, port), matched
//!   only for that client's new flows to that port and never on `timelock.allow_ports` (the
//!   rules check the port against the allowed set themselves). The kernel scopes a weak entry
//!   to the witness's exact address, narrower than the daemon's `timelock.ipv6_prefix`.
//!
//! Two backends, one per rule set of `iptables/`:
//! - [`Backend::Nft`]: the sets `ft_clients`, `ft_clients6`, `ft_peers`, `ft_peers6`,
//!   `ft_weak_peers`, `ft_weak_peers6` and `ft_allow_ports` of the table `inet ftwall`
//!   (`ftwall.nft`), updated by `nft -f -` scripts;
//! - [`Backend::Ipset`]: the ipsets `ftwall_clients`, `ftwall_clients6`, `ftwall_peers`,
//!   `ftwall_peers6`, `ftwall_weak_peers`, `ftwall_weak_peers6` and `ftwall_allow_ports`
//!   created by `install.sh` for `ftwall.rules` / `ftwall6.rules`, updated by
//!   `ipset restore -exist` batches.
//!
//! [`KernelSets::detect`] picks the backend whose sets exist (nft first), by running the tools
//! once: at start (and at a reload that enables mirroring), never on the packet path.
//!
//! Each change becomes a short script, queued in order. One process runs at a time and applies
//! every script queued so far (up to [`MAX_BATCH`]) as one batch, so changes to the same address
//! land in the order the engine made them; the next batch starts when the run is collected,
//! at the next change or housekeeping tick, without waiting. The batch is written to the
//! process by a helper thread, so a large one (a long `allow_ports`) never blocks the caller.
//! Nothing here waits except [`KernelSets::finish`] at shutdown. The backlog is capped at
//! [`MAX_BACKLOG`] scripts (more are refused and counted as failures). Elements carry the
//! remaining time of the lock or the peer as their timeout, so the kernel forgets them when the
//! daemon would, even if the daemon is gone.

use crate::config::DaemonConfig;
use crate::events::log_event;
use ftwall::engine::{LockEntry, PeerEntry, Snapshot, StateChange, Strength};
use ftwall::Timestamp;
use ipnet::IpNet;
use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// Most scripts applied by one run.
const MAX_BATCH: usize = 128;
/// Most scripts waiting for a run.
const MAX_BACKLOG: usize = 16_384;

/// Which kind of kernel sets the installed rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// nftables sets in `table inet ftwall`, updated with `nft -f -`.
    Nft,
    /// ipsets, updated with `ipset restore -exist`.
    Ipset,
}

impl Backend {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Nft => "nft",
            Self::Ipset => "ipset",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Self::Nft => &["-f", "-"],
            Self::Ipset => &["restore", "-exist"],
        }
    }

    fn clients(self, addr: IpAddr) -> &'static str {
        match (self, addr) {
            (Self::Nft, IpAddr::V4(_)) => "ft_clients",
            (Self::Nft, IpAddr::V6(_)) => "ft_clients6",
            (Self::Ipset, IpAddr::V4(_)) => "ftwall_clients",
            (Self::Ipset, IpAddr::V6(_)) => "ftwall_clients6",
        }
    }

    fn peers(self, addr: IpAddr) -> &'static str {
        match (self, addr) {
            (Self::Nft, IpAddr::V4(_)) => "ft_peers",
            (Self::Nft, IpAddr::V6(_)) => "ft_peers6",
            (Self::Ipset, IpAddr::V4(_)) => "ftwall_peers",
            (Self::Ipset, IpAddr::V6(_)) => "ftwall_peers6",
        }
    }

    fn weak_peers(self, addr: IpAddr) -> &'static str {
        match (self, addr) {
            (Self::Nft, IpAddr::V4(_)) => "ft_weak_peers",
            (Self::Nft, IpAddr::V6(_)) => "ft_weak_peers6",
            (Self::Ipset, IpAddr::V4(_)) => "ftwall_weak_peers",
            (Self::Ipset, IpAddr::V6(_)) => "ftwall_weak_peers6",
        }
    }

    /// The elements of a weak peer's triple (one per protocol for ipset, whose port carries
    /// it), or None when it has no witness client or port (it blocks nothing) or the families
    /// differ.
    fn weak_elements(self, peer: &PeerEntry) -> Option<Vec<String>> {
        let (client, port) = (peer.client?, peer.port?);
        if client.is_ipv4() != peer.addr.is_ipv4() {
            return None;
        }
        Some(match self {
            Self::Nft => vec![format!("{client} . {} . {port}", peer.addr)],
            Self::Ipset => {
                ["tcp", "udp"].iter().map(|p| format!("{},{p}:{port},{client}", peer.addr)).collect()
            }
        })
    }

    /// The script that puts `element` into `set`, expiring after `secs` seconds (None: never).
    fn add(self, set: &str, element: impl std::fmt::Display, secs: Option<u64>) -> String {
        let addr = element;
        match self {
            // `add` of an existing element keeps its old timeout, so the script adds (a no-op
            // if present), deletes and adds again, in one transaction (nft 1.0.6 has no
            // `destroy`).
            Self::Nft => {
                let timeout = secs.map_or(String::new(), |s| format!(" timeout {s}s"));
                format!(
                    "add element inet ftwall {set} {{ {addr} }}\n\
                     delete element inet ftwall {set} {{ {addr} }}\n\
                     add element inet ftwall {set} {{ {addr}{timeout} }}\n"
                )
            }
            // `add -exist` updates the timeout of an existing element; 0 is "never".
            Self::Ipset => format!("add {set} {addr} timeout {} -exist\n", secs.unwrap_or(0)),
        }
    }

    /// The script that removes `addr` from `set`, present or not.
    fn del(self, set: &str, addr: impl std::fmt::Display) -> String {
        match self {
            Self::Nft => format!(
                "add element inet ftwall {set} {{ {addr} }}\ndelete element inet ftwall {set} {{ {addr} }}\n"
            ),
            Self::Ipset => format!("del {set} {addr} -exist\n"),
        }
    }

    /// The script that replaces the allowed ports, atomically (nft: one transaction; ipset: a
    /// new set swapped in).
    fn allow_ports(self, ports: &[u16]) -> String {
        let mut ports = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        match self {
            Self::Nft => {
                let mut s = String::from("flush set inet ftwall ft_allow_ports\n");
                if !ports.is_empty() {
                    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
                    s += &format!("add element inet ftwall ft_allow_ports {{ {} }}\n", list.join(", "));
                }
                s
            }
            Self::Ipset => {
                let mut s = String::from(
                    "create ftwall_allow_ports_new bitmap:port range 0-65535 -exist\nflush ftwall_allow_ports_new\n",
                );
                for port in ports {
                    s += &format!("add ftwall_allow_ports_new {port} -exist\n");
                }
                s + "swap ftwall_allow_ports_new ftwall_allow_ports\ndestroy ftwall_allow_ports_new\n"
            }
        }
    }

    fn lock(self, lock: &LockEntry, now: Timestamp) -> String {
        let secs = lock.until.saturating_since(now).as_secs().max(1);
        let net = lock.network();
        self.add(self.clients(net.addr()), Element(net), Some(secs))
    }

    fn unlock(self, net: IpNet) -> String {
        self.del(self.clients(net.addr()), Element(net))
    }

    fn peer(self, peer: &PeerEntry, now: Timestamp) -> String {
        let secs = peer.expires.map(|t| t.saturating_since(now).as_secs().max(1));
        match peer.strength {
            Strength::Strong => self.add(self.peers(peer.addr), peer.addr, secs),
            Strength::Weak => self.weak_elements(peer).map_or_else(String::new, |elements| {
                elements.iter().map(|e| self.add(self.weak_peers(peer.addr), e, secs)).collect()
            }),
        }
    }

    fn unpeer(self, peer: &PeerEntry) -> String {
        match peer.strength {
            Strength::Strong => self.del(self.peers(peer.addr), peer.addr),
            Strength::Weak => self.weak_elements(peer).map_or_else(String::new, |elements| {
                elements.iter().map(|e| self.del(self.weak_peers(peer.addr), e)).collect()
            }),
        }
    }
}

/// A lock's network as a set element: the bare address for a single host, `addr/len` for a
/// prefix.
struct Element(IpNet);

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The script that mirrors `record` (None for bans and other changes the sets do not hold).
pub(crate) fn record_script(backend: Backend, record: &StateChange, now: Timestamp) -> Option<String> {
    Some(match record {
        StateChange::Lock(lock) => backend.lock(lock, now),
        StateChange::LockRemoved(net, _) => backend.unlock(*net),
        StateChange::Peer(peer) => backend.peer(peer, now),
        StateChange::PeerRemoved(peer, _) => backend.unpeer(peer),
        // Bans stay in the daemon, like any change the kernel sets do not mirror.
        _ => return None,
    })
}

/// Whether the "no kernel sets" warning was given (once per process).
static WARNED_MISSING: AtomicBool = AtomicBool::new(false);

/// Runs `program args`, silently; true if it exited with success.
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One run in flight: the process, and the thread writing its batch (true if all of it went).
#[derive(Debug)]
struct Run {
    child: Child,
    writer: Option<JoinHandle<bool>>,
}

/// The mirror; see the module documentation.
#[derive(Debug)]
pub(crate) struct KernelSets {
    backend: Backend,
    /// The program run (`nft` or `ipset`; tests put a recorder in its place).
    program: PathBuf,
    running: Option<Run>,
    /// Scripts waiting for the next run, oldest first.
    backlog: VecDeque<String>,
    /// Runs that could not start or exited non-zero, and scripts refused because the backlog
    /// was full, since the last [`KernelSets::reap`].
    failures: u64,
}

impl KernelSets {
    /// The mirror for whichever backend's sets exist (nft's table `inet ftwall` first, then the
    /// ipsets), or None when `kernel_sets = "off"` (or `timelock.kernel_set = false`) or when
    /// neither exists (warned once per process: the rules are not installed, or are old).
    pub(crate) fn detect(config: &DaemonConfig) -> Option<Self> {
        if !config.kernel_sets_enabled() {
            return None;
        }
        if succeeds("nft", &["list", "set", "inet", "ftwall", "ft_clients"]) {
            return Some(Self::with_program(Backend::Nft, "nft"));
        }
        if succeeds("ipset", &["list", "-n", "ftwall_clients"]) {
            return Some(Self::with_program(Backend::Ipset, "ipset"));
        }
        if !WARNED_MISSING.swap(true, Ordering::Relaxed) {
            log_event!(
                KERNEL_SETS_UNAVAILABLE,
                "neither the nft set inet ftwall ft_clients nor the ipset ftwall_clients exists \
                 (run iptables/install.sh, with ipset installed): locks and suspect peers are not \
                 kept in the kernel across restarts"
            );
        }
        None
    }

    /// A mirror for `backend` that runs `program` (with the backend's arguments).
    pub(crate) fn with_program(backend: Backend, program: impl Into<PathBuf>) -> Self {
        Self { backend, program: program.into(), running: None, backlog: VecDeque::new(), failures: 0 }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Mirrors one change of the engine's state (bans are ignored).
    pub(crate) fn record(&mut self, record: &StateChange, now: Timestamp) {
        if let Some(script) = record_script(self.backend, record, now).filter(|s| !s.is_empty()) {
            self.push(script);
        }
    }

    /// Replaces the allowed ports (`timelock.allow_ports`).
    pub(crate) fn allow_ports(&mut self, ports: &[u16]) {
        self.push(self.backend.allow_ports(ports));
    }

    /// Loads every lock still in force and every suspect peer (at start and reload). Elements
    /// already in the sets are refreshed, never removed: they end by their own timeouts.
    pub(crate) fn sync(&mut self, snapshot: &Snapshot, now: Timestamp) {
        for lock in snapshot.locks.iter().filter(|l| l.until > now) {
            self.push(self.backend.lock(lock, now));
        }
        for peer in snapshot.peers.iter().filter(|p| p.expires.is_none_or(|t| t > now)) {
            let script = self.backend.peer(peer, now);
            if !script.is_empty() {
                self.push(script);
            }
        }
    }

    /// Collects a finished run and starts the next batch; returns how many runs or scripts
    /// failed since the last call.
    pub(crate) fn reap(&mut self) -> u64 {
        self.collect(false);
        self.start();
        std::mem::take(&mut self.failures)
    }

    /// Runs everything still queued and waits for it (at shutdown).
    pub(crate) fn finish(&mut self) -> u64 {
        loop {
            self.collect(true);
            if self.backlog.is_empty() && self.running.is_none() {
                return std::mem::take(&mut self.failures);
            }
            self.start();
        }
    }

    /// Queues `script` and starts a run if none is in flight.
    fn push(&mut self, script: String) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.failures += 1;
            return;
        }
        self.backlog.push_back(script);
        self.collect(false);
        self.start();
    }

    /// Forgets the running process once it has exited (waiting for it if `block`), counting a
    /// failure if it did not succeed or did not get its whole batch.
    fn collect(&mut self, block: bool) {
        let Some(run) = &mut self.running else { return };
        let status = if block { run.child.wait().map(Some) } else { run.child.try_wait() };
        let ok = match status {
            Ok(None) => return,
            Ok(Some(status)) => status.success(),
            Err(_) => false,
        };
        // The process has exited, so its end of the pipe is closed: the writer is done or
        // about to fail with EPIPE.
        let delivered = run.writer.take().is_some_and(|w| w.join().unwrap_or(false));
        if !(ok && delivered) {
            self.failures += 1;
        }
        self.running = None;
    }

    /// Starts a run with up to [`MAX_BATCH`] queued scripts, unless one is in flight.
    fn start(&mut self) {
        if self.running.is_some() || self.backlog.is_empty() {
            return;
        }
        let take = self.backlog.len().min(MAX_BATCH);
        let script: String = self.backlog.drain(..take).collect();
        let child = Command::new(&self.program)
            .args(self.backend.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(mut child) => {
                let writer = child.stdin.take().and_then(|mut stdin| {
                    std::thread::Builder::new()
                        .name("ftwall-kernel-sets".into())
                        .spawn(move || stdin.write_all(script.as_bytes()).is_ok())
                        .ok()
                });
                self.running = Some(Run { child, writer });
            }
            Err(_) => self.failures += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::engine::{PeerEntry, Removal};

    /// A stand-in for `nft -f -` / `ipset restore -exist` that appends its arguments, its input
    /// and a separator to `log`.
    fn recorder(dir: &std::path::Path, log: &std::path::Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("tool");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$*\" >> {0}\ncat >> {0}\necho --- >> {0}\nsleep 0.05\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn runs(log: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(log).unwrap().split("---\n").map(str::to_string).collect()
    }

    fn lock(client: &str, until: Timestamp) -> LockEntry {
        LockEntry::new(client.parse().unwrap(), until, None, None)
    }

    #[test]
    fn one_run_at_a_time_in_order_with_the_backlog_batched() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut sets = KernelSets::with_program(Backend::Nft, recorder(dir.path(), &log));
        let a = lock("192.0.2.10", Timestamp::from_secs(60));
        let b = lock("192.0.2.11", Timestamp::from_secs(60));
        sets.record(&StateChange::Lock(a), Timestamp::ZERO);
        sets.record(&StateChange::LockRemoved(a.network(), Removal::Expired), Timestamp::ZERO);
        sets.record(&StateChange::Lock(b), Timestamp::ZERO);
        assert_eq!(sets.finish(), 0);
        // The first change started a run at once; the two queued behind it went together.
        let nft = Backend::Nft;
        assert_eq!(
            runs(&log),
            vec![
                format!("-f -\n{}", nft.lock(&a, Timestamp::ZERO)),
                format!("-f -\n{}{}", nft.del("ft_clients", a.client), nft.lock(&b, Timestamp::ZERO)),
                String::new(),
            ]
        );
    }

    #[test]
    fn ipset_batches_and_sync() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut sets = KernelSets::with_program(Backend::Ipset, recorder(dir.path(), &log));
        let now = Timestamp::from_secs(1000);
        sets.allow_ports(&[443, 53, 80, 53]);
        let strong_peer =
            PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong);
        let weak_peer = PeerEntry {
            client: Some("192.0.2.10".parse().unwrap()),
            ..PeerEntry::new(
                "198.51.100.22".parse().unwrap(),
                Some(1214),
                Some(Timestamp::from_secs(1060)),
                Strength::Weak,
            )
        };
        let lock6 = LockEntry {
            network: Some("2001:db8:1::/64".parse().unwrap()),
            ..lock("2001:db8:1::10", Timestamp::from_secs(1010))
        };
        let snapshot = Snapshot {
            peers: vec![
                strong_peer,
                PeerEntry::new(
                    "2001:db8:2::20".parse().unwrap(),
                    None,
                    Some(Timestamp::from_secs(1000 + 86_399)),
                    Strength::Strong,
                ),
                // Already expired: not loaded.
                PeerEntry::new("198.51.100.21".parse().unwrap(), None, Some(now), Strength::Strong),
                weak_peer,
                // Weak without a witness (an older state file): blocks nothing, not loaded.
                PeerEntry::new("198.51.100.23".parse().unwrap(), Some(53), None, Strength::Weak),
            ],
            locks: vec![
                lock("192.0.2.10", Timestamp::from_micros(1_119_600_000)),
                lock6,
                lock("192.0.2.11", Timestamp::from_secs(999)),
            ],
            bans: Vec::new(),
        };
        sets.sync(&snapshot, now);
        sets.record(&StateChange::PeerRemoved(strong_peer, Removal::Expired), now);
        sets.record(&StateChange::PeerRemoved(weak_peer, Removal::Expired), now);
        sets.record(&StateChange::LockRemoved(lock6.network(), Removal::Expired), now);
        assert_eq!(sets.finish(), 0);
        assert_eq!(
            runs(&log),
            vec![
                "restore -exist\n\
                 create ftwall_allow_ports_new bitmap:port range 0-65535 -exist\n\
                 flush ftwall_allow_ports_new\n\
                 add ftwall_allow_ports_new 53 -exist\n\
                 add ftwall_allow_ports_new 80 -exist\n\
                 add ftwall_allow_ports_new 443 -exist\n\
                 swap ftwall_allow_ports_new ftwall_allow_ports\n\
                 destroy ftwall_allow_ports_new\n"
                    .to_string(),
                "restore -exist\n\
                 add ftwall_clients 192.0.2.10 timeout 119 -exist\n\
                 add ftwall_clients6 2001:db8:1::/64 timeout 10 -exist\n\
                 add ftwall_peers 198.51.100.20 timeout 0 -exist\n\
                 add ftwall_peers6 2001:db8:2::20 timeout 86399 -exist\n\
                 add ftwall_weak_peers 198.51.100.22,tcp:1214,192.0.2.10 timeout 60 -exist\n\
                 add ftwall_weak_peers 198.51.100.22,udp:1214,192.0.2.10 timeout 60 -exist\n\
                 del ftwall_peers 198.51.100.20 -exist\n\
                 del ftwall_weak_peers 198.51.100.22,tcp:1214,192.0.2.10 -exist\n\
                 del ftwall_weak_peers 198.51.100.22,udp:1214,192.0.2.10 -exist\n\
                 del ftwall_clients6 2001:db8:1::/64 -exist\n"
                    .to_string(),
                String::new(),
            ]
        );
    }

    #[test]
    fn bans_are_not_mirrored() {
        let mut sets = KernelSets::with_program(Backend::Ipset, "/nonexistent/ipset");
        sets.record(
            &StateChange::BanRemoved("198.51.100.0/24".parse().unwrap(), Removal::Operator),
            Timestamp::ZERO,
        );
        assert_eq!(sets.finish(), 0, "nothing was run");
    }

    #[test]
    fn failed_runs_are_counted() {
        let mut sets = KernelSets::with_program(Backend::Nft, "false");
        sets.record(
            &StateChange::LockRemoved("192.0.2.10/32".parse().unwrap(), Removal::Expired),
            Timestamp::ZERO,
        );
        assert_eq!(sets.finish(), 1);
        let mut missing = KernelSets::with_program(Backend::Ipset, "/nonexistent/ipset");
        missing.record(
            &StateChange::LockRemoved("192.0.2.10/32".parse().unwrap(), Removal::Expired),
            Timestamp::ZERO,
        );
        assert_eq!(missing.reap(), 1);
    }

    #[test]
    fn a_batch_larger_than_a_pipe_buffer_never_blocks_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut sets = KernelSets::with_program(Backend::Ipset, recorder(dir.path(), &log));
        let all: Vec<u16> = (1..=u16::MAX).collect();
        let started = std::time::Instant::now();
        sets.allow_ports(&all);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        assert_eq!(sets.finish(), 0);
        assert!(runs(&log)[0].contains("add ftwall_allow_ports_new 65535 -exist\n"));
    }

    #[test]
    fn nft_scripts_name_the_right_set_and_timeout() {
        let nft = Backend::Nft;
        assert_eq!(
            nft.lock(&lock("192.0.2.10", Timestamp::from_micros(119_600_000)), Timestamp::ZERO),
            "add element inet ftwall ft_clients { 192.0.2.10 }\n\
             delete element inet ftwall ft_clients { 192.0.2.10 }\n\
             add element inet ftwall ft_clients { 192.0.2.10 timeout 119s }\n"
        );
        let expired = lock("2001:db8::10", Timestamp::from_secs(5));
        assert!(nft
            .lock(&expired, Timestamp::from_secs(9))
            .ends_with("ft_clients6 { 2001:db8::10 timeout 1s }\n"));
        let forever = PeerEntry::new("198.51.100.20".parse().unwrap(), None, None, Strength::Strong);
        assert!(nft
            .peer(&forever, Timestamp::ZERO)
            .ends_with("add element inet ftwall ft_peers { 198.51.100.20 }\n"));
        // A weak peer never becomes an all-client, all-port element.
        let weak = PeerEntry {
            client: Some("192.0.2.10".parse().unwrap()),
            ..PeerEntry::new(
                "198.51.100.20".parse().unwrap(),
                Some(1214),
                Some(Timestamp::from_secs(60)),
                Strength::Weak,
            )
        };
        let script = nft.peer(&weak, Timestamp::ZERO);
        assert!(!script.contains("ft_peers "), "{script}");
        assert!(script.ends_with(
            "add element inet ftwall ft_weak_peers { 192.0.2.10 . 198.51.100.20 . 1214 timeout 60s }\n"
        ));
        let prefix = LockEntry {
            network: Some("2001:db8:1::/64".parse().unwrap()),
            ..lock("2001:db8:1::10", Timestamp::from_secs(60))
        };
        assert!(nft
            .lock(&prefix, Timestamp::ZERO)
            .ends_with("ft_clients6 { 2001:db8:1::/64 timeout 60s }\n"));
        assert_eq!(
            nft.allow_ports(&[80, 53]),
            "flush set inet ftwall ft_allow_ports\nadd element inet ftwall ft_allow_ports { 53, 80 }\n"
        );
        assert_eq!(nft.allow_ports(&[]), "flush set inet ftwall ft_allow_ports\n");
    }
}
