#!/usr/bin/env bash
# The benchmark of issue 10 in one command, as root on Debian: installs the reference daemons
# when missing, builds kbgp in release, runs the codec bench (criterion) and the announce bench
# (kbgp, FRR, BIRD, GoBGP in network namespaces), and prints their markdown tables.
#
#   bash benches/run.sh                                  # everything (about 15 minutes on 2 cores)
#   bash benches/run.sh --skip-codec --only sink,bird --sizes 100000 --senders frr,kbgp
#
# Every argument but --skip-codec goes to the announce bench (`--help` lists them). Raw results:
# target/bench/announce.json, target/bench/codec.log; the tables also in target/bench/*.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "benches/run.sh: run as root (the announce bench creates network namespaces)" >&2
    exit 2
fi

codec=1
args=()
for a in "$@"; do
    if [ "$a" = --skip-codec ]; then codec=0; else args+=("$a"); fi
done

# shellcheck source=../.ci/deps.sh
. .ci/deps.sh
need=()
[ -x /usr/lib/frr/bgpd ] || need+=(frr)
command -v bird >/dev/null 2>&1 || need+=(bird2)
command -v gobgpd >/dev/null 2>&1 || need+=(gobgpd)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt_install "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust (https://rustup.rs) first" >&2; exit 1; }

cargo build --release --bins
cargo bench --no-run
mkdir -p target/bench

if [ $codec = 1 ]; then
    echo "codec bench (criterion; full output in target/bench/codec.log)"
    cargo bench --bench codec > target/bench/codec.log 2>&1 || { tail -30 target/bench/codec.log; exit 1; }
    grep -E '^(\||target)' target/bench/codec.log | tee target/bench/codec.md
    echo
fi

cargo bench --bench announce -- "${args[@]}"
