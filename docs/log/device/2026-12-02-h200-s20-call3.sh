#!/usr/bin/env bash
# Session 20 call 3: B = branch two-streams with the rule (two streams where each group's o product keeps 4 waves of
# tiles: 1B-class steps yes, 160M no) and the second stream from the step's start. gpu_engine's two-stream and 1B
# diagonal == sequential checks; then rows on / off alternating, two rounds: 1B T = 1024 131K, 160M T = 512 131K (the
# rule keeps one stream: on must equal off), 3B and 8B T = 1024 32K, 1B T = 4096 32K; then the 1B step's cuBLAS +
# SDPA ceiling again (products and attention only, swiglu apart).
source docs/log/device/lib.sh s20c3
run_test dbrmt-runtime__gpu_engine two_stream llama_1b_shape
for r in 1 2; do for v in on off; do
  for row in 1b-t1024-131k 160m-t512-131k 3b-t1024-32k 8b-t1024-32k 1b-t4096-32k; do
    timeout 100 env DBRMT_TWO_STREAMS=$v dist/dbrmt bench matrix --filter $row --out $W/m-$row-$v.jsonl > $W/m-$row-$v-$r.log 2>&1
    mark "$row $v rc $? $(grep -hE 'dbrmt-' $W/m-$row-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
  done
done; done
timeout 100 python3 benches/python/step_ceiling.py --models llama-3.2-1b --segment 1024 --out $W/ceiling.jsonl > $W/ceiling.log 2>&1
mark "step_ceiling rc $?"
grep step_ceiling $W/ceiling.log | cut -c1-130
finish
