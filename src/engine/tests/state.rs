//! Engine state: bounds under floods, capped queues, snapshot/restore/reload, LAN peers, stats.

use super::*;

#[test]
fn state_is_bounded_under_a_flood_of_distinct_flows() {
    let mut c = config();
    c.flows.capacity = 1000;
    c.peers.capacity = 50;
    c.timelock.capacity = 20;
    let mut e = Engine::new(c);
    for i in 0..20_000u32 {
        let [a, b, x, y] = i.to_be_bytes();
        let _ = (a, b);
        let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, y));
        let dst = IpAddr::V4(Ipv4Addr::new(203, 0, x, y));
        let udp = TransportRepr::Udp(UdpRepr { src_port: 0x1000, dst_port: 1214 });
        let pkt = packet(src, dst, &[], udp, &KAZAA_PING);
        assert_eq!(e.handle_packet(Timestamp::from_micros(u64::from(i)), &pkt).reason, Reason::UdpPing);
        while e.poll_event().is_some() {}
        while e.poll_action().is_some() {}
    }
    assert!(e.flow_count() <= 1000);
    assert!(e.peer_count() <= 50);
    assert!(e.locked_count() <= 20);
    assert_eq!(e.stats().packets, 20_000);
}

#[test]
fn undrained_queues_are_capped() {
    let peers = crate::config::PeersConfig { capacity: 100_000, per_client: 100_000, ..Default::default() };
    let mut e = Engine::new(EngineConfig { peers, ..config() });
    for i in 0..(QUEUE_LIMIT as u32 / 2 + 10) {
        let [_, _, x, y] = i.to_be_bytes();
        let pkt = udp((CLIENT, CLIENT_PORT), (&format!("198.51.{x}.{y}"), 1214), &KAZAA_PING);
        e.handle_packet(at(1), &pkt);
    }
    assert!(e.events.len() <= QUEUE_LIMIT && e.actions.len() <= QUEUE_LIMIT);
    assert!(e.stats().events_discarded > 0 || e.stats().actions_discarded > 0);
}

#[test]
fn snapshot_restore_and_reload_keep_state() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let snap = e.snapshot();
    let peer = Some(SocketAddr::new(ip(PEER), PEER_PORT));
    assert_eq!(
        snap.locks,
        vec![LockEntry {
            reason: Some(Reason::UdpPing),
            flow: Some(FlowTuple {
                proto: Proto::Udp,
                client: SocketAddr::new(ip(CLIENT), CLIENT_PORT),
                peer: SocketAddr::new(ip(PEER), PEER_PORT)
            }),
            ..LockEntry::new(ip(CLIENT), at(120), Some(CLIENT_PORT), peer)
        }]
    );
    assert_eq!(snap.peers.len(), 1);

    let mut restored = Engine::new(config());
    restored.restore(at(10), &snap);
    // The ping made PEER a weak suspect peer of this client, on the pinged port.
    assert_eq!(snap.peers[0].strength, Strength::Weak);
    let syn = tcp((CLIENT, 41000), (PEER, PEER_PORT), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(11), &syn), (Verdict::Drop, Reason::SuspectPeer));
    let syn = tcp((CLIENT, 41001), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(11), &syn), (Verdict::Drop, Reason::ClientLocked));
    assert_eq!(restored.poll_timeout(), Some(at(60)));

    // Expired entries are not restored.
    let mut late = Engine::new(config());
    late.restore(at(121), &snap);
    assert_eq!(late.locked_count(), 0);
    assert_eq!(late.peer_count(), 1, "peers expire after a day");

    // Reload: new allow list applies, lock and peers stay.
    let mut c = config();
    c.timelock.allow_ports.push(6000);
    restored.set_config(c);
    let syn = tcp((CLIENT, 41002), ("203.0.113.9", 6000), 1, SYN, &[]);
    assert_eq!(judge(&mut restored, at(12), &syn), (Verdict::Accept, Reason::Clean));
    assert_eq!((restored.locked_count(), restored.peer_count()), (1, 1));
    assert!(restored.release_client(ip(CLIENT)));
    assert!(restored.forget_peer(ip(PEER)));
    assert_eq!((restored.locked_count(), restored.peer_count()), (0, 0));
}

