#!/usr/bin/env bash
# Download benchmark: see download.py. Usage: Benchmarks/download.sh [SIZE_MIB] [--no-transmission]
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 Benchmarks/download.py "$@"
