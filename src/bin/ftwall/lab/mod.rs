//! `ftwall lab`: a throw-away gateway in network namespaces, to see ftwall work in a minute.
//!
//! Builds three namespaces joined by veth pairs (`ftlab-lan` 192.0.2.0/24, `ftlab-gw`,
//! `ftlab-wan` 198.51.100.0/24; documentation addresses only), loads the repository's IPv4 rules
//! (embedded in the binary) in the gateway namespace, runs this very binary as the daemon there,
//! a responder (`ftwall sim responder`) in `wan`, and a list of ordinary and FastTrack scenarios
//! from `lan`. Prints what passed and what was blocked, then removes everything it created, also
//! when interrupted (SIGINT/SIGTERM are caught between steps). Nothing touches the host's own
//! namespace: NFQUEUE instances and iptables rules are per namespace.

use anyhow::{bail, Context};
use clap::Args;
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The IPv4 rules, as shipped in `iptables/`.
const RULES: &str = include_str!("../../../iptables/ftwall.rules");
const NS: [&str; 3] = ["ftlab-lan", "ftlab-gw", "ftlab-wan"];

/// Options of `ftwall lab`.
#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Print the results as JSON (one object) instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep the daemon's log file (its path is printed) instead of deleting it.
    #[arg(long)]
    keep_log: bool,
}

/// One thing the lab tries, and what ftwall should do about it.
struct Scenario {
    name: &'static str,
    /// Whether ftwall must let it through.
    passes: bool,
    /// `ftwall sim` arguments, run in the `lan` namespace.
    args: &'static [&'static str],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "ordinary DNS-like UDP query",
        passes: true,
        args: &["udp", "--bind", "192.0.2.11", "--to", "198.51.100.25:53"],
    },
    Scenario {
        name: "ordinary web request",
        passes: true,
        args: &["tcp", "--bind", "192.0.2.11", "--to", "198.51.100.26:80", "--payload", "plain-http"],
    },
    Scenario {
        name: "64 KiB TCP stream to port 1214 (not FastTrack)",
        passes: true,
        args: &["tcp", "--bind", "192.0.2.11", "--to", "198.51.100.26:1214", "--payload", "stream"],
    },
    Scenario {
        name: "Kazaa UDP discovery pings",
        passes: false,
        args: &[
            "ping-flood",
            "--bind",
            "192.0.2.10",
            "--from-port",
            "3531",
            "--peers",
            "198.51.100.20:1214,198.51.100.21:1214",
            "--timeout-ms",
            "800",
        ],
    },
    Scenario {
        name: "locked Kazaa client opens a new connection",
        passes: false,
        args: &["tcp", "--bind", "192.0.2.10", "--to", "198.51.100.26:5555", "--payload", "plain-http"],
    },
    Scenario {
        name: "locked Kazaa client browses the web",
        passes: true,
        args: &["tcp", "--bind", "192.0.2.10", "--to", "198.51.100.26:80", "--payload", "plain-http"],
    },
    Scenario {
        name: "Kazaa HTTP download (X-Kazaa headers)",
        passes: false,
        args: &["tcp", "--bind", "192.0.2.12", "--to", "198.51.100.22:80", "--payload", "kazaa-http"],
    },
    Scenario {
        name: "giFT/MLDonkey supernode opener",
        passes: false,
        args: &["tcp", "--bind", "192.0.2.13", "--to", "198.51.100.23:1214", "--payload", "constant-opener"],
    },
    Scenario {
        name: "GIVE push request",
        passes: false,
        args: &["tcp", "--bind", "192.0.2.14", "--to", "198.51.100.24:5555", "--payload", "give"],
    },
];

/// Whether a simulator result shows the traffic got through, judged from what came back.
fn got_through(result: &Value, responder_saw_ping: bool) -> bool {
    match result["command"].as_str() {
        Some("udp") => result["echoed"] == true,
        Some("tcp") => result["ok"] == true,
        Some("ping-flood") => responder_saw_ping,
        _ => false,
    }
}

