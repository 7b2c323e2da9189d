//! False positives on generated UDP, for the tells that rest on corroboration (`udp_session`:
//! a `C0 28` / `C3 28` datagram is a tell only with independent evidence).
//!
//! 100,000 datagrams over 30,000 random flows between random inside hosts (10.0.0.0/16 and
//! fd00::/112, inside by the default `lan`) and random outside hosts on random ports, in both
//! directions, half of them starting `C0 28` or `C3 28` with a random body, the other half fully
//! random. Each run prints what dropped and why (`cargo test --test random_udp -- --nocapture`):
//! - with no FastTrack anywhere, the only drops are session datagrams whose outside port is
//!   1214 (the FastTrack default: corroboration by design, about 1 in 65,536 session datagrams);
//! - with locked clients elsewhere (one locked by a ping from its FastTrack port, one by a TCP
//!   tell only, and their supernode a suspect peer), exactly the same datagrams drop: a lock
//!   corroborates only its own client;
//! - the locked clients' own random datagrams from random ports: the ping-locked client's lock
//!   knows its port, so only port 1214 corroborates; the TCP-locked client's lock knows no port,
//!   so its first session datagram is a tell (by design) and gives the lock its port.

use ftwall::signatures::tcp::GIFT_OPENER;
use ftwall::wire::{self, IpRepr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
use ftwall::{Decision, Engine, EngineConfig, Reason, Timestamp, Verdict};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const DATAGRAMS: u64 = 100_000;
const FLOWS: u64 = 30_000;
const PING: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];

/// splitmix64: deterministic, so the figures printed are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn port(&mut self) -> u16 {
        1 + self.below(65_535) as u16
    }
}

fn udp(src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> Vec<u8> {
    let ip = IpRepr::new(src.0, dst.0).expect("same family");
    wire::emit(&ip, &TransportRepr::Udp(UdpRepr { src_port: src.1, dst_port: dst.1 }), payload)
}

fn tcp(src: (IpAddr, u16), dst: (IpAddr, u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ip = IpRepr::new(src.0, dst.0).expect("same family");
    wire::emit(&ip, &TransportRepr::Tcp(TcpRepr::new(src.1, dst.1, seq, TcpFlags(flags))), payload)
}

/// A random outside address: public-looking IPv4 (never 10/8, 127/8, multicast or above) or a
/// 2001:db8:: address.
fn outside(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        return IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0xff, 0, 0, 0, rng.next() as u16, rng.next() as u16));
    }
    loop {
        let a = Ipv4Addr::from(rng.next() as u32);
        let first = a.octets()[0];
        if !matches!(first, 0 | 10 | 127 | 172 | 192 | 100) && first < 224 {
            return IpAddr::V4(a);
        }
    }
}

fn inside(rng: &mut Rng, v6: bool) -> IpAddr {
    let h = rng.next() as u16;
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, h))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, (h >> 8) as u8, h as u8))
    }
}

/// A random payload: half `C0 28` / `C3 28` + a random body (2 to 1,400 bytes in all), half
/// random bytes (0 to 1,400).
fn payload(rng: &mut Rng) -> Vec<u8> {
    if rng.below(2) == 0 {
        let mut p = vec![if rng.below(2) == 0 { 0xC0 } else { 0xC3 }, 0x28];
        let body = rng.below(1399) as usize;
        p.extend(rng.bytes(body));
        p
    } else {
        let len = rng.below(1401) as usize;
        rng.bytes(len)
    }
}

fn is_session(p: &[u8]) -> bool {
    matches!(p, [0xC0 | 0xC3, 0x28, ..])
}

/// Why a datagram may drop, as seen from outside the engine: its flow's ends, and the inside
/// endpoint known (to the test) as a FastTrack port.
fn cause(d: &Decision, fasttrack_port: Option<(IpAddr, u16)>) -> &'static str {
    let ends = d.ends.expect("a UDP datagram has ends");
    if ends.outside.port() == 1214 {
        "outside port 1214"
    } else if fasttrack_port == Some((ends.inside.ip(), ends.inside.port())) {
        "the client's FastTrack port"
    } else {
        "nothing visible"
    }
}

#[derive(Default)]
struct Tally {
    datagrams: u64,
    sessions: u64,
    on_1214: u64,
    /// Drops by "reason: cause".
    drops: BTreeMap<String, u64>,
}

impl Tally {
    fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }

    fn count(&self, label: &str) -> u64 {
        self.drops.get(label).copied().unwrap_or(0)
    }

    /// Drops whose cause is none of `causes`.
    fn unexplained(&self, causes: &[&str]) -> u64 {
        self.drops.iter().filter(|(k, _)| !causes.iter().any(|c| k.ends_with(c))).map(|(_, n)| n).sum()
    }

    fn record(&mut self, d: &Decision, payload: &[u8], fasttrack_port: Option<(IpAddr, u16)>) {
        self.datagrams += 1;
        self.sessions += u64::from(is_session(payload));
        let why = cause(d, fasttrack_port);
        self.on_1214 += u64::from(why == "outside port 1214");
        if d.verdict == Verdict::Drop {
            *self.drops.entry(format!("{}: {why}", d.reason)).or_default() += 1;
        }
    }
}

