#!/usr/bin/env bash
# Sharded checkpoints and model directories: round trips (directory -> .ddct -> directory or one
# file), base and fine-tune in different layouts, hostile indexes, atomic directory output, and
# peak resident memory of compress/decompress on a 0.5 B-parameter BF16 Llama-shaped pair.
# usage: cli_shards.sh DELTADCT GENPAIR SHARED_DIR
# Set DDCT_ASAN=1 (make test-asan does) to skip the memory check.
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/tools/harness.sh"
# a clean failure: exit 1, one "deltadct: ..." line matching PATTERN, no output or temporary left
reject() {  # WHAT PATTERN OUTPUT CMD...
  local what=$1 pat=$2 out=$3; shift 3
  "$@" >"$T/so" 2>"$T/se"; local rc=$?
  if [ $rc -eq 1 ] && grep -q "^deltadct: .*$pat" "$T/se" && [ ! -e "$out" ] \
     && [ -z "$(ls -A "$(dirname "$out")" | grep -F .tmp. || true)" ]; then ok
  else bad "$what: rc=$rc $(cat "$T/se")"; fi
}
cmp_st() { python3 "$HERE/tools/stcompare.py" "$@"; }
LOSSLESS="model.embed_tokens.weight model.layers.0.input_layernorm.weight position_ids classifier.extra.weight model.norm.weight lm_head.weight adapter.frozen.weight"

