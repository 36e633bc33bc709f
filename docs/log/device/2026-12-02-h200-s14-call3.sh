#!/usr/bin/env bash
# Session 14 call 3: GEMM v8, the two halves of k for f32 products over K >= 4096 (B = dist/, 5a806f7) against main
# before it (A = /tmp/A/dist). Tests on B (GEMM suite whole: every width bitwise incl. the _kh ones, decode rows ==
# segment rows, mirrors; engine: decode == prefill, diagonal == sequential at the 1B shape; generation; requests);
# decode rows and 1B 131K alternately; the kernel benchmarks (cuBLAS in the same run).
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s14c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s14c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
mkdir -p /tmp/A && python3 -c "import tarfile; tarfile.open('tmp-device/A.tar.xz').extractall('/tmp/A')"
run_test() { # name filter
  timeout 240 dist/tests/$1 ${2:-} --ignored --test-threads=1 > $W/$1.log 2>&1; rc=$?
  mark "B $1 ${2:-} rc $rc $(grep -h 'test result' $W/$1.log | tail -1 | cut -c1-50)"
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked|differ|rel_err" $W/$1.log | cut -c1-300 | head -14; fi
}
run_test dbrmt-kernels__gpu_gemm
run_test dbrmt-runtime__gpu_engine
run_test dbrmt-cli__gpu_generate
run_test dbrmt-runtime__gpu_requests
for r in 1 2 3; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter decode --out $W/matrix-$v.jsonl > $W/matrix-decode-$v-$r.log 2>&1
  mark "decode $v rc $? $(grep -hE 'ms/token' $W/matrix-decode-$v-$r.log | grep dbrmt | cut -c8-80 | tr -s ' ' | tr '\n' ' ')"
done; done
for r in 1 2; do for v in new old; do
  B=dist/dbrmt; [ $v = old ] && B=/tmp/A/dist/dbrmt
  timeout 100 $B bench matrix --filter 1b-t1024-131k --out $W/matrix-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-new.jsonl > $W/profile-1b-new.log 2>&1
mark "profile 1b new rc $? $(grep -h 'down projection' $W/profile-1b-new.log)"
timeout 240 dist/dbrmt bench kernels --out $W/kernels-new.jsonl > $W/kernels-new.log 2>&1
mark "bench kernels rc $? $(grep -ciE 'down' $W/kernels-new.log) down rows"
finish
