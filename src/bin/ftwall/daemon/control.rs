//! The control socket behind `ftwall ctl` (the protocol and its types: `protocol.rs`).
//!
//! One thread accepts connections and checks each caller's `SO_PEERCRED` at once: an
//! unauthorised caller gets the refusal and is closed without a byte of its request being read.
//! Authorised connections are answered on up to [`MAX_CONCURRENT`] threads at a time (further
//! connections wait in the listen backlog until a slot frees), each under whole-connection
//! deadlines, not per-read timeouts: the request must arrive complete within
//! [`REQUEST_DEADLINE`] and the answer be taken within [`ANSWER_DEADLINE`], so a client that
//! trickles its request holds a slot for at most [`REQUEST_DEADLINE`], and an operator's request
//! waits at most about that long however many such clients there are. An answer holds the daemon lock for as long as the
//! engine call takes (microseconds; a full listing is bounded by the LRU caps). An operator
//! change is saved by the writer thread after the lock is released; the answer waits for that
//! save, the packet threads never do.
//!
//! Access: the socket is created mode 0600 (umask set around `bind`, so there is no window with
//! looser permissions) and every connection's `SO_PEERCRED` must be root or the daemon's own
//! user. Operator changes are saved to the state file before the answer is sent.

use super::{lock, Daemon, Shared, SHUTDOWN_WAIT};
use crate::clock::{self, Clock};
use crate::events::log_event;
use crate::protocol::{
    net_text, Answer, Ban, Change, Counts, Done, LockedClient, Provenance, Request, Status, SuspectPeer,
    MAX_REQUEST,
};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Longest time a connection may take to send its whole request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Longest time a connection may take to read its whole answer (a full listing is a few MB).
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// Connections answered at once; more wait in the listen backlog.
const MAX_CONCURRENT: usize = 4;

