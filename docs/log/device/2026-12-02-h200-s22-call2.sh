#!/usr/bin/env bash
# Session 22 call 2: a prompt that ends a segment closes it in the prefill (sessions and packed requests; the last
# close gives the logits). Every engine, request and generate test on the GPU (decode == prefill, greedy ahead,
# packed == sessions), the selftest, then the decode rows twice (push + logits, greedy ahead, greedy waiting).
source docs/log/device/lib.sh s22c2
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-runtime__gpu_requests
run_test dbrmt-cli__gpu_generate
run_test dbrmt-cli__gpu_serve
timeout 400 dist/dbrmt selftest > $W/selftest.log 2>&1
mark "selftest rc $? $(tail -1 $W/selftest.log | cut -c1-100)"
for r in 1 2; do
  timeout 200 dist/dbrmt bench matrix --filter decode --out $W/decode-$r.jsonl > $W/decode-$r.log 2>&1
  mark "decode rows $r rc $?"
  grep -hE "decode-4k +dbrmt" $W/decode-$r.log | tr -s ' ' | cut -c1-110 | tee -a $W/marks.txt
done
finish
