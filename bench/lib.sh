# lib.sh — shared by the bench scripts, sourced right after they cd to the repository root: the
# environment's defaults, the cached Llama-shaped bench pairs and the timing helper. A caller
# that wants another default REPEAT sets it before sourcing.
#   BUILD (build folder, default build), OUT (cache, default bench/out), THREADS (default: all
#   cores), REPEAT (default 1); sets ROOT, DDCT, GEN, PY, TIME. timed() writes under WORK.
ROOT=$PWD
BUILD=${BUILD:-build}
OUT=${OUT:-bench/out}
THREADS=${THREADS:-$(nproc)}
REPEAT=${REPEAT:-1}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
DDCT=$BUILD/deltadct
GEN=$BUILD/ddct-genpair
PY=/usr/bin/python3
TIME=/usr/bin/time

# Shards like the originals: Llama-3.2-1B is one file, 3B two, Llama-3.1-8B four.
shards_for() { case $1 in 3B) echo 2 ;; 8B) echo 4 ;; *) echo 1 ;; esac; }
have_shards() { "$GEN" --help 2>&1 | grep -q -- --shards; }

# pair_dir SIZE -> the cached pair's directory (generated when missing)
pair_dir() {
  local s=$1 n d
  n=$(shards_for "$s")
  if [ "$n" -gt 1 ] && have_shards; then d=$OUT/llama-$s-bf16-s$n; else d=$OUT/llama-$s-bf16; n=1; fi
  if [ ! -e "$d/.complete" ] && [ ! -e "$d/finetuned.safetensors" ]; then  # single files are renamed into place when complete
    echo "bench: generating $d (once; cached)" >&2
    rm -rf "$d"
    if [ "$n" -gt 1 ]; then "$GEN" "$d" --kind llama --params "$s" --dtype BF16 --shards "$n" >&2
    else "$GEN" "$d" --kind llama --params "$s" --dtype BF16 >&2; fi
    touch "$d/.complete"
  fi
  echo "$d"
}

# timed NAME CMD... : runs CMD REPEAT times (each after PRE and a sync, so that no command pays for
# the previous one's disk writeback), keeps the fastest; sets T_<NAME> (wall s), C_<NAME>
# (CPU s, user + system) and M_<NAME> (peak RSS, KiB) of that run
timed() {
  local name=$1 best="" rss="" cpu="" r t m c
  shift
  for ((r = 0; r < REPEAT; r++)); do
    [ -z "${PRE:-}" ] || eval "$PRE"
    sync # the previous command's dirty pages go to disk now, not during this one
    local t0 t1
    t0=$(date +%s.%N)
    $TIME -f '%M %U %S' -o "$WORK/time.txt" "$@" >/dev/null
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    read -r m u sy < <(tail -n 1 "$WORK/time.txt")
    c=$(echo "$u + $sy" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; rss=$m; cpu=$c; fi
  done
  printf -v "T_$name" '%.3f' "$best"
  printf -v "C_$name" '%.2f' "$cpu"
  printf -v "M_$name" '%s' "$rss"
}

fmt() { printf '%.2f' "$1"; }
mps() { echo "$1 / $2 / 1000000" | bc -l; }                 # params seconds -> M params/s
mib() { echo "$1 / 1024" | bc -l; }                          # KiB -> MiB
ratio() { echo "$1 / $2" | bc -l; }
pf() { if [ "$(echo "$1" | bc -l)" = 1 ]; then echo PASS; else echo FAIL; fi; }
