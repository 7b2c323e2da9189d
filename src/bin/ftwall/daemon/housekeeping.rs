//! The housekeeping, on the main thread: engine timers, signals (reload, counters, stop), the
//! debounced state save, mirror resyncs, the drop-summary lines, the systemd watchdog, the
//! health state and the metrics file.
//!
//! Invariants: it holds the engine lock only for in-memory work (timers, draining, a snapshot
//! copy, rendering the metrics text); every file write goes to the writer thread and every
//! kernel-set update to the mirror thread. Periodic work is paced by [`Throttle`]s on the
//! monotonic clock.

use super::counters::{self, Counters};
use super::effects::{MirrorJob, Outgoing};
use super::health::{HealthMonitor, HealthState, KernelQueue, QueueProgress, Sample};
use super::metrics::{self, MetricsInput};
use super::queue::{self, KernelCounters, TICK};
use super::throttle::Throttle;
use super::{lock, logging, notify, resolve_interfaces, Shared, SHUTDOWN_WAIT};
use crate::clock::{self, Clock};
use crate::config::{load_config, ConfigChange, QueuesChange};
use crate::events::log_event;
use ftwall::Timestamp;
use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The main thread's periodic work (see the module documentation).
pub(super) struct Housekeeping {
    signals: Signals,
    /// State saves: at most once a second, when something changed.
    save: Throttle,
    /// Summary lines of suppressed drops.
    flush: Throttle,
    /// Watchdog pings, three per `WatchdogSec` (None: no watchdog).
    watchdog: Option<Throttle>,
    /// Metrics files, every `metrics.interval_seconds` (follows reloads).
    metrics: Throttle,
    /// Last reading of the kernel's queue counters, summed (for `queue_overflow`).
    kernel: Option<KernelCounters>,
    /// Reads of the kernel's drop counters, every 5 s.
    kernel_read: Throttle,
    health: HealthMonitor,
    /// The clock reading of the previous tick (for `clock_step`).
    last_clock: Option<Clock>,
}

/// A change of the wall-minus-monotonic offset between two ticks beyond this is a wall-clock
/// step (NTP's slewing moves it by at most 0.5 ms a second; a tick is 100 ms).
const CLOCK_STEP_THRESHOLD_MICROS: i128 = 2_000_000;

/// The wall-clock step between two readings (µs, negative: back), if it exceeds the threshold.
fn wall_clock_step(before: &Clock, now: &Clock) -> Option<i128> {
    let step = now.offset_micros() - before.offset_micros();
    (step.abs() > CLOCK_STEP_THRESHOLD_MICROS).then_some(step)
}

impl Housekeeping {
    /// Everything due at once except the save (one second after start) and the drop summaries.
    pub(super) fn new(signals: Signals, health: HealthMonitor) -> Self {
        Self {
            signals,
            save: Throttle::started(Duration::from_secs(1)),
            flush: Throttle::started(Duration::from_secs(5)),
            watchdog: sd_notify::watchdog_enabled().map(|interval| Throttle::started(interval / 3)),
            metrics: Throttle::new(Duration::ZERO),
            kernel: None,
            kernel_read: Throttle::new(Duration::from_secs(5)),
            health,
            last_clock: None,
        }
    }

