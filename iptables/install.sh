#!/bin/sh
# Installs ftwall's rules, with one of two backends:
#   nft       the table `inet ftwall` from ftwall.nft (IPv4 and IPv6), loaded with `nft -f`;
#   iptables  a chain FTWALL (IPv4 and IPv6) jumped to from FORWARD (ftwall.rules, ftwall6.rules),
#             and the ipsets ftwall_clients, ftwall_clients6, ftwall_peers, ftwall_peers6,
#             ftwall_weak_peers, ftwall_weak_peers6 and ftwall_allow_ports, which the daemon fills (`kernel_sets`); without `ipset`, the
#             rules that use them are left out, with a note.
# By default the kernel is probed: nft when `nft` exists and the kernel has the native nftables
# `queue` statement (CONFIG_NFT_QUEUE), otherwise iptables (which works with the nft backend).
# FTWALL_BACKEND=nft or FTWALL_BACKEND=iptables forces one. Installing one backend removes the
# other's ftwall rules, so that packets are never queued twice.
# Idempotent: running it again replaces the rules (and keeps a single jump).
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
        target="--queue-balance $first:$last"
        nft_queue="queue num $first-$last bypass" ;;
    *[!0-9]*|"") echo "bad queue number: $queue" >&2; exit 2 ;;
    *)
        [ "$queue" -le 65535 ] || { echo "queue number must be 0-65535" >&2; exit 2; }
        target="--queue-num $queue"
        nft_queue="queue num $queue bypass" ;;
esac
backend=${FTWALL_BACKEND:-}
case $backend in ""|nft|iptables) ;; *) echo "FTWALL_BACKEND must be nft or iptables, not: $backend" >&2; exit 2;; esac
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
rules_dir=${FTWALL_RULES_DIR:-$here}

modprobe nfnetlink_queue 2>/dev/null || true

# Does this kernel have nft's native queue statement? `nft -c` checks through the kernel without
# committing anything, so a missing statement fails here.
nft_queue_works() {
    command -v nft >/dev/null 2>&1 || return 1
    modprobe nft_queue 2>/dev/null || true
    nft -c -f - >/dev/null 2>&1 <<'NFT'
table inet ftwall_probe {
    chain c {
        type filter hook forward priority filter; policy accept;
        queue num 0 bypass
    }
}
NFT
}

case $backend in
    nft)
        command -v nft >/dev/null 2>&1 ||
            { echo "$0: FTWALL_BACKEND=nft, but nft is not installed" >&2; exit 1; }
        nft_queue_works || {
            echo "$0: FTWALL_BACKEND=nft, but this kernel has no native nftables queue statement" \
                "(CONFIG_NFT_QUEUE); use FTWALL_BACKEND=iptables, or leave it unset" >&2
            exit 1
        } ;;
    iptables) ;;
    *)
        if nft_queue_works; then
            backend=nft
        else
            backend=iptables
            if command -v nft >/dev/null 2>&1; then
                echo "note: this kernel has no native nftables queue statement; using iptables (nft backend) rules" >&2
            fi
        fi ;;
esac

# The kernel sets of the iptables backend: what ftwall knows (locked clients, suspect peers)
# stays enforced while the daemon restarts. Element timeouts are set by the daemon per element;
# the defaults are ftwall's `timelock.seconds` and `peers.expire_seconds`. `-exist`: an existing
# set (and its elements) is kept, so re-installing does not forget what the daemon loaded.
# IPv6 clients are locked by prefix (ftwall_clients6 is a hash:net); weak suspect peers are
# (peer, port, witness client) triples, hash:ip,port,ip.
ipsets="ftwall_clients ftwall_clients6 ftwall_peers ftwall_peers6 ftwall_weak_peers ftwall_weak_peers6 ftwall_allow_ports"
create_ipsets() {
    # An ftwall_clients6 of an older install is a hash:ip: replace it (the rules that use it go
    # first; apply() puts them back).
    if ipset list -t ftwall_clients6 2>/dev/null | grep -q '^Type: hash:ip$'; then
        remove_chain ip6tables
        ipset destroy ftwall_clients6
    fi
    ipset create -exist ftwall_clients hash:ip timeout 120
    ipset create -exist ftwall_clients6 hash:net family inet6 timeout 120
    ipset create -exist ftwall_peers hash:ip timeout 86400
    ipset create -exist ftwall_peers6 hash:ip family inet6 timeout 86400
    ipset create -exist ftwall_weak_peers hash:ip,port,ip timeout 3600
    ipset create -exist ftwall_weak_peers6 hash:ip,port,ip family inet6 timeout 3600
    ipset create -exist ftwall_allow_ports bitmap:port range 0-65535
}

destroy_ipsets() { # after the rules that use them are gone
    command -v ipset >/dev/null 2>&1 || return 0
    for set in $ipsets ftwall_allow_ports_new; do
        if ipset list -n "$set" >/dev/null 2>&1; then ipset destroy "$set"; fi
    done
}

apply() { # tool rules-file
    sed -e "s/@LAN_IF@/$lan_if/g" -e "s/@QUEUE_TARGET@/$target/g" -e "$set_filter" "$rules_dir/$2" |
        "$1-restore" --noflush
    "$1" -C FORWARD -j FTWALL 2>/dev/null || "$1" -I FORWARD 1 -j FTWALL
}

remove_chain() { # tool
    command -v "$1" >/dev/null 2>&1 && "$1" -L -n >/dev/null 2>&1 || return 0
    while "$1" -C FORWARD -j FTWALL 2>/dev/null; do "$1" -D FORWARD -j FTWALL; done
    if "$1" -L FTWALL -n >/dev/null 2>&1; then
        "$1" -F FTWALL
        "$1" -X FTWALL
    fi
}

if [ "$backend" = nft ]; then
    sed -e "s/@LAN_IF@/$lan_if/g" -e "s/@QUEUE@/$nft_queue/g" "$rules_dir/ftwall.nft" | nft -f -
    remove_chain iptables
    remove_chain ip6tables
    destroy_ipsets
else
    modprobe xt_NFQUEUE 2>/dev/null || true
    if command -v ipset >/dev/null 2>&1; then
        create_ipsets
        set_filter=""
    else
        echo "note: ipset is not installed; the kernel sets (locks kept across restarts) are left out" >&2
        set_filter="/-m set/d"
    fi
    apply iptables ftwall.rules
    if command -v ip6tables >/dev/null 2>&1 && ip6tables -L -n >/dev/null 2>&1; then
        apply ip6tables ftwall6.rules
    else
        echo "note: ip6tables unavailable; IPv6 rules not installed" >&2
    fi
    if command -v nft >/dev/null 2>&1 && nft list table inet ftwall >/dev/null 2>&1; then
        nft delete table inet ftwall
    fi
fi
echo "ftwall rules installed ($backend): LAN interface $lan_if, NFQUEUE $queue"
