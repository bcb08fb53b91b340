#!/usr/bin/env bash
# Task-level evidence on the GPT fixture pairs: for each method at about 1 bit per lossy
# parameter, rebuild the fine-tune and measure its loss on held-out prose with
# ../shared/tools/gpt_eval.py; report the share of the fine-tune's loss gain that survives,
#   kept = (loss_base - loss_rebuilt) / (loss_base - loss_finetuned),
# and how far the rebuilt model's predictions are from the fine-tune's, KL(P_ft || P_rebuilt) per
# byte, with the share of the base's own KL to the fine-tune that the rebuild removes,
#   KL removed = 1 - KL(ft || rebuilt) / KL(ft || base)
# (the KL is the finer measure: "kept" can exceed 100 % when a rebuild happens to fit the text better).
# Needs Debian's python3-numpy, python3-torch, libopenblas0-pthread (./scripts/setup.sh --bench).
# usage: bench/task_eval.sh [SHARED_DIR] [MAX_BYTES] ['LABEL|COMPRESS OPTIONS' ...]
#   (writes a Markdown table to stdout; MAX_BYTES 0 = the whole held-out text; DDCT=binary and
#   EVAL_THREADS=N for gpt_eval.py and PAIRS="gpt-prose gpt-prose-gentle" (either) may be set; the configurations
#   default to the list below; rebuilt with the file's own rescale setting)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}; MAXB=${2:-65536}
DDCT=${DDCT:-build/deltadct}; EVAL="$SHARED/tools/gpt_eval.py"; F=$SHARED/fixtures/gpt-prose
[ -f "$EVAL" ] && [ -d "$F" ] || { echo "skip: GPT fixture or gpt_eval.py absent under $SHARED" >&2; exit 0; }
/usr/bin/python3 -c "import numpy, torch" 2>/dev/null || { echo "skip: python3-numpy/python3-torch missing (./scripts/setup.sh --bench)" >&2; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
[ "$MAXB" != 0 ] || MAXB=$(stat -c %s "$F/prose_eval.txt")
# evalw WEIGHTS REF -> "cross-entropy KL(P_REF || P_WEIGHTS)" in nats per byte
evalw() { /usr/bin/python3 "$EVAL" "$1" "$F/prose_eval.txt" --max-bytes "$MAXB" --kl "$2" --threads "${EVAL_THREADS:-2}" |
  sed -n -e 's/^cross-entropy: \([0-9.]*\) nats.*/\1/p' -e 's/^KL(P_ref || P_weights): \([0-9.e+-]*\) nats.*/\1/p' | tr '\n' ' '; }
configs_default=(
  "paper default (dct, 2:0.5,0:0.5)|--method patch"
  "paper default, no rescale|--method patch --no-rescale"
  "dct 2:0.45,0:0.55|--method patch --bits 2:0.45,0:0.55"
  "none (ablation)|--method patch --transform none"
  "dwt haar ll_lh_hl|--method patch --transform dwt --dwt-keep ll_lh_hl"
  "bitdelta|--method bitdelta"
  "svd @1.0|--method svd --bpp 1.0"
  "svd @0.5|--method svd --bpp 0.5"
  "rd @1.0 (default: auto rescale)|--method rd --bpp 1.0"
  "rd @0.5 (default: auto rescale)|--method rd --bpp 0.5"
  "rd @1.0, no rescale|--method rd --bpp 1.0 --no-rescale"
  "rd @0.5, no rescale|--method rd --bpp 0.5 --no-rescale"
)
if [ $# -gt 2 ]; then configs=("${@:3}"); else configs=("${configs_default[@]}"); fi
echo "| pair | method | bits / lossy param | loss (nats/byte) | share of the fine-tune's gain kept | KL(fine-tune ‖ rebuilt) (nats/byte) | share of the base's KL removed |"
echo "|---|---|---|---|---|---|---|"
for pair in "gpt-prose:base.safetensors:finetuned.safetensors" "gpt-prose-gentle:base.bf16.safetensors:finetuned_gentle.bf16.safetensors"; do
  IFS=: read -r name b f <<< "$pair"
  case " ${PAIRS:-gpt-prose gpt-prose-gentle} " in *" $name "*) ;; *) continue ;; esac
  read -r lb kb <<< "$(evalw "$F/$b" "$F/$f")"
  read -r lf _ <<< "$(evalw "$F/$f" "$F/$f")"
  echo "| $name | base | – | $lb | 0 % | $kb | 0 % |"
  echo "| $name | fine-tune | – | $lf | 100 % | 0 | 100 % |"
  for c in "${configs[@]}"; do
    label=${c%%|*}; opts=${c#*|}
    # shellcheck disable=SC2086
    $DDCT compress "$F/$b" "$F/$f" -o "$T/m.ddct" -q -f $opts
    $DDCT decompress "$F/$b" "$T/m.ddct" -o "$T/r.safetensors" -q -f
    bpp=$($DDCT info "$T/m.ddct" --json | python3 -c "import json,sys; print('%.3f' % json.load(sys.stdin)['bits_per_lossy_param'])")
    read -r lr kr <<< "$(evalw "$T/r.safetensors" "$F/$f")"
    kept=$(python3 -c "print('%.1f %%' % (100*($lb-$lr)/($lb-$lf)))")
    klk=$(python3 -c "print('%.2f %%' % (100*(1-$kr/$kb)))")
    echo "| $name | $label | $bpp | $lr | $kept | $kr | $klk |"
  done
done
