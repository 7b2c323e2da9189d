//! The live daemon: NFQUEUE in, verdicts out, the engine in between.
//!
//! No async: one thread per queue ([`Worker`]), all sharing one engine and its side state
//! ([`Daemon`], behind a mutex held only while a packet is judged). Each loop blocks in `recv`
//! for at most [`queue::TICK`]; every packet it receives is judged and verdicted exactly once.
//! The first queue's thread also runs the housekeeping at every tick (and at least every tick
//! under load): engine timers, probe answers, signals, the debounced state save, the systemd
//! watchdog and kernel drop counters. On SIGTERM every worker flushes its batch and releases its
//! queue, then the state is saved.
//!
//! The release build aborts on panic (`panic = "abort"`): a dead daemon releases its queue, and
//! the `--queue-bypass` rules plus `fail_open` let traffic through until systemd restarts it.

mod client_dir;
mod config_file;
mod control;
mod kernel_set;
mod logging;
mod metrics;
mod queue;
mod spoof;
mod store;
mod time;

use anyhow::Context;
use clap::Args;
use client_dir::ClientDir;
use control::ControlSocket;
use ftwall::engine::StoreRecord;
use ftwall::{Action, Config, Decision, Engine, Event, Settled, Timestamp, Verdict};
use kernel_set::KernelSets;
use logging::{DropLimiter, LogFormat};
use metrics::{LatencyHistogram, MetricsInput};
use queue::{KernelCounters, NfQueue, TICK};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use spoof::{Prober, Spoofer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::rfc3339;
use tracing::{debug, error, info, warn};

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

pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    logging::init(args.log_format, &args.log_level)?;
    let (config, path) = config_file::load(args.config.as_deref())?;
    let control = config.control.enabled.then(|| open_control(&config.control.socket)).flatten();
    let (daemon, workers) = Daemon::start(config, path)?;
    let core = Mutex::new(daemon);
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        if let Some(control) = &control {
            let (core, stop) = (&core, &stop);
            scope.spawn(move || control.serve(core, stop));
        }
        let mut handles = Vec::new();
        let mut main = None;
        for worker in workers {
            if worker.main {
                main = Some(worker);
            } else {
                let (core, stop) = (&core, &stop);
                handles.push(scope.spawn(move || worker.serve(core, stop)));
            }
        }
        let result = main.expect("queue 0 has a worker").serve(&core, &stop);
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.join().map_err(|_| anyhow::anyhow!("a queue thread panicked"))??;
        }
        result
    });
    // Queues released; save the state whatever ended the loop.
    lock(&core).stop(time::now());
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

