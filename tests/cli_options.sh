#!/usr/bin/env bash
# Option checks of every command: an option the chosen method does not read, or two that exclude
# each other, is a usage error (exit 2, one line naming the option), and so is every numeric
# value that is not a plain decimal number in its range; the valid combinations still work.
# Every compress passes --method, so nothing here depends on the default method.
# usage: cli_options.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
source "$(dirname "$0")/tools/harness.sh"

d=$T/g
check "genpair" "$GEN" "$d" --seed 3
B=$d/base.safetensors; F=$d/finetuned.safetensors
check "compress for eval" "$DDCT" compress "$B" "$F" -o "$T/m.ddct" -q --method patch

# usage NAME OPTION CMD...: CMD exits 2, prints one line on stderr, and that line names OPTION
usage() {
  local what=$1 opt=$2; shift 2
  "$@" >"$T/uo" 2>"$T/ue"; local rc=$?
  if [ $rc -eq 2 ] && [ "$(grep -c '' "$T/ue")" -eq 1 ] && grep -q -e "$opt" "$T/ue"; then ok
  else bad "$what: exit $rc, stderr: $(cat "$T/ue")"; fi
}

# ---- options a method does not read (the table in cli/options.c)
while IFS='|' read -r opt args; do
  [ -z "$opt" ] && continue
  # shellcheck disable=SC2086
  usage "compress $args" "$opt" "$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q $args
done <<'EOF'
--bpp|--method patch --bpp 1
--bpp|--method bitdelta --bpp 1
--error|--method patch --error 0.5
--error|--method bitdelta --error 0.5
--error|--method svd --error 0.5
--rd-measure|--method patch --rd-measure rel
--rd-measure|--method svd --bpp 1 --rd-measure rel
--rd-measure|--method bitdelta --rd-measure mse
--error|--method rd --bpp 1 --error 0.5
--error|--method rd --error 0.5 --bpp 1
--rd-measure|--method rd --error 0.5 --rd-measure rel
--patch|--method rd --patch 8
--patch|--method svd --patch 8
--patch|--method bitdelta --patch 8
--bits|--method rd --bits 2:0.5,0:0.5
--bits|--method svd --bits 4:0.5,0:0.5
--transform|--method rd --transform dct
--transform|--method bitdelta --transform none
--wavelet|--method svd --wavelet haar
--dwt-levels|--method rd --dwt-levels 2
--dwt-keep|--method bitdelta --dwt-keep ll_only
--qtable|--method rd --qtable jpeg
--importance|--method svd --importance lowfreq
--lowfreq-k|--method rd --lowfreq-k 3
--wavelet|--method patch --wavelet cdf97
--dwt-levels|--method patch --transform dct --dwt-levels 2
--dwt-keep|--method patch --transform none --dwt-keep ll_lh_hl
--lowfreq-k|--method patch --lowfreq-k 3
--lowfreq-k|--method patch --importance l2 --lowfreq-k 3
EOF
# the method named in the message is the effective one
"$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q --method rd --patch 8 2>"$T/ue"
grep -q -- "--method rd" "$T/ue" && ok || bad "message names the method: $(cat "$T/ue")"
[ ! -e "$T/x.ddct" ] && ok || bad "a refused compress wrote its output"

# ---- valid combinations still work (and round-trip through verify)
i=0
while IFS= read -r args; do
  [ -z "$args" ] && continue
  i=$((i+1))
  # shellcheck disable=SC2086
  if "$DDCT" compress "$B" "$F" -o "$T/v$i.ddct" -q $args 2>"$T/ve" && "$DDCT" verify "$T/v$i.ddct" --base "$B" -q; then ok
  else bad "valid: $args: $(cat "$T/ve")"; fi
done <<'EOF'
--method patch --patch 8 --bits 4:0.34,2:0.33,0:0.33 --qtable jpeg
--method patch --transform dwt --wavelet cdf97 --dwt-levels 2 --dwt-keep ll_lh_hl
--method patch --importance lowfreq --lowfreq-k 3 --transform none
--method dct --patch 12 --zstd-level 3 --no-rescale
--method bitdelta --zstd-level 0 --exclude lm_head
--method svd --bpp 0.5
--method rd --bpp 0.5 --rd-measure rel
--method rd --error 0.6 --no-rescale
--method rd --bpp=0.75 -T 2
EOF

