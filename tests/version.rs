//! `ftwall --version` carries git information (build.rs), and the hidden `ftwall man` renders the
//! man pages from the clap definition.

use std::path::Path;
use std::process::Command;

fn ftwall(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ftwall")).args(args).output().unwrap();
    assert!(out.status.success(), "ftwall {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// `git ARGS` in the crate, None when git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(env!("CARGO_MANIFEST_DIR")).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `ftwall 0.1.0 (git 14587f7, 2026-11-23)`, `ftwall 0.1.0 (git v0.1.0-3-g14587f7-dirty, 2026-11-23)`,
/// or `ftwall 0.1.0 (git unknown)` outside a git checkout.
#[test]
fn version_names_the_commit_and_its_date() {
    let line = ftwall(&["--version"]);
    let line = line.trim_end();
    assert_eq!(ftwall(&["-V"]).trim_end(), line);
    let rest = line
        .strip_prefix(&format!("ftwall {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version: {line:?}"));
    let in_checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists();
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|_| in_checkout) else {
        assert_eq!(rest, "unknown", "{line:?}");
        return;
    };
    let (describe, date) = rest.split_once(", ").unwrap_or_else(|| panic!("no commit date in {line:?}"));
    assert!(
        describe.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) && describe.contains(&head),
        "{describe:?} does not describe HEAD {head}"
    );
    let d: Vec<&str> = date.split('-').collect();
    assert!(
        d.len() == 3
            && [4, 2, 2].iter().zip(&d).all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_digit())),
        "commit date {date:?} is not YYYY-MM-DD"
    );
    assert_eq!(Some(date.to_string()), git(&["log", "-1", "--date=short", "--format=%cd"]));
}

/// Visible subcommands of `ftwall ARGS`, from its `--help`.
fn subcommands_of(args: &[&str]) -> Vec<String> {
    let mut all = args.to_vec();
    all.push("--help");
    let help = ftwall(&all);
    let Some(list) = help.split("Commands:\n").nth(1) else { return Vec::new() };
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

/// Visible subcommands, from `ftwall --help`.
fn subcommands() -> Vec<String> {
    subcommands_of(&[])
}

#[test]
fn man_page_covers_every_subcommand() {
    let page = ftwall(&["man"]);
    assert!(page.contains("\n.TH ftwall 8 "), "not a section 8 roff page: {page:.200}");
    for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SUBCOMMANDS", "FILES", "SEE ALSO"] {
        assert!(page.contains(&format!(".SH {section}")), "missing {section}");
    }
    let subs = subcommands();
    assert!(subs.iter().any(|s| s == "run") && subs.iter().any(|s| s == "replay"), "{subs:?}");
    assert!(!subs.iter().any(|s| s == "man"), "`man` is hidden");
    for sub in &subs {
        let roff_name = format!("ftwall-{sub}(8)").replace('-', "\\-");
        assert!(page.contains(&roff_name), "main page lacks {roff_name}");
    }
    assert!(!page.contains("ftwall\\-man") && !page.contains("ftwall\\-help"));

    let dir = tempfile::tempdir().unwrap();
    ftwall(&["man", "--dir", dir.path().to_str().unwrap()]);
    let mut files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    // One page per subcommand, and per nested subcommand (`ftwall ctl ban` -> ftwall-ctl-ban.8).
    let mut want: Vec<String> = subs.iter().map(|s| format!("ftwall-{s}.8")).collect();
    // `ftwall sim`, a test-traffic tool, has one page, not one per nested subcommand.
    for sub in subs.iter().filter(|s| *s != "sim") {
        want.extend(subcommands_of(&[sub]).iter().map(|n| format!("ftwall-{sub}-{n}.8")));
    }
    assert!(want.iter().any(|w| w == "ftwall-ctl-ban.8"), "{want:?}");
    want.push("ftwall.8".into());
    want.push("ftwall.toml.5".into());
    want.push("ftwall-events.7".into());
    want.sort();
    assert_eq!(files, want);
    // The events page lists every log event and metric of the catalogues.
    let events = std::fs::read_to_string(dir.path().join("ftwall-events.7")).unwrap();
    assert!(events.starts_with(".TH FTWALL-EVENTS 7 ") && events.contains(".SH LOG EVENTS"), "{events:.300}");
    let catalogue: serde_json::Value = serde_json::from_str(&ftwall(&["man", "--catalogue"])).unwrap();
    for e in catalogue["events"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        assert!(events.contains(&format!("\\fB{name}\\fR")), "ftwall-events(7) lacks {name}");
    }
    for m in catalogue["metrics"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        assert!(events.contains(&format!("\\fB{name}\\fR")), "ftwall-events(7) lacks {name}");
    }
    // The configuration page names every key `ftwall config` prints (tables as `.SS [table]`).
    let conf = std::fs::read_to_string(dir.path().join("ftwall.toml.5")).unwrap();
    assert!(conf.starts_with(".TH ftwall.toml 5 ") && conf.contains(".SH KEYS"), "{conf:.300}");
    let defaults: toml::Table =
        toml::from_str(ftwall(&["config", "--config", "/dev/null"]).as_str()).unwrap();
    for (key, value) in &defaults {
        let locals: Vec<&String> = match value {
            toml::Value::Table(t) => {
                assert!(conf.contains(&format!("\n.SS [{key}]\n")), "no section for [{key}]");
                t.keys().collect()
            }
            _ => vec![key],
        };
        for local in locals {
            let roff = local.replace('-', "\\-");
            assert!(
                conf.contains(&format!("\n\\fB{roff}\\fR = ")),
                "{key}: {local} missing from ftwall.toml.5"
            );
        }
    }
    assert!(page.contains("ftwall.toml\\fR(5)"), "the main page points to the configuration page");
    assert_eq!(std::fs::read_to_string(dir.path().join("ftwall.8")).unwrap(), page);
    let run = std::fs::read_to_string(dir.path().join("ftwall-run.8")).unwrap();
    assert!(run.contains("\n.TH ftwall-run 8 ") && run.contains("\\-\\-config"), "{run:.300}");
}
