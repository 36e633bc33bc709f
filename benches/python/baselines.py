#!/usr/bin/env python3
"""End-to-end PyTorch baselines for the rows of benches/matrix.toml (the `torch-*` methods; `dbrmt-*` are timed by
the Rust runner and skipped here).

  torch-sequential      armt_ref.forward_sequential: the original per-segment, per-layer ARMT loop
  torch-diagonal        armt_ref.forward_diagonal: diagonal batching (bmm over stacked layer weights, one batched
                        causal SDPA per diagonal step)
  torch-diagonal-graph  forward_diagonal captured once into a CUDA graph for the row's input; the replay is timed
  torch-sdpa-full       HF transformers LlamaModel (sdpa attention) over all `tokens` at once, no LM head
                        (logits = "last": LlamaForCausalLM with logits_to_keep=1)
  torch-hf-decode       ([[decode]] rows) HF generate with a KV cache, greedy, prompt + new_tokens

All bf16 weights and activations, random weights built on the device; ARMT state (A, z and the memory math) in
fp32 unless --state-dtype bf16 (the original code's behaviour). Output: one JSON object per measurement
(README.md beside this file), appended to --out (stdout without it); one progress line per measurement on stderr.

    python benches/python/baselines.py --out results.jsonl
    python benches/python/baselines.py --rows 1b-t1024-131k --methods torch-diagonal,torch-diagonal-graph
    python benches/python/baselines.py --device cpu --quick          # smoke test, tiny shapes
    python benches/python/baselines.py --plan                        # time estimate of the whole matrix (no torch)

Exit status: 0 when every measurement ran or ran out of memory (an OOM is a row result, "error": "oom");
1 when some measurement failed otherwise (still reported as a row with "error"); 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the repository's folders
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


HF_METHODS = ("torch-sdpa-full", "torch-hf-decode")


class Resident:
    """At most one model lives on the device at a time; switching models frees the previous one."""

    def __init__(self, device):
        self.device = device
        self.key = None
        self.obj = None

    def get(self, key, build):
        if self.key != key:
            self.drop()
            self.obj = build()
            self.key = key
        return self.obj

    def drop(self):
        self.obj = None
        self.key = None
        C.free_memory(self.device)


class Runner:
    def __init__(self, args, matrix: C.Matrix):
        import torch
        self.torch = torch
        self.args = args
        self.matrix = matrix
        self.device = torch.device(args.device)
        self.dev_name = C.device_name(self.device)
        self.tv = C.torch_version()
        self.ar = C.import_armt_ref()
        self.bf16 = torch.bfloat16
        self.state_dtype = self.ar.as_dtype(args.state_dtype)
        self.resident = Resident(self.device)
        self.out = C.Emitter(args.out)
        self.failures = 0

    # ------------------------------------------------------------------ models
    def shape(self, row: C.Row) -> C.ModelShape:
        s = self.matrix.models[row.model]
        return C.quick_shape(s) if row.quick else s

    def armt_model(self, row: C.Row):
        s = self.shape(row)

        def build():
            cfg = C.armt_config(self.ar, s, row)
            params = self.ar.random_params(cfg, seed=self.args.seed, device=self.device, dtype=self.bf16)
            model = self.ar.ARMTModel(cfg, params)
            del params
            model.prepare(self.bf16, self.device, drop_params=True)
            return model

        model = self.resident.get(("armt", row.model, row.quick, row.mem_tokens, row.d_mem), build)
        model.cfg = C.armt_config(self.ar, s, row)  # prepared weights do not depend on T: this row's segment size
        return model

    def hf_model(self, row: C.Row):
        s = self.shape(row)

        def build():
            from transformers import LlamaForCausalLM
            cfg = C.hf_config(s, max(row.tokens, row.prompt + row.new_tokens))
            self.torch.manual_seed(self.args.seed)
            with self.torch.device(self.device):   # weights created on the device, directly in bf16
                m = LlamaForCausalLM._from_config(cfg, dtype=self.bf16, attn_implementation="sdpa")
            m.eval()
            m.requires_grad_(False)
            m.generation_config.pad_token_id = 0
            m.generation_config.eos_token_id = None
            m.generation_config.bos_token_id = None
            return m

        return self.resident.get(("hf", row.model, row.quick), build)

    def ids(self, vocab: int, n: int):
        g = self.torch.Generator(device="cpu").manual_seed(self.args.seed + n)
        return self.torch.randint(0, vocab, (1, n), generator=g).to(self.device)

    # ------------------------------------------------------------------ output
    def base(self, row: C.Row, method: str) -> dict:
        d = {"kind": row.kind, "row": row.id, "method": method}
        return d

    def tail(self, row: C.Row, state_dtype: str) -> dict:
        if row.kind == "e2e":
            d = {"tokens": row.tokens}
        else:
            d = {"prompt": row.prompt, "new_tokens": row.new_tokens}
        d.update({"segment": row.segment, "model": row.model, "device": self.dev_name, "torch": self.tv,
                  "state_dtype": state_dtype})
        if row.kind == "e2e":
            d["logits"] = row.logits
        d.update(warmup=row.warmup, iters=row.iters, quick=row.quick)
        return d

    def run_method(self, row: C.Row, method: str):
        torch = self.torch
        sd_name = self.args.state_dtype if method in ("torch-sequential", "torch-diagonal",
                                                      "torch-diagonal-graph") else "none"
        rec = self.base(row, method)
        try:
            with torch.no_grad():
                if row.kind == "e2e":
                    runs, peak, extra = self.e2e(row, method)
                else:
                    runs, peak, extra = self.decode(row, method)
            rec.update(ms=C.rnd(C.median(runs)), ms_runs=[C.rnd(x) for x in runs], peak_gib=C.rnd(peak))
            rec.update(extra)
            rec.update(self.tail(row, sd_name))
            msg = f"{rec['ms']:.1f} ms  peak {rec['peak_gib']:.2f} GiB"
        except Exception as ex:  # noqa: BLE001 -- every failure becomes a row result
            oom = C.is_oom(ex)
            peak = C.peak_gib(self.device) if self.device.type == "cuda" else None
            rec.update(ms=None, ms_runs=[], peak_gib=C.rnd(peak))
            rec.update(self.tail(row, sd_name))
            rec["error"] = "oom" if oom else C.short_error(ex)
            if not oom:
                self.failures += 1
            msg = f"FAILED: {rec['error']}"
            if oom:   # drop what is resident too, so the next method starts clean
                self.resident.drop()
        finally:
            C.free_memory(self.device)
        self.out.emit(rec)
        C.progress(f"[baselines] {row.id:<22} {method:<22} {msg}")

    # ------------------------------------------------------------------ e2e methods
    def e2e(self, row: C.Row, method: str):
        if method == "torch-sdpa-full":
            m = self.hf_model(row)
            ids = self.ids(m.config.vocab_size, row.tokens)
            if row.logits == "none":
                fn = lambda: m.model(input_ids=ids, use_cache=False)  # noqa: E731 -- base model: no LM head
            else:
                fn = lambda: m(input_ids=ids, use_cache=False, logits_to_keep=1)  # noqa: E731
            runs, peak = C.time_runs(fn, self.device, row.warmup, row.iters)
            return runs, peak, {}
        model = self.armt_model(row)
        ids = self.ids(model.cfg.vocab_size, row.tokens)
        kw = dict(dtype=self.bf16, state_dtype=self.state_dtype, logits=row.logits, return_hidden=True)
        if method == "torch-sequential":
            fn = lambda: model.forward_sequential(ids, **kw)  # noqa: E731
        else:
            fn = lambda: model.forward_diagonal(ids, **kw)  # noqa: E731
        if method == "torch-diagonal-graph":
            return self.graph_runs(fn, row) + ({},)
        runs, peak = C.time_runs(fn, self.device, row.warmup, row.iters)
        return runs, peak, {}

    def graph_runs(self, fn, row: C.Row):
        """Warm-up on a side stream (fills armt_ref's RoPE cache, cuBLAS workspaces, the SDPA choice), capture one
        forward_diagonal into a CUDA graph, one untimed replay, then `iters` timed replays. Peak memory: over
        warm-up and capture (replays allocate nothing)."""
        torch = self.torch
        dev = self.device
        if dev.type != "cuda":
            raise RuntimeError("CUDA graphs need --device cuda")
        C.reset_peak(dev)
        s = torch.cuda.Stream(dev)
        s.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(s):
            for _ in range(max(1, row.warmup)):
                out = fn()
                del out
        torch.cuda.current_stream(dev).wait_stream(s)
        C.sync(dev)
        g = torch.cuda.CUDAGraph()
        static_out = None
        try:
            with torch.cuda.graph(g):
                static_out = fn()
            C.sync(dev)
            peak = C.peak_gib(dev)
            g.replay()
            C.sync(dev)
            runs = [C.time_once(g.replay, dev)[0] for _ in range(row.iters)]
        finally:
            del static_out, g
        return runs, peak

    # ------------------------------------------------------------------ decode
    def decode(self, row: C.Row, method: str):
        torch = self.torch
        assert method == "torch-hf-decode"
        m = self.hf_model(row)
        ids = self.ids(m.config.vocab_size, row.prompt)
        mask = torch.ones_like(ids)

        def gen(n):
            out = m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
            if out.shape[-1] != row.prompt + n:
                raise RuntimeError(f"generate returned {out.shape[-1] - row.prompt} new tokens, not {n}")
            return out

        gen(2)  # short warm-up (kernels, cuBLAS handles, cache code paths) before any timed or untimed full run
        runs, peak = C.time_runs(lambda: gen(row.new_tokens), self.device, row.warmup, row.iters)
        pre, _ = C.time_runs(lambda: gen(1), self.device, 0, row.iters)
        total, prefill = C.median(runs), C.median(pre)
        per_tok = (total - prefill) / max(1, row.new_tokens - 1)
        return runs, peak, {"prefill_ms": C.rnd(prefill), "ms_per_token": C.rnd(per_tok),
                            "tokens_per_s": C.rnd(1e3 / per_tok if per_tok > 0 else None, 1),
                            "attention": "full-kv-cache"}

    # ------------------------------------------------------------------ driver
    def run(self, rows, methods_filter):
        C.progress(f"[baselines] device={self.dev_name} torch={self.tv} state_dtype={self.args.state_dtype} "
                   f"quick={self.args.quick} rows={len(rows)} out={self.args.out or 'stdout'}")
        # ARMT methods share one resident ARMT model, the HF methods one HF model, and only one model is on the
        # device at a time (so that peak memory is per method). Runs of consecutive rows on the same model are
        # therefore done in two passes: the ARMT methods of every row of the run, then the HF methods.
        rows = [C.quick_row(r) if self.args.quick else r for r in rows]
        groups = []
        for row in rows:
            if groups and groups[-1][0].model == row.model:
                groups[-1].append(row)
            else:
                groups.append([row])
        for group in groups:
            for hf_pass in (False, True):
                for row in group:
                    for method in row.methods:
                        if not method.startswith("torch-") or (methods_filter and method not in methods_filter):
                            continue
                        if (method in HF_METHODS) != hf_pass:
                            continue
                        if method == "torch-diagonal-graph" and self.device.type != "cuda":
                            C.progress(f"[baselines] {row.id:<22} {method:<22} skipped (CUDA graphs need "
                                       f"--device cuda)")
                            continue
                        self.run_method(row, method)
        self.resident.drop()
        self.out.close()
        return 1 if self.failures else 0


# ----------------------------------------------------------------------------------------------------------------------
# --plan: time estimate for the whole matrix (both sides), from FLOP counts and measured rates
# ----------------------------------------------------------------------------------------------------------------------

def plan(matrix: C.Matrix, rows: list, methods_filter) -> int:
    est = C.Estimator()
    per_method = {}
    side = {"torch": 0.0, "dbrmt": 0.0}
    print(f"{'row':<22} {'method':<22} {'GFLOP':>10} {'run_s':>8} {'runs':>5} {'total_s':>8}")
    prev = None
    for r in rows:
        s = matrix.models[r.model]
        bt, br = est.build_s(s, r, prev)
        prev = r
        for mth in r.methods:
            if methods_filter and mth not in methods_filter:
                continue
            run_s, runs, tot, gf = est.method(s, r, mth)
            per_method[mth] = per_method.get(mth, 0.0) + tot
            side["torch" if mth.startswith("torch-") else "dbrmt"] += tot
            print(f"{r.id:<22} {mth:<22} {gf:>10.0f} {run_s:>8.3f} {runs:>5} {tot:>8.1f}")
        per_method["(model builds, baselines.py)"] = per_method.get("(model builds, baselines.py)", 0.0) + bt
        per_method["(model builds, Rust runner)"] = per_method.get("(model builds, Rust runner)", 0.0) + br
        side["torch"] += bt
        side["dbrmt"] += br
    per_method["(start-up, baselines.py)"] = est.process_s
    per_method["(start-up, Rust runner)"] = est.process_s
    per_method["(sdpa_attention.py, all of it)"] = est.process_s + est.attention_script_s
    side["torch"] += 2 * est.process_s + est.attention_script_s
    side["dbrmt"] += est.process_s
    total = side["torch"] + side["dbrmt"]
    print()
    for k, v in per_method.items():
        print(f"  {k:<34} {v:7.1f} s")
    print(f"  {'PyTorch side (both scripts)':<34} {side['torch']:7.1f} s")
    print(f"  {'Rust side':<34} {side['dbrmt']:7.1f} s")
    print(f"  {'TOTAL':<34} {total:7.1f} s  ({total / 60:.1f} min)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matrix", default=C.DEFAULT_MATRIX)
    ap.add_argument("--out", default=None, help="JSON-lines file to append to (default: stdout)")
    ap.add_argument("--rows", default=None, help="comma list of row ids ([[row]] and [[decode]])")
    ap.add_argument("--filter", default=None, help="only rows whose id contains this substring")
    ap.add_argument("--methods", default=None, help="comma list of methods (torch-*; dbrmt-* are ignored here)")
    ap.add_argument("--device", default="cuda", help="cuda | cpu (default cuda)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes/tokens/layers: a CPU smoke test in seconds")
    ap.add_argument("--state-dtype", default="fp32", choices=["fp32", "bf16"],
                    help="dtype of A, z and the memory math of torch-sequential/-diagonal (bf16 = original code)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plan", action="store_true", help="print the time estimate of the selected rows and exit")
    args = ap.parse_args(argv)

    try:
        matrix = C.load_matrix(args.matrix)
    except (OSError, ValueError, KeyError) as ex:
        print(f"baselines.py: bad matrix {args.matrix}: {ex}", file=sys.stderr)
        return 2
    try:
        rows = C.select_rows(matrix.all_rows(), args.rows, args.filter)
    except ValueError as ex:
        print(f"baselines.py: {ex}", file=sys.stderr)
        return 2
    methods_filter = None
    if args.methods:
        methods_filter = {x.strip() for x in args.methods.split(",") if x.strip()}
        unknown = methods_filter - C.KNOWN_E2E - C.KNOWN_DECODE
        if unknown:
            print(f"baselines.py: unknown methods {sorted(unknown)}", file=sys.stderr)
            return 2
    if args.plan:
        return plan(matrix, rows, methods_filter)

    import torch
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("baselines.py: CUDA is not available; use --device cpu", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    return Runner(args, matrix).run(rows, methods_filter)


if __name__ == "__main__":
    sys.exit(main())
