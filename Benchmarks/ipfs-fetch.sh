#!/usr/bin/env bash
# Fetching a file over Bitswap on loopback (issue 15): Kubo node A adds SIZE MiB; PeerStack
# (`peerstack ipfs get --peer A`, a new repository) and Kubo node B (a new repository,
# ConnectToPeer then Download) fetch it in the same run. Runs inside `unshare -n` (Kubo's
# defaults name public hosts). Prints both rates, PeerStack's peak RSS (by GNU time, Debian
# `time`) and the ratio (>1: faster).
#
#   Benchmarks/ipfs-fetch.sh [SIZE_MIB] [ROUNDS]      (defaults: 256, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peerstack >/dev/null
peerstack="$(swift build -c release --show-bin-path)/peerstack"
exec unshare -n bash -c 'ip link set lo up && exec python3 "$0" "$@"' "$PWD/Benchmarks/ipfs-fetch.py" "$peerstack" \
    "${1:-256}" "${2:-3}"
