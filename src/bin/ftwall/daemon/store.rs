//! The state file: suspect peers and locked clients, kept across restarts.
//!
//! Written atomically: a temporary file in the same directory is written, fsynced and renamed
//! over the old one, then the directory is fsynced, so a crash at any point leaves either the old
//! or the new file, never a torn one. A file that cannot be parsed is moved aside to
//! `<file>.corrupt-<unix time>` and the daemon starts empty; the old file is never truncated in
//! place.

use ftwall::engine::Snapshot;
use ftwall::{state, Timestamp};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
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
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Missing,
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
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "state_file has no file name"))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let body = state::encode(snapshot, Timestamp::from_micros(now_micros));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        file.write_all(&body)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
            bans: vec![BanEntry { addr: "198.51.100.66".parse().unwrap(), until: None }],
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
    fn missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent/state");
        assert!(save(&path, &snapshot(), 1).is_err());
    }
}
