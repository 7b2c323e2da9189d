//! The packet loop of one queue: receive, judge, verdict. Nothing else.
//!
//! Invariants:
//! - every packet received gets exactly one verdict;
//! - the loop never waits on anything but the queue socket and the engine lock, which other
//!   threads hold only for in-memory work (no IO, no syscalls that can block): side effects go
//!   to bounded queues ([`super::effects`]), logs to a bounded log queue;
//! - a packet comes back from `REPEAT` at most once: a packet that arrives already carrying
//!   ftwall's offload mark (0x1 clean / 0x2 FastTrack in bits 0x3) was judged before, and the
//!   rules that should have consumed the mark are missing. It is answered by its mark with a
//!   plain ACCEPT/DROP, never judged again (so a ping never gets a second forged pong), and
//!   offload is switched off for the rest of the run (`offload_rules_missing`, logged once).
//!   Once offload is off the daemon never answers REPEAT, so any later marked packet carries
//!   somebody else's mark and is judged like any other.

use super::health::QueueProgress;
use super::metrics::LatencyHistogram;
use super::queue::NfQueue;
use super::{lock, Shared, OFFLOAD_CLEAN_MARK, OFFLOAD_FASTTRACK_MARK, OFFLOAD_MASK};
use crate::events::log_event;
use anyhow::Context;
use ftwall::{Settled, Verdict};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
pub(crate) struct Worker {
    queue: NfQueue,
    batch: Batch,
    latency: Arc<LatencyHistogram>,
    /// `busy_poll_us`: how long to keep polling without sleeping after a packet.
    busy_poll: Duration,
    spin_until: Option<Instant>,
    /// Whether recv is non-blocking (see [`Worker::serve`]).
    polling: bool,
    /// Index of this queue's progress in [`Shared::progress`].
    index: usize,
}

impl Worker {
    pub(crate) fn new(
        queue: NfQueue,
        verdict_batch: u32,
        busy_poll_us: u32,
        latency: Arc<LatencyHistogram>,
        index: usize,
    ) -> Self {
        Self {
            queue,
            batch: Batch {
                limit: verdict_batch,
                received: Vec::with_capacity(verdict_batch as usize),
                ..Batch::default()
            },
            latency,
            busy_poll: Duration::from_micros(u64::from(busy_poll_us)),
            spin_until: None,
            polling: false,
            index,
        }
    }

