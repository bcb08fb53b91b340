#!/usr/bin/env bash
# make_corpus.sh — regenerates fuzz/corpus/<target>/ with deltadct's own code (no ctest needed).
#
#   fuzz/make_corpus.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/deltadct and
#                                           BUILD_DIR/fuzz/gen_corpus, i.e. `make` at the root)
#
# fuzz_safetensors  gen_corpus safetensors (every dtype incl. BF16/F16/I64, metadata, scalars,
#                   empty tensors, no tensors, 8 dims, some invalid headers) + the tiny pair
# fuzz_container    the tiny pair (gen_corpus pair) compressed by the CLI with several methods
#                   and options, plus hand-built containers (gen_corpus container)
# fuzz_codecs       every record of those .ddct files + encoder output for many options
# fuzz_bitreader    every width, aligned / unaligned, whole / truncated streams
# fuzz_params       strategies and NAME\0VALUE option strings
# fuzz_rd_roundtrip small deltas for the rd encoder round trip (gen_corpus rd)
# fuzz_rans_w       word-blob rANS streams for its decoders (gen_corpus rans)
# fuzz_pytorch      the tiny pair rebuilt as torch.save files (decompress --format pytorch), its
#                   data.pkl alone, and hand-made pickles (globals torch refuses, memo and stack abuse)
# fuzz_gguf         small GGUF files of every kind (every ggml type, every value type, nested
#                   arrays, alignments 1..256, versions 2 and 3) and a few broken ones, written by
#                   tests/gguf_tool.py (needs /usr/bin/python3 with numpy)
# Every file must stay below 64 KiB and the whole corpus below 2 MiB (checked at the end).
# Output is deterministic: re-running on the same build rewrites identical files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:-$HERE/../build}" && pwd)
DDCT=$B/deltadct
GEN=$B/fuzz/gen_corpus
for x in "$DDCT" "$GEN"; do
  [ -x "$x" ] || { echo "make_corpus.sh: $x not built (run 'make' at the repository root)" >&2; exit 1; }
done
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
C=$HERE/corpus
TARGETS="fuzz_safetensors fuzz_container fuzz_codecs fuzz_bitreader fuzz_params fuzz_rd_roundtrip fuzz_rans_w fuzz_pytorch
  fuzz_gguf"
for t in $TARGETS; do rm -rf "${C:?}/$t"; mkdir -p "$C/$t"; done

"$GEN" safetensors "$C/fuzz_safetensors"
mkdir -p "$T/pair"
"$GEN" pair "$T/pair"
cp "$T/pair/base.safetensors" "$C/fuzz_safetensors/tiny-base"
cp "$T/pair/finetuned.safetensors" "$C/fuzz_safetensors/tiny-finetuned"

# name|options (one .ddct per line; -T 1 only for speed, output is the same for any -T)
while IFS='|' read -r name opts; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086
  "$DDCT" compress "$T/pair/base.safetensors" "$T/pair/finetuned.safetensors" -o "$T/$name.ddct" -q -T 1 $opts
  "$DDCT" verify "$T/$name.ddct" --base "$T/pair/base.safetensors" -q
  cp "$T/$name.ddct" "$C/fuzz_container/ddct-$name"
done <<'EOF'
default|
dwt|--method patch --transform dwt
dwt-cdf97|--method patch --transform dwt --wavelet cdf97 --dwt-levels 2 --dwt-keep ll_lh_hl
dwt-llonly|--method patch --transform dwt --dwt-keep ll_only --patch 8
none|--method patch --transform none
bitdelta|--method bitdelta
svd|--method svd
svd-bpp4|--method svd --bpp 4
jpeg|--method patch --qtable jpeg
lowfreq|--method patch --importance lowfreq --lowfreq-k 3
p8-three|--method patch --patch 8 --bits 4:0.34,2:0.33,0:0.33
p7|--method patch --patch 7 --bits 8:0.1,3:0.3,2:0.6
norescale|--method patch --no-rescale --patch 4
lossless|--exclude .
rd|--method rd
rd-bpp3|--method rd --bpp 3
rd-error|--method rd --error 0.25
EOF
"$GEN" container "$C/fuzz_container"
"$GEN" codecs "$C/fuzz_codecs" "$T"/*.ddct
"$GEN" bitreader "$C/fuzz_bitreader"
"$GEN" params "$C/fuzz_params"
"$GEN" rd "$C/fuzz_rd_roundtrip"
"$GEN" rans "$C/fuzz_rans_w"
P=$C/fuzz_pytorch
"$DDCT" decompress "$T/pair/base.safetensors" "$T/lossless.ddct" -o "$P/tiny-finetuned.bin" --format pytorch -q -T 1
"$DDCT" compress "$T/pair/base.safetensors" "$P/tiny-finetuned.bin" -o "$T/pt.ddct" -q -T 1 --exclude .
"$DDCT" decompress "$T/pair/base.safetensors" "$T/pt.ddct" -o "$T/rebuilt.bin" -q -T 1
cmp "$P/tiny-finetuned.bin" "$T/rebuilt.bin" # the writer's output is read and written back byte for byte
head -c 3000 "$P/tiny-finetuned.bin" >"$P/cut-3000"
# the first entry is archive/data.pkl, its data at byte 64 (the writer aligns to 64)
sz=$(od -An -tu4 -j18 -N4 "$P/tiny-finetuned.bin" | tr -d ' ')
dd if="$P/tiny-finetuned.bin" of="$P/data.pkl" bs=1 skip=64 count="$sz" status=none
printf '\x80\x02csubprocess\nPopen\n.' >"$P/pkl-subprocess"
printf '\x80\x02cposix\nsystem\nX\x02\x00\x00\x00ls\x85R.' >"$P/pkl-system"
printf '\x80\x02h\x05.' >"$P/pkl-memo-unset"
printf '\x80\x02}(X\x01\x00\x00\x00a]u.' >"$P/pkl-list-value"
printf '\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94.' >"$P/pkl-proto4-frame"
/usr/bin/python3 "$HERE/../tests/gguf_tool.py" corpus "$C/fuzz_gguf"

big=$(find "$C" -type f -size +64k)
[ -z "$big" ] || { echo "make_corpus.sh: files of 64 KiB or more: $big" >&2; exit 1; }
total=$(find "$C" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
[ "$total" -lt $((2 * 1024 * 1024)) ] || { echo "make_corpus.sh: corpus is $total bytes (limit 2 MiB)" >&2; exit 1; }
for t in $TARGETS; do echo "$t: $(find "$C/$t" -type f | wc -l) files"; done
echo "total: $total bytes"
