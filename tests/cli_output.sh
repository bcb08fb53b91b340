#!/usr/bin/env bash
# What people and scripts read: tensor names that hold ESC sequences, newlines, C1 controls, bidi
# overrides or bytes that are not UTF-8 are escaped on the terminal (info, eval, notes, errors:
# one line each, no raw control byte) and valid in JSON (info --json, eval --json); NaN weights
# give valid JSON with null measures and "nonfinite": true, never a relative error of 0.
# usage: cli_output.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/tools/harness.sh"
command -v python3 >/dev/null 2>&1 || { echo "python3 not found: skipped"; exit 0; }
ODD="python3 $HERE/tools/oddnames.py"

d=$T/o
mkdir -p "$d"
check "inputs" $ODD pair "$d"
B=$d/base.safetensors; F=$d/finetuned.safetensors

# no_ctl FILE: no byte below 0x20 but newline, no DEL, no C1 control (as UTF-8: C2 80..C2 9F)
no_ctl() { python3 - "$1" <<'EOF'
import re, sys
b = open(sys.argv[1], "rb").read()
bad = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]", b)
sys.exit("raw control byte %r at %d" % (bad.group(), bad.start()) if bad else 0)
EOF
}
# one_line FILE: exactly one line, "deltadct: ..."
one_line() { [ "$(grep -c '' "$1")" -eq 1 ] && grep -q '^deltadct: ' "$1"; }
is_json() { python3 -c 'import json,sys; json.load(open(sys.argv[1], encoding="utf-8"))' "$1"; }

check "compress odd names" "$DDCT" compress "$B" "$F" -o "$d/m.ddct" --method patch
check "compress summary: no raw control byte" no_ctl "$T/out"

# ---- info: the table shows the names escaped, one row each
"$DDCT" info "$d/m.ddct" >"$T/info" 2>&1
check "info: no raw control byte" no_ctl "$T/info"
check "info: ESC and newline shown escaped" grep -qF 'blocks.0.\x1b[31mred\x1b[0m\nsecond line.weight' "$T/info"
check "info: C1 and bidi shown escaped" grep -qF 'blocks.1.\u009b2J\u202eevil.weight' "$T/info"
check "info: one row per tensor" test "$(grep -c '^blocks\.' "$T/info")" -eq 4
# ---- info --json: valid, and the names come back exactly
"$DDCT" info "$d/m.ddct" --json >"$T/info.json"
check "info --json valid" is_json "$T/info.json"
check "info --json: no raw control byte" no_ctl "$T/info.json"
check "info --json: names round-trip" python3 -c "
import json, sys
names = json.load(open('$d/names.json'))
got = [t['name'] for t in json.load(open('$T/info.json'))['tensors']]
assert names['esc'] in got and names['c1'] in got, got"

# ---- a .ddct whose tensor name is not UTF-8 (and holds ESC): JSON gets U+FFFD, the terminal \xHH
old=$(printf 'blocks.2.plain.weight' | od -An -tx1 | tr -d ' \n')
new=$(printf 'blocks.2.\xff\xfe\x1b[1m\xc3(.weight' | od -An -tx1 | tr -d ' \n')
$ODD rename "$d/m.ddct" "$d/bad.ddct" "$old" "$new"; rc=$?
if [ $rc -eq 77 ]; then echo "libxxhash not loadable from python3: non-UTF-8 checks skipped"
elif [ $rc -ne 0 ]; then bad "rename exit $rc"
else
  check "non-UTF-8 .ddct verifies" "$DDCT" verify "$d/bad.ddct"
  "$DDCT" info "$d/bad.ddct" --json >"$T/bad.json"
  check "info --json valid (non-UTF-8 name)" is_json "$T/bad.json"
  check "info --json: bytes that are not UTF-8 are U+FFFD" python3 -c "
import json
got = [t['name'] for t in json.load(open('$T/bad.json', encoding='utf-8'))['tensors']]
assert 'blocks.2.\ufffd\ufffd\x1b[1m\ufffd(.weight' in got, got"
  "$DDCT" info "$d/bad.ddct" >"$T/bad.txt"
  check "info: non-UTF-8 bytes shown as \\xHH" grep -qF 'blocks.2.\xff\xfe\x1b[1m\xc3(.weight' "$T/bad.txt"
  check "info: no raw control byte (non-UTF-8 name)" no_ctl "$T/bad.txt"
  # the library's error names the tensor: printed on one line, escaped
  "$DDCT" decompress "$B" "$d/bad.ddct" -o "$d/r.safetensors" -q 2>"$T/err"; rc=$?
  check "decompress error exit 1" test $rc -eq 1
  check "decompress error: one line" one_line "$T/err"
  check "decompress error: no raw control byte" no_ctl "$T/err"
  check "decompress error: name escaped" grep -qF "'blocks.2.\\xff\\xfe\\x1b[1m\\xc3(.weight'" "$T/err"
