//! The nftables rule set (`iptables/ftwall.nft`) and the installer's choice of backend, each in a
//! throw-away network namespace. Kernels without the native nft `queue` statement
//! (CONFIG_NFT_QUEUE unset, as on the machines this was written on) reject any rule with `queue`,
//! even under `nft -c`; so the file is validated and loaded with `queue` swapped for `accept`, and
//! the unmodified file must either load or fail only at its `queue` statements. The last test
//! passes traffic through the accept version in the end-to-end lab to exercise `ft_clients`.
//! Root, `ip`, `iptables` and `nft` are needed. Every test here is `#[ignore]`d, so plain `cargo test`
//! lists it as ignored; `cargo test -- --include-ignored` (the README's test command, and CI's)
//! runs it, and where it cannot run it fails, saying why.

mod common;

use common::{kernel_test_guard, must, run};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

/// The kernel-test guard, plus `nft`.
fn nft_guard() -> MutexGuard<'static, ()> {
    let guard = kernel_test_guard();
    assert!(
        run("sh", &["-c", "command -v nft"]).status.success(),
        "this kernel test cannot run here: nft is not installed (.ci/run installs nftables)"
    );
    guard
}

/// A network namespace with a distinctive name, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ftwall-nft-test-{}-{n}-{tag}", std::process::id());
        let _ = run("ip", &["netns", "del", &name]);
        must("ip", &["netns", "add", &name]);
        Self(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0]).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn must(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.0]);
    }
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("iptables")
}

/// ftwall.nft with its placeholders substituted as `install.sh` does (the inbound block kept),
/// and `queue` for `@QUEUE@`.
fn substitute(text: &str, lan_if: &str, queue: &str) -> String {
    assert!(text.contains("@LAN_IF@") && text.contains("@QUEUE@") && text.contains("@INBOUND@"));
    let text = text.replace("@LAN_IF@", lan_if).replace("@QUEUE@", queue).replace("@INBOUND@", "");
    for placeholder in ["@LAN_IF@", "@QUEUE@", "@INBOUND@"] {
        assert!(!text.contains(placeholder), "{placeholder} left: {text}");
    }
    text
}

/// ftwall.nft with its placeholders substituted, written to `dir`.
fn nft_file(dir: &Path, name: &str, queue: &str) -> String {
    let text = substitute(&std::fs::read_to_string(scripts().join("ftwall.nft")).unwrap(), "veth0", queue);
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Whether this kernel has nft's native `queue` statement (the installer's probe, checked here).
fn kernel_has_nft_queue(ns: &Netns, dir: &Path) -> bool {
    let probe = dir.join("probe.nft");
    std::fs::write(
        &probe,
        "table inet ftwall_probe {\n chain c {\n  type filter hook forward priority filter; policy accept;\n  \
         queue num 0 bypass\n }\n}\n",
    )
    .unwrap();
    ns.run(&["nft", "-c", "-f", probe.to_str().unwrap()]).status.success()
}

/// Lines of an nft file outside comments containing `needle`.
fn rules_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| !l.trim_start().starts_with('#') && l.contains(needle)).count()
}

