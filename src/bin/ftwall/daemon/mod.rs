//! The live daemon: NFQUEUE in, verdicts out, the engine in between.
//!
//! No async. The threads, each owning one job:
//! - one **packet thread per queue** ([`worker`]): receive, judge, verdict, nothing else;
//! - the **housekeeping** (the main thread, [`housekeeping`]): engine timers, signals, reloads,
//!   the debounced state save, the systemd watchdog, the health state ([`health`]) and the
//!   metrics;
//! - the **control** thread (`ftwall ctl`, [`control`]);
//! - the **effects** threads ([`effects`]): forged pongs and probes, and the lock mirrors (client
//!   directory, kernel sets);
//! - the **cluster** threads ([`cluster`], with `cluster.enabled`): publish the engine's local
//!   changes to Redis from a bounded outbox, and merge the other gateways' changes;
//! - the **writer** ([`writer`]): state and metrics files;
//! - the **log** writer (`logging`).
//!
//! They share one engine behind a mutex ([`Shared::core`]). Invariant: whoever holds it does
//! in-memory work only — judging one packet, draining the engine's outputs into bounded queues,
//! copying a snapshot — never IO, so the verdict path cannot be stalled by a disk, a pipe, a
//! slow neighbour or a child process. Every queue a packet thread writes to is bounded and
//! written with `try_send`; what does not fit is counted and shows in the health state.
//!
//! Shutdown (SIGTERM/SIGINT): while the packet threads keep judging, the housekeeping saves the
//! state, applies the pending kernel-set updates and stops the control thread; only then do the
//! packet threads release their queues, so the window in which `--queue-bypass` lets packets
//! through unjudged is as short as the process exit (it is logged as `queue_released` /
//! `daemon_stopped`, `released_ms`). What ftwall knows stays enforced in the kernel sets while
//! no daemon is bound.
//!
//! The release build aborts on panic (`panic = "abort"`): a dead daemon releases its queue, and
//! the `--queue-bypass` rules plus `fail_open` let traffic through until systemd restarts it.

mod client_dir;
mod cluster;
mod control;
pub(crate) mod counters;
mod effects;
mod health;
mod housekeeping;
mod kernel_set;
mod logging;
pub(crate) mod metrics;
pub(crate) mod queue;
mod spoof;
mod store;
mod throttle;
mod worker;
mod writer;

use crate::clock::{self, Clock};
use crate::config::{load_config, DaemonConfig};
use crate::events::log_event;
use anyhow::Context;
use clap::Args;
use control::ControlSocket;
use counters::Counters;
use effects::{Effects, MirrorJob, Outgoing};
use ftwall::{Action, Decision, Engine, Timestamp};
use health::{HealthMonitor, HealthReport, QueueProgress};
use housekeeping::Housekeeping;
use logging::{DropLimiter, LogFormat};
use metrics::LatencyHistogram;
use queue::NfQueue;
pub(crate) use queue::QueueOptions;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use throttle::SharedThrottle;
use worker::Worker;
use writer::Writer;

/// Options of `ftwall run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Configuration file (default: /etc/ftwall/ftwall.toml if it exists, else built-in defaults).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Log format (default: json under systemd, text otherwise).
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Log level or tracing filter (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
}

/// How long shutdown waits for the final state save and the kernel-set updates.
pub(super) const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format, &args.log_level)?;
    let result = run_daemon(args);
    logging::flush(Duration::from_secs(2));
    result
}

