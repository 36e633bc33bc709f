"""A small functional ARMT-LLaMA for training: the math of docs/armt-spec.md §1 exactly, with the memory state passed
in and out (no module mutates anything, so autograd and per-segment checkpointing see plain functions).

Per segment s (text rows x_s, then the M memory-token rows; positions restart at 0 every segment), per layer l:

    s > 0:  H += phi(H Wq) A / (phi(H Wq) . z + 1e-5)          read, every row (text and memory)
    H  = LlamaDecoderLayer_l(H)                                   causal attention inside the segment
    write (when the segment has its memory rows):  P = H[-M:]
        K = phi(P Wk), V = P Wv, beta = sigmoid(P wb + bb)
        s == 0: Vbar = 0, gamma = 1
        else:   delta = K z + 1e-5, Vbar = K A / delta, gamma = clip(1 - delta / (|K|^2 + 1e-5), 0, 1) (detached)
        A += K^T diag(beta) (V - Vbar) ;  z += sum_t gamma_t K_t
    phi = DPFP, nu = 3: x' = [relu(u), relu(-u)], phi(u) = concat_j x' * roll(x', j), j = 1..nu

The backbone is frozen (plain tensors, no grad); the memory parameters are `nn.Parameter`s in fp32, and the state
A, z and all memory math stay fp32 whatever the activations' dtype (bf16 autocast on a GPU). The last segment of a
document may run without its memory rows and without a write (as generation does: text rows never see the memory
rows of their own segment, so their logits are the same).

Tensor names: internally the HF-style `model.layers.{i}.W_mq.weight` …; `export_names` gives the original ARMT
code's names (`memory_cell.model.model.layers.{i}.W_mq.weight`, `memory_cell.memory`) the engine's `--armt` reads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

MEM_EPS = 1e-5


@dataclass
class Config:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict] = None
    tie_word_embeddings: bool = True
    num_mem_tokens: int = 16
    d_mem: int = 64
    segment_size: int = 1024
    nu: int = 3
    correction: bool = True

    @property
    def d_key(self) -> int:
        return 2 * self.nu * self.d_mem


def dpfp(u: torch.Tensor, nu: int) -> torch.Tensor:
    x = torch.cat([F.relu(u), F.relu(-u)], dim=-1)
    return torch.cat([x * torch.roll(x, shifts=j, dims=-1) for j in range(1, nu + 1)], dim=-1)


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """HF LlamaRMSNorm: variance in fp32, cast back, then * weight."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(x.dtype)


