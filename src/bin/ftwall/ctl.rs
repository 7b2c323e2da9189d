//! `ftwall ctl`: asks the running daemon over its control socket and prints the answer, as the
//! daemon's JSON line (`--json`) or as text. The protocol, requests and typed answers, is in
//! `protocol.rs`; this file only turns the command line into a [`Request`] and an [`Answer`] into
//! text.
//!
//! Invariant: every text table fits an 80-column terminal for IPv4 entries ([`WIDTH`]): columns
//! stay short, and the long fields (why, since, reasons, health) go on indented continuation
//! lines, wrapped at word boundaries. `--json` prints the daemon's answer, with every field.

use crate::protocol::{parse_net, Answer, Ban, Provenance, Request, Status, MAX_ANSWER};
use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use ipnet::IpNet;
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
    /// Operator bans: network, end, time left, who, since when and why.
    Bans,
    /// The `exempt` networks in force (the allow list, as the daemon holds it after a reload).
    Exempt,
    /// End a client's time-lock now, or forget a suspect peer.
    Release {
        /// The locked inside client or the suspect outside peer.
        addr: IpAddr,
    },
    /// Drop all traffic of an address or network (inside ones keep the time-lock's allowed
    /// ports), e.g. `ban 198.51.100.0/24 --for 30m --reason "abuse report #12"`.
    Ban {
        /// An address (192.0.2.10, 2001:db8::1) or a network in CIDR notation (198.51.100.0/24).
        #[arg(value_parser = parse_net)]
        net: IpNet,
        /// Lift the ban after this long: 90s, 30m, 12h, 1d, 2w, "1h 30m"; 1 second to 365 days
        /// (default: only by `unban`).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_ban_length)]
        length: Option<u64>,
        /// The same in seconds (older spelling of --for).
        #[arg(long, conflicts_with = "length", hide = true, value_parser = parse_ban_seconds)]
        seconds: Option<u64>,
        /// Why, shown by `ctl bans` and logged (at most 200 bytes, one line).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift the ban of an address or network (as `ctl bans` lists it).
    Unban {
        /// The banned address or network.
        #[arg(value_parser = parse_net)]
        net: IpNet,
    },
}

/// `--for`: a human duration (`humantime`), in whole seconds, 1 second to 365 days.
fn parse_ban_length(text: &str) -> Result<u64, String> {
    let length = humantime::parse_duration(text).map_err(|e| format!("{e} (try 90s, 30m, 12h, 1d or 2w)"))?;
    crate::protocol::check_ban_seconds(length.as_secs())
}

/// `--seconds`: 1 to 365 days' worth.
fn parse_ban_seconds(text: &str) -> Result<u64, String> {
    crate::protocol::check_ban_seconds(
        text.parse().map_err(|_| format!("not a number of seconds: {text:?}"))?,
    )
}

