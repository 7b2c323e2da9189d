//! UDP supernode discovery (plaintext): 0x27 ping, 0x28/0x29 pongs, 0x2A, 0xC0-0xC3.
//!
//! [`classify`] is the one entry point the engine calls for a datagram: it dispatches on the
//! first byte to the tell functions below and returns a [`UdpTell`]. A new UDP tell is one
//! function here, one [`UdpTell`] arm (with its [`Reason`]) and one `Reason` in the table.
//!
//! Every tell but one is decided by the datagram alone (its exact shape, or its shape and the
//! 0x29 id seen on the same flow). The exception is the `C0 28` / `C3 28` session datagram: two
//! fixed bytes in front of opaque data, which 1 random payload in 32,768 starts with (real
//! Skype datagrams start with `C0` too). It is a tell only when the caller says something
//! independent of the datagram corroborates it ([`classify`]'s `session_corroborated`, asked
//! only for that shape, so the caller's lookups cost nothing on other datagrams).

use super::Network;
use crate::verdict::Reason;
use std::net::{IpAddr, Ipv4Addr};

/// A UDP FastTrack tell found by [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UdpTell {
    /// A 0x27 discovery ping ([`ping`]) naming its network.
    Ping(Network),
    /// A 0x28 pong ([`pong`]).
    Pong(Network),
    /// A 0x29 pong ([`nat_pong`]); the flow should remember its id for a following 0x2A.
    NatPong(NatPong),
    /// A 0x2A ([`pong_ack`]) echoing the id of the 0x29 pong last seen on the flow.
    PongAck(u32),
    /// A 0xC1/0xC2 datagram embedding its own destination address ([`address_echo`]).
    AddressEcho,
    /// A `C0 28` / `C3 28` datagram ([`session_datagram`]) that the caller corroborated.
    Session,
}

impl UdpTell {
    /// The reason a datagram with this tell is dropped for.
    pub const fn reason(self) -> Reason {
        match self {
            Self::Ping(_) => Reason::UdpPing,
            Self::Pong(_) | Self::NatPong(_) => Reason::UdpPong,
            Self::PongAck(_) => Reason::UdpPongAck,
            Self::AddressEcho => Reason::UdpAddressEcho,
            Self::Session => Reason::UdpSession,
        }
    }
}

/// The tell in a whole UDP payload sent to `dst`, if any. `nat_pong_id`: the id of the last 0x29
/// pong seen on the same flow (a 0x2A is only a tell when it echoes that id).
/// `session_corroborated`: called only for a [`session_datagram`], and at most once; whether
/// independent evidence says the datagram's flow is FastTrack (a session datagram is never a
/// tell on its own). Exact-shape tells need the whole datagram: pass an empty payload when the
/// capture truncated it.
pub fn classify(
    payload: &[u8],
    dst: IpAddr,
    nat_pong_id: Option<u32>,
    session_corroborated: impl FnOnce() -> bool,
) -> Option<UdpTell> {
    match payload.first()? {
        0x27 => ping(payload).map(UdpTell::Ping),
        0x28 => pong(payload).map(UdpTell::Pong),
        0x29 => nat_pong(payload).map(UdpTell::NatPong),
        0x2A => pong_ack(payload).filter(|&id| nat_pong_id == Some(id)).map(UdpTell::PongAck),
        0xC1 | 0xC2 => address_echo(payload, dst).then_some(UdpTell::AddressEcho),
        0xC0 | 0xC3 => (session_datagram(payload) && session_corroborated()).then_some(UdpTell::Session),
        _ => None,
    }
}

/// A 0x29 pong ("node up, no free slot").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPong {
    /// The id a following 0x2A echoes.
    pub id: u32,
    /// With flag 1 (21-byte form): the address and port the supernode saw.
    pub observed: Option<(Ipv4Addr, u16)>,
}

/// The `min_enc_type` low bytes FastTrack uses (0x29 Kazaa/giFT, 0xA9 MLDonkey and supernodes).
fn is_min_enc(b: u8) -> bool {
    b == 0x29 || b == 0xA9
}

/// The known network whose NUL-terminated name is exactly `tail`.
fn trailing_name(tail: &[u8]) -> Option<Network> {
    let (&nul, name) = tail.split_last()?;
    if nul != 0 {
        return None;
    }
    Network::from_wire(name)
}