impl Worker {
    /// The packet loop of one queue. Every packet is verdicted exactly once: accepts that
    /// arrive back to back join the batch (one message for many packets, flushed when full,
    /// before any drop, and as soon as recv would block), drops and offload marks are sent at
    /// once, after the batch (FIFO). A packet that arrives while the loop was waiting (the queue
    /// was empty) is answered at once: batching it would only add the recv that finds the queue
    /// empty to its latency.
    /// The main worker also runs the housekeeping; returns when the daemon must stop.
    fn serve(mut self, core: &Mutex<Daemon>, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut last_tick = Instant::now();
        loop {
            if !self.main && stop.load(Ordering::Relaxed) {
                break;
            }
            let waited = !self.polling;
            match self.queue.queue.recv() {
                Ok(mut msg) => {
                    let received = Instant::now();
                    let now = time::now();
                    let decision = {
                        let mut d = lock(core);
                        if d.engine.poll_timeout().is_some_and(|t| t <= now) {
                            d.engine.handle_timeout(now);
                        }
                        let decision = d.engine.handle_packet(now, msg.get_payload());
                        if decision.reason.natural_verdict() == Verdict::Drop {
                            d.log_drop(now, &decision);
                        }
                        d.drain();
                        self.batch.limit = d.engine.config().verdict_batch;
                        decision
                    };
                    if let Some(settled) = decision.settled {
                        // Decided for good: mark the packet and let it traverse the rules again;
                        // they save the mark to the connection, which the kernel then handles.
                        self.flush_batch(core);
                        let mark = match settled {
                            Settled::Clean => OFFLOAD_CLEAN_MARK,
                            Settled::FastTrack => OFFLOAD_FASTTRACK_MARK,
                        };
                        msg.set_nfmark((msg.get_nfmark() & !OFFLOAD_MASK) | mark);
                        msg.set_verdict(nfq::Verdict::Repeat);
                        let result = self.queue.queue.verdict(msg);
                        self.latency.record(received.elapsed());
                        let mut d = lock(core);
                        d.counters.offloaded += 1;
                        if let Err(e) = result {
                            d.verdict_error(&e);
                        }
                    } else if decision.verdict == Verdict::Accept && self.batch.limit > 1 && !waited {
                        self.batch.max_id = Some(msg.get_packet_id());
                        self.batch.len += 1;
                        self.batch.received.push(received);
                        drop(msg);
                        if self.batch.len >= self.batch.limit {
                            self.flush_batch(core);
                        }
                    } else {
                        self.flush_batch(core);
                        msg.set_verdict(match decision.verdict {
                            Verdict::Accept => nfq::Verdict::Accept,
                            Verdict::Drop => nfq::Verdict::Drop,
                        });
                        let result = self.queue.queue.verdict(msg);
                        self.latency.record(received.elapsed());
                        if let Err(e) = result {
                            lock(core).verdict_error(&e);
                        }
                    }
                    self.spin_until = (!self.busy_poll.is_zero()).then(|| Instant::now() + self.busy_poll);
                    // Look for a next packet without sleeping: one waiting means a burst, whose
                    // accepts are batched.
                    self.set_polling(true);
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => {
                        if self.batch.len > 0 {
                            // Nothing more to read right now: release the batch.
                            self.flush_batch(core);
                        }
                        // Busy polling: keep asking without sleeping until the window closes,
                        // so the next packet does not wait for this thread to be woken up.
                        if self.spin_until.is_some_and(|t| Instant::now() < t) {
                            std::hint::spin_loop();
                        } else {
                            self.spin_until = None;
                            self.set_polling(false);
                        }
                    }
                    Some(libc::ENOBUFS) => lock(core).socket_overflow(),
                    Some(libc::ENOENT | libc::EINVAL | libc::ENOSPC) => lock(core).queue_error(&e),
                    _ => {
                        self.release();
                        return Err(e).context("receiving from NFQUEUE");
                    }
                },
            }
            if self.main && last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                if lock(core).tick()? {
                    break;
                }
            }
        }
        self.release();
        Ok(())
    }

    /// Switches recv between non-blocking (polling for a burst or busy polling) and blocking.
    fn set_polling(&mut self, polling: bool) {
        if polling != self.polling {
            self.polling = polling;
            self.queue.queue.set_nonblocking(polling);
        }
    }

    /// Accepts every packet of the pending batch with one netlink message.
    fn flush_batch(&mut self, core: &Mutex<Daemon>) {
        if let Some(max_id) = self.batch.max_id.take() {
            self.batch.len = 0;
            let result = self.queue.accept_up_to(max_id);
            for received in self.batch.received.drain(..) {
                self.latency.record(received.elapsed());
            }
            let mut d = lock(core);
            d.counters.batches += 1;
            if let Err(e) = result {
                d.verdict_error(&e);
            }
        }
    }

    /// Flushes the batch and releases the queue (the kernel then bypasses or drops per rule).
    fn release(&mut self) {
        if let Some(max_id) = self.batch.max_id.take() {
            let _ = self.queue.accept_up_to(max_id);
            self.batch.received.clear();
        }
        if let Err(e) = self.queue.queue.unbind(self.queue.number) {
            debug!(queue = self.queue.number, error = %e, "unbind failed");
        }
    }
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

