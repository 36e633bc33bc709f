"""Shared helpers of the PyTorch baseline scripts (baselines.py, sdpa_attention.py).

* the matrix (benches/matrix.toml): reading, checking, row selection, --quick shrinking;
* model shapes: ARMT configs for armt_ref, HF LlamaConfig for transformers, FLOP counts;
* timing with CUDA events (wall clock on the CPU), peak memory, freeing memory between methods;
* JSON-lines output (one object per measurement, flushed as produced) and progress lines on stderr.

Only the standard library is imported at module level; torch is imported by the functions that need it, so
`baselines.py --plan` (the time estimate) runs without torch.
"""
from __future__ import annotations

import gc
import json
import math
import os
import statistics
import sys
import time
import tomllib
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_MATRIX = os.path.join(REPO, "benches", "matrix.toml")
ARMT_REF_DIR = os.path.join(REPO, "testdata", "fixtures", "generator")

# methods this side (PyTorch) times; dbrmt-* / dbrmt belong to the Rust runner
E2E_TORCH_METHODS = ("torch-sequential", "torch-diagonal", "torch-diagonal-graph", "torch-sdpa-full")
DECODE_TORCH_METHODS = ("torch-hf-decode",)
E2E_RUST_METHODS = ("dbrmt-diagonal", "dbrmt-sequential", "dbrmt-session", "dbrmt-session-pieces8")
DECODE_RUST_METHODS = ("dbrmt", "dbrmt-greedy", "dbrmt-greedy-wait")


def import_armt_ref():
    """armt_ref.py lives in testdata/fixtures/generator (not a package): import it from there, by path."""
    if ARMT_REF_DIR not in sys.path:
        sys.path.insert(0, ARMT_REF_DIR)
    import armt_ref  # noqa: E402
    return armt_ref


# ------------------------------------------------------------------------------------------------------------------
# Matrix
# ------------------------------------------------------------------------------------------------------------------

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}


@dataclass(frozen=True)
class ModelShape:
    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rope_theta: float
    rope_scaling: Optional[dict]  # armt_ref / HF-3.x form: {"rope_type": "llama3", "factor": ..., ...} or None
    rms_norm_eps: float
    tie_word_embeddings: bool

    @classmethod
    def from_toml(cls, name: str, d: dict) -> "ModelShape":
        rs = d.get("rope_scaling", "none")
        if rs in (None, "none", "default"):
            rope = None
        elif rs == "llama3":
            rope = dict(LLAMA3_ROPE)
            for k in ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"):
                if "rope_" + k in d:
                    rope[k] = type(LLAMA3_ROPE[k])(d["rope_" + k])
        else:
            raise ValueError(f"models.{name}: unknown rope_scaling {rs!r} (use \"llama3\" or leave it out)")
        return cls(name=name, hidden_size=int(d["hidden_size"]), num_layers=int(d["num_layers"]),
                   num_heads=int(d["num_heads"]), num_kv_heads=int(d["num_kv_heads"]), head_dim=int(d["head_dim"]),
                   intermediate_size=int(d["intermediate_size"]), vocab_size=int(d["vocab_size"]),
                   rope_theta=float(d["rope_theta"]), rope_scaling=rope,
                   rms_norm_eps=float(d.get("rms_norm_eps", 1e-5)),
                   tie_word_embeddings=bool(d.get("tie_word_embeddings", False)))

    # parameter counts (weights of the GEMMs; norms / biases are negligible)
    def layer_params(self) -> int:
        d, hd = self.hidden_size, self.head_dim
        qkv = d * (self.num_heads + 2 * self.num_kv_heads) * hd
        o = self.num_heads * hd * d
        mlp = 3 * d * self.intermediate_size
        return qkv + o + mlp

    def armt_layer_params(self, d_mem: int) -> int:
        d = self.hidden_size
        return d * d_mem + d * (d_mem + d + 1)  # W_mq, fused [W_mk | W_mv | w_b]

    def weight_bytes(self, d_mem: int = 0, bytes_per: int = 2) -> int:
        n = self.num_layers * (self.layer_params() + self.armt_layer_params(d_mem) if d_mem else self.layer_params())
        n += self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)
        return n * bytes_per


@dataclass
class Row:
    """An [[row]] (kind 'e2e': prefill of `tokens` tokens) or a [[decode]] entry (kind 'decode')."""
    kind: str
    id: str
    model: str
    segment: int
    methods: List[str]
    warmup: int
    iters: int
    mem_tokens: int
    d_mem: int
    nu: int
    tokens: int = 0            # e2e
    logits: str = "none"       # e2e: "none" | "last"
    prompt: int = 0            # decode
    new_tokens: int = 0        # decode
    quick: bool = False