fn run_daemon(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (config, path) = load_config(args.config.as_deref())?;
    // The directory rule (OpenSSH StrictModes style, `crate::files`): never start writing as
    // root, or as the daemon's user, into a directory another user can write.
    config.check_directories(crate::files::own_uid())?;
    let control = config.control.enabled.then(|| open_control(&config.control.socket)).flatten();
    let (shared, workers, mut housekeeping) = Shared::start(config, path)?;
    let result = std::thread::scope(|scope| {
        let shared = &shared;
        let control_thread = control.as_ref().map(|control| scope.spawn(move || control.serve(shared)));
        let cluster_threads = match &shared.cluster {
            Some(cluster) => cluster.spawn(scope, shared)?,
            None => Vec::new(),
        };
        let mut handles = Vec::with_capacity(workers.len());
        for (w, number) in workers.into_iter().zip(&shared.queue_numbers) {
            let named = std::thread::Builder::new().name(format!("ftwall-q{number}"));
            handles
                .push(named.spawn_scoped(scope, move || w.serve(shared)).context("starting a queue thread")?);
        }
        // Runs until SIGTERM/SIGINT or a packet thread ends.
        let stopped_by = housekeeping.run(shared, &handles);
        // Shutdown, in the order of the module documentation.
        housekeeping.finish(shared);
        shared.control_stop.store(true, Ordering::Relaxed);
        if let Some(t) = control_thread {
            let _ = t.join();
        }
        if let Some(cluster) = &shared.cluster {
            cluster.stop();
        }
        for t in cluster_threads {
            let _ = t.join();
        }
        shared.release.store(true, Ordering::Relaxed);
        let mut result = stopped_by;
        for h in handles {
            let ended = h.join().map_err(|_| anyhow::anyhow!("a queue thread panicked")).and_then(|r| r);
            if result.is_ok() {
                result = ended;
            }
        }
        result
    });
    let Shared { effects, writer, released_at, .. } = shared;
    effects.stop();
    writer.stop();
    let released_ms = released_at.lock().unwrap_or_else(|e| e.into_inner()).map(|t| t.elapsed().as_millis());
    log_event!(DAEMON_STOPPED, released_ms = released_ms.unwrap_or(0) as u64, "ftwall stopped");
    result.map(|()| ExitCode::SUCCESS)
}

fn open_control(path: &Path) -> Option<ControlSocket> {
    match ControlSocket::bind(path) {
        Ok(socket) => {
            log_event!(CONTROL_LISTENING, socket = %path.display(), "ftwall ctl socket ready");
            Some(socket)
        }
        Err(e) => {
            log_event!(CONTROL_UNAVAILABLE, socket = %path.display(), error = %e, "ftwall ctl disabled");
            None
        }
    }
}

fn lock(core: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    // A panic aborts the process (panic = "abort"), so a poisoned lock is never observed in
    // release builds; in debug builds the state is still consistent enough to save.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Packet mark (and connmark, saved by the rules) of a flow offloaded as clean.
const OFFLOAD_CLEAN_MARK: u32 = 0x1;
/// Packet mark (and connmark) of a flow offloaded as FastTrack.
const OFFLOAD_FASTTRACK_MARK: u32 = 0x2;
/// The mark bits ftwall owns; other bits are left to other mark users.
const OFFLOAD_MASK: u32 = 0x3;

/// What every thread shares (see the module documentation).
pub(crate) struct Shared {
    /// The engine and what must change with it atomically.
    core: Mutex<Daemon>,
    counters: Arc<Counters>,
    effects: Effects,
    writer: Writer,
    /// The other gateways' end (`cluster.enabled`), see [`cluster`].
    cluster: Option<cluster::Cluster>,
    /// One per queue, in `queue_numbers` order.
    progress: Vec<QueueProgress>,
    latency: Arc<LatencyHistogram>,
    health: Mutex<HealthReport>,
    /// Marked packets came back: offload is off for the rest of the run (see [`worker`]).
    offload_rules_missing: AtomicBool,
    /// Tells the packet threads to release their queues and return.
    release: AtomicBool,
    /// Tells the control thread to return.
    control_stop: AtomicBool,
    /// When the first queue was released (for `daemon_stopped`).
    released_at: Mutex<Option<Instant>>,
    queue_numbers: Vec<u16>,
    /// `fail_open` as the queues were bound with (a reload keeps it, see [`ConfigChange`]).
    fail_open: bool,
    config_path: Option<PathBuf>,
    started: Instant,
    /// Wall-clock time of the start (for display only).
    started_at: Timestamp,
    /// Rate limit of the error logs of the packet threads.
    error_log: SharedThrottle,
    /// Rate limit of the socket-overflow log (its own, so overflows never hide errors).
    overflow_log: SharedThrottle,
}

/// State behind [`Shared::core`].
pub(crate) struct Daemon {
    /// The configuration in force (the engine holds a copy of its part; a reload replaces
    /// both together).
    config: DaemonConfig,
    engine: Engine,
    limiter: DropLimiter,
    /// The engine changed persistent state since the last save was handed to the writer.
    store_dirty: bool,
    /// Interface indexes of `lan_interfaces` (None: not configured, no check).
    lan_ifindex: Option<Vec<u32>>,
}

/// A blocked packet's `packet_dropped` line. `client` and `peer` are the flow's inside and
/// outside ends as the engine decided them (bare IPs), `src_*`/`dest_*` the packet's own
/// (eve.json's names), so a reply names the same client and peer as the packet it answers, and
/// both directions the same `flow_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DropLine {
    ends: ftwall::FlowEnds,
    packet: ftwall::PacketSummary,
    reason: ftwall::Reason,
    verdict: ftwall::Verdict,
}

