//! The time lock over the virtual clock: arming, re-arming, probes and their answers, expiry, drive().

use super::*;

#[test]
fn timelock_locks_rearms_probes_and_expires() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    events(&mut e);
    actions(&mut e);
    assert_eq!(e.poll_timeout(), Some(at(60)), "half-expiry probe scheduled");

    // Locked: new TCP to a random port is dropped, to an allowed port accepted.
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &syn), (Verdict::Drop, Reason::ClientLocked));
    let syn80 = tcp((CLIENT, 41001), ("203.0.113.77", 80), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &syn80), (Verdict::Accept, Reason::Clean));
    // Non-SYN packets of existing flows are not affected by the lock.
    let data = tcp((CLIENT, 41001), ("203.0.113.77", 80), 2, PSH_ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(judge(&mut e, at(30), &data), (Verdict::Accept, Reason::Clean));
    // Another client is not locked.
    let other = tcp(("192.0.2.11", 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(30), &other), (Verdict::Accept, Reason::Clean));

    // Half-expiry: a ping forged from the pinged peer to the client's FastTrack port.
    e.handle_timeout(at(59));
    assert!(actions(&mut e).is_empty(), "nothing due before 60 s");
    e.handle_timeout(at(60));
    let acts = actions(&mut e);
    let probe = acts.iter().find_map(|a| match a {
        Action::SendProbe { from, to, payload } => Some((*from, *to, payload.clone())),
        _ => None,
    });
    let (from, to, payload) = probe.expect("probe");
    assert_eq!((from, to), (SocketAddr::new(ip(PEER), PEER_PORT), SocketAddr::new(ip(CLIENT), CLIENT_PORT)));
    assert_eq!(signatures::udp::ping(&payload), Some(Network::Kazaa));

    // The client answers the probe with a pong to that peer, through the gateway: a tell that
    // re-arms the lock from 70 s, dropped.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(70), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.stats().probe_answers, 1);
    assert_eq!(e.locked_clients().next().unwrap().until, at(190));
    assert_eq!(e.poll_timeout(), Some(at(130)));
    assert_eq!(judge(&mut e, at(70), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.stats().probe_answers, 1, "one answer per probe");

    // No more tells: probe at 130 unanswered, release at 190.
    e.handle_timeout(at(130));
    assert!(actions(&mut e).iter().any(|a| matches!(a, Action::SendProbe { .. })));
    e.handle_timeout(at(189));
    assert!(events(&mut e).is_empty());
    assert_eq!(judge(&mut e, at(189), &syn), (Verdict::Drop, Reason::ClientLocked));
    e.handle_timeout(at(190));
    assert_eq!(events(&mut e), vec![Event::ClientReleased { client: ip(CLIENT) }]);
    assert!(actions(&mut e)
        .contains(&Action::StateChanged(StateChange::LockRemoved(ip(CLIENT).into(), Removal::Expired))));
    assert_eq!(e.poll_timeout(), None);
    let syn_later = tcp((CLIENT, 41002), ("203.0.113.78", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(191), &syn_later), (Verdict::Accept, Reason::Clean));
}

#[test]
fn every_tell_rearms_the_lock() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    e.handle_packet(at(100), &udp((CLIENT, CLIENT_PORT), ("203.0.113.3", 999), &KAZAA_PING));
    e.handle_timeout(at(150));
    assert_eq!(e.locked_count(), 1, "re-armed at 100, so still locked at 150");
    let mut conn = Conn::new((CLIENT, 42000), ("203.0.113.4", 443));
    conn.open(&mut e, at(200));
    let opener = conn.client_data(&GIFT_OPENER);
    assert_eq!(judge(&mut e, at(200), &opener), (Verdict::Drop, Reason::TcpOpener));
    assert_eq!(e.locked_clients().next().unwrap().until, at(320));
}

#[test]
fn timelock_disabled() {
    let mut c = config();
    c.timelock.seconds = 0;
    let mut e = Engine::new(c);
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    assert_eq!(e.locked_count(), 0);
    assert_eq!(e.poll_timeout(), None);
    let ev = events(&mut e);
    assert!(ev.contains(&Event::ClientIdentified {
        client: ip(CLIENT),
        peer: SocketAddr::new(ip(PEER), PEER_PORT),
        reason: Reason::UdpPing,
        locked_until: None
    }));
    let syn = tcp((CLIENT, 41000), ("203.0.113.77", 6346), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Accept, Reason::Clean));
    // The peer is still blocked, on the port the client pinged.
    let syn = tcp((CLIENT, 41000), (PEER, PEER_PORT), 1, SYN, &[]);
    assert_eq!(judge(&mut e, at(1), &syn), (Verdict::Drop, Reason::SuspectPeer));
}

