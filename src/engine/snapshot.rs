//! The engine's persisted vocabulary: the entries of the state file and the change notices the
//! engine queues when one of them changes.
//!
//! This is a leaf: it imports nothing from the engine, so the state tables (`peers`, `locks`,
//! `bans`) and the state-file format ([`crate::state`]) depend on it, not on the engine hub.
//!
//! Invariants:
//! - The serde shapes here *are* the state-file format (version 1): a field may be added only
//!   with `#[serde(default)]`, so files written by older versions still load.
//! - Every [`Timestamp`] here is on the clock of whoever holds the value: the engine's own clock
//!   in a snapshot it made or restores, the wall clock (µs since the Unix epoch) in the daemon's
//!   state file. [`Snapshot::map_timestamps`] is the one conversion point between the two.
//! - A [`Snapshot`] is complete (every suspect peer, lock and ban); a [`StateChange`] is one
//!   change to it, in the order the engine made them, so a mirror that applies every change in
//!   order ends with the same state as a fresh snapshot.

use crate::time::Timestamp;
use crate::verdict::{Proto, Reason};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// A change to the state that survives restarts, queued as [`crate::Action::StateChanged`]: the
/// shell marks its state file dirty and updates its mirrors (kernel sets, client directory).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateChange {
    /// A suspect peer was added or refreshed.
    Peer(PeerEntry),
    /// A suspect peer left the cache, as it was, and why.
    PeerRemoved(PeerEntry, Removal),
    /// A client's lock was armed or re-armed.
    Lock(LockEntry),
    /// A client's lock ended: the network it covered ([`LockEntry::network`]), and why.
    LockRemoved(IpNet, Removal),
    /// An operator ban was added or changed.
    Ban(BanEntry),
    /// An operator ban ended: its network, and why.
    BanRemoved(IpNet, Removal),
}

/// Why an entry left the engine's state. Every mirror of this engine's state (kernel sets, the
/// state file) applies every removal; only an operator's is news for the other gateways of a
/// cluster, which expire and size their own copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its time ran out. Every holder of a copy expires it on its own clock, so this is never
    /// published: a gateway whose copy just expired must not end a re-arm it has not seen yet.
    Expired,
    /// An operator ended it before its time (`ctl release`, `ctl unban`, `ctl forget`), on this
    /// gateway or, for a merged removal, on the one that published it.
    Operator,
    /// Dropped to make room here: a reload shrank its table below what it held, or a full table
    /// needed room for this gateway's own entry and dropped another gateway's. Local pressure,
    /// not a judgement on the entry: never published.
    Evicted,
}

impl Removal {
    /// Whether the other gateways of a cluster should apply this removal too.
    pub fn is_shared(self) -> bool {
        self == Self::Operator
    }
}

/// The name of a gateway of a cluster (`cluster.node_id`), recorded on an entry learned from
/// another gateway ([`crate::Engine::handle_remote`]): 1 to [`GatewayId::MAX_LEN`] bytes of ASCII
/// letters, digits, `.`, `_` and `-` (a host name fits). A fixed-size value, so the entries stay
/// `Copy`; serialised as a string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayId {
    len: u8,
    bytes: [u8; Self::MAX_LEN],
}

/// Why a string is not a [`GatewayId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a gateway name is 1 to 64 ASCII letters, digits, '.', '_' or '-'")]
pub struct BadGatewayId;

impl GatewayId {
    /// Longest name, in bytes.
    pub const MAX_LEN: usize = 64;