def rope_inv_freq(cfg: Config) -> torch.Tensor:
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.rope_scaling
    if not rs or rs.get("rope_type", rs.get("type", "default")) == "default":
        return inv
    if rs.get("rope_type", rs.get("type")) != "llama3":
        raise NotImplementedError(str(rs))
    factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], \
        rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    inv_l = torch.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    medium = ~(wavelen < old / hi) * ~(wavelen > old / lo)
    return torch.where(medium, smoothed, inv_l)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class ARMT(nn.Module):
    """Frozen LLaMA backbone (buffers) + trainable ARMT memory parameters."""

    def __init__(self, cfg: Config, backbone: Dict[str, torch.Tensor], memory_init: Optional[Dict] = None,
                 seed: int = 0, backbone_dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        L, d, dm = cfg.num_hidden_layers, cfg.hidden_size, cfg.d_mem
        self.bb: Dict[str, torch.Tensor] = {k: v.to(backbone_dtype) for k, v in backbone.items()}
        # memory parameters: the original's init (W_mq, W_mk, W_mb: nn.Linear default; W_mv zero; memory
        # embeddings randn * std(embedding)), unless given
        g = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(d)

        def uni(*shape):
            return (torch.rand(*shape, generator=g) * 2 - 1) * bound

        self.W_mq = nn.Parameter(uni(L, dm, d))
        self.W_mk = nn.Parameter(uni(L, dm, d))
        self.W_mv = nn.Parameter(torch.zeros(L, d, d))
        self.W_mb = nn.Parameter(uni(L, 1, d))
        self.b_mb = nn.Parameter(uni(L, 1))
        emb_std = backbone["model.embed_tokens.weight"].float().std()
        self.memory = nn.Parameter(torch.randn(cfg.num_mem_tokens, d, generator=g) * emb_std)
        if memory_init is not None:
            self.load_memory(memory_init)
        self._rope_cache: Dict[tuple, Tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ names
    def memory_state_dict(self) -> Dict[str, torch.Tensor]:
        """Internal (HF-style) names -> fp32 tensors."""
        out = {"memory": self.memory.detach().float().cpu()}
        for i in range(self.cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            out[p + "W_mq.weight"] = self.W_mq[i].detach().float().cpu()
            out[p + "W_mk.weight"] = self.W_mk[i].detach().float().cpu()
            out[p + "W_mv.weight"] = self.W_mv[i].detach().float().cpu()
            out[p + "W_mb.weight"] = self.W_mb[i].detach().float().cpu()
            out[p + "W_mb.bias"] = self.b_mb[i].detach().float().cpu()
        return out

    def load_memory(self, sd: Dict[str, torch.Tensor]):
        """Accepts internal names or the original's (either alias)."""
        sd = {internal_name(k): v for k, v in sd.items()}
        with torch.no_grad():
            self.memory.copy_(sd["memory"])
            for i in range(self.cfg.num_hidden_layers):
                p = f"model.layers.{i}."
                self.W_mq[i].copy_(sd[p + "W_mq.weight"])
                self.W_mk[i].copy_(sd[p + "W_mk.weight"])
                self.W_mv[i].copy_(sd[p + "W_mv.weight"])
                self.W_mb[i].copy_(sd[p + "W_mb.weight"])
                self.b_mb[i].copy_(sd[p + "W_mb.bias"])

    def to_device(self, device):
        self.to(device)
        self.bb = {k: v.to(device) for k, v in self.bb.items()}
        self._rope_cache = {}
        return self

    # ------------------------------------------------------------------ pieces
    def rope(self, S: int, device, dtype):
        key = (S, str(device), dtype)
        if key not in self._rope_cache:
            inv = rope_inv_freq(self.cfg)
            pos = torch.arange(S, dtype=torch.float32)
            freqs = pos[:, None] * inv[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            self._rope_cache[key] = (emb.cos().to(device=device, dtype=dtype),
                                     emb.sin().to(device=device, dtype=dtype))
        return self._rope_cache[key]

    def embed(self, ids: torch.Tensor, with_mem: bool) -> torch.Tensor:
        e = F.embedding(ids, self.bb["model.embed_tokens.weight"])
        if not with_mem:
            return e
        m = self.memory.to(e.dtype).unsqueeze(0).expand(ids.shape[0], -1, -1)
        return torch.cat([e, m], dim=1)

    def block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        c, w = self.cfg, self.bb
        p = f"model.layers.{i}."
        B, S, d = x.shape
        H, KV, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        h = rms_norm(x, w[p + "input_layernorm.weight"], c.rms_norm_eps)
        q = F.linear(h, w[p + "self_attn.q_proj.weight"]).view(B, S, H, hd).transpose(1, 2)
        k = F.linear(h, w[p + "self_attn.k_proj.weight"]).view(B, S, KV, hd).transpose(1, 2)
        v = F.linear(h, w[p + "self_attn.v_proj.weight"]).view(B, S, KV, hd).transpose(1, 2)
        cos, sin = self.rope(S, x.device, q.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if H != KV:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(hd))
        a = a.transpose(1, 2).reshape(B, S, H * hd)
        x = x + F.linear(a, w[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
        m = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"])) * F.linear(h, w[p + "mlp.up_proj.weight"])
        return x + F.linear(m, w[p + "mlp.down_proj.weight"])

    def read(self, i: int, x: torch.Tensor, A: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x [B, S, d]; A [B, D, d], z [B, D] (fp32). Returns the read [B, S, d] in fp32."""
        with _no_autocast(x):
            q = dpfp(x.float() @ self.W_mq[i].t(), self.cfg.nu)
            num = q @ A
            den = (q @ z.unsqueeze(-1)) + MEM_EPS
            return num / den

    def write(self, i: int, P: torch.Tensor, A: Optional[torch.Tensor], z: Optional[torch.Tensor]):
        """P [B, M, d] post-block memory rows. A, z None on segment 0. Returns the new (A, z)."""
        with _no_autocast(P):
            Pf = P.float()
            K = dpfp(Pf @ self.W_mk[i].t(), self.cfg.nu)            # [B, M, D]
            V = Pf @ self.W_mv[i].t()                                # [B, M, d]
            beta = torch.sigmoid(Pf @ self.W_mb[i].t() + self.b_mb[i])  # [B, M, 1]
            if A is None:
                dA = K.transpose(1, 2) @ (beta * V)
                dz = K.sum(dim=1)
                return dA, dz
            delta = (K @ z.unsqueeze(-1)) + MEM_EPS                  # [B, M, 1]
            Vbar = (K @ A) / delta
            if self.cfg.correction:
                gamma = torch.clamp(1 - delta / (K.pow(2).sum(-1, keepdim=True) + MEM_EPS), 0, 1).detach()
            else:
                gamma = torch.ones_like(delta)
            A = A + K.transpose(1, 2) @ (beta * (V - Vbar))
            z = z + (gamma * K).sum(dim=1)
            return A, z

    # ------------------------------------------------------------------ forward
    def segment(self, ids: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]], write: bool = True,
                trace=None):
        """One segment for every layer. ids [B, S]; state None (segment 0) or (A [L,B,D,d], z [L,B,D]).
        Returns (hidden of the text rows after the last layer, un-normed, [B, S, d]; new state or the old one)."""
        x = self.embed(ids, with_mem=write)
        S = ids.shape[1]
        As, zs = [], []
        for i in range(self.cfg.num_hidden_layers):
            if state is not None:
                x = x + self.read(i, x, state[0][i], state[1][i]).to(x.dtype)
            if trace is not None:
                trace(i, "read_out", x)
            x = self.block(i, x)
            if trace is not None:
                trace(i, "block_out", x)
            if write:
                A, z = self.write(i, x[:, S:], None if state is None else state[0][i],
                                  None if state is None else state[1][i])
                As.append(A)
                zs.append(z)
        new_state = (torch.stack(As), torch.stack(zs)) if write else state
        return x[:, :S], new_state

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        h = rms_norm(h, self.bb["model.norm.weight"], self.cfg.rms_norm_eps)
        head = self.bb.get("lm_head.weight", self.bb["model.embed_tokens.weight"])
        return F.linear(h, head)

    def forward_ids(self, ids: torch.Tensor, last_write: bool = True, checkpoint: bool = False, trace=None):
        """Whole document ids [B, N] cut into segments of T. Returns (list of per-segment text hiddens, state).
        `last_write=False` runs the last segment without memory rows and without a write (generation)."""
        T = self.cfg.segment_size
        N = ids.shape[1]
        state = None
        outs = []
        starts = list(range(0, N, T))
        for si, a in enumerate(starts):
            seg = ids[:, a:a + T]
            write = last_write or si < len(starts) - 1
            tr = (lambda l, stage, x, s=si: trace(s, l, stage, x)) if trace is not None else None
            if checkpoint and torch.is_grad_enabled() and state is not None:
                h, state = _ckpt_segment(self, seg, state, write)
            else:
                h, state = self.segment(seg, state, write=write, trace=tr)
            outs.append(h)
        return outs, state


def _ckpt_segment(model: ARMT, seg, state, write):
    from torch.utils.checkpoint import checkpoint

    def f(A, z):
        h, st = model.segment(seg, (A, z), write=write)
        return (h,) + tuple(st)

    h, A, z = checkpoint(f, state[0], state[1], use_reentrant=False)
    return h, (A, z)


class _no_autocast:
    """Memory math in fp32 even inside a bf16 autocast region."""

    def __init__(self, x: torch.Tensor):
        self.ctx = torch.autocast(device_type=x.device.type, enabled=False)

    def __enter__(self):
        return self.ctx.__enter__()

    def __exit__(self, *a):
        return self.ctx.__exit__(*a)


def internal_name(name: str) -> str:
    """The original ARMT state_dict names (either alias) or internal names -> internal names."""
    import re
    if name in ("memory_cell.memory", "memory"):
        return "memory"
    m = re.fullmatch(r"memory_cell\.(?:model\.model\.layers|layers)\.(\d+)\.(W_m[qkvb]\.(?:weight|bias))", name)
    if m:
        return f"model.layers.{m.group(1)}.{m.group(2)}"
    return name


def export_name(name: str) -> str:
    """Internal name -> the original's canonical name (`memory_cell.model.model.layers.{i}.W_m*`)."""
    if name == "memory":
        return "memory_cell.memory"
    return "memory_cell.model." + name
