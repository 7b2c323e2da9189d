//! The state-file format: suspect peers and locked clients, as persisted by the daemon.
//!
//! Pure encoding and decoding (the daemon does the file IO). The format is JSON:
//! `{"version": 1, "saved_at": <unix µs>, "peers": [...], "locks": [...], "bans": [...]}`. Decoding
//! validates the version and rejects unknown fields, at the top and in every entry; it never
//! panics, whatever the bytes (a fuzz target checks).
//!
//! Every time in the file (`saved_at`, `expires`, `until`) is a **wall-clock** date, µs since the
//! Unix epoch, as it has been since version 1 (the daemon then ran its engine on the wall clock),
//! so old files load unchanged and a file means the same after a reboot. The engine runs on a
//! monotonic clock: the daemon converts a snapshot to wall-clock dates before [`encode`] and back
//! after [`decode`] (`Snapshot::map_timestamps`), and the engine's restore clamps every expiry to
//! its configured maximum, so a date far in the future (an edited file, or a wall clock stepped
//! back between save and restore) cannot lengthen a block.

use crate::engine::snapshot::Snapshot;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Current format version.
pub const FORMAT_VERSION: u32 = 1;

/// Largest state file accepted, far above what the bounded engine state can produce.
pub const MAX_STATE_BYTES: usize = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    saved_at: Timestamp,
    #[serde(flatten)]
    snapshot: Snapshot,
}

/// Why a state file could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// Not valid JSON of the expected shape.
    #[error("corrupt state file: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Written by an unknown (newer) version.
    #[error("unknown state file format version {0}")]
    Version(u32),
    /// Larger than [`MAX_STATE_BYTES`].
    #[error("state file too large ({0} bytes)")]
    TooLarge(usize),
}

/// Encodes `snapshot`, saved at `saved_at`.
pub fn encode(snapshot: &Snapshot, saved_at: Timestamp) -> Vec<u8> {
    let file = StateFile { version: FORMAT_VERSION, saved_at, snapshot: snapshot.clone() };
    let mut bytes = serde_json::to_vec_pretty(&file).expect("state always serialises");
    bytes.push(b'\n');
    bytes
}

/// Decodes a state file.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateError> {
    if bytes.len() > MAX_STATE_BYTES {
        return Err(StateError::TooLarge(bytes.len()));
    }
    let file: StateFile = serde_json::from_slice(bytes)?;
    if file.version != FORMAT_VERSION {
        return Err(StateError::Version(file.version));
    }
    Ok(file.snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{BanEntry, LockEntry, PeerEntry, Strength};

    #[test]
    fn round_trip_and_rejections() {
        let snapshot = Snapshot {
            peers: vec![PeerEntry {
                client: Some("192.0.2.10".parse().unwrap()),
                first_seen: Timestamp::from_secs(3),
                last_seen: Timestamp::from_secs(4),
                ..PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong)
            }],
            locks: vec![LockEntry {
                network: Some("2001:db8:1::/64".parse().unwrap()),
                ..LockEntry::new(
                    "2001:db8:1::10".parse().unwrap(),
                    Timestamp::from_secs(9),
                    Some(3531),
                    Some("198.51.100.20:1214".parse().unwrap()),
                )
            }],
            bans: vec![BanEntry {
                reason: Some("abuse report #12".into()),
                by: Some(0),
                since: Timestamp::from_secs(2),
                origin: Some(crate::engine::GatewayId::new("gw-a").unwrap()),
                ..BanEntry::new("198.51.100.0/24".parse().unwrap(), Some(Timestamp::from_secs(90)), Some(88))
            }],
        };
        let bytes = encode(&snapshot, Timestamp::from_secs(1));
        assert_eq!(decode(&bytes).unwrap(), snapshot);
        let text = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            decode(text.replace("\"version\": 1", "\"version\": 2").as_bytes()),
            Err(StateError::Version(2))
        ));
        assert!(matches!(decode(&text.as_bytes()[..text.len() / 2]), Err(StateError::Corrupt(_))));
        assert!(matches!(
            decode(b"{\"version\":1,\"saved_at\":0,\"peers\":[],\"locks\":[],\"x\":1}"),
            Err(StateError::Corrupt(_))
        ));
        // An entry with a field this version does not know is rejected, not half-read.
        for entry in [
            r#""peers":[{"addr":"198.51.100.20","port":null,"expires":null,"x":1}],"locks":[]"#,
            r#""peers":[],"locks":[{"client":"192.0.2.10","until":9,"port":null,"forever":true}]"#,
            r#""peers":[],"locks":[],"bans":[{"addr":"192.0.2.10","until":null,"x":1}]"#,
        ] {
            let text = format!("{{\"version\":1,\"saved_at\":0,{entry}}}");
            assert!(matches!(decode(text.as_bytes()), Err(StateError::Corrupt(_))), "{text}");
        }
        // A lock saved before `peer` existed still loads (no peer: no probe).
        let old = br#"{"version":1,"saved_at":0,"peers":[],"locks":[{"client":"192.0.2.10","until":9000000,"port":null}]}"#;
        assert_eq!(decode(old).unwrap().locks[0].peer, None);
        assert!(decode(b"{\"version\":1,\"saved_at\":0,\"peers\":[],\"locks\":[]}")
            .unwrap()
            .peers
            .is_empty());
    }

    #[test]
    fn bans_are_written_as_networks_and_older_bare_addresses_still_load() {
        let ban = BanEntry {
            reason: Some("abuse report #12".into()),
            by: Some(0),
            since: Timestamp::from_secs(2),
            ..BanEntry::new("198.51.100.0/24".parse().unwrap(), None, None)
        };
        let snapshot = Snapshot { bans: vec![ban], ..Snapshot::default() };
        let text = String::from_utf8(encode(&snapshot, Timestamp::from_secs(1))).unwrap();
        assert!(text.contains(r#""net": "198.51.100.0/24""#), "{text}");
        assert!(text.contains(r#""reason": "abuse report #12""#), "{text}");
        // A file written before bans held networks: `addr`, a bare address, no reason.
        let old = br#"{"version":1,"saved_at":0,"peers":[],"locks":[],"bans":[{"addr":"192.0.2.10","until":null},{"addr":"2001:db8::9","until":5,"seconds":30}]}"#;
        let bans = decode(old).unwrap().bans;
        assert_eq!(bans[0], BanEntry::new("192.0.2.10/32".parse().unwrap(), None, None));
        assert_eq!(
            bans[1],
            BanEntry::new("2001:db8::9/128".parse().unwrap(), Some(Timestamp::from_micros(5)), Some(30))
        );
        let bad = br#"{"version":1,"saved_at":0,"peers":[],"locks":[],"bans":[{"net":"198.51.100.0/33","until":null}]}"#;
        assert!(matches!(decode(bad), Err(StateError::Corrupt(_))));
    }
}
