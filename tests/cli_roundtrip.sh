#!/usr/bin/env bash
# CLI round trips on generated models (F32, F16, BF16) and on the shared fixtures when present.
# usage: cli_roundtrip.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2; SHARED=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/tools/harness.sh"
cmp_st() { python3 "$HERE/tools/stcompare.py" "$@"; }

# lossless tensors of the demo model (default exclusions + non-float + 1-D + new + too small)
LOSSLESS="model.embed_tokens.weight model.layers.0.input_layernorm.weight position_ids classifier.extra.weight model.norm.weight lm_head.weight adapter.frozen.weight"

for dt in F32 F16 BF16; do
  d=$T/$dt
  check "genpair $dt" "$GEN" "$d" --dtype $dt --seed 7
  check "compress $dt" "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/m.ddct" -q
  check "decompress $dt" "$DDCT" decompress "$d/base.safetensors" "$d/m.ddct" -o "$d/r.safetensors" -q
  check "structure+lossless $dt" cmp_st "$d/finetuned.safetensors" "$d/r.safetensors" $LOSSLESS
  check "verify $dt" "$DDCT" verify "$d/m.ddct" --base "$d/base.safetensors"
  # info: total equals the file size
  size=$(stat -c %s "$d/m.ddct")
  check "info total = file size $dt" bash -c "'$DDCT' info '$d/m.ddct' --json | python3 -c 'import json,sys; j=json.load(sys.stdin); t=j[\"tensors\"]; assert j[\"file_bytes\"]==$size==sum(x[\"bytes\"] for x in t)+j[\"container_bytes\"], j; assert abs(j[\"bits_per_lossy_param\"]-8*sum(x[\"bytes\"] for x in t if x[\"lossy\"])/j[\"lossy_params\"])<1e-6'"
  # lossy error is sane (paper default at 1.1 bpp: relative error below 1.2)
  check "eval $dt" bash -c "'$DDCT' eval '$d/base.safetensors' '$d/finetuned.safetensors' '$d/m.ddct' --json | python3 -c 'import json,sys; j=json.load(sys.stdin); assert 0 < j[\"rel_error\"] < 1.2, j[\"rel_error\"]; assert 0.9 < j[\"bits_per_lossy_param\"] <= 1.0, j[\"bits_per_lossy_param\"]'"
done

# --zstd-level 0 (fast tensor setting) and 19: lossless tensors still byte-exact, same lossy part
for zl in 0 19; do
  d=$T/BF16
  check "compress --zstd-level $zl" "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/z$zl.ddct" -q --zstd-level $zl
  check "decompress --zstd-level $zl" "$DDCT" decompress "$d/base.safetensors" "$d/z$zl.ddct" -o "$d/z$zl.safetensors" -q
  check "lossless --zstd-level $zl" cmp_st "$d/finetuned.safetensors" "$d/z$zl.safetensors" $LOSSLESS
  check "same rebuild --zstd-level $zl" cmp -s "$d/r.safetensors" "$d/z$zl.safetensors"
done
"$DDCT" compress --zstd-level 23 a b -o c 2>/dev/null; [ $? -eq 2 ] && ok || bad "bad --zstd-level exit 2"

