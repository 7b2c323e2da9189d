//! The FastTrack verdict engine.
//!
//! [`Engine`] is a deterministic state machine in the quinn-proto shape: packets go in through
//! [`Engine::handle_packet`] (one [`Decision`] per packet, always), time goes in as an argument,
//! and side effects come out through [`Engine::poll_event`] (for logs), [`Engine::poll_action`]
//! (packets to send, changes of the persisted state) and [`Engine::poll_timeout`] /
//! [`Engine::handle_timeout`] (lock probes and expiries). It performs no IO and reads no clock.
//!
//! ## Decision order for one packet
//! 0. A TCP/UDP packet to or from an address in a network the operator banned
//!    ([`Engine::ban`]; a single address is a /32 or /128): `banned`. A banned inside address
//!    (in `lan`) keeps the time-lock's `allow_ports` (DNS, web); a banned outside address loses
//!    everything.
//! 1. A FastTrack tell in this very packet (`udp_ping`, `udp_pong`, `udp_pong_ack`,
//!    `udp_address_echo`, `udp_session`, `tcp_opener`, `tcp_handshake`, `http_transfer`,
//!    `give_push`): the flow is classified, the peer learned, the inside client (re-)locked.
//!    A `C0 28` / `C3 28` datagram on a flow not yet classified is the `udp_session` tell only
//!    when something independent corroborates it (`session_corroborated`): its inside port is the
//!    client's FastTrack port (learned from the client's own pings, pongs and 0x2A echoes, see
//!    `ports`), its client is locked (on the lock's port, or on any port when the lock knows
//!    none), its outside end is a suspect peer, or its outside port is 1214. On a classified
//!    flow it is `fasttrack_flow` and re-arms the lock. The TCP tells are judged on each
//!    direction's reassembled stream (`stream`), on the packet that completes them.
//! 2. A packet of a flow already classified: `fasttrack_flow`.
//! 3. An outbound TCP SYN or UDP datagram to a suspect peer: `suspect_peer`. A strong peer (it
//!    spoke FastTrack itself on a verified flow) blocks every inside host on every port; a weak
//!    one (only named by a header, a ping's destination, an unverified datagram) blocks only the
//!    client that named it, only to that port, never a port of `timelock.allow_ports`. Neither
//!    applies to an `exempt` address. See `peers` for the trust model.
//! 4. An outbound TCP SYN from a locked client (its lock: its IPv4 address, its IPv6 prefix, or
//!    with `timelock.mac_tie` the lock armed from the packet's source MAC) to a port outside
//!    `timelock.allow_ports`: `client_locked`. Only inside hosts (in `lan`, not `exempt`) are
//!    ever locked.
//! 5. A new flow to port 1214 when `port_1214_blocks`: `port_1214`.
//! 6. A TCP packet that needed a new flow entry its source had no quota for (see Bounds), or a
//!    segment that needed a reassembly window its source had no quota for, and that no rule
//!    above judged: `flow_quota` (dropped: its stream cannot be inspected; TCP sends it again).
//!    Rules 3 to 5 apply to such a packet at every packet, as to a connection first seen
//!    mid-stream. A UDP datagram refused an entry is judged without one: its tells are
//!    properties of the datagram (only the 0x2A echo, which needs the flow's 0x29 pong, is
//!    lost), so its verdict is the one above, `clean` included, and the refusal is counted.
//! 7. Otherwise `clean`.
//!
//! Packets without a transport header to judge are accepted as `other_protocol` (not TCP/UDP,
//! including IPv6 ESP and No Next Header) or `later_fragment`, and a first fragment whose TCP
//! segment or UDP datagram continues in later fragments as `first_fragment` (after the ban
//! check): the engine does not reassemble IP fragments, since the kernel's conntrack
//! defragments before the queue under the shipped rules (see `docs/detection.md`). A well-formed packet whose TCP/UDP
//! header could not be reached, because it lies beyond the captured bytes (a long IPv6
//! extension-header chain past `copy_range`) or beyond an IPv6 first fragment, is dropped as
//! `transport_unreachable`: the receiver would still deliver it, tell and all. A broken header
//! chain is `malformed` and follows the `malformed` policy (see [`crate::wire`]).
//!
//! A TCP connection first seen mid-stream (no SYN: the daemon restarted, or a flood evicted its
//! flow entry) is judged like a new one at every packet: `suspect_peer` if its outside end is a
//! suspect peer, `client_locked` if its inside end is locked and the outside port is not allowed.
//!
//! ## Forged packets
//! The engine never sends anything itself; it asks the shell to, with two actions:
//! - [`Action::SendSpoofedPong`]: one pong per dropped ping, only for a ping from a client in
//!   `lan` to a peer outside it (so the gateway is never a reflector towards outside hosts),
//!   within the `pongs` token buckets (per client and in total). Refusals are counted in
//!   [`EngineStats`] (`pongs_refused_not_lan`, `pongs_rate_limited`).
//! - [`Action::SendProbe`]: at half expiry of a lock, a ping forged from the last outside peer
//!   the client pinged to the client's FastTrack port. The client answers a node it pinged
//!   itself; its pong to the peer is judged here (a `udp_pong` tell, dropped). A locked client's
//!   pong re-arms its lock only when it is the answer to the probe outstanding: from the exact
//!   address and port the probe went to, to the exact address and port it was forged from, once
//!   per probe (counted in [`EngineStats::probe_answers`]); any other pong "from" a locked client
//!   is dropped with its flow but teaches nothing (counted in
//!   [`EngineStats::pongs_unsolicited`]), so another host cannot keep a client locked by forging
//!   answers. Locks without a known peer (TCP tells only, older state files) get no probe.
//!
//! Neither is queued in monitor mode or with `spoof_pongs = false`.
//!
//! ## Direction
//! The inside endpoint of a flow is the one in `lan`; when both or neither are, the sender of
//! the flow's first packet is taken as inside. "Outbound" means sent by the inside endpoint.
//! Every [`Decision`] carries the ends by this one rule ([`Decision::ends`]), so the shell never
//! works them out again.
//!
//! ## Bounds
//! Every flow entry is charged to the source that sent its first packet (an inside host by its
//! address, an outside sender by its /24 or /64); one source holds at most a quarter of
//! `flows.capacity` entries (idle ones are forgotten to make room; refusals counted in
//! [`EngineStats::flow_quota_refused`]), so one source's churn cannot evict the flows of others
//! while they hold fewer than three quarters of the table.
//! Flows, reassembly buffers, client ports (as many as locks) and MAC ties each live in a
//! fixed-capacity LRU; suspect peers in four tables (family x strength) and locks in two
//! (family) that refuse new entries when full of live ones (counted in [`EngineStats`], reported
//! as [`Event::Refused`]) and never evict a live one; one client's flows hold at most
//! `peers.per_client` peers of each strength; operator bans live in a table capped at
//! [`MAX_BANS`] that only the operator fills; the event and action queues are capped at
//! [`QUEUE_LIMIT`] entries (the oldest are discarded and counted). Memory therefore does not
//! grow with attacker-chosen input.
//!
//! ## Layout
//! This file is the hub: the public types and methods, and the decision order above written
//! out as `judge_udp` / `judge_tcp`. It is long (about 980 lines) because the whole public API
//! is kept in one place; the mechanics live in the children, each with its own invariants:
//! - `flows`: the flow table; `stream`: TCP stream reassembly and the stream tells;
//! - `peers`, `locks`, `bans`, `pongs`: suspect peers, client time-locks, operator bans, the
//!   forged-pong rate limits; `ports`: each client's FastTrack UDP port (evidence for
//!   `udp_session`);
//! - `snapshot`: the persisted types and [`StateChange`] (a leaf, shared with [`crate::state`]);
//! - `stats`: the packet counters.

mod bans;
mod flows;
mod locks;
mod peers;
mod pongs;
mod ports;
pub(crate) mod snapshot;
mod stats;
mod stream;

pub use bans::{
    check_ban_reason, BanError, MAX_BANS, MAX_BAN_REASON, MAX_BAN_SECONDS, MAX_REMOTE_BANS, REMOTE_BAN_WIDEST,
};
pub use snapshot::{
    BadGatewayId, BanEntry, FlowTuple, GatewayId, LockEntry, PeerEntry, Removal, Snapshot, StateChange,
    Strength,
};

pub use stats::EngineStats;

use crate::config::{EngineConfig, MalformedPolicy, Mode};
use crate::signatures::{self, udp::UdpTell, Network};
use crate::time::Timestamp;
use crate::verdict::{Decision, FlowEnds, PacketSummary, Proto, Reason, Settled, Verdict};
use crate::wire::{self, Packet, TcpSegment, Transport, UdpDatagram};
use bans::Bans;
use flows::{Endpoint, Flow, FlowKey, FlowTable, Source, SourceQuota, TCP, UDP};
use ipnet::IpNet;
use locks::{Armed, Arming, ClientLocks, Due, LockRefusal};
use lru::LruCache;
use peers::{Claim, Learned, Merged, PeerCache, PeerLimits, Refusal};
use pongs::PongLimiter;
use ports::ClientPorts;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;
use stream::{ByteTell, Found, Reassembly};

/// What the shell knows about a packet besides its bytes (NFQUEUE metadata).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// The source hardware address of the frame that carried it (`NFQA_HWADDR`: the previous
    /// hop on the interface it arrived on), when known and 6 bytes long.
    pub src_mac: Option<[u8; 6]>,
}

