//! Checks daemon log lines against the binary's catalogue of log events
//! (`ftwall man --catalogue`): every line names a catalogued event, at one of its levels, with
//! only catalogued fields, each of its catalogued type (`ip`: a bare address, `port`: an integer
//! 0-65535, `integer`, `string`, `bool`, `object`, `date`: RFC 3339 UTC). [`super::Lab::log`]
//! runs it on every line a test reads, so each end-to-end test also checks the operator
//! reference it exercises, and that a field has one type everywhere.

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
    // (name, type) of each field.
    let fields: Vec<(&str, &str)> = entry["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f[0].as_str().unwrap(), f[1].as_str().unwrap()))
        .collect();
    let counters: Vec<&str> =
        catalogue()["counters"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for (key, value) in line.as_object().unwrap() {
        if COMMON.contains(&key.as_str()) {
            continue;
        }
        let declared = fields
            .iter()
            .find(|(f, _)| f == key)
            .or_else(|| fields.iter().find(|(f, _)| *f == "*").filter(|_| counters.contains(&key.as_str())));
        let Some(&(_, kind)) = declared else {
            return Some(format!("event {name} carries field {key}, not in its catalogue entry: {line}"));
        };
        if !has_type(value, kind) {
            return Some(format!("event {name}: field {key} is not of type {kind}: {line}"));
        }
    }
    None
}

/// Whether `value` is of the catalogue's field type `kind`.
pub fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "ip" => value.as_str().is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok()),
        "port" => value.as_u64().is_some_and(|p| p <= 65535),
        "integer" => value.is_i64() || value.is_u64(),
        "string" => value.is_string(),
        "bool" => value.is_boolean(),
        "object" => value.is_object(),
        "date" => value.as_str().is_some_and(is_rfc3339_utc),
        "net" => value
            .as_str()
            .is_some_and(|s| s.parse::<std::net::IpAddr>().is_ok() || s.parse::<ipnet::IpNet>().is_ok()),
        other => panic!("the catalogue names an unknown field type {other}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, a real date.
fn is_rfc3339_utc(s: &str) -> bool {
    s.ends_with('Z') && s.len() >= 20 && humantime::parse_rfc3339(s).is_ok()
}
