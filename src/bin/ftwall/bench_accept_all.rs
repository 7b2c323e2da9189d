//! `ftwall bench-accept-all` (hidden): a trivial NFQUEUE consumer that accepts every packet, with
//! the daemon's own queue settings and verdict batching (it opens the queue through
//! `daemon/queue.rs`). It is the yardstick of `benches/live.sh`: the difference between it and
//! ftwall is the cost of judging.
//!
//! Invariant: every packet received is accepted, by batch, before the command returns; nothing
//! is judged, logged or counted beyond the total printed at the end.

use crate::daemon::queue::{NfQueue, QueueOptions};
use clap::Args;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Options of `ftwall bench-accept-all`.
#[derive(Debug, Args)]
pub(crate) struct AcceptAllArgs {
    /// The queue to bind.
    #[arg(default_value_t = 0)]
    queue: u16,
}

/// Accepts every packet of the queue until SIGINT or SIGTERM.
pub(crate) fn run(args: AcceptAllArgs) -> anyhow::Result<ExitCode> {
    let mut q = NfQueue::open(QueueOptions::default(), args.queue)?;
    for w in &q.warnings {
        eprintln!("accept_all: warning: {w}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    eprintln!("accept_all: bound to queue {}", args.queue);
    let limit = crate::config::DaemonConfig::default().verdict_batch;
    let (mut pending, mut max_id, mut packets) = (0u32, 0u32, 0u64);
    while !stop.load(Ordering::Relaxed) {
        match q.recv() {
            Ok(msg) => {
                packets += 1;
                max_id = msg.get_packet_id();
                pending += 1;
                drop(msg); // verdicted by the batch
                if pending >= limit {
                    q.accept_up_to(max_id)?;
                    pending = 0;
                }
                q.set_nonblocking(pending > 0);
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR | libc::ENOBUFS)) => {
                if pending > 0 {
                    q.accept_up_to(max_id)?;
                    pending = 0;
                    q.set_nonblocking(false);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if pending > 0 {
        q.accept_up_to(max_id)?;
    }
    eprintln!("accept_all: {packets} packets accepted");
    Ok(ExitCode::SUCCESS)
}
