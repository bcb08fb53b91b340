#!/usr/bin/env bash
# Paths, links and identities: nothing from outside a model gets in, no input is ever replaced or
# deleted, errors say what is wrong with which file, an input changing underneath is an error
# (never a signal), and -f never widens permissions.
#   1. Hugging Face caches: a real cache round-trips; a blobs/ that is a symlink (to '/', or out
#      of the cache) or a blob that is a symlink out of it lets nothing in;
#   2. outputs that are inputs by identity (a shard, a carried file, a cache blob, a symlink or
#      hard link to one; a directory holding a base reached through a symlink) are refused even
#      with -f, naming both paths, before anything is written or deleted;
#   3. a non-UTF-8 name, a dangling symlink, a symlink loop, FIFOs and sockets: refused with a
#      message naming the (escaped) file and the reason; subdirectories are left out;
#   4. an input truncated while compress / decompress read it (stopped with SIGSTOP once it is
#      mapped, `truncate`d, continued): exit 1, "input changed while reading: FILE";
#   5. modes: a replaced file or directory keeps its mode (and owner, when root), new ones follow
#      the umask.
# usage: cli_paths.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
source "$(dirname "$0")/tools/harness.sh"
umask 022

# reject WHAT PATTERN CMD...: exit 1, exactly one stderr line holding PATTERN (fixed string)
reject() {
  local what=$1 pat=$2; shift 2
  "$@" >"$T/so" 2>"$T/se"; local rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$T/se")" -eq 1 ] && grep -qF -- "$pat" "$T/se"; then ok
  else bad "$what: exit $rc: $(head -c 600 "$T/se")"; fi
}
no_tmp() {  # DIR...: no temporary left
  local d; for d in "$@"; do [ -z "$(ls -A "$d" | grep -F .tmp. || true)" ] || { bad "temporary left in $d"; return; }; done; ok
}

