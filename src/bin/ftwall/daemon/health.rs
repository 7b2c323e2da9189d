//! Is ftwall judging? The health state behind `ftwall ctl status`, the metrics and the
//! `health_changed` event.
//!
//! A live daemon can still let packets through unjudged: when its queue is full the kernel
//! accepts them (`fail_open`) without counting them anywhere, and a packet thread that stopped
//! making progress looks, from outside, just like an idle one. The housekeeping thread therefore
//! samples, every tick and without taking the engine lock:
//! - each queue's progress, published by its packet thread as atomics ([`QueueProgress`]): the
//!   packets received, the last packet id, when the last verdict was sent, and the age of the
//!   last packet when it was received (the kernel's `NFQA_TIMESTAMP`, when packets carry one);
//! - the kernel's view of each queue (`/proc/net/netfilter/nfnetlink_queue`): packets waiting,
//!   the id sequence, and its drop counters;
//! - the daemon's own loss counters (socket overflows, discarded side effects and log lines).
//!
//! [`HealthMonitor::update`] turns a sample into a [`HealthState`] with reasons. `stalled`: a
//! queue has had packets waiting for [`STALL_AFTER`] without a single verdict since. `degraded`: packets may pass
//! unjudged or effects are lost (queue filling up, kernel or socket drops, discarded effects or
//! log lines, offload rules missing, counters unreadable); a loss keeps the state degraded for
//! [`HOLD`] so a short burst is still visible to a poller.

pub(crate) use crate::protocol::{HealthReport, HealthState, QueueHealth};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// No verdict for this long while packets wait: stalled.
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(1);
/// How long a loss keeps the state degraded.
pub(crate) const HOLD: Duration = Duration::from_secs(10);

/// One queue's progress, written by its packet thread (relaxed atomics, no lock).
#[derive(Debug)]
pub(crate) struct QueueProgress {
    pub(crate) number: u16,
    received: AtomicU64,
    last_id: AtomicU32,
    /// Microseconds since `epoch` of the last verdict sent.
    last_verdict_us: AtomicU64,
    /// Age of the last packet when it was received, in microseconds (0: unknown).
    lag_us: AtomicU64,
    epoch: Instant,
}

impl QueueProgress {
    pub(crate) fn new(number: u16, epoch: Instant) -> Self {
        Self {
            number,
            received: AtomicU64::new(0),
            last_id: AtomicU32::new(0),
            last_verdict_us: AtomicU64::new(0),
            lag_us: AtomicU64::new(0),
            epoch,
        }
    }

    /// A packet was received (`lag`: its age, when the kernel stamped it).
    pub(crate) fn received(&self, id: u32, lag: Option<Duration>) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_id.store(id, Ordering::Relaxed);
        if let Some(lag) = lag {
            self.lag_us.store(u64::try_from(lag.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }

    /// A verdict was sent.
    pub(crate) fn verdict_sent(&self) {
        let us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_verdict_us.store(us, Ordering::Relaxed);
    }

    fn last_verdict(&self) -> Option<Instant> {
        match self.last_verdict_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(self.epoch + Duration::from_micros(us)),
        }
    }
}

/// The kernel's counters for one queue (see `queue::kernel_counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KernelQueue {
    pub(crate) waiting: u64,
    pub(crate) id_sequence: u32,
    pub(crate) queue_dropped: u64,
    pub(crate) user_dropped: u64,
}

/// One tick's inputs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// Per queue, as read from `/proc` (None: unreadable).
    pub(crate) kernel: Vec<Option<KernelQueue>>,
    /// Monotonic totals of the daemon's own losses.
    pub(crate) socket_overflows: u64,
    pub(crate) effects_discarded: u64,
    pub(crate) log_lines_discarded: u64,
    pub(crate) verdict_errors: u64,
    /// Packets came back already marked: the offload rules are missing.
    pub(crate) offload_rules_missing: bool,
}

/// Keeps the loss history between ticks; see the module documentation.
#[derive(Debug)]
pub(crate) struct HealthMonitor {
    queue_maxlen: u64,
    fail_open: bool,
    previous: Option<Sample>,
    /// Per queue: since when packets have been waiting without a verdict.
    waiting_since: Vec<Option<Instant>>,
    /// When each kind of loss was last seen, with its description.
    recent: Vec<(Instant, String)>,
    report: HealthReport,
}

