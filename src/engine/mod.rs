//! The FastTrack verdict engine.
//!
//! [`Engine`] is a deterministic state machine in the quinn-proto shape: packets go in through
//! [`Engine::handle_packet`] (one [`Decision`] per packet, always), time goes in as an argument,
//! and side effects come out through [`Engine::poll_event`] (for logs), [`Engine::poll_action`]
//! (packets to send, changes of the persisted state) and [`Engine::poll_timeout`] /
//! [`Engine::handle_timeout`] (lock probes and expiries). It performs no IO and reads no clock.
//!
//! ## Decision order for one packet
//! 0. A TCP/UDP packet to or from an address the operator banned ([`Engine::ban`]): `banned`.
//!    A banned inside address (in `lan`) keeps the time-lock's `allow_ports` (DNS, web); a
//!    banned outside address loses everything.
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
//! 3. An outbound TCP SYN or UDP datagram to a suspect peer: `suspect_peer`.
//! 4. An outbound TCP SYN from a locked client to a port outside `timelock.allow_ports`:
//!    `client_locked`.
//! 5. A new flow to port 1214 when `port_1214_blocks`: `port_1214`.
//! 6. Otherwise `clean`.
//!
//! Packets without a transport header to judge are accepted as `other_protocol` (not TCP/UDP,
//! including IPv6 ESP and No Next Header) or `later_fragment`. A well-formed packet whose TCP/UDP
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
//! Flows, reassembly buffers, suspect peers, locks and client ports (as many as locks) each live
//! in a fixed-capacity LRU, operator bans in a table capped at [`MAX_BANS`] that only the
//! operator fills; the event and action queues are capped at [`QUEUE_LIMIT`] entries (the oldest
//! are discarded and counted). Memory therefore does not grow with attacker-chosen input.
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

pub use bans::{BanError, MAX_BANS, MAX_BAN_SECONDS};
pub use snapshot::{BadGatewayId, BanEntry, GatewayId, LockEntry, PeerEntry, Snapshot, StateChange};
pub use stats::EngineStats;

use crate::config::{EngineConfig, MalformedPolicy, Mode};
use crate::signatures::{self, udp::UdpTell, Network};
use crate::time::Timestamp;
use crate::verdict::{Decision, FlowEnds, PacketSummary, Proto, Reason, Settled, Verdict};
use crate::wire::{self, Packet, TcpSegment, Transport, UdpDatagram};
use bans::Bans;
use flows::{Endpoint, Flow, FlowKey, TCP, UDP};
use locks::{Armed, ClientLocks, Due};
use lru::LruCache;
use peers::{Learned, PeerCache};
use pongs::PongLimiter;
use ports::ClientPorts;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;
use stream::{ByteTell, Found, Reassembly};