@dataclass
class Matrix:
    path: str
    defaults: dict
    models: Dict[str, ModelShape]
    rows: List[Row]            # e2e rows, matrix order
    decodes: List[Row]         # decode rows, matrix order

    def all_rows(self) -> List[Row]:
        return self.rows + self.decodes


KNOWN_E2E = set(E2E_TORCH_METHODS) | set(E2E_RUST_METHODS)
KNOWN_DECODE = set(DECODE_TORCH_METHODS) | set(DECODE_RUST_METHODS)


def load_matrix(path: str = DEFAULT_MATRIX) -> Matrix:
    with open(path, "rb") as f:
        m = tomllib.load(f)
    dfl = dict(mem_tokens=128, d_mem=64, nu=3, warmup=1, iters=3)
    dfl.update(m.get("defaults", {}))
    models = {name: ModelShape.from_toml(name, d) for name, d in m.get("models", {}).items()}
    seen = set()

    def common(r: dict, where: str):
        for k in ("id", "model", "segment", "methods"):
            if k not in r:
                raise ValueError(f"{where}: missing key {k!r}")
        if r["id"] in seen:
            raise ValueError(f"{where}: duplicate id {r['id']!r}")
        seen.add(r["id"])
        if r["model"] not in models:
            raise ValueError(f"{where} {r['id']}: unknown model {r['model']!r}")
        return dict(id=r["id"], model=r["model"], segment=int(r["segment"]), methods=list(r["methods"]),
                    warmup=int(r.get("warmup", dfl["warmup"])), iters=int(r.get("iters", dfl["iters"])),
                    mem_tokens=int(r.get("mem_tokens", dfl["mem_tokens"])), d_mem=int(r.get("d_mem", dfl["d_mem"])),
                    nu=int(r.get("nu", dfl["nu"])))

    rows = []
    for i, r in enumerate(m.get("row", [])):
        c = common(r, f"row[{i}]")
        bad = [x for x in c["methods"] if x not in KNOWN_E2E]
        if bad:
            raise ValueError(f"row {c['id']}: unknown methods {bad}")
        logits = r.get("logits", "none")
        if logits not in ("none", "last"):
            raise ValueError(f"row {c['id']}: logits must be \"none\" or \"last\"")
        if c["iters"] < 1 or c["warmup"] < 0:
            raise ValueError(f"row {c['id']}: iters >= 1, warmup >= 0")
        rows.append(Row(kind="e2e", tokens=int(r["tokens"]), logits=logits, **c))
    decodes = []
    for i, r in enumerate(m.get("decode", [])):
        c = common(r, f"decode[{i}]")
        bad = [x for x in c["methods"] if x not in KNOWN_DECODE]
        if bad:
            raise ValueError(f"decode {c['id']}: unknown methods {bad}")
        decodes.append(Row(kind="decode", prompt=int(r["prompt"]), new_tokens=int(r["new_tokens"]), **c))
    return Matrix(path=path, defaults=dfl, models=models, rows=rows, decodes=decodes)


def select_rows(rows: List[Row], ids: Optional[str], substr: Optional[str]) -> List[Row]:
    out = rows
    if ids:
        want = [x.strip() for x in ids.split(",") if x.strip()]
        known = {r.id for r in rows}
        unknown = [x for x in want if x not in known]
        if unknown:
            raise ValueError(f"unknown row ids: {unknown}")
        out = [r for r in out if r.id in want]
    if substr:
        out = [r for r in out if substr in r.id]
    return out


# ------------------------------------------------------------------------------------------------------------------
# --quick: tiny shapes with the same structure (GQA ratio, RoPE kind, tying), for CPU smoke tests
# ------------------------------------------------------------------------------------------------------------------

def quick_shape(s: ModelShape) -> ModelShape:
    hd = 16 if s.head_dim <= 64 else 32
    kv = 4 if s.num_heads == s.num_kv_heads else 2
    return replace(s, hidden_size=4 * hd, num_layers=min(s.num_layers, 3), num_heads=4, num_kv_heads=kv,
                   head_dim=hd, intermediate_size=8 * hd, vocab_size=512)


