//! `ftwall lab`: a throw-away gateway in network namespaces, to see ftwall work in a minute, and
//! the same namespaces on their own for the tests and the benchmarks.
//!
//! - `ftwall lab` (the demo): builds the lab (`topology.rs`: `P-lan` 192.0.2.0/24, `P-gw`,
//!   `P-wan` 198.51.100.0/24, the shipped rules applied by the shipped `install.sh`; `P` is
//!   `ftlab` unless `--prefix` says otherwise), runs this very binary as the daemon in `P-gw`, a
//!   responder (`ftwall sim responder`) in `P-wan`, and a list of ordinary and FastTrack
//!   scenarios from `P-lan`. Prints what passed and what was blocked, then removes everything it
//!   created, also when interrupted (SIGINT/SIGTERM are caught between steps).
//! - `ftwall lab up --prefix P`: builds the lab and returns, leaving it in place; `ftwall lab down
//!   --prefix P` removes it (idempotent). `tests/common/mod.rs` and `benches/*.sh` use these.
//!
//! Nothing touches the host's own namespace: NFQUEUE instances and netfilter rules are per
//! namespace.

mod topology;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use topology::{Rules, Topology};

/// Options of `ftwall lab`: the demo's, or one of `up` / `down`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct LabArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    demo: DemoArgs,
}

/// Options of the demo (`ftwall lab` without a subcommand).
#[derive(Debug, Args)]
struct DemoArgs {
    /// Print the results as JSON (one object) instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep the daemon's log file (its path is printed) instead of deleting it.
    #[arg(long)]
    keep_log: bool,
    /// Name the namespaces PREFIX-lan, PREFIX-gw, PREFIX-wan.
    #[arg(long, default_value = "ftlab")]
    prefix: String,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Build the namespaces PREFIX-lan, PREFIX-gw, PREFIX-wan and apply the rules in PREFIX-gw
    /// (through the shipped install.sh), then return; the lab stays until `ftwall lab down`.
    Up(UpArgs),
    /// Remove the lab PREFIX: kill what still runs in its namespaces and delete them (nothing
    /// to remove is no error).
    Down(DownArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Name the namespaces PREFIX-lan, PREFIX-gw, PREFIX-wan and the interfaces PREFIXl0,
    /// PREFIXg0 (the gateway's LAN side), PREFIXg1, PREFIXw0 (at most 13 characters).
    #[arg(long)]
    prefix: String,
    /// The rules applied in PREFIX-gw.
    #[arg(long, value_enum, default_value_t = Rules::Iptables)]
    rules: Rules,
    /// The NFQUEUE the rules queue to: a number, or FIRST:LAST to balance (as install.sh takes it).
    #[arg(long, default_value = "0")]
    queue: String,
    /// Print what was built as JSON (one object) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct DownArgs {
    /// The prefix given to `ftwall lab up`.
    #[arg(long)]
    prefix: String,
}

/// Runs `ftwall lab`, `ftwall lab up` or `ftwall lab down`.
pub(crate) fn run(args: LabArgs) -> anyhow::Result<std::process::ExitCode> {
    match args.action {
        None => demo(args.demo),
        Some(Action::Up(up)) => {
            let lab = Topology::new(&up.prefix)?;
            lab.up(up.rules, &up.queue)?;
            let built = lab.describe(up.rules, &up.queue);
            if up.json {
                println!("{built}");
            } else {
                print_built(&built);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some(Action::Down(down)) => {
            let lab = Topology::new(&down.prefix)?;
            let removed = lab.down()?;
            println!("lab {}: {removed} namespace(s) removed", down.prefix);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// The table `ftwall lab up` prints.
fn print_built(built: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let list = |v: &Value| v.as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(" ");
    let (ns, ifs, addrs) = (&built["namespaces"], &built["interfaces"], &built["addresses"]);
    println!("{:<5} {:<16} {:<16} ADDRESSES", "ROLE", "NAMESPACE", "INTERFACE");
    for (role, iface) in
        [("lan", "lan"), ("gw", "gw_lan"), ("gw", "gw_wan"), ("wan", "wan"), ("wan", "wan_lo")]
    {
        println!("{role:<5} {:<16} {:<16} {}", text(&ns[role]), text(&ifs[iface]), list(&addrs[iface]));
    }
    let rules = text(&built["rules"]);
    if rules == "none" {
        println!("rules: none (plain forwarding)");
    } else {
        println!("rules: {rules} (install.sh {} {})", text(&ifs["gw_lan"]), text(&built["queue"]));
    }
    println!(
        "run programs inside with `ip netns exec {} ...`; remove with `ftwall lab down --prefix {}`",
        text(&ns["lan"]),
        text(&built["prefix"])
    );
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

/// Everything the demo created; removed on drop.
struct Lab {
    topology: Topology,
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
        let _ = self.topology.down();
        if self.keep_log {
            for name in ["config.toml", "state", "responder.jsonl", "control.sock"] {
                let _ = std::fs::remove_file(self.dir.join(name));
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
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

/// The demo: build, run the daemon and the scenarios, report, remove.
fn demo(args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let topology = Topology::new(&args.prefix)?;
    topology::require_root()?;
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let exe = std::env::current_exe().context("locating the ftwall binary")?;
    let exe = exe.to_str().context("binary path is not UTF-8")?.to_string();
    let dir = std::env::temp_dir().join(format!("ftwall-lab-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (lan, gw, wan) = (topology.ns("lan"), topology.ns("gw"), topology.ns("wan"));
    let mut lab = Lab { topology, dir: dir.clone(), children: Vec::new(), keep_log: args.keep_log };
    let say = |text: &str| {
        if !args.json {
            println!("{text}");
        }
    };
    say(&format!("lab: building namespaces {lan} (192.0.2.0/24), {gw}, {wan} (198.51.100.0/24)"));
    lab.topology.up(Rules::Iptables, "0")?;

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
            .args(["netns", "exec", &wan, &exe, "sim", "responder"])
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
            .args(["netns", "exec", &lan, &exe, "sim"])
            .args(SCENARIOS[0].args)
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
            .is_some_and(|v| v["echoed"] == true)
    });
    if !warm {
        bail!("plain forwarding through the lab gateway does not work");
    }
    say(&format!("lab: starting the daemon in {gw}"));
    let config_path = dir.join("config.toml");
    lab.children.push(
        Command::new("ip")
            .args(["netns", "exec", &gw, &exe, "run", "--log-format", "json", "--config"])
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
            .args(["netns", "exec", &lan, &exe, "sim"])
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