/// Maximum number of undrained events, and of undrained actions.
pub const QUEUE_LIMIT: usize = 65_536;

/// Why a ban from another gateway was refused ([`Event::RemoteBanRefused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteBanRefusal {
    /// Wider than [`REMOTE_BAN_WIDEST`].
    TooWide,
    /// It holds a whole `lan` network.
    CoversLan,
    /// It holds, or is inside, an `exempt` network.
    Exempt,
    /// This gateway already holds [`MAX_REMOTE_BANS`] remote bans, or its table is full.
    Full,
}

impl RemoteBanRefusal {
    /// The name in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TooWide => "too_wide",
            Self::CoversLan => "covers_lan",
            Self::Exempt => "exempt",
            Self::Full => "full",
        }
    }
}

/// Something the operator should hear about. Drained with [`Engine::poll_event`].
///
/// `#[non_exhaustive]`: new events are added as the engine learns to report more (as
/// `BanExpired` was); a shell should log what it does not know at a low level.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An inside host was seen speaking FastTrack for the first time since it was last released.
    ClientIdentified {
        /// The inside host.
        client: IpAddr,
        /// The outside endpoint it was talking to.
        peer: SocketAddr,
        /// The tell.
        reason: Reason,
        /// When its time-lock ends (None when the time-lock is disabled).
        locked_until: Option<Timestamp>,
    },
    /// An outside endpoint entered the suspect-peer cache.
    PeerIdentified {
        /// The outside address.
        peer: IpAddr,
        /// Its FastTrack port, when known.
        port: Option<u16>,
        /// The inside host whose traffic revealed it, when there was one.
        client: Option<IpAddr>,
        /// The tell.
        reason: Reason,
        /// What the evidence is worth (and so what the entry blocks).
        strength: Strength,
    },
    /// Something learned was not admitted because a bound was reached. Reported at the 1st,
    /// 2nd, 4th, 8th... refusal of each kind, so a flood gives a handful of events; every
    /// refusal is counted in [`EngineStats`].
    Refused {
        /// Which bound.
        kind: RefusedKind,
        /// The address refused (the peer, or the client for a lock).
        addr: IpAddr,
        /// The inside client whose flow it came from, when there was one.
        client: Option<IpAddr>,
        /// Refusals of this kind so far.
        total: u64,
    },
    /// A client's time-lock expired.
    ClientReleased {
        /// The inside host.
        client: IpAddr,
    },
    /// A ban from another gateway of the cluster was taken (or changed), or one its operator
    /// lifted was lifted here ([`Engine::handle_remote`]).
    RemoteBan {
        /// The network.
        net: IpNet,
        /// The gateway it came from.
        origin: GatewayId,
        /// The ban was lifted (else taken).
        lifted: bool,
        /// The operator's reason for the ban, if one was given.
        reason: Option<String>,
    },
    /// A ban from another gateway was refused. Reported at the 1st, 2nd, 4th, 8th… refusal
    /// (`total`), so a flood of them costs a few lines.
    RemoteBanRefused {
        /// The network.
        net: IpNet,
        /// The gateway it came from.
        origin: GatewayId,
        /// Why.
        why: RemoteBanRefusal,
        /// Refusals so far.
        total: u64,
    },
    /// An operator ban reached its expiry and was lifted.
    BanExpired {
        /// The network no longer banned.
        net: IpNet,
        /// The operator's reason for the ban, if one was given.
        reason: Option<String>,
    },
    /// A flow was classified as FastTrack: all its later packets are dropped.
    FlowClassified {
        /// Transport protocol.
        proto: Proto,
        /// The inside endpoint.
        client: SocketAddr,
        /// The outside endpoint.
        peer: SocketAddr,
        /// The tell.
        reason: Reason,
    },
}

/// Which bound refused something learned ([`Event::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedKind {
    /// A suspect-peer table (per family and strength, `peers.capacity`) is full of live entries.
    PeerTableFull,
    /// The client's flows already added `peers.per_client` live suspect peers.
    PeerQuota,
    /// A lock table (per family, `timelock.capacity`) is full of live locks.
    LockTableFull,
    /// A suspect peer from another gateway: entries from other gateways hold half of its table
    /// already.
    PeerRemoteShare,
    /// A lock from another gateway: locks from other gateways hold half of its table already.
    LockRemoteShare,
}

impl RefusedKind {
    /// The stable snake_case name used in logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PeerTableFull => "peer_table_full",
            Self::PeerQuota => "peer_quota",
            Self::LockTableFull => "lock_table_full",
            Self::PeerRemoteShare => "peer_remote_share",
            Self::LockRemoteShare => "lock_remote_share",
        }
    }
}

/// Something the shell must do. Drained with [`Engine::poll_action`].
///
/// Deliberately not `#[non_exhaustive]`: a shell has to carry out every action, so a new one is
/// a breaking change that its `match` must fail to compile on, not fall into a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `payload` as a UDP datagram from `from` (the peer the client pinged) to `to` (the
    /// client), through a raw socket, so the client believes UDP works. Queued at most once per
    /// dropped ping, only when the client is in `lan` and the peer is not, within the `pongs`
    /// rate limits (refusals are counted in [`EngineStats`]).
    SendSpoofedPong {
        /// Forged source: the peer.
        from: SocketAddr,
        /// The client's FastTrack port.
        to: SocketAddr,
        /// A 0x28 pong.
        payload: Vec<u8>,
    },
    /// Half-expiry keep-alive: send `payload` (a 0x27 ping) as a UDP datagram forged from `from`
    /// (the outside peer the client last pinged) to `to` (the client's FastTrack port), through
    /// the same raw socket as forged pongs. The client answers a node it pinged itself: its 0x28
    /// pong to the peer crosses the gateway, is judged a `udp_pong` tell, re-arms the lock and is
    /// dropped. Only for locked clients in `lan` whose peer is known and outside `lan`, in enforce
    /// mode with `spoof_pongs`.
    SendProbe {
        /// Forged source: the peer the client pinged.
        from: SocketAddr,
        /// The client's FastTrack UDP port.
        to: SocketAddr,
        /// A 0x27 ping.
        payload: Vec<u8>,
    },
    /// The persisted state changed: mark the state file dirty and update any mirror of it.
    StateChanged(StateChange),
    /// The persisted state changed by a merge from another gateway
    /// ([`Engine::handle_remote`]): mark the state file dirty and update the local mirrors,
    /// like [`Action::StateChanged`], but do not publish it to the other gateways (they know).
    StateMerged(StateChange),
}

/// The verdict engine. See the module documentation for the decision order.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    lock_period: Option<Duration>,
    idle: Duration,
    flows: FlowTable,
    /// Flow entries per source (see `flows`).
    flow_quota: SourceQuota,
    reassembly: Reassembly<FlowKey>,
    peers: PeerCache,
    locks: ClientLocks,
    client_ports: ClientPorts,
    bans: Bans,
    pongs: PongLimiter,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    stats: EngineStats,
    /// Whether the sender of the packet being judged is its flow's inside end; set by
    /// `lookup`, taken by `handle_packet` for [`Decision::ends`].
    sender_inside: Option<bool>,
    /// The source MAC of the packet being judged (its [`PacketMeta`]).
    packet_mac: Option<[u8; 6]>,
    /// That MAC when the packet was sent by its flow's inside end in `lan` and `timelock.mac_tie`
    /// is on; set by `lookup`.
    inside_mac: Option<[u8; 6]>,
    /// `timelock.mac_tie`: the lock last armed by a packet from each inside MAC (at most
    /// `timelock.capacity`, least recently used forgotten).
    mac_ties: LruCache<[u8; 6], IpNet>,
}

/// Identity of the two endpoints of the flow a tell was seen on.
#[derive(Debug, Clone, Copy)]
struct Parties {
    inside: Endpoint,
    outside: Endpoint,
    proto: Proto,
}

/// Where a packet sits in its flow.
#[derive(Debug, Clone, Copy)]
struct Place {
    key: FlowKey,
    /// The slot of the flow's entry in the table; None when its source's quota refused one,
    /// and the packet is judged without flow state.
    slot: Option<usize>,
    /// The packet was sent by the key's `low` endpoint.
    sender_is_low: bool,
    /// The packet was sent by the inside endpoint ("outbound").
    from_inside: bool,
}

impl Place {
    /// The flow's inside and outside ends (worked out when asked: most packets never ask).
    fn parties(&self) -> Parties {
        let proto = Proto::from_ip_protocol(self.key.protocol);
        let FlowKey { low, high, .. } = self.key;
        // The inside end is the sender of an outbound packet, the receiver of an inbound one.
        if self.from_inside == self.sender_is_low {
            Parties { inside: low, outside: high, proto }
        } else {
            Parties { inside: high, outside: low, proto }
        }
    }
}

fn peer_limits(config: &EngineConfig) -> PeerLimits {
    PeerLimits {
        capacity: config.peers.capacity,
        expire_seconds: config.peers.expire_seconds,
        weak_expire_seconds: config.peers.weak_expire_seconds,
        per_client: config.peers.per_client,
    }
}

/// True at the 1st, 2nd, 4th, 8th... count: when a refusal is worth an event.
fn worth_reporting(total: u64) -> bool {
    total.is_power_of_two()
}

fn non_zero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n.max(1)).expect("non-zero")
}

fn socket(e: Endpoint) -> SocketAddr {
    SocketAddr::new(e.ip, e.port)
}

