//! Several gateways, one memory: the engine's locks, bans and suspect peers shared with the
//! other gateways of a site through Redis (docs/cluster.md has the schema, the ACL and the
//! failure behaviour).
//!
//! Two threads of their own, so the packet path never waits on Redis:
//! - **out** (`ftwall-cluster-out`): takes the engine's local changes from a bounded outbox
//!   (written with `try_send` by whoever drains the engine; overflow counted and repaired by a
//!   resync) and writes each as one key with the entry's TTL plus one message on the channel;
//! - **in** (`ftwall-cluster-in`): subscribes to the channel, then reads the whole prefix
//!   (SCAN, never KEYS) and merges every entry into the engine with
//!   [`ftwall::Engine::handle_remote`]; then merges each message as it arrives.
//!
//! Invariants:
//! - Redis does the expiry: one key per entry, `PREFIX:lock|peer|ban:ADDR`, its TTL the time the
//!   entry has left (a ban until lifted has none; a peer without expiry gets
//!   [`PEER_TTL_CAP`]), so nothing outlives its meaning when a gateway dies.
//! - Times cross the process boundary as wall-clock dates ([`Clock`]); the engine's monotonic
//!   clock never leaves the process.
//! - Only local changes are published ([`ftwall::Action::StateChanged`]); merges come back as
//!   `StateMerged` and are never echoed. A message from this node id is ignored.
//! - A removal is published only when an operator made it (`release`, `unban`, `forget`:
//!   [`Removal::Operator`], as the engine says): a natural expiry is Redis's and every engine's
//!   own business, so a gateway whose copy just expired never deletes a re-arm it has not seen
//!   yet; an eviction (a reload shrank a table) is this gateway's lack of room, and must not end
//!   the entry on gateways that have room.
//! - Every connection (re)starts with a full resync: the subscriber reads the prefix, then the
//!   publisher writes back everything this gateway learned itself (including what it learned
//!   while Redis was away). Pub/sub was chosen over a stream because the keys already are the
//!   durable state: a message lost while disconnected is repaired by that resync, and a stream
//!   would duplicate the keys with a second retention policy and per-consumer offsets.
//! - Anything read from Redis is a claim: over [`MAX_VALUE_BYTES`], not JSON of the right
//!   shape, a key that does not match its entry, another type than a string: counted in
//!   `cluster_garbage`, logged (rate-limited), ignored. The engine's admission rules apply.
//! - Failure is local: Redis down or slow costs at most `cluster.timeout_ms` per call to these
//!   two threads; `cluster_unavailable` is logged once, `cluster_recovered` when both
//!   connections are back; retries back off from [`MIN_BACKOFF`] to [`MAX_BACKOFF`].
//! - A write Redis answers with an error reply (full: `OOM` under `maxmemory` with
//!   `noeviction`; `NOPERM`; `READONLY`) is a refusal, not an outage: the connection answered,
//!   so it is kept (except `READONLY`: a replica, reconnect to follow the primary), the refusal
//!   is counted in `cluster_errors` and `cluster_writes_refused` and logged as
//!   `cluster_refused` (when it starts, then at most every [`REFUSAL_LOG_PERIOD`]). The
//!   pipeline's other commands still ran: messages (PUBLISH) keep flowing and reads keep
//!   working. The write-back of the local state is retried with a backoff of its own (from
//!   [`MIN_BACKOFF`] to [`MAX_REFUSAL_BACKOFF`]), each attempt starting with one entry as a
//!   probe so a full Redis costs one refused write per attempt, not a storm of writes and
//!   messages; `cluster_recovered` is logged once the write-back succeeds.

use super::counters::Counters;
use super::throttle::{SharedThrottle, Throttle};
use super::{lock, Shared};
use crate::clock::{self, Clock};
use crate::config::{ClusterConfig, Shared as Kind};
use crate::events::log_event;
use crate::protocol::ClusterStatus;
use anyhow::{anyhow, bail, Context};
use ftwall::engine::{BanEntry, GatewayId, LockEntry, PeerEntry, Removal, Snapshot, StateChange, Strength};
use ftwall::Timestamp;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// Largest value or message read from Redis, in bytes (an entry is about 200).
pub(crate) const MAX_VALUE_BYTES: usize = 4096;
/// TTL of a suspect peer that has no expiry (`peers.expire_seconds = 0`).
pub(crate) const PEER_TTL_CAP: Duration = Duration::from_secs(7 * 86_400);
/// First retry delay after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Longest retry delay of the write-back while Redis refuses writes (each attempt is one probe
/// write while it does, so it can be short).
const MAX_REFUSAL_BACKOFF: Duration = Duration::from_secs(2);
/// Longest time between two `cluster_refused` lines while Redis refuses writes.
const REFUSAL_LOG_PERIOD: Duration = Duration::from_secs(60);
/// Most gateways listed in the status (the rest are not remembered).
const MAX_GATEWAYS: usize = 1024;
/// Changes published in one round trip, at most.
const BATCH: usize = 256;
/// Remote changes merged under one hold of the engine's lock (see `Cluster::apply`).
const MERGE_CHUNK: usize = 32;
/// The most two gateways' clocks may disagree, as seen in a message's send date, before it is
/// reported as clock skew (`cluster_clock_skew`) instead of counted as a propagation lag.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);
/// How often the blocked threads look at the stop flag.
const WAKE: Duration = Duration::from_millis(250);

/// One message on the channel: a change made on `from`, sent at `sent_us` (wall clock, µs).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Message {
    from: String,
    /// The sending process (random at each start; 0 or absent: not said), to tell another
    /// process that publishes under the same `node_id` from this one's own echo.
    #[serde(default)]
    instance: u64,
    sent_us: u64,
    kind: Kind,
    /// The entry's name ([`entry_id`]).
    id: String,
    /// The entry (wall-clock times); None: removed.
    entry: Option<serde_json::Value>,
}

