//! `ftwall ctl`: asks the running daemon over its control socket.
//!
//! ## Protocol (what `socat - UNIX-CONNECT:/run/ftwall/control.sock` would speak)
//! The client sends one request line of at most [`MAX_REQUEST`] bytes; the daemon answers with
//! one JSON object on one line and closes the connection. Requests:
//! `status`, `clients`, `peers`, `bans`, `release ADDR`, `ban ADDR [SECONDS]`, `unban ADDR`.
//! Answers carry `"ok": true` plus the data, or `"ok": false` and `"error"`. The socket is mode
//! 0600 and the daemon also checks the caller's credentials: root or the daemon's own user.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Longest request line the daemon reads.
pub(crate) const MAX_REQUEST: usize = 1024;
/// Longest answer the client reads (a full peer and client listing is far smaller).
const MAX_ANSWER: u64 = 64 << 20;

/// Options of `ftwall ctl`.
#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    /// The control socket (default: `control.socket` from the configuration).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Configuration file naming the socket (default: /etc/ftwall/ftwall.toml if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the daemon's JSON answer instead of text.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum CtlCommand {
    /// Counters, state sizes and uptime.
    Status,
    /// Time-locked clients.
    Clients,
    /// Cached suspect peers.
    Peers,
    /// Operator bans.
    Bans,
    /// End a client's time-lock now, or forget a suspect peer.
    Release { addr: IpAddr },
    /// Drop all traffic of an address (an inside one keeps the time-lock's allowed ports).
    Ban {
        addr: IpAddr,
        /// Lift the ban after this many seconds (default: only by `unban`).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Lift a ban.
    Unban { addr: IpAddr },
}

/// A parsed request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    Status,
    Clients,
    Peers,
    Bans,
    Release(IpAddr),
    Ban(IpAddr, Option<u64>),
    Unban(IpAddr),
}

impl Request {
    /// Parses one request line (without its newline).
    pub(crate) fn parse(line: &str) -> Result<Self, String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let addr = |w: &str| w.parse::<IpAddr>().map_err(|_| format!("not an IP address: {w:?}"));
        match words.as_slice() {
            ["status"] => Ok(Self::Status),
            ["clients"] => Ok(Self::Clients),
            ["peers"] => Ok(Self::Peers),
            ["bans"] => Ok(Self::Bans),
            ["release", a] => Ok(Self::Release(addr(a)?)),
            ["ban", a] => Ok(Self::Ban(addr(a)?, None)),
            ["ban", a, s] => {
                let secs = s.parse::<u64>().ok().filter(|&n| n > 0).ok_or(format!("bad seconds: {s:?}"))?;
                Ok(Self::Ban(addr(a)?, Some(secs)))
            }
            ["unban", a] => Ok(Self::Unban(addr(a)?)),
            _ => Err(format!(
                "unknown request {line:?}; expected status, clients, peers, bans, release ADDR, ban ADDR [SECONDS] or unban ADDR"
            )),
        }
    }

    fn line(self) -> String {
        match self {
            Self::Status => "status".into(),
            Self::Clients => "clients".into(),
            Self::Peers => "peers".into(),
            Self::Bans => "bans".into(),
            Self::Release(a) => format!("release {a}"),
            Self::Ban(a, None) => format!("ban {a}"),
            Self::Ban(a, Some(s)) => format!("ban {a} {s}"),
            Self::Unban(a) => format!("unban {a}"),
        }
    }
}

