#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target (fuzz/corpus/<target>/) from the test data: small files only
(a few hundred KB in all). Run from the repository root: python3 fuzz/make_seeds.py"""
import json, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "testdata", "fixtures")
CASES = ["tiny-armt-names", "tiny-hf-tied-partial", "tiny-single-short", "small-bf16"]


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I64": 8, "U8": 1}


def shrunk_checkpoint(case):
    """The fixture's tensor names and dtypes with every dimension cut to at most 2 (real names, tiny data)."""
    path = os.path.join(FIX, case, "model.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None)
    tensors = []
    for i, (name, info) in enumerate(sorted(header.items())[:24]):
        shape = [min(d, 2) for d in info["shape"]]
        count = 1
        for d in shape:
            count *= d
        tensors.append((name, info["dtype"], shape, bytes((i + k) % 251 for k in range(count * SIZES.get(info["dtype"], 4)))))
    return safetensors(tensors, meta)


def fnv(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def state(segments, open_ids, values, checksum=True, identity="dbrmt-id1:0123456789abcdef"):
    """A saved state of 2 layers, D = 6, d = 4 (the harness's STATE_EXPECT)."""
    layers = []
    k = 0
    for i in range(2):
        a = struct.pack("<24f", *[values(k + j) for j in range(24)])
        k += 24
        z = struct.pack("<6f", *[values(k + j) for j in range(6)])
        k += 6
        layers.append((a, z))
    seg, op = str(segments), ",".join(map(str, open_ids))
    meta = {"dbrmt.model": identity, "dbrmt.segments": seg, "dbrmt.open_ids": op}
    if checksum:
        h = 0xCBF29CE484222325
        for part in (identity, seg, op):
            h = fnv(struct.pack("<Q", len(part.encode())) + part.encode(), h)
        for a, z in layers:
            h = fnv(a + z, h)
        meta["dbrmt.checksum"] = "dbrmt-sum1:%016x" % h
    tensors = []
    for i, (a, z) in enumerate(layers):
        tensors.append((f"layers.{i}.A", "F32", [6, 4], a))
        tensors.append((f"layers.{i}.z", "F32", [6], z))
    return safetensors(tensors, meta)


def npy(descr, shape, raw, version=1):
    dims = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pre = 10 if version == 1 else 12
    h += " " * (-(pre + len(h) + 1) % 64) + "\n"
    ln = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + h.encode() + raw


def main():
    for i, case in enumerate(CASES):
        put("safetensors_header", f"{case}.safetensors", shrunk_checkpoint(case))
        with open(os.path.join(FIX, case, "config.json")) as f:
            put("config_json", f"{case}.json", f.read())
        with open(os.path.join(FIX, case, "input_ids.npy"), "rb") as f:
            put("npy", f"{case}-ids.npy", f.read())
    put("safetensors_header", "state.safetensors", state(3, [1, 2], lambda k: k * 0.25 - 3))
    smollm2 = {"architectures": ["LlamaForCausalLM"], "vocab_size": 49152, "hidden_size": 576,
               "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
               "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": True,
               "hidden_act": "silu", "head_dim": None}
    put("config_json", "smollm2-plain.json", json.dumps(smollm2))
    llama = {"vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
             "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "rms_norm_eps": 1e-5,
             "rope_theta": 500000.0, "tie_word_embeddings": True,
             "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
             "armt": {"num_mem_tokens": 128, "d_mem": 64, "segment_size": 1024, "nu": 3, "correction": True}}
    put("config_json", "llama-3.2-1b-armt.json", json.dumps(llama))
    put("npy", "f32.npy", npy("<f4", [2, 3], struct.pack("<6f", 0, 1, -2, 3.5, 1e-3, 7)))
    put("npy", "i8-v2.npy", npy("<i8", [1, 3], struct.pack("<3q", 5, 6, 7), version=2))
    put("npy", "i4-v3.npy", npy("<i4", [4], struct.pack("<4i", 1, 2, 3, 4), version=3))
    put("saved_state", "closed-3-open-2.safetensors", state(3, [1, 2], lambda k: k * 0.25 - 3))
    put("saved_state", "fresh.safetensors", state(0, [], lambda k: 0.0))
    put("saved_state", "fresh-open.safetensors", state(0, [9, 8, 7], lambda k: 0.0))
    put("saved_state", "no-checksum.safetensors", state(1, [42], lambda k: (k % 7) - 3.0, checksum=False))
    gguf = os.path.join(ROOT, "testdata", "gguf", "reference.gguf")
    with open(gguf, "rb") as f:
        put("gguf", "reference.gguf", f.read())
    # tokenizer: flags, extra tokens separated by NUL, 0xFF, text
    put("tokenizer", "plain", b"\x00he\x00ll\x00hell\x00hello\x00 w\x00 world\xffhello world, hello!")
    put("tokenizer", "special", b"\x0a<|x|>\x00ab\x00abc\x00\xe6\x9d\xb1\xffab <|x|>abc \xe6\x9d\xb1\xe4\xba\xac")
    put("tokenizer", "dropped", b"\x01\x01\x02\x00ab\xffa\x01b tab\tnewline\n")
    put("tokenizer", "missing-printable", b"\x01AB\x00x\xffABBA")
    put("tokenizer", "bos", b"\x08\x00 a\x00 b\xff a b c \xf0\x9f\x9a\xa2")


if __name__ == "__main__":
    sys.exit(main())
