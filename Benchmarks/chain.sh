#!/usr/bin/env bash
# Blockchain speed: PeerStack's ECDSA (through libsecp256k1) against libsecp256k1's own rate in
# C over the same keys and messages; mining hash rate (double SHA-256 with a midstate, swift-
# crypto) against OpenSSL's in C; full validation of a regtest chain of BLOCKS blocks, each after
# the first 100 spending a signed P2WPKH output. One run, ratios printed (>1 = PeerStack faster).
#
#   Benchmarks/chain.sh [BLOCKS] [SECONDS]      (defaults: 10000, 4)
set -euo pipefail
cd "$(dirname "$0")/.."
blocks="${1:-10000}"
seconds="${2:-4}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wno-deprecated-declarations -o "$work/reference" Benchmarks/chain-c/reference.c -lsecp256k1 -lcrypto
swift build -c release --product chain-bench >/dev/null
bench="$(swift build -c release --show-bin-path)/chain-bench"

read -r _ c_sign c_verify c_bad < <(taskset -c 0 "$work/reference" 1000 "$seconds" | grep secp256k1)
read -r _ c_mhs _ < <(taskset -c 0 "$work/reference" 1000 "$seconds" | grep openssl)
output=$("$bench" 1000 "$seconds" "$blocks")
read -r _ p_sign p_verify p_bad < <(taskset -c 0 "$bench" 1000 "$seconds" 0 2>/dev/null | grep ecdsa || echo "x 0 0 0")
read -r _ _ p_mhs1 < <(echo "$output" | grep "peerstack-mining 1 ")
read -r _ threads p_mhs_all < <(echo "$output" | grep peerstack-mining | tail -1)
read -r _ n signed seconds_taken rate < <(echo "$output" | grep peerstack-validation)
[ "$c_bad" = 0 ] && [ "$p_bad" = 0 ] || { echo "a signature failed to verify"; exit 1; }

printf '%-32s %12s %12s %7s\n' measure peerstack reference ratio
ratio() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
printf '%-32s %12.0f %12.0f %7s\n' "ECDSA verify/s (1 core)" "$p_verify" "$c_verify" "$(ratio "$p_verify" "$c_verify")"
printf '%-32s %12.0f %12.0f %7s\n' "ECDSA sign/s (1 core)" "$p_sign" "$c_sign" "$(ratio "$p_sign" "$c_sign")"
printf '%-32s %12.3f %12.3f %7s\n' "mining MH/s (1 core)" "$p_mhs1" "$c_mhs" "$(ratio "$p_mhs1" "$c_mhs")"
printf '%-32s %12.3f %12s\n' "mining MH/s ($threads threads)" "$p_mhs_all" "-"
printf '%-32s %12.0f %12s   (%s blocks, %s signed transactions, %s s)\n' "validation blocks/s" "$rate" "-" "$n" "$signed" "$seconds_taken"
echo "chain ecdsa-verify: peerstack $p_verify, libsecp256k1 $c_verify, ratio $(ratio "$p_verify" "$c_verify")"
echo "chain mining: peerstack $p_mhs1 MH/s, openssl $c_mhs MH/s, ratio $(ratio "$p_mhs1" "$c_mhs")"
