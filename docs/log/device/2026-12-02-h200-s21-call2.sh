#!/usr/bin/env bash
# Session 21 call 2: attention v4 — three consumer warpgroups at head dim 64 (docs/log/attention_sm90.md §8). The dev
# harness: every check (the two-warpgroup kernel, production until now, bitwise == the three-warpgroup one in every
# variant check), then every shape timed with the A/B columns (2wg: the two-warpgroup kernel in the same run) and
# both profiles; PyTorch SDPA (flash, cuDNN) at the same shapes in the same call; the Rust GPU tests that involve
# attention (layer ops, gpu_engine: golden cases, 1B diagonal == sequential bitwise, decode == prefill); the 1B and
# 160M 131K rows and the 1B step profile. B = dist/ of this tree.
source docs/log/device/lib.sh s21c2
timeout 300 bash cuda/dev/run_attention_sm90.sh --no-simt > $W/attn.log 2>&1
mark "attention harness rc $? $(grep -hE '^(PASSED|FAILED)' $W/attn.log | tail -1)"
grep -E "registers|spill" target/dev/attention_sm90_build.log | head -8 > $W/attn-ptxas.txt
grep -hE "^  (1B step 16x1152|160M step|SmolLM2 step|3B 1x4224|8B 1x4224|3B step|1B decode 16x1)" $W/attn.log | tr -s ' ' | cut -c1-170
grep -hE "profile" $W/attn.log | head -4 | cut -c1-200
timeout 200 python3 benches/python/sdpa_attention.py --backends flash,cudnn --shapes 1b-16x1152,160m-12x640,smollm2-30x1152,3b-1x4224,8b-1x4224,3b-28x1152 --out $W/sdpa.jsonl > $W/sdpa.log 2>&1
mark "sdpa rc $?"
python3 - $W/sdpa.jsonl <<'PY' | tee -a $W/marks.txt
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("ms"): print(f"  sdpa {r.get('shape')} {r.get('method')} {r['ms']:.4f} ms {r.get('tflops') or 0:.1f} TFLOP/s")
PY
run_test dbrmt-kernels__gpu_layer_ops attention
run_test dbrmt-runtime__gpu_engine
for r in 1 2; do
  for m in "llama-3.2-1b 1024 131072" "llama-160m 512 131072"; do set -- $m
    timeout 120 dist/dbrmt bench streams --model $1 --segment $2 --tokens $3 --streams 1 --out $W/s-$1.jsonl > $W/s-$1-$r.log 2>&1
    mark "$1 rc $? $(grep -h 'bench: streams' $W/s-$1-$r.log | grep -oE 'one after another [0-9.]+ ms')"
  done
done
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/p-1b.jsonl > $W/p-1b.log 2>&1
mark "profile 1b rc $? $(grep -hE 'attention ' $W/p-1b.log | head -1 | tr -s ' ')"
finish