def quick_row(r: Row) -> Row:
    T = max(8, r.segment // 64)
    q = replace(r, segment=T, mem_tokens=4, d_mem=8, warmup=min(r.warmup, 1), iters=min(r.iters, 2), quick=True)
    if r.kind == "e2e":
        nseg = max(1, math.ceil(r.tokens / r.segment))
        q.tokens = T * min(nseg, 6)
    else:
        q.prompt = T * max(1, min(r.prompt // r.segment, 4))
        q.new_tokens = min(r.new_tokens, 8)
    return q


# ------------------------------------------------------------------------------------------------------------------
# Model configs
# ------------------------------------------------------------------------------------------------------------------

def armt_config(ar, s: ModelShape, r: Row):
    return ar.ARMTConfig(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                         num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads,
                         num_key_value_heads=s.num_kv_heads, head_dim=s.head_dim, rms_norm_eps=s.rms_norm_eps,
                         rope_theta=s.rope_theta, rope_scaling=(dict(s.rope_scaling) if s.rope_scaling else None),
                         tie_word_embeddings=s.tie_word_embeddings, num_mem_tokens=r.mem_tokens, d_mem=r.d_mem,
                         segment_size=r.segment, nu=r.nu)


def hf_config(s: ModelShape, max_positions: int):
    """transformers 5.x LlamaConfig (RoPE settings in `rope_parameters`)."""
    from transformers import LlamaConfig
    rope = {"rope_type": "default", "rope_theta": s.rope_theta}
    if s.rope_scaling:
        rope = dict(s.rope_scaling, rope_theta=s.rope_theta)
    return LlamaConfig(vocab_size=s.vocab_size, hidden_size=s.hidden_size, intermediate_size=s.intermediate_size,
                       num_hidden_layers=s.num_layers, num_attention_heads=s.num_heads,
                       num_key_value_heads=s.num_kv_heads, head_dim=s.head_dim, rms_norm_eps=s.rms_norm_eps,
                       max_position_embeddings=max(max_positions, 131072), rope_parameters=rope,
                       tie_word_embeddings=s.tie_word_embeddings, use_cache=False, pad_token_id=0,
                       bos_token_id=None, eos_token_id=None)


# ------------------------------------------------------------------------------------------------------------------
# FLOP counts (multiply-add = 2 FLOPs; causal attention counts half of the full score / PV work)
# ------------------------------------------------------------------------------------------------------------------

def attn_flops(q_rows: int, kv_rows: int, head_dim: int, q_heads: int, causal: bool) -> float:
    f = 4.0 * q_rows * kv_rows * head_dim * q_heads
    return f / 2 if causal else f


def armt_flops(s: ModelShape, r: Row) -> float:
    """Model FLOPs of one ARMT prefill (both schedules do the same work)."""
    T, M, dm = r.segment, r.mem_tokens, r.d_mem
    D = 2 * r.nu * dm
    d = s.hidden_size
    total = 0.0
    n_full, rest = divmod(r.tokens, T)
    segs = [T] * n_full + ([rest] if rest else [])
    for i, Ts in enumerate(segs):
        S = Ts + M
        per_layer = 2.0 * S * s.layer_params() + attn_flops(S, S, s.head_dim, s.num_heads, True)
        if i > 0:                                   # read: W_mq, Q A, Q z
            per_layer += 2.0 * S * d * dm + 2.0 * S * D * d + 2.0 * S * D
        per_layer += 2.0 * M * d * (dm + d + 1) + 4.0 * M * D * d  # write: fused W_mk|W_mv|w_b, K A, K^T (..)
        total += s.num_layers * per_layer
    if r.logits == "last":
        total += 2.0 * d * s.vocab_size
    return total


def full_attention_flops(s: ModelShape, tokens: int, logits: str = "none") -> float:
    f = s.num_layers * (2.0 * tokens * s.layer_params() + attn_flops(tokens, tokens, s.head_dim, s.num_heads, True))
    if logits == "last":
        f += 2.0 * s.hidden_size * s.vocab_size
    return f


# ------------------------------------------------------------------------------------------------------------------
# Device, timing, memory
# ------------------------------------------------------------------------------------------------------------------

def torch_version() -> str:
    import torch
    return torch.__version__.split("+")[0]


def device_name(device) -> str:
    import torch
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def sync(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float:
    """CUDA: max_memory_allocated since the last reset_peak (live weights included).
    CPU: the process's max RSS so far (cannot be reset; only meaningful as a smoke-test value)."""
    import torch
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB


def free_memory(device):
    import torch
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def is_oom(ex: BaseException) -> bool:
    import torch
    if isinstance(ex, getattr(torch, "OutOfMemoryError", ())) or isinstance(ex, MemoryError):
        return True
    msg = str(ex)
    return ("out of memory" in msg.lower()) or ("CUBLAS_STATUS_ALLOC_FAILED" in msg)


def time_once(fn: Callable, device):
    """Runs fn once; returns (ms, result). CUDA events on the current stream, wall clock on the CPU."""
    import torch
    if device.type == "cuda":
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        out = fn()
        e.record()
        e.synchronize()
        return s.elapsed_time(e), out
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1e3, out


def time_runs(fn: Callable, device, warmup: int, iters: int) -> Tuple[List[float], float]:
    """warmup untimed runs, synchronize, reset the peak, then iters timed runs (each result dropped before the next
    run starts). Returns (ms of every timed run, peak GiB over the timed runs)."""
    for _ in range(warmup):
        out = fn()
        del out
    sync(device)
    reset_peak(device)
    runs = []
    for _ in range(iters):
        ms, out = time_once(fn, device)
        del out
        runs.append(ms)
    sync(device)
    return runs, peak_gib(device)


def time_kernel(fn: Callable, device, target_ms: float = 25.0, repeats: int = 5, max_calls: int = 2000,
                use_graph: bool = True):
    """For short kernels. n back-to-back calls (n chosen so that they take about target_ms) are timed as one
    repeat; returns (median ms per call, per-repeat ms per call, mode). On CUDA the n calls are captured once into
    a CUDA graph and the replays are timed (mode "graph"), so that the CPU cost of issuing a tiny kernel does not
    hide the kernel's own time; if capture fails, or on the CPU, the calls are timed as issued (mode "eager")."""
    import torch
    for _ in range(3):
        fn()
    sync(device)
    one, _ = time_once(fn, device)
    n = int(min(max_calls, max(1, math.ceil(target_ms / max(one, 1e-3)))))
    if device.type == "cuda" and use_graph:
        g = None
        try:
            s = torch.cuda.Stream(device)
            s.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(s):
                fn()
            torch.cuda.current_stream(device).wait_stream(s)
            sync(device)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for _ in range(n):
                    fn()
            g.replay()
            sync(device)
            one_g, _ = time_once(g.replay, device)
            if one_g < 0.5 * target_ms and n < max_calls:   # the kernels ran faster than they were issued: more
                n2 = int(min(max_calls, math.ceil(n * target_ms / max(one_g, 1e-3))))
                g = None
                sync(device)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    for _ in range(n2):
                        fn()
                g.replay()
                sync(device)
                n = n2
            runs = [time_once(g.replay, device)[0] / n for _ in range(repeats)]
            return statistics.median(runs), runs, "graph"
        except Exception:  # noqa: BLE001 -- fall back to eager timing
            g = None
            sync(device)
    runs = []
    for _ in range(repeats):
        runs.append(time_once(lambda: [fn() for _ in range(n)], device)[0] / n)
    return statistics.median(runs), runs, "eager"


def median(xs: List[float]) -> float:
    return statistics.median(xs)


# ------------------------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------------------------

class Emitter:
    """JSON lines, one object per measurement, flushed as produced: appended to `path`, or stdout without one."""

    def __init__(self, path: Optional[str]):
        self.path = path
        self.f = open(path, "a", encoding="utf-8") if path else sys.stdout

    def emit(self, obj: dict):
        self.f.write(json.dumps(obj, allow_nan=False, separators=(",", ":")) + "\n")
        self.f.flush()

    def close(self):
        if self.path:
            self.f.close()


def progress(msg: str):
    print(msg, file=sys.stderr, flush=True)


def rnd(x: Optional[float], nd: int = 3) -> Optional[float]:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


def short_error(ex: BaseException) -> str:
    lines = str(ex).strip().splitlines()
    return f"{type(ex).__name__}: {lines[0][:300] if lines else ''}"


# ------------------------------------------------------------------------------------------------------------------
# Time estimate (baselines.py --plan): an H200, calibrated on measured numbers
# ------------------------------------------------------------------------------------------------------------------

class Estimator:
    """Seconds per run of each method, from FLOP counts, achieved rates and launch-overhead floors.

    Calibration (Llama-3.2-1B shape, T = 1024, 131072 tokens, bf16; anchors/README.md and the brief):
      torch-diagonal 0.86 s, torch-sequential 2.6 s, torch-sdpa-full 3.1 s, dbrmt-diagonal 3.9 s,
      dbrmt-sequential 5.5 s; LLaMA-160M T = 512 131K: torch-sequential 4.1 s, -diagonal 0.39 s, -graph 0.27 s
      (H100 numbers; the H200 ones are within a few per cent where both exist).
    The PyTorch ARMT loops are bound by the CPU issuing kernels when the model is small: about 1.2 ms per
    (segment, layer) call sequentially and 1.5 ms per diagonal step (about 1.0 ms replayed from a CUDA graph)."""
    process_s = 15.0            # python start, imports, CUDA context, per process
    torch_seq_call_ms = 1.2
    torch_diag_step_ms = 1.5
    graph_step_ms = 1.0
    r_torch_diag = 360e12       # FLOP/s
    r_torch_seq = 300e12        # GPU-side rate of the sequential loop (2-D GEMMs; it overlaps the CPU issue)
    r_sdpa_full = 450e12
    r_dbrmt_diag = 79e12        # 3.9 s at 1B/131K
    r_dbrmt_seq = 56e12         # 5.5 s at 1B/131K
    hf_decode_layer_ms = 0.6    # HF eager decoding, per layer per token (CPU-bound)
    dbrmt_decode_layer_ms = 0.1  # a guess

    attention_script_s = 15.0   # sdpa_attention.py: ceilings + ~15 shapes x 2 backends, after start-up

    @staticmethod
    def model_kind(m: str) -> str:
        if m in ("torch-sequential", "torch-diagonal", "torch-diagonal-graph"):
            return "armt"
        if m in ("torch-sdpa-full", "torch-hf-decode"):
            return "hf"
        return "dbrmt"

    def build_s(self, s: ModelShape, r: Row, prev: Optional[Row]) -> Tuple[float, float]:
        """Seconds of random-weight model builds for this row, (PyTorch side, Rust side): baselines.py builds its
        ARMT and HF models once per run of consecutive rows on the same model; the Rust runner is assumed to build
        once per row."""
        one = 0.3 + 0.1 * s.weight_bytes(r.d_mem) / 1e9
        kinds = {self.model_kind(m) for m in r.methods}
        rust = one if "dbrmt" in kinds else 0.0
        torch_ = one * len(kinds - {"dbrmt"}) if (prev is None or prev.model != r.model) else 0.0
        return torch_, rust

    def method(self, s: ModelShape, r: Row, m: str):
        """Returns (seconds of one timed run, number of full runs, total seconds, GFLOP of one run)."""
        n_runs = r.warmup + r.iters
        if r.kind == "decode":
            f = full_attention_flops(s, r.prompt)
            if m == "torch-hf-decode":
                pre = f / self.r_sdpa_full + s.num_layers * self.hf_decode_layer_ms / 1e3
                run = pre + r.new_tokens * s.num_layers * self.hf_decode_layer_ms / 1e3
                tot = n_runs * run + r.iters * pre + 2 * pre
            else:
                rr = replace(r, kind="e2e", tokens=r.prompt, logits="last")
                run = (armt_flops(s, rr) / self.r_dbrmt_diag
                       + r.new_tokens * s.num_layers * self.dbrmt_decode_layer_ms / 1e3)
                tot = n_runs * run
            return run, n_runs, tot, f / 1e9
        nseg = math.ceil(r.tokens / r.segment)
        steps = nseg + s.num_layers - 1
        if m == "torch-sdpa-full":
            f = full_attention_flops(s, r.tokens, r.logits)
            run = f / self.r_sdpa_full
            return run, n_runs, n_runs * run, f / 1e9
        f = armt_flops(s, r)
        if m == "torch-sequential":
            run = max(nseg * s.num_layers * self.torch_seq_call_ms / 1e3, f / self.r_torch_seq)
        elif m == "torch-diagonal":
            run = max(steps * self.torch_diag_step_ms / 1e3, f / self.r_torch_diag)
        elif m == "torch-diagonal-graph":
            run = max(steps * self.graph_step_ms / 1e3, f / self.r_torch_diag)
            eager = max(steps * self.torch_diag_step_ms / 1e3, f / self.r_torch_diag)
            capture = steps * self.torch_diag_step_ms / 1e3          # capture issues every kernel once, runs none
            tot = max(1, r.warmup) * eager + capture + (1 + r.iters) * run
            return run, max(1, r.warmup) + 2 + r.iters, tot, f / 1e9
        elif m == "dbrmt-diagonal":
            run = f / self.r_dbrmt_diag
        elif m == "dbrmt-sequential":
            run = f / self.r_dbrmt_seq
        else:
            raise ValueError(m)
        return run, n_runs, n_runs * run, f / 1e9
