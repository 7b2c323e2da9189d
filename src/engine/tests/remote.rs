//! Merges from other gateways ([`Engine::handle_remote`]): later expiry wins, idempotent and
//! commutative, the admission and trust rules of local learning, no echo.

use super::*;
use crate::config::PeersConfig;
use ipnet::IpNet;

fn gw(name: &str) -> GatewayId {
    GatewayId::new(name).unwrap()
}

fn lock(client: &str, until: u64) -> StateChange {
    StateChange::Lock(LockEntry::new(ip(client), at(until), None, None))
}

fn strong(addr: &str, expires: u64) -> PeerEntry {
    PeerEntry::new(ip(addr), Some(PEER_PORT), Some(at(expires)), Strength::Strong)
}

/// A weak peer `addr:port` witnessed by `client`.
fn weak(client: &str, addr: &str, port: u16) -> PeerEntry {
    PeerEntry {
        client: Some(ip(client)),
        ..PeerEntry::new(ip(addr), Some(port), Some(at(500)), Strength::Weak)
    }
}

fn held(e: &Engine) -> Vec<(IpAddr, Timestamp, Option<GatewayId>)> {
    let mut v: Vec<_> = e.locked_clients().map(|l| (l.client, l.until, l.origin)).collect();
    v.sort();
    v
}

/// `client` pings `peer` and `peer` answers: a strong peer learned here.
fn learn_strong_here(e: &mut Engine, now: Timestamp, client: &str, peer: &str) {
    judge(e, now, &udp((client, CLIENT_PORT), (peer, PEER_PORT), &KAZAA_PING));
    judge(e, now, &udp((peer, PEER_PORT), (client, CLIENT_PORT), &KAZAA_PONG));
    assert!(e.peers().any(|p| p.addr == ip(peer) && p.strength == Strength::Strong && p.origin.is_none()));
}

fn syn_to(client: &str, to: (&str, u16)) -> Vec<u8> {
    tcp((client, 40000), to, 1, SYN, &[])
}

#[test]
fn later_expiry_wins_in_any_order_and_twice_changes_nothing() {
    let changes =
        [(gw("gw-a"), lock(CLIENT, 100)), (gw("gw-b"), lock(CLIENT, 110)), (gw("gw-c"), lock(CLIENT, 90))];
    let mut results = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
        let mut e = Engine::new(config());
        for i in order {
            let (origin, change) = changes[i].clone();
            e.handle_remote(at(10), origin, change.clone());
            // Idempotent: the same merge again changes nothing and queues nothing more.
            actions(&mut e);
            assert!(!e.handle_remote(at(10), origin, change));
            assert!(actions(&mut e).is_empty());
        }
        results.push(held(&e));
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "{results:?}");
    assert_eq!(results[0], vec![(ip(CLIENT), at(110), Some(gw("gw-b")))]);
}

#[test]
fn merges_are_never_queued_as_local_changes() {
    let mut e = Engine::new(config());
    assert!(e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 100)));
    let ban = BanEntry::new(IpNet::from(ip("203.0.113.5")), None, None);
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Ban(ban)));
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong(PEER, 500))));
    let network = IpNet::from(ip(CLIENT));
    assert!(e.handle_remote(at(11), gw("gw-b"), StateChange::LockRemoved(network, Removal::Operator)));
    let queued = actions(&mut e);
    assert_eq!(queued.len(), 4, "{queued:?}");
    assert!(queued.iter().all(|a| matches!(a, Action::StateMerged(_))), "{queued:?}");
    // The merged ban and peer are enforced, and carry their origin.
    assert_eq!(e.bans()[0].origin, Some(gw("gw-a")));
    assert_eq!(e.peers().next().map(|p| p.origin), Some(Some(gw("gw-a"))));
    assert!(e.locked_clients().next().is_none(), "the remote release ended the lock");
    assert_eq!(judge(&mut e, at(12), &syn_to(CLIENT, ("203.0.113.5", 80))), (Verdict::Drop, Reason::Banned));
    assert_eq!(
        judge(&mut e, at(12), &syn_to("192.0.2.30", (PEER, 443))),
        (Verdict::Drop, Reason::SuspectPeer)
    );
    // A remote removal names the one entry it ends.
    assert!(e.handle_remote(
        at(13),
        gw("gw-b"),
        StateChange::PeerRemoved(strong(PEER, 500), Removal::Operator)
    ));
    assert_eq!(e.peer_count(), 0);
}

