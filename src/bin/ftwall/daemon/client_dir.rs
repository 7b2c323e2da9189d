//! The client directory (the original's `-c`): one file per lock, named by the address of the
//! network it covers (the client's IPv4 address, or its IPv6 prefix's network address), holding
//! the client, the network and the lock's end; removed when the lock is released. Other tools
//! can list it.
//!
//! The directory is created 0750 and opened once (`O_DIRECTORY|O_NOFOLLOW`); every file is
//! written (mode 0640, through the one atomic-write helper), removed and listed relative to
//! that descriptor, so a symlink planted in it, or a directory swapped in under its path, is
//! never written through.

use crate::clock::Clock;
use crate::files::{self, Dir};
use ftwall::engine::LockEntry;
use ipnet::IpNet;
use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::net::IpAddr;
use std::path::Path;

pub(crate) struct ClientDir {
    dir: Dir,
}

impl ClientDir {
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        files::create_dir_all(dir)?;
        Ok(Self { dir: Dir::open(dir)? })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn name(network: IpNet) -> OsString {
        network.addr().to_string().into()
    }

    /// Writes `lock`'s file; its end (engine time) is shown as a date through `clock`.
    pub(crate) fn locked(&self, lock: &LockEntry, clock: &Clock) -> io::Result<()> {
        let body = format!(
            "client={}\nnetwork={}\nlocked_until={}\n",
            lock.client,
            lock.network(),
            clock.rfc3339(lock.until)
        );
        self.dir.write_atomic(&Self::name(lock.network()), body.as_bytes())
    }

    pub(crate) fn released(&self, network: IpNet) -> io::Result<()> {
        self.dir.remove(&Self::name(network))
    }

    /// Makes the directory list exactly `locks`: writes their files and removes files of clients
    /// that are no longer locked (left over from before a restart).
    pub(crate) fn sync(&self, locks: &[LockEntry], clock: &Clock) -> io::Result<()> {
        let keep: HashSet<String> = locks.iter().map(|l| l.network().addr().to_string()).collect();
        for name in self.dir.names()? {
            let text = name.to_string_lossy();
            if text.parse::<IpAddr>().is_ok() && !keep.contains(text.as_ref()) {
                self.dir.remove(&name)?;
            }
        }
        locks.iter().try_for_each(|l| self.locked(l, clock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftwall::Timestamp;
    use std::fs;

    #[test]
    fn files_follow_locks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("192.0.2.99"), "stale").unwrap();
        fs::write(dir.path().join("README"), "not a client").unwrap();
        let cd = ClientDir::new(dir.path()).unwrap();
        let lock = LockEntry::new("192.0.2.10".parse().unwrap(), Timestamp::from_secs(100), None, None);
        // Engine time 100 s is the wall's 1970-01-01T00:01:40Z at this reading.
        let clock = Clock::at(Timestamp::from_secs(40), Timestamp::from_secs(40));
        cd.sync(&[lock], &clock).unwrap();
        assert!(!dir.path().join("192.0.2.99").exists());
        assert!(dir.path().join("README").exists());
        let body = fs::read_to_string(dir.path().join("192.0.2.10")).unwrap();
        assert!(body.contains("locked_until=1970-01-01T00:01:40Z"), "{body}");
        cd.released(lock.network()).unwrap();
        cd.released(lock.network()).unwrap();
        assert!(!dir.path().join("192.0.2.10").exists());
    }
}
