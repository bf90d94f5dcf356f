#!/usr/bin/env bash
# Downloads over an emulated bad link: see faults.py. Usage: Benchmarks/faults.sh [SIZE_MIB] [--transport utp|tcp|both] [--jitter 0|30|both]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 Benchmarks/faults.py "$@"
