"""Writes reference.gguf: a GGUF file made by gguf-py (llama.cpp's Python package), the reference the Rust
reader and dequantiser are tested against (crates/dbrmt-model/tests/gguf_reference.rs).

It holds metadata of every value type (nested arrays included), `general.alignment` = 64, and for each type
the loader dequantises a tensor `q.<TYPE>` of random blocks (scales drawn finite) beside an F32 tensor
`expected.<TYPE>` holding gguf-py's dequantisation of it.

    python3 -m venv v && v/bin/pip install gguf==0.19.0 numpy && v/bin/python make_reference.py
"""

import sys
from pathlib import Path

import numpy as np
from gguf import GGUFWriter, GGUFValueType, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

rng = np.random.default_rng(20250207)
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("reference.gguf")

w = GGUFWriter(str(out), "test")
w.add_custom_alignment(64)
w.add_key_value("t.u8", 200, GGUFValueType.UINT8)
w.add_key_value("t.i8", -100, GGUFValueType.INT8)
w.add_key_value("t.u16", 60000, GGUFValueType.UINT16)
w.add_key_value("t.i16", -30000, GGUFValueType.INT16)
w.add_key_value("t.u32", 4000000000, GGUFValueType.UINT32)
w.add_key_value("t.i32", -2000000000, GGUFValueType.INT32)
w.add_key_value("t.u64", 2**63 + 5, GGUFValueType.UINT64)
w.add_key_value("t.i64", -(2**62), GGUFValueType.INT64)
w.add_key_value("t.f32", 0.1, GGUFValueType.FLOAT32)
w.add_key_value("t.f64", 0.1, GGUFValueType.FLOAT64)
w.add_key_value("t.bool", True, GGUFValueType.BOOL)
w.add_key_value("t.str", "héllo ✓", GGUFValueType.STRING)
w.add_key_value("t.strs", ["a", "", "Ġb"], GGUFValueType.ARRAY)
w.add_key_value("t.i32s", [1, -2, 3], GGUFValueType.ARRAY, sub_type=GGUFValueType.INT32)
w.add_key_value("t.nested", [["x", "y"], ["z"]], GGUFValueType.ARRAY)


def random_blocks(qtype: T, n_blocks: int) -> np.ndarray:
    """Random bytes with every f16 scale field set to a finite value in ±[2^-10, 2)."""
    _, size = GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    halves = {
        T.Q8_0: [0],
        T.Q4_0: [0],
        T.Q4_1: [0, 2],
        T.Q4_K: [0, 2],
        T.Q6_K: [208],
    }[qtype]
    for at in halves:
        scale = rng.uniform(2**-10, 2, size=n_blocks) * rng.choice([-1, 1], size=n_blocks)
        b[:, at : at + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return b


for qtype in [T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q6_K]:
    block, size = GGML_QUANT_SIZES[qtype]
    per_row = max(2, 512 // block)
    raw = random_blocks(qtype, 2 * per_row).reshape(2, per_row * size)
    w.add_tensor(f"q.{qtype.name}", raw, raw_shape=raw.shape, raw_dtype=qtype)
    w.add_tensor(f"expected.{qtype.name}", dequantize(raw, qtype).astype(np.float32))

values = rng.normal(0, 3, size=(3, 8)).astype(np.float32)
w.add_tensor("q.F32", values)
w.add_tensor("expected.F32", values)
f16 = values.astype(np.float16)
w.add_tensor("q.F16", f16)
w.add_tensor("expected.F16", f16.astype(np.float32))
bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bf16 bits
w.add_tensor("q.BF16", bf16.view(np.uint8), raw_shape=bf16.view(np.uint8).shape, raw_dtype=T.BF16)
w.add_tensor("expected.BF16", dequantize(bf16.view(np.uint8), T.BF16).astype(np.float32))

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"wrote {out} ({out.stat().st_size} bytes)")
