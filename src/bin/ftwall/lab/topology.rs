//! The namespace lab's topology: the one place it is built. `ftwall lab` (the demo) builds it
//! here, and so do the real-kernel tests (`tests/common/mod.rs` runs `ftwall lab up|down`) and the
//! bench scripts in `benches/`.
//!
//! ```text
//!   <P>-lan  <P>l0 ==veth== <P>g0  <P>-gw  <P>g1 ==veth== <P>w0  <P>-wan
//!   192.0.2.10-14/24        192.0.2.1/24   198.51.100.1/24       198.51.100.20-39/24
//!   2001:db8:1::10-12/64    2001:db8:1::1  2001:db8:2::1         2001:db8:2::20-26/64
//!                                                                lo: 203.0.113.5-9/32
//! ```
//!
//! Invariants:
//! - Every name derives from the prefix `P`: namespaces `P-lan`, `P-gw`, `P-wan`; interfaces
//!   `Pl0` (lan), `Pg0` (gateway, LAN side: the interface given to `install.sh`), `Pg1`
//!   (gateway, WAN side), `Pw0` (wan). A prefix is 1-13 characters of `[A-Za-z0-9_]`, so that
//!   interface names fit the kernel's 15 bytes. Callers pick unique prefixes (the tests add their
//!   pid) so that labs of several checkouts never share a name.
//! - Documentation addresses only (RFC 5737, RFC 3849). `lan` and `wan` route by default through
//!   the gateway, which forwards IPv4 and IPv6 and routes 203.0.113.0/24 to 198.51.100.20.
//! - Rules are applied by the shipped `iptables/install.sh` (and the `uninstall.sh` it calls) with
//!   the shipped rule files, all embedded in this binary at build time (so the lab works from any
//!   install), run in `P-gw` only. Netfilter rules, ipsets, NFQUEUE instances and sysctls are per namespace: nothing in
//!   the host's own namespace is changed (the scripts go to a temporary directory, removed after).
//! - `up` starts from nothing (a lab left with the same prefix is removed first) and removes what
//!   it built when a step fails. `down` is idempotent: it kills the processes still running in
//!   the lab's namespaces, deletes the namespaces (the veth pairs go with them) and succeeds when
//!   there is nothing to remove.

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde_json::{json, Value};
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::{Command, Stdio};

/// The installer and the rule files it reads, as shipped in `iptables/`, and the uninstaller,
/// which the installer runs to remove the other backend's rules.
const INSTALL_SH: &str = include_str!("../../../../iptables/install.sh");
const UNINSTALL_SH: &str = include_str!("../../../../iptables/uninstall.sh");
const RULE_FILES: [(&str, &str); 3] = [
    ("ftwall.rules", include_str!("../../../../iptables/ftwall.rules")),
    ("ftwall6.rules", include_str!("../../../../iptables/ftwall6.rules")),
    ("ftwall.nft", include_str!("../../../../iptables/ftwall.nft")),
];

/// Hosts of 192.0.2.0/24 on the `lan` side (the gateway is .1).
const LAN_V4: RangeInclusive<u8> = 10..=14;
/// Hosts of 198.51.100.0/24 on the `wan` side (the gateway is .1).
const WAN_V4: RangeInclusive<u8> = 20..=39;
/// Hosts of 203.0.113.0/24 on `wan`'s loopback: a network beyond the WAN link.
const BEYOND_V4: RangeInclusive<u8> = 5..=9;
/// Hosts of 2001:db8:1::/64 on `lan` (the gateway is ::1), written in decimal digits.
const LAN_V6: RangeInclusive<u8> = 10..=12;
/// Hosts of 2001:db8:2::/64 on `wan` (the gateway is ::1), written in decimal digits.
const WAN_V6: RangeInclusive<u8> = 20..=26;

/// Longest prefix: `P` plus `l0` must fit an interface name (15 bytes).
const MAX_PREFIX: usize = 13;

/// Which rules `up` applies in the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Rules {
    /// `install.sh` with `FTWALL_BACKEND=iptables`: the FTWALL chains and the ipsets.
    Iptables,
    /// `install.sh` with `FTWALL_BACKEND=nft` (needs the kernel's nftables queue statement).
    Nft,
    /// No rules: plain forwarding.
    None,
}

impl Rules {
    fn as_str(self) -> &'static str {
        match self {
            Self::Iptables => "iptables",
            Self::Nft => "nft",
            Self::None => "none",
        }
    }
}

/// The names of one lab, derived from its prefix.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    prefix: String,
}

