#!/usr/bin/env bash
# Torrent creation speed: `peerstack torrent create` vs `mktorrent -t 2` vs libtorrent's
# create_torrent + set_piece_hashes, on the same file (default 2 GiB) held in the page cache,
# with the same piece length, in one run. Prints wall and CPU time and peak RSS per tool, the
# info-hash each produced (they must agree), and PeerStack's ratio to each (>1 = faster).
#
#   Benchmarks/create.sh [SIZE_MIB] [ROUNDS]      (defaults: 2048, 3; best round counts)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib="${1:-2048}"
rounds="${2:-3}"
piece=524288   # what libtorrent picks for 2 GiB

command -v mktorrent >/dev/null || { echo "mktorrent is not installed (apt-get install mktorrent)"; exit 1; }
/usr/bin/python3 -c 'import libtorrent' 2>/dev/null || { echo "python3-libtorrent is not installed"; exit 1; }
swift build -c release --product peerstack >/dev/null
peerstack="$(swift build -c release --show-bin-path)/peerstack"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "making a ${size_mib} MiB payload in $work"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/payload.bin"
cat "$work/payload.bin" >/dev/null   # into the page cache

cat >"$work/lt_create.py" <<'PY'
import sys, libtorrent as lt
path, out, piece = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = lt.file_storage()
lt.add_files(fs, path)
ct = lt.create_torrent(fs, piece, lt.create_torrent.v1_only)
lt.set_piece_hashes(ct, __import__("os").path.dirname(path))
open(out, "wb").write(lt.bencode(ct.generate()))
PY

# Runs a command, prints "wall cpu maxrss_kib" from the child's rusage.
measure() {
    /usr/bin/python3 - "$@" <<'PY'
import resource, subprocess, sys, time
start = time.monotonic()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.monotonic() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.3f} {usage.ru_utime + usage.ru_stime:.3f} {usage.ru_maxrss}")
PY
}

declare -A best_wall best_cpu best_rss
run() {
    local name="$1"; shift
    for _ in $(seq "$rounds"); do
        rm -f "$work/$name.torrent"   # mktorrent refuses to overwrite
        read -r wall cpu rss < <(measure "$@")
        if [ -z "${best_wall[$name]:-}" ] || awk "BEGIN{exit !($wall < ${best_wall[$name]})}"; then
            best_wall[$name]=$wall; best_cpu[$name]=$cpu; best_rss[$name]=$rss
        fi
    done
}

run peerstack "$peerstack" torrent create "$work/payload.bin" --piece-length "$piece" --no-date -o "$work/peerstack.torrent"
run mktorrent mktorrent -t 2 -l 19 -o "$work/mktorrent.torrent" "$work/payload.bin"
run libtorrent /usr/bin/python3 "$work/lt_create.py" "$work/payload.bin" "$work/libtorrent.torrent" "$piece"

hash_of() { "$peerstack" torrent info --json "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["infoHash"])'; }
echo
printf '%-10s %8s %8s %8s %9s  %s\n' tool "wall s" "cpu s" "GB/s" "rss MiB" info-hash
for tool in peerstack mktorrent libtorrent; do
    printf '%-10s %8s %8s %8.2f %9d  %s\n' "$tool" "${best_wall[$tool]}" "${best_cpu[$tool]}" \
        "$(awk "BEGIN{print $size_mib*1048576/${best_wall[$tool]}/1e9}")" "$((best_rss[$tool] / 1024))" \
        "$(hash_of "$work/$tool.torrent")"
done
echo
for peer in mktorrent libtorrent; do
    printf 'create: peerstack %ss, %s %ss, ratio %s\n' "${best_wall[peerstack]}" "$peer" "${best_wall[$peer]}" \
        "$(awk "BEGIN{printf \"%.2f\", ${best_wall[$peer]}/${best_wall[peerstack]}}")"
done