impl DropLine {
    fn of(d: &Decision) -> Option<Self> {
        Some(Self { ends: d.ends?, packet: d.packet?, reason: d.reason, verdict: d.verdict })
    }

    /// The message: the reason's own (a static string) when the packet was dropped,
    /// `monitor: would drop (REASON)` when monitor mode accepted it.
    fn message(&self) -> &'static str {
        match self.verdict {
            ftwall::Verdict::Drop => self.reason.message(),
            ftwall::Verdict::Accept => self.reason.monitor_message(),
        }
    }

    /// Logs it (no allocation beyond the log line itself).
    fn log(&self, suppressed: u64) {
        let (packet, ends) = (self.packet, self.ends);
        let message = self.message();
        log_event!(
            PACKET_DROPPED,
            client = %ends.inside.ip(),
            peer = %ends.outside.ip(),
            reason = self.reason.as_str(),
            verdict = self.verdict.as_str(),
            proto = crate::events::eve_proto(packet.proto),
            src_ip = %packet.src,
            src_port = packet.src_port,
            dest_ip = %packet.dst,
            dest_port = packet.dst_port,
            flow_id = crate::events::flow_id(packet.proto, ends.inside, ends.outside),
            suppressed,
            "{message}"
        )
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log_event!(NOTIFY_FAILED, error = %e, "sd_notify failed");
    }
}

/// Resolves `lan_interfaces` to interface indexes (None when none are configured).
fn resolve_interfaces(names: &[String]) -> Option<Vec<u32>> {
    if names.is_empty() {
        return None;
    }
    let mut found = Vec::new();
    for name in names {
        let index = std::ffi::CString::new(name.as_str())
            // SAFETY: a valid NUL-terminated string for the duration of the call.
            .map(|c| unsafe { libc::if_nametoindex(c.as_ptr()) })
            .unwrap_or(0);
        if index == 0 {
            log_event!(LAN_INTERFACE_MISSING, interface = %name, "a lan_interfaces entry does not exist; no forged pong leaves through it");
        } else {
            found.push(index);
        }
    }
    Some(found)
}

