#!/usr/bin/env bash
# Finite weights stay finite: F16, BF16 and F32 tensors whose values lie near their dtype's largest
# finite value (65504, 3.39e38, 3.40e38) are compressed (patch with DCT and DWT, and the default
# method rd), rebuilt, and must come back with no Inf or NaN; every tensor whose rebuild overflowed
# is named once in a "note: ... saturated" line. A base Inf stays Inf (kept losslessly).
# usage: cli_saturate.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1
source "$(dirname "$0")/tools/harness.sh"

cat >"$T/mk.py" <<'PY'
import json, math, random, struct, sys
def st(tensors):
    hdr, data, off = {}, b"", 0
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b); data += b
    h = json.dumps(hdr, separators=(",", ":")).encode(); h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data
def enc(dt, v):
    if dt == "F32": return struct.pack("<%df" % len(v), *v)
    if dt == "F16": return struct.pack("<%de" % len(v), *v)
    return b"".join(struct.pack("<f", x)[2:] for x in v)  # BF16 by truncation: stays finite
r = random.Random(1)
N = 64
tb, tf = [], []
for dt, big in (("F16", 65504.0), ("BF16", 3.38e38), ("F32", 3.4e38)):
    b = [big * (0.97 + 0.03 * r.random()) * (1 if r.random() < .5 else -1) for _ in range(N * N)]
    f = [max(-big, min(big, x + big * 0.03 * r.gauss(0, 1))) for x in b]
    name = "layers.0.%s.weight" % dt.lower()
    tb.append((name, dt, [N, N], enc(dt, b))); tf.append((name, dt, [N, N], enc(dt, f)))
# an Inf in the base: the tensor is not lossy-eligible, stored losslessly, Inf kept
b = [0.01 * r.gauss(0, 1) for _ in range(N * N)]; b[5] = math.inf
f = [x + 0.001 * r.gauss(0, 1) for x in b]; f[5] = math.inf
tb.append(("layers.0.inf.weight", "F32", [N, N], enc("F32", b))); tf.append(("layers.0.inf.weight", "F32", [N, N], enc("F32", f)))
open(sys.argv[1] + "/base.safetensors", "wb").write(st(tb)); open(sys.argv[1] + "/ft.safetensors", "wb").write(st(tf))
PY
cat >"$T/count.py" <<'PY'
import json, math, struct, sys
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n]); D = d[8 + n:]
bad = []
for k, v in h.items():
    if k == "__metadata__": continue
    b = D[v["data_offsets"][0]:v["data_offsets"][1]]
    if v["dtype"] == "F32": xs = struct.unpack("<%df" % (len(b) // 4), b)
    elif v["dtype"] == "F16": xs = struct.unpack("<%de" % (len(b) // 2), b)
    else: xs = [struct.unpack("<f", b"\0\0" + b[i:i + 2])[0] for i in range(0, len(b), 2)]
    nf = sum(1 for x in xs if not math.isfinite(x))
    want = 1 if k == "layers.0.inf.weight" else 0
    if nf != want: bad.append("%s: %d non-finite values (want %d)" % (k, nf, want))
if bad: print("\n".join(bad)); sys.exit(1)
PY
python3 "$T/mk.py" "$T" || { echo "generator failed"; exit 1; }

# notes NOTES_FILE MIN: every note names a tensor once; at least MIN tensors noted
notes() {
  local n; n=$(grep -c "note: tensor '.*': [0-9]* rebuilt values\? beyond the [A-Z0-9]* range saturated to" "$1")
  [ "$n" -ge "$2" ] && [ "$(grep -o "tensor '[^']*'" "$1" | sort | uniq -d | wc -l)" -eq 0 ] && ! grep -q "layers.0.inf.weight" "$1"
}

run() { # NAME MIN_NOTES COMPRESS_OPTIONS...
  local name=$1 min=$2; shift 2
  check "compress $name" "$DDCT" compress "$T/base.safetensors" "$T/ft.safetensors" -o "$T/$name.ddct" -q "$@"
  for th in 1 2; do
    "$DDCT" decompress "$T/base.safetensors" "$T/$name.ddct" -o "$T/$name.$th.safetensors" -T $th 2>"$T/notes.$th"
    [ $? -eq 0 ] && ok || bad "decompress $name -T $th: $(cat "$T/notes.$th")"
  done
  check "no Inf or NaN: $name" python3 "$T/count.py" "$T/$name.1.safetensors"
  check "same rebuild for 1 and 2 threads: $name" cmp "$T/$name.1.safetensors" "$T/$name.2.safetensors"
  check "same notes for 1 and 2 threads: $name" diff <(grep note "$T/notes.1") <(grep note "$T/notes.2")
  if notes "$T/notes.1" "$min"; then ok; else bad "notes $name (at least $min): $(cat "$T/notes.1")"; fi
  # quiet: no notes; eval reports them too
  "$DDCT" decompress "$T/base.safetensors" "$T/$name.ddct" -o "$T/$name.q.safetensors" -q 2>"$T/q"
  [ ! -s "$T/q" ] && ok || bad "-q printed: $(cat "$T/q")"
  "$DDCT" eval "$T/base.safetensors" "$T/ft.safetensors" "$T/$name.ddct" >/dev/null 2>"$T/ev"
  if notes "$T/ev" "$min"; then ok; else bad "eval notes $name: $(cat "$T/ev")"; fi
}

run patch 3 --method patch
run patch-dwt 3 --method patch --transform dwt
run rd 0 # rd stores a delta whose norm its float arithmetic cannot hold (near the F32 maximum) losslessly: nothing to saturate there
run bitdelta 3 --method bitdelta

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