/// Index of the first line of `listing` containing `needle`, or a panic naming it.
fn line_of(listing: &str, needle: &str) -> usize {
    listing
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in the listing:\n{listing}"))
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn nft_file_checks_and_loads_with_queue_swapped_for_accept() {
    let _serial = nft_guard();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("load");
    let file = nft_file(dir.path(), "ftwall-accept.nft", "accept");

    // Another table, which loading and removing ftwall's must leave alone.
    ns.must(&["nft", "add", "table", "inet", "other"]);
    ns.must(&["nft", "add", "chain", "inet", "other", "keep", "{ type filter hook forward priority 10; }"]);
    ns.must(&["nft", "add", "rule", "inet", "other", "keep", "tcp", "dport", "22", "accept"]);
    let other = ns.must(&["nft", "list", "table", "inet", "other"]);

    ns.must(&["nft", "-c", "-f", &file]);
    ns.must(&["nft", "-f", &file]);
    let once = ns.must(&["nft", "list", "table", "inet", "ftwall"]);
    ns.must(&["nft", "-f", &file]);
    assert_eq!(ns.must(&["nft", "list", "table", "inet", "ftwall"]), once, "loading twice changes nothing");
    assert_eq!(ns.must(&["nft", "list", "table", "inet", "other"]), other, "other tables untouched");
    let tables = ns.must(&["nft", "list", "tables"]);
    assert_eq!(tables.lines().collect::<Vec<_>>(), ["table inet other", "table inet ftwall"], "{tables}");

    // The sets, and the rules in the order of ftwall.rules / ftwall6.rules.
    for needle in [
        "set ft_clients {",
        "set ft_clients6 {",
        "set ft_peers {",
        "set ft_peers6 {",
        "set ft_weak_peers {",
        "set ft_weak_peers6 {",
        "type ipv4_addr . ipv4_addr . inet_service",
        "flags interval,timeout",
        "set ft_allow_ports {",
        "type inet_service",
        "type ipv4_addr",
        "type ipv6_addr",
        "timeout 2m",
    ] {
        line_of(&once, needle);
    }
    // After the admin's chains at priority filter (0): an accept of ftwall's ends only its chain.
    line_of(&once, "type filter hook forward priority security; policy accept;");
    let order = [
        "meta mark & 0x00000003 == 0x00000001 ct mark set ct mark",
        "meta mark & 0x00000003 == 0x00000002 ct mark set ct mark",
        "meta mark & 0x00000003 == 0x00000001 accept",
        "meta mark & 0x00000003 == 0x00000002 drop",
        "meta l4proto ipv6-icmp return",
        "oifname \"veth0\" iifname != \"veth0\" ct state invalid drop",
        "oifname \"veth0\" iifname != \"veth0\" ct state new ct status ! dnat drop",
        "meta l4proto udp @th,64,8 0x27-0x29 @th,72,24 0x0 accept",
        "udp length 13 @th,64,8 0x2a accept",
        "udp length 15 @th,64,8 0xc1 accept",
        "udp length 19 @th,64,8 0xc2 accept",
        "meta l4proto udp @th,64,16 0xc028 accept",
        "meta l4proto udp @th,64,16 0xc328 accept",
        "iifname \"veth0\" ip saddr @ft_clients ct state new tcp dport != @ft_allow_ports drop",
        "iifname \"veth0\" ip6 saddr @ft_clients6 ct state new tcp dport != @ft_allow_ports drop",
        "iifname \"veth0\" ip daddr @ft_peers ct state new meta l4proto { tcp, udp } drop",
        "iifname \"veth0\" ip6 daddr @ft_peers6 ct state new meta l4proto { tcp, udp } drop",
        "iifname \"veth0\" meta l4proto { tcp, udp } ct state new ip saddr . ip daddr . th dport @ft_weak_peers th dport != @ft_allow_ports drop",
        "iifname \"veth0\" meta l4proto { tcp, udp } ct state new ip6 saddr . ip6 daddr . th dport @ft_weak_peers6 th dport != @ft_allow_ports drop",
        "ct mark & 0x00000003 == 0x00000001 accept",
        "ct mark & 0x00000003 == 0x00000002 drop",
        "oifname \"veth0\" iifname != \"veth0\" ct state established ct reply packets 1-8 accept",
        "oifname \"veth0\" ct state established,related accept",
        "iifname \"veth0\" meta l4proto tcp accept",
        "iifname \"veth0\" meta l4proto udp accept",
    ];
    let lines: Vec<usize> = order.iter().map(|needle| line_of(&once, needle)).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "rules out of order:\n{once}");

    // What the daemon will do to lock a client in the kernel.
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_clients", "{ 192.0.2.10 timeout 5s }"]);
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_clients6", "{ 2001:db8::10 timeout 5s }"]);
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_clients", "{ 198.51.100.7 }"]);
    let set = ns.must(&["nft", "list", "set", "inet", "ftwall", "ft_clients"]);
    assert!(set.contains("192.0.2.10 timeout 5s expires"), "{set}");
    assert!(set.contains("198.51.100.7 expires"), "default timeout applies: {set}");
    let set6 = ns.must(&["nft", "list", "set", "inet", "ftwall", "ft_clients6"]);
    assert!(set6.contains("2001:db8::10 timeout 5s expires"), "{set6}");
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_peers", "{ 198.51.100.20 }"]);
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_peers6", "{ 2001:db8::20 timeout 1d }"]);
    ns.must(&["nft", "add", "element", "inet", "ftwall", "ft_allow_ports", "{ 53, 80, 443 }"]);
    let peers = ns.must(&["nft", "list", "set", "inet", "ftwall", "ft_peers"]);
    assert!(peers.contains("elements = { 198.51.100.20 }"), "no timeout unless given: {peers}");

    // uninstall.sh removes the table (twice is fine) and nothing else.
    let uninstall = scripts().join("uninstall.sh");
    for _ in 0..2 {
        ns.must(&["sh", uninstall.to_str().unwrap()]);
    }
    assert!(!ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success(), "table removed");
    assert_eq!(ns.must(&["nft", "list", "table", "inet", "other"]), other, "other tables untouched");
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn nft_file_with_queue_loads_or_fails_only_at_queue() {
    let _serial = nft_guard();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("queue");
    let has_queue = kernel_has_nft_queue(&ns, dir.path());
    for (name, queue) in [("single.nft", "queue num 0 bypass"), ("balance.nft", "queue num 0-1 bypass")] {
        let file = nft_file(dir.path(), name, queue);
        let check = ns.run(&["nft", "-c", "-f", &file]);
        let stderr = String::from_utf8_lossy(&check.stderr);
        if has_queue {
            assert!(check.status.success(), "{queue}: {stderr}");
            ns.must(&["nft", "-f", &file]);
            let listing = ns.must(&["nft", "list", "table", "inet", "ftwall"]);
            assert_eq!(listing.matches(queue).count(), 9, "{listing}");
            continue;
        }
        assert!(!check.status.success(), "{queue} accepted although the probe failed");
        // nft prints, per error: `file:line:cols: Error: ...`, the source line, then carets.
        let lines: Vec<&str> = stderr.lines().collect();
        let errors: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains("Error:")).collect();
        assert_eq!(errors.len(), 9, "one error per queue rule, nothing else:\n{stderr}");
        for i in errors {
            let (source, carets) = (lines[i + 1], lines[i + 2]);
            let at = carets.find('^').unwrap_or_else(|| panic!("no carets:\n{stderr}"));
            assert!(source[at..].starts_with("queue"), "error not at a queue statement:\n{stderr}");
            assert!(source.contains(queue), "{source}");
        }
        assert!(!ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success(), "nothing committed");
    }
}

