//! The FastTrack verdict engine (skeleton: implementation in progress).

use crate::config::Config;
use crate::time::Timestamp;
use crate::verdict::{Decision, Proto, Reason};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Something the operator should hear about. Drained with [`Engine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A change to persist in the state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRecord {
    /// A suspect peer was added or refreshed.
    Peer(PeerEntry),
    /// A suspect peer left the cache (evicted or expired).
    PeerRemoved(IpAddr),
    /// A client's lock was armed or re-armed.
    Lock(LockEntry),
    /// A client's lock ended.
    LockRemoved(IpAddr),
}

/// Something the shell must do. Drained with [`Engine::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `payload` as a UDP datagram from `from` (the peer the client pinged) to `to` (the
    /// client), through a raw socket, so the client believes UDP works.
    SendSpoofedPong {
        /// Forged source: the peer.
        from: SocketAddr,
        /// The client's FastTrack port.
        to: SocketAddr,
        /// A 0x28 pong.
        payload: Vec<u8>,
    },
    /// Half-expiry keep-alive: send `payload` (a 0x27 ping) from the daemon's own UDP socket to
    /// the client's FastTrack port; a FastTrack answer goes to [`Engine::handle_probe_answer`].
    SendProbe {
        /// The client's FastTrack UDP port.
        to: SocketAddr,
        /// A 0x27 ping.
        payload: Vec<u8>,
    },
    /// Persist a state change.
    Store(StoreRecord),
}

/// A suspect peer, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Outside address.
    pub addr: IpAddr,
    /// FastTrack port, when known.
    pub port: Option<u16>,
    /// When it is forgotten unless seen again (None: only by eviction).
    pub expires: Option<Timestamp>,
}

/// A locked client, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    /// Inside address.
    pub client: IpAddr,
    /// When the lock ends unless re-armed.
    pub until: Timestamp,
    /// The client's FastTrack UDP port (for probes), when known.
    pub port: Option<u16>,
}

/// Engine state that survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Suspect peers, most recently used last.
    pub peers: Vec<PeerEntry>,
    /// Locked clients.
    pub locks: Vec<LockEntry>,
}

/// The verdict engine.
#[derive(Debug)]
pub struct Engine {
    config: Config,
}

impl Engine {
    /// A new engine with empty state.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// Judges one L3 packet (IP header first) seen at `now`.
    pub fn handle_packet(&mut self, now: Timestamp, packet: &[u8]) -> Decision {
        let _ = (now, packet, &self.config);
        unimplemented!()
    }

    /// A datagram received by the daemon's probe socket from `from` at `now`. Returns true if it
    /// was a FastTrack answer from a locked client (whose lock is then re-armed).
    pub fn handle_probe_answer(&mut self, now: Timestamp, from: SocketAddr, payload: &[u8]) -> bool {
        let _ = (now, from, payload);
        unimplemented!()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        unimplemented!()
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        unimplemented!()
    }

    /// When [`Engine::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        unimplemented!()
    }

    /// Runs expiries and probes due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let _ = now;
        unimplemented!()
    }

    /// Replaces the configuration, keeping peers, locks and flows.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// The state to persist.
    pub fn snapshot(&self) -> Snapshot {
        unimplemented!()
    }

    /// Loads persisted state; entries already expired at `now` are skipped.
    pub fn restore(&mut self, now: Timestamp, snapshot: &Snapshot) {
        let _ = (now, snapshot);
        unimplemented!()
    }
}
