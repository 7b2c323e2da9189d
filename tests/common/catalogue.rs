//! Checks daemon log lines against the binary's catalogue of log events
//! (`ftwall man --catalogue`): every line names a catalogued event, at one of its levels, with
//! only catalogued fields. [`super::Lab::log`] runs it on every line a test reads, so each
//! end-to-end test also checks the operator reference it exercises.

use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;

/// The catalogue, read once per test binary.
fn catalogue() -> &'static Value {
    static CATALOGUE: OnceLock<Value> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_ftwall")).args(["man", "--catalogue"]).output().unwrap();
        assert!(out.status.success(), "ftwall man --catalogue: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// Fields every line carries besides the event's own.
const COMMON: &[&str] = &["event", "level", "message", "timestamp", "target", "threadName", "threadId"];

/// Why `line` does not match the catalogue, if it does not.
pub fn violation(line: &Value) -> Option<String> {
    let Some(name) = line.get("event").and_then(Value::as_str) else {
        return Some(format!("a log line without an event field: {line}"));
    };
    let events = catalogue()["events"].as_array().unwrap();
    let Some(entry) = events.iter().find(|e| e["name"] == name) else {
        return Some(format!("event {name} is not in the catalogue: {line}"));
    };
    let level = line["level"].as_str().unwrap_or_default().to_ascii_lowercase();
    if !entry["levels"].as_array().unwrap().iter().any(|l| l == level.as_str()) {
        return Some(format!("event {name} logged at {level}, catalogued at {}: {line}", entry["levels"]));
    }
    let fields: Vec<&str> =
        entry["fields"].as_array().unwrap().iter().filter_map(|f| f[0].as_str()).collect();
    let counters: Vec<&str> =
        catalogue()["counters"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for key in line.as_object().unwrap().keys() {
        let known = COMMON.contains(&key.as_str())
            || fields.contains(&key.as_str())
            || (fields.contains(&"*") && counters.contains(&key.as_str()));
        if !known {
            return Some(format!("event {name} carries field {key}, not in its catalogue entry: {line}"));
        }
    }
    None
}