#[test]
fn the_trust_rules_of_local_learning_apply() {
    let mut e = Engine::new(EngineConfig {
        exempt: vec!["192.0.2.99/32".parse().unwrap(), "198.51.100.99/32".parse().unwrap()],
        ..config()
    });
    // Only inside hosts are locked: not one outside `lan`, not an exempt one.
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock("203.0.113.9", 100)));
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock("192.0.2.99", 100)));
    // A LAN, exempt or loopback address is never a suspect peer.
    for addr in [CLIENT, "198.51.100.99", "127.0.0.1"] {
        assert!(!e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong(addr, 500))), "{addr}");
    }
    // Expired on arrival: ignored. Far in the future: held to one lock period from now.
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 5)));
    assert!(e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 1_000_000)));
    let period = e.config().timelock.seconds;
    assert_eq!(held(&e), vec![(ip(CLIENT), at(10 + period), Some(gw("gw-a")))]);
    // A peer is held to the expiry of its strength.
    let far = PeerEntry::new(ip(PEER), None, Some(at(1_000_000_000)), Strength::Strong);
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(far)));
    let expected = at(10 + e.config().peers.expire_seconds);
    assert_eq!(e.peers().next().and_then(|p| p.expires), Some(expected));
    // With the time-lock off, nothing is locked.
    let mut off = Engine::new(EngineConfig {
        timelock: crate::config::TimelockConfig { seconds: 0, ..config().timelock },
        ..config()
    });
    assert!(!off.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 100)));
}

#[test]
fn an_ipv6_lock_is_keyed_by_this_gateways_prefix() {
    let mut e = Engine::new(config());
    assert!(e.handle_remote(at(10), gw("gw-a"), lock(CLIENT6, 100)));
    let locks: Vec<_> = e.locked_clients().collect();
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].network(), "2001:db8:1::/64".parse::<IpNet>().unwrap());
    // Another address of the prefix is held by the same lock.
    let other = tcp(("2001:db8:1::99", 40000), (PEER6, 1214), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(11), &other), (Verdict::Drop, Reason::ClientLocked));
}

#[test]
fn a_weak_remote_peer_stays_weak_and_scoped_to_its_client_and_port() {
    let mut e = Engine::new(config());
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(weak(CLIENT, PEER, 4000))));
    assert_eq!(e.peers().map(|p| p.strength).collect::<Vec<_>>(), vec![Strength::Weak]);
    assert_eq!(judge(&mut e, at(11), &syn_to(CLIENT, (PEER, 4000))), (Verdict::Drop, Reason::SuspectPeer));
    assert_eq!(
        judge(&mut e, at(11), &syn_to(CLIENT, (PEER, 4001))),
        (Verdict::Accept, Reason::Clean),
        "another port"
    );
    assert_eq!(
        judge(&mut e, at(11), &syn_to("192.0.2.30", (PEER, 4000))),
        (Verdict::Accept, Reason::Clean),
        "another client"
    );
    // A weak entry without its witness, or witnessed by a host that is not inside here, is
    // not taken; nor is one for a live strong peer (it would add nothing).
    let anonymous = PeerEntry { client: None, ..weak(CLIENT, "198.51.100.30", 4000) };
    assert!(!e.handle_remote(at(12), gw("gw-a"), StateChange::Peer(anonymous)));
    assert!(!e.handle_remote(
        at(12),
        gw("gw-a"),
        StateChange::Peer(weak("203.0.113.9", "198.51.100.30", 4000))
    ));
    assert!(e.handle_remote(at(12), gw("gw-a"), StateChange::Peer(strong("198.51.100.31", 500))));
    assert!(!e.handle_remote(at(12), gw("gw-a"), StateChange::Peer(weak(CLIENT, "198.51.100.31", 4000))));
    // The remote removal of the weak entry ends exactly that one.
    assert!(e.handle_remote(
        at(13),
        gw("gw-b"),
        StateChange::PeerRemoved(weak(CLIENT, PEER, 4000), Removal::Operator)
    ));
    assert_eq!(judge(&mut e, at(14), &syn_to(CLIENT, (PEER, 4000))), (Verdict::Accept, Reason::Clean));
}

