#!/usr/bin/env python3
"""Kernel-level baselines: PyTorch scaled_dot_product_attention at our attention shapes, plus the same-run
hardware ceilings (cuBLAS bf16 GEMM rate, device-to-device copy bandwidth).

Attention shapes (head counts and head dims read from benches/matrix.toml's models): one diagonal step of the
ARMT prefill is one batched causal call with batch = cells (the layers active in the step), each cell a segment of
T text + M = 128 memory rows attending causally within itself; "1x4224" is a single 4096 + 128 row segment; the
decode shapes are one query row over 4096 + 128 cached keys (not causal). bf16, q/k/v laid out [B, S, H, hd] and
passed as [B, H, S, hd] views (as the models produce them), GQA through enable_gqa.

Methods: torch-sdpa-flash (forced with sdpa_kernel(SDPBackend.FLASH_ATTENTION)); with --backends also
torch-sdpa-cudnn, -efficient, -math, or -auto (PyTorch's own choice). A backend that rejects GQA is run on
K/V expanded to the query heads beforehand ("gqa": "expanded"); one that rejects the shape is reported with
"error": "unsupported: ...".

FLOPs: 4 * rows * kv_rows * head_dim * q_heads * cells, halved for causal; decode shapes also report "gbps"
(bytes of Q, K, V and the output, over the time).

    python benches/python/sdpa_attention.py --out results.jsonl
    python benches/python/sdpa_attention.py --backends flash,cudnn,auto --shapes 1b-
    python benches/python/sdpa_attention.py --device cpu --quick

Exit status: 0 when every measurement ran (or ran out of memory, or the backend does not support the shape);
1 when something failed otherwise (still reported as a row with "error"); 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


@dataclass(frozen=True)
class AttnShape:
    name: str
    model: str        # matrix model: head counts and head_dim
    cells: int        # batch
    rows: int         # query rows per cell
    kv_rows: int      # key rows per cell
    causal: bool


SHAPES = [
    # one diagonal step, every layer active: cells = layers, rows = T + M
    AttnShape("160m-12x640", "llama-160m", 12, 640, 640, True),
    AttnShape("1b-16x640", "llama-3.2-1b", 16, 640, 640, True),
    AttnShape("1b-16x1152", "llama-3.2-1b", 16, 1152, 1152, True),
    AttnShape("1b-16x2176", "llama-3.2-1b", 16, 2176, 2176, True),
    AttnShape("1b-16x4224", "llama-3.2-1b", 16, 4224, 4224, True),
    AttnShape("3b-28x1152", "llama-3.2-3b", 28, 1152, 1152, True),
    AttnShape("3b-1x4224", "llama-3.2-3b", 1, 4224, 4224, True),
    AttnShape("8b-32x1152", "llama-3.1-8b", 32, 1152, 1152, True),
    AttnShape("8b-1x4224", "llama-3.1-8b", 1, 4224, 4224, True),
    AttnShape("smollm2-30x1152", "smollm2-135m", 30, 1152, 1152, True),
    # decoding: one new query row over the cached keys of a 4096-token segment plus the 128 memory rows
    AttnShape("1b-decode-1x4224", "llama-3.2-1b", 1, 1, 4224, False),
    AttnShape("smollm2-decode-1x4224", "smollm2-135m", 1, 1, 4224, False),
]

BACKENDS = ("flash", "cudnn", "efficient", "math", "auto")


def quick(s: AttnShape) -> AttnShape:
    return AttnShape(s.name, s.model, min(s.cells, 2), max(8, s.rows // 16) if s.rows > 1 else 1,
                     max(8, s.kv_rows // 16), s.causal)


def unsupported(ex: BaseException) -> bool:
    m = str(ex)
    return ("No available kernel" in m) or ("No viable backend" in m) or ("not supported" in m.lower())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matrix", default=C.DEFAULT_MATRIX)
    ap.add_argument("--out", default=None, help="JSON-lines file to append to (default: stdout)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="tiny rows, a CPU smoke test")
    ap.add_argument("--shapes", default=None, help="comma list of shape names, or substrings of them")
    ap.add_argument("--backends", default=None,
                    help=f"comma list of {', '.join(BACKENDS)} (default: flash,cudnn on cuda, flash on cpu)")
    ap.add_argument("--no-ceilings", action="store_true", help="skip the GEMM and copy ceilings")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    try:
        matrix = C.load_matrix(args.matrix)
    except (OSError, ValueError, KeyError) as ex:
        print(f"sdpa_attention.py: bad matrix {args.matrix}: {ex}", file=sys.stderr)
        return 2
    shapes = SHAPES
    if args.shapes:
        keys = [k.strip() for k in args.shapes.split(",") if k.strip()]
        shapes = [s for s in SHAPES if any(k == s.name or k in s.name for k in keys)]
    missing = sorted({s.model for s in shapes} - set(matrix.models))
    if missing:
        print(f"sdpa_attention.py: models {missing} are not in {args.matrix}", file=sys.stderr)
        return 2

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("sdpa_attention.py: CUDA is not available; use --device cpu", file=sys.stderr)
        return 2
    backends = [b.strip() for b in (args.backends or ("flash,cudnn" if device.type == "cuda" else "flash"))
                .split(",") if b.strip()]
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        print(f"sdpa_attention.py: unknown backends {bad}", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    torch.manual_seed(args.seed)
    dev_name, tv = C.device_name(device), C.torch_version()
    out = C.Emitter(args.out)
    failures = 0
    C.progress(f"[sdpa_attention] device={dev_name} torch={tv} backends={','.join(backends)} quick={args.quick}")
    bf16 = torch.bfloat16
    env = {"device": dev_name, "torch": tv, "quick": args.quick}

    # ---------------------------------------------------------------- ceilings
    if not args.no_ceilings:
        n = 256 if args.quick else 4096
        try:
            a = torch.randn(n, n, device=device, dtype=bf16)
            b = torch.randn(n, n, device=device, dtype=bf16)
            c = torch.empty(n, n, device=device, dtype=bf16)
            ms, runs, mode = C.time_kernel(lambda: torch.matmul(a, b, out=c), device)
            tfl = 2.0 * n ** 3 / (ms * 1e-3) / 1e12
            rec = {"kind": "ceiling", "method": "torch-matmul-bf16", "shape": f"{n}x{n}x{n}", "ms": C.rnd(ms, 5),
                   "tflops": C.rnd(tfl, 1), "ms_runs": [C.rnd(x, 5) for x in runs], "timing": mode}
            msg = f"{ms:.4f} ms  {tfl:.1f} TFLOP/s"
        except Exception as ex:  # noqa: BLE001
            rec = {"kind": "ceiling", "method": "torch-matmul-bf16", "shape": f"{n}x{n}x{n}", "ms": None,
                   "tflops": None, "error": "oom" if C.is_oom(ex) else C.short_error(ex)}
            failures += 0 if C.is_oom(ex) else 1
            msg = f"FAILED: {rec['error']}"
        a = b = c = None
        C.free_memory(device)
        rec.update(env)
        out.emit(rec)
        C.progress(f"[sdpa_attention] ceiling {'torch-matmul-bf16':<24} {msg}")

        nbytes = (8 << 20) if args.quick else (2 << 30)
        try:
            src = torch.empty(nbytes, device=device, dtype=torch.uint8).random_(0, 256)
            dst = torch.empty_like(src)
            ms, runs, mode = C.time_kernel(lambda: dst.copy_(src), device)
            gbps = 2.0 * nbytes / (ms * 1e-3) / 1e9
            rec = {"kind": "ceiling", "method": "torch-copy-d2d", "shape": f"{nbytes >> 20}MiB", "bytes": nbytes,
                   "ms": C.rnd(ms, 5), "gbps": C.rnd(gbps, 1), "ms_runs": [C.rnd(x, 5) for x in runs],
                   "timing": mode}
            msg = f"{ms:.4f} ms  {gbps:.1f} GB/s (read + write)"
        except Exception as ex:  # noqa: BLE001
            rec = {"kind": "ceiling", "method": "torch-copy-d2d", "shape": f"{nbytes >> 20}MiB", "bytes": nbytes,
                   "ms": None, "gbps": None, "error": "oom" if C.is_oom(ex) else C.short_error(ex)}
            failures += 0 if C.is_oom(ex) else 1
            msg = f"FAILED: {rec['error']}"
        src = dst = None
        C.free_memory(device)
        rec.update(env)
        out.emit(rec)
        C.progress(f"[sdpa_attention] ceiling {'torch-copy-d2d':<24} {msg}")

    # ---------------------------------------------------------------- attention
    kernels = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
               "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH, "auto": None}
    # backends outer, shapes inner: the mandated flash rows are all written before any other backend runs
    for be in backends:
        method = f"torch-sdpa-{be}"
        for s0 in shapes:
            s = quick(s0) if args.quick else s0
            ms_ = matrix.models[s.model]
            H, KV, hd = ms_.num_heads, ms_.num_kv_heads, ms_.head_dim
            rec = {"kind": "attention", "shape": s.name, "method": method}
            flops = C.attn_flops(s.rows, s.kv_rows, hd, H, s.causal) * s.cells
            gqa = "none" if H == KV else "native"
            try:
                q = torch.randn(s.cells, s.rows, H, hd, device=device, dtype=bf16).transpose(1, 2)
                k = torch.randn(s.cells, s.kv_rows, KV, hd, device=device, dtype=bf16).transpose(1, 2)
                v = torch.randn(s.cells, s.kv_rows, KV, hd, device=device, dtype=bf16).transpose(1, 2)

                def call(k=k, v=v, gq=(H != KV)):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=s.causal, enable_gqa=gq)

                fn = call
                ctx = sdpa_kernel(kernels[be]) if kernels[be] is not None else None
                if ctx is not None:
                    ctx.__enter__()
                try:
                    try:
                        fn()
                    except RuntimeError as ex:
                        if H == KV or not unsupported(ex):
                            raise
                        ke = k.repeat_interleave(H // KV, dim=1)
                        ve = v.repeat_interleave(H // KV, dim=1)
                        fn = lambda: call(ke, ve, False)  # noqa: E731
                        fn()
                        gqa = "expanded"
                    ms, runs, mode = C.time_kernel(fn, device)
                finally:
                    if ctx is not None:
                        ctx.__exit__(None, None, None)
                tfl = flops / (ms * 1e-3) / 1e12
                rec.update(ms=C.rnd(ms, 5), tflops=C.rnd(tfl, 1))
                msg = f"{ms:.4f} ms  {tfl:.1f} TFLOP/s"
                if not s.causal and s.rows == 1:
                    kv_heads_read = H if gqa == "expanded" else KV
                    nbytes = 2 * (2 * s.cells * s.kv_rows * kv_heads_read * hd + 2 * s.cells * s.rows * H * hd)
                    rec["gbps"] = C.rnd(nbytes / (ms * 1e-3) / 1e9, 1)
                    msg += f"  {rec['gbps']:.1f} GB/s"
                rec["ms_runs"] = [C.rnd(x, 5) for x in runs]
                rec["timing"] = mode
            except Exception as ex:  # noqa: BLE001
                if C.is_oom(ex):
                    err = "oom"
                elif unsupported(ex):
                    err = "unsupported: " + C.short_error(ex)
                else:
                    err = C.short_error(ex)
                    failures += 1
                rec.update(ms=None, tflops=None, error=err)
                msg = f"FAILED: {err}"
            q = k = v = None
            fn = call = None
            C.free_memory(device)
            rec.update({"cells": s.cells, "rows": s.rows, "kv_rows": s.kv_rows, "q_heads": H, "kv_heads": KV,
                        "head_dim": hd, "causal": s.causal, "gqa": gqa, "gflop": C.rnd(flops / 1e9, 3)})
            rec.update(env)
            out.emit(rec)
            C.progress(f"[sdpa_attention] {s.name:<22} {method:<18} {msg}")
    out.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