# ---- numbers: strict syntax, ranges, one parser for every command
while IFS='|' read -r opt vals; do
  [ -z "$opt" ] && continue
  for v in $vals; do
    [ "$v" = "EMPTY" ] && v=""
    m="--method patch"
    case $opt in --bpp) m="--method rd";; --error) m="--method rd";; esac
    # shellcheck disable=SC2086
    usage "compress $opt '$v'" "$opt" "$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q $m "$opt=$v"
  done
done <<'EOF'
--patch|EMPTY x 8x 1 129 -16 0x10 +8 8.0 1e1 99999999999999999999999
--lowfreq-k|EMPTY 0 129 3.5 k
--dwt-levels|EMPTY 0 7 1.
--zstd-level|EMPTY -1 23 1k
--threads|EMPTY -1 1025 100000 2x 99999999999999999999 nan
--bpp|EMPTY 0 -1 32.5 nan NaN inf -inf 1e999 0x1p0 1,5 .
--error|EMPTY 0 1 1.5 -0.1 nan inf 1e-999
EOF
# the message says what the option accepts
"$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q --method patch --patch 200 2>"$T/ue"
grep -q "2\.\.128" "$T/ue" && ok || bad "range in message: $(cat "$T/ue")"
"$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q --method rd --bpp nan 2>"$T/ue"
grep -q "(0, 32\]" "$T/ue" && ok || bad "range in message: $(cat "$T/ue")"
# an option's value with blanks around it is not a number either
usage "--patch ' 8'" "--patch" "$DDCT" compress "$B" "$F" -o "$T/x.ddct" -q --method patch --patch " 8"
# the edges are accepted
check "--patch 2" "$DDCT" compress "$B" "$F" -o "$T/e1.ddct" -q --method patch --patch 2
check "--patch 128 --threads 1024" "$DDCT" compress "$B" "$F" -o "$T/e2.ddct" -q --method patch --patch 128 --threads 1024
check "--bpp 32" "$DDCT" compress "$B" "$F" -o "$T/e3.ddct" -q --method svd --bpp 32
check "--bpp 1e-1" "$DDCT" compress "$B" "$F" -o "$T/e4.ddct" -q --method svd --bpp 1e-1

# -T in every command: the same bounds (eval read it with atoi, and -T 100000 crashed)
for v in 100000 -1 x ""; do
  usage "decompress -T '$v'" "--threads" "$DDCT" decompress "$B" "$T/m.ddct" -o "$T/r.safetensors" -q -T "$v"
  usage "eval -T '$v'" "--threads" "$DDCT" eval "$B" "$F" "$T/m.ddct" -T "$v"
  usage "sweep -T '$v'" "--threads" "$DDCT" sweep "$B" "$F" -q -T "$v"
done
usage "eval --threads=100000" "--threads" "$DDCT" eval "$B" "$F" "$T/m.ddct" --threads=100000
usage "eval -T without a value" "--threads" "$DDCT" eval "$B" "$F" "$T/m.ddct" -T
for v in 0 1 3 1024; do
  check "eval -T $v" "$DDCT" eval "$B" "$F" "$T/m.ddct" -T $v --json
  check "decompress -T $v" "$DDCT" decompress "$B" "$T/m.ddct" -o "$T/r$v.safetensors" -q -T $v
done
check "eval --threads=2" "$DDCT" eval "$B" "$F" "$T/m.ddct" --threads=2
check "-T 1 and 1024 rebuild the same" cmp "$T/r1.safetensors" "$T/r1024.safetensors"

# ---- sweep: the same table (a grid option no listed method reads), the same number parser
while IFS='|' read -r opt args; do
  [ -z "$opt" ] && continue
  # shellcheck disable=SC2086
  usage "sweep $args" "$opt" "$DDCT" sweep "$B" "$F" -q $args
done <<'EOF'
--bits|--methods bitdelta,svd --bits 2:0.5,0:0.5
--patch|--methods rd,svd --patch 8,16
--qtable|--methods bitdelta --qtable jpeg
--importance|--methods svd --importance lowfreq
--wavelet|--methods dct,none,svd --wavelet haar,cdf97
--dwt-keep|--methods dct --dwt-keep ll_only
--bpp|--methods dct,dwt,bitdelta --bpp 0.5
--patch|--methods dct --patch 8,x
--patch|--methods dct --patch 8,1000
--bpp|--methods svd --bpp 1,nan
--bpp|--methods svd --bpp 0.5,+1
EOF
check "sweep: valid mixed grid" "$DDCT" sweep "$B" "$F" -q -T 1 --methods dct,svd --patch 8 --bpp 0.5 --outdir "$T/sw"

echo "$pass passed, $fail failed"; [ $fail -eq 0 ]
