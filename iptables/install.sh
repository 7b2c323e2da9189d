#!/bin/sh
# Installs ftwall's rules, with one of two backends:
#   nft       the table `inet ftwall` from ftwall.nft (IPv4 and IPv6), loaded with `nft -f`;
#   iptables  a chain FTWALL (IPv4 and IPv6) in the `security` table (ftwall.rules,
#             ftwall6.rules), jumped to by the last rule of that table's FORWARD chain
#             (`-A FORWARD -m comment --comment ftwall -j FTWALL`), and the ipsets ftwall_clients,
#             ftwall_clients6, ftwall_peers, ftwall_peers6, ftwall_weak_peers,
#             ftwall_weak_peers6 and ftwall_allow_ports, which the daemon fills (`kernel_sets`);
#             without `ipset`, the rules that use them are left out,
#             with a note.
# Both run after the admin's own filter rules: those still decide for every packet (a REJECT or
# DROP of theirs still applies after ftwall accepted), and ftwall's drops are final. The reasons
# are in ftwall.rules and docs/operating.md. The filter table is not touched (a FORWARD jump and
# FTWALL chain in it, from an older ftwall, are removed).
# By default the kernel is probed: nft when `nft` exists and the kernel has the native nftables
# `queue` statement (CONFIG_NFT_QUEUE), otherwise iptables (which works with the nft backend).
# FTWALL_BACKEND=nft or FTWALL_BACKEND=iptables forces one. Installing one backend removes the
# other's ftwall rules, so that packets are never queued twice.
# --no-inbound-block leaves out the rules that drop new connections from outside into the LAN
# (port forwards, DNAT, are exempt from them anyway), for gateways whose policy decides inbound.
# Prints what it adds; uninstall.sh removes exactly that.
# Idempotent: running it again replaces the rules (and keeps a single jump, the last one).
#   usage: install.sh [--no-inbound-block] LAN_IF [QUEUE]
#                                        QUEUE: a number (default 0), or FIRST:LAST to balance
#                                        over several queues (ftwall's `queue`/`queues` keys)
set -eu
usage_line="usage: $0 [--no-inbound-block] LAN_IF [QUEUE|FIRST:LAST]"
usage() { echo "$usage_line   e.g. $0 eth1 0, or $0 eth1 0:1" >&2; exit 2; }
inbound_block=1
while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) echo "$usage_line"; exit 0 ;;
        --no-inbound-block) inbound_block=0; shift ;;
        --) shift; break ;;
        -*) echo "unknown option: $1" >&2; usage ;;
        *) break ;;
    esac
done
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
# The inbound block's lines carry the marker @INBOUND@ (after any indentation).
if [ $inbound_block -eq 1 ]; then
    inbound_filter='s/^\([[:space:]]*\)@INBOUND@/\1/'
else
    inbound_filter='/^[[:space:]]*@INBOUND@/d'