/// 0x27 ping: `27 00 00 00 {29|A9} 80 <name>\0`, length exactly 7 + |name|.
pub fn ping(payload: &[u8]) -> Option<Network> {
    match payload {
        [0x27, 0, 0, 0, enc, 0x80, rest @ ..] if is_min_enc(*enc) => trailing_name(rest),
        _ => None,
    }
}

/// 0x28 pong: length 12 + |name|, bytes 1-3 zero, byte 4 in {29, A9}, byte 5 zero, known name + NUL at the end.
pub fn pong(payload: &[u8]) -> Option<Network> {
    match payload {
        [0x28, 0, 0, 0, enc, 0, _, _, _, _, _, rest @ ..] if is_min_enc(*enc) => trailing_name(rest),
        _ => None,
    }
}

/// 0x29 pong: length 13 (flag 0) or 21 (flag 1), bytes 1-3 zero, byte 4 in {29, A9}, flag byte 6
/// consistent with the length, bytes 7-8 zero.
pub fn nat_pong(payload: &[u8]) -> Option<NatPong> {
    let [0x29, 0, 0, 0, enc, _, flag, 0, 0, a, b, c, d, rest @ ..] = payload else {
        return None;
    };
    if !is_min_enc(*enc) {
        return None;
    }
    let id = u32::from_be_bytes([*a, *b, *c, *d]);
    match (flag, rest) {
        (0, []) => Some(NatPong { id, observed: None }),
        (1, [i0, i1, i2, i3, p0, p1, _, _]) => Some(NatPong {
            id,
            observed: Some((Ipv4Addr::new(*i0, *i1, *i2, *i3), u16::from_be_bytes([*p0, *p1]))),
        }),
        _ => None,
    }
}

