#!/usr/bin/env bash
# Several gateways, one memory (docs/cluster.md): the figures of the cluster.
#  1. The event rate one Redis sustains with the cluster schema, N = 2, 8, 32 simulated gateways
#     (benches/cluster_rate.rs: each a publisher pipelining SET PX + PUBLISH and a subscriber),
#     against a redis-server started here in a network namespace of its own (loopback only, no
#     persistence), with the propagation time p50/p99 under that load.
#  2. The propagation time between two real daemons through one Redis over 100 bans and 100 locks
#     (tests/cluster.rs, release build): the daemons' own measure, publish on A to merge on B.
#  3. The daemon's verdict latency (UDP echoes through the lab's gateway, every packet judged)
#     with the cluster off, on and idle, and on while 2 simulated gateways publish locks to its
#     prefix as fast as Redis takes them (its subscriber merges every one into the engine), and,
#     to separate the cost of the load on the machine from that of the merges, while they
#     publish to another prefix.
# Root (namespaces, and the lab of tests/cluster.rs); needs redis-server.
# usage: sudo benches/cluster.sh [SECONDS]     (default 5 per run)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
command -v redis-server >/dev/null || { echo "install redis-server" >&2; exit 1; }
ns=ftcb$$
work=$(mktemp -d)
cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    [ -n "${responder:-}" ] && kill "$responder" 2>/dev/null && wait "$responder" 2>/dev/null || true
    [ -n "${gw_redis:-}" ] && kill "$gw_redis" 2>/dev/null && wait "$gw_redis" 2>/dev/null || true
    target/release/ftwall lab down --prefix $ns >/dev/null 2>&1 || true
    [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
    ip netns del $ns 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cargo build -q --release --example cluster_rate
cargo build -q --release
ip netns add $ns
ip -n $ns link set lo up
ip netns exec $ns redis-server --port 6379 --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 50); do
    ip netns exec $ns redis-cli ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
echo "redis: $(redis-server --version | cut -d' ' -f3), cores: $(nproc)"
for n in 2 8 32; do
    ip netns exec $ns target/release/examples/cluster_rate redis://127.0.0.1:6379 $n "$seconds"
done
echo "two daemons through one Redis (tests/cluster.rs, release):"
cargo test -q --release --test cluster a_lock_a_ban_and_a_release_cross_gateways -- --include-ignored --nocapture 2>&1 \
    | grep -E "cluster propagation|own changes back|test result"

echo "verdict latency through the lab's gateway (2000 UDP echoes each, offload off):"
target/release/ftwall lab up --prefix $ns --queue 3 >/dev/null
ip netns exec $ns-wan target/release/ftwall sim responder --udp 198.51.100.20:7 >/dev/null &
responder=$!
ip netns exec $ns-gw redis-server --port 6379 --bind 127.0.0.1 --dir "$work" --save '' --appendonly no \
    --daemonize no >"$work/gw-redis.log" 2>&1 &
gw_redis=$!
sleep 0.5
base="lan = [\"192.0.2.0/24\", \"2001:db8::/32\"]
queue = 3
state_file = \"$work/state\"
[offload]
enabled = false
[control]
socket = \"$work/control.sock\""
cluster="[cluster]
enabled = true
url = \"redis://127.0.0.1:6379\"
node_id = \"bench\"
prefix = \"lab\""
latency() { # $1: label; the round trips and the daemon's cluster counters
    ip netns exec $ns-lan target/release/ftwall sim udp --to 198.51.100.20:7 >/dev/null || true
    ip netns exec $ns-lan target/release/ftwall bench-traffic latency --to 198.51.100.20:7 --count 2000 |
        tail -1 | python3 -c 'import json,sys; v=json.loads(sys.stdin.read()); print("%-22s round trip p50 %6.1f us  p99 %7.1f us  lost %d" % (sys.argv[1], v["p50_us"], v["p99_us"], v["lost"]))' "$1"
}
run() { # $1: config
    printf '%s\n' "$1" > "$work/ftwall.toml"
    ip netns exec $ns-gw target/release/ftwall run --config "$work/ftwall.toml" --log-format json 2>"$work/daemon.log" &
    daemon=$!
    sleep 1.5
}
stop() { kill "$daemon"; wait "$daemon" || true; daemon=; }
run "$base"
latency "cluster off:"
stop
run "$(printf '%s\n%s' "$base" "$cluster")"
latency "cluster on, idle:"
# The same load on Redis and the CPUs, on another prefix (nothing merged): what the load alone costs.
ip netns exec $ns-gw target/release/examples/cluster_rate redis://127.0.0.1:6379 2 30 other >"$work/churn.json" &
churn=$!
sleep 1
latency "cluster on, load only:"
kill "$churn" 2>/dev/null; wait "$churn" 2>/dev/null || true
ip netns exec $ns-gw target/release/examples/cluster_rate redis://127.0.0.1:6379 2 30 lab >"$work/churn.json" &
churn=$!
sleep 1
latency "cluster on, merging:"
kill "$churn" 2>/dev/null; wait "$churn" 2>/dev/null || true
target/release/ftwall ctl --socket "$work/control.sock" --json status | python3 -c '
import json,sys; s=json.load(sys.stdin)["status"]
print("  merged meanwhile: cluster_events_in %d, locked clients %d, cluster_garbage %d" % (s["cluster_events_in"], s["locked_clients"], s["cluster_garbage"]))'
stop
