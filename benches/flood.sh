#!/usr/bin/env bash
# Memory of the live daemon under a flood of distinct flows: one small IPv6 UDP datagram to each
# of N distinct destinations (2001:db8:3::/48, routed through the gateway), every one queued to
# ftwall and judged as a new flow. Prints the daemon's RSS after each tenth of the flood: it must
# stay flat (the flow table is an LRU; everything else is capped too).
# Conntrack is bypassed for the flood's destinations (raw-table NOTRACK) so that the kernel's own
# connection table does not cap the flood before it reaches the queue. The namespaces and the
# shipped rules come from `ftwall lab up` (removed by `ftwall lab down`); the flood from
# `ftwall bench-traffic flood`. Root only; the traffic stays inside those namespaces, on
# documentation addresses.
#   benches/flood.sh [N]      default N = 10000000 (about 1 minute)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-10000000}
[ "$(id -u)" -eq 0 ] || { echo "flood.sh: must run as root" >&2; exit 1; }
cargo build -q --release --bin ftwall
bin=target/release
p=ftf$$
work=$(mktemp -d)
daemon=
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    $bin/ftwall lab down --prefix $p >/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# lan 2001:db8:1::10-12, gw 2001:db8:1::1 / 2001:db8:2::1, wan 2001:db8:2::20-26; the rules on queue 0.
$bin/ftwall lab up --prefix $p --queue 0 >/dev/null
# The flood's destinations: 2001:db8:3::/48, behind wan (where nothing answers).
ip -n $p-gw -6 route add 2001:db8:3::/48 via 2001:db8:2::20
ip netns exec $p-gw ip6tables -t raw -A PREROUTING -i ${p}g0 -d 2001:db8:3::/48 -j NOTRACK

printf 'lan = ["2001:db8:1::/64"]\nstate_file = "%s/state"\n[control]\nsocket = "%s/control.sock"\n' \
    "$work" "$work" > "$work/ftwall.toml"
ip netns exec $p-gw $bin/ftwall run --config "$work/ftwall.toml" --log-level warn > "$work/daemon.log" 2>&1 &
daemon=$!
sleep 1
kill -0 $daemon 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
status() { $bin/ftwall ctl --socket "$work/control.sock" --json status; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)['status']['$1'])"; }
kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$daemon/status; }

echo "machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)"
printf '%-12s %12s %12s %10s %10s %8s\n' step sent judged flows "RSS MiB" "peak MiB"
printf '%-12s %12s %12s %10s %10s %8s\n' start 0 "$(status | field packets)" "$(status | field flows)" \
    "$(( $(kib VmRSS) / 1024 ))" "$(( $(kib VmHWM) / 1024 ))"
step_count=$(( count / 10 ))
sent=0
started=$(date +%s.%N)
for step in $(seq 1 10); do
    # Each tenth goes to its own /64: every destination of the whole flood is distinct.
    ip netns exec $p-lan $bin/ftwall bench-traffic flood --prefix "2001:db8:3:$step::" --count $step_count > /dev/null
    sent=$(( sent + step_count ))
    s=$(status)
    printf '%-12s %12s %12s %10s %10s %8s\n' "$step/10" "$sent" "$(echo "$s" | field packets)" \
        "$(echo "$s" | field flows)" "$(( $(kib VmRSS) / 1024 ))" "$(( $(kib VmHWM) / 1024 ))"
done
seconds=$(python3 -c "print('%.1f' % ($(date +%s.%N) - $started))")
judged=$(status | field packets)
echo "flood: $sent datagrams to $sent distinct destinations in $seconds s; $judged judged by ftwall"
echo "peak RSS of the daemon: $(( $(kib VmHWM) / 1024 )) MiB"
