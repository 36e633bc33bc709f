#!/usr/bin/env bash
# Prepared in session 7; run in session 8 (call 1: -s8-call1-*): the two measurements the next steps hang on, in one call (~3 min on an H200).
# From the repository root of a `cargo xtask bundle --gpu` of main (dist/ unpacked), with DBRMT_REPO_ROOT=$PWD.
#   1. Is decode kernel-bound or launch-bound? `bench requests` now prints, inside `steps`, the host's wait for the
#      GPU at the copy-out (Phases::copy_wait). copy_wait ~ steps: the host waits for kernels (fusing kernels is the
#      lever); copy_wait ~ 0: the kernels wait for launches (CUDA graphs, cached tensor maps and function
#      attributes are). Decode 1 x 4K + 128 for 1B and SmolLM2, twice each.
#   2. #12's o/down misses: `dbrmt bench kernels` times o and down (f32 accumulate) at BN 128/144/160 beside the rule's
#      width (152 for 1B): if a width beats the rule's in the same run at every cell count, change the f32 rule
#      (`gemm_sm90_bn_rule` and its mirror `gemm_sm90::tile_width`; bits do not change).
set -uo pipefail
OUT=${OUT:-$PWD/pending-out}; mkdir -p "$OUT"; export DBRMT_REPO_ROOT=$PWD
for i in 1 2; do for m in llama-3.2-1b smollm2-135m; do
  timeout 60 dist/dbrmt bench requests --model $m --requests 1 --tokens 4096 --decode 128 --no-serial \
    --out "$OUT/decode.jsonl" 2> "$OUT/decode-$m-$i.log"
done; done
timeout 300 dist/dbrmt bench kernels --out "$OUT/kernels.jsonl" > "$OUT/kernels.log" 2>&1
echo "===== decode: steps and the wait for the GPU inside them (ms)"
grep -h "bench: requests\|phases" "$OUT"/decode-*.log | cut -c1-160
echo "===== o / down at each width (TFLOP/s), cuBLAS f32-accumulate in the same run"
python3 - "$OUT/kernels.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for r in rows:
    if r.get("op") == "gemm" and (" o " in r.get("shape", "") + " " or " down" in r.get("shape", "")):
        print(f'{r["shape"]:<18} {r["method"]:<24} {r.get("ms", 0):8.3f} ms {r.get("tflops", 0):7.0f}')
PY
