#!/usr/bin/env bash
# Bounded work on hostile sizes: what an input costs in time and memory follows what its bytes can
# back, never a count or a size it merely declares, and no check is quadratic in a count.
#   1. a safetensors header of 400,000 zero-size tensors (24 MB): compress against itself in
#      bounded memory and time (the JSON tree of such a header took 1.9 GB at 1.6 M tensors);
#   2. an index mapping 80,000 tensors to 80,000 distinct shard names: refused (missing shards)
#      in bounded time (the shard-name list was scanned once per entry: 26 s);
#   3. a .ddct whose layout names 80,000 shards: read (verify, info) in bounded time (layout names
#      were checked for uniqueness pairwise: 28 s);
#   4. a format 1.0 .ddct of a few KB with one unchunked, byte-shuffled raw record whose zstd
#      frame (RLE blocks) declares 128 MiB / 1 GiB of zeros: decompress and verify in bounded
#      memory (the record was decoded into one tensor-sized buffer).
# Limits are generous (a loaded 2-core machine): each is several times what the run takes and
# below what the defect cost. Peak RSS from /usr/bin/time -f %M; skipped without /usr/bin/time
# and under sanitizers (DDCT_ASAN=1), which inflate memory.
# usage: cli_bounds.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
export PYTHONPATH="$HERE/tools${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=passive # no re-execution: /usr/bin/time measures the CLI itself
MEM=1
[ -x /usr/bin/time ] || MEM=0
[ "${DDCT_ASAN:-0}" = 1 ] && MEM=0

# bounded WHAT SECONDS MAX_MIB CMD...: CMD succeeds (or fails with exit 1 when WHAT starts with
# "refuse"), within SECONDS, with a peak RSS below MAX_MIB
bounded() {
  local what=$1 secs=$2 mib=$3; shift 3
  [ "${DDCT_ASAN:-0}" = 1 ] && secs=$((secs * 6)) # sanitized builds run several times slower
  local t0 t1 rc kb
  t0=$(date +%s.%N)
  if [ $MEM = 1 ]; then
    timeout "$secs" /usr/bin/time -f %M -o "$T/rss" "$@" >"$T/bo" 2>"$T/be"; rc=$?
  else
    timeout "$secs" "$@" >"$T/bo" 2>"$T/be"; rc=$?
  fi
  t1=$(date +%s.%N)
  local want=0
  case $what in refuse*) want=1 ;; esac
  if [ $rc -eq 124 ]; then bad "$what: over $secs s"; return; fi
  if [ $rc -ne $want ]; then bad "$what: exit $rc (want $want): $(head -c 300 "$T/be")"; return; fi
  kb=0; [ $MEM = 1 ] && kb=$(tail -1 "$T/rss")
  printf '%s: %.2f s, %d MiB\n' "$what" "$(awk "BEGIN{print $t1 - $t0}")" $((kb / 1024))
  if [ $MEM = 1 ] && [ "$kb" -gt $((mib * 1024)) ]; then bad "$what: peak RSS $((kb / 1024)) MiB > $mib MiB"; return; fi
  ok
}

cat >"$T/gen.py" <<'PY'
import json, os, struct, sys
import ddctfile
what, out = sys.argv[1], sys.argv[2]

def st_zero(path, n):
    parts = ['"t%07d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}' % i for i in range(n)]
    h = ("{" + ",".join(parts) + "}").encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f: f.write(struct.pack("<Q", len(h)) + h)

def container(path, header, records, minor=1):
    """records: [(name bytes, dtype, shape, record body without its checksum)]"""
    j = json.dumps(header, separators=(",", ":")).encode()
    b = bytearray(b"\x89DDCT\r\n\x1a" + struct.pack("<HHII", 1, minor, 0, len(j)) + j)
    b += struct.pack("<Q", ddctfile.xxh3(b))
    idx = bytearray(ddctfile.put_varint(len(records)))
    for name, dt, shape, body in records:
        off = len(b)
        b += body + struct.pack("<Q", ddctfile.xxh3(body))
        idx += ddctfile.put_varint(len(name)) + name + bytes([dt, len(shape)])
        for d in shape: idx += ddctfile.put_varint(d)
        idx += ddctfile.put_varint(off) + ddctfile.put_varint(len(b) - off)
    ioff = len(b)
    b += idx
    f = struct.pack("<QQQQ", ioff, len(idx), ddctfile.xxh3(idx), len(records))
    b += f + struct.pack("<Q", ddctfile.xxh3(f)) + b"DDCTEND\0"
    with open(path, "wb") as fh: fh.write(b)

