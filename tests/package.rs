//! The Debian package: `packaging/build-deb.sh` (release build, man pages, `cargo deb`), then the
//! .deb's contents, control files and maintainer scripts are checked with `dpkg-deb`.
//! Needs cargo-deb (`cargo install cargo-deb --locked`, done by .ci/run), dpkg-deb and lintian. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// None when `cmd` runs and succeeds, else why not.
fn missing(cmd: &mut Command) -> Option<String> {
    match cmd.output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("{cmd:?} failed: {}", stderr(&out).trim())),
        Err(e) => Some(format!("{cmd:?}: {e}")),
    }
}

/// Fails, naming what is missing, unless cargo-deb and dpkg-deb are installed.
fn require_packaging_tools() {
    let problems: Vec<String> = [
        missing(Command::new(env!("CARGO")).args(["deb", "--version"])),
        missing(Command::new("dpkg-deb").arg("--version")),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        problems.is_empty(),
        "this test cannot run here: {} (install cargo-deb: cargo install cargo-deb --locked)",
        problems.join("; ")
    );
}

/// The two tests build the same package in the same target directory: one at a time.
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs packaging/build-deb.sh and returns the .deb it reports.
fn build_deb() -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.arg(manifest_dir().join("packaging/build-deb.sh")).arg("--locked").current_dir(manifest_dir());
    // cargo's own variables for this test binary must not leak into the nested builds.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_") || key.starts_with("CARGO_BIN_") || key == "CARGO_CRATE_NAME" {
            cmd.env_remove(&*key);
        }
    }
    let started = std::time::Instant::now();
    let out = output(&mut cmd);
    assert!(out.status.success(), "build-deb.sh failed:\n{}", stderr(&out));
    eprintln!("build-deb.sh took {:.1}s", started.elapsed().as_secs_f64());
    let deb =
        PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().expect("a .deb path").trim());
    assert!(deb.extension().is_some_and(|e| e == "deb") && deb.is_file(), "{}", deb.display());
    deb
}

/// `dpkg-deb -c`: path (without the leading `.`) -> permissions, for files.
fn contents(deb: &Path) -> BTreeMap<String, String> {
    stdout_of(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.last().unwrap().trim_start_matches('.').to_string();
            (path, fields[0].to_string())
        })
        .collect()
}

