#!/usr/bin/env bash
# Session 22 call 3: a pushed token's logits into the session's own buffer (no fresh 513 KB allocation a token).
# Decode rows three times (push + logits, greedy ahead, greedy waiting), gpu_generate and gpu_engine's decode tests;
# the two 131K prefill rows once (the prefill path is unchanged this session: where the rows stand on this lease).
source docs/log/device/lib.sh s22c3
run_test dbrmt-runtime__gpu_engine decode greedy
run_test dbrmt-cli__gpu_generate
for r in 1 2 3; do
  timeout 200 dist/dbrmt bench matrix --filter decode --out $W/decode-$r.jsonl > $W/decode-$r.log 2>&1
  mark "decode rows $r rc $?"
  grep -hE "decode-4k +dbrmt" $W/decode-$r.log | tr -s ' ' | cut -c1-110 | tee -a $W/marks.txt
done
for m in 1b-t1024-131k 160m-t512-131k; do
  timeout 150 dist/dbrmt bench matrix --filter $m --out $W/m-$m.jsonl > $W/m-$m.log 2>&1
  mark "$m rc $? $(grep -hE 'dbrmt-diagonal' $W/m-$m.log | head -1 | tr -s ' ' | cut -c1-90)"
done
finish
