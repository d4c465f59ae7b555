#!/usr/bin/env bash
# Refreshes src/wire/fixtures/ from the real daemons: runs the interop `routes` scenario with
# tcpdump on kbgp's interface, then extracts each daemon's first OPEN and UPDATEs.
# As root, with frr, bird2, gobgpd, exabgp and tcpdump installed.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tcpdump >/dev/null || { apt-get update -qq && apt-get install -y -qq tcpdump; }
cap=$(mktemp -d)
KBGP_CAPTURE=$cap cargo test --test interop routes -- --test-threads=1 >/dev/null
python3 proto-tests/fixtures.py src/wire/fixtures "$cap"/*.pcap
rm -rf "$cap"