/// The bound control socket; the socket file is removed on drop.
pub(super) struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` with mode 0600. A stale socket file (no daemon answering) is replaced; a
    /// live one, or anything that is not a socket, is an error (never deleted).
    pub(super) fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::files::create_dir_all(dir)?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket; not replacing it", path.display()),
                ));
            }
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by another process", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        // SAFETY: umask only swaps the process file-creation mask; restored right after bind.
        let old = unsafe { libc::umask(0o177) };
        let bound = UnixListener::bind(path);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let listener = bound?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener, path: path.to_path_buf() })
    }

    /// Serves requests until [`Shared::control_stop`] is set (see the module documentation).
    pub(super) fn serve(&self, shared: &Shared) {
        let mut fds = libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let busy = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            while !shared.control_stop.load(Ordering::Relaxed) {
                // SAFETY: one valid pollfd for the duration of the call.
                let ready = unsafe { libc::poll(&mut fds, 1, 50) };
                if ready <= 0 {
                    continue;
                }
                if busy.load(Ordering::Acquire) >= MAX_CONCURRENT {
                    // Every slot is taken: the next connection waits in the listen backlog until
                    // one frees, which the deadlines bound.
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        let Some(uid) = admit(&stream) else { continue };
                        busy.fetch_add(1, Ordering::AcqRel);
                        let busy = &busy;
                        let spawned = std::thread::Builder::new().name("ftwall-ctl".into()).spawn_scoped(
                            scope,
                            move || {
                                if let Err(e) = answer(stream, uid, shared) {
                                    log_event!(CONTROL_ERROR at DEBUG, error = %e, "control request failed");
                                }
                                busy.fetch_sub(1, Ordering::AcqRel);
                            },
                        );
                        if let Err(e) = spawned {
                            busy.fetch_sub(1, Ordering::AcqRel);
                            log_event!(CONTROL_ERROR, error = %e, "cannot start a control thread");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        log_event!(CONTROL_ERROR, error = %e, "accept on the control socket failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        });
    }
}

/// The caller's uid if it may control ftwall (root or the daemon's own user); anyone else is
/// logged, sent the refusal and closed at once, before anything is read from it.
fn admit(stream: &UnixStream) -> Option<u32> {
    let uid = match peer_uid(stream) {
        Ok(uid) => uid,
        Err(e) => {
            log_event!(CONTROL_ERROR at DEBUG, error = %e, "control request failed");
            return None;
        }
    };
    if uid == 0 || uid == crate::files::own_uid() {
        return Some(uid);
    }
    log_event!(CONTROL_REFUSED, uid, "control request from an unauthorised user refused");
    refuse(stream, "permission denied: only root and the daemon's user may control ftwall");
    None
}

/// Sends `why` as a failed answer without waiting (a small answer fits the socket buffer; if it
/// does not, it is lost), discards what the caller has already sent (without waiting for more:
/// closing on unread bytes would turn the caller's read of the answer into a reset), and
/// leaves the stream to be closed.
fn refuse(stream: &UnixStream, why: &str) {
    let mut text = Answer::Failed(why.into()).encode();
    text.push('\n');
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write_all(text.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 512];
    for _ in 0..MAX_REQUEST / sink.len() {
        if !matches!((&*stream).read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The uid of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes passed.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Reads one request line (at most [`MAX_REQUEST`] bytes) within `deadline` in total.
fn read_request(stream: &UnixStream, deadline: Instant) -> io::Result<String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request not complete within the deadline"));
        }
        stream.set_read_timeout(Some(left))?;
        let want = buf.len().min(MAX_REQUEST - line.len());
        let n = match (&*stream).read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        line.extend_from_slice(&buf[..n]);
        if n == 0 || line.contains(&b'\n') || line.len() >= MAX_REQUEST {
            break;
        }
    }
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    line.truncate(end);
    String::from_utf8(line).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request is not UTF-8"))
}

/// Writes all of `bytes` within `deadline` in total.
fn write_answer(stream: &UnixStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "answer not taken within the deadline"));
        }
        stream.set_write_timeout(Some(left))?;
        match (&*stream).write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Answers one authorised connection (see the module documentation for the deadlines).
fn answer(stream: UnixStream, uid: u32, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let line = read_request(&stream, Instant::now() + REQUEST_DEADLINE)?;
    let reply = match Request::parse(line.trim_end_matches('\r')) {
        Ok(request) => {
            let mut reply = lock(&shared.core).control(request, uid, shared);
            if let Answer::Done(done) = &mut reply {
                // Saved before the answer goes out, by the writer thread, outside the lock.
                let (path, snapshot, saved_at) = shared.take_snapshot();
                let saved = shared.writer.save_and_wait(path, snapshot, saved_at, SHUTDOWN_WAIT);
                done.saved = saved.is_ok();
            }
            reply
        }
        Err(e) => Answer::Failed(e),
    };
    let mut text = reply.encode();
    text.push('\n');
    write_answer(&stream, text.as_bytes(), Instant::now() + ANSWER_DEADLINE)
}

/// Why and since when, for the control protocol (a zero time is unknown: an older state file);
/// engine times are shown as dates through `clock`.
fn provenance(
    clock: &Clock,
    reason: Option<ftwall::Reason>,
    flow: Option<ftwall::engine::FlowTuple>,
    first_seen: ftwall::Timestamp,
    last_seen: ftwall::Timestamp,
) -> Provenance {
    let known = |t: ftwall::Timestamp| (t != ftwall::Timestamp::ZERO).then(|| clock.rfc3339(t));
    Provenance {
        reason: reason.map(|r| r.as_str().to_string()),
        flow: flow.map(|f| format!("{} {} > {}", f.proto.as_str(), f.client, f.peer)),
        first_seen: known(first_seen),
        last_seen: known(last_seen),
    }
}

impl Daemon {
    /// Executes one control request. An operator change answers [`Answer::Done`], and the
    /// caller saves the state (and sets `saved`) before sending it.
    fn control(&mut self, request: Request, uid: u32, shared: &Shared) -> Answer {
        // Every date shown is the engine's time through this one reading of both clocks.
        let clock = Clock::read();
        let now = clock.engine();
        let iso = |t| clock.rfc3339(t);
        match request {
            Request::Status => Answer::Status(Box::new(self.status(now, shared))),
            Request::Clients => Answer::Clients(
                self.engine
                    .locked_clients_at(now)
                    .map(|l| LockedClient {
                        client: l.client,
                        locked_until: iso(l.until),
                        remaining_seconds: l.until.saturating_since(now).as_secs(),
                        port: l.port,
                        network: l.network.map(|n| n.to_string()),
                        gateway: l.origin.map(|g| g.to_string()),
                        why: provenance(&clock, l.reason, l.flow, l.first_seen, l.last_seen),
                    })
                    .collect(),
            ),
            Request::Peers => Answer::Peers(
                self.engine
                    .peers()
                    .map(|p| SuspectPeer {
                        peer: p.addr,
                        port: p.port,
                        expires: p.expires.map(iso),
                        strength: Some(p.strength.as_str().to_string()),
                        client: p.client,
                        gateway: p.origin.map(|g| g.to_string()),
                        why: provenance(&clock, p.reason, p.flow, p.first_seen, p.last_seen),
                    })
                    .collect(),
            ),
            Request::Bans => Answer::Bans(
                self.engine
                    .bans()
                    .into_iter()
                    .map(|b| Ban {
                        addr: net_text(b.net),
                        until: b.until.map(iso),
                        remaining_seconds: b.until.map(|u| u.saturating_since(now).as_secs()),
                        reason: b.reason,
                        by_uid: b.by,
                        since: (b.since != ftwall::Timestamp::ZERO).then(|| iso(b.since)),
                        gateway: b.origin.map(|g| g.to_string()),
                    })
                    .collect(),
            ),
            Request::Exempt => {
                Answer::Exempt(self.config.engine.exempt.iter().map(|&net| net_text(net)).collect())
            }
            Request::Release(addr) => {
                let released = self.engine.release_client(addr);
                let forgotten = self.engine.forget_peer(addr);
                if !released && !forgotten {
                    return Answer::Failed(format!("{addr} is neither a locked client nor a suspect peer"));
                }
                log_event!(OPERATOR_RELEASE, addr = %addr, client_released = released, peer_forgotten = forgotten, uid, "released by the operator");
                let what = match (released, forgotten) {
                    (true, true) => "time-lock ended and suspect peer forgotten",
                    (true, false) => "time-lock ended",
                    _ => "suspect peer forgotten",
                };
                let change = Change::Released { client_released: released, peer_forgotten: forgotten };
                self.changed(shared, format!("{addr}: {what}"), change)
            }
            Request::Ban { net, seconds, reason } => {
                let ban = match self.engine.ban(now, net, seconds.map(Duration::from_secs), reason, Some(uid))
                {
                    Ok(ban) => ban,
                    Err(e) => return Answer::Failed(e.to_string()),
                };
                let until = ban.until;
                let network = net_text(ban.net);
                let until_text = until.map_or("until unbanned".to_string(), |u| format!("until {}", iso(u)));
                log_event!(
                    OPERATOR_BAN,
                    network = %network,
                    until = until.map(|u| tracing::field::display(iso(u))),
                    reason = ban.reason.as_deref(),
                    inside = self.config.engine.is_lan(ban.net.network()),
                    uid,
                    "banned by the operator"
                );
                self.changed(
                    shared,
                    format!("{network}: banned {until_text}"),
                    Change::Banned { until: until.map(iso) },
                )
            }
            Request::Unban(net) => {
                let Some(ban) = self.engine.unban(net) else {
                    // An address inside a banned network: name the ban to lift instead.
                    let covering = self.engine.ban_covering(net.addr(), now).map(|b| net_text(b.net));
                    return Answer::Failed(match covering {
                        Some(wider) => format!(
                            "{} is not banned itself; it is in the banned network {wider}",
                            net_text(net)
                        ),
                        None => format!("{} is not banned", net_text(net)),
                    });
                };
                let network = net_text(ban.net);
                log_event!(OPERATOR_UNBAN, network = %network, reason = ban.reason.as_deref(), uid, "ban lifted by the operator");
                self.changed(shared, format!("{network}: ban lifted"), Change::Unbanned)
            }
        }
    }

    /// An operator change: its effects go to their queues now, and the caller saves the state
    /// before answering (`saved` is set then).
    fn changed(&mut self, shared: &Shared, message: String, change: Change) -> Answer {
        self.drain(shared, None);
        Answer::Done(Done { message, change, saved: false })
    }

    fn status(&self, now: ftwall::Timestamp, shared: &Shared) -> Status {
        let s = self.engine.stats();
        let config = &self.config;
        let reasons =
            s.by_reason().filter(|&(_, n)| n > 0).map(|(r, n)| (r.as_str().to_string(), n)).collect();
        let counters = shared.counters.table().into_iter().chain(super::counters::engine_counters(s));
        Status {
            version: crate::version::VERSION.to_string(),
            pid: std::process::id(),
            uptime_seconds: shared.started.elapsed().as_secs(),
            started_at: clock::rfc3339(shared.started_at.as_secs()),
            mode: config.engine.mode,
            health: shared.health.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            offload: if shared.offload_rules_missing.load(Ordering::Relaxed) {
                "off: marked packets came back (offload rules missing)"
            } else if config.engine.offload.enabled {
                "on"
            } else {
                "off"
            }
            .to_string(),
            queues: shared.queue_numbers.clone(),
            config: shared.config_path.as_deref().map_or("(defaults)".into(), |p| p.display().to_string()),
            state_file: config.state_file.display().to_string(),
            packets: s.packets,
            accepted: s.accepted,
            dropped: s.dropped,
            reasons: Counts(reasons),
            locked_clients: self.engine.locked_clients_at(now).count(),
            suspect_peers: self.engine.peer_count(),
            bans: self.engine.ban_count(),
            flows: self.engine.flow_count(),
            cluster: shared.cluster.as_ref().map(|c| c.status()),
            counters: Counts(counters.map(|(key, _, _, value)| (key.to_string(), value)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_is_0600_replaces_stale_sockets_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/control.sock");
        let socket = ControlSocket::bind(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A live socket is not taken over.
        assert_eq!(ControlSocket::bind(&path).err().map(|e| e.kind()), Some(io::ErrorKind::AddrInUse));
        // A stale one (its listener gone, file left behind) is replaced.
        let stale = UnixListener::bind(dir.path().join("stale.sock")).unwrap();
        drop(stale);
        assert!(ControlSocket::bind(&dir.path().join("stale.sock")).is_ok());
        // Removed on drop.
        drop(socket);
        assert!(!path.exists());
        // Anything else at the path is left alone.
        let file = dir.path().join("precious");
        std::fs::write(&file, "keep").unwrap();
        assert_eq!(ControlSocket::bind(&file).err().map(|e| e.kind()), Some(io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    }
}