#[test]
fn locked_clients_at_leaves_out_expired_locks_not_yet_removed() {
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let until = e.locked_clients().next().unwrap().until;
    assert_eq!(e.locked_clients_at(at(1)).count(), 1);
    // Past the expiry but before handle_timeout: still listed, no longer in force.
    assert_eq!(e.locked_clients().count(), 1);
    assert_eq!(e.locked_clients_at(until).count(), 0);
}

fn probes(e: &mut Engine) -> Vec<(SocketAddr, SocketAddr)> {
    actions(e)
        .into_iter()
        .filter_map(|a| match a {
            Action::SendProbe { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

#[test]
fn probe_is_forged_from_the_last_pinged_peer_and_its_answer_rearms_the_lock() {
    let mut e = Engine::new(config());
    let client = SocketAddr::new(ip(CLIENT), CLIENT_PORT);
    // The client pings two peers; the lock remembers the last one.
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), ("203.0.113.5", 4000), &KAZAA_PING));
    e.handle_packet(at(10), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    let peer = SocketAddr::new(ip(PEER), PEER_PORT);
    assert_eq!(e.locked_clients().next().unwrap().peer, Some(peer));
    actions(&mut e);
    assert_eq!(e.poll_timeout(), Some(at(70)));
    e.handle_timeout(at(70));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
    // The forged ping is the daemon's own packet and never crosses the queue; the client's pong
    // to the peer does: judged a tell from inside, dropped, and the lock moves.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    let d = e.handle_packet(at(75), &answer);
    assert_eq!((d.verdict, d.reason), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(e.locked_clients().next().unwrap().until, at(195));
    assert_eq!(e.stats().probe_answers, 1);
    assert!(actions(&mut e)
        .iter()
        .any(|a| matches!(a, Action::StateChanged(StateChange::Lock(l)) if l.until == at(195))));
    // The next probe half-way through the new arming, from the same peer.
    assert_eq!(e.poll_timeout(), Some(at(135)));
    e.handle_timeout(at(135));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
}

#[test]
fn no_probe_without_a_pinged_outside_peer() {
    // Locked by a TCP tell: no peer to forge from, so no probe; the lock just expires.
    let mut e = Engine::new(config());
    let mut conn = Conn::new((CLIENT, 41000), (PEER, 2999));
    conn.open(&mut e, at(0));
    assert_eq!(judge(&mut e, at(0), &conn.client_data(&GIFT_OPENER)).1, Reason::TcpOpener);
    assert_eq!(e.locked_clients().next().unwrap().peer, None);
    assert_eq!(e.poll_timeout(), Some(at(120)));
    e.handle_timeout(at(60));
    e.handle_timeout(at(120));
    assert_eq!(probes(&mut e), vec![]);
    assert_eq!(e.locked_count(), 0);

    // A ping between LAN hosts, or from a client outside `lan`: no probe target.
    let mut e = Engine::new(config());
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), ("192.0.2.77", 1214), &KAZAA_PING));
    e.handle_packet(at(0), &udp(("203.0.113.77", 4444), ("198.51.100.21", 1214), &KAZAA_PING));
    assert!(e.locked_clients().all(|l| l.peer.is_none()));
    e.handle_timeout(at(60));
    assert_eq!(probes(&mut e), vec![]);

    // A lock from an older state file (no peer) gets no probe; a planted peer inside `lan` or a
    // client outside it neither.
    let snapshot = Snapshot {
        locks: vec![
            LockEntry::new(ip(CLIENT), at(100), Some(CLIENT_PORT), None),
            LockEntry::new(
                ip("192.0.2.11"),
                at(100),
                Some(CLIENT_PORT),
                Some(SocketAddr::new(ip("192.0.2.12"), 1214)),
            ),
            LockEntry::new(
                ip("203.0.113.9"),
                at(100),
                Some(CLIENT_PORT),
                Some(SocketAddr::new(ip(PEER), PEER_PORT)),
            ),
        ],
        ..Snapshot::default()
    };
    let old: Snapshot = serde_json::from_str(
        r#"{"peers":[],"locks":[{"client":"192.0.2.10","until":100000000,"port":3531}]}"#,
    )
    .unwrap();
    assert_eq!(old.locks, snapshot.locks[..1]);
    let mut e = Engine::new(config());
    e.restore(at(0), &snapshot);
    for t in [40, 60, 80, 100] {
        e.handle_timeout(at(t));
    }
    assert_eq!(probes(&mut e), vec![]);

    // Monitor mode and spoof_pongs = false send no forged packets, probes included.
    for c in
        [EngineConfig { mode: Mode::Monitor, ..config() }, EngineConfig { spoof_pongs: false, ..config() }]
    {
        let mut e = Engine::new(c);
        e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
        e.handle_timeout(at(60));
        assert_eq!(probes(&mut e), vec![]);
    }
}