    /// Ticks until SIGTERM/SIGINT (Ok) or until a packet thread ended (its error comes from
    /// the join).
    pub(super) fn run(
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
        let reading = Clock::read();
        let now = reading.engine();
        if let Some(step) = self.last_clock.as_ref().and_then(|before| wall_clock_step(before, &reading)) {
            let before = self.last_clock.as_ref().map_or(Timestamp::ZERO, Clock::wall);
            log_event!(
                CLOCK_STEP,
                step_ms = i64::try_from(step / 1000).unwrap_or(i64::MAX),
                wall_before = %clock::rfc3339(before.as_secs()),
                wall_now = %clock::rfc3339(reading.wall().as_secs()),
                "the wall clock was stepped; no expiry moves (they run on the monotonic clock)"
            );
        }
        self.last_clock = Some(reading);
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
        if self.save.is_due() && lock(&shared.core).store_dirty {
            let (path, snapshot, saved_at) = shared.take_snapshot();
            if shared.writer.save(path, snapshot, saved_at, None) {
                self.save.mark();
            } else {
                lock(&shared.core).store_dirty = true;
            }
        }
        if shared.effects.take_resync_needed() {
            let snapshot = lock(&shared.core).engine.snapshot();
            shared.effects.mirror(MirrorJob::Resync(snapshot));
        }
        if self.flush.ready() {
            for (client, peer, suppressed) in lock(&shared.core).limiter.flush(now) {
                log_event!(DROPS_SUPPRESSED, client = %client, peer = %peer, suppressed, "further drops of this pair were not logged");
            }
        }
        if self.watchdog.as_mut().is_some_and(Throttle::ready) {
            notify(&[NotifyState::Watchdog]);
        }
        let readings = self.check_health(shared);
        let (interval, metrics_file) = {
            let d = lock(&shared.core);
            (Duration::from_secs(d.config.metrics.interval_seconds), d.config.metrics.file.clone())
        };
        if let Some(path) = metrics_file {
            self.metrics.set_period(interval);
            if self.metrics.ready() {
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
    pub(super) fn check_health(&mut self, shared: &Shared) -> Vec<(u16, Option<KernelCounters>)> {
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
                log_event!(
                    HEALTH_CHANGED at INFO,
                    state = report.state.as_str(),
                    previous = old.as_str(),
                    "judging normally again"
                );
            } else {
                log_event!(
                    HEALTH_CHANGED,
                    state = report.state.as_str(),
                    previous = old.as_str(),
                    reasons = %report.reasons.join("; "),
                    "packets may pass unjudged or effects are lost"
                );
            }
        }
        *shared.health.lock().unwrap_or_else(|e| e.into_inner()) = self.health.report().clone();
        // The kernel's drop counters, summed over this daemon's queues, every 5 s.
        if !self.kernel_read.ready() {
            return readings;
        }
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
                let fail_open = shared.fail_open;
                log_event!(
                    QUEUE_OVERFLOW,
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
        let loaded = load_config(shared.config_path.as_deref()).and_then(|(config, path)| {
            // The files' directories must pass the rule before a reload may point ftwall at them.
            config.check_directories(crate::files::own_uid())?;
            Ok((config, path))
        });
        match loaded {
            Ok((config, _)) => {
                // A syscall per name: done before taking the engine lock, which covers in-memory
                // work only.
                let lan_ifindex = resolve_interfaces(&config.lan_interfaces);
                let mut d = lock(&shared.core);
                let change = ConfigChange::between(&d.config, config);
                if !change.restart_needed.is_empty() {
                    let (in_force, file) = (&d.config, &change.in_force);
                    let queues = change.queues.unwrap_or(QueuesChange {
                        old: (in_force.queue, in_force.queues),
                        new: (file.queue, file.queues),
                    });
                    log_event!(
                        CONFIG_RESTART_REQUIRED,
                        keys = %change.restart_needed.join(","),
                        old_queue = queues.old.0,
                        new_queue = queues.new.0,
                        old_queues = queues.old.1,
                        new_queues = queues.new.1,
                        "these keys only change on a restart; their old values stay in force"
                    );
                }
                if let Some(spoof_pongs) = change.spoof_pongs {
                    shared.effects.send(Outgoing::Configure { spoof_pongs });
                }
                let changed = change.changed;
                let config = change.in_force;
                d.lan_ifindex = lan_ifindex;
                d.limiter.reconfigure(
                    config.log.drop_burst,
                    config.log.drop_interval_seconds,
                    config.log.drop_max_per_second,
                );
                d.engine.set_config(config.engine.clone());
                d.config = config;
                d.drain(shared, None);
                // The kernel sets follow allow_ports, and are probed again if they were missing.
                shared.effects.mirror(MirrorJob::Configure(Box::new(d.config.clone()), d.engine.snapshot()));
                log_event!(
                    CONFIG_RELOADED,
                    changed = %changed.join(","),
                    peers = d.engine.peer_count(),
                    locks = d.engine.locked_count(),
                    "configuration reloaded; state kept"
                );
            }
            Err(e) => {
                log_event!(CONFIG_RELOAD_FAILED, error = %format!("{e:#}"), "new configuration rejected; keeping the old one")
            }
        }
        notify(&[NotifyState::Ready]);
    }

    /// Shutdown, while the packet threads still judge: the final save, the kernel-set updates,
    /// the metrics and the counters.
    pub(super) fn finish(&mut self, shared: &Shared) {
        notify(&[NotifyState::Stopping]);
        log_event!(DAEMON_STOPPING, "stopping: saving state, then releasing the queues");
        let (path, snapshot, saved_at) = shared.take_snapshot();
        if let Err(e) = shared.writer.save_and_wait(path, snapshot, saved_at, SHUTDOWN_WAIT) {
            log_event!(STATE_SAVE_FAILED, error = %e, "final state not saved");
        }
        if !shared.effects.finish_mirrors(SHUTDOWN_WAIT) {
            log_event!(
                KERNEL_SET_FAILED,
                failed = 1u64,
                total = Counters::get(&shared.counters.kernel_set_errors),
                "lock mirrors not flushed before exit"
            );
        }
        let metrics_file = lock(&shared.core).config.metrics.file.clone();
        if let Some(path) = metrics_file {
            shared.writer.metrics(path, render_metrics(shared, &self.kernel_readings(shared)));
        }
        log_counters(shared);
    }
}

fn render_metrics(shared: &Shared, kernel: &[(u16, Option<KernelCounters>)]) -> String {
    let now = clock::now();
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
        version: crate::version::VERSION,
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
    let by_reason: BTreeMap<&'static str, u64> =
        s.by_reason().filter(|&(_, n)| n > 0).map(|(r, n)| (r.as_str(), n)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_step_is_a_change_of_offset_beyond_the_threshold() {
        let s = Timestamp::from_secs;
        let before = Clock::at(s(100), s(1_800_000_000));
        // Both clocks advanced together (0.1 s), or the wall slewed by a millisecond: no step.
        assert_eq!(wall_clock_step(&before, &Clock::at(s(101), s(1_800_000_001))), None);
        let slewed =
            Clock::at(Timestamp::from_micros(101_000_000), Timestamp::from_micros(1_800_000_001_001_000));
        assert_eq!(wall_clock_step(&before, &slewed), None);
        // A day back, three days forward, and just past the threshold.
        assert_eq!(
            wall_clock_step(&before, &Clock::at(s(101), s(1_800_000_001 - 86_400))),
            Some(-86_400_000_000)
        );
        assert_eq!(wall_clock_step(&before, &Clock::at(s(101), s(1_800_259_201))), Some(259_200_000_000));
        let just_over =
            Clock::at(Timestamp::from_micros(101_000_000), Timestamp::from_micros(1_800_000_003_000_001));
        assert_eq!(wall_clock_step(&before, &just_over), Some(2_000_001));
        // A suspend moves both clocks (CLOCK_BOOTTIME counts it): no step.
        assert_eq!(wall_clock_step(&before, &Clock::at(s(3700), s(1_800_003_600))), None);
    }
}
