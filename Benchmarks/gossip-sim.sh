#!/usr/bin/env bash
# Epidemic spreading, GossipSub, SWIM and Bitcoin relay in simulation: see Benchmarks/README.md.
# Usage: Benchmarks/gossip-sim.sh [NODES]   (default 10000; SWIM on 500 members, relay on 1000 nodes)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peerstack >/dev/null
bin="$(swift build -c release --show-bin-path)/peerstack"
"$bin" sim gossip --nodes "${1:-10000}" --swim-nodes 500 --swim-loss 0.01,0.05 --swim-crashes 3
for upload in 125 250 1000; do
    "$bin" sim chain --nodes 1000 --outbound 8 --block-kb 200 --upload-kbps "$upload"
done
