//! The client directory (the original's `-c`): one file per lock, named by the address of the
//! network it covers (the client's IPv4 address, or its IPv6 prefix's network address), holding
//! the client, the network and the lock's end; removed when the lock is released. Other tools
//! can list it.

use crate::clock::rfc3339;
use ftwall::engine::LockEntry;
use ipnet::IpNet;
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

    fn path(&self, network: IpNet) -> PathBuf {
        self.dir.join(network.addr().to_string())
    }

    pub(crate) fn locked(&self, lock: &LockEntry) -> io::Result<()> {
        let body = format!(
            "client={}\nnetwork={}\nlocked_until={}\n",
            lock.client,
            lock.network(),
            rfc3339(lock.until.as_secs())
        );
        fs::write(self.path(lock.network()), body)
    }

    pub(crate) fn released(&self, network: IpNet) -> io::Result<()> {
        match fs::remove_file(self.path(network)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Makes the directory list exactly `locks`: writes their files and removes files of clients
    /// that are no longer locked (left over from before a restart).
    pub(crate) fn sync(&self, locks: &[LockEntry]) -> io::Result<()> {
        let keep: HashSet<String> = locks.iter().map(|l| l.network().addr().to_string()).collect();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<IpAddr>().is_ok() && !keep.contains(&name) {
                fs::remove_file(entry.path())?;
            }
        }
        locks.iter().try_for_each(|l| self.locked(l))
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
        let lock = LockEntry::new("192.0.2.10".parse().unwrap(), Timestamp::from_secs(0), None, None);
        cd.sync(&[lock]).unwrap();
        assert!(!dir.path().join("192.0.2.99").exists());
        assert!(dir.path().join("README").exists());
        let body = fs::read_to_string(dir.path().join("192.0.2.10")).unwrap();
        assert!(body.contains("locked_until=1970-01-01T00:00:00Z"), "{body}");
        cd.released(lock.network()).unwrap();
        cd.released(lock.network()).unwrap();
        assert!(!dir.path().join("192.0.2.10").exists());
    }
}
