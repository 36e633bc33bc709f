#!/usr/bin/env bash
# Session 19 call 9 — PREPARED, NOT RUN (the session's device time was spent): the write's prep in the kφ·A product's
# epilogue (branch prep-in-ka: armt_write_features_f32 + gemm_sm90_nn_f32_f32_f32_tf32x3_prep, DBRMT_PREP_IN_PRODUCT;
# docs/log/armt_write_fused.md §9). B = dist/ of the branch (merge main first). Its check (kφ, u, γ bitwise the three
# launches, reference) and the write / update-split suites; on failure memcheck and stop. gpu_engine, gpu_requests;
# step profiles; the 131K rows on / off three times each, alternating; memcheck of the check.
source docs/log/device/lib.sh s19c9
if ! run_test dbrmt-kernels__gpu_armt write split_of_the_new; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread|rror" $W/memcheck.log | head -12
  finish
fi
run_test dbrmt-runtime__gpu_engine || finish
run_test dbrmt-runtime__gpu_requests || finish
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: |steps of' $W/p-$1.log | tr -s ' ' | cut -c1-70 | tr '\n' ';')"
done
for r in 1 2 3; do for v in on off; do
  for row in 1b-t1024-131k 160m-t512-131k; do
    timeout 100 env DBRMT_PREP_IN_PRODUCT=$v dist/dbrmt bench matrix --filter $row --out $W/m-$row-$v.jsonl > $W/m-$row-$v-$r.log 2>&1
    mark "$row $v rc $? $(grep -hE 'dbrmt-' $W/m-$row-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
  done
done; done
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
finish
