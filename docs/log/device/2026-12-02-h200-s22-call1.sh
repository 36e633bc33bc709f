#!/usr/bin/env bash
# Session 22 call 1: greedy generation one pass ahead of the host (Session::generate_greedy, af16672). The bitwise
# check (ahead = waiting, a refused id's pass undone, over a segment end, then one push and the state), the decode
# graphs check, then the decode rows twice: each row's push loop with logits copied ("dbrmt", as before), greedy
# one pass ahead ("dbrmt-greedy") and greedy waiting for each id ("dbrmt-greedy-wait"), one binary.
source docs/log/device/lib.sh s22c1
run_test dbrmt-runtime__gpu_engine greedy_decode_ahead decode_graphs
for r in 1 2; do
  timeout 200 dist/dbrmt bench matrix --filter decode --out $W/decode-$r.jsonl > $W/decode-$r.log 2>&1
  mark "decode rows $r rc $?"
  grep -hE "decode-4k +dbrmt" $W/decode-$r.log | tr -s ' ' | cut -c1-110 | tee -a $W/marks.txt
done
finish