#[test]
fn lan_addresses_never_become_peers() {
    let mut e = Engine::new(config());
    // Both endpoints inside: the sender is treated as the client, the other is not a peer.
    let p = udp((CLIENT, CLIENT_PORT), ("192.0.2.77", 1214), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(0), &p).1, Reason::UdpPing);
    assert_eq!(e.peer_count(), 0);
}

#[test]
fn stats_add_up() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(0), &udp((CLIENT, 5000), ("203.0.113.1", 53), b"dns"));
    e.handle_packet(at(0), &[0x45]);
    let s = e.stats();
    assert_eq!((s.packets, s.accepted, s.dropped), (3, 2, 1));
    assert_eq!(s.by_reason().map(|(_, n)| n).sum::<u64>(), 3);
}

#[test]
fn restored_expiries_are_clamped_to_their_configured_maximum() {
    // A state file planted (or saved before a wall-clock step) with expiries in 2100.
    let year_2100 = Timestamp::from_secs(4_102_444_800);
    let snapshot = Snapshot {
        peers: vec![
            PeerEntry::new(ip(PEER), Some(PEER_PORT), Some(year_2100), Strength::Strong),
            PeerEntry::new(ip("198.51.100.21"), None, None, Strength::Strong),
            PeerEntry::new(ip("198.51.100.22"), None, Some(at(1_500)), Strength::Strong),
        ],
        locks: vec![
            LockEntry::new(ip(CLIENT), year_2100, Some(CLIENT_PORT), None),
            LockEntry::new(ip("192.0.2.11"), at(1_050), None, None),
        ],
        bans: vec![
            BanEntry::new(ip("203.0.113.5").into(), Some(year_2100), Some(60)),
            BanEntry::new(ip("203.0.113.6").into(), Some(year_2100), None),
            BanEntry::new(ip("203.0.113.7").into(), None, None),
            BanEntry::new(ip("203.0.113.8").into(), Some(at(1_030)), Some(60)),
        ],
    };
    let mut e = Engine::new(config());
    let now = at(1_000);
    // The 2100 lock, peer and both 2100 bans, and the peer saved without an expiry.
    assert_eq!(e.restore(now, &snapshot), 5);
    let locks: Vec<_> = e.locked_clients().map(|l| (l.client, l.until)).collect();
    assert_eq!(locks, vec![(ip(CLIENT), at(1_120)), (ip("192.0.2.11"), at(1_050))], "timelock.seconds = 120");
    let day = 86_400;
    let peers: Vec<_> = e.peers().map(|p| (p.addr, p.expires)).collect();
    assert_eq!(
        peers,
        vec![
            (ip(PEER), Some(at(1_000 + day))),
            (ip("198.51.100.21"), Some(at(1_000 + day))),
            (ip("198.51.100.22"), Some(at(1_500))),
        ],
        "peers.expire_seconds = one day"
    );
    let bans: Vec<_> = e.bans().into_iter().map(|b| (b.net.addr(), b.until)).collect();
    assert_eq!(
        bans,
        vec![
            (ip("203.0.113.5"), Some(at(1_060))),
            (ip("203.0.113.6"), Some(at(1_000 + MAX_BAN_SECONDS))),
            (ip("203.0.113.7"), None),
            (ip("203.0.113.8"), Some(at(1_030))),
        ],
        "a timed ban by its own length, or by MAX_BAN_SECONDS when the file does not say"
    );
    // The clamped lock really ends then.
    e.handle_timeout(at(1_120));
    assert!(e.locked_clients().all(|l| l.client != ip(CLIENT)));

    // With the time-lock disabled no lock comes back; peers without an expiry stay without one
    // when peers never expire.
    let mut c = config();
    c.timelock.seconds = 0;
    c.peers.expire_seconds = 0;
    let mut e = Engine::new(c);
    e.restore(now, &snapshot);
    assert_eq!(e.locked_count(), 0);
    assert_eq!(e.peers().find(|p| p.addr == ip("198.51.100.21")).unwrap().expires, None);
}