    /// The packet loop. Every packet is verdicted exactly once: accepts that arrive back to
    /// back join the batch (one message for many packets, flushed when full, before any drop,
    /// and as soon as recv would block), drops and offload marks are sent at once, after the
    /// batch (FIFO). A packet that arrives while the loop was waiting (the queue was empty) is
    /// answered at once: batching it would only add the recv that finds the queue empty to its
    /// latency. Returns when [`Shared::release`] is set, after releasing the queue.
    pub(crate) fn serve(mut self, shared: &Shared) -> anyhow::Result<()> {
        let progress = &shared.progress[self.index];
        loop {
            if shared.release.load(Ordering::Relaxed) {
                break;
            }
            let waited = !self.polling;
            match self.queue.recv() {
                Ok(msg) => {
                    let received = Instant::now();
                    let lag = msg.get_timestamp().and_then(|t| SystemTime::now().duration_since(t).ok());
                    progress.received(msg.get_packet_id(), lag);
                    let (verdict, settled) = self.judge(shared, &msg);
                    if let Some(settled) = settled {
                        // Decided for good: mark the packet and let it traverse the rules again;
                        // they save the mark to the connection and accept or drop it by its mark.
                        self.flush_batch(shared, progress);
                        let mark = match settled {
                            Settled::Clean => OFFLOAD_CLEAN_MARK,
                            Settled::FastTrack => OFFLOAD_FASTTRACK_MARK,
                        };
                        let result = self.queue.repeat_with_mark(msg, mark, OFFLOAD_MASK);
                        self.latency.record(received.elapsed());
                        progress.verdict_sent();
                        shared.counters.flows_offloaded.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = result {
                            shared.verdict_error(&e);
                        }
                    } else if verdict == Verdict::Accept && self.batch.limit > 1 && !waited {
                        self.batch.max_id = Some(msg.get_packet_id());
                        self.batch.len += 1;
                        self.batch.received.push(received);
                        drop(msg);
                        if self.batch.len >= self.batch.limit {
                            self.flush_batch(shared, progress);
                        }
                    } else {
                        self.flush_batch(shared, progress);
                        let result = self.queue.verdict(msg, verdict);
                        self.latency.record(received.elapsed());
                        progress.verdict_sent();
                        if let Err(e) = result {
                            shared.verdict_error(&e);
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
                            self.flush_batch(shared, progress);
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
                    Some(libc::ENOBUFS) => shared.socket_overflow(),
                    Some(libc::ENOENT | libc::EINVAL | libc::ENOSPC) => shared.queue_error(&e),
                    _ => {
                        self.release(shared);
                        return Err(e).context("receiving from NFQUEUE");
                    }
                },
            }
        }
        self.release(shared);
        Ok(())
    }

    /// The verdict for one packet, and whether to offload its flow (see the module docs).
    fn judge(&mut self, shared: &Shared, msg: &nfq::Message) -> (Verdict, Option<Settled>) {
        let mark = msg.get_nfmark() & OFFLOAD_MASK;
        let ours = mark == OFFLOAD_CLEAN_MARK || mark == OFFLOAD_FASTTRACK_MARK;
        if ours && !shared.offload_rules_missing.load(Ordering::Relaxed) {
            shared.marked_return(mark, msg.get_packet_id());
            let verdict = if mark == OFFLOAD_FASTTRACK_MARK { Verdict::Drop } else { Verdict::Accept };
            return (verdict, None);
        }
        let mut d = lock(&shared.core);
        // NFQA_HWADDR: the kernel sends the source hardware address of packets that came in on
        // an Ethernet-like device (the FORWARD hook included); the engine uses it only for
        // `timelock.mac_tie`.
        let src_mac = msg.get_hw_addr().and_then(|a| <[u8; 6]>::try_from(a).ok());
        let meta = ftwall::engine::PacketMeta { src_mac };
        let decision = d.judge(shared, msg.get_payload(), msg.get_indev(), meta);
        let settled = decision.settled.filter(|_| !shared.offload_rules_missing.load(Ordering::Relaxed));
        // Follows reloads of `verdict_batch`.
        self.batch.limit = d.config.verdict_batch;
        (decision.verdict, settled)
    }

    /// Switches recv between non-blocking (polling for a burst or busy polling) and blocking.
    fn set_polling(&mut self, polling: bool) {
        if polling != self.polling {
            self.polling = polling;
            self.queue.set_nonblocking(polling);
        }
    }

    /// Accepts every packet of the pending batch with one netlink message.
    fn flush_batch(&mut self, shared: &Shared, progress: &QueueProgress) {
        if let Some(max_id) = self.batch.max_id.take() {
            self.batch.len = 0;
            let result = self.queue.accept_up_to(max_id);
            for received in self.batch.received.drain(..) {
                self.latency.record(received.elapsed());
            }
            progress.verdict_sent();
            shared.counters.verdict_batches.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = result {
                shared.verdict_error(&e);
            }
        }
    }

    /// Flushes the batch and releases the queue (the kernel then bypasses or drops per rule).
    fn release(&mut self, shared: &Shared) {
        if let Some(max_id) = self.batch.max_id.take() {
            let _ = self.queue.accept_up_to(max_id);
            self.batch.received.clear();
        }
        if let Err(e) = self.queue.release() {
            log_event!(QUEUE_UNBIND_FAILED, queue = self.queue.number, error = %e, "unbind failed");
        }
        shared.queue_released();
    }
}
