//! `ftwall bench-traffic` (hidden): load generators for the benchmarks in `benches/` and the
//! real-kernel tests, moved out of `ftwall sim` so that the simulator keeps FastTrack traffic and
//! the ordinary client it is compared against.
//!
//! - `blast`: small UDP datagrams as fast as possible to one destination, for a while;
//! - `sink`: counts the datagrams arriving on some endpoints (the blast's receiver);
//! - `flood`: one datagram to each of many distinct IPv6 destinations (distinct flows);
//! - `latency`: sequential UDP request/echo pairs against `ftwall sim responder`, percentiles.
//!
//! Every command prints one JSON object per line on stdout (the sink also a `ready` line first),
//! the last line being its summary, as `ftwall sim` does. Nothing here parses or builds FastTrack
//! traffic, and nothing is sent anywhere but to the addresses given.

use crate::sim::emit;
use clap::{Args, Subcommand};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Options of `ftwall bench-traffic`.
#[derive(Debug, Args)]
pub(crate) struct BenchTrafficArgs {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send small UDP datagrams as fast as possible for a while (a load generator).
    Blast {
        /// Destination.
        #[arg(long)]
        to: SocketAddr,
        /// Local address to send from.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Datagram size.
        #[arg(long, default_value_t = 64)]
        bytes: usize,
        /// How long to send.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Send one small UDP datagram to each of `count` distinct addresses (`prefix` + 1, + 2, ...):
    /// a flood of distinct flows, for memory checks.
    Flood {
        /// First address minus one (IPv6), e.g. `2001:db8:3::`.
        #[arg(long)]
        prefix: std::net::Ipv6Addr,
        /// Destination port.
        #[arg(long, default_value_t = 9)]
        port: u16,
        /// How many datagrams (= distinct destinations).
        #[arg(long)]
        count: u64,
    },
    /// Count UDP datagrams arriving on the given endpoints for a while (the load's sink).
    Sink {
        /// Endpoints to listen on (ip:port, comma separated).
        #[arg(long, value_delimiter = ',')]
        udp: Vec<SocketAddr>,
        /// How long to count, from the first datagram on each endpoint.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// Measure UDP round trips: `count` sequential request/echo pairs; prints percentiles in µs.
    Latency {
        /// Echo server (the responder echoes non-FastTrack UDP).
        #[arg(long)]
        to: SocketAddr,
        /// Round trips to time.
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
}

fn blast(to: SocketAddr, bind: Option<std::net::IpAddr>, bytes: usize, seconds: u64) -> std::io::Result<()> {
    let local =
        SocketAddr::new(bind.unwrap_or(if to.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }), 0);
    let socket = UdpSocket::bind(local)?;
    socket.connect(to)?;
    let data = vec![0x5Au8; bytes];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            if socket.send(&data).is_ok() {
                sent += 1;
            }
        }
    }
    emit(serde_json::json!({"command": "blast", "to": to.to_string(), "sent": sent, "seconds": seconds}));
    Ok(())
}

fn flood(prefix: std::net::Ipv6Addr, port: u16, count: u64) -> std::io::Result<()> {
    let socket = UdpSocket::bind(SocketAddr::new([0u16; 8].into(), 0))?;
    let base = u128::from(prefix);
    let data = [0x5Au8; 32];
    let started = Instant::now();
    let mut sent = 0u64;
    for i in 1..=u128::from(count) {
        let to = SocketAddr::new(std::net::Ipv6Addr::from(base.wrapping_add(i)).into(), port);
        // A full socket buffer (ENOBUFS) is retried: every destination is sent once.
        while let Err(e) = socket.send_to(&data, to) {
            match e.raw_os_error() {
                Some(libc::ENOBUFS | libc::EAGAIN) => std::thread::yield_now(),
                _ => return Err(e),
            }
        }
        sent += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    emit(
        serde_json::json!({"command": "flood", "sent": sent, "seconds": seconds, "pps": (sent as f64 / seconds) as u64}),
    );
    Ok(())
}

fn sink(endpoints: Vec<SocketAddr>, seconds: u64) -> std::io::Result<()> {
    let threads: Vec<_> = endpoints
        .into_iter()
        .map(|addr| {
            std::thread::spawn(move || -> std::io::Result<(SocketAddr, u64, f64)> {
                let socket = UdpSocket::bind(addr)?;
                let mut buf = [0u8; 2048];
                socket.recv(&mut buf)?;
                let start = Instant::now();
                let window = Duration::from_secs(seconds);
                socket.set_read_timeout(Some(Duration::from_millis(200)))?;
                let mut received = 1u64;
                while start.elapsed() < window {
                    if socket.recv(&mut buf).is_ok() {
                        received += 1;
                    }
                }
                Ok((addr, received, start.elapsed().as_secs_f64()))
            })
        })
        .collect();
    emit(serde_json::json!({"kind": "ready"}));
    let mut pps = 0.0;
    for t in threads {
        let (_, received, elapsed) =
            t.join().map_err(|_| std::io::Error::other("sink thread panicked"))??;
        pps += received as f64 / elapsed;
    }
    emit(serde_json::json!({"command": "sink", "pps": pps as u64}));
    Ok(())
}

fn latency(to: SocketAddr, count: usize) -> std::io::Result<()> {
    let local = SocketAddr::new(if to.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }, 0);
    let socket = UdpSocket::bind(local)?;
    socket.connect(to)?;
    socket.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut rtts = Vec::with_capacity(count);
    let mut buf = [0u8; 256];
    let mut lost = 0;
    for i in 0..count {
        let payload = (i as u64).to_be_bytes();
        let start = Instant::now();
        socket.send(&payload)?;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) if buf[..n] == payload => {
                    rtts.push(start.elapsed().as_secs_f64() * 1e6);
                    break;
                }
                Ok(_) => continue,
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    rtts.sort_by(f64::total_cmp);
    let pct = |p: f64| rtts.get(((rtts.len().max(1) - 1) as f64 * p) as usize).copied().unwrap_or(f64::NAN);
    emit(
        serde_json::json!({"command": "latency", "to": to.to_string(), "count": count, "lost": lost, "p50_us": pct(0.5), "p99_us": pct(0.99)}),
    );
    Ok(())
}

/// Runs one load generator; its results go to stdout as JSON lines.
pub(crate) fn run(args: BenchTrafficArgs) -> std::io::Result<()> {
    match args.command {
        Command::Latency { to, count } => latency(to, count),
        Command::Blast { to, bind, bytes, seconds } => blast(to, bind, bytes, seconds),
        Command::Flood { prefix, port, count } => flood(prefix, port, count),
        Command::Sink { udp, seconds } => sink(udp, seconds),
    }
}
