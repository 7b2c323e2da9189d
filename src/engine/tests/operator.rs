//! Operator bans: what they drop, persistence, expiry, unban, and monitor mode.

use super::*;

#[test]
fn operator_bans_drop_outside_addresses_fully_and_inside_ones_outside_allow_ports() {
    let mut e = Engine::new(config());
    let outside = ("198.51.100.66", 443);
    e.ban(at(0), ip(outside.0), None).unwrap();
    e.ban(at(0), ip(CLIENT), Some(Duration::from_secs(100))).unwrap();
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
        addr: ip(CLIENT),
        until: Some(at(100)),
        seconds: Some(100),
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
    assert_eq!(events(&mut e), vec![Event::BanExpired { addr: ip(CLIENT) }]);
    assert!(actions(&mut e).contains(&Action::StateChanged(StateChange::BanRemoved(ip(CLIENT)))));
    assert_eq!(
        judge(&mut e, at(101), &tcp((CLIENT, 40003), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    // An expired ban is not restored; unban lifts the other.
    let mut late = Engine::new(config());
    late.restore(at(200), &snapshot);
    assert_eq!(late.ban_count(), 1);
    assert!(e.unban(ip(outside.0)));
    assert!(!e.unban(ip(outside.0)));
    assert_eq!(
        judge(&mut e, at(102), &tcp(("192.0.2.11", 40004), outside, 1, SYN, &[])),
        (Verdict::Accept, Reason::Clean)
    );
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn monitor_mode_reports_bans_without_dropping() {
    let mut e = Engine::new(EngineConfig { mode: Mode::Monitor, ..config() });
    e.ban(at(0), ip(PEER), None).unwrap();
    assert_eq!(
        judge(&mut e, at(1), &tcp((CLIENT, 40000), (PEER, 5555), 1, SYN, &[])),
        (Verdict::Accept, Reason::Banned)
    );
}
