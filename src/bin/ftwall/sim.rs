//! `ftwall sim`: a FastTrack client simulator and peer/supernode responder, with real sockets.
//!
//! Used by `ftwall lab`, by the end-to-end tests and benches (as `ftwall sim`), and by operators to check a deployment: run `responder` on a host outside the
//! gateway and the client commands on a host inside; with ftwall in between the FastTrack
//! commands must fail and the ordinary ones succeed.
//!
//! ```sh
//! ftwall sim responder --udp 198.51.100.20:1214 --tcp-ports 80,1214,5555
//! ftwall sim ping-flood --from-port 3531 --peers 198.51.100.20:1214,198.51.100.21:1214
//! ftwall sim tcp --to 198.51.100.20:1214 --payload constant-opener
//! ftwall sim tcp --to 198.51.100.20:80 --payload plain-http
//! ```
//!
//! Every command prints one JSON object per line on stdout (the responder: one per thing it
//! received), so scripts and tests can check the outcome. Load generators (blast, sink, flood,
//! latency) are not FastTrack traffic: they live in `ftwall bench-traffic` (`bench_traffic.rs`).

use clap::{Args, Subcommand, ValueEnum};
use ftwall::signatures::{tcp::GIFT_OPENER, udp, Network};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Options of `ftwall sim`.
#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Answer pings with pongs, accept TCP, serve HTTP, and log what arrives.
    Responder {
        /// UDP endpoints to answer on (ip:port, comma separated).
        #[arg(long, value_delimiter = ',')]
        udp: Vec<SocketAddr>,
        /// TCP ports to accept on (all local addresses, comma separated).
        #[arg(long, value_delimiter = ',')]
        tcp_ports: Vec<u16>,
        /// Local address to bind the TCP ports on.
        #[arg(long, default_value = "0.0.0.0")]
        tcp_bind: std::net::IpAddr,
        /// One more header line in every HTTP response (e.g. `X-Kazaa-SupernodeIP: ip:port`,
        /// a web server that names a third party).
        #[arg(long)]
        http_header: Option<String>,
    },
    /// Send FastTrack pings from one UDP port to many peers and report the pongs received.
    PingFlood {
        /// The client's FastTrack listen port (pings go out from it, pongs come back to it).
        #[arg(long, default_value_t = 3531)]
        from_port: u16,
        /// Local address to send from.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Peers to ping (ip:port, comma separated).
        #[arg(long, value_delimiter = ',', required = true)]
        peers: Vec<SocketAddr>,
        /// How long to wait for pongs.
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
    /// Open a TCP connection, send a payload, and report what happened.
    Tcp {
        /// Peer to connect to.
        #[arg(long)]
        to: SocketAddr,
        /// Local address to connect from.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// What to send.
        #[arg(long, value_enum)]
        payload: Payload,
        /// Connect and I/O timeout.
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
    /// Send a UDP datagram and wait for its echo (the responder echoes non-FastTrack UDP).
    Udp {
        /// Peer to send to.
        #[arg(long)]
        to: SocketAddr,
        /// Local address to send from.
        #[arg(long)]
        bind: Option<std::net::IpAddr>,
        /// Datagram size.
        #[arg(long, default_value_t = 64)]
        bytes: usize,
        /// How many datagrams to send back to back (a burst); echoes are counted.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// At most this many datagrams unanswered at a time (0: the whole count as one burst).
        /// A burst of hundreds overflows the hosts' socket buffers (each small datagram costs
        /// about 1 KiB of socket memory), which measures the hosts rather than the gateway.
        #[arg(long, default_value_t = 0)]
        window: usize,
        /// How long to wait for the echo.
        #[arg(long, default_value_t = 1500)]
        timeout_ms: u64,
    },
}

/// TCP payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Payload {
    /// No data: just connect.
    None,
    /// The giFT / MLDonkey constant 12-byte opener.
    ConstantOpener,
    /// Real Kazaa's random 12-byte opener, then the 6-byte encrypted network name after the reply.
    RandomOpener,
    /// A FastTrack HTTP download request with X-Kazaa headers.
    KazaaHttp,
    /// A GIVE push.
    Give,
    /// An ordinary HTTP request.
    PlainHttp,
    /// 64 KiB of data, echoed back byte for byte.
    Stream,
}

