#!/usr/bin/env bash
# Verdict latency while every side effect is slowed down (issue: side effects never block the
# verdict path). Root; builds namespaces $p-{lan,gw,wan} (benches/topology.sh), the shipped rules,
# and a daemon that queues every packet (offload off). Prints the UDP echo round trip through the
# gateway, p50 and p99 over N echoes, in two runs:
#   quiet     nothing else happens;
#   stalled   at the same time: stderr is a pipe whose reader is stopped (SIGSTOP), the state
#             directory is a full tmpfs (every save fails), and 100 LAN addresses that do not
#             exist send 2,000 FastTrack pings/s (every forged pong waits for ARP that never
#             resolves; before the effects threads this blocked the packet thread for seconds).
# usage: sudo benches/effects_stall.sh [ECHOES]     (default 3000; a release build is used if present)
set -euo pipefail
cd "$(dirname "$0")/.."
echoes=${1:-3000}
p=ftes$$
p=${p:0:8}
. benches/topology.sh
# FTWALL_BIN_DIR: another build to measure (e.g. an older commit's target/release).
bin=${FTWALL_BIN_DIR:-target/release}
[ -x $bin/ftwall ] || bin=target/debug
[ -x $bin/ftwall ] || { echo "build ftwall first (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d)
nsx() { local n=$1; shift; ip netns exec $p-$n "$@"; }
cleanup() {
    set +e
    [ -n "${reader:-}" ] && kill -CONT $reader 2>/dev/null && kill $reader 2>/dev/null
    [ -n "${daemon:-}" ] && kill $daemon 2>/dev/null && wait $daemon 2>/dev/null
    [ -n "${responder:-}" ] && kill $responder 2>/dev/null
    umount $work/state 2>/dev/null
    topology_down
    rm -rf $work
}
trap cleanup EXIT
topology_up
ip -n $p-lan addr add 192.0.2.10/24 dev ${p}l0
ip -n $p-gw addr add 192.0.2.1/24 dev ${p}g0
ip -n $p-gw addr add 198.51.100.1/24 dev ${p}g1
ip -n $p-wan addr add 198.51.100.20/24 dev ${p}w0
for h in $(seq 30 39); do ip -n $p-wan addr add 198.51.100.$h/24 dev ${p}w0; done
ip -n $p-lan route add default via 192.0.2.1
ip -n $p-wan route add default via 198.51.100.1
nsx gw sysctl -qw net.ipv4.ip_forward=1
nsx gw iptables/install.sh ${p}g0 3 >/dev/null 2>&1
# `ip netns exec` execs the program, so $! is the process itself (a shell function would fork).
ip netns exec $p-wan $bin/ftwall sim responder --udp 198.51.100.20:7 > $work/responder.log &
responder=$!
mkdir -p $work/state
cat > $work/ftwall.toml <<TOML
lan = ["192.0.2.0/24"]
queue = 3
state_file = "$work/state/state"
[offload]
enabled = false
[control]
socket = "$work/control.sock"
TOML

latency() { # prints "p50 p99" in microseconds
    nsx lan $bin/ftwall sim latency --to 198.51.100.20:7 --count $echoes |
        python3 -c 'import json,sys; v=json.loads(sys.stdin.read().splitlines()[-1]); print("%.1f %.1f %d" % (v["p50_us"], v["p99_us"], v["lost"]))'
}

run_daemon() { # $1: where stderr goes (the daemon must still run after 1 s)
    ip netns exec $p-gw $bin/ftwall run --config $work/ftwall.toml --log-format json 2>"$1" &
    daemon=$!
    sleep 1
    kill -0 $daemon 2>/dev/null || { echo "effects_stall: the daemon exited (stderr: $1)" >&2; exit 1; }
}

# quiet
run_daemon $work/quiet.log
nsx lan $bin/ftwall sim udp --to 198.51.100.20:7 >/dev/null || true
read q50 q99 qlost < <(latency)
kill $daemon; wait $daemon || true; daemon=

# stalled: a full state disk, a stopped log reader, pings from absent neighbours
mount -t tmpfs -o size=4k tmpfs $work/state
dd if=/dev/zero of=$work/state/fill bs=4k count=1 2>/dev/null || true
mkfifo $work/stderr.fifo
# The reader holds the pipe open, reads for a moment, then stops reading for good.
cat $work/stderr.fifo > /dev/null &
reader=$!
run_daemon $work/stderr.fifo
kill -STOP $reader
ip netns exec $p-lan python3 tests/hostile/path_attacks.py flood-absent 2000 600 >/dev/null 2>&1 &
flood=$!
sleep 2
read s50 s99 slost < <(latency)
kill $flood 2>/dev/null || true
status=$($bin/ftwall ctl --socket $work/control.sock --json status | python3 -c '
import json,sys; s=json.load(sys.stdin)["status"]
print("judged %d packets, %d udp_ping; log lines discarded %s; state save errors %s; spoof errors %s; health %s" % (
    s["packets"], s["reasons"].get("udp_ping", 0), s.get("log_lines_discarded", "-"), s.get("state_save_errors", "-"),
    s.get("spoof_errors", "-"), s.get("health", {}).get("state", "-")))')

echo "effects_stall: $echoes UDP echoes through the gateway, every packet judged ($bin)"
echo "quiet:   p50 ${q50} us  p99 ${q99} us  lost ${qlost}"
echo "stalled: p50 ${s50} us  p99 ${s99} us  lost ${slost}   ($status)"
echo "ratio stalled/quiet p99: $(python3 -c "print('%.2f' % ($s99 / $q99))")"