/// The value of one key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    from: String,
    entry: serde_json::Value,
}

/// The cluster's end of the daemon: the outbox the engine's drain writes to, and the state the
/// two threads share.
pub(crate) struct Cluster {
    node: GatewayId,
    channel: String,
    config: ClusterConfig,
    client: redis::Client,
    outbox: SyncSender<StateChange>,
    inbox: Mutex<Option<Receiver<StateChange>>>,
    depth: AtomicUsize,
    /// The publisher must write back every local entry (reconnect, resync, overflow).
    republish: AtomicBool,
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// `cluster_unavailable` was logged and `cluster_recovered` not yet.
    announced_down: AtomicBool,
    ever_up: AtomicBool,
    stop: AtomicBool,
    /// Wall-clock seconds of the last full resync (0: none yet).
    last_sync: AtomicU64,
    /// Propagation lag of the last message received, in µs (`u64::MAX`: none yet).
    last_lag_us: AtomicU64,
    /// Publish-to-receive time of the last own message back from the channel, in µs
    /// (`u64::MAX`: none yet).
    last_echo_us: AtomicU64,
    gateways: Mutex<BTreeMap<String, u64>>,
    garbage_log: SharedThrottle,
    skew_log: SharedThrottle,
    duplicate_log: SharedThrottle,
    /// This process among the publishers of `node` ([`Message::instance`]).
    instance: u64,
    /// Redis refuses this gateway's writes: the server's last refusal (None: writes accepted).
    refusing: Mutex<Option<String>>,
}

/// A call Redis answered with an error reply: the server's code and words.
struct Refusal {
    code: String,
    error: String,
}

impl Refusal {
    /// The refusal in `error`; None if Redis did not answer (connection lost, timeout, I/O).
    fn of(error: &redis::RedisError) -> Option<Self> {
        let errors = error.clone().into_server_errors()?;
        let (_, first) = errors.first()?;
        let code = first.code().to_string();
        let error = match first.details() {
            Some(details) => format!("{code} {details}"),
            None => code.clone(),
        };
        Some(Self { code, error })
    }
}

fn kind_of(change: &StateChange) -> Kind {
    match change {
        StateChange::Lock(_) | StateChange::LockRemoved(..) => Kind::Locks,
        StateChange::Peer(_) | StateChange::PeerRemoved(..) => Kind::Peers,
        StateChange::Ban(_) | StateChange::BanRemoved(..) => Kind::Bans,
        _ => Kind::Peers,
    }
}

/// The host name, for a default node id.
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").context("reading the host name")?;
    Ok(name.trim().to_string())
}

/// Reads `USER PASSWORD` or `PASSWORD` from the first line of `file`, which must be a regular
/// file owned by root or the daemon's user, readable by nobody else.
pub(crate) fn read_credentials(file: &Path) -> anyhow::Result<(Option<String>, String)> {
    // The mode and owner are checked on the open file, not the path.
    let bytes = match crate::files::read_private(file, 4096)
        .with_context(|| format!("cluster.password_file {}", file.display()))?
    {
        crate::files::Guarded::Bytes(b) if b.len() <= 4096 => b,
        crate::files::Guarded::Bytes(_) => bail!("cluster.password_file {}: too large", file.display()),
        crate::files::Guarded::Missing => bail!("cluster.password_file {}: missing", file.display()),
    };
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("cluster.password_file: not UTF-8"))?;
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_whitespace().collect::<Vec<_>>()[..] {
        [password] => Ok((None, password.to_string())),
        [user, password] => Ok((Some(user.to_string()), password.to_string())),
        _ => bail!(
            "cluster.password_file {}: the first line must be `USER PASSWORD` or `PASSWORD`",
            file.display()
        ),
    }
}

