#!/usr/bin/env bash
# Session 16 call 3: v12, a prefill's RoPE in the q/k/v product's epilogue (B = dist/). The new kernel check (bitwise
# against the product + rope at every head-aligned width), the engine tests (q/k/v RoPE fused = apart, diagonal ==
# sequential, golden and generated cases, decode == prefill), requests and generation; the new suite under memcheck;
# then the 131K prefill rows of the 1B and the 160M alternately fused / apart (DBRMT_QKV_ROPE=off: main's launches),
# and both step profiles fused.
set -uo pipefail
R=$PWD; T0=$SECONDS; export DBRMT_REPO_ROOT=$R; W=/tmp/s16c3; rm -rf $W; mkdir -p $W
mark() { echo "[$((SECONDS-T0))s] $1" | tee -a $W/marks.txt; }
finish() { (cd $W && tar czf $OUT/s16c3.tgz .); cat $W/marks.txt; exit 0; }
python3 -c "import tarfile; tarfile.open('tmp-device/B.tar.xz').extractall()"
timeout 150 dist/tests/dbrmt-kernels__gpu_gemm gemm_sm90_rope --ignored --test-threads=1 > $W/gemm-rope.log 2>&1
mark "gpu_gemm rope rc $? $(grep -h 'test result' $W/gemm-rope.log | tail -1 | cut -c1-50)"
grep -E "FAIL|panicked|error" $W/gemm-rope.log | cut -c1-250 | head -12
for t in dbrmt-runtime__gpu_engine dbrmt-runtime__gpu_requests dbrmt-cli__gpu_generate; do
  timeout 200 dist/tests/$t --ignored --test-threads=1 > $W/$t.log 2>&1; rc=$?
  mark "$t rc $rc $(grep -h 'test result' $W/$t.log | tail -1 | cut -c1-50)"
  grep -hE "q/k/v RoPE" $W/$t.log | cut -c1-200 | head -3
  if [ $rc -ne 0 ]; then grep -E "FAIL|panicked" $W/$t.log | cut -c1-250 | head -8; fi
done
for r in 1 2 3; do for v in fused apart; do
  E="X_=1"; [ $v = apart ] && E="DBRMT_QKV_ROPE=off"
  env $E timeout 100 dist/dbrmt bench matrix --filter 1b-t1024-131k --out $W/matrix-1b-$v.jsonl > $W/matrix-1b-$v-$r.log 2>&1
  mark "1b 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-1b-$v-$r.log | cut -c8-90 | tr -s ' ')"
  env $E timeout 100 dist/dbrmt bench matrix --filter 160m-t512-131k --out $W/matrix-160m-$v.jsonl > $W/matrix-160m-$v-$r.log 2>&1
  mark "160m 131k $v rc $? $(grep -hE 'dbrmt-diagonal' $W/matrix-160m-$v-$r.log | cut -c8-90 | tr -s ' ')"
done; done
timeout 90 dist/dbrmt bench profile --model llama-3.2-1b --segment 1024 --tokens 131072 --out $W/profile-1b.jsonl > $W/profile-1b.log 2>&1
mark "profile 1b rc $? $(grep -hE 'q/k/v|rope' $W/profile-1b.log | tr -s ' ' | tr '\n' ';')"
timeout 90 dist/dbrmt bench profile --model llama-160m --segment 512 --tokens 131072 --out $W/profile-160m.jsonl > $W/profile-160m.log 2>&1
mark "profile 160m rc $? $(grep -hE 'q/k/v|rope' $W/profile-160m.log | tr -s ' ' | tr '\n' ';')"
CS=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 120 $CS --tool memcheck dist/tests/dbrmt-kernels__gpu_gemm gemm_sm90_rope --ignored --test-threads=1 > $W/memcheck-rope.log 2>&1
mark "memcheck rope rc $? $(grep -hE 'ERROR SUMMARY|test result' $W/memcheck-rope.log | tr '\n' ' ' | cut -c1-120)"
finish
