"""Loading the GGUF backbone for training, and writing the trained memory as the file `dbrmt --armt FILE` reads.

The file (crates/dbrmt-formats/src/armt_file.rs): safetensors holding only the memory tensors, under the original
ARMT code's names (`memory_cell.memory`, `memory_cell.model.model.layers.{i}.W_mq.weight`, `…W_mk.weight`,
`…W_mv.weight`, `…W_mb.weight`, `…W_mb.bias`), and metadata `format = dbrmt-armt-1`, `d_mem`, `nu`,
`num_mem_tokens`, `segment_size`, `correction`, `base_sha256` (the GGUF's sha256); other keys are informative.
"""
from __future__ import annotations

import json
import os
from typing import Dict, Optional

import numpy as np
import torch

import armt_torch as at
import gguf_np

FORMAT = "dbrmt-armt-1"


def load_backbone(gguf_path: str, segment_size: int, num_mem_tokens: int, d_mem: int):
    """(Config, {HF name: fp32 tensor}, sha256) of the GGUF, dequantised as the engine does."""
    cfg, params, sha = gguf_np.llama_from_gguf(gguf_path)
    c = at.Config(**cfg, num_mem_tokens=num_mem_tokens, d_mem=d_mem, segment_size=segment_size)
    return c, {k: torch.from_numpy(v) for k, v in params.items()}, sha


def save_armt(model: at.ARMT, path: str, base_sha256: str, dtype=torch.float32,
              extra: Optional[Dict[str, object]] = None):
    """Writes the memory parameters of `model` as an `--armt` file (atomic: a temporary file, then rename)."""
    from safetensors.torch import save_file
    c = model.cfg
    tensors = {at.export_name(k): v.to(dtype).contiguous() for k, v in model.memory_state_dict().items()}
    meta = {"format": FORMAT, "d_mem": str(c.d_mem), "nu": str(c.nu), "num_mem_tokens": str(c.num_mem_tokens),
            "segment_size": str(c.segment_size), "correction": "true" if c.correction else "false",
            "base_sha256": base_sha256, "eps": "1e-5"}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    tmp = path + ".tmp"
    save_file(tensors, tmp, metadata=meta)
    os.replace(tmp, path)


def read_armt(path: str):
    """({name: fp32 tensor}, metadata) of an `--armt` file."""
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k).float() for k in f.keys()}
    return tensors, meta


def zeroed_copy(src: str, dst: str):
    """The control: the same file with every W_mv zero, so A stays 0 and the read is exactly 0 (the memory carries
    nothing across segments); the rest (memory tokens, W_mq, W_mk, W_mb) unchanged."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    out = {}
    with safe_open(src, framework="pt") as f:
        meta = f.metadata() or {}
        for k in f.keys():
            t = f.get_tensor(k)
            out[k] = torch.zeros_like(t) if ".W_mv." in k else t
    meta = dict(meta)
    meta["control"] = "W_mv zeroed: the memory carries nothing across segments"
    save_file(out, dst, metadata=meta)


def random_memory(cfg: at.Config, seed: int, wv_scale: float = 0.02) -> Dict[str, torch.Tensor]:
    """Non-zero memory parameters (W_mv included) for parity tests: the memory path is exercised."""
    g = torch.Generator().manual_seed(seed)
    d, dm = cfg.hidden_size, cfg.d_mem
    out = {"memory": torch.randn(cfg.num_mem_tokens, d, generator=g) * 0.05}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out[p + "W_mq.weight"] = torch.randn(dm, d, generator=g) / d ** 0.5
        out[p + "W_mk.weight"] = torch.randn(dm, d, generator=g) / d ** 0.5
        out[p + "W_mv.weight"] = torch.randn(d, d, generator=g) * wv_scale / d ** 0.5
        out[p + "W_mb.weight"] = torch.randn(1, d, generator=g) / d ** 0.5
        out[p + "W_mb.bias"] = torch.randn(1, generator=g) * 0.1
    return out


def np_save_ids(path: str, ids):
    np.save(path, np.asarray(ids, dtype=np.int32))