#[test]
fn remote_peers_hold_at_most_half_a_table_and_a_full_table_refuses() {
    let peers = PeersConfig { capacity: 4, per_client: 1, ..config().peers };
    let mut e = Engine::new(EngineConfig { peers, ..config() });
    // Charged to their origin, not to the witness client: its quota is not what limits them.
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(weak(CLIENT, PEER, 4000))));
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(weak(CLIENT, PEER, 4001))));
    assert!(!e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(weak(CLIENT, PEER, 4002))), "share");
    // Two local strong peers, then two remote ones fill the strong table: a third is refused.
    for (client, peer) in [("192.0.2.21", "198.51.100.41"), ("192.0.2.22", "198.51.100.42")] {
        learn_strong_here(&mut e, at(10), client, peer);
    }
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong("198.51.100.31", 500))));
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong("198.51.100.32", 500))));
    assert!(!e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong("198.51.100.33", 500))), "share");
    let mut kept: Vec<_> = e.peers().filter(|p| p.strength == Strength::Strong).map(|p| p.addr).collect();
    kept.sort();
    let expected = ["198.51.100.31", "198.51.100.32", "198.51.100.41", "198.51.100.42"];
    assert_eq!(kept, expected.map(ip), "nothing evicted");
    assert_eq!(
        (e.stats().peers_refused_quota, e.stats().peers_refused_full, e.stats().peers_refused_remote),
        (0, 0, 2)
    );
    e.peers.check_invariants();
}

#[test]
fn a_local_tell_after_a_merge_is_published_as_ours() {
    let mut e = Engine::new(config());
    e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 20));
    actions(&mut e);
    let ping = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    judge(&mut e, at(15), &ping);
    let local: Vec<_> = actions(&mut e)
        .into_iter()
        .filter_map(|a| match a {
            Action::StateChanged(StateChange::Lock(l)) => Some(l.origin),
            _ => None,
        })
        .collect();
    assert_eq!(local, vec![None]);
}

