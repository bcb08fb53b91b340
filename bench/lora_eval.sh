#!/usr/bin/env bash
# LoRA adapters exported from the GPT fixture pairs (deltadct export-lora), measured on the task:
# for each rank rule and adapter size (bits per adapted weight, BF16 factors), the adapter is
# merged into the base with torch (tools/lora_apply.py: W + (alpha / r) B A, modules_to_save
# copied) and the merged model's loss on held-out prose measured with ../shared/tools/gpt_eval.py;
# Sizes are equal across rules: at each size X the uniform rule takes the largest rank that fits in
# X bits per adapted weight, and every other rule gets exactly the uniform adapter's size as its
# budget (ranks are whole, so the uniform adapter is often below X).
# reported: the share of the fine-tune's loss gain kept,
#   kept = (loss_base - loss_merged) / (loss_base - loss_finetuned),
# with the adapter's real size, its largest rank and the share of ||delta||^2 it captures.
# Every adapter carries the changed tensors a LoRA cannot express (embeddings, head, norms) with
# --modules-to-save, the same for every rule; the sizes count the LoRA factors only.
# Needs Debian's python3-numpy, python3-torch, libopenblas0-pthread (./scripts/setup.sh --bench).
# usage: bench/lora_eval.sh [SHARED_DIR] [MAX_BYTES]   (Markdown table on stdout; MAX_BYTES 0 = the
#   whole held-out text, default 65536; RULES="uniform energy delta-rel weight-rel", SIZES="0.25 0.5 1",
#   PAIRS="gpt-prose gpt-prose-gentle", DDCT=binary and EVAL_THREADS=N may be set)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${1:-../shared}; MAXB=${2:-65536}
RULES=${RULES:-uniform energy delta-rel weight-rel}; SIZES=${SIZES:-0.25 0.5 1}
DDCT=${DDCT:-build/deltadct}; EVAL="$SHARED/tools/gpt_eval.py"; F=$SHARED/fixtures/gpt-prose
[ -f "$EVAL" ] && [ -d "$F" ] || { echo "skip: GPT fixture or gpt_eval.py absent under $SHARED" >&2; exit 0; }
/usr/bin/python3 -c "import numpy, torch" 2>/dev/null || { echo "skip: python3-numpy/python3-torch missing (./scripts/setup.sh --bench)" >&2; exit 0; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
[ "$MAXB" != 0 ] || MAXB=$(stat -c %s "$F/prose_eval.txt")
evalw() { /usr/bin/python3 "$EVAL" "$1" "$F/prose_eval.txt" --max-bytes "$MAXB" --threads "${EVAL_THREADS:-2}" |
  sed -n 's/^cross-entropy: \([0-9.]*\) nats.*/\1/p'; }
echo "| pair | rule | bits / adapted weight | largest r | ‖Δ‖² captured | loss (nats/byte) | share of the fine-tune's gain kept |"
echo "|---|---|---|---|---|---|---|"
for pair in "gpt-prose:base.safetensors:finetuned.safetensors" "gpt-prose-gentle:base.bf16.safetensors:finetuned_gentle.bf16.safetensors"; do
  IFS=: read -r name b f <<< "$pair"
  case " ${PAIRS:-gpt-prose gpt-prose-gentle} " in *" $name "*) ;; *) continue ;; esac
  lb=$(evalw "$F/$b"); lf=$(evalw "$F/$f")
  echo "| $name | base | – | – | – | $lb | 0 % |"
  echo "| $name | fine-tune | – | – | – | $lf | 100 % |"
  for x in $SIZES; do
    # the uniform adapter's real size: every rule's budget
    "$DDCT" export-lora "$F/$b" "$F/$f" -o "$T/a" -f --bpp "$x" --rule uniform --json > "$T/j"
    budget=$(python3 -c "import json,sys; import math; print('%.9f' % (math.ceil(json.load(open(sys.argv[1]))['bits_per_adapted_weight'] * 1e9) / 1e9))" "$T/j")
    for rule in $RULES; do
      "$DDCT" export-lora "$F/$b" "$F/$f" -o "$T/a" -f --bpp "$budget" --rule "$rule" --modules-to-save --json > "$T/j"
      /usr/bin/python3 tools/lora_apply.py "$F/$b" "$T/a" "$T/m.safetensors"
      lr=$(evalw "$T/m.safetensors")
      read -r bpp r cap <<< "$(python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('%.3f %d %.1f' % (j['bits_per_adapted_weight'], j['r'], 100*j['captured_share']))" "$T/j")"
      kept=$(python3 -c "print('%.1f %%' % (100*($lb-$lr)/($lb-$lf)))")
      echo "| $name | $rule @ $x | $bpp | $r | $cap % | $lr | $kept |"
    done
  done
done
