//! `ftwall ctl`: asks the running daemon over its control socket and prints the answer, as the
//! daemon's JSON line (`--json`) or as text. The protocol, requests and typed answers, is in
//! `protocol.rs`; this file only turns the command line into a [`Request`] and an [`Answer`] into
//! text.

use crate::protocol::{Answer, Provenance, Request, Status, MAX_ANSWER};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
        /// Lift the ban after this many seconds, at most 31536000 (365 days) (default: only by
        /// `unban`).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Lift a ban.
    Unban { addr: IpAddr },
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
            if seconds.is_some_and(|s| s > ftwall::engine::MAX_BAN_SECONDS) {
                bail!(
                    "--seconds is at most {} (365 days); without --seconds a ban lasts until unbanned",
                    ftwall::engine::MAX_BAN_SECONDS
                );
            }
            Request::Ban(addr, seconds)
        }
        CtlCommand::Unban { addr } => Request::Unban(addr),
    };
    let line = ask(&socket, request)?;
    let answer =
        Answer::decode(request, &line).map_err(|e| anyhow!("unreadable answer from the daemon: {e}"))?;
    if args.json {
        // The daemon's line as it came: scripts read exactly what the daemon wrote.
        println!("{line}");
    }
    if let Answer::Failed(error) = &answer {
        if !args.json {
            eprintln!("ftwall ctl: {error}");
        }
        return Ok(ExitCode::FAILURE);
    }
    if !args.json {
        print!("{}", render(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends one request and returns the daemon's answer line (without its newline).
fn ask(socket: &std::path::Path, request: Request) -> anyhow::Result<String> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach the daemon at {} (is ftwall running? are you root?)", socket.display())
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    // The daemon answers a refused caller without reading its request and closes at once, so
    // a failed write is not the end: its answer may be waiting.
    let _ = stream.write_all(format!("{request}\n").as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut text = String::new();
    match stream.take(MAX_ANSWER).read_to_string(&mut text) {
        // A refused caller's request was never read; the kernel reports that as a reset after
        // the answer.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !text.is_empty() => {}
        other => drop(other.context("reading the daemon's answer")?),
    }
    text.truncate(text.trim_end().len());
    Ok(text)
}

/// One value as text: strings as they are, null as `-`, anything else as compact JSON.
fn cell<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) => "-".into(),
        Ok(other) => other.to_string(),
        Err(e) => format!("({e})"),
    }
}

/// `key=value` pairs on one line, `-` when there are none.
fn pairs<'a>(items: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let parts: Vec<String> = items.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(" ")
    }
}

/// Text rendering of a successful answer (a failure renders as nothing; its error goes to
/// stderr).
fn render(answer: &Answer) -> String {
    match answer {
        Answer::Status(status) => status_text(status),
        Answer::Clients(clients) => table_with_details(
            "clients",
            &["CLIENT", "LOCKED UNTIL", "REMAINING S", "FASTTRACK PORT"],
            clients.iter().map(|c| {
                let client = c.network.clone().unwrap_or_else(|| c.client.to_string());
                let row = vec![client, cell(&c.locked_until), cell(&c.remaining_seconds), cell(&c.port)];
                let last = c.network.as_ref().map(|_| format!("last address {}", c.client));
                (row, details(&c.why, last.into_iter().chain(via(&c.gateway))))
            }),
        ),
        Answer::Peers(peers) => table_with_details(
            "peers",
            &["PEER", "PORT", "STRENGTH", "CLIENT", "EXPIRES"],
            peers.iter().map(|p| {
                let row =
                    vec![cell(&p.peer), cell(&p.port), cell(&p.strength), cell(&p.client), cell(&p.expires)];
                (row, details(&p.why, via(&p.gateway)))
            }),
        ),
        Answer::Bans(bans) => table(
            "bans",
            &["ADDRESS", "UNTIL", "GATEWAY"],
            bans.iter().map(|b| vec![cell(&b.addr), cell(&b.until), cell(&b.gateway)]),
        ),
        Answer::Done(done) => format!("{}\n", done.message),
        Answer::Failed(_) => String::new(),
    }
}

