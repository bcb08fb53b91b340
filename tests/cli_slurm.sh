#!/usr/bin/env bash
# deltadct batch under a real Slurm: a one-node cluster on localhost started from Debian's packages
# (munged, slurmctld, slurmd; its own key, socket, ports, state and spool directories under a
# temporary directory, proctrack/linuxproc, task/none, no cgroups), the job array of
# contrib/slurm/deltadct-batch.sbatch submitted over a manifest of generated pairs (three bases,
# three fine-tunes each), then: every output verifies against its base and is byte-identical to
# what `deltadct compress` writes alone; one task cancelled (scancel) in the middle of a
# compression, its line logged "cancelled" and nothing half-written; that task resubmitted does
# the rest, and over both runs every line is done ("ok") exactly once. Everything started is
# stopped on every exit path. Skips, saying why, where Slurm cannot start (packages missing, not
# root, a daemon that does not come up); under sanitizers (the batch paths run there through
# cli_batch). usage: cli_slurm.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2
HERE=$(cd "$(dirname "$0")" && pwd)
SBATCH_SCRIPT=$HERE/../contrib/slurm/deltadct-batch.sbatch
skip() { echo "Slurm test skipped: $*"; exit 0; }
[ "${DDCT_ASAN:-0}" = 1 ] && skip "sanitizer build (cli_batch covers batch there)"
for b in munged mungekey slurmctld slurmd sbatch squeue scancel scontrol sinfo; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] ||
    skip "$b not found (Debian: apt-get install munge slurmctld slurmd slurm-client)"
done
export PATH=$PATH:/usr/sbin
[ "$(id -u)" = 0 ] || skip "needs root (slurmd runs jobs as their user; SlurmUser=root)"
PY=/usr/bin/python3 # Debian's, with numpy (the first python3 on PATH may lack it)
[ -x "$PY" ] || PY=python3
"$PY" -c "import numpy" 2>/dev/null || skip "$PY has no numpy (tests/tools/ft_variant.py; Debian: python3-numpy)"
source "$HERE/tools/harness.sh"
DDCT=$(cd "$(dirname "$DDCT")" && pwd)/$(basename "$DDCT")
GEN=$(cd "$(dirname "$GEN")" && pwd)/$(basename "$GEN")
chmod 700 "$T"

