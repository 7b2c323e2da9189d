//! The live daemon: NFQUEUE in, verdicts out, the engine in between.
//!
//! No async. The threads, each owning one job:
//! - one **packet thread per queue** ([`worker`]): receive, judge, verdict, nothing else;
//! - the **housekeeping** (the main thread): engine timers, signals, reloads, the debounced state
//!   save, the systemd watchdog, the health state ([`health`]) and the metrics;
//! - the **control** thread (`ftwall ctl`, [`control`]);
//! - the **effects** threads ([`effects`]): forged pongs and probes, and the lock mirrors (client
//!   directory, kernel sets);
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
mod config_file;
mod control;
pub(crate) mod counters;
mod effects;
mod health;
mod kernel_set;
mod logging;
pub(crate) mod metrics;
mod queue;
mod spoof;
mod store;
mod time;
mod worker;
mod writer;

use anyhow::Context;
use clap::Args;
use control::ControlSocket;
use counters::Counters;
use effects::{every, Effects, MirrorJob, Outgoing};
use ftwall::{Action, Config, Decision, Engine, Event, Timestamp, Verdict};
use health::{HealthMonitor, HealthReport, HealthState, KernelQueue, QueueProgress, Sample};
use logging::{DropLimiter, LogFormat};
use metrics::{LatencyHistogram, MetricsInput};
use queue::{KernelCounters, NfQueue, TICK};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::rfc3339;
use tracing::{debug, error, info, warn};
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
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format, &args.log_level)?;
    let result = run_daemon(args);
    logging::flush(Duration::from_secs(2));
    result
}

