#!/usr/bin/env bash
# verify decodes: files whose checksums are all valid but whose records do not decode fail
# `deltadct verify` (with and without --base) exactly when `decompress` fails, while `verify --quick`
# (checksums only) passes them; a .ddct naming one tensor twice is refused when opened.
# Each crafted file: a .ddct of ddct-genpair's demo pair (one per codec: patch, rd, bitdelta, svd,
# with raw and same records for the lossless tensors), bytes of one record's params, side or data
# changed, that record's checksum recomputed (tests/tools/ddctfile.py).
# usage: cli_verify.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/tools/harness.sh"
export PYTHONPATH="$HERE/tools${PYTHONPATH:+:$PYTHONPATH}"

check "genpair" "$GEN" "$T/p" --seed 3
B=$T/p/base.safetensors; F=$T/p/finetuned.safetensors
for m in patch rd bitdelta svd; do
  check "compress $m" "$DDCT" compress "$B" "$F" -o "$T/$m.ddct" -q --method $m
  check "verify $m" "$DDCT" verify "$T/$m.ddct" -q
  check "verify --base $m" "$DDCT" verify "$T/$m.ddct" --base "$B" -q
done

# craft SRC OUTDIR: one file per (record, byte) for the first record of each codec
cat >"$T/craft.py" <<'PY'
import os, sys
import ddctfile
src, out = sys.argv[1], sys.argv[2]
d = ddctfile.load(src)
seen, n = set(), 0
for i, e in enumerate(d.entries):
    if e["codec"] in seen or e["name"].startswith(b"\xff"): continue
    seen.add(e["codec"])
    spots = []
    for k in ("params", "side", "data"):
        at, ln = e[k]
        if ln: spots += sorted({at, at + ln // 3, at + ln // 2, at + ln - 1})
    for at in spots:
        for x in (0x01, 0xff):
            f = ddctfile.Ddct(bytes(d.b))
            f.b[at] ^= x
            f.fix_record(i)
            f.write(os.path.join(out, "c%d-r%d-at%d-x%02x.ddct" % (e["codec"], i, at, x)))
            n += 1
print(n)
PY

total=0; failing=0; mism=0
for m in patch rd bitdelta svd; do
  mkdir -p "$T/c$m"
  python3 "$T/craft.py" "$T/$m.ddct" "$T/c$m" >/dev/null || { bad "craft $m"; continue; }
  for f in "$T/c$m"/*.ddct; do
    total=$((total+1))
    "$DDCT" verify "$f" --quick -q 2>/dev/null || bad "verify --quick rejects a file with valid checksums: $(basename "$f")"
    "$DDCT" verify "$f" -q -T 2 2>"$T/ve"; v=$?
    "$DDCT" verify "$f" --base "$B" -q 2>"$T/vbe"; vb=$?
    "$DDCT" decompress "$B" "$f" -o "$T/r.safetensors" -f -q 2>"$T/de"; dc=$?
    # exit status 1 (never a signal), one line naming the file
    for x in "$v:$T/ve" "$vb:$T/vbe" "$dc:$T/de"; do
      rc=${x%%:*}; ef=${x#*:}
      if [ "$rc" -ne 0 ] && { [ "$rc" -ne 1 ] || [ "$(wc -l <"$ef")" -ne 1 ] || ! grep -qF "$f" "$ef"; }; then
        bad "$(basename "$f"): exit $rc: $(head -c 300 "$ef")"
      fi
    done
    [ "$dc" -ne 0 ] && failing=$((failing+1))
    if [ $(( v != 0 )) -ne $(( dc != 0 )) ] || [ $(( vb != 0 )) -ne $(( dc != 0 )) ]; then
      mism=$((mism+1)); bad "$(basename "$f"): verify $v, verify --base $vb, decompress $dc: $(cat "$T/ve" "$T/de")"
    fi
  done
done
[ "$mism" -eq 0 ] && ok
# not vacuous: a good share of the crafted files do not decode (so verify used to vouch for them)
[ "$total" -ge 100 ] && [ "$failing" -ge 20 ] && ok || bad "only $failing of $total crafted files fail to decode"
echo "crafted: $total files, $failing do not decode; verify agreed with decompress on all but $mism"

# a .ddct naming one tensor twice: the second of two same-length names renamed to the first, in the
# index and in the header's layout (checksums fixed): refused at open, naming the tensor
cat >"$T/dup.py" <<'PY'
import sys
import ddctfile
d = ddctfile.load(sys.argv[1])
ents = [e for e in d.entries if not e["name"].startswith(b"\xff")]
pair = next((a, b) for a in ents for b in ents if a is not b and len(a["name"]) == len(b["name"]) and a["offset"] < b["offset"])
a, b = pair
d.b[b["name_at"]:b["name_at"] + len(b["name"])] = a["name"]
j = bytes(d.b[d.json_at:d.json_at + d.json_len])
q = b'"' + b["name"] + b'"'
assert q in j
j = j.replace(q, b'"' + a["name"] + b'"', 1)
d.b[d.json_at:d.json_at + d.json_len] = j
d.fix_header(); d.fix_index()
d.write(sys.argv[2])
print(a["name"].decode())
PY
name=$(python3 "$T/dup.py" "$T/patch.ddct" "$T/dup.ddct") || bad "craft duplicate"
for cmd in "verify $T/dup.ddct" "verify --quick $T/dup.ddct" "info $T/dup.ddct" "decompress $B $T/dup.ddct -o $T/dup.safetensors -f"; do
  $DDCT $cmd >/dev/null 2>"$T/se"; rc=$?
  if [ $rc -eq 1 ] && grep -q "tensor '$name' is named twice" "$T/se" && [ ! -e "$T/dup.safetensors" ]; then ok
  else bad "duplicate name ($cmd): exit $rc: $(cat "$T/se")"; fi
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
