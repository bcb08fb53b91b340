#!/usr/bin/env bash
# PyTorch checkpoints (torch.save's ZIP format) in and out, with files made at test time by Debian's
# torch (tests/tools/ptgen.py): a .bin pair with tied weights, several dtypes and _metadata, the
# same weights as safetensors, every mix of the two as BASE and FINETUNED (the same records), the
# rebuilt .bin read by torch.load(weights_only=True) and equal to the rebuilt safetensors, tied
# weights still sharing their storage, --format both ways, a sharded directory with
# pytorch_model.bin.index.json, ZIP64 input, views of one storage; hostile files (pickles that
# would run os.system or eval or build an arbitrary class, legacy format, TorchScript, compressed
# entries, nested dicts, non-contiguous tensors, big-endian, truncated and overlapping views)
# refused with a message naming what, nothing run, nothing written.
# Skips (exit 0) when /usr/bin/python3 has no torch.
# usage: cli_pytorch.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
"$PY" -c "import torch, numpy" 2>/dev/null || { echo "$PY has no torch (Debian: python3-torch): skipped"; exit 0; }
source "$HERE/tools/harness.sh"
G="$PY $HERE/tools/ptgen.py"
# a clean failure: exit 1, one "deltadct: ..." line matching PATTERN, no output
reject() {  # WHAT PATTERN OUTPUT CMD...
  local what=$1 pat=$2 out=$3; shift 3
  "$@" >"$T/so" 2>"$T/se"; local rc=$?
  if [ $rc -eq 1 ] && grep -q "^deltadct: .*$pat" "$T/se" && [ ! -e "$out" ]; then ok
  else bad "$what: rc=$rc $(cat "$T/se")"; fi
}
cd "$T"
check "generate .bin and safetensors pairs" $G pair p
check "generate sharded directories" $G shards s
check "generate hostile files" $G hostile h

# ---- the same records from either format, any mix
for m in "bin bin" "safetensors safetensors" "bin safetensors" "safetensors bin"; do
  set -- $m
  check "compress $1 -> $2" "$DDCT" compress p/base.$1 p/ft.$2 -o "$1-$2.ddct" -q
  "$DDCT" info "$1-$2.ddct" --json | "$PY" -c "import json,sys; [print(t['name'], t['codec'], t['bytes'], t['payload_bytes']) for t in json.load(sys.stdin)['tensors'] if t['name'] != 'head.weight']" >"$1-$2.recs"
done
check "records from .bin = records from safetensors" cmp bin-bin.recs safetensors-safetensors.recs
check "records, .bin base + safetensors fine-tune" cmp bin-safetensors.recs safetensors-safetensors.recs
check "records, safetensors base + .bin fine-tune" cmp safetensors-bin.recs safetensors-safetensors.recs
check "the tied name is stored once" sh -c "! grep -q '^head.weight' bin-bin.recs && [ \$(wc -l < bin-bin.recs) = 11 ]"
check "info names the layout's file" sh -c "'$DDCT' info bin-bin.ddct | grep -q 'one file (ft.bin, pytorch)'"

# ---- rebuilt .bin: torch.load(weights_only=True), equal to the rebuilt safetensors, ties kept
check "decompress to .bin by default" "$DDCT" decompress p/base.bin bin-bin.ddct -q
check "default output name ft.bin (IN without .ddct)" test -f bin-bin.bin
check "decompress the safetensors .ddct" "$DDCT" decompress p/base.safetensors safetensors-safetensors.ddct -o st.safetensors -q
check "rebuilt .bin = rebuilt safetensors, tie shared, _metadata kept" $G same bin-bin.bin st.safetensors --tied head.weight
check "rebuilt .bin close to the fine-tune" $G close bin-bin.bin p/ft.bin
check "--format safetensors (tie written as a copy)" "$DDCT" decompress p/base.bin bin-bin.ddct -o b2.safetensors --format safetensors -q
check "... equal to the rebuilt safetensors" $G same b2.safetensors st.safetensors --tied head.weight
check "... and holds the tied name" sh -c "head -c 4000 b2.safetensors | grep -q head.weight"
check "--format pytorch from a safetensors .ddct" "$DDCT" decompress p/base.safetensors safetensors-safetensors.ddct -o st.bin --format pytorch -q
check "... loads and equals" $G same st.bin st.safetensors
check "a .bin base rebuilds a safetensors-made .ddct alike" "$DDCT" decompress p/base.bin safetensors-safetensors.ddct -o st2.safetensors -q
check "... byte for byte" cmp st.safetensors st2.safetensors
check "verify against a .bin base" "$DDCT" verify bin-bin.ddct --base p/base.bin
check "eval with .bin files" "$DDCT" eval p/base.bin p/ft.bin bin-bin.ddct
for t in 1 3; do
  check "T$t: same .ddct" "$DDCT" compress p/base.bin p/ft.bin -o t$t.ddct -T $t -q
done
check "output identical for any thread count" cmp t1.ddct t3.ddct
check "--direct-io on: the same .bin" sh -c "'$DDCT' decompress p/base.bin bin-bin.ddct -o direct.bin --direct-io on -q && cmp direct.bin bin-bin.bin"
check "python zipfile reads the rebuilt .bin" "$PY" -c "import zipfile,sys; sys.exit(zipfile.ZipFile('bin-bin.bin').testzip() is not None)"
check "--format onnx is a usage error" sh -c "'$DDCT' decompress p/base.bin bin-bin.ddct -o nothere.bin --format onnx 2>/dev/null; [ \$? = 2 ] && [ ! -e nothere.bin ]"
reject "a .bin base that is not the base" "base" nope.bin "$DDCT" decompress p/ft.bin bin-bin.ddct -o nope.bin

