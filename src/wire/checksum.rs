//! The Internet checksum (RFC 1071) and the IPv4 / IPv6 pseudo-headers of TCP and UDP.
//!
//! Invariants:
//! - [`checksum`] over chunks equals the checksum of their concatenation when every chunk but the
//!   last has an even length (each chunk is summed as 16-bit big-endian words, an odd last byte
//!   padded with zero).
//! - A buffer whose checksum field holds the value [`checksum`] produced sums to zero again:
//!   `checksum(&[pseudo, segment]) == 0` verifies a received segment.
//! - The pseudo-header length is the upper-layer length (TCP or UDP header plus payload): IPv6
//!   extension headers are never part of it (RFC 8200 §8.1).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` as big-endian 16-bit words to `sum` (an odd last byte is padded with zero),
/// folded to 32 bits but not to 16 (a `u64` accumulator inside cannot overflow for any buffer
/// that fits in memory).
pub(crate) fn add(sum: u32, data: &[u8]) -> u32 {
    let mut acc = u64::from(sum);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        // Four 16-bit words at once: their sum fits in 18 bits, so `acc` cannot overflow.
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xFFFF) + ((v >> 16) & 0xFFFF) + (v & 0xFFFF);
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold32(acc)
}

/// Folds a wide sum into 32 bits, keeping its ones'-complement value.
fn fold32(mut acc: u64) -> u32 {
    while acc > 0xFFFF_FFFF {
        acc = (acc & 0xFFFF_FFFF) + (acc >> 32);
    }
    acc as u32
}

/// Folds a partial sum to 16 bits and complements it: the value for a checksum field.
pub(crate) fn finish(sum: u32) -> u16 {
    let mut sum = sum;
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum of `chunks`, as if concatenated (every chunk but the last must have an
/// even length). Over a received header or segment (with its pseudo-header) it is 0 when the
/// checksum field is right.
pub fn checksum(chunks: &[&[u8]]) -> u16 {
    finish(chunks.iter().fold(0, |sum, chunk| add(sum, chunk)))
}

/// The partial sum of the IPv4 pseudo-header for `protocol` and an upper-layer length `len`.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let [l0, l1] = len.to_be_bytes();
    let s = add(0, &src.octets());
    let s = add(s, &dst.octets());
    add(s, &[0, protocol, l0, l1])
}

/// The partial sum of the IPv6 pseudo-header for `protocol` and an upper-layer length `len`.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, protocol: u8, len: u32) -> u32 {
    let s = add(0, &src.octets());
    let s = add(s, &dst.octets());
    let s = add(s, &len.to_be_bytes());
    add(s, &[0, 0, 0, protocol])
}

/// The checksum of an upper-layer segment (`bytes`, its checksum field zero) under a
/// pseudo-header partial sum.
pub(crate) fn segment(pseudo: u32, bytes: &[u8]) -> u16 {
    finish(add(pseudo, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain word-by-word definition, to check the wide loop against.
    fn reference(data: &[u8]) -> u16 {
        let mut sum = 0u32;
        for pair in data.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from(pair[0]) << 8
            };
            sum += u32::from(word);
        }
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc_1071_example() {
        assert_eq!(checksum(&[&[0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]]), !0xDDF2);
    }

    #[test]
    fn wide_loop_matches_the_definition() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 2, 7, 8, 9, 15, 16, 17, 1500, 65_535, 70_000] {
            assert_eq!(checksum(&[&data[..len]]), reference(&data[..len]), "{len} bytes");
        }
        assert_eq!(checksum(&[&[0xFF; 65_536]]), reference(&[0xFF; 65_536]));
        // Chunks of even length concatenate.
        assert_eq!(checksum(&[&data[..10], &data[10..1501]]), reference(&data[..1501]));
    }

    #[test]
    fn pseudo_headers_match_their_byte_layout() {
        let (s4, d4) = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(198, 51, 100, 20));
        let bytes = [192, 0, 2, 10, 198, 51, 100, 20, 0, 17, 0, 25];
        assert_eq!(finish(pseudo_header_v4(s4, d4, 17, 25)), checksum(&[&bytes]));
        let (s6, d6): (Ipv6Addr, Ipv6Addr) =
            ("2001:db8:1::10".parse().unwrap(), "2001:db8:2::20".parse().unwrap());
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s6.octets());
        bytes.extend_from_slice(&d6.octets());
        bytes.extend_from_slice(&[0, 0, 0, 11, 0, 0, 0, 6]);
        assert_eq!(finish(pseudo_header_v6(s6, d6, 6, 11)), checksum(&[&bytes]));
    }
}
