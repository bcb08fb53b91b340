#!/usr/bin/env bash
# Golden files: every container format and codec parameter version the decoder accepts, one small
# .ddct each, committed in tests/golden/ (written once by tests/golden/make_golden.sh): format 1.0
# (no layout, unchunked raw records, patch parameters version 0), format 1.1 of a file and of a
# model directory, patch version 1, bitdelta, svd, rd versions 0, 1 and 2, raw and same records.
# Each is verified and rebuilt against tests/golden/base.safetensors; the result must be what
# tests/golden/golden.txt records: its SHA-256, or for svd and rd (BLAS: the last bits may differ
# across CPUs) expected/NAME.safetensors within a few units in the last place.
# usage: cli_golden.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
G=$HERE/golden
B=$G/base.safetensors
n=0
while read -r kind name sum; do
  n=$((n+1))
  f=$G/$name.ddct
  out=$T/$name.safetensors
  [ "$name" = f11_dir ] && out=$T/$name/
  check "verify $name" "$DDCT" verify "$f" -q
  check "verify --base $name" "$DDCT" verify "$f" --base "$B" -q
  for th in 1 2; do
    rm -rf "$out"
    if ! "$DDCT" decompress "$B" "$f" -o "$out" -q -T $th 2>"$T/err"; then bad "decompress $name -T $th: $(cat "$T/err")"; continue; fi
    if [ "$kind" = exact ]; then
      got=$(python3 "$HERE/tools/tree_sha.py" "$out")
      [ "$got" = "$sum" ] && ok || bad "$name -T $th: rebuilt SHA-256 $got, golden $sum"
    else
      check "$name -T $th: close to expected/$name.safetensors" python3 "$HERE/tools/stclose.py" "$out" "$G/expected/$name.safetensors"
    fi
  done
done <"$G/golden.txt"
[ $n -ge 7 ] && ok || bad "golden.txt lists $n files"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
