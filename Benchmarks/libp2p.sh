#!/usr/bin/env bash
# Throughput of one Noise+yamux stream on loopback (issue 14): `peerstack p2p send` into a
# `peerstack p2p listen --discard`, then the same through two go-libp2p daemons (p2pd, from PyPI's
# hivemind 1.1.12 wheel, which scripts/test puts in .build/interop/p2pd), and one core's Noise
# cipher rate (`peerstack p2p cipher-rate`). Runs inside `unshare -n` (p2pd's defaults name public
# hosts). Prints the rates and PeerStack's ratios (>1: faster). Best of ROUNDS counts.
#
#   Benchmarks/libp2p.sh [SIZE_MIB] [ROUNDS]      (defaults: 1024, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
p2pd="$PWD/.build/interop/p2pd"
[ -x "$p2pd" ] || { echo "no $p2pd: run scripts/test once (it fetches p2pd)"; exit 1; }
swift build -c release --product peerstack >/dev/null
peerstack="$(swift build -c release --show-bin-path)/peerstack"
exec unshare -n bash -c 'ip link set lo up && exec python3 "$0" "$@"' "$PWD/Benchmarks/libp2p.py" "$peerstack" \
    "$p2pd" "${1:-1024}" "${2:-3}"
