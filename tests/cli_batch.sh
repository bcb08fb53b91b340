#!/usr/bin/env bash
# deltadct batch: a manifest of two bases with several fine-tunes each (relative paths, relative
# to the manifest's directory, run from elsewhere), per-line options; every output byte-identical
# to what `deltadct compress` writes alone and verifying against its base; shards (I/N for N = 1,
# 2 writing the outputs, 3 and 7 finding them done: each line in exactly one shard, contiguous); a rerun skips what is done (files
# untouched); an output that does not verify, or was made with other options, fails the line (-f
# rewrites it); a failing line stops the shard, or with --keep-going not; the log's JSON (names
# escaped); manifest errors name the line (bad JSON, unknown option, missing field, refused or
# out-of-range option, two lines with one output); --shard's syntax.
# usage: cli_batch.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3 # Debian's, with numpy (the first python3 on PATH may lack it)
[ -x "$PY" ] || PY=python3
"$PY" -c "import numpy" 2>/dev/null || { echo "$PY has no numpy (tests/tools/ft_variant.py): skipped"; exit 0; }
source "$HERE/tools/harness.sh"
DDCT=$(cd "$(dirname "$DDCT")" && pwd)/$(basename "$DDCT")

W=$T/w; mkdir -p "$W/m/out"
for s in a b; do
  check "genpair $s" "$GEN" "$W/m/$s" --seed $([ $s = a ] && echo 3 || echo 4)
  for k in 1 2; do
    check "variant $s$k" "$PY" "$HERE/tools/ft_variant.py" "$W/m/$s/base.safetensors" "$W/m/$s/finetuned.safetensors" \
      "$W/m/$s/ft$k.safetensors" $k
  done
done
M=$W/m/manifest.jsonl
cat >"$M" <<'EOF'
{"base": "a/base.safetensors", "finetune": "a/finetuned.safetensors", "output": "out/a0.ddct", "method": "patch"}
{"base": "b/base.safetensors", "finetune": "b/finetuned.safetensors", "output": "out/b0.ddct", "method": "bitdelta"}

{"base": "a/base.safetensors", "finetune": "a/ft1.safetensors", "output": "out/a1.ddct", "method": "patch", "patch": 8, "zstd-level": 3}
{"base": "a/base.safetensors", "finetune": "a/ft2.safetensors", "output": "out/a2.ddct", "rescale": false, "bpp": 0.75}
{"base": "b/base.safetensors", "finetune": "b/ft1.safetensors", "output": "out/b1.ddct", "method": "svd", "bpp": 2}
{"base": "b/base.safetensors", "finetune": "b/ft2.safetensors", "output": "out/b2.ddct", "method": "patch", "bits": "4:0.5,0:0.5", "rescale": true}
EOF
opts=("--method patch" "--method bitdelta" "--method patch --patch 8 --zstd-level 3" "--no-rescale --bpp 0.75"
      "--method svd --bpp 2" "--method patch --bits 4:0.5,0:0.5 --rescale")
pairs=(a:finetuned:a0 b:finetuned:b0 a:ft1:a1 a:ft2:a2 b:ft1:b1 b:ft2:b2)
mkdir -p "$W/alone"
for i in "${!pairs[@]}"; do
  IFS=: read -r s f o <<<"${pairs[$i]}"
  # shellcheck disable=SC2086
  check "compress $o alone" "$DDCT" compress "$W/m/$s/base.safetensors" "$W/m/$s/$f.safetensors" \
    -o "$W/alone/$o.ddct" -q -T 2 ${opts[$i]}
done
same_as_alone() {
  for i in "${!pairs[@]}"; do
    IFS=: read -r s f o <<<"${pairs[$i]}"
    cmp -s "$W/m/out/$o.ddct" "$W/alone/$o.ddct" || { echo "$o differs"; return 1; }
    "$DDCT" verify "$W/m/out/$o.ddct" --base "$W/m/$s/base.safetensors" -q -T 1 || return 1
  done
}

# ---------------------------------------------------------------- one shard, then a rerun
cd "$T" || exit 1 # relative paths are relative to the manifest's directory, not here
check "batch" "$DDCT" batch "$M" --log "$W/log1.jsonl" -T 1 -q
check "outputs as compress writes them, verifying" same_as_alone
check "the log" "$PY" - "$W/log1.jsonl" "$W/m" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert sorted(r["line"] for r in rows) == [1, 2, 4, 5, 6, 7], rows
for r in rows:
    assert r["status"] == "ok" and r["error"] is None, r
    assert r["bytes"] == os.path.getsize(r["output"]) and 0 < r["bpp"] < 16 and r["seconds"] >= 0, r
    assert r["output"].startswith(sys.argv[2] + "/out/") and r["base"].startswith(sys.argv[2] + "/"), r
