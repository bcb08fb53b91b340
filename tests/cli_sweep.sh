#!/usr/bin/env bash
# `deltadct sweep` on a generated pair (and on the shared chargpt fixture when present): the grid,
# deduplication, the four outputs (table, CSV, Markdown, SVG), --rescale both, files kept or
# removed, atomic report writes, usage errors (exit 2) and a failing configuration (exit 1).
# usage: cli_sweep.sh DELTADCT GENPAIR SHARED_DIR
set -euo pipefail
DDCT=$1; GEN=$2; SHARED=${3:-}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
# expect WHAT CONDITION...: passes when the command succeeds
expect() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok; else bad "$what"; fi; }
lines() { grep -c '' "$1" || true; }
have_py=0; command -v python3 >/dev/null 2>&1 && have_py=1

"$GEN" "$T/g" --seed 3 >/dev/null 2>&1 || { echo "genpair failed" >&2; exit 1; }
B=$T/g/base.safetensors; F=$T/g/finetuned.safetensors

# ---- a small grid: dct/dwt/none x patch 8,16 (6) + bitdelta (1) + svd x bpp 0.5,1 (2) = 9 configurations
N=9
mkdir -p "$T/tmp"
rc=0
TMPDIR=$T/tmp "$DDCT" sweep "$B" "$F" --patch 8,16 --methods dct,dwt,none,bitdelta,svd --bpp 0.5,1 -T 2 \
    --csv "$T/s.csv" --md "$T/s.md" --svg "$T/s.svg" >"$T/table" 2>"$T/err" || rc=$?
if [ "$rc" -eq 0 ]; then ok; else bad "sweep exit $rc: $(cat "$T/err")"; fi
for f in s.csv s.md s.svg; do expect "$f exists and is not empty" test -s "$T/$f"; done
expect "no .tmp report left" test -z "$(ls "$T" | grep '\.tmp$' || true)"
expect "default work directory removed" test -z "$(ls -A "$T/tmp")"
expect "progress lines on stderr" grep -q "^\[$N/$N\] svd bpp=1 \.\.\. .* bpp, err " "$T/err"

# table: header, rule, one line per configuration
expect "table has $N rows" test "$(lines "$T/table")" -eq $((N + 2))
expect "table header" grep -q '^method  *config  *file bytes  *bits/param  *rel err  *worst rel err (tensor)  *cosine  *compress s  *decompress s$' "$T/table"
expect "table has bitdelta once" test "$(grep -c '^bitdelta ' "$T/table")" -eq 1

# CSV: header + one row per configuration, all ok, numbers parse
expect "CSV rows = configs + 1" test "$(lines "$T/s.csv")" -eq $((N + 1))
expect "CSV header" grep -q '^method,config,.*,file_bytes,.*,bits_per_lossy_param,rel_error,worst_rel_error,worst_tensor,cosine,compress_s,decompress_s,status$' "$T/s.csv"
if [ $have_py -eq 1 ]; then
  expect "CSV well-formed" python3 - "$T/s.csv" "$N" <<'EOF'
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert len(rows) == int(sys.argv[2]), len(rows)
meths = [r["method"] for r in rows]
assert sorted(set(meths)) == ["bitdelta", "dct", "dwt", "none", "svd"], meths
assert meths.count("bitdelta") == 1 and meths.count("svd") == 2 and meths.count("dct") == 2, meths
for r in rows:
    assert r["status"] == "ok", r
    b, e, w, c = (float(r[k]) for k in ("bits_per_lossy_param", "rel_error", "worst_rel_error", "cosine"))
    fb, lb, lp = int(r["file_bytes"]), int(r["lossy_bytes"]), int(r["lossy_params"])
    assert lp > 0 and 0 < lb < fb, r
    assert abs(b - 8 * lb / lp) < 1e-5, r
    assert 0.2 < b < 4 and 0 < e < 3 and e <= w + 1e-9 and -1 <= c <= 1, r
    assert r["worst_tensor"], r
    assert float(r["compress_s"]) >= 0 and float(r["decompress_s"]) >= 0, r