/// Prints one JSON object on a line of stdout, flushed at once.
pub(crate) fn emit(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

const KAZAA_REQUEST: &str = "GET /.hash=0123456789abcdef0123456789abcdef01234567 HTTP/1.1\r\n\
Host: 198.51.100.20:1214\r\n\
UserAgent: KazaaClient Oct 28 2002 16:24:35\r\n\
X-Kazaa-Username: alice\r\n\
X-Kazaa-Network: KaZaA\r\n\
X-Kazaa-IP: 192.0.2.10:3531\r\n\
X-Kazaa-SupernodeIP: 203.0.113.50:3608\r\n\
Range: bytes=0-1023\r\n\
Connection: close\r\n\r\n";

/// What a responder connection received first, by shape.
fn classify(first: &[u8]) -> &'static str {
    if first.starts_with(&GIFT_OPENER) {
        "tcp_opener"
    } else if first.starts_with(b"GIVE ") {
        "give"
    } else if first.starts_with(b"GET ") && first.windows(8).any(|w| w.eq_ignore_ascii_case(b"x-kazaa-")) {
        "kazaa_http"
    } else if first.starts_with(b"GET ") {
        "http_request"
    } else if first.len() == 12 {
        "opener_like"
    } else {
        "tcp_data"
    }
}

fn serve_tcp(mut stream: TcpStream, http_header: Option<&str>) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let local = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    emit(serde_json::json!({"kind": "tcp_connect", "from": peer, "to": local}));
    let mut buf = vec![0u8; 65536];
    let mut first = true;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        let kind = if first { classify(data) } else { "tcp_data" };
        emit(serde_json::json!({"kind": kind, "from": peer, "to": local, "bytes": n}));
        let reply: Vec<u8> = match kind {
            "http_request" | "kazaa_http" => {
                let body = b"hello from the responder\n";
                let extra = http_header.map_or(String::new(), |h| format!("{h}\r\n"));
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                let _ = stream.write_all(&r);
                let _ = stream.shutdown(Shutdown::Write);
                break;
            }
            // A supernode answers the 12-byte opener with its 8-byte seed/enc-type and the
            // 6-byte encrypted network name.
            "opener_like" | "tcp_opener" if first => {
                vec![0x7D, 0x95, 0x50, 0xBA, 0x52, 0x11, 0xA0, 0xC5, 0xA2, 0xD0, 0x44, 0x72, 0x14, 0x2E]
            }
            _ => data.to_vec(),
        };
        first = false;
        if stream.write_all(&reply).is_err() {
            break;
        }
    }
}

fn responder(
    udp: Vec<SocketAddr>,
    tcp_ports: Vec<u16>,
    tcp_bind: std::net::IpAddr,
    http_header: Option<String>,
) -> std::io::Result<()> {
    let mut handles = Vec::new();
    for addr in udp {
        let socket = UdpSocket::bind(addr)?;
        handles.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let data = &buf[..n];
                match udp::ping(data) {
                    Some(network) => {
                        emit(serde_json::json!({"kind": "udp_ping", "from": from.to_string(), "to": addr.to_string(), "bytes": n}));
                        let _ = socket.send_to(&udp::build_pong(network), from);
                    }
                    None => {
                        emit(serde_json::json!({"kind": "udp_data", "from": from.to_string(), "to": addr.to_string(), "bytes": n}));
                        let _ = socket.send_to(data, from);
                    }
                }
            }
        }));
    }
    for port in tcp_ports {
        let listener = TcpListener::bind(SocketAddr::new(tcp_bind, port))?;
        let http_header = http_header.clone();
        handles.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let http_header = http_header.clone();
                std::thread::spawn(move || serve_tcp(stream, http_header.as_deref()));
            }
        }));
    }
    emit(serde_json::json!({"kind": "ready"}));
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

fn ping_flood(
    from_port: u16,
    bind: Option<std::net::IpAddr>,
    peers: Vec<SocketAddr>,
    timeout: Duration,
) -> std::io::Result<()> {
    let local = SocketAddr::new(bind.unwrap_or([0, 0, 0, 0].into()), from_port);
    let socket = UdpSocket::bind(local)?;
    let ping = udp::build_ping(Network::Kazaa, 0x29);
    for peer in &peers {
        socket.send_to(&ping, peer)?;
    }
    let mut pongs = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if udp::pong(&buf[..n]).is_some() => pongs.push(from.to_string()),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    emit(
        serde_json::json!({"command": "ping-flood", "sent": peers.len(), "pongs": pongs.len(), "pongs_from": pongs}),
    );
    Ok(())
}

fn connect(to: SocketAddr, bind: Option<std::net::IpAddr>, timeout: Duration) -> std::io::Result<TcpStream> {
    match bind {
        None => TcpStream::connect_timeout(&to, timeout),
        Some(ip) => {
            // std cannot bind before connecting; socket2 can.
            use socket2::{Domain, Protocol, Socket, Type};
            let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
            socket.bind(&SocketAddr::new(ip, 0).into())?;
            socket.connect_timeout(&to.into(), timeout)?;
            Ok(socket.into())
        }
    }
}

