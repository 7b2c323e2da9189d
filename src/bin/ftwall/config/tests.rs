//! Parsing the whole file: defaults, old spellings, unknown keys and error positions.

use super::*;
use ftwall::config::Mode;

#[test]
fn empty_document_gives_defaults() {
    let c = DaemonConfig::from_toml_str("").unwrap();
    assert_eq!(c, DaemonConfig::default());
    assert_eq!(c.engine, EngineConfig::default());
    assert_eq!((c.queue, c.queues, c.verdict_batch, c.copy_range), (0, 1, 64, 2304));
    assert!(c.kernel_sets_enabled());
}

#[test]
fn shipped_example_is_valid_and_equals_the_defaults() {
    let example = DaemonConfig::from_toml_str(include_str!("../../../../examples/ftwall.toml")).unwrap();
    assert_eq!(example, DaemonConfig::default());
}

#[test]
fn round_trips_through_toml() {
    let mut c = DaemonConfig::default();
    c.engine.mode = Mode::Monitor;
    c.queue = 3;
    c.metrics.file = Some("/tmp/m.prom".into());
    c.client_dir = Some("/run/c".into());
    assert_eq!(DaemonConfig::from_toml_str(&c.to_toml_string()).unwrap(), c);
    assert_eq!(
        DaemonConfig::from_toml_str(&DaemonConfig::default().to_toml_string()).unwrap(),
        DaemonConfig::default()
    );
}

#[test]
fn engine_and_daemon_keys_share_the_file_and_its_tables() {
    let c = DaemonConfig::from_toml_str(
        "mode = \"monitor\"\nqueue = 4\n[timelock]\nseconds = 30\nkernel_set = false\n[log]\ndrop_burst = 9\n",
    )
    .unwrap();
    assert_eq!((c.engine.mode, c.engine.timelock.seconds), (Mode::Monitor, 30));
    assert_eq!((c.queue, c.log.drop_burst), (4, 9));
    assert!(!c.kernel_sets_enabled());
}

#[test]
fn metrics_interval_has_two_names_and_a_range() {
    let a = DaemonConfig::from_toml_str("[metrics]\ninterval = 30\n").unwrap();
    let b = DaemonConfig::from_toml_str("[metrics]\ninterval_seconds = 30\n").unwrap();
    assert_eq!(a.metrics.interval_seconds, 30);
    assert_eq!(a, b);
    assert!(DaemonConfig::from_toml_str("[metrics]\ninterval = 0\n").is_err());
    assert!(DaemonConfig::from_toml_str("busy_poll_us = 10001\n").is_err());
}

#[test]
fn kernel_sets_default_on_and_the_old_key_still_works() {
    let off = DaemonConfig::from_toml_str("kernel_sets = \"off\"\n").unwrap();
    assert!(!off.kernel_sets_enabled());
    let old_off = DaemonConfig::from_toml_str("[timelock]\nkernel_set = false\n").unwrap();
    assert!(!old_off.kernel_sets_enabled());
    assert_eq!(old_off, off, "the old spelling is folded into the new key");
    let old_on = DaemonConfig::from_toml_str("[timelock]\nkernel_set = true\n").unwrap();
    assert!(old_on.kernel_sets_enabled());
    assert_eq!(DaemonConfig::from_toml_str(&old_on.to_toml_string()).unwrap(), old_on);
    let both = DaemonConfig::from_toml_str("kernel_sets = \"off\"\n[timelock]\nkernel_set = true\n");
    assert!(both.unwrap_err().to_string().contains("timelock.kernel_set"));
    assert!(DaemonConfig::from_toml_str("kernel_sets = \"nft\"\n").is_err());
}

#[test]
fn values_of_both_layers_are_validated() {
    for bad in [
        "[peers]\ncapacity = 0\n",
        "queues = 0\n",
        "queue = 65535\nqueues = 2\n",
        "queue_maxlen = 0\n",
        "copy_range = 127\n",
        "verdict_batch = 0\n",
        "[log]\ndrop_interval_seconds = 0\n",
        "lan_interfaces = [\"eth/0\"]\n",
        "[offload]\nudp_after_packets = 0\n",
    ] {
        assert!(DaemonConfig::from_toml_str(bad).is_err(), "{bad}");
    }
}