impl Topology {
    /// A lab named by `prefix`; nothing is built yet.
    pub(crate) fn new(prefix: &str) -> anyhow::Result<Self> {
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX
            || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            bail!("lab prefix {prefix:?}: 1 to {MAX_PREFIX} characters of A-Z, a-z, 0-9 and _");
        }
        Ok(Self { prefix: prefix.to_string() })
    }

    /// The namespace of `role` (`lan`, `gw` or `wan`).
    pub(crate) fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// The interface `Pl0`, `Pg0`, `Pg1` or `Pw0` (`name` is the suffix).
    pub(crate) fn iface(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn namespaces(&self) -> [String; 3] {
        [self.ns("lan"), self.ns("gw"), self.ns("wan")]
    }

    /// Builds the lab and applies `rules` with NFQUEUE `queue` (a number or FIRST:LAST, as
    /// `install.sh` takes it). A lab of the same prefix is removed first; on failure, whatever
    /// was built is removed again.
    pub(crate) fn up(&self, rules: Rules, queue: &str) -> anyhow::Result<()> {
        require_root()?;
        require_tools(rules)?;
        self.down()?;
        let built = self.build().and_then(|()| self.install(rules, queue));
        if built.is_err() {
            let _ = self.down();
        }
        built
    }

    /// Removes the lab: kills what still runs in its namespaces and deletes them. Returns how many
    /// namespaces existed (0: nothing to do, which is not an error).
    pub(crate) fn down(&self) -> anyhow::Result<usize> {
        require_root()?;
        let existing = existing_namespaces()?;
        let mut removed = 0;
        for ns in self.namespaces().iter().filter(|ns| existing.contains(ns)) {
            let pids = Command::new("ip").args(["netns", "pids", ns]).output().context("running ip")?;
            for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<libc::pid_t>() {
                    // SAFETY: kill(2) has no memory preconditions; the pid was listed as running
                    // in this lab's namespace.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            sh("ip", &["netns", "del", ns])?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The `ip` command lines that build the topology, in order.
    fn commands(&self) -> Vec<Vec<String>> {
        let [lan, gw, wan] = self.namespaces();
        let [l0, g0, g1, w0] = ["l0", "g0", "g1", "w0"].map(|i| self.iface(i));
        let mut cmds: Vec<Vec<String>> = Vec::new();
        let mut ip = |args: &[&str]| cmds.push(args.iter().map(|a| a.to_string()).collect());
        for ns in [&lan, &gw, &wan] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["link", "add", &l0, "netns", &lan, "type", "veth", "peer", "name", &g0, "netns", &gw]);
        ip(&["link", "add", &w0, "netns", &wan, "type", "veth", "peer", "name", &g1, "netns", &gw]);
        for host in LAN_V4 {
            ip(&["-n", &lan, "addr", "add", &format!("192.0.2.{host}/24"), "dev", &l0]);
        }
        ip(&["-n", &gw, "addr", "add", "192.0.2.1/24", "dev", &g0]);
        ip(&["-n", &gw, "addr", "add", "198.51.100.1/24", "dev", &g1]);
        for host in WAN_V4 {
            ip(&["-n", &wan, "addr", "add", &format!("198.51.100.{host}/24"), "dev", &w0]);
        }
        for host in BEYOND_V4 {
            ip(&["-n", &wan, "addr", "add", &format!("203.0.113.{host}/32"), "dev", "lo"]);
        }
        // IPv6 beside IPv4 (nodad: usable at once).
        for host in LAN_V6 {
            ip(&["-n", &lan, "addr", "add", &format!("2001:db8:1::{host}/64"), "dev", &l0, "nodad"]);
        }
        ip(&["-n", &gw, "addr", "add", "2001:db8:1::1/64", "dev", &g0, "nodad"]);
        ip(&["-n", &gw, "addr", "add", "2001:db8:2::1/64", "dev", &g1, "nodad"]);
        for host in WAN_V6 {
            ip(&["-n", &wan, "addr", "add", &format!("2001:db8:2::{host}/64"), "dev", &w0, "nodad"]);
        }
        for (ns, dev) in [(&lan, &l0), (&gw, &g0), (&gw, &g1), (&wan, &w0)] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", &lan, "route", "add", "default", "via", "192.0.2.1"]);
        ip(&["-n", &wan, "route", "add", "default", "via", "198.51.100.1"]);
        ip(&["-n", &lan, "-6", "route", "add", "default", "via", "2001:db8:1::1"]);
        ip(&["-n", &wan, "-6", "route", "add", "default", "via", "2001:db8:2::1"]);
        ip(&["-n", &gw, "route", "add", "203.0.113.0/24", "via", "198.51.100.20"]);
        ip(&["netns", "exec", &gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        ip(&["netns", "exec", &gw, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        cmds
    }

    fn build(&self) -> anyhow::Result<()> {
        for args in self.commands() {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sh("ip", &args)?;
        }
        Ok(())
    }

    /// Runs the embedded `install.sh` in the gateway, from a temporary copy with the rule files.
    fn install(&self, rules: Rules, queue: &str) -> anyhow::Result<()> {
        if rules == Rules::None {
            return Ok(());
        }
        let dir =
            std::env::temp_dir().join(format!("ftwall-lab-rules-{}-{}", self.prefix, std::process::id()));
        let result = write_scripts(&dir).and_then(|()| {
            let script = dir.join("install.sh");
            let out = Command::new("ip")
                .args(["netns", "exec", &self.ns("gw"), "sh"])
                .arg(&script)
                .args([&self.iface("g0"), queue])
                .env("FTWALL_BACKEND", rules.as_str())
                .env_remove("FTWALL_RULES_DIR")
                .stdin(Stdio::null())
                .output()
                .context("running install.sh")?;
            if !out.status.success() {
                bail!(
                    "install.sh {} {queue} (FTWALL_BACKEND={}) failed: {}",
                    self.iface("g0"),
                    rules.as_str(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// What was built, for `ftwall lab up --json` and the table it prints.
    pub(crate) fn describe(&self, rules: Rules, queue: &str) -> Value {
        json!({
            "prefix": self.prefix,
            "namespaces": {"lan": self.ns("lan"), "gw": self.ns("gw"), "wan": self.ns("wan")},
            "interfaces": {
                "lan": self.iface("l0"),
                "gw_lan": self.iface("g0"),
                "gw_wan": self.iface("g1"),
                "wan": self.iface("w0"),
                "wan_lo": "lo",
            },
            "addresses": {
                "lan": [
                    format!("192.0.2.{}-{}/24", LAN_V4.start(), LAN_V4.end()),
                    format!("2001:db8:1::{}-{}/64", LAN_V6.start(), LAN_V6.end()),
                ],
                "gw_lan": ["192.0.2.1/24", "2001:db8:1::1/64"],
                "gw_wan": ["198.51.100.1/24", "2001:db8:2::1/64"],
                "wan": [
                    format!("198.51.100.{}-{}/24", WAN_V4.start(), WAN_V4.end()),
                    format!("2001:db8:2::{}-{}/64", WAN_V6.start(), WAN_V6.end()),
                ],
                "wan_lo": [format!("203.0.113.{}-{}/32", BEYOND_V4.start(), BEYOND_V4.end())],
            },
            "rules": rules.as_str(),
            "queue": if rules == Rules::None { Value::Null } else { queue.into() },
        })
    }
}

fn write_scripts(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("install.sh"), INSTALL_SH)?;
    std::fs::write(dir.join("uninstall.sh"), UNINSTALL_SH)?;
    for (name, text) in RULE_FILES {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Fails unless running as root (namespaces and netfilter rules need it).
pub(crate) fn require_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ftwall lab needs root (it creates network namespaces and iptables rules)");
    }
    Ok(())
}

fn require_tools(rules: Rules) -> anyhow::Result<()> {
    let tools: &[&str] = match rules {
        Rules::Iptables => &["ip", "iptables", "iptables-restore"],
        Rules::Nft => &["ip", "nft"],
        Rules::None => &["ip"],
    };
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            bail!("ftwall lab needs `{tool}` (Debian: apt install iproute2 iptables nftables)");
        }
    }
    Ok(())
}

/// The names of the network namespaces that exist now.
fn existing_namespaces() -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip").args(["netns", "list"]).output().context("running ip netns list")?;
    if !out.status.success() {
        bail!("ip netns list failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Runs `program args`, failing with its stderr.
pub(crate) fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_keep_interface_names_within_15_bytes() {
        assert!(Topology::new("ftlab").is_ok());
        let longest = Topology::new(&"a".repeat(MAX_PREFIX)).unwrap();
        assert_eq!(longest.iface("l0").len(), 15);
        for bad in ["", "a-b", "lab/x", "ab cd", &"a".repeat(MAX_PREFIX + 1)] {
            assert!(Topology::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_command_stays_inside_the_labs_namespaces() {
        let lab = Topology::new("t1").unwrap();
        let names = lab.namespaces();
        for cmd in lab.commands() {
            let target = match cmd[0].as_str() {
                "-n" => &cmd[1],
                "netns" => &cmd[2],
                // `ip link add X netns A type veth peer name Y netns B`
                "link" => &cmd[4],
                other => panic!("unexpected command {other}: {cmd:?}"),
            };
            assert!(names.contains(target), "{cmd:?} outside the lab");
            if cmd[0] == "link" {
                assert!(names.contains(&cmd[11]), "{cmd:?} outside the lab");
            }
        }
    }
}
