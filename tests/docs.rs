//! The documentation is the operator's reference, and it must not drift from the code:
//! - the event and metrics tables of `docs/operating.md` and the key table of
//!   `docs/configuration.md` are exactly what the binary generates from its catalogues and key
//!   tables (`ftwall man --markdown events|metrics|config`), the reason table of
//!   `docs/detection.md` is what `ftwall man --markdown reasons` generates from the library's
//!   `reasons!` table, and no log call bypasses the catalogue;
//! - the README's test command is the one `.ci/run` runs;
//! - every series the shipped Grafana dashboard queries is a metric of the catalogue (a real
//!   daemon's metrics file is checked too, in tests/operations.rs);
//! - every relative link in the README and `docs/` (and `benches/README.md`) points at a file that
//!   exists and, with a `#fragment`, at a heading of that file.
//!
//! Each table sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`; the checks
//! look only inside that block.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` in `page`, which
/// must hold exactly one such block.
fn block(page: &str, name: &str) -> String {
    let text = read(page);
    let (open, close) = (format!("<!-- generated:{name} -->"), format!("<!-- /generated:{name} -->"));
    assert_eq!(text.matches(&open).count(), 1, "{page}: want exactly one {open}");
    assert_eq!(text.matches(&close).count(), 1, "{page}: want exactly one {close}");
    let start = text.find(&open).unwrap() + open.len();
    let end = text.find(&close).unwrap();
    assert!(start < end, "{page}: {close} before {open}");
    text[start..end].to_string()
}

/// `ftwall man --markdown NAME`: the table generated from the binary's catalogue.
fn generated(name: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .args(["man", "--markdown", name])
        .output()
        .unwrap();
    assert!(out.status.success(), "ftwall man --markdown {name}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The generated block `name` of `page` must be exactly what the catalogue generates; the
/// failure message says how to regenerate it.
fn assert_generated(page: &str, name: &str) {
    let want = generated(name);
    let have = block(page, name);
    assert!(
        have.trim() == want.trim(),
        "the {name} table in {page} differs from the code's catalogue; paste the output of \
         `cargo run -q -- man --markdown {name}` between its markers.\nwant:\n{want}\nhave:\n{have}"
    );
}

#[test]
fn the_event_table_is_generated_from_the_catalogue() {
    assert_generated("docs/operating.md", "events");
}

#[test]
fn the_metrics_table_is_generated_from_the_catalogue() {
    assert_generated("docs/operating.md", "metrics");
}

/// Every log call goes through the catalogue (`log_event!`): no hand-written `event` field and
/// no bare `tracing` macro outside `events.rs`.
#[test]
fn no_log_call_bypasses_the_catalogue() {
    let mut offenders = Vec::new();
    let mut files = Vec::new();
    collect_rust(&root().join("src/bin/ftwall"), &mut files);
    let event_field = ["event", " = \""].concat();
    for (path, text) in &files {
        if path.ends_with("events.rs") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let bare = ["trace!(", "debug!(", "info!(", "warn!(", "error!("]
                .iter()
                .any(|m| line.contains(m) && !line.contains(&["log_", "event!("].concat()));
            if bare || line.contains(&event_field) {
                offenders.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "log calls that bypass log_event!:\n{}", offenders.join("\n"));
}

fn collect_rust(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_rust(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path, text));
        }
    }
}

#[test]
fn the_reason_table_is_generated_from_the_reasons_table() {
    assert_generated("docs/detection.md", "reasons");
}

#[test]
fn the_configuration_table_is_generated_from_the_key_tables() {
    assert_generated("docs/configuration.md", "config");
}

