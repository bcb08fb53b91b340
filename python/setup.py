"""Build of the deltadct Python package: the package plus a copy of the built libdeltadct.

The library is looked for in $DDCT_BUILD (a build directory, or the library file itself), else in
../build relative to this file (the tree `make` builds), and copied into the package as
deltadct/libdeltadct.so, so that the installed package carries it. Install offline, from the
repository root after `make`:

    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/pip install --no-build-isolation ./python
"""
import glob
import os
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def find_library():
    """The real file of the built libdeltadct.so (symbolic links followed); raises SystemExit when none."""
    tried = []
    env = os.environ.get("DDCT_BUILD")
    places = [env] if env else []
    places.append(os.path.join(HERE, "..", "build"))
    for place in places:
        place = os.path.abspath(place)
        if os.path.isfile(place):
            return os.path.realpath(place)
        hits = glob.glob(os.path.join(place, "libdeltadct.so*"))
        tried.append(place)
        if hits:
            first = min(hits, key=len)  # libdeltadct.so, the link to the current one
            return os.path.realpath(first)
    raise SystemExit("deltadct: no libdeltadct.so* found in " + ", ".join(tried) +
                     ": build the library first (make), or set DDCT_BUILD to its build directory")


def version_of(path):
    m = re.search(r"\.so\.(\d+\.\d+\.\d+)$", path)
    if m:
        return m.group(1)
    try:
        with open(os.path.join(HERE, "..", "include", "deltadct.h")) as f:
            m = re.search(r'#define DDCT_VERSION_STRING "([^"]+)"', f.read())
        if m:
            return m.group(1)
    except OSError:
        pass
    return "0.0.0"


LIBRARY = find_library()


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "deltadct")
        self.mkpath(dst)
        for old in glob.glob(os.path.join(dst, "libdeltadct.so*")):
            os.remove(old)
        shutil.copyfile(LIBRARY, os.path.join(dst, "libdeltadct.so"))
        os.chmod(os.path.join(dst, "libdeltadct.so"), 0o755)


class BinaryDistribution(Distribution):
    """The package carries a shared library: a platform wheel, not a pure one."""

    def has_ext_modules(self):
        return True


setup(version=version_of(LIBRARY), cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
