//! Shared harness of the real-kernel tests: three network namespaces (`lan`, `gw`, `wan`) joined
//! by veth pairs, `iptables/install.sh` applied in `gw` (all built by `ftwall lab up`, removed by
//! `ftwall lab down`), the real daemon, and the FastTrack simulator (`ftwall sim`,
//! `src/bin/ftwall/sim.rs`). Addresses come from the documentation ranges (IPv4, and IPv6 in
//! 2001:db8::/32); the addresses below are the ones `ftwall lab up` assigns.
// Each test crate includes this module and uses part of it, through `pub` items.
#![allow(dead_code, unreachable_pub)]

pub mod catalogue;
pub mod dashboard;
pub mod shared_lan;

use serde_json::Value;
use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// End-to-end tests share the kernel's netfilter state: run them one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub const LAN_CLIENT: &str = "192.0.2.10";
pub const OTHER_CLIENT: &str = "192.0.2.11";
/// Further simulated FastTrack clients, one per TCP tell, so that one tell's time-lock does not
/// hide the next tell behind a `client_locked` drop.
pub const TELL_CLIENTS: [&str; 3] = ["192.0.2.12", "192.0.2.13", "192.0.2.14"];
pub const QUEUE: u16 = 7;
/// IPv6 twins of the clients (LAN 2001:db8:1::/64) and the outside hosts (2001:db8:2::/64).
pub const LAN_CLIENT6: &str = "2001:db8:1::10";
pub const OTHER_CLIENT6: &str = "2001:db8:1::11";
pub const TELL_CLIENT6: &str = "2001:db8:1::12";
pub const LOCK_SECONDS: u64 = 10;

pub fn root_and_tools() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root".into());
    }
    for tool in ["ip", "iptables", "iptables-restore"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!("{tool} not found"));
        }
    }
    Ok(())
}

/// Serialises the kernel tests and returns the guard. The kernel tests are `#[ignore]`d (they
/// need root, network namespaces and netfilter), so `cargo test` lists them as ignored with the
/// reason; `cargo test -- --include-ignored` (the README's test command, and CI's) runs them,
/// and one that cannot run here then fails, saying why: a skipped test never reports `ok`.
pub fn kernel_test_guard() -> std::sync::MutexGuard<'static, ()> {
    if let Err(why) = root_and_tools() {
        panic!("this kernel test cannot run here: {why} (it needs root, iproute2, iptables and NFQUEUE)");
    }
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`kernel_test_guard`], plus `tools` that must be on PATH (a test that was asked to run
/// without them fails, naming the tool).
pub fn kernel_test_guard_with(tools: &[&str]) -> std::sync::MutexGuard<'static, ()> {
    let guard = kernel_test_guard();
    for tool in tools {
        assert!(
            run("sh", &["-c", &format!("command -v {tool}")]).status.success(),
            "this kernel test cannot run here: {tool} is not installed (.ci/run installs it)"
        );
    }
    assert!(sim_path().exists(), "simulator not built at {}", sim_path().display());
    guard
}

/// Runs `python3 tests/hostile/SCRIPT ARGS` in the lab's namespace `ns`; it must succeed, and its
/// last output line (JSON) is returned.
pub fn hostile_script(lab: &Lab, ns: &str, script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile").join(script);
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns(ns), "python3"])
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{script} {args:?}: {e}: {stdout}"))
}

/// The binary whose `sim` subcommand is the simulator (cargo builds it for integration tests).
pub fn sim_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ftwall"))
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