fn summarize(packet: &Packet<'_>) -> PacketSummary {
    let (proto, src_port, dst_port, payload_len) = match packet.transport {
        Transport::Tcp(s) => (Proto::Tcp, Some(s.src_port), Some(s.dst_port), s.payload_len),
        Transport::Udp(d) => (Proto::Udp, Some(d.src_port), Some(d.dst_port), d.payload_len),
        Transport::LaterFragment { protocol } | Transport::Unreachable { protocol } => {
            (Proto::from_ip_protocol(protocol), None, None, 0)
        }
        Transport::Other { protocol, payload_len } => {
            (Proto::from_ip_protocol(protocol), None, None, payload_len)
        }
    };
    PacketSummary { proto, src: packet.src, dst: packet.dst, src_port, dst_port, payload_len }
}

impl Engine {
    /// A new engine with empty state.
    pub fn new(config: EngineConfig) -> Self {
        let mut engine = Self {
            lock_period: None,
            idle: Duration::from_secs(1),
            flows: FlowTable::new(non_zero(config.flows.capacity)),
            flow_quota: SourceQuota::new(config.flows.capacity),
            reassembly: Reassembly::new(config.flows.reassembly_capacity),
            peers: PeerCache::new(peer_limits(&config)),
            locks: ClientLocks::new(config.timelock.capacity),
            client_ports: ClientPorts::new(config.timelock.capacity, config.peers.expire_seconds),
            bans: Bans::default(),
            pongs: PongLimiter::new(
                config.pongs.per_client_per_second,
                config.pongs.max_per_second,
                config.timelock.capacity,
            ),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            stats: EngineStats::default(),
            sender_inside: None,
            packet_mac: None,
            inside_mac: None,
            mac_ties: LruCache::new(non_zero(config.timelock.capacity)),
            config,
        };
        engine.apply_derived();
        engine
    }

    fn apply_derived(&mut self) {
        let t = self.config.timelock.seconds;
        self.lock_period = (t > 0).then(|| Duration::from_secs(t));
        self.idle = Duration::from_secs(self.config.flows.idle_seconds.max(1));
    }

    /// The configuration in force.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Packet counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Judges one L3 packet (IP header first) seen at `now`. Never panics; every call is counted
    /// in [`Engine::stats`] under exactly one reason.
    pub fn handle_packet(&mut self, now: Timestamp, packet: &[u8]) -> Decision {
        self.handle_packet_with(now, packet, PacketMeta::default())
    }

    /// [`Engine::handle_packet`] with what the shell knows about the packet besides its bytes.
    pub fn handle_packet_with(&mut self, now: Timestamp, packet: &[u8], meta: PacketMeta) -> Decision {
        // Broadcast, multicast and all-zero addresses name no host.
        self.packet_mac = meta.src_mac.filter(|m| m[0] & 1 == 0 && *m != [0; 6]);
        let decision = self.judge_packet(now, packet);
        self.packet_mac = None;
        self.inside_mac = None;
        decision
    }

    fn judge_packet(&mut self, now: Timestamp, packet: &[u8]) -> Decision {
        let (reason, settled, summary) = match wire::parse(packet) {
            Ok(parsed) => {
                let summary = summarize(&parsed);
                let (reason, settled) = self.judge(now, &parsed);
                (reason, settled, Some(summary))
            }
            Err(bad) => {
                let summary = bad.addrs.map(|(src, dst)| PacketSummary {
                    proto: bad.protocol.map_or(Proto::Other, Proto::from_ip_protocol),
                    src,
                    dst,
                    src_port: None,
                    dst_port: None,
                    payload_len: 0,
                });
                (Reason::Malformed, None, summary)
            }
        };
        let verdict = self.verdict_for(reason);
        self.stats.record(verdict, reason);
        let settled = settled.filter(|_| self.config.offload.enabled);
        let blocked = reason.natural_verdict() == Verdict::Drop;
        let sender_inside = self.sender_inside.take();
        let ends = summary.as_ref().map(|s| self.ends(s, sender_inside));
        Decision { verdict, reason, blocked, packet: summary, ends, settled }
    }

    /// The rule that names a new flow's inside end: the sender is inside unless only the
    /// receiver is in `lan` (so when both or neither are, the first sender is inside).
    fn sender_is_inside(&self, src: IpAddr, dst: IpAddr) -> bool {
        self.config.is_lan(src) || !self.config.is_lan(dst)
    }

    /// The inside and outside ends of a judged packet's flow: the flow's (as `lookup` found it,
    /// or, for a packet judged before any lookup such as a banned one, as the table holds it),
    /// else the new-flow rule applied to the packet.
    fn ends(&self, p: &PacketSummary, sender_inside: Option<bool>) -> FlowEnds {
        let src = Endpoint { ip: p.src, port: p.src_port.unwrap_or(0) };
        let dst = Endpoint { ip: p.dst, port: p.dst_port.unwrap_or(0) };
        let tracked = sender_inside.or_else(|| {
            let protocol = match (p.proto, p.src_port.and(p.dst_port)) {
                (Proto::Tcp, Some(_)) => TCP,
                (Proto::Udp, Some(_)) => UDP,
                _ => return None,
            };
            let (key, src_is_low) = FlowKey::of(protocol, src, dst);
            self.flows.peek(&key).map(|flow| flow.inside_is_low == src_is_low)
        });
        if tracked.unwrap_or_else(|| self.sender_is_inside(p.src, p.dst)) {
            FlowEnds { inside: socket(src), outside: socket(dst) }
        } else {
            FlowEnds { inside: socket(dst), outside: socket(src) }
        }
    }

    fn verdict_for(&self, reason: Reason) -> Verdict {
        if self.config.mode == Mode::Monitor {
            return Verdict::Accept;
        }
        match reason {
            Reason::Malformed => match self.config.malformed {
                MalformedPolicy::Accept => Verdict::Accept,
                MalformedPolicy::Drop => Verdict::Drop,
            },
            other => other.natural_verdict(),
        }
    }

    fn enforcing(&self) -> bool {
        self.config.mode == Mode::Enforce
    }

    fn judge(&mut self, now: Timestamp, packet: &Packet<'_>) -> (Reason, Option<Settled>) {
        if !self.bans.is_empty() && self.is_banned_traffic(now, packet) {
            return (Reason::Banned, None);
        }
        match packet.transport {
            // The rest of the datagram is in later fragments: nothing complete to judge.
            Transport::Udp(d) if packet.first_fragment && d.payload.len() < d.payload_len => {
                (Reason::FirstFragment, None)
            }
            Transport::Tcp(_) if packet.first_fragment => (Reason::FirstFragment, None),
            Transport::Udp(d) => self.judge_udp(now, packet.src, packet.dst, d),
            Transport::Tcp(s) => self.judge_tcp(now, packet.src, packet.dst, s),
            Transport::LaterFragment { .. } => (Reason::LaterFragment, None),
            Transport::Unreachable { .. } => (Reason::TransportUnreachable, None),
            Transport::Other { .. } => (Reason::OtherProtocol, None),
        }
    }

    /// Whether a TCP/UDP packet is to or from a banned address (see the module documentation).
    fn is_banned_traffic(&self, now: Timestamp, packet: &Packet<'_>) -> bool {
        let (src_port, dst_port) = match packet.transport {
            Transport::Tcp(s) => (s.src_port, s.dst_port),
            Transport::Udp(d) => (d.src_port, d.dst_port),
            Transport::LaterFragment { .. } | Transport::Unreachable { .. } | Transport::Other { .. } => {
                return false
            }
        };
        let hit = |addr: IpAddr, other_port: u16| {
            self.bans.is_banned(addr, now)
                && !(self.config.is_lan(addr) && self.config.timelock.allow_ports.contains(&other_port))
        };
        hit(packet.src, dst_port) || hit(packet.dst, src_port)
    }

    /// Whether `flow` (after this packet) is decided for good. `clean_done` says whether
    /// everything the tells need has been seen.
    fn settled(&self, flow: &Flow, reason: Reason, clean_done: bool) -> Option<Settled> {
        match flow.blocked {
            Some(b) if b.is_tell() && self.enforcing() => Some(Settled::FastTrack),
            None if reason == Reason::Clean && clean_done => Some(Settled::Clean),
            _ => None,
        }
    }

