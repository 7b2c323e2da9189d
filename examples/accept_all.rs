//! A trivial NFQUEUE consumer that accepts every packet, with the same queue settings and
//! verdict batching as the ftwall daemon (it reuses the daemon's queue module). It is the
//! yardstick of `benches/live.sh`: the difference between it and ftwall is the cost of judging.
//!
//! ```sh
//! accept_all [QUEUE]      # default queue 0; SIGINT / SIGTERM to stop
//! ```

#[allow(dead_code)]
#[path = "../src/bin/ftwall/daemon/queue.rs"]
mod queue;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> anyhow::Result<()> {
    let queue_number: u16 = std::env::args().nth(1).map(|q| q.parse()).transpose()?.unwrap_or(0);
    let mut q = queue::NfQueue::open(queue::QueueOptions::default(), queue_number)?;
    for w in &q.warnings {
        eprintln!("accept_all: warning: {w}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    eprintln!("accept_all: bound to queue {queue_number}");
    let limit = queue::DEFAULT_VERDICT_BATCH;
    let (mut pending, mut max_id, mut packets) = (0u32, 0u32, 0u64);
    while !stop.load(Ordering::Relaxed) {
        match q.queue.recv() {
            Ok(msg) => {
                packets += 1;
                max_id = msg.get_packet_id();
                pending += 1;
                drop(msg); // verdicted by the batch
                if pending >= limit {
                    q.accept_up_to(max_id)?;
                    pending = 0;
                }
                q.queue.set_nonblocking(pending > 0);
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR | libc::ENOBUFS)) => {
                if pending > 0 {
                    q.accept_up_to(max_id)?;
                    pending = 0;
                    q.queue.set_nonblocking(false);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if pending > 0 {
        q.accept_up_to(max_id)?;
    }
    eprintln!("accept_all: {packets} packets accepted");
    Ok(())
}
