//! Mirrors time-locked clients into the nftables sets `inet ftwall ft_clients` (IPv4) and
//! `ft_clients6` (IPv6) of `iptables/ftwall.nft`, so the kernel drops a locked client's traffic
//! to other ports before it is ever queued (`timelock.kernel_set = true`).
//!
//! Each change runs `nft -f -` with a one-transaction script; the daemon never waits for it in
//! the packet path. At most [`MAX_PENDING`] runs are in flight (beyond that the oldest is
//! waited for, so the number of child processes stays bounded); finished ones are reaped at
//! every housekeeping tick. Elements carry the lock's remaining time as their timeout, so the
//! kernel forgets a client when the daemon does, even if the daemon is gone.

use ftwall::engine::LockEntry;
use ftwall::Timestamp;
use std::io::Write;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};

/// Most `nft` runs in flight at once.
const MAX_PENDING: usize = 16;

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
#[derive(Debug, Default)]
pub(crate) struct KernelLockSet {
    pending: Vec<Child>,
    /// Runs that could not start or exited non-zero since the last [`KernelLockSet::reap`].
    failures: u64,
}

impl KernelLockSet {
    /// Starts `nft -f -` with `script`.
    pub(crate) fn apply(&mut self, script: &str) {
        if self.pending.len() >= MAX_PENDING {
            let mut oldest = self.pending.remove(0);
            if !oldest.wait().is_ok_and(|s| s.success()) {
                self.failures += 1;
            }
        }
        let child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(mut child) => {
                // A script is a few hundred bytes: it fits the pipe buffer, so this never blocks.
                if let Some(mut stdin) = child.stdin.take() {
                    if stdin.write_all(script.as_bytes()).is_err() {
                        self.failures += 1;
                    }
                }
                self.pending.push(child);
            }
            Err(_) => self.failures += 1,
        }
    }

    /// Collects finished runs; returns how many failed since the last call.
    pub(crate) fn reap(&mut self) -> u64 {
        let failures = &mut self.failures;
        self.pending.retain_mut(|child| match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    *failures += 1;
                }
                false
            }
            Ok(None) => true,
            Err(_) => {
                *failures += 1;
                false
            }
        });
        std::mem::take(&mut self.failures)
    }

    /// Waits for every run in flight (at shutdown).
    pub(crate) fn finish(&mut self) -> u64 {
        for mut child in self.pending.drain(..) {
            if !child.wait().is_ok_and(|s| s.success()) {
                self.failures += 1;
            }
        }
        std::mem::take(&mut self.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_right_set_and_timeout() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        assert_eq!(
            lock_script(
                &LockEntry { client: v4, until: Timestamp::from_micros(119_600_000), port: None },
                Timestamp::ZERO
            ),
            "add element inet ftwall ft_clients { 192.0.2.10 }\n\
             delete element inet ftwall ft_clients { 192.0.2.10 }\n\
             add element inet ftwall ft_clients { 192.0.2.10 timeout 119s }\n"
        );
        let expired = LockEntry { client: v6, until: Timestamp::from_secs(5), port: Some(3531) };
        assert!(lock_script(&expired, Timestamp::from_secs(9))
            .ends_with("ft_clients6 { 2001:db8::10 timeout 1s }\n"));
        assert_eq!(
            release_script(v6),
            "add element inet ftwall ft_clients6 { 2001:db8::10 }\n\
             delete element inet ftwall ft_clients6 { 2001:db8::10 }\n"
        );
    }
}