/// Counters the shell keeps beside the engine's.
#[derive(Debug, Default)]
struct ShellCounters {
    verdict_errors: u64,
    batches: u64,
    offloaded: u64,
    recv_enobufs: u64,
    recv_errors: u64,
    spoofed_pongs: u64,
    spoof_errors: u64,
    probes_sent: u64,
    probe_answers: u64,
    state_saves: u64,
    state_save_errors: u64,
    kernel_set_errors: u64,
}

/// Accept verdicts not sent yet (see [`Worker::flush_batch`]).
#[derive(Debug, Default)]
struct Batch {
    max_id: Option<u32>,
    len: u32,
    limit: u32,
    /// When each pending packet arrived (for the latency histogram).
    received: Vec<Instant>,
}

/// One queue's socket and pending batch, owned by the thread that serves it.
struct Worker {
    queue: NfQueue,
    batch: Batch,
    latency: Arc<LatencyHistogram>,
    /// `busy_poll_us`: how long to keep polling without sleeping after a packet.
    busy_poll: Duration,
    spin_until: Option<Instant>,
    /// Whether recv is non-blocking (see [`Worker::serve`]).
    polling: bool,
    /// The main worker also does the housekeeping (signals, timers, saves, watchdog).
    main: bool,
}

/// State shared by the queue threads (behind a mutex; see [`Worker::serve`]).
struct Daemon {
    engine: Engine,
    config_path: Option<PathBuf>,
    queue_numbers: Vec<u16>,
    signals: Signals,
    spoofer: Option<Spoofer>,
    prober: Option<Prober>,
    client_dir: Option<ClientDir>,
    limiter: DropLimiter,
    counters: ShellCounters,
    store_dirty: bool,
    last_save: Instant,
    last_save_error: Option<Instant>,
    last_flush: Instant,
    watchdog: Option<Duration>,
    last_watchdog: Instant,
    kernel: Option<KernelCounters>,
    last_kernel_read: Instant,
    last_overflow_log: Option<Instant>,
    last_error_log: Option<Instant>,
    /// When the daemon started (monotonic, for uptime; wall clock, for display).
    started: Instant,
    started_at: Timestamp,
    latency: Arc<LatencyHistogram>,
    /// Mirrors locks, suspect peers and allowed ports into the kernel sets (`kernel_sets`).
    kernel_set: Option<KernelSets>,
    last_kernel_set_error: Option<Instant>,
    last_metrics: Option<Instant>,
    last_metrics_error: Option<Instant>,
}

/// True at most once per `every` for the given last-time slot.
fn every(slot: &mut Option<Instant>, every: Duration) -> bool {
    if slot.is_some_and(|t| t.elapsed() < every) {
        return false;
    }
    *slot = Some(Instant::now());
    true
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        debug!(error = %e, "sd_notify failed");
    }
}

/// The inside and outside address of a dropped packet, for logs.
fn parties(config: &Config, d: &Decision) -> Option<(IpAddr, SocketAddr, SocketAddr)> {
    let p = d.packet?;
    let src = SocketAddr::new(p.src, p.src_port.unwrap_or(0));
    let dst = SocketAddr::new(p.dst, p.dst_port.unwrap_or(0));
    let client = if !config.is_lan(p.src) && config.is_lan(p.dst) { p.dst } else { p.src };
    Some((client, src, dst))
}

