"""ddctfile.py — read and rewrite a .ddct container (docs/FORMAT.md) from tests, checksums included.

Checksums are XXH3-64 from the system's libxxhash (ctypes), the library deltadct links, so a test
can change bytes of a record, the index or the header and make every checksum valid again: such a
file passes `deltadct verify --quick` and only decoding can tell what is wrong.
"""
import ctypes
import ctypes.util
import struct

_lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
_lib.XXH3_64bits.restype = ctypes.c_uint64
_lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh3(b):
    b = bytes(b)
    return _lib.XXH3_64bits(b, len(b))


def varint(b, pos):
    v, shift = 0, 0
    while True:
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, pos


def put_varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class Ddct:
    """A parsed .ddct: header JSON, records (with their params / side / data spans) and index."""

    def __init__(self, data):
        self.b = bytearray(data)
        b = self.b
        jl = struct.unpack_from("<I", b, 16)[0]
        self.json_at, self.json_len = 20, jl
        self.header_end = 20 + jl + 8
        f = len(b) - 48
        self.index_off, self.index_len = struct.unpack_from("<QQ", b, f)
        self.entries = []
        pos = self.index_off
        n, pos = varint(b, pos)
        for _ in range(n):
            nl, pos = varint(b, pos)
            name_at = pos
            name = bytes(b[pos:pos + nl])
            pos += nl
            dtype, ndim = b[pos], b[pos + 1]
            pos += 2
            shape = []
            for _ in range(ndim):
                d, pos = varint(b, pos)
                shape.append(d)
            off, pos = varint(b, pos)
            ln, pos = varint(b, pos)
            self.entries.append({"name": name, "name_at": name_at, "dtype": dtype, "shape": shape,
                                 "offset": off, "length": ln, **self._record(off, ln)})

    def _record(self, off, ln):
        b = self.b
        pos = off
        codec, flags = b[pos], b[pos + 1]
        pos += 2
        if flags & 1:
            pos += 8
        spans = {}
        for k in ("params", "side", "data"):
            n, pos = varint(b, pos)
            spans[k] = (pos, n)
            pos += n
        return {"codec": codec, "flags": flags, **spans}

    def fix_record(self, i):
        e = self.entries[i]
        body = e["offset"] + e["length"] - 8
        struct.pack_into("<Q", self.b, body, xxh3(self.b[e["offset"]:body]))

    def fix_header(self):
        end = 20 + self.json_len
        struct.pack_into("<Q", self.b, end, xxh3(self.b[:end]))

    def fix_index(self):
        f = len(self.b) - 48
        struct.pack_into("<Q", self.b, f + 16, xxh3(self.b[self.index_off:self.index_off + self.index_len]))
        struct.pack_into("<Q", self.b, f + 32, xxh3(self.b[f:f + 32]))

    def write(self, path):
        with open(path, "wb") as fh:
            fh.write(self.b)


def load(path):
    with open(path, "rb") as fh:
        return Ddct(fh.read())
