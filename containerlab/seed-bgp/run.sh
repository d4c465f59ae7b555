#!/usr/bin/env bash
# Seed 001's spine-leaf lab with kbgp on the nodes, in network namespaces (no Docker needed):
# builds kbgp, brings the lab up from seed-bgp.clab.yml, waits for BGP, and prints leaf01's and
# spine01's routes and the HTTP answers from both clients, as the seed does.
#   bash containerlab/seed-bgp/run.sh          # up, and print
#   bash containerlab/seed-bgp/run.sh down     # take it down
# Debian, as root; installs frr, busybox and curl when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/deps.sh
[ "$(id -u)" = 0 ] || { echo "run as root: the lab is made of network namespaces" >&2; exit 1; }
LAB=containerlab/seed-bgp/seed-bgp.clab.yml
BIN=target/release

if [ "${1:-up}" = down ]; then
    "$BIN/kbgp-lab" down "$LAB"
    echo "lab seed-bgp is down"
    exit 0
fi

install_deps
cargo build --release --locked --quiet --bin kbgp --bin kbgp-lab
"$BIN/kbgp-lab" down "$LAB" >/dev/null 2>&1 || true
"$BIN/kbgp-lab" up "$LAB" --kbgp "$BIN/kbgp"
x() { "$BIN/kbgp-lab" exec "$LAB" "$@"; }

echo "waiting for BGP to converge..."
for _ in $(seq 120); do
    if x leaf01 -- ip route show 20.0.0.100 | grep -q via && x leaf01 -- ip route show 10.1.2.0/24 | grep -q via \
        && x spine01 -- ip route show 20.0.0.100 | grep -q via; then
        break
    fi
    sleep 0.5
done

echo
echo "root@server:~# kbgp-lab exec leaf01 -- ip route"
x leaf01 -- ip route
echo
echo "root@server:~# kbgp-lab exec spine01 -- ip route"
x spine01 -- ip route
for c in client client2; do
    echo
    echo "$c:~# for i in \$(seq 1 20); do curl -s -o /dev/null -w \"%{http_code}\\n\" --connect-timeout 3 http://20.0.0.100; done | sort | uniq -c"
    x "$c" -- sh -c 'for i in $(seq 1 20); do curl -s -o /dev/null -w "%{http_code}\n" --connect-timeout 3 http://20.0.0.100; done | sort | uniq -c'
done
echo
echo "client:~# curl http://20.0.0.100"
x client -- curl -s http://20.0.0.100
echo
echo "rack0-node1:~# kbgp peers"
x rack0-node1 -- kbgp peers
echo
echo "rack0-node1:~# kbgp why 20.0.0.100"
x rack0-node1 -- kbgp why 20.0.0.100
cat <<EOT

The lab stays up. Look around:
  $BIN/kbgp-lab status $LAB
  $BIN/kbgp-lab exec $LAB leaf01 -- vtysh -c 'show ip bgp'
  $BIN/kbgp-lab exec $LAB rack0-node1 -- curl -s 127.0.0.1:9180/metrics
  $BIN/kbgp-lab exec $LAB rack0-node1 -- kbgp routes advertised
  $BIN/kbgp-lab exec $LAB rack1-node1 -- kbgp why 10.1.0.0/24
Take it down:
  bash containerlab/seed-bgp/run.sh down
EOT
