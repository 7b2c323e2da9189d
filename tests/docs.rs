//! The README is the operator's reference: every log event the daemon can emit, every reason
//! code and every configuration key must be documented there.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
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

#[test]
fn every_log_event_is_in_the_readme_schema() {
    let readme = read("README.md");
    let mut sources = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/ftwall"), &mut sources);
    let mut events: Vec<String> = Vec::new();
    for text in &sources {
        for piece in text.split("event = \"").skip(1) {
            let name = piece.split('"').next().unwrap();
            if !events.iter().any(|e| e == name) {
                events.push(name.to_string());
            }
        }
    }
    assert!(events.len() > 30, "found only {events:?}");
    let missing: Vec<&String> = events.iter().filter(|e| !readme.contains(&format!("`{e}`"))).collect();
    assert!(missing.is_empty(), "log events missing from the README: {missing:?}");
}

#[test]
fn every_reason_and_config_key_is_in_the_readme() {
    let readme = read("README.md");
    for reason in ftwall::Reason::ALL {
        assert!(
            readme.contains(&format!("| `{}` |", reason.as_str())),
            "reason {reason} not in the README table"
        );
    }
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
    let missing: Vec<&String> = keys.iter().filter(|k| !readme.contains(&format!("| `{k}` |"))).collect();
    assert!(missing.is_empty(), "configuration keys missing from the README table: {missing:?}");
}
