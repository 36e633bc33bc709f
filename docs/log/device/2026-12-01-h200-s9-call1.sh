#!/usr/bin/env bash
# Prepared in session 8, not run: the next call's first checks (~6 min on an H200).
# From the repository root of a `cargo xtask bundle --gpu` of the tree to check (dist/ unpacked).
#   1. Main's host-only review changes after session 8's last GPU call (fb63d9c..: the graph cache's one
#      launch_or_replay, StepShape::of's lazy buffers, the shared widths list, the attention bench's one closure):
#      every GPU test and the selftest on main's bundle first; then the same on a bundle of branch `row-launcher`
#      (to_bf16 and add_rows_f32 through one launcher) before it merges.
#   2. Where a decode layer's time goes inside its two longest kernels (SmolLM2 per layer, session 8 call 4: the fused
#      read 12.5 us at 18 blocks of 32 columns, attention 8.1 us for 3 KV heads): ncu's full section set on one decode
#      instance of each (stall reasons, issue activity, memory throughput), to choose between a shorter k-chain for the
#      read and fewer phases for decode attention.
set -uo pipefail
OUT=${OUT:-$PWD/pending-out}; mkdir -p "$OUT"; export DBRMT_REPO_ROOT=$PWD
timeout 300 dist/run.sh gpu > "$OUT/gputests.log" 2>&1; echo "gpu tests rc $?"
timeout 150 dist/run.sh selftest > "$OUT/selftest.log" 2>&1; echo "selftest rc $?"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
for k in armt_read_fused_sm90 attention_sm90_causal; do
  DBRMT_GRAPHS=off timeout 120 $NCU --clock-control none --set full -k "regex:$k" --launch-skip 300 --launch-count 1 \
    dist/dbrmt bench requests --model smollm2-135m --requests 1 --tokens 4096 --decode 16 --no-serial --out /tmp/x.jsonl \
    > "$OUT/ncu-$k.txt" 2>&1; echo "ncu $k rc $?"
done
grep -E "test result|FAILED|passed, " "$OUT/gputests.log" "$OUT/selftest.log" | tail -12
for k in armt_read_fused_sm90 attention_sm90_causal; do
  echo "===== $k"; grep -E "Duration|Stall|Issue Slots|Memory Throughput|Achieved Occupancy|Warp Cycles Per" "$OUT/ncu-$k.txt" | head -20
done
