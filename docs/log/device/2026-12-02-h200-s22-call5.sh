#!/usr/bin/env bash
# Session 22 call 5: a generation session's workspace holds the quarantine slots, so its prefill takes two-stream steps.
# Engine, request and generate tests; the 1B and 160M 32K rows with the session
# methods (as the CLI asks: one run; in pieces of 8 segments: the runs before) beside the engine's diagonal, twice;
# the decode rows once.
source docs/log/device/lib.sh s22c5
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-runtime__gpu_requests
run_test dbrmt-cli__gpu_generate
for r in 1 2; do
  for m in 1b-t1024-32k 160m-t512-32k; do
    timeout 200 dist/dbrmt bench matrix --filter $m --out $W/m-$m-$r.jsonl > $W/m-$m-$r.log 2>&1
    mark "$m round $r rc $?"
    grep -hE "dbrmt-(diagonal|session)" $W/m-$m-$r.log | tr -s ' ' | cut -c1-100 | tee -a $W/marks.txt
  done
done
timeout 200 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rows rc $?"
grep -hE "decode-4k +dbrmt" $W/decode.log | tr -s ' ' | cut -c1-110 | tee -a $W/marks.txt
finish
