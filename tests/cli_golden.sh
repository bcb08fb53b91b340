#!/usr/bin/env bash
# Golden files: every container format and codec parameter version the decoder accepts, one small
# .ddct each, written first by tests/golden/make_golden.sh from seeded inputs (today's encoders,
# and ddct-make-old for what they no longer write): format 1.0 (no layout, unchunked raw records,
# patch parameters version 0), format 1.1 of a file and of a model directory, patch version 1,
# bitdelta, svd, rd versions 0 and 1 (the records of tests/rd_v0_golden.h, rd_v1_golden.h) and
# today's rd, raw and same records. Each is verified and rebuilt with 1 and 2 threads against the
# golden base; tests/golden/golden.txt says what the rebuild must be: "exact NAME SHA256" (a file,
# or a directory: the SHA-256 of its "name sha256" lines), "rdold NAME" (the old rd records'
# rebuild as their own decoders gave it, tests/tools/rdgolden.py), or "err NAME BOUND" for the
# codecs through BLAS (last bits may differ across CPUs): both rebuilds identical, and the
# relative error against the fine-tune at most BOUND. Record versions 2 of rd are pinned in
# test_rd (tests/rd_v2_golden.h).
# usage: cli_golden.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
G=$T/golden
if ! bash "$HERE/golden/make_golden.sh" "$DDCT" "$(dirname "$DDCT")/ddct-make-old" "$G" >"$T/mk" 2>&1; then
  echo "FAIL: make_golden.sh: $(cat "$T/mk")"; exit 1
fi
B=$G/base.safetensors
n=0
while read -r kind name sum; do
  n=$((n+1))
  f=$G/$name.ddct
  check "verify $name" "$DDCT" verify "$f" -q
  check "verify --base $name" "$DDCT" verify "$f" --base "$B" -q
  for th in 1 2; do
    out=$T/$name-T$th.safetensors
    [ "$name" = f11_dir ] && out=$T/$name-T$th/
    if ! "$DDCT" decompress "$B" "$f" -o "$out" -q -T $th 2>"$T/err"; then bad "decompress $name -T $th: $(cat "$T/err")"; continue; fi
    case $kind in
      exact)
        got=$(python3 "$HERE/tools/tree_sha.py" "$out")
        [ "$got" = "$sum" ] && ok || bad "$name -T $th: rebuilt SHA-256 $got, golden $sum" ;;
      rdold)
        check "$name -T $th: the old decoders' rebuild" python3 "$HERE/tools/rdgolden.py" "$B" "$out" \
          "$HERE/rd_v0_golden.h" "$HERE/rd_v1_golden.h" ;;
      err) # once, after the second rebuild
        [ $th = 2 ] || continue
        cmp -s "$T/$name-T1.safetensors" "$out" && ok || bad "$name: rebuilds differ for 1 and 2 threads"
        e=$("$DDCT" eval "$B" "$G/ft.safetensors" "$f" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["rel_error"])')
        python3 -c "import sys; sys.exit(0 if float('$e') <= $sum else 1)" && ok || bad "$name: relative error $e > $sum" ;;
      *) bad "golden.txt: unknown kind '$kind'" ;;
    esac
  done
done <"$HERE/golden/golden.txt"
[ $n -ge 7 ] && ok || bad "golden.txt lists $n files"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
