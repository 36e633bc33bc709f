#!/usr/bin/env python3
"""The projections-and-attention ceiling of one diagonal step, isolated and sustained: what cuBLAS + SDPA take for
the work of a full step (every layer active) when each op runs alone, and when whole steps run back to back for as
long as a 131K prefill does (the clock then sits under the board's power limit).

One step = `cells` cells (one per layer) of T + M rows each, bf16, every cell its own layer's weights (torch.bmm
over stacked weights, as the PyTorch diagonal baseline does):
  qkv      bmm  [cells, S, d] x [cells, d, (H + 2 KV) hd]
  attn     SDPA (flash or cuDNN, the faster alone), causal within each cell, GQA
  o        baddbmm into the bf16 residual rows
  gateup   bmm  [cells, S, d] x [cells, d, 2 I], then silu(g) * u
  down     baddbmm into the residual rows
No norms, RoPE or memory path: this is the part of a step the issue's "cuBLAS + SDPA alone" counts.

Records (kind "step-ceiling"): each op alone (a graph of n calls, median; L2 not flushed: optimistic), the sum of
those, and the whole step replayed `--steps` times back to back in one CUDA graph (ms per step; median of
`--repeats`), right after an idle second ("cold": boost clocks) and after a sustained warm-up of about as long as the
131K row ("sustained").

    python3 benches/python/step_ceiling.py --out r.jsonl                 # 1B T = 1024 and 160M T = 512
    python3 benches/python/step_ceiling.py --models llama-3.2-1b --segment 1024
    python3 benches/python/step_ceiling.py --device cpu --quick          # smoke test, tiny shapes
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

# (model, segment T) pairs measured by default: the two prefill rows of the table
DEFAULT = (("llama-3.2-1b", 1024), ("llama-160m", 512))
MEM_TOKENS = 128


def step_ops(torch, F, s: C.ModelShape, cells: int, rows: int, device, backend_ctx):
    """Buffers and one callable per op of a step (each reads and writes the same buffers on every call)."""
    bf16 = torch.bfloat16
    d, H, KV, hd, inter = s.hidden_size, s.num_heads, s.num_kv_heads, s.head_dim, s.intermediate_size
    nqkv = (H + 2 * KV) * hd

    def w(n, k):  # [cells, k, n], scaled so that activations stay O(1)
        return (torch.randn(cells, k, n, device=device, dtype=bf16) * (k ** -0.5)).contiguous()

    wqkv, wo, wgu, wd = w(nqkv, d), w(d, H * hd), w(2 * inter, d), w(d, inter)
    x = torch.randn(cells, rows, d, device=device, dtype=bf16)
    h = torch.randn(cells, rows, d, device=device, dtype=bf16)
    qkv = torch.empty(cells, rows, nqkv, device=device, dtype=bf16)
    att = torch.empty(cells, rows, H * hd, device=device, dtype=bf16)
    gu = torch.empty(cells, rows, 2 * inter, device=device, dtype=bf16)
    act = torch.empty(cells, rows, inter, device=device, dtype=bf16)
    gqa = H != KV

    def op_qkv():
        torch.bmm(x, wqkv, out=qkv)

    def op_attn():
        q = qkv[..., : H * hd].view(cells, rows, H, hd).transpose(1, 2)
        k = qkv[..., H * hd: (H + KV) * hd].view(cells, rows, KV, hd).transpose(1, 2)
        v = qkv[..., (H + KV) * hd:].view(cells, rows, KV, hd).transpose(1, 2)
        with backend_ctx():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        att.copy_(o.transpose(1, 2).reshape(cells, rows, H * hd))

    def op_o():
        torch.baddbmm(h, att, wo, out=h)

    def op_gateup():
        torch.bmm(x, wgu, out=gu)
        torch.mul(F.silu(gu[..., :inter]), gu[..., inter:], out=act)

    def op_down():
        torch.baddbmm(h, act, wd, out=h)

    ops = {"qkv": op_qkv, "attn": op_attn, "o": op_o, "gateup": op_gateup, "down": op_down}
    flops = {
        "qkv": 2.0 * cells * rows * d * nqkv,
        "attn": C.attn_flops(rows, rows, hd, H, True) * cells,
        "o": 2.0 * cells * rows * H * hd * d,
        "gateup": 2.0 * cells * rows * d * 2 * inter,
        "down": 2.0 * cells * rows * inter * d,
    }
    return ops, flops


def graph_of(torch, fn, n: int):
    """fn called n times, captured once (warmed up on a side stream first, as capture requires)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(n):
            fn()
    return g


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matrix", default=C.DEFAULT_MATRIX)
    ap.add_argument("--out", default=None, help="JSON-lines file to append to (default: stdout)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", default=None, help="comma list of matrix models (default: 1B at T = 1024, "
                                                   "160M at T = 512)")
    ap.add_argument("--segment", type=int, default=None, help="T for every model given with --models")
    ap.add_argument("--steps", type=int, default=128, help="steps in the sustained graph (a 131K prefill: 128)")
    ap.add_argument("--sustain-s", type=float, default=2.0, help="seconds of steps run before the sustained timing")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny shapes, a CPU smoke test")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.sustain_s < 0:
        print("step_ceiling.py: --steps and --repeats must be >= 1, --sustain-s >= 0", file=sys.stderr)
        return 2
    try:
        matrix = C.load_matrix(args.matrix)
    except (OSError, ValueError, KeyError) as ex:
        print(f"step_ceiling.py: bad matrix {args.matrix}: {ex}", file=sys.stderr)
        return 2
    if args.models:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
        if args.segment is None:
            print("step_ceiling.py: --models needs --segment", file=sys.stderr)
            return 2
        pairs = [(m, args.segment) for m in names]
    else:
        pairs = list(DEFAULT)
    missing = sorted({m for m, _ in pairs} - set(matrix.models))
    if missing:
        print(f"step_ceiling.py: models {missing} are not in {args.matrix}", file=sys.stderr)
        return 2

    import contextlib

    import torch
    import torch.nn.functional as F

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("step_ceiling.py: CUDA is not available; use --device cpu", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    torch.manual_seed(args.seed)
    cuda = device.type == "cuda"
    env = {"device": C.device_name(device), "torch": C.torch_version(), "quick": args.quick}
    out = C.Emitter(args.out)
    backends = [("flash", contextlib.nullcontext)]
    if cuda:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        backends = [("flash", lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)),
                    ("cudnn", lambda: sdpa_kernel(SDPBackend.CUDNN_ATTENTION))]
    failures = 0
    for model, T in pairs:
        s = matrix.models[model]
        if args.quick:
            s = C.quick_shape(s)
        cells, rows = s.num_layers, (max(8, T // 16) if args.quick else T) + (8 if args.quick else MEM_TOKENS)
        base = {"kind": "step-ceiling", "model": model, "segment": T, "cells": cells, "rows": rows}
        try:
            # SDPA: the faster backend alone is the one the step uses
            best = None
            for name, ctx in backends:
                try:
                    ops, flops = step_ops(torch, F, s, cells, rows, device, ctx)
                    ops["qkv"]()
                    ms, _, _ = C.time_kernel(ops["attn"], device)
                except RuntimeError as ex:
                    C.progress(f"[step_ceiling] {model} attention backend {name}: {C.short_error(ex)}")
                    continue
                if best is None or ms < best[1]:
                    best = (name, ms, ctx)
                ops = None
                C.free_memory(device)
            if best is None:
                raise RuntimeError("no SDPA backend ran this shape")
            ops, flops = step_ops(torch, F, s, cells, rows, device, best[2])
            alone = {}
            for name, fn in ops.items():
                ms, runs, mode = C.time_kernel(fn, device)
                alone[name] = ms
                out.emit({**base, "op": name, "mode": "alone", "ms": C.rnd(ms, 5),
                          "tflops": C.rnd(flops[name] / (ms * 1e-3) / 1e12, 1),
                          "attention_backend": best[0] if name == "attn" else None, **env})
                C.progress(f"[step_ceiling] {model} T={T} {name:<7} alone {ms:.4f} ms "
                           f"{flops[name] / (ms * 1e-3) / 1e12:.0f} TFLOP/s")
            total = sum(alone.values())
            step_flops = sum(flops.values())
            out.emit({**base, "op": "sum", "mode": "alone", "ms": C.rnd(total, 5),
                      "tflops": C.rnd(step_flops / (total * 1e-3) / 1e12, 1), **env})

            def step():
                for fn in ops.values():
                    fn()

            if cuda:
                n = args.steps
                g = graph_of(torch, step, n)
                for mode in ("cold", "sustained"):
                    if mode == "cold":
                        torch.cuda.synchronize()
                        time.sleep(1.0)
                    else:
                        t_end = time.perf_counter() + args.sustain_s
                        while time.perf_counter() < t_end:
                            g.replay()
                            torch.cuda.synchronize()
                    runs = [C.time_once(g.replay, device)[0] / n for _ in range(1 if mode == "cold" else args.repeats)]
                    ms = C.median(runs)
                    out.emit({**base, "op": "step", "mode": mode, "steps": n, "ms": C.rnd(ms, 5),
                              "ms_runs": [C.rnd(x, 5) for x in runs],
                              "tflops": C.rnd(step_flops / (ms * 1e-3) / 1e12, 1), **env})
                    C.progress(f"[step_ceiling] {model} T={T} step ({n} in a graph, {mode}) {ms:.4f} ms "
                               f"(ops alone sum {total:.4f}) {step_flops / (ms * 1e-3) / 1e12:.0f} TFLOP/s")
                g = None
            else:
                ms, _ = C.time_once(step, device)
                out.emit({**base, "op": "step", "mode": "eager", "steps": 1, "ms": C.rnd(ms, 5), **env})
                C.progress(f"[step_ceiling] {model} T={T} step (cpu) {ms:.2f} ms")
        except Exception as ex:  # noqa: BLE001 -- a row result, the next model still runs
            err = "oom" if C.is_oom(ex) else C.short_error(ex)
            failures += 0 if err == "oom" else 1
            out.emit({**base, "op": "step", "ms": None, "error": err, **env})
            C.progress(f"[step_ceiling] {model} T={T} FAILED: {err}")
        ops = None
        C.free_memory(device)
    out.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
