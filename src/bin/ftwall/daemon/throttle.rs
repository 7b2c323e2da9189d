//! [`Throttle`]: "at most once per period", for periodic work and rate-limited log lines.
//!
//! Invariants: a fresh throttle is due at once ([`Throttle::new`]) or one period after its
//! creation ([`Throttle::started`]); after [`Throttle::mark`] it is due again only when a whole
//! period has passed on the monotonic clock. [`SharedThrottle`] is the same behind a mutex, for
//! log lines several threads may write (held for a clock read, never across IO).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most once per `period` (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    period: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// Due at once, then once per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self { period, last: None }
    }

    /// Due one `period` from now.
    pub(crate) fn started(period: Duration) -> Self {
        Self { period, last: Some(Instant::now()) }
    }

    /// Changes the period (e.g. on reload); the last mark stays.
    pub(crate) fn set_period(&mut self, period: Duration) {
        self.period = period;
    }

    /// Whether a whole period has passed since the last mark (or none was made), at `now`.
    pub(crate) fn is_due_at(&self, now: Instant) -> bool {
        self.last.is_none_or(|t| now.saturating_duration_since(t) >= self.period)
    }

    /// [`Throttle::is_due_at`] now.
    pub(crate) fn is_due(&self) -> bool {
        self.is_due_at(Instant::now())
    }

    /// Records that the work was done now.
    pub(crate) fn mark(&mut self) {
        self.last = Some(Instant::now());
    }

    /// Forgets the last mark: due at once again (e.g. after a failure cleared).
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }

    /// True at most once per period, at `now`: if due, marks and returns true.
    pub(crate) fn ready_at(&mut self, now: Instant) -> bool {
        let due = self.is_due_at(now);
        if due {
            self.last = Some(now);
        }
        due
    }

    /// [`Throttle::ready_at`] now.
    pub(crate) fn ready(&mut self) -> bool {
        self.ready_at(Instant::now())
    }
}

/// A [`Throttle`] several threads share.
#[derive(Debug)]
pub(crate) struct SharedThrottle(Mutex<Throttle>);

impl SharedThrottle {
    /// Due at once, then once per `period`.
    pub(crate) const fn new(period: Duration) -> Self {
        Self(Mutex::new(Throttle::new(period)))
    }

    /// True at most once per period across all threads.
    pub(crate) fn ready(&self) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_once_per_period() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert!(t.ready_at(t0), "a fresh throttle is due at once");
        assert!(!t.ready_at(t0 + Duration::from_secs(9)));
        assert!(t.ready_at(t0 + Duration::from_secs(10)));
        assert!(!t.ready_at(t0 + Duration::from_secs(19)));
        t.reset();
        assert!(t.ready_at(t0 + Duration::from_secs(19)), "due again after a reset");
    }

    #[test]
    fn started_waits_one_period_and_period_changes_apply() {
        let mut t = Throttle::started(Duration::from_secs(60));
        assert!(!t.is_due());
        t.set_period(Duration::ZERO);
        assert!(t.is_due());
        t.mark();
        assert!(t.ready(), "a zero period is always due");
    }

    #[test]
    fn a_clock_read_before_the_mark_is_not_due() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let later = Instant::now() + Duration::from_secs(5);
        assert!(t.ready_at(later));
        assert!(!t.is_due_at(later - Duration::from_secs(4)), "no underflow, not due");
    }

    #[test]
    fn shared_throttle_admits_one_thread_per_period() {
        let t = SharedThrottle::new(Duration::from_secs(3600));
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| usize::from(t.ready()))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1);
    }
}
