//! The NFQUEUE socket: the `nfq` crate plus the socket options it does not expose.
//!
//! nfq 0.2.5 hides its netlink file descriptor. Right after `Queue::open()` we find it by
//! scanning `/proc/self/fd` for a socket whose `SO_PROTOCOL` is `NETLINK_NETFILTER` (the method
//! `nfqueue-practice.md` verified), and set on it:
//! - `SO_RCVTIMEO`, so `recv` returns `EAGAIN` periodically: signal-hook installs its handlers
//!   with `SA_RESTART`, so signals alone would never wake a blocking `recv`; the timeout gives the
//!   packet loop its tick (timers, watchdog, signals, state saves);
//! - `SO_RCVBUFFORCE` (falling back to `SO_RCVBUF`), sized for `queue_maxlen` packets (or
//!   `socket_buffer` bytes).

use crate::config::DaemonConfig;
use anyhow::{bail, Context};
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

const NETLINK_NETFILTER: libc::c_int = 12;

/// How long `recv` blocks before the loop gets a tick.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// How a queue is bound: the kernel-side options set by [`NfQueue::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueOptions {
    /// Let the kernel accept packets when the queue or the socket buffer is full.
    pub(crate) fail_open: bool,
    /// Kernel queue length, in packets.
    pub(crate) maxlen: u32,
    /// Bytes of each packet copied to user space.
    pub(crate) copy_range: u16,
    /// Receive buffer in bytes; 0 sizes it for `maxlen` packets of `copy_range` bytes.
    pub(crate) socket_buffer: u32,
}

impl QueueOptions {
    /// The options `config` asks for.
    pub(crate) const fn of(config: &DaemonConfig) -> Self {
        Self {
            fail_open: config.fail_open,
            maxlen: config.queue_maxlen,
            copy_range: config.copy_range,
            socket_buffer: config.socket_buffer,
        }
    }
}

impl Default for QueueOptions {
    /// The defaults of the configuration keys `fail_open`, `queue_maxlen`, `copy_range` and
    /// `socket_buffer`.
    fn default() -> Self {
        Self::of(&DaemonConfig::default())
    }
}

/// One bound NFQUEUE: the only owner of the netlink socket. Everything the packet loop says to
/// the kernel goes through its methods (receive, verdict, repeat with a mark, batch accept,
/// release), so no caller reaches into `nfq` itself.
pub(crate) struct NfQueue {
    queue: nfq::Queue,
    pub(crate) number: u16,
    /// Optional queue settings the kernel refused (logged by the caller).
    pub(crate) warnings: Vec<String>,
    fd: RawFd,
}

/// `NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_VERDICT_BATCH`.
const VERDICT_BATCH_TYPE: u16 = (3 << 8) | 3;
const NFQA_VERDICT_HDR: u16 = 2;
/// `NF_ACCEPT`.
pub(crate) const NF_ACCEPT: u32 = 1;

/// The 32-byte netlink message that applies `verdict` to every packet of `queue` with an id up
/// to `max_id` (`NFQNL_MSG_VERDICT_BATCH`; nfq 0.2.5 has no API for it).
pub(crate) fn batch_verdict_message(queue: u16, verdict: u32, max_id: u32) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0..4].copy_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    m[4..6].copy_from_slice(&VERDICT_BATCH_TYPE.to_ne_bytes()); // nlmsg_type
    m[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes()); // nlmsg_flags
                                                                          // nlmsg_seq, nlmsg_pid: 0. nfgenmsg: AF_UNSPEC, version 0, queue number (big-endian).
    m[18..20].copy_from_slice(&queue.to_be_bytes());
    m[20..22].copy_from_slice(&12u16.to_ne_bytes()); // nla_len
    m[22..24].copy_from_slice(&NFQA_VERDICT_HDR.to_ne_bytes()); // nla_type
    m[24..28].copy_from_slice(&verdict.to_be_bytes());
    m[28..32].copy_from_slice(&max_id.to_be_bytes());
    m
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len point to valid, correctly sized storage.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
    (rc == 0).then_some(value)
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a valid T for the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Finds the newest NETLINK_NETFILTER socket of this process.
fn find_netfilter_fd() -> io::Result<RawFd> {
    let mut best = None;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(fd) = entry?.file_name().to_string_lossy().parse::<RawFd>() else { continue };
        let is_netfilter = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL) == Some(NETLINK_NETFILTER);
        if is_netfilter && best.is_none_or(|b| fd > b) {
            best = Some(fd);
        }
    }
    best.ok_or_else(|| io::Error::other("no NETLINK_NETFILTER socket found in /proc/self/fd"))
}

