#!/usr/bin/env bash
# Session 21 call 7: the review's mends on the GPU (host code only): the selftest's switch checks through one helper
# (gpu_engine's two-stream, RoPE and warpgroup tests), DBRMT_TWO_STREAMS=force as a RuntimeSwitch state (a forced
# 160M run, whose halves the rule keeps on one stream, against one with the switch off). B = dist/ of main.
source docs/log/device/lib.sh s21c7
run_test dbrmt-runtime__gpu_engine
for v in force off; do
  timeout 120 env DBRMT_TWO_STREAMS=$v dist/dbrmt bench streams --model llama-160m --segment 512 --tokens 32768 --streams 1 --out $W/s-$v.jsonl > $W/s-$v.log 2>&1
  mark "160m 32k two streams=$v rc $? $(grep -h 'bench: streams' $W/s-$v.log | grep -oE 'one after another [0-9.]+ ms')"
done
finish