# ---------------------------------------------------------------- the cluster
export SLURM_CONF=$T/slurm/slurm.conf
MUNGE_SOCK=$T/munge/sock
cleanup() {
  if [ -f "$T/slurm/ctld.pid" ] || [ -f "$T/slurm/d.pid" ]; then
    scancel --quiet --user=root 2>/dev/null
    scontrol shutdown >/dev/null 2>&1
    for i in $(seq 50); do
      alive=0
      for f in "$T/slurm/ctld.pid" "$T/slurm/d.pid"; do
        [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
      done
      [ $alive = 0 ] && break; sleep 0.1
    done
    for f in "$T/slurm/ctld.pid" "$T/slurm/d.pid"; do # still there: ours, by pid
      [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
  fi
  [ -S "$MUNGE_SOCK" ] && munged -s -S "$MUNGE_SOCK" >/dev/null 2>&1
  [ -f "$T/munge/pid" ] && kill "$(cat "$T/munge/pid")" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
mkdir -p "$T/munge" "$T/slurm/state" "$T/slurm/spool" && chmod 700 "$T/munge"
mungekey -c -k "$T/munge/key" >/dev/null 2>&1 || skip "mungekey cannot create a key"
munged -f --socket="$MUNGE_SOCK" --key-file="$T/munge/key" --pid-file="$T/munge/pid" \
  --log-file="$T/munge/log" --seed-file="$T/munge/seed" >/dev/null 2>&1 || {
  cat "$T/munge/log" 2>/dev/null; skip "munged does not start"; }
ports=$("$PY" -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')
read -r PCTLD PD <<<"$ports"
NODE=ddctnode
cat >"$SLURM_CONF" <<EOF
ClusterName=ddcttest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$PCTLD
SlurmdPort=$PD
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge
StateSaveLocation=$T/slurm/state
SlurmdSpoolDir=$T/slurm/spool
SlurmctldPidFile=$T/slurm/ctld.pid
SlurmdPidFile=$T/slurm/d.pid
SlurmctldLogFile=$T/slurm/ctld.log
SlurmdLogFile=$T/slurm/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
KillWait=20
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=ddct Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -i >/dev/null 2>&1 || { tail -n 20 "$T/slurm/ctld.log"; skip "slurmctld does not start"; }
slurmd -N "$NODE" >/dev/null 2>&1 || { tail -n 20 "$T/slurm/d.log"; skip "slurmd does not start"; }
up=0
for i in $(seq 150); do
  [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ] && { up=1; break; }
  sleep 0.2
done
[ $up = 1 ] || { tail -n 20 "$T/slurm/ctld.log" "$T/slurm/d.log"; skip "the node does not come up idle"; }
echo "Slurm $(sinfo -V 2>/dev/null) up: node $NODE, ports $PCTLD/$PD"

# ---------------------------------------------------------------- the manifest
# bases a, b, c; fine-tunes: the generated one and two variants (tests/tools/ft_variant.py) each
W=$T/work; mkdir -p "$W/out"
lines=()
for s in a b c; do
  case $s in a) seed=11 ;; b) seed=12 ;; c) seed=13 ;; esac
  check "genpair $s" "$GEN" "$W/$s" --seed $seed
  for k in 1 2; do
    check "variant $s$k" "$PY" "$HERE/tools/ft_variant.py" "$W/$s/base.safetensors" "$W/$s/finetuned.safetensors" \
      "$W/$s/ft$k.safetensors" $k
  done
done
# shard 1 of 3 (lines 4-6, base b) codes with rd at one thread: seconds a line, long enough to be
# cancelled in the middle of one; the others with faster methods
M=$W/manifest.jsonl
{
  echo '{"base": "a/base.safetensors", "finetune": "a/finetuned.safetensors", "output": "out/a0.ddct", "method": "patch"}'
  echo '{"base": "a/base.safetensors", "finetune": "a/ft1.safetensors", "output": "out/a1.ddct", "method": "bitdelta"}'
  echo '{"base": "a/base.safetensors", "finetune": "a/ft2.safetensors", "output": "out/a2.ddct", "method": "patch", "patch": 8}'
  echo '{"base": "b/base.safetensors", "finetune": "b/finetuned.safetensors", "output": "out/b0.ddct"}'
  echo '{"base": "b/base.safetensors", "finetune": "b/ft1.safetensors", "output": "out/b1.ddct", "bpp": 0.5}'
  echo '{"base": "b/base.safetensors", "finetune": "b/ft2.safetensors", "output": "out/b2.ddct", "rescale": false}'
  echo '{"base": "c/base.safetensors", "finetune": "c/finetuned.safetensors", "output": "out/c0.ddct", "method": "svd", "bpp": 2}'
  echo '{"base": "c/base.safetensors", "finetune": "c/ft1.safetensors", "output": "out/c1.ddct", "method": "patch", "bits": "4:0.5,0:0.5"}'
  echo '{"base": "c/base.safetensors", "finetune": "c/ft2.safetensors", "output": "out/c2.ddct", "method": "bitdelta"}'
} >"$M"
# what `deltadct compress` writes alone, line by line
opts=("--method patch" "--method bitdelta" "--method patch --patch 8" "" "--bpp 0.5" "--no-rescale"
      "--method svd --bpp 2" "--method patch --bits 4:0.5,0:0.5" "--method bitdelta")
pairs=(a:finetuned:a0 a:ft1:a1 a:ft2:a2 b:finetuned:b0 b:ft1:b1 b:ft2:b2 c:finetuned:c0 c:ft1:c1 c:ft2:c2)
mkdir -p "$W/alone"
for i in "${!pairs[@]}"; do
  IFS=: read -r s f o <<<"${pairs[$i]}"
  # shellcheck disable=SC2086
  check "compress $o alone" "$DDCT" compress "$W/$s/base.safetensors" "$W/$s/$f.safetensors" -o "$W/alone/$o.ddct" \
    -q -T 1 ${opts[$i]}
done

# wait_job JOBID: until no task of it is pending or running (2 minutes at most)
wait_job() {
  for i in $(seq 600); do
    [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  return 1
}
# task_state JOBID TASK: its JobState (scontrol keeps finished jobs for MinJobAge)
task_state() { scontrol -o show job "$1_$2" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
submit() { # submit ARRAY: the job id
  (cd "$W" && DELTADCT=$DDCT sbatch --parsable --array="$1" --cpus-per-task=1 -o "$W/slurm-%A_%a.out" \
    "$SBATCH_SCRIPT" manifest.jsonl 3 results)
}

# ---------------------------------------------------------------- first run, one task cancelled
JOB=$(submit 0-2) || { bad "sbatch"; cat "$T/slurm/ctld.log" >&2; }
LOG1=$W/results/shard-1-of-3.jsonl
# cancel task 1 once its first line is logged: it is then coding its second (seconds at -T 1)
for i in $(seq 600); do
  [ -s "$LOG1" ] && break
  [ "$(task_state "$JOB" 1)" = COMPLETED ] && break
  sleep 0.05
done
scancel "${JOB}_1"
wait_job "$JOB" && ok || bad "the job array did not finish in 2 minutes"
for t in 0 2; do
  st=$(task_state "$JOB" $t)
  [ "$st" = COMPLETED ] && ok || { bad "task $t: $st"; cat "$W"/slurm-*_$t.out >&2; }
done
st=$(task_state "$JOB" 1)
[ "$st" = CANCELLED ] && ok || bad "task 1 should have been cancelled mid-run: $st"
grep -q '"status":"cancelled"' "$LOG1" && ok || { bad "the cancelled line is logged"; cat "$LOG1" "$W"/slurm-*_1.out >&2; }
[ "$(grep -c '"status":"ok"' "$LOG1")" -lt 3 ] && ok || bad "task 1 finished before it was cancelled"
# nothing half-written: no temporaries, and every output present verifies
left=$(find "$W/out" -name '.*.tmp.*' | wc -l)
[ "$left" = 0 ] && ok || { bad "temporaries left: $left"; ls -la "$W/out" >&2; }

# ---------------------------------------------------------------- resubmitted: the rest done once
JOB2=$(submit 1) || bad "sbatch (rerun)"
wait_job "$JOB2" && ok || bad "the rerun did not finish in 2 minutes"
st=$(task_state "$JOB2" 1)
[ "$st" = COMPLETED ] && ok || { bad "rerun of task 1: $st"; cat "$W"/slurm-"$JOB2"_1.out >&2; }
for i in "${!pairs[@]}"; do
  IFS=: read -r s f o <<<"${pairs[$i]}"
  check "$o verifies against its base" "$DDCT" verify "$W/out/$o.ddct" --base "$W/$s/base.safetensors" -q -T 1
  check "$o is what compress writes alone" cmp "$W/out/$o.ddct" "$W/alone/$o.ddct"
done
# every line ok exactly once over both runs, and the lines of the rerun that were done skipped
check "every line done exactly once" "$PY" - "$W/results" <<'PY'
import collections, glob, json, sys
ok, skipped = collections.Counter(), collections.Counter()
for f in glob.glob(sys.argv[1] + "/*.jsonl"):
    for l in open(f):
        r = json.loads(l)
        {"ok": ok, "skipped": skipped}.get(r["status"], collections.Counter())[r["line"]] += 1
        assert r["status"] in ("ok", "skipped", "cancelled"), r
        assert r["status"] != "ok" or (r["bytes"] > 0 and r["bpp"] > 0 and r["error"] is None), r
bad = {l: ok[l] for l in range(1, 10) if ok[l] != 1}
assert not bad, f"lines not done exactly once: {bad}"
assert sum(skipped.values()) >= 1 and all(4 <= l <= 6 for l in skipped), skipped
print("ok:", dict(ok), "skipped:", dict(skipped))
PY
left=$(find "$W/out" -name '.*.tmp.*' | wc -l)
[ "$left" = 0 ] && ok || bad "temporaries left after the rerun: $left"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
