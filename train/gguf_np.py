"""A llama.cpp GGUF file read with numpy only, dequantised as the engine dequantises it.

The engine (`crates/dbrmt-formats/src/gguf/dequant.rs`) computes ggml's reference `dequantize_row_*` in f32 with
no fused operations: Q4_1 `x = f32(q) * d + m` (two roundings), Q8_0 `x = f32(q) * d`, Q4_0 `x = f32(q - 8) * d`;
F16/BF16 are widened exactly. numpy's float32 `*` and `+` round the same way, so the values here are the engine's
bits. Checked end to end, not tensor by tensor: `test_armt_torch.py` runs the same model through `dbrmt run
--device cpu` (logits within 2e-6, A and z within 1e-4), which a dequantisation slip would break by orders of
magnitude. `attn_q` / `attn_k` rows are put back from llama.cpp's interleaved order into Hugging Face's
rotate-half order, as the engine does (`gguf/permute.rs`).

No third-party GGUF package is used (the H200 host has none): the header layout follows llama.cpp's
`docs/gguf.md` (version 2 and 3, little-endian).
"""
from __future__ import annotations

import hashlib
import struct
from typing import Dict, Tuple

import numpy as np

# ggml type ids -> (name, block size in elements, block size in bytes)
GGML_TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    8: ("Q8_0", 32, 34),
    30: ("BF16", 1, 2),
}

# metadata value types
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf, self.at = buf, 0

    def take(self, fmt: str):
        v = struct.unpack_from(fmt, self.buf, self.at)[0]
        self.at += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.take("<Q")
        s = bytes(self.buf[self.at:self.at + n]).decode("utf-8")
        self.at += n
        return s

    def value(self, t: int):
        if t in _SCALARS:
            return self.take(_SCALARS[t])
        if t == _STRING:
            return self.string()
        if t == _ARRAY:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"unknown GGUF metadata type {t}")


class GGUF:
    """Header, metadata and tensor table of a GGUF file; tensor data read on demand."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        r = _Reader(memoryview(self.data))
        if r.take("<4s") != b"GGUF":
            raise ValueError(f"{path}: not a GGUF file")
        self.version = r.take("<I")
        if self.version not in (2, 3):
            raise ValueError(f"{path}: GGUF version {self.version} is not supported")
        n_tensors, n_kv = r.take("<Q"), r.take("<Q")
        self.meta = {}
        for _ in range(n_kv):
            k = r.string()
            self.meta[k] = r.value(r.take("<I"))
        self.tensors: Dict[str, Tuple[Tuple[int, ...], int, int]] = {}
        for _ in range(n_tensors):
            name = r.string()
            nd = r.take("<I")
            ne = [r.take("<Q") for _ in range(nd)]
            t, off = r.take("<I"), r.take("<Q")
            self.tensors[name] = (tuple(reversed(ne)), t, off)  # row-major shape
        align = int(self.meta.get("general.alignment", 32))
        self.data_start = (r.at + align - 1) // align * align

    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def raw(self, name: str) -> Tuple[Tuple[int, ...], int, bytes]:
        shape, t, off = self.tensors[name]
        if t not in GGML_TYPES:
            raise ValueError(f"{name}: ggml type {t} is not supported here")
        _, bs, bb = GGML_TYPES[t]
        n = int(np.prod(shape))
        start = self.data_start + off
        return shape, t, self.data[start:start + n // bs * bb]

    def tensor(self, name: str) -> np.ndarray:
        """The tensor as float32, row-major `shape`, values as the engine dequantises them."""
        shape, t, b = self.raw(name)
        return dequantize(t, b).reshape(shape)


def dequantize(t: int, b: bytes) -> np.ndarray:
    name = GGML_TYPES[t][0]
    if name == "F32":
        return np.frombuffer(b, dtype="<f4").astype(np.float32)
    if name == "F16":
        return np.frombuffer(b, dtype="<f2").astype(np.float32)
    if name == "BF16":
        u = np.frombuffer(b, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32)
    if name == "Q8_0":
        blk = np.frombuffer(b, dtype=np.uint8).reshape(-1, 34)
        d = blk[:, 0:2].copy().view("<f2").astype(np.float32)          # [nb, 1]
        q = blk[:, 2:34].view(np.int8).astype(np.float32)               # [nb, 32]
        return (q * d).reshape(-1)
    if name in ("Q4_0", "Q4_1"):
        bb = 18 if name == "Q4_0" else 20
        blk = np.frombuffer(b, dtype=np.uint8).reshape(-1, bb)
        d = blk[:, 0:2].copy().view("<f2").astype(np.float32)
        qs = blk[:, bb - 16:]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1)                # elements 0..16 low, 16..32 high nibbles
        if name == "Q4_0":
            return ((q.astype(np.int16) - 8).astype(np.float32) * d).reshape(-1)
        m = blk[:, 2:4].copy().view("<f2").astype(np.float32)
        return (q.astype(np.float32) * d + m).reshape(-1)
    raise ValueError(name)


def unpermute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's stored q/k row order -> Hugging Face's (per head, stored row 2j+s holds HF row s*hd/2+j)."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def llama_from_gguf(path: str):
    """(config dict, {HF name: float32 ndarray}, sha256) of a LLaMA GGUF, as the engine loads it."""
    g = GGUF(path)
    m = g.meta
    if m.get("general.architecture") != "llama":
        raise ValueError(f"{path}: not a llama GGUF")
    d = int(m["llama.embedding_length"])
    H = int(m["llama.attention.head_count"])
    KV = int(m.get("llama.attention.head_count_kv", H))
    L = int(m["llama.block_count"])
    cfg = dict(
        vocab_size=int(m.get("llama.vocab_size", len(m.get("tokenizer.ggml.tokens", [])))),
        hidden_size=d, intermediate_size=int(m["llama.feed_forward_length"]), num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=KV,
        head_dim=int(m.get("llama.rope.dimension_count", d // H)),
        rms_norm_eps=float(np.float32(m.get("llama.attention.layer_norm_rms_epsilon", 1e-5))),
        rope_theta=float(m.get("llama.rope.freq_base", 10000.0)), rope_scaling=None,
        tie_word_embeddings="output.weight" not in g.tensors,
    )
    names = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
             "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    p = {"model.embed_tokens.weight": g.tensor("token_embd.weight"),
         "model.norm.weight": g.tensor("output_norm.weight")}
    if not cfg["tie_word_embeddings"]:
        p["lm_head.weight"] = g.tensor("output.weight")
    for i in range(L):
        for gk, hk in names.items():
            w = g.tensor(f"blk.{i}.{gk}.weight")
            if gk == "attn_q":
                w = unpermute_rows(w, H)
            elif gk == "attn_k":
                w = unpermute_rows(w, KV)
            p[f"model.layers.{i}.{hk}.weight"] = np.ascontiguousarray(w)
    return cfg, p, g.sha256()