#[test]
fn drive_runs_timers_only_when_due() {
    let mut e = Engine::new(config());
    assert!(!e.drive(at(0)), "no timer pending");
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    events(&mut e);
    actions(&mut e);
    assert!(!e.drive(at(59)));
    assert!(actions(&mut e).is_empty());
    assert!(e.drive(at(60)), "the half-expiry probe");
    assert!(actions(&mut e).iter().any(|a| matches!(a, Action::SendProbe { .. })));
    assert!(!e.drive(at(60)), "a spurious call does nothing");
    assert_eq!(e.poll_timeout(), Some(at(120)));
    assert!(e.drive(at(500)), "a late call runs what is overdue");
    assert_eq!(events(&mut e), vec![Event::ClientReleased { client: ip(CLIENT) }]);
}

#[test]
fn only_the_exact_answer_to_the_probe_rearms_the_lock() {
    let mut e = Engine::new(config());
    let client = SocketAddr::new(ip(CLIENT), CLIENT_PORT);
    let peer = SocketAddr::new(ip(PEER), PEER_PORT);
    e.handle_packet(at(0), &udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PING));
    actions(&mut e);
    let until = |e: &Engine| e.locked_clients().find(|l| l.client == ip(CLIENT)).map(|l| l.until);

    // Before the probe is sent, a pong "from" the client answers nothing.
    let answer = udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(30), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(until(&e), Some(at(120)), "no probe out: not re-armed");

    e.handle_timeout(at(60));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
    // Forged answers: from another port of the client, to another port of the peer, to another
    // peer. Each is dropped (FastTrack-shaped) but re-arms nothing and teaches nothing.
    let forged = [
        udp((CLIENT, CLIENT_PORT + 1), (PEER, PEER_PORT), &KAZAA_PONG),
        udp((CLIENT, CLIENT_PORT), (PEER, PEER_PORT + 1), &KAZAA_PONG),
        udp((CLIENT, CLIENT_PORT), ("198.51.100.21", PEER_PORT), &KAZAA_PONG),
    ];
    for (t, packet) in (61..).zip(&forged) {
        assert_eq!(judge(&mut e, at(t), packet), (Verdict::Drop, Reason::UdpPong));
        assert_eq!(until(&e), Some(at(120)), "forged answer at {t} s re-armed the lock");
    }
    assert_eq!(e.locked_clients().next().unwrap().port, Some(CLIENT_PORT), "the lock's port did not move");
    assert_eq!(e.peer_count(), 1, "no peer learned from a forged answer");
    assert_eq!((e.stats().pongs_unsolicited, e.stats().probe_answers), (4, 0));
    // Another host's own pong is its own tell: it locks that host, never the client.
    let other = udp(("192.0.2.12", CLIENT_PORT), (PEER, PEER_PORT), &KAZAA_PONG);
    assert_eq!(judge(&mut e, at(65), &other), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(until(&e), Some(at(120)));

    // The real answer (client's FastTrack port to the probe's forged source) re-arms, once.
    assert_eq!(judge(&mut e, at(70), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(until(&e), Some(at(190)));
    assert_eq!(e.stats().probe_answers, 1);
    assert_eq!(judge(&mut e, at(80), &answer), (Verdict::Drop, Reason::UdpPong));
    assert_eq!(until(&e), Some(at(190)), "a replayed answer does not re-arm");
    assert_eq!(e.stats().pongs_unsolicited, 5);

    // Nothing else keeps it: the next probe goes unanswered and the lock ends on time.
    e.handle_timeout(at(130));
    assert_eq!(probes(&mut e), vec![(peer, client)]);
    assert_eq!(judge(&mut e, at(131), &forged[0]), (Verdict::Drop, Reason::UdpPong));
    e.handle_timeout(at(190));
    assert!(until(&e).is_none(), "released at 190 s despite the forged answers");
}
