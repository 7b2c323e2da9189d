//! The file writer thread: state saves and metrics files, off the verdict path.
//!
//! Callers take a snapshot (under the daemon lock, a copy in memory) and hand it over with
//! [`Writer::save`] / [`Writer::metrics`], which never block: the queue holds a few jobs and a
//! job that does not fit is refused (the state stays dirty and is saved at a later tick; a
//! metrics write is skipped and counted). Serialising and the `fsync`s happen on this thread
//! only, so a slow or full disk delays the files, never a verdict.

use super::counters::Counters;
use super::store;
use super::throttle::Throttle;
use crate::events::log_event;
use ftwall::engine::Snapshot;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Most jobs waiting for the writer.
const QUEUE: usize = 4;

enum Job {
    State {
        path: PathBuf,
        snapshot: Snapshot,
        saved_at_micros: u64,
        done: Option<SyncSender<io::Result<()>>>,
    },
    Metrics {
        path: PathBuf,
        text: String,
    },
}

/// The writer thread's queue.
pub(crate) struct Writer {
    jobs: SyncSender<Job>,
    /// Set by the thread when a save failed: the caller marks the state dirty again.
    failed: Arc<AtomicBool>,
    counters: Arc<Counters>,
    thread: JoinHandle<()>,
}

impl Writer {
    pub(crate) fn start(counters: Arc<Counters>) -> io::Result<Self> {
        let (jobs, rx) = sync_channel(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let thread = {
            let (failed, counters) = (Arc::clone(&failed), Arc::clone(&counters));
            std::thread::Builder::new()
                .name("ftwall-writer".into())
                .spawn(move || serve(rx, &failed, &counters))?
        };
        Ok(Self { jobs, failed, counters, thread })
    }

    /// Queues a state save; false if the queue is full (try again later). With `done`, the
    /// result is sent there once the file is written.
    pub(crate) fn save(
        &self,
        path: PathBuf,
        snapshot: Snapshot,
        saved_at_micros: u64,
        done: Option<SyncSender<io::Result<()>>>,
    ) -> bool {
        self.jobs.try_send(Job::State { path, snapshot, saved_at_micros, done }).is_ok()
    }

    /// Queues a metrics write; skipped (and counted) if the writer is busy.
    pub(crate) fn metrics(&self, path: PathBuf, text: String) {
        if self.jobs.try_send(Job::Metrics { path, text }).is_err() {
            Counters::bump(&self.counters.metrics_writes_skipped);
        }
    }

    /// Whether a save failed since the last call.
    pub(crate) fn take_failed(&self) -> bool {
        self.failed.swap(false, Ordering::Relaxed)
    }

    /// Saves `snapshot` and waits for it (at most `timeout`): for operator changes and shutdown.
    /// Waiting for room in the queue is allowed here: the caller is not a packet thread.
    pub(crate) fn save_and_wait(
        &self,
        path: PathBuf,
        snapshot: Snapshot,
        saved_at_micros: u64,
        timeout: Duration,
    ) -> io::Result<()> {
        let (done, wait) = sync_channel(1);
        let job = Job::State { path, snapshot, saved_at_micros, done: Some(done) };
        self.jobs.send(job).map_err(|_| io::Error::other("the writer thread is gone"))?;
        wait.recv_timeout(timeout)
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "state save still running"))?
    }

    /// Finishes queued jobs and joins the thread.
    pub(crate) fn stop(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

fn serve(jobs: Receiver<Job>, failed: &AtomicBool, counters: &Counters) {
    let mut save_error_log = Throttle::new(Duration::from_secs(60));
    let mut metrics_error_log = Throttle::new(Duration::from_secs(300));
    for job in jobs {
        match job {
            Job::State { path, snapshot, saved_at_micros, done } => {
                let result = store::save(&path, &snapshot, saved_at_micros);
                match &result {
                    Ok(()) => {
                        // The next failure after a success is logged at once.
                        save_error_log.reset();
                        Counters::bump(&counters.state_saves);
                        log_event!(
                            STATE_SAVED,
                            file = %path.display(),
                            peers = snapshot.peers.len(),
                            locks = snapshot.locks.len(),
                            bans = snapshot.bans.len(),
                            "state saved"
                        );
                    }
                    Err(e) => {
                        Counters::bump(&counters.state_save_errors);
                        failed.store(true, Ordering::Relaxed);
                        if save_error_log.ready() {
                            log_event!(STATE_SAVE_FAILED, file = %path.display(), error = %e, "state not saved; will retry");
                        }
                    }
                }
                if let Some(done) = done {
                    let _ = done.try_send(result);
                }
            }
            Job::Metrics { path, text } => {
                if let Err(e) = crate::files::write_atomic(&path, text.as_bytes()) {
                    if metrics_error_log.ready() {
                        log_event!(METRICS_WRITE_FAILED, file = %path.display(), error = %e, "metrics file not written");
                    }
                }
            }
        }
    }
}
