//! Operator bans: what they drop, persistence, expiry, unban, and monitor mode.

use super::*;

#[test]
fn operator_bans_drop_outside_addresses_fully_and_inside_ones_outside_allow_ports() {
    let mut e = Engine::new(config());
    let outside = ("198.51.100.66", 443);
    e.ban(at(0), ip(outside.0), None, None, None).unwrap();
    e.ban(at(0), ip(CLIENT), Some(Duration::from_secs(100)), Some("test".into()), Some(0)).unwrap();
    assert_eq!(e.ban_count(), 2);
    // An outside ban covers every port, in both directions.
    assert_eq!(
        judge(&mut e, at(1), &tcp(("192.0.2.11", 40000), outside, 1, SYN, &[])),
        (Verdict::Drop, Reason::Banned)
    );
    assert_eq!(
        judge(&mut e, at(1), &udp(outside, ("192.0.2.11", 53), b"x")),
        (Verdict::Drop, Reason::Banned)
    );
    // A banned inside client keeps DNS and web, loses the rest.
    assert_eq!(
        judge(&mut e, at(2), &tcp((CLIENT, 40001), (PEER, 80), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(
        judge(&mut e, at(2), &udp((PEER, 53), (CLIENT, 5353), b"answer")),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(
        judge(&mut e, at(2), &tcp((CLIENT, 40002), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Drop, Reason::Banned)
    );
    assert_eq!(e.stats().count(Reason::Banned), 3);
    // Persisted, and restored by a fresh engine.
    let acts = actions(&mut e);
    assert!(acts.contains(&Action::StateChanged(StateChange::Ban(BanEntry {
        net: net(&format!("{CLIENT}/32")),
        until: Some(at(100)),
        seconds: Some(100),
        reason: Some("test".into()),
        by: Some(0),
        since: at(0),
        origin: None,
    }))));
    let snapshot = e.snapshot();
    assert_eq!(snapshot.bans.len(), 2);
    let mut restored = Engine::new(config());
    restored.restore(at(3), &snapshot);
    assert_eq!(restored.bans(), e.bans());
    // Expiry goes through the timer: event and state change.
    assert_eq!(e.poll_timeout(), Some(at(100)));
    e.handle_timeout(at(100));
    assert_eq!(
        events(&mut e),
        vec![Event::BanExpired { net: ip(CLIENT).into(), reason: Some("test".into()) }]
    );
    assert!(actions(&mut e)
        .contains(&Action::StateChanged(StateChange::BanRemoved(ip(CLIENT).into(), Removal::Expired))));
    assert_eq!(
        judge(&mut e, at(101), &tcp((CLIENT, 40003), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // An expired ban is not restored; unban lifts the other.
    let mut late = Engine::new(config());
    late.restore(at(200), &snapshot);
    assert_eq!(late.ban_count(), 1);
    assert!(e.unban(ip(outside.0)).is_some());
    assert!(e.unban(ip(outside.0)).is_none());
    assert_eq!(
        judge(&mut e, at(102), &tcp(("192.0.2.11", 40004), outside, 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn monitor_mode_reports_bans_without_dropping() {
    let mut e = Engine::new(EngineConfig { mode: Mode::Monitor, ..config() });
    e.ban(at(0), ip(PEER), None, None, None).unwrap();
    assert_eq!(
        judge(&mut e, at(1), &tcp((CLIENT, 40000), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Banned)
    );
}

#[test]
fn network_bans_cover_every_address_inside_and_inside_networks_keep_allow_ports() {
    let mut e = Engine::new(config());
    let reason = Some("abuse report #12".to_string());
    let wide = e.ban(at(0), net("198.51.100.77/24"), None, reason.clone(), Some(0)).unwrap();
    assert_eq!(wide.net, net("198.51.100.0/24"), "host bits dropped");
    // An inside network (lan is 192.0.2.0/24 in these tests) for a minute.
    e.ban(at(0), net("192.0.2.8/29"), Some(Duration::from_secs(60)), None, Some(1000)).unwrap();
    // Every address of the outside /24, on any port, in both directions; not its neighbours.
    for (n, peer) in ["198.51.100.1", "198.51.100.200", "198.51.100.255"].into_iter().enumerate() {
        let port = 40_000 + n as u16;
        assert_eq!(
            judge(&mut e, at(1), &tcp(("192.0.2.30", port), (peer, 443), 1, SYN, &[])),
            (Verdict::Drop, Reason::Banned),
            "{peer}"
        );
        assert_eq!(judge(&mut e, at(1), &udp((peer, 53), ("192.0.2.30", port), b"x")).1, Reason::Banned);
    }
    assert_eq!(
        judge(&mut e, at(1), &tcp(("192.0.2.30", 41000), ("198.51.101.1", 443), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // A host of the inside /29 keeps DNS and web, loses the rest; a host just outside it does not.
    assert_eq!(
        judge(&mut e, at(2), &tcp(("192.0.2.13", 41001), ("203.0.113.9", 80), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(
        judge(&mut e, at(2), &tcp(("192.0.2.13", 41002), ("203.0.113.9", 5555), 1, SYN, &[])),
        (Verdict::Drop, Reason::Banned)
    );
    assert_eq!(
        judge(&mut e, at(2), &tcp(("192.0.2.16", 41003), ("203.0.113.9", 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // The most specific ban answers: a /32 with its own reason inside the /24.
    e.ban(at(3), ip("198.51.100.5"), Some(Duration::from_secs(10)), Some("scanner".into()), Some(0)).unwrap();
    let covering = |e: &Engine, a: &str, now| e.ban_covering(ip(a), at(now)).and_then(|b| b.reason.clone());
    assert_eq!(covering(&e, "198.51.100.5", 4).as_deref(), Some("scanner"));
    assert_eq!(covering(&e, "198.51.100.6", 4), reason);
    // Expiry: the /32 and the /29 go, each with an event; the /24 still holds the /32's address.
    e.handle_timeout(at(60));
    assert_eq!(
        events(&mut e),
        vec![
            Event::BanExpired { net: net("198.51.100.5/32"), reason: Some("scanner".into()) },
            Event::BanExpired { net: net("192.0.2.8/29"), reason: None },
        ]
    );
    assert_eq!(covering(&e, "198.51.100.5", 61), reason);
    assert_eq!(
        judge(&mut e, at(61), &tcp(("192.0.2.13", 41004), ("203.0.113.9", 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // Unban takes the network, not an address inside it.
    assert!(e.unban(ip("198.51.100.1")).is_none());
    assert_eq!(e.unban(net("198.51.100.0/24")).map(|b| b.reason), Some(reason));
    assert_eq!(e.ban_count(), 0);
    assert_eq!(
        judge(&mut e, at(62), &tcp(("192.0.2.30", 41005), ("198.51.100.1", 443), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
}

#[test]
fn network_bans_count_against_the_cap_and_survive_a_restore() {
    let mut e = Engine::new(config());
    for i in 0..MAX_BANS as u128 {
        let n = ipnet::Ipv6Net::new((0x2001_0db8_u128 << 96 | i << 16).into(), 112).unwrap();
        e.ban(at(0), IpNet::V6(n), None, None, None).unwrap();
    }
    assert_eq!(e.ban(at(0), net("198.51.100.0/24"), None, None, None), Err(BanError::Full));
    assert!(e.ban(at(0), net("2001:db8::/112"), None, Some("again".into()), None).is_ok(), "an update fits");
    assert_eq!(
        e.ban(at(0), net("2001:db8::/112"), None, Some("bad\nline".into()), None),
        Err(BanError::ReasonControl)
    );
    let snapshot = e.snapshot();
    let mut restored = Engine::new(config());
    restored.restore(at(1), &snapshot);
    assert_eq!(restored.bans(), e.bans());
    assert_eq!(
        restored.ban_covering(ip("2001:db8::ffff"), at(1)).and_then(|b| b.reason.as_deref()),
        Some("again")
    );
}