impl Daemon {
    fn start(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<(Self, Vec<Worker>)> {
        let queue_numbers: Vec<u16> = (0..config.queues).map(|i| config.queue.saturating_add(i)).collect();
        let latency = Arc::new(LatencyHistogram::default());
        let mut workers = Vec::with_capacity(queue_numbers.len());
        for (i, &number) in queue_numbers.iter().enumerate() {
            let queue = NfQueue::open(&config, number)?;
            for w in &queue.warnings {
                warn!(event = "queue_option_unsupported", queue = number, detail = %w, "a queue option could not be set");
            }
            workers.push(Worker {
                queue,
                batch: Batch {
                    limit: config.verdict_batch,
                    received: Vec::with_capacity(config.verdict_batch as usize),
                    ..Batch::default()
                },
                latency: Arc::clone(&latency),
                busy_poll: Duration::from_micros(u64::from(config.busy_poll_us)),
                spin_until: None,
                polling: false,
                main: i == 0,
            });
        }
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
        let client_dir = open_client_dir(config.client_dir.as_deref(), &engine);
        let spoofer = if config.spoof_pongs { open_spoofer() } else { None };
        let prober = match Prober::open() {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(event = "probe_unavailable", error = %e, "half-expiry probes disabled");
                None
            }
        };
        let limiter = DropLimiter::new(config.log.drop_burst, config.log.drop_interval_seconds);
        let mut daemon = Self {
            config_path,
            kernel: queue::kernel_counters(queue_numbers[0]),
            queue_numbers,
            signals,
            spoofer,
            prober,
            client_dir,
            limiter,
            counters: ShellCounters::default(),
            store_dirty: false,
            last_save: Instant::now(),
            last_save_error: None,
            last_flush: Instant::now(),
            watchdog: sd_notify::watchdog_enabled(),
            last_watchdog: Instant::now(),
            last_kernel_read: Instant::now(),
            last_overflow_log: None,
            last_error_log: None,
            started: Instant::now(),
            started_at: now,
            latency,
            kernel_set: None,
            last_kernel_set_error: None,
            last_metrics: None,
            last_metrics_error: None,
            engine,
        };
        daemon.sync_kernel_set();
        let status = format!("judging NFQUEUE {:?}", daemon.queue_numbers);
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
        info!(
            event = "daemon_started",
            queue = daemon.queue_numbers[0],
            queues = daemon.queue_numbers.len(),
            mode = ?config.mode,
            fail_open = config.fail_open,
            peers_restored = daemon.engine.peer_count(),
            locks_restored = daemon.engine.locked_count(),
            state_file = %config.state_file.display(),
            config = %daemon.config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
            "ftwall started"
        );
        Ok((daemon, workers))
    }

    fn verdict_error(&mut self, e: &std::io::Error) {
        self.counters.verdict_errors += 1;
        if every(&mut self.last_error_log, Duration::from_secs(10)) {
            warn!(event = "verdict_error", error = %e, total = self.counters.verdict_errors, "verdict failed");
        }
    }

    fn socket_overflow(&mut self) {
        self.counters.recv_enobufs += 1;
        if every(&mut self.last_overflow_log, Duration::from_secs(10)) {
            warn!(
                event = "queue_overflow",
                socket_overflows = self.counters.recv_enobufs,
                fail_open = self.engine.config().fail_open,
                "the queue socket buffer overflowed; packets were accepted (fail_open) or dropped by the kernel"
            );
        }
    }

    fn queue_error(&mut self, e: &std::io::Error) {
        self.counters.recv_errors += 1;
        if every(&mut self.last_error_log, Duration::from_secs(10)) {
            warn!(event = "queue_error", error = %e, total = self.counters.recv_errors, "netlink error");
        }
    }

    fn log_drop(&mut self, now: Timestamp, d: &Decision) {
        let config = self.engine.config();
        let Some((client, src, dst)) = parties(config, d) else { return };
        let peer = if src.ip() == client { dst } else { src };
        let enforced = d.verdict == Verdict::Drop;
        if let Some(suppressed) = self.limiter.admit(client, peer.ip(), now) {
            info!(
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
            );
        }
    }

