#!/usr/bin/env bash
# Verdict latency while every side effect is slowed down (issue: side effects never block the
# verdict path). Root; builds namespaces $p-{lan,gw,wan} and the shipped rules (`ftwall lab up`,
# removed by `ftwall lab down`), and a daemon that queues every packet (offload off). Prints, for
# N UDP echoes through the gateway, the round trip p50/p99 and how many packets the kernel
# actually handed to the daemon meanwhile (latency alone flatters a stalled daemon: with a full
# queue, fail_open lets the echoes through unjudged, and faster), in three runs:
#   quiet     nothing else happens;
#   loaded    100 LAN addresses that do not exist send 2,000 FastTrack pings/s, with forged pongs
#             off, the state on a normal disk and the log read: the load without slow effects;
#   stalled   the same flood with forged pongs on (each waits for ARP that never resolves; before
#             the effects threads this blocked the packet thread for seconds), the state directory
#             a full tmpfs (every save fails) and stderr a pipe whose reader is stopped (SIGSTOP).
# The last line compares stalled with loaded: the same load, effects slowed or not.
# usage: sudo benches/effects_stall.sh [ECHOES]     (default 3000; a release build is used if present)
set -euo pipefail
cd "$(dirname "$0")/.."
echoes=${1:-3000}
p=ftes$$
p=${p:0:8}
# This checkout's build runs the lab, the responder and the load (`ftwall lab`, `ftwall sim`,
# `ftwall bench-traffic`); FTWALL_BIN_DIR: another build whose daemon to measure (e.g. an older
# commit's target/release).
tools=target/release
[ -x $tools/ftwall ] || tools=target/debug
[ -x $tools/ftwall ] || { echo "build ftwall first (cargo build --release)" >&2; exit 1; }
bin=${FTWALL_BIN_DIR:-$tools}
work=$(mktemp -d)
nsx() { local n=$1; shift; ip netns exec $p-$n "$@"; }
cleanup() {
    set +e
    [ -n "${reader:-}" ] && kill -CONT $reader 2>/dev/null && kill $reader 2>/dev/null
    [ -n "${daemon:-}" ] && kill $daemon 2>/dev/null && wait $daemon 2>/dev/null
    [ -n "${responder:-}" ] && kill $responder 2>/dev/null && wait $responder 2>/dev/null
    umount $work/state 2>/dev/null
    $tools/ftwall lab down --prefix $p >/dev/null
    rm -rf $work
}
trap cleanup EXIT
# lan 192.0.2.10-14, gw 192.0.2.1 / 198.51.100.1, wan 198.51.100.20-39; the rules on queue 3.
$tools/ftwall lab up --prefix $p --queue 3 >/dev/null
# `ip netns exec` execs the program, so $! is the process itself (a shell function would fork).
ip netns exec $p-wan $tools/ftwall sim responder --udp 198.51.100.20:7 > $work/responder.log &
responder=$!
mkdir -p $work/state
cat > $work/base.toml <<TOML
lan = ["192.0.2.0/24"]
queue = 3
state_file = "$work/state/state"
[offload]
enabled = false
[control]
socket = "$work/control.sock"
[metrics]
file = "$work/metrics/ftwall.prom"
interval_seconds = 1
TOML
mkdir -p $work/metrics
cp $work/base.toml $work/ftwall.toml

queued_ids() { # the kernel's id sequence of queue 3: packets it handed to the daemon so far
    nsx gw cat /proc/net/netfilter/nfnetlink_queue | awk '$1 == 3 { print $8 }'
}

run_daemon() { # $1: where stderr goes (the daemon must still run after 1 s)
    ip netns exec $p-gw $bin/ftwall run --config $work/ftwall.toml --log-format json 2>"$1" &
    daemon=$!
    sleep 1
    kill -0 $daemon 2>/dev/null || { echo "effects_stall: the daemon exited (stderr: $1)" >&2; exit 1; }
}

stop_daemon() { kill $daemon; wait $daemon || true; daemon=; }

