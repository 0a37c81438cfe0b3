"""Read a GGUF file whet exported with llama.cpp's own `gguf` package and compare it, tensor for
tensor, with what it should hold (tests/export_formats.rs runs this with the package on
PYTHONPATH).

usage: gguf_readback.py MODEL.gguf EXPECTED.safetensors EXPECTED_META.json

EXPECTED.safetensors holds every tensor as f32 under its GGUF name, in GGUF row order.
EXPECTED_META.json maps metadata keys to values, plus "types": {tensor name: ggml type name}.
Each tensor must match within its type's precision: exact for F32, 2^-10 relative for F16,
and half a Q8_0 step plus f16 scale rounding for Q8_0. Prints one line per failure, then
"gguf_readback: ok N tensors" or exits 1.
"""

import json
import struct
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType
from gguf.quants import dequantize


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(t["shape"])
    return out


def field_value(field):
    """A metadata field as a Python value (scalar, string or list), f32 values as floats."""
    return field.contents()


def bound(want, qtype):
    """The largest |got - want| allowed for each element."""
    if qtype == GGMLQuantizationType.F32:
        return np.zeros_like(want)
    if qtype == GGMLQuantizationType.F16:
        return np.abs(want) * 2.0**-10 + 6e-8
    if qtype == GGMLQuantizationType.Q8_0:
        blocks = want.reshape(-1, 32)
        amax = np.abs(blocks).max(axis=1, keepdims=True)
        per_block = amax / 254.0 + amax * 2.0**-10
        return np.broadcast_to(per_block, blocks.shape).reshape(want.shape)
    raise ValueError(f"no bound for {qtype.name}")


def main(gguf_path, expected_path, meta_path):
    reader = GGUFReader(gguf_path)
    expected = read_safetensors(expected_path)
    meta = json.load(open(meta_path))
    types = meta.pop("types")
    failures = []
    for key, want in meta.items():
        field = reader.fields.get(key)
        got = None if field is None else field_value(field)
        ok = got == want if not isinstance(want, float) else got is not None and abs(got - want) <= 1e-6 * abs(want)
        if not ok:
            failures.append(f"metadata {key}: {str(got)[:80]} != {str(want)[:80]}")
    names = {t.name for t in reader.tensors}
    if names != set(expected):
        failures.append(f"tensor names differ: extra {sorted(names - set(expected))[:5]}, "
                        f"missing {sorted(set(expected) - names)[:5]}")
    for t in reader.tensors:
        if t.name not in expected:
            continue
        want = expected[t.name]
        if t.tensor_type.name != types[t.name]:
            failures.append(f"{t.name}: type {t.tensor_type.name}, expected {types[t.name]}")
        # gguf reports shapes innermost-first (ggml's ne); numpy's is row-major.
        if list(reversed([int(d) for d in t.shape])) != list(want.shape):
            failures.append(f"{t.name}: shape {list(t.shape)} (ne), expected {list(want.shape)} row-major")
            continue
        got = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(want.shape)
        err = np.abs(got - want) - bound(want, t.tensor_type)
        if (err > 0).any():
            i = int(np.argmax(err))
            failures.append(f"{t.name} ({t.tensor_type.name}): element {i} is {got.flat[i]}, "
                            f"expected {want.flat[i]}")
    for f in failures:
        print("gguf_readback:", f)
    if failures:
        sys.exit(1)
    print(f"gguf_readback: ok {len(reader.tensors)} tensors, {len(meta)} metadata keys")


if __name__ == "__main__":
    main(*sys.argv[1:4])
