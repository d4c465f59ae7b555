#!/usr/bin/env bash
# The control-plane VIP lab in network namespaces (no Docker needed): builds kbgp, makes the
# lab's certificates, brings control-plane-vip.clab.yml up, starts a stand-in API server on
# each control-plane node and the client, and prints the router's ECMP route, its BGP paths,
# which node answered the client, and `kbgp why` on cp1.
#   bash containerlab/control-plane-vip/run.sh          # up, and print
#   bash containerlab/control-plane-vip/run.sh down     # take it down
# Then play: make cp1's /readyz fail and watch its path go (within fall × interval + 1 s):
#   echo fail > /tmp/kbgp-lab/cp-vip/run/cp1.readyz       (ok, fail, "fail N", hang)
# Debian, as root; installs frr and openssl when missing. The acceptance test with the
# measurements is `cargo test --test control_plane_vip -- --nocapture`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/deps.sh
[ "$(id -u)" = 0 ] || { echo "run as root: the lab is made of network namespaces" >&2; exit 1; }
HERE=containerlab/control-plane-vip
LAB=$HERE/control-plane-vip.clab.yml
BIN=target/release
RUN=/tmp/kbgp-lab/cp-vip/run
VIP=10.100.0.100

if [ "${1:-up}" = down ]; then
    "$BIN/kbgp-lab" down "$LAB"
    echo "lab cp-vip is down"
    exit 0
fi

install_deps
cargo build --release --locked --quiet --bin kbgp --bin kbgp-lab
[ -f $HERE/pki/apiserver.crt ] || bash $HERE/pki.sh $HERE/pki
"$BIN/kbgp-lab" down "$LAB" >/dev/null 2>&1 || true
"$BIN/kbgp-lab" up "$LAB" --kbgp "$BIN/kbgp"
mkdir -p $RUN
for n in cp1 cp2 cp3; do
    echo ok >$RUN/$n.readyz
    ip netns exec clab-cp-vip-$n "$BIN/kbgp-lab" apiserver --cert $HERE/pki/apiserver.crt \
        --key $HERE/pki/apiserver.key --readyz $RUN/$n.readyz --name $n >$RUN/$n.apiserver.log 2>&1 &
done
rm -f $RUN/client.log
ip netns exec clab-cp-vip-client "$BIN/kbgp-lab" client --url https://$VIP:6443/version \
    --ca $HERE/pki/ca.crt --server-name $VIP --every-ms 50 --out $RUN/client.log >$RUN/client.stderr 2>&1 &
x() { "$BIN/kbgp-lab" exec "$LAB" "$@"; }

echo "waiting for the three API servers' paths (rise 2 × 1 s)..."
for _ in $(seq 60); do
    [ "$(x router -- ip route show $VIP | grep -c 'via 10.0.0.1[123]')" = 3 ] && break
    sleep 0.5
done
sleep 2

echo
echo "router:~# ip route show $VIP"
x router -- ip route show $VIP
echo
echo "router:~# vtysh -c 'show bgp ipv4 unicast $VIP/32'"
x router -- vtysh -c "show bgp ipv4 unicast $VIP/32"
echo
echo "client: the last 2 s of requests (a new TLS connection every 50 ms), by the node that answered:"
awk -v since="$(($(date +%s%3N) - 2000))" '$1 >= since { print $3, $4 }' $RUN/client.log | sort | uniq -c
echo
echo "cp1:~# kbgp why $VIP"
x cp1 -- kbgp why $VIP
cat <<EOT

The lab stays up. Look around:
  echo fail > $RUN/cp1.readyz                  # cp1's /readyz answers 500 (ok, fail, "fail N", hang)
  $BIN/kbgp-lab exec $LAB router -- ip route show $VIP
  tail -f $RUN/client.log                      # start ms, duration ms, ok NODE | fail WHY
  $BIN/kbgp-lab exec $LAB cp1 -- kbgp why $VIP
  $BIN/kbgp-lab exec $LAB cp1 -- curl -s 127.0.0.1:9180/metrics | grep kbgp_vip
Take it down:
  bash $HERE/run.sh down
EOT
