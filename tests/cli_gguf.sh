#!/usr/bin/env bash
# GGUF files written by tests/gguf_tool.py (an independent Python writer: F32, F16, BF16 and
# ggml-quantized Q8_0 tensors, metadata of every value type, alignments 32 and 64, a gap between
# tensors, versions 2 and 3, a base/fine-tune pair, the fuzz seeds' files: a tensor of every ggml
# type, nested arrays, a scalar, no tensors) rebuilt through deltadct's GGUF writer
# (ddct-ggufdump --rewrite) byte for byte; deltadct's reader's view of each rebuilt file
# (ddct-ggufdump) the same as the Python reader's; and, with npm, the same as @huggingface/gguf's
# (installed with npm into BUILD/npm-cache; skipped with a message without npm or the registry).
# Broken files: a clean error. Skips (exit 0) when /usr/bin/python3 lacks numpy.
# usage: cli_gguf.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
"$PY" -c "import numpy" 2>/dev/null || { echo "$PY with numpy not found (Debian: python3-numpy): skipped"; exit 0; }
source "$HERE/tools/harness.sh"
BUILD=$(cd "$(dirname "$DDCT")" && pwd)
DUMP=$BUILD/ddct-ggufdump
TOOL=$HERE/gguf_tool.py

check "sample (align 32, v3)" "$PY" "$TOOL" sample "$T/a.gguf" --seed 1
check "sample (align 64, v2, gap)" "$PY" "$TOOL" sample "$T/b.gguf" --seed 2 --align 64 --version 2 --gap
check "pair" "$PY" "$TOOL" pair "$T/pair" --seed 3
check "fuzz seeds" "$PY" "$TOOL" corpus "$T/seeds"
FILES="$T/a.gguf $T/b.gguf $T/pair/base.gguf $T/pair/finetuned.gguf"
for n in every-type nested scalar-and-empty empty kv-only small-align1 small-align256; do
  cp "$T/seeds/$n" "$T/$n.gguf"; FILES="$FILES $T/$n.gguf"
done
for f in $FILES; do
  n=$(basename "$f" .gguf)
  check "$n: rebuilt through the writer" "$DUMP" "$f" --rewrite "$T/$n.re.gguf"
  check "$n: rebuilt byte for byte" cmp "$f" "$T/$n.re.gguf"
  check "$n: C view of the rebuilt file" sh -c "'$DUMP' '$T/$n.re.gguf' > '$T/$n.c.json'"
  check "$n: C view = Python view" "$PY" "$TOOL" compare "$T/$n.re.gguf" --c "$T/$n.c.json"
done
# the comparison sees a difference (the pair's metadata and tensor values differ)
check_fails "base's view differs from the fine-tune's" "$PY" "$TOOL" compare "$T/pair/base.gguf" --c "$T/finetuned.c.json"
check_fails "base and fine-tune differ" cmp -s "$T/pair/base.gguf" "$T/pair/finetuned.gguf"

# broken files: exit 1 with a message naming the file, no output left behind
for f in "$T"/seeds/bad-*; do
  if "$DUMP" "$f" 2>"$T/err" >/dev/null; then bad "$(basename "$f") accepted"
  elif grep -q "$(basename "$f")" "$T/err"; then ok; else bad "$(basename "$f"): $(cat "$T/err")"; fi
done
head -c 1000 "$T/a.gguf" > "$T/cut.gguf"
if "$DUMP" "$T/cut.gguf" --rewrite "$T/cut.re.gguf" 2>"$T/err"; then bad "truncated file accepted"
elif grep -q "cut.gguf" "$T/err" && [ ! -e "$T/cut.re.gguf" ]; then ok; else bad "truncated: $(cat "$T/err")"; fi
# a non-zero byte in the header's padding is reported (a rebuild would write zeros there)
cp "$T/a.gguf" "$T/pad.gguf"
hend=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['header_end'])" "$T/a.c.json")
printf '\x01' | dd of="$T/pad.gguf" bs=1 seek="$hend" conv=notrunc status=none
if "$DUMP" "$T/pad.gguf" | grep -q '"gaps_zero":false'; then ok; else bad "non-zero padding not reported"; fi

# @huggingface/gguf
NPMDIR=$BUILD/npm-cache
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "npm or node not found (scripts/setup.sh installs npm): @huggingface/gguf comparison skipped"
elif [ ! -f "$NPMDIR/node_modules/@huggingface/gguf/package.json" ] &&
     ! timeout 300 npm install --prefix "$NPMDIR" --no-audit --no-fund --no-save @huggingface/gguf >"$T/npm.log" 2>&1; then
  echo "npm install @huggingface/gguf failed (no registry?): comparison skipped"; tail -n 5 "$T/npm.log"
else
  echo "@huggingface/gguf $(node -p "require('$NPMDIR/node_modules/@huggingface/gguf/package.json').version")"
  for f in $FILES; do
    n=$(basename "$f" .gguf)
    check "$n: @huggingface/gguf reads the rebuilt file" sh -c "node '$HERE/gguf_check.mjs' '$NPMDIR/node_modules' '$T/$n.re.gguf' > '$T/$n.npm.json'"
    check "$n: @huggingface/gguf view = Python view = C view" "$PY" "$TOOL" compare "$T/$n.re.gguf" --c "$T/$n.c.json" --npm "$T/$n.npm.json"
  done
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
