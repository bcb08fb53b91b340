#!/usr/bin/env bash
# Hostile inputs, faults and integrity through the CLI ("nothing lost, nobody in").
# usage: cli_hostile.sh DELTADCT GENPAIR SHARED_DIR
#
# Every rejected input must give exit status 1 (never a signal, never >= 128), exactly one line
# on stderr naming the offending file, no output file and no temporary file left behind.
#   1. safetensors reader (via compress): truncation at every byte of a small file, header
#      length past the end / absurd, invalid JSON, duplicate names, unknown dtypes, negative /
#      overflowing / non-integer shapes, data_offsets out of bounds / overlapping / with gaps,
#      shape disagreeing with the byte count, bad __metadata__ (as fine-tune and as base);
#   2. .ddct: truncation at every byte (verify) and at spread points (decompress); every single
#      bit flipped (verify) and >= 500 spread bits (decompress); format version patched; wrong
#      base (fails naming the tensor); a .ddct made from inputs not named *.safetensors reads back;
#   3. NaN / Inf in a lossy-eligible tensor: compresses with a note naming the tensor, rebuilds
#      bit-identically;
#   4. faults: disk full (64 KiB tmpfs, skipped when mount is not permitted), file size limit
#      (ulimit -f), existing output without -f, output equal to an input (even with -f, also
#      through a symlink and a hard link);
#   5. compress output byte-identical for 1, 2 and 8 threads with several methods;
#   6. model directories: a sharded fine-tune round-trips file for file; hostile indexes (invalid
#      JSON, shard names with "..", "/", a leading dot, missing shards, tensors unlisted / listed
#      twice / in the wrong shard, wrong types) and symlinks leaving the directory are refused.
set -uo pipefail
DDCT=$1; GEN=$2; SHARED=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
MNT=""
cleanup() { [ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL: $*" >&2; }
NPROC=$(nproc 2>/dev/null || echo 2)
O=$T/out            # output directory: must be empty after every rejected command
mkdir -p "$O"
empty_dir() { [ -z "$(ls -A "$1")" ]; }

# expect_reject WHAT NAME_IN_MESSAGE CMD...: exit 1, one stderr line naming NAME, $O left empty.
expect_reject() {
  local what=$1 name=$2; shift 2
  "$@" >"$T/so" 2>"$T/se"; local rc=$?
  local lines; lines=$(wc -l <"$T/se")
  if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF -- "$name" "$T/se" && empty_dir "$O"; then ok
  else bad "$what: exit $rc, $lines stderr line(s), output dir: [$(ls -A "$O" | tr '\n' ' ')]: $(head -c 400 "$T/se")"; fi
  rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
}

# ---------------------------------------------------------------- python helpers (stdlib only)
cat >"$T/mk.py" <<'PY'
import json, math, os, random, struct, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

def f32(v): return struct.pack("<%df" % len(v), *v)
def f16(v): return b"".join(struct.pack("<e", x) for x in v)
def bf16(v): return b"".join(struct.pack("<f", x)[2:] for x in v)
def i64(v): return struct.pack("<%dq" % len(v), *v)

def st_bytes(tensors, meta=None):
    """tensors: [(name, dtype, shape, bytes)] -> a valid safetensors file."""
    hdr, data, off = {}, b"", 0
    if meta is not None: hdr["__metadata__"] = meta
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b); data += b
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data

def raw(header, data=b"", hlen=None):
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data

def write(path, b):
    with open(path, "wb") as f: f.write(b)

def model(seed, ft_seed=None, nan=False):
    """A tiny model: lossy F32/BF16/F16 matrices, a norm, an I64 buffer."""
    r = random.Random(seed)
    base = {"layers.0.q_proj.weight": [r.gauss(0, 0.02) for _ in range(32 * 32)],
            "layers.0.up_proj.weight": [r.gauss(0, 0.02) for _ in range(16 * 16)],
            "layers.0.down_proj.weight": [r.gauss(0, 0.02) for _ in range(16 * 16)],
            "model.norm.weight": [1 + r.gauss(0, 0.05) for _ in range(16)]}
    if ft_seed is not None:
        q = random.Random(ft_seed)
        base = {k: [x + q.gauss(0, 0.003) for x in v] for k, v in base.items()}
    if nan:
        v = base["layers.0.q_proj.weight"]
        v[3], v[5], v[7] = float("nan"), float("inf"), float("-inf")
    return st_bytes([("layers.0.q_proj.weight", "F32", [32, 32], f32(base["layers.0.q_proj.weight"])),
                     ("layers.0.up_proj.weight", "BF16", [16, 16], bf16(base["layers.0.up_proj.weight"])),
                     ("layers.0.down_proj.weight", "F16", [16, 16], f16(base["layers.0.down_proj.weight"])),
                     ("model.norm.weight", "F32", [16], f32(base["model.norm.weight"])),
                     ("position_ids", "I64", [1, 8], i64(list(range(8))))], {"format": "pt"})

def hostile(d):
    """Invalid safetensors files, one per case; names say what is wrong."""
    T = lambda dt, shape, off: {"dtype": dt, "shape": shape, "data_offsets": off}
    J = lambda o: json.dumps(o, separators=(",", ":"))
    small = J({"a": T("F32", [2], [0, 8])})
    cases = {
        "empty-file": b"",
        "seven-bytes": b"\x08\0\0\0\0\0\0",
        "hlen-past-end": raw(small, bytes(8), hlen=len(small) + 9),
        "hlen-file-size": raw(small, bytes(8), hlen=8 + len(small) + 8),
        "hlen-2p63": raw(small, bytes(8), hlen=1 << 63),
        "hlen-max": raw(small, bytes(8), hlen=(1 << 64) - 1),
        "hlen-zero": raw(b"", bytes(8)),
        "json-truncated": raw(small[:-1], bytes(8)),
        "json-garbage": raw("\xff\xfe{not json", bytes(8)),
        "json-array": raw("[1,2,3]", bytes(8)),
        "json-nul": raw(small[:5] + "\0" + small[5:], bytes(8)),
        "json-trailing": raw(small + "}", bytes(8)),
        "dup-names": raw('{"a":%s,"a":%s}' % (J(T("F32", [1], [0, 4])), J(T("F32", [1], [4, 8]))), bytes(8)),
        "dtype-unknown": raw(J({"a": T("F31", [2], [0, 8])}), bytes(8)),
        "dtype-empty": raw(J({"a": T("", [2], [0, 8])}), bytes(8)),
        "dtype-number": raw(J({"a": T(5, [2], [0, 8])}), bytes(8)),
        "dtype-missing": raw(J({"a": {"shape": [2], "data_offsets": [0, 8]}}), bytes(8)),
        "shape-negative": raw(J({"a": T("F32", [-2], [0, 8])}), bytes(8)),
        "shape-neg-2d": raw(J({"a": T("F32", [-1, -2], [0, 8])}), bytes(8)),
        "shape-overflow": raw(J({"a": T("F32", [1 << 32, 1 << 32], [0, 8])}), bytes(8)),
        "shape-bytes-overflow": raw(J({"a": T("F64", [1 << 61], [0, 8])}), bytes(8)),
        "shape-2p64": raw(J({"a": T("F32", [1 << 64], [0, 8])}), bytes(8)),
        "shape-float": raw(J({"a": T("F32", [2.0], [0, 8])}), bytes(8)),
        "shape-string": raw(J({"a": T("F32", ["2"], [0, 8])}), bytes(8)),
        "shape-nine-dims": raw(J({"a": T("F32", [1] * 8 + [2], [0, 8])}), bytes(8)),
        "shape-not-array": raw(J({"a": T("F32", 2, [0, 8])}), bytes(8)),
        "shape-bytes-mismatch": raw(J({"a": T("F32", [3], [0, 8])}), bytes(8)),
        "shape-bytes-bf16": raw(J({"a": T("BF16", [3], [0, 8])}), bytes(8)),
        "offsets-past-end": raw(J({"a": T("F32", [2], [0, 8])}), bytes(4)),
        "offsets-far": raw(J({"a": T("F32", [2], [1 << 40, (1 << 40) + 8])}), bytes(8)),
        "offsets-2p63": raw(J({"a": T("F32", [2], [1 << 63, (1 << 63) + 8])}), bytes(8)),
        "offsets-negative": raw(J({"a": T("F32", [2], [-8, 0])}), bytes(8)),
        "offsets-reversed": raw(J({"a": T("F32", [2], [8, 0])}), bytes(8)),
        "offsets-three": raw(J({"a": T("F32", [2], [0, 8, 8])}), bytes(8)),
        "offsets-missing": raw(J({"a": {"dtype": "F32", "shape": [2]}}), bytes(8)),
        "offsets-overlap": raw(J({"a": T("F32", [2], [0, 8]), "b": T("F32", [1], [4, 8])}), bytes(8)),
        "offsets-same": raw(J({"a": T("F32", [2], [0, 8]), "b": T("F32", [2], [0, 8])}), bytes(8)),
        "offsets-gap": raw(J({"a": T("F32", [1], [0, 4]), "b": T("F32", [1], [8, 12])}), bytes(12)),
        "offsets-lead-gap": raw(J({"a": T("F32", [1], [4, 8])}), bytes(8)),
        "offsets-tail": raw(J({"a": T("F32", [1], [0, 4])}), bytes(8)),
        "no-tensors-data": raw("{}", bytes(8)),
        "metadata-nonstring": raw(J({"__metadata__": {"k": 1}, "a": T("F32", [2], [0, 8])}), bytes(8)),
        "metadata-array": raw(J({"__metadata__": ["x"], "a": T("F32", [2], [0, 8])}), bytes(8)),
        "entry-not-object": raw(J({"a": [1, 2]}), bytes(8)),
        "name-empty": raw(J({"": T("F32", [2], [0, 8])}), bytes(8)),
    }
    for k, b in cases.items(): write(os.path.join(d, "bad-" + k + ".safetensors"), b)

def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode(errors="replace")

def corrupt(mode, ddct, src, base, work, sample):
    """Flip bits (or truncate) of src and run `ddct verify` or `ddct decompress` on each.
    Prints 'PASSED FAILED' then up to 10 failure lines. A case passes when the command exits 1
    with one stderr line naming the file and (decompress) leaves work/out-N empty."""
    data = open(src, "rb").read()
    kind, cmd = mode.split("-")
    if kind == "flip":
        n = len(data) * 8
        points = list(range(n)) if sample <= 0 or sample >= n else sorted(set(i * n // sample for i in range(sample)))
    else:
        n = len(data)
        points = list(range(n)) if sample <= 0 or sample >= n else sorted(set(i * n // sample for i in range(sample)))
    def one(i):
        d = os.path.join(work, "c%d" % i); os.makedirs(d)
        f = os.path.join(d, "m.ddct")
        if kind == "flip":
            b = bytearray(data); b[i // 8] ^= 1 << (i % 8); b = bytes(b)
        else:
            b = data[:i]
        write(f, b)
        if cmd == "verify":
            rc, err = run([ddct, "verify", f, "-q"])
            left = []
        else:
            od = os.path.join(d, "out"); os.makedirs(od)
            rc, err = run([ddct, "decompress", base, f, "-o", os.path.join(od, "r.safetensors"), "-q", "-T", "1"])
            left = os.listdir(od)
        lines = err.count("\n")
        good = rc == 1 and lines == 1 and f in err and not left
        for x in os.listdir(d):
            p = os.path.join(d, x)
            if os.path.isdir(p):
                for y in os.listdir(p): os.unlink(os.path.join(p, y))
                os.rmdir(p)
            else: os.unlink(p)
        os.rmdir(d)
        return good, "%s %s at %d: exit %d, %d line(s), left %s: %s" % (kind, cmd, i, rc, lines, left, err.strip()[:200])
    with ThreadPoolExecutor(max_workers=int(os.environ.get("NPROC", "2")) * 2) as ex:
        res = list(ex.map(one, points))
    fails = [m for g, m in res if not g]
    print(len(res) - len(fails), len(fails))
    for m in fails[:10]: print(m)

if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "model": write(a[1], model(int(a[2]), int(a[3]) if len(a) > 3 and a[3] != "-" else None,
                                          len(a) > 4 and a[4] == "nan"))
    elif a[0] == "hostile": hostile(a[1])
    elif a[0] == "small": write(a[1], st_bytes([("w", "F32", [2, 4], f32([0.5] * 8)), ("b", "BF16", [3], bf16([1, 2, 3])),
                                               ("i", "I64", [2], i64([7, -7]))], {"k": "v"}))
    elif a[0] == "truncate":
        b = open(a[1], "rb").read(); write(a[2], b[:int(a[3])])
    elif a[0] == "setbytes":  # FILE OFFSET HEXBYTES
        b = bytearray(open(a[1], "rb").read()); off = int(a[2]); v = bytes.fromhex(a[3]); b[off:off + len(v)] = v
        write(a[1], bytes(b))
    elif a[0] == "corrupt": corrupt(a[1], a[2], a[3], a[4], a[5], int(a[6]))
    elif a[0] == "shards":  # SRC.safetensors DIR: two shards + model.safetensors.index.json + config.json
        b = open(a[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
        meta = h.pop("__metadata__", None); names = list(h)
        parts = {"model-00001-of-00002.safetensors": names[:2], "model-00002-of-00002.safetensors": names[2:]}
        wm = {}
        for shard, ns in parts.items():
            write(os.path.join(a[2], shard), st_bytes([(k, h[k]["dtype"], h[k]["shape"], d[h[k]["data_offsets"][0]:h[k]["data_offsets"][1]]) for k in ns], meta))
            for k in ns: wm[k] = shard
        write(os.path.join(a[2], "model.safetensors.index.json"), json.dumps({"metadata": {"total_size": len(d)}, "weight_map": wm}, indent=2).encode())
        write(os.path.join(a[2], "config.json"), b'{"model_type": "tiny"}\n')
    elif a[0] == "index-edit":  # DIR CASE: make the index hostile
        p = os.path.join(a[1], "model.safetensors.index.json"); j = json.load(open(p)); wm = j["weight_map"]; k0 = sorted(wm)[0]
        c = a[2]
        if c == "invalid-json": write(p, b'{"weight_map": {')
        elif c == "parent-shard": wm[k0] = "../outside.safetensors"
        elif c == "absolute-shard": wm[k0] = "/etc/passwd"
        elif c == "dot-shard": wm[k0] = ".hidden.safetensors"
        elif c == "missing-shard": wm[k0] = "model-00009-of-00009.safetensors"
        elif c == "unlisted-tensor": del wm[k0]
        elif c == "extra-tensor": wm["not.in.any.shard"] = wm[k0]
        elif c == "wrong-shard": wm[k0] = sorted(set(wm.values()))[-1] if wm[k0] != sorted(set(wm.values()))[-1] else sorted(set(wm.values()))[0]
        elif c == "weight-map-array": j["weight_map"] = list(wm)
        elif c == "no-weight-map": del j["weight_map"]
        elif c == "shard-number": wm[k0] = 7
        else: sys.exit("unknown index case " + c)
        if c != "invalid-json": write(p, json.dumps(j).encode())
    else: sys.exit("unknown helper command " + a[0])
PY
mk() { python3 "$T/mk.py" "$@"; }
export NPROC

# ---------------------------------------------------------------- fixtures
P=$T/pair; mkdir -p "$P"
mk model "$P/base.safetensors" 1 || { echo "cannot write fixtures"; exit 1; }
mk model "$P/finetuned.safetensors" 1 2
mk model "$P/otherbase.safetensors" 3
mk model "$P/nan.safetensors" 1 2 nan
B=$P/base.safetensors; F=$P/finetuned.safetensors
"$DDCT" compress "$B" "$F" -o "$P/m.ddct" -q -T 1 || { echo "FAIL: cannot compress the tiny pair"; exit 1; }
size=$(stat -c %s "$P/m.ddct")
echo "tiny pair: $(stat -c %s "$F")-byte fine-tune, $size-byte .ddct"
"$DDCT" verify "$P/m.ddct" --base "$B" >/dev/null && ok || bad "verify the untouched .ddct"

section() { echo "[$SECONDS s] $*"; }
section "1. safetensors reader"
# ---------------------------------------------------------------- 1. safetensors reader
H=$T/hostile; mkdir -p "$H"
mk hostile "$H"
for f in "$H"/*.safetensors; do
  n=$(basename "$f")
  expect_reject "fine-tune $n" "$f" "$DDCT" compress "$B" "$f" -o "$O/x.ddct" -q
  expect_reject "base $n" "$f" "$DDCT" compress "$f" "$F" -o "$O/x.ddct" -q
done
# missing input / directory as input
expect_reject "missing fine-tune" "$T/nonexistent.safetensors" "$DDCT" compress "$B" "$T/nonexistent.safetensors" -o "$O/x.ddct" -q
expect_reject "directory as fine-tune" "$H" "$DDCT" compress "$B" "$H" -o "$O/x.ddct" -q
# truncation at every byte of a small valid file
mk small "$T/small.safetensors"
"$DDCT" compress "$T/small.safetensors" "$T/small.safetensors" -o "$O/x.ddct" -q && ok || bad "small file compresses"
rm -f "$O/x.ddct"
ssize=$(stat -c %s "$T/small.safetensors")
tpass=0; tfail=0
for ((i = 0; i < ssize; i++)); do
  head -c "$i" "$T/small.safetensors" >"$T/trunc.safetensors"
  "$DDCT" compress "$B" "$T/trunc.safetensors" -o "$O/x.ddct" -q >/dev/null 2>"$T/se"; rc=$?
  if [ "$rc" -eq 1 ] && [ "$(wc -l <"$T/se")" -eq 1 ] && grep -qF "$T/trunc.safetensors" "$T/se" && empty_dir "$O"; then
    tpass=$((tpass+1))
  else
    tfail=$((tfail+1)); [ $tfail -le 5 ] && echo "FAIL: safetensors truncated to $i bytes: exit $rc: $(head -c 300 "$T/se")" >&2
  fi
  rm -rf "${O:?}"/* "$O"/.[!.]* 2>/dev/null
done
pass=$((pass+tpass)); fail=$((fail+tfail))
echo "safetensors: $ssize truncations, $tfail not rejected cleanly"

section "2. .ddct integrity"
# ---------------------------------------------------------------- 2. .ddct integrity
W=$T/work; mkdir -p "$W"
corrupt() {  # MODE SAMPLE LABEL
  local out; out=$(python3 "$T/mk.py" corrupt "$1" "$DDCT" "$P/m.ddct" "$B" "$W" "$2")
  local p f; read -r p f <<<"$(head -n1 <<<"$out")"
  pass=$((pass+p)); fail=$((fail+f))
  [ "$f" -eq 0 ] || { echo "FAIL: $3: $f of $((p+f)) not rejected cleanly:" >&2; tail -n +2 <<<"$out" >&2; }
  echo "$3: $((p+f)) cases, $f not rejected cleanly"
}
# every byte and every bit in the plain build; under the sanitizers (DDCT_ASAN=1, where each
# process costs ten times more) a spread sample of each, the exhaustive runs being the plain one's
if [ "${DDCT_ASAN:-0}" = 1 ]; then
  corrupt truncate-verify 200 ".ddct truncated at 200 points (verify)"
  corrupt truncate-decompress 50 ".ddct truncated at 50 points (decompress)"
  corrupt flip-verify 1200 ".ddct 1200 spread bits flipped (verify)"
  corrupt flip-decompress 200 ".ddct 200 spread bits flipped (decompress)"
else
  corrupt truncate-verify 0 ".ddct truncated at every byte (verify)"
  corrupt truncate-decompress 100 ".ddct truncated at 100 points (decompress)"
  corrupt flip-verify 0 ".ddct every bit flipped (verify)"
  corrupt flip-decompress 600 ".ddct 600 spread bits flipped (decompress)"
fi
# format version: patch the major version (u16 at offset 8) to 2, 0 and 65535
for v in 0200 0000 ffff; do
  cp "$P/m.ddct" "$T/ver.ddct"; mk setbytes "$T/ver.ddct" 8 "$v"
  expect_reject "version $v (verify)" "$T/ver.ddct" "$DDCT" verify "$T/ver.ddct"
  expect_reject "version $v (decompress)" "$T/ver.ddct" "$DDCT" decompress "$B" "$T/ver.ddct" -o "$O/r.safetensors" -q
done
# not a .ddct at all
expect_reject "safetensors given as .ddct" "$F" "$DDCT" verify "$F"
# wrong base: fails naming a tensor, no output
expect_reject "wrong base (decompress)" "tensor '" "$DDCT" decompress "$P/otherbase.safetensors" "$P/m.ddct" -o "$O/r.safetensors" -q
expect_reject "wrong base (verify --base)" "tensor '" "$DDCT" verify "$P/m.ddct" --base "$P/otherbase.safetensors"
expect_reject "hostile base (decompress)" "$H/bad-dup-names.safetensors" "$DDCT" decompress "$H/bad-dup-names.safetensors" "$P/m.ddct" -o "$O/r.safetensors" -q

# a file that compresses must come back: inputs whose names do not end in .safetensors
cp "$B" "$T/base.st"; cp "$F" "$T/finetuned.st"
if "$DDCT" compress "$T/base.st" "$T/finetuned.st" -o "$T/st.ddct" -q 2>"$T/se"; then
  "$DDCT" verify "$T/st.ddct" --base "$T/base.st" >/dev/null 2>>"$T/se" \
    && "$DDCT" decompress "$T/base.st" "$T/st.ddct" -o "$T/st-r.safetensors" -q 2>>"$T/se" \
    && ok || bad "inputs not named *.safetensors: compress succeeds but the .ddct does not read back: $(cat "$T/se")"
else
  grep -q "finetuned.st" "$T/se" && ok || bad "inputs not named *.safetensors: refused without naming the file: $(cat "$T/se")"
fi

section "3. NaN / Inf"
# ---------------------------------------------------------------- 3. NaN / Inf
"$DDCT" compress "$B" "$P/nan.safetensors" -o "$T/nan.ddct" -T 1 >"$T/so" 2>"$T/se"; rc=$?
if [ $rc -eq 0 ] && grep -q "note: .*tensor 'layers.0.q_proj.weight'.*\(NaN\|Inf\)" "$T/se"; then ok
else bad "NaN/Inf compress: exit $rc: $(cat "$T/se")"; fi
"$DDCT" decompress "$B" "$T/nan.ddct" -o "$T/nan-r.safetensors" -q && ok || bad "NaN/Inf decompress"
python3 "$HERE/tools/stcompare.py" "$P/nan.safetensors" "$T/nan-r.safetensors" layers.0.q_proj.weight model.norm.weight position_ids >/dev/null \
  && ok || bad "NaN/Inf tensor not rebuilt bit-identically"

section "4. faults"
# ---------------------------------------------------------------- 4. faults
# a model whose .ddct and rebuild exceed 64 KiB
D=$T/demo
"$GEN" "$D" >/dev/null 2>&1 || bad "genpair"
"$DDCT" compress "$D/base.safetensors" "$D/finetuned.safetensors" -o "$T/demo.ddct" -q || bad "demo compress"
# 4a. disk full on a 64 KiB tmpfs
MNT=$T/full; mkdir -p "$MNT"
if mount -t tmpfs -o size=64k tmpfs "$MNT" 2>/dev/null; then
  O_SAVE=$O; O=$MNT
  expect_reject "disk full (compress)" "$MNT/x.ddct" "$DDCT" compress "$D/base.safetensors" "$D/finetuned.safetensors" -o "$MNT/x.ddct" -q
  expect_reject "disk full (decompress)" "$MNT/r.safetensors" "$DDCT" decompress "$D/base.safetensors" "$T/demo.ddct" -o "$MNT/r.safetensors" -q
  expect_reject "disk full (decompress, O_DIRECT)" "$MNT/r.safetensors" "$DDCT" decompress "$D/base.safetensors" "$T/demo.ddct" -o "$MNT/r.safetensors" -q --direct-io on
  # a small output still fits: the failure above was the disk, not the mount
  "$DDCT" compress "$B" "$F" -o "$MNT/ok.ddct" -q && cmp -s "$MNT/ok.ddct" "$P/m.ddct" && ok || bad "small compress onto the tmpfs"
  rm -f "$MNT/ok.ddct"
  O=$O_SAVE
  umount "$MNT" && MNT=""
else
  echo "skip: cannot mount a tmpfs (not permitted here): disk-full tests skipped"
  MNT=""
fi
# 4b. file size limit: ulimit -f 8 (8 KiB). SIGXFSZ must not kill the CLI: expect a clean exit 1.
expect_reject "ulimit -f (compress)" "$O/x.ddct" bash -c 'ulimit -f 8; exec "$@"' _ "$DDCT" compress "$D/base.safetensors" "$D/finetuned.safetensors" -o "$O/x.ddct" -q
expect_reject "ulimit -f (decompress)" "$O/r.safetensors" bash -c 'ulimit -f 8; exec "$@"' _ "$DDCT" decompress "$D/base.safetensors" "$T/demo.ddct" -o "$O/r.safetensors" -q
expect_reject "ulimit -f (decompress, O_DIRECT)" "$O/r.safetensors" bash -c 'ulimit -f 8; exec "$@"' _ "$DDCT" decompress "$D/base.safetensors" "$T/demo.ddct" -o "$O/r.safetensors" -q --direct-io on
# 4c. existing output without -f: refused, old file byte-identical
printf 'precious bytes\n' >"$T/keep"
for cmdline in "compress $B $F" "decompress $B $P/m.ddct"; do
  cp "$T/keep" "$O/existing"
  # shellcheck disable=SC2086
  "$DDCT" $cmdline -o "$O/existing" -q >/dev/null 2>"$T/se"; rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$T/se")" -eq 1 ] && grep -qF "$O/existing" "$T/se" && cmp -s "$T/keep" "$O/existing" \
     && [ "$(ls -A "$O")" = existing ]; then ok; else bad "existing output (${cmdline%% *}): exit $rc: $(cat "$T/se")"; fi
  rm -f "$O/existing"
done
# 4d. output equal to an input: refused even with -f (same path, other spelling, symlink, hard link)
md5_before=$(md5sum "$B" "$F" "$P/m.ddct")
ln -s "$F" "$T/ft-link.safetensors"; ln "$F" "$T/ft-hard.safetensors"
for o in "$F" "$B" "$P/../pair/finetuned.safetensors" "$T/ft-link.safetensors" "$T/ft-hard.safetensors"; do
  "$DDCT" compress "$B" "$F" -o "$o" -q -f >/dev/null 2>"$T/se"; rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$T/se")" -eq 1 ] && grep -q "input" "$T/se"; then ok; else bad "compress -o input $o -f: exit $rc: $(cat "$T/se")"; fi
done
for o in "$B" "$P/m.ddct"; do
  "$DDCT" decompress "$B" "$P/m.ddct" -o "$o" -q -f >/dev/null 2>"$T/se"; rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$T/se")" -eq 1 ] && grep -q "input" "$T/se"; then ok; else bad "decompress -o input $o -f: exit $rc: $(cat "$T/se")"; fi
done
[ "$(md5sum "$B" "$F" "$P/m.ddct")" = "$md5_before" ] && ok || bad "an input changed"
[ -z "$(ls -A "$P" | grep -F .tmp. || true)" ] && [ -z "$(ls -A "$T" | grep -F .tmp. || true)" ] && ok || bad "temporary files left"

section "5. thread counts"
# ---------------------------------------------------------------- 5. thread counts
for opts in "" "--method patch --transform dwt" "--method bitdelta" "--method svd" "--method rd" "--method patch --qtable jpeg --importance lowfreq --patch 8"; do
  for n in 1 2 8; do
    # shellcheck disable=SC2086
    "$DDCT" compress "$D/base.safetensors" "$D/finetuned.safetensors" -o "$T/t$n.ddct" -q -f -T $n $opts || bad "compress -T $n $opts"
  done
  cmp -s "$T/t1.ddct" "$T/t2.ddct" && cmp -s "$T/t1.ddct" "$T/t8.ddct" && ok || bad "threads 1/2/8 differ: '$opts'"
done
"$DDCT" decompress "$D/base.safetensors" "$T/t1.ddct" -o "$T/r1.safetensors" -q -T 1 \
  && "$DDCT" decompress "$D/base.safetensors" "$T/t1.ddct" -o "$T/r8.safetensors" -q -T 8 \
  && cmp -s "$T/r1.safetensors" "$T/r8.safetensors" && ok || bad "decompress threads 1/8 differ"
# O_DIRECT output (the default for rebuilt files of >= 64 MiB) gives the same bytes as the page cache
for dio in on off auto; do
  "$DDCT" decompress "$D/base.safetensors" "$T/t1.ddct" -o "$T/rd-$dio.safetensors" -q -T 2 --direct-io $dio \
    && cmp -s "$T/r1.safetensors" "$T/rd-$dio.safetensors" && ok || bad "decompress --direct-io $dio differs"
done
"$DDCT" decompress "$D/base.safetensors" "$T/t1.ddct" -o "$T/rd-x.safetensors" --direct-io sometimes 2>/dev/null; rc=$?
[ $rc -eq 2 ] && [ ! -e "$T/rd-x.safetensors" ] && ok || bad "--direct-io sometimes: exit $rc (expected 2)"

section "6. model directories"
# ---------------------------------------------------------------- 6. model directories
# a sharded fine-tune (index + 2 shards + config.json) round-trips file for file
DM=$T/dm; mkdir -p "$DM"
mk shards "$F" "$DM"
if "$DDCT" compress "$B" "$DM" -o "$T/dm.ddct" -q 2>"$T/se" && "$DDCT" verify "$T/dm.ddct" --base "$B" >/dev/null 2>>"$T/se" \
   && "$DDCT" decompress "$B" "$T/dm.ddct" -o "$T/dm-r/" -q 2>>"$T/se"; then
  [ "$(ls "$DM")" = "$(ls "$T/dm-r")" ] && cmp -s "$DM/config.json" "$T/dm-r/config.json" \
    && cmp -s "$DM/model.safetensors.index.json" "$T/dm-r/model.safetensors.index.json" \
    && python3 "$HERE/tools/stcompare.py" "$DM/model-00001-of-00002.safetensors" "$T/dm-r/model-00001-of-00002.safetensors" >/dev/null \
    && python3 "$HERE/tools/stcompare.py" "$DM/model-00002-of-00002.safetensors" "$T/dm-r/model-00002-of-00002.safetensors" \
         model.norm.weight position_ids >/dev/null \
    && ok || bad "sharded directory: rebuilt directory differs ($(ls "$T/dm-r" | tr '\n' ' '))"
else bad "sharded directory round trip: $(cat "$T/se")"; fi
# hostile indexes and links: compress refuses (exit 1, one line naming the model), writes nothing
printf 'outside the model\n' >"$T/outside.safetensors"
for c in invalid-json parent-shard absolute-shard dot-shard missing-shard unlisted-tensor extra-tensor wrong-shard \
         weight-map-array no-weight-map shard-number; do
  rm -rf "$T/hd"; cp -r "$DM" "$T/hd"; mk index-edit "$T/hd" "$c"
  expect_reject "directory index: $c" "$T/hd" "$DDCT" compress "$B" "$T/hd" -o "$O/x.ddct" -q
done
# a shard that is a symlink leaving the directory
rm -rf "$T/hd"; cp -r "$DM" "$T/hd"
mv "$T/hd/model-00002-of-00002.safetensors" "$T/shard2-outside.safetensors"
ln -s "$T/shard2-outside.safetensors" "$T/hd/model-00002-of-00002.safetensors"
expect_reject "directory: shard symlink leaving the directory" "$T/hd" "$DDCT" compress "$B" "$T/hd" -o "$O/x.ddct" -q
# a carried file that is a symlink leaving the directory: refused, or never carried
rm -rf "$T/hd" "$T/hd-r"; cp -r "$DM" "$T/hd"; printf 'secret outside the model\n' >"$T/secret.txt"
rm "$T/hd/config.json"; ln -s "$T/secret.txt" "$T/hd/config.json"
if "$DDCT" compress "$B" "$T/hd" -o "$T/hd.ddct" -q 2>"$T/se"; then
  "$DDCT" decompress "$B" "$T/hd.ddct" -o "$T/hd-r/" -q 2>>"$T/se"
  if [ -d "$T/hd-r" ] && ! grep -rqF "secret outside" "$T/hd-r"; then ok; else bad "symlinked config.json carried the outside file's bytes"; fi
else
  [ "$(wc -l <"$T/se")" -eq 1 ] && grep -qF "$T/hd" "$T/se" && ok || bad "symlinked config.json: $(cat "$T/se")"
fi
rm -f "$T/hd.ddct"

section "done"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