svd = sorted(float(r["bits_per_lossy_param"]) for r in rows if r["method"] == "svd")
assert svd[0] < svd[1] and svd[0] <= 0.5 * 1.05 and svd[1] <= 1 * 1.05, svd  # about the svd budget
EOF
else
  expect "CSV all ok" test "$(grep -c ',ok$' "$T/s.csv")" -eq $N
fi

# Markdown: header, separator line, one row per configuration
expect "MD separator line" grep -Eq '^\|( *:?-{3,}:? *\|)+$' "$T/s.md"
expect "MD header" grep -q '^| method | config |' "$T/s.md"
expect "MD rows = configs" test "$(grep -c '^| [a-z]' "$T/s.md")" -eq $((N + 1))

# SVG: an SVG document, one series (polyline) per method, a legend, axes labels, the title
expect "SVG starts with <?xml or <svg" bash -c "head -c 5 '$T/s.svg' | grep -Eq '^(<\?xml|<svg)'"
expect "SVG ends with </svg>" bash -c "tail -n 1 '$T/s.svg' | grep -q '</svg>'"
for m in dct dwt none bitdelta svd; do
  expect "SVG series for $m" bash -c "grep -A1 'data-method=\"$m\"' '$T/s.svg' | grep -Eq '<(polyline|path)'"
done
expect "SVG polylines" test "$(grep -c '<polyline' "$T/s.svg")" -ge 5
expect "SVG title names the fine-tune" grep -q 'finetuned.safetensors' "$T/s.svg"
expect "SVG axis label" grep -q 'bits per lossy parameter' "$T/s.svg"
if [ $have_py -eq 1 ]; then
  expect "SVG is well-formed XML" python3 -c "
import sys, xml.etree.ElementTree as E
r = E.parse(sys.argv[1]).getroot()
assert r.tag == '{http://www.w3.org/2000/svg}svg', r.tag
ns = '{http://www.w3.org/2000/svg}'
assert len(r.findall('.//' + ns + 'polyline')) == 5
assert len(r.findall('.//' + ns + 'text')) > 10
" "$T/s.svg"
fi

# ---- reports overwrite, -q is quiet, --outdir + --keep-files keeps one verifiable .ddct per configuration
echo stale >"$T/s.csv"
rc=0
"$DDCT" sweep "$B" "$F" -T 1 --methods dct,bitdelta,svd --patch 8,16 --outdir "$T/out" --keep-files -q \
    --csv "$T/s.csv" >"$T/table" 2>"$T/err" || rc=$?
