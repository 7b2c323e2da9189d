//! The state file: suspect peers and locked clients, kept across restarts.
//!
//! Written with the one atomic-write helper ([`crate::files::write_atomic`]: an unpredictable
//! temporary created `O_EXCL|O_NOFOLLOW` beside it, mode 0640, fsynced, renamed over the old
//! one, the directory fsynced), so a crash at any point leaves either the old or the new file,
//! never a torn one, and a planted symlink is never written through.
//!
//! Read guarded ([`crate::files::read_guarded`]): never through a symlink, never a FIFO or
//! device, only a regular file owned by root or the daemon's user, at most
//! [`state::MAX_STATE_BYTES`] + 1 bytes; then decoded and validated by [`state::decode`]
//! (unknown fields and entries rejected). A file that fails any of this is moved aside to
//! `<file>.corrupt-<unix time>` and the daemon starts empty; the old file is never truncated in
//! place.
//!
//! This module is the file IO only; the format (and any conversion of its times) is the
//! library's `ftwall::state`.

use crate::files::{self, Guarded};
use ftwall::engine::Snapshot;
use ftwall::{state, Timestamp};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What loading found.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No file yet.
    Missing,
    /// A valid file.
    State(Snapshot),
    /// The file was unreadable or corrupt and was moved to the given path.
    MovedAside { to: PathBuf, reason: String },
    /// The file could not be read and could not be moved either.
    Unreadable(String),
}

/// Loads the state file.
pub(crate) fn load(path: &Path, now_secs: u64) -> Loaded {
    let text = match files::read_guarded(path, state::MAX_STATE_BYTES) {
        Ok(Guarded::Bytes(t)) => t,
        Ok(Guarded::Missing) => return Loaded::Missing,
        Err(e) => return move_aside(path, now_secs, format!("cannot read: {e}")),
    };
    match state::decode(&text) {
        Ok(snapshot) => Loaded::State(snapshot),
        Err(e) => move_aside(path, now_secs, e.to_string()),
    }
}

fn move_aside(path: &Path, now_secs: u64, reason: String) -> Loaded {
    let mut to = path.as_os_str().to_owned();
    to.push(format!(".corrupt-{now_secs}"));
    let to = PathBuf::from(to);
    match fs::rename(path, &to) {
        Ok(()) => Loaded::MovedAside { to, reason },
        Err(e) => Loaded::Unreadable(format!("{reason}; and it could not be moved aside: {e}")),
    }
}

/// Writes the state file atomically.
pub(crate) fn save(path: &Path, snapshot: &Snapshot, now_micros: u64) -> io::Result<()> {
    files::write_atomic(path, &state::encode(snapshot, Timestamp::from_micros(now_micros)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::engine::{BanEntry, LockEntry, PeerEntry, Strength};
    use ftwall::Timestamp;

    fn snapshot() -> Snapshot {
        Snapshot {
            peers: vec![PeerEntry::new("198.51.100.20".parse().unwrap(), Some(1214), None, Strength::Strong)],
            locks: vec![LockEntry::new(
                "192.0.2.10".parse().unwrap(),
                Timestamp::from_secs(1_800_000_000),
                Some(3531),
                None,
            )],
            bans: vec![BanEntry::new("198.51.100.0/24".parse().unwrap(), None, None)],
        }
    }

    #[test]
    fn round_trip_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        assert!(matches!(load(&path, 0), Loaded::Missing));
        save(&path, &snapshot(), 5).unwrap();
        save(&path, &snapshot(), 6).unwrap();
        match load(&path, 0) {
            Loaded::State(s) => assert_eq!(s, snapshot()),
            other => panic!("{other:?}"),
        }
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state")]);
    }

    #[test]
    fn corrupt_file_is_moved_aside_not_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, b"{\"version\": 1, \"peers\": [tru").unwrap();
        match load(&path, 1234) {
            Loaded::MovedAside { to, .. } => {
                assert_eq!(to, dir.path().join("state.corrupt-1234"));
                assert_eq!(fs::read(&to).unwrap(), b"{\"version\": 1, \"peers\": [tru");
            }
            other => panic!("{other:?}"),
        }
        assert!(!path.exists());
    }

    #[test]
    fn an_oversized_or_symlinked_file_is_moved_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // Valid JSON, but larger than the cap: refused by size, not parsed.
        let mut big = b"{\"version\": 1, \"saved_at\": 0, \"peers\": [], \"locks\": []}".to_vec();
        big.resize(state::MAX_STATE_BYTES + 10, b' ');
        fs::write(&path, &big).unwrap();
        match load(&path, 7) {
            Loaded::MovedAside { reason, .. } => assert!(reason.contains("too large"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // A symlink to a valid state file is not followed; the link itself is moved aside.
        let real = dir.path().join("elsewhere");
        save(&real, &snapshot(), 1).unwrap();
        std::os::unix::fs::symlink(&real, &path).unwrap();
        match load(&path, 8) {
            Loaded::MovedAside { to, reason } => {
                assert!(reason.contains("symbolic link"), "{reason}");
                assert!(fs::symlink_metadata(to).unwrap().file_type().is_symlink());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(load(&real, 9), Loaded::State(_)), "the link's target is left alone");
    }

    #[test]
    fn missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent/state");
        assert!(save(&path, &snapshot(), 1).is_err());
    }
}