fi

# ---- errors naming odd tensors: one line, escaped
# a base whose odd tensor differs: the fingerprint check names it
$ODD pair "$d/other" 2>/dev/null || mkdir -p "$d/other"
python3 - "$B" "$d/wrongbase.safetensors" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack_from("<Q", b)[0]
b[8 + n] ^= 0x01  # first data byte: the first tensor, the one with ESC and a newline in its name
open(sys.argv[2], "wb").write(b)
EOF
"$DDCT" decompress "$d/wrongbase.safetensors" "$d/m.ddct" -o "$d/r.safetensors" -q 2>"$T/err"; rc=$?
check "wrong base: exit 1" test $rc -eq 1
check "wrong base: one line" one_line "$T/err"
check "wrong base: no raw control byte" no_ctl "$T/err"
check "wrong base: the name, escaped" grep -qF 'blocks.0.\x1b[31mred\x1b[0m\nsecond line.weight' "$T/err"
# a safetensors header with a raw ESC, newline and bytes that are not UTF-8: refused in one line
"$DDCT" compress "$B" "$d/badheader.safetensors" -o "$d/x.ddct" -q --method patch 2>"$T/err"; rc=$?
check "raw control bytes in a header: exit 1" test $rc -eq 1
check "raw control bytes in a header: one line" one_line "$T/err"
check "raw control bytes in a header: no raw control byte" no_ctl "$T/err"
# an argument with control characters in a usage error
"$DDCT" compress "$B" "$F" -o "$d/x.ddct" --method patch "--frob$(printf '\033[2J\nx')" 2>"$T/err"; rc=$?
check "usage error exit 2" test $rc -eq 2
check "usage error: one line, escaped" one_line "$T/err"
check "usage error: no raw control byte" no_ctl "$T/err"

# ---- eval: names escaped on the terminal, valid JSON
"$DDCT" eval "$B" "$F" "$d/m.ddct" >"$T/ev.txt" 2>&1
check "eval: no raw control byte" no_ctl "$T/ev.txt"
"$DDCT" eval "$B" "$F" "$d/m.ddct" --json >"$T/ev.json"
check "eval --json valid" is_json "$T/ev.json"
check "eval --json: finite, nonfinite false" python3 -c "
import json
j = json.load(open('$T/ev.json'))
assert j['nonfinite'] is False and 0 < j['rel_error'] < 2, j
assert all(t['nonfinite'] is False for t in j['tensors']), j"

# ---- NaN weights: null and "nonfinite": true, never 0
# (1) a NaN in the fine-tune at compression: the tensor is stored losslessly, with a note
"$DDCT" compress "$B" "$d/finetuned_nan.safetensors" -o "$d/nan.ddct" --method patch 2>"$T/err"
check "NaN: compress ok" test $? -eq 0
check "NaN: note names the tensor" grep -q "^deltadct: note: tensor 'blocks.2.plain.weight'.*NaN" "$T/err"
check "NaN: notes and summary have no raw control byte" no_ctl "$T/err"
"$DDCT" eval "$B" "$d/finetuned_nan.safetensors" "$d/nan.ddct" --json >"$T/nan1.json"
check "NaN (lossless): eval --json valid" is_json "$T/nan1.json"
check "NaN (lossless): that tensor null, not 0" python3 -c "
import json
j = json.load(open('$T/nan1.json'))
t = [t for t in j['tensors'] if t['name'] == 'blocks.2.plain.weight'][0]
assert t['rel_error'] is None and t['cosine'] is None and t['nonfinite'] is True, t
assert j['nonfinite'] is False and j['rel_error'] > 0, j  # the lossy tensors are finite"
# (2) a .ddct made without the NaN, evaluated against the fine-tune with it: the lossy total is NaN
"$DDCT" eval "$B" "$d/finetuned_nan.safetensors" "$d/m.ddct" --json >"$T/nan2.json"
check "NaN (lossy): eval --json valid" is_json "$T/nan2.json"
check "NaN (lossy): totals null, nonfinite, worst tensor named" python3 -c "
import json
j = json.load(open('$T/nan2.json'))
assert j['rel_error'] is None and j['cosine'] is None and j['worst_rel_error'] is None, j
assert j['nonfinite'] is True and j['worst_tensor'] == 'blocks.2.plain.weight', j
t = [t for t in j['tensors'] if t['name'] == 'blocks.2.plain.weight'][0]
assert t['rel_error'] is None and t['max_abs_error'] is None and t['nonfinite'] is True, t"
"$DDCT" eval "$B" "$d/finetuned_nan.safetensors" "$d/m.ddct" >"$T/nan2.txt"
check "NaN (lossy): the text does not say 0" grep -q '^relative error: *nan' "$T/nan2.txt"

echo "$pass passed, $fail failed"; [ $fail -eq 0 ]