/// The widest line a text table may print.
const WIDTH: usize = 80;

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
        CtlCommand::Exempt => Request::Exempt,
        CtlCommand::Release { addr } => Request::Release(addr),
        CtlCommand::Ban { net, length, seconds, reason } => {
            let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
            if let Some(r) = &reason {
                ftwall::engine::check_ban_reason(r).map_err(|e| anyhow!("--reason: {e}"))?;
            }
            Request::Ban { net, seconds: length.or(seconds), reason }
        }
        CtlCommand::Unban { net } => Request::Unban(net),
    };
    let line = ask(&socket, &request)?;
    let answer =
        Answer::decode(&request, &line).map_err(|e| anyhow!("unreadable answer from the daemon: {e}"))?;
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
fn ask(socket: &std::path::Path, request: &Request) -> anyhow::Result<String> {
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

/// Text rendering of a successful answer (a failure renders as nothing; its error goes to
/// stderr).
fn render(answer: &Answer) -> String {
    match answer {
        Answer::Status(status) => status_text(status),
        Answer::Clients(clients) => table_with_details(
            "clients",
            &["CLIENT", "LOCKED UNTIL", "REMAINING", "FASTTRACK PORT"],
            clients.iter().map(|c| {
                let client = c.network.clone().unwrap_or_else(|| c.client.to_string());
                let row =
                    vec![client, cell(&c.locked_until), human_duration(c.remaining_seconds), cell(&c.port)];
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
        Answer::Bans(bans) => table_with_details(
            "bans",
            &["NETWORK", "UNTIL", "REMAINING", "BY"],
            bans.iter().map(|b| (ban_row(b), ban_details(b))),
        ),
        Answer::Exempt(networks) => {
            table("exempt networks", &["NETWORK"], networks.iter().map(|n| vec![n.clone()]))
        }
        Answer::Done(done) => format!("{}\n", done.message),
        Answer::Failed(_) => String::new(),
    }
}

/// The columns of one ban: network, end (a date, or `-`), time left, and who banned it.
fn ban_row(b: &Ban) -> Vec<String> {
    let remaining = match (&b.until, b.remaining_seconds) {
        (None, _) => "until unban".to_string(),
        (Some(_), Some(secs)) => human_duration(secs),
        (Some(_), None) => "-".to_string(),
    };
    let by = b.by_uid.map_or("-".to_string(), |uid| format!("uid {uid}"));
    vec![b.addr.clone(), cell(&b.until), remaining, by]
}

/// The indented lines under a ban: why and since when, when known.
fn ban_details(b: &Ban) -> Vec<String> {
    let mut lines = Vec::new();
    lines.extend(b.reason.as_ref().map(|r| format!("why:   {r}")));
    lines.extend(b.since.as_ref().map(|s| format!("since: {s}")));
    lines.extend(via(&b.gateway));
    lines
}

/// A length of time for people, from whole seconds: its two largest units, rounded down (`45s`,
/// `1m 15s`, `1h 59m`, `2d 3h`, `365d`).
fn human_duration(secs: u64) -> String {
    if secs < 60 {
        return format!("{secs}s");
    }
    const UNITS: [(u64, char); 4] = [(86_400, 'd'), (3_600, 'h'), (60, 'm'), (1, 's')];
    let big = UNITS.iter().position(|&(size, _)| secs >= size).unwrap_or(3).min(2);
    let ((size, unit), (next, next_unit)) = (UNITS[big], UNITS[big + 1]);
    match (secs / size, (secs % size) / next) {
        (major, 0) => format!("{major}{unit}"),
        (major, minor) => format!("{major}{unit} {minor}{next_unit}"),
    }
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

/// `text`'s words as lines of at most [`WIDTH`] columns (characters): the first line starts
/// with `first`, the others with `indent`. Lines break between words, and inside a word only
/// when it is longer than a whole line.
fn wrap(first: &str, indent: &str, text: &str) -> Vec<String> {
    let indent_len = indent.chars().count();
    let mut lines = vec![first.to_string()];
    let mut fresh = true;
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while !word.is_empty() {
            let line = lines.last_mut().expect("never empty");
            let used = line.chars().count() + usize::from(!fresh);
            if used + word.len() <= WIDTH {
                if !fresh {
                    line.push(' ');
                }
                line.extend(word.drain(..));
                fresh = false;
            } else if indent_len + word.len() <= WIDTH || used >= WIDTH {
                lines.push(indent.to_string());
                fresh = true;
            } else {
                // Longer than any line: fill this one and go on with the rest.
                if !fresh {
                    line.push(' ');
                }
                line.extend(word.drain(..WIDTH - used));
                fresh = false;
            }
        }
    }
    lines
}

/// `(N what)`, with `what` in the singular for one (`(1 client)`).
fn count_line(n: usize, what: &str) -> String {
    let what = if n == 1 { what.strip_suffix('s').unwrap_or(what) } else { what };
    format!("({n} {what})\n")
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

/// [`table`], with indented detail lines under each row, wrapped to [`WIDTH`].
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
            // Continuations line up after the label (`why:  `), which is kept as it is.
            let label = line.find(": ").map_or(0, |i| {
                let after = &line[i + 1..];
                i + 1 + after.len() - after.trim_start().len()
            });
            let (label, body) = line.split_at(label);
            let indent = " ".repeat(4 + label.len().min(12));
            for wrapped in wrap(&format!("    {label}"), &indent, body) {
                out.push_str(&wrapped);
                out.push('\n');
            }
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
        (0..titles.len()).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&count_line(table.len() - 1, what));
    out
}

/// One `key value` line per status field, in wire order, wrapped to [`WIDTH`] with the
/// continuation lines indented under the value; objects as `key=value` pairs, each queue of
/// `health` on a line of its own.
fn status_text(s: &Status) -> String {
    let h = &s.health;
    let mut health = vec![match h.reasons.as_slice() {
        [] => h.state.as_str().to_string(),
        reasons => format!("{}: {}", h.state.as_str(), reasons.join("; ")),
    }];
    health.extend(h.queues.iter().map(|q| {
        let fields = serde_json::to_value(q).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
        let rest = fields.iter().filter(|(k, _)| *k != "queue").map(|(k, v)| (k.as_str(), cell(v)));
        format!("queue {}: {}", q.queue, pairs(rest))
    }));
    let reasons = s.reasons.0.iter().map(|(name, n)| (name.as_str(), cell(n)));
    let one = |value: String| vec![value];
    let mut lines = vec![
        ("version", one(cell(&s.version))),
        ("pid", one(cell(&s.pid))),
        ("uptime_seconds", one(format!("{} ({})", s.uptime_seconds, human_duration(s.uptime_seconds)))),
        ("started_at", one(cell(&s.started_at))),
        ("mode", one(cell(&s.mode))),
        ("health", health),
        ("offload", one(cell(&s.offload))),
        ("queues", one(cell(&s.queues))),
        ("config", one(cell(&s.config))),
        ("state_file", one(cell(&s.state_file))),
        ("packets", one(cell(&s.packets))),
        ("accepted", one(cell(&s.accepted))),
        ("dropped", one(cell(&s.dropped))),
        ("reasons", one(pairs(reasons))),
        ("locked_clients", one(cell(&s.locked_clients))),
        ("suspect_peers", one(cell(&s.suspect_peers))),
        ("bans", one(cell(&s.bans))),
        ("flows", one(cell(&s.flows))),
    ];
    if let Some(c) = &s.cluster {
        let cluster = [
            ("node_id", cell(&c.node_id)),
            ("connected", cell(&c.connected)),
            ("gateways_seen", cell(&c.gateways_seen)),
            ("last_sync", cell(&c.last_sync)),
            ("outbox_depth", cell(&c.outbox_depth)),
            ("last_lag_us", cell(&c.last_lag_us)),
            ("last_echo_us", cell(&c.last_echo_us)),
            ("writes_refused", cell(&c.writes_refused)),
        ];
        lines.push(("cluster", one(pairs(cluster))));
    }
    lines.extend(s.counters.0.iter().map(|(name, n)| (name.as_str(), one(cell(n)))));
    let indent = " ".repeat(21);
    let mut out = String::new();
    for (key, segments) in lines {
        for (i, segment) in segments.iter().enumerate() {
            let first = if i == 0 { format!("{key:<20} ") } else { indent.clone() };
            for line in wrap(&first, &indent, segment) {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Counts, HealthReport, LockedClient, SuspectPeer};
    use clap::Parser;

    fn ipv4_peer() -> SuspectPeer {
        SuspectPeer {
            peer: "198.51.100.20".parse().unwrap(),
            port: Some(1214),
            expires: Some("2026-11-24T10:00:00Z".into()),
            strength: Some("weak".into()),
            client: Some("192.0.2.10".parse().unwrap()),
            gateway: Some("gateway-b.site.example".into()),
            why: Provenance {
                reason: Some("udp_ping".into()),
                flow: Some("udp 192.0.2.10:3531 > 198.51.100.20:1214".into()),
                first_seen: Some("2026-11-24T09:00:00Z".into()),
                last_seen: Some("2026-11-24T09:00:05Z".into()),
            },
        }
    }

    fn ipv4_client() -> LockedClient {
        LockedClient {
            client: "192.168.100.200".parse().unwrap(),
            locked_until: "2026-11-24T10:00:00Z".into(),
            remaining_seconds: 7_199,
            port: Some(65_535),
            network: None,
            gateway: Some("gateway-b.site.example".into()),
            why: Provenance {
                reason: Some("http_transfer".into()),
                flow: Some("tcp 192.168.100.200:65535 > 203.0.113.250:65535".into()),
                first_seen: Some("2026-11-24T09:00:00.123456Z".into()),
                last_seen: Some("2026-11-24T09:58:00.123456Z".into()),
            },
        }
    }

    fn ipv4_bans() -> Vec<Ban> {
        vec![
            Ban {
                addr: "198.51.100.0/24".into(),
                until: Some("2026-12-02T12:30:00Z".into()),
                remaining_seconds: Some(1_799),
                reason: Some("abuse report #12".into()),
                by_uid: Some(0),
                since: Some("2026-12-02T12:00:00Z".into()),
                gateway: Some("gateway-b.site.example".into()),
            },
            Ban {
                addr: "255.255.255.255".into(),
                until: Some("2027-12-02T12:00:00Z".into()),
                remaining_seconds: Some(ftwall::engine::MAX_BAN_SECONDS),
                // The longest reason, with one word longer than a line.
                reason: Some(format!("{} {}", "abuse ".repeat(20).trim(), "x".repeat(79))),
                by_uid: Some(4_294_967_294),
                since: Some("2026-12-02T12:00:00.123456Z".into()),
                gateway: None,
            },
            Ban {
                addr: "192.0.2.10".into(),
                until: None,
                remaining_seconds: None,
                reason: None,
                by_uid: None,
                since: None,
                gateway: None,
            },
        ]
    }

    #[test]
    fn tables_align_columns() {
        let answer = Answer::Peers(vec![
            ipv4_peer(),
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
        assert_eq!(lines[4], "    via:  gateway gateway-b.site.example");
        assert_eq!(lines[5], "2001:db8::20   -     -         -           -");
        assert_eq!(lines[6], "(2 peers)");
        let prefix = Answer::Clients(vec![LockedClient {
            client: "2001:db8:1::10".parse().unwrap(),
            locked_until: "2026-11-24T10:00:00Z".into(),
            remaining_seconds: 7_199,
            port: None,
            network: Some("2001:db8:1::/64".into()),
            gateway: Some("gw-a".into()),
            why: Provenance { reason: Some("tcp_opener".into()), ..Provenance::default() },
        }]);
        let text = render(&prefix);
        assert_eq!(
            text,
            "CLIENT           LOCKED UNTIL          REMAINING  FASTTRACK PORT\n\
             2001:db8:1::/64  2026-11-24T10:00:00Z  1h 59m     -\n    \
             why:  tcp_opener\n    \
             last address 2001:db8:1::10\n    \
             via:  gateway gw-a\n\
             (1 client)\n"
        );
        assert_eq!(render(&Answer::Bans(vec![])), "NETWORK  UNTIL  REMAINING  BY\n(0 bans)\n");
        assert_eq!(render(&Answer::Exempt(vec![])), "NETWORK\n(0 exempt networks)\n");
        assert_eq!(
            render(&Answer::Exempt(vec!["192.0.2.53".into(), "203.0.113.0/24".into()])),
            "NETWORK\n192.0.2.53\n203.0.113.0/24\n(2 exempt networks)\n"
        );
    }

    #[test]
    fn bans_show_network_end_time_left_who_since_and_why() {
        let text = render(&Answer::Bans(ipv4_bans()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NETWORK          UNTIL                 REMAINING    BY");
        assert_eq!(lines[1], "198.51.100.0/24  2026-12-02T12:30:00Z  29m 59s      uid 0");
        assert_eq!(lines[2], "    why:   abuse report #12");
        assert_eq!(lines[3], "    since: 2026-12-02T12:00:00Z");
        assert_eq!(lines[4], "    via:  gateway gateway-b.site.example");
        assert_eq!(lines[5], "255.255.255.255  2027-12-02T12:00:00Z  365d         uid 4294967294");
        // The long reason wraps under itself; the over-long word is cut.
        assert!(lines[6].starts_with("    why:   abuse abuse"), "{text}");
        assert!(lines[7].starts_with("           abuse"), "{text}");
        assert!(lines[8].starts_with("           xxxx"), "{text}");
        assert_eq!(lines.last(), Some(&"(3 bans)"));
        assert!(text.contains("\n192.0.2.10       -                     until unban  -\n(3 bans)"), "{text}");
        // Every word of the reason is shown.
        let reason = ipv4_bans()[1].reason.clone().unwrap();
        let shown: String = text.lines().skip(5).take(4).flat_map(|l| l.split_whitespace()).collect();
        assert!(shown.contains(&reason.replace(' ', "")), "{text}");
    }

    /// Every table, with realistic IPv4 data at its widest, fits an 80-column terminal.
    #[test]
    fn every_table_fits_80_columns_for_ipv4() {
        let (mut status, _) = crate::protocol::tests::sample_status();
        status.reasons = Counts(
            ftwall::Reason::DECISION_ORDER.iter().map(|r| (r.as_str().to_string(), u64::MAX)).collect(),
        );
        status.uptime_seconds = 400 * 86_400;
        status.health.reasons = vec!["queue 0: kernel dropped 3 packets".into(); 3];
        status.health.queues = (0..4).map(|_| status.health.queues[0].clone()).collect();
        let answers = [
            Answer::Status(Box::new(status)),
            Answer::Clients(vec![ipv4_client(), ipv4_client()]),
            Answer::Peers(vec![ipv4_peer(), ipv4_peer()]),
            Answer::Bans(ipv4_bans()),
            Answer::Exempt(vec!["192.0.2.53".into(), "255.255.255.255".into(), "198.51.100.128/25".into()]),
        ];
        for answer in &answers {
            let text = render(answer);
            assert!(text.lines().count() > 2, "{text}");
            for line in text.lines() {
                assert!(
                    line.chars().count() <= WIDTH,
                    "{} columns:\n{line}\nin\n{text}",
                    line.chars().count()
                );
            }
        }
    }

    #[test]
    fn durations_read_as_people_say_them() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (75, "1m 15s"),
            (3_600, "1h"),
            (7_199, "1h 59m"),
            (86_400, "1d"),
            (90_061, "1d 1h"),
            (ftwall::engine::MAX_BAN_SECONDS, "365d"),
        ] {
            assert_eq!(human_duration(secs), text, "{secs}");
        }
        assert_eq!(parse_ban_length("90s"), Ok(90));
        assert_eq!(parse_ban_length("30m"), Ok(1_800));
        assert_eq!(parse_ban_length("12h"), Ok(43_200));
        assert_eq!(parse_ban_length("1d"), Ok(86_400));
        assert_eq!(parse_ban_length("2w"), Ok(1_209_600));
        assert_eq!(parse_ban_length("1h 30m"), Ok(5_400));
        assert_eq!(parse_ban_length("365d"), Ok(ftwall::engine::MAX_BAN_SECONDS));
        for bad in ["366d", "500ms", "0s", "soon", "30", "-1m"] {
            assert!(parse_ban_length(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        ctl: CtlArgs,
    }

    fn ban_args(args: &[&str]) -> Result<CtlCommand, clap::Error> {
        let argv = ["ftwall-ctl", "ban"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| cli.ctl.command)
    }

    #[test]
    fn ban_takes_networks_human_lengths_seconds_and_a_reason() {
        let net: IpNet = "198.51.100.0/24".parse().unwrap();
        let reason = Some("abuse report #12".to_string());
        assert!(matches!(
            ban_args(&["198.51.100.0/24", "--for", "30m", "--reason", "abuse report #12"]),
            Ok(CtlCommand::Ban { net: n, length: Some(1_800), seconds: None, reason: r }) if n == net && r == reason
        ));
        assert!(matches!(
            ban_args(&["192.0.2.10", "--seconds", "30"]),
            Ok(CtlCommand::Ban { net: n, length: None, seconds: Some(30), reason: None }) if n == IpNet::from("192.0.2.10".parse::<IpAddr>().unwrap())
        ));
        for bad in [
            &["198.51.100.0/24", "--for", "30m", "--seconds", "30"][..],
            &["198.51.100.0/33"],
            &["example.org"],
            &["192.0.2.10", "--for", "366d"],
            &["192.0.2.10", "--seconds", "0"],
        ] {
            assert!(ban_args(bad).is_err(), "{bad:?}");
        }
    }

    /// The text keeps the wire's keys in wire order (one line per field; wrapped values go on
    /// indented continuation lines).
    #[test]
    fn status_text_covers_every_field_in_wire_order() {
        let (status, line) = crate::protocol::tests::sample_status();
        let text = status_text(&status);
        assert_eq!(
            text,
            r#"version              0.1.0 (v0.1.0-5-gabc, 2026-12-01)
pid                  4242
uptime_seconds       75 (1m 15s)
started_at           2026-12-02T06:00:00Z
mode                 enforce
health               degraded: queue 0: kernel dropped 3 packets
                     queue 0: received=10 waiting=0 occupancy_percent=0 unread=0
                     since_last_verdict_ms=12 verdict_lag_us=-
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
        let text_keys: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(text_keys, wire_keys);

        let quiet = Status {
            health: HealthReport::default(),
            reasons: Counts::default(),
            counters: Counts::default(),
            ..status
        };
        let text = status_text(&quiet);
        assert!(text.contains("\nhealth               ok\n"), "{text}");
        assert!(text.contains("\nreasons              -\n"), "{text}");
    }
}