check "lossless .ddct of a .bin" "$DDCT" compress p/base.bin bin-bin.bin -o ll.ddct --exclude . -q
check "... rebuilds deltadct's .bin byte for byte" sh -c "'$DDCT' decompress p/base.bin ll.ddct -o ll.bin -q && cmp ll.bin bin-bin.bin"

# ---- sharded directories with pytorch_model.bin.index.json
check "compress sharded .bin directories" "$DDCT" compress s/base s/ft -o s.ddct -q
check "training_args.bin is carried, not read as weights" sh -c "'$DDCT' info s.ddct | grep -q training_args.bin"
check "decompress into a directory" "$DDCT" decompress s/base s.ddct -o rs/ -q
check "same files" sh -c "[ \"\$(ls s/ft)\" = \"\$(ls rs)\" ]"
for f in pytorch_model.bin.index.json config.json training_args.bin; do check "$f byte for byte" cmp s/ft/$f rs/$f; done
for k in 1 2; do
  f=pytorch_model-0000$k-of-00002.bin
  check "shard $k loads and is close" $G close rs/$f s/ft/$f
done
check "compress from the index file" "$DDCT" compress s/base/pytorch_model.bin.index.json s/ft/pytorch_model.bin.index.json -o s2.ddct -q
reject "--format on a directory refused" "directory is rebuilt in its shards' own formats" rs2 "$DDCT" decompress s/base s.ddct -o rs2/ --format safetensors
check "a directory into one .bin file" "$DDCT" decompress s/base s.ddct -o one.bin -q
check "... loads" $G close one.bin one.bin

# ---- ZIP64, views of one storage
check "ZIP64 input (force_zip64)" $G zip64 p/ft.bin ft64.bin
check "compress ZIP64" "$DDCT" compress p/base.bin ft64.bin -o z.ddct -q
check "decompress ZIP64's .ddct" "$DDCT" decompress p/base.bin z.ddct -o z.bin -q
check "same as from the plain file" $G same z.bin bin-bin.bin
check "disjoint views of one storage as the fine-tune" "$DDCT" compress h/overlap.bin h/views.bin -o v.ddct -q
check "... rebuilt" "$DDCT" decompress h/overlap.bin v.ddct -o v.bin -q
check "... equal" $G same v.bin h/views.bin
check "... still one storage" $G shared v.bin a b

# ---- hostile files: refused by name, nothing run, nothing written
reject "os.system pickle" "global 'posix.system' refused.*nothing was run" o1.ddct "$DDCT" compress h/good.bin h/system.bin -o o1.ddct
reject "os.system pickle as base" "global 'posix.system' refused" o1.ddct "$DDCT" compress h/system.bin h/good.bin -o o1.ddct
reject "eval pickle" "global '__builtin__.eval' refused" o2.ddct "$DDCT" compress h/good.bin h/eval.bin -o o2.ddct
reject "an arbitrary class" "global 'evilmod.Plain' refused" o3.ddct "$DDCT" compress h/good.bin h/class.bin -o o3.ddct
check "nothing ran" test ! -e EVIL_RAN
reject "legacy format" "legacy (pre-1.6)" o4.ddct "$DDCT" compress h/good.bin h/legacy.bin -o o4.ddct
reject "TorchScript" "TorchScript archive" o5.ddct "$DDCT" compress h/good.bin h/torchscript.pt -o o5.ddct
reject "compressed entries" "is compressed (method 8)" o6.ddct "$DDCT" compress h/good.bin h/deflated.bin -o o6.ddct
reject "nested dict" "key 'model' holds a dict" o7.ddct "$DDCT" compress h/good.bin h/nested.bin -o o7.ddct
reject "non-contiguous" "tensor 'w' is not contiguous" o8.ddct "$DDCT" compress h/good.bin h/noncontig.bin -o o8.ddct
reject "big-endian" "not a little-endian checkpoint" o9.ddct "$DDCT" compress h/good.bin h/bigendian.bin -o o9.ddct
reject "overlapping views as the fine-tune" "overlap in storage" o10.ddct "$DDCT" compress h/views.bin h/overlap.bin -o o10.ddct
check "overlapping views as a base are read" "$DDCT" compress h/overlap.bin h/overlap_ft.bin -o o11.ddct -q
check "... and rebuild against" "$DDCT" decompress h/overlap.bin o11.ddct -o o11.bin -q
check "... close" $G close o11.bin h/overlap_ft.bin
check "-o NAME.safetensors writes safetensors" "$DDCT" decompress p/base.bin bin-bin.ddct -o byname.safetensors -q
check "... equal to --format safetensors" cmp byname.safetensors b2.safetensors
size=$(stat -c %s p/ft.bin)
for cut in 0 10 100 $((size / 2)) $((size - 30)) $((size - 1)); do
  head -c $cut p/ft.bin >cut.bin
  reject "truncated at $cut of $size bytes" "cut.bin" oc.ddct "$DDCT" compress p/base.bin cut.bin -o oc.ddct
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
