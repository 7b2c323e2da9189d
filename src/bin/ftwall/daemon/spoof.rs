//! Forged pongs and half-expiry probes (pings forged from the peer), through raw sockets.
//!
//! A forged pong goes from the peer's address and port to the client, so the client believes
//! its UDP discovery works and stays in the easy-to-see UDP mode. Raw sockets need CAP_NET_RAW;
//! without it spoofing is disabled with one warning and everything else keeps working.
//!
//! Every send is non-blocking (`MSG_DONTWAIT`): when the socket buffer is full (datagrams to a
//! LAN address whose neighbour never answers wait in the ARP/NDP queue), `send` fails with
//! `WouldBlock` at once and the caller counts it.

use ftwall::wire::{self, IpRepr, TransportRepr, UdpRepr};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// An IPv4 or IPv6 + UDP datagram from `from` to `to` carrying `payload` (DF set, TTL / hop
/// limit 64, checksums filled in); `None` if the address families differ.
pub(crate) fn udp_datagram(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Option<Vec<u8>> {
    let ip = IpRepr::new(from.ip(), to.ip())?;
    let udp = UdpRepr { src_port: from.port(), dst_port: to.port() };
    Some(wire::emit(&ip, &TransportRepr::Udp(udp), payload))
}

/// A raw socket that sends whole IP packets (`IPPROTO_RAW` implies `IP_HDRINCL`), close-on-exec.
fn raw_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))
}

/// Sends forged pongs through raw sockets.
pub(crate) struct Spoofer {
    v4: Option<Socket>,
    v6: Option<Socket>,
}

impl Spoofer {
    /// Opens the raw sockets; returns the spoofer and the errors of the families that failed.
    pub(crate) fn open() -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let v4 = raw_socket(Domain::IPV4).map_err(|e| problems.push(format!("IPv4 raw socket: {e}"))).ok();
        let v6 = raw_socket(Domain::IPV6).map_err(|e| problems.push(format!("IPv6 raw socket: {e}"))).ok();
        (Self { v4, v6 }, problems)
    }

    /// Sends `payload` as UDP from `from` to `to`, without blocking.
    pub(crate) fn send(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        let (socket, family) = match to {
            SocketAddr::V4(_) => (self.v4.as_ref(), "IPv4"),
            SocketAddr::V6(_) => (self.v6.as_ref(), "IPv6"),
        };
        let packet = udp_datagram(from, to, payload)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mixed address families"))?;
        let socket = socket.ok_or_else(|| io::Error::other(format!("no {family} raw socket")))?;
        // The kernel takes the destination from the IP header; the port must be 0 on a raw socket.
        let dst = SockAddr::from(SocketAddr::new(to.ip(), 0));
        socket.send_to_with_flags(&packet, &dst, libc::MSG_DONTWAIT).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::wire::checksum::checksum;

    #[test]
    fn ipv4_datagram_checksums_verify() {
        let payload = [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];
        let p =
            udp_datagram("198.51.100.20:1214".parse().unwrap(), "192.0.2.10:3531".parse().unwrap(), &payload)
                .unwrap();
        assert_eq!(p.len(), 20 + 8 + 17);
        assert_eq!(p[6], 0x40, "don't fragment");
        assert_eq!(checksum(&[&p[..20]]), 0, "IPv4 header checksum verifies");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 25]);
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0, "UDP checksum verifies");
        let parsed = wire::parse(&p).unwrap();
        let wire::Transport::Udp(d) = parsed.transport else { panic!("udp") };
        assert_eq!((d.src_port, d.dst_port, d.payload), (1214, 3531, &payload[..]));
    }

    #[test]
    fn ipv6_datagram_checksum_verifies() {
        let p = udp_datagram(
            "[2001:db8:2::20]:1214".parse().unwrap(),
            "[2001:db8:1::10]:3531".parse().unwrap(),
            b"abc",
        )
        .unwrap();
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 11, 0, 0, 0, 17]);
        assert_eq!(checksum(&[&pseudo, &p[40..]]), 0);
        assert!(wire::parse(&p).is_ok());
    }

    #[test]
    fn mixed_families_are_refused() {
        let (from, to) = ("198.51.100.20:1214".parse().unwrap(), "[2001:db8:1::10]:3531".parse().unwrap());
        assert_eq!(udp_datagram(from, to, b"x"), None);
        let spoofer = Spoofer { v4: None, v6: None };
        assert_eq!(spoofer.send(from, to, b"x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let err = spoofer.send(from, "192.0.2.10:3531".parse().unwrap(), b"x").unwrap_err();
        assert_eq!(err.to_string(), "no IPv4 raw socket");
    }
}
