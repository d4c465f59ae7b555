#!/usr/bin/env bash
# Runs the interop tests and prints the daemon x scenario matrix as markdown (docs/interop.md).
# As root, with the daemons installed (bash .ci/test installs them).
set -uo pipefail
cd "$(dirname "$0")/.."
out=$(cargo test --test interop -- --test-threads=4 2>&1)
versions() {
    echo "| daemon | version |"
    echo "|---|---|"
    echo "| FRR | $(dpkg-query -W -f '${Version}' frr 2>/dev/null) |"
    echo "| BIRD | $(dpkg-query -W -f '${Version}' bird2 2>/dev/null) |"
    echo "| GoBGP | $(dpkg-query -W -f '${Version}' gobgpd 2>/dev/null) |"
    echo "| ExaBGP | $(dpkg-query -W -f '${Version}' exabgp 2>/dev/null) |"
}
result() { # daemon scenario
    local line
    line=$(grep -E "^test ($1::$2|$1_$2|$2::$1) \.\.\. " <<<"$out" | head -1)
    case "$line" in
        *" ok") echo "pass" ;;
        *FAILED) echo "**FAIL**" ;;
        *) echo "n/a" ;;
    esac
}
versions
echo
echo "| scenario | FRR | BIRD | GoBGP | ExaBGP |"
echo "|---|---|---|---|---|"
for s in routes four_octet_ebgp wrong_peer_asn hold_timer shutdown reconfigure max_prefix md5 gtsm passive route_refresh; do
    printf "| %s |" "$s"
    for d in frr bird gobgp exabgp; do printf " %s |" "$(result $d $s)"; done
    echo
done
echo
grep -E "^test result:" <<<"$out"
