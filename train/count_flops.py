#!/usr/bin/env python3
"""FLOPs of one training step of train.py (forward + backward through every segment, only the memory parameters
trained) counted by torch's FlopCounterMode on the meta device (nothing is computed), at the H200 run's shapes:

    python3 train/count_flops.py        # needs torch and models/smollm2
"""
import contextlib
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import armt_io  # noqa: E402
import armt_torch as at  # noqa: E402

at._no_autocast = lambda x: contextlib.nullcontext()   # autocast has no meta device
GGUF = os.path.join(HERE, "..", "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
T, M = 1024, 16
cfg, bb, _ = armt_io.load_backbone(GGUF, T, M, 64)
m = at.ARMT(cfg, bb)
m.bb = {k: v.to("meta") for k, v in m.bb.items()}
m.to("meta")
for B, n in [(32, 2), (16, 4), (8, 8)]:
    last = T - 200
    ids = torch.zeros(B, (n - 1) * T + last, dtype=torch.long, device="meta")
    fc = FlopCounterMode(display=False)
    with fc:
        hs, _ = m.forward_ids(ids, last_write=False)
        m.logits(hs[-1][:, -5:]).float().sum().backward()
    tot = fc.get_total_flops()
    rows = B * ((n - 1) * (T + M) + last)
    print(f"batch {B} x {n} segments: {tot / 1e12:.1f} TFLOP a step, {rows} rows, {tot / rows / 1e9:.3f} GFLOP/row")
