#!/usr/bin/env bash
# Tracker benchmark: see tracker.py. Usage: Benchmarks/tracker.sh [DURATION_SECONDS] [FIXED_RATE]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product peerstack >/dev/null
swift build -c release --product tracker-load >/dev/null
exec /usr/bin/python3 Benchmarks/tracker.py "$@"