#[test]
fn errors_name_file_line_and_column() {
    let path = Path::new("/etc/ftwall/ftwall.toml");
    let err = parse(path, "mode = \"enforce\"\n\n[timelock]\nsecs = 3\n").unwrap_err().to_string();
    assert!(err.starts_with("/etc/ftwall/ftwall.toml:4:1: unknown field `secs`"), "{err}");
    assert!(err.contains("`seconds`") && err.contains("`kernel_set`"), "{err}");
    let err = parse(path, "queue = \"zero\"\n").unwrap_err().to_string();
    assert!(err.starts_with("/etc/ftwall/ftwall.toml:1:9: "), "{err}");
    let err = parse(path, "[peers]\ncapacity = \"many\"\n").unwrap_err().to_string();
    assert!(err.starts_with("/etc/ftwall/ftwall.toml:2:12: "), "an engine key keeps its position: {err}");
    let err = parse(path, "[metrics]\ninterval = true\n").unwrap_err().to_string();
    assert!(err.starts_with("/etc/ftwall/ftwall.toml:2:12: "), "{err}");
    let err = parse(path, "[peers]\ncapacity = 0\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "/etc/ftwall/ftwall.toml: invalid value for `peers.capacity`: must be between 1 and 1048576"
    );
    // The daemon's capacities have maxima too.
    let err = parse(path, "queue_maxlen = 4294967295\n").unwrap_err().to_string();
    assert!(err.ends_with("invalid value for `queue_maxlen`: must be between 1 and 1048576"), "{err}");
    let err = parse(path, "socket_buffer = 2147483648\n").unwrap_err().to_string();
    assert!(err.contains("invalid value for `socket_buffer`: at most 1073741824"), "{err}");
    assert_eq!(parse(path, "").unwrap(), DaemonConfig::default());
}

#[test]
fn unknown_keys_are_rejected_at_top_level_and_in_tables() {
    let path = Path::new("f.toml");
    let err = parse(path, "queue = 1\nqueue_max_len = 5\n").unwrap_err().to_string();
    assert!(err.starts_with("f.toml:2:1: unknown field `queue_max_len`, expected one of `mode`"), "{err}");
    assert!(err.contains("`queue_maxlen`"), "the daemon's keys are listed too: {err}");
    let err = parse(path, "[metrics]\nfile = \"/m\"\nperiod = 5\n").unwrap_err().to_string();
    assert!(
        err.starts_with(
            "f.toml:3:1: unknown field `period`, expected one of `file`, `interval_seconds`, `interval`"
        ),
        "{err}"
    );
    let err = parse(path, "[flows]\ncapacity = 10\n[nosuch]\nx = 1\n").unwrap_err().to_string();
    assert!(err.starts_with("f.toml:3:2: unknown field `nosuch`"), "{err}");
    let err = parse(path, "pongs = { max_per_second = 5, burst = 1 }\n").unwrap_err().to_string();
    assert!(err.starts_with("f.toml:1:31: unknown field `burst`"), "inline tables too: {err}");
    let err = parse(path, "[peers.extra]\nx = 1\n").unwrap_err().to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

/// Dotted names of the keys of a serialised configuration (tables one level deep).
fn serialized_keys(c: &DaemonConfig) -> Vec<String> {
    let table: toml::Table = toml::from_str(&c.to_toml_string()).unwrap();
    let mut keys = Vec::new();
    for (key, value) in &table {
        match value {
            toml::Value::Table(t) => keys.extend(t.keys().map(|k| format!("{key}.{k}"))),
            _ => keys.push(key.clone()),
        }
    }
    keys
}

#[test]
fn the_key_tables_name_every_key_and_only_keys() {
    // The optional keys set, so that they are serialised too.
    let c = DaemonConfig {
        client_dir: Some("/run/c".into()),
        metrics: MetricsConfig { file: Some("/m".into()), ..MetricsConfig::default() },
        cluster: ClusterConfig {
            node_id: Some("gw-a".into()),
            password_file: Some("/etc/ftwall/redis.secret".into()),
            ..ClusterConfig::default()
        },
        ..DaemonConfig::default()
    };
    let mut serialised = serialized_keys(&c);
    serialised.push("timelock.kernel_set".into()); // read, folded into kernel_sets, never written
    serialised.sort();
    let mut listed: Vec<String> = DaemonConfig::all_keys().map(|k| k.name.to_string()).collect();
    listed.sort();
    assert_eq!(serialised, listed);
    assert!(DaemonConfig::KEYS.iter().all(|k| !EngineConfig::KEYS.iter().any(|e| e.name == k.name)));
}
