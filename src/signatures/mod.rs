//! FastTrack tells: one pure function per signature.
//!
//! Every function here looks at bytes (and, where the tell needs it, the packet's destination
//! address) and nothing else: no state, no allocation on the matching path, no panics on any
//! input. Flow context (was a 0x29 id seen on this flow? is this the first payload?) is the
//! engine's business; the functions document what context they assume.
//!
//! Byte layouts follow `fasttrack-wire.md` (the project's wire reference); each function's tests
//! use its example byte strings and the known decoys (Skype 0x27/0xC0 datagrams, GTP datagrams
//! starting `27 00 00 00`, `GIVE me\r\n`, ordinary HTTP, `GNUTELLA CONNECT/0.6`).

pub mod http;
pub mod push;
pub mod tcp;
pub mod udp;

/// A FastTrack network name, as sent NUL-terminated in UDP discovery datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// `KaZaA` (Kazaa, KazaaLite, K++, giFT, MLDonkey).
    Kazaa,
    /// `fileshare` (iMesh).
    FileShare,
    /// `Grokster`.
    Grokster,
    /// `MusicCity` (Morpheus 1.x).
    MusicCity,
}

impl Network {
    /// All networks.
    pub const ALL: [Self; 4] = [Self::Kazaa, Self::FileShare, Self::Grokster, Self::MusicCity];

    /// The name exactly as on the wire, without the trailing NUL.
    pub const fn wire_name(self) -> &'static [u8] {
        match self {
            Self::Kazaa => b"KaZaA",
            Self::FileShare => b"fileshare",
            Self::Grokster => b"Grokster",
            Self::MusicCity => b"MusicCity",
        }
    }

    /// Human-readable name (same as the wire name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Kazaa => "KaZaA",
            Self::FileShare => "fileshare",
            Self::Grokster => "Grokster",
            Self::MusicCity => "MusicCity",
        }
    }

    /// The network whose wire name is exactly `bytes` (no NUL), if any.
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.wire_name() == bytes)
    }
}
