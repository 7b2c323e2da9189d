//! UDP supernode discovery (plaintext): 0x27 ping, 0x28/0x29 pongs, 0x2A, 0xC0-0xC3.

use super::Network;
use std::net::{IpAddr, Ipv4Addr};

/// A 0x29 pong ("node up, no free slot").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPong {
    /// The id a following 0x2A echoes.
    pub id: u32,
    /// With flag 1 (21-byte form): the address and port the supernode saw.
    pub observed: Option<(Ipv4Addr, u16)>,
}

/// 0x27 ping: `27 00 00 00 {29|A9} 80 <name>\0`, length exactly 7 + |name|.
pub fn ping(payload: &[u8]) -> Option<Network> {
    let _ = payload;
    unimplemented!()
}

/// 0x28 pong: length 12 + |name|, bytes 1-3 zero, byte 4 in {29, A9}, byte 5 zero, known name + NUL at the end.
pub fn pong(payload: &[u8]) -> Option<Network> {
    let _ = payload;
    unimplemented!()
}

/// 0x29 pong: length 13 (flag 0) or 21 (flag 1), bytes 1-3 zero, byte 4 in {29, A9}, flag byte 6
/// consistent with the length, bytes 7-8 zero.
pub fn nat_pong(payload: &[u8]) -> Option<NatPong> {
    let _ = payload;
    unimplemented!()
}

/// 0x2A: exactly 5 bytes; returns the echoed id. Only a tell when it equals the id of a 0x29
/// seen on the same flow (the engine checks that).
pub fn pong_ack(payload: &[u8]) -> Option<u32> {
    let _ = payload;
    unimplemented!()
}

/// 0xC1 (7 bytes) or 0xC2 (11 bytes) whose bytes 3..7 equal the IPv4 destination `dst`.
pub fn address_echo(payload: &[u8], dst: IpAddr) -> bool {
    let _ = (payload, dst);
    unimplemented!()
}

/// `C0 28 ...` or `C3 28 ...`: only meaningful on a flow already classified (the engine checks that).
pub fn session_datagram(payload: &[u8]) -> bool {
    let _ = payload;
    unimplemented!()
}

/// Builds a 0x27 ping for `network` with the given min_enc byte (0x29 Kazaa/giFT, 0xA9 MLDonkey).
pub fn build_ping(network: Network, min_enc: u8) -> Vec<u8> {
    let _ = (network, min_enc);
    unimplemented!()
}

/// Builds a 0x28 pong for `network` (min_enc 0xA9, plausible load bytes).
pub fn build_pong(network: Network) -> Vec<u8> {
    let _ = network;
    unimplemented!()
}
