#!/usr/bin/env bash
# Session 14 call 1: the norm tails (B = dist/, main 9c32e83) against main before them (A = /tmp/A/dist). Tests on B:
# the GEMM tail checks, layer ops (rms_norm's shared row), the reads (fused-q and n32 tails), engine (tails on = off,
# decode == prefill), generation, requests; then decode rows alternately: B tails on, B DBRMT_NORM_TAIL=off, A.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c1; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c1.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
run_test() { # name filter
  timeout 200 dist/tests/$1 ${2:-} --ignored --test-threads=1 > $W/$1.log 2>&1; rc=$?
  mark "B $1 ${2:-} rc $rc $(grep -h 'test result' $W/$1.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|norm tail|differ" $W/$1.log | cut -c1-260 | head -14; fi
}
run_test dbrmt-kernels__gpu_gemm norm_tail
run_test dbrmt-kernels__gpu_layer_ops
run_test dbrmt-kernels__gpu_armt pre_split
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-cli__gpu_generate
run_test dbrmt-runtime__gpu_requests
for r in 1 2 3; do for v in on off old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  [ $v = off ] && export DBRMT_NORM_TAIL=off || unset DBRMT_NORM_TAIL
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'tokens/s|ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-90 | tr -s ' ' | tr '\n' ' ')"
done; done
unset DBRMT_NORM_TAIL
timeout 120 compute-sanitizer --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm norm_tail --ignored --test-threads=1 > $W/memcheck.log 2>&1
mark "memcheck gemm norm tail rc $? $(grep -h 'ERROR SUMMARY' $W/memcheck.log | tail -1)"
finish