pub fn must(cmd: &str, args: &[&str]) {
    let out = run(cmd, args);
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `name` plus this process's id in hex (at most 6 digits: pids stay below 2^22), e.g. `fte1a2b3`.
pub fn unique_prefix(name: &str) -> String {
    format!("{name}{:x}", std::process::id())
}

/// The three namespaces and the processes started in them; torn down on drop.
pub struct Lab {
    /// The name given to [`Lab::new`] plus this process's id in hex, so that test binaries
    /// running at once (from other worktrees too) never share a namespace or an interface
    /// (`<prefix>l0` etc. stay within the 15 characters of an interface name).
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub daemon: Option<Child>,
    pub children: Vec<Child>,
    pub log_path: PathBuf,
    pub config_path: PathBuf,
    /// Where the state file and client directory go (default: the lab's temporary directory).
    pub state_dir: PathBuf,
    /// Extra top-level configuration keys, e.g. `fail_open = false`.
    pub extra_config: String,
    /// The LAN namespace when it is another lab's (a second gateway on a shared LAN, built by
    /// [`Lab::share_lan_of`]); `None`: this lab's own `<prefix>-lan`.
    pub lan_ns: Option<String>,
    /// Messages the daemon sent to its (fake) systemd notify socket.
    pub notifications: Arc<Mutex<Vec<String>>>,
    pub notify_path: PathBuf,
}

impl Lab {
    /// The namespace of `name` (`lan`, `gw` or `wan`): `<prefix>-<name>`, except a shared LAN.
    pub fn ns(&self, name: &str) -> String {
        if let (Some(shared), "lan") = (&self.lan_ns, name) {
            return shared.clone();
        }
        format!("{}-{name}", self.prefix)
    }

    /// A lab named `name` (at most 4 characters) plus this process's id, built by
    /// `ftwall lab up` with the shipped iptables rules queueing to [`QUEUE`].
    pub fn new(name: &str) -> Self {
        Self::with_rules(name, "iptables")
    }

    /// [`Lab::new`] with `ftwall lab up --rules RULES` (`iptables`, `nft` or `none`).
    pub fn with_rules(name: &str, rules: &str) -> Self {
        assert!(name.len() <= 4, "lab name {name:?}: at most 4 characters (interface names)");
        let prefix = unique_prefix(name);
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&notify_path).unwrap();
        let notifications = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&notifications);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        let lab = Self {
            prefix,
            log_path: dir.path().join("ftwall.log"),
            config_path: dir.path().join("ftwall.toml"),
            state_dir: dir.path().to_path_buf(),
            extra_config: String::new(),
            lan_ns: None,
            dir,
            daemon: None,
            children: Vec::new(),
            notifications,
            notify_path,
        };
        // The one topology builder (src/bin/ftwall/lab/topology.rs): it removes a leftover lab of
        // the same prefix first, and removes what it built if a step fails.
        let queue = QUEUE.to_string();
        let out = run(
            env!("CARGO_BIN_EXE_ftwall"),
            &["lab", "up", "--prefix", &lab.prefix, "--rules", rules, "--queue", &queue, "--json"],
        );
        assert!(out.status.success(), "ftwall lab up: {}", String::from_utf8_lossy(&out.stderr));
        let built: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(built["namespaces"]["gw"], lab.ns("gw"), "{built}");
        assert_eq!(built["interfaces"]["gw_lan"], format!("{}g0", lab.prefix), "{built}");
        lab
    }

    /// `ftwall lab down`: kills what still runs in the namespaces and deletes them (idempotent).
    pub fn teardown_namespaces(&self) {
        let _ = run(env!("CARGO_BIN_EXE_ftwall"), &["lab", "down", "--prefix", &self.prefix]);
    }

    pub fn write_config(&self, extra_allow: &[u16], broken: bool) {
        let mut allow = vec![53u16, 80, 443];
        allow.extend_from_slice(extra_allow);
        let dir = self.state_dir.display();
        let extra = &self.extra_config;
        let mut text = format!(
            "{extra}\nlan = [\"192.0.2.0/24\", \"2001:db8:1::/64\"]\nqueue = {QUEUE}\nstate_file = \"{dir}/state\"\nclient_dir = \"{dir}/clients\"\n\
             [timelock]\nseconds = {LOCK_SECONDS}\nallow_ports = {allow:?}\n[log]\ndrop_burst = 1000\n\
             [control]\nsocket = \"{dir}/control.sock\"\n[metrics]\nfile = \"{dir}/ftwall.prom\"\ninterval_seconds = 1\n"
        );
        if broken {
            text.push_str("secnds = 3\n");
        }
        std::fs::write(&self.config_path, text).unwrap();
    }

    pub fn start_daemon(&mut self) {
        self.start_daemon_as(&[]);
    }

    /// Starts the daemon in `gw` behind `wrapper` (e.g. a `setpriv` command line).
    pub fn start_daemon_as(&mut self, wrapper: &[&str]) {
        let log = File::options().create(true).append(true).open(&self.log_path).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("gw")])
            .args(wrapper)
            // ftwall's debug events too (state_saved, flow_classified, probe_sent): the tests
            // wait for some, and every line is checked against the catalogue.
            .args([
                env!("CARGO_BIN_EXE_ftwall"),
                "run",
                "--log-format",
                "json",
                "--log-level",
                "info,ftwall=debug",
            ])
            .arg("--config")
            .arg(&self.config_path)
            .env("NOTIFY_SOCKET", &self.notify_path)
            .env("WATCHDOG_USEC", "900000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    pub fn notified(&self, what: &str) -> usize {
        self.notifications.lock().unwrap().iter().filter(|m| m.lines().any(|l| l.starts_with(what))).count()
    }

    /// Waits until `n` notify messages with a line starting with `what` were received (they
    /// arrive through a socket read by another thread, so a log line can overtake them), and
    /// returns the messages.
    pub fn wait_notified(&self, what: &str, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<String> = self
                .notifications
                .lock()
                .unwrap()
                .iter()
                .filter(|m| m.lines().any(|l| l.starts_with(what)))
                .cloned()
                .collect();
            if found.len() >= n {
                return found;
            }
            assert!(Instant::now() < deadline, "only {} of {n} {what} notifications", found.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the daemon (behind `wrapper`, possibly empty) and waits for its `daemon_started`.
    pub fn start_and_wait(&mut self, wrapper: &[&str]) -> Value {
        let started = self.log().iter().filter(|v| v["event"] == "daemon_started").count();
        self.start_daemon_as(wrapper);
        self.wait_log("daemon_started", started + 1, Duration::from_secs(10), |v| {
            v["event"] == "daemon_started"
        })
    }

    /// Runs the simulator's ping flood from `client` (FastTrack port 3531) to `peers`
    /// (comma-separated ip:port) and returns its summary (`pongs`, `pongs_from`).
    pub fn ping_flood(&self, client: &str, peers: &str, timeout_ms: u32) -> Value {
        let timeout = timeout_ms.to_string();
        self.sim(
            "lan",
            &[
                "ping-flood",
                "--bind",
                client,
                "--from-port",
                "3531",
                "--peers",
                peers,
                "--timeout-ms",
                &timeout,
            ],
        )
    }

    /// The ordinary client's DNS-like UDP to the `wan` echo responder (198.51.100.25:53), with
    /// extra simulator options (`--count`, `--bytes`, `--timeout-ms`); returns its summary.
    pub fn dns_echo(&self, extra: &[&str]) -> Value {
        let mut args = vec!["udp", "--to", "198.51.100.25:53", "--bind", OTHER_CLIENT];
        args.extend_from_slice(extra);
        self.sim("lan", &args)
    }

    /// Sends datagrams through the gateway until one is echoed (ARP and routes warm), or panics.
    pub fn warm_up(&self) {
        let warm = (0..5).any(|_| self.dns_echo(&[])["echoed"] == true);
        assert!(warm, "plain forwarding through the gateway does not work");
    }

    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join("control.sock")
    }

    /// Runs `ftwall ctl --socket <lab socket> ARGS` (behind `wrapper`, possibly empty).
    pub fn ctl_as(&self, wrapper: &[&str], args: &[&str]) -> Output {
        let mut cmd = if wrapper.is_empty() {
            Command::new(env!("CARGO_BIN_EXE_ftwall"))
        } else {
            let mut c = Command::new(wrapper[0]);
            c.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_ftwall"));
            c
        };
        cmd.arg("ctl").arg("--socket").arg(self.control_socket()).args(args).output().unwrap()
    }

    /// `ftwall ctl --json ARGS`, which must succeed; returns the answer.
    pub fn ctl(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ctl_as(&[], &all);
        let answer: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("ctl {args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(out.status.success() && answer["ok"] == true, "ctl {args:?}: {answer}");
        answer
    }

    /// Sends 60 sequential request/response pairs on one UDP flow to the echo responder at `to`
    /// (none may be lost) and returns how many packets the daemon judged meanwhile, from two
    /// SIGUSR1 `counters` lines, and the second of them.
    pub fn offload_check(&self, to: &str) -> (u64, Value) {
        let counters = |v: &Value| v["event"] == "counters";
        let seen = self.log().iter().filter(|v| counters(v)).count();
        self.signal_daemon("-USR1");
        let before = self.wait_log("counters", seen + 1, Duration::from_secs(5), counters);
        let pairs = self.bench_traffic("lan", &["latency", "--to", to, "--count", "60"]);
        assert_eq!(pairs["lost"], 0, "{pairs}");
        self.signal_daemon("-USR1");
        let after = self.wait_log("counters", seen + 2, Duration::from_secs(5), counters);
        (after["packets"].as_u64().unwrap() - before["packets"].as_u64().unwrap(), after)
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon running").id()
    }

    pub fn signal_daemon(&self, signal: &str) {
        must("kill", &[signal, &self.daemon_pid().to_string()]);
    }

    /// Log lines (JSON objects) written by the daemon so far; each is checked against the
    /// catalogue of log events (panics on a line the operator reference does not describe).
    pub fn log(&self) -> Vec<Value> {
        let lines: Vec<Value> = std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if let Some(problem) = lines.iter().find_map(catalogue::violation) {
            panic!("{problem}");
        }
        lines
    }

    /// Waits until the `n`-th log line matching `pred` appears.
    pub fn wait_log(&self, what: &str, n: usize, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let matches: Vec<Value> = self.log().into_iter().filter(|v| pred(v)).collect();
            if matches.len() >= n {
                return matches[n - 1].clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; daemon log:\n{}",
                    std::fs::read_to_string(&self.log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn spawn_responder(&mut self, ns: &str, args: &[&str], out: &Path) {
        let file = File::create(out).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .arg(sim_path())
            .args(["sim", "responder"])
            .args(args)
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(out).unwrap_or_default().contains("\"ready\"") {
            assert!(Instant::now() < deadline, "responder in {ns} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a simulator command in `ns` and returns its JSON summary.
    pub fn sim(&self, ns: &str, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns)])
            .arg(sim_path())
            .arg("sim")
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_else(|| {
            panic!("no output from ftwall sim {args:?}: {}", String::from_utf8_lossy(&out.stderr))
        });
        serde_json::from_str(last).unwrap()
    }

    /// Runs `ftwall bench-traffic ARGS` (a load generator) in `ns` and returns its last JSON line.
    pub fn bench_traffic(&self, ns: &str, args: &[&str]) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), env!("CARGO_BIN_EXE_ftwall"), "bench-traffic"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_else(|| {
            panic!("no output from bench-traffic {args:?}: {}", String::from_utf8_lossy(&out.stderr))
        });
        serde_json::from_str(last).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.daemon.iter_mut().chain(self.children.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.teardown_namespaces();
    }
}

pub fn responder_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub fn received(path: &Path, kind: &str, from_ip: &str) -> usize {
    responder_log(path)
        .iter()
        .filter(|v| {
            v["kind"] == kind && v["from"].as_str().is_some_and(|f| f.starts_with(&format!("{from_ip}:")))
        })
        .count()
}

pub fn tcp(lab: &Lab, from: &str, to: &str, payload: &str) -> Value {
    lab.sim("lan", &["tcp", "--bind", from, "--to", to, "--payload", payload, "--timeout-ms", "1500"])
}

pub fn is_event(v: &Value, event: &str) -> bool {
    v["event"] == event
}
