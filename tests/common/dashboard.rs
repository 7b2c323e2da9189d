//! The Grafana dashboard shipped in `packaging/grafana/ftwall-dashboard.json`: the metric series
//! its queries use, so the tests can check each against the metrics catalogue (tests/docs.rs) and
//! a real daemon's metrics file (tests/operations.rs).

use std::collections::BTreeSet;
use std::path::Path;

/// The dashboard, parsed.
pub fn dashboard() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/grafana/ftwall-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `expr` of every panel target and template query.
pub fn queries(dashboard: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating.list") {
        if let Some(query) = var["query"].as_str() {
            out.push(query.to_string());
        }
    }
    out
}

/// The `ftwall_*` series names the queries use, as written (a histogram's `_bucket`, `_sum` and
/// `_count` included).
pub fn series() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for query in queries(&dashboard()) {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("ftwall_") {
            let tail = &rest[at..];
            let len = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
            names.insert(tail[..len].to_string());
            rest = &tail[len..];
        }
    }
    assert!(names.len() >= 10, "the dashboard uses too few series to be a dashboard: {names:?}");
    names
}