#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn installer_probes_the_kernel_and_falls_back_to_iptables() {
    let _serial = nft_guard();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("probe");
    let install = scripts().join("install.sh");
    let install = install.to_str().unwrap();
    let out = ns.cmd(&["sh", install, "veth0", "0"]).env_remove("FTWALL_BACKEND").output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    if kernel_has_nft_queue(&ns, dir.path()) {
        eprintln!("this kernel has the nft queue statement: the installer picked nft");
        assert!(stdout.contains("installed (nft)"), "{stdout}");
        assert!(ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success());
        return;
    }
    let note = "note: this kernel has no native nftables queue statement; using iptables (nft backend) rules";
    assert!(stderr.contains(note), "{stderr}");
    assert!(stdout.contains("installed (iptables)"), "{stdout}");
    let chain = ns.must(&["iptables", "-t", "security", "-S", "FTWALL"]);
    assert!(chain.contains("-A FTWALL -i veth0 -p tcp -j NFQUEUE --queue-num 0 --queue-bypass"), "{chain}");
    let jumps = ns.must(&["iptables", "-t", "security", "-S", "FORWARD"]);
    assert!(jumps.contains("-A FORWARD -m comment --comment ftwall-created-table -j FTWALL"), "{jumps}");
    assert!(!ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success(), "no nft table");

    // Forcing nft on this kernel fails clearly and changes nothing.
    let forced = ns.cmd(&["sh", install, "veth0", "0"]).env("FTWALL_BACKEND", "nft").output().unwrap();
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert_eq!(forced.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FTWALL_BACKEND=nft, but this kernel has no native nftables queue statement"));
    assert_eq!(ns.must(&["iptables", "-t", "security", "-S", "FTWALL"]), chain, "iptables rules kept");
    assert!(!ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success(), "no nft table");

    let bad = ns.cmd(&["sh", install, "veth0", "0"]).env("FTWALL_BACKEND", "pf").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("FTWALL_BACKEND must be nft or iptables"));
}