impl Cluster {
    /// The cluster part of a daemon configured with `cluster.enabled`, or None. Fails on a
    /// password file that is not private, an unusable URL or node id.
    pub(crate) fn new(config: &ClusterConfig) -> anyhow::Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        // rustls needs its crypto provider chosen once per process (rediss://).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let name = match &config.node_id {
            Some(id) => id.clone(),
            None => host_name()?,
        };
        let node = GatewayId::new(&name)
            .map_err(|e| anyhow!("cluster.node_id {name:?}: {e}; set cluster.node_id"))?;
        let mut info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|e| anyhow!("cluster.url: {e}"))?;
        if let Some(file) = &config.password_file {
            let (user, password) = read_credentials(file)?;
            let mut settings = info.redis_settings().clone().set_password(password);
            if let Some(user) = user {
                settings = settings.set_username(user);
            }
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(|e| anyhow!("cluster.url: {e}"))?;
        let (outbox, inbox) = mpsc::sync_channel(config.outbox);
        Ok(Some(Self {
            node,
            channel: format!("{}:events", config.prefix),
            config: config.clone(),
            client,
            outbox,
            inbox: Mutex::new(Some(inbox)),
            depth: AtomicUsize::new(0),
            republish: AtomicBool::new(true),
            publisher_up: AtomicBool::new(false),
            subscriber_up: AtomicBool::new(false),
            announced_down: AtomicBool::new(false),
            ever_up: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            last_sync: AtomicU64::new(0),
            last_lag_us: AtomicU64::new(u64::MAX),
            last_echo_us: AtomicU64::new(u64::MAX),
            gateways: Mutex::new(BTreeMap::new()),
            garbage_log: SharedThrottle::new(Duration::from_secs(10)),
            skew_log: SharedThrottle::new(Duration::from_secs(60)),
            duplicate_log: SharedThrottle::new(Duration::from_secs(60)),
            instance: crate::files::random_u64().context("a random cluster instance id")?.max(1),
            refusing: Mutex::new(None),
        }))
    }

    /// Queues a local change for the other gateways; never blocks (called under the engine's
    /// lock). A full outbox is counted and repaired by a resync.
    pub(crate) fn publish(&self, change: &StateChange, counters: &Counters) {
        if !self.config.share.contains(&kind_of(change)) || !is_news(change) {
            return;
        }
        match self.outbox.try_send(change.clone()) {
            Ok(()) => {
                self.depth.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Counters::bump(&counters.cluster_outbox_overflows);
                self.republish.store(true, Ordering::Relaxed);
            }
        }
    }

    /// What `ftwall ctl status` shows.
    pub(crate) fn status(&self) -> ClusterStatus {
        let last_sync = self.last_sync.load(Ordering::Relaxed);
        let lag = self.last_lag_us.load(Ordering::Relaxed);
        let echo = self.last_echo_us.load(Ordering::Relaxed);
        ClusterStatus {
            node_id: self.node.to_string(),
            connected: self.publisher_up.load(Ordering::Relaxed)
                && self.subscriber_up.load(Ordering::Relaxed),
            gateways_seen: self.gateways.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect(),
            last_sync: (last_sync > 0).then(|| clock::rfc3339(last_sync)),
            outbox_depth: self.depth.load(Ordering::Relaxed),
            last_lag_us: (lag != u64::MAX).then_some(lag),
            last_echo_us: (echo != u64::MAX).then_some(echo),
            writes_refused: self.refusing.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Starts the two threads in `scope`.
    pub(crate) fn spawn<'scope, 'env>(
        &'env self,
        scope: &'scope Scope<'scope, 'env>,
        shared: &'env Shared,
    ) -> anyhow::Result<Vec<ScopedJoinHandle<'scope, ()>>> {
        let inbox = self
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .context("cluster threads started twice")?;
        let out = std::thread::Builder::new()
            .name("ftwall-cluster-out".into())
            .spawn_scoped(scope, move || self.serve_out(shared, inbox))
            .context("starting the cluster publisher")?;
        let input = std::thread::Builder::new()
            .name("ftwall-cluster-in".into())
            .spawn_scoped(scope, move || self.serve_in(shared))
            .context("starting the cluster subscriber")?;
        Ok(vec![out, input])
    }

    /// Tells both threads to return (within [`WAKE`] plus one Redis timeout).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.timeout_ms)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(self.timeout())?;
        con.set_read_timeout(Some(self.timeout()))?;
        con.set_write_timeout(Some(self.timeout()))?;
        Ok(con)
    }

    /// Sleeps `delay`, waking early to stop.
    fn pause(&self, delay: Duration) {
        let mut left = delay;
        while !left.is_zero() && !self.stopped() {
            let step = left.min(Duration::from_millis(50));
            std::thread::sleep(step);
            left -= step;
        }
    }

    fn went_down(&self, shared: &Shared, error: &redis::RedisError) {
        Counters::bump(&shared.counters.cluster_errors);
        if !self.announced_down.swap(true, Ordering::Relaxed) {
            log_event!(
                CLUSTER_UNAVAILABLE,
                url = %self.config.url,
                error = %error,
                "Redis unreachable: judging with what this gateway knows, retrying"
            );
        }
    }

    /// Redis answered a write with `refusal`: counted, logged when it starts and then at most
    /// every [`REFUSAL_LOG_PERIOD`] (`log` is the publisher's own throttle).
    fn refused(&self, shared: &Shared, refusal: &Refusal, log: &mut Throttle) {
        Counters::bump(&shared.counters.cluster_errors);
        Counters::bump(&shared.counters.cluster_writes_refused);
        let starts =
            self.refusing.lock().unwrap_or_else(|e| e.into_inner()).replace(refusal.error.clone()).is_none();
        let due = if starts {
            log.mark();
            true
        } else {
            log.ready()
        };
        if due {
            log_event!(
                CLUSTER_REFUSED,
                url = %self.config.url,
                code = %refusal.code,
                error = %refusal.error,
                total = Counters::get(&shared.counters.cluster_writes_refused),
                "Redis refused this gateway's writes: judging with what it knows, messages still flow, writing back later"
            );
        }
    }

    /// The publisher's write-back succeeded: if Redis had refused writes, it takes them again.
    fn writes_accepted(&self) {
        if self.refusing.lock().unwrap_or_else(|e| e.into_inner()).take().is_some() {
            let gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner()).len();
            log_event!(
                CLUSTER_RECOVERED,
                url = %self.config.url,
                gateways,
                "Redis accepts writes again; this gateway's entries written back"
            );
        }
    }

    fn maybe_up(&self) {
        if !(self.publisher_up.load(Ordering::Relaxed) && self.subscriber_up.load(Ordering::Relaxed)) {
            return;
        }
        let gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner()).len();
        if self.announced_down.swap(false, Ordering::Relaxed) {
            log_event!(CLUSTER_RECOVERED, url = %self.config.url, gateways, "Redis reachable again; resynced");
        } else if !self.ever_up.swap(true, Ordering::Relaxed) {
            log_event!(CLUSTER_CONNECTED, url = %self.config.url, node_id = %self.node, gateways, "sharing state through Redis");
        }
    }

    fn garbage(&self, shared: &Shared, key: &str, reason: &str) {
        Counters::bump(&shared.counters.cluster_garbage);
        if self.garbage_log.ready() {
            log_event!(
                CLUSTER_GARBAGE,
                key = %key,
                reason = %reason,
                total = Counters::get(&shared.counters.cluster_garbage),
                "ignored an unusable value from Redis"
            );
        }
    }

    fn key(&self, kind: Kind, id: &str) -> String {
        format!("{}:{}:{id}", self.config.prefix, kind.key_name())
    }

    // ---- the publisher ------------------------------------------------------------------

    fn serve_out(&self, shared: &Shared, inbox: Receiver<StateChange>) {
        let mut con: Option<redis::Connection> = None;
        let mut backoff = MIN_BACKOFF;
        // The write-back after a refusal backs off on its own: a reconnect (READONLY) must not
        // reset it.
        let mut refusal_backoff = MIN_BACKOFF;
        let mut next_write_back = Instant::now();
        let mut refusal_log = Throttle::new(REFUSAL_LOG_PERIOD);
        while !self.stopped() {
            let Some(c) = con.as_mut() else {
                match self.connect() {
                    Ok(c) => {
                        con = Some(c);
                        backoff = MIN_BACKOFF;
                        self.republish.store(true, Ordering::Relaxed);
                    }
                    Err(e) => {
                        self.publisher_up.store(false, Ordering::Relaxed);
                        self.went_down(shared, &e);
                        self.pause(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
                continue;
            };
            let mut batch = Vec::new();
            match inbox.recv_timeout(WAKE) {
                Ok(change) => batch.push(change),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while batch.len() < BATCH {
                match inbox.try_recv() {
                    Ok(change) => batch.push(change),
                    Err(_) => break,
                }
            }
            self.depth.fetch_sub(batch.len().min(self.depth.load(Ordering::Relaxed)), Ordering::Relaxed);
            let mut result = self.send(shared, c, &batch);
            let refusing = self.refusing.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            if refusing && result.is_ok() && !batch.is_empty() {
                // Redis took writes again: the write-back need not wait for its backoff.
                next_write_back = Instant::now();
            }
            // The outbox is drained (newest changes written): now the whole local state, when due.
            let mut wrote_back = false;
            if result.is_ok()
                && batch.len() < BATCH
                && Instant::now() >= next_write_back
                && self.republish.swap(false, Ordering::Relaxed)
            {
                result = self.write_back(shared, c);
                wrote_back = result.is_ok();
                if result.is_err() {
                    self.republish.store(true, Ordering::Relaxed);
                }
            }
            match result {
                Ok(()) => {
                    if !self.publisher_up.swap(true, Ordering::Relaxed) {
                        self.maybe_up();
                    }
                    if wrote_back {
                        refusal_backoff = MIN_BACKOFF;
                        self.writes_accepted();
                    }
                }
                Err(e) => match Refusal::of(&e) {
                    // Redis answered: full, read-only or not permitted. The local state is
                    // written back when the backoff allows, never more often.
                    Some(refusal) => {
                        self.republish.store(true, Ordering::Relaxed);
                        self.refused(shared, &refusal, &mut refusal_log);
                        let now = Instant::now();
                        if now >= next_write_back {
                            next_write_back = now + refusal_backoff;
                            refusal_backoff = (refusal_backoff * 2).min(MAX_REFUSAL_BACKOFF);
                        }
                        if refusal.code == "READONLY" {
                            // A replica (the primary moved behind the address): reconnect.
                            self.publisher_up.store(false, Ordering::Relaxed);
                            con = None;
                        } else if !self.publisher_up.swap(true, Ordering::Relaxed) {
                            self.maybe_up();
                        }
                    }
                    None => {
                        // What was in the batch is repaired by the write-back after the
                        // reconnect.
                        self.publisher_up.store(false, Ordering::Relaxed);
                        self.republish.store(true, Ordering::Relaxed);
                        self.went_down(shared, &e);
                        next_write_back = Instant::now();
                        con = None;
                    }
                },
            }
        }
    }

    /// Writes back every entry this gateway learned itself (after a reconnect, a resync or an
    /// outbox overflow), so nothing learned while Redis was away is lost.
    fn write_back(&self, shared: &Shared, con: &mut redis::Connection) -> redis::RedisResult<()> {
        // Only this gateway's own entries are copied under the engine's lock (the packet
        // path's): the other gateways' are theirs to write.
        let snapshot = lock(&shared.core).engine.own_snapshot();
        let own = snapshot
            .locks
            .into_iter()
            .map(StateChange::Lock)
            .chain(snapshot.bans.into_iter().map(StateChange::Ban))
            .chain(snapshot.peers.into_iter().map(StateChange::Peer))
            .filter(|c| self.config.share.contains(&kind_of(c)))
            .collect::<Vec<_>>();
        // While Redis refuses writes, one entry first: if it is refused, so would the rest be.
        let probe = if self.refusing.lock().unwrap_or_else(|e| e.into_inner()).is_some() { 1 } else { 0 };
        let (first, rest) = own.split_at(probe.min(own.len()));
        self.send(shared, con, first)?;
        for chunk in rest.chunks(BATCH) {
            self.send(shared, con, chunk)?;
        }
        Ok(())
    }

    /// Publishes `changes` in one round trip: per entry a SET with its TTL and a PUBLISH; per
    /// removal before its time a DEL and a PUBLISH.
    fn send(
        &self,
        shared: &Shared,
        con: &mut redis::Connection,
        changes: &[StateChange],
    ) -> redis::RedisResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let clock = Clock::read();
        let now_us = clock.wall().as_micros();
        let mut pipe = redis::pipe();
        let mut count = 0;
        for change in changes {
            let kind = kind_of(change);
            let id = entry_id(change);
            let key = self.key(kind, &id);
            let entry = match wall_entry(change, &clock) {
                Some(Ok(entry)) => entry,
                Some(Err(())) => continue,
                None => {
                    // A removal (only an operator's reaches the outbox: see `publish`).
                    pipe.cmd("DEL").arg(&key).ignore();
                    let message = Message {
                        from: self.node.to_string(),
                        instance: self.instance,
                        sent_us: now_us,
                        kind,
                        id,
                        entry: None,
                    };
                    pipe.cmd("PUBLISH")
                        .arg(&self.channel)
                        .arg(serde_json::to_vec(&message).unwrap_or_default())
                        .ignore();
                    count += 1;
                    continue;
                }
            };
            let ends_us = entry.ends_us;
            if ends_us <= now_us {
                continue;
            }
            let record = Record { from: self.node.to_string(), entry: entry.json.clone() };
            let value = serde_json::to_vec(&record).unwrap_or_default();
            let set = pipe.cmd("SET").arg(&key).arg(value);
            if ends_us != u64::MAX {
                set.arg("PX").arg(((ends_us - now_us) / 1000).max(1));
            }
            set.ignore();
            let message = Message {
                from: self.node.to_string(),
                instance: self.instance,
                sent_us: now_us,
                kind,
                id,
                entry: Some(entry.json),
            };
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(serde_json::to_vec(&message).unwrap_or_default())
                .ignore();
            count += 1;
        }
        if count > 0 {
            pipe.query::<()>(con)?;
            shared.counters.cluster_events_out.fetch_add(count, Ordering::Relaxed);
        }
        Ok(())
    }

    // ---- the subscriber -----------------------------------------------------------------

    fn serve_in(&self, shared: &Shared) {
        let mut backoff = MIN_BACKOFF;
        while !self.stopped() {
            let session = self.connect().and_then(|commands| Ok((commands, self.connect()?)));
            let (mut commands, mut subscriber) = match session {
                Ok(pair) => pair,
                Err(e) => {
                    self.subscriber_up.store(false, Ordering::Relaxed);
                    self.went_down(shared, &e);
                    self.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let mut pubsub = subscriber.as_pubsub();
            // Subscribe first, then read the prefix: nothing published in between is missed.
            let ready = pubsub
                .subscribe(&self.channel)
                .and_then(|()| pubsub.set_read_timeout(Some(WAKE)))
                .and_then(|()| self.resync(shared, &mut commands));
            if let Err(e) = ready {
                self.subscriber_up.store(false, Ordering::Relaxed);
                self.went_down(shared, &e);
                self.pause(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            backoff = MIN_BACKOFF;
            self.subscriber_up.store(true, Ordering::Relaxed);
            self.maybe_up();
            while !self.stopped() {
                match pubsub.get_message() {
                    Ok(message) => self.receive(shared, message.get_payload_bytes()),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        self.subscriber_up.store(false, Ordering::Relaxed);
                        self.went_down(shared, &e);
                        break;
                    }
                }
            }
        }
    }

    /// Reads every key under the prefix and merges what it holds; then asks the publisher to
    /// write back the local state.
    fn resync(&self, shared: &Shared, con: &mut redis::Connection) -> redis::RedisResult<()> {
        let pattern = format!("{}:*", self.config.prefix);
        let mut cursor: u64 = 0;
        let mut merged: Vec<(GatewayId, StateChange)> = Vec::new();
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(500).query(con)?;
            let keys: Vec<Vec<u8>> =
                keys.into_iter().filter(|k| k.as_slice() != self.channel.as_bytes()).collect();
            if !keys.is_empty() {
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(con)?;
                for (key, value) in keys.iter().zip(values) {
                    let name = String::from_utf8_lossy(key);
                    match value {
                        Some(value) => match self.parse_record(&name, &value) {
                            Ok(Some(found)) => merged.push(found),
                            Ok(None) => {}
                            Err(reason) => self.garbage(shared, &name, &reason),
                        },
                        None => {
                            // Gone since the SCAN, or not a string.
                            let kind: String = redis::cmd("TYPE").arg(key.as_slice()).query(con)?;
                            if kind != "none" {
                                self.garbage(shared, &name, &format!("a {kind}, not a string"));
                            }
                        }
                    }
                }
            }
            if merged.len() >= BATCH {
                self.apply(shared, std::mem::take(&mut merged));
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        self.apply(shared, merged);
        Counters::bump(&shared.counters.cluster_resyncs);
        self.last_sync.store(clock::wall_now().as_secs(), Ordering::Relaxed);
        self.republish.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// One key's value: the change it holds (None: our own, or a kind not shared), or why it is
    /// garbage.
    fn parse_record(&self, key: &str, value: &[u8]) -> Result<Option<(GatewayId, StateChange)>, String> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!("{} bytes, over {MAX_VALUE_BYTES}", value.len()));
        }
        let rest = key
            .strip_prefix(&self.config.prefix)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or("not under the prefix")?;
        let (kind, id) = rest.split_once(':').ok_or("not PREFIX:KIND:ID")?;
        let kind = match kind {
            "lock" => Kind::Locks,
            "peer" => Kind::Peers,
            "ban" => Kind::Bans,
            _ => return Err("unknown kind".into()),
        };
        let record: Record = serde_json::from_slice(value).map_err(|e| format!("not a record: {e}"))?;
        self.change_from(&record.from, kind, id, Some(record.entry))
    }

    fn receive(&self, shared: &Shared, payload: &[u8]) {
        if payload.len() > MAX_VALUE_BYTES {
            self.garbage(shared, &self.channel, &format!("a {} byte message", payload.len()));
            return;
        }
        let message: Message = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => return self.garbage(shared, &self.channel, &format!("not a message: {e}")),
        };
        if message.from == self.node.as_str() && message.instance != self.instance {
            // Another process publishes under this gateway's name (a configuration copied
            // with its node_id): each would ignore the other's changes as its own echo.
            Counters::bump(&shared.counters.cluster_duplicate_node);
            if self.duplicate_log.ready() {
                log_event!(
                    CLUSTER_DUPLICATE_NODE,
                    node_id = %self.node,
                    "another gateway publishes under this gateway's cluster.node_id"
                );
            }
            return;
        }
        if message.from == self.node.as_str() {
            // Our own change, back from Redis: ignored, but its trip is measured on one clock,
            // which needs no agreement between the gateways' clocks.
            let echo_us = clock::wall_now().as_micros().saturating_sub(message.sent_us);
            self.last_echo_us.store(echo_us, Ordering::Relaxed);
            Counters::bump(&shared.counters.cluster_echoes);
            shared.counters.cluster_echo_us.fetch_add(echo_us, Ordering::Relaxed);
            return;
        }
        match self.change_from(&message.from, message.kind, &message.id, message.entry) {
            Ok(Some(found)) => {
                // The sender's clock against ours: a lag, unless the two disagree by more than
                // any delivery takes, which is a clock to fix (entries from it arrive shortened
                // or lengthened, or already expired), not a lag to average.
                let now_us = clock::wall_now().as_micros();
                let skew_us = i128::from(now_us) - i128::from(message.sent_us);
                if skew_us.unsigned_abs() > MAX_CLOCK_SKEW.as_micros() {
                    Counters::bump(&shared.counters.cluster_clock_skewed);
                    if self.skew_log.ready() {
                        log_event!(
                            CLUSTER_CLOCK_SKEW,
                            gateway = %found.0,
                            skew_ms = i64::try_from(skew_us / 1000).unwrap_or(i64::MAX),
                            "another gateway's clock disagrees with this one's"
                        );
                    }
                } else {
                    let lag_us = u64::try_from(skew_us.max(0)).unwrap_or(0);
                    self.last_lag_us.store(lag_us, Ordering::Relaxed);
                    shared.counters.cluster_lag_us.fetch_add(lag_us, Ordering::Relaxed);
                }
                self.apply(shared, vec![found]);
            }
            Ok(None) => {}
            Err(reason) => self.garbage(shared, &self.channel, &reason),
        }
    }

    /// Checks a change another gateway claims: its origin, its kind (shared here?), its entry
    /// (the right shape, named `id`), and converts its times onto the engine's clock.
    fn change_from(
        &self,
        from: &str,
        kind: Kind,
        id: &str,
        entry: Option<serde_json::Value>,
    ) -> Result<Option<(GatewayId, StateChange)>, String> {
        let origin = GatewayId::new(from).map_err(|e| format!("origin {from:?}: {e}"))?;
        if origin == self.node || !self.config.share.contains(&kind) {
            return Ok(None);
        }
        let Some(entry) = entry else {
            let change =
                removal(kind, id).ok_or_else(|| format!("not a {} name: {id:?}", kind.key_name()))?;
            self.heard_from(origin);
            return Ok(Some((origin, change)));
        };
        let mut snapshot = Snapshot::default();
        let bad = |e: serde_json::Error| format!("not a {} entry: {e}", kind.key_name());
        let about = match kind {
            Kind::Locks => {
                let e: LockEntry = serde_json::from_value(entry).map_err(bad)?;
                snapshot.locks.push(e);
                entry_id(&StateChange::Lock(e))
            }
            Kind::Peers => {
                let e: PeerEntry = serde_json::from_value(entry).map_err(bad)?;
                snapshot.peers.push(e);
                entry_id(&StateChange::Peer(e))
            }
            Kind::Bans => {
                let e: BanEntry = serde_json::from_value(entry).map_err(bad)?;
                let about = entry_id(&StateChange::Ban(e.clone()));
                snapshot.bans.push(e);
                about
            }
        };
        if about != id {
            return Err(format!("an entry named {about} under {id}"));
        }
        let engine = Clock::read().snapshot_to_engine(&snapshot);
        let change = match kind {
            Kind::Locks => engine.locks.first().copied().map(StateChange::Lock),
            Kind::Peers => engine.peers.first().copied().map(StateChange::Peer),
            Kind::Bans => engine.bans.first().cloned().map(StateChange::Ban),
        };
        self.heard_from(origin);
        Ok(change.map(|c| (origin, c)))
    }

    /// Records that `origin` sent a well-formed change now (`gateways_seen`). At most
    /// [`MAX_GATEWAYS`] are listed: a new name beyond that replaces the one heard from least
    /// recently, so made-up names cannot freeze the list.
    fn heard_from(&self, origin: GatewayId) {
        let name = origin.to_string();
        let now = clock::wall_now().as_secs();
        let mut gateways = self.gateways.lock().unwrap_or_else(|e| e.into_inner());
        if gateways.len() >= MAX_GATEWAYS && !gateways.contains_key(&name) {
            let oldest = gateways.iter().min_by_key(|(_, &heard)| heard).map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                gateways.remove(&oldest);
            }
        }
        gateways.insert(name, now);
    }

    /// Merges `changes` into the engine (in memory, under its lock) and drains its outputs.
    fn apply(&self, shared: &Shared, changes: Vec<(GatewayId, StateChange)>) {
        if changes.is_empty() {
            return;
        }
        let count = changes.len() as u64;
        // The engine's lock is the packet path's too: held for MERGE_CHUNK merges at a time,
        // so a resync of the whole prefix never holds a verdict for more than a few µs per entry.
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let now = clock::now();
            let mut d = lock(&shared.core);
            for (origin, change) in changes.by_ref().take(MERGE_CHUNK) {
                d.engine.handle_remote(now, origin, change);
            }
            d.drain(shared, None);
        }
        shared.counters.cluster_events_in.fetch_add(count, Ordering::Relaxed);
    }
}

/// The name of the one entry a change is about, the last part of its key `PREFIX:KIND:ID`: a
/// lock's network (an address alone for one host: `192.0.2.10`; an IPv6 prefix:
/// `2001:db8:1::/64`), a ban's network (written the same way), a strong peer's address, a weak peer's
/// `ADDR/PORT/CLIENT` (its witness client and port are part of what it is: two clients' weak
/// claims about one address are two entries, and neither widens into a strong one).
fn entry_id(change: &StateChange) -> String {
    let network = |net: IpNet| {
        if net.prefix_len() == net.max_prefix_len() {
            net.addr().to_string()
        } else {
            net.to_string()
        }
    };
    let peer = |p: &PeerEntry| match p.strength {
        Strength::Strong => p.addr.to_string(),
        Strength::Weak => {
            let port = p.port.map_or_else(|| "-".to_string(), |port| port.to_string());
            let client = p.client.map_or_else(|| "-".to_string(), |c| c.to_string());
            format!("{}/{port}/{client}", p.addr)
        }
    };
    match change {
        StateChange::Lock(e) => network(e.network()),
        StateChange::LockRemoved(net, _) => network(*net),
        StateChange::Peer(e) | StateChange::PeerRemoved(e, _) => peer(e),
        StateChange::Ban(BanEntry { net, .. }) | StateChange::BanRemoved(net, _) => network(*net),
        _ => String::new(),
    }
}

/// Whether the other gateways should hear of `change`: every new or refreshed entry, and only
/// an operator's removal. Expiry is Redis's and each engine's own business (a gateway whose
/// copy just expired must never delete a re-arm it has not seen yet), and an eviction is this
/// gateway's lack of room, not a judgement on the entry.
fn is_news(change: &StateChange) -> bool {
    match change {
        StateChange::LockRemoved(_, why)
        | StateChange::PeerRemoved(_, why)
        | StateChange::BanRemoved(_, why) => why.is_shared(),
        _ => true,
    }
}

/// The removal of the entry named `id` ([`entry_id`]), as published: an operator's (no other
/// removal is); None if `id` names none.
fn removal(kind: Kind, id: &str) -> Option<StateChange> {
    match kind {
        Kind::Locks => {
            let net = id.parse::<IpNet>().ok().or_else(|| id.parse::<IpAddr>().ok().map(IpNet::from))?;
            Some(StateChange::LockRemoved(net, Removal::Operator))
        }
        Kind::Peers => {
            let parts: Vec<&str> = id.split('/').collect();
            let entry = match parts[..] {
                [addr] => PeerEntry::new(addr.parse().ok()?, None, None, Strength::Strong),
                [addr, port, client] => PeerEntry {
                    client: Some(client.parse().ok()?),
                    ..PeerEntry::new(addr.parse().ok()?, Some(port.parse().ok()?), None, Strength::Weak)
                },
                _ => return None,
            };
            Some(StateChange::PeerRemoved(entry, Removal::Operator))
        }
        Kind::Bans => {
            let net = id.parse::<IpNet>().ok().or_else(|| id.parse::<IpAddr>().ok().map(IpNet::from))?;
            Some(StateChange::BanRemoved(net, Removal::Operator))
        }
    }
}

/// An entry as published: its JSON with wall-clock times, and when it ends (wall µs,
/// `u64::MAX`: never).
struct WallEntry {
    json: serde_json::Value,
    ends_us: u64,
}

/// The entry of a change, on the wall clock (None: a removal; Err: another gateway's entry,
/// not ours to publish).
fn wall_entry(change: &StateChange, clock: &Clock) -> Option<Result<WallEntry, ()>> {
    let mut snapshot = Snapshot::default();
    match change {
        StateChange::Lock(e) if e.origin.is_none() => snapshot.locks.push(*e),
        StateChange::Peer(e) if e.origin.is_none() => snapshot.peers.push(*e),
        StateChange::Ban(e) if e.origin.is_none() => snapshot.bans.push(e.clone()),
        StateChange::Lock(_) | StateChange::Peer(_) | StateChange::Ban(_) => return Some(Err(())),
        _ => return None,
    }
    let wall = clock.snapshot_to_wall(&snapshot);
    let now = clock.wall();
    let (json, ends) = if let Some(e) = wall.locks.first() {
        (serde_json::to_value(e), Some(e.until))
    } else if let Some(e) = wall.peers.first() {
        let cap = now.saturating_add(PEER_TTL_CAP);
        (serde_json::to_value(e), Some(e.expires.map_or(cap, |x| x.min(cap))))
    } else if let Some(e) = wall.bans.first() {
        (serde_json::to_value(e), e.until)
    } else {
        return Some(Err(()));
    };
    Some(
        json.map(|json| WallEntry { json, ends_us: ends.map_or(u64::MAX, Timestamp::as_micros) })
            .map_err(|_| ()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_must_be_private_and_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "ftwall s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = format!("{:#}", read_credentials(&file).unwrap_err());
        assert!(refused.contains("group or others"), "{refused}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_credentials(&file).unwrap(), (Some("ftwall".into()), "s3cret".into()));
        std::fs::write(&file, "only-a-password\n").unwrap();
        assert_eq!(read_credentials(&file).unwrap(), (None, "only-a-password".into()));
        std::fs::write(&file, "a b c\n").unwrap();
        assert!(read_credentials(&file).is_err());
    }

    #[test]
    fn a_server_answer_is_a_refusal_a_lost_connection_is_not() {
        let full = redis::make_extension_error(
            "OOM".into(),
            Some("command not allowed when used memory > 'maxmemory'.".into()),
        );
        let refusal = Refusal::of(&full).unwrap();
        assert_eq!(refusal.code, "OOM");
        assert_eq!(refusal.error, "OOM command not allowed when used memory > 'maxmemory'.");
        let lost = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(Refusal::of(&lost).is_none());
        let timeout = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(Refusal::of(&timeout).is_none());
    }

    fn cluster() -> Cluster {
        let config =
            ClusterConfig { enabled: true, node_id: Some("gw-b".into()), ..ClusterConfig::default() };
        Cluster::new(&config).unwrap().unwrap()
    }

    /// Made-up gateway names cannot freeze the list: a new one beyond the bound replaces the
    /// one heard from least recently.
    #[test]
    fn gateways_seen_stays_bounded_and_current() {
        let cluster = cluster();
        for i in 0..MAX_GATEWAYS {
            cluster.heard_from(GatewayId::new(&format!("made-up-{i}")).unwrap());
        }
        cluster.gateways.lock().unwrap().insert("made-up-0".into(), 0);
        cluster.heard_from(GatewayId::new("gw-a").unwrap());
        let seen = cluster.status().gateways_seen;
        assert_eq!(seen.len(), MAX_GATEWAYS);
        assert!(seen.contains(&"gw-a".to_string()));
        assert!(!seen.contains(&"made-up-0".to_string()), "the least recently heard stays");
    }

    /// Only an operator's removal reaches the outbox: an expiry or an eviction here must not
    /// end the entry on the other gateways.
    #[test]
    fn only_news_is_queued_for_the_other_gateways() {
        let cluster = cluster();
        let counters = Counters::default();
        let net: IpNet = "192.0.2.10/32".parse().unwrap();
        let peer = PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong);
        for why in [Removal::Expired, Removal::Evicted] {
            cluster.publish(&StateChange::LockRemoved(net, why), &counters);
            cluster.publish(&StateChange::PeerRemoved(peer, why), &counters);
            cluster.publish(&StateChange::BanRemoved(net, why), &counters);
        }
        assert_eq!(cluster.depth.load(Ordering::Relaxed), 0, "an expiry or eviction was queued");
        cluster.publish(&StateChange::LockRemoved(net, Removal::Operator), &counters);
        cluster.publish(&StateChange::PeerRemoved(peer, Removal::Operator), &counters);
        cluster.publish(&StateChange::BanRemoved(net, Removal::Operator), &counters);
        cluster
            .publish(&StateChange::Lock(LockEntry::new(net.addr(), Timestamp::ZERO, None, None)), &counters);
        assert_eq!(cluster.depth.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn every_entry_has_a_name_its_removal_reads_back() {
        let weak = PeerEntry {
            client: Some("192.0.2.10".parse().unwrap()),
            ..PeerEntry::new("2001:db8:2::20".parse().unwrap(), Some(1214), None, Strength::Weak)
        };
        let strong = PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong);
        let lock6 = LockEntry {
            network: Some("2001:db8:1::/64".parse().unwrap()),
            ..LockEntry::new("2001:db8:1::10".parse().unwrap(), Timestamp::ZERO, None, None)
        };
        let lock4 = LockEntry::new("192.0.2.10".parse().unwrap(), Timestamp::ZERO, None, None);
        let cases = [
            (Kind::Peers, StateChange::Peer(weak), "2001:db8:2::20/1214/192.0.2.10"),
            (Kind::Peers, StateChange::Peer(strong), "198.51.100.20"),
            (Kind::Locks, StateChange::Lock(lock6), "2001:db8:1::/64"),
            (Kind::Locks, StateChange::Lock(lock4), "192.0.2.10"),
        ];
        for (kind, change, id) in cases {
            assert_eq!(entry_id(&change), id);
            let removed = removal(kind, id).unwrap();
            assert_eq!(entry_id(&removed), id, "{removed:?}");
        }
        // A weak peer's removal names its witness and port: the engine ends that one only.
        assert!(matches!(
            removal(Kind::Peers, "2001:db8:2::20/1214/192.0.2.10"),
            Some(StateChange::PeerRemoved(
                PeerEntry { strength: Strength::Weak, port: Some(1214), client: Some(_), .. },
                Removal::Operator
            ))
        ));
        for bad in ["", "x", "198.51.100.20/1214", "198.51.100.20/x/192.0.2.10", "1/2/3/4"] {
            assert_eq!(removal(Kind::Peers, bad), None, "{bad}");
        }
        assert_eq!(removal(Kind::Locks, "nonsense"), None);
    }

    #[test]
    fn records_are_checked_before_they_reach_the_engine() {
        let c = cluster();
        let until = clock::wall_now().as_micros() + 60_000_000;
        let good =
            format!(r#"{{"from":"gw-a","entry":{{"client":"192.0.2.10","until":{until},"port":null}}}}"#);
        let (origin, change) = c.parse_record("ftwall:lock:192.0.2.10", good.as_bytes()).unwrap().unwrap();
        assert_eq!(origin.as_str(), "gw-a");
        assert!(
            matches!(change, StateChange::Lock(LockEntry { client, .. }) if client.to_string() == "192.0.2.10")
        );
        // Our own entry: ignored, not garbage.
        let own = good.replace("gw-a", "gw-b");
        assert_eq!(c.parse_record("ftwall:lock:192.0.2.10", own.as_bytes()), Ok(None));
        // Garbage of every kind.
        for (key, value) in [
            ("ftwall:lock:192.0.2.11", good.clone()),
            ("ftwall:lock:nonsense", good.clone()),
            ("ftwall:nope:192.0.2.10", good.clone()),
            ("ftwall:lock:192.0.2.10", "{not json".into()),
            ("ftwall:lock:192.0.2.10", r#"{"from":"gw a","entry":{}}"#.into()),
            ("ftwall:lock:192.0.2.10", r#"{"from":"gw-a","entry":{"client":"192.0.2.10"}}"#.into()),
            ("ftwall:lock:192.0.2.10", "x".repeat(MAX_VALUE_BYTES + 1)),
        ] {
            assert!(c.parse_record(key, value.as_bytes()).is_err(), "{key} {value:.60}");
        }
    }
}