G=$T/g; ONE=$T/one
"$GEN" "$G" --shards 2 --seed 7 >/dev/null 2>&1 && "$GEN" "$ONE" --seed 7 >/dev/null 2>&1 || { echo "FAIL: genpair"; exit 1; }
printf 'secret outside the model\n' >"$T/secret.txt"
sums() { (cd "$T" && md5sum g/base/* g/finetuned/* one/* secret.txt); }
SUMS=$(sums)

# ---------------------------------------------------------------- 1. Hugging Face caches
# cache REPO SRC: a hub cache repository holding SRC's files as blobs, snapshot links to them
cache() {
  local r=$1 src=$2 f h
  mkdir -p "$r/blobs" "$r/snapshots/0123abcd" "$r/refs"
  echo 0123abcd >"$r/refs/main"
  for f in "$src"/*; do
    h=$(sha256sum "$f" | cut -c1-40)
    cp "$f" "$r/blobs/$h"
    ln -s "../../blobs/$h" "$r/snapshots/0123abcd/$(basename "$f")"
  done
}
H=$T/hub/models--org--tiny; cache "$H" "$G/finetuned"; S=$H/snapshots/0123abcd
check "cache snapshot compresses" "$DDCT" compress "$G/base" "$S" -o "$T/hub.ddct" -q --method patch
check "cache snapshot rebuilds" "$DDCT" decompress "$G/base" "$T/hub.ddct" -o "$T/hub-r/" -q
check "carried files byte for byte" cmp "$G/finetuned/config.json" "$T/hub-r/config.json"
[ "$(ls "$T/hub-r")" = "$(ls "$G/finetuned")" ] && ok || bad "cache rebuild file list: $(ls "$T/hub-r" | tr '\n' ' ')"
# blobs -> '/': config.json -> ../../blobs/<anything on the machine>
B=$T/hub2/models--org--evil; cache "$B" "$G/finetuned"; S2=$B/snapshots/0123abcd
rm -rf "$B/blobs"; ln -s / "$B/blobs"
for f in "$S2"/*; do ln -sf "../../blobs$G/finetuned/$(basename "$f")" "$f"; done  # shards etc. through '/'
ln -sf "../../blobs$T/secret.txt" "$S2/config.json"
reject "blobs -> /" "outside the model directory" "$DDCT" compress "$G/base" "$S2" -o "$T/evil.ddct" -q --method patch
grep -qF "blobs' is a symlink" "$T/se" && ok || bad "blobs -> /: the reason is not given: $(cat "$T/se")"
[ ! -e "$T/evil.ddct" ] && ok || bad "blobs -> /: a .ddct was written"
# blobs -> a directory outside the cache (holding a copy of the model and the secret)
mkdir -p "$T/elsewhere"; cp "$G/finetuned"/* "$T/secret.txt" "$T/elsewhere/"
rm "$B/blobs"; ln -s "$T/elsewhere" "$B/blobs"
for f in "$S2"/*; do ln -sf "../../blobs/$(basename "$f")" "$f"; done
ln -sf ../../blobs/secret.txt "$S2/config.json"
reject "blobs -> outside the cache" "outside the model directory" "$DDCT" compress "$G/base" "$S2" -o "$T/evil.ddct" -q --method patch
# a real blobs/ whose blob is a symlink out of the cache
rm "$B/blobs"; mkdir "$B/blobs"; cp "$G/finetuned"/* "$B/blobs/"; ln -s "$T/secret.txt" "$B/blobs/secret"
ln -sf ../../blobs/secret "$S2/config.json"
reject "blob -> outside" "'config.json' is a symlink to '$T/secret.txt', outside" "$DDCT" compress "$G/base" "$S2" -o "$T/evil.ddct" -q --method patch
[ ! -e "$T/evil.ddct" ] && ! grep -rqF "secret outside" "$T"/*.ddct 2>/dev/null && ok || bad "the outside file got into a .ddct"

# ---------------------------------------------------------------- 2. outputs that are inputs
reject "-o a base shard -f" "is also an input ('$G/base/model-00001-of-00002.safetensors'" \
  "$DDCT" compress "$G/base" "$G/finetuned" -o "$G/base/model-00001-of-00002.safetensors" -q -f --method patch
grep -qF "output '$G/base/model-00001-of-00002.safetensors'" "$T/se" && ok || bad "both paths not named: $(cat "$T/se")"
reject "-o a carried file -f" "is also an input" \
  "$DDCT" compress "$G/base" "$G/finetuned" -o "$G/finetuned/config.json" -q -f --method patch
reject "-o a file of an index's directory -f" "is also an input" \
  "$DDCT" compress "$G/base/model.safetensors.index.json" "$G/finetuned/model.safetensors.index.json" \
  -o "$G/finetuned/tokenizer.json" -q -f --method patch
ln -s "$G/base/model-00002-of-00002.safetensors" "$T/shard-link"
reject "-o a symlink to a base shard -f" "is also an input" \
  "$DDCT" compress "$G/base" "$G/finetuned" -o "$T/shard-link" -q -f --method patch
reject "-o a cache blob -f" "is also an input" \
  "$DDCT" compress "$G/base" "$S" -o "$H/blobs/$(sha256sum "$G/finetuned/config.json" | cut -c1-40)" -q -f --method patch
check "compress dir" "$DDCT" compress "$G/base" "$G/finetuned" -o "$T/d.ddct" -q --method patch
reject "decompress -o a base shard -f" "is also an input" \
  "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$G/base/model-00002-of-00002.safetensors" -q -f
reject "decompress -o the base directory -f" "input" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$G/base/" -q -f
# -o DIR/ -f where the base is a symlink (elsewhere) to a file in DIR
mkdir -p "$T/od"; cp "$ONE/base.safetensors" "$T/od/base.safetensors"; ln -s "$T/od/base.safetensors" "$T/blink.safetensors"
check "compress (linked base)" "$DDCT" compress "$T/blink.safetensors" "$ONE/finetuned.safetensors" -o "$T/s.ddct" -q --method patch
reject "-o DIR/ -f holding the base (symlink)" "holds '$T/od/base.safetensors', which is also an input ('$T/blink.safetensors')" \
  "$DDCT" decompress "$T/blink.safetensors" "$T/s.ddct" -o "$T/od/" -q -f
cmp -s "$ONE/base.safetensors" "$T/od/base.safetensors" && ok || bad "the base in DIR was deleted or changed"
# ... and holding a hard link of a base shard
mkdir -p "$T/od2"; ln "$G/base/model-00001-of-00002.safetensors" "$T/od2/x.safetensors"
reject "-o DIR/ -f holding a hard link of a shard" "which is also an input" \
  "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/od2/" -q -f
[ -f "$T/od2/x.safetensors" ] && ok || bad "hard link in DIR deleted"
[ "$(sums)" = "$SUMS" ] && ok || bad "an input changed"
no_tmp "$T" "$G/base" "$G/finetuned" "$T/od" "$T/od2"

# ---------------------------------------------------------------- 3. errors that say what is wrong
model_copy() { rm -rf "$T/m"; cp -r "$G/finetuned" "$T/m"; }
model_copy; cp "$T/m/config.json" "$T/m/$(printf 'caf\xe9.json')"
reject "non-UTF-8 name" "file 'caf\\xe9.json': file name is not valid UTF-8" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
model_copy; ln -s no-such-target "$T/m/extra.json"
reject "dangling symlink" "file 'extra.json' is a dangling symlink to 'no-such-target'" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
model_copy; ln -s loop-b "$T/m/loop-a"; ln -s loop-a "$T/m/loop-b"
reject "symlink loop" "is a symlink to 'loop-b' that cannot be followed" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
model_copy; rm "$T/m/config.json"; mkfifo "$T/m/config.json"
reject "FIFO config.json" "file 'config.json' is not a regular file (FIFO)" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
model_copy; mkfifo "$T/m/$(printf 'odd\001name')"
reject "FIFO with a control byte in its name" "file 'odd\\x01name' is not a regular file (FIFO)" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
model_copy; python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/m/tokenizer.model"
reject "socket" "file 'tokenizer.model' is not a regular file (socket)" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
rm -rf "$T/m"; mkdir "$T/m"; cp "$ONE/finetuned.safetensors" "$T/m/"; mkfifo "$T/m/model-2.safetensors"
reject "FIFO shard" "shard 'model-2.safetensors' is not a regular file (FIFO)" \
  "$DDCT" compress "$G/base" "$T/m" -o "$T/x.ddct" -q --method patch
[ ! -e "$T/x.ddct" ] && ok || bad "a .ddct was written for a refused model"
# a single fine-tune file whose name is not UTF-8: compresses, its name recorded with '_'
cp "$ONE/finetuned.safetensors" "$T/$(printf 'ft\xe9.safetensors')"
check "single file with a non-UTF-8 name" "$DDCT" compress "$ONE/base.safetensors" "$T/$(printf 'ft\xe9.safetensors')" -o "$T/nu.ddct" -q --method patch
check "... rebuilds into a directory" "$DDCT" decompress "$ONE/base.safetensors" "$T/nu.ddct" -o "$T/nu/" -q
[ "$(ls "$T/nu")" = "ft_.safetensors" ] && ok || bad "recorded name: $(ls "$T/nu")"
model_copy; mkdir "$T/m/original"; cp "$T/m/config.json" "$T/m/original/params.json"
check "a subdirectory is left out" "$DDCT" compress "$G/base" "$T/m" -o "$T/sub.ddct" -q --method patch
"$DDCT" info "$T/sub.ddct" --json | grep -q params.json && bad "subdirectory carried" || ok

# ---------------------------------------------------------------- 4. inputs changing underneath
# A base whose first tensor is 512 MiB of zeros (a sparse file: no disk, read at memory speed)
# keeps compress and decompress reading for a while after they have mapped the inputs.
cat >"$T/race.py" <<'PY'
import array, json, os, random, signal, struct, subprocess, sys, time

def model(path, seed):
    r = random.Random(seed)
    w = array.array("f", (r.gauss(0, 0.02) for _ in range(256 * 256))).tobytes()
    big = 1 << 29
    h = {"a.big.weight": {"dtype": "F32", "shape": [big // 4], "data_offsets": [0, big]},
         "b.proj.weight": {"dtype": "F32", "shape": [256, 256], "data_offsets": [big, big + len(w)]}}
    hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        f.seek(8 + len(hb) + big); f.write(w)
    return 8 + len(hb)

if sys.argv[1] == "model":
    print(model(sys.argv[2], int(sys.argv[3])))
    sys.exit(0)
# race VICTIM KEEP CMD...: run CMD; once it has VICTIM mapped, stop it, truncate VICTIM to KEEP
# bytes (its header stays), continue it. Prints the exit status (negative: killed by a signal),
# or "finished" when it was done before it could be stopped; its stderr goes to ours.
victim, keep, cmd = sys.argv[2], sys.argv[3], sys.argv[4:]
real = os.path.realpath(victim)
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
stopped = False
while p.poll() is None:
    try:
        with open("/proc/%d/maps" % p.pid) as f:
            mapped = real in f.read()
    except OSError:
        break
    if mapped:
        os.kill(p.pid, signal.SIGSTOP)
        stopped = True
        break
    time.sleep(0.0002)
if stopped:
    subprocess.run(["truncate", "-s", keep, victim], check=True)
    os.kill(p.pid, signal.SIGCONT)
err = p.communicate()[1]
sys.stderr.write(err.decode(errors="replace"))
print(p.returncode if stopped else "finished")
PY
R=$T/race; mkdir -p "$R"
race() {  # WHAT VICTIM KEEP CMD...
  local what=$1 victim=$2 keep=$3; shift 3
  local rc; rc=$(python3 "$T/race.py" race "$victim" "$keep" "$@" 2>"$T/se")
  if [ "$rc" = finished ]; then echo "skip: $what: finished before it could be stopped"; return; fi
  if [ "$rc" = 1 ] && grep -qF "input changed while reading: $victim" "$T/se" && [ "$(wc -l <"$T/se")" -eq 1 ]; then ok
  else bad "$what: exit $rc (135/138 or negative: a signal): $(head -c 600 "$T/se")"; fi
}
if hb=$(python3 "$T/race.py" model "$R/base.safetensors" 1) && python3 "$T/race.py" model "$R/ft.safetensors" 2 >/dev/null; then
  check "compress the big pair" "$DDCT" compress "$R/base.safetensors" "$R/ft.safetensors" -o "$R/m.ddct" -q --method patch
  race "decompress, base truncated" "$R/base.safetensors" "$hb" \
    "$DDCT" decompress "$R/base.safetensors" "$R/m.ddct" -o "$R/out.safetensors" -q
  python3 "$T/race.py" model "$R/base.safetensors" 1 >/dev/null
  race "compress, fine-tune truncated" "$R/ft.safetensors" "$hb" \
    "$DDCT" compress "$R/base.safetensors" "$R/ft.safetensors" -o "$R/x.ddct" -q --method patch
  [ ! -e "$R/out.safetensors" ] && [ ! -e "$R/x.ddct" ] && ok || bad "output left after an input changed"
  no_tmp "$R"
  rm -f "$R"/*.safetensors
else
  bad "cannot write the big pair"
fi

# ---------------------------------------------------------------- 5. modes
touch "$T/p.ddct"; chmod 600 "$T/p.ddct"
check "compress -f over a 0600 file" "$DDCT" compress "$ONE/base.safetensors" "$ONE/finetuned.safetensors" -o "$T/p.ddct" -q -f --method patch
[ "$(stat -c %a "$T/p.ddct")" = 600 ] && ok || bad "-f widened 0600 to $(stat -c %a "$T/p.ddct")"
(umask 027 && "$DDCT" compress "$ONE/base.safetensors" "$ONE/finetuned.safetensors" -o "$T/u.ddct" -q --method patch)
[ "$(stat -c %a "$T/u.ddct")" = 640 ] && ok || bad "new file under umask 027: $(stat -c %a "$T/u.ddct")"
touch "$T/r.safetensors"; chmod 640 "$T/r.safetensors"
check "decompress -f over a 0640 file" "$DDCT" decompress "$ONE/base.safetensors" "$T/p.ddct" -o "$T/r.safetensors" -q -f
[ "$(stat -c %a "$T/r.safetensors")" = 640 ] && ok || bad "decompress -f: $(stat -c %a "$T/r.safetensors")"
mkdir "$T/pd"; chmod 700 "$T/pd"; touch "$T/pd/config.json"; chmod 600 "$T/pd/config.json"
check "decompress -f over a 0700 directory" "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/pd/" -q -f
[ "$(stat -c %a "$T/pd")" = 700 ] && [ "$(stat -c %a "$T/pd/config.json")" = 600 ] \
  && [ "$(stat -c %a "$T/pd/tokenizer.json")" = 644 ] && ok \
  || bad "replaced directory modes: $(stat -c '%a %n' "$T/pd" "$T/pd"/* | tr '\n' ' ')"
(umask 077 && "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/nd/" -q)
[ "$(stat -c %a "$T/nd")" = 700 ] && [ "$(stat -c %a "$T/nd/config.json")" = 600 ] && ok \
  || bad "new directory under umask 077: $(stat -c '%a %n' "$T/nd" "$T/nd"/* | tr '\n' ' ')"
if [ "$(id -u)" = 0 ]; then
  touch "$T/own.ddct"; chown 65534:65534 "$T/own.ddct"; chmod 604 "$T/own.ddct"
  "$DDCT" compress "$ONE/base.safetensors" "$ONE/finetuned.safetensors" -o "$T/own.ddct" -q -f --method patch
  [ "$(stat -c '%u:%g %a' "$T/own.ddct")" = "65534:65534 604" ] && ok || bad "owner/mode not kept: $(stat -c '%u:%g %a' "$T/own.ddct")"
  chown -R 65534:65534 "$T/pd"
  "$DDCT" decompress "$G/base" "$T/d.ddct" -o "$T/pd" -q -f
  [ "$(stat -c '%u:%g' "$T/pd" "$T/pd/config.json" | sort -u)" = "65534:65534" ] && ok \
    || bad "directory owner not kept: $(stat -c '%u:%g %n' "$T/pd" "$T/pd/config.json" | tr '\n' ' ')"
else
  echo "skip: owner checks (not root)"
fi
no_tmp "$T"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
