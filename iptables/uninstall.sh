#!/bin/sh
# Removes what install.sh added, and prints what it removed:
# - iptables and ip6tables: the jump `-A FORWARD ... -j FTWALL` and the chain FTWALL in the
#   `security` table; then the table itself, but only if install.sh created it (the jump's
#   comment says `ftwall-created-table`) and nothing else is in it now (no rule, no chain of
#   anyone's, every policy ACCEPT);
# - the ipsets those rules used (ftwall_clients, ftwall_clients6, ftwall_peers, ftwall_peers6,
#   ftwall_weak_peers, ftwall_weak_peers6, ftwall_allow_ports), after the rules;
# - the nftables table `inet ftwall` (with its sets);
# - what an older ftwall installed in the filter table (a FORWARD jump to a chain FTWALL there).
# Nothing else is touched. Idempotent; needs no daemon (stopped or running alike: a running
# daemon finds no sets to fill and says so).
#   usage: uninstall.sh [--except iptables|nft]
# --except BACKEND keeps that backend's rules (install.sh uses it to remove the other backend's
# rules and an older ftwall's, after it installed its own).
set -eu
usage_line="usage: $0 [--except iptables|nft]"
except=""
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) echo "$usage_line"; exit 0 ;;
        --except)
            [ $# -ge 2 ] || { echo "$usage_line" >&2; exit 2; }
            case $2 in iptables|nft) except=$2 ;; *) echo "$usage_line" >&2; exit 2 ;; esac
            shift 2 ;;
        *) echo "$usage_line" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
removed=0
[ -n "$except" ] || echo "ftwall: removing:"
say() { echo "  $*"; removed=1; }

# The FTWALL chain of `table` (security, or filter for an older ftwall) and the jumps to it.
remove_chain() { # tool table
    jumps=$("$1" -t "$2" -S FORWARD 2>/dev/null | grep -- ' -j FTWALL$' || true)
    if [ -n "$jumps" ]; then
        { echo "*$2"; echo "$jumps" | sed 's/^-A /-D /'; echo COMMIT; } | "$1-restore" --noflush
        say "$1: table $2: the jump $(echo "$jumps" | head -n 1)"
    fi
    if "$1" -t "$2" -S FTWALL >/dev/null 2>&1; then
        "$1" -t "$2" -F FTWALL
        "$1" -t "$2" -X FTWALL
        say "$1: table $2: chain FTWALL"
    fi
}

# The `security` table, when install.sh created it and it holds nothing any more. On the
# nf_tables backend iptables creates a table with its base chains on first use and never deletes
# it; `nft` can. (The legacy backend's tables are the kernel modules': nothing to remove.)
remove_created_table() { # tool family
    "$1" -V 2>/dev/null | grep -q nf_tables || return 0
    command -v nft >/dev/null 2>&1 || {
        echo "note: nft is not installed: the empty table $2 security that install.sh created stays" >&2
        return 0
    }
    nft list table "$2" security >/dev/null 2>&1 || return 0
    # Anything beyond the empty base chains (rules, other chains, a policy other than accept)
    # is someone else's: keep the table then.
    if nft list table "$2" security | grep -v -e '^table ' -e '^[[:space:]]*chain [A-Z]* {$' \
        -e '^[[:space:]]*type filter hook [a-z]* priority [0-9a-z]*; policy accept;$' \
        -e '^[[:space:]]*}$' -e '^[[:space:]]*$' | grep -q .; then
        return 0
    fi
    nft delete table "$2" security
    say "$1: the table security (install.sh had created it)"
}

remove_iptables() { # tool family
    command -v "$1" >/dev/null 2>&1 || return 0
    if [ "$except" != iptables ] && "$1" -t security -S >/dev/null 2>&1; then
        created=0
        if "$1-save" -t security 2>/dev/null | grep -q -- '--comment "\{0,1\}ftwall-created-table"\{0,1\} -j FTWALL$'; then
            created=1
        fi
        remove_chain "$1" security
        [ $created -eq 0 ] || remove_created_table "$1" "$2"
    fi
    if "$1" -t filter -S >/dev/null 2>&1; then
        remove_chain "$1" filter
    fi
}

remove_iptables iptables ip
remove_iptables ip6tables ip6
# Only after the rules that reference them are gone.
if [ "$except" != iptables ] && command -v ipset >/dev/null 2>&1; then
    for set in ftwall_clients ftwall_clients6 ftwall_peers ftwall_peers6 ftwall_weak_peers ftwall_weak_peers6 \
        ftwall_allow_ports ftwall_allow_ports_new; do
        if ipset list -n "$set" >/dev/null 2>&1; then
            ipset destroy "$set"
            say "ipset $set"
        fi
    done
fi
if [ "$except" != nft ] && command -v nft >/dev/null 2>&1 && nft list table inet ftwall >/dev/null 2>&1; then
    nft delete table inet ftwall
    say "nft: table inet ftwall"
fi
if [ -z "$except" ]; then
    [ $removed -eq 1 ] || echo "  nothing of ftwall's was installed"
    echo "ftwall rules removed"
fi