/// Everything the lab created; removed on drop.
struct Lab {
    dir: PathBuf,
    children: Vec<Child>,
    keep_log: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in NS {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        if self.keep_log {
            for name in ["config.toml", "state", "responder.jsonl", "control.sock"] {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program).args(args).output().with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn in_ns(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    sh("ip", &all)
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn topology() -> anyhow::Result<()> {
    let [lan, gw, wan] = NS;
    for ns in NS {
        sh("ip", &["netns", "add", ns])?;
        sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    }
    sh(
        "ip",
        &["link", "add", "ftlab-l0", "netns", lan, "type", "veth", "peer", "name", "ftlab-g0", "netns", gw],
    )?;
    sh(
        "ip",
        &["link", "add", "ftlab-w0", "netns", wan, "type", "veth", "peer", "name", "ftlab-g1", "netns", gw],
    )?;
    for host in 10..=14 {
        sh("ip", &["-n", lan, "addr", "add", &format!("192.0.2.{host}/24"), "dev", "ftlab-l0"])?;
    }
    sh("ip", &["-n", gw, "addr", "add", "192.0.2.1/24", "dev", "ftlab-g0"])?;
    sh("ip", &["-n", gw, "addr", "add", "198.51.100.1/24", "dev", "ftlab-g1"])?;
    for host in [20, 21, 22, 23, 24, 25, 26] {
        sh("ip", &["-n", wan, "addr", "add", &format!("198.51.100.{host}/24"), "dev", "ftlab-w0"])?;
    }
    for (ns, dev) in [(lan, "ftlab-l0"), (gw, "ftlab-g0"), (gw, "ftlab-g1"), (wan, "ftlab-w0")] {
        sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
    }
    sh("ip", &["-n", lan, "route", "add", "default", "via", "192.0.2.1"])?;
    sh("ip", &["-n", wan, "route", "add", "default", "via", "198.51.100.1"])?;
    in_ns(gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    // The shipped rules, as install.sh would apply them (IPv4, queue 0 of this namespace).
    let mut rules = RULES.replace("@LAN_IF@", "ftlab-g0").replace("@QUEUE_TARGET@", "--queue-num 0");
    // The kernel sets the rules use, as install.sh creates them; without ipset, the rules that
    // use them are left out (install.sh does the same).
    let ipset =
        Command::new("sh").args(["-c", "command -v ipset"]).output().is_ok_and(|o| o.status.success());
    if ipset {
        for set in [
            "ftwall_clients hash:ip timeout 120",
            "ftwall_clients6 hash:ip family inet6 timeout 120",
            "ftwall_peers hash:ip timeout 86400",
            "ftwall_peers6 hash:ip family inet6 timeout 86400",
            "ftwall_allow_ports bitmap:port range 0-65535",
        ] {
            let mut args = vec!["ipset", "create", "-exist"];
            args.extend(set.split(' '));
            in_ns(gw, &args)?;
        }
    } else {
        rules = rules.lines().filter(|l| !l.contains("-m set")).map(|l| format!("{l}\n")).collect();
    }
    let mut restore = Command::new("ip")
        .args(["netns", "exec", gw, "iptables-restore", "--noflush"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    restore.stdin.take().expect("piped").write_all(rules.as_bytes())?;
    let out = restore.wait_with_output()?;
    if !out.status.success() {
        bail!("iptables-restore failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    in_ns(gw, &["iptables", "-I", "FORWARD", "1", "-j", "FTWALL"])
}

pub(crate) fn run(args: LabArgs) -> anyhow::Result<std::process::ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("ftwall lab needs root (it creates network namespaces and iptables rules)");
    }
    for tool in ["ip", "iptables", "iptables-restore"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
        {
            bail!("ftwall lab needs `{tool}` (Debian: apt install iproute2 iptables)");
        }
    }
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let exe = std::env::current_exe().context("locating the ftwall binary")?;
    let exe = exe.to_str().context("binary path is not UTF-8")?.to_string();
    let dir = std::env::temp_dir().join(format!("ftwall-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut lab = Lab { dir: dir.clone(), children: Vec::new(), keep_log: args.keep_log };
    for ns in NS {
        // Left over from a lab that was killed: start clean.
        let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
    }
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };
    say("lab: building namespaces ftlab-lan (192.0.2.0/24), ftlab-gw, ftlab-wan (198.51.100.0/24)");
    topology()?;

    let log_path = dir.join("ftwall.log");
    let control = dir.join("control.sock");
    // kernel_sets = "off": the lab shows every block as the daemon's own decision with its
    // reason (with the sets on, the kernel would refuse a locked client's connection itself).
    let config = format!(
        "kernel_sets = \"off\"\nlan = [\"192.0.2.0/24\"]\nqueue = 0\nstate_file = \"{d}/state\"\n[timelock]\nseconds = 60\n\
         [control]\nsocket = \"{d}/control.sock\"\n[log]\ndrop_burst = 1000\n",
        d = dir.display()
    );
    std::fs::write(dir.join("config.toml"), config)?;
    let responder_out = dir.join("responder.jsonl");
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", NS[2], &exe, "sim", "responder"])
            .args([
                "--udp",
                "198.51.100.20:1214,198.51.100.21:1214,198.51.100.25:53",
                "--tcp-ports",
                "80,1214,5555",
            ])
            .stdout(File::create(&responder_out)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting the responder")?,
    );
    wait_for("the responder", Duration::from_secs(10), || {
        std::fs::read_to_string(&responder_out).unwrap_or_default().contains("\"ready\"")
    })?;
    // Warm up neighbour tables with the queue still unbound (the rules bypass it).
    let warm = (0..5).any(|_| {
        Command::new("ip")
            .args(["netns", "exec", NS[0], &exe, "sim"])
            .args(SCENARIOS[0].args)
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .is_some_and(|v| v["echoed"] == true)
    });
    if !warm {
        bail!("plain forwarding through the lab gateway does not work");
    }
    say("lab: starting the daemon in ftlab-gw");
    let config_path = dir.join("config.toml");
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", NS[1], &exe, "run", "--log-format", "json", "--config"])
            .arg(&config_path)
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(File::create(&log_path)?)
            .spawn()
            .context("starting the daemon")?,
    );
    wait_for("the daemon", Duration::from_secs(10), || {
        std::fs::read_to_string(&log_path).unwrap_or_default().contains("\"daemon_started\"")
    })?;

    let mut results = Vec::new();
    for scenario in SCENARIOS {
        if interrupted.load(Ordering::Relaxed) {
            bail!("interrupted; lab removed");
        }
        let out = Command::new("ip")
            .args(["netns", "exec", NS[0], &exe, "sim"])
            .args(scenario.args)
            .output()
            .context("running the simulator")?;
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let saw_ping = responder_log(&responder_out).iter().any(|v| v["kind"] == "udp_ping");
        let passed = got_through(&result, saw_ping);
        results.push((scenario, passed, result));
    }
    // Let the daemon write its last log lines, then ask it what it holds.
    std::thread::sleep(Duration::from_millis(300));
    let clients =
        Command::new(&exe).args(["ctl", "--socket"]).arg(&control).args(["--json", "clients"]).output();
    let locked: Vec<String> = clients
        .ok()
        .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
        .and_then(|v| v["clients"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["client"].as_str().map(str::to_string))
        .collect();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let mut drops: std::collections::BTreeMap<String, u64> = Default::default();
    for line in log.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        if line["event"] == "packet_dropped" {
            if let Some(reason) = line["reason"].as_str() {
                *drops.entry(reason.to_string()).or_default() += 1;
            }
        }
    }
    let all_ok = results.iter().all(|(s, passed, _)| *passed == s.passes);

    if args.json {
        let rows: Vec<Value> = results
            .iter()
            .map(|(s, passed, result)| {
                serde_json::json!({"scenario": s.name, "expected": verdict(s.passes), "observed": verdict(*passed), "ok": *passed == s.passes, "result": result})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"ok": all_ok, "scenarios": rows, "locked_clients": locked, "drops_by_reason": drops})
        );
    } else {
        println!();
        println!("{:<48} {:<9} {:<9} ", "SCENARIO", "EXPECTED", "OBSERVED");
        for (s, passed, _) in &results {
            let mark = if *passed == s.passes { "ok" } else { "UNEXPECTED" };
            println!("{:<48} {:<9} {:<9} {mark}", s.name, verdict(s.passes), verdict(*passed));
        }
        println!();
        println!(
            "locked clients (ftwall ctl clients): {}",
            if locked.is_empty() { "-".into() } else { locked.join(", ") }
        );
        let drops: Vec<String> = drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        println!("drops logged by reason: {}", if drops.is_empty() { "-".into() } else { drops.join(" ") });
        if args.keep_log {
            println!("daemon log: {}", log_path.display());
        }
        println!("lab: removing namespaces");
    }
    drop(lab);
    Ok(if all_ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

fn verdict(passes: bool) -> &'static str {
    if passes {
        "passes"
    } else {
        "blocked"
    }
}

fn responder_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
