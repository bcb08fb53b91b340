#!/usr/bin/env bash
# The Python package (python/): installed offline into a fresh virtual environment (Debian's
# /usr/bin/python3 with its site packages, pip install --no-build-isolation, the built library
# copied into the package from the build directory), then its pytest suite (python/tests/):
# compress/decompress/verify/info/evaluate against the CLI, every tensor of deltadct.open equal
# byte for byte to the rebuilt file's for F32, F16 and BF16 pairs, errors, progress and cancelling,
# and with torch state_dict / load_into (the gpt-prose model's loss, peak memory) when ../shared is
# there. Skips (exit 0) when /usr/bin/python3 lacks numpy, pytest or venv, and under sanitizers.
# usage: cli_python.sh DELTADCT GENPAIR SHARED_DIR
set -uo pipefail
DDCT=$1; GEN=$2; SHARED=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
if [ "${DDCT_ASAN:-0}" = 1 ]; then
  # a sanitized libdeltadct needs its runtime loaded before it, which python does not do
  echo "sanitizer build: the Python package is not tested against it: skipped"; exit 0
fi
[ -x "$PY" ] || { echo "$PY not found: skipped"; exit 0; }
for m in numpy pytest venv ensurepip setuptools; do
  "$PY" -c "import $m" 2>/dev/null || { echo "$PY has no module $m (Debian: python3-numpy python3-pytest python3-venv python3-setuptools): skipped"; exit 0; }
done
source "$HERE/tools/harness.sh"
BUILD=$(cd "$(dirname "$DDCT")" && pwd)
DDCT=$BUILD/$(basename "$DDCT"); GEN=$(cd "$(dirname "$GEN")" && pwd)/$(basename "$GEN")
[ -n "$SHARED" ] && [ -d "$SHARED" ] && SHARED=$(cd "$SHARED" && pwd)

# Install from a copy, so that the build leaves nothing (build/, *.egg-info) in the source tree.
mkdir -p "$T/src"
(cd "$HERE/../python" && tar --exclude=./build --exclude='./*.egg-info' --exclude=__pycache__ \
   --exclude=.pytest_cache --exclude='./deltadct/libdeltadct.so*' -cf - .) | (cd "$T/src" && tar -xf -)
check "venv (--system-site-packages)" "$PY" -m venv --system-site-packages "$T/venv"
check "pip install --no-build-isolation (offline)" env DDCT_BUILD="$BUILD" PIP_NO_INDEX=1 \
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$T/venv/bin/pip" install -q --no-build-isolation "$T/src"
VPY=$T/venv/bin/python
check "the package carries the library" sh -c "ls '$T'/venv/lib/python3*/site-packages/deltadct/libdeltadct.so"
check "import deltadct (library from the package)" env -u DDCT_LIBRARY "$VPY" -c \
  "import deltadct, os; assert os.path.dirname(deltadct.library_path) == os.path.dirname(deltadct.__file__); print(deltadct.__version__)"

# The tests, run from the source tree's python/tests against the installed package (not the
# sources: the work directory is not on sys.path). No bytecode or cache left in the tree.
if (cd "$T" && env -u DDCT_LIBRARY DDCT_CLI="$DDCT" DDCT_GENPAIR="$GEN" DDCT_SHARED="$SHARED" \
      PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=2 timeout 600 "$VPY" -m pytest -p no:cacheprovider -q -ra \
      --basetemp="$T/pytest" "$HERE/../python/tests" >"$T/pytest.log" 2>&1); then
  ok; tail -n 15 "$T/pytest.log"
else
  bad "pytest python/tests"; cat "$T/pytest.log" >&2
fi

# The README's Python example, as written, on make demo's pair (build/demo under a scratch directory)
mkdir -p "$T/readme/build"
check "make demo's pair" "$GEN" "$T/readme/build/demo"
"$PY" - "$HERE/../README.md" "$T/readme/example.py" <<'PYEOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"```python\n(.*?)```", text, re.S)
open(sys.argv[2], "w").write(blocks[0] if blocks else "raise SystemExit('no python example in README.md')\n")
PYEOF
check "the README's Python example runs as written" sh -c "cd '$T/readme' && env -u DDCT_LIBRARY '$VPY' example.py"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