/// Reads until `want` bytes arrived, EOF, or the timeout; returns what arrived.
fn read_some(stream: &mut TcpStream, want: usize, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < want {
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            break;
        };
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

fn tcp(to: SocketAddr, bind: Option<std::net::IpAddr>, payload: Payload, timeout: Duration) {
    let mut stream = match connect(to, bind, timeout) {
        Ok(s) => s,
        Err(e) => {
            emit(
                serde_json::json!({"command": "tcp", "to": to.to_string(), "connected": false, "error": e.to_string()}),
            );
            return;
        }
    };
    let _ = stream.set_write_timeout(Some(timeout));
    let (sent, received, ok) = match payload {
        Payload::None => (0, 0, true),
        Payload::ConstantOpener | Payload::RandomOpener => {
            let opener: Vec<u8> = if payload == Payload::ConstantOpener {
                GIFT_OPENER.to_vec()
            } else {
                vec![0x35, 0x3B, 0xD2, 0xBE, 0x98, 0x62, 0xE6, 0x52, 0xE5, 0x3A, 0xBE, 0x3F]
            };
            let _ = stream.write_all(&opener);
            let reply = read_some(&mut stream, 14, timeout);
            let mut sent = opener.len();
            if reply.len() >= 8 {
                let _ = stream.write_all(&[0xC4, 0x04, 0xDF, 0x84, 0x98, 0x83]);
                sent += 6;
                // The supernode would now send its list; the responder echoes our name.
                let more = read_some(&mut stream, 6, timeout);
                (sent, reply.len() + more.len(), !more.is_empty())
            } else {
                (sent, reply.len(), false)
            }
        }
        Payload::KazaaHttp | Payload::PlainHttp => {
            let request = if payload == Payload::KazaaHttp {
                KAZAA_REQUEST.to_string()
            } else {
                format!("GET / HTTP/1.1\r\nHost: {to}\r\nUser-Agent: kazaa_sim\r\nConnection: close\r\n\r\n")
            };
            let _ = stream.write_all(request.as_bytes());
            let reply = read_some(&mut stream, usize::MAX, timeout);
            (request.len(), reply.len(), reply.starts_with(b"HTTP/1.1 200"))
        }
        Payload::Give => {
            let give = b"GIVE 4253679545\r\n";
            let _ = stream.write_all(give);
            let reply = read_some(&mut stream, give.len(), timeout);
            (give.len(), reply.len(), reply == give)
        }
        Payload::Stream => {
            let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
            let mut reader = stream.try_clone().expect("clone stream");
            let expect = data.len();
            let t = std::thread::spawn(move || read_some(&mut reader, expect, timeout * 4));
            let _ = stream.write_all(&data);
            let echoed = t.join().unwrap_or_default();
            (data.len(), echoed.len(), echoed == data)
        }
    };
    emit(
        serde_json::json!({"command": "tcp", "to": to.to_string(), "connected": true, "sent": sent, "received": received, "ok": ok}),
    );
}

fn udp_echo(
    to: SocketAddr,
    bind: Option<std::net::IpAddr>,
    bytes: usize,
    count: usize,
    window: usize,
    timeout: Duration,
) -> std::io::Result<()> {
    let local =
        SocketAddr::new(bind.unwrap_or(if to.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }), 0);
    let socket = UdpSocket::bind(local)?;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 13 + 5) as u8).collect();
    let window = if window == 0 { count } else { window };
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    let mut echoes = 0;
    let mut buf = vec![0u8; 65536];
    while echoes < count {
        while sent < count && sent - echoes < window {
            socket.send_to(&data, to)?;
            sent += 1;
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
            break;
        };
        socket.set_read_timeout(Some(left))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == to && buf[..n] == data[..] => echoes += 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    emit(
        serde_json::json!({"command": "udp", "to": to.to_string(), "sent": sent, "echoes": echoes, "echoed": echoes == count}),
    );
    Ok(())
}

/// Runs one simulator command; its results go to stdout as JSON lines.
pub(crate) fn run(args: SimArgs) -> std::io::Result<()> {
    match args.command {
        Command::Responder { udp, tcp_ports, tcp_bind, http_header } => {
            responder(udp, tcp_ports, tcp_bind, http_header)
        }
        Command::PingFlood { from_port, bind, peers, timeout_ms } => {
            ping_flood(from_port, bind, peers, Duration::from_millis(timeout_ms))
        }
        Command::Tcp { to, bind, payload, timeout_ms } => {
            tcp(to, bind, payload, Duration::from_millis(timeout_ms));
            Ok(())
        }
        Command::Udp { to, bind, bytes, count, window, timeout_ms } => {
            udp_echo(to, bind, bytes, count, window, Duration::from_millis(timeout_ms))
        }
    }
}
