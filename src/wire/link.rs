//! Link-layer decoding of capture records down to the L3 buffer the engine expects (what
//! [`parse`](super::parse) takes).
//!
//! Pure: takes a pcap link type and a record's bytes, returns the IP packet inside (or why not).
//! The emit half, [`LinkRepr::emit`], frames a packet for a capture file (fixtures and tests): an
//! Ethernet frame (optionally 802.1Q-tagged, padded to the 60-byte minimum), a Linux cooked
//! (SLL) header, or nothing for raw IP; `l3_payload(repr.link_type(), &repr.emit(..))` gives
//! the packet back.
//! Supported link types: Ethernet (1, with any number of 802.1Q / 802.1ad tags up to
//! [`MAX_VLAN_TAGS`]), raw IP (101, and the BSD DLT values 12 and 14), raw IPv4 (228), raw IPv6
//! (229), Linux cooked capture v1 (113) and v2 (276), BSD loopback NULL (0) and LOOP (108),
//! PPP (9) and Cisco HDLC (104).

/// Why a capture record holds no IP packet for the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    /// The frame's ethertype / family is not IPv4 or IPv6 (ARP, LLDP, ...).
    OtherPayload,
    /// The frame is shorter than its link-layer header.
    Truncated,
}

/// Most VLAN tags skipped in one Ethernet frame.
pub const MAX_VLAN_TAGS: usize = 4;

/// Ethernet.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// BSD loopback with a host-endian family word.
pub const LINKTYPE_NULL: u32 = 0;
/// OpenBSD loopback with a big-endian family word.
pub const LINKTYPE_LOOP: u32 = 108;
/// Raw IP (version from the first nibble).
pub const LINKTYPE_RAW: u32 = 101;
/// Raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// Raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// Linux cooked capture.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// PPP, with or without the HDLC address/control bytes.
pub const LINKTYPE_PPP: u32 = 9;
/// Cisco HDLC.
pub const LINKTYPE_C_HDLC: u32 = 104;

const ETHERTYPE_QINQ: u16 = 0x88A8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Link types [`l3_payload`] understands.
pub fn is_supported_link_type(link_type: u32) -> bool {
    matches!(
        link_type,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | 12
            | 14
            | LINKTYPE_RAW
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
            | LINKTYPE_PPP
            | LINKTYPE_C_HDLC
    )
}

/// Returns the L3 (IP) bytes inside a record of `link_type`. Unsupported link types give
/// `NotIp::OtherPayload` (callers check [`is_supported_link_type`] once per interface).
pub fn l3_payload(link_type: u32, frame: &[u8]) -> Result<&[u8], NotIp> {
    match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_RAW | 12 | 14 => raw_ip(frame),
        LINKTYPE_IPV4 => non_empty(frame),
        LINKTYPE_IPV6 => non_empty(frame),
        LINKTYPE_LINUX_SLL => by_ethertype(be16(frame, 14)?, frame.get(16..).ok_or(NotIp::Truncated)?),
        LINKTYPE_LINUX_SLL2 => by_ethertype(be16(frame, 0)?, frame.get(20..).ok_or(NotIp::Truncated)?),
        LINKTYPE_NULL | LINKTYPE_LOOP => loopback(link_type, frame),
        LINKTYPE_PPP => ppp(frame),
        LINKTYPE_C_HDLC => by_ethertype(be16(frame, 2)?, frame.get(4..).ok_or(NotIp::Truncated)?),
        _ => Err(NotIp::OtherPayload),
    }
}

fn be16(frame: &[u8], at: usize) -> Result<u16, NotIp> {
    match frame.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(NotIp::Truncated),
    }
}

fn by_ethertype(ethertype: u16, payload: &[u8]) -> Result<&[u8], NotIp> {
    match ethertype {
        ETHERTYPE_IPV4 => non_empty(payload),
        ETHERTYPE_IPV6 => non_empty(payload),
        _ => Err(NotIp::OtherPayload),
    }
}

fn ethernet(frame: &[u8]) -> Result<&[u8], NotIp> {
    let mut offset = 12;
    for _ in 0..=MAX_VLAN_TAGS {
        let ethertype = be16(frame, offset)?;
        match ethertype {
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => offset += 4,
            _ => return by_ethertype(ethertype, frame.get(offset + 2..).ok_or(NotIp::Truncated)?),
        }
    }
    Err(NotIp::OtherPayload)
}

fn ppp(frame: &[u8]) -> Result<&[u8], NotIp> {
    // Optional HDLC address 0xFF and control 0x03, then a 16-bit PPP protocol number.
    let frame = frame.strip_prefix(&[0xFF, 0x03]).unwrap_or(frame);
    match be16(frame, 0)? {
        0x0021 => non_empty(&frame[2..]),
        0x0057 => non_empty(&frame[2..]),
        _ => Err(NotIp::OtherPayload),
    }
}