# grouped by base: a's lines, then b's, each in manifest order
assert [r["line"] for r in rows] == [1, 4, 5, 2, 6, 7], [r["line"] for r in rows]
PY
stat -c '%i %Y' "$W"/m/out/*.ddct >"$W/stat1"
"$DDCT" batch "$M" --log "$W/log2.jsonl" -T 1 2>"$W/err2"; rc=$?
[ $rc = 0 ] && ok || bad "rerun: exit $rc"
[ "$(grep -c '"status":"skipped"' "$W/log2.jsonl")" = 6 ] && ok || bad "rerun: every line skipped"
stat -c '%i %Y' "$W"/m/out/*.ddct | cmp -s - "$W/stat1" && ok || bad "rerun: outputs untouched"
grep -q "0 ok, 6 skipped, 0 failed" "$W/err2" && ok || { bad "rerun: summary on stderr"; cat "$W/err2" >&2; }
check_fails "-q: nothing on stderr" grep -q . <("$DDCT" batch "$M" -q 2>&1)

# ---------------------------------------------------------------- shards
# 2 shards write the outputs again; 3 and 7 find them done (a skipped line is logged too)
rm -f "$W"/m/out/*.ddct
for n in 2 3 7; do
  rm -f "$W"/shard*.jsonl
  for ((i = 0; i < n; i++)); do
    check "shard $i/$n" "$DDCT" batch "$M" --shard $i/$n --log "$W/shard$i.jsonl" -T 1 -q
  done
  check "shards of $n: outputs as compress writes them" same_as_alone
  check "shards of $n: each line in one shard, contiguous" "$PY" - "$W" $n <<'PY'
import json, sys
n = int(sys.argv[2])
lines = []
for i in range(n):
    try:
        got = sorted(json.loads(l)["line"] for l in open(f"{sys.argv[1]}/shard{i}.jsonl"))
    except FileNotFoundError:
        got = []
    entries = [1, 2, 4, 5, 6, 7]  # the blank line is not an entry
    assert got == sorted(entries[i * 6 // n:(i + 1) * 6 // n]), (i, got)
    lines += got
assert sorted(lines) == [1, 2, 4, 5, 6, 7]
PY
done

# ---------------------------------------------------------------- outputs that exist but do not match
cp "$W/m/out/a1.ddct" "$W/a1.good"
"$PY" -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[len(b)//2]^=1; open(p,'wb').write(b)" "$W/m/out/a1.ddct"
"$DDCT" batch "$M" --log "$W/log3.jsonl" -q; rc=$?
[ $rc = 1 ] && ok || bad "a corrupt output: exit $rc"
grep '"line":4' "$W/log3.jsonl" | grep -q '"status":"failed".*exists and.*-f rewrites it' && ok ||
  { bad "a corrupt output fails its line"; cat "$W/log3.jsonl" >&2; }
[ "$(wc -l <"$W/log3.jsonl")" = 2 ] && ok || bad "without --keep-going the shard stops at the failure"
check "-f rewrites it" "$DDCT" batch "$M" -f -q --log "$W/log4.jsonl"
cmp -s "$W/m/out/a1.ddct" "$W/a1.good" && ok || bad "-f: the rewritten output as before"
[ "$(grep -c '"status":"ok"' "$W/log4.jsonl")" = 1 ] && ok || bad "-f rewrites only that one"
sed 's/"bpp": 0.75/"bpp": 0.5/' "$M" >"$W/m/other.jsonl"
"$DDCT" batch "$W/m/other.jsonl" --keep-going --log "$W/log5.jsonl" -q; rc=$?
[ $rc = 1 ] && ok || bad "other options: exit $rc"
grep '"line":5' "$W/log5.jsonl" | grep -q 'was made with other options' && ok || bad "other options: named"
[ "$(grep -c '"status":"skipped"' "$W/log5.jsonl")" = 5 ] && ok || bad "--keep-going: the others run"

# ---------------------------------------------------------------- failing lines, escaped names
printf '%s\n' \
  '{"base": "a/base.safetensors", "finetune": "a/missing.safetensors", "output": "out/x1.ddct", "method": "patch"}' \
  '{"base": "a/base.safetensors", "finetune": "a/ft1.safetensors", "output": "out/x\nname\u001b[31m.ddct", "method": "patch"}' \
  '{"base": "nobase/base.safetensors", "finetune": "a/ft1.safetensors", "output": "out/x3.ddct", "method": "patch"}' \
  >"$W/m/fail.jsonl"
"$DDCT" batch "$W/m/fail.jsonl" --log "$W/log6.jsonl" 2>"$W/err6"; rc=$?
[ $rc = 1 ] && ok || bad "a failing line: exit $rc"
[ "$(wc -l <"$W/log6.jsonl")" = 1 ] && ok || bad "a failing line stops the shard"
grep -q "1 failed, 2 not run" "$W/err6" && ok || { bad "stop reported"; cat "$W/err6" >&2; }
rm -f "$W/log6.jsonl"
"$DDCT" batch "$W/m/fail.jsonl" --keep-going --log "$W/log6.jsonl" --json >"$W/out6" 2>"$W/err6"; rc=$?
[ $rc = 1 ] && ok || bad "--keep-going with failures: exit $rc"
cmp -s "$W/out6" "$W/log6.jsonl" && ok || bad "--json: the log's lines on stdout"
check "failures logged with their messages, names escaped" "$PY" - "$W/log6.jsonl" "$W/m" <<'PY'
import json, os, sys
rows = {r["line"]: r for r in map(json.loads, open(sys.argv[1]))}
assert rows[1]["status"] == "failed" and "missing.safetensors" in rows[1]["error"] and rows[1]["bytes"] is None, rows[1]
assert rows[2]["status"] == "ok" and rows[2]["output"].endswith("out/x\nname\x1b[31m.ddct"), rows[2]
assert os.path.exists(rows[2]["output"])
assert rows[3]["status"] == "failed" and "nobase" in rows[3]["error"], rows[3]
assert len(open(sys.argv[1]).read().splitlines()) == 3
PY
grep -q $'\x1b' "$W/err6" && bad "stderr: ESC not escaped" || ok
grep -q 'x\\nname\\x1b\[31m.ddct: ok' "$W/err6" && ok || { bad "stderr: the name escaped"; cat "$W/err6" >&2; }

# ---------------------------------------------------------------- manifest and usage errors
bad_line() { # bad_line WHAT LINE2 PATTERN: a manifest whose second line is LINE2 is refused naming line 2
  printf '%s\n%s\n' '{"base": "a/base.safetensors", "finetune": "a/ft1.safetensors", "output": "out/y.ddct"}' "$2" \
    >"$W/m/bad.jsonl"
  "$DDCT" batch "$W/m/bad.jsonl" -q 2>"$W/errb"; local rc=$?
  if [ $rc = 2 ] && grep -q "bad.jsonl:2: .*$3" "$W/errb" && [ ! -e "$W/m/out/y.ddct" ]; then ok
  else bad "manifest error ($1): exit $rc"; cat "$W/errb" >&2; fi
}
bad_line "not JSON" '{"base": "a", ' "not JSON"
bad_line "not an object" '["a", "b"]' "not a JSON object"
bad_line "missing field" '{"base": "a/base.safetensors", "output": "out/z.ddct"}' 'missing "finetune"'
bad_line "unknown key" '{"base": "a", "finetune": "b", "output": "c", "bppp": 1}' 'unknown key "bppp"'
bad_line "out of range" '{"base": "a", "finetune": "b", "output": "c", "bpp": 40}' "bpp: '40' is out of range"
bad_line "not a number" '{"base": "a", "finetune": "b", "output": "c", "patch": "0x10", "method": "patch"}' "patch needs an integer"
bad_line "not read by the method" '{"base": "a", "finetune": "b", "output": "c", "patch": 8}' "patch does nothing with --method rd"
bad_line "bpp with error" '{"base": "a", "finetune": "b", "output": "c", "bpp": 1, "error": 0.1}' "cannot be combined"
bad_line "unknown method" '{"base": "a", "finetune": "b", "output": "c", "method": "zip"}' "method"
bad_line "rescale value" '{"base": "a", "finetune": "b", "output": "c", "rescale": 3}' "rescale"
bad_line "duplicate key" '{"base": "a", "base": "b", "finetune": "b", "output": "c"}' "not JSON"
bad_line "empty path" '{"base": "", "finetune": "b", "output": "c"}' 'needs a path'
bad_line "NUL in a path" '{"base": "a\u0000b", "finetune": "b", "output": "c"}' 'not JSON: .u0000 is not allowed'
bad_line "NUL in an option" '{"base": "a", "finetune": "b", "output": "c", "exclude": "x\u0000"}' 'not JSON: .u0000 is not allowed'
bad_line "one output twice" '{"base": "a", "finetune": "b", "output": "out/y.ddct"}' "also line 1"
for s in 2/2 1/0 x 1 -1/2 0/ 1/2x; do
  check_fails "--shard $s refused" "$DDCT" batch "$M" --shard "$s"
  "$DDCT" batch "$M" --shard "$s" 2>/dev/null; [ $? = 2 ] && ok || bad "--shard $s: exit 2"
done
"$DDCT" batch 2>/dev/null; [ $? = 2 ] && ok || bad "no manifest: exit 2"
"$DDCT" batch "$W/none.jsonl" 2>/dev/null; [ $? = 1 ] && ok || bad "a missing manifest: exit 1"
check "--help" "$DDCT" batch --help

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