fi
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
create_ipsets() {
    # An ftwall_clients6 of an older install is a hash:ip: replace it (the rules that use it go
    # first; apply() puts them back).
    if ipset list -t ftwall_clients6 2>/dev/null | grep -q '^Type: hash:ip$'; then
        for table in security filter; do
            ip6tables -t "$table" -S FORWARD 2>/dev/null | sed -n 's/^-A \(FORWARD .*-j FTWALL\)$/-D \1/p' |
                while read -r rule; do
                    # shellcheck disable=SC2086 # the rule's words, as ip6tables -S printed them
                    ip6tables -t "$table" $rule
                done
            ip6tables -t "$table" -F FTWALL 2>/dev/null || true
            ip6tables -t "$table" -X FTWALL 2>/dev/null || true
        done
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

# The jump's comment says whether install.sh created the `security` table (on the nf_tables
# backend a table exists only once something uses it), so that uninstall.sh removes the table
# again then, and only then. A re-install keeps what the first install found.
jump_comment() { # tool
    if "$1-save" -t security 2>/dev/null | grep -q -- '--comment "\{0,1\}ftwall-created-table"\{0,1\} -j FTWALL$'; then
        echo ftwall-created-table
    elif "$1" -V 2>/dev/null | grep -q nf_tables && ! "$1-save" 2>/dev/null | grep -qx '\*security'; then
        echo ftwall-created-table
    else
        echo ftwall
    fi
}

# Loads the chain, and moves the jump to the end of the security table's FORWARD chain, in one
# `-restore --noflush` transaction: no moment without ftwall's rules, and a single jump.
apply() { # tool rules-file
    comment=$(jump_comment "$1")
    {
        sed -e "s/@LAN_IF@/$lan_if/g" -e "s/@QUEUE_TARGET@/$target/g" -e "$inbound_filter" \
            -e "$set_filter" -e '/^COMMIT$/d' "$rules_dir/$2"
        "$1" -t security -S FORWARD 2>/dev/null | sed -n 's/^-A \(FORWARD .*-j FTWALL\)$/-D \1/p'
        echo "-A FORWARD -m comment --comment $comment -j FTWALL"
        echo COMMIT
    } | "$1-restore" --noflush
    rules=$("$1" -t security -S FTWALL | grep -c '^-A FTWALL')
    echo "  $1: table security: chain FTWALL ($rules rules), and the jump" \
        "\`-A FORWARD -m comment --comment $comment -j FTWALL\` (the last rule of FORWARD)"
    if [ "$comment" = ftwall-created-table ]; then
        echo "  $1: the table security itself (it did not exist; uninstall.sh removes it if empty)"
    fi
}

if [ $inbound_block -eq 1 ]; then
    inbound="on: new connections from outside into $lan_if are dropped, except port forwards (DNAT); --no-inbound-block turns it off"
else
    inbound="off (--no-inbound-block): new connections into $lan_if are left to your own rules"
fi

if [ "$backend" = nft ]; then
    echo "ftwall: adding (nft backend, LAN interface $lan_if, NFQUEUE $queue):"
    sed -e "s/@LAN_IF@/$lan_if/g" -e "s/@QUEUE@/$nft_queue/g" -e "$inbound_filter" "$rules_dir/ftwall.nft" | nft -f -
    echo "  nft: table inet ftwall (chain forward, hook forward, priority security, after your filter" \
        "chains; sets ft_clients ft_clients6 ft_peers ft_peers6 ft_weak_peers ft_weak_peers6 ft_allow_ports)"
    echo "  inbound block: $inbound"
    replaced=$(sh "$here/uninstall.sh" --except nft) || { echo "install.sh: could not remove the other backend's rules" >&2; exit 1; }
    printf '%s\n' "$replaced" | sed -n 's/^  /  replaced: /p'
    echo "see them: nft list table inet ftwall; remove them: $here/uninstall.sh"
else
    echo "ftwall: adding (iptables backend, LAN interface $lan_if, NFQUEUE $queue):"
    modprobe xt_NFQUEUE 2>/dev/null || true
    if command -v ipset >/dev/null 2>&1; then
        create_ipsets
        set_filter=""
        echo "  ipsets (kept if present): ftwall_clients ftwall_clients6 ftwall_peers ftwall_peers6" \
            "ftwall_weak_peers ftwall_weak_peers6 ftwall_allow_ports"
    else
        echo "note: ipset is not installed; the kernel sets (locks kept across restarts) are left out" >&2
        set_filter="/-m set/d"
    fi
    apply iptables ftwall.rules
    if command -v ip6tables >/dev/null 2>&1 && ip6tables -t security -S >/dev/null 2>&1; then
        apply ip6tables ftwall6.rules
    else
        echo "note: ip6tables unavailable; IPv6 rules not installed" >&2
    fi
    echo "  inbound block: $inbound"
    replaced=$(sh "$here/uninstall.sh" --except iptables) || { echo "install.sh: could not remove the other backend's rules" >&2; exit 1; }
    printf '%s\n' "$replaced" | sed -n 's/^  /  replaced: /p'
    echo "see them: iptables -t security -S; ip6tables -t security -S; remove them: $here/uninstall.sh"
fi
echo "ftwall rules installed ($backend): LAN interface $lan_if, NFQUEUE $queue"
