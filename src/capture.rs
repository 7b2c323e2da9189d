//! Link-layer decoding of capture records down to the L3 buffer the engine expects.
//!
//! Pure: takes a pcap link type and a record's bytes, returns the IP packet inside (or why not).

/// Why a capture record holds no IP packet for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    /// The frame's ethertype / family is not IPv4 or IPv6 (ARP, LLDP, ...).
    OtherPayload,
    /// The frame is shorter than its link-layer header.
    Truncated,
}

/// Link types [`l3_payload`] understands.
pub fn is_supported_link_type(link_type: u32) -> bool {
    let _ = link_type;
    unimplemented!()
}

/// Returns the L3 (IP) bytes inside a record of `link_type`.
pub fn l3_payload(link_type: u32, frame: &[u8]) -> Result<&[u8], NotIp> {
    let _ = (link_type, frame);
    unimplemented!()
}