fn run_daemon(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (config, path) = config_file::load(args.config.as_deref())?;
    let control = config.control.enabled.then(|| open_control(&config.control.socket)).flatten();
    let (shared, workers, mut housekeeping) = Shared::start(config, path)?;
    let result = std::thread::scope(|scope| {
        let shared = &shared;
        let control_thread = control.as_ref().map(|control| scope.spawn(move || control.serve(shared)));
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
    info!(event = "daemon_stopped", released_ms = released_ms.unwrap_or(0) as u64, "ftwall stopped");
    result.map(|()| ExitCode::SUCCESS)
}

/// Loads the configuration file (`ftwall ctl` uses it to find the control socket).
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, Option<PathBuf>)> {
    config_file::load(path)
}

fn open_control(path: &Path) -> Option<ControlSocket> {
    match ControlSocket::bind(path) {
        Ok(socket) => {
            info!(event = "control_listening", socket = %path.display(), "ftwall ctl socket ready");
            Some(socket)
        }
        Err(e) => {
            warn!(event = "control_unavailable", socket = %path.display(), error = %e, "ftwall ctl disabled");
            None
        }
    }
}

fn lock(core: &Mutex<Daemon>) -> std::sync::MutexGuard<'_, Daemon> {
    // A panic aborts the process (panic = "abort"), so a poisoned lock is never observed in
    // release builds; in debug builds the state is still consistent enough to save.
    core.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn check_config(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let path = file.unwrap_or_else(|| PathBuf::from(config_file::DEFAULT_PATH));
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    config_file::parse(&path, &text)?;
    println!("{}: ok", path.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_config(file: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let (config, path) = config_file::load(file.as_deref())?;
    match path {
        Some(p) => println!("# effective configuration from {}", p.display()),
        None => println!("# effective configuration (built-in defaults)"),
    }
    print!("{}", config.to_toml_string());
    Ok(ExitCode::SUCCESS)
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
    /// `fail_open` as the queues were bound with (a reload cannot change it).
    fail_open: bool,
    config_path: Option<PathBuf>,
    started: Instant,
    started_at: Timestamp,
    /// Rate limit of the error logs of the packet threads.
    last_error_log: Mutex<Option<Instant>>,
    /// Rate limit of the socket-overflow log (its own, so overflows never hide errors).
    last_overflow_log: Mutex<Option<Instant>>,
}

/// State behind [`Shared::core`].
pub(crate) struct Daemon {
    engine: Engine,
    limiter: DropLimiter,
    /// The engine changed persistent state since the last save was handed to the writer.
    store_dirty: bool,
    /// Interface indexes of `lan_interfaces` (None: not configured, no check).
    lan_ifindex: Option<Vec<u32>>,
}

/// The inside and outside address of a dropped packet, for logs.
fn parties(config: &Config, d: &Decision) -> Option<(IpAddr, SocketAddr, SocketAddr)> {
    let p = d.packet?;
    let src = SocketAddr::new(p.src, p.src_port.unwrap_or(0));
    let dst = SocketAddr::new(p.dst, p.dst_port.unwrap_or(0));
    let client = if !config.is_lan(p.src) && config.is_lan(p.dst) { p.dst } else { p.src };
    Some((client, src, dst))
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
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
            warn!(event = "lan_interface_missing", interface = %name, "a lan_interfaces entry does not exist; no forged pong leaves through it");
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
        config: Config,
        config_path: Option<PathBuf>,
    ) -> anyhow::Result<(Self, Vec<Worker>, Housekeeping)> {
        let started = Instant::now();
        let queue_numbers: Vec<u16> = (0..config.queues).map(|i| config.queue.saturating_add(i)).collect();
        let latency = Arc::new(LatencyHistogram::default());
        let mut workers = Vec::with_capacity(queue_numbers.len());
        for (i, &number) in queue_numbers.iter().enumerate() {
            let queue = NfQueue::open(&config, number)?;
            for w in &queue.warnings {
                warn!(event = "queue_option_unsupported", queue = number, detail = %w, "a queue option could not be set");
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
        let now = time::now();
        if let Some(dir) = config.state_file.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Running by hand (not under systemd's StateDirectory=): create the directory.
            if let Err(e) = std::fs::create_dir_all(dir) {
                warn!(event = "state_dir_unavailable", dir = %dir.display(), error = %e, "state will not be saved until it exists");
            }
        }
        let mut engine = Engine::new(config.clone());
        match store::load(&config.state_file, now.as_secs()) {
            store::Loaded::Missing => {}
            store::Loaded::State(snapshot) => engine.restore(now, &snapshot),
            store::Loaded::MovedAside { to, reason } => error!(
                event = "state_corrupt",
                file = %config.state_file.display(),
                moved_to = %to.display(),
                reason = %reason,
                "state file unusable, moved aside; starting empty"
            ),
            store::Loaded::Unreadable(reason) => error!(
                event = "state_corrupt",
                file = %config.state_file.display(),
                reason = %reason,
                "state file unusable; starting empty"
            ),
        }
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
        };
        let shared = Self {
            core: Mutex::new(daemon),
            counters,
            effects,
            writer,
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
            started_at: now,
            last_error_log: Mutex::new(None),
            last_overflow_log: Mutex::new(None),
        };
        let mut housekeeping = Housekeeping {
            signals,
            last_save: Instant::now(),
            last_flush: Instant::now(),
            watchdog: sd_notify::watchdog_enabled(),
            last_watchdog: Instant::now(),
            last_metrics: None,
            kernel: None,
            last_kernel_read: None,
            health: HealthMonitor::new(config.queue_maxlen, config.fail_open),
        };
        // The baselines of the kernel's drop counters, before anything can overflow.
        housekeeping.check_health(&shared);
        let status = format!("judging NFQUEUE {:?}", shared.queue_numbers);
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
        {
            let d = lock(&shared.core);
            info!(
                event = "daemon_started",
                queue = shared.queue_numbers[0],
                queues = shared.queue_numbers.len(),
                mode = ?config.mode,
                fail_open = config.fail_open,
                peers_restored = d.engine.peer_count(),
                locks_restored = d.engine.locked_count(),
                bound_ms,
                state_file = %config.state_file.display(),
                config = %shared.config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
                "ftwall started"
            );
        }
        Ok((shared, workers, housekeeping))
    }

    /// True at most once per 10 s for the given slot.
    fn log_now(slot: &Mutex<Option<Instant>>) -> bool {
        every(&mut slot.lock().unwrap_or_else(|e| e.into_inner()), Duration::from_secs(10))
    }

    fn verdict_error(&self, e: &std::io::Error) {
        Counters::bump(&self.counters.verdict_errors);
        if Self::log_now(&self.last_error_log) {
            warn!(event = "verdict_error", error = %e, total = Counters::get(&self.counters.verdict_errors), "verdict failed");
        }
    }

    fn socket_overflow(&self) {
        Counters::bump(&self.counters.socket_overflows);
        if Self::log_now(&self.last_overflow_log) {
            warn!(
                event = "queue_overflow",
                socket_overflows = Counters::get(&self.counters.socket_overflows),
                fail_open = self.fail_open,
                "the queue socket buffer overflowed; packets were accepted (fail_open) or dropped by the kernel"
            );
        }
    }

    fn queue_error(&self, e: &std::io::Error) {
        Counters::bump(&self.counters.queue_errors);
        if Self::log_now(&self.last_error_log) {
            warn!(event = "queue_error", error = %e, total = Counters::get(&self.counters.queue_errors), "netlink error");
        }
    }

    /// A packet came back carrying ftwall's own offload mark (see [`worker`]).
    fn marked_return(&self, mark: u32, packet_id: u32) {
        Counters::bump(&self.counters.marked_returns);
        if !self.offload_rules_missing.swap(true, Ordering::Relaxed) {
            error!(
                event = "offload_rules_missing",
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
            info!(event = "queue_released", queues = ?self.queue_numbers, "queues released: packets now pass per the rules' bypass until a daemon binds");
        }
    }

    /// Snapshot of the engine's persistent state, for a save (taken under the lock).
    fn take_snapshot(&self) -> (PathBuf, ftwall::engine::Snapshot) {
        let mut d = lock(&self.core);
        d.drain(self, None);
        d.store_dirty = false;
        (d.engine.config().state_file.clone(), d.engine.snapshot())
    }
}

impl Daemon {
    /// Judges one packet: engine, drop log, outputs into their queues. In-memory only.
    fn judge(&mut self, shared: &Shared, packet: &[u8], indev: u32) -> Decision {
        let now = time::now();
        let decision = self.engine.handle_packet(now, packet);
        if decision.reason.natural_verdict() == Verdict::Drop {
            self.log_drop(now, &decision, &shared.counters);
        }
        self.drain(shared, Some(indev));
        decision
    }

    fn log_drop(&mut self, now: Timestamp, d: &Decision, counters: &Counters) {
        let config = self.engine.config();
        let Some((client, src, dst)) = parties(config, d) else { return };
        let peer = if src.ip() == client { dst } else { src };
        let enforced = d.verdict == Verdict::Drop;
        match self.limiter.admit(client, peer.ip(), now) {
            logging::Admit::Log(suppressed) => info!(
                event = "packet_dropped",
                client = %client,
                peer = %peer,
                reason = d.reason.as_str(),
                proto = d.packet.map_or("other", |p| p.proto.as_str()),
                src = %src,
                dst = %dst,
                enforced,
                suppressed,
                "dropped FastTrack packet"
            ),
            logging::Admit::PairLimited => {}
            logging::Admit::GlobalLimited => Counters::bump(&counters.drop_lines_suppressed),
        }
    }

    /// Drains engine events (to the log queue) and actions (to the effect queues). `ingress`:
    /// the interface the packet being judged arrived on, if any.
    fn drain(&mut self, shared: &Shared, ingress: Option<u32>) {
        while let Some(event) = self.engine.poll_event() {
            log_event(event);
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
                Action::Store(record) => {
                    self.store_dirty = true;
                    shared.effects.mirror(MirrorJob::Record(record));
                }
            }
        }
    }
}

fn log_event(event: Event) {
    match event {
        Event::ClientIdentified { client, peer, reason, locked_until } => info!(
            event = "client_identified",
            client = %client,
            peer = %peer,
            reason = reason.as_str(),
            locked_until = %locked_until.map_or("none (time-lock disabled)".to_string(), |t| rfc3339(t.as_secs())),
            "FastTrack client identified"
        ),
        Event::PeerIdentified { peer, port, client, reason } => info!(
            event = "peer_identified",
            peer = %port.map_or(peer.to_string(), |p| SocketAddr::new(peer, p).to_string()),
            client = %client.map_or("-".to_string(), |c| c.to_string()),
            reason = reason.as_str(),
            "FastTrack peer identified"
        ),
        Event::ClientReleased { client } => {
            info!(event = "client_released", client = %client, "time-lock ended")
        }
        Event::BanExpired { addr } => {
            info!(event = "ban_expired", addr = %addr, "operator ban expired")
        }
        Event::FlowClassified { proto, client, peer, reason } => debug!(
            event = "flow_classified",
            proto = proto.as_str(),
            client = %client,
            peer = %peer,
            reason = reason.as_str(),
            "flow classified as FastTrack"
        ),
    }
}

/// The main thread's periodic work (see the module documentation).
struct Housekeeping {
    signals: Signals,
    last_save: Instant,
    last_flush: Instant,
    watchdog: Option<Duration>,
    last_watchdog: Instant,
    last_metrics: Option<Instant>,
    /// Last reading of the kernel's queue counters, summed (for `queue_overflow`).
    kernel: Option<KernelCounters>,
    last_kernel_read: Option<Instant>,
    health: HealthMonitor,
}

impl Housekeeping {
    /// Ticks until SIGTERM/SIGINT (Ok) or until a packet thread ended (its error comes from
    /// the join).
    fn run(
        &mut self,
        shared: &Shared,
        workers: &[std::thread::ScopedJoinHandle<'_, anyhow::Result<()>>],
    ) -> anyhow::Result<()> {
        loop {
            std::thread::sleep(TICK / 2);
            if workers.iter().any(|w| w.is_finished()) {
                return Ok(());
            }
            if self.tick(shared) {
                return Ok(());
            }
        }
    }

    /// One tick. Returns true when the daemon must stop.
    fn tick(&mut self, shared: &Shared) -> bool {
        let now = time::now();
        {
            let mut d = lock(&shared.core);
            if d.engine.poll_timeout().is_some_and(|t| t <= now) {
                d.engine.handle_timeout(now);
            }
            d.drain(shared, None);
        }
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGHUP => self.reload(shared),
                SIGUSR1 => log_counters(shared),
                SIGTERM | SIGINT => return true,
                _ => {}
            }
        }
        if shared.writer.take_failed() {
            lock(&shared.core).store_dirty = true;
        }
        if self.last_save.elapsed() >= Duration::from_secs(1) && lock(&shared.core).store_dirty {
            let (path, snapshot) = shared.take_snapshot();
            if shared.writer.save(path, snapshot, now.as_micros(), None) {
                self.last_save = Instant::now();
            } else {
                lock(&shared.core).store_dirty = true;
            }
        }
        if shared.effects.take_resync_needed() {
            let snapshot = lock(&shared.core).engine.snapshot();
            shared.effects.mirror(MirrorJob::Resync(snapshot));
        }
        if self.last_flush.elapsed() >= Duration::from_secs(5) {
            self.last_flush = Instant::now();
            for (client, peer, suppressed) in lock(&shared.core).limiter.flush(now) {
                info!(event = "packet_dropped", client = %client, peer = %peer, suppressed, "further drops suppressed");
            }
        }
        if let Some(interval) = self.watchdog {
            if self.last_watchdog.elapsed() >= interval / 3 {
                self.last_watchdog = Instant::now();
                notify(&[NotifyState::Watchdog]);
            }
        }
        let readings = self.check_health(shared);
        let (interval, metrics_file) = {
            let d = lock(&shared.core);
            (
                Duration::from_secs(d.engine.config().metrics.interval_seconds),
                d.engine.config().metrics.file.clone(),
            )
        };
        if let Some(path) = metrics_file {
            if every(&mut self.last_metrics, interval) {
                shared.writer.metrics(path, render_metrics(shared, &readings));
            }
        }
        false
    }

    /// The kernel's counters of each of this daemon's queues (one read of the proc file).
    fn kernel_readings(&self, shared: &Shared) -> Vec<(u16, Option<KernelCounters>)> {
        let text = queue::read_proc();
        shared
            .queue_numbers
            .iter()
            .map(|&q| (q, text.as_deref().and_then(|t| queue::parse_proc(t, q))))
            .collect()
    }

    /// Samples the queues and the loss counters; logs `health_changed` and `queue_overflow`.
    /// Returns the kernel readings it used (the metrics reuse them).
    fn check_health(&mut self, shared: &Shared) -> Vec<(u16, Option<KernelCounters>)> {
        let readings = self.kernel_readings(shared);
        let kernel: Vec<Option<KernelQueue>> = readings
            .iter()
            .map(|(_, k)| {
                k.map(|k| KernelQueue {
                    waiting: k.queue_total,
                    id_sequence: k.id_sequence,
                    queue_dropped: k.queue_dropped,
                    user_dropped: k.user_dropped,
                })
            })
            .collect();
        let c = &shared.counters;
        logging::count_discarded(&c.log_lines_discarded);
        let sample = Sample {
            kernel,
            socket_overflows: Counters::get(&c.socket_overflows),
            effects_discarded: Counters::get(&c.effects_discarded),
            log_lines_discarded: Counters::get(&c.log_lines_discarded),
            verdict_errors: Counters::get(&c.verdict_errors),
            offload_rules_missing: shared.offload_rules_missing.load(Ordering::Relaxed),
        };
        let progress: Vec<&QueueProgress> = shared.progress.iter().collect();
        if let Some(old) = self.health.update(Instant::now(), &progress, sample) {
            let report = self.health.report();
            if report.state == HealthState::Ok {
                info!(
                    event = "health_changed",
                    state = report.state.as_str(),
                    previous = old.as_str(),
                    "judging normally again"
                );
            } else {
                warn!(
                    event = "health_changed",
                    state = report.state.as_str(),
                    previous = old.as_str(),
                    reasons = %report.reasons.join("; "),
                    "packets may pass unjudged or effects are lost"
                );
            }
        }
        *shared.health.lock().unwrap_or_else(|e| e.into_inner()) = self.health.report().clone();
        // The kernel's drop counters, summed over this daemon's queues, every 5 s.
        if self.last_kernel_read.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return readings;
        }
        self.last_kernel_read = Some(Instant::now());
        let mut fresh = KernelCounters::default();
        for (_, k) in &readings {
            let Some(k) = k else { return readings };
            fresh.queue_total += k.queue_total;
            fresh.queue_dropped += k.queue_dropped;
            fresh.user_dropped += k.user_dropped;
        }
        if let Some(old) = self.kernel {
            let queue_dropped = fresh.queue_dropped.saturating_sub(old.queue_dropped);
            let user_dropped = fresh.user_dropped.saturating_sub(old.user_dropped);
            if queue_dropped > 0 || user_dropped > 0 {
                let fail_open = lock(&shared.core).engine.config().fail_open;
                warn!(
                    event = "queue_overflow",
                    queue_dropped,
                    user_dropped,
                    queue_total = fresh.queue_total,
                    fail_open,
                    "the kernel could not queue every packet (accepted if fail_open, else dropped)"
                );
            }
        }
        self.kernel = Some(fresh);
        readings
    }

    fn reload(&mut self, shared: &Shared) {
        let mut reloading = vec![NotifyState::Reloading];
        if let Ok(usec) = NotifyState::monotonic_usec_now() {
            reloading.push(usec);
        }
        notify(&reloading);
        match config_file::load(shared.config_path.as_deref()) {
            Ok((mut config, _)) => {
                let mut d = lock(&shared.core);
                let old = d.engine.config().clone();
                if (config.queue, config.queues) != (old.queue, old.queues) {
                    warn!(
                        event = "config_restart_required",
                        old_queue = old.queue,
                        new_queue = config.queue,
                        old_queues = old.queues,
                        new_queues = config.queues,
                        "changing the queues needs a restart; keeping the old ones"
                    );
                    config.queue = old.queue;
                    config.queues = old.queues;
                }
                if config.spoof_pongs != old.spoof_pongs {
                    shared.effects.send(Outgoing::Configure { spoof_pongs: config.spoof_pongs });
                }
                d.lan_ifindex = resolve_interfaces(&config.lan_interfaces);
                d.limiter.reconfigure(
                    config.log.drop_burst,
                    config.log.drop_interval_seconds,
                    config.log.drop_max_per_second,
                );
                d.engine.set_config(config);
                d.drain(shared, None);
                // The kernel sets follow allow_ports, and are probed again if they were missing.
                let config = Box::new(d.engine.config().clone());
                shared.effects.mirror(MirrorJob::Configure(config, d.engine.snapshot()));
                info!(
                    event = "config_reloaded",
                    peers = d.engine.peer_count(),
                    locks = d.engine.locked_count(),
                    "configuration reloaded; state kept"
                );
            }
            Err(e) => {
                error!(event = "config_reload_failed", error = %format!("{e:#}"), "new configuration rejected; keeping the old one")
            }
        }
        notify(&[NotifyState::Ready]);
    }

    /// Shutdown, while the packet threads still judge: the final save, the kernel-set updates,
    /// the metrics and the counters.
    fn finish(&mut self, shared: &Shared) {
        notify(&[NotifyState::Stopping]);
        info!(event = "daemon_stopping", "stopping: saving state, then releasing the queues");
        let (path, snapshot) = shared.take_snapshot();
        if let Err(e) = shared.writer.save_and_wait(path, snapshot, time::now().as_micros(), SHUTDOWN_WAIT) {
            error!(event = "state_save_failed", error = %e, "final state not saved");
        }
        if !shared.effects.finish_mirrors(SHUTDOWN_WAIT) {
            warn!(
                event = "kernel_set_failed",
                failed = 1u64,
                total = Counters::get(&shared.counters.kernel_set_errors),
                "lock mirrors not flushed before exit"
            );
        }
        let metrics_file = lock(&shared.core).engine.config().metrics.file.clone();
        if let Some(path) = metrics_file {
            shared.writer.metrics(path, render_metrics(shared, &self.kernel_readings(shared)));
        }
        log_counters(shared);
    }
}

fn render_metrics(shared: &Shared, kernel: &[(u16, Option<KernelCounters>)]) -> String {
    let now = time::now();
    let health = shared.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let d = lock(&shared.core);
    let mut counters: Vec<(&str, &str, u64)> =
        shared.counters.table().into_iter().map(|(_, metric, help, value)| (metric, help, value)).collect();
    counters.extend(
        counters::engine_counters(d.engine.stats())
            .into_iter()
            .map(|(_, metric, help, value)| (metric, help, value)),
    );
    metrics::render(&MetricsInput {
        version: crate::VERSION,
        start_time_seconds: shared.started_at.as_secs(),
        stats: d.engine.stats(),
        locked_clients: d.engine.locked_clients_at(now).count(),
        suspect_peers: d.engine.peer_count(),
        bans: d.engine.ban_count(),
        flows: d.engine.flow_count(),
        counters,
        kernel: kernel.to_vec(),
        latency: &shared.latency,
        health: &health,
    })
}

fn log_counters(shared: &Shared) {
    let d = lock(&shared.core);
    let s = d.engine.stats();
    let by_reason: String = s
        .by_reason()
        .filter(|&(_, n)| n > 0)
        .map(|(r, n)| format!("{}={n}", r.as_str()))
        .collect::<Vec<_>>()
        .join(" ");
    let health = shared.health.lock().unwrap_or_else(|e| e.into_inner()).state;
    shared.counters.log(&counters::EngineFigures {
        packets: s.packets,
        accepted: s.accepted,
        dropped: s.dropped,
        by_reason: &by_reason,
        locked_clients: d.engine.locked_count(),
        suspect_peers: d.engine.peer_count(),
        flows: d.engine.flow_count(),
        health: health.as_str(),
    });
}
