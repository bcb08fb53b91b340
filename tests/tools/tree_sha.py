#!/usr/bin/env python3
"""tree_sha.py PATH — SHA-256 of a file, or of a directory: the SHA-256 of its "name sha256" lines
(its regular files, sorted by name). Standard library only."""
import hashlib, os, sys


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


p = sys.argv[1]
if os.path.isdir(p):
    lines = "".join("%s %s\n" % (n, sha(os.path.join(p, n))) for n in sorted(os.listdir(p)))
    print(hashlib.sha256(lines.encode()).hexdigest())
else:
    print(sha(p))