# same tensors / files as SRC, shard by shard; carried files byte-identical
same_dir() {  # SRC OUT
  local s=$1 o=$2
  [ "$(cd "$s" && ls)" = "$(cd "$o" && ls)" ] || { echo "file lists differ: $(ls "$s") / $(ls "$o")"; return 1; }
  for f in "$s"/*; do
    b=$(basename "$f")
    case "$b" in
      *.safetensors) cmp_st "$f" "$o/$b" $LOSSLESS >/dev/null || { echo "$b differs"; return 1; } ;;
      *) cmp "$f" "$o/$b" || return 1 ;;
    esac
  done
}

# one file holding every tensor of the directory's shards, in shard order
one_file_of_dir() {  # DIR FILE
  python3 - "$1" "$2" $LOSSLESS <<'EOF'
import json, os, struct, sys
d, f, lossless = sys.argv[1], sys.argv[2], set(sys.argv[3:])
def load(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None); return h, b[8 + n:]
names, data = [], {}
for s in sorted(x for x in os.listdir(d) if x.endswith(".safetensors")):
    h, b = load(os.path.join(d, s))
    for k, v in h.items():
        names.append(k); data[k] = (v, b[v["data_offsets"][0]:v["data_offsets"][1]])
h, b = load(f)
assert list(h) == names, (list(h)[:4], names[:4])
for k in names:
    v, raw = data[k]
    assert h[k]["dtype"] == v["dtype"] and h[k]["shape"] == v["shape"], k
    if k in lossless: assert b[h[k]["data_offsets"][0]:h[k]["data_offsets"][1]] == raw, k
EOF
}

# ---------------------------------------------------------------- round trips (small, F32 demo)
G=$T/g
check "genpair --shards 3" "$GEN" "$G" --shards 3 --seed 5
check "genpair single" "$GEN" "$T/one" --seed 5
[ -f "$G/base/model-00003-of-00003.safetensors" ] && [ -f "$G/finetuned/model.safetensors.index.json" ] \
  && [ -f "$G/finetuned/config.json" ] && [ -f "$G/finetuned/tokenizer.json" ] && ok || bad "genpair directory layout"
check "index weight_map matches the shards" python3 - "$G/finetuned" <<'EOF'
import json, os, struct, sys
d = sys.argv[1]; ix = json.load(open(os.path.join(d, "model.safetensors.index.json")))
seen = {}
for s in sorted(x for x in os.listdir(d) if x.endswith(".safetensors")):
    b = open(os.path.join(d, s), "rb").read(); h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
    seen.update({k: s for k in h if k != "__metadata__"})
assert seen == ix["weight_map"], "weight_map"
assert ix["metadata"]["total_size"] > 0
EOF

check "compress dir" "$DDCT" compress "$G/base" "$G/finetuned" -o "$T/d.ddct" -q
check "decompress -> dir/" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/out1/" -q
check "dir round trip: shards, index, files" same_dir "$G/finetuned" "$T/out1"
# default output of a directory .ddct is a directory (IN without .ddct)
check "decompress default output" "$DDCT" decompress "$G/base" "$T/d.ddct" -q
check "default output is the directory" same_dir "$G/finetuned" "$T/d"
check "verify --base dir" "$DDCT" verify "$T/d.ddct" --base "$G/base"
check "info layout" bash -c "'$DDCT' info '$T/d.ddct' --json | python3 -c '
import json,sys; j=json.load(sys.stdin); L=j[\"layout\"]
assert L[\"directory\"] and len(L[\"shards\"])==3 and L[\"index\"]==\"model.safetensors.index.json\", L
assert sorted(f[\"name\"] for f in L[\"files\"])==[\"config.json\",\"model.safetensors.index.json\",\"tokenizer.json\"], L
assert j[\"file_bytes\"]==sum(t[\"bytes\"] for t in j[\"tensors\"])+j[\"container_bytes\"]+L[\"files_record_bytes\"], j
'"
check "info text shows the layout" bash -c "'$DDCT' info '$T/d.ddct' | grep -q 'layout: *directory, 3 shards'"
# sharded -> one .safetensors file (every tensor, fine-tune order)
check "decompress -> one file" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/all.safetensors" -q
check "one file = the shards in order" one_file_of_dir "$G/finetuned" "$T/all.safetensors"
# the index file itself names the checkpoint
check "compress via the index path" "$DDCT" compress "$G/base/model.safetensors.index.json" "$G/finetuned/model.safetensors.index.json" -o "$T/ix.ddct" -q
check "index path gives the same file" cmp "$T/d.ddct" "$T/ix.ddct"
# a single-file base against a sharded fine-tune (and back): tensors matched by name across shards
check "single base, sharded fine-tune" "$DDCT" compress "$T/one/base.safetensors" "$G/finetuned" -o "$T/s1.ddct" -q
check "decompress with the sharded base" "$DDCT" decompress "$G/base" "$T/s1.ddct" -o "$T/out2/" -q
check "mixed layouts round trip" same_dir "$G/finetuned" "$T/out2"
check "sharded base, single fine-tune" "$DDCT" compress "$G/base" "$T/one/finetuned.safetensors" -o "$T/s2.ddct" -q
check "decompress single with sharded base" "$DDCT" decompress "$G/base" "$T/s2.ddct" -o "$T/s2.safetensors" -q
check "single round trip" cmp_st "$T/one/finetuned.safetensors" "$T/s2.safetensors" $LOSSLESS
# output identical for any thread count
"$DDCT" compress "$G/base" "$G/finetuned" -o "$T/t1.ddct" -q -T 1
"$DDCT" compress "$G/base" "$G/finetuned" -o "$T/t3.ddct" -q -T 3
check "threads 1 = 3 (directory)" cmp "$T/t1.ddct" "$T/t3.ddct"
# directory output is atomic: refused when it exists, replaced with -f only after success
reject "existing output dir without -f" "exists" "$T/nonexistent-marker" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/out1" -q
check "-f replaces the directory" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/out1" -q -f
check "replaced directory is complete" same_dir "$G/finetuned" "$T/out1"
mkdir -p "$T/keep/sub"
"$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/keep" -q -f 2>/dev/null && bad "replaced a directory with subdirectories" || ok
[ -d "$T/keep/sub" ] && ok || bad "directory with subdirectories touched"
"$DDCT" decompress "$T/one/finetuned.safetensors" "$T/d.ddct" -o "$T/wrong2/" -q 2>"$T/se"; rc=$?
[ $rc -eq 1 ] && grep -q "tensor '" "$T/se" && [ ! -e "$T/wrong2" ] && ok || bad "wrong base: rc=$rc $(cat "$T/se")"
[ -z "$(ls -A "$T" | grep -F .tmp. || true)" ] && ok || bad "temporary directories left in $T"

# ---------------------------------------------------------------- hostile indexes
hostile() {  # LABEL PATTERN PYTHON-EDIT (on dict ix, dir d)
  local h=$T/h; rm -rf "$h"; cp -r "$G/finetuned" "$h"
  python3 - "$h" "$3" <<'EOF'
import json, os, sys
d, code = sys.argv[1], sys.argv[2]
p = os.path.join(d, "model.safetensors.index.json"); ix = json.load(open(p)); wm = ix["weight_map"]
first = sorted(wm)[0]
exec(code)
json.dump(ix, open(p, "w"), indent=2)
EOF
  reject "hostile index: $1" "$2" "$T/hx.ddct" "$DDCT" compress "$G/base" "$h" -o "$T/hx.ddct" -q
}
hostile "../ path" "not a plain file name" 'wm[first] = "../" + wm[first]'
hostile "absolute path" "not a plain file name" 'wm[first] = "/etc/passwd"'
hostile "subdirectory path" "not a plain file name" 'wm[first] = "sub/" + wm[first]'
hostile "missing shard" "missing" 'wm[first] = "model-00009-of-00009.safetensors"'
hostile "tensor not in its shard" "does not hold it" 'wm["no.such.tensor"] = wm[first]'
hostile "tensor mapped to another shard" "maps it to" 'wm[first] = [s for s in sorted(set(wm.values())) if s != wm[first]][0]'
hostile "tensor not listed" "not listed" 'del wm[first]'
hostile "no weight_map" "weight_map" 'del ix["weight_map"]'
# a shard that is a symlink out of the directory; one inside is fine
h=$T/hl; rm -rf "$h"; cp -r "$G/finetuned" "$h"; mv "$h/model-00002-of-00003.safetensors" "$T/outside.safetensors"
ln -s "$T/outside.safetensors" "$h/model-00002-of-00003.safetensors"
reject "symlink escaping the directory" "outside the model directory" "$T/hl.ddct" "$DDCT" compress "$G/base" "$h" -o "$T/hl.ddct" -q
mv "$T/outside.safetensors" "$h/real-shard.bin"; rm "$h/model-00002-of-00003.safetensors"
ln -s real-shard.bin "$h/model-00002-of-00003.safetensors"
check "symlink inside the directory" "$DDCT" compress "$G/base" "$h" -o "$T/hl2.ddct" -q
# a tensor in two shards (no index: every *.safetensors is a shard)
h=$T/hd; rm -rf "$h"; mkdir "$h"; cp "$G/finetuned"/model-0000[12]-of-00003.safetensors "$h/"
cp "$G/finetuned/model-00001-of-00003.safetensors" "$h/model-extra.safetensors"
reject "duplicate tensor across shards" "in two shards" "$T/hd.ddct" "$DDCT" compress "$G/base" "$h" -o "$T/hd.ddct" -q

# ---------------------------------------------------------------- memory: 0.5 B BF16, 2 shards
if [ "${DDCT_ASAN:-0}" = 1 ]; then
  echo "skip: peak RSS check under sanitizers (DDCT_ASAN=1)"
else
  # Peak RSS bound (KiB) for compress and decompress of this pair: float buffers of the largest
  # lossy tensor (2048 x 8192) plus zstd windows and a few chunks; no copy of the 65 M-element
  # embeddings and no accumulation of mapped input pages. Measured ~150 MB on x86-64.
  BOUND=${DDCT_RSS_BOUND_KB:-786432}   # 768 MiB
  rss() {  # OUTFILE CMD... -> peak RSS in KiB into OUTFILE
    local f=$1; shift
    if [ -x /usr/bin/time ]; then /usr/bin/time -f %M -o "$f" "$@"
    else python3 - "$f" "$@" <<'EOF'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
open(sys.argv[1], "w").write("%d\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
EOF
    fi
  }
  L=$T/llama
  t0=$(date +%s)
  check "genpair 0.5B BF16 --shards 2" "$GEN" "$L" --kind llama --params 0.5B --dtype BF16 --shards 2
  t1=$(date +%s)
  check "compress 0.5B" rss "$T/rss_c" "$DDCT" compress "$L/base" "$L/finetuned" -o "$L/m.ddct" -q
  t2=$(date +%s)
  rm -rf "$L/base/"*.json  # the base's config/index are not needed: the directory of shards suffices
  check "decompress 0.5B" rss "$T/rss_d" "$DDCT" decompress "$L/base" "$L/m.ddct" -o "$L/out/" -q
  t3=$(date +%s)
  check "0.5B round trip" same_dir "$L/finetuned" "$L/out"
  c=$(tail -n1 "$T/rss_c" 2>/dev/null || echo 0); d=$(tail -n1 "$T/rss_d" 2>/dev/null || echo 0)
  echo "0.5B BF16: genpair $((t1-t0)) s, compress $((t2-t1)) s (peak RSS $((c/1024)) MiB), decompress $((t3-t2)) s (peak RSS $((d/1024)) MiB); bound $((BOUND/1024)) MiB"
  [ "$c" -gt 0 ] && [ "$c" -lt "$BOUND" ] && ok || bad "compress peak RSS ${c} KiB >= ${BOUND} KiB"
  [ "$d" -gt 0 ] && [ "$d" -lt "$BOUND" ] && ok || bad "decompress peak RSS ${d} KiB >= ${BOUND} KiB"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
