# Sourced by live.sh and flood.sh (set $p first): three network namespaces $p-lan, $p-gw and
# $p-wan, joined by the veth pairs ${p}l0 / ${p}g0 (lan - gw) and ${p}w0 / ${p}g1 (wan - gw),
# every link up and no address yet; the scripts add their own addresses and routes.

topology_up() {
    for n in lan gw wan; do
        ip netns del $p-$n 2>/dev/null || true
        ip netns add $p-$n
        ip -n $p-$n link set lo up
    done
    ip link add ${p}l0 netns $p-lan type veth peer name ${p}g0 netns $p-gw
    ip link add ${p}w0 netns $p-wan type veth peer name ${p}g1 netns $p-gw
    for l in "lan ${p}l0" "gw ${p}g0" "gw ${p}g1" "wan ${p}w0"; do set -- $l; ip -n $p-$1 link set $2 up; done
}

topology_down() {
    for n in lan gw wan; do ip netns del $p-$n 2>/dev/null || true; done
}
