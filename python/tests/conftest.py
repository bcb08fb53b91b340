"""Shared fixtures of the deltadct Python tests.

Where things are (set by tests/cli_python.sh; the defaults fit a checkout built with `make`):
  DDCT_CLI      the deltadct command-line tool (build/deltadct)
  DDCT_GENPAIR  ddct-genpair (build/ddct-genpair)
  DDCT_SHARED   the shared data directory (../shared); tests that need it skip when it is absent
"""
import os
import subprocess

import pytest

import deltadct

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("DDCT_CLI") or os.path.join(REPO, "build", "deltadct")
GENPAIR = os.environ.get("DDCT_GENPAIR") or os.path.join(REPO, "build", "ddct-genpair")
SHARED = os.environ.get("DDCT_SHARED") or os.path.join(REPO, "..", "shared")

DTYPES = ["F32", "F16", "BF16"]


def run(*args, check=True):
    """Run a command; returns its stdout (text). Fails the test with its output when it fails."""
    p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


class Pair:
    """A genpair pair, compressed with the defaults (through the Python API) and rebuilt."""

    def __init__(self, root, dtype, seed=3):
        self.dir = os.path.join(root, f"{dtype}-{seed}")
        run(GENPAIR, self.dir, "--dtype", dtype, "--seed", seed)
        self.dtype = dtype
        self.base = os.path.join(self.dir, "base.safetensors")
        self.ft = os.path.join(self.dir, "finetuned.safetensors")
        self.ddct = os.path.join(self.dir, "model.ddct")
        self.rebuilt = os.path.join(self.dir, "rebuilt.safetensors")

    def make(self):
        deltadct.compress(self.base, self.ft, self.ddct)
        deltadct.decompress(self.base, self.ddct, self.rebuilt)
        return self


def _tool(path, var, what):
    """path when it is an executable; a failure when the variable named it, else a skip."""
    if os.access(path, os.X_OK):
        return path
    if os.environ.get(var):
        pytest.fail(f"${var}: no {what} at {path}")
    pytest.skip(f"no {what} at {path} (build it, or set ${var})")


@pytest.fixture(scope="package")
def cli():
    return _tool(CLI, "DDCT_CLI", "deltadct CLI")


@pytest.fixture(scope="package")
def genpair():
    return _tool(GENPAIR, "DDCT_GENPAIR", "ddct-genpair")


@pytest.fixture(scope="package")
def pairs(tmp_path_factory, genpair):
    root = str(tmp_path_factory.mktemp("pairs"))
    return {dt: Pair(root, dt).make() for dt in DTYPES}


@pytest.fixture(params=DTYPES)
def pair(request, pairs):
    return pairs[request.param]


@pytest.fixture(scope="package")
def other_base(tmp_path_factory, genpair):
    """A base of the same shapes as the pairs' F32 one but other values (seed 4)."""
    return Pair(str(tmp_path_factory.mktemp("other")), "F32", seed=4).base


@pytest.fixture(scope="package")
def shared():
    fx = os.path.join(SHARED, "fixtures", "gpt-prose")
    tool = os.path.join(SHARED, "tools", "gpt_eval.py")
    if not (os.path.isfile(os.path.join(fx, "base.safetensors")) and os.path.isfile(tool)):
        pytest.skip(f"shared fixtures not found under {SHARED} (gpt-prose and tools/gpt_eval.py)")
    return SHARED
