//! A sequence of packets and time steps through one engine with small caches (so evictions,
//! expiries, reassembly and probes all happen). Framing of the input, repeated:
//! `step: u16 (ms, big-endian)`, `len: u8`, `len` bytes of packet; `len = 255` is instead an
//! operator action on an IPv4 address: `op: u8`, `addr: [u8; 4]` (op % 4: ban, timed ban,
//! unban, release + forget).
#![no_main]

use ftwall::{EngineConfig, Engine, Timestamp};
use libfuzzer_sys::fuzz_target;

fn small_config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.lan = vec!["192.0.2.0/24".parse().unwrap(), "2001:db8:1::/64".parse().unwrap()];
    config.flows.capacity = 16;
    config.flows.reassembly_capacity = 4;
    config.peers.capacity = 8;
    config.timelock.capacity = 4;
    config.timelock.seconds = 10;
    config
}

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(small_config());
    let mut now = 1_000_000_000u64;
    let mut rest = data;
    let mut packets = 0u64;
    while let [s0, s1, len, tail @ ..] = rest {
        now += u64::from(u16::from_be_bytes([*s0, *s1])) * 1000;
        let t = Timestamp::from_micros(now);
        engine.drive(t);
        if *len == 255 {
            let [op, a, b, c, d, after @ ..] = tail else { break };
            let addr = std::net::IpAddr::from([*a, *b, *c, *d]);
            // Networks from /16 to /32: the high bits of `op` pick the prefix length.
            let net = ipnet::IpNet::new(addr, 16 + (op / 4) % 17).expect("a valid IPv4 prefix length");
            match op % 4 {
                0 => drop(engine.ban(t, net, None, None, None)),
                1 => drop(engine.ban(t, net, Some(std::time::Duration::from_secs(u64::from(*op))), None, None)),
                2 => drop(engine.unban(net)),
                _ => drop((engine.release_client(addr), engine.forget_peer(addr))),
            }
            while engine.poll_event().is_some() {}
            while engine.poll_action().is_some() {}
            rest = after;
            continue;
        }
        let n = usize::from(*len).min(tail.len());
        engine.handle_packet(t, &tail[..n]);
        packets += 1;
        while engine.poll_event().is_some() {}
        while engine.poll_action().is_some() {}
        rest = &tail[n..];
    }
    let stats = engine.stats();
    assert_eq!(stats.packets, packets);
    assert_eq!(stats.accepted + stats.dropped, packets);
    assert!(engine.flow_count() <= 16 && engine.peer_count() <= 8 && engine.locked_count() <= 4);
    let snapshot = engine.snapshot();
    let mut restored = Engine::new(small_config());
    restored.restore(Timestamp::from_micros(now), &snapshot);
    // Bans still in force survive the round trip exactly.
    let t = Timestamp::from_micros(now);
    let live: Vec<_> = snapshot.bans.iter().filter(|b| b.until.is_none_or(|u| u > t)).cloned().collect();
    assert_eq!(restored.bans(), live);
});
