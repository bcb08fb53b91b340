#!/usr/bin/env bash
# Installs the Debian packages deltadct builds and tests with (idempotent; needs root or sudo).
set -euo pipefail
PKGS="build-essential cmake pkg-config libzstd-dev libjansson-dev libxxhash-dev zlib1g-dev liblapacke-dev libopenblas-dev zstd clang libclang-rt-14-dev libomp-14-dev time groff-base"
# the Python package (python/) and its tests: Debian's interpreter, numpy, torch, pytest
PKGS="$PKGS python3 python3-venv python3-setuptools python3-wheel python3-pip python3-numpy python3-pytest python3-torch"
# deltadct batch: the Slurm test (a one-node cluster on localhost) and compress_many on Dask
PKGS="$PKGS munge slurmctld slurmd slurm-client python3-distributed"
# tests/cli_gguf.sh: npm installs @huggingface/gguf, an independent GGUF reader (an npm already on
# PATH, e.g. the one bundled with a nodejs package that conflicts with Debian's npm, is kept)
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
if [ "${1:-}" = "--bench" ]; then PKGS="$PKGS python3-numpy python3-scipy python3-torch libopenblas0-pthread time bc"; fi
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
