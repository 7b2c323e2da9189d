//! The engine's side effects, off the verdict path.
//!
//! The packet threads never send, write or spawn anything themselves: what the engine asks for
//! goes into one of two bounded queues, each served by its own thread:
//! - the **sender** ([`Outgoing`]): forged pongs and half-expiry probes (pings forged from the
//!   peer the client last pinged), through non-blocking
//!   raw sockets (`MSG_DONTWAIT`; a full socket buffer, e.g. towards a LAN address whose
//!   neighbour entry never resolves, is a counted error, never a wait);
//! - the **mirror** ([`MirrorJob`]): the lock mirrors that live outside the process (the client
//!   directory and the kernel sets), which may touch a slow disk or run `nft`.
//!
//! Invariants: [`Effects::send`] and [`Effects::mirror`] never block (`try_send`); a job that
//! does not fit is discarded and counted in `effects_discarded`. A discarded mirror update sets
//! [`Effects::resync_needed`], and the housekeeping then sends the whole lock table
//! ([`MirrorJob::Resync`]), so the mirrors converge again once the queue drains.

use super::client_dir::ClientDir;
use super::counters::Counters;
use super::kernel_set::KernelSets;
use super::spoof::Spoofer;
use super::throttle::Throttle;
use crate::clock::Clock;
use crate::config::DaemonConfig;
use crate::events::log_event;
use ftwall::engine::{Snapshot, StateChange};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most packets waiting for the sender thread.
pub(crate) const OUTGOING_QUEUE: usize = 4096;
/// Most jobs waiting for the mirror thread.
pub(crate) const MIRROR_QUEUE: usize = 16_384;

/// A packet the sender thread sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A forged pong from the pinged peer to the client.
    Pong { from: SocketAddr, to: SocketAddr, payload: Vec<u8> },
    /// A half-expiry probe to a locked client: a ping forged from the peer it last pinged.
    Probe { from: SocketAddr, to: SocketAddr, payload: Vec<u8> },
    /// Open or close the raw sockets (`spoof_pongs` changed).
    Configure { spoof_pongs: bool },
}

/// Work for the mirror thread.
#[derive(Debug)]
pub(crate) enum MirrorJob {
    /// One change of the engine's persistent state.
    Record(StateChange),
    /// Load the whole state again (after discarded updates).
    Resync(Snapshot),
    /// The configuration changed (or the daemon starts): reopen what changed (client directory,
    /// kernel sets, allowed ports), then load the whole state.
    Configure(Box<DaemonConfig>, Snapshot),
    /// Apply everything queued so far, wait for `nft`, then answer (at shutdown).
    Finish(SyncSender<()>),
}