/// 0x2A: exactly 5 bytes; returns the echoed id. Only a tell when it equals the id of a 0x29
/// seen on the same flow (the engine checks that).
pub fn pong_ack(payload: &[u8]) -> Option<u32> {
    match payload {
        [0x2A, a, b, c, d] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// 0xC1 (7 bytes) or 0xC2 (11 bytes) whose bytes 3..7 equal the IPv4 destination `dst`.
pub fn address_echo(payload: &[u8], dst: IpAddr) -> bool {
    let IpAddr::V4(dst) = dst else { return false };
    let embedded = match payload {
        [0xC1, _, _, a, b, c, d] => [*a, *b, *c, *d],
        [0xC2, _, _, a, b, c, d, _, _, _, _] => [*a, *b, *c, *d],
        _ => return false,
    };
    embedded == dst.octets()
}

/// `C0 28 ...` or `C3 28 ...` (any length from 2 bytes: the rest is opaque). A 16-bit prefix, so
/// only a tell with corroboration (see [`classify`]).
pub fn session_datagram(payload: &[u8]) -> bool {
    matches!(payload, [0xC0 | 0xC3, 0x28, ..])
}

/// Builds a 0x27 ping for `network` with the given min_enc byte (0x29 Kazaa/giFT, 0xA9 MLDonkey).
pub fn build_ping(network: Network, min_enc: u8) -> Vec<u8> {
    let mut p = vec![0x27, 0, 0, 0, min_enc, 0x80];
    p.extend_from_slice(network.wire_name());
    p.push(0);
    p
}

/// Builds a 0x28 pong for `network`: min_enc 0xA9, a small time increment and a light load, as
/// a real supernode with free slots answers.
pub fn build_pong(network: Network) -> Vec<u8> {
    let mut p = vec![0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA];
    p.extend_from_slice(network.wire_name());
    p.push(0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING_KAZAA: [u8; 12] = [0x27, 0, 0, 0, 0x29, 0x80, 0x4B, 0x61, 0x5A, 0x61, 0x41, 0];
    const PING_MLDONKEY: [u8; 12] = [0x27, 0, 0, 0, 0xA9, 0x80, 0x4B, 0x61, 0x5A, 0x61, 0x41, 0];
    const PONG: [u8; 17] =
        [0x28, 0, 0, 0, 0xA9, 0, 0x0F, 0x59, 0xD9, 0x4E, 0xFA, 0x4B, 0x61, 0x5A, 0x61, 0x41, 0];
    const PONG_29: [u8; 17] =
        [0x28, 0, 0, 0, 0x29, 0, 0x35, 0x1B, 0x8D, 0, 0xF0, 0x4B, 0x61, 0x5A, 0x61, 0x41, 0];
    const PONG_IMESH: [u8; 21] = [
        0x28, 0, 0, 0, 0x29, 0, 0x2D, 0xD5, 0x19, 0x02, 0xD8, 0x66, 0x69, 0x6C, 0x65, 0x73, 0x68, 0x61, 0x72,
        0x65, 0,
    ];
    const NAT_PONG_FLAG1: [u8; 21] = [
        0x29, 0, 0, 0, 0xA9, 0x02, 0x01, 0, 0, 0x37, 0x53, 0x75, 0xA6, 0xCB, 0x00, 0x71, 0x09, 0xB0, 0x8F, 0,
        0,
    ];
    const NAT_PONG_FLAG0: [u8; 13] = [0x29, 0, 0, 0, 0xA9, 0x01, 0, 0, 0, 0xDC, 0x93, 0xF0, 0x6B];
    /// The first bytes of captured session datagrams (fasttrack-wire.md section 4).
    const C0_SESSION: [u8; 8] = [0xC0, 0x28, 0x7D, 0x4E, 0xFC, 0x99, 0x88, 0x9D];
    const C3_SESSION: [u8; 12] = [0xC3, 0x28, 0x8B, 0x79, 0x6D, 0x50, 0x00, 0x0D, 0xC0, 0x00, 0x02, 0x0A];

    /// A corroboration that must not be asked for: only session datagrams ask.
    fn never() -> bool {
        panic!("corroboration asked for a datagram that is not C0 28 / C3 28")
    }

    fn padded(prefix: &[u8], len: usize) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.resize(len, 0x5A);
        v
    }

    #[test]
    fn pings() {
        assert_eq!(ping(&PING_KAZAA), Some(Network::Kazaa));
        assert_eq!(ping(&PING_MLDONKEY), Some(Network::Kazaa));
        for n in Network::ALL {
            assert_eq!(ping(&build_ping(n, 0x29)), Some(n));
            assert_eq!(ping(&build_ping(n, 0xA9)), Some(n));
            assert_eq!(build_ping(n, 0x29).len(), 7 + n.wire_name().len());
        }
        assert_eq!(build_ping(Network::Kazaa, 0x29), PING_KAZAA);
    }

    #[test]
    fn ping_decoys() {
        // Skype datagrams starting with 0x27, GTP starting 27 00 00 00 (a little-endian 39).
        assert_eq!(ping(&padded(&[0x27, 0x4C, 0x02, 0xF6], 18)), None);
        assert_eq!(ping(&padded(&[0x27, 0, 0, 0, 0x02, 0x59, 0, 0, 0xC8, 0], 39)), None);
        let mut long = PING_KAZAA.to_vec();
        long.push(0);
        assert_eq!(ping(&long), None, "Ethernet padding must not pass");
        assert_eq!(ping(&PING_KAZAA[..11]), None);
        let mut wrong_enc = PING_KAZAA;
        wrong_enc[4] = 0x2A;
        assert_eq!(ping(&wrong_enc), None);
        let mut wrong_flag = PING_KAZAA;
        wrong_flag[5] = 0x00;
        assert_eq!(ping(&wrong_flag), None);
        let mut other_name = PING_KAZAA;
        other_name[6] = b'k';
        assert_eq!(ping(&other_name), None, "names are exact");
        let mut no_nul = PING_KAZAA;
        no_nul[11] = b'!';
        assert_eq!(ping(&no_nul), None);
        assert_eq!(ping(&[]), None);
        assert_eq!(ping(&PONG), None);
    }

    #[test]
    fn pongs() {
        assert_eq!(pong(&PONG), Some(Network::Kazaa));
        assert_eq!(pong(&PONG_29), Some(Network::Kazaa));
        assert_eq!(pong(&PONG_IMESH), Some(Network::FileShare));
        for n in Network::ALL {
            assert_eq!(pong(&build_pong(n)), Some(n));
            assert_eq!(build_pong(n).len(), 12 + n.wire_name().len());
        }
        assert_eq!(build_pong(Network::Kazaa), PONG);
        let mut bad = PONG;
        bad[5] = 1;
        assert_eq!(pong(&bad), None);
        assert_eq!(pong(&PONG[..16]), None);
        assert_eq!(pong(&padded(&[0x28, 0, 0, 0, 0xA9, 0], 17)), None);
        assert_eq!(pong(&PING_KAZAA), None);
    }

    #[test]
    fn nat_pongs() {
        let p = nat_pong(&NAT_PONG_FLAG1).unwrap();
        assert_eq!(p.id, 0x3753_75A6);
        assert_eq!(p.observed, Some((Ipv4Addr::new(203, 0, 113, 9), 45199)));
        assert_eq!(nat_pong(&NAT_PONG_FLAG0), Some(NatPong { id: 0xDC93_F06B, observed: None }));
        let mut inconsistent = NAT_PONG_FLAG0;
        inconsistent[6] = 1;
        assert_eq!(nat_pong(&inconsistent), None, "flag 1 needs 21 bytes");
        let mut nonzero = NAT_PONG_FLAG1;
        nonzero[7] = 1;
        assert_eq!(nat_pong(&nonzero), None);
        assert_eq!(nat_pong(&NAT_PONG_FLAG1[..20]), None);
        assert_eq!(nat_pong(&padded(&[0x29, 0, 0, 0], 13)), None);
    }

    #[test]
    fn pong_acks() {
        assert_eq!(pong_ack(&[0x2A, 0xDB, 0xF0, 0xCA, 0xC9]), Some(0xDBF0_CAC9));
        assert_eq!(pong_ack(&[0x2A, 0xDB, 0xF0, 0xCA]), None);
        assert_eq!(pong_ack(&[0x2A, 0xDB, 0xF0, 0xCA, 0xC9, 0]), None);
        assert_eq!(pong_ack(&[0x2B, 0xDB, 0xF0, 0xCA, 0xC9]), None);
    }

    #[test]
    fn address_echoes() {
        let to = |s: &str| -> IpAddr { s.parse().unwrap() };
        let c1 = [0xC1, 0x88, 0x9D, 0xC6, 0x33, 0x64, 0x17];
        let c2 = [0xC2, 0x00, 0x0D, 0xC6, 0x33, 0x64, 0x18, 0x8B, 0x79, 0x6D, 0x50];
        assert!(address_echo(&c1, to("198.51.100.23")));
        assert!(address_echo(&c2, to("198.51.100.24")));
        assert!(!address_echo(&c1, to("198.51.100.24")));
        assert!(!address_echo(&c2, to("198.51.100.23")));
        assert!(!address_echo(&c1[..6], to("198.51.100.23")));
        assert!(!address_echo(&c1, to("2001:db8::1")));
        let mut wrong_type = c1;
        wrong_type[0] = 0xC2;
        assert!(!address_echo(&wrong_type, to("198.51.100.23")), "0xC2 is 11 bytes");
    }

    #[test]
    fn classify_dispatches_every_arm() {
        let peer: IpAddr = "198.51.100.23".parse().unwrap();
        assert_eq!(classify(&PING_KAZAA, peer, None, never), Some(UdpTell::Ping(Network::Kazaa)));
        assert_eq!(classify(&PING_MLDONKEY, peer, None, never), Some(UdpTell::Ping(Network::Kazaa)));
        assert_eq!(classify(&PONG_IMESH, peer, None, never), Some(UdpTell::Pong(Network::FileShare)));
        assert_eq!(
            classify(&NAT_PONG_FLAG0, peer, None, never),
            Some(UdpTell::NatPong(NatPong { id: 0xDC93_F06B, observed: None }))
        );
        let ack = [0x2A, 0xDC, 0x93, 0xF0, 0x6B];
        assert_eq!(classify(&ack, peer, Some(0xDC93_F06B), never), Some(UdpTell::PongAck(0xDC93_F06B)));
        let c1 = [0xC1, 0x88, 0x9D, 0xC6, 0x33, 0x64, 0x17];
        assert_eq!(classify(&c1, peer, None, never), Some(UdpTell::AddressEcho));
        assert_eq!(classify(&C0_SESSION, peer, None, || true), Some(UdpTell::Session));
        assert_eq!(classify(&C3_SESSION, peer, None, || true), Some(UdpTell::Session));
        let reasons: Vec<Reason> = [
            UdpTell::Ping(Network::Kazaa),
            UdpTell::Pong(Network::Kazaa),
            UdpTell::NatPong(NatPong { id: 1, observed: None }),
            UdpTell::PongAck(1),
            UdpTell::AddressEcho,
            UdpTell::Session,
        ]
        .iter()
        .map(|t| t.reason())
        .collect();
        assert_eq!(
            reasons,
            [
                Reason::UdpPing,
                Reason::UdpPong,
                Reason::UdpPong,
                Reason::UdpPongAck,
                Reason::UdpAddressEcho,
                Reason::UdpSession
            ]
        );
        assert!(reasons.iter().all(|r| r.is_tell()));
    }

    #[test]
    fn classify_passes_decoys() {
        let peer: IpAddr = "198.51.100.23".parse().unwrap();
        let ack = [0x2A, 0xDC, 0x93, 0xF0, 0x6B];
        assert_eq!(classify(&ack, peer, None, never), None, "0x2A without a 0x29 on the flow");
        assert_eq!(classify(&ack, peer, Some(0xDC93_F06C), never), None, "0x2A echoing another id");
        let c1 = [0xC1, 0x88, 0x9D, 0xC6, 0x33, 0x64, 0x17];
        assert_eq!(classify(&c1, "198.51.100.24".parse().unwrap(), None, never), None, "another destination");
        // Skype 0x27 and 0xC0 datagrams, a GTP datagram starting 27 00 00 00, a truncated ping.
        assert_eq!(classify(&padded(&[0x27, 0x4C, 0x02, 0xF6], 18), peer, None, never), None);
        assert_eq!(
            classify(&padded(&[0x27, 0, 0, 0, 0x02, 0x59, 0, 0, 0xC8, 0], 39), peer, None, never),
            None
        );
        assert_eq!(classify(&padded(&[0xC0, 0x9A, 0x02, 0x51], 18), peer, None, never), None);
        assert_eq!(classify(&PING_KAZAA[..11], peer, None, never), None);
        // Session datagrams are no tell by themselves (the caller must corroborate them).
        assert_eq!(classify(&C0_SESSION, peer, None, || false), None);
        assert_eq!(classify(&[], peer, None, never), None);
        assert_eq!(classify(b"\x12\x34\x01\x00\x00\x01www", peer, None, never), None, "DNS");
    }

    #[test]
    fn session_datagrams() {
        assert!(session_datagram(&C0_SESSION));
        assert!(session_datagram(&C3_SESSION));
        assert!(session_datagram(&padded(&C0_SESSION, 413)));
        assert!(session_datagram(&padded(&C3_SESSION, 1317)));
        assert!(!session_datagram(&padded(&[0xC0, 0x9A, 0x02, 0x51], 18)), "Skype");
        assert!(!session_datagram(&[0xC0]));
        assert!(!session_datagram(&[]));
        // The rest of the family with 0x28 second: C1/C2 are the address echoes, not sessions.
        assert!(!session_datagram(&[0xC1, 0x28, 0x9D, 0xC6, 0x33, 0x64, 0x17]));
        assert!(!session_datagram(&[0xC2, 0x28, 0x0D, 0xC6, 0x33, 0x64, 0x18, 0x8B, 0x79, 0x6D, 0x50]));
        assert!(!session_datagram(&padded(&[0x28, 0xC0], 413)), "bytes swapped");
        assert!(!session_datagram(&padded(&[0xC0, 0x29], 413)), "byte 1 is always 0x28");
    }

    #[test]
    fn session_datagrams_need_corroboration_and_ask_for_it_once() {
        let peer: IpAddr = "198.51.100.23".parse().unwrap();
        let mut asked = 0;
        for payload in [padded(&C0_SESSION, 413), padded(&C3_SESSION, 896)] {
            assert_eq!(classify(&payload, peer, None, || false), None, "never on its own");
            assert_eq!(
                classify(&payload, peer, None, || {
                    asked += 1;
                    true
                }),
                Some(UdpTell::Session)
            );
        }
        assert_eq!(asked, 2);
        // Decoys that must not even ask: Skype's C0, the other first bytes of the family with
        // 0x28 second, a lone C0, and C0 28 as the tail of something else.
        let decoys: [&[u8]; 6] = [
            &padded(&[0xC0, 0x9A, 0x02, 0x51], 18),
            &padded(&[0xC0, 0x27], 413),
            &[0xC1, 0x28, 0x9D, 0xC6, 0x33, 0x64, 0x18],
            &padded(&[0xC4, 0x28], 413),
            &[0xC0],
            &padded(&[0x00, 0xC0, 0x28], 413),
        ];
        for d in decoys {
            assert_eq!(classify(d, peer, None, never), None, "{d:02X?}");
        }
    }
}