/// The installer's nft path, run against a stand-in `nft` that swaps `queue` for `accept` (so it
/// works on kernels without the queue statement) and keeps a copy of what it was given.
#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn installer_nft_backend_through_a_queue_shim() {
    let _serial = nft_guard();
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new("shim");
    let real = String::from_utf8(run("sh", &["-c", "command -v nft"]).stdout).unwrap();
    let seen = dir.path().join("seen.nft");
    let shim_dir = dir.path().join("bin");
    std::fs::create_dir(&shim_dir).unwrap();
    let shim = format!(
        "#!/bin/sh\ncase \" $* \" in\n*\" -f - \"*) tee '{}' | sed -E 's/queue num [0-9]+(-[0-9]+)? bypass/accept/' | \
         exec '{}' \"$@\" ;;\n*) exec '{}' \"$@\" ;;\nesac\n",
        seen.display(),
        real.trim(),
        real.trim()
    );
    std::fs::write(shim_dir.join("nft"), shim).unwrap();
    must("chmod", &["755", shim_dir.join("nft").to_str().unwrap()]);
    let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap_or_default());
    let install = scripts().join("install.sh");
    let install = install.to_str().unwrap();
    let installer = |args: &[&str]| {
        let mut full = vec!["sh", install];
        full.extend_from_slice(args);
        let out = ns.cmd(&full).env("PATH", &path).env_remove("FTWALL_BACKEND").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };

    // The admin's own ruleset (an nft table and an iptables rule), which install.sh, switching
    // backends and uninstall.sh must leave byte for byte as it was.
    ns.must(&["nft", "add", "table", "inet", "other"]);
    ns.must(&["nft", "add", "chain", "inet", "other", "keep", "{ type filter hook forward priority 0; }"]);
    ns.must(&["nft", "add", "rule", "inet", "other", "keep", "tcp", "dport", "25", "reject"]);
    ns.must(&["iptables", "-A", "FORWARD", "-p", "udp", "--dport", "5000", "-j", "DROP"]);
    let before = ns.must(&["nft", "list", "ruleset"]);

    // Installed over the iptables rules, the nft rules replace them.
    ns.cmd(&["sh", install, "veth0", "3"]).env("FTWALL_BACKEND", "iptables").output().unwrap();
    assert!(ns.must(&["iptables-save"]).contains("FTWALL"));
    assert!(installer(&["veth0", "3:4"]).contains("installed (nft)"));
    let given = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(rules_with(&given, "queue num 3-4 bypass"), 9, "{given}");
    assert!(given.contains("oifname \"veth0\" iifname != \"veth0\"") && !given.contains("@LAN_IF@"));
    let once = ns.must(&["nft", "list", "table", "inet", "ftwall"]);
    assert!(!ns.must(&["iptables-save"]).contains("FTWALL"), "iptables chain removed");
    assert!(!ns.must(&["iptables-save"]).contains("*security"), "the table it created removed");
    assert!(installer(&["veth0", "3:4"]).contains("installed (nft)"));
    assert_eq!(
        ns.must(&["nft", "list", "table", "inet", "ftwall"]),
        once,
        "installing twice changes nothing"
    );
    installer(&["veth0", "5"]);
    assert_eq!(rules_with(&std::fs::read_to_string(&seen).unwrap(), "queue num 5 bypass"), 9);

    // And back: the iptables backend removes the nft table.
    let out = ns.cmd(&["sh", install, "veth0", "3"]).env("FTWALL_BACKEND", "iptables").output().unwrap();
    assert!(out.status.success());
    assert!(!ns.run(&["nft", "list", "table", "inet", "ftwall"]).status.success(), "nft table removed");
    assert!(ns.must(&["iptables", "-t", "security", "-S", "FTWALL"]).contains("--queue-num 3"));

    // --no-inbound-block: the inbound block's two rules are left out, nothing else.
    let printed = installer(&["--no-inbound-block", "veth0", "3"]);
    assert!(printed.contains("inbound block: off"), "{printed}");
    let open = ns.must(&["nft", "list", "table", "inet", "ftwall"]);
    assert!(!open.contains("ct state invalid drop") && !open.contains("dnat"), "{open}");
    assert_eq!(open.lines().count() + 2, once.lines().count(), "only the two inbound rules differ");
    assert!(!ns.must(&["iptables-save"]).contains("FTWALL"), "iptables rules replaced");

    // uninstall.sh leaves the ruleset as it was before the first install, and says what it removed.
    let out = ns.cmd(&["sh", scripts().join("uninstall.sh").to_str().unwrap()]).output().unwrap();
    let removed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && removed.contains("nft: table inet ftwall"), "{removed}");
    assert_eq!(ns.must(&["nft", "list", "ruleset"]), before, "install/uninstall changed the ruleset");
}