fn raw_ip(frame: &[u8]) -> Result<&[u8], NotIp> {
    match frame.first().map(|b| b >> 4) {
        Some(4 | 6) => Ok(frame),
        Some(_) => Err(NotIp::OtherPayload),
        None => Err(NotIp::Truncated),
    }
}

/// Hands over any non-empty IP payload: a wrong version nibble is for the engine to report as
/// `malformed`, not for the link layer to hide.
fn non_empty(frame: &[u8]) -> Result<&[u8], NotIp> {
    if frame.is_empty() {
        Err(NotIp::Truncated)
    } else {
        Ok(frame)
    }
}

fn loopback(link_type: u32, frame: &[u8]) -> Result<&[u8], NotIp> {
    let word: [u8; 4] = frame.get(..4).and_then(|w| w.try_into().ok()).ok_or(NotIp::Truncated)?;
    let family = if link_type == LINKTYPE_LOOP {
        u32::from_be_bytes(word)
    } else {
        // NULL is written in the capturing host's byte order: accept either.
        let le = u32::from_le_bytes(word);
        if le <= 0xFFFF {
            le
        } else {
            u32::from_be_bytes(word)
        }
    };
    let payload = &frame[4..];
    match family {
        2 => non_empty(payload),
        10 | 24 | 28 | 30 => non_empty(payload),
        _ => Err(NotIp::OtherPayload),
    }
}

/// The ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// The ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// The ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The TPID of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// The minimum Ethernet frame without its FCS: shorter frames are zero-padded.
pub const ETHERNET_MIN_FRAME: usize = 60;

/// The link-layer header to put in front of a packet (see [`LinkRepr::emit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRepr {
    /// No link header ([`LINKTYPE_RAW`]).
    Raw,
    /// Ethernet II ([`LINKTYPE_ETHERNET`]), with one 802.1Q tag when `vlan` is set (its TCI).
    Ethernet {
        /// Destination MAC.
        dst: [u8; 6],
        /// Source MAC.
        src: [u8; 6],
        /// The 802.1Q tag control information, if tagged.
        vlan: Option<u16>,
    },
    /// Linux cooked capture v1 ([`LINKTYPE_LINUX_SLL`]) of an Ethernet device.
    LinuxSll {
        /// Packet type: 0 to us, 4 sent by us, ...
        packet_type: u16,
        /// The link-layer address.
        addr: [u8; 6],
    },
}

impl LinkRepr {
    /// The pcap link type of frames this header makes.
    pub const fn link_type(&self) -> u32 {
        match self {
            Self::Raw => LINKTYPE_RAW,
            Self::Ethernet { .. } => LINKTYPE_ETHERNET,
            Self::LinuxSll { .. } => LINKTYPE_LINUX_SLL,
        }
    }

    /// A frame carrying `payload` of `ethertype` (ignored for [`LinkRepr::Raw`]).
    pub fn emit(&self, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(payload.len() + 18);
        match *self {
            Self::Raw => return payload.to_vec(),
            Self::Ethernet { dst, src, vlan } => {
                f.extend_from_slice(&dst);
                f.extend_from_slice(&src);
                if let Some(tci) = vlan {
                    f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                    f.extend_from_slice(&tci.to_be_bytes());
                }
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(payload);
                if f.len() < ETHERNET_MIN_FRAME {
                    f.resize(ETHERNET_MIN_FRAME, 0);
                }
            }
            Self::LinuxSll { packet_type, addr } => {
                f.extend_from_slice(&packet_type.to_be_bytes());
                f.extend_from_slice(&1u16.to_be_bytes()); // ARPHRD_ETHER
                f.extend_from_slice(&6u16.to_be_bytes());
                f.extend_from_slice(&addr);
                f.extend_from_slice(&[0, 0]);
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(payload);
            }
        }
        f
    }

