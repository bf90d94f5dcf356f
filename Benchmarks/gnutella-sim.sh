#!/usr/bin/env bash
# Gnutella search designs in simulation: see Benchmarks/README.md. Usage:
#   Benchmarks/gnutella-sim.sh [NODES...]   (default: 10000 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peerstack >/dev/null
bin="$(swift build -c release --show-bin-path)/peerstack"
for nodes in "${@:-10000 100000}"; do
    for n in $nodes; do
        queries=40
        [ "$n" -ge 50000 ] && queries=20
        "$bin" sim gnutella --nodes "$n" --queries "$queries"
    done
done
