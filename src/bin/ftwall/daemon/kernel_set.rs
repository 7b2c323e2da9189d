//! Mirrors time-locked clients into the nftables sets `inet ftwall ft_clients` (IPv4) and
//! `ft_clients6` (IPv6) of `iptables/ftwall.nft`, so the kernel drops a locked client's traffic
//! to other ports before it is ever queued (`timelock.kernel_set = true`).
//!
//! Each change becomes a short nft script, queued in order. One `nft -f -` runs at a time and
//! applies every script queued so far (up to [`MAX_BATCH`]) as one transaction, so changes to
//! the same client land in the order the engine made them; the next batch starts when the run
//! is collected, from the packet path without waiting or at the next housekeeping tick. The
//! daemon never waits for `nft` except at shutdown. The backlog is capped at [`MAX_BACKLOG`]
//! scripts (more are refused and counted as failures). Elements carry the lock's remaining time
//! as their timeout, so the kernel forgets a client when the daemon does, even if the daemon is
//! gone.

use ftwall::engine::LockEntry;
use ftwall::Timestamp;
use std::collections::VecDeque;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Most scripts applied by one `nft` run (a few hundred bytes each: the batch fits a pipe
/// buffer).
const MAX_BATCH: usize = 128;
/// Most scripts waiting for `nft`.
const MAX_BACKLOG: usize = 16_384;

/// The nft script that sets the locked client's element to expire when its lock does, as seen
/// at `now`. `add` of an existing element keeps its old timeout, so the script adds (a no-op if
/// present), deletes and adds again, in one transaction (nft 1.0.6 has no `destroy`).
pub(crate) fn lock_script(lock: &LockEntry, now: Timestamp) -> String {
    let client = lock.client;
    let set = set_name(client);
    let secs = lock.until.saturating_since(now).as_secs().max(1);
    format!(
        "add element inet ftwall {set} {{ {client} }}\n\
         delete element inet ftwall {set} {{ {client} }}\n\
         add element inet ftwall {set} {{ {client} timeout {secs}s }}\n"
    )
}

/// The nft script that removes `client`'s element, present or not.
pub(crate) fn release_script(client: IpAddr) -> String {
    let set = set_name(client);
    format!("add element inet ftwall {set} {{ {client} }}\ndelete element inet ftwall {set} {{ {client} }}\n")
}

fn set_name(client: IpAddr) -> &'static str {
    match client {
        IpAddr::V4(_) => "ft_clients",
        IpAddr::V6(_) => "ft_clients6",
    }
}

/// Runs the scripts; see the module documentation.
#[derive(Debug)]
pub(crate) struct KernelLockSet {
    /// The program run (`nft`; tests put a recorder in its place).
    program: PathBuf,
    /// The one `nft` run in flight, if any, and whether its whole script reached it.
    running: Option<(Child, bool)>,
    /// Scripts waiting for it to finish, oldest first.
    backlog: VecDeque<String>,
    /// Runs that could not start or exited non-zero, and scripts refused because the backlog
    /// was full, since the last [`KernelLockSet::reap`].
    failures: u64,
}

impl Default for KernelLockSet {
    fn default() -> Self {
        Self::with_program("nft")
    }
}