#[test]
#[ignore = "builds the .deb with cargo-deb, dpkg-deb and lintian: cargo test -- --include-ignored"]
fn deb_has_binary_unit_rules_conffile_man_pages_and_state_dir() {
    require_packaging_tools();
    let _serial = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let deb = build_deb();
    let files = contents(&deb);
    let listing = || files.keys().cloned().collect::<Vec<_>>().join("\n");
    let mode =
        |path: &str| files.get(path).unwrap_or_else(|| panic!("{path} not in the .deb:\n{}", listing()));

    // What systemd/ftwall.service expects: ExecStart, the config path, the user and StateDirectory.
    let unit = std::fs::read_to_string(manifest_dir().join("systemd/ftwall.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/sbin/ftwall run --config /etc/ftwall/ftwall.toml"));
    assert_eq!(mode("/usr/sbin/ftwall"), "-rwxr-xr-x");
    assert_eq!(mode("/usr/lib/systemd/system/ftwall.service"), "-rw-r--r--");
    assert_eq!(mode("/etc/ftwall/ftwall.toml"), "-rw-r--r--");
    assert_eq!(mode("/usr/lib/sysusers.d/ftwall.conf"), "-rw-r--r--");
    assert_eq!(mode("/usr/lib/tmpfiles.d/ftwall.conf"), "-rw-r--r--");
    mode("/usr/share/doc/ftwall/README.md");
    // Every docs/ page, beside the README (the README links to them).
    for entry in std::fs::read_dir(manifest_dir().join("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            assert_eq!(mode(&format!("/usr/share/doc/ftwall/{name}")), "-rw-r--r--", "{name}");
        }
    }
    mode("/usr/share/doc/ftwall/copyright");
    assert_eq!(mode("/usr/share/doc/ftwall/changelog.Debian.gz"), "-rw-r--r--");
    for completion in [
        "/usr/share/bash-completion/completions/ftwall",
        "/usr/share/zsh/vendor-completions/_ftwall",
        "/usr/share/fish/vendor_completions.d/ftwall.fish",
    ] {
        assert_eq!(mode(completion), "-rw-r--r--", "{completion}");
    }
    assert_eq!(mode("/usr/share/ftwall/grafana/ftwall-dashboard.json"), "-rw-r--r--");
    // Every file of iptables/, scripts executable.
    for entry in std::fs::read_dir(manifest_dir().join("iptables")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let want = if name.ends_with(".sh") { "-rwxr-xr-x" } else { "-rw-r--r--" };
        assert_eq!(mode(&format!("/usr/share/ftwall/iptables/{name}")), want, "{name}");
    }

    let info = stdout_of(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in ["Package: ftwall", "Section: net", "Priority: optional", "Architecture: "] {
        assert!(info.lines().any(|l| l.trim_start().starts_with(field)), "no {field:?} in:\n{info}");
    }
    let depends = info.lines().find(|l| l.trim_start().starts_with("Depends:")).expect("Depends");
    assert!(depends.contains("iptables") && depends.contains("libc6"), "{depends}");
    // uninstall.sh removes the iptables `security` table install.sh created with `nft`.
    let recommends = info.lines().find(|l| l.trim_start().starts_with("Recommends:")).expect("Recommends");
    assert!(recommends.contains("ipset") && recommends.contains("nftables"), "{recommends}");

    // Control files: the config is a conffile; the unit is neither enabled nor started.
    let work = tempfile::tempdir().unwrap();
    let control = work.path().join("DEBIAN");
    stdout_of(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let conffiles = read(&control.join("conffiles"));
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/ftwall/ftwall.toml"]);
    let postinst = read(&control.join("postinst"));
    assert!(postinst.contains("systemd-sysusers") && postinst.contains("ftwall.conf"), "{postinst}");
    assert!(postinst.contains("install -d -m 0750 -o ftwall -g ftwall /var/lib/ftwall"), "{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "the debhelper token was not replaced");
    assert!(!postinst.contains("deb-systemd-invoke start"), "the unit must not be started:\n{postinst}");
    // cargo-deb's "don't enable" snippet re-enables only a unit the admin had enabled before.
    assert!(postinst.contains("deb-systemd-helper debian-installed ftwall.service"), "{postinst}");
    assert!(!postinst.contains("new installations run enable"), "the unit must not be enabled:\n{postinst}");
    let postrm = read(&control.join("postrm"));
    assert!(postrm.contains("rm -rf /var/lib/ftwall"), "{postrm}");

    // The payload: the state directory, the config as shipped, the binary, the man pages.
    let root = work.path().join("root");
    stdout_of(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let tmpfiles = read(&root.join("usr/lib/tmpfiles.d/ftwall.conf"));
    assert!(tmpfiles.lines().any(|l| l.trim() == "d /var/lib/ftwall 0750 ftwall ftwall -"), "{tmpfiles}");
    let sysusers = read(&root.join("usr/lib/sysusers.d/ftwall.conf"));
    assert!(sysusers.lines().any(|l| l.starts_with("u ftwall ")), "{sysusers}");
    assert_eq!(
        read(&root.join("etc/ftwall/ftwall.toml")),
        read(&manifest_dir().join("examples/ftwall.toml"))
    );
    assert_eq!(read(&root.join("usr/lib/systemd/system/ftwall.service")), unit);

    let bash = read(&root.join("usr/share/bash-completion/completions/ftwall"));
    assert!(bash.contains("complete -F _ftwall") && bash.contains("check-config"), "{bash:.300}");
    assert_eq!(
        read(&root.join("usr/share/ftwall/grafana/ftwall-dashboard.json")),
        read(&manifest_dir().join("packaging/grafana/ftwall-dashboard.json"))
    );

    let bin = root.join("usr/sbin/ftwall");
    // Stripped: no debug info, no symbol table (the release profile splits its line tables out).
    let sections = stdout_of(Command::new("readelf").arg("-S").arg("-W").arg(&bin));
    for section in [".debug_info", ".debug_line", ".symtab"] {
        assert!(!sections.contains(section), "{section} in the packaged binary:\n{sections}");
    }
    let version = stdout_of(Command::new(&bin).arg("--version"));
    assert!(version.starts_with(&format!("ftwall {} (git ", env!("CARGO_PKG_VERSION"))), "{version}");
    let conf = root.join("etc/ftwall/ftwall.toml");
    stdout_of(Command::new(&bin).arg("check-config").arg(&conf));

    let help = stdout_of(Command::new(&bin).arg("--help"));
    let subcommands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .expect("Commands:")
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(subcommands.contains(&"run") && subcommands.contains(&"replay"), "{subcommands:?}");
    let gunzip = |p: &str| stdout_of(Command::new("gzip").arg("-dc").arg(root.join(p)));
    let page = gunzip("usr/share/man/man8/ftwall.8.gz");
    assert!(page.contains("\n.TH ftwall 8 ") && page.contains(".SH FILES"), "{page:.300}");
    for sub in &subcommands {
        let name = format!("ftwall-{sub}");
        assert!(page.contains(&format!("{}(8)", name.replace('-', "\\-"))), "ftwall.8 lacks {name}");
        let sub_page = gunzip(&format!("usr/share/man/man8/{name}.8.gz"));
        assert!(sub_page.contains(&format!("\n.TH {name} 8 ")), "{name}.8: {sub_page:.300}");
    }
    // The test-traffic tool has one page, not one per nested subcommand.
    assert!(subcommands.contains(&"sim"), "{subcommands:?}");
    assert!(
        !files.keys().any(|p| p.starts_with("/usr/share/man/man8/ftwall-sim-")),
        "ftwall sim's subcommands have pages:\n{}",
        listing()
    );
    // ftwall-run(8) answers an operator's questions about the daemon, not just its options.
    let run = gunzip("usr/share/man/man8/ftwall-run.8.gz");
    for section in [".SH SIGNALS", ".SH EXIT STATUS", ".SH ENVIRONMENT", ".SH LOG EVENTS", ".SH FILES"] {
        assert!(run.contains(section), "ftwall-run.8 lacks {section}: {run:.600}");
    }
    assert!(run.contains("SIGHUP") && run.contains("\\fBpacket_dropped\\fR"), "{run:.600}");
    let conf = gunzip("usr/share/man/man5/ftwall.toml.5.gz");
    assert!(conf.contains(".TH ftwall.toml 5 ") && conf.contains(".SH KEYS"), "ftwall.toml.5: {conf:.300}");
    let events = gunzip("usr/share/man/man7/ftwall-events.7.gz");
    assert!(
        events.contains(".TH FTWALL-EVENTS 7 ") && events.contains(".SH METRICS"),
        "ftwall-events.7: {events:.300}"
    );
    // Nested subcommands (`ftwall ctl ban`) get pages too, named ftwall-ctl-ban.8.
    let pages: Vec<&String> = files.keys().filter(|p| p.starts_with("/usr/share/man/man8/")).collect();
    for page in &pages {
        let name = page.trim_start_matches("/usr/share/man/man8/").trim_end_matches(".8.gz");
        let top = name.strip_prefix("ftwall-").map(|rest| rest.split('-').next().unwrap_or(rest));
        let known = |t: &str| subcommands.iter().any(|s| *s == t || s.starts_with(&format!("{t}-")));
        assert!(name == "ftwall" || top.is_some_and(known), "{page} is no subcommand's page:\n{}", listing());
    }
    assert!(
        pages.len() > subcommands.len(),
        "one page per visible subcommand, plus ftwall.8:\n{}",
        listing()
    );
}

/// lintian, Debian's package checker, has nothing to say at the error or warning level (.ci/run
/// installs it).
#[test]
#[ignore = "builds the .deb with cargo-deb, dpkg-deb and lintian: cargo test -- --include-ignored"]
fn lintian_finds_no_errors_or_warnings() {
    require_packaging_tools();
    if let Some(why) = missing(Command::new("lintian").arg("--version")) {
        panic!("this test cannot run here: {why} (apt-get install lintian)");
    }
    let _serial = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let deb = build_deb();
    let out =
        output(Command::new("lintian").args(["--fail-on", "none", "--tag-display-limit", "0"]).arg(&deb));
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let serious: Vec<&str> =
        report.lines().filter(|l| l.starts_with("E: ") || l.starts_with("W: ")).collect();
    assert!(serious.is_empty(), "lintian:\n{report}{}", stderr(&out));
}
