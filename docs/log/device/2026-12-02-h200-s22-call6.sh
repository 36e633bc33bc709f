#!/usr/bin/env bash
# Session 22 call 6: the review's mends (host code only: one greedy loop for both sessions, one greedy-of-logits check,
# push and the run-ahead through one admit(), the selftest's 1B engines through one helper). Engine, request and
# generate tests, the selftest, the decode rows once.
source docs/log/device/lib.sh s22c6
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-runtime__gpu_requests
run_test dbrmt-cli__gpu_generate
timeout 400 dist/dbrmt selftest > $W/selftest.log 2>&1
mark "selftest rc $? $(tail -1 $W/selftest.log | cut -c1-100)"
timeout 200 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode.log 2>&1
mark "decode rows rc $?"
grep -hE "decode-4k +dbrmt" $W/decode.log | tr -s ' ' | cut -c1-110 | tee -a $W/marks.txt
finish