impl KernelLockSet {
    fn with_program(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), running: None, backlog: VecDeque::new(), failures: 0 }
    }

    /// Queues `script` and starts `nft` if none is running.
    pub(crate) fn apply(&mut self, script: &str) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.failures += 1;
            return;
        }
        self.backlog.push_back(script.to_string());
        self.collect(false);
        self.start();
    }

    /// Collects a finished run and starts the next batch; returns how many runs or scripts
    /// failed since the last call.
    pub(crate) fn reap(&mut self) -> u64 {
        self.collect(false);
        self.start();
        std::mem::take(&mut self.failures)
    }

    /// Runs everything still queued and waits for it (at shutdown).
    pub(crate) fn finish(&mut self) -> u64 {
        loop {
            self.collect(true);
            if self.backlog.is_empty() {
                return std::mem::take(&mut self.failures);
            }
            self.start();
        }
    }

    /// Forgets the running `nft` once it has exited (waiting for it if `block`), counting a
    /// failure if it did not succeed.
    fn collect(&mut self, block: bool) {
        let Some((child, delivered)) = &mut self.running else { return };
        let status = if block { child.wait().map(Some) } else { child.try_wait() };
        match status {
            Ok(None) => return,
            Ok(Some(status)) if status.success() && *delivered => {}
            _ => self.failures += 1,
        }
        self.running = None;
    }

    /// Starts `nft -f -` with up to [`MAX_BATCH`] queued scripts as one transaction, unless a
    /// run is already in flight.
    fn start(&mut self) {
        if self.running.is_some() || self.backlog.is_empty() {
            return;
        }
        let take = self.backlog.len().min(MAX_BATCH);
        let script: String = self.backlog.drain(..take).collect();
        let child = Command::new(&self.program)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(mut child) => {
                // At most MAX_BATCH scripts of a few hundred bytes: within the pipe buffer, so
                // this write never blocks. A run that did not get all of it counts as failed.
                let delivered =
                    child.stdin.take().is_some_and(|mut stdin| stdin.write_all(script.as_bytes()).is_ok());
                self.running = Some((child, delivered));
            }
            Err(_) => self.failures += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `nft -f -` that appends each run's script, then a separator, to `log`.
    fn recorder(dir: &std::path::Path, log: &std::path::Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("nft");
        std::fs::write(&path, format!("#!/bin/sh\ncat >> {0}\necho --- >> {0}\nsleep 0.05\n", log.display()))
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn one_run_at_a_time_in_order_with_the_backlog_batched() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut set = KernelLockSet::with_program(recorder(dir.path(), &log));
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        let b: IpAddr = "192.0.2.11".parse().unwrap();
        let lock = |client| LockEntry { client, until: Timestamp::from_secs(60), port: None, peer: None };
        set.apply(&lock_script(&lock(a), Timestamp::ZERO));
        set.apply(&release_script(a));
        set.apply(&lock_script(&lock(b), Timestamp::ZERO));
        assert_eq!(set.finish(), 0);
        let runs: Vec<String> =
            std::fs::read_to_string(&log).unwrap().split("---\n").map(str::to_string).collect();
        // The first change started a run at once; the two queued behind it went together.
        assert_eq!(
            runs,
            vec![
                lock_script(&lock(a), Timestamp::ZERO),
                release_script(a) + &lock_script(&lock(b), Timestamp::ZERO),
                String::new(),
            ]
        );
    }

    #[test]
    fn failed_runs_are_counted() {
        let mut set = KernelLockSet::with_program("false");
        set.apply(&release_script("192.0.2.10".parse().unwrap()));
        assert_eq!(set.finish(), 1);
        let mut missing = KernelLockSet::with_program("/nonexistent/nft");
        missing.apply(&release_script("192.0.2.10".parse().unwrap()));
        assert_eq!(missing.reap(), 1);
    }

    #[test]
    fn scripts_name_the_right_set_and_timeout() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        assert_eq!(
            lock_script(
                &LockEntry { client: v4, until: Timestamp::from_micros(119_600_000), port: None, peer: None },
                Timestamp::ZERO
            ),
            "add element inet ftwall ft_clients { 192.0.2.10 }\n\
             delete element inet ftwall ft_clients { 192.0.2.10 }\n\
             add element inet ftwall ft_clients { 192.0.2.10 timeout 119s }\n"
        );
        let expired = LockEntry { client: v6, until: Timestamp::from_secs(5), port: Some(3531), peer: None };
        assert!(lock_script(&expired, Timestamp::from_secs(9))
            .ends_with("ft_clients6 { 2001:db8::10 timeout 1s }\n"));
        assert_eq!(
            release_script(v6),
            "add element inet ftwall ft_clients6 { 2001:db8::10 }\n\
             delete element inet ftwall ft_clients6 { 2001:db8::10 }\n"
        );
    }
}