impl HealthMonitor {
    pub(crate) fn new(queue_maxlen: u32, fail_open: bool) -> Self {
        Self {
            queue_maxlen: u64::from(queue_maxlen.max(1)),
            fail_open,
            previous: None,
            waiting_since: Vec::new(),
            recent: Vec::new(),
            report: HealthReport::default(),
        }
    }

    pub(crate) fn report(&self) -> &HealthReport {
        &self.report
    }

    /// Folds in one tick's sample; returns the previous state if the state changed.
    pub(crate) fn update(
        &mut self,
        now: Instant,
        progress: &[&QueueProgress],
        sample: Sample,
    ) -> Option<HealthState> {
        let mut stalled = Vec::new();
        let mut reasons = Vec::new();
        let mut queues = Vec::with_capacity(progress.len());
        let prev = self.previous.take();
        self.waiting_since.resize(progress.len(), None);
        for (i, p) in progress.iter().enumerate() {
            let k = sample.kernel.get(i).copied().flatten();
            let last_verdict = p.last_verdict();
            let received = p.received.load(Ordering::Relaxed);
            let since = last_verdict.map(|t| now.saturating_duration_since(t));
            let waiting = k.map(|k| k.waiting);
            let since_waiting = &mut self.waiting_since[i];
            *since_waiting = match (waiting, *since_waiting) {
                (Some(0) | None, _) => None,
                // A verdict since: progress, the window starts again.
                (Some(_), Some(ws)) if last_verdict.is_some_and(|v| v > ws) => Some(now),
                (Some(_), Some(ws)) => Some(ws),
                (Some(_), None) => Some(now),
            };
            if let Some(waiting) = waiting {
                let percent = waiting * 100 / self.queue_maxlen;
                let stuck_for = since_waiting.map(|ws| now.saturating_duration_since(ws));
                if let Some(stuck_for) = stuck_for.filter(|d| *d >= STALL_AFTER) {
                    stalled.push(format!(
                        "queue {}: {waiting} packets waiting, no verdict for {} ms",
                        p.number,
                        stuck_for.as_millis()
                    ));
                } else if waiting >= self.queue_maxlen {
                    reasons.push(format!(
                        "queue {} full ({waiting} packets): the kernel {} new packets unjudged",
                        p.number,
                        if self.fail_open { "accepts" } else { "drops" }
                    ));
                } else if percent >= 50 {
                    reasons.push(format!("queue {} {percent}% full", p.number));
                }
            }
            if let (Some(k), Some(old)) = (k, prev.as_ref().and_then(|s| s.kernel.get(i).copied().flatten()))
            {
                let lost = k.queue_dropped.saturating_sub(old.queue_dropped)
                    + k.user_dropped.saturating_sub(old.user_dropped);
                if lost > 0 {
                    self.remember(
                        now,
                        format!("queue {}: the kernel could not queue or deliver {lost} packets", p.number),
                    );
                }
            }
            let unread = k.map(|k| u64::from(k.id_sequence.wrapping_sub(p.last_id.load(Ordering::Relaxed))));
            queues.push(QueueHealth {
                queue: p.number,
                received,
                waiting,
                occupancy_percent: waiting.map(|w| w * 100 / self.queue_maxlen),
                unread: if received == 0 { None } else { unread },
                since_last_verdict_ms: since.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                verdict_lag_us: match p.lag_us.load(Ordering::Relaxed) {
                    0 => None,
                    us => Some(us),
                },
            });
        }
        if sample.kernel.iter().any(Option::is_none) {
            reasons.push("kernel queue counters unreadable (/proc/net/netfilter/nfnetlink_queue)".into());
        }
        if sample.offload_rules_missing {
            reasons.push(
                "offload rules missing: marked packets came back (every packet is judged in userspace)"
                    .into(),
            );
        }
        if let Some(old) = &prev {
            for (what, new, old) in [
                ("queue socket overflows", sample.socket_overflows, old.socket_overflows),
                ("side effects discarded", sample.effects_discarded, old.effects_discarded),
                ("log lines discarded", sample.log_lines_discarded, old.log_lines_discarded),
                ("verdicts refused by the kernel", sample.verdict_errors, old.verdict_errors),
            ] {
                if new > old {
                    self.remember(now, format!("{}: {what}", new - old));
                }
            }
        }
        self.recent.retain(|(t, _)| now.saturating_duration_since(*t) < HOLD);
        reasons.extend(self.recent.iter().map(|(_, r)| r.clone()));
        let state = if !stalled.is_empty() {
            HealthState::Stalled
        } else if !reasons.is_empty() {
            HealthState::Degraded
        } else {
            HealthState::Ok
        };
        stalled.extend(reasons);
        self.previous = Some(sample);
        let old = self.report.state;
        self.report = HealthReport { state, reasons: stalled, queues };
        (old != state).then_some(old)
    }

