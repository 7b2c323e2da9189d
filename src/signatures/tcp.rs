//! The supernode TCP control session opener.

use super::Network;

/// The constant 12-byte opener of giFT-FastTrack and MLDonkey.
pub const GIFT_OPENER: [u8; 12] = [0xFA, 0x00, 0xB6, 0x2B, 0xFA, 0xCB, 0x12, 0x38, 0x32, 0x09, 0xD2, 0x32];

/// True if the client's first payload starts with [`GIFT_OPENER`].
pub fn constant_opener(client_first_payload: &[u8]) -> bool {
    client_first_payload.starts_with(&GIFT_OPENER)
}

/// The handshake shape: client's first payload exactly 12 bytes, server's first payload 8 or
/// 8 + |name| + 1 bytes, client's next payload |name| + 1 bytes (the same name when the server's
/// length names it). On its own this is only a hint: the engine requires corroboration.
pub fn handshake_shape(client_first: usize, server_first: usize, client_second: usize) -> bool {
    let _ = (client_first, server_first, client_second, Network::ALL);
    unimplemented!()
}