    /// Finds or creates the flow of `src -> dst`. Returns where the packet sits in it (the flow
    /// state is copied out with [`Engine::flow_at`] and written back with
    /// [`Engine::store_flow`]), and whether the flow is new. A new flow whose sender's source
    /// holds its quota gets no entry (`Place::slot` None, counted in `flow_quota_refused`).
    /// The flow state is not returned: copying it through here cost more than the lookup.
    fn lookup(&mut self, now: Timestamp, protocol: u8, src: Endpoint, dst: Endpoint) -> (Place, bool) {
        let (key, sender_is_low) = FlowKey::of(protocol, src, dst);
        let mut stale = false;
        let found = match self.flows.get(&key) {
            Some(slot) => {
                let flow = self.flows.slot_mut(slot);
                if now.saturating_since(flow.last_seen) < self.idle {
                    flow.last_seen = flow.last_seen.max(now);
                    Some((slot, flow.inside_is_low))
                } else {
                    stale = true;
                    None
                }
            }
            None => None,
        };
        let (slot, inside_is_low, new) = match found {
            Some((slot, inside_is_low)) => {
                self.sender_inside = Some(inside_is_low == sender_is_low);
                (Some(slot), inside_is_low, false)
            }
            None => {
                let src_in_lan = self.config.is_lan(src.ip);
                let inside_is_src = src_in_lan || !self.config.is_lan(dst.ip);
                self.sender_inside = Some(inside_is_src);
                let flow = Flow {
                    charged_in_lan: src_in_lan,
                    ..Flow::new(now, inside_is_src == sender_is_low, sender_is_low)
                };
                if stale {
                    if let Some(idle) = self.flows.pop(&key) {
                        self.uncharge(&key, &idle);
                    }
                }
                self.reassembly.forget(&key);
                let source = flow.source(&key);
                let charged = self.flow_quota.try_charge(source) || {
                    self.forget_idle_flows(now, source);
                    self.flow_quota.try_charge(source)
                };
                let slot = if charged {
                    let (slot, evicted) = self.flows.push(key, flow);
                    if let Some((evicted, old)) = evicted {
                        // A forgotten flow's reassembly windows go with it.
                        self.uncharge(&evicted, &old);
                        self.reassembly.forget(&evicted);
                    }
                    Some(slot)
                } else {
                    self.stats.flow_quota_refused += 1;
                    None
                };
                (slot, flow.inside_is_low, true)
            }
        };
        let place = Place { key, slot, sender_is_low, from_inside: inside_is_low == sender_is_low };
        self.inside_mac = self.packet_mac.filter(|_| {
            place.from_inside && self.config.timelock.mac_tie && self.config.is_lan(place.parties().inside.ip)
        });
        (place, new)
    }

    /// A copy of the state of the flow at `at` (see [`Engine::lookup`]); for a flow refused an
    /// entry, the state a new one starts with (never stored, so its source is not needed).
    fn flow_at(&self, now: Timestamp, at: &Place) -> Flow {
        match at.slot {
            Some(slot) => *self.flows.slot(slot),
            None => Flow::new(now, at.from_inside == at.sender_is_low, at.sender_is_low),
        }
    }

    /// Forgets idle flows from the least recently used end of the table until `source` may
    /// have another entry or the oldest flow is live. Idle entries are forgotten anyway on their
    /// next packet; the table keeps them until it is full, and their quota with them. Each
    /// entry is forgotten once, so the work is amortised over the flows created.
    fn forget_idle_flows(&mut self, now: Timestamp, source: Source) {
        while !self.flow_quota.allows(source) {
            match self.flows.peek_lru() {
                Some((_, flow)) if now.saturating_since(flow.last_seen) >= self.idle => {}
                _ => break,
            }
            if let Some((key, flow)) = self.flows.pop_lru() {
                self.uncharge(&key, &flow);
                self.reassembly.forget(&key);
            }
        }
    }

    /// Releases the quota an entry of `key` held.
    fn uncharge(&mut self, key: &FlowKey, flow: &Flow) {
        self.flow_quota.release(flow.source(key));
    }

    /// Writes back the flow state `lookup` copied out of `slot` (nothing changes the table in
    /// between).
    fn store_flow(&mut self, slot: usize, flow: Flow) {
        *self.flows.slot_mut(slot) = flow;
    }

    fn judge_udp(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        d: UdpDatagram<'_>,
    ) -> (Reason, Option<Settled>) {
        let src_ep = Endpoint { ip: src, port: d.src_port };
        let dst_ep = Endpoint { ip: dst, port: d.dst_port };
        let (at, new) = self.lookup(now, UDP, src_ep, dst_ep);
        let mut flow = self.flow_at(now, &at);
        flow.packets = flow.packets.saturating_add(1);
        // Exact-shape tells need the whole datagram.
        let payload = if d.payload.len() == d.payload_len { d.payload } else { &[] };

        // A session datagram is asked about only on a flow no tell classified yet: on a
        // classified one it is a later packet of the flow (below) and re-arms the lock.
        let classified = flow.blocked.is_some_and(Reason::is_tell);
        let tell = signatures::udp::classify(payload, dst, flow.nat_pong_id, || {
            !classified && self.session_corroborated(now, at.parties())
        });
        let reason = if let Some(tell) = tell {
            self.on_udp_tell(now, &at, &mut flow, tell);
            tell.reason()
        } else if let Some(blocked) = flow.blocked {
            if blocked.is_tell() && signatures::udp::session_datagram(payload) {
                let client_port = self.session_port(at.parties().inside);
                self.rearm(now, at.parties(), client_port);
            }
            blocked_reason(blocked)
        } else if at.from_inside && self.peer_blocks(now, at.parties()) {
            Reason::SuspectPeer
        } else if new && at.from_inside && self.config.port_1214_blocks && d.dst_port == 1214 {
            flow.blocked = Some(Reason::Port1214);
            Reason::Port1214
        } else {
            Reason::Clean
        };
        let Some(slot) = at.slot else {
            // Judged without flow state: every UDP tell but the 0x2A echo is a property of the
            // datagram itself (a session datagram's corroboration lives outside the flow), so
            // the verdict above stands; only the flow is not remembered (nor offloaded).
            return (reason, None);
        };
        self.store_flow(slot, flow);
        let settled = self.settled(&flow, reason, flow.packets >= self.config.offload.udp_after_packets);
        (reason, settled)
    }

    /// Whether something independent of a `C0 28` / `C3 28` datagram says its flow is FastTrack
    /// (see the module documentation): the client's FastTrack port, its lock, a suspect peer,
    /// or the FastTrack default port on the outside end. Cheapest first; asked only for that
    /// shape on an unclassified flow.
    fn session_corroborated(&mut self, now: Timestamp, parties: Parties) -> bool {
        let Parties { inside, outside, .. } = parties;
        outside.port == 1214
            || self.client_ports.is_fasttrack_port(inside.ip, inside.port, now)
            || self.client_locked_on(inside, now)
            || self.peer_blocks(now, parties)
    }

    /// The FastTrack port a session datagram from `inside` gives its client's lock: its own port
    /// only when the lock knows none yet (a lock from TCP tells alone). A session datagram never
    /// moves a known port: its tell rests on corroboration (port 1214, say), and the port it
    /// would teach would corroborate the client's next ones and aim its probes.
    fn session_port(&self, inside: Endpoint) -> Option<u16> {
        let known = self.locks.entry(self.config.client_key(inside.ip)).and_then(|l| l.port);
        known.is_none().then_some(inside.port)
    }

    /// A UDP tell on `flow`. Besides [`Engine::on_tell`]: a 0x29 pong's id is remembered for
    /// the 0x2A echo, the inside port of a ping, pong or 0x2A is remembered as the client's
    /// FastTrack port, a pong from a locked client counts only as the answer to its lock's
    /// probe, and a ping from a LAN client to an outside peer names the peer probes are forged
    /// from and is answered with a forged pong.
    fn on_udp_tell(&mut self, now: Timestamp, at: &Place, flow: &mut Flow, tell: UdpTell) {
        let (parties, from_inside) = (at.parties(), at.from_inside);
        let key = self.config.client_key(parties.inside.ip);
        if tell.reason() == Reason::UdpPong && from_inside && self.locks.is_locked(key, now) {
            // A locked client's pings are dropped, so the only ping it can be answering is the
            // probe. The exact answer re-arms the lock; any other pong "from" it (forged by
            // another host, from another port, to another address) is dropped with its flow
            // but teaches nothing: no re-arm, no port, no peer (see the module documentation).
            if !self.locks.take_probe_answer(key, socket(parties.inside), socket(parties.outside), now) {
                self.stats.pongs_unsolicited += 1;
                self.classify(flow, tell.reason(), parties);
                return;
            }
            self.stats.probe_answers += 1;
        }
        if let UdpTell::NatPong(pong) = tell {
            flow.nat_pong_id = Some(pong.id);
        }
        // What the tell says about the outside end: a pong from it answering a ping the client
        // sent it on this very flow is the address itself speaking (strong); anything else is
        // a claim (weak): the client's own datagram names its destination, and the source of
        // an unsolicited inbound datagram is not verified.
        let answers_client = !from_inside
            && flow.inside_pinged
            && matches!(tell, UdpTell::Pong(_) | UdpTell::NatPong(_) | UdpTell::PongAck(_));
        let strength = if answers_client { Strength::Strong } else { Strength::Weak };
        if from_inside && matches!(tell, UdpTell::Ping(_)) {
            flow.inside_pinged = true;
        }
        // Discovery leaves from and arrives at the node's one FastTrack port. Not learned from
        // 0xC1 (mostly, not always, sent from it) nor from a session datagram, whose tell
        // rests on corroboration already: one piece of evidence must not mint another.
        let discovery =
            matches!(tell, UdpTell::Ping(_) | UdpTell::Pong(_) | UdpTell::NatPong(_) | UdpTell::PongAck(_));
        if discovery && self.client_ports.learn(parties.inside.ip, parties.inside.port, now) {
            self.stats.client_ports_evicted += 1;
        }
        let probe_peer = (matches!(tell, UdpTell::Ping(_))
            && from_inside
            && self.config.is_lan(parties.inside.ip)
            && !self.config.is_lan(parties.outside.ip))
        .then(|| socket(parties.outside));
        let client_port = match tell {
            UdpTell::Session => self.session_port(parties.inside),
            _ => Some(parties.inside.port),
        };
        self.on_tell(now, flow, tell.reason(), parties, client_port, probe_peer, strength);
        if let (UdpTell::Ping(network), true) = (tell, from_inside) {
            if self.config.spoof_pongs && self.enforcing() {
                self.forge_pong(now, parties, network);
            }
        }
    }

