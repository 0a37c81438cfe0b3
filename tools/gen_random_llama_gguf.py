#!/usr/bin/env python3
"""Write a llama GGUF file (v3) with seeded random Q4_0 matrices: the model of the 1B memory
bar (issue 14), shaped like TinyLlama-1.1B unless told otherwise, without downloading one.

    tools/gen_random_llama_gguf.py OUT.gguf [--layers 22 --hidden 2048 --ffn 5632 --heads 32
                                             --kv-heads 4 --vocab 32000 --seed 0]

Matrices (token_embd, attn_q/k/v/output, ffn_gate/up/down, output) are Q4_0 blocks: an f16 scale
drawn so the weights have the spread of an N(0, 0.02²) init, and 16 bytes of random 4-bit codes.
Norm weights are F32 ones. Only the standard library is used, so the tool runs wherever Python
does; random.Random(seed).randbytes keeps the file the same for a seed.
"""

import argparse
import random
import struct
import sys

GGUF_MAGIC = 0x46554747
ALIGN = 32
T_F32, T_Q4_0 = 0, 2
V_U32, V_F32, V_STR = 4, 6, 8


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == V_U32:
        return out + struct.pack("<I", value)
    if vtype == V_F32:
        return out + struct.pack("<f", value)
    return out + gguf_str(value)


def q4_0(rows, cols, rng):
    """rows x cols of Q4_0: per block of 32, an f16 scale and 16 random code bytes."""
    blocks = rows * cols // 32
    buf = bytearray(rng.randbytes(blocks * 18))
    # Codes are uniform in 0..15, so x = (q - 8) d has a standard deviation of about 4.6 d:
    # d = 0.02 / 4.6 gives the spread of HF's N(0, 0.02²) initialisation.
    scale = struct.pack("<e", 0.02 / 4.6)
    buf[0::18] = scale[0:1] * blocks
    buf[1::18] = scale[1:2] * blocks
    return bytes(buf)


def tensors(a):
    h, f, hd = a.hidden, a.ffn, a.hidden // a.heads
    yield "token_embd.weight", (a.vocab, h), T_Q4_0
    for i in range(a.layers):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", (h,), T_F32
        yield p + "attn_q.weight", (a.heads * hd, h), T_Q4_0
        yield p + "attn_k.weight", (a.kv_heads * hd, h), T_Q4_0
        yield p + "attn_v.weight", (a.kv_heads * hd, h), T_Q4_0
        yield p + "attn_output.weight", (h, a.heads * hd), T_Q4_0
        yield p + "ffn_norm.weight", (h,), T_F32
        yield p + "ffn_gate.weight", (f, h), T_Q4_0
        yield p + "ffn_up.weight", (f, h), T_Q4_0
        yield p + "ffn_down.weight", (h, f), T_Q4_0
    yield "output_norm.weight", (h,), T_F32
    yield "output.weight", (a.vocab, h), T_Q4_0


def nbytes(shape, t):
    n = 1
    for d in shape:
        n *= d
    return n * 4 if t == T_F32 else n // 32 * 18


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    for name, default in [("layers", 22), ("hidden", 2048), ("ffn", 5632), ("heads", 32),
                          ("kv-heads", 4), ("vocab", 32000), ("context", 2048), ("seed", 0)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    if a.hidden % 32 or a.ffn % 32 or a.hidden % a.heads or a.heads % a.kv_heads:
        sys.exit("hidden and ffn must be multiples of 32, heads must divide hidden, kv-heads heads")
    meta = [
        kv("general.architecture", V_STR, "llama"),
        kv("general.name", V_STR, f"random-llama-{a.layers}x{a.hidden}-q4_0-seed{a.seed}"),
        kv("general.alignment", V_U32, ALIGN),
        kv("llama.context_length", V_U32, a.context),
        kv("llama.embedding_length", V_U32, a.hidden),
        kv("llama.block_count", V_U32, a.layers),
        kv("llama.feed_forward_length", V_U32, a.ffn),
        kv("llama.attention.head_count", V_U32, a.heads),
        kv("llama.attention.head_count_kv", V_U32, a.kv_heads),
        kv("llama.rope.dimension_count", V_U32, a.hidden // a.heads),
        kv("llama.rope.freq_base", V_F32, 10000.0),
        kv("llama.attention.layer_norm_rms_epsilon", V_F32, 1e-5),
        kv("llama.vocab_size", V_U32, a.vocab),
    ]
    specs = list(tensors(a))
    infos, offset = [], 0
    for name, shape, t in specs:
        # GGUF lists dimensions fastest first: (cols, rows).
        dims = tuple(reversed(shape))
        infos.append(gguf_str(name) + struct.pack("<I", len(dims)) +
                     b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", t, offset))
        offset += -(-nbytes(shape, t) // ALIGN) * ALIGN
    rng = random.Random(a.seed)
    with open(a.out, "wb") as out:
        out.write(struct.pack("<IIQQ", GGUF_MAGIC, 3, len(specs), len(meta)))
        out.write(b"".join(meta) + b"".join(infos))
        out.write(b"\0" * (-out.tell() % ALIGN))
        for name, shape, t in specs:
            data = struct.pack(f"<{shape[0]}f", *([1.0] * shape[0])) if t == T_F32 else q4_0(*shape, rng)
            out.write(data + b"\0" * (-len(data) % ALIGN))
    print(f"{a.out}: {len(specs)} tensors, {offset / 2**30:.2f} GiB of data")


if __name__ == "__main__":
    main()