/// The sending ends of the two queues, plus the threads behind them.
pub(crate) struct Effects {
    outgoing: SyncSender<Outgoing>,
    mirror: SyncSender<MirrorJob>,
    counters: Arc<Counters>,
    resync_needed: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Effects {
    /// Starts both threads.
    pub(crate) fn start(
        counters: Arc<Counters>,
        config: &DaemonConfig,
        snapshot: &Snapshot,
    ) -> std::io::Result<Self> {
        let (outgoing, outgoing_rx) = sync_channel(OUTGOING_QUEUE);
        let (mirror, mirror_rx) = sync_channel(MIRROR_QUEUE);
        let resync_needed = Arc::new(AtomicBool::new(false));
        let sender = {
            let counters = Arc::clone(&counters);
            let spoofer = config.engine.spoof_pongs.then(open_spoofer);
            std::thread::Builder::new()
                .name("ftwall-send".into())
                .spawn(move || sender_thread(outgoing_rx, spoofer, &counters))?
        };
        let mirror_thread = {
            let counters = Arc::clone(&counters);
            let mut state = Mirrors { client_dir: None, kernel_set: None, counters };
            state.configure(config, snapshot);
            std::thread::Builder::new().name("ftwall-mirror".into()).spawn(move || state.serve(mirror_rx))?
        };
        Ok(Self { outgoing, mirror, counters, resync_needed, threads: vec![sender, mirror_thread] })
    }

    /// Queues a packet to send; never blocks.
    pub(crate) fn send(&self, packet: Outgoing) {
        if self.outgoing.try_send(packet).is_err() {
            Counters::bump(&self.counters.effects_discarded);
        }
    }

    /// Queues a mirror job; never blocks. A discarded job asks for a resync.
    pub(crate) fn mirror(&self, job: MirrorJob) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.mirror.try_send(job) {
            Counters::bump(&self.counters.effects_discarded);
            self.resync_needed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether updates were discarded since the last call (the caller then sends a resync).
    pub(crate) fn take_resync_needed(&self) -> bool {
        self.resync_needed.swap(false, Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until every mirror job queued so far is applied.
    pub(crate) fn finish_mirrors(&self, timeout: Duration) -> bool {
        let (done, wait) = sync_channel(1);
        let deadline = Instant::now() + timeout;
        let mut job = MirrorJob::Finish(done);
        // At shutdown waiting is allowed: retry while the queue is full.
        loop {
            match self.mirror.try_send(job) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    job = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }

    /// Closes the queues and joins both threads (they finish what is queued first).
    pub(crate) fn stop(self) {
        let Self { outgoing, mirror, threads, .. } = self;
        drop(outgoing);
        drop(mirror);
        for t in threads {
            let _ = t.join();
        }
    }
}

fn open_spoofer() -> Spoofer {
    let (spoofer, problems) = Spoofer::open();
    for p in &problems {
        log_event!(SPOOF_UNAVAILABLE, detail = %p, "forged pongs disabled for this family (needs CAP_NET_RAW)");
    }
    spoofer
}

fn sender_thread(jobs: Receiver<Outgoing>, mut spoofer: Option<Spoofer>, counters: &Counters) {
    let mut error_log = Throttle::new(Duration::from_secs(10));
    for job in jobs {
        let (result, to) = match job {
            Outgoing::Configure { spoof_pongs } => {
                if spoof_pongs && spoofer.is_none() {
                    spoofer = Some(open_spoofer());
                } else if !spoof_pongs {
                    spoofer = None;
                }
                continue;
            }
            Outgoing::Pong { from, to, payload } => {
                let Some(spoofer) = &spoofer else { continue };
                let result = spoofer.send(from, to, &payload);
                if result.is_ok() {
                    Counters::bump(&counters.spoofed_pongs);
                }
                (result, to)
            }
            Outgoing::Probe { from, to, payload } => {
                let Some(spoofer) = &spoofer else { continue };
                let result = spoofer.send(from, to, &payload);
                if result.is_ok() {
                    Counters::bump(&counters.probes_sent);
                    log_event!(PROBE_SENT, client = %to.ip(), client_port = to.port(), "half-expiry probe sent");
                }
                (result, to)
            }
        };
        if let Err(e) = result {
            Counters::bump(&counters.spoof_errors);
            if error_log.ready() {
                log_event!(
                    SPOOF_ERROR,
                    error = %e,
                    dest_ip = %to.ip(),
                    dest_port = to.port(),
                    total = Counters::get(&counters.spoof_errors),
                    "forged packet not sent (counted; never retried)"
                );
            }
        }
    }
}

/// The mirror thread's state.
struct Mirrors {
    client_dir: Option<ClientDir>,
    kernel_set: Option<KernelSets>,
    counters: Arc<Counters>,
}

impl Mirrors {
    fn serve(mut self, jobs: Receiver<MirrorJob>) {
        let mut kernel_error_log = Throttle::new(Duration::from_secs(60));
        loop {
            match jobs.recv_timeout(Duration::from_millis(200)) {
                Ok(MirrorJob::Record(record)) => self.record(&record),
                Ok(MirrorJob::Resync(snapshot)) => {
                    Counters::bump(&self.counters.mirror_resyncs);
                    self.resync(&snapshot);
                }
                Ok(MirrorJob::Configure(config, snapshot)) => self.configure(&config, &snapshot),
                Ok(MirrorJob::Finish(done)) => {
                    self.reap(true, &mut kernel_error_log);
                    let _ = done.try_send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.reap(true, &mut kernel_error_log);
                    return;
                }
            }
            self.reap(false, &mut kernel_error_log);
        }
    }

    fn configure(&mut self, config: &DaemonConfig, snapshot: &Snapshot) {
        let client_dir: Option<PathBuf> = config.client_dir.clone();
        let same_dir = match (&self.client_dir, &client_dir) {
            (Some(open), Some(wanted)) => open.dir() == wanted.as_path(),
            (None, None) => true,
            _ => false,
        };
        if !same_dir {
            self.client_dir = client_dir.as_deref().and_then(|dir| match ClientDir::new(dir) {
                Ok(cd) => Some(cd),
                Err(e) => {
                    log_event!(CLIENT_DIR_ERROR, dir = %dir.display(), error = %e, "client directory disabled");
                    None
                }
            });
        }
        if !config.kernel_sets_enabled() {
            self.kernel_set = None;
        } else if self.kernel_set.is_none() {
            // Probes which sets exist (runs nft / ipset once; this thread, never a packet's).
            self.kernel_set = KernelSets::detect(config);
            if let Some(set) = &self.kernel_set {
                log_event!(
                    KERNEL_SET_ENABLED,
                    backend = set.backend().as_str(),
                    locks = snapshot.locks.len(),
                    peers = snapshot.peers.len(),
                    "locked clients, suspect peers and allowed ports mirrored into the kernel sets"
                );
            }
        }
        if let Some(set) = &mut self.kernel_set {
            set.allow_ports(&config.engine.timelock.allow_ports);
        }
        self.resync(snapshot);
    }

    fn record(&mut self, record: &StateChange) {
        let clock = Clock::read();
        if let Some(set) = &mut self.kernel_set {
            set.record(record, clock.engine());
        }
        if let Some(dir) = &self.client_dir {
            let result = match record {
                StateChange::Lock(lock) => dir.locked(lock, &clock),
                StateChange::LockRemoved(network, _) => dir.released(*network),
                _ => Ok(()),
            };
            if let Err(e) = result {
                Counters::bump(&self.counters.client_dir_errors);
                log_event!(CLIENT_DIR_ERROR, error = %e, "client directory not updated");
            }
        }
    }

    fn resync(&mut self, snapshot: &Snapshot) {
        let clock = Clock::read();
        let now = clock.engine();
        if let Some(set) = &mut self.kernel_set {
            set.sync(snapshot, now);
        }
        if let Some(dir) = &self.client_dir {
            let locks: Vec<_> = snapshot.locks.iter().filter(|l| l.until > now).copied().collect();
            if let Err(e) = dir.sync(&locks, &clock) {
                Counters::bump(&self.counters.client_dir_errors);
                log_event!(CLIENT_DIR_ERROR, error = %e, "client directory not synchronised");
            }
        }
    }

    fn reap(&mut self, finishing: bool, error_log: &mut Throttle) {
        let Some(set) = &mut self.kernel_set else { return };
        let failed = if finishing { set.finish() } else { set.reap() };
        if failed > 0 {
            self.counters.kernel_set_errors.fetch_add(failed, Ordering::Relaxed);
            if error_log.ready() {
                log_event!(
                    KERNEL_SET_FAILED,
                    failed,
                    total = Counters::get(&self.counters.kernel_set_errors),
                    "the kernel sets could not be updated (are the rules installed? nft / ipset present?)"
                );
            }
        }
    }
}
