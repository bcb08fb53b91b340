"""A small safetensors reader for the tests (standard library only): the header's JSON and each
tensor's raw bytes, read from the file itself, never through libdeltadct."""
import json
import struct


class SafeTensors:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        self.metadata = header.pop("__metadata__", None)
        self.header = header  # name -> {"dtype", "shape", "data_offsets"}, in file order
        self._data = memoryview(data)[8 + n:]

    def names(self):
        return list(self.header)

    def dtype(self, name):
        return self.header[name]["dtype"]

    def shape(self, name):
        return list(self.header[name]["shape"])

    def raw(self, name):
        s, e = self.header[name]["data_offsets"]
        return bytes(self._data[s:e])