def rle_frame(n):
    """A zstd frame of n zero bytes: RLE blocks of 128 KiB, 1 MiB window, content size n."""
    fr = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x50]) + struct.pack("<Q", n))
    left = n
    while left:
        m = min(left, 128 << 10)
        left -= m
        fr += struct.pack("<I", (m << 3) | (1 << 1) | (1 if left == 0 else 0))[:3] + b"\0"
    return bytes(fr)

def str_(b): return ddctfile.put_varint(len(b)) + b

if what == "st":
    st_zero(out, int(sys.argv[3]))
elif what == "shards":  # a model directory whose index names n distinct shards (none present)
    n = int(sys.argv[3])
    os.makedirs(out, exist_ok=True)
    wm = {"t%06d" % i: "model-%06d-of-%06d.safetensors" % (i + 1, n) for i in range(n)}
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": wm}, f)
elif what == "layout":  # a .ddct whose layout lists n empty shards
    n = int(sys.argv[3])
    shards = [{"name": "model-%06d-of-%06d.safetensors" % (i + 1, n), "metadata": None, "tensors": []} for i in range(n)]
    container(out, {"format": "ddct", "tool": "test", "options": "", "metadata": None, "base_only": [],
                    "layout": {"kind": "directory", "index": None, "shards": shards, "files": []}}, [])
elif what == "raw10":  # format 1.0, one unchunked byte-shuffled raw record of n zero bytes (F32)
    n = int(sys.argv[3])
    body = bytes([1, 0]) + str_(bytes([2])) + str_(b"") + str_(rle_frame(n))
    container(out, {"format": "ddct", "tool": "test", "options": "", "metadata": None, "base_only": []},
              [(b"zeros", 2, [n // 4], body)], minor=0)
PY

# 1. a header of 400,000 zero-size tensors (40,000 in sanitized builds: per-record work there is
#    tens of times slower; the bound on time per tensor is the same)
NZ=400000
[ "${DDCT_ASAN:-0}" = 1 ] && NZ=40000
python3 "$T/gen.py" st "$T/zero.safetensors" $NZ || bad "generate the header"
bounded "compress $NZ zero-size tensors" 60 400 "$DDCT" compress "$T/zero.safetensors" "$T/zero.safetensors" -o "$T/zero.ddct" -q -T 1
bounded "decompress $NZ zero-size tensors" 60 400 "$DDCT" decompress "$T/zero.safetensors" "$T/zero.ddct" -o "$T/zero-r.safetensors" -q -T 1
check "$NZ tensors rebuilt byte for byte" cmp "$T/zero.safetensors" "$T/zero-r.safetensors"
rm -f "$T/zero.safetensors" "$T/zero-r.safetensors" "$T/zero.ddct"

# 2. an index naming 80,000 shards
python3 "$T/gen.py" shards "$T/many" 80000 || bad "generate the index"
bounded "refuse an index of 80,000 missing shards" 10 300 "$DDCT" compress "$T/many" "$T/many" -o "$T/many.ddct" -q
grep -q "missing" "$T/be" && ok || bad "80,000 shards: $(head -c 300 "$T/be")"

# 3. a layout of 80,000 shards
python3 "$T/gen.py" layout "$T/layout.ddct" 80000 || bad "generate the layout"
bounded "verify a layout of 80,000 shards" 10 300 "$DDCT" verify "$T/layout.ddct" -q
bounded "info on a layout of 80,000 shards" 10 300 "$DDCT" info "$T/layout.ddct"

# 4. a few KB declaring 128 MiB and 1 GiB of zeros
mkdir -p "$T/b"
"$GEN" "$T/b" --seed 1 >/dev/null 2>&1 || bad "genpair"
python3 "$T/gen.py" raw10 "$T/z128.ddct" $((128 << 20)) || bad "generate the record"
python3 "$T/gen.py" raw10 "$T/z1g.ddct" $((1 << 30)) || bad "generate the record"
echo "format 1.0 raw records: $(stat -c %s "$T/z128.ddct") and $(stat -c %s "$T/z1g.ddct") bytes"
bounded "decompress 128 MiB of zeros from $(stat -c %s "$T/z128.ddct") bytes" 60 96 \
  "$DDCT" decompress "$T/b/base.safetensors" "$T/z128.ddct" -o "$T/z128.safetensors" -q -T 1
python3 - "$T/z128.safetensors" <<'PY' && ok || bad "128 MiB of zeros rebuilt"
import struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; f.seek(8 + n); z = 0; total = 0
    while True:
        b = f.read(1 << 24)
        if not b: break
        total += len(b); z += b.count(0)
assert total == z == 128 << 20, (total, z)
PY
rm -f "$T/z128.safetensors"
bounded "verify 1 GiB of zeros from $(stat -c %s "$T/z1g.ddct") bytes" 60 96 "$DDCT" verify "$T/z1g.ddct" -q -T 1

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
