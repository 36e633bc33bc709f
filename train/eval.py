#!/usr/bin/env python3
"""Evaluate a trained memory through `dbrmt` itself: exact match on held-out facts at several document lengths, with
the same documents run again with the memory zeroed (W_mv = 0: A stays 0, the read is exactly 0) as the control.

    python3 train/eval.py --dbrmt dist/dbrmt --gguf models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --armt runs/h200/armt.safetensors --segments 2,8,32 --docs 100 --device auto --out runs/h200/eval

Documents: held-out names only, the fact in segment 0 (`--fact-region first`, the farthest from the question; `any`
puts it anywhere before the last segment), one fact per document unless --facts. Each length's documents go to one
`dbrmt generate --input-ids …` call (many requests in one packed schedule), greedy, 5 new tokens; a document counts
when the generated text is its number. No torch needed (numpy only).

`--parity N` also runs `dbrmt run` on one document of N segments with both schedules and compares the engine's
last-token logits and final memory state with the training code's fp32 forward (needs torch): prints the relative
errors and whether diagonal == sequential bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import task  # noqa: E402

HEADER = re.compile(r"^=== \[(\d+)\] ")


def armt_meta(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__", {})


def zeroed_control(src, dst):
    """W_mv zeroed, everything else as is (numpy only: the safetensors layout is rewritten in place)."""
    with open(src, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = bytearray(raw[8 + n:])
    for k, v in header.items():
        if k != "__metadata__" and ".W_mv." in k:
            a, b = v["data_offsets"]
            data[a:b] = bytes(b - a)
    header.setdefault("__metadata__", {})["control"] = "W_mv zeroed: the memory carries nothing across segments"
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + bytes(data))


def generate(dbrmt, gguf, armt, files, device, log):
    cmd = [dbrmt, "generate", "--model", gguf, "--armt", armt, "--max-new-tokens", "5", "--device", device,
           "--input-ids", *files]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.time() - t0
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n" + out.stdout + "\n--- stderr ---\n" + out.stderr)
    if out.returncode != 0:
        raise SystemExit(f"dbrmt generate failed ({out.returncode}), see {log}:\n{out.stderr[-2000:]}")
    texts, cur = {}, None
    for line in out.stdout.splitlines():
        m = HEADER.match(line)
        if m:
            cur = int(m.group(1))
            texts[cur] = []
        elif cur is not None:
            texts[cur].append(line)
    return ["\n".join(texts.get(i, [])) for i in range(len(files))], dt


def parity(a, T):
    import torch
    import armt_io
    import armt_torch as at
    meta = armt_meta(a.armt)
    cfg, backbone, sha = armt_io.load_backbone(a.gguf, int(meta["segment_size"]), int(meta["num_mem_tokens"]),
                                               int(meta["d_mem"]))
    tens, _ = armt_io.read_armt(a.armt)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = at.ARMT(cfg, backbone, memory_init=tens).to_device(dev)
    gen = task.TaskGen(task.Pieces.load(), T, seed=a.seed + 99)
    doc = gen.sample(a.parity, 1, split="valid", fact_region=a.fact_region)
    d = os.path.join(a.out, "parity")
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "ids.npy"), np.asarray(doc.prompt, dtype=np.int32))
    res = {}
    for sched in ("diagonal", "sequential"):
        out = subprocess.run([a.dbrmt, "run", "--model", a.gguf, "--armt", a.armt, "--input-ids",
                              os.path.join(d, "ids.npy"), "--device", a.device, "--schedule", sched, "--logits",
                              "last", "--dump-logits", os.path.join(d, f"{sched}.npy"), "--dump-state",
                              os.path.join(d, f"{sched}.safetensors")], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"dbrmt run failed: {out.stderr[-2000:]}")
        res[sched] = out.stderr.strip().splitlines()[:2]
    same = all(open(os.path.join(d, f"diagonal{x}"), "rb").read() == open(os.path.join(d, f"sequential{x}"),
                                                                             "rb").read()
               for x in (".npy", ".safetensors"))
    ids = torch.tensor([doc.prompt], device=dev)
    with torch.no_grad():
        hs, (A, z) = model.forward_ids(ids, last_write=True)
        ours = model.logits(hs[-1][:, -1:])[0, 0].cpu()
    from safetensors.torch import load_file
    st = load_file(os.path.join(d, "diagonal.safetensors"))
    rel = lambda x, y: ((x.double() - y.double()).norm() / y.double().norm()).item()  # noqa: E731
    theirs = torch.from_numpy(np.load(os.path.join(d, "diagonal.npy"))).reshape(-1)
    L = cfg.num_hidden_layers
    r = dict(segments=a.parity, tokens=len(doc.prompt), device=a.device,
             logits_rel=rel(theirs, ours), argmax_same=int(theirs.argmax()) == int(ours.argmax()),
             A_rel_max=max(rel(st[f"layers.{i}.A"], A[i, 0].cpu()) for i in range(L)),
             z_rel_max=max(rel(st[f"layers.{i}.z"], z[i, 0].cpu()) for i in range(L)),
             A_norm=float(A.norm()), diagonal_equals_sequential_bytes=same)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbrmt", required=True)
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--armt", required=True)
    ap.add_argument("--segments", default="2,8,32")
    ap.add_argument("--docs", type=int, default=100)
    ap.add_argument("--facts", type=int, default=1)
    ap.add_argument("--fact-region", default="first", choices=["first", "any"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-control", action="store_true")
    ap.add_argument("--no-fact-control", action="store_true",
                    help="skip the second control: the trained memory on documents without the fact")
    ap.add_argument("--parity", type=int, default=0, help="also compare engine vs training forward at N segments")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    meta = armt_meta(a.armt)
    T = int(meta["segment_size"])
    control = os.path.join(a.out, "control-wv0.safetensors")
    if not a.no_control:
        zeroed_control(a.armt, control)
    pieces = task.Pieces.load()
    rows = []
    for n in [int(x) for x in a.segments.split(",")]:
        gen = task.TaskGen(pieces, T, seed=a.seed + n)
        d = os.path.join(a.out, f"docs-{n}")
        os.makedirs(d, exist_ok=True)
        files, want = [], []
        for k in range(a.docs):
            doc = gen.sample(n, a.facts, split="valid", fact_region=a.fact_region)
            f = os.path.join(d, f"doc{k:04d}.npy")
            np.save(f, np.asarray(doc.prompt, dtype=np.int32))
            files.append(f)
            want.append(doc.value)
        row = dict(segments=n, tokens_per_doc=round(float(np.mean([len(np.load(f)) for f in files]))), docs=a.docs)
        nofact = []
        if not a.no_fact_control:
            gen2 = task.TaskGen(pieces, T, seed=a.seed + 1000 + n)
            for k in range(a.docs):
                doc = gen2.sample(n, a.facts, split="valid", fact_region=a.fact_region, drop_facts=True)
                f = os.path.join(d, f"nofact{k:04d}.npy")
                np.save(f, np.asarray(doc.prompt, dtype=np.int32))
                nofact.append((f, doc.value))
        runs = [("trained", a.armt, files, want)]
        if not a.no_control:
            runs.append(("control", control, files, want))
        if nofact:
            runs.append(("nofact", a.armt, [f for f, _ in nofact], [v for _, v in nofact]))
        for label, armt, files, want in runs:
            got, dt = generate(a.dbrmt, a.gguf, armt, files, a.device, os.path.join(d, f"{label}.log"))
            em = sum(g.strip() == w for g, w in zip(got, want)) / len(want)
            row[f"em_{label}"] = em
            row[f"s_{label}"] = round(dt, 1)
            row[f"examples_{label}"] = [(w, g) for w, g in zip(want[:3], got[:3])]
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = dict(armt=a.armt, device=a.device, fact_region=a.fact_region, facts=a.facts, rows=rows)
    if a.parity:
        result["parity"] = parity(a, T)
        print(json.dumps(result["parity"]), flush=True)
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(result, f, indent=1)
    print()
    print(f"exact match on held-out facts (fact in {'segment 0' if a.fact_region == 'first' else 'any earlier segment'},"
          f" {a.docs} documents per length, T = {T}, greedy through dbrmt --device {a.device})")
    print("| segments | tokens | trained memory | memory zeroed (W_mv = 0) | trained, no fact in the document |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['segments']} | {r['tokens_per_doc']} | {r['em_trained']:.0%} | "
              f"{r.get('em_control', float('nan')):.0%} | {r.get('em_nofact', float('nan')):.0%} |")
    print("chance: 1 in 9000 (4 random digits)")


if __name__ == "__main__":
    main()
