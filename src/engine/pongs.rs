//! Rate limits on forged pongs: a token bucket per client and one for all clients together.
//!
//! Both buckets refill continuously at their rate per second and hold at most one second's worth
//! (burst = rate). Time is the engine's `now`; a step backwards refills nothing. A pong is allowed
//! only when both buckets hold a token, and then takes one from each.
//!
//! The per-client buckets live in a fixed-capacity LRU. Evicting a bucket is harmless: the client
//! comes back with a full bucket, i.e. at most one extra burst, and the total bucket still caps
//! the sum.

use crate::time::Timestamp;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;

/// Micro-tokens per token: a bucket refills `rate` tokens per second, i.e. `rate` micro-tokens
/// per microsecond.
const TOKEN: u64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    micro_tokens: u64,
    last: Timestamp,
}

impl Bucket {
    fn full(rate: u32, now: Timestamp) -> Self {
        Self { micro_tokens: u64::from(rate) * TOKEN, last: now }
    }

    /// Refills for the time since the last refill; true if a token is available.
    fn refill(&mut self, rate: u32, now: Timestamp) -> bool {
        let elapsed = u64::try_from(now.saturating_since(self.last).as_micros()).unwrap_or(u64::MAX);
        let cap = u64::from(rate) * TOKEN;
        self.micro_tokens =
            self.micro_tokens.saturating_add(elapsed.saturating_mul(u64::from(rate))).min(cap);
        self.last = self.last.max(now);
        self.micro_tokens >= TOKEN
    }

    fn take(&mut self) {
        self.micro_tokens -= TOKEN;
    }
}

/// Why a pong was refused by [`PongLimiter::allow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    /// The client's own bucket is empty.
    Client,
    /// The bucket shared by all clients is empty.
    Total,
}

#[derive(Debug)]
pub(crate) struct PongLimiter {
    per_client: u32,
    total_rate: u32,
    clients: LruCache<IpAddr, Bucket>,
    total: Option<Bucket>,
}

impl PongLimiter {
    /// `per_client` and `total` pongs per second (0: that limit is off); at most `capacity`
    /// client buckets.
    pub(crate) fn new(per_client: u32, total: u32, capacity: usize) -> Self {
        Self {
            per_client,
            total_rate: total,
            clients: LruCache::new(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            total: None,
        }
    }

    /// New rates and capacity; buckets are kept (clamped to the new burst at their next use).
    pub(crate) fn reconfigure(&mut self, per_client: u32, total: u32, capacity: usize) {
        self.per_client = per_client;
        self.total_rate = total;
        self.clients.resize(NonZeroUsize::new(capacity.max(1)).expect("non-zero"));
    }

    /// Whether one more pong to `client` is allowed at `now`; if so, it is counted.
    pub(crate) fn allow(&mut self, client: IpAddr, now: Timestamp) -> Result<(), Limited> {
        let (per_client, total_rate) = (self.per_client, self.total_rate);
        if per_client > 0 {
            let bucket = self.clients.get_or_insert_mut(client, || Bucket::full(per_client, now));
            if !bucket.refill(per_client, now) {
                return Err(Limited::Client);
            }
        }
        if total_rate > 0 {
            let total = self.total.get_or_insert_with(|| Bucket::full(total_rate, now));
            if !total.refill(total_rate, now) {
                return Err(Limited::Total);
            }
            total.take();
        }
        if per_client > 0 {
            if let Some(bucket) = self.clients.peek_mut(&client) {
                bucket.take();
            }
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn tracked_clients(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(millis: u64) -> Timestamp {
        Timestamp::from_micros(millis * 1000)
    }

    #[test]
    fn per_client_burst_then_refill() {
        let mut l = PongLimiter::new(5, 0, 16);
        let c = ip("192.0.2.10");
        for _ in 0..5 {
            assert_eq!(l.allow(c, ms(0)), Ok(()));
        }
        assert_eq!(l.allow(c, ms(0)), Err(Limited::Client));
        assert_eq!(l.allow(c, ms(199)), Err(Limited::Client), "one token takes 200 ms");
        assert_eq!(l.allow(c, ms(200)), Ok(()));
        assert_eq!(l.allow(c, ms(200)), Err(Limited::Client));
        // Another client has its own bucket.
        assert_eq!(l.allow(ip("192.0.2.11"), ms(200)), Ok(()));
        // A long pause refills only up to the burst.
        for _ in 0..5 {
            assert_eq!(l.allow(c, ms(60_000)), Ok(()));
        }
        assert_eq!(l.allow(c, ms(60_000)), Err(Limited::Client));
    }

    #[test]
    fn total_caps_all_clients_and_a_refused_client_takes_nothing() {
        let mut l = PongLimiter::new(2, 3, 16);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert_eq!(l.allow(a, ms(0)), Ok(()));
        assert_eq!(l.allow(a, ms(0)), Ok(()));
        assert_eq!(l.allow(a, ms(0)), Err(Limited::Client), "does not use up the total");
        assert_eq!(l.allow(b, ms(0)), Ok(()));
        assert_eq!(l.allow(b, ms(0)), Err(Limited::Total));
        // b's refused pong did not take its token: after the total refills, b gets one.
        assert_eq!(l.allow(b, ms(334)), Ok(()));
    }

    #[test]
    fn zero_disables_and_clock_steps_back_refill_nothing() {
        let mut l = PongLimiter::new(0, 0, 4);
        for _ in 0..1000 {
            assert_eq!(l.allow(ip("192.0.2.1"), ms(0)), Ok(()));
        }
        assert_eq!(l.tracked_clients(), 0);
        let mut l = PongLimiter::new(1, 0, 4);
        let c = ip("192.0.2.1");
        assert_eq!(l.allow(c, ms(10_000)), Ok(()));
        assert_eq!(l.allow(c, ms(5_000)), Err(Limited::Client));
        assert_eq!(l.allow(c, ms(10_999)), Err(Limited::Client));
        assert_eq!(l.allow(c, ms(11_000)), Ok(()));
    }

    #[test]
    fn client_table_is_bounded() {
        let mut l = PongLimiter::new(1, 0, 4);
        for i in 0..100u8 {
            assert_eq!(l.allow(IpAddr::from([192, 0, 2, i]), ms(0)), Ok(()));
        }
        assert_eq!(l.tracked_clients(), 4);
        l.reconfigure(1, 0, 2);
        assert_eq!(l.tracked_clients(), 2);
    }
}
