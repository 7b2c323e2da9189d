//! The supernode TCP control session opener.

use super::Network;

/// The constant 12-byte opener of giFT-FastTrack and MLDonkey.
pub const GIFT_OPENER: [u8; 12] = [0xFA, 0x00, 0xB6, 0x2B, 0xFA, 0xCB, 0x12, 0x38, 0x32, 0x09, 0xD2, 0x32];

/// True if the client's stream starts with [`GIFT_OPENER`].
pub fn constant_opener(client_stream_prefix: &[u8]) -> bool {
    client_stream_prefix.starts_with(&GIFT_OPENER)
}

/// Longest network-name message in the handshake (`|name| + 1`, the NUL included).
pub const MAX_NAME_MESSAGE: usize = 10;

/// The handshake shape, measured on the two streams at the turns of the exchange: the client's
/// stream held exactly `client_first` = 12 bytes when the server's first byte came; when the
/// client's stream then grew past 12, the server's stream held at least 8 contiguous bytes
/// (`server_contiguous`) and at most 8 + |name| + 1 bytes in all (`server_received`: the seed
/// and enc type, and some or all of its encrypted network name); the client's stream now holds
/// exactly 12 + `client_second` bytes, `client_second` = |name| + 1 for a known network name.
/// On its own this is only a hint: the engine requires corroboration.
pub fn handshake_shape(
    client_first: usize,
    server_contiguous: usize,
    server_received: usize,
    client_second: usize,
) -> bool {
    client_first == 12
        && server_contiguous >= 8
        && server_received >= server_contiguous
        && Network::ALL.into_iter().any(|n| {
            let name = n.wire_name().len() + 1;
            client_second == name && server_received <= 8 + name
        })
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
        // (client first, server contiguous, server received, client second)
        for (c1, sc, sr, c2) in [
            (12, 14, 14, 6),
            (12, 8, 8, 6),
            (12, 8, 11, 6),
            (12, 17, 17, 9),
            (12, 18, 18, 10),
            (12, 8, 8, 9),
            (12, 8, 8, 10),
            (12, 8, 14, 10),
        ] {
            assert!(handshake_shape(c1, sc, sr, c2), "{c1}/{sc}/{sr}/{c2}");
        }
        for (c1, sc, sr, c2) in [
            (13, 14, 14, 6),
            (11, 14, 14, 6),
            (12, 7, 7, 6),
            (12, 7, 14, 6),
            (12, 15, 15, 6),
            (12, 8, 8, 7),
            (12, 14, 14, 7),
            (12, 1448, 1448, 6),
            (12, 19, 19, 10),
        ] {
            assert!(!handshake_shape(c1, sc, sr, c2), "{c1}/{sc}/{sr}/{c2}");
        }
        let longest = Network::ALL.into_iter().map(|n| n.wire_name().len() + 1).max();
        assert_eq!(longest, Some(MAX_NAME_MESSAGE));
    }
}
