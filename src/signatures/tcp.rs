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
    if client_first != 12 {
        return false;
    }
    let name_len = |n: Network| n.wire_name().len() + 1;
    if server_first == 8 {
        Network::ALL.into_iter().any(|n| client_second == name_len(n))
    } else {
        Network::ALL.into_iter().any(|n| server_first == 8 + name_len(n) && client_second == name_len(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_opener_matches_only_the_exact_bytes() {
        assert!(constant_opener(&GIFT_OPENER));
        let mut longer = GIFT_OPENER.to_vec();
        longer.extend_from_slice(&[1, 2, 3]);
        assert!(constant_opener(&longer), "opener coalesced with the next message");
        assert!(!constant_opener(&GIFT_OPENER[..11]));
        assert!(!constant_opener(&[0x35, 0x3B, 0xD2, 0xBE, 0x98, 0x62, 0xE6, 0x52, 0xE5, 0x3A, 0xBE, 0x3F]));
        assert!(!constant_opener(b"GNUTELLA CONNECT/0.6\r\n"));
        assert!(!constant_opener(&[]));
    }

    #[test]
    fn handshake_shapes() {
        for (c1, s1, c2) in [(12, 14, 6), (12, 8, 6), (12, 17, 9), (12, 18, 10), (12, 8, 9), (12, 8, 10)] {
            assert!(handshake_shape(c1, s1, c2), "{c1}/{s1}/{c2}");
        }
        for (c1, s1, c2) in
            [(13, 14, 6), (11, 14, 6), (12, 14, 9), (12, 9, 6), (12, 8, 7), (12, 14, 7), (12, 1448, 6)]
        {
            assert!(!handshake_shape(c1, s1, c2), "{c1}/{s1}/{c2}");
        }
    }
}