    /// A frame carrying the IP `packet`, its ethertype from the version nibble.
    pub fn emit_ip(&self, packet: &[u8]) -> Vec<u8> {
        let ethertype =
            if packet.first().is_some_and(|b| b >> 4 == 6) { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 };
        self.emit(ethertype, packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC1: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const MAC2: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

    #[test]
    fn emitted_frames_decode_back_to_the_packet() {
        let v6 = [0x60; 40];
        for repr in [
            LinkRepr::Raw,
            LinkRepr::Ethernet { dst: MAC1, src: MAC2, vlan: None },
            LinkRepr::Ethernet { dst: MAC1, src: MAC2, vlan: Some(100) },
            LinkRepr::LinuxSll { packet_type: 4, addr: MAC2 },
        ] {
            for packet in [&IPV4[..], &v6[..]] {
                let frame = repr.emit_ip(packet);
                let l3 = l3_payload(repr.link_type(), &frame).unwrap();
                // Short Ethernet frames carry zero padding after the packet (IP's length says
                // where the packet ends).
                assert_eq!(&l3[..packet.len()], packet, "{repr:?}");
                assert!(l3[packet.len()..].iter().all(|&b| b == 0), "{repr:?}");
            }
        }
    }

    #[test]
    fn ethernet_frames_are_padded_and_laid_out() {
        let arp = LinkRepr::Ethernet { dst: [0xFF; 6], src: MAC2, vlan: None }.emit(ETHERTYPE_ARP, &[0; 28]);
        assert_eq!(arp.len(), ETHERNET_MIN_FRAME);
        assert_eq!(&arp[12..14], &[0x08, 0x06]);
        assert_eq!(l3_payload(LINKTYPE_ETHERNET, &arp), Err(NotIp::OtherPayload));
        let tagged = LinkRepr::Ethernet { dst: MAC1, src: MAC2, vlan: Some(0x64) }.emit_ip(&IPV4);
        assert_eq!(&tagged[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        let sll = LinkRepr::LinuxSll { packet_type: 4, addr: MAC2 }.emit_ip(&IPV4);
        assert_eq!(&sll[..16], &[0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x08, 0x00]);
    }

    const IPV4: [u8; 20] = [0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 198, 51, 100, 1];

    fn eth(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for &tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x0A]);
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ethernet_and_vlans() {
        assert_eq!(l3_payload(1, &eth(&[], 0x0800, &IPV4)), Ok(&IPV4[..]));
        assert_eq!(l3_payload(1, &eth(&[0x8100], 0x0800, &IPV4)), Ok(&IPV4[..]));
        assert_eq!(l3_payload(1, &eth(&[0x88A8, 0x8100], 0x86DD, &[0x60; 40])), Ok(&[0x60; 40][..]));
        assert_eq!(l3_payload(1, &eth(&[], 0x0806, &[0; 28])), Err(NotIp::OtherPayload), "ARP");
        assert_eq!(l3_payload(1, &[0; 13]), Err(NotIp::Truncated));
        assert_eq!(
            l3_payload(1, &eth(&[0x8100; 6], 0x0800, &IPV4)),
            Err(NotIp::OtherPayload),
            "too many tags"
        );
    }

    #[test]
    fn raw_and_cooked() {
        assert_eq!(l3_payload(101, &IPV4), Ok(&IPV4[..]));
        assert_eq!(l3_payload(12, &IPV4), Ok(&IPV4[..]));
        assert_eq!(l3_payload(101, &[0x10, 1]), Err(NotIp::OtherPayload));
        assert_eq!(l3_payload(228, &IPV4), Ok(&IPV4[..]));
        assert_eq!(l3_payload(229, &[]), Err(NotIp::Truncated));
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(113, &sll), Ok(&IPV4[..]));
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        sll2.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(276, &sll2), Ok(&IPV4[..]));
        assert_eq!(l3_payload(276, &sll2[..10]), Err(NotIp::Truncated));
    }

    #[test]
    fn ppp_and_cisco_hdlc() {
        let mut ppp_hdlc = vec![0xFF, 0x03, 0x00, 0x21];
        ppp_hdlc.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(9, &ppp_hdlc), Ok(&IPV4[..]));
        assert_eq!(l3_payload(9, &ppp_hdlc[2..]), Ok(&IPV4[..]));
        assert_eq!(l3_payload(9, &[0xFF, 0x03, 0xC0, 0x21, 1]), Err(NotIp::OtherPayload), "LCP");
        let mut chdlc = vec![0x0F, 0x00, 0x08, 0x00];
        chdlc.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(104, &chdlc), Ok(&IPV4[..]));
        assert_eq!(l3_payload(104, &[0x8F, 0x00, 0x80, 0x35, 0]), Err(NotIp::OtherPayload), "SLARP");
    }

    #[test]
    fn loopback_families() {
        let mut null_le = vec![2, 0, 0, 0];
        null_le.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(0, &null_le), Ok(&IPV4[..]));
        let mut null_be = vec![0, 0, 0, 2];
        null_be.extend_from_slice(&IPV4);
        assert_eq!(l3_payload(0, &null_be), Ok(&IPV4[..]));
        let mut loop6 = vec![0, 0, 0, 30];
        loop6.extend_from_slice(&[0x60; 40]);
        assert_eq!(l3_payload(108, &loop6), Ok(&[0x60; 40][..]));
        assert_eq!(l3_payload(108, &[0, 0, 0, 7, 1]), Err(NotIp::OtherPayload));
        assert_eq!(l3_payload(0, &[2, 0]), Err(NotIp::Truncated));
    }

    #[test]
    fn supported_types() {
        for t in [0, 1, 9, 12, 14, 101, 104, 108, 113, 228, 229, 276] {
            assert!(is_supported_link_type(t), "{t}");
        }
        assert!(!is_supported_link_type(105), "802.11");
        assert!(!is_supported_link_type(127));
    }
}
