#!/usr/bin/env python3
"""Write the small PyTorch checkpoints in tests/data/ without torch.

torch.save's output is a protocol-2 pickle in which tensors reduce to
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks) and storages
are persistent ids ('storage', torch.FloatStorage, key, 'cpu', numel). Stand-ins registered under
those module names make the standard pickler emit the same opcodes and globals. Run from the
repository root: python3 tools/make_torch_fixtures.py
"""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


def _rebuild_parameter(*args):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = utils.__name__
_rebuild_parameter.__module__ = utils.__name__
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
utils._rebuild_parameter = _rebuild_parameter

STORAGE_TYPES = {}
for name, fmt in [("FloatStorage", "f"), ("HalfStorage", "e"), ("LongStorage", "q")]:
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)
    STORAGE_TYPES[fmt] = cls


class Storage:
    def __init__(self, key, fmt, values):
        self.key, self.fmt, self.values = key, fmt, values

    def raw(self):
        return struct.pack("<%d%s" % (len(self.values), self.fmt), *self.values)


class Tensor:
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())
        self.parameter = parameter

    def __reduce__(self):
        inner = Tensor(*self.args[:4])
        if self.parameter:
            return (_rebuild_parameter, (inner, True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            pid = ("storage", STORAGE_TYPES[obj.fmt], obj.key, "cpu", len(obj.values))
            return pid + (None,) if self.legacy else pid
        return None


def state():
    """The checkpoint the Rust tests expect (tests/weights_formats.rs spells out the values)."""
    w = Storage("0", "f", [i * 0.5 for i in range(12)])  # fc.weight [3, 4] = arange * 0.5
    shared = Storage("1", "f", [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0])
    half = Storage("2", "e", [0.5, -1.5, 2.0])
    count = Storage("3", "q", [7])
    sd = collections.OrderedDict()
    sd["fc.weight"] = Tensor(w, 0, [3, 4], [4, 1], parameter=True)
    sd["fc.bias"] = Tensor(shared, 5, [3], [1])  # offset into a shared storage: 15, 16, 17
    sd["proj.weight"] = Tensor(shared, 0, [3, 2], [1, 3])  # transposed view: [[10,13],[11,14],[12,15]]
    sd["half.weight"] = Tensor(half, 0, [3], [1])
    sd["bn.num_batches_tracked"] = Tensor(count, 0, [], [])
    return {"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.1}}, [w, shared, half, count]


def dumps(obj, legacy):
    f = io.BytesIO()
    Pickler(f, legacy).dump(obj)
    return f.getvalue()


def zip_file(path, obj, storages, data_override=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("tiny/data.pkl", dumps(obj, False))
        z.writestr("tiny/byteorder", "little")
        for s in storages:
            raw = s.raw()
            if data_override and s.key in data_override:
                raw = data_override[s.key]
            z.writestr("tiny/data/" + s.key, raw)
        z.writestr("tiny/version", "3\n")


def legacy_bytes(obj, storages, main=None):
    f = io.BytesIO()
    for x in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(x, f, protocol=2)
    f.write(main if main is not None else dumps(obj, True))
    pickle.dump([s.key for s in storages], f, protocol=2)
    for s in storages:
        f.write(struct.pack("<q", len(s.values)))
        f.write(s.raw())
    return f.getvalue()


def main():
    obj, storages = state()
    zip_file("tests/data/tiny_zip.pth", obj, storages)
    legacy = legacy_bytes(obj, storages)
    open("tests/data/tiny_legacy.pth", "wb").write(legacy)
    # Hostile: the main pickle calls os.system (never executed: the reader refuses the global).
    evil = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwned!q\x01\x85q\x02Rq\x03."
    open("tests/data/evil_os_system.pth", "wb").write(legacy_bytes(obj, storages, main=evil))
    # Hostile: the last storage's bytes cut short.
    open("tests/data/truncated_storage.pth", "wb").write(legacy[:-4])
    # Hostile: a view whose offset runs past its storage (bias at offset 7 of 8 elements, size 3).
    bad_obj, bad_storages = state()
    bad_obj["state_dict"]["fc.bias"] = Tensor(bad_storages[1], 7, [3], [1])
    zip_file("tests/data/offset_past_end.pth", bad_obj, bad_storages)
    # Hostile: a zip whose storage entry is shorter than the pickle claims.
    zip_file("tests/data/short_zip_storage.pth", obj, storages, data_override={"0": b"\0" * 8})


if __name__ == "__main__":
    main()