/// The line naming the gateway of the cluster an entry was learned from, if another one.
fn via(gateway: &Option<String>) -> Option<String> {
    gateway.as_ref().map(|g| format!("via:  gateway {g}"))
}

/// The indented lines under a row of `clients` or `peers`: why (the tell and its flow), since
/// when, then `extra` (the last address of a prefix, the gateway it came from); none when
/// nothing is known (an entry from an older state file, learned here).
fn details(why: &Provenance, extra: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut lines = Vec::new();
    match (&why.reason, &why.flow) {
        (Some(reason), Some(flow)) => lines.push(format!("why:  {reason} on {flow}")),
        (Some(reason), None) => lines.push(format!("why:  {reason}")),
        _ => {}
    }
    match (&why.first_seen, &why.last_seen) {
        (Some(first), Some(last)) => lines.push(format!("seen: {first} .. {last}")),
        (Some(first), None) => lines.push(format!("seen: {first}")),
        _ => {}
    }
    lines.extend(extra);
    lines
}

/// [`table`], with indented detail lines under each row.
fn table_with_details(
    what: &str,
    titles: &[&str],
    rows: impl Iterator<Item = (Vec<String>, Vec<String>)>,
) -> String {
    let (rows, details): (Vec<Vec<String>>, Vec<Vec<String>>) = rows.unzip();
    let text = table(what, titles, rows.into_iter());
    let mut lines = text.lines();
    let mut out = String::new();
    out.push_str(lines.next().unwrap_or_default());
    out.push('\n');
    for detail in &details {
        out.push_str(lines.next().unwrap_or_default());
        out.push('\n');
        for line in detail {
            out.push_str(&format!("    {line}\n"));
        }
    }
    for rest in lines {
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// Aligned columns under `titles`, then `(N what)`.
fn table(what: &str, titles: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table: Vec<Vec<String>> = vec![titles.iter().map(|t| t.to_string()).collect()];
    table.extend(rows);
    let widths: Vec<usize> =
        (0..titles.len()).map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("({} {what})\n", table.len() - 1));
    out
}

/// One `key value` line per status field, in wire order; objects as `key=value` pairs.
fn status_text(s: &Status) -> String {
    let h = &s.health;
    let health = [("state", cell(&h.state)), ("reasons", cell(&h.reasons)), ("queues", cell(&h.queues))];
    let reasons = s.reasons.0.iter().map(|(name, n)| (name.as_str(), cell(n)));
    let mut lines = vec![
        ("version", cell(&s.version)),
        ("pid", cell(&s.pid)),
        ("uptime_seconds", cell(&s.uptime_seconds)),
        ("started_at", cell(&s.started_at)),
        ("mode", cell(&s.mode)),
        ("health", pairs(health)),
        ("offload", cell(&s.offload)),
        ("queues", cell(&s.queues)),
        ("config", cell(&s.config)),
        ("state_file", cell(&s.state_file)),
        ("packets", cell(&s.packets)),
        ("accepted", cell(&s.accepted)),
        ("dropped", cell(&s.dropped)),
        ("reasons", pairs(reasons)),
        ("locked_clients", cell(&s.locked_clients)),
        ("suspect_peers", cell(&s.suspect_peers)),
        ("bans", cell(&s.bans)),
        ("flows", cell(&s.flows)),
    ];
    if let Some(c) = &s.cluster {
        let cluster = [
            ("node_id", cell(&c.node_id)),
            ("connected", cell(&c.connected)),
            ("gateways_seen", cell(&c.gateways_seen)),
            ("last_sync", cell(&c.last_sync)),
            ("outbox_depth", cell(&c.outbox_depth)),
            ("last_lag_us", cell(&c.last_lag_us)),
        ];
        lines.push(("cluster", pairs(cluster)));
    }
    lines.extend(s.counters.0.iter().map(|(name, n)| (name.as_str(), cell(n))));
    lines.iter().map(|(key, value)| format!("{key:<20} {value}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Counts, HealthReport, LockedClient, SuspectPeer};

    #[test]
    fn tables_align_columns() {
        let answer = Answer::Peers(vec![
            SuspectPeer {
                peer: "198.51.100.20".parse().unwrap(),
                port: Some(1214),
                expires: Some("2026-11-24T10:00:00Z".into()),
                strength: Some("weak".into()),
                client: Some("192.0.2.10".parse().unwrap()),
                gateway: Some("gw-b".into()),
                why: Provenance {
                    reason: Some("udp_ping".into()),
                    flow: Some("udp 192.0.2.10:3531 > 198.51.100.20:1214".into()),
                    first_seen: Some("2026-11-24T09:00:00Z".into()),
                    last_seen: Some("2026-11-24T09:00:05Z".into()),
                },
            },
            SuspectPeer {
                peer: "2001:db8::20".parse().unwrap(),
                port: None,
                expires: None,
                strength: None,
                client: None,
                gateway: None,
                why: Provenance::default(),
            },
        ]);
        let text = render(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PEER           PORT  STRENGTH  CLIENT      EXPIRES");
        assert_eq!(lines[1], "198.51.100.20  1214  weak      192.0.2.10  2026-11-24T10:00:00Z");
        assert_eq!(lines[2], "    why:  udp_ping on udp 192.0.2.10:3531 > 198.51.100.20:1214");
        assert_eq!(lines[3], "    seen: 2026-11-24T09:00:00Z .. 2026-11-24T09:00:05Z");
        assert_eq!(lines[4], "    via:  gateway gw-b");
        assert_eq!(lines[5], "2001:db8::20   -     -         -           -");
        assert_eq!(lines[6], "(2 peers)");
        assert!(lines.iter().all(|l| l.len() <= 80), "80 columns for IPv4: {text}");
        let prefix = Answer::Clients(vec![LockedClient {
            client: "2001:db8:1::10".parse().unwrap(),
            locked_until: "2026-11-24T10:00:00Z".into(),
            remaining_seconds: 7,
            port: None,
            network: Some("2001:db8:1::/64".into()),
            gateway: Some("gw-a".into()),
            why: Provenance { reason: Some("tcp_opener".into()), ..Provenance::default() },
        }]);
        let text = render(&prefix);
        assert_eq!(
            text,
            "CLIENT           LOCKED UNTIL          REMAINING S  FASTTRACK PORT\n\
             2001:db8:1::/64  2026-11-24T10:00:00Z  7            -\n    \
             why:  tcp_opener\n    \
             last address 2001:db8:1::10\n    \
             via:  gateway gw-a\n\
             (1 clients)\n"
        );
        assert_eq!(render(&Answer::Bans(vec![])), "ADDRESS  UNTIL  GATEWAY\n(0 bans)\n");
    }

    /// The text is what `ctl` printed when it rendered the JSON generically (captured from that
    /// renderer), and names every field of the wire object in wire order.
    #[test]
    fn status_text_is_unchanged_and_covers_every_field() {
        let (status, line) = crate::protocol::tests::sample_status();
        let text = status_text(&status);
        assert_eq!(
            text,
            r#"version              0.1.0 (v0.1.0-5-gabc, 2026-12-01)
pid                  4242
uptime_seconds       75
started_at           2026-12-02T06:00:00Z
mode                 enforce
health               state=degraded reasons=["queue 0: kernel dropped 3 packets"] queues=[{"queue":0,"received":10,"waiting":0,"occupancy_percent":0,"unread":0,"since_last_verdict_ms":12,"verdict_lag_us":null}]
offload              on
queues               [0,1]
config               /etc/ftwall/ftwall.toml
state_file           /var/lib/ftwall/state.json
packets              10
accepted             7
dropped              3
reasons              udp_ping=2 tcp_opener=1
locked_clients       1
suspect_peers        2
bans                 0
flows                5
flows_offloaded      1
spoofed_pongs        2
"#
        );
        let wire: Value = serde_json::from_str(line).unwrap();
        let wire_keys: Vec<&str> = wire["status"].as_object().unwrap().keys().map(String::as_str).collect();
        let text_keys: Vec<&str> = text.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
        assert_eq!(text_keys, wire_keys);

        let quiet = Status {
            health: HealthReport::default(),
            reasons: Counts::default(),
            counters: Counts::default(),
            ..status
        };
        let text = status_text(&quiet);
        assert!(text.contains("\nhealth               state=ok reasons=[] queues=[]\n"), "{text}");
        assert!(text.contains("\nreasons              -\n"), "{text}");
    }
}