    fn remember(&mut self, now: Instant, what: String) {
        self.recent.push((now, what));
        // Bounded: only the latest few losses are described.
        if self.recent.len() > 16 {
            self.recent.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(waiting: u64, id_sequence: u32) -> Option<KernelQueue> {
        Some(KernelQueue { waiting, id_sequence, queue_dropped: 0, user_dropped: 0 })
    }

    #[test]
    fn idle_queue_is_ok_and_waiting_without_verdicts_is_stalled() {
        let epoch = Instant::now();
        let q = QueueProgress::new(7, epoch);
        let mut m = HealthMonitor::new(100, true);
        let t0 = Instant::now();
        let sample = |w, id| Sample { kernel: vec![kernel(w, id)], ..Sample::default() };
        assert_eq!(m.update(t0, &[&q], sample(0, 0)), None);
        assert_eq!(m.report().state, HealthState::Ok);
        // Packets start waiting: not stalled yet, only once they have waited STALL_AFTER.
        assert_eq!(m.update(t0, &[&q], sample(3, 3)), None);
        assert_eq!(m.report().state, HealthState::Ok);
        assert_eq!(m.update(t0 + STALL_AFTER, &[&q], sample(3, 3)), Some(HealthState::Ok));
        assert_eq!(m.report().state, HealthState::Stalled);
        // Progress resumes: a verdict after the packets started waiting.
        std::thread::sleep(Duration::from_millis(2));
        q.received(3, Some(Duration::from_micros(40)));
        q.verdict_sent();
        let t1 = t0 + STALL_AFTER + Duration::from_millis(1);
        assert_eq!(m.update(t1, &[&q], sample(1, 4)), Some(HealthState::Stalled));
        assert_eq!(m.report().state, HealthState::Ok);
        let qh = &m.report().queues[0];
        assert_eq!((qh.waiting, qh.unread, qh.verdict_lag_us), (Some(1), Some(1), Some(40)));
        // One packet keeps waiting without a verdict: stalled after STALL_AFTER, not before.
        m.update(t1 + Duration::from_millis(200), &[&q], sample(1, 4));
        assert_eq!(m.report().state, HealthState::Ok);
        m.update(t1 + STALL_AFTER, &[&q], sample(1, 4));
        assert_eq!(m.report().state, HealthState::Stalled);
        assert!(m.report().reasons[0].starts_with("queue 7: 1 packets waiting"), "{:?}", m.report().reasons);
    }

    #[test]
    fn full_queue_and_losses_degrade_for_a_while() {
        let epoch = Instant::now();
        let q = QueueProgress::new(0, epoch);
        q.received(1, None);
        q.verdict_sent();
        let mut m = HealthMonitor::new(10, true);
        let now = Instant::now();
        m.update(now, &[&q], Sample { kernel: vec![kernel(10, 20)], ..Sample::default() });
        assert_eq!(m.report().state, HealthState::Degraded);
        assert!(m.report().reasons[0].contains("accepts new packets unjudged"), "{:?}", m.report().reasons);
        m.update(
            now,
            &[&q],
            Sample { kernel: vec![kernel(0, 20)], effects_discarded: 5, ..Sample::default() },
        );
        assert_eq!(m.report().state, HealthState::Degraded, "{:?}", m.report().reasons);
        assert_eq!(m.report().reasons, vec!["5: side effects discarded".to_string()]);
        // Still visible a few seconds later, gone after HOLD.
        let base = Sample { kernel: vec![kernel(0, 20)], effects_discarded: 5, ..Sample::default() };
        m.update(now + Duration::from_secs(3), &[&q], base.clone());
        assert_eq!(m.report().state, HealthState::Degraded);
        m.update(now + HOLD + Duration::from_millis(1), &[&q], base);
        assert_eq!(m.report().state, HealthState::Ok);
    }

    #[test]
    fn unreadable_counters_and_missing_rules_are_reported() {
        let q = QueueProgress::new(0, Instant::now());
        let mut m = HealthMonitor::new(10, true);
        m.update(
            Instant::now(),
            &[&q],
            Sample { kernel: vec![None], offload_rules_missing: true, ..Sample::default() },
        );
        assert_eq!(m.report().state, HealthState::Degraded);
        assert_eq!(m.report().reasons.len(), 2);
        assert_eq!(m.report().queues[0].waiting, None);
    }
}
