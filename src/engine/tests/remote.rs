//! Merges from other gateways ([`Engine::handle_remote`]): later expiry wins, idempotent and
//! commutative, the trust rules of local learning, no echo.

use super::*;

fn gw(name: &str) -> GatewayId {
    GatewayId::new(name).unwrap()
}

fn lock(client: &str, until: u64) -> StateChange {
    StateChange::Lock(LockEntry {
        client: ip(client),
        until: at(until),
        port: None,
        peer: None,
        origin: None,
    })
}

fn held(e: &Engine) -> Vec<(IpAddr, Timestamp, Option<GatewayId>)> {
    let mut v: Vec<_> = e.locked_clients().map(|l| (l.client, l.until, l.origin)).collect();
    v.sort();
    v
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
    let ban = BanEntry { addr: ip("203.0.113.5"), until: None, seconds: None, origin: None };
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Ban(ban)));
    let peer = PeerEntry { addr: ip(PEER), port: Some(PEER_PORT), expires: Some(at(500)), origin: None };
    assert!(e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(peer)));
    assert!(e.handle_remote(at(11), gw("gw-b"), StateChange::LockRemoved(ip(CLIENT))));
    let queued = actions(&mut e);
    assert_eq!(queued.len(), 4, "{queued:?}");
    assert!(queued.iter().all(|a| matches!(a, Action::StateMerged(_))), "{queued:?}");
    // The merged ban and peer are enforced, and carry their origin.
    assert_eq!(e.bans()[0].origin, Some(gw("gw-a")));
    assert_eq!(e.peers().next().map(|p| p.origin), Some(Some(gw("gw-a"))));
    assert!(e.locked_clients().next().is_none(), "the remote release ended the lock");
    let syn = tcp((CLIENT, 40000), ("203.0.113.5", 80), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(12), &syn), (Verdict::Drop, Reason::Banned));
}

#[test]
fn the_trust_rules_of_local_learning_apply() {
    let mut e = Engine::new(config());
    // A client outside `lan` is never locked, a LAN address is never a suspect peer.
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock("203.0.113.9", 100)));
    let lan_peer = PeerEntry { addr: ip(CLIENT), port: None, expires: None, origin: None };
    assert!(!e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(lan_peer)));
    let loopback = PeerEntry { addr: ip("127.0.0.1"), port: None, expires: None, origin: None };
    assert!(!e.handle_remote(at(10), gw("gw-a"), StateChange::Peer(loopback)));
    // Expired on arrival: ignored. Far in the future: held to one lock period from now.
    assert!(!e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 5)));
    assert!(e.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 1_000_000)));
    let period = e.config().timelock.seconds;
    assert_eq!(held(&e), vec![(ip(CLIENT), at(10 + period), Some(gw("gw-a")))]);
    // With the time-lock off, nothing is locked.
    let mut off = Engine::new(EngineConfig {
        timelock: crate::config::TimelockConfig { seconds: 0, ..config().timelock },
        ..config()
    });
    assert!(!off.handle_remote(at(10), gw("gw-a"), lock(CLIENT, 100)));
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