# measure NAME FLOOD: the echo round trips (with the absent-neighbour flood if FLOOD=1), how many
# packets the kernel handed to the daemon meanwhile, and what the daemon says of itself.
measure() {
    local name=$1 flood_on=$2 flood= ids_before ids_after start elapsed expected status
    nsx lan $tools/ftwall sim udp --to 198.51.100.20:7 >/dev/null || true
    if [ "$flood_on" = 1 ]; then
        ip netns exec $p-lan python3 tests/hostile/path_attacks.py flood-absent 2000 600 >/dev/null 2>&1 &
        flood=$!
        sleep 2
    fi
    ids_before=$(queued_ids)
    start=$(date +%s.%N)
    read -r p50 p99 lost < <(nsx lan $tools/ftwall bench-traffic latency --to 198.51.100.20:7 --count $echoes |
        python3 -c 'import json,sys; v=json.loads(sys.stdin.read().splitlines()[-1]); print("%.1f %.1f %d" % (v["p50_us"], v["p99_us"], v["lost"]))')
    elapsed=$(python3 -c "print('%.2f' % ($(date +%s.%N) - $start))")
    ids_after=$(queued_ids)
    [ -n "$flood" ] && kill $flood 2>/dev/null
    # Packets that should have reached the daemon meanwhile: each echo request, plus the flood.
    expected=$(python3 -c "print(int($echoes + 2000 * $flood_on * $elapsed))")
    status=$(timeout 5 $bin/ftwall ctl --socket $work/control.sock --json status | python3 -c '
import json,sys; s=json.load(sys.stdin)["status"]
print("judged %d packets; log lines discarded %s; state save errors %s; spoof errors %s; health %s" % (
    s["packets"], s.get("log_lines_discarded", "-"), s.get("state_save_errors", "-"),
    s.get("spoof_errors", "-"), s.get("health", {}).get("state", "-")))' 2>/dev/null) ||
        status="ftwall ctl status did not answer"
    # The daemon's own verdict latency (receive to verdict), p99 as the histogram bucket bound.
    sleep 1.5
    verdict_p99=$(python3 -c '
import re,sys
text = open(sys.argv[1]).read()
buckets = [(float(le), int(n)) for le, n in re.findall(r"ftwall_verdict_latency_seconds_bucket\{le=\"([0-9.e+-]+)\"\} (\d+)", text)]
total = int(re.search(r"ftwall_verdict_latency_seconds_count (\d+)", text).group(1))
print(next(("<= %g us" % (le * 1e6) for le, n in buckets if n >= 0.99 * total), "> 100000 us"))' \
        $work/metrics/ftwall.prom 2>/dev/null) || verdict_p99="unknown (no metrics file)"
    printf '%-8s round trip p50 %7s us  p99 %7s us  lost %s; verdict p99 %s; queued to the daemon %s of ~%s sent in %s s  (%s)\n' \
        "$name:" "$p50" "$p99" "$lost" "$verdict_p99" "$((ids_after - ids_before))" "$expected" "$elapsed" "$status"
    eval "${name}_p99=$p99"
}

echo "effects_stall: $echoes UDP echoes through the gateway, every packet judged ($bin)"
# quiet: nothing else happens
run_daemon $work/quiet.log
measure quiet 0
stop_daemon

# loaded: the same flood, but no effect is slow (no forged pongs, a normal disk, a read log)
printf 'spoof_pongs = false\n' > $work/extra.toml
cat $work/extra.toml $work/base.toml > $work/ftwall.toml
run_daemon $work/loaded.log
measure loaded 1
stop_daemon
cp $work/base.toml $work/ftwall.toml

# stalled: the flood's pongs wait for ARP, the state disk is full, the log reader is stopped
mount -t tmpfs -o size=4k tmpfs $work/state
dd if=/dev/zero of=$work/state/fill bs=4k count=1 2>/dev/null || true
mkfifo $work/stderr.fifo
# The reader holds the pipe open, then stops reading for good.
cat $work/stderr.fifo > /dev/null &
reader=$!
run_daemon $work/stderr.fifo
kill -STOP $reader
measure stalled 1

echo "ratio stalled/loaded p99 (same load, effects slowed or not): $(python3 -c "print('%.2f' % ($stalled_p99 / $loaded_p99))")"
