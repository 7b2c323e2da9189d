#!/bin/sh
# Removes what install.sh added: the iptables FTWALL chains and their FORWARD jumps, then the
# ipsets those rules used (ftwall_clients, ftwall_clients6, ftwall_peers, ftwall_peers6,
# ftwall_weak_peers, ftwall_weak_peers6, ftwall_allow_ports), and the nftables table `inet ftwall` (with its sets). Idempotent.
#   usage: uninstall.sh
set -eu
[ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] && { echo "usage: $0"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
remove() { # tool
    while "$1" -C FORWARD -j FTWALL 2>/dev/null; do "$1" -D FORWARD -j FTWALL; done
    if "$1" -L FTWALL -n >/dev/null 2>&1; then
        "$1" -F FTWALL
        "$1" -X FTWALL
    fi
}
remove iptables
if command -v ip6tables >/dev/null 2>&1 && ip6tables -L -n >/dev/null 2>&1; then
    remove ip6tables
fi
# Only after the rules that reference them are gone.
if command -v ipset >/dev/null 2>&1; then
    for set in ftwall_clients ftwall_clients6 ftwall_peers ftwall_peers6 ftwall_weak_peers ftwall_weak_peers6 \
        ftwall_allow_ports ftwall_allow_ports_new; do
        if ipset list -n "$set" >/dev/null 2>&1; then ipset destroy "$set"; fi
    done
fi
if command -v nft >/dev/null 2>&1 && nft list table inet ftwall >/dev/null 2>&1; then
    nft delete table inet ftwall
fi
echo "ftwall rules removed"