expect "second sweep ok" test "$rc" -eq 0
expect "-q: nothing on stderr" test ! -s "$T/err"
expect "CSV overwritten (2 dct + bitdelta + svd)" test "$(lines "$T/s.csv")" -eq 5
expect "kept 4 files" test "$(ls "$T/out"/*.ddct | wc -l)" -eq 4
expect "no rebuilt file left" test -z "$(ls "$T/out" | grep -v '\.ddct$' || true)"
for f in "$T/out"/*.ddct; do expect "kept file verifies: $(basename "$f")" "$DDCT" verify "$f" --base "$B" -q; done
# without --keep-files the files are deleted (and a directory the sweep made is removed)
"$DDCT" sweep "$B" "$F" -T 1 --methods bitdelta --outdir "$T/out2" -q >/dev/null
expect "--outdir made by sweep removed" test ! -e "$T/out2"

# ---- dedup: bitdelta and svd do not depend on the patch axes: dct x 2 patch x 2 qtable + bitdelta + svd = 6
"$DDCT" sweep "$B" "$F" -T 1 --methods dct,bitdelta,svd --patch 8,16 --qtable flat,jpeg -q --csv "$T/d.csv" >/dev/null
expect "dedup: 6 rows" test "$(lines "$T/d.csv")" -eq 7
# ... and patch axes with no patch method listed are refused (they would change nothing)
rc=0; "$DDCT" sweep "$B" "$F" -T 1 --methods bitdelta,svd --patch 8,16 -q >/dev/null 2>&1 || rc=$?
expect "patch axes without a patch method: exit 2" test "$rc" -eq 2
# dwt-only axes apply to dwt only: dct x 2 bits + dwt x 2 bits x 2 wavelets x 3 keeps = 14
"$DDCT" sweep "$B" "$F" -T 1 --methods dct,dwt --bits "2:0.5,0:0.5;4:0.34,2:0.33,0:0.33" --wavelet haar,cdf97 \
    --dwt-keep all,ll_lh_hl,ll_only -q --csv "$T/w.csv" >/dev/null
expect "dwt axes: 14 rows" test "$(lines "$T/w.csv")" -eq 15

# ---- --rescale both: two rows per file (one for bitdelta, where rescale is the identity)
"$DDCT" sweep "$B" "$F" -T 1 --methods dct,bitdelta,svd --rescale both -q --csv "$T/r.csv" --svg "$T/r.svg" >/dev/null
expect "rescale both: 2+1+2 rows" test "$(lines "$T/r.csv")" -eq 6
expect "rescale both: on and off rows" test "$(grep -c ',off,' "$T/r.csv")" -eq 2
expect "rescale both: dashed series" grep -q 'data-rescale="off"' "$T/r.svg"
if [ $have_py -eq 1 ]; then
  expect "rescale both: same file, same bytes" python3 -c "
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
for m in ('dct', 'svd'):
    on, off = [r for r in rows if r['method'] == m]
    assert on['rescale'] == 'on' and off['rescale'] == 'off', (on, off)
    assert on['file_bytes'] == off['file_bytes'] and on['rel_error'] != off['rel_error'], (on, off)
" "$T/r.csv"
fi

# ---- usage errors exit 2
for args in "--patch 1" "--patch 8,,16" "--bits 3:0.5" "--methods dct,foo" "--rescale maybe" "--wavelet db4" \
            "--dwt-keep none" "--bpp 0" "--frobnicate" "-T x"; do
  rc=0; "$DDCT" sweep "$B" "$F" $args -q >/dev/null 2>&1 || rc=$?
  expect "usage error exit 2: $args" test "$rc" -eq 2
done
rc=0; "$DDCT" sweep "$B" >/dev/null 2>&1 || rc=$?
expect "one positional: exit 2" test "$rc" -eq 2
expect "help" "$DDCT" sweep --help

# ---- a failing configuration: exit 1, the others still run and are reported
rc=0; "$DDCT" sweep "$B" "$T/missing.safetensors" -q >/dev/null 2>&1 || rc=$?
expect "missing input: exit 1" test "$rc" -eq 1
mkdir -p "$T/blk/001-dct-p_16-bits_2_0.5_0_0.5.ddct"   # a directory where config 1's file goes
rc=0
"$DDCT" sweep "$B" "$F" -T 1 --methods dct,bitdelta --outdir "$T/blk" --csv "$T/x.csv" --svg "$T/x.svg" \
    >"$T/table" 2>"$T/err" || rc=$?
expect "failing config: exit 1" test "$rc" -eq 1
expect "failing config: message" grep -q 'configuration 1 (dct p=16 bits=2:0.5,0:0.5) failed' "$T/err"
expect "failing config: row marked" grep -q '^dct .* FAILED' "$T/table"
expect "failing config: others measured" grep -Eq '^bitdelta .* [0-9]+\.[0-9]{3} ' "$T/table"
expect "failing config: CSV status" test "$(grep -c ',error$' "$T/x.csv")" -eq 1
expect "failing config: SVG still written" grep -q 'data-method="bitdelta"' "$T/x.svg"

# ---- the shared chargpt fixture, when present
FX=$SHARED/fixtures/chargpt
if [ -n "$SHARED" ] && [ -f "$FX/base.safetensors" ] && [ -f "$FX/finetuned.safetensors" ]; then
  rc=0
  "$DDCT" sweep "$FX/base.safetensors" "$FX/finetuned.safetensors" -T 1 --methods dct,bitdelta,svd --patch 8,16 -q \
      --csv "$T/c.csv" --svg "$T/c.svg" --md "$T/c.md" >/dev/null 2>"$T/err" || rc=$?
  expect "chargpt sweep" test "$rc" -eq 0
  expect "chargpt CSV rows" test "$(lines "$T/c.csv")" -eq 5
  if [ $have_py -eq 1 ]; then
    expect "chargpt errors sane" python3 -c "
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
for r in rows:
    assert r['status'] == 'ok' and 0 < float(r['rel_error']) < 1.5 and 0.3 < float(r['bits_per_lossy_param']) < 3, r
" "$T/c.csv"
  fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