impl NfQueue {
    /// Opens, binds and configures the queue. Unsupported optional flags become warnings.
    pub(crate) fn open(options: QueueOptions, number: u16) -> anyhow::Result<Self> {
        let mut queue = match nfq::Queue::open() {
            Ok(q) => q,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                bail!("opening the netfilter queue socket was refused: ftwall needs CAP_NET_ADMIN ({e})")
            }
            Err(e) => return Err(e).context("opening the netfilter queue socket"),
        };
        let fd = find_netfilter_fd().context("locating the NFQUEUE socket")?;
        if let Err(e) = queue.bind(number) {
            if e.raw_os_error() == Some(libc::EPERM) {
                bail!(
                    "binding NFQUEUE {number} was refused: ftwall needs CAP_NET_ADMIN, and no other process may hold \
                     the queue ({e})"
                );
            }
            return Err(e).with_context(|| format!("binding NFQUEUE {number}"));
        }
        let mut warnings = Vec::new();
        let mut optional = |what: &str, r: io::Result<()>| {
            if let Err(e) = r {
                warnings.push(format!("{what}: {e}"));
            }
        };
        optional("fail-open", queue.set_fail_open(number, options.fail_open));
        optional("queue max length", queue.set_queue_max_len(number, options.maxlen));
        optional("copy range", queue.set_copy_range(number, options.copy_range));
        optional("GSO", queue.set_recv_gso(number, true));
        // Report socket-buffer overflows as ENOBUFS so they are counted, not silent.
        optional("ENOBUFS reporting", queue.set_recv_enobufs(true));
        let timeout = libc::timeval { tv_sec: 0, tv_usec: TICK.as_micros() as libc::suseconds_t };
        optional("receive timeout", setsockopt(fd, libc::SO_RCVTIMEO, &timeout));
        let per_packet = usize::from(options.copy_range) + 256;
        let wanted = match options.socket_buffer {
            0 => options.maxlen as usize * per_packet,
            explicit => explicit as usize,
        };
        let size = libc::c_int::try_from(wanted).unwrap_or(libc::c_int::MAX);
        if setsockopt(fd, libc::SO_RCVBUFFORCE, &size).is_err() {
            optional("receive buffer", setsockopt(fd, libc::SO_RCVBUF, &size));
        }
        Ok(Self { queue, number, warnings, fd })
    }
}

impl NfQueue {
    /// The next queued packet. `EAGAIN` when non-blocking and nothing waits, `ENOBUFS` when the
    /// socket buffer overflowed (packets were lost or accepted by fail-open).
    pub(crate) fn recv(&mut self) -> io::Result<nfq::Message> {
        self.queue.recv()
    }

    /// Switches [`NfQueue::recv`] between blocking and non-blocking.
    pub(crate) fn set_nonblocking(&mut self, nonblocking: bool) {
        self.queue.set_nonblocking(nonblocking);
    }

    /// Sends a plain ACCEPT or DROP for `msg`.
    pub(crate) fn verdict(&mut self, mut msg: nfq::Message, verdict: ftwall::Verdict) -> io::Result<()> {
        msg.set_verdict(match verdict {
            ftwall::Verdict::Accept => nfq::Verdict::Accept,
            ftwall::Verdict::Drop => nfq::Verdict::Drop,
        });
        self.queue.verdict(msg)
    }

    /// Sets `mark` in the `mask` bits of the packet's mark (keeping the other bits) and sends
    /// REPEAT: the packet traverses the hook again, where the rules act on the mark.
    pub(crate) fn repeat_with_mark(&mut self, mut msg: nfq::Message, mark: u32, mask: u32) -> io::Result<()> {
        msg.set_nfmark((msg.get_nfmark() & !mask) | (mark & mask));
        msg.set_verdict(nfq::Verdict::Repeat);
        self.queue.verdict(msg)
    }

    /// Unbinds the queue: from now on the kernel applies the rules' bypass (or drops).
    pub(crate) fn release(&mut self) -> io::Result<()> {
        self.queue.unbind(self.number)
    }

    /// Accepts every still-queued packet with an id up to `max_id`, in one message.
    pub(crate) fn accept_up_to(&self, max_id: u32) -> io::Result<()> {
        let message = batch_verdict_message(self.number, NF_ACCEPT, max_id);
        // SAFETY: sockaddr_nl is plain data; zeroed (pid 0 = the kernel) is valid.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: message and address are valid for the lengths given; fd is the queue socket.
        let rc = unsafe {
            libc::sendto(
                self.fd,
                message.as_ptr().cast(),
                message.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The kernel's counters for one queue, from `/proc/net/netfilter/nfnetlink_queue`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KernelCounters {
    pub(crate) queue_total: u64,
    pub(crate) queue_dropped: u64,
    pub(crate) user_dropped: u64,
    /// The id of the last packet the kernel queued.
    pub(crate) id_sequence: u32,
}

/// Parses the proc file; None if the queue is not listed.
pub(crate) fn parse_proc(text: &str, queue: u16) -> Option<KernelCounters> {
    text.lines().find_map(|line| {
        let f: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        (f.len() >= 7 && f[0] == u64::from(queue)).then(|| KernelCounters {
            queue_total: f[2],
            queue_dropped: f[5],
            user_dropped: f[6],
            id_sequence: f.get(7).and_then(|&n| u32::try_from(n).ok()).unwrap_or(0),
        })
    })
}

/// The kernel's per-queue counters file (None if unreadable, e.g. without root or the
/// unit's `chgrp`); parse it with [`parse_proc`].
pub(crate) fn read_proc() -> Option<String> {
    std::fs::read_to_string("/proc/net/netfilter/nfnetlink_queue").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_verdict_layout() {
        let m = batch_verdict_message(7, NF_ACCEPT, 0x0102_0304);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 0x0303, "type 3, not CONFIG (2)");
        assert_eq!(&m[16..20], &[0, 0, 0, 7], "AF_UNSPEC, version 0, queue 7 big-endian");
        assert_eq!(&m[20..24], &[12, 0, 2, 0][..], "NFQA_VERDICT_HDR of 12 bytes (little-endian host)");
        assert_eq!(&m[24..32], &[0, 0, 0, 1, 1, 2, 3, 4]);
    }

    #[test]
    fn proc_file_is_parsed() {
        let text =
            "    0  12345     3 2 2304     7    9  1000  1\n    1  12346     0 2 2304     0    0     0  1\n";
        assert_eq!(
            parse_proc(text, 0),
            Some(KernelCounters { queue_total: 3, queue_dropped: 7, user_dropped: 9, id_sequence: 1000 })
        );
        assert_eq!(parse_proc(text, 1).unwrap().queue_dropped, 0);
        assert_eq!(parse_proc(text, 2), None);
    }
}