impl Shared {
    /// Binds the queues first (packets wait there while the state loads), restores the state
    /// and starts the effect and writer threads.
    fn start(
        config: DaemonConfig,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<(Self, Vec<Worker>, Housekeeping)> {
        let started = Instant::now();
        let queue_numbers: Vec<u16> = (0..config.queues).map(|i| config.queue.saturating_add(i)).collect();
        let latency = Arc::new(LatencyHistogram::default());
        let mut workers = Vec::with_capacity(queue_numbers.len());
        for (i, &number) in queue_numbers.iter().enumerate() {
            let queue = NfQueue::open(QueueOptions::of(&config), number)?;
            for w in &queue.warnings {
                log_event!(QUEUE_OPTION_UNSUPPORTED, queue = number, detail = %w, "a queue option could not be set");
            }
            workers.push(Worker::new(
                queue,
                config.verdict_batch,
                config.busy_poll_us,
                Arc::clone(&latency),
                i,
            ));
        }
        let bound_ms = started.elapsed().as_millis() as u64;
        let signals =
            Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1]).context("installing signal handlers")?;
        let clock = Clock::read();
        let now = clock.engine();
        if let Some(dir) = config.state_file.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Running by hand (not under systemd's StateDirectory=): create the directory.
            if let Err(e) = crate::files::create_dir_all(dir) {
                log_event!(STATE_DIR_UNAVAILABLE, dir = %dir.display(), error = %e, "state will not be saved until it exists");
            }
        }
        let mut engine = Engine::new(config.engine.clone());
        let mut expiries_clamped = 0;
        match store::load(&config.state_file, clock.wall().as_secs()) {
            store::Loaded::Missing => {}
            // The file holds wall-clock dates: onto the engine's clock, then clamped.
            store::Loaded::State(snapshot) => {
                expiries_clamped = engine.restore(now, &clock.snapshot_to_engine(&snapshot))
            }
            store::Loaded::MovedAside { to, reason } => {
                log_event!(
                    STATE_CORRUPT,
                    file = %config.state_file.display(),
                    moved_to = %to.display(),
                    error = %reason,
                    "state file unusable, moved aside; starting empty"
                )
            }
            store::Loaded::Unreadable(reason) => {
                log_event!(
                    STATE_CORRUPT,
                    file = %config.state_file.display(),
                    error = %reason,
                    "state file unusable; starting empty"
                )
            }
        }
        let cluster = cluster::Cluster::new(&config.cluster)?;
        let counters = Arc::new(Counters::default());
        let effects = Effects::start(Arc::clone(&counters), &config, &engine.snapshot())
            .context("starting the effects threads")?;
        let writer = Writer::start(Arc::clone(&counters)).context("starting the writer thread")?;
        let daemon = Daemon {
            limiter: DropLimiter::new(
                config.log.drop_burst,
                config.log.drop_interval_seconds,
                config.log.drop_max_per_second,
            ),
            store_dirty: false,
            lan_ifindex: resolve_interfaces(&config.lan_interfaces),
            engine,
            config: config.clone(),
        };
        let shared = Self {
            core: Mutex::new(daemon),
            counters,
            effects,
            writer,
            cluster,
            progress: queue_numbers.iter().map(|&q| QueueProgress::new(q, started)).collect(),
            latency,
            health: Mutex::new(HealthReport::default()),
            offload_rules_missing: AtomicBool::new(false),
            release: AtomicBool::new(false),
            control_stop: AtomicBool::new(false),
            released_at: Mutex::new(None),
            queue_numbers,
            fail_open: config.fail_open,
            config_path,
            started,
            started_at: clock.wall(),
            error_log: SharedThrottle::new(LOG_EVERY),
            overflow_log: SharedThrottle::new(LOG_EVERY),
        };
        let mut housekeeping =
            Housekeeping::new(signals, HealthMonitor::new(config.queue_maxlen, config.fail_open));
        // The baselines of the kernel's drop counters, before anything can overflow.
        housekeeping.check_health(&shared);
        let status = format!("judging NFQUEUE {:?}", shared.queue_numbers);
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
        {
            let d = lock(&shared.core);
            log_event!(
                DAEMON_STARTED,
                queue = shared.queue_numbers[0],
                queues = shared.queue_numbers.len(),
                mode = config.engine.mode.as_str(),
                fail_open = config.fail_open,
                peers_restored = d.engine.peer_count(),
                locks_restored = d.engine.locked_count(),
                expiries_clamped,
                bound_ms,
                state_file = %config.state_file.display(),
                config = %shared.config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
                "ftwall started"
            );
        }
        Ok((shared, workers, housekeeping))
    }

    /// True at most once per 10 s for the given slot.
    fn verdict_error(&self, e: &std::io::Error) {
        Counters::bump(&self.counters.verdict_errors);
        if self.error_log.ready() {
            log_event!(VERDICT_ERROR, error = %e, total = Counters::get(&self.counters.verdict_errors), "verdict failed");
        }
    }

    fn socket_overflow(&self) {
        Counters::bump(&self.counters.socket_overflows);
        if self.overflow_log.ready() {
            log_event!(
                QUEUE_OVERFLOW,
                socket_overflows = Counters::get(&self.counters.socket_overflows),
                fail_open = self.fail_open,
                "the queue socket buffer overflowed; packets were accepted (fail_open) or dropped by the kernel"
            );
        }
    }

    fn queue_error(&self, e: &std::io::Error) {
        Counters::bump(&self.counters.queue_errors);
        if self.error_log.ready() {
            log_event!(QUEUE_ERROR, error = %e, total = Counters::get(&self.counters.queue_errors), "netlink error");
        }
    }

    /// A packet came back carrying ftwall's own offload mark (see [`worker`]).
    fn marked_return(&self, mark: u32, packet_id: u32) {
        Counters::bump(&self.counters.marked_returns);
        if !self.offload_rules_missing.swap(true, Ordering::Relaxed) {
            log_event!(
                OFFLOAD_RULES_MISSING,
                mark = format!("{mark:#x}"),
                packet_id,
                "a packet came back already marked by ftwall: the rules that consume the offload mark are missing. \
                 Offload is off until restart (every packet is judged, none loops). Load iptables/install.sh, or put \
                 these before your NFQUEUE rule: `-m mark --mark 0x1/0x3 -j ACCEPT` and `-m mark --mark 0x2/0x3 -j DROP`"
            );
        }
    }

    fn queue_released(&self) {
        let mut at = self.released_at.lock().unwrap_or_else(|e| e.into_inner());
        if at.is_none() {
            *at = Some(Instant::now());
            log_event!(
                QUEUE_RELEASED,
                queue = self.queue_numbers[0],
                queues = self.queue_numbers.len(),
                "queues released: packets now pass per the rules' bypass until a daemon binds"
            );
        }
    }

    /// Snapshot of the engine's persistent state, for a save (taken under the lock): the state
    /// file's path, the snapshot with its times as wall-clock dates, and the wall-clock time of
    /// the save in µs (the state file's `saved_at`).
    fn take_snapshot(&self) -> (PathBuf, ftwall::engine::Snapshot, u64) {
        let mut d = lock(&self.core);
        d.drain(self, None);
        d.store_dirty = false;
        let clock = Clock::read();
        (d.config.state_file.clone(), clock.snapshot_to_wall(&d.engine.snapshot()), clock.wall().as_micros())
    }
}

