#!/usr/bin/env bash
# Session 19 call 9: the write's prep in the kφ·A product's epilogue (branch prep-in-ka: armt_write_features_f32 +
# gemm_sm90_nn_f32_f32_f32_tf32x3_prep, DBRMT_PREP_IN_PRODUCT). B = dist/ of the branch. Its check (kφ, u, γ bitwise
# the three launches, reference) and the write / update-split suites; on failure memcheck and stop. gpu_engine,
# gpu_requests; step profiles (on); the 131K rows on / off three times each, alternating.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s19c9; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s19c9.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 150 dist/tests/dbrmt-kernels__gpu_armt write split_of_the_new --ignored --test-threads=1 --nocapture > $W/check.log 2>&1; rc=$?
mark "gpu_armt write/split rc $rc $(grep -h 'test result' $W/check.log | tail -1 | cut -c1-50)"
grep -E "tf32x3_prep|FAIL|panicked|rror" $W/check.log | cut -c1-250 | head -12
if [ $rc -ne 0 ]; then
  timeout 200 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
  mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY' $W/memcheck.log)"
  grep -E "Invalid|at 0x|by thread|rror" $W/memcheck.log | head -12
  finish
fi
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  [ $rc -ne 0 ] && { grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; finish; }
done
for m in "llama-3.2-1b 1024" "llama-160m 512"; do set -- $m
  timeout 90 dist/dbrmt bench profile --model $1 --segment $2 --tokens 131072 --out $W/p-$1.jsonl > $W/p-$1.log 2>&1
  mark "profile $1 rc $? $(grep -hE 'write: |steps of' $W/p-$1.log | tr -s ' ' | cut -c1-70 | tr '\n' ';')"
done
for r in 1 2 3; do for v in on off; do
  timeout 100 env DBRMT_PREP_IN_PRODUCT=$v dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/m1b-$v.jsonl > $W/m1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-' $W/m1b-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
  timeout 100 env DBRMT_PREP_IN_PRODUCT=$v dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/m160-$v.jsonl > $W/m160-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-' $W/m160-$v-$r.log | cut -c24-70 | tr -s ' ' | tr '\n' ';')"
done; done
timeout 100 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_armt write_prep_in --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck.log | tr '\n' ' ' | cut -c1-120)"
finish