    /// The name, if `name` is one (see the type's documentation).
    pub fn new(name: &str) -> Result<Self, BadGatewayId> {
        let ok = (1..=Self::MAX_LEN).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(BadGatewayId);
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Self { len: name.len() as u8, bytes })
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked by `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for GatewayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for GatewayId {
    type Err = BadGatewayId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl Serialize for GatewayId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GatewayId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&name).map_err(serde::de::Error::custom)
    }
}

/// What a suspect peer's evidence is worth: the trust model of learned facts (README, "What
/// ftwall learns, and how far it trusts it").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// The address was only asserted by a third party: named in a header, or the destination
    /// of a client's ping or request that the address itself never answered as FastTrack. It
    /// blocks only its witness client's new flows to `addr:port`, never a port of
    /// `timelock.allow_ports`, and expires after `peers.weak_expire_seconds`. Entries of state
    /// files that predate strength load as weak.
    #[default]
    Weak,
    /// The address itself spoke FastTrack on a flow whose source is verified (it sent the tell
    /// on a TCP connection whose handshake it completed, or a UDP pong answering a ping the
    /// client sent to it). It blocks every LAN host's new TCP and UDP flows to it, on every port.
    Strong,
}

impl Strength {
    /// `"weak"` or `"strong"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Weak => "weak",
            Self::Strong => "strong",
        }
    }
}

/// The flow a learned fact was seen on: its protocol, its inside and its outside end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowTuple {
    /// Transport protocol.
    pub proto: Proto,
    /// The inside end.
    pub client: SocketAddr,
    /// The outside end.
    pub peer: SocketAddr,
}

/// A suspect peer, as persisted, with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Outside address.
    pub addr: IpAddr,
    /// FastTrack port, when known (a weak entry blocks this port only).
    pub port: Option<u16>,
    /// When it is forgotten unless seen again (None: only by eviction).
    pub expires: Option<Timestamp>,
    /// What the evidence is worth.
    #[serde(default)]
    pub strength: Strength,
    /// The inside client whose flow revealed it (a weak entry blocks this client only, or its
    /// IPv6 prefix); None in older state files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// The tell that revealed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The flow the tell was seen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowTuple>,
    /// When it was first learned (zero in older state files).
    #[serde(default)]
    pub first_seen: Timestamp,
    /// When it was last learned again.
    #[serde(default)]
    pub last_seen: Timestamp,
    /// The gateway it was learned from, when another gateway of the cluster taught it (None:
    /// learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<GatewayId>,
}

impl PeerEntry {
    /// A bare entry (no provenance): for tests and hand-made snapshots.
    pub fn new(addr: IpAddr, port: Option<u16>, expires: Option<Timestamp>, strength: Strength) -> Self {
        Self {
            addr,
            port,
            expires,
            strength,
            client: None,
            reason: None,
            flow: None,
            first_seen: Timestamp::ZERO,
            last_seen: Timestamp::ZERO,
            origin: None,
        }
    }
}

/// A locked client, as persisted, with its provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Inside address (the last one seen, for an IPv6 prefix).
    pub client: IpAddr,
    /// The network the lock covers when it is more than `client` (an IPv6 client's
    /// `timelock.ipv6_prefix`); None: `client` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<IpNet>,
    /// When the lock ends unless re-armed.
    pub until: Timestamp,
    /// The client's FastTrack UDP port (for probes), when known.
    pub port: Option<u16>,
    /// The last outside peer the client pinged, from which the half-expiry probe is forged;
    /// None for locks by other tells only, and in state files that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// The tell that first locked it (this arming's lock), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The flow that tell was seen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowTuple>,
    /// When the client was first locked (zero in older state files).
    #[serde(default)]
    pub first_seen: Timestamp,
    /// When its lock was last armed or re-armed.
    #[serde(default)]
    pub last_seen: Timestamp,
    /// The gateway it was learned from, when another gateway of the cluster taught it (None:
    /// learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<GatewayId>,
}

impl LockEntry {
    /// A bare lock of `client` (no provenance): for tests and hand-made snapshots.
    pub fn new(client: IpAddr, until: Timestamp, port: Option<u16>, peer: Option<SocketAddr>) -> Self {
        Self {
            client,
            network: None,
            until,
            port,
            peer,
            reason: None,
            flow: None,
            first_seen: Timestamp::ZERO,
            last_seen: Timestamp::ZERO,
            origin: None,
        }
    }

    /// The network the lock covers: `network`, or `client` alone.
    pub fn network(&self) -> IpNet {
        self.network.unwrap_or_else(|| IpNet::from(self.client))
    }
}

