//! The client directory (the original's `-c`): one file per locked client, named by its
//! address, holding the lock's end; removed when the lock is released. Other tools can list it.

use crate::clock::Clock;
use ftwall::engine::LockEntry;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub(crate) struct ClientDir {
    dir: PathBuf,
}

impl ClientDir {
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, client: IpAddr) -> PathBuf {
        self.dir.join(client.to_string())
    }

    /// Writes `lock`'s file; its end (engine time) is shown as a date through `clock`.
    pub(crate) fn locked(&self, lock: &LockEntry, clock: &Clock) -> io::Result<()> {
        let body = format!("client={}\nlocked_until={}\n", lock.client, clock.rfc3339(lock.until));
        fs::write(self.path(lock.client), body)
    }

    pub(crate) fn released(&self, client: IpAddr) -> io::Result<()> {
        match fs::remove_file(self.path(client)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Makes the directory list exactly `locks`: writes their files and removes files of clients
    /// that are no longer locked (left over from before a restart).
    pub(crate) fn sync(&self, locks: &[LockEntry], clock: &Clock) -> io::Result<()> {
        let keep: HashSet<String> = locks.iter().map(|l| l.client.to_string()).collect();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<IpAddr>().is_ok() && !keep.contains(&name) {
                fs::remove_file(entry.path())?;
            }
        }
        locks.iter().try_for_each(|l| self.locked(l, clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::Timestamp;

    #[test]
    fn files_follow_locks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("192.0.2.99"), "stale").unwrap();
        fs::write(dir.path().join("README"), "not a client").unwrap();
        let cd = ClientDir::new(dir.path()).unwrap();
        let lock = LockEntry {
            client: "192.0.2.10".parse().unwrap(),
            until: Timestamp::from_secs(100),
            port: None,
            peer: None,
        };
        // Engine time 100 s is the wall's 1970-01-01T00:01:40Z at this reading.
        let clock = Clock::at(Timestamp::from_secs(40), Timestamp::from_secs(40));
        cd.sync(&[lock], &clock).unwrap();
        assert!(!dir.path().join("192.0.2.99").exists());
        assert!(dir.path().join("README").exists());
        let body = fs::read_to_string(dir.path().join("192.0.2.10")).unwrap();
        assert!(body.contains("locked_until=1970-01-01T00:01:40Z"), "{body}");
        cd.released(lock.client).unwrap();
        cd.released(lock.client).unwrap();
        assert!(!dir.path().join("192.0.2.10").exists());
    }
}
