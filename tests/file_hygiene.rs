//! Files written as root, and the daemon's inputs, against a local unprivileged user: symlinks
//! planted by `nobody` (through `setpriv`) are never written through, a planted state file is
//! never trusted, a directory others can write is refused (by `run` and `check-config`), files
//! are 0640 and created directories 0750; a trickling `ftwall ctl` client does not hold up the
//! operator; a crafted state file cannot forge log lines; the unit keeps restarting.
//!
//! Each daemon runs in a network namespace of its own (no lab: nothing is routed, the queue is
//! only bound), with its files in a temporary directory.
//!
//! Needs root and `setpriv`; the unit test needs `systemd-analyze`. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::{kernel_test_guard, must, run};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NOBODY: [&str; 6] = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"];
const PRECIOUS: &str = "precious, root only\n";

fn ftwall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ftwall"))
}

/// Runs `args` as `nobody`; it must succeed.
fn as_nobody(args: &[&str]) {
    let mut all = NOBODY.to_vec();
    all.extend_from_slice(args);
    must(all[0], &all[1..]);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// A state file (format version 1) holding one lock of `client` until `until_micros`.
fn state_with_lock(client: &str, until_micros: u64) -> String {
    format!(
        r#"{{"version":1,"saved_at":{},"peers":[],"locks":[{{"client":"{client}","until":{until_micros},"port":null}}]}}"#,
        now_micros()
    )
}

/// A network namespace for one daemon, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("ftfh{tag}-{:x}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        Self(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

/// A daemon in `ns`, its stderr in `log`.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Netns, config: &Path, log: &Path, format: &str) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_ftwall"), "run", "--log-format", format])
            .arg("--config")
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let daemon = Self { child, log: log.to_path_buf() };
        daemon.wait_log("daemon_started", Duration::from_secs(10));
        daemon
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    fn wait_log(&self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(what) {
            assert!(Instant::now() < deadline, "no {what} in:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; it must exit 0. Returns the log.
    fn stop(&mut self) -> String {
        must("kill", &["-TERM", &self.child.id().to_string()]);
        assert!(self.child.wait().unwrap().success(), "{}", self.text());
        self.text()
    }
}

impl Drop for Daemon {
    /// A test that failed half-way does not leave its daemon running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A configuration with its files in `dir` (the state file, the control socket, the client
/// directory and the metrics file), written to `dir/../<name>.toml`.
fn config_in(dir: &Path, name: &str) -> PathBuf {
    let d = dir.display();
    let path = dir.parent().unwrap().join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "lan = [\"192.0.2.0/24\"]\nqueue = 3\nkernel_sets = \"off\"\nstate_file = \"{d}/state\"\n\
             client_dir = \"{d}/clients\"\n[timelock]\nseconds = 600\n[control]\nsocket = \"{d}/control.sock\"\n\
             [metrics]\nfile = \"{d}/ftwall.prom\"\ninterval_seconds = 1\n"
        ),
    )
    .unwrap();
    path
}

fn ctl_json(socket: &Path, args: &[&str]) -> Value {
    let out = ftwall().arg("ctl").arg("--socket").arg(socket).arg("--json").args(args).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// A base directory that `nobody` can traverse (tempdirs are 0700).
fn base() -> tempfile::TempDir {
    let base = tempfile::tempdir().unwrap();
    chmod(base.path(), 0o755);
    base
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn symlinks_planted_by_an_unprivileged_user_are_not_written_through() {
    let _serial = kernel_test_guard();
    let base = base();
    let victims: Vec<PathBuf> =
        ["victim-client", "victim-metrics"].iter().map(|v| base.path().join(v)).collect();
    for victim in &victims {
        std::fs::write(victim, PRECIOUS).unwrap();
        chmod(victim, 0o600);
    }
    // While the directories were open to everyone, nobody planted links at the names ftwall
    // writes: a client's file and the metrics file.
    let dir = base.path().join("files");
    let clients = dir.join("clients");
    std::fs::create_dir_all(&clients).unwrap();
    chmod(&dir, 0o777);
    chmod(&clients, 0o777);
    as_nobody(&["ln", "-s", victims[0].to_str().unwrap(), clients.join("192.0.2.10").to_str().unwrap()]);
    as_nobody(&["ln", "-s", victims[1].to_str().unwrap(), dir.join("ftwall.prom").to_str().unwrap()]);
    // Then the operator closed the directories and left a real state file with one lock.
    chmod(&dir, 0o755);
    chmod(&clients, 0o750);
    std::fs::write(dir.join("state"), state_with_lock("192.0.2.10", now_micros() + 300_000_000)).unwrap();

    let ns = Netns::new("s");
    let config = config_in(&dir, "links");
    let mut daemon = Daemon::start(&ns, &config, &base.path().join("links.log"), "json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(is_regular(&clients.join("192.0.2.10")) && is_regular(&dir.join("ftwall.prom"))) {
        assert!(Instant::now() < deadline, "files not written:\n{}", daemon.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.stop();
    for victim in &victims {
        assert_eq!(
            std::fs::read_to_string(victim).unwrap(),
            PRECIOUS,
            "{} written through:\n{log}",
            victim.display()
        );
    }
    let client_file = std::fs::read_to_string(clients.join("192.0.2.10")).unwrap();
    assert!(client_file.starts_with("client=192.0.2.10\n"), "{client_file}");
    for file in [clients.join("192.0.2.10"), dir.join("ftwall.prom"), dir.join("state")] {
        assert!(is_regular(&file), "{}", file.display());
        assert_eq!(mode(&file), 0o640, "{}", file.display());
    }
    // No temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn a_planted_state_file_is_not_trusted() {
    let _serial = kernel_test_guard();
    let base = base();
    let year_2100 = 4_102_444_800_000_000u64;
    // Where a root-owned state file with a lock until 2100 already is (a backup, say).
    let victim = base.path().join("victim-state");
    std::fs::write(&victim, state_with_lock("192.0.2.12", year_2100)).unwrap();
    let before = std::fs::read(&victim).unwrap();
    for (case, plant) in [("symlink", "link"), ("owned by nobody", "file")] {
        let dir = base.path().join(plant);
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o777);
        let state = dir.join("state");
        if plant == "link" {
            as_nobody(&["ln", "-s", victim.to_str().unwrap(), state.to_str().unwrap()]);
        } else {
            let text = state_with_lock("192.0.2.12", year_2100);
            as_nobody(&["sh", "-c", &format!("printf '%s' '{text}' > {}", state.display())]);
        }
        chmod(&dir, 0o755);
        let ns = Netns::new(if plant == "link" { "l" } else { "f" });
        let config = config_in(&dir, plant);
        let mut daemon = Daemon::start(&ns, &config, &base.path().join(format!("{plant}.log")), "json");
        let clients = ctl_json(&dir.join("control.sock"), &["clients"]);
        let log = daemon.stop();
        assert_eq!(
            clients["clients"],
            serde_json::json!([]),
            "{case}: the planted lock was restored: {clients}\n{log}"
        );
        let corrupt =
            log.lines().find(|l| l.contains("\"state_corrupt\"")).unwrap_or_else(|| panic!("{case}:\n{log}"));
        let why = if plant == "link" { "symbolic link" } else { "owned by uid 65534" };
        assert!(corrupt.contains(why), "{case}: {corrupt}");
        // Moved aside (never followed), and the state saved at shutdown is ftwall's own file.
        assert!(is_regular(&state) && mode(&state) == 0o640, "{case}");
        assert_eq!(std::fs::read(&victim).unwrap(), before, "{case}: the link's target was written");
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn directories_others_can_write_are_refused_and_created_ones_are_0750() {
    let _serial = kernel_test_guard();
    let base = base();
    let check = |config: &Path| -> Output {
        ftwall().args(["check-config", "--user", "0"]).arg(config).output().unwrap()
    };
    let good = base.path().join("good");
    std::fs::create_dir(&good).unwrap();
    let config = config_in(&good, "good");
    assert!(check(&config).status.success(), "{:?}", check(&config));
    // (key, directory, how it is opened up)
    let shared = base.path().join("shared");
    for (key, mode_or_owner) in [
        ("state_file", "0777"),
        ("state_file", "1777"),
        ("state_file", "0770"),
        ("client_dir", "0757"),
        ("metrics.file", "owned by nobody"),
    ] {
        let _ = std::fs::remove_dir_all(&shared);
        std::fs::create_dir(&shared).unwrap();
        chmod(&shared, 0o755);
        let opened = match key {
            "client_dir" => {
                std::fs::create_dir(shared.join("clients")).unwrap();
                shared.join("clients")
            }
            _ => shared.clone(),
        };
        // Only the directory under test is opened; the others stay in `good`.
        let text = std::fs::read_to_string(&config).unwrap();
        let g = good.display().to_string();
        let s = shared.display().to_string();
        let text = match key {
            "state_file" => text.replace(&format!("{g}/state"), &format!("{s}/state")),
            "client_dir" => text.replace(&format!("{g}/clients"), &format!("{s}/clients")),
            _ => text.replace(&format!("{g}/ftwall.prom"), &format!("{s}/ftwall.prom")),
        };
        let bad = base.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        if mode_or_owner == "owned by nobody" {
            std::os::unix::fs::chown(&opened, Some(65534), None).unwrap();
        } else {
            chmod(&opened, u32::from_str_radix(mode_or_owner, 8).unwrap());
        }
        let want_problem = if mode_or_owner == "owned by nobody" {
            "owned by uid 65534"
        } else {
            "writable by group or others"
        };
        let out = check(&bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key} {mode_or_owner}: check-config accepted it");
        assert!(stderr.contains(key) && stderr.contains(want_problem), "{key} {mode_or_owner}: {stderr}");
        // `run` refuses before it binds anything or writes a file.
        let out = ftwall().arg("run").arg("--config").arg(&bad).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key} {mode_or_owner}: {stderr}");
        assert!(stderr.contains(key) && stderr.contains(want_problem), "{key} {mode_or_owner}: {stderr}");
        assert_eq!(std::fs::read_dir(&opened).unwrap().count(), 0, "{key}: wrote into {}", opened.display());
    }

    // Directories ftwall creates are 0750, whatever the umask it was started with.
    let fresh = base.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let f = fresh.display();
    let config = base.path().join("fresh.toml");
    std::fs::write(
        &config,
        format!(
            "queue = 3\nkernel_sets = \"off\"\nstate_file = \"{f}/new/deeper/state\"\nclient_dir = \"{f}/clients\"\n\
             [control]\nsocket = \"{f}/control.sock\"\n"
        ),
    )
    .unwrap();
    let ns = Netns::new("d");
    let log = base.path().join("fresh.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 0; exec ip netns exec {} {} run --log-format json --config {}",
            ns.0,
            env!("CARGO_BIN_EXE_ftwall"),
            config.display()
        ))
        .stderr(file)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap().contains("daemon_started") {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(&log).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    must("kill", &["-TERM", &child.id().to_string()]);
    assert!(child.wait().unwrap().success());
    for dir in [fresh.join("new"), fresh.join("new/deeper"), fresh.join("clients")] {
        assert_eq!(mode(&dir), 0o750, "{}", dir.display());
    }
    assert_eq!(mode(&fresh.join("new/deeper/state")), 0o640);
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn a_trickling_control_client_does_not_hold_up_the_operator() {
    let _serial = kernel_test_guard();
    let base = base();
    let dir = base.path().join("ctl");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o755);
    let ns = Netns::new("c");
    let config = config_in(&dir, "ctl");
    let mut daemon = Daemon::start(&ns, &config, &base.path().join("ctl.log"), "json");
    let socket = dir.join("control.sock");
    // Loosened, as an operator might (the README's case for a group of operators).
    chmod(&socket, 0o666);

    // An unauthorised user trickling a request is answered and closed at once.
    let script = format!(
        "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.connect('{}')\nt=time.time()\n\
         s.settimeout(0.3)\nwhile time.time()-t<8:\n  try:\n    d=s.recv(4096)\n    if not d: break\n  \
         except socket.timeout: pass\n  except OSError: break\n  try: s.send(b's')\n  except OSError: break\n\
         print(round(time.time()-t,2))",
        socket.display()
    );
    let mut args = NOBODY.to_vec();
    args.extend(["/usr/bin/python3", "-c", &script]);
    let out = run(args[0], &args[1..]);
    let closed_after: f64 =
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{out:?}"));
    assert!(closed_after < 1.0, "an unauthorised caller was kept {closed_after} s");

    // Root clients trickling one byte every 300 ms, more of them than the daemon serves at once
    // (4): each is cut at its 2 s request deadline.
    let tricklers: Vec<_> = (0..6)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut stream = UnixStream::connect(&socket).unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                let start = Instant::now();
                let mut buf = [0u8; 256];
                while start.elapsed() < Duration::from_secs(8) {
                    if stream.write_all(b"s").is_err() {
                        break;
                    }
                    match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    }
                }
                start.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let status = ctl_json(&socket, &["status"]);
    let took = start.elapsed();
    assert_eq!(status["ok"], true, "{status}");
    // At most the 2 s request deadline of the tricklers in the slots (plus scheduling).
    assert!(took < Duration::from_millis(2500), "ctl status took {took:?} behind trickling clients");
    for trickler in tricklers {
        let held = trickler.join().unwrap();
        assert!(held < Duration::from_secs(5), "a trickling client was kept {held:?}");
    }
    daemon.stop();
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn a_crafted_state_file_cannot_forge_log_lines() {
    let _serial = kernel_test_guard();
    let base = base();
    let dir = base.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    let forged = "INFO released by the operator event=\"operator_release\" addr=192.0.2.99 uid=0";
    let key = serde_json::to_string(&format!("a\n2026-12-02T00:00:00.000000Z  {forged}")).unwrap();
    std::fs::write(
        dir.join("state"),
        format!("{{\"version\":1,\"saved_at\":0,\"peers\":[],\"locks\":[],{key}:1}}"),
    )
    .unwrap();
    let ns = Netns::new("g");
    let config = config_in(&dir, "log");
    let mut daemon = Daemon::start(&ns, &config, &base.path().join("log.log"), "text");
    let log = daemon.stop();
    let mentioning: Vec<&str> = log.lines().filter(|l| l.contains("released by the operator")).collect();
    assert_eq!(mentioning.len(), 1, "{log}");
    assert!(mentioning[0].contains("state_corrupt"), "{log}");
    // Every line is a whole log line: it starts with its timestamp.
    for line in log.lines() {
        assert!(line.starts_with("20") && line.contains("event="), "a forged line: {line:?}\n{log}");
    }
}

#[test]
#[ignore = "needs systemd-analyze: cargo test -- --include-ignored"]
fn the_unit_keeps_restarting_and_sets_the_modes() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/ftwall.service"))
        .unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for wanted in
        ["StartLimitIntervalSec=0", "Restart=on-failure", "UMask=0027", "RemoveIPC=yes", "PrivateMounts=yes"]
    {
        assert!(lines.contains(&wanted), "{wanted} missing from the unit");
    }
    let unit_section = unit.split("[Service]").next().unwrap();
    assert!(unit_section.contains("StartLimitIntervalSec=0"), "StartLimitIntervalSec belongs in [Unit]");
    let analyze = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/ftwall.service"))
        .output();
    match analyze {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let level: f64 = text
                .lines()
                .find_map(|l| l.split("exposure level for ftwall.service: ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{text}"));
            assert!(level <= 1.9, "exposure {level}, was 1.9");
        }
        Err(e) => panic!("this test cannot run here: systemd-analyze: {e}"),
    }
}
