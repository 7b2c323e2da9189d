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
