#!/bin/sh
# Installs ftwall's iptables rules: a chain FTWALL (IPv4 and IPv6) jumped to from FORWARD.
# Idempotent: running it again replaces the chain's rules and keeps a single jump.
#   usage: install.sh LAN_IF [QUEUE]     QUEUE: a number (default 0), or FIRST:LAST to balance
#                                        over several queues (ftwall's `queue`/`queues` keys)
set -eu
usage() { echo "usage: $0 LAN_IF [QUEUE|FIRST:LAST]   e.g. $0 eth1 0, or $0 eth1 0:1" >&2; exit 2; }
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { echo "usage: $0 LAN_IF [QUEUE|FIRST:LAST]"; exit 0; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
lan_if=$1
queue=${2:-0}
case $lan_if in *[!A-Za-z0-9_.@-]*|"") echo "bad interface name: $lan_if" >&2; exit 2;; esac
case $queue in
    *:*)
        first=${queue%%:*}; last=${queue#*:}
        case "$first$last" in *[!0-9]*|"") echo "bad queue range: $queue" >&2; exit 2;; esac
        [ -n "$first" ] && [ -n "$last" ] && [ "$first" -lt "$last" ] && [ "$last" -le 65535 ] ||
            { echo "queue range must be FIRST:LAST with FIRST < LAST <= 65535" >&2; exit 2; }
        target="--queue-balance $first:$last" ;;
    *[!0-9]*|"") echo "bad queue number: $queue" >&2; exit 2 ;;
    *)
        [ "$queue" -le 65535 ] || { echo "queue number must be 0-65535" >&2; exit 2; }
        target="--queue-num $queue" ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
rules_dir=${FTWALL_RULES_DIR:-$here}

modprobe nfnetlink_queue 2>/dev/null || true
modprobe xt_NFQUEUE 2>/dev/null || true

if command -v nft >/dev/null 2>&1 && ! nft -c -f - >/dev/null 2>&1 <<'NFT'
table inet ftwall_probe { chain c { type filter hook forward priority 0; queue num 0 bypass; } }
NFT
then
    echo "note: this kernel has no native nftables queue statement; using iptables (nft backend) rules" >&2
fi

apply() { # tool rules-file
    sed -e "s/@LAN_IF@/$lan_if/g" -e "s/@QUEUE_TARGET@/$target/g" "$rules_dir/$2" | "$1-restore" --noflush
    "$1" -C FORWARD -j FTWALL 2>/dev/null || "$1" -I FORWARD 1 -j FTWALL
}

apply iptables ftwall.rules
if command -v ip6tables >/dev/null 2>&1 && ip6tables -L -n >/dev/null 2>&1; then
    apply ip6tables ftwall6.rules
else
    echo "note: ip6tables unavailable; IPv6 rules not installed" >&2
fi
echo "ftwall rules installed: LAN interface $lan_if, NFQUEUE $queue"
