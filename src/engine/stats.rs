//! Packet counters.
//!
//! Invariant: `packets == accepted + dropped`, and the per-reason counts add up to `packets`.

use crate::verdict::{Reason, Verdict};

/// Counters kept by the engine. Cheap to read at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Packets judged.
    pub packets: u64,
    /// Packets accepted (including every packet in monitor mode).
    pub accepted: u64,
    /// Packets dropped.
    pub dropped: u64,
    /// Events discarded because the shell did not drain [`super::Engine::poll_event`] in time.
    pub events_discarded: u64,
    /// Actions discarded because the shell did not drain [`super::Engine::poll_action`] in time.
    pub actions_discarded: u64,
    /// Forged pongs not sent because the pinging client is not in `lan` or the pinged peer is
    /// (the gateway never forges packets towards outside hosts).
    pub pongs_refused_not_lan: u64,
    /// Forged pongs not sent because a `pongs` rate limit (per client or total) was reached.
    pub pongs_rate_limited: u64,
    /// Locked clients that answered a half-expiry probe: a pong from the address and port the
    /// probe went to, to the address and port it was forged from, after the probe was sent
    /// (one per probe). Each re-armed the lock.
    pub probe_answers: u64,
    /// Pongs "from" a locked client that answered no probe (another host forging the client's
    /// address, another port, another peer, a second answer): dropped, but they neither re-arm
    /// the lock nor teach a port or a peer.
    pub pongs_unsolicited: u64,
    /// TCP reassembly windows evicted from the full pool (`flows.reassembly_capacity`) to make
    /// room for another flow's: the evicted direction gives up its byte tells.
    pub reassembly_evicted: u64,
    /// Clients whose remembered FastTrack UDP port was evicted to make room for another client's
    /// (the table holds `timelock.capacity` clients, least recently learned evicted first).
    pub client_ports_evicted: u64,
    /// Suspect peers not admitted because their table (per family and strength,
    /// `peers.capacity`) was full of live entries.
    pub peers_refused_full: u64,
    /// Suspect peers not admitted because the client whose flow named them already had
    /// `peers.per_client` live ones.
    pub peers_refused_quota: u64,
    /// Locks not armed because their table (per family, `timelock.capacity`) was full of live
    /// locks.
    pub locks_refused_full: u64,
    /// Suspect peers from other gateways not merged because entries from other gateways held
    /// half of their table (per family and strength) already.
    pub peers_refused_remote: u64,
    /// Locks from other gateways not merged because locks from other gateways held half of
    /// their table (per family) already.
    pub locks_refused_remote: u64,
    /// Tells whose client was not locked because it is not an inside host (not in `lan`) or is
    /// `exempt`.
    pub locks_refused_not_inside: u64,
    /// Bans from other gateways refused: wider than [`crate::engine::REMOTE_BAN_WIDEST`],
    /// covering a whole `lan` network or an `exempt` address, or beyond
    /// [`crate::engine::MAX_REMOTE_BANS`].
    pub remote_bans_refused: u64,
    /// TCP segments ignored because they started more than 64 KiB beyond their direction's
    /// gap-free prefix (bytes no receiver would take yet; they influence no verdict).
    pub stream_segments_ignored: u64,
    /// Packets that would have opened a flow entry for a source already holding its quota of
    /// the flow table (`flows.capacity / 4`): TCP ones are dropped as `Reason::FlowQuota`, UDP
    /// ones judged without a flow entry.
    pub flow_quota_refused: u64,
    /// TCP segments dropped because they needed a reassembly window while their flow's source
    /// held its quota of the pool (a quarter of `flows.reassembly_capacity`).
    pub reassembly_quota_refused: u64,
    by_reason: [u64; Reason::ALL.len()],
}

impl EngineStats {
    pub(crate) fn record(&mut self, verdict: Verdict, reason: Reason) {
        self.packets += 1;
        match verdict {
            Verdict::Accept => self.accepted += 1,
            Verdict::Drop => self.dropped += 1,
        }
        self.by_reason[reason as usize] += 1;
    }

    /// Packets per reason, every reason included (zero counts too), in [`Reason::ALL`] order.
    pub fn by_reason(&self) -> impl Iterator<Item = (Reason, u64)> + '_ {
        Reason::ALL.iter().map(|&r| (r, self.by_reason[r as usize]))
    }

    /// Packets counted under `reason`.
    pub fn count(&self, reason: Reason) -> u64 {
        self.by_reason[reason as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        let mut s = EngineStats::default();
        s.record(Verdict::Accept, Reason::Clean);
        s.record(Verdict::Drop, Reason::UdpPing);
        s.record(Verdict::Accept, Reason::UdpPing);
        assert_eq!((s.packets, s.accepted, s.dropped), (3, 2, 1));
        assert_eq!(s.count(Reason::UdpPing), 2);
        assert_eq!(s.by_reason().map(|(_, n)| n).sum::<u64>(), 3);
        assert_eq!(s.by_reason().count(), Reason::ALL.len());
    }
}
