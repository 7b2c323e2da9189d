//! Soak: pushes millions of packets (ordinary traffic mixed with FastTrack, over millions of
//! distinct flows and addresses) through one engine and checks that the counters add up exactly:
//! every packet got one verdict, under the reason its generator expected. Prints throughput,
//! per-packet latency percentiles (sampled) and peak RSS.
//!
//! ```sh
//! cargo run --release --example soak -- 10000000
//! ```
//!
//! With `--pcap FILE` the same packets (TCP payloads cut to 64 bytes to keep the file near
//! 1 GiB) are written to a raw-IP pcap instead, for `ftwall replay`'s memory check:
//!
//! ```sh
//! cargo run --release --example soak -- 10000000 --pcap /tmp/flood.pcap
//! /usr/bin/time -v target/release/ftwall replay /tmp/flood.pcap   # "Maximum resident set size"
//! ```

use ftwall::wire::{self, IpRepr, Ipv4Repr, TcpFlags, TcpRepr, TransportRepr, UdpRepr};
use ftwall::{Engine, EngineConfig, Reason, Timestamp, Verdict};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Instant;

/// Writes an IPv4 packet from `src` to `dst` into `out` (cleared first).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, transport: TransportRepr<'_>, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    wire::emit_into(out, &IpRepr::V4(Ipv4Repr::new(src, dst)), &transport, payload);
}

fn udp(src_port: u16, dst_port: u16) -> TransportRepr<'static> {
    TransportRepr::Udp(UdpRepr { src_port, dst_port })
}

fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let mut pcap = args.iter().position(|a| a == "--pcap").map(|i| {
        let path = args.get(i + 1).expect("--pcap needs a file name");
        let mut file =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create pcap"));
        // Classic pcap, microseconds, snaplen 65535, link type 101 (raw IP).
        file.write_all(&[
            0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 101, 0, 0, 0,
        ])
        .expect("write pcap");
        file
    });
    let tcp_payload = if pcap.is_some() { 64 } else { 1200 };
    // Inside: 10.0.0.0/8 (default LAN). Ordinary clients are 10.1.x.y, FastTrack clients 10.9.x.y.
    let mut engine = Engine::new(EngineConfig::default());
    let ping = [0x27, 0, 0, 0, 0x29, 0x80, b'K', b'a', b'Z', b'a', b'A', 0];
    let mut expected: BTreeMap<Reason, u64> = BTreeMap::new();
    let mut packet = Vec::with_capacity(1600);
    let mut samples = Vec::with_capacity((total / 997 + 1) as usize);
    let started = Instant::now();
    for i in 0..total {
        let r = mix(i);
        let now = Timestamp::from_micros(1_700_000_000_000_000 + i);
        let reason = match i % 20 {
            // A FastTrack ping from one of 4,096 clients to a fresh peer: always a tell.
            0 => {
                let client = Ipv4Addr::new(10, 9, (r >> 8) as u8 & 0x0F, r as u8);
                let peer = Ipv4Addr::new(198, 51, (r >> 16) as u8, (r >> 24) as u8);
                ipv4(client, peer, udp(3531, 1214), &ping, &mut packet);
                Reason::UdpPing
            }
            // Ordinary DNS-like UDP from ordinary clients to 203.0.113.x (never a suspect peer).
            1..=4 => {
                let client = Ipv4Addr::new(10, 1, (r >> 8) as u8, r as u8);
                let server = Ipv4Addr::new(203, 0, 113, (r >> 40) as u8);
                ipv4(client, server, udp((r >> 32) as u16 | 1024, 53), &[0x12; 32], &mut packet);
                Reason::Clean
            }
            // Ordinary TCP data segments of millions of distinct flows (first seen mid-stream).
            _ => {
                let client = Ipv4Addr::new(10, 1, (r >> 8) as u8, r as u8);
                let server = Ipv4Addr::new(203, 0, 113, (r >> 40) as u8);
                let tcp = TcpRepr::new((r >> 32) as u16 | 1024, 443, r as u32, TcpFlags(0x18));
                ipv4(client, server, TransportRepr::Tcp(tcp), &[0x17; 1200][..tcp_payload], &mut packet);
                Reason::Clean
            }
        };
        *expected.entry(reason).or_default() += 1;
        if let Some(out) = &mut pcap {
            let micros = now.as_micros();
            let len = (packet.len() as u32).to_le_bytes();
            out.write_all(&((micros / 1_000_000) as u32).to_le_bytes()).expect("write pcap");
            out.write_all(&((micros % 1_000_000) as u32).to_le_bytes()).expect("write pcap");
            out.write_all(&len).expect("write pcap");
            out.write_all(&len).expect("write pcap");
            out.write_all(&packet).expect("write pcap");
            continue;
        }
        let timed = i % 997 == 0;
        let t0 = timed.then(Instant::now);
        engine.drive(now);
        let d = engine.handle_packet(now, &packet);
        if let Some(t0) = t0 {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
        assert_eq!(d.reason, reason, "packet {i}");
        assert_eq!(d.verdict, if reason == Reason::Clean { Verdict::Accept } else { Verdict::Drop });
        while engine.poll_event().is_some() {}
        while engine.poll_action().is_some() {}
    }
    if let Some(mut out) = pcap {
        out.flush().expect("write pcap");
        println!("wrote {total} packets; expected verdicts: {expected:?}");
        return;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = engine.stats();
    assert_eq!(stats.packets, total, "every packet counted once");
    assert_eq!(stats.accepted + stats.dropped, total);
    for (reason, n) in &expected {
        assert_eq!(stats.count(*reason), *n, "{reason}");
    }
    assert_eq!(stats.by_reason().map(|(_, n)| n).sum::<u64>(), total);
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p) as usize];
    println!("soak: {total} packets in {elapsed:.2} s = {:.2} M packets/s", total as f64 / elapsed / 1e6);
    println!("counters: accepted {} dropped {} ({:?}) — all add up", stats.accepted, stats.dropped, expected);
    println!(
        "state: {} flows, {} suspect peers, {} locked clients, {} reassembly buffers",
        engine.flow_count(),
        engine.peer_count(),
        engine.locked_count(),
        engine.reassembly_count()
    );
    println!(
        "latency per packet (sampled 1/997, includes timer and drain work): p50 {} ns, p99 {} ns, max {} ns",
        pct(0.50),
        pct(0.99),
        samples.last().copied().unwrap_or(0)
    );
    println!("peak RSS: {:.1} MiB", peak_rss_kib() as f64 / 1024.0);
}