impl Daemon {
    /// Judges one packet: engine, drop log, outputs into their queues. In-memory only.
    fn judge(
        &mut self,
        shared: &Shared,
        packet: &[u8],
        indev: u32,
        meta: ftwall::engine::PacketMeta,
    ) -> Decision {
        let now = clock::now();
        let decision = self.engine.handle_packet_with(now, packet, meta);
        if decision.blocked {
            self.log_drop(now, &decision, &shared.counters);
        }
        self.drain(shared, Some(indev));
        decision
    }

    fn log_drop(&mut self, now: Timestamp, d: &Decision, counters: &Counters) {
        let Some(line) = DropLine::of(d) else { return };
        match self.limiter.admit(line.ends.inside.ip(), line.ends.outside.ip(), now) {
            logging::Admit::Log(suppressed) => line.log(suppressed),
            logging::Admit::PairLimited => {}
            logging::Admit::GlobalLimited => Counters::bump(&counters.drop_lines_suppressed),
        }
    }

    /// Drains engine events (to the log queue) and actions (to the effect queues). `ingress`:
    /// the interface the packet being judged arrived on, if any.
    fn drain(&mut self, shared: &Shared, ingress: Option<u32>) {
        while let Some(event) = self.engine.poll_event() {
            crate::events::engine_event(event);
        }
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::SendSpoofedPong { from, to, payload } => {
                    let from_lan_side = match (&self.lan_ifindex, ingress) {
                        (None, _) => true,
                        (Some(lan), Some(indev)) => lan.contains(&indev),
                        (Some(_), None) => false,
                    };
                    if from_lan_side {
                        shared.effects.send(Outgoing::Pong { from, to, payload });
                    } else {
                        Counters::bump(&shared.counters.pongs_wrong_interface);
                    }
                }
                Action::SendProbe { from, to, payload } => {
                    shared.effects.send(Outgoing::Probe { from, to, payload })
                }
                Action::StateChanged(record) => {
                    self.store_dirty = true;
                    if let Some(cluster) = &shared.cluster {
                        cluster.publish(&record, &shared.counters);
                    }
                    shared.effects.mirror(MirrorJob::Record(record));
                }
                Action::StateMerged(record) => {
                    self.store_dirty = true;
                    shared.effects.mirror(MirrorJob::Record(record));
                }
            }
        }
    }
}