    fn judge_tcp(
        &mut self,
        now: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        s: TcpSegment<'_>,
    ) -> (Reason, Option<Settled>) {
        let src_ep = Endpoint { ip: src, port: s.src_port };
        let dst_ep = Endpoint { ip: dst, port: s.dst_port };
        let (at, _) = self.lookup(now, TCP, src_ep, dst_ep);
        let Some(slot) = at.slot else {
            // No entry (its source's quota): no stream to inspect. The rules that need no flow
            // state apply to every packet, as to a connection first seen mid-stream.
            let reason = match self.connection_rule(now, at.parties()) {
                Some(rule) => rule,
                None if at.from_inside && self.config.port_1214_blocks && s.dst_port == 1214 => {
                    Reason::Port1214
                }
                None => Reason::FlowQuota,
            };
            return (reason, None);
        };
        let mut flow = *self.flows.slot(slot);
        if flow.reused_by(s.flags) {
            // Port reuse: a fresh connection on a 5-tuple that already carried data (charged to
            // the same source as before).
            let reused = Flow::new(now, flow.inside_is_low, at.sender_is_low);
            flow = Flow { charged_low: flow.charged_low, charged_in_lan: flow.charged_in_lan, ..reused };
            self.reassembly.forget(&at.key);
        }
        // A segment can be refused a window only while the stream is inspected.
        let before = flow.tcp.inspecting().then_some(flow.tcp);
        flow.tcp.on_ack_of_syn(at.sender_is_low, s.flags, s.ack);
        // The flow's source, worked out only if the segment needs a reassembly window.
        let (charged, charged_in_lan) = (flow.charged(&at.key).ip, flow.charged_in_lan);
        let found = flow.tcp.on_segment(
            at.sender_is_low,
            s.flags,
            s.seq,
            s.payload,
            s.payload_len,
            &mut self.reassembly,
            &at.key,
            || Source::of(charged, charged_in_lan),
            &mut self.stats.reassembly_evicted,
        );
        self.stats.stream_segments_ignored += u64::from(found.ignored);
        if let (true, Some(before)) = (found.refused, before) {
            self.stats.reassembly_quota_refused += 1;
            if found.bytes.is_none() && found.http.is_none() {
                // The segment needed a reassembly window its source has no quota for: it is
                // dropped and the stream stays as it was, so the sender's retransmission is
                // judged once the source's other windows are freed (never passed uninspected).
                flow.tcp = before;
                self.store_flow(slot, flow);
                return (flow.blocked.map_or(Reason::FlowQuota, blocked_reason), None);
            }
        }
        let tell = self.tcp_tell(now, &at, &flow, found);

        let reason = if let Some((tell, client_port)) = tell {
            // The outside end spoke the tell itself, on a connection whose handshake it
            // completed (its address is verified): strong. The client speaking FastTrack to an
            // address, or a segment of a connection first seen mid-stream, is only a claim.
            let strength =
                if !at.from_inside && flow.tcp.handshake_seen() { Strength::Strong } else { Strength::Weak };
            self.on_tell(now, &mut flow, tell, at.parties(), client_port, None, strength);
            tell
        } else if let Some(blocked) = flow.blocked {
            blocked_reason(blocked)
        } else if !flow.tcp.handshake_seen() {
            // A connection first seen mid-stream (the daemon restarted, or a flood evicted its
            // flow entry): judged as if it were new, in either direction, and the verdict sticks,
            // so a classified supernode session cannot slip through by losing its flow entry
            // while its peer or its client is still known.
            flow.blocked = self.connection_rule(now, at.parties());
            flow.blocked.unwrap_or(Reason::Clean)
        } else if s.flags.is_initial_syn() && at.from_inside {
            if let Some(rule) = self.connection_rule(now, at.parties()) {
                rule
            } else if self.config.port_1214_blocks && s.dst_port == 1214 {
                flow.blocked = Some(Reason::Port1214);
                Reason::Port1214
            } else {
                Reason::Clean
            }
        } else {
            Reason::Clean
        };
        self.store_flow(slot, flow);
        (reason, self.settled(&flow, reason, !flow.tcp.inspecting()))
    }

    /// Rules 3 and 4 for a new TCP connection: its outside end is a suspect peer
    /// (`suspect_peer`), or its inside end is a locked client and the outside port is not in
    /// `timelock.allow_ports` (`client_locked`).
    fn connection_rule(&mut self, now: Timestamp, parties: Parties) -> Option<Reason> {
        if self.peer_blocks(now, parties) {
            Some(Reason::SuspectPeer)
        } else if self.client_locked(parties.inside.ip, now)
            && !self.config.timelock.allow_ports.contains(&parties.outside.port)
        {
            Some(Reason::ClientLocked)
        } else {
            None
        }
    }

    /// Turns what a segment completed on the reassembled streams into a tell, in the order
    /// opener, push, handshake shape (corroborated), HTTP. Returns the tell and, when known, the
    /// client's FastTrack port.
    fn tcp_tell(
        &mut self,
        now: Timestamp,
        at: &Place,
        flow: &Flow,
        found: Found,
    ) -> Option<(Reason, Option<u16>)> {
        match found.bytes {
            Some(ByteTell::Opener) => return Some((Reason::TcpOpener, None)),
            Some(ByteTell::Give) => return Some((Reason::GivePush, None)),
            None => {}
        }
        // The handshake shape is a property of the whole flow: once the flow is classified (by
        // the constant opener, say) it adds nothing.
        if found.shape && !flow.blocked.is_some_and(Reason::is_tell) {
            let corroborated = flow.responder(&at.key).port == 1214
                || self.peer_blocks(now, at.parties())
                || self.client_locked(at.parties().inside.ip, now);
            if corroborated {
                return Some((Reason::TcpHandshake, None));
            }
        }
        let found = found.http?;
        let mut client_port = None;
        if let Some(addr) = found.sender_addr {
            if at.from_inside {
                // The client announcing its own listen address: its FastTrack port.
                client_port = Some(addr.port());
            } else {
                self.learn_peer_from_header(now, addr, at.parties());
            }
        }
        if let Some(addr) = found.supernode_addr {
            self.learn_peer_from_header(now, addr, at.parties());
        }
        Some((Reason::HttpTransfer, client_port))
    }

    /// An address named in a header of the flow `parties`: a third party's claim, so weak,
    /// scoped to the client of the flow and the port the header names. The flow's own outside
    /// end naming itself adds nothing: the tell itself teaches that address, with its strength.
    fn learn_peer_from_header(&mut self, now: Timestamp, addr: SocketAddr, parties: Parties) {
        let ip = addr.ip();
        if ip == parties.inside.ip || ip == parties.outside.ip {
            return;
        }
        let flow = flow_tuple(parties);
        self.learn_peer(
            now,
            ip,
            Some(addr.port()),
            Strength::Weak,
            Some(parties.inside.ip),
            Reason::HttpTransfer,
            flow,
        );
    }