/// Every removal says why; only an operator's is for the other gateways ([`Removal::is_shared`]),
/// and a merged removal of another kind ends nothing here.
#[test]
fn only_an_operators_removal_crosses_gateways() {
    let removals = |e: &mut Engine| -> Vec<Removal> {
        actions(e)
            .into_iter()
            .filter_map(|a| match a {
                Action::StateChanged(
                    StateChange::LockRemoved(_, why)
                    | StateChange::PeerRemoved(_, why)
                    | StateChange::BanRemoved(_, why),
                ) => Some(why),
                _ => None,
            })
            .collect()
    };
    let mut e = Engine::new(config());
    for client in ["192.0.2.21", "192.0.2.22", "192.0.2.23"] {
        e.handle_packet(at(0), &udp((client, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    }
    actions(&mut e);
    // A reload that shrinks the lock table evicts: local pressure, not a judgement.
    let mut smaller = e.config().clone();
    smaller.timelock.capacity = 2;
    e.set_config(smaller);
    assert_eq!(removals(&mut e), vec![Removal::Evicted]);
    assert!(!Removal::Evicted.is_shared());
    // The operator's release is.
    let client = e.locked_clients().next().unwrap().client;
    assert!(e.release_client(client));
    assert_eq!(removals(&mut e), vec![Removal::Operator]);
    assert!(Removal::Operator.is_shared());
    // The last lock runs out: expired, not shared.
    let last = e.locked_clients().next().unwrap();
    e.handle_timeout(last.until);
    assert!(removals(&mut e).contains(&Removal::Expired));
    assert!(!Removal::Expired.is_shared());

    // Merged: another gateway's expiry or eviction ends nothing here; its operator's release does.
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    actions(&mut e);
    let network = IpNet::from(ip(CLIENT));
    for why in [Removal::Expired, Removal::Evicted] {
        assert!(!e.handle_remote(at(1), gw("gw-b"), StateChange::LockRemoved(network, why)));
        assert_eq!(e.locked_count(), 1, "{why:?} on gw-b ended the lock here");
    }
    assert!(actions(&mut e).is_empty());
    assert!(e.handle_remote(at(1), gw("gw-b"), StateChange::LockRemoved(network, Removal::Operator)));
    assert_eq!(e.locked_count(), 0);
}

/// One probe per lock across the gateways: the gateway that armed it sends it; one that merged
/// it sends none, and takes the client's answer if the client's route brings it there.
#[test]
fn only_the_gateway_that_armed_a_lock_probes_it_and_either_takes_the_answer() {
    let probes = |e: &mut Engine| actions(e).iter().filter(|a| matches!(a, Action::SendProbe { .. })).count();
    let mut a = Engine::new(config());
    a.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let lock = a.locked_clients().next().unwrap();
    assert_eq!((lock.until, lock.port, lock.origin), (at(120), Some(CLIENT_PORT), None));
    let mut b = Engine::new(config());
    assert!(b.handle_remote(at(0), gw("gw-a"), StateChange::Lock(lock)));
    actions(&mut a);
    actions(&mut b);

    // B awaits the answer from a second before its own reading of the half expiry (the two
    // gateways' clocks differ a little); A sends the probe at 60 s, B sends none.
    assert_eq!(b.poll_timeout(), Some(at(59)));
    b.handle_timeout(at(59));
    a.handle_timeout(at(60));
    assert_eq!((probes(&mut a), probes(&mut b)), (1, 0));

    // The client's route now goes through B: its answer re-arms the lock there, as B's own.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut b, at(60), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!((b.stats().probe_answers, b.stats().pongs_unsolicited), (1, 0));
    let rearmed = b.locked_clients().next().unwrap();
    assert_eq!((rearmed.until, rearmed.origin), (at(180), None));
    let published = actions(&mut b);
    assert!(
        published
            .iter()
            .any(|a| matches!(a, Action::StateChanged(StateChange::Lock(l)) if l.until == at(180))),
        "{published:?}"
    );
    // One answer per probe: a second is unsolicited.
    assert_eq!(judge(&mut b, at(61), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!((b.stats().probe_answers, b.stats().pongs_unsolicited), (1, 1));

    // A merges B's re-arm: now B probes and A does not.
    assert!(a.handle_remote(at(61), gw("gw-b"), StateChange::Lock(rearmed)));
    a.handle_timeout(at(119));
    b.handle_timeout(at(120));
    assert_eq!((probes(&mut a), probes(&mut b)), (0, 1));
}

/// Recounts what the engine counts of remote entries (and the timers, the per-client counts).
fn check_invariants(e: &Engine) {
    e.locks.check_invariants();
    e.peers.check_invariants();
}

fn remote_locks(e: &Engine) -> usize {
    e.locked_clients().filter(|l| l.origin.is_some()).count()
}

/// A site whose LAN is large (10.0.0.0/8 beside the test LAN): room for made-up clients.
fn large_lan() -> EngineConfig {
    let mut config = config();
    config.lan.push("10.0.0.0/8".parse().unwrap());
    config
}

/// The reviewer's scenario: one gateway publishes a full table of locks for hosts that do not
/// exist; a real client's tell here still locks it.
#[test]
fn remote_locks_for_made_up_hosts_never_keep_a_real_client_unlocked() {
    let mut e = Engine::new(large_lan());
    let capacity = e.config().timelock.capacity;
    assert_eq!(capacity, 4096);
    for i in 0..5000u32 {
        let host = std::net::Ipv4Addr::from(0x0a00_0000 + 1 + i).to_string();
        e.handle_remote(at(10), gw("gw-evil"), lock(&host, 110));
    }
    assert_eq!(remote_locks(&e), capacity / 2, "half the table");
    assert_eq!(e.stats().locks_refused_remote, 5000 - capacity as u64 / 2);
    assert_eq!(e.stats().locks_refused_full, 0);
    let refusals: Vec<_> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::Refused { kind, total, .. } => Some((kind, total)),
            _ => None,
        })
        .collect();
    assert_eq!(refusals.first(), Some(&(RefusedKind::LockRemoteShare, 1)), "reported like other refusals");
    let ping = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    assert_eq!(judge(&mut e, at(11), &ping), (Verdict::Drop, Reason::UdpPing));
    assert!(e.locks.is_locked(IpNet::from(ip(CLIENT)), at(11)), "the real client is locked");
    assert_eq!(e.stats().locks_refused_full, 0);
    // The local half fills with real clients; the next evicts a made-up host's lock rather than
    // being refused.
    for i in 0..capacity as u32 / 2 {
        let host = std::net::Ipv4Addr::from(0x0a80_0000 + i).to_string();
        e.handle_packet(at(12), &udp((&host, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    }
    assert_eq!(e.locked_count(), capacity);
    assert_eq!(remote_locks(&e), capacity / 2 - 1);
    assert_eq!(e.stats().locks_refused_full, 0);
    check_invariants(&e);
}

/// A local tell outranks a remote claim: with the table full, it evicts the least recently
/// armed remote lock (an eviction: mirrored here, never published), never a live local one.
#[test]
fn a_local_tell_evicts_the_remote_lock_that_ends_soonest_and_the_eviction_is_not_shared() {
    let mut e = Engine::new(EngineConfig {
        timelock: crate::config::TimelockConfig { capacity: 4, ..config().timelock },
        ..config()
    });
    // Found in one step by expiry, not by merge order: .32, merged later, ends sooner.
    e.handle_remote(at(10), gw("gw-a"), lock("192.0.2.31", 100));
    e.handle_remote(at(11), gw("gw-a"), lock("192.0.2.32", 90));
    for client in ["192.0.2.21", "192.0.2.22"] {
        e.handle_packet(at(12), &udp((client, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    }
    actions(&mut e);
    assert_eq!(e.locked_count(), 4);
    e.handle_packet(at(13), &udp(("192.0.2.23", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let removed: Vec<_> = actions(&mut e)
        .into_iter()
        .filter_map(|a| match a {
            Action::StateChanged(StateChange::LockRemoved(network, why)) => Some((network, why)),
            Action::StateMerged(StateChange::LockRemoved(..)) => panic!("a local eviction is not a merge"),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![(IpNet::from(ip("192.0.2.32")), Removal::Evicted)]);
    assert!(!removed[0].1.is_shared(), "never published to the other gateways");
    assert!(e.locks.is_locked(IpNet::from(ip("192.0.2.23")), at(13)));
    assert!(e.locks.is_locked(IpNet::from(ip("192.0.2.31")), at(13)), "the later-ending remote lock stays");
    // The next evicts the other remote lock; then the table is all local and refuses.
    e.handle_packet(at(14), &udp(("192.0.2.24", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(remote_locks(&e), 0);
    e.handle_packet(at(15), &udp(("192.0.2.25", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(e.stats().locks_refused_full, 1);
    for client in ["192.0.2.21", "192.0.2.22", "192.0.2.23", "192.0.2.24"] {
        assert!(e.locks.is_locked(IpNet::from(ip(client)), at(15)), "{client}: a live local lock stays");
    }
    check_invariants(&e);
}

/// The same for suspect peers: a strong peer learned here evicts the least recently used remote
/// one from a full table, as an unshared eviction.
#[test]
fn a_peer_learned_here_evicts_a_remote_one_and_the_eviction_is_not_shared() {
    let peers = PeersConfig { capacity: 2, ..config().peers };
    let mut e = Engine::new(EngineConfig { peers, ..config() });
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong("198.51.100.31", 500))));
    learn_strong_here(&mut e, at(11), "192.0.2.21", "198.51.100.41");
    actions(&mut e);
    learn_strong_here(&mut e, at(12), "192.0.2.22", "198.51.100.42");
    let removed: Vec<_> = actions(&mut e)
        .into_iter()
        .filter_map(|a| match a {
            Action::StateChanged(StateChange::PeerRemoved(p, why)) if p.strength == Strength::Strong => {
                Some((p.addr, p.origin, why))
            }
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![(ip("198.51.100.31"), Some(gw("gw-a")), Removal::Evicted)]);
    assert_eq!(e.peer_count_of(Strength::Strong), 2);
    check_invariants(&e);
}

/// A remote strong peer is charged to its origin: naming no client, or a different made-up
/// client each time, it still cannot take more than half the table, and what it takes is not
/// charged to a real client here.
#[test]
fn remote_strong_peers_with_null_or_rotating_clients_cannot_fill_the_peer_table() {
    let peers = PeersConfig { capacity: 64, per_client: 4, ..config().peers };
    let mut e = Engine::new(EngineConfig { peers, ..large_lan() });
    for i in 0..200u32 {
        let addr = std::net::Ipv4Addr::from(0xcb00_7100 + (i % 250)).to_string(); // 203.0.113.x
        let client = match i % 3 {
            0 => None,
            1 => Some(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()), // made up, inside
            _ => Some(std::net::Ipv4Addr::from(0xc633_6400 + (i % 250)).into()), // outside
        };
        let entry = PeerEntry { client, ..strong(&addr, 500) };
        e.handle_remote(at(10), gw("gw-evil"), StateChange::Peer(entry));
    }
    assert_eq!(e.peer_count_of(Strength::Strong), 32, "half the table");
    assert_eq!(e.stats().peers_refused_remote, 200 - 32);
    // Remote weak peers naming a real client do not use up that client's quota here.
    for port in 0..8 {
        e.handle_remote(at(10), gw("gw-evil"), StateChange::Peer(weak(CLIENT, PEER, 5000 + port)));
    }
    assert_eq!(e.stats().peers_refused_quota, 0);
    // Local learning still has the other half.
    for i in 0..4u16 {
        learn_strong_here(&mut e, at(11), &format!("192.0.2.{}", 21 + i), &format!("198.51.100.{}", 40 + i));
    }
    assert_eq!(e.peer_count_of(Strength::Strong), 36);
    // The real client's own pings use its whole quota.
    for i in 0..4u16 {
        let ping = udp((CLIENT, CLIENT_PORT), (&format!("198.51.100.{}", 60 + i), 1214), &KAZAA_PING);
        judge(&mut e, at(11), &ping);
    }
    let own = e.peers().filter(|p| p.client == Some(ip(CLIENT)) && p.origin.is_none()).count();
    assert_eq!(own, 4, "the client's own weak quota is intact");
    assert_eq!((e.stats().peers_refused_quota, e.stats().peers_refused_full), (0, 0));
    check_invariants(&e);
}

/// The remote count follows every way a lock changes hands or leaves: a local re-arm makes it
/// local (freeing room in the share), a merge over a local lock makes it remote, and release,
/// expiry and a shrinking reload take it off.
#[test]
fn the_remote_count_stays_exact_across_rearm_merge_release_expiry_and_resize() {
    let mut e = Engine::new(EngineConfig {
        timelock: crate::config::TimelockConfig { capacity: 8, ..config().timelock },
        ..config()
    });
    let (a, b, c, d) = ("192.0.2.31", "192.0.2.32", "192.0.2.33", "192.0.2.34");
    let ping = |client| udp((client, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING);
    for (client, until) in [(a, 100), (b, 200), (c, 100), (d, 100)] {
        assert!(e.handle_remote(at(10), gw("gw-a"), lock(client, until)));
    }
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock("192.0.2.35", 100)), "the share is 4 of 8");
    check_invariants(&e);
    // A local tell re-arms a: ours now, and the share has room again.
    judge(&mut e, at(20), &ping(a));
    assert_eq!(e.locks.entry(IpNet::from(ip(a))).unwrap().origin, None);
    assert!(e.handle_remote(at(20), gw("gw-a"), lock("192.0.2.35", 100)));
    check_invariants(&e);
    // A later remote expiry for a would make it remote again: refused while the share is full.
    assert!(!e.handle_remote(at(21), gw("gw-b"), lock(a, 500)));
    assert_eq!(e.stats().locks_refused_remote, 2);
    // An operator's release frees a place; the merge over the local lock then takes it.
    assert!(e.release_client(ip(c)));
    assert!(e.handle_remote(at(21), gw("gw-b"), lock(a, 500)));
    assert_eq!(e.locks.entry(IpNet::from(ip(a))).unwrap().origin, Some(gw("gw-b")));
    assert_eq!(remote_locks(&e), 4);
    check_invariants(&e);
    // Expiry: d and 192.0.2.35 end at 100.
    e.handle_timeout(at(100));
    assert_eq!(remote_locks(&e), 2);
    check_invariants(&e);
    assert!(e.handle_remote(at(100), gw("gw-a"), lock(c, 190)));
    assert!(e.handle_remote(at(100), gw("gw-a"), lock(d, 190)));
    for client in ["192.0.2.21", "192.0.2.22", "192.0.2.23"] {
        judge(&mut e, at(101), &ping(client));
    }
    assert_eq!((e.locked_count(), remote_locks(&e)), (7, 4));
    // A shrinking reload evicts remote locks first, down to the new share.
    let mut smaller = e.config().clone();
    smaller.timelock.capacity = 4;
    e.set_config(smaller);
    assert_eq!((e.locked_count(), remote_locks(&e)), (4, 1));
    for client in ["192.0.2.21", "192.0.2.22", "192.0.2.23"] {
        assert!(e.locks.is_locked(IpNet::from(ip(client)), at(101)), "{client}: local locks stay");
    }
    check_invariants(&e);
    // The state file round trip keeps the count: remote locks pass the share again.
    let snapshot = e.snapshot();
    let mut restored = Engine::new(e.config().clone());
    restored.restore(at(102), &snapshot);
    assert_eq!((restored.locked_count(), remote_locks(&restored)), (4, 1));
    check_invariants(&restored);
}

/// A lock or peer restored from this gateway's state file is its own learning: it evicts a
/// remote one from a full table, as a local tell does, and the eviction is mirrored, not shared.
#[test]
fn a_local_entry_restored_from_the_state_file_evicts_a_remote_one() {
    let timelock = crate::config::TimelockConfig { capacity: 2, ..config().timelock };
    let peers = PeersConfig { capacity: 2, ..config().peers };
    let mut e = Engine::new(EngineConfig { timelock, peers, ..config() });
    assert!(e.handle_remote(at(10), gw("gw-a"), lock("192.0.2.31", 100)));
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(strong("198.51.100.31", 500))));
    e.handle_packet(at(10), &udp(("192.0.2.21", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    learn_strong_here(&mut e, at(10), "192.0.2.21", "198.51.100.41");
    actions(&mut e);
    let snapshot = Snapshot {
        locks: vec![LockEntry::new(ip("192.0.2.22"), at(100), None, None)],
        peers: vec![PeerEntry::new(ip("198.51.100.42"), None, Some(at(500)), Strength::Strong)],
        bans: Vec::new(),
    };
    e.restore(at(11), &snapshot);
    let removed: Vec<_> = actions(&mut e)
        .into_iter()
        .filter_map(|a| match a {
            Action::StateChanged(StateChange::LockRemoved(network, why)) => Some((network.addr(), why)),
            Action::StateChanged(StateChange::PeerRemoved(p, why)) => Some((p.addr, why)),
            _ => None,
        })
        .collect();
    assert_eq!(removed, vec![(ip("192.0.2.31"), Removal::Evicted), (ip("198.51.100.31"), Removal::Evicted)]);
    assert!(e.locks.is_locked(IpNet::from(ip("192.0.2.22")), at(11)));
    assert!(e.peers().any(|p| p.addr == ip("198.51.100.42")));
    check_invariants(&e);
}

/// A ban from another gateway is a claim: one bad write to the shared store must not cut the
/// site off (too wide, a whole LAN, an exempt host), nor fill this gateway's ban table.
#[test]
fn a_remote_ban_is_bounded_and_reported() {
    let mut e = Engine::new(EngineConfig { exempt: vec!["198.51.100.53/32".parse().unwrap()], ..config() });
    let ban = |net: &str| StateChange::Ban(BanEntry::new(net.parse().unwrap(), None, None));
    let refused = |e: &mut Engine| -> Vec<(IpNet, RemoteBanRefusal, u64)> {
        events(e)
            .into_iter()
            .filter_map(|ev| match ev {
                Event::RemoteBanRefused { net, why, total, .. } => Some((net, why, total)),
                _ => None,
            })
            .collect()
    };
    for (net, why) in [
        ("0.0.0.0/0", RemoteBanRefusal::TooWide),
        ("198.0.0.0/8", RemoteBanRefusal::TooWide),
        ("::/0", RemoteBanRefusal::TooWide),
        ("2001:db8::/31", RemoteBanRefusal::TooWide),
        ("192.0.2.0/24", RemoteBanRefusal::CoversLan),
        ("192.0.0.0/16", RemoteBanRefusal::CoversLan),
        ("2001:db8:1::/48", RemoteBanRefusal::CoversLan),
        ("198.51.100.53/32", RemoteBanRefusal::Exempt),
        ("198.51.96.0/20", RemoteBanRefusal::Exempt),
    ] {
        assert!(!e.handle_remote(at(1), gw("gw-a"), ban(net)), "{net}");
        assert!(e.bans().is_empty(), "{net} was taken");
        let total = e.stats().remote_bans_refused;
        let reported = refused(&mut e);
        // Reported at the 1st, 2nd, 4th, 8th refusal only.
        if total.is_power_of_two() {
            assert_eq!(reported, vec![(net.parse::<IpNet>().unwrap().trunc(), why, total)], "{net}");
        } else {
            assert!(reported.is_empty(), "{net}: {reported:?}");
        }
    }
    assert_eq!(e.stats().remote_bans_refused, 9);
    // A host of the LAN, a /16 outside: taken, and said so.
    for net in ["192.0.2.66/32", "203.0.0.0/16", "2001:db8:2::/48"] {
        assert!(e.handle_remote(at(1), gw("gw-a"), ban(net)), "{net}");
    }
    let taken: Vec<_> = events(&mut e)
        .into_iter()
        .filter_map(|ev| match ev {
            Event::RemoteBan { net, origin, lifted: false, .. } => Some((net, origin)),
            _ => None,
        })
        .collect();
    assert_eq!(taken.len(), 3, "{taken:?}");
    assert!(taken.iter().all(|(_, origin)| *origin == gw("gw-a")));
    // A lift by the other gateway's operator is said too.
    let lifted = StateChange::BanRemoved("203.0.0.0/16".parse().unwrap(), Removal::Operator);
    assert!(e.handle_remote(at(2), gw("gw-b"), lifted));
    assert!(events(&mut e)
        .iter()
        .any(|ev| matches!(ev, Event::RemoteBan { lifted: true, origin, .. } if *origin == gw("gw-b"))));

    // At most half the table comes from other gateways: the operator here keeps room.
    let mut e = Engine::new(config());
    let mut taken = 0;
    for i in 0..(MAX_REMOTE_BANS as u32 + 10) {
        let addr = std::net::Ipv6Addr::from(0x2001_0db8_0005_0000_0000_0000_0000_0000u128 + u128::from(i));
        if e.handle_remote(
            at(1),
            gw("gw-a"),
            StateChange::Ban(BanEntry::new(IpNet::from(IpAddr::V6(addr)), None, None)),
        ) {
            taken += 1;
        }
    }
    assert_eq!(taken, MAX_REMOTE_BANS);
    assert_eq!(e.stats().remote_bans_refused, 10);
    assert!(e.ban(at(2), ip("203.0.113.9"), None, None, None).is_ok(), "the local operator has no room");
    // A lifted remote ban frees its place.
    let first = IpNet::from(IpAddr::V6("2001:db8:5::".parse().unwrap()));
    assert!(e.handle_remote(at(3), gw("gw-a"), StateChange::BanRemoved(first, Removal::Operator)));
    let next = IpNet::from(IpAddr::V6("2001:db8:6::".parse().unwrap()));
    assert!(e.handle_remote(at(3), gw("gw-a"), StateChange::Ban(BanEntry::new(next, None, None))));
}

/// A local tell that takes over a merged lock publishes it as this gateway's, however little it
/// moves the expiry (the other gateways then know who probes it).
#[test]
fn a_local_rearm_of_a_merged_lock_is_published_even_by_half_a_second() {
    let mut e = Engine::new(config());
    assert!(e.handle_remote(at(0), gw("gw-b"), lock(CLIENT, 120)));
    actions(&mut e);
    let half_a_second = Timestamp::from_micros(500_000);
    e.handle_packet(half_a_second, &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let published: Vec<_> = actions(&mut e)
        .into_iter()
        .filter_map(|a| match a {
            Action::StateChanged(StateChange::Lock(l)) => Some((l.until, l.origin)),
            _ => None,
        })
        .collect();
    assert_eq!(published, vec![(Timestamp::from_micros(120_500_000), None)]);
    check_invariants(&e);
}