/// The random traffic, fed to `e` from time `t0` on. `pin`: a fixed inside host for every flow
/// (a locked client's own traffic, whose lock's port, when it has one, is that cause), else
/// random inside hosts.
fn random_traffic(e: &mut Engine, seed: u64, t0: Timestamp, pin: Option<IpAddr>) -> Tally {
    let mut rng = Rng(seed);
    let flows: Vec<((IpAddr, u16), (IpAddr, u16))> = (0..FLOWS)
        .map(|_| {
            let v6 = pin.map_or(rng.below(10) == 0, |p| p.is_ipv6());
            let host = pin.unwrap_or_else(|| inside(&mut rng, v6));
            ((host, rng.port()), (outside(&mut rng, v6), rng.port()))
        })
        .collect();
    let mut tally = Tally::default();
    for i in 0..DATAGRAMS {
        let (a, b) = flows[rng.below(FLOWS) as usize];
        let (src, dst) = if rng.below(5) == 0 { (b, a) } else { (a, b) };
        let p = payload(&mut rng);
        let now = Timestamp::from_micros(t0.as_micros() + i * 1_000);
        e.drive(now);
        let fasttrack_port = pin.and_then(|host| {
            let lock = e.locked_clients().find(|l| l.client == host)?;
            Some((host, lock.port?))
        });
        let d = e.handle_packet(now, &udp(src, dst, &p));
        tally.record(&d, &p, fasttrack_port);
        while e.poll_event().is_some() {}
        while e.poll_action().is_some() {}
    }
    tally
}

fn report(name: &str, t: &Tally) {
    eprintln!(
        "{name}: {} datagrams ({} session-shaped, {} on flows to an outside port 1214), {} dropped: {:?}",
        t.datagrams,
        t.sessions,
        t.on_1214,
        t.dropped(),
        t.drops
    );
}

const SEED: u64 = 0x5E55_1011;
const T0: Timestamp = Timestamp::from_secs(1_000);
const PINGED: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1));
const TCP_ONLY: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 255, 0, 2));

/// An engine with two locked clients (locks of an hour, longer than the traffic): PINGED by a
/// ping from its FastTrack port (its supernode is a suspect peer), TCP_ONLY by a TCP tell alone.
fn with_locked_clients() -> Engine {
    let mut c = EngineConfig::default();
    c.timelock.seconds = 3_600;
    let mut e = Engine::new(c);
    let supernode = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5));
    assert_eq!(e.handle_packet(T0, &udp((PINGED, 3531), (supernode, 3000), &PING)).reason, Reason::UdpPing);
    let server = (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 6)), 4000);
    for p in [
        tcp((TCP_ONLY, 40_000), server, 99, 0x02, &[]),
        tcp(server, (TCP_ONLY, 40_000), 499, 0x12, &[]),
        tcp((TCP_ONLY, 40_000), server, 100, 0x10, &[]),
    ] {
        e.handle_packet(T0, &p);
    }
    let opener = tcp((TCP_ONLY, 40_000), server, 100, 0x18, &GIFT_OPENER);
    assert_eq!(e.handle_packet(T0, &opener).reason, Reason::TcpOpener);
    assert_eq!(e.locked_clients_at(T0).count(), 2);
    e
}

#[test]
fn random_udp_drops_only_what_port_1214_corroborates() {
    let mut e = Engine::new(EngineConfig::default());
    let t = random_traffic(&mut e, SEED, T0, None);
    report("no FastTrack anywhere", &t);
    assert!(t.sessions > 45_000, "half the datagrams are session-shaped");
    assert_eq!(t.unexplained(&["outside port 1214"]), 0, "{:?}", t.drops);
    assert!(t.dropped() <= t.on_1214);
    assert_eq!(e.stats().dropped, t.dropped());
}

#[test]
fn locked_clients_elsewhere_change_nothing() {
    let baseline = random_traffic(&mut Engine::new(EngineConfig::default()), SEED, T0, None);
    let elsewhere = random_traffic(&mut with_locked_clients(), SEED, T0, None);
    report("locked clients elsewhere", &elsewhere);
    assert_eq!(elsewhere.drops, baseline.drops, "the same datagrams drop, for the same reason");
}

#[test]
fn a_locked_clients_own_random_udp_is_judged_by_its_port() {
    let own = random_traffic(&mut with_locked_clients(), SEED ^ 1, T0, Some(PINGED));
    report("the ping-locked client's own traffic", &own);
    let corroborated = ["outside port 1214", "the client's FastTrack port"];
    assert_eq!(own.unexplained(&corroborated), 0, "its lock knows its port: {:?}", own.drops);

    let own = random_traffic(&mut with_locked_clients(), SEED ^ 2, T0, Some(TCP_ONLY));
    report("the TCP-locked client's own traffic", &own);
    // Its lock knows no port: its first session datagram rests on the lock alone (a tell, by
    // design) and gives the lock its port, which is that cause from then on.
    assert_eq!(own.count("udp_session: nothing visible"), 1, "{:?}", own.drops);
    assert_eq!(own.unexplained(&corroborated), 1, "{:?}", own.drops);
}
