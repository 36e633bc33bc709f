#!/usr/bin/env bash
# Session 21 call 4: main at f2612ca + the validation of what call 3 did not run — decode launches of the attention
# on two consumer warpgroups (the launcher's few-rows rule; decode == prefill across the two entries), the new
# gpu_engine test `attention_warpgroups_change_no_bit` and its selftest check; the decode rows, the 131K rows.
# B = dist/ of main.
source docs/log/device/lib.sh s21c4
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-kernels__gpu_layer_ops attention
timeout 240 dist/dbrmt selftest > $W/selftest.log 2>&1
mark "selftest rc $? $(grep -hE 'three warpgroups|decode = prefill' $W/selftest.log | head -3 | cut -c1-120 | tr '\n' ';') $(tail -1 $W/selftest.log | cut -c1-60)"
for r in 1 2; do
  timeout 120 dist/dbrmt bench matrix --filter decode --out $W/decode.jsonl > $W/decode-$r.log 2>&1
  mark "decode rows rc $? $(grep -hE 'decode-4k +dbrmt ' $W/decode-$r.log | tr -s ' ' | cut -c1-80 | tr '\n' ';')"
done
for m in 1b-t1024-131k 160m-t512-131k; do
  timeout 120 dist/dbrmt bench matrix --filter $m --out $W/m-$m.jsonl > $W/m-$m.log 2>&1
  mark "$m rc $? $(grep -hE 'dbrmt-(diagonal|sequential)' $W/m-$m.log | tr -s ' ' | cut -c1-90 | tr '\n' ';')"
done
finish
