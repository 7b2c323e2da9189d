//! What a reload (SIGHUP) changes: a typed diff of the configuration in force and the one just
//! read.
//!
//! Invariants:
//! - a key bound when the daemon starts (the queues and their socket options, `busy_poll_us`,
//!   the control socket) keeps its old value in [`ConfigChange::in_force`] and is named in
//!   [`ConfigChange::restart_needed`], so the configuration the daemon holds is always the one
//!   actually in force;
//! - every other key takes its new value; the engine's part is handed to the engine whole
//!   (it resizes its caches itself), the daemon reapplies its own parts.

use super::DaemonConfig;

/// The old and new `(queue, queues)` pair, when a reload asks for other queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuesChange {
    pub(crate) old: (u16, u16),
    pub(crate) new: (u16, u16),
}

/// The outcome of comparing two configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigChange {
    /// The configuration to put in force: the new one, with [`Self::restart_needed`] kept.
    pub(crate) in_force: DaemonConfig,
    /// Keys whose new value waits for a restart (their old value stays in force).
    pub(crate) restart_needed: Vec<&'static str>,
    /// Set when the queues changed (logged as `config_restart_required`).
    pub(crate) queues: Option<QueuesChange>,
    /// The new `spoof_pongs`, when it changed (the effects thread opens or closes its socket).
    pub(crate) spoof_pongs: Option<bool>,
    /// Every dotted key whose value the file changed, sorted (logged with
    /// `config_reloaded`; those also in [`Self::restart_needed`] are not in force yet).
    pub(crate) changed: Vec<String>,
}

impl ConfigChange {
    /// Compares the configuration in force with a newly read one.
    pub(crate) fn between(old: &DaemonConfig, new: DaemonConfig) -> Self {
        let changed = changed_keys(old, &new);
        let mut in_force = new;
        let mut restart_needed = Vec::new();
        macro_rules! bound_at_start {
            ($($field:ident).+, $key:literal) => {
                if in_force.$($field).+ != old.$($field).+ {
                    restart_needed.push($key);
                    in_force.$($field).+ = old.$($field).+.clone();
                }
            };
        }
        let queues = ((in_force.queue, in_force.queues) != (old.queue, old.queues))
            .then_some(QueuesChange { old: (old.queue, old.queues), new: (in_force.queue, in_force.queues) });
        bound_at_start!(queue, "queue");
        bound_at_start!(queues, "queues");
        bound_at_start!(fail_open, "fail_open");
        bound_at_start!(queue_maxlen, "queue_maxlen");
        bound_at_start!(copy_range, "copy_range");
        bound_at_start!(socket_buffer, "socket_buffer");
        bound_at_start!(busy_poll_us, "busy_poll_us");
        bound_at_start!(control.enabled, "control.enabled");
        bound_at_start!(control.socket, "control.socket");
        bound_at_start!(cluster, "cluster");
        let spoof_pongs =
            (in_force.engine.spoof_pongs != old.engine.spoof_pongs).then_some(in_force.engine.spoof_pongs);
        Self { in_force, restart_needed, queues, spoof_pongs, changed }
    }
}

/// The dotted keys whose values differ between `old` and `new` (a key present in only one of
/// them, such as an optional file, counts as changed).
fn changed_keys(old: &DaemonConfig, new: &DaemonConfig) -> Vec<String> {
    fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (key, value) in table {
            let dotted = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(t) => flatten(&dotted, t, out),
                v => out.push((dotted, v.clone())),
            }
        }
    }
    let table = |c: &DaemonConfig| {
        let mut out = Vec::new();
        let parsed: toml::Table = toml::from_str(&c.to_toml_string()).expect("own TOML parses");
        flatten("", &parsed, &mut out);
        out
    };
    let (old, new) = (table(old), table(new));
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.iter().find(|(o, _)| o == k).is_none_or(|(_, ov)| ov != v))
        .map(|(k, _)| k.clone())
        .collect();
    changed.extend(old.iter().filter(|(k, _)| !new.iter().any(|(n, _)| n == k)).map(|(k, _)| k.clone()));
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DaemonConfig {
        DaemonConfig::from_toml_str(text).unwrap()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let old = parse("queue = 2\n");
        let change = ConfigChange::between(&old, old.clone());
        assert_eq!(
            change,
            ConfigChange {
                in_force: old,
                restart_needed: vec![],
                queues: None,
                spoof_pongs: None,
                changed: vec![]
            }
        );
    }

    #[test]
    fn keys_bound_at_start_keep_their_old_value() {
        let old = parse("queue = 2\nfail_open = true\n");
        let new =
            parse("queue = 5\nqueues = 2\nfail_open = false\ncopy_range = 512\n[control]\nsocket = \"/x\"\n");
        let change = ConfigChange::between(&old, new);
        assert_eq!(change.queues, Some(QueuesChange { old: (2, 1), new: (5, 2) }));
        assert_eq!(change.restart_needed, ["queue", "queues", "fail_open", "copy_range", "control.socket"]);
        assert_eq!(change.in_force, old, "nothing else changed");
        assert_eq!(change.changed, ["control.socket", "copy_range", "fail_open", "queue", "queues"]);
    }

    #[test]
    fn other_keys_take_their_new_value() {
        let old = parse("");
        let new = parse(
            "spoof_pongs = false\nverdict_batch = 8\nstate_file = \"/s\"\nkernel_sets = \"off\"\n\
             [timelock]\nseconds = 5\n[log]\ndrop_burst = 1\n[metrics]\nfile = \"/m\"\n",
        );
        let change = ConfigChange::between(&old, new.clone());
        assert_eq!(change.in_force, new);
        assert_eq!((change.restart_needed.len(), change.queues), (0, None));
        assert_eq!(change.spoof_pongs, Some(false));
        let mut sorted = change.changed.clone();
        sorted.sort();
        let mut want = [
            "kernel_sets",
            "log.drop_burst",
            "metrics.file",
            "spoof_pongs",
            "state_file",
            "timelock.seconds",
            "verdict_batch",
        ];
        want.sort_unstable();
        assert_eq!(sorted, want, "every key the file changed, and nothing else");
        // Only the queue pair is reported as a queue change.
        let change = ConfigChange::between(&old, parse("busy_poll_us = 50\n"));
        assert_eq!((change.queues, change.restart_needed), (None, vec!["busy_poll_us"]));
        assert_eq!(change.in_force, old);
    }
}
