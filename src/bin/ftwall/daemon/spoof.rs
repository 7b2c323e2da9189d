//! Forged pongs and half-expiry probes (pings forged from the peer), through raw sockets.
//!
//! A forged pong goes from the peer's address and port to the client, so the client believes
//! its UDP discovery works and stays in the easy-to-see UDP mode. Raw sockets need CAP_NET_RAW;
//! without it spoofing is disabled with one warning and everything else keeps working.
//!
//! Every send is non-blocking (`MSG_DONTWAIT`): when the socket buffer is full (datagrams to a
//! LAN address whose neighbour never answers wait in the ARP/NDP queue), `send` fails with
//! `WouldBlock` at once and the caller counts it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Internet checksum over `chunks`, as if concatenated (every chunk but the last has even length).
pub(crate) fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from(pair[0]) << 8
            };
            sum += u32::from(word);
        }
    }
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_header(from: u16, to: u16, payload: &[u8]) -> [u8; 8] {
    let [a, b] = from.to_be_bytes();
    let [c, d] = to.to_be_bytes();
    let [e, f] = ((8 + payload.len()) as u16).to_be_bytes();
    [a, b, c, d, e, f, 0, 0]
}

fn set_udp_checksum(udp: &mut [u8; 8], pseudo: &[u8], payload: &[u8]) {
    let c = checksum(&[pseudo, &udp[..], payload]);
    let c = if c == 0 { 0xFFFF } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 + UDP datagram from `from` to `to` carrying `payload`.
pub(crate) fn ipv4_udp(from: (Ipv4Addr, u16), to: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&from.0.octets());
    ip[16..20].copy_from_slice(&to.0.octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = udp_header(from.1, to.1, payload);
    let udp_len = (8 + payload.len()) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&from.0.octets());
    pseudo[4..8].copy_from_slice(&to.0.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    set_udp_checksum(&mut udp, &pseudo, payload);
    [&ip[..], &udp[..], payload].concat()
}

/// An IPv6 + UDP datagram from `from` to `to` carrying `payload`.
pub(crate) fn ipv6_udp(from: (Ipv6Addr, u16), to: (Ipv6Addr, u16), payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&len.to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&from.0.octets());
    ip[24..40].copy_from_slice(&to.0.octets());
    let mut udp = udp_header(from.1, to.1, payload);
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&from.0.octets());
    pseudo[16..32].copy_from_slice(&to.0.octets());
    pseudo[32..36].copy_from_slice(&u32::from(len).to_be_bytes());
    pseudo[39] = 17;
    set_udp_checksum(&mut udp, &pseudo, payload);
    [&ip[..], &udp[..], payload].concat()
}

fn raw_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned by the OwnedFd.
    let fd = unsafe { libc::socket(domain, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn send_raw(fd: &OwnedFd, packet: &[u8], to: IpAddr) -> io::Result<()> {
    let result = match to {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_in is plain data; zeroed is a valid initial value.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
            // SAFETY: buffer and address are valid for the lengths given.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    libc::MSG_DONTWAIT,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(v6) => {
            // SAFETY: sockaddr_in6 is plain data; zeroed is a valid initial value.
            let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sa.sin6_addr.s6_addr = v6.octets();
            // SAFETY: buffer and address are valid for the lengths given.
            unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    packet.as_ptr().cast(),
                    packet.len(),
                    libc::MSG_DONTWAIT,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends forged pongs through raw sockets.
pub(crate) struct Spoofer {
    v4: Option<OwnedFd>,
    v6: Option<OwnedFd>,
}

impl Spoofer {
    /// Opens the raw sockets; returns the spoofer and the errors of the families that failed.
    pub(crate) fn open() -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let v4 = raw_socket(libc::AF_INET).map_err(|e| problems.push(format!("IPv4 raw socket: {e}"))).ok();
        let v6 = raw_socket(libc::AF_INET6).map_err(|e| problems.push(format!("IPv6 raw socket: {e}"))).ok();
        (Self { v4, v6 }, problems)
    }

    /// Sends `payload` as UDP from `from` to `to`.
    pub(crate) fn send(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> io::Result<()> {
        match (from, to) {
            (SocketAddr::V4(f), SocketAddr::V4(t)) => {
                let fd = self.v4.as_ref().ok_or_else(|| io::Error::other("no IPv4 raw socket"))?;
                send_raw(fd, &ipv4_udp((*f.ip(), f.port()), (*t.ip(), t.port()), payload), to.ip())
            }
            (SocketAddr::V6(f), SocketAddr::V6(t)) => {
                let fd = self.v6.as_ref().ok_or_else(|| io::Error::other("no IPv6 raw socket"))?;
                send_raw(fd, &ipv6_udp((*f.ip(), f.port()), (*t.ip(), t.port()), payload), to.ip())
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "mixed address families")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_datagram_checksums_verify() {
        let payload = [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, b'K', b'a', b'Z', b'a', b'A', 0];
        let p = ipv4_udp(
            ("198.51.100.20".parse().unwrap(), 1214),
            ("192.0.2.10".parse().unwrap(), 3531),
            &payload,
        );
        assert_eq!(p.len(), 20 + 8 + 17);
        assert_eq!(checksum(&[&p[..20]]), 0, "IPv4 header checksum verifies");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, 17, 0, 25]);
        assert_eq!(checksum(&[&pseudo, &p[20..]]), 0, "UDP checksum verifies");
        let parsed = ftwall::wire::parse(&p).unwrap();
        let ftwall::wire::Transport::Udp(d) = parsed.transport else { panic!("udp") };
        assert_eq!((d.src_port, d.dst_port, d.payload), (1214, 3531, &payload[..]));
    }

    #[test]
    fn ipv6_datagram_checksum_verifies() {
        let p = ipv6_udp(
            ("2001:db8:2::20".parse().unwrap(), 1214),
            ("2001:db8:1::10".parse().unwrap(), 3531),
            b"abc",
        );
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&[0, 0, 0, 11, 0, 0, 0, 17]);
        assert_eq!(checksum(&[&pseudo, &p[40..]]), 0);
        assert!(ftwall::wire::parse(&p).is_ok());
    }

    #[test]
    fn known_checksum_value() {
        // RFC 1071's example words.
        assert_eq!(checksum(&[&[0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]]), !0xDDF2);
    }
}