pub(crate) fn run(args: CtlArgs) -> anyhow::Result<ExitCode> {
    let socket = match args.socket {
        Some(s) => s,
        None => crate::config::load_config(args.config.as_deref())?.0.control.socket,
    };
    let request = match args.command {
        CtlCommand::Status => Request::Status,
        CtlCommand::Clients => Request::Clients,
        CtlCommand::Peers => Request::Peers,
        CtlCommand::Bans => Request::Bans,
        CtlCommand::Release { addr } => Request::Release(addr),
        CtlCommand::Ban { addr, seconds } => {
            if seconds == Some(0) {
                bail!("--seconds must be at least 1");
            }
            Request::Ban(addr, seconds)
        }
        CtlCommand::Unban { addr } => Request::Unban(addr),
    };
    let answer = ask(&socket, request)?;
    if args.json {
        println!("{answer}");
    } else if answer["ok"] == Value::Bool(true) {
        print!("{}", render(request, &answer));
    }
    if answer["ok"] == Value::Bool(true) {
        Ok(ExitCode::SUCCESS)
    } else {
        if !args.json {
            eprintln!("ftwall ctl: {}", answer["error"].as_str().unwrap_or("request failed"));
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Sends one request and returns the daemon's JSON answer.
fn ask(socket: &std::path::Path, request: Request) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach the daemon at {} (is ftwall running? are you root?)", socket.display())
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(format!("{}\n", request.line()).as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    stream.take(MAX_ANSWER).read_to_string(&mut text).context("reading the daemon's answer")?;
    serde_json::from_str(text.trim_end()).map_err(|e| anyhow!("unreadable answer from the daemon: {e}"))
}

fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Text rendering of a successful answer.
fn render(request: Request, answer: &Value) -> String {
    let rows = |key: &str, columns: &[(&str, &str)]| {
        let items = answer[key].as_array().cloned().unwrap_or_default();
        let mut table: Vec<Vec<String>> = vec![columns.iter().map(|(_, title)| title.to_string()).collect()];
        table.extend(items.iter().map(|item| columns.iter().map(|(k, _)| str_of(&item[*k])).collect()));
        let widths: Vec<usize> =
            (0..columns.len()).map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for row in &table {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out.push_str(&format!("({} {key})\n", items.len()));
        out
    };
    match request {
        Request::Status => {
            let mut out = String::new();
            if let Some(map) = answer["status"].as_object() {
                for (k, v) in map {
                    if let Some(inner) = v.as_object() {
                        let parts: Vec<String> =
                            inner.iter().map(|(ik, iv)| format!("{ik}={}", str_of(iv))).collect();
                        out.push_str(&format!(
                            "{k:<20} {}\n",
                            if parts.is_empty() { "-".into() } else { parts.join(" ") }
                        ));
                    } else {
                        out.push_str(&format!("{k:<20} {}\n", str_of(v)));
                    }
                }
            }
            out
        }
        Request::Clients => rows(
            "clients",
            &[
                ("client", "CLIENT"),
                ("locked_until", "LOCKED UNTIL"),
                ("remaining_seconds", "REMAINING S"),
                ("port", "FASTTRACK PORT"),
            ],
        ),
        Request::Peers => rows("peers", &[("peer", "PEER"), ("port", "PORT"), ("expires", "EXPIRES")]),
        Request::Bans => rows("bans", &[("addr", "ADDRESS"), ("until", "UNTIL")]),
        Request::Release(_) | Request::Ban(..) | Request::Unban(_) => {
            format!("{}\n", answer["message"].as_str().unwrap_or("done"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip_and_reject_garbage() {
        let a: IpAddr = "192.0.2.10".parse().unwrap();
        for r in [
            Request::Status,
            Request::Clients,
            Request::Peers,
            Request::Bans,
            Request::Release(a),
            Request::Ban(a, None),
            Request::Ban("2001:db8::1".parse().unwrap(), Some(60)),
            Request::Unban(a),
        ] {
            assert_eq!(Request::parse(&r.line()), Ok(r));
        }
        assert_eq!(Request::parse("  status  "), Ok(Request::Status));
        for bad in [
            "",
            "stat",
            "ban",
            "ban nowhere",
            "ban 192.0.2.1 0",
            "ban 192.0.2.1 -5",
            "release 1 2",
            "status x",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let answer = serde_json::json!({"ok": true, "peers": [
            {"peer": "198.51.100.20", "port": 1214, "expires": "2026-11-24T10:00:00Z"},
            {"peer": "2001:db8::20", "port": null, "expires": null},
        ]});
        let text = render(Request::Peers, &answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PEER           PORT  EXPIRES");
        assert_eq!(lines[1], "198.51.100.20  1214  2026-11-24T10:00:00Z");
        assert_eq!(lines[2], "2001:db8::20   -     -");
        assert_eq!(lines[3], "(2 peers)");
    }
}