    /// Whether the new flow `parties` (opened by its inside end) is blocked by a suspect peer:
    /// its outside address is a strong suspect peer, or its outside address and port are a weak
    /// suspect peer of this very client (its IPv6 prefix) and the port is not in
    /// `timelock.allow_ports`. Exempt addresses are never blocked by learned state.
    fn peer_blocks(&mut self, now: Timestamp, parties: Parties) -> bool {
        let Parties { inside, outside, .. } = parties;
        if self.peers.len() == 0 || self.config.is_exempt(outside.ip) || self.config.is_exempt(inside.ip) {
            return false;
        }
        let client = self.config.client_key(inside.ip);
        let weak_applies = !self.config.timelock.allow_ports.contains(&outside.port);
        let Self { peers, actions, stats, .. } = self;
        let mut store = |r| push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded);
        peers.is_strong(outside.ip, now, &mut store)
            || (weak_applies && peers.is_weak_for(client, outside.ip, outside.port, now, &mut store))
    }

    /// Whether the lock of `client`'s network is in force, or (`timelock.mac_tie`) the lock
    /// tied to the MAC this packet came from (never for an exempt address).
    fn client_locked(&self, client: IpAddr, now: Timestamp) -> bool {
        if self.config.is_exempt(client) {
            return false;
        }
        self.locks.is_locked(self.config.client_key(client), now)
            || self
                .inside_mac
                .and_then(|mac| self.mac_ties.peek(&mac))
                .is_some_and(|&key| self.locks.is_locked(key, now))
    }

    /// [`ClientLocks::is_locked_on`] for the inside end `inside`.
    fn client_locked_on(&self, inside: Endpoint, now: Timestamp) -> bool {
        !self.config.is_exempt(inside.ip)
            && self.locks.is_locked_on(self.config.client_key(inside.ip), inside.port, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn learn_peer(
        &mut self,
        now: Timestamp,
        ip: IpAddr,
        port: Option<u16>,
        strength: Strength,
        client: Option<IpAddr>,
        reason: Reason,
        flow: Option<FlowTuple>,
    ) {
        if self.config.is_lan(ip) || self.config.is_exempt(ip) {
            return;
        }
        let claim = Claim {
            addr: ip,
            port,
            strength,
            client: client.map(|c| (c, self.config.client_key(c))),
            reason,
            flow,
        };
        let Self { peers, actions, stats, .. } = self;
        let learned = peers.learn(claim, now, &mut |r| {
            push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded)
        });
        match learned {
            Learned::New => {
                self.push_event(Event::PeerIdentified { peer: ip, port, client, reason, strength })
            }
            Learned::Refused(refusal) => {
                self.peer_refused(refusal, ip, client);
            }
            Learned::Ignored | Learned::Refreshed => {}
        }
    }

    /// Counts a suspect peer `addr` not admitted (learned here or merged from another gateway),
    /// and reports it at the 1st, 2nd, 4th... refusal of its kind.
    fn peer_refused(&mut self, refusal: Refusal, addr: IpAddr, client: Option<IpAddr>) {
        let (kind, total) = match refusal {
            Refusal::Full => {
                self.stats.peers_refused_full += 1;
                (RefusedKind::PeerTableFull, self.stats.peers_refused_full)
            }
            Refusal::Quota => {
                self.stats.peers_refused_quota += 1;
                (RefusedKind::PeerQuota, self.stats.peers_refused_quota)
            }
            Refusal::RemoteShare => {
                self.stats.peers_refused_remote += 1;
                (RefusedKind::PeerRemoteShare, self.stats.peers_refused_remote)
            }
        };
        if worth_reporting(total) {
            self.push_event(Event::Refused { kind, addr, client, total });
        }
    }

    /// Counts a lock of `client` not armed because its table is full of live locks, and
    /// reports it as [`Engine::peer_refused`] does.
    fn lock_refused_full(&mut self, client: IpAddr) {
        self.lock_refused(LockRefusal::Full, client);
    }

    /// Counts a lock of `client` not armed or not merged, and reports it as
    /// [`Engine::peer_refused`] does.
    fn lock_refused(&mut self, refusal: LockRefusal, client: IpAddr) {
        let (kind, total) = match refusal {
            LockRefusal::Stale => return,
            LockRefusal::Full => {
                self.stats.locks_refused_full += 1;
                (RefusedKind::LockTableFull, self.stats.locks_refused_full)
            }
            LockRefusal::RemoteShare => {
                self.stats.locks_refused_remote += 1;
                (RefusedKind::LockRemoteShare, self.stats.locks_refused_remote)
            }
        };
        if worth_reporting(total) {
            self.push_event(Event::Refused { kind, addr: client, client: Some(client), total });
        }
    }

    /// A tell was seen on `flow`: classify it, learn the peer, lock the client. `probe_peer`: the
    /// outside peer a LAN client just pinged, remembered with its lock for probes.
    #[allow(clippy::too_many_arguments)] // the tell's facts, passed through from its judge
    fn on_tell(
        &mut self,
        now: Timestamp,
        flow: &mut Flow,
        tell: Reason,
        parties: Parties,
        client_port: Option<u16>,
        probe_peer: Option<SocketAddr>,
        strength: Strength,
    ) {
        let newly_classified = self.classify(flow, tell, parties);
        let flow_tuple = flow_tuple(parties);
        self.learn_peer(
            now,
            parties.outside.ip,
            Some(parties.outside.port),
            strength,
            Some(parties.inside.ip),
            tell,
            flow_tuple,
        );
        match self.lock_period {
            Some(_) => self.arm_lock(now, parties, client_port, probe_peer, tell),
            None if newly_classified => self.push_event(Event::ClientIdentified {
                client: parties.inside.ip,
                peer: socket(parties.outside),
                reason: tell,
                locked_until: None,
            }),
            None => {}
        }
    }

    /// Marks `flow` as FastTrack by `tell` (its later packets are `fasttrack_flow`); returns
    /// whether it was not classified before.
    fn classify(&mut self, flow: &mut Flow, tell: Reason, parties: Parties) -> bool {
        let newly_classified = !flow.blocked.is_some_and(Reason::is_tell);
        if newly_classified {
            flow.blocked = Some(tell);
            self.push_event(Event::FlowClassified {
                proto: parties.proto,
                client: socket(parties.inside),
                peer: socket(parties.outside),
                reason: tell,
            });
        }
        newly_classified
    }

    /// Re-arms the lock of the client of a classified flow (a later FastTrack datagram).
    fn rearm(&mut self, now: Timestamp, parties: Parties, client_port: Option<u16>) {
        if self.lock_period.is_some() {
            self.arm_lock(now, parties, client_port, None, Reason::FasttrackFlow);
        }
    }

    /// Locks or re-arms the inside client of `parties`. Only hosts in `lan` that are not
    /// `exempt` are locked; an IPv6 client by its `timelock.ipv6_prefix`.
    fn arm_lock(
        &mut self,
        now: Timestamp,
        parties: Parties,
        client_port: Option<u16>,
        probe_peer: Option<SocketAddr>,
        reason: Reason,
    ) {
        let Some(period) = self.lock_period else { return };
        let client = parties.inside.ip;
        if !self.config.is_lan(client) || self.config.is_exempt(client) {
            self.stats.locks_refused_not_inside += 1;
            return;
        }
        let key = self.config.client_key(client);
        let arming = Arming {
            client,
            key,
            port: client_port,
            peer: probe_peer,
            reason: Some(reason),
            flow: flow_tuple(parties),
        };
        let until = now.saturating_add(period);
        let persist = match self.locks.arm(arming, now, period) {
            Armed::New { evicted } => {
                if let Some(evicted) = evicted {
                    self.release_event(*evicted, Removal::Evicted);
                }
                self.push_event(Event::ClientIdentified {
                    client,
                    peer: socket(parties.outside),
                    reason,
                    locked_until: Some(until),
                });
                true
            }
            Armed::Rearmed { persist } => persist,
            Armed::Refused => {
                self.inside_mac = None;
                self.lock_refused_full(client);
                false
            }
        };
        if let Some(mac) = self.inside_mac {
            self.mac_ties.put(mac, key);
        }
        if persist {
            if let Some(entry) = self.locks.entry(key) {
                self.push_action(Action::StateChanged(StateChange::Lock(entry)));
            }
        }
    }

    /// Queues one forged pong for a dropped ping, if the client is inside, the peer outside, and
    /// the rate limits allow it.
    fn forge_pong(&mut self, now: Timestamp, parties: Parties, network: Network) {
        if !self.config.is_lan(parties.inside.ip) || self.config.is_lan(parties.outside.ip) {
            self.stats.pongs_refused_not_lan += 1;
            return;
        }
        if self.pongs.allow(parties.inside.ip, now).is_err() {
            self.stats.pongs_rate_limited += 1;
            return;
        }
        self.push_action(Action::SendSpoofedPong {
            from: socket(parties.outside),
            to: socket(parties.inside),
            payload: signatures::udp::build_pong(network),
        });
    }

    fn release_event(&mut self, lock: LockEntry, why: Removal) {
        self.push_event(Event::ClientReleased { client: lock.client });
        self.push_action(Action::StateChanged(StateChange::LockRemoved(lock.network(), why)));
    }

    fn push_event(&mut self, event: Event) {
        push_bounded(&mut self.events, event, &mut self.stats.events_discarded);
    }

    fn push_action(&mut self, action: Action) {
        push_bounded(&mut self.actions, action, &mut self.stats.actions_discarded);
    }

    /// The next event, if any. Events are queued by [`Engine::handle_packet`],
    /// [`Engine::handle_timeout`] and [`Engine::set_config`]; drain them after each call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next action, if any. Drain after each call, like [`Engine::poll_event`].
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Engine::handle_timeout`] should next be called (None: no timer pending).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        match (self.locks.next_deadline(), self.bans.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the probes and lock expiries due at `now`. Spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(due) = self.locks.pop_due(now) {
            match due {
                Due::Probe { client, peer, by_here } => {
                    // A restored or merged lock's peer comes from a file or another gateway:
                    // check it again.
                    let probe = self.enforcing()
                        && self.config.spoof_pongs
                        && self.config.is_lan(client.ip())
                        && !self.config.is_lan(peer.ip());
                    if probe {
                        // Either way the client's answer re-arms the lock if it comes this way.
                        self.locks.mark_probed(self.config.client_key(client.ip()), client, peer);
                    }
                    if probe && by_here {
                        self.push_action(Action::SendProbe {
                            from: peer,
                            to: client,
                            payload: signatures::udp::build_ping(Network::Kazaa, 0x29),
                        });
                    }
                }
                Due::Released(lock) => self.release_event(lock, Removal::Expired),
            }
        }
        while let Some(ban) = self.bans.pop_expired(now) {
            let event = Event::BanExpired { net: ban.net, reason: ban.reason };
            push_bounded(&mut self.events, event, &mut self.stats.events_discarded);
            self.push_action(Action::StateChanged(StateChange::BanRemoved(ban.net, Removal::Expired)));
        }
    }

    /// Runs the timers due at `now`: calls [`Engine::handle_timeout`] once
    /// [`Engine::poll_timeout`] has been reached, and returns whether it did. A driver that feeds
    /// packets in time order calls it with each packet's time just before
    /// [`Engine::handle_packet`] (as `ftwall replay` does); spurious calls do nothing. Drain
    /// events and actions afterwards, as after a packet.
    pub fn drive(&mut self, now: Timestamp) -> bool {
        let due = self.poll_timeout().is_some_and(|t| t <= now);
        if due {
            self.handle_timeout(now);
        }
        due
    }

    /// Replaces the configuration, keeping peers, locks and flows (caches are resized; a shrink
    /// evicts the least recently used entries). The new configuration should have been validated.
    pub fn set_config(&mut self, config: EngineConfig) {
        {
            let Self { peers, actions, stats, .. } = self;
            peers.reconfigure(peer_limits(&config), &mut |r| {
                push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded)
            });
        }
        for lock in self.locks.resize(config.timelock.capacity) {
            self.release_event(lock, Removal::Evicted);
        }
        self.stats.client_ports_evicted +=
            self.client_ports.reconfigure(config.timelock.capacity, config.peers.expire_seconds);
        self.flows.resize(non_zero(config.flows.capacity));
        self.mac_ties.resize(non_zero(config.timelock.capacity));
        if !config.timelock.mac_tie {
            self.mac_ties.clear();
        }
        self.reassembly.resize(config.flows.reassembly_capacity, &mut self.stats.reassembly_evicted);
        self.pongs.reconfigure(
            config.pongs.per_client_per_second,
            config.pongs.max_per_second,
            config.timelock.capacity,
        );
        self.config = config;
        self.apply_derived();
        // `lan` or the capacity may have changed: count every entry's source again.
        let config = &self.config;
        self.flows.for_each_mut(|key, flow| flow.charged_in_lan = config.is_lan(flow.charged(key).ip));
        let sources = self.flows.iter().map(|(key, flow)| flow.source(key));
        self.flow_quota.recount(self.config.flows.capacity, sources);
        // What is now exempt leaves the tables (and so the shell's mirrors) at once.
        if !self.config.exempt.is_empty() {
            let peers: Vec<IpAddr> =
                self.peers.entries().map(|p| p.addr).filter(|&a| self.config.is_exempt(a)).collect();
            for peer in peers {
                self.forget_peer(peer);
            }
            let clients: Vec<IpAddr> =
                self.locks.entries().map(|l| l.client).filter(|&c| self.config.is_exempt(c)).collect();
            for client in clients {
                self.release_client(client);
            }
        }
    }

    /// Locked clients, least recently armed first.
    pub fn locked_clients(&self) -> impl Iterator<Item = LockEntry> + '_ {
        self.locks.entries()
    }

    /// Clients whose lock is still in force at `now` (an expired lock stays listed by
    /// [`Engine::locked_clients`] until [`Engine::handle_timeout`] removes it).
    pub fn locked_clients_at(&self, now: Timestamp) -> impl Iterator<Item = LockEntry> + '_ {
        self.locks.entries().filter(move |l| l.until > now)
    }

    /// Suspect peers, least recently used first.
    pub fn peers(&self) -> impl Iterator<Item = PeerEntry> + '_ {
        self.peers.entries()
    }

    /// Number of locked clients.
    pub fn locked_count(&self) -> usize {
        self.locks.len()
    }

    /// Number of suspect peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of suspect peers of one strength.
    pub fn peer_count_of(&self, strength: Strength) -> usize {
        self.peers.count(strength)
    }

    /// Ends `client`'s lock now (operator action). Queues a release event and state change;
    /// returns whether the client was locked.
    pub fn release_client(&mut self, client: IpAddr) -> bool {
        match self.locks.release(self.config.client_key(client)) {
            Some(lock) => {
                self.release_event(lock, Removal::Operator);
                true
            }
            None => false,
        }
    }

    /// Removes `peer` from the suspect cache (operator action); returns whether it was there.
    pub fn forget_peer(&mut self, peer: IpAddr) -> bool {
        let removed = self.peers.remove(peer);
        let any = !removed.is_empty();
        for entry in removed {
            self.push_action(Action::StateChanged(StateChange::PeerRemoved(entry, Removal::Operator)));
        }
        any
    }

    /// Bans the network `net` (operator action; an address is its /32 or /128, host bits are
    /// dropped) from `now` for `length` (rounded down to whole seconds, at least one; at most
    /// [`MAX_BAN_SECONDS`]), or until [`Engine::unban`] when None, with the operator's `reason`
    /// (checked by [`check_ban_reason`]) and uid `by`; replaces an existing ban of the same
    /// network. Traffic to or from any address in it is dropped as `banned` from the next packet
    /// on (connections the kernel already offloaded as clean are not revisited). Returns the ban.
    pub fn ban(
        &mut self,
        now: Timestamp,
        net: impl Into<IpNet>,
        length: Option<Duration>,
        reason: Option<String>,
        by: Option<u32>,
    ) -> Result<BanEntry, BanError> {
        let seconds = length.map(|l| l.as_secs().clamp(1, MAX_BAN_SECONDS));
        let until = seconds.map(|s| now.saturating_add(Duration::from_secs(s)));
        let ban = BanEntry { net: net.into(), until, seconds, reason, by, since: now, origin: None };
        let ban = self.bans.insert(ban)?;
        self.push_action(Action::StateChanged(StateChange::Ban(ban.clone())));
        Ok(ban)
    }

    /// Lifts the ban of exactly the network `net` (operator action; an address is its /32 or
    /// /128); returns the lifted ban, None when that network was not banned.
    pub fn unban(&mut self, net: impl Into<IpNet>) -> Option<BanEntry> {
        let removed = self.bans.remove(net.into());
        if let Some(ban) = &removed {
            self.push_action(Action::StateChanged(StateChange::BanRemoved(ban.net, Removal::Operator)));
        }
        removed
    }

    /// The most specific ban in force at `now` whose network holds `addr`, if any.
    pub fn ban_covering(&self, addr: IpAddr, now: Timestamp) -> Option<&BanEntry> {
        self.bans.covering(addr, now)
    }

    /// Merges a change another gateway of a cluster made (`origin`; the shell got it from the
    /// shared store): an entry is taken when it ends later than what this engine holds (no
    /// expiry is the latest; an equal expiry is settled by the origin), so merges are
    /// idempotent and their order does not matter; a removal ends the entry here.
    ///
    /// A remote entry is a claim and passes the same admission as a local one: only an inside
    /// client (in `lan`, not `exempt`) is locked, keyed by [`EngineConfig::client_key`], and
    /// only with the time-lock enabled; a suspect peer must be admissible, outside `lan` and not
    /// `exempt`, and keeps its strength (a weak one stays scoped to its inside witness client
    /// and port, and adds nothing to a live strong peer); full tables refuse (counted and
    /// reported as for local learning); no entry outlives what a local tell or ban could give
    /// it from `now` on (as in [`Engine::restore`]). Other gateways' entries never crowd out
    /// this one's own learning: they hold at most half of each lock and peer table (a merge
    /// beyond it, or one taking over a local entry, is refused and counted), a full table
    /// evicts the least recently used of them for a local tell ([`Removal::Evicted`]), and a
    /// merged peer is charged to its origin, not to the client it names (the per-client quotas
    /// count only local learning). The entry is
    /// recorded with `origin` (whatever it claims). What changed is queued as
    /// [`Action::StateMerged`], never as [`Action::StateChanged`], so the shell does not publish
    /// it back. Returns whether anything changed.
    pub fn handle_remote(&mut self, now: Timestamp, origin: GatewayId, change: StateChange) -> bool {
        let mut merged = Vec::new();
        match change {
            StateChange::Lock(entry) => {
                let Some(period) = self.lock_period else { return false };
                if !self.config.is_lan(entry.client) || self.config.is_exempt(entry.client) {
                    self.stats.locks_refused_not_inside += 1;
                    return false;
                }
                let key = self.config.client_key(entry.client);
                let until = entry.until.min(now.saturating_add(period));
                let network = (key != ipnet::IpNet::from(entry.client)).then_some(key);
                let entry = LockEntry { until, network, origin: Some(origin), ..entry };
                match self.locks.merge(entry, key, now, period) {
                    Ok(taken) => merged.extend(taken.map(StateChange::Lock)),
                    Err(refusal) => self.lock_refused(refusal, entry.client),
                }
            }
            StateChange::Peer(entry) => {
                if self.config.is_lan(entry.addr) || self.config.is_exempt(entry.addr) {
                    return false;
                }
                // A weak entry's witness must be an inside client here too.
                if entry.strength == Strength::Weak
                    && !entry.client.is_some_and(|c| self.config.is_lan(c) && !self.config.is_exempt(c))
                {
                    return false;
                }
                let secs = match entry.strength {
                    Strength::Strong => self.config.peers.expire_seconds,
                    Strength::Weak => self.config.peers.weak_expire_seconds,
                };
                let ttl = (secs > 0).then(|| now.saturating_add(Duration::from_secs(secs)));
                let expires = match (entry.expires, ttl) {
                    (Some(expires), Some(latest)) => Some(expires.min(latest)),
                    (None, latest) => latest,
                    (expires, None) => expires,
                };
                let entry = PeerEntry { expires, origin: Some(origin), ..entry };
                let Self { peers, config, .. } = self;
                let result =
                    peers.merge(entry, now, |c| config.client_key(c), &mut |change| merged.push(change));
                match result {
                    Merged::Taken(taken) => merged.push(StateChange::Peer(*taken)),
                    Merged::Ignored => {}
                    Merged::Refused(refusal) => self.peer_refused(refusal, entry.addr, entry.client),
                }
            }
            StateChange::Ban(entry) => {
                if let Some(why) = self.remote_ban_refusal(entry.net) {
                    self.remote_ban_refused(entry.net, origin, why);
                    return false;
                }
                let seconds = entry.seconds.map(|s| s.clamp(1, MAX_BAN_SECONDS));
                let longest = Duration::from_secs(seconds.unwrap_or(MAX_BAN_SECONDS));
                let until = entry.until.map(|until| until.min(now.saturating_add(longest)));
                if until.is_some_and(|u| u <= now) {
                    return false;
                }
                let latest = |until: Option<Timestamp>| until.unwrap_or(Timestamp::from_micros(u64::MAX));
                let ban = BanEntry { until, seconds, origin: Some(origin), ..entry };
                let held = self.bans.get(ban.net);
                if held.is_some_and(|old| (latest(ban.until), ban.origin) <= (latest(old.until), old.origin))
                {
                    return false;
                }
                if held.is_none() && self.bans.remote() >= MAX_REMOTE_BANS {
                    self.remote_ban_refused(ban.net, origin, RemoteBanRefusal::Full);
                    return false;
                }
                match self.bans.insert(ban) {
                    Ok(ban) => {
                        let (net, reason) = (ban.net, ban.reason.clone());
                        self.push_event(Event::RemoteBan { net, origin, lifted: false, reason });
                        merged.push(StateChange::Ban(ban));
                    }
                    Err(_) => self.remote_ban_refused(entry.net, origin, RemoteBanRefusal::Full),
                }
            }
            // Only an operator's removal is the other gateway's to make: each gateway expires
            // and sizes its own copies (see [`Removal`]).
            StateChange::LockRemoved(_, why)
            | StateChange::PeerRemoved(_, why)
            | StateChange::BanRemoved(_, why)
                if !why.is_shared() => {}
            StateChange::LockRemoved(network, why) => {
                if let Some(lock) = self.locks.release(self.config.client_key(network.addr())) {
                    self.push_event(Event::ClientReleased { client: lock.client });
                    merged.push(StateChange::LockRemoved(lock.network(), why));
                }
            }
            StateChange::PeerRemoved(entry, why) => {
                let config = &self.config;
                if let Some(removed) = self.peers.remove_entry(&entry, |c| config.client_key(c)) {
                    merged.push(StateChange::PeerRemoved(removed, why));
                }
            }
            StateChange::BanRemoved(net, why) => {
                if let Some(ban) = self.bans.remove(net) {
                    let event = Event::RemoteBan { net: ban.net, origin, lifted: true, reason: ban.reason };
                    self.push_event(event);
                    merged.push(StateChange::BanRemoved(ban.net, why));
                }
            }
        }
        let changed = !merged.is_empty();
        for change in merged {
            self.push_action(Action::StateMerged(change));
        }
        changed
    }

    /// Why a ban of `net` from another gateway may not be taken here, if it may not: wider
    /// than [`REMOTE_BAN_WIDEST`], holding a whole `lan` network, or overlapping an `exempt`
    /// one. (An operator's own `ban` has none of these limits: these are for claims.)
    fn remote_ban_refusal(&self, net: IpNet) -> Option<RemoteBanRefusal> {
        let net = net.trunc();
        let widest = match net {
            IpNet::V4(_) => REMOTE_BAN_WIDEST.0,
            IpNet::V6(_) => REMOTE_BAN_WIDEST.1,
        };
        let overlaps = |other: &IpNet| net.contains(other) || other.contains(&net);
        if net.prefix_len() < widest {
            Some(RemoteBanRefusal::TooWide)
        } else if self.config.lan.iter().any(|lan| net.contains(lan)) {
            Some(RemoteBanRefusal::CoversLan)
        } else if self.config.exempt.iter().any(overlaps) {
            Some(RemoteBanRefusal::Exempt)
        } else {
            None
        }
    }

    /// Counts a refused remote ban and reports it at the 1st, 2nd, 4th… refusal.
    fn remote_ban_refused(&mut self, net: IpNet, origin: GatewayId, why: RemoteBanRefusal) {
        self.stats.remote_bans_refused += 1;
        let total = self.stats.remote_bans_refused;
        if total.is_power_of_two() {
            self.push_event(Event::RemoteBanRefused { net: net.trunc(), origin, why, total });
        }
    }

    /// Operator bans, ordered by network (expired ones may linger until the next
    /// [`Engine::handle_timeout`]).
    pub fn bans(&self) -> Vec<BanEntry> {
        self.bans.entries()
    }

    /// Number of operator bans.
    pub fn ban_count(&self) -> usize {
        self.bans.len()
    }

    /// Number of flows currently holding a reassembly window.
    pub fn reassembly_count(&self) -> usize {
        self.reassembly.len()
    }

    /// Number of flows currently tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The state to persist: suspect peers, locked clients and operator bans.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { peers: self.peers().collect(), locks: self.locked_clients().collect(), bans: self.bans() }
    }

    /// The part of [`Engine::snapshot`] this engine learned itself (no `origin`): what a
    /// gateway writes back to the cluster's store. Copies nothing of the other gateways'.
    pub fn own_snapshot(&self) -> Snapshot {
        Snapshot {
            peers: self.peers().filter(|p| p.origin.is_none()).collect(),
            locks: self.locked_clients().filter(|l| l.origin.is_none()).collect(),
            bans: self.bans.entries_where(|b| b.origin.is_none()),
        }
    }

    /// Loads persisted state (entries already expired at `now` are skipped). Existing state is
    /// kept; restored entries count as most recently used, in the snapshot's order.
    ///
    /// The snapshot's times must be on this engine's clock (a driver whose file holds another
    /// clock converts with [`Snapshot::map_timestamps`] first). Whatever they say, no restored
    /// entry outlives what the configuration could have given it from `now` on: a lock ends
    /// at most `timelock.seconds` after `now` (with the time-lock disabled, no lock is
    /// restored), a suspect peer at most `peers.expire_seconds` (a weak one `peers.weak_expire_seconds`)
    /// after it (one saved without an expiry gets that one, when the configuration sets one), and a timed ban at most its own
    /// length ([`BanEntry::seconds`], or [`MAX_BAN_SECONDS`] when the file does not say). So a
    /// clock step between save and restore, or an edited file, cannot make a block last longer
    /// than one fresh tell (or one fresh ban) would. Returns how many expiries were shortened.
    ///
    /// Only what the configuration in force admits is restored: no lock of an outside or exempt
    /// host, no suspect peer in `lan` or exempt, and the per-client quotas and per-family caps
    /// apply as when the entries were learned.
    pub fn restore(&mut self, now: Timestamp, snapshot: &Snapshot) -> usize {
        let mut clamped = 0;
        let mut clamp = |until: Timestamp, longest: Duration| {
            let latest = now.saturating_add(longest);
            if until > latest {
                clamped += 1;
                latest
            } else {
                until
            }
        };
        let Self { peers, config, locks, bans, .. } = self;
        let ttl = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        let mut peers_evicted = Vec::new();
        for &peer in &snapshot.peers {
            if config.is_lan(peer.addr) || config.is_exempt(peer.addr) {
                continue;
            }
            let peer_ttl = match peer.strength {
                Strength::Strong => ttl(config.peers.expire_seconds),
                Strength::Weak => ttl(config.peers.weak_expire_seconds),
            };
            let expires = match (peer.expires, peer_ttl) {
                (Some(expires), Some(ttl)) => Some(clamp(expires, ttl)),
                (None, Some(ttl)) => Some(clamp(Timestamp::from_micros(u64::MAX), ttl)),
                (expires, None) => expires,
            };
            // This gateway's own entry outranks another gateway's, as a tell does.
            peers.restore(PeerEntry { expires, ..peer }, now, |c| config.client_key(c), &mut |change| {
                peers_evicted.push(change)
            });
        }
        let period = Duration::from_secs(config.timelock.seconds);
        let mut evicted = Vec::new();
        // Only inside hosts are locked, whatever an older (or hand-made) file says.
        for &lock in snapshot.locks.iter().filter(|l| config.is_lan(l.client) && !config.is_exempt(l.client))
        {
            let until = clamp(lock.until, period);
            // This gateway's own lock outranks another gateway's, as a tell does.
            if let Ok(Some(remote)) =
                locks.restore(LockEntry { until, ..lock }, config.client_key(lock.client), now, period)
            {
                evicted.push(remote);
            }
        }
        for ban in snapshot.bans.iter().filter(|b| b.until.is_none_or(|u| u > now)) {
            let longest = Duration::from_secs(ban.seconds.unwrap_or(MAX_BAN_SECONDS).min(MAX_BAN_SECONDS));
            let until = ban.until.map(|u| clamp(u, longest));
            // A snapshot larger than the cap can only come from a hand-edited file: keep the first.
            // A reason a hand-edited file made unfit is dropped, not the ban.
            let reason = ban.reason.clone().filter(|r| check_ban_reason(r).is_ok());
            let _ = bans.insert(BanEntry { until, reason, ..ban.clone() });
        }
        for lock in evicted {
            self.release_event(lock, Removal::Evicted);
        }
        for change in peers_evicted {
            self.push_action(Action::StateChanged(change));
        }
        clamped
    }
}

/// The flow a tell was seen on, for provenance.
fn flow_tuple(parties: Parties) -> Option<FlowTuple> {
    Some(FlowTuple { proto: parties.proto, client: socket(parties.inside), peer: socket(parties.outside) })
}

/// The reason reported for a later packet of a blocked flow.
fn blocked_reason(blocked: Reason) -> Reason {
    if blocked.is_tell() {
        Reason::FasttrackFlow
    } else {
        blocked
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, discarded: &mut u64) {
    if queue.len() >= QUEUE_LIMIT {
        queue.pop_front();
        *discarded += 1;
    }
    queue.push_back(item);
}

#[cfg(test)]
mod tests;
