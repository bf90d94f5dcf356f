#!/usr/bin/env bash
# DHT simulator benchmark: PeerStack's own mainline DHT state machines at 10k and 100k nodes in
# one process (Benchmarks/README.md has the figures). Goals: 100k nodes under 4 GiB, 10k lookups
# under 2 minutes of wall time, success >= 99% with 20% churn and 1% loss, hops near
# log2(N)/log2(k). Everything runs in virtual time inside one process: no traffic at all.
#   Benchmarks/dht-sim.sh [LOOKUPS]        (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
lookups="${1:-10000}"
swift build -c release --product peerstack >/dev/null
bin=.build/release/peerstack
printf '%-8s %-9s %-8s %-9s %-8s %-10s %-10s %-10s %-12s %-11s %-9s\n' nodes join success hops-p50 hops-p95 predicted rpcs-p50 lookups-s total-s memory-MiB ratio
for nodes in 10000 100000; do
    json=$("$bin" sim dht --nodes "$nodes" --lookups "$lookups" --churn 0.2 --loss 0.01 --seed 1 --json 2>/dev/null)
    /usr/bin/python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
ratio = r["medianHops"] / r["predictedHops"]
print(f'{r["nodes"]:<8} {r["join"]:<9} {100*r["successRate"]:<8.2f} {r["medianHops"]:<9} {r["p95Hops"]:<8} '
      f'{r["predictedHops"]:<10.2f} {r["medianRPCs"]:<10} {r["lookupWallSeconds"]:<10.1f} {r["wallSeconds"]:<12.1f} '
      f'{r["peakMemoryMiB"]:<11} {ratio:<9.2f}')
print(f'dht-sim {r["nodes"]}: measured hops {r["medianHops"]}, predicted {r["predictedHops"]:.2f}, ratio {ratio:.2f}; '
      f'success {100*r["successRate"]:.2f} % (goal >= 99), lookups {r["lookupWallSeconds"]:.1f} s (goal < 120), '
      f'memory {r["peakMemoryMiB"]} MiB (goal < 4096)')
PY
done
