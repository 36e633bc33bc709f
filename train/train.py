#!/usr/bin/env python3
"""Train the ARMT memory of SmolLM2-135M (backbone frozen, the Q4_1 GGUF dequantised as the engine sees it) on the
fact-retrieval task of task.py, with a curriculum over segment counts; write the memory as an `--armt` file.

    python3 train/train.py --gguf models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf --out runs/h200 \\
        --device cuda --dtype bf16 --budget-min 13

Trained: W_mq, W_mk, W_mv, W_mb (weight and bias) of every layer and the memory-token embeddings; nothing else.
Loss: cross-entropy on the answer tokens only (" " + 4 digits). AdamW, grad-norm clip, per stage warm-up then a
cosine decay over the stage's time budget; a stage ends at its time budget, its step limit, or when the held-out
exact match at its longest length reaches --advance-at; the next stage starts from the current weights.

Outputs in --out: `curves.jsonl` (one JSON object per logged step and per evaluation), `armt.safetensors` (the
final memory, the engine's `--armt` file; metadata has the run's settings and last evaluation), `armt-stage{k}`
after each stage, `ckpt.pt` (memory + optimizer, for --init), `summary.json`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import armt_io  # noqa: E402
import armt_torch as at  # noqa: E402
import task  # noqa: E402

# stage: (segment counts drawn per batch, facts per document 1..max, batch size, max steps, share of the budget)
DEFAULT_STAGES = "2:1:32:2000:0.3,2-4:2:16:2000:0.3,2-8:3:8:2000:0.4"


def parse_stages(spec: str):
    out = []
    for part in spec.split(","):
        segs, facts, batch, steps, share = part.split(":")
        lo, _, hi = segs.partition("-")
        out.append(dict(seg_lo=int(lo), seg_hi=int(hi or lo), facts=int(facts), batch=int(batch),
                        steps=int(steps), share=float(share)))
    return out


def make_batch(gen: task.TaskGen, n_seg: int, facts: int, batch: int, split: str, T: int, fact_region="any"):
    """[B, N] ids with every document the same length, answer positions shared."""
    last = gen.rng.randrange(min(64, T), T + 1)
    docs = [gen.sample(n_seg, gen.rng.randint(1, facts), split=split, last_len=last, fact_region=fact_region)
            for _ in range(batch)]
    n = {len(d.ids) for d in docs}
    a = {d.answer_start for d in docs}
    assert len(n) == 1 and len(a) == 1, "documents of a batch share length and answer position"
    ids = torch.tensor([d.ids for d in docs], dtype=torch.long)
    return ids, docs[0].answer_start, len(docs[0].answer_ids)


def answer_logits(model: at.ARMT, ids: torch.Tensor, ans_start: int, ans_len: int, ckpt: bool):
    """Logits predicting each answer token ([B, ans_len, V]) and their targets ([B, ans_len])."""
    hs, _ = model.forward_ids(ids, last_write=False, checkpoint=ckpt)
    T = model.cfg.segment_size
    last_start = (len(hs) - 1) * T
    pos = torch.arange(ans_start - 1, ans_start - 1 + ans_len, device=ids.device) - last_start
    h = hs[-1][:, pos]
    return model.logits(h).float(), ids[:, ans_start:ans_start + ans_len]


@torch.no_grad()
def evaluate(model, gen_seed, n_seg, facts, n_docs, batch, device, T, fact_region="first"):
    """Teacher-forced exact match on held-out names (all answer tokens argmax-right = what greedy decoding gives)."""
    gen = task.TaskGen(task.Pieces.load(), T, seed=gen_seed)
    right, total, loss_sum = 0, 0, 0.0
    while total < n_docs:
        b = min(batch, n_docs - total)
        ids, a0, al = make_batch(gen, n_seg, facts, b, "valid", T, fact_region)
        lg, tgt = answer_logits(model, ids.to(device), a0, al, ckpt=False)
        tgt = tgt.to(device)
        loss_sum += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), reduction="sum").item()
        right += (lg.argmax(-1) == tgt).all(-1).sum().item()
        total += b
    return right / total, loss_sum / (total * al)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--segment-size", type=int, default=1024)
    ap.add_argument("--mem-tokens", type=int, default=16)
    ap.add_argument("--d-mem", type=int, default=64)
    ap.add_argument("--stages", default=DEFAULT_STAGES,
                    help="segs:facts:batch:max_steps:budget_share, comma-separated (segs = N or LO-HI)")
    ap.add_argument("--budget-min", type=float, default=13.0, help="training wall-time budget, all stages")
    ap.add_argument("--lr", type=float, default=1e-3, help="W_mq, W_mk, W_mb and the memory embeddings")
    ap.add_argument("--lr-wv", type=float, default=1e-5,
                    help="W_mv: the read is about a β-weighted mean of the values P W_mv, and SmolLM2's memory rows"
                         " have norms of 40-600, so Adam steps of 1e-3 on W_mv make reads of norm ~1000 within a"
                         " few steps (the CPU smoke run diverged at step 5)")
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"], help="backbone weights and activations")
    ap.add_argument("--checkpoint", action="store_true", help="recompute each segment in backward (less memory)")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-docs", type=int, default=64)
    ap.add_argument("--advance-at", type=float, default=0.95)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe-lr-wv", default="",
                    help="comma-separated W_mv LRs to try first (each --probe-steps steps of the first stage, from the"
                         " same start); the one with the lowest mean loss over its last 10 steps is used")
    ap.add_argument("--probe-steps", type=int, default=40)
    ap.add_argument("--init", help="a ckpt.pt of an earlier run: start from its memory and optimizer state")
    ap.add_argument("--stage-offset", type=int, default=0, help="number the stages from here (for --init runs)")
    ap.add_argument("--save-dtype", default="bf16", choices=["bf16", "fp32"],
                    help="dtype of the written --armt file (bf16: half the size; the engine's GPU runs bf16)")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    cfg, backbone, sha = armt_io.load_backbone(a.gguf, a.segment_size, a.mem_tokens, a.d_mem)
    bdt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    model = at.ARMT(cfg, backbone, seed=a.seed, backbone_dtype=bdt).to_device(dev)
    params = [model.W_mq, model.W_mk, model.W_mv, model.W_mb, model.b_mb, model.memory]
    n_params = sum(p.numel() for p in params)
    opt = torch.optim.AdamW([dict(params=[model.W_mq, model.W_mk, model.W_mb, model.b_mb, model.memory], lr=a.lr),
                             dict(params=[model.W_mv], lr=a.lr_wv)], lr=a.lr, weight_decay=a.wd)
    stages = parse_stages(a.stages)
    ck = os.path.join(a.out, "ckpt.pt")
    if a.init and a.init.endswith(".safetensors"):
        # an --armt file (e.g. armt-stage0.safetensors): its memory, a fresh optimizer
        tens, _ = armt_io.read_armt(a.init)
        model.load_memory(tens)
        print(f"# from {a.init} (memory only, fresh optimizer)", flush=True)
    elif a.init:
        st = torch.load(a.init, map_location=dev)
        model.load_memory(st["memory"])
        opt.load_state_dict(st["opt"])
        a.lr_wv = st.get("lr_wv", a.lr_wv)
        print(f"# from {a.init} (after stage {st['stage'] - 1})", flush=True)
    curves = open(os.path.join(a.out, "curves.jsonl"), "a")

    def log(obj):
        obj["wall"] = round(time.time() - t_run, 2)
        curves.write(json.dumps(obj) + "\n")
        curves.flush()

    t_run = time.time()
    print(f"# {cfg.num_hidden_layers} layers, d={cfg.hidden_size}, T={cfg.segment_size}, M={cfg.num_mem_tokens}, "
          f"d_mem={cfg.d_mem}; {n_params/1e6:.2f} M trained parameters; device {dev}, {a.dtype}; base sha256 {sha}",
          flush=True)
    gen = task.TaskGen(task.Pieces.load(), cfg.segment_size, seed=a.seed + 1)
    if a.probe_lr_wv and not a.init:
        start = model.memory_state_dict()
        s0 = stages[0]
        results = {}
        for v in [float(x) for x in a.probe_lr_wv.split(",")]:
            model.load_memory(start)
            popt = torch.optim.AdamW([dict(params=[model.W_mq, model.W_mk, model.W_mb, model.b_mb, model.memory],
                                           lr=a.lr), dict(params=[model.W_mv], lr=v)], weight_decay=a.wd)
            pgen = task.TaskGen(task.Pieces.load(), cfg.segment_size, seed=a.seed + 7)
            losses = []
            t0 = time.time()
            for st in range(a.probe_steps):
                w = min(1.0, (st + 1) / a.warmup)
                popt.param_groups[0]["lr"], popt.param_groups[1]["lr"] = a.lr * w, v * w
                ids, a0, al = make_batch(pgen, pgen.rng.randint(s0["seg_lo"], s0["seg_hi"]), s0["facts"],
                                         s0["batch"], "train", cfg.segment_size)
                lg, tgt = answer_logits(model, ids.to(dev), a0, al, a.checkpoint)
                loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.to(dev).reshape(-1))
                popt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, a.clip)
                popt.step()
                losses.append(loss.item())
            tail = losses[-10:]
            score = sum(tail) / len(tail) if all(math.isfinite(x) for x in tail) else float("inf")
            results[v] = score
            rec = dict(kind="probe", lr_wv=v, steps=a.probe_steps, mean_loss_last10=score, losses=losses,
                       s_per_step=round((time.time() - t0) / a.probe_steps, 4))
            log(rec)
            print(json.dumps({k: x for k, x in rec.items() if k != "losses"}), flush=True)
        a.lr_wv = min(results, key=results.get)
        print(f"# probe: lr_wv = {a.lr_wv}", flush=True)
        model.load_memory(start)
        opt = torch.optim.AdamW([dict(params=[model.W_mq, model.W_mk, model.W_mb, model.b_mb, model.memory],
                                      lr=a.lr), dict(params=[model.W_mv], lr=a.lr_wv)], weight_decay=a.wd)
    budget_s = a.budget_min * 60
    evals = []
    for k in range(len(stages)):
        s, si = stages[k], k + a.stage_offset
        # what is left of the whole budget is shared by the remaining stages
        left = budget_s - (time.time() - t_run)
        rest_share = sum(x["share"] for x in stages[k:])
        stage_budget = max(0.0, left * s["share"] / rest_share)
        t_stage = time.time()
        best = -1.0
        step = 0
        print(f"# stage {si}: segments {s['seg_lo']}-{s['seg_hi']}, facts ≤ {s['facts']}, batch {s['batch']}, "
              f"≤ {s['steps']} steps, {stage_budget/60:.1f} min", flush=True)
        step_times = []
        skipped = 0
        while step < s["steps"] and time.time() - t_stage < stage_budget:
            frac = (time.time() - t_stage) / max(stage_budget, 1e-9)
            lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1))))
            opt.param_groups[0]["lr"] = lr
            opt.param_groups[1]["lr"] = lr * a.lr_wv / a.lr
            n_seg = gen.rng.randint(s["seg_lo"], s["seg_hi"])
            ids, a0, al = make_batch(gen, n_seg, s["facts"], s["batch"], "train", cfg.segment_size)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
            lg, tgt = answer_logits(model, ids.to(dev), a0, al, a.checkpoint)
            loss = F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.to(dev).reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(params, a.clip).item()
            if not (math.isfinite(loss.item()) and math.isfinite(gn)):
                # a non-finite loss or gradient would turn every parameter into NaN through Adam (the H200 run
                # of 2026-12-01 lost its stage-0 weights that way at stage 1's first 4-segment batch): skip it
                bad = [nm for nm, p in zip(("W_mq", "W_mk", "W_mv", "W_mb", "b_mb", "memory"), params)
                       if p.grad is not None and not torch.isfinite(p.grad).all()]
                opt.zero_grad(set_to_none=True)
                skipped += 1
                step += 1
                rec = dict(kind="skip", stage=si, step=step, n_seg=n_seg, loss=loss.item(), grad_norm=gn,
                           nonfinite_grads=bad, skipped=skipped)
                log(rec)
                print(json.dumps(rec), flush=True)
                continue
            opt.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = time.time() - t0
            step_times.append(dt)
            step += 1
            if step % a.log_every == 0 or step <= 5:
                em = (lg.argmax(-1) == tgt.to(dev)).all(-1).float().mean().item()
                rec = dict(kind="train", stage=si, step=step, n_seg=n_seg, loss=round(loss.item(), 5),
                           train_em=em, grad_norm=round(gn, 4), lr=lr, s_per_step=round(dt, 4),
                           tokens=int(ids.numel()))
                if dev.type == "cuda":
                    rec["gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                log(rec)
                print(json.dumps(rec), flush=True)
            if step % a.eval_every == 0:
                em, vl = evaluate(model, 1234, s["seg_hi"], s["facts"], a.eval_docs, s["batch"], dev,
                                  cfg.segment_size)
                rec = dict(kind="eval", stage=si, step=step, n_seg=s["seg_hi"], facts=s["facts"], em=em,
                           loss=round(vl, 5))
                log(rec)
                print(json.dumps(rec), flush=True)
                best = max(best, em)
                torch.save(dict(memory=model.memory_state_dict(), opt=opt.state_dict(), stage=si, lr_wv=a.lr_wv), ck)
                if em >= a.advance_at:
                    break
        em, vl = evaluate(model, 1234, s["seg_hi"], s["facts"], a.eval_docs, s["batch"], dev, cfg.segment_size)
        rec = dict(kind="eval", stage=si, step=step, n_seg=s["seg_hi"], facts=s["facts"], em=em, loss=round(vl, 5),
                   end_of_stage=True, skipped_steps=skipped, stage_min=round((time.time() - t_stage) / 60, 2),
                   median_s_per_step=round(sorted(step_times)[len(step_times) // 2], 4) if step_times else None)
        log(rec)
        print(json.dumps(rec), flush=True)
        evals.append(rec)
        torch.save(dict(memory=model.memory_state_dict(), opt=opt.state_dict(), stage=si + 1, lr_wv=a.lr_wv), ck)
        armt_io.save_armt(model, os.path.join(a.out, f"armt-stage{si}.safetensors"), sha,
                          dtype=torch.bfloat16 if a.save_dtype == "bf16" else torch.float32)
    extra = {"trained_by": "train/train.py", "stages": a.stages, "lr": a.lr, "lr_wv": a.lr_wv, "budget_min": a.budget_min,
             "backbone_dtype": a.dtype, "evals": evals}
    out = os.path.join(a.out, "armt.safetensors")
    armt_io.save_armt(model, out, sha, dtype=torch.bfloat16 if a.save_dtype == "bf16" else torch.float32,
                      extra=extra)
    summary = dict(armt=out, minutes=round((time.time() - t_run) / 60, 2), trained_params=n_params, evals=evals)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