/// Rate limit of the packet threads' error lines (verdict, queue and socket overflow errors).
const LOG_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        use ftwall::wire::{self, IpRepr, TransportRepr, UdpRepr};
        let ip = IpRepr::new(src.ip(), dst.ip()).expect("one family");
        wire::emit(&ip, &TransportRepr::Udp(UdpRepr { src_port: src.port(), dst_port: dst.port() }), payload)
    }

    #[test]
    fn a_dropped_reply_names_the_flows_client_not_its_sender() {
        const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
        const PONG: [u8; 17] =
            [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];
        let lan = vec!["192.0.2.0/24".parse().unwrap()];
        let mut engine = Engine::new(ftwall::EngineConfig { lan, ..ftwall::EngineConfig::default() });
        // Neither end is in `lan`: the first sender is the client, for the whole flow.
        let client: SocketAddr = "203.0.113.5:4000".parse().unwrap();
        let peer: SocketAddr = "198.51.100.30:1214".parse().unwrap();
        let ping = engine.handle_packet(Timestamp::from_secs(1), &udp(client, peer, &PING));
        let pong = engine.handle_packet(Timestamp::from_secs(2), &udp(peer, client, &PONG));
        assert!(ping.blocked && pong.blocked);
        let lines = crate::events::captured(|| {
            DropLine::of(&ping).unwrap().log(0);
            DropLine::of(&pong).unwrap().log(2);
        });
        let fields = |l: &serde_json::Value| {
            ["client", "peer", "src_ip", "dest_ip"].map(|f| l[f].as_str().unwrap().to_string())
        };
        assert_eq!(fields(&lines[0]), ["203.0.113.5", "198.51.100.30", "203.0.113.5", "198.51.100.30"]);
        assert_eq!(fields(&lines[1]), ["203.0.113.5", "198.51.100.30", "198.51.100.30", "203.0.113.5"]);
        assert_eq!((lines[0]["src_port"].as_u64(), lines[0]["dest_port"].as_u64()), (Some(4000), Some(1214)));
        assert_eq!((lines[1]["src_port"].as_u64(), lines[1]["dest_port"].as_u64()), (Some(1214), Some(4000)));
        assert!(
            lines[0]["flow_id"].is_u64() && lines[0]["flow_id"] == lines[1]["flow_id"],
            "one flow: {lines:?}"
        );
        assert_eq!(lines[1]["suppressed"], 2);
        assert_eq!(DropLine::of(&engine.handle_packet(Timestamp::from_secs(3), &[0x45])), None);
    }

    /// Judges a locked client's new connection to port 8080, a banned address and a FastTrack
    /// ping in `mode`, and returns the `packet_dropped` lines.
    fn drop_lines(mode: ftwall::config::Mode) -> Vec<serde_json::Value> {
        const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
        let lan = vec!["192.0.2.0/24".parse().unwrap()];
        let mut engine = Engine::new(ftwall::EngineConfig { lan, mode, ..ftwall::EngineConfig::default() });
        let client: SocketAddr = "192.0.2.10:4000".parse().unwrap();
        let t = Timestamp::from_secs;
        let ping = engine.handle_packet(t(1), &udp(client, "198.51.100.20:1214".parse().unwrap(), &PING));
        let syn = |to: SocketAddr| {
            use ftwall::wire::{self, IpRepr, TcpFlags, TcpRepr, TransportRepr};
            let ip = IpRepr::new(client.ip(), to.ip()).expect("one family");
            let tcp = TcpRepr::new(4001, to.port(), 1, TcpFlags(TcpFlags::SYN));
            wire::emit(&ip, &TransportRepr::Tcp(tcp), &[])
        };
        let locked = engine.handle_packet(t(2), &syn("203.0.113.5:8080".parse().unwrap()));
        engine.ban(t(3), "203.0.113.9".parse::<std::net::IpAddr>().unwrap(), None, None, None).unwrap();
        let banned = engine.handle_packet(t(3), &udp(client, "203.0.113.9:53".parse().unwrap(), b"dns"));
        let decisions = [ping, locked, banned];
        assert!(decisions.iter().all(|d| d.blocked), "{decisions:?}");
        crate::events::captured(|| decisions.iter().for_each(|d| DropLine::of(d).unwrap().log(0)))
    }

    #[test]
    fn each_drop_says_what_happened_and_what_was_done() {
        let lines = drop_lines(ftwall::config::Mode::Enforce);
        let summary: Vec<[&str; 4]> = lines
            .iter()
            .map(|l| ["message", "reason", "verdict", "proto"].map(|f| l[f].as_str().unwrap()))
            .collect();
        assert_eq!(
            summary,
            [
                ["FastTrack UDP ping dropped", "udp_ping", "drop", "UDP"],
                ["new connection refused: client time-locked", "client_locked", "drop", "TCP"],
                ["packet dropped: address banned by the operator", "banned", "drop", "UDP"],
            ]
        );
        assert_eq!(lines[1]["dest_port"], 8080);
        assert_eq!(lines[2]["dest_ip"], "203.0.113.9");
    }

    #[test]
    fn monitor_mode_says_it_would_drop_and_that_it_accepted() {
        let lines = drop_lines(ftwall::config::Mode::Monitor);
        let summary: Vec<[&str; 2]> =
            lines.iter().map(|l| ["message", "verdict"].map(|f| l[f].as_str().unwrap())).collect();
        assert_eq!(
            summary,
            [
                ["monitor: would drop (udp_ping)", "accept"],
                ["monitor: would drop (client_locked)", "accept"],
                ["monitor: would drop (banned)", "accept"],
            ]
        );
    }
}
