#!/usr/bin/env bash
# kbgp demo: an FRR route reflector (rack 0's leaf, AS 65005) in one network namespace, kbgp as
# node kind-worker in another, announcing from examples/demo/kbgp.yaml. Prints what the route
# reflector learned, then tears everything down (KEEP=1 leaves it running).
# Debian, as root: installs frr if missing and builds kbgp.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/deps.sh
install_deps
[ "$(id -u)" = 0 ] || { echo "run as root: the demo creates network namespaces" >&2; exit 1; }

cargo build --release --locked --quiet
KBGP=$PWD/target/release/kbgp
D=$(mktemp -d /tmp/kbgp-demo.XXXXXX)
RR=kbgp-demo-rr
NODE=kbgp-demo-node

cleanup() {
    [ -f "$D/kbgp.pid" ] && kill "$(cat "$D/kbgp.pid")" 2>/dev/null || true
    for p in bgpd zebra; do [ -f "$D/$p.pid" ] && kill "$(cat "$D/$p.pid")" 2>/dev/null || true; done
    sleep 0.5
    ip netns del $RR 2>/dev/null || true
    ip netns del $NODE 2>/dev/null || true
    rm -rf "$D"
}
if [ "${KEEP:-0}" != 1 ]; then trap cleanup EXIT; fi

ip netns del $RR 2>/dev/null || true
ip netns del $NODE 2>/dev/null || true
ip netns add $RR
ip netns add $NODE
ip link add kdemo-rr type veth peer name kdemo-node
ip link set kdemo-rr netns $RR
ip link set kdemo-node netns $NODE
ip -n $RR link set kdemo-rr name eth1
ip -n $NODE link set kdemo-node name eth0
for ns in $RR $NODE; do ip -n $ns link set lo up; done
ip -n $RR addr add 10.0.5.1/24 dev eth1
ip -n $NODE addr add 10.0.5.11/24 dev eth0
ip -n $RR link set eth1 up
ip -n $NODE link set eth0 up

# The route reflector: zebra (so learned routes reach its kernel table) and bgpd.
cat > "$D/zebra.conf" <<EOC
hostname leaf01
EOC
cat > "$D/bgpd.conf" <<EOC
frr defaults traditional
hostname leaf01
log file $D/bgpd.log informational
router bgp 65005
 bgp router-id 10.0.5.1
 bgp log-neighbor-changes
 no bgp default ipv4-unicast
 neighbor 10.0.5.11 remote-as 65005
 address-family ipv4 unicast
  neighbor 10.0.5.11 activate
  neighbor 10.0.5.11 route-reflector-client
 exit-address-family
EOC
chown -R frr:frr "$D"
ip netns exec $RR /usr/lib/frr/zebra -d -u frr -g frr -f "$D/zebra.conf" -i "$D/zebra.pid" -z "$D/zserv.api" --vty_socket "$D" -P 0 2>/dev/null
ip netns exec $RR /usr/lib/frr/bgpd -d -u frr -g frr -f "$D/bgpd.conf" -i "$D/bgpd.pid" -z "$D/zserv.api" --vty_socket "$D" -P 0

# kbgp, from the file, as node kind-worker.
ip netns exec $NODE "$KBGP" run --config examples/demo/kbgp.yaml --metrics-addr 127.0.0.1:9180 \
    --admin-socket "$D/kbgp.sock" > "$D/kbgp.log" 2>&1 &
echo $! > "$D/kbgp.pid"

echo "waiting for the routes at the route reflector..."
for _ in $(seq 60); do
    n=$(ip netns exec $RR vtysh --vty_socket "$D" -c 'show bgp ipv4 unicast json' 2>/dev/null | grep -c '"peerId":"10.0.5.11"' || true)
    [ "$n" -ge 4 ] && break
    sleep 0.5
done
echo
echo "== leaf01 (FRR route reflector): show ip bgp"
ip netns exec $RR vtysh --vty_socket "$D" -c 'show ip bgp'
echo
echo "== leaf01: ip route (learned from kbgp)"
ip netns exec $RR ip route show proto bgp
echo
echo "== kbgp peers"
"$KBGP" --admin-socket "$D/kbgp.sock" peers
echo
echo "== kbgp log"
cat "$D/kbgp.log"
if [ "${KEEP:-0}" = 1 ]; then
    echo
    echo "left running: ip netns exec $RR vtysh --vty_socket $D; ip netns exec $NODE curl -s 127.0.0.1:9180/metrics"
    echo "ask kbgp: KBGP_ADMIN_SOCKET=$D/kbgp.sock $KBGP why <address>"
    echo "tear down: kill \$(cat $D/kbgp.pid $D/bgpd.pid $D/zebra.pid); ip netns del $RR; ip netns del $NODE"
fi
