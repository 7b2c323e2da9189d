//! The documentation is the operator's reference, and it must not drift from the code:
//! - every log event the daemon can emit is in the event table of `docs/operating.md`, every metric
//!   in its metrics table, every reason code in the table of `docs/detection.md` and every
//!   configuration key in the table of `docs/configuration.md`;
//! - the README's test command is the one `.ci/run` runs;
//! - every relative link in the README and `docs/` (and `benches/README.md`) points at a file that
//!   exists and, with a `#fragment`, at a heading of that file.
//!
//! Each table sits between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`, so that it can
//! be replaced wholesale by one generated from the code; the checks look only inside that block.

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

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

fn binary_sources() -> Vec<String> {
    let mut sources = Vec::new();
    rust_files(&root().join("src/bin/ftwall"), &mut sources);
    sources
}

#[test]
fn every_log_event_is_in_the_event_table() {
    let table = block("docs/operating.md", "events");
    let mut events: Vec<String> = Vec::new();
    for text in &binary_sources() {
        for piece in text.split("event = \"").skip(1) {
            let name = piece.split('"').next().unwrap();
            if !events.iter().any(|e| e == name) {
                events.push(name.to_string());
            }
        }
    }
    assert!(events.len() > 30, "found only {events:?}");
    let missing: Vec<&String> = events.iter().filter(|e| !table.contains(&format!("`{e}`"))).collect();
    assert!(missing.is_empty(), "log events missing from the table in docs/operating.md: {missing:?}");
}

#[test]
fn every_metric_is_in_the_metrics_table() {
    let table = block("docs/operating.md", "metrics");
    // Metric names are string literals `"ftwall_..."` in the daemon; the kernel sets the daemon
    // fills share the prefix and are documented with the rules instead.
    let sets = ["ftwall_clients", "ftwall_clients6", "ftwall_peers", "ftwall_peers6", "ftwall_allow_ports"];
    let mut metrics: Vec<String> = Vec::new();
    for text in &binary_sources() {
        for piece in text.split("\"ftwall_").skip(1) {
            let rest: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // Only whole literals: not a prefix of a format string or a longer text.
            if rest.is_empty() || !piece[rest.len()..].starts_with('"') {
                continue;
            }
            let name = format!("ftwall_{rest}");
            if !sets.contains(&name.as_str()) && !metrics.contains(&name) {
                metrics.push(name);
            }
        }
    }
    // A histogram's series are documented under the histogram's name.
    let base = |m: &str| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| m.strip_suffix(s).filter(|b| metrics.iter().any(|x| x == b)))
            .unwrap_or(m)
            .to_string()
    };
    assert!(metrics.len() > 30, "found only {metrics:?}");
    let missing: Vec<String> = metrics
        .iter()
        .map(|m| base(m))
        .filter(|m| !table.contains(&format!("`{m}`")) && !table.contains(&format!("`{m}{{")))
        .collect();
    assert!(missing.is_empty(), "metrics missing from the table in docs/operating.md: {missing:?}");
}

#[test]
fn every_reason_is_in_the_reason_table() {
    let table = block("docs/detection.md", "reasons");
    for reason in ftwall::Reason::ALL {
        assert!(
            table.contains(&format!("| `{}` |", reason.as_str())),
            "reason {reason} not in the table in docs/detection.md"
        );
    }
}

#[test]
fn every_config_key_is_in_the_configuration_table() {
    let table = block("docs/configuration.md", "config");
    // Every key of the full configuration, dotted for tables.
    // Every key of the full configuration (the engine's and the daemon's), dotted for tables, as
    // `ftwall config` prints the defaults.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ftwall"))
        .args(["config", "--config"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let toml: toml::Table = toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let mut keys = Vec::new();
    for (key, value) in &toml {
        match value {
            toml::Value::Table(t) => keys.extend(t.keys().map(|k| format!("{key}.{k}"))),
            _ => keys.push(key.clone()),
        }
    }
    // Optional keys (unset by default) are not serialised; name them here.
    keys.extend(["client_dir", "metrics.file"].map(String::from));
    let missing: Vec<&String> = keys.iter().filter(|k| !table.contains(&format!("| `{k}` |"))).collect();
    assert!(
        missing.is_empty(),
        "configuration keys missing from the table in docs/configuration.md: {missing:?}"
    );
}

/// `.ci/run` runs "the README's test command": the line after the one that announces it.
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