#[test]
fn readme_and_ci_name_the_same_test_command() {
    let ci = read(".ci/run");
    let mut lines = ci
        .lines()
        .skip_while(|l| !(l.trim_start().starts_with("echo") && l.contains("the README's test command")));
    assert!(lines.next().is_some(), ".ci/run no longer announces the README's test command");
    let command = lines.map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).expect("a command");
    let readme = read("README.md");
    assert!(
        readme.lines().any(|l| l.trim() == command),
        "the README's quick start does not show .ci/run's test command {command:?} on a line of its own"
    );
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation other than `-` and `_`
/// dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut in_code = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn relative_links_resolve() {
    let mut pages: Vec<PathBuf> = vec![root().join("README.md"), root().join("benches/README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    assert!(pages.len() >= 6, "{pages:?}");
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
            let path = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !path.exists() {
                broken.push(format!("{}: {target} (no such file)", page.display()));
            } else if !fragment.is_empty() {
                let linked = std::fs::read_to_string(&path).unwrap_or_default();
                if !anchors(&linked).iter().any(|a| a == fragment) {
                    broken.push(format!("{}: {target} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

mod common;

#[test]
fn the_log_check_of_the_e2e_tests_rejects_what_the_catalogue_does_not_describe() {
    use common::catalogue::violation;
    use serde_json::json;
    let good = json!({"event": "client_released", "level": "INFO", "message": "time-lock ended",
        "timestamp": "2026-12-02T00:00:00Z", "target": "ftwall", "client": "192.0.2.1"});
    assert_eq!(violation(&good), None);
    let counters = json!({"event": "counters", "level": "INFO", "message": "counters",
        "packets": 1, "spoofed_pongs": 0});
    assert_eq!(violation(&counters), None);
    let unknown = json!({"event": "no_such_event", "level": "INFO", "message": "x"});
    assert!(violation(&unknown).unwrap().contains("not in the catalogue"));
    let field = json!({"event": "client_released", "level": "INFO", "message": "x", "peer": "x"});
    assert!(violation(&field).unwrap().contains("field peer"));
    let level = json!({"event": "client_released", "level": "ERROR", "message": "x"});
    assert!(violation(&level).unwrap().contains("logged at error"));
    assert!(violation(&json!({"level": "INFO"})).unwrap().contains("without an event"));
    // Types: an address is a bare IP, a port a number, by_reason an object.
    let port_in_address = json!({"event": "client_released", "level": "INFO", "message": "x",
        "client": "192.0.2.1:4000"});
    assert!(violation(&port_in_address).unwrap().contains("field client is not of type ip"));
    let drop = json!({"event": "packet_dropped", "level": "INFO", "message": "FastTrack UDP ping dropped",
        "client": "192.0.2.10", "peer": "198.51.100.20", "reason": "udp_ping", "verdict": "drop",
        "proto": "UDP", "src_ip": "192.0.2.10", "src_port": 4000, "dest_ip": "198.51.100.20",
        "dest_port": 1214, "flow_id": 12345, "suppressed": 0});
    assert_eq!(violation(&drop), None);
    let mut port_as_text = drop.clone();
    port_as_text["dest_port"] = json!("1214");
    assert!(violation(&port_as_text).unwrap().contains("field dest_port is not of type port"));
    let reasons_as_text = json!({"event": "counters", "level": "INFO", "message": "counters",
        "by_reason": "clean=9 udp_ping=1"});
    assert!(violation(&reasons_as_text).unwrap().contains("field by_reason is not of type object"));
    let reasons = json!({"event": "counters", "level": "INFO", "message": "counters",
        "by_reason": {"clean": 9}, "spoofed_pongs": "3"});
    assert!(violation(&reasons).unwrap().contains("field spoofed_pongs is not of type integer"));
    let date = json!({"event": "operator_ban", "level": "INFO", "message": "x", "network": "203.0.113.9",
        "until": "until unbanned"});
    assert!(violation(&date).unwrap().contains("field until is not of type date"));
    let mut date_ok = date.clone();
    date_ok["until"] = json!("2026-12-02T11:33:42Z");
    assert_eq!(violation(&date_ok), None);
    // A network is an address or CIDR notation, nothing else.
    let mut network = date_ok.clone();
    network["network"] = json!("198.51.100.0/24");
    assert_eq!(violation(&network), None);
    for bad in [json!("198.51.100.0/x"), json!("banned"), json!("198.51.100.0/33"), json!(24)] {
        network["network"] = bad;
        assert!(violation(&network).unwrap().contains("field network is not of type net"), "{network}");
    }
}

#[test]
fn the_dashboard_queries_only_catalogued_metrics() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .args(["man", "--catalogue"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ftwall man --catalogue: {}", String::from_utf8_lossy(&out.stderr));
    let catalogue: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut known = std::collections::BTreeSet::new();
    for family in catalogue["metrics"].as_array().unwrap() {
        let name = family["name"].as_str().unwrap();
        known.insert(name.to_string());
        if family["type"] == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{name}{suffix}"));
            }
        }
    }
    let unknown: Vec<String> =
        common::dashboard::series().into_iter().filter(|s| !known.contains(s)).collect();
    assert!(unknown.is_empty(), "the dashboard queries series ftwall does not export: {unknown:?}");
}

/// Tests that need the machine (root and netfilter through the kernel harness, the corpus, the
/// packaging tools, libfaketime, systemd-analyze) carry `#[ignore = "why"]`, so that a plain
/// `cargo test` reports them as ignored instead of passing them without running; CI runs them
/// with `--include-ignored`, where one that cannot run fails.
#[test]
fn tests_that_need_the_machine_are_marked_ignored() {
    let needs = [
        "kernel_test_guard",
        "guard()",
        "require_packaging_tools",
        "corpus_dir()",
        "libfaketime()",
        "systemd-analyze",
    ];
    let mut unmarked = Vec::new();
    let mut marked = 0;
    for entry in std::fs::read_dir(root().join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("docs.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Each test: its attributes, its name and its body (up to the next top-level `}`).
        for chunk in text.split("#[test]\n").skip(1) {
            let (head, rest) = chunk.split_once("fn ").unwrap();
            let name = rest.split('(').next().unwrap();
            let body = rest.split("\n}\n").next().unwrap();
            if needs.iter().any(|n| body.contains(n)) {
                if head.contains("#[ignore = \"") {
                    marked += 1;
                } else {
                    unmarked.push(format!("{}: {name}", path.display()));
                }
            }
        }
    }
    assert!(unmarked.is_empty(), "tests that need the machine without #[ignore = \"why\"]: {unmarked:#?}");
    assert!(marked > 40, "found only {marked} machine tests: the check no longer sees them");
}