/// Runs `args` in namespace `ns`; must succeed; returns stdout.
fn in_ns(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    let out = run("ip", &full);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Loads ftwall.nft into the lab's gateway, its LAN interface filled in and `queue` swapped for
/// `accept` (this kernel has no nft queue statement).
fn load_accept_copy(lab: &common::Lab) {
    let text = std::fs::read_to_string(scripts().join("ftwall.nft")).unwrap();
    let file = lab.dir.path().join("ftwall-accept.nft");
    std::fs::write(&file, substitute(&text, &format!("{}g0", lab.prefix), "accept")).unwrap();
    in_ns(&lab.ns("gw"), &["nft", "-f", file.to_str().unwrap()]);
}

/// Traffic through ftwall.nft (queue swapped for accept, no daemon) in the end-to-end lab, built
/// without the iptables rules (`ftwall lab up --rules none`) so that only the nft table filters:
/// ordinary traffic passes, new connections into the LAN are dropped (but for a DNAT port
/// forward), and a client in `ft_clients` is blocked in the kernel
/// (new TCP connections, as in the daemon's time-lock) except to the allowed ports, until its
/// element times out.
#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn ft_clients_blocks_a_locked_client_in_the_kernel() {
    let _serial = nft_guard();
    assert!(common::sim_path().exists(), "simulator not built at {}", common::sim_path().display());
    let mut lab = common::Lab::with_rules("ftn", "none");
    let gw = lab.ns("gw");
    let in_gw = |args: &[&str]| in_ns(&gw, args);
    assert!(!in_gw(&["iptables-save"]).contains("FTWALL"));
    load_accept_copy(&lab);

    let wan_log = lab.dir.path().join("wan.jsonl");
    let lan_log = lab.dir.path().join("lan.jsonl");
    lab.spawn_responder(
        "wan",
        &["--udp", "198.51.100.25:53,198.51.100.25:5353", "--tcp-ports", "80,7777"],
        &wan_log,
    );
    lab.spawn_responder("lan", &["--tcp-ports", "2222"], &lan_log);
    lab.warm_up();
    let udp = |client: &str, to: &str| {
        lab.sim("lan", &["udp", "--to", to, "--bind", client, "--timeout-ms", "800"])["echoed"] == true
    };
    let tcp = |client: &str, to: &str| common::tcp(&lab, client, to, "plain-http")["connected"] == true;
    let client = common::LAN_CLIENT;
    assert!(udp(client, "198.51.100.25:5353") && tcp(client, "198.51.100.26:7777"), "before the lock");
    let inbound =
        lab.sim("wan", &["tcp", "--to", "192.0.2.11:2222", "--payload", "none", "--timeout-ms", "1500"]);
    assert_eq!(inbound["connected"], false, "inbound connection: {inbound}");
    // A port forward (the admin's DNAT, gateway:8080 -> 192.0.2.11:2222) is exempt from the
    // inbound block.
    let g1 = format!("{}g1", lab.prefix);
    in_gw(&["nft", "add", "table", "ip", "labnat"]);
    in_gw(&["nft", "add", "chain", "ip", "labnat", "pre", "{ type nat hook prerouting priority dstnat; }"]);
    in_gw(&[
        "nft",
        "add",
        "rule",
        "ip",
        "labnat",
        "pre",
        "iifname",
        &g1,
        "tcp",
        "dport",
        "8080",
        "dnat",
        "to",
        "192.0.2.11:2222",
    ]);
    let forwarded =
        lab.sim("wan", &["tcp", "--to", "198.51.100.1:8080", "--payload", "none", "--timeout-ms", "1500"]);
    assert_eq!(forwarded["connected"], true, "port forward: {forwarded}");

    // What the daemon loads from `timelock.allow_ports` (the rules name no port).
    in_gw(&["nft", "add", "element", "inet", "ftwall", "ft_allow_ports", "{ 53, 80, 443 }"]);
    in_gw(&["nft", "add", "element", "inet", "ftwall", "ft_clients", &format!("{{ {client} timeout 4s }}")]);
    // A suspect peer: no LAN host opens a new flow to it.
    assert!(tcp(common::OTHER_CLIENT, "198.51.100.27:7777"), "before the peer is suspect");
    in_gw(&["nft", "add", "element", "inet", "ftwall", "ft_peers", "{ 198.51.100.27 timeout 4s }"]);
    assert!(!tcp(common::OTHER_CLIENT, "198.51.100.27:7777"), "new TCP to a suspect peer");
    assert!(!tcp(client, "198.51.100.26:7777"), "locked client, new TCP to a port outside allow_ports");
    // As in the daemon's time-lock, UDP is not refused by the lock itself.
    assert!(udp(client, "198.51.100.25:5353"), "locked client, UDP");
    assert!(udp(client, "198.51.100.25:53"), "locked client, UDP to port 53");
    assert!(tcp(client, "198.51.100.26:80"), "locked client, TCP to port 80");
    assert!(udp(common::OTHER_CLIENT, "198.51.100.25:5353"), "another client is not locked");

    std::thread::sleep(std::time::Duration::from_secs(5));
    let set = in_gw(&["nft", "list", "set", "inet", "ftwall", "ft_clients"]);
    assert!(!set.contains(client), "element expired: {set}");
    assert!(udp(client, "198.51.100.25:5353") && tcp(client, "198.51.100.26:7777"), "after the lock");
    assert!(tcp(common::OTHER_CLIENT, "198.51.100.27:7777"), "after the peer's element expired");
}

