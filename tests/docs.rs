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
    // Every key of the full configuration, dotted for tables.
    let toml: toml::Table = toml::from_str(&ftwall::Config::default().to_toml_string()).unwrap();
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
}