/// Maximum number of undrained events, and of undrained actions.
pub const QUEUE_LIMIT: usize = 65_536;

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
    },
    /// A client's time-lock expired.
    ClientReleased {
        /// The inside host.
        client: IpAddr,
    },
    /// An operator ban reached its expiry and was lifted.
    BanExpired {
        /// The address no longer banned.
        addr: IpAddr,
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
    flows: LruCache<FlowKey, Flow>,
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
    /// The packet was sent by the key's `low` endpoint.
    sender_is_low: bool,
    parties: Parties,
    /// The packet was sent by the inside endpoint ("outbound").
    from_inside: bool,
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
            flows: LruCache::new(non_zero(config.flows.capacity)),
            reassembly: Reassembly::new(config.flows.reassembly_capacity),
            peers: PeerCache::new(config.peers.capacity, config.peers.expire_seconds),
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

    /// Finds or creates the flow of `src -> dst`. Returns where the packet sits in it, a copy of
    /// the flow state (written back with [`Engine::store_flow`]), and whether the flow is new.
    fn lookup(&mut self, now: Timestamp, protocol: u8, src: Endpoint, dst: Endpoint) -> (Place, Flow, bool) {
        let (key, sender_is_low) = FlowKey::of(protocol, src, dst);
        let found = match self.flows.get_mut(&key) {
            Some(flow) if now.saturating_since(flow.last_seen) < self.idle => {
                flow.last_seen = flow.last_seen.max(now);
                Some(*flow)
            }
            _ => None,
        };
        let (flow, new) = match found {
            Some(flow) => {
                self.sender_inside = Some(flow.inside_is_low == sender_is_low);
                (flow, false)
            }
            None => {
                let inside_is_src = self.sender_is_inside(src.ip, dst.ip);
                self.sender_inside = Some(inside_is_src);
                let flow = Flow::new(now, inside_is_src == sender_is_low, sender_is_low);
                if let Some((evicted, _)) = self.flows.push(key, flow) {
                    // A forgotten flow's reassembly windows go with it.
                    self.reassembly.forget(&evicted);
                }
                self.reassembly.forget(&key);
                (flow, true)
            }
        };
        let proto = Proto::from_ip_protocol(protocol);
        let parties = if flow.inside_is_low {
            Parties { inside: key.low, outside: key.high, proto }
        } else {
            Parties { inside: key.high, outside: key.low, proto }
        };
        let place = Place { key, sender_is_low, parties, from_inside: flow.inside_is_low == sender_is_low };
        (place, flow, new)
    }

    fn store_flow(&mut self, key: &FlowKey, flow: Flow) {
        if let Some(slot) = self.flows.peek_mut(key) {
            *slot = flow;
        }
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
        let (at, mut flow, new) = self.lookup(now, UDP, src_ep, dst_ep);
        flow.packets = flow.packets.saturating_add(1);
        // Exact-shape tells need the whole datagram.
        let payload = if d.payload.len() == d.payload_len { d.payload } else { &[] };

        // A session datagram is asked about only on a flow no tell classified yet: on a
        // classified one it is a later packet of the flow (below) and re-arms the lock.
        let classified = flow.blocked.is_some_and(Reason::is_tell);
        let tell = signatures::udp::classify(payload, dst, flow.nat_pong_id, || {
            !classified && self.session_corroborated(now, at.parties)
        });
        let reason = if let Some(tell) = tell {
            self.on_udp_tell(now, &at, &mut flow, tell);
            tell.reason()
        } else if let Some(blocked) = flow.blocked {
            if blocked.is_tell() && signatures::udp::session_datagram(payload) {
                let client_port = self.session_port(at.parties.inside);
                self.rearm(now, at.parties, client_port);
            }
            blocked_reason(blocked)
        } else if at.from_inside && self.is_suspect(at.parties.outside.ip, now) {
            Reason::SuspectPeer
        } else if new && at.from_inside && self.config.port_1214_blocks && d.dst_port == 1214 {
            flow.blocked = Some(Reason::Port1214);
            Reason::Port1214
        } else {
            Reason::Clean
        };
        self.store_flow(&at.key, flow);
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
            || self.locks.is_locked_on(inside.ip, inside.port, now)
            || self.is_suspect(outside.ip, now)
    }

    /// The FastTrack port a session datagram from `inside` gives its client's lock: its own port
    /// only when the lock knows none yet (a lock from TCP tells alone). A session datagram never
    /// moves a known port: its tell rests on corroboration (port 1214, say), and the port it
    /// would teach would corroborate the client's next ones and aim its probes.
    fn session_port(&self, inside: Endpoint) -> Option<u16> {
        let known = self.locks.entry(inside.ip).and_then(|l| l.port);
        known.is_none().then_some(inside.port)
    }

    /// A UDP tell on `flow`. Besides [`Engine::on_tell`]: a 0x29 pong's id is remembered for
    /// the 0x2A echo, the inside port of a ping, pong or 0x2A is remembered as the client's
    /// FastTrack port, a pong from a locked client counts only as the answer to its lock's
    /// probe, and a ping from a LAN client to an outside peer names the peer probes are forged
    /// from and is answered with a forged pong.
    fn on_udp_tell(&mut self, now: Timestamp, at: &Place, flow: &mut Flow, tell: UdpTell) {
        let Place { parties, from_inside, .. } = *at;
        if tell.reason() == Reason::UdpPong && from_inside && self.locks.is_locked(parties.inside.ip, now) {
            // A locked client's pings are dropped, so the only ping it can be answering is the
            // probe. The exact answer re-arms the lock; any other pong "from" it (forged by
            // another host, from another port, to another address) is dropped with its flow
            // but teaches nothing: no re-arm, no port, no peer (see the module documentation).
            if !self.locks.take_probe_answer(socket(parties.inside), socket(parties.outside), now) {
                self.stats.pongs_unsolicited += 1;
                self.classify(flow, tell.reason(), parties);
                return;
            }
            self.stats.probe_answers += 1;
        }
        if let UdpTell::NatPong(pong) = tell {
            flow.nat_pong_id = Some(pong.id);
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
        self.on_tell(now, flow, tell.reason(), parties, client_port, probe_peer);
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
        let (at, mut flow, _) = self.lookup(now, TCP, src_ep, dst_ep);
        if flow.reused_by(s.flags) {
            // Port reuse: a fresh connection on a 5-tuple that already carried data.
            flow = Flow::new(now, flow.inside_is_low, at.sender_is_low);
            self.reassembly.forget(&at.key);
        }
        flow.tcp.on_ack_of_syn(at.sender_is_low, s.flags, s.ack);
        let found = flow.tcp.on_segment(
            at.sender_is_low,
            s.flags,
            s.seq,
            s.payload,
            s.payload_len,
            &mut self.reassembly,
            &at.key,
            &mut self.stats.reassembly_evicted,
        );
        let tell = self.tcp_tell(now, &at, &flow, found);

        let reason = if let Some((tell, client_port)) = tell {
            self.on_tell(now, &mut flow, tell, at.parties, client_port, None);
            tell
        } else if let Some(blocked) = flow.blocked {
            blocked_reason(blocked)
        } else if !flow.tcp.handshake_seen() {
            // A connection first seen mid-stream (the daemon restarted, or a flood evicted its
            // flow entry): judged as if it were new, in either direction, and the verdict sticks,
            // so a classified supernode session cannot slip through by losing its flow entry
            // while its peer or its client is still known.
            flow.blocked = self.connection_rule(now, at.parties);
            flow.blocked.unwrap_or(Reason::Clean)
        } else if s.flags.is_initial_syn() && at.from_inside {
            if let Some(rule) = self.connection_rule(now, at.parties) {
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
        self.store_flow(&at.key, flow);
        (reason, self.settled(&flow, reason, !flow.tcp.inspecting()))
    }

    /// Rules 3 and 4 for a new TCP connection: its outside end is a suspect peer
    /// (`suspect_peer`), or its inside end is a locked client and the outside port is not in
    /// `timelock.allow_ports` (`client_locked`).
    fn connection_rule(&mut self, now: Timestamp, parties: Parties) -> Option<Reason> {
        if self.is_suspect(parties.outside.ip, now) {
            Some(Reason::SuspectPeer)
        } else if self.locks.is_locked(parties.inside.ip, now)
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
                || self.is_suspect(at.parties.outside.ip, now)
                || self.locks.is_locked(at.parties.inside.ip, now);
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
                self.learn_peer_from_header(now, addr, at.parties);
            }
        }
        if let Some(addr) = found.supernode_addr {
            self.learn_peer_from_header(now, addr, at.parties);
        }
        Some((Reason::HttpTransfer, client_port))
    }

    fn learn_peer_from_header(&mut self, now: Timestamp, addr: SocketAddr, parties: Parties) {
        let ip = addr.ip();
        if ip == parties.inside.ip || self.config.is_lan(ip) {
            return;
        }
        self.learn_peer(now, ip, Some(addr.port()), Some(parties.inside.ip), Reason::HttpTransfer);
    }

    fn is_suspect(&mut self, ip: IpAddr, now: Timestamp) -> bool {
        let Self { peers, actions, stats, .. } = self;
        peers.is_suspect(ip, now, &mut |r| {
            push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded)
        })
    }

    fn learn_peer(
        &mut self,
        now: Timestamp,
        ip: IpAddr,
        port: Option<u16>,
        client: Option<IpAddr>,
        reason: Reason,
    ) {
        if self.config.is_lan(ip) {
            return;
        }
        let Self { peers, actions, stats, .. } = self;
        let learned = peers.learn(ip, port, now, &mut |r| {
            push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded)
        });
        if learned == Learned::New {
            self.push_event(Event::PeerIdentified { peer: ip, port, client, reason });
        }
    }

    /// A tell was seen on `flow`: classify it, learn the peer, lock the client. `probe_peer`: the
    /// outside peer a LAN client just pinged, remembered with its lock for probes.
    fn on_tell(
        &mut self,
        now: Timestamp,
        flow: &mut Flow,
        tell: Reason,
        parties: Parties,
        client_port: Option<u16>,
        probe_peer: Option<SocketAddr>,
    ) {
        let newly_classified = self.classify(flow, tell, parties);
        self.learn_peer(now, parties.outside.ip, Some(parties.outside.port), Some(parties.inside.ip), tell);
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
        let (armed, evicted) = self.locks.arm(client, client_port, probe_peer, now, period);
        if let Some(evicted) = evicted {
            self.release_event(evicted);
        }
        let until = now.saturating_add(period);
        let persist = match armed {
            Armed::New => {
                self.push_event(Event::ClientIdentified {
                    client,
                    peer: socket(parties.outside),
                    reason,
                    locked_until: Some(until),
                });
                true
            }
            Armed::Rearmed { persist } => persist,
        };
        if persist {
            if let Some(entry) = self.locks.entry(client) {
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

    fn release_event(&mut self, client: IpAddr) {
        self.push_event(Event::ClientReleased { client });
        self.push_action(Action::StateChanged(StateChange::LockRemoved(client)));
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
                Due::Probe { client, peer } => {
                    // A restored lock's peer comes from a file: check it again.
                    let probe = self.enforcing()
                        && self.config.spoof_pongs
                        && self.config.is_lan(client.ip())
                        && !self.config.is_lan(peer.ip());
                    if probe {
                        self.locks.mark_probed(client, peer);
                        self.push_action(Action::SendProbe {
                            from: peer,
                            to: client,
                            payload: signatures::udp::build_ping(Network::Kazaa, 0x29),
                        });
                    }
                }
                Due::Released(client) => self.release_event(client),
            }
        }
        while let Some(addr) = self.bans.pop_expired(now) {
            push_bounded(&mut self.events, Event::BanExpired { addr }, &mut self.stats.events_discarded);
            self.push_action(Action::StateChanged(StateChange::BanRemoved(addr)));
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
            peers.reconfigure(config.peers.capacity, config.peers.expire_seconds, &mut |r| {
                push_bounded(actions, Action::StateChanged(r), &mut stats.actions_discarded)
            });
        }
        for client in self.locks.resize(config.timelock.capacity) {
            self.release_event(client);
        }
        self.stats.client_ports_evicted +=
            self.client_ports.reconfigure(config.timelock.capacity, config.peers.expire_seconds);
        self.flows.resize(non_zero(config.flows.capacity));
        self.reassembly.resize(config.flows.reassembly_capacity, &mut self.stats.reassembly_evicted);
        self.pongs.reconfigure(
            config.pongs.per_client_per_second,
            config.pongs.max_per_second,
            config.timelock.capacity,
        );
        self.config = config;
        self.apply_derived();
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

    /// Ends `client`'s lock now (operator action). Queues a release event and state change;
    /// returns whether the client was locked.
    pub fn release_client(&mut self, client: IpAddr) -> bool {
        let released = self.locks.release(client);
        if released {
            self.release_event(client);
        }
        released
    }

    /// Removes `peer` from the suspect cache (operator action); returns whether it was there.
    pub fn forget_peer(&mut self, peer: IpAddr) -> bool {
        let removed = self.peers.remove(peer);
        if removed {
            self.push_action(Action::StateChanged(StateChange::PeerRemoved(peer)));
        }
        removed
    }

    /// Bans `addr` (operator action) from `now` for `length` (rounded down to whole seconds, at
    /// least one; at most [`MAX_BAN_SECONDS`]), or until [`Engine::unban`] when None; replaces an
    /// existing ban of the same address. Its traffic is dropped as `banned` from the next packet
    /// on (connections the kernel already offloaded as clean are not revisited). Returns the ban.
    pub fn ban(
        &mut self,
        now: Timestamp,
        addr: IpAddr,
        length: Option<Duration>,
    ) -> Result<BanEntry, BanError> {
        let seconds = length.map(|l| l.as_secs().clamp(1, MAX_BAN_SECONDS));
        let until = seconds.map(|s| now.saturating_add(Duration::from_secs(s)));
        let ban = BanEntry { addr, until, seconds, origin: None };
        self.bans.insert(ban)?;
        self.push_action(Action::StateChanged(StateChange::Ban(ban)));
        Ok(ban)
    }

    /// Lifts the ban of `addr` (operator action); returns whether it was banned.
    pub fn unban(&mut self, addr: IpAddr) -> bool {
        let removed = self.bans.remove(addr);
        if removed {
            self.push_action(Action::StateChanged(StateChange::BanRemoved(addr)));
        }
        removed
    }

    /// Merges a change another gateway of a cluster made (`origin`; the shell got it from the
    /// shared store): an entry is taken when it ends later than what this engine holds (no
    /// expiry is the latest; an equal expiry is settled by the origin), so merges are
    /// idempotent and their order does not matter; a removal ends the entry here. The trust
    /// rules of local learning apply: only a client in `lan` is locked (and only with the
    /// time-lock enabled), a suspect peer must be admissible and outside `lan`, and no entry
    /// outlives what a local tell or ban could give it from `now` on (as in
    /// [`Engine::restore`]). The entry is recorded with `origin` (whatever it claims). What
    /// changed is queued as [`Action::StateMerged`], never as [`Action::StateChanged`], so the
    /// shell does not publish it back. Returns whether anything changed.
    pub fn handle_remote(&mut self, now: Timestamp, origin: GatewayId, change: StateChange) -> bool {
        let mut merged = Vec::new();
        match change {
            StateChange::Lock(entry) => {
                let Some(period) = self.lock_period.filter(|_| self.config.is_lan(entry.client)) else {
                    return false;
                };
                let until = entry.until.min(now.saturating_add(period));
                let entry = LockEntry { until, origin: Some(origin), ..entry };
                let (taken, evicted) = self.locks.merge(entry, now, period);
                if let Some(evicted) = evicted {
                    merged.push(StateChange::LockRemoved(evicted));
                }
                merged.extend(taken.map(StateChange::Lock));
            }
            StateChange::Peer(entry) => {
                if self.config.is_lan(entry.addr) {
                    return false;
                }
                let ttl = (self.config.peers.expire_seconds > 0)
                    .then(|| now.saturating_add(Duration::from_secs(self.config.peers.expire_seconds)));
                let expires = match (entry.expires, ttl) {
                    (Some(expires), Some(latest)) => Some(expires.min(latest)),
                    (None, latest) => latest,
                    (expires, None) => expires,
                };
                let entry = PeerEntry { expires, origin: Some(origin), ..entry };
                let taken = self.peers.merge(entry, now, &mut |change| merged.push(change));
                merged.extend(taken.map(StateChange::Peer));
            }
            StateChange::Ban(entry) => {
                let seconds = entry.seconds.map(|s| s.clamp(1, MAX_BAN_SECONDS));
                let until = match (entry.until, seconds) {
                    (Some(until), Some(s)) => Some(until.min(now.saturating_add(Duration::from_secs(s)))),
                    (Some(until), None) => {
                        Some(until.min(now.saturating_add(Duration::from_secs(MAX_BAN_SECONDS))))
                    }
                    (None, _) => None,
                };
                if until.is_some_and(|u| u <= now) {
                    return false;
                }
                let latest = |until: Option<Timestamp>| until.unwrap_or(Timestamp::from_micros(u64::MAX));
                let ban = BanEntry { until, seconds, origin: Some(origin), ..entry };
                let held = self.bans.get(ban.addr);
                if held.is_some_and(|old| (latest(ban.until), ban.origin) <= (latest(old.until), old.origin))
                {
                    return false;
                }
                if self.bans.insert(ban).is_ok() {
                    merged.push(StateChange::Ban(ban));
                }
            }
            StateChange::LockRemoved(client) => {
                if self.locks.release(client) {
                    self.push_event(Event::ClientReleased { client });
                    merged.push(change);
                }
            }
            StateChange::PeerRemoved(addr) => {
                if self.peers.remove(addr) {
                    merged.push(change);
                }
            }
            StateChange::BanRemoved(addr) => {
                if self.bans.remove(addr) {
                    merged.push(change);
                }
            }
        }
        let changed = !merged.is_empty();
        for change in merged {
            self.push_action(Action::StateMerged(change));
        }
        changed
    }

    /// Operator bans, ordered by address (expired ones may linger until the next
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

    /// Loads persisted state (entries already expired at `now` are skipped). Existing state is
    /// kept; restored entries count as most recently used, in the snapshot's order.
    ///
    /// The snapshot's times must be on this engine's clock (a driver whose file holds another
    /// clock converts with [`Snapshot::map_timestamps`] first). Whatever they say, no restored
    /// entry outlives what the configuration could have given it from `now` on: a lock ends
    /// at most `timelock.seconds` after `now` (with the time-lock disabled, no lock is
    /// restored), a suspect peer at most `peers.expire_seconds` after it (one saved without an
    /// expiry gets that one, when the configuration sets one), and a timed ban at most its own
    /// length ([`BanEntry::seconds`], or [`MAX_BAN_SECONDS`] when the file does not say). So a
    /// clock step between save and restore, or an edited file, cannot make a block last longer
    /// than one fresh tell (or one fresh ban) would. Returns how many expiries were shortened.
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
        let peer_ttl = (self.config.peers.expire_seconds > 0)
            .then(|| Duration::from_secs(self.config.peers.expire_seconds));
        for &peer in &snapshot.peers {
            if !self.config.is_lan(peer.addr) {
                let expires = match (peer.expires, peer_ttl) {
                    (Some(expires), Some(ttl)) => Some(clamp(expires, ttl)),
                    (None, Some(ttl)) => Some(clamp(Timestamp::from_micros(u64::MAX), ttl)),
                    (expires, None) => expires,
                };
                self.peers.restore(PeerEntry { expires, ..peer }, now);
            }
        }
        let period = Duration::from_secs(self.config.timelock.seconds);
        for &lock in &snapshot.locks {
            let until = clamp(lock.until, period);
            self.locks.restore(LockEntry { until, ..lock }, now, period);
        }
        for ban in snapshot.bans.iter().filter(|b| b.until.is_none_or(|u| u > now)) {
            let longest = Duration::from_secs(ban.seconds.unwrap_or(MAX_BAN_SECONDS).min(MAX_BAN_SECONDS));
            let until = ban.until.map(|u| clamp(u, longest));
            // A snapshot larger than the cap can only come from a hand-edited file: keep the first.
            let _ = self.bans.insert(BanEntry { until, ..*ban });
        }
        clamped
    }
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