/// The kernel sets (on by default; here through the old key `timelock.kernel_set = true`): the
/// daemon (queueing through the iptables rules, as on this kernel) prefers the nft sets to the
/// ipsets when both exist, loads `ft_allow_ports`, mirrors its locks into `ft_clients`, with the
/// lock's remaining time as the element's timeout, and its suspect peers into `ft_peers`, and
/// removes a client when the operator releases it.
#[test]
#[ignore = "needs root, network namespaces and netfilter: cargo test -- --include-ignored"]
fn daemon_mirrors_locks_into_ft_clients() {
    let _serial = nft_guard();
    assert!(common::sim_path().exists(), "simulator not built at {}", common::sim_path().display());
    let mut lab = common::Lab::new("ftk");
    let gw = lab.ns("gw");
    let in_gw = |args: &[&str]| in_ns(&gw, args);
    load_accept_copy(&lab);
    let wan_log = lab.dir.path().join("wan.jsonl");
    lab.spawn_responder("wan", &["--udp", "198.51.100.20:1214,198.51.100.25:53"], &wan_log);
    lab.warm_up();
    lab.write_config(&[], false);
    let config = std::fs::read_to_string(&lab.config_path).unwrap();
    std::fs::write(&lab.config_path, config.replace("[timelock]\n", "[timelock]\nkernel_set = true\n"))
        .unwrap();
    lab.start_and_wait(&[]);
    let enabled =
        lab.wait_log("kernel_set_enabled", 1, Duration::from_secs(5), |v| v["event"] == "kernel_set_enabled");
    assert_eq!(enabled["backend"], "nft", "{enabled}");

    let set = || in_gw(&["nft", "list", "set", "inet", "ftwall", "ft_clients"]);
    let wait_set = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let listing = set();
            if listing.contains(common::LAN_CLIENT) == want {
                return listing;
            }
            assert!(
                Instant::now() < deadline,
                "ft_clients never {}: {listing}",
                if want { "filled" } else { "emptied" }
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    lab.ping_flood(common::LAN_CLIENT, "198.51.100.20:1214", 500);
    let listing = wait_set(true);
    // The element's timeout is the lock's remaining time (LOCK_SECONDS), not the set default.
    let timeout = format!("timeout {}s", common::LOCK_SECONDS);
    let almost = format!("timeout {}s", common::LOCK_SECONDS - 1);
    assert!(listing.contains(&timeout) || listing.contains(&almost), "{listing}");
    assert!(!listing.contains(common::OTHER_CLIENT));
    // The pinged peer is only named by the client's own pings: a weak peer, mirrored as the
    // triple (client, peer, port), never as an all-client all-port element of ft_peers.
    let peers = in_gw(&["nft", "list", "set", "inet", "ftwall", "ft_peers"]);
    assert!(!peers.contains("198.51.100.20"), "a weak peer in ft_peers: {peers}");
    let weak = in_gw(&["nft", "list", "set", "inet", "ftwall", "ft_weak_peers"]);
    let triple = format!("{} . 198.51.100.20 . 1214 timeout ", common::LAN_CLIENT);
    let hour = [format!("{triple}1h "), format!("{triple}59m5")];
    assert!(hour.iter().any(|t| weak.contains(t)), "the weak peer's triple and remaining hour: {weak}");
    let ports = in_gw(&["nft", "list", "set", "inet", "ftwall", "ft_allow_ports"]);
    assert!(ports.contains("elements = { 53, 80, 443 }"), "{ports}");
    lab.ctl(&["release", common::LAN_CLIENT]);
    wait_set(false);
}