    /// Drains engine events (to logs) and actions (to sockets and files).
    fn drain(&mut self) {
        while let Some(event) = self.engine.poll_event() {
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
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::SendSpoofedPong { from, to, payload } => {
                    if let Some(spoofer) = &self.spoofer {
                        match spoofer.send(from, to, &payload) {
                            Ok(()) => self.counters.spoofed_pongs += 1,
                            Err(e) => {
                                self.counters.spoof_errors += 1;
                                if every(&mut self.last_error_log, Duration::from_secs(10)) {
                                    warn!(event = "spoof_error", error = %e, to = %to, "forged pong not sent");
                                }
                            }
                        }
                    }
                }
                Action::SendProbe { to, payload } => {
                    if let Some(prober) = &self.prober {
                        match prober.send(to, &payload) {
                            Ok(()) => {
                                self.counters.probes_sent += 1;
                                debug!(event = "probe_sent", client = %to, "half-expiry probe sent");
                            }
                            Err(e) => {
                                debug!(event = "probe_error", client = %to, error = %e, "probe not sent")
                            }
                        }
                    }
                }
                Action::Store(record) => {
                    self.store_dirty = true;
                    if let Some(set) = &mut self.kernel_set {
                        set.record(&record, time::now());
                    }
                    if let Some(dir) = &self.client_dir {
                        let result = match record {
                            StoreRecord::Lock(lock) => dir.locked(&lock),
                            StoreRecord::LockRemoved(client) => dir.released(client),
                            _ => Ok(()),
                        };
                        if let Err(e) = result {
                            warn!(event = "client_dir_error", error = %e, "client directory not updated");
                        }
                    }
                }
            }
        }
    }

    /// Housekeeping. Returns true when the daemon must stop.
    fn tick(&mut self) -> anyhow::Result<bool> {
        let now = time::now();
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        if let Some(prober) = &self.prober {
            let engine = &mut self.engine;
            let answers = &mut self.counters.probe_answers;
            prober.drain(64, |from, payload| {
                if engine.handle_probe_answer(now, from, payload) {
                    *answers += 1;
                    debug!(event = "probe_answered", client = %from, "locked client answered the probe");
                }
            });
        }
        self.drain();
        let pending: Vec<i32> = self.signals.pending().collect();
        for signal in pending {
            match signal {
                SIGHUP => self.reload(),
                SIGUSR1 => self.log_counters(),
                // The caller releases the queues, then calls `stop`.
                SIGTERM | SIGINT => return Ok(true),
                _ => {}
            }
        }
        if self.store_dirty && self.last_save.elapsed() >= Duration::from_secs(1) {
            self.save_state(now);
        }
        if self.last_flush.elapsed() >= Duration::from_secs(5) {
            self.last_flush = Instant::now();
            for (client, peer, suppressed) in self.limiter.flush(now) {
                info!(event = "packet_dropped", client = %client, peer = %peer, suppressed, "further drops suppressed");
            }
        }
        if let Some(interval) = self.watchdog {
            if self.last_watchdog.elapsed() >= interval / 3 {
                self.last_watchdog = Instant::now();
                notify(&[NotifyState::Watchdog]);
            }
        }
        self.check_kernel_set(false);
        let interval = Duration::from_secs(self.engine.config().metrics.interval_seconds);
        if self.engine.config().metrics.file.is_some() && every(&mut self.last_metrics, interval) {
            self.write_metrics();
        }
        if self.last_kernel_read.elapsed() >= Duration::from_secs(5) {
            self.last_kernel_read = Instant::now();
            self.check_kernel_counters();
        }
        Ok(false)
    }

    fn check_kernel_counters(&mut self) {
        // Summed over this daemon's queues.
        let mut fresh = KernelCounters::default();
        for &number in &self.queue_numbers {
            let Some(k) = queue::kernel_counters(number) else { return };
            fresh.queue_total += k.queue_total;
            fresh.queue_dropped += k.queue_dropped;
            fresh.user_dropped += k.user_dropped;
        }
        if let Some(old) = self.kernel {
            let queue_dropped = fresh.queue_dropped.saturating_sub(old.queue_dropped);
            let user_dropped = fresh.user_dropped.saturating_sub(old.user_dropped);
            if queue_dropped > 0 || user_dropped > 0 {
                warn!(
                    event = "queue_overflow",
                    queue_dropped,
                    user_dropped,
                    queue_total = fresh.queue_total,
                    fail_open = self.engine.config().fail_open,
                    "the kernel could not queue every packet (accepted if fail_open, else dropped)"
                );
            }
        }
        self.kernel = Some(fresh);
    }

    /// Starts or stops mirroring into the kernel sets per `kernel_sets` (detecting the backend
    /// when starting), and loads the allowed ports, every current lock and every suspect peer.
    fn sync_kernel_set(&mut self) {
        if !self.engine.config().kernel_sets_enabled() {
            self.kernel_set = None;
            return;
        }
        if self.kernel_set.is_none() {
            self.kernel_set = KernelSets::detect(self.engine.config());
            if let Some(set) = &self.kernel_set {
                info!(
                    event = "kernel_set_enabled",
                    backend = set.backend().as_str(),
                    locks = self.engine.locked_count(),
                    peers = self.engine.peer_count(),
                    "locked clients, suspect peers and allowed ports mirrored into the kernel sets"
                );
            }
        }
        let Some(set) = &mut self.kernel_set else { return };
        set.allow_ports(&self.engine.config().timelock.allow_ports);
        set.sync(&self.engine.snapshot(), time::now());
    }

    fn check_kernel_set(&mut self, finishing: bool) {
        let Some(set) = &mut self.kernel_set else { return };
        let failed = if finishing { set.finish() } else { set.reap() };
        self.counters.kernel_set_errors += failed;
        if failed > 0 && every(&mut self.last_kernel_set_error, Duration::from_secs(60)) {
            warn!(
                event = "kernel_set_failed",
                failed,
                total = self.counters.kernel_set_errors,
                "the kernel sets could not be updated (were the rules re-installed or removed?)"
            );
        }
    }

    fn write_metrics(&mut self) {
        let Some(path) = self.engine.config().metrics.file.clone() else { return };
        let c = &self.counters;
        let counters = vec![
            (
                "ftwall_flows_offloaded_total",
                "Flows handed to the kernel by a mark (clean or FastTrack).",
                c.offloaded,
            ),
            ("ftwall_verdict_batches_total", "Batch accept messages sent.", c.batches),
            ("ftwall_verdict_errors_total", "Verdicts the kernel refused.", c.verdict_errors),
            ("ftwall_socket_overflows_total", "ENOBUFS on the queue socket.", c.recv_enobufs),
            ("ftwall_spoofed_pongs_total", "Forged pongs sent to pinging clients.", c.spoofed_pongs),
            ("ftwall_probes_sent_total", "Half-expiry probes sent to locked clients.", c.probes_sent),
            ("ftwall_probe_answers_total", "Probes a locked client answered.", c.probe_answers),
            ("ftwall_state_saves_total", "State file saves.", c.state_saves),
            ("ftwall_state_save_errors_total", "Failed state file saves.", c.state_save_errors),
            (
                "ftwall_kernel_set_errors_total",
                "Failed updates of the kernel sets (nft sets or ipsets).",
                c.kernel_set_errors,
            ),
            (
                "ftwall_events_discarded_total",
                "Engine events discarded undrained.",
                self.engine.stats().events_discarded,
            ),
        ];
        let now = time::now();
        let text = metrics::render(&MetricsInput {
            version: crate::VERSION,
            start_time_seconds: self.started_at.as_secs(),
            stats: self.engine.stats(),
            locked_clients: self.engine.locked_clients_at(now).count(),
            suspect_peers: self.engine.peer_count(),
            bans: self.engine.ban_count(),
            flows: self.engine.flow_count(),
            counters,
            kernel: self.queue_numbers.iter().map(|&q| (q, queue::kernel_counters(q))).collect(),
            latency: &self.latency,
        });
        if let Err(e) = metrics::write_atomic(&path, &text) {
            if every(&mut self.last_metrics_error, Duration::from_secs(300)) {
                warn!(event = "metrics_write_failed", file = %path.display(), error = %e, "metrics file not written");
            }
        }
    }

    fn save_state(&mut self, now: Timestamp) {
        let path = self.engine.config().state_file.clone();
        match store::save(&path, &self.engine.snapshot(), now.as_micros()) {
            Ok(()) => {
                self.store_dirty = false;
                self.last_save = Instant::now();
                self.last_save_error = None;
                self.counters.state_saves += 1;
                info!(
                    event = "state_saved",
                    file = %path.display(),
                    peers = self.engine.peer_count(),
                    locks = self.engine.locked_count(),
                    "state saved"
                );
            }
            Err(e) => {
                // Keep the in-memory state and retry on a later tick.
                self.last_save = Instant::now();
                self.counters.state_save_errors += 1;
                if every(&mut self.last_save_error, Duration::from_secs(60)) {
                    error!(event = "state_save_failed", file = %path.display(), error = %e, "state not saved; will retry");
                }
            }
        }
    }

    fn reload(&mut self) {
        let mut reloading = vec![NotifyState::Reloading];
        if let Ok(usec) = NotifyState::monotonic_usec_now() {
            reloading.push(usec);
        }
        notify(&reloading);
        let result = config_file::load(self.config_path.as_deref());
        match result {
            Ok((mut config, _)) => {
                let old = self.engine.config().clone();
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
                if config.client_dir != old.client_dir {
                    self.client_dir = open_client_dir(config.client_dir.as_deref(), &self.engine);
                }
                if config.spoof_pongs && self.spoofer.is_none() {
                    self.spoofer = open_spoofer();
                } else if !config.spoof_pongs {
                    self.spoofer = None;
                }
                self.limiter.reconfigure(config.log.drop_burst, config.log.drop_interval_seconds);
                self.engine.set_config(config);
                self.drain();
                self.sync_kernel_set();
                info!(
                    event = "config_reloaded",
                    peers = self.engine.peer_count(),
                    locks = self.engine.locked_count(),
                    "configuration reloaded; state kept"
                );
            }
            Err(e) => {
                error!(event = "config_reload_failed", error = %format!("{e:#}"), "new configuration rejected; keeping the old one")
            }
        }
        notify(&[NotifyState::Ready]);
    }

    fn log_counters(&self) {
        let s = self.engine.stats();
        let by_reason: String = s
            .by_reason()
            .filter(|&(_, n)| n > 0)
            .map(|(r, n)| format!("{}={n}", r.as_str()))
            .collect::<Vec<_>>()
            .join(" ");
        let c = &self.counters;
        info!(
            event = "counters",
            packets = s.packets,
            accepted = s.accepted,
            dropped = s.dropped,
            by_reason = %by_reason,
            locked_clients = self.engine.locked_count(),
            suspect_peers = self.engine.peer_count(),
            flows = self.engine.flow_count(),
            verdict_errors = c.verdict_errors,
            verdict_batches = c.batches,
            flows_offloaded = c.offloaded,
            socket_overflows = c.recv_enobufs,
            spoofed_pongs = c.spoofed_pongs,
            probes_sent = c.probes_sent,
            probe_answers = c.probe_answers,
            state_saves = c.state_saves,
            state_save_errors = c.state_save_errors,
            kernel_queue_dropped = self.kernel.map_or(0, |k| k.queue_dropped),
            kernel_user_dropped = self.kernel.map_or(0, |k| k.user_dropped),
            "counters"
        );
    }

    fn stop(&mut self, now: Timestamp) {
        notify(&[NotifyState::Stopping]);
        info!(event = "daemon_stopping", "stopping: saving state and releasing the queue");
        self.save_state(now);
        self.check_kernel_set(true);
        self.write_metrics();
        self.log_counters();
    }
}

fn open_client_dir(dir: Option<&Path>, engine: &Engine) -> Option<ClientDir> {
    let dir = dir?;
    match ClientDir::new(dir).and_then(|cd| {
        let locks: Vec<_> = engine.locked_clients().collect();
        cd.sync(&locks).map(|()| cd)
    }) {
        Ok(cd) => Some(cd),
        Err(e) => {
            warn!(event = "client_dir_error", dir = %dir.display(), error = %e, "client directory disabled");
            None
        }
    }
}

fn open_spoofer() -> Option<Spoofer> {
    let (spoofer, problems) = Spoofer::open();
    for p in &problems {
        warn!(event = "spoof_unavailable", detail = %p, "forged pongs disabled for this family (needs CAP_NET_RAW)");
    }
    Some(spoofer)
}