/// An operator ban, as persisted: also the value a cluster mirror shares, so it stays a plain
/// serde struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanEntry {
    /// The banned network, inside or outside (a single address is a /32 or /128), without host
    /// bits once the engine holds it. Written as `net` in CIDR notation; state files that
    /// predate networks wrote `addr` with a bare address, which reads as its /32 or /128.
    #[serde(alias = "addr", deserialize_with = "net_or_addr")]
    pub net: IpNet,
    /// When the ban ends (None: when the operator lifts it).
    pub until: Option<Timestamp>,
    /// The length the operator gave a timed ban, in seconds: a restored ban never lasts longer
    /// than this from the restore on. None for bans until lifted, and in state files that
    /// predate it (those are held to [`crate::engine::MAX_BAN_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u64>,
    /// The operator's reason (at most [`crate::engine::MAX_BAN_REASON`] bytes, no control
    /// character: see [`crate::engine::check_ban_reason`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The uid of the operator who banned it (None: unknown, as in older state files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<u32>,
    /// When it was banned (zero: unknown, as in older state files).
    #[serde(default)]
    pub since: Timestamp,
    /// The gateway it was learned from, when another gateway of the cluster taught it (None:
    /// learned here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<GatewayId>,
}

impl BanEntry {
    /// A ban of `net` with no reason, operator or start time: for tests and hand-made snapshots.
    pub fn new(net: IpNet, until: Option<Timestamp>, seconds: Option<u64>) -> Self {
        Self { net, until, seconds, reason: None, by: None, since: Timestamp::ZERO, origin: None }
    }
}

/// Reads a ban's network: CIDR notation, or a bare address (its /32 or /128).
fn net_or_addr<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<IpNet, D::Error> {
    let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| serde::de::Error::custom(format_args!("not a network or an address: {text:?}")))
}

/// Engine state that survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Suspect peers, most recently used last.
    pub peers: Vec<PeerEntry>,
    /// Locked clients.
    pub locks: Vec<LockEntry>,
    /// Operator bans, by network. Omitted when empty, so files without bans stay readable by
    /// versions that predate them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bans: Vec<BanEntry>,
}

impl Snapshot {
    /// The same snapshot with every [`Timestamp`] of every entry passed through `f`: the one
    /// place that knows which fields are times, so a driver converts a whole snapshot between
    /// the engine's clock and another (the daemon: its monotonic clock and the wall clock of
    /// the state file) with one call. Each entry is destructured field by field, so a field
    /// added to an entry does not compile until it is listed here as a time or as not one.
    ///
    /// A zero `first_seen` / `last_seen` means "unknown" (an entry from an older file) and stays
    /// zero.
    pub fn map_timestamps(&self, mut f: impl FnMut(Timestamp) -> Timestamp) -> Self {
        let mut seen = |t: Timestamp| if t == Timestamp::ZERO { t } else { f(t) };
        let peers = self
            .peers
            .iter()
            .map(
                |&PeerEntry {
                     addr,
                     port,
                     expires,
                     strength,
                     client,
                     reason,
                     flow,
                     first_seen,
                     last_seen,
                     origin,
                 }| {
                    PeerEntry {
                        addr,
                        port,
                        expires: expires.map(&mut seen),
                        strength,
                        client,
                        reason,
                        flow,
                        first_seen: seen(first_seen),
                        last_seen: seen(last_seen),
                        origin,
                    }
                },
            )
            .collect();
        let locks = self
            .locks
            .iter()
            .map(
                |&LockEntry {
                     client,
                     network,
                     until,
                     port,
                     peer,
                     reason,
                     flow,
                     first_seen,
                     last_seen,
                     origin,
                 }| {
                    LockEntry {
                        client,
                        network,
                        until: seen(until),
                        port,
                        peer,
                        reason,
                        flow,
                        first_seen: seen(first_seen),
                        last_seen: seen(last_seen),
                        origin,
                    }
                },
            )
            .collect();
        let bans = self
            .bans
            .iter()
            .map(|BanEntry { net, until, seconds, reason, by, since, origin }| BanEntry {
                net: *net,
                until: until.map(&mut seen),
                seconds: *seconds,
                reason: reason.clone(),
                by: *by,
                since: seen(*since),
                origin: *origin,
            })
            .collect();
        Self { peers, locks, bans }
    }
}