d=$T/F32
# conventions: refuse to overwrite, -f overwrites, output may not be an input
check_fails "refuse existing output" "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/m.ddct" -q
check "force overwrite" "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/m.ddct" -q -f
check_fails "output equals input" "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/finetuned.safetensors" -q -f
check "input untouched" cmp_st "$T/F16/finetuned.safetensors" "$T/F16/finetuned.safetensors" --all-identical
# wrong base: fails, names a tensor, leaves no output
"$DDCT" decompress "$T/F16/base.safetensors" "$d/m.ddct" -o "$d/wrong.safetensors" -q 2>"$T/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "tensor '" "$T/err" && [ ! -e "$d/wrong.safetensors" ] && [ -z "$(ls "$d" | grep -i tmp || true)" ]; then ok; else bad "wrong base rc=$rc: $(cat "$T/err")"; fi
# usage errors exit 2
"$DDCT" compress --bits 3:0.5 a b -o c 2>/dev/null; [ $? -eq 2 ] && ok || bad "bad --bits exit 2"
"$DDCT" compress --patch 1 a b 2>/dev/null; [ $? -eq 2 ] && ok || bad "bad --patch exit 2"
"$DDCT" frobnicate 2>/dev/null; [ $? -eq 2 ] && ok || bad "unknown command exit 2"
check "help" "$DDCT" compress --help
check "version" "$DDCT" --version
# determinism across thread counts
for n in 1 2 8; do "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/t$n.ddct" -q -T $n; done
check "threads 1=2" cmp "$d/t1.ddct" "$d/t2.ddct"
check "threads 1=8" cmp "$d/t1.ddct" "$d/t8.ddct"
"$DDCT" decompress "$d/base.safetensors" "$d/t1.ddct" -o "$d/r1.safetensors" -q -T 1
"$DDCT" decompress "$d/base.safetensors" "$d/t1.ddct" -o "$d/r8.safetensors" -q -T 8
check "decompress threads 1=8" cmp "$d/r1.safetensors" "$d/r8.safetensors"
# every option combination of the patch codec round-trips (odd p, DWT keep modes, qtable, importance, triple precision);
# its options go with --method patch (a method that ignores them refuses them)
i=0
for opts in "--patch 8" "--patch 7" "--patch 12 --bits 4:0.34,2:0.33,0:0.33" "--patch 32 --bits 8:0.1,3:0.3,2:0.6" \
            "--transform none" "--transform dwt" "--transform dwt --dwt-keep ll_lh_hl" "--transform dwt --dwt-keep ll_only" \
            "--transform dwt --wavelet cdf97 --dwt-levels 2" "--transform dwt --patch 9 --dwt-keep ll_lh_hl" \
            "--qtable jpeg" "--importance lowfreq --lowfreq-k 3" "--no-rescale" "--bits 2:0.34,1:0.33,0:0.33" \
            "--method bitdelta" "--method svd --bpp 1" "--patch 2" "--patch 128"; do
  i=$((i+1))
  case $opts in *--method*) ;; *) opts="--method patch $opts";; esac
  if "$DDCT" compress "$d/base.safetensors" "$d/finetuned.safetensors" -o "$d/o$i.ddct" -q $opts \
     && "$DDCT" decompress "$d/base.safetensors" "$d/o$i.ddct" -o "$d/o$i.safetensors" -q \
     && cmp_st "$d/finetuned.safetensors" "$d/o$i.safetensors" $LOSSLESS >/dev/null \
     && "$DDCT" eval "$d/base.safetensors" "$d/finetuned.safetensors" "$d/o$i.ddct" --json >"$T/ev.json" \
     && python3 -c "import json; j=json.load(open('$T/ev.json')); assert j['rel_error'] < 1.5, j['rel_error']"; then ok
  else bad "options: $opts"; fi
  rm -f "$d/o$i.safetensors"
done

# shared fixtures: every pair round-trips; --transform none loses to dct at the same --bits
if [ "${DDCT_ASAN:-0}" = 1 ]; then
  echo "skip: fixture round trips under the sanitizers (DDCT_ASAN=1; the plain build runs them)"
elif [ -n "$SHARED" ] && [ -d "$SHARED/fixtures" ]; then
  F=$SHARED/fixtures
  pairs="$F/chargpt/base.safetensors:$F/chargpt/finetuned.safetensors $F/gpt-prose/base.safetensors:$F/gpt-prose/finetuned.safetensors $F/gpt-prose/base.bf16.safetensors:$F/gpt-prose/finetuned_gentle.bf16.safetensors"
  for t in heat poisson stokes wave; do pairs="$pairs $F/pinn/${t}_base.safetensors:$F/pinn/${t}_finetuned.safetensors"; done
  k=0
  for pr in $pairs; do
    k=$((k+1)); b=${pr%%:*}; f=${pr##*:}
    [ -f "$b" ] || { echo "skip: $b absent"; continue; }
    if "$DDCT" compress "$b" "$f" -o "$T/s$k.ddct" -q --method patch && "$DDCT" decompress "$b" "$T/s$k.ddct" -o "$T/s$k.safetensors" -q \
       && python3 "$HERE/tools/stcompare.py" "$f" "$T/s$k.safetensors" >/dev/null; then ok; else bad "fixture round trip $f"; fi
    e_dct=$("$DDCT" eval "$b" "$f" "$T/s$k.ddct" --json --no-rescale | python3 -c 'import json,sys; print(json.load(sys.stdin)["rel_error"])')
    "$DDCT" compress "$b" "$f" -o "$T/n$k.ddct" -q --method patch --transform none
    e_none=$("$DDCT" eval "$b" "$f" "$T/n$k.ddct" --json --no-rescale | python3 -c 'import json,sys; print(json.load(sys.stdin)["rel_error"])')
    # The paper's ablation (dct beats none) holds on chargpt and every pinn pair; on the GPT pairs,
    # whose deltas are strongly low-rank, plain patches quantize better: measured and reported in
    # README.md ("Results"), checked here in the other direction so a change to either is noticed.
    case "$f" in
      */gpt-prose/*) if python3 -c "import sys; sys.exit(0 if $e_none < $e_dct else 1)"; then ok; else bad "$f: expected none ($e_none) < dct ($e_dct) on the low-rank GPT pair; update README"; fi ;;
      *) if python3 -c "import sys; sys.exit(0 if $e_dct < $e_none else 1)"; then ok; else bad "$f: dct ($e_dct) should beat none ($e_none)"; fi ;;
    esac
    echo "fixture $(basename "$(dirname "$f")")/$(basename "$f"): rel error dct $e_dct, none $e_none (no rescale)"
    rm -f "$T/s$k.safetensors"
  done
else
  echo "skip: shared fixtures not found at '$SHARED/fixtures'"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
